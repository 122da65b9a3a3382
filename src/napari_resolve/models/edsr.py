"""EDSR and WDSR: deep residual networks without normalisation layers.

Two of the three super-resolution networks compared in
Bizhani et al. 2022 (docs/references.md; https://doi.org/10.1038/s41598-022-08170-8) (trained there with an L1 loss):

* EDSR (Lim et al. 2017): a head convolution, residual blocks
  ``conv3x3 - ReLU - conv3x3`` whose output is scaled (0.1) before it is added
  back, a convolution closing the trunk with a long skip over it, and a tail
  convolution. No batch normalisation (EDSR removed it; here it would also make
  tiled inference show seams).
* WDSR (Yu et al. 2018, the "A" block): the same trunk, slimmer, with the ReLU
  applied to a *wide* feature map (``expansion`` times the trunk) inside every
  block, weight normalisation on every convolution, and a 5x5 convolution from
  the input straight to the output next to the trunk.

Unlike the originals, which end with a pixel-shuffle upsampler, both work here
on the pre-upsampled LRES, slice by slice (2D kernels on every z slice), and
predict the *difference* to that input. The output layers start at zero, so an
untrained network returns the cubic interpolation exactly and training only
learns the correction (as the U-Net's zero head does).
"""

from __future__ import annotations

import torch
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.base import ResolutionModel


def _conv(c_in: int, c_out: int, k: int, weight_norm: bool = False, zero: bool = False) -> nn.Module:
    """A 'same' 2D convolution, optionally weight-normalised, optionally starting at zero.

    A weight-normalised convolution (``w = g * v / |v|``) starts at zero through
    ``g = 0``: ``v = 0`` would make ``v / |v|`` undefined.
    """
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
    if zero:
        nn.init.zeros_(conv.bias)
    if not weight_norm:
        if zero:
            nn.init.zeros_(conv.weight)
        return conv
    conv = nn.utils.parametrizations.weight_norm(conv)
    if zero:
        with torch.no_grad():
            conv.parametrizations.weight.original0.zero_()
    return conv


class _ResBlock(nn.Module):
    """``x + res_scale * conv(ReLU(conv(x)))``; ``hidden`` > features is WDSR's wide activation."""

    def __init__(self, features: int, hidden: int, res_scale: float, weight_norm: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            _conv(features, hidden, 3, weight_norm),
            nn.ReLU(inplace=True),
            _conv(hidden, features, 3, weight_norm),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class _SliceWise(ResolutionModel):
    """A 2D network run on every z slice, its output added to the input."""

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, z, y, w = x.shape
        return x + self._net(x.reshape(b * z, 1, y, w)).reshape(b, z, y, w)


def _check(name: str, **values) -> None:
    bad = {k: v for k, v in values.items() if not v >= 1}
    if bad:
        raise InputError(f"{name}: {', '.join(bad)} must be at least 1, got {bad}.")


class EDSR(_SliceWise):
    """EDSR on every z slice, residual over the upsampled LRES.

    Parameters
    ----------
    blocks : int
        Residual blocks (the paper's EDSR baseline has 16, the large model 32).
    features : int
        Feature channels of the trunk.
    res_scale : float
        Scale of each block's residual before it is added back (0.1 in the large
        EDSR, which keeps deep residual stacks stable without normalisation).
    """

    name = "edsr"

    def __init__(self, blocks: int = 8, features: int = 32, res_scale: float = 0.1):
        super().__init__({"blocks": blocks, "features": features, "res_scale": res_scale})
        _check(self.name, blocks=blocks, features=features)
        if not res_scale > 0:
            raise InputError(f"edsr: res_scale must be positive, got {res_scale}.")
        self.blocks = blocks
        self.head = _conv(1, features, 3)
        self.body = nn.Sequential(
            *[_ResBlock(features, features, res_scale) for _ in range(blocks)],
            _conv(features, features, 3),
        )
        self.tail = _conv(features, 1, 3, zero=True)

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # head + 2 per block + trunk end + tail, each a 3x3 convolution.
        r = 2 * self.blocks + 3
        return (0, r, r)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return self.tail(h + self.body(h))


class WDSR(_SliceWise):
    """WDSR (wide activation, "A" blocks) on every z slice, residual over the upsampled LRES.

    Parameters
    ----------
    blocks : int
        Residual blocks.
    features : int
        Feature channels of the (slim) trunk.
    expansion : int
        Width of the activation inside a block, in multiples of ``features``:
        the default 16 x 4 has the parameters and cost of EDSR's 32 channels,
        with four times the channels before the ReLU.
    res_scale : float
        Scale of each block's residual (WDSR relies on weight normalisation and
        uses 1; smaller values are available).
    weight_norm : bool
        Weight-normalise every convolution (as in WDSR; it lets the optimiser
        take larger steps). Checkpoints store ``g`` and ``v`` of each.
    """

    name = "wdsr"

    def __init__(
        self, blocks: int = 8, features: int = 16, expansion: int = 4, res_scale: float = 1.0, weight_norm: bool = True
    ):
        super().__init__(
            {
                "blocks": blocks,
                "features": features,
                "expansion": expansion,
                "res_scale": res_scale,
                "weight_norm": weight_norm,
            }
        )
        _check(self.name, blocks=blocks, features=features, expansion=expansion)
        if not res_scale > 0:
            raise InputError(f"wdsr: res_scale must be positive, got {res_scale}.")
        wn = bool(weight_norm)
        self.blocks = blocks
        self.head = _conv(1, features, 3, wn)
        self.body = nn.Sequential(*[_ResBlock(features, features * expansion, res_scale, wn) for _ in range(blocks)])
        self.tail = _conv(features, 1, 3, wn, zero=True)
        # WDSR's second branch: the input through one 5x5 convolution.
        self.skip = _conv(1, 1, 5, wn, zero=True)

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # head + 2 per block + tail (3x3 each); the 5x5 skip reaches 2.
        r = max(2 * self.blocks + 2, 2)
        return (0, r, r)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(self.head(x))) + self.skip(x)
