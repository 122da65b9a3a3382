"""Training losses: L1, and the MS-SSIM + L1 mix of Zhao et al. (2017).

The MS-SSIM here is a differentiable, slice-wise (2D) version for small training
patches: valid Gaussian windows (11 taps, sigma 1.5) and as many scales as the
patch allows, with the standard weights renormalised. It is a loss, not the
measurement: :mod:`napari_resolve.quality` computes the reported numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_resolve.errors import InputError

LOSSES = ("l1", "mse", "l1+msssim")
_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_RADIUS = 5


def _gauss(device, dtype) -> torch.Tensor:
    x = torch.arange(-_RADIUS, _RADIUS + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (x / 1.5) ** 2)
    return g / g.sum()


def _blur(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    t = F.conv2d(t, g.view(1, 1, 1, -1))
    return F.conv2d(t, g.view(1, 1, -1, 1))


def ms_ssim_2d(pred: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean MS-SSIM over the slices of two (batch, z, y, x) tensors (differentiable)."""
    b, z, y, x = pred.shape
    p = pred.reshape(b * z, 1, y, x).float()
    r = ref.reshape(b * z, 1, y, x).float()
    side = min(y, x)
    n = max(k for k in range(1, 6) if side > 2 * _RADIUS * 2 ** (k - 1)) if side > 2 * _RADIUS else 0
    if n == 0:
        raise InputError(f"MS-SSIM loss needs patches larger than {2 * _RADIUS + 1} voxels in y and x, got {y} x {x}.")
    w = torch.tensor(_WEIGHTS[:n], device=p.device)
    w = w / w.sum()
    g = _gauss(p.device, p.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for s in range(n):
        mp, mr = _blur(p, g), _blur(r, g)
        vp = _blur(p * p, g) - mp * mp
        vr = _blur(r * r, g) - mr * mr
        cov = _blur(p * r, g) - mp * mr
        cs = (2 * cov + c2) / (vp + vr + c2)
        if s == n - 1:
            lum = (2 * mp * mr + c1) / (mp * mp + mr * mr + c1)
            values.append((lum * cs).mean(dim=(1, 2, 3)))
        else:
            values.append(cs.mean(dim=(1, 2, 3)))
            p, r = F.avg_pool2d(p, 2), F.avg_pool2d(r, 2)
    # relu: negative means to a fractional power are undefined (NaN gradients).
    stacked = torch.stack([F.relu(v) + 1e-8 for v in values], dim=0)
    return torch.prod(stacked ** w[:, None], dim=0).mean()


def make_loss(name: str, msssim_weight: float = 0.84):
    """The loss function ``loss(pred, target) -> scalar tensor`` called ``name``.

    Parameters
    ----------
    name : {"l1", "mse", "l1+msssim"}
        ``l1+msssim`` is ``w * (1 - MS-SSIM) + (1 - w) * L1`` (Zhao et al.).
    msssim_weight : float
        ``w`` above, 0 to 1.
    """
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "l1+msssim":
        if not 0 <= msssim_weight <= 1:
            raise InputError(f"msssim_weight must be between 0 and 1, got {msssim_weight}.")

        def mix(pred, target):
            return msssim_weight * (1 - ms_ssim_2d(pred, target)) + (1 - msssim_weight) * F.l1_loss(pred, target)

        return mix
    raise InputError(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
