"""DIDN, the deep iterative down-up CNN for image denoising (Yu, Park & Jeong 2019).

The denoiser of Bizhani et al. 2022 (docs/references.md;
https://doi.org/10.1038/s41598-022-08170-8), trained there with an L1 loss.

Structure, as in the paper:

1. **feature extraction**: a 3x3 convolution (PReLU), then a 3x3 convolution of
   stride 2 (PReLU): everything after it works at half the resolution, which
   makes the network large in reach and cheap per pixel;
2. ``blocks`` **down-up blocks** (DUB) in a row, each a small U-Net on the
   features with residual connections at every scale: two convolutions
   (residual), a stride-2 convolution to twice the channels, a convolution
   (residual), another stride-2 convolution to four times the channels, a
   convolution (residual); then back up by *sub-pixel* convolution (a 1x1
   convolution to four times the channels and a pixel shuffle), a 1x1
   convolution over the concatenation with the features of that scale on the
   way down, a convolution (residual), the same once more to the top scale and
   two convolutions (residual); a closing convolution and a skip over the whole
   block;
3. **reconstruction**: one block of ``recon_units`` residual units (two
   convolutions each), a closing convolution and a skip over it, applied with
   *the same weights* to the output of every DUB;
4. **fusion**: a 1x1 convolution over the concatenated reconstructions, a 3x3
   convolution with a skip, a pixel shuffle back to the full resolution and an
   output convolution;
5. the **global residual**: the output is added to the input.

Departures from the paper, and why:

* It works on the pre-upsampled LRES like the other networks here, slice by
  slice or on stacks of ``slices`` neighbouring slices as input channels (2.5D;
  ``slices=1`` is the paper's 2D network), and adds its output to the stack's
  centre slice. Noise is independent from slice to slice, so the neighbours help
  a denoiser; the default reads three.
* The output convolution starts at zero, so an untrained DIDN returns its input
  exactly (as every network here does); the convolutions have biases (the
  original has none; with the input normalised, not mean-free, they help the
  small default).
* Defaults sized for a CPU: ``features=16, blocks=2, recon_units=2`` (about
  220 k parameters). The paper's network is ``features=256, blocks=6,
  recon_units=4`` (about 165 M parameters); Bizhani et al. used 48 features
  (``features`` must be a multiple of 4: the final pixel shuffle divides it by 4).

Tiling. Three stride-2 levels (the feature extraction's and two in every DUB)
make :attr:`DIDN.size_multiple` 8 in y and x: tiles start on multiples of 8,
so every tile sees the same sampling grid as a whole-volume pass, and with a
margin of :attr:`DIDN.receptive_radius` the tiles equal the whole pass
(tested). The radius is large (92 at the defaults): every DUB reaches 38 input
voxels, as deep as a 19-convolution stack at full resolution.

References
----------
.. [1] S. Yu, B. Park, J. Jeong, "Deep Iterative Down-Up CNN for Image
   Denoising", Proceedings of the IEEE/CVF Conference on Computer Vision and
   Pattern Recognition Workshops (CVPRW), 2019, pp. 2095-2103.
   https://openaccess.thecvf.com/content_CVPRW_2019/html/NTIRE/Yu_Deep_Iterative_Down-Up_CNN_for_Image_Denoising_CVPRW_2019_paper.html
.. [2] M. Bizhani, O. Haeri Ardakani, E. Little, "Reconstructing high fidelity
   digital rock images using deep convolutional neural networks", Scientific
   Reports 12, 4264, 2022. https://doi.org/10.1038/s41598-022-08170-8
"""

from __future__ import annotations

import torch
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.stack25d import SliceStackModel


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)


