"""Classical baselines to show beside the learned model: interpolation and Richardson-Lucy.

A learned upscaling is only worth its training if it beats what needs no training.
DeepNet 2024 (https://doi.org/10.1515/mim-2024-0017) compares its network with two
classical references, which this module provides on the same output grid as the model:

* **interpolation** of the LRES onto an HRES-sized grid (linear or cubic B-spline)
  through :func:`napari_resolve.geometry.grid.resample_lres`, which reads only the
  LRES voxels the grid needs;
* **Richardson-Lucy deconvolution** (RL; Richardson 1972, https://doi.org/10.1364/JOSA.62.000055;
  Lucy 1974, https://doi.org/10.1086/111605) of the cubic interpolation with a Gaussian
  PSF, given (``psf_sigma_um``) or estimated from the registered HRES by
  :func:`estimate_psf_sigma` (:mod:`napari_resolve.measure.blur_fit`): the blur of the
  LRES *relative to the HRES*, so RL aims at the HRES sharpness, as the model does.

Jobs are planned, then run: :func:`plan_baseline` checks everything on the caller's
thread, :func:`iter_baseline` yields :class:`~napari_resolve.jobs.Progress` records
and returns a :class:`BaselineResult`, :func:`run_baseline` drains it
(:func:`iter_richardson_lucy` / :func:`run_richardson_lucy` likewise, checked when called).
PSF widths are standard deviations in um (``*_um``) unless the name says voxels
(``sigma_vox``); a Gaussian's FWHM is ``2.3548 * sigma``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from napari_resolve._validate import as_image, same_shape, voxel_tuple
from napari_resolve.errors import InputError, ResolveWarning
from napari_resolve.geometry.grid import Grid, resample_lres
from napari_resolve.jobs import Progress, drain, forward
from napari_resolve.measure.blur_fit import FWHM_PER_SIGMA, PSF_FIT_VOXELS, BlurFit, default_max_sigma  # noqa: F401

# The blur fit moved to blur_fit.py (shared with resolution.py); its old private names stay here.
from napari_resolve.measure.blur_fit import BlurFit as _BlurFit  # noqa: F401
from napari_resolve.measure.blur_fit import BlurScan as _Scan  # noqa: F401
from napari_resolve.measure.blur_fit import default_max_sigma as _default_max_sigma  # noqa: F401
from napari_resolve.measure.blur_fit import fit_boxes as _fit_boxes  # noqa: F401

__all__ = [
    "METHODS",
    "BaselineProgress",
    "BaselinePlan",
    "BaselineResult",
    "PsfFit",
    "estimate_psf_sigma",
    "interpolate",
    "iter_baseline",
    "iter_richardson_lucy",
    "plan_baseline",
    "run_baseline",
    "run_richardson_lucy",
]

#: Baseline methods of :func:`iter_baseline`.
METHODS = ("linear", "cubic", "rl")

#: Spline order of each interpolation method.
_ORDERS = {"linear": 1, "cubic": 3}

#: Default number of Richardson-Lucy iterations. RL sharpens and amplifies noise
#: as it goes. On the foam phantom (``make_phantom(48, 3)``, cubic 13.75 dB) the
#: PSNR against the truth peaks at 10 iterations (15.71 dB; 20: 15.51, 60: 14.40);
#: with 10x more photons it still rises at 60 (18.1 dB), with 4x fewer it peaks
#: at 5. Ten is a safe middle; the paper's 30 suit cleaner data.
DEFAULT_ITERATIONS = 10

#: Points of the coarse sigma grid of the PSF fit (including sigma 0).
_COARSE_POINTS = 17

#: Percentiles read on at most this many voxels (an evenly strided subset).
_PERCENTILE_VOXELS = 4_000_000


# ------------------------------------------------------------------- records


#: The records this module's generators yield (step, total, message).
BaselineProgress = Progress


@dataclass(frozen=True)
class PsfFit:
    """The Gaussian PSF that best explains an upsampled LRES given the HRES.

    Attributes
    ----------
    sigma_um : float
        Standard deviation of the isotropic Gaussian (um), relative to the
        reference: ``upsampled ~ gain * G_sigma(reference) + offset``.
    fwhm_um : float
        Its full width at half maximum, ``2.3548 * sigma_um`` (um).
    curve_sigma_um : tuple of float
        The sigmas tried (um), ascending: the coarse grid plus the refined optimum.
    curve_mse : tuple of float
        The mean squared residual of the gain/offset fit at each sigma, in squared
        units of the upsampled image; its minimum is at ``sigma_um``.
    gain, offset : float
        Contrast map from the blurred reference to the upsampled image at the optimum.
    """

    sigma_um: float
    fwhm_um: float
    curve_sigma_um: tuple[float, ...]
    curve_mse: tuple[float, ...]
    gain: float
    offset: float

    def to_dict(self) -> dict:
        """JSON-friendly copy (lists instead of tuples)."""
        return {
            "sigma_um": self.sigma_um,
            "fwhm_um": self.fwhm_um,
            "curve_sigma_um": list(self.curve_sigma_um),
            "curve_mse": list(self.curve_mse),
            "gain": self.gain,
            "offset": self.offset,
        }


@dataclass(frozen=True, eq=False)
class BaselineResult:
    """The output of :func:`iter_baseline` / :func:`run_baseline`.

    Attributes
    ----------
    data : ndarray of float32
        The baseline on ``grid`` (shape ``grid.shape``).
    grid : Grid
        Where the voxels lie: in napari, ``translate=grid.origin_um``,
        ``scale=grid.voxel_um``.
    method : str
        One of :data:`METHODS`.
    psf : PsfFit or None
        The estimated PSF, when RL estimated it from a reference.
    psf_sigma_um : tuple of float or None
        The PSF sigma per axis (um) RL used; None for interpolation.
    iterations : int
        RL iterations run (0 for interpolation).
    seconds : float
        Wall-clock time of the job, including any time its consumer spent
        between records.
    """

    data: np.ndarray
    grid: Grid
    method: str
    psf: PsfFit | None
    psf_sigma_um: tuple[float, ...] | None
    iterations: int
    seconds: float

    def to_dict(self) -> dict:
        """JSON-friendly description of everything but the data."""
        return {
            "method": self.method,
            "grid": self.grid.to_dict(),
            "psf": None if self.psf is None else self.psf.to_dict(),
            "psf_sigma_um": None if self.psf_sigma_um is None else list(self.psf_sigma_um),
            "iterations": self.iterations,
            "seconds": self.seconds,
        }


# ------------------------------------------------------------- interpolation


def interpolate(lres, lres_voxel_um, grid: Grid, method: str = "cubic") -> np.ndarray:
    """Interpolate the LRES onto ``grid`` (the simplest baseline).

    Parameters
    ----------
    lres : array-like
        The LRES, 2D (y, x) or 3D (z, y, x); numpy, zarr or any lazily sliced
        array (only the voxels the grid needs are read).
    lres_voxel_um : float or sequence of float
        LRES voxel size (um).
    grid : Grid
        Output voxels, in the LRES frame (e.g. from
        :func:`napari_resolve.grid.upscale_grid`).
    method : {"linear", "cubic"}
        Linear (spline order 1) or cubic B-spline (order 3) interpolation.

    Returns
    -------
    ndarray of float32
        Shape ``grid.shape``. Positions outside the LRES take the edge value.

    Raises
    ------
    InputError
        For an unknown method, or an LRES whose dimensions do not match the grid.
    VoxelSizeError
        If the voxel size is missing or invalid.
    """
    order = _ORDERS.get(method) if isinstance(method, str) else None
    if order is None:
        raise InputError(
            f"Unknown interpolation method {method!r}; choose one of {', '.join(map(repr, _ORDERS))}."
        )
    _check_grid(grid, lres)
    return resample_lres(lres, lres_voxel_um, grid, order=order)


def _check_grid(grid, lres) -> None:
    if not isinstance(grid, Grid):
        raise InputError(
            f"grid must be a napari_resolve.grid.Grid, got {type(grid).__name__}; "
            "make one with upscale_grid(...) or Grid(shape, voxel_um, origin_um)."
        )
    ndim = len(getattr(lres, "shape", ()))
    if ndim not in (2, 3):
        raise InputError(
            f"The LRES must be a 2D (y, x) image or a 3D (z, y, x) volume, got shape "
            f"{getattr(lres, 'shape', None)}. Remove channel or time axes first."
        )
    if grid.ndim != ndim:
        raise InputError(
            f"The output grid has {grid.ndim} axes (shape {grid.shape}) but the LRES has "
            f"{ndim}; make the grid from an ROI of this LRES."
        )


# ------------------------------------------------------------------ PSF fit


def estimate_psf_sigma(upsampled, reference, voxel_um, *, max_sigma_um=None) -> PsfFit:
    """Fit the Gaussian PSF that turns the registered HRES into the upsampled LRES.

    Finds the isotropic (in um) standard deviation ``sigma`` minimising the mean
    squared difference between ``upsampled`` and ``gain * G_sigma(reference) +
    offset``, where ``G_sigma`` is a Gaussian filter of ``sigma / voxel_um`` voxels
    per axis and ``gain``, ``offset`` are fitted by least squares at every sigma
    (two scans have different contrast). A coarse grid of sigmas from 0 to
    ``max_sigma_um`` locates the minimum, and a bounded scalar minimisation
    refines it between the grid's neighbours of the best point.

    The result is the LRES blur *relative to the HRES* (the HRES's own blur is
    already in the reference), which is the PSF a deconvolution of the upsampled
    LRES should undo to reach the HRES. It is also the "Gaussian fit" measure of
    effective resolution of DeepNet 2024 (https://doi.org/10.1515/mim-2024-0017).

    Parameters
    ----------
    upsampled : array-like
        The LRES interpolated (cubic) onto the reference's grid, 2D or 3D.
    reference : array-like
        The registered HRES on exactly the same voxels.
    voxel_um : float or sequence of float
        Voxel size of that grid (um), one number or one per axis; anisotropic
        voxels get a sigma of ``sigma_um / voxel_um[axis]`` voxels on each axis.
    max_sigma_um : float, optional
        Largest sigma searched (um). Default: 8 voxels of the largest voxel size
        (a ratio-8 LRES with a half-voxel PSF is about 5 HRES voxels), at most a
        quarter of the smallest extent of the volume.

    Returns
    -------
    PsfFit

    Raises
    ------
    InputError
        If the arrays are unusable or differ in shape, either has no contrast, or
        ``max_sigma_um`` is not positive.
    VoxelSizeError
        If the voxel size is missing or invalid.

    Warns
    -----
    ResolveWarning
        If the best sigma is the largest one searched: the blur is wider than the
        search range, or the two arrays do not show the same structures (check the
        registration).

    Notes
    -----
    Volumes larger than :data:`PSF_FIT_VOXELS` are compared on a central crop of
    that size. The reference is blurred over the crop plus a margin of three
    sigmas (the largest searched) where the volume allows it, and only the crop
    is compared, so the replicated edges of the blur do not bias the fit.
    """
    up = as_image(upsampled, "the upsampled LRES")
    ref = as_image(reference, "the reference (registered HRES)")
    same_shape(up, ref, ("the upsampled LRES", "the reference (registered HRES)"))
    voxel = np.array(voxel_tuple(voxel_um, up.ndim, "voxel size"))
    if max_sigma_um is None:
        max_sigma = default_max_sigma(up.shape, voxel)
    else:
        max_sigma = _number(max_sigma_um, "max_sigma_um")
        if max_sigma <= 0:
            raise InputError(f"max_sigma_um must be a positive length in um, got {max_sigma_um!r}.")

    fitter = BlurFit(
        up,
        ref,
        voxel,
        max_sigma,
        test_constant="The upsampled LRES is constant over the fitted region: there is no structure "
        "to estimate a PSF from. Check that the right region was chosen.",
        ref_constant="The reference (registered HRES) is constant over the fitted region: "
        "there is no structure to estimate a PSF from. Check the registration.",
    )
    scan = fitter.scan(np.linspace(0.0, max_sigma, _COARSE_POINTS))
    if scan.at_limit:
        warnings.warn(
            f"The best PSF sigma is the largest searched ({max_sigma:.3g} um): the LRES is "
            "blurrier than that, or it does not show the same structures as the reference. "
            "Check the registration, or give a larger max_sigma_um.",
            ResolveWarning,
            stacklevel=2,
        )
    return PsfFit(
        sigma_um=scan.sigma_um,
        fwhm_um=FWHM_PER_SIGMA * scan.sigma_um,
        curve_sigma_um=scan.curve_sigma_um,
        curve_mse=scan.curve_mse,
        gain=scan.gain,
        offset=scan.offset,
    )


# ----------------------------------------------------------- Richardson-Lucy


def iter_richardson_lucy(
    image, sigma_vox, iterations: int = DEFAULT_ITERATIONS
) -> Generator[BaselineProgress, None, np.ndarray]:
    """Richardson-Lucy deconvolution with a Gaussian PSF, yielding one record per iteration.

    Parameters
    ----------
    image : array-like
        2D (y, x) or 3D (z, y, x) blurred image, any grey-value range (it is
        shifted to positive values internally and back at the end). Not modified.
    sigma_vox : float or sequence of float
        PSF standard deviation in voxels, one number or one per axis (0 on an axis
        means no blur along it). All zero: the result equals the input.
    iterations : int
        Number of RL iterations (>= 1). More iterations sharpen more but amplify
        noise: stop early on noisy data (see :data:`DEFAULT_ITERATIONS`).

    Returns
    -------
    generator
        Yields :class:`BaselineProgress` (``step`` = iterations done, 1 to
        ``iterations``); its return value (``StopIteration.value``) is the
        deconvolved image, float32, same shape as ``image``.

    Raises
    ------
    InputError
        When called, for an unusable image (not 2D/3D, NaN or infinite values),
        a negative or non-finite sigma, or fewer than one iteration.

    Notes
    -----
    RL needs non-negative data: the image is shifted so that its 0.1 percentile
    maps to a floor of 1e-3 of its robust range (0.1 to 99.9 percentile), the
    rare voxels below the floor are clipped to it, and the shift is undone on the
    result. RL is not shift-invariant, so the result depends (slightly) on that
    choice, as it does on the dark level of any real detector.

    The iteration starts from the image itself (not from a constant, as
    ``skimage`` does), which reaches a given sharpness in fewer iterations.
    """
    img = as_image(image, "the image to deconvolve")
    sigma = _sigmas(sigma_vox, img.ndim, "sigma_vox (the PSF sigma in voxels)")
    n = _iterations(iterations)
    return _iter_rl(img, sigma, n)


def run_richardson_lucy(image, sigma_vox, iterations: int = DEFAULT_ITERATIONS) -> np.ndarray:
    """:func:`iter_richardson_lucy` run to its end; returns the deconvolved image (float32)."""
    return drain(iter_richardson_lucy(image, sigma_vox, iterations))


def _iter_rl(img: np.ndarray, sigma: tuple[float, ...], n: int):
    # Written here rather than calling skimage.restoration.richardson_lucy: skimage
    # builds an explicit PSF array and convolves the whole array by FFT at every
    # iteration (several volume-sized complex temporaries: a 512^3 volume needs
    # many GiB), and it can neither report progress nor be stopped. A Gaussian PSF
    # is separable, so scipy's gaussian_filter applies it exactly in O(N * sigma)
    # with no temporaries, and a generator reports and stops after every iteration.
    def record(k: int) -> BaselineProgress:
        return BaselineProgress(k, n, f"Richardson-Lucy iteration {k}/{n}")

    if not any(sigma):
        # No blur: RL's fixed point is the image itself after one iteration.
        for k in range(1, n + 1):
            yield record(k)
        return img.copy()

    lo, hi = np.percentile(_subset(img), [0.1, 99.9])
    span = float(hi - lo)
    if span <= 0:
        span = float(img.max() - img.min())
    if span <= 0:  # a constant image is its own deconvolution
        for k in range(1, n + 1):
            yield record(k)
        return img.copy()
    floor = 1e-3 * span
    shift = np.float32(floor - lo)
    y = img + shift  # a new float32 array: the input is never modified
    np.maximum(y, np.float32(floor), out=y)
    # x stays positive (positive start, positive multiplicative updates), so H x
    # is only tiny where it underflows; eps keeps the division finite there.
    eps = np.float32(1e-6 * floor)
    x = y.copy()
    tmp = np.empty_like(y)
    for k in range(1, n + 1):
        # x <- x * H^T(y / H x). The Gaussian is symmetric, so H^T = H. With
        # "nearest" padding the operator is not exactly symmetric within a few
        # sigmas of the border; treating it as such is the usual approximation and,
        # unlike zero padding, does not darken the edges (no flux leaves the volume).
        ndimage.gaussian_filter(x, sigma, mode="nearest", output=tmp)
        np.maximum(tmp, eps, out=tmp)
        np.divide(y, tmp, out=tmp)
        # In place is safe: scipy filters each line through a buffer, and
        # gaussian_filter itself filters axes after the first in place.
        ndimage.gaussian_filter(tmp, sigma, mode="nearest", output=tmp)
        x *= tmp
        yield record(k)
    del tmp, y
    x -= shift
    return x


# ----------------------------------------------------------- baseline jobs


@dataclass(frozen=True, eq=False)
class BaselinePlan:
    """A checked baseline job, made by :func:`plan_baseline` and run by :func:`iter_baseline`.

    Attributes
    ----------
    lres, lres_voxel_um, grid, method
        The LRES (read lazily), its voxel size (um), the output voxels (LRES frame), one of :data:`METHODS`.
    psf_sigma_um : tuple of float or None
        RL's PSF sigma per axis (um) when given; None: estimated from ``reference``.
    reference : ndarray or None
        The registered HRES on ``grid`` (for the PSF estimate).
    iterations : int
        RL iterations (0 for interpolation).
    """

    lres: object
    lres_voxel_um: tuple[float, ...]
    grid: Grid
    method: str
    psf_sigma_um: tuple[float, ...] | None
    reference: np.ndarray | None
    iterations: int


def plan_baseline(
    lres, lres_voxel_um, grid: Grid, method: str, *, psf_sigma_um=None, reference=None,
    iterations: int = DEFAULT_ITERATIONS,
) -> BaselinePlan:
    """Check a baseline job on the caller's thread (see :func:`iter_baseline` for the parameters).

    Returns
    -------
    BaselinePlan

    Raises
    ------
    InputError
        Unknown method, grid not matching the LRES, ``"rl"`` with neither
        ``psf_sigma_um`` nor ``reference``, a reference of another shape than the
        grid, an invalid sigma or iteration count.
    VoxelSizeError
        If the LRES voxel size is missing or invalid.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"Unknown baseline {{method}} {method!r}; choose one of {', '.join(map(repr, METHODS))}.",
                         parameters=("method",))
    _check_grid(grid, lres)
    voxel = voxel_tuple(lres_voxel_um, grid.ndim, "LRES voxel size")
    sigma_um = ref = None
    if method == "rl":
        iterations = _iterations(iterations)
        if psf_sigma_um is not None:
            sigma_um = _sigmas(psf_sigma_um, grid.ndim, "psf_sigma_um")
        elif reference is not None:
            ref = as_image(reference, "the reference (registered HRES)")
            if ref.shape != tuple(grid.shape):
                raise InputError(
                    f"The reference (registered HRES) has shape {ref.shape} but the output "
                    f"grid has {tuple(grid.shape)}; resample the HRES onto the output grid "
                    "first, or give the PSF sigma ({psf_sigma_um}) instead.",
                    parameters=("psf_sigma_um",),
                )
        else:
            raise InputError(
                "Richardson-Lucy needs the PSF: give its sigma in um ({psf_sigma_um}) or a "
                "registered HRES on the output grid to estimate it from.",
                parameters=("psf_sigma_um",),
            )
    else:
        iterations = 0
    return BaselinePlan(lres, tuple(voxel), grid, method, sigma_um, ref, iterations)


