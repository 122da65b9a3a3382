"""DFCAN, the deep Fourier channel attention network (Qiao et al. 2021).

The network Bizhani et al. 2022 (docs/references.md;
https://doi.org/10.1038/s41598-022-08170-8) chose for super-resolution
(as good as EDSR and WDSR with far fewer parameters), trained there with MSE plus
a weighted SSIM term (the ``mse+ssim`` loss of :mod:`napari_resolve.learn.losses`).

Structure: a head convolution (GELU), ``groups`` residual groups of ``blocks``
Fourier channel attention blocks (FCAB) each, a convolution (GELU) and an output
convolution. An FCAB is ``conv3x3 - GELU - conv3x3 - GELU``, its features
re-weighted per channel by a Fourier channel attention, added back to its input.
The attention looks at the amplitude spectrum of each feature map (2D FFT,
compressed, zero frequency in the centre), convolves it (3x3, ReLU), averages it
over all frequencies, and turns the per-channel averages into weights in (0, 1)
with a squeeze-and-excitation pair of 1x1 convolutions (ReLU, sigmoid).

Here, as for the other networks, DFCAN works slice by slice on the pre-upsampled
LRES and predicts the difference to it (no pixel shuffle, no output sigmoid), and
its output convolution starts at zero, so an untrained DFCAN is the identity.
The spectrum is compressed with ``log(1 + |F|)`` of the orthonormal FFT
(the original uses ``|F| ** 0.8``): bounded gradients, and an average over
frequencies that hardly depends on the image size for a stationary texture.

Tiling. The attention is *global*: its weights depend on every voxel of the slice
the network is given, through the FFT and the average, so no finite receptive
radius exists and tiled inference cannot equal a whole-volume pass exactly.
:attr:`DFCAN.receptive_radius` is the reach of the convolutions alone (what a tile
margin must cover so that no kept voxel sees a tile edge's zero padding), and
:attr:`DFCAN.global_context` says that the rest of the tile matters as well,
through a few per-channel weights. What that changes is small and smooth: every
tile re-weights the same features with slightly different channel weights, and
overlapping tiles are blended, so the result shows no hard seams; its size is
measured in ``tests/test_inference.py`` and discussed in ``docs/learning.md``.
The network was trained on patches, i.e. on attention averages over one patch,
and larger tiles give steadier averages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.models.base import ResolutionModel


class FourierChannelAttention(nn.Module):
    """Per-channel weights from the amplitude spectra of the feature maps."""

    def __init__(self, features: int, reduction: int):
        super().__init__()
        squeeze = max(1, features // reduction)
        self.spectrum = nn.Conv2d(features, features, 3, padding=1)
        self.down = nn.Conv2d(features, squeeze, 1)
        self.up = nn.Conv2d(squeeze, features, 1)

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        """(n, features, 1, 1) channel weights in (0, 1) for features ``h``."""
        # cuFFT has no bfloat16 and half precision only for powers of 2: the
        # transform runs in float32 whatever autocast would choose.
        with torch.autocast(h.device.type, enabled=False):
            # A real input's spectrum is symmetric: the half rfft2 returns is all of it.
            spec = torch.fft.rfft2(h.float(), norm="ortho")
            amp = torch.fft.fftshift(torch.log1p(spec.abs()), dim=-2)
        stats = F.relu(self.spectrum(amp)).mean(dim=(-2, -1), keepdim=True)
        return torch.sigmoid(self.up(F.relu(self.down(stats))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.weights(h).to(h.dtype)


class FCAB(nn.Module):
    """Fourier channel attention block: ``x + FCA(GELU(conv(GELU(conv(x)))))``."""

    def __init__(self, features: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(features, features, 3, padding=1),
            nn.GELU(),
        )
        self.attention = FourierChannelAttention(features, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.body(x))


class _Group(nn.Module):
    """Residual group: FCABs with a skip over all of them (as in DFCAN)."""

    def __init__(self, blocks: int, features: int, reduction: int):
        super().__init__()
        self.blocks = nn.Sequential(*[FCAB(features, reduction) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.blocks(x)


class DFCAN(ResolutionModel):
    """DFCAN on every z slice, residual over the upsampled LRES.

    Parameters
    ----------
    groups : int
        Residual groups (4 in the original).
    blocks : int
        Fourier channel attention blocks per group (4 in the original).
    features : int
        Feature channels (64 in the original; kept small here for the CPU).
    reduction : int
        Squeeze factor of the attention's 1x1 convolutions (16 in the original,
        whose 64 channels it squeezes to 4; 4 does the same for 16 channels).
    """

    name = "dfcan"
    #: The output depends on the whole input slice (see the module docstring):
    #: tiled inference is close to, not equal to, a whole-volume pass.
    global_context = True

    def __init__(self, groups: int = 3, blocks: int = 3, features: int = 16, reduction: int = 4):
        super().__init__({"groups": groups, "blocks": blocks, "features": features, "reduction": reduction})
        bad = {k: v for k, v in self.config.items() if not v >= 1}
        if bad:
            raise InputError(f"dfcan: {', '.join(bad)} must be at least 1, got {bad}.")
        self.n_convs = 2 * groups * blocks + 3
        self.head = nn.Sequential(nn.Conv2d(1, features, 3, padding=1), nn.GELU())
        self.groups = nn.Sequential(*[_Group(blocks, features, reduction) for _ in range(groups)])
        self.tail = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.GELU())
        self.out = nn.Conv2d(features, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # The convolutions' reach only (head, 2 per FCAB, tail, output: 3x3 each);
        # the Fourier attention adds a global, per-channel dependence on the tile.
        return (0, self.n_convs, self.n_convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, z, y, w = x.shape
        h = self.head(x.reshape(b * z, 1, y, w))
        h = self.out(self.tail(self.groups(h)))
        return x + h.reshape(b, z, y, w)
