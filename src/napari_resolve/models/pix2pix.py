"""pix2pix: a 2.5D U-Net generator trained against a PatchGAN discriminator (conditional GAN).

The generator is :class:`~napari_resolve.models.unet25d.UNet25D` (residual over
the pre-upsampled LRES, so it starts as cubic interpolation) and alone makes the
prediction: inference, tiling and the model file's contract are the U-Net's. The
discriminator only trains: it sees, per output slice, the pre-upsampled LRES
slice (the condition) beside an HRES slice, real or generated, and scores every
overlapping patch of about 34 x 34 voxels as real or not. The generator's loss is
the training loss (L1 by default) plus ``adv_weight`` times the adversarial term
(:mod:`napari_resolve.learn.adversarial`), the diffusion paper's cGAN baseline.

References
----------
.. [1] Isola P., Zhu J.-Y., Zhou T., Efros A. A. (2017) Image-to-image translation with
   conditional adversarial networks. CVPR, 1125-1134. https://doi.org/10.1109/CVPR.2017.632
"""

from __future__ import annotations

import torch
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.base import ResolutionModel
from napari_resolve.models.unet25d import UNet25D


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix's 70 x 70, narrowed for the CPU): 4 x 4 convolutions, two at stride 2.

    Takes ``(n, 2, y, x)`` (condition slice, HRES slice) and returns ``(n, 1, y', x')``
    logits, one per patch of about 34 x 34 input voxels.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.InstanceNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 4 * width, 4, stride=1, padding=1),
            nn.InstanceNorm2d(4 * width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * width, 1, 4, stride=1, padding=1),
        )

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.net(pair)


class Pix2Pix(ResolutionModel):
    """A 2.5D U-Net generator with a PatchGAN discriminator for adversarial training.

    Parameters
    ----------
    slices, width, depth, convs : int
        The generator's settings (:class:`~napari_resolve.models.unet25d.UNet25D`).
    disc_width : int
        Channels of the discriminator's first layer (doubled twice).
    adv_weight : float
        Weight of the adversarial term against the training loss (pix2pix: 1 against 100 x L1).
    """

    name = "pix2pix"

    def __init__(self, slices: int = 5, width: int = 24, depth: int = 2, convs: int = 2, disc_width: int = 16,
                 adv_weight: float = 0.01):
        super().__init__({"slices": slices, "width": width, "depth": depth, "convs": convs,
                          "disc_width": disc_width, "adv_weight": adv_weight})
        if disc_width < 1 or not 0 < adv_weight <= 1:
            raise InputError(f"pix2pix: need disc_width >= 1 and 0 < adv_weight <= 1; got {disc_width}, {adv_weight}.")
        self.generator = UNet25D(slices=slices, width=width, depth=depth, convs=convs)
        self.discriminator = PatchDiscriminator(disc_width)
        self.adv_weight = float(adv_weight)

    @property
    def trim_z(self) -> int:
        return self.generator.trim_z

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        return self.generator.receptive_radius

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        return self.generator.size_multiple

    def optimised_parameters(self):
        """The generator's: the discriminator has its own optimiser."""
        return self.generator.parameters()

    def parameter_count(self) -> int:
        """The generator's parameters (what predicts; the discriminator only trains)."""
        return self.generator.parameter_count()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x)

    def condition_pairs(self, x: torch.Tensor, hres: torch.Tensor) -> torch.Tensor:
        """The discriminator's input: each output slice of ``hres`` ``(b, z, y, x)`` beside its
        pre-upsampled LRES slice from the input block ``x``, as ``(b * z, 2, y, x)``."""
        t, n = self.trim_z, hres.shape[1]
        cond = x[:, t : t + n].to(hres.dtype)
        return torch.stack([cond, hres], dim=2).flatten(0, 1)
