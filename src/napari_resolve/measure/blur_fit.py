"""The Gaussian blur fit: which Gaussian, applied to a reference, best reproduces a test image?

Two measurements ask that question and share this code:

* :func:`napari_resolve.measure.resolution.gaussian_resolution`, the effective
  resolution of a result against a sharper reference (the Gaussian fit of
  DeepNet 2024, section 2.5.1, https://doi.org/10.1515/mim-2024-0017): the
  FWHM of the best Gaussian says how much blurrier the result is;
* :func:`napari_resolve.measure.baselines.estimate_psf_sigma`, the PSF of the
  upsampled LRES relative to the registered HRES, which Richardson-Lucy then
  deconvolves.

:class:`BlurFit` holds a test image and its reference, cropped to a central
block away from the edges (:func:`fit_boxes`), and returns the residual of any
sigma; :meth:`BlurFit.scan` searches a grid of isotropic sigmas and refines the
best one. Sigmas are standard deviations in um on every axis; a Gaussian's FWHM
is :data:`FWHM_PER_SIGMA` times its sigma. No torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, special

from napari_resolve.errors import InputError

__all__ = ["FWHM_PER_SIGMA", "PSF_FIT_VOXELS", "BlurFit", "BlurScan", "default_max_sigma", "discrete_gaussian",
           "fit_boxes"]

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2). The one definition: resolution and baselines import it.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: The fit compares at most this many voxels (a central crop): a 64^3 block
#: holds thousands of edges, plenty to pin down one number.
PSF_FIT_VOXELS = 64**3

#: Gaussian tails beyond this many sigmas are ignored when choosing the margin
#: around the fitted region (exp(-4.5) of the peak: no measurable bias).
_MARGIN_SIGMAS = 3.0


def discrete_gaussian(src: np.ndarray, sigma_vox, out: np.ndarray) -> None:
    """Blur ``src`` into ``out`` with Lindeberg's discrete Gaussian (``mode="nearest"``).

    The kernel ``exp(-t) I_n(t)`` (``t = sigma**2``, ``I_n`` the modified Bessel
    function) has variance exactly ``sigma**2`` voxels^2 for every sigma and
    tends smoothly to the identity as sigma goes to 0. scipy's sampled Gaussian
    does neither below about half a voxel (at sigma 0.3 its variance is under a tenth
    of sigma**2, at 0.2 its off-centre taps are 4e-6), so the fit could not tell 0 from 0.2 voxel and the
    MSE curve would have a flat foot.
    """
    sigma_vox = np.broadcast_to(np.asarray(sigma_vox, dtype=float), (src.ndim,))
    current = src
    for axis, s in enumerate(sigma_vox):
        if s <= 0 or src.shape[axis] == 1:
            continue
        radius = math.ceil(4.0 * s + 1.0)
        kernel = special.ive(np.arange(-radius, radius + 1), s * s)
        # Filtering ``out`` into itself is safe: scipy filters each line through a buffer.
        ndimage.correlate1d(current, kernel / kernel.sum(), axis=axis, output=out, mode="nearest")
        current = out
    if current is src:
        out[...] = src


@dataclass(frozen=True)
class BlurScan:
    """The outcome of :meth:`BlurFit.scan`: the best isotropic sigma and the curve that found it.

    Attributes
    ----------
    sigma_um : float
        The best sigma (um).
    mse : float
        The residual there (squared grey values of the test image).
    gain, offset : float
        ``test ~ gain * blurred + offset`` at the optimum (1 and 0 without a contrast fit).
    curve_sigma_um, curve_mse : tuple of float
        Every sigma evaluated (um, ascending) and its residual.
    at_limit : bool
        The optimum is the widest sigma searched: the blur may be wider.
    """

    sigma_um: float
    mse: float
    gain: float
    offset: float
    curve_sigma_um: tuple[float, ...]
    curve_mse: tuple[float, ...]
    at_limit: bool


class BlurFit:
    """Mean squared difference between a test image and the Gaussian-blurred reference.

    Shared by :func:`napari_resolve.measure.baselines.estimate_psf_sigma` and
    :func:`napari_resolve.measure.resolution.gaussian_resolution` (the paper's Gaussian-fit
    effective resolution), which ask the same question: which Gaussian, applied to
    ``reference``, best reproduces ``test``?

    Parameters
    ----------
    test, reference : ndarray of float32
        Validated arrays of the same shape.
    voxel : ndarray of float
        Voxel size per axis (um).
    max_sigma_um : float
        The widest sigma that will be asked for; sets the margin blurred around
        the compared block (:func:`fit_boxes`).
    fit_contrast : bool
        Fit ``gain`` and ``offset`` by least squares at every sigma (two scans
        differ in contrast); otherwise compare the grey values as they are.
    blur : callable, optional
        ``blur(src, sigma_vox, output)``; default scipy's sampled Gaussian with
        ``mode="nearest"``.
    test_constant, ref_constant : str
        The InputError messages for a constant test image / blurred reference.
    """

    def __init__(
        self,
        test: np.ndarray,
        reference: np.ndarray,
        voxel: np.ndarray,
        max_sigma_um: float,
        *,
        fit_contrast: bool = True,
        blur=None,
        test_constant: str,
        ref_constant: str,
    ):
        self.voxel = np.asarray(voxel, dtype=float)
        self.fit_contrast = fit_contrast
        self.blur = blur or (lambda src, s, out: ndimage.gaussian_filter(src, s, mode="nearest", output=out))
        self.ref_constant = ref_constant
        blur_box, self.inner = fit_boxes(test.shape, self.voxel, max_sigma_um)
        self.ref_crop = reference[blur_box]
        target = test[blur_box][self.inner].astype(np.float64)
        self.t_mean = float(target.mean())
        target -= self.t_mean  # centred once: each fit then only centres the blurred reference
        self.target = target
        self.t_var = float(np.mean(target**2))
        if self.t_var <= 0:
            raise InputError(test_constant)
        self.blurred = np.empty_like(self.ref_crop)
        self.max_sigma_um = float(max_sigma_um)

    def __call__(self, sigma_um) -> tuple[float, float, float]:
        """(mse, gain, offset) at ``sigma_um`` (one number, or one per axis)."""
        self.blur(self.ref_crop, np.asarray(sigma_um, dtype=float) / self.voxel, self.blurred)
        b = self.blurred[self.inner].astype(np.float64)
        b_mean = float(b.mean())
        b -= b_mean
        b_var = float(np.mean(b**2))
        if b_var <= 0:
            raise InputError(self.ref_constant)
        cov = float(np.mean(b * self.target))
        if not self.fit_contrast:
            # Plain MSE, split into its centred part and the difference of the means.
            mse = max(self.t_var - 2.0 * cov + b_var, 0.0) + (self.t_mean - b_mean) ** 2
            return mse, 1.0, 0.0
        gain = cov / b_var
        # Residual variance of the least-squares line target ~ gain * b + offset.
        mse = max(self.t_var - cov * gain, 0.0)
        offset = float(self.t_mean) - gain * b_mean
        return mse, gain, offset

    def scan(self, sigmas) -> BlurScan:
        """Evaluate a grid of isotropic sigmas (um, ascending), then refine its best point.

        A bounded scalar minimisation searches between the grid's neighbours of
        the best point; a grid point that is better is kept. ``at_limit`` says
        the optimum is the last grid point (the blur may be wider than searched).
        """
        sigmas = [float(s) for s in sigmas]
        errors = [self(s)[0] for s in sigmas]
        best = int(np.argmin(errors))
        lo = sigmas[max(best - 1, 0)]
        hi = sigmas[min(best + 1, len(sigmas) - 1)]
        res = optimize.minimize_scalar(
            lambda s: self(float(s))[0],
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-3 * float(self.voxel.min())},
        )
        # The bounded search never evaluates its bounds: keep a grid point that is better.
        sigma = float(res.x) if float(res.fun) <= errors[best] else float(sigmas[best])
        mse, gain, offset = self(sigma)
        at_limit = best == len(sigmas) - 1 and sigma >= sigmas[-1] * (1 - 1e-3)
        curve = sorted({**{float(s): e for s, e in zip(sigmas, errors)}, sigma: mse}.items())
        return BlurScan(
            sigma_um=sigma,
            mse=float(mse),
            gain=float(gain),
            offset=float(offset),
            curve_sigma_um=tuple(s for s, _ in curve),
            curve_mse=tuple(e for _, e in curve),
            at_limit=at_limit,
        )


def default_max_sigma(shape, voxel: np.ndarray) -> float:
    """Widest sigma searched by default (um): 8 voxels of the largest voxel size, at most a
    quarter of the smallest extent of the volume (axes of one voxel do not count)."""
    extent = [n * v for n, v in zip(shape, voxel) if n > 1] or [float(voxel.max())]
    return min(8.0 * float(voxel.max()), 0.25 * min(extent))


def fit_boxes(shape, voxel: np.ndarray, max_sigma_um: float) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The block to blur and, inside it, the central block to compare.

    The compared block keeps a margin of three of the widest sigmas from the volume
    edges where the volume is large enough, at least a third of each axis (and 8
    voxels) otherwise, and is a central crop of at most :data:`PSF_FIT_VOXELS`.
    """
    ndim = len(shape)
    margin = [math.ceil(_MARGIN_SIGMAS * max_sigma_um / v) for v in voxel]
    avail = []
    for n, m in zip(shape, margin):
        keep = min(n, max(8, n // 3))
        avail.append(max(n - 2 * m, keep))
    # Central crop within the budget: short axes first, the rest share what is left.
    lengths = [0] * ndim
    budget = float(PSF_FIT_VOXELS)
    order = sorted(range(ndim), key=lambda a: avail[a])
    for k, ax in enumerate(order):
        side = budget ** (1.0 / (ndim - k))
        lengths[ax] = max(1, min(avail[ax], int(side)))
        budget /= lengths[ax]
    inner_abs = [((n - L) // 2, (n - L) // 2 + L) for n, L in zip(shape, lengths)]
    blur_box = tuple(slice(max(a - m, 0), min(b + m, n)) for (a, b), m, n in zip(inner_abs, margin, shape))
    inner = tuple(slice(a - s.start, b - s.start) for (a, b), s in zip(inner_abs, blur_box))
    return blur_box, inner
