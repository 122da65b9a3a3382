"""The default network: 3D features on the LRES grid, a light upsampler at the output grid.

Every other network here works on the *pre-upsampled* LRES: at ratio 3 it
convolves 27 times more voxels than the LRES has. This one convolves the LRES
itself (3D residual blocks, EDSR-style without normalisation) and only at the end
goes to the output grid, at any ratio and sub-voxel phase, anisotropic or not:

1. features on the LRES grid: a 3x3x3 convolution, ``blocks`` residual blocks
   (conv, LeakyReLU, conv, plus the input) and a closing convolution with a
   global skip;
2. a 1x1x1 projection to ``hidden`` channels plus the LRES value times a learned
   vector, still on the LRES grid (both are linear, so they commute with the
   linear interpolation that follows and cost the LRES voxels only);
3. at every output voxel: those features interpolated linearly, plus a learned
   encoding of the voxel's sub-voxel position (``sin`` and ``cos`` of ``2 pi p``
   per axis, continuous across LRES voxel boundaries), then a small per-voxel
   MLP (LeakyReLU, a 1x1x1 layer, LeakyReLU, a 1x1x1 layer) that predicts the
   residual;
4. output = cubic interpolation of the LRES + that residual. The last layer starts
   at zero, so an untrained network is cubic interpolation.

This is the "local implicit function" idea of LIIF (Chen et al. 2021) in its
cheapest separable form: a per-voxel function of interpolated features and of
the position inside the LRES voxel, which a pixel shuffle would restrict to
integer ratios.

The tiling contract differs from the pre-upsampled networks' (see
:mod:`napari_resolve.models.base`): the input is a block of the LRES (``(batch,
z, y, x)``, normalised) and the output positions are given per axis in LRES voxel
units relative to the block's first voxel; an output voxel at position ``p``
depends on the LRES voxels ``floor(p) - 1 - r`` to ``floor(p) + 2 + r`` on every
axis, ``r`` being :attr:`~LRES3D.receptive_radius` (LRES voxels).

References
----------
Lim, B., Son, S., Kim, H., Nah, S., Lee, K. M. (2017). Enhanced deep residual
networks for single image super-resolution. CVPRW. https://arxiv.org/abs/1707.02921

Chen, Y., Liu, S., Wang, X. (2021). Learning continuous image representation with
local implicit image function. CVPR. https://arxiv.org/abs/2012.09161
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.base import ResolutionModel
from napari_resolve.models.interpolate import matrix_axis

#: Output slices the upsampler computes at a time in inference: bounds its memory
#: (``hidden`` channels per output voxel) to a slab, whatever the tile.
HEAD_SLICES = 12
#: LRES voxels an output voxel at ``p`` reads below and above ``floor(p)``
#: through the interpolations (cubic: -1 .. +2), beyond the receptive radius.
INTERP_REACH = (1, 2)


def _extend(pos: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of one axis continued by ``k`` steps of their own spacing on both sides."""
    step = pos[..., 1:2] - pos[..., :1] if pos.shape[-1] > 1 else torch.ones_like(pos[..., :1])
    ramp = torch.arange(1, k + 1, dtype=pos.dtype, device=pos.device)
    return torch.cat([pos[..., :1] - step * ramp.flip(0), pos, pos[..., -1:] + step * ramp], dim=-1)


class _ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.a = nn.Conv3d(width, width, 3, padding=1)
        self.b = nn.Conv3d(width, width, 3, padding=1)

    def forward(self, x):
        return x + self.b(F.leaky_relu(self.a(x), 0.1))