def iter_baseline(plan, *args, **kwargs) -> Generator[BaselineProgress, None, BaselineResult]:
    """Compute a baseline on a grid, yielding progress records.

    Call it with a :class:`BaselinePlan`, or with :func:`plan_baseline`'s
    arguments (checked at once, before the first step):

    Parameters
    ----------
    lres : array-like
        The LRES, 2D or 3D (numpy, zarr or any lazily sliced array).
    lres_voxel_um : float or sequence of float
        LRES voxel size (um).
    grid : Grid
        Output voxels in the LRES frame (e.g. :func:`napari_resolve.grid.upscale_grid`).
    method : {"linear", "cubic", "rl"}
        ``"linear"`` / ``"cubic"`` interpolation, or ``"rl"``: cubic interpolation
        then Richardson-Lucy deconvolution with a Gaussian PSF.
    psf_sigma_um : float or sequence of float, optional
        For ``"rl"``: the PSF standard deviation (um), one number or one per axis.
        Takes precedence over ``reference``.
    reference : array-like, optional
        For ``"rl"`` without ``psf_sigma_um``: the registered HRES resampled onto
        exactly ``grid`` (shape ``grid.shape``); the PSF is estimated from it with
        :func:`estimate_psf_sigma`.
    iterations : int
        RL iterations (>= 1); ignored by interpolation.

    Returns
    -------
    generator
        Yields :class:`BaselineProgress` whose ``step`` counts the steps done out
        of a fixed ``total`` (interpolation 1, PSF estimation 1 when estimated,
        one per RL iteration): step 0 while interpolating, step 1 while
        estimating the PSF (only when estimated), then after RL iteration ``k``
        step ``total - iterations + k``, so the last record has ``step ==
        total``. Interpolation alone yields steps 0 and 1 of 1. Returns a
        :class:`BaselineResult`.

    Raises
    ------
    InputError
        When called, as :func:`plan_baseline`.
    """
    if not isinstance(plan, BaselinePlan):
        plan = plan_baseline(plan, *args, **kwargs)
    return _iter_baseline(plan)


