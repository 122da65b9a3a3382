"""The 2.5D frame shared by DIDN, MIMO-UNet and DRLN: slice stacks in, the centre slice out.

A block of the pre-upsampled LRES ``(batch, z, y, x)`` is cut into stacks of
``slices`` neighbouring slices, each stack goes through a 2D network as
``slices`` input channels, and the network's one output channel is added to the
stack's centre slice (the networks predict the *difference* to the upsampled
input, as every network here does). ``slices = 1`` is the plain 2D network run
on every slice. The stacks consume ``slices // 2`` slices at each z face
(``trim_z``), as :class:`~napari_resolve.models.unet25d.UNet25D` does with
``out="centre"``.
"""

from __future__ import annotations

import torch

from napari_resolve.errors import InputError
from napari_resolve.models.base import ResolutionModel


class SliceStackModel(ResolutionModel):
    """Base of the 2.5D networks: subclasses set :attr:`slices` and implement :meth:`_net`.

    ``_net(stacks)`` takes ``(n, slices, y, x)`` and returns the residual of the
    centre slices, ``(n, 1, y, x)``.
    """

    slices: int = 1

    def _set_slices(self, slices: int) -> None:
        if not isinstance(slices, int) or slices < 1 or slices % 2 == 0:
            raise InputError(f"{self.name}: slices must be an odd number >= 1, got {slices!r}.")
        self.slices = slices

    @property
    def trim_z(self) -> int:
        return self.slices // 2

    def _net(self, stacks: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _stacks(self, x: torch.Tensor) -> torch.Tensor:
        """(b, z, y, x) -> (b * n, slices, y, x), one stack per output slice, after checking the sizes."""
        b, z, y, w = x.shape
        k = self.slices
        if z < k:
            raise InputError(f"{self.name} with slices={k} needs at least {k} slices per block, got {z}.")
        _, my, mx = self.size_multiple
        if y % my or w % mx:
            raise InputError(f"{self.name} needs y and x multiples of {my} x {mx}, got {y} x {w}.")
        if k == 1:
            return x.reshape(b * z, 1, y, w)
        return x.unfold(1, k, 1).permute(0, 1, 4, 2, 3).reshape(b * (z - k + 1), k, y, w)

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        """The input slices the outputs belong to: (b, z - 2 * trim_z, y, x)."""
        h = self.trim_z
        return x[:, h : x.shape[1] - h]

    def _assemble(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Base (b, n, y', x') plus the stacks' residuals (b * n, 1, y', x')."""
        return x + residual.reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._assemble(self._centre(x), self._net(self._stacks(x)))
