"""SRCNN, the three-layer baseline (Dong et al. 2014) used in
DeepNet 2024 (docs/references.md; https://doi.org/10.1515/mim-2024-0017): 9x9 feature extraction (64), 1x1
non-linear mapping (32), 5x5 reconstruction, on the pre-upsampled input.

``srcnn`` works slice by slice (2D kernels), ``srcnn3d`` with 3D kernels. As in
the paper the network predicts the image itself; ``residual=True`` makes it
predict the difference to the input instead.
"""

from __future__ import annotations

import torch
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.base import ResolutionModel


class _SRCNNBase(ResolutionModel):
    conv: type[nn.Module] = nn.Conv2d

    def __init__(self, n1: int = 64, n2: int = 32, f1: int = 9, f2: int = 1, f3: int = 5, residual: bool = False):
        super().__init__({"n1": n1, "n2": n2, "f1": f1, "f2": f2, "f3": f3, "residual": residual})
        if min(n1, n2) < 1 or any(f < 1 or f % 2 == 0 for f in (f1, f2, f3)):
            raise InputError(f"{self.name}: filter counts must be >= 1 and kernel sizes odd, got {self.config}.")
        self.residual = residual
        conv = self.conv
        self.body = nn.Sequential(
            conv(1, n1, f1, padding=f1 // 2),
            nn.ReLU(inplace=True),
            conv(n1, n2, f2, padding=f2 // 2),
            nn.ReLU(inplace=True),
            conv(n2, 1, f3, padding=f3 // 2),
        )
        self._radius = (f1 + f2 + f3 - 3) // 2


class SRCNN(_SRCNNBase):
    """SRCNN applied to every z slice with 2D kernels."""

    name = "srcnn"

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        return (0, self._radius, self._radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, z, y, w = x.shape
        out = self.body(x.reshape(b * z, 1, y, w)).reshape(b, z, y, w)
        return x + out if self.residual else out


class SRCNN3D(_SRCNNBase):
    """SRCNN with 3D kernels."""

    name = "srcnn3d"
    volumetric = True
    conv = nn.Conv3d

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        return (self._radius,) * 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x.unsqueeze(1)).squeeze(1)
        return x + out if self.residual else out