class LRES3D(ResolutionModel):
    """3D residual network on the LRES grid with a position-aware upsampler (the default).

    Parameters
    ----------
    width : int
        Feature channels on the LRES grid.
    blocks : int
        Residual blocks (two 3x3x3 convolutions each); the receptive radius is
        ``2 * blocks + 2`` LRES voxels.
    hidden : int
        Channels of the per-voxel MLP at the output grid.
    refine : int
        Channels of an in-plane refinement at the output grid: two (1, 3, 3)
        convolutions on the MLP's hidden features whose result joins the
        residual (0: none). It adds spatial capacity where the output's fine
        detail is (measured in docs/comparison.md); the MLP is then evaluated on
        a grid two output voxels wider on each side in y and x.
    """

    name = "lres3d"
    volumetric = True
    input_grid = "lres"

    def __init__(self, width: int = 32, blocks: int = 4, hidden: int = 16, refine: int = 16):
        super().__init__({"width": width, "blocks": blocks, "hidden": hidden, "refine": refine})
        for key, value, low, high in (("width", width, 1, 256), ("blocks", blocks, 0, 32),
                                      ("hidden", hidden, 1, 256), ("refine", refine, 0, 256)):
            if not (isinstance(value, int) and low <= value <= high):
                raise InputError(f"lres3d: {key} must be a whole number from {low} to {high}, got {value!r}.")
        self.blocks = blocks
        self.inp = nn.Conv3d(1, width, 3, padding=1)
        self.body = nn.Sequential(*[_ResBlock(width) for _ in range(blocks)])
        self.mid = nn.Conv3d(width, width, 3, padding=1)
        self.project = nn.Conv3d(width, hidden, 1)
        # sin and cos of 2 pi p on each of z, y, x -> hidden, and the weight of the cubic value.
        self.position = nn.Parameter(torch.randn(3, 2, hidden) * 0.1)
        self.base_weight = nn.Parameter(torch.zeros(hidden))
        self.hidden1 = nn.Conv3d(hidden, hidden, 1)
        self.out = nn.Conv3d(hidden, 1, 1)
        nn.init.zeros_(self.out.weight)  # starts as cubic interpolation
        nn.init.zeros_(self.out.bias)
        #: Output voxels the in-plane refinement reads beyond each side of its output (y and x).
        self.refine_reach = 2 if refine else 0
        if refine:
            self.refine_a = nn.Conv3d(hidden, refine, (1, 3, 3))
            self.refine_b = nn.Conv3d(refine, 1, (1, 3, 3))
            nn.init.zeros_(self.refine_b.weight)
            nn.init.zeros_(self.refine_b.bias)

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        """LRES voxels (z, y, x) of convolution context around an LRES voxel's features."""
        r = 2 * self.blocks + 2
        # The refinement's reach of output voxels is at most as many LRES voxels (HRES is the finer grid).
        return (r, r + self.refine_reach, r + self.refine_reach)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The projected LRES-grid features, (batch, hidden, z, y, x), of a normalised LRES block (batch, z, y, x)."""
        if x.ndim != 4:
            raise InputError(f"lres3d takes (batch, z, y, x) LRES blocks, got shape {tuple(x.shape)}.")
        x = x[:, None]
        if self.inp.weight.is_contiguous(memory_format=torch.channels_last_3d) and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last_3d)  # weights converted by the caller for speed
        f0 = self.inp(x)
        f = self.mid(self.body(f0)) + f0
        # The LRES value itself joins the features here, on the LRES grid, where it is cheap.
        g = self.project(F.leaky_relu(f, 0.1)) + x * self.base_weight.view(1, -1, 1, 1, 1)
        return g.contiguous()

    def _encoding(self, axis: int, pos: torch.Tensor, dtype) -> torch.Tensor:
        """The learned sub-voxel position term of one axis, shaped to broadcast along it (channels last)."""
        angle = 2 * math.pi * pos.to(dtype)
        enc = torch.stack([torch.sin(angle), torch.cos(angle)], -1) @ self.position[axis]  # (n, c) or (B, n, c)
        shape = [enc.shape[0] if enc.ndim == 3 else 1, 1, 1, 1, enc.shape[-1]]
        shape[1 + axis] = enc.shape[-2]
        return enc.reshape(shape)

    def _head(self, x, g, positions) -> torch.Tensor:
        """The output at the grid of ``positions`` (three 1D or per-sample tensors) from block ``x`` and features ``g``.

        The hidden features are kept channels last, ``(batch, z, y, x, hidden)``:
        the 1x1x1 layers are then single matrix products (``F.linear``), about 3x
        faster than conv3d on channels-first tensors here. Each interpolation
        pass is a product with band-limited interpolation matrices
        (:func:`~napari_resolve.models.interpolate.matrix_axis`). The passes go
        x, then y, then z; each axis's position term is added right after its own
        pass (exact: it is constant along the axes interpolated later, and linear
        interpolation keeps constants).
        """
        pz, py, px = positions
        k = self.refine_reach
        ey, ex = (_extend(py, k), _extend(px, k)) if k else (py, px)
        h = g.permute(0, 2, 3, 4, 1).contiguous()  # on the LRES grid: cheap
        h = matrix_axis(h, 3, ex) + self._encoding(2, ex, g.dtype)
        h = matrix_axis(h, 2, ey) + self._encoding(1, ey, g.dtype)
        h = F.leaky_relu(matrix_axis(h, 1, pz) + self._encoding(0, pz, g.dtype), 0.1, inplace=True)
        c = h.shape[-1]
        flat = F.leaky_relu(F.linear(h, self.hidden1.weight.view(c, c), self.hidden1.bias), 0.1, inplace=True)
        residual = F.linear(flat, self.out.weight.view(1, c), self.out.bias)[..., 0]
        if k:  # channels last is conv3d's channels_last_3d layout: the permute is a view
            refined = self.refine_b(F.leaky_relu(self.refine_a(flat.permute(0, 4, 1, 2, 3)), 0.1, inplace=True))
            residual = residual[..., k:-k, k:-k] + refined[:, 0]
        return matrix_axis(matrix_axis(matrix_axis(x, 3, px, "cubic"), 2, py, "cubic"), 1, pz, "cubic") + residual

    def forward(self, x: torch.Tensor, positions) -> torch.Tensor:
        """Predict the output grid of ``positions`` from the LRES block ``x``.

        Parameters
        ----------
        x : Tensor, (batch, z, y, x)
            Normalised LRES block.
        positions : three Tensors
            Output voxel positions along z, y and x, in LRES voxels relative to
            the block's voxel 0; each ``(n,)``, or ``(batch, n)`` per sample.

        Returns
        -------
        Tensor, (batch, nz, ny, nx)
        """
        g = self.features(x)
        pz = positions[0]
        if self.training or pz.ndim > 1 or pz.shape[0] <= HEAD_SLICES:
            return self._head(x, g, positions)
        # Inference: the upsampler slab by slab on the LRES slices each slab reads, so its hidden
        # channels never fill a whole tile.
        outs, n = [], x.shape[1]
        for a in range(0, pz.shape[0], HEAD_SLICES):
            p = pz[a : a + HEAD_SLICES]
            lo = max(int(torch.floor(p[0])) - INTERP_REACH[0], 0)
            hi = min(int(torch.floor(p[-1])) + INTERP_REACH[1] + 1, n)
            outs.append(self._head(x[:, lo:hi], g[:, :, lo:hi], (p - lo, *positions[1:])))
        return torch.cat(outs, dim=1)

    def forward_train(self, x: torch.Tensor, positions=None) -> tuple[torch.Tensor, dict]:
        return self(x, positions), {}
