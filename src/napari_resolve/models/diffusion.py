"""diffusion: a conditional denoising diffusion model, 2.5D, sampled with a few deterministic DDIM steps.

After Li 2025 (docs/references.md): the CT (LRES) slices are a fixed condition and only
the HRES channel is noised. Where it departs from the paper, and why: the paper predicts
the noise (L1) and samples all T steps ancestrally; on the CPU a prediction can afford a
handful of denoiser passes, so the network predicts v, whose x0 estimate stays well
posed at the pure-noise end where the noise prediction's divides by alpha -> 0, and a
deterministic DDIM sampler takes a few large steps. The model diffuses the *residual* of the HRES over
the pre-upsampled LRES centre slice (as SRDiff does), divided by ``scale`` so that
it is of the order of the unit noise. Per output slice the denoiser sees the
``slices`` neighbouring pre-upsampled LRES slices (the condition, as the 2.5D
U-Net does) beside the noisy residual, and the diffusion time through a
sinusoidal embedding that scales and shifts the features of every level (FiLM).

*Schedule*: variance preserving, cosine: ``z_t = alpha_t x0 + sigma_t eps`` with
``alpha_t = cos(pi t / 2)``, ``sigma_t = sin(pi t / 2)``, t in [0, 1].
*Training* (:meth:`Diffusion.denoising_loss`): the network predicts
``v = alpha_t eps - sigma_t x0`` (Salimans and Ho's v-parameterisation, well
behaved at both ends of the schedule, so few sampling steps suffice), mean squared
error at a uniform random t; the training loop's ``loss`` setting does not apply.
*Sampling* (:meth:`Diffusion.forward`): DDIM, deterministic, from t = 1 to 0 in
``steps`` equal steps; the start noise is a fixed function of the output voxel's
index in the whole output grid and of the sample number (:func:`voxel_noise`), so
neighbouring tiles draw the same noise where they overlap and a tile's result
does not depend on where the tiles fall beyond the denoiser's reach.

The denoiser's reach is :attr:`receptive_radius` per step; the whole sampler reaches
``steps`` times that in-plane. Tiled inference reads the one-step margin and
blends overlapping tiles (16 voxels by default), which with the shared noise field
keeps the seams below the sample-to-sample spread (tests/models/test_diffusion.py,
docs/comparison.md).

References
----------
.. [1] Ho J., Jain A., Abbeel P. (2020) Denoising diffusion probabilistic models. NeurIPS 33.
   https://arxiv.org/abs/2006.11239
.. [2] Song J., Meng C., Ermon S. (2021) Denoising diffusion implicit models. ICLR.
   https://arxiv.org/abs/2010.02502
.. [3] Salimans T., Ho J. (2022) Progressive distillation for fast sampling of diffusion models. ICLR
   (v-parameterisation). https://arxiv.org/abs/2202.00512
.. [4] Li H. et al. (2022) SRDiff: single image super-resolution with diffusion probabilistic models.
   Neurocomputing 479, 47-59 (residual diffusion). https://doi.org/10.1016/j.neucom.2022.01.029
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.learn.config import MAX_STEPS
from napari_resolve.models.base import ResolutionModel

#: Seed of the start-noise field (any fixed number: results are reproducible run to run).
NOISE_SEED = 20261207

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a bijective 64-bit hash (wrapping arithmetic on uint64)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def voxel_noise(shape, origin, sample: int, seed: int = NOISE_SEED) -> np.ndarray:
    """Standard normal noise that is a fixed function of each voxel's index (a counter-based generator).

    Parameters
    ----------
    shape : (int, int, int)
        The block (z, y, x).
    origin : (int, int, int)
        Index of the block's first voxel in the whole output grid (may be negative: margins).
    sample : int
        Sample number: each has its own field.
    seed : int

    Returns
    -------
    ndarray of float32
        A voxel gets the same value whichever block it is drawn in.
    """
    idx = [np.arange(o, o + n, dtype=np.int64).astype(np.uint64) for o, n in zip(origin, shape)]
    with np.errstate(over="ignore"):
        key = np.uint64(seed) * np.uint64(1_000_003) + np.uint64(sample)
        key = (key * np.uint64(1 << 20) + idx[0][:, None, None]) * np.uint64(1 << 21)
        key = (key + idx[1][None, :, None]) * np.uint64(1 << 21) + idx[2][None, None, :]
        h1, h2 = _splitmix64(key * np.uint64(2)), _splitmix64(key * np.uint64(2) + np.uint64(1))
    # 53-bit uniforms in (0, 1], then Box-Muller.
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the diffusion time t in [0, 1] (``(n,)`` -> ``(n, dim)``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half, 1))
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _TimeBlock(nn.Module):
    """3 x 3 convolutions; the time embedding scales and shifts the first one's features (FiLM)."""

    def __init__(self, c_in: int, c_out: int, convs: int, t_dim: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1) for i in range(convs))
        self.film = nn.Linear(t_dim, 2 * c_out)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(temb)[:, :, None, None].chunk(2, dim=1)
        x = self.convs[0](x)
        x = F.leaky_relu(x * (1 + scale) + shift, 0.1)
        for conv in self.convs[1:]:
            x = F.leaky_relu(conv(x), 0.1)
        return x