class _Residual(nn.Module):
    """``x + PReLU(conv(... PReLU(conv(x))))`` with ``convs`` 3x3 convolutions."""

    def __init__(self, features: int, convs: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(convs):
            layers += [_conv(features, features), nn.PReLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _down(c_in: int) -> nn.Sequential:
    """Stride-2 3x3 convolution to twice the channels."""
    return nn.Sequential(_conv(c_in, 2 * c_in, 3, stride=2), nn.PReLU())


def _up(c_in: int) -> nn.Sequential:
    """Sub-pixel upsampling to half the channels: 1x1 convolution to ``2 * c_in``, then a 2x pixel shuffle."""
    return nn.Sequential(_conv(c_in, 2 * c_in, 1), nn.PixelShuffle(2))


class DownUpBlock(nn.Module):
    """DIDN's down-up block (DUB): a residual U-Net of three scales on ``features`` channels."""

    def __init__(self, features: int):
        super().__init__()
        f = features
        self.top_in = _Residual(f, 2)
        self.down1 = _down(f)
        self.mid_in = _Residual(2 * f, 1)
        self.down2 = _down(2 * f)
        self.bottom = _Residual(4 * f, 1)
        self.up2 = _up(4 * f)
        self.fuse2 = _conv(4 * f, 2 * f, 1)
        self.mid_out = _Residual(2 * f, 1)
        self.up1 = _up(2 * f)
        self.fuse1 = _conv(2 * f, f, 1)
        self.top_out = _Residual(f, 2)
        self.close = _conv(f, f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = self.top_in(x)
        mid = self.mid_in(self.down1(top))
        h = self.bottom(self.down2(mid))
        h = self.mid_out(self.fuse2(torch.cat([self.up2(h), mid], dim=1)))
        h = self.top_out(self.fuse1(torch.cat([self.up1(h), top], dim=1)))
        return x + self.close(h)


class _Reconstruction(nn.Module):
    """Residual units of two convolutions, a closing convolution, a skip over all of it."""

    def __init__(self, features: int, units: int):
        super().__init__()
        self.units = nn.Sequential(*[_Residual(features, 2) for _ in range(units)])
        self.close = _conv(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.close(self.units(x))


class DIDN(SliceStackModel):
    """DIDN on stacks of neighbouring slices, residual over the upsampled LRES.

    Parameters
    ----------
    slices : int
        Odd number of neighbouring slices per prediction, as input channels
        (1: the paper's 2D network on every slice).
    features : int
        Feature channels at half resolution, doubled at each of a DUB's two
        levels down (256 in the paper); a multiple of 4.
    blocks : int
        Down-up blocks in a row (6 in the paper).
    recon_units : int
        Residual units of the (shared) reconstruction block (4 in the paper).
    """

    name = "didn"

    def __init__(self, slices: int = 3, features: int = 16, blocks: int = 2, recon_units: int = 2):
        super().__init__({"slices": slices, "features": features, "blocks": blocks, "recon_units": recon_units})
        self._set_slices(slices)
        if not (isinstance(features, int) and features >= 4 and features % 4 == 0):
            raise InputError(f"didn: features must be a multiple of 4 (at least 4), got {features!r}.")
        if not (isinstance(blocks, int) and blocks >= 1 and isinstance(recon_units, int) and recon_units >= 1):
            raise InputError(f"didn: blocks and recon_units must be at least 1, got {blocks!r} and {recon_units!r}.")
        f = features
        self.blocks, self.recon_units = blocks, recon_units
        self.head = nn.Sequential(_conv(slices, f), nn.PReLU(), _conv(f, f, 3, stride=2), nn.PReLU())
        self.dubs = nn.ModuleList(DownUpBlock(f) for _ in range(blocks))
        self.recon = _Reconstruction(f, recon_units)
        self.fuse = nn.Sequential(_conv(blocks * f, f, 1), nn.PReLU())
        self.mid = nn.Sequential(_conv(f, f), nn.PReLU())
        self.shuffle = nn.PixelShuffle(2)
        self.out = _conv(f // 4, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # In input voxels, conservative: a 3x3 convolution at stride s reaches s, a
        # stride-2 convolution from stride s reaches s further, and so does a pixel
        # shuffle back to stride s. The head: 1 + 1. A DUB at stride 2: 2 + 2
        # (top convs), 2 (down), 4 (conv), 4 (down), 8 (conv), 4 (up), 4 (conv),
        # 2 (up), 2 + 2 (top convs), 2 (closing conv) = 38. The reconstruction: 2
        # per conv, 2 * recon_units + 1 of them. The tail: 2 (conv), 1 (shuffle),
        # 1 (output conv).
        r = 2 + 38 * self.blocks + 2 * (2 * self.recon_units + 1) + 4
        return (0, r, r)

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        return (1, 8, 8)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        recons = []
        for dub in self.dubs:
            h = dub(h)
            recons.append(self.recon(h))
        h = self.fuse(torch.cat(recons, dim=1))
        h = h + self.mid(h)
        return self.out(self.shuffle(h))