def run_baseline(plan, *args, **options) -> BaselineResult:
    """:func:`iter_baseline` run to its end; returns its :class:`BaselineResult`.

    Takes the same arguments (a plan, or the plan's arguments, forwarded so the signatures cannot drift apart).
    """
    return drain(iter_baseline(plan, *args, **options))


def _iter_baseline(plan: BaselinePlan):
    start = time.perf_counter()
    grid, method, iterations, sigma_um = plan.grid, plan.method, plan.iterations, plan.psf_sigma_um
    estimate = method == "rl" and sigma_um is None
    total = 1 if method != "rl" else 1 + int(estimate) + iterations
    shape = "x".join(map(str, grid.shape))
    kind = "linear" if method == "linear" else "cubic"
    yield BaselineProgress(0, total, f"{kind.capitalize()} interpolation onto {shape} voxels")
    data = interpolate(plan.lres, plan.lres_voxel_um, grid, kind)
    psf = None
    if method != "rl":
        yield BaselineProgress(1, total, f"{kind.capitalize()} interpolation done")
        return BaselineResult(data, grid, method, None, None, 0, time.perf_counter() - start)
    if estimate:
        yield BaselineProgress(1, total, "Estimating the PSF from the registered HRES")
        psf = estimate_psf_sigma(data, plan.reference, grid.voxel_um)
        sigma_um = (psf.sigma_um,) * grid.ndim
    sigma_vox = tuple(s / v for s, v in zip(sigma_um, grid.voxel_um))
    data = yield from forward(_iter_rl(data, sigma_vox, iterations), total - iterations, total)
    return BaselineResult(
        data, grid, method, psf, tuple(float(s) for s in sigma_um), iterations, time.perf_counter() - start
    )


