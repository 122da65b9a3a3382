"""Training losses: L1, MSE, the MS-SSIM + L1 mix of Zhao et al. (2017), and MSE + SSIM.

The (MS-)SSIM here is a differentiable, slice-wise (2D) version for small training
patches: valid Gaussian windows (11 taps, sigma 1.5) and, for MS-SSIM, as many
scales as the patch allows, with the standard weights renormalised. It is a loss,
not the measurement: :mod:`napari_resolve.measure.similarity` computes the reported numbers.

``mse+ssim`` is DFCAN's loss (Qiao et al. 2021), which the denoise-deblur-upscale chain
of Bizhani et al. 2022 (https://doi.org/10.1038/s41598-022-08170-8) trains its DFCAN with:
``MSE + w * (1 - SSIM)``, ``w = 0.1`` by default. The original rescales prediction
and target of each batch to [0, 1] first; here both are already normalised (the
HRES range is 1), so SSIM uses a data range of 1 and no batch-dependent rescaling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_resolve.errors import InputError
from napari_resolve.learn.config import LOSSES
from napari_resolve.measure.similarity import RADIUS as _RADIUS
from napari_resolve.measure.similarity import SIGMA as _SIGMA
from napari_resolve.measure.similarity import ms_ssim_scales, ms_ssim_weights

__all__ = ["LOSSES", "make_loss"]  # LOSSES: the names, defined in learn.config


def _gauss(device, dtype) -> torch.Tensor:
    x = torch.arange(-_RADIUS, _RADIUS + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (x / _SIGMA) ** 2)
    return g / g.sum()


def _band(n: int, g: torch.Tensor) -> torch.Tensor:
    """The (n - len(g) + 1, n) matrix of a valid 1D filtering with ``g``."""
    k = g.shape[0]
    return torch.stack([F.pad(g, (i, n - k - i)) for i in range(n - k + 1)])


def _blur(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Valid separable Gaussian filtering of (n, 1, y, x) slices.

    As two products with banded matrices rather than ``conv2d``: one-channel
    convolutions are slow on the CPU, and these products (forward and backward)
    are about 10x faster on training patches (36 x 36 slices), to float precision.
    """
    y, x = t.shape[-2:]
    return _band(y, g) @ t @ _band(x, g).T


def _slices(pred: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b, z, y, x = pred.shape
    return pred.reshape(b * z, 1, y, x).float(), ref.reshape(b * z, 1, y, x).float()


def _ssim_parts(p: torch.Tensor, r: torch.Tensor, g: torch.Tensor, data_range: float):
    """Luminance and contrast-structure maps of SSIM (valid Gaussian filtering)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mp, mr, pp, rr, pr = _blur(torch.cat([p, r, p * p, r * r, p * r]), g).chunk(5)  # one filtering for all five
    vp = pp - mp * mp
    vr = rr - mr * mr
    cov = pr - mp * mr
    cs = (2 * cov + c2) / (vp + vr + c2)
    lum = (2 * mp * mr + c1) / (mp * mp + mr * mr + c1)
    return lum, cs


def ssim_2d(pred: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM over the slices of two (batch, z, y, x) tensors (differentiable).

    Each slice's SSIM is the mean of its map over the voxels whose 11 x 11 window
    lies inside the slice: for one slice, the number
    :func:`napari_resolve.measure.similarity.ssim` reports.
    """
    _, _, y, x = pred.shape
    if min(y, x) <= 2 * _RADIUS:
        raise InputError(f"The SSIM loss needs patches larger than {2 * _RADIUS} voxels in y and x, got {y} x {x}.")
    p, r = _slices(pred, ref)
    lum, cs = _ssim_parts(p, r, _gauss(p.device, p.dtype), data_range)
    return (lum * cs).mean()


def ms_ssim_2d(pred: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0, *, shifted: bool = False
               ) -> torch.Tensor:
    """Mean MS-SSIM over the slices of two (batch, z, y, x) tensors (differentiable).

    With ``shifted`` every scale's term ``v`` (in [-1, 1]) enters as ``(v + 1) / 2``
    instead of ``max(v, 0)``: what the training loss uses. The clipped form is
    the measurement, but it has no gradient where a term is negative, so a
    network that starts anti-correlated with the target (one that predicts the
    image from random weights, e.g. SRCNN) could never leave that state.
    """
    _, _, y, x = pred.shape
    p, r = _slices(pred, ref)
    if min(y, x) <= 2 * _RADIUS:
        raise InputError(f"MS-SSIM loss needs patches larger than {2 * _RADIUS + 1} voxels in y and x, got {y} x {x}.")
    n = ms_ssim_scales((y, x))
    w = torch.tensor(ms_ssim_weights(n), device=p.device)
    g = _gauss(p.device, p.dtype)
    values = []
    for s in range(n):
        lum, cs = _ssim_parts(p, r, g, data_range)
        if s == n - 1:
            values.append((lum * cs).mean(dim=(1, 2, 3)))
        else:
            values.append(cs.mean(dim=(1, 2, 3)))
            p, r = F.avg_pool2d(p, 2), F.avg_pool2d(r, 2)
    # relu: negative means to a fractional power are undefined (NaN gradients).
    stacked = torch.stack([(v + 1) / 2 + 1e-8 if shifted else F.relu(v) + 1e-8 for v in values], dim=0)
    return torch.prod(stacked ** w[:, None], dim=0).mean()


def make_loss(name: str, msssim_weight: float = 0.84, ssim_weight: float = 0.1):
    """The loss function ``loss(pred, target) -> scalar tensor`` called ``name``.

    Parameters
    ----------
    name : {"l1", "mse", "l1+msssim", "mse+ssim"}
        ``l1+msssim`` is ``w * (1 - MS-SSIM) + (1 - w) * L1`` (Zhao et al.), with
        the MS-SSIM terms shifted to [0, 1] (see :func:`ms_ssim_2d`);
        ``mse+ssim`` is ``MSE + v * (1 - SSIM)`` (DFCAN).
    msssim_weight : float
        ``w`` above, 0 to 1.
    ssim_weight : float
        ``v`` above, at least 0 (DFCAN uses 0.1).

    Raises
    ------
    InputError
        For an unknown name or a weight out of range.
    """
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "l1+msssim":
        if not 0 <= msssim_weight <= 1:
            raise InputError(f"msssim_weight must be between 0 and 1, got {msssim_weight}.")

        def mix(pred, target):
            ms = ms_ssim_2d(pred, target, shifted=True)
            return msssim_weight * (1 - ms) + (1 - msssim_weight) * F.l1_loss(pred, target)

        return mix
    if name == "mse+ssim":
        if not 0 <= ssim_weight < float("inf"):
            raise InputError(f"ssim_weight must be 0 or more, got {ssim_weight}.")

        def mse_ssim(pred, target):
            return F.mse_loss(pred, target) + ssim_weight * (1 - ssim_2d(pred, target))

        return mse_ssim
    raise InputError(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