class Diffusion(ResolutionModel):
    """Conditional diffusion over the residual to the pre-upsampled LRES (see the module notes).

    Parameters
    ----------
    slices : int
        Odd number of neighbouring LRES slices in the condition.
    width, depth, convs : int
        The denoising U-Net: channels at full resolution (doubled per level), 2x poolings, convolutions per level.
    steps : int
        DDIM steps per sample (each one denoiser pass); a prediction may ask for another number.
    scale : float
        The residual (normalised grey values) is divided by this before it is noised.
    """

    name = "diffusion"
    #: Predictions are samples: ``forward`` takes where the block lies and which sample to draw.
    generative = True

    def __init__(self, slices: int = 5, width: int = 24, depth: int = 2, convs: int = 2, steps: int = 8,
                 scale: float = 0.5):
        super().__init__({"slices": slices, "width": width, "depth": depth, "convs": convs, "steps": steps,
                          "scale": scale})
        if slices < 1 or slices % 2 == 0:
            raise InputError(f"diffusion: slices must be an odd number >= 1, got {slices}.")
        if not 0 <= depth <= 4 or width < 2 or convs < 1:
            raise InputError(f"diffusion: need 0 <= depth <= 4, width >= 2, convs >= 1; got {depth}, {width}, {convs}.")
        if not 1 <= steps <= MAX_STEPS or not scale > 0:
            raise InputError(f"diffusion: need 1 <= steps <= {MAX_STEPS} and scale > 0; got {steps}, {scale}.")
        self.slices, self.depth, self.convs, self.steps, self.scale = slices, depth, convs, int(steps), float(scale)
        widths = [width * 2**level for level in range(depth + 1)]
        self.t_dim = 2 * (width // 2)
        self.t_mlp = nn.Sequential(nn.Linear(self.t_dim, self.t_dim), nn.SiLU(), nn.Linear(self.t_dim, self.t_dim))
        self.down = nn.ModuleList()
        c = slices + 1  # the condition slices and the noisy residual
        for w in widths[:-1]:
            self.down.append(_TimeBlock(c, w, convs, self.t_dim))
            c = w
        self.bottom = _TimeBlock(c, widths[-1], convs, self.t_dim)
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w_low, w_skip, 3, padding=1))
            for w_skip, w_low in zip(reversed(widths[:-1]), reversed(widths[1:]))
        )
        self.merge = nn.ModuleList(_TimeBlock(2 * w, w, convs, self.t_dim) for w in reversed(widths[:-1]))
        self.head = nn.Conv2d(widths[0], 1, 1)

    @property
    def trim_z(self) -> int:
        return self.slices // 2

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # One denoiser pass, counted like the 2.5D U-Net's (see the module notes for the sampler's reach).
        r = sum(2 * self.convs * 2**lv + 3 * 2**lv for lv in range(self.depth)) + self.convs * 2**self.depth
        return (0, r, r)

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        return (1, 2**self.depth, 2**self.depth)

    # ------------------------------------------------------------------ the denoiser

    def _stacks(self, x: torch.Tensor) -> torch.Tensor:
        """(b, z, y, x) -> (b * n, slices, y, x), checked."""
        b, z, y, w = x.shape
        n, m = z - 2 * self.trim_z, 2**self.depth
        if n < 1:
            raise InputError(f"diffusion needs at least {2 * self.trim_z + 1} slices per block, got {z}.")
        if y % m or w % m:
            raise InputError(f"diffusion with depth {self.depth} needs y and x multiples of {m}, got {y} x {w}.")
        return x.unfold(1, self.slices, 1).permute(0, 1, 4, 2, 3).reshape(b * n, self.slices, y, w)

    def denoise(self, cond: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The predicted v for noisy residuals ``z_t`` ``(n, 1, y, x)`` at times ``t`` ``(n,)`` given ``cond``
        ``(n, slices, y, x)``."""
        temb = self.t_mlp(time_embedding(t, self.t_dim).to(cond.dtype))
        x = torch.cat([cond, z_t.to(cond.dtype)], dim=1)
        skips = []
        for block in self.down:
            x = block(x, temb)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x, temb)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1), temb)
        return self.head(x)

    @staticmethod
    def _schedule(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)

    def denoising_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch: mean squared error of v at a random time per output slice.

        Parameters
        ----------
        x : Tensor, (batch, z, y, x)
            Pre-upsampled LRES blocks (normalised).
        y : Tensor, (batch, z - 2 * trim_z, y, x)
            Their HRES (normalised).
        """
        cond = self._stacks(x)
        centre = cond[:, self.slices // 2 : self.slices // 2 + 1]
        x0 = (y.reshape(centre.shape).to(centre.dtype) - centre) / self.scale
        t = torch.rand(len(x0), device=x.device)
        eps = torch.randn_like(x0)
        a, s = (v[:, None, None, None] for v in self._schedule(t))
        v_hat = self.denoise(cond, a * x0 + s * eps, t)
        return F.mse_loss(v_hat.float(), (a * eps - s * x0).float())

    def forward(self, x: torch.Tensor, origin=(0, 0, 0), sample: int = 0) -> torch.Tensor:
        """One sample of the HRES for the central slices of ``x`` (``(b, z, y, x)`` -> ``(b, z - 2 trim_z, y, x)``).

        ``origin`` is the output-grid index of the first output voxel (z) and of the block's first in-plane
        voxel (y, x); with ``sample`` it fixes the start noise (:func:`voxel_noise`).
        """
        b, z, h, w = x.shape
        cond = self._stacks(x)
        n = z - 2 * self.trim_z
        noise = np.stack([voxel_noise((n, h, w), origin, sample + 1_000 * k) for k in range(b)])
        z_t = torch.from_numpy(noise).to(x.device).reshape(b * n, 1, h, w)
        times = torch.linspace(1.0, 0.0, self.steps + 1, device=x.device)
        for t, t_next in zip(times[:-1], times[1:]):
            a, s = self._schedule(t)
            v = self.denoise(cond, z_t, t.expand(len(z_t))).float()
            x0, eps = a * z_t - s * v, s * z_t + a * v
            a_next, s_next = self._schedule(t_next)
            z_t = a_next * x0 + s_next * eps
        centre = cond[:, self.slices // 2 : self.slices // 2 + 1].float()
        return (centre + self.scale * z_t).reshape(b, n, h, w).to(x.dtype)