# ------------------------------------------------------------------ helpers


def _subset(a: np.ndarray) -> np.ndarray:
    """An evenly strided subset of at most about :data:`_PERCENTILE_VOXELS` voxels."""
    step = max(1, int(np.ceil((a.size / _PERCENTILE_VOXELS) ** (1 / a.ndim))))
    return a[tuple(slice(None, None, step) for _ in a.shape)]


def _number(value, name: str) -> float:
    """``value`` as a finite float, or an InputError naming it."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(out):
        raise InputError(f"{name} must be a finite number, got {value!r}.")
    return out


def _sigmas(value, ndim: int, name: str) -> tuple[float, ...]:
    """A PSF sigma as ``ndim`` finite floats >= 0 (one number: the same on every axis)."""
    if np.ndim(value) == 0 and not isinstance(value, str):
        values = [value] * ndim
    else:
        try:
            values = list(value)
        except TypeError:
            raise InputError(f"{name} must be a number or one number per axis, got {value!r}.") from None
        if len(values) == 1:
            values = values * ndim
    if len(values) != ndim:
        raise InputError(
            f"{name} has {len(values)} values but the data has {ndim} axes; give one "
            "value (isotropic) or one per axis in (z, y, x) order."
        )
    out = tuple(_number(v, name) for v in values)
    if any(v < 0 for v in out):
        raise InputError(f"{name} must be >= 0 on every axis, got {out}.")
    return out


def check_iterations(value, parameter: str = "iterations") -> int:
    """A Richardson-Lucy iteration count as an int >= 1, or an InputError naming ``parameter``."""
    whole = isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, (bool, np.bool_)) or not whole:
        raise InputError(f"{{{parameter}}} must be a whole number >= 1, got {value!r}.", parameters=(parameter,))
    if int(value) < 1:
        raise InputError(f"{{{parameter}}} must be at least 1, got {value!r}; use method 'cubic' for no "
                         "deconvolution.", parameters=(parameter,))
    return int(value)


_iterations = check_iterations
