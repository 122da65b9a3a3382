"""What every resolution-recovery network promises the training and inference code.

All models take a block of the *pre-upsampled* LRES (already on the HRES grid and
normalised) shaped ``(batch, z, y, x)`` and return the predicted HRES for the
central ``z - 2 * trim_z`` slices, same ``y, x``: ``(batch, z - 2 * trim_z, y, x)``.

* 2.5D models see a stack of neighbouring slices per output slice: they consume
  ``trim_z`` slices above and below ("valid" in z) and need no z halo.
* 3D models convolve with zero padding in z like in y and x, so their outputs near
  a block face depend on the padding: tiled inference reads a halo of
  ``receptive_radius`` voxels on those axes and discards it.

With these two numbers, and ``size_multiple`` (the in-plane size must be a
multiple of the network's total downsampling, and tiles start on multiples of it
so pooling windows line up), tiled inference can reproduce a whole-volume pass.

Networks with ``input_grid = "lres"`` (:class:`~napari_resolve.models.lres3d.LRES3D`)
work the other way round: they take a block of the LRES itself, *not*
pre-upsampled, and the output voxel positions per axis (LRES voxel units relative
to the block), and interpolate to the output grid inside the network; their
``receptive_radius`` counts LRES voxels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ResolutionModel(nn.Module):
    """Base class of the networks in the registry.

    Subclasses set :attr:`name` and implement :meth:`forward`, and fill
    :attr:`config` with every constructor argument (a checkpoint rebuilds the
    model from ``name`` and ``config``). Networks with outputs that only
    training uses (coarse branches, intermediate stages) return them from
    :meth:`forward_train`; :meth:`forward` always returns the prediction alone
    and keeps no state between calls.
    """

    #: Registry name.
    name: str = ""
    #: A 3D (volumetric) network; otherwise a 2D or 2.5D one that works slice-wise.
    volumetric: bool = False
    #: Names of intermediate outputs trained against their own targets (the ``"stages"``
    #: of :meth:`forward_train`), in order; empty for single-output networks.
    stage_names: tuple[str, ...] = ()
    #: ``"hres"``: the input is the LRES pre-upsampled onto the output grid; ``"lres"``: the
    #: LRES block itself plus the output positions (``forward(x, positions)``).
    input_grid: str = "hres"

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = dict(config)

    def forward_train(self, x: torch.Tensor, *args) -> tuple[torch.Tensor, dict[str, Any]]:
        """The prediction and the extra outputs the training loss uses.

        Parameters
        ----------
        x : Tensor, (batch, z, y, x)
            As for :meth:`forward`.
        *args
            The output positions, for ``input_grid = "lres"`` networks.

        Returns
        -------
        y : Tensor
            What :meth:`forward` returns.
        extras : dict
            ``"coarse"``: list of coarse predictions, finest first (prediction
            ``k - 1`` has ``y`` and ``x`` divided by ``2**k`` and is compared with
            the ``2**k`` block average of the target); ``"stages"``: dict of
            intermediate outputs by :attr:`stage_names`, shaped like ``y``.
            Either key is absent when the network has no such outputs; this
            default has neither.
        """
        return self(x, *args), {}

    @property
    def trim_z(self) -> int:
        """Slices consumed at each z face of the input ("valid" in z)."""
        return 0

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        """(z, y, x) voxels beyond which input changes cannot reach an output voxel
        through zero-padded convolutions (z is 0 for slice-wise models)."""
        raise NotImplementedError

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        """(z, y, x): input sizes and tile starts must be multiples of these."""
        return (1, 1, 1)

    def optimised_parameters(self):
        """The parameters the training loop's optimiser steps (all of them, unless a part has its own)."""
        return self.parameters()

    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def describe(self) -> str:
        """One line for logs and widgets."""
        cfg = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{self.name} ({cfg}; {self.parameter_count():,} parameters)"
