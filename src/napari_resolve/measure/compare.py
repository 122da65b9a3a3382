"""A result against the registered HRES on their overlap: the Quality step and ``quality --registration``.

The result (an upscaled region) lies on its own grid and the HRES on its
registered grid, both in world coordinates (um, the LRES frame; napari's
``translate + index * scale``). Everything is measured on the HRES voxels
inside the result's voxel-centre extent (:func:`napari_resolve.geometry.overlap.plan_overlap`).
When the result has the HRES voxel size and its voxel centres fall on HRES
voxel centres (an upscaled region is in phase with the training grid), it is
cropped exactly; otherwise it is resampled (cubic) onto those HRES voxels.

On that overlap the job computes:

- an MS-SSIM map (and optionally an SSIM map) on the overlap's HRES grid;
- scalar metrics (PSNR in dB, SSIM, MS-SSIM, MSE) of the result and, when the
  LRES is given, of the classical baselines (cubic interpolation and
  Richardson-Lucy, :mod:`napari_resolve.measure.baselines`) on the same voxels;
- the lowest-scoring regions of the MS-SSIM map (:func:`lowest_regions`);
- optionally the effective resolution of each against the HRES
  (:func:`napari_resolve.measure.resolution.gaussian_resolution`, FWHM in um, and
  :func:`napari_resolve.measure.resolution.frc` at the 1/7 and half-bit thresholds).

The job is planned, then run: :func:`plan_quality` checks everything and copies
the voxels it needs on the caller's thread, :func:`iter_quality` only works and
yields :class:`~napari_resolve.jobs.Progress` records (``data`` is None), and
returns a :class:`QualityResult`; :func:`run_quality` drains it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from napari_resolve._text import format_shape
from napari_resolve._validate import per_axis, voxel_tuple
from napari_resolve.errors import InputError
from napari_resolve.geometry.overlap import Overlap, extent_um, plan_overlap
from napari_resolve.jobs import Progress, drain, forward

__all__ = [
    "CUBIC",
    "N_REGIONS",
    "RL",
    "UPSCALED",
    "QualityPlan",
    "QualityResult",
    "block_size",
    "iter_quality",
    "lowest_regions",
    "plan_quality",
    "resolution_row",
    "run_quality",
]

#: How many lowest-scoring regions are listed.
N_REGIONS = 10

#: The rows measured: the result, and the two baselines when the LRES is given.
UPSCALED, CUBIC, RL = "upscaled", "cubic", "Richardson-Lucy"

#: Voxels of the result read around the overlap when it is resampled: the cubic spline's reach.
_HALO = 4


# ------------------------------------------------------------------ results


@dataclass
class QualityResult:
    """What :func:`iter_quality` returns.

    Attributes
    ----------
    ms_ssim_map, ssim_map : ndarray or None
        float32 maps on the overlap's HRES grid (``overlap.shape``; in napari
        ``translate=overlap.origin_um``, ``scale=overlap.voxel_um``).
    metrics : dict
        ``{"upscaled" | "cubic" | "Richardson-Lucy": {"psnr", "ssim", "ms_ssim", "mse"}}``
        (PSNR in dB, MSE in squared grey values).
    regions : list of dict
        The lowest-scoring blocks, lowest first (see :func:`lowest_regions`).
    overlap : Overlap
    scales : int
        MS-SSIM scales used (5 need more than 160 voxels per axis).
    data_range : float
        Grey-value range used by every metric (by default the HRES overlap's).
    psf_sigma_um : float or None
        The PSF width Richardson-Lucy used (fitted against the HRES).
    notes : list of str
        Things the user should know (resampling, fewer scales, PSF fit warnings).
    resolution : dict
        ``{"upscaled" | "cubic" | "Richardson-Lucy": {"gaussian": GaussianFit, "frc": FrcResult}}``
        against the HRES on the overlap (empty when not asked for).
    error_map : ndarray or None
        The result's error map on the overlap, when given.
    error_agreement : dict
        How the error map agrees with the truth on the overlap
        (:func:`error_map_agreement`; empty without a map).
    """

    ms_ssim_map: np.ndarray
    ssim_map: np.ndarray | None
    metrics: dict
    regions: list
    overlap: Overlap
    scales: int
    data_range: float
    psf_sigma_um: float | None = None
    notes: list = field(default_factory=list)
    resolution: dict = field(default_factory=dict)
    error_map: np.ndarray | None = None
    error_agreement: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-friendly summary (no maps): the overlap box in um, metrics, regions, resolution rows."""
        ov = self.overlap
        lo, hi = extent_um(ov.shape, ov.voxel_um, ov.origin_um)
        return {
            "overlap": {
                "shape": list(ov.shape),
                "voxel_um": list(ov.voxel_um),
                "origin_um": list(ov.origin_um),
                "box_um": {"lo": [float(v) for v in lo], "hi": [float(v) for v in hi]},
                "hres_box": [[s.start, s.stop] for s in ov.hres_box],
                "cropped_exactly": ov.in_phase,
            },
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
            "data_range": self.data_range,
            "ms_ssim_scales": self.scales,
            "ms_ssim_map_mean": float(np.mean(self.ms_ssim_map)),
            "psf_sigma_um": self.psf_sigma_um,
            "regions": [
                {"rank": r["rank"], "centre_um": list(r["centre_um"]), "score": r["score"],
                 "size_um": list(r["size_um"])}
                for r in self.regions
            ],
            "resolution": {k: resolution_row(v) for k, v in self.resolution.items()},
            "error_map_agreement": dict(self.error_agreement),
            "notes": list(self.notes),
        }


def error_map_agreement(bound: np.ndarray, error: np.ndarray, ms_ssim_map: np.ndarray | None = None) -> dict:
    """How an error map agrees with the true error where an HRES exists.

    Parameters
    ----------
    bound : ndarray
        The error map (grey values).
    error : ndarray
        The result minus the HRES on the same voxels (grey values).
    ms_ssim_map : ndarray, optional
        The MS-SSIM map on the same voxels.

    Returns
    -------
    dict
        ``coverage`` (share of voxels whose |error| is below the map: about
        90 % (:data:`napari_resolve.learn.uncertainty.LEVEL`) when the calibration holds; the HRES's own noise counts as
        error here), ``spearman_abs_error`` (rank correlation of the map with |error|)
        and ``spearman_ms_ssim_loss`` (with 1 - MS-SSIM; None without the map).
    """
    from scipy.stats import spearmanr

    b, e = np.ravel(bound).astype(np.float64), np.abs(np.ravel(error)).astype(np.float64)
    # Rank correlations of a few million voxels take seconds: a fixed sample of 10^6 is enough.
    pick = np.random.default_rng(0).choice(b.size, 10**6, replace=False) if b.size > 10**6 else slice(None)
    out = {"coverage": float(np.mean(e <= b)), "spearman_abs_error": float(spearmanr(b[pick], e[pick]).statistic),
           "spearman_ms_ssim_loss": None}
    if ms_ssim_map is not None:
        out["spearman_ms_ssim_loss"] = float(spearmanr(b[pick], 1 - np.ravel(ms_ssim_map)[pick]).statistic)
    return out


def block_size(shape) -> int:
    """Edge of the blocks the map is ranked in: 16 voxels (32 pixels in 2D), less for small overlaps."""
    size = 16 if len(shape) == 3 else 32
    while size > 4 and min(shape) < 4 * size:
        size //= 2
    return size


def lowest_regions(score_map: np.ndarray, origin_um, voxel_um, n: int = N_REGIONS) -> list[dict]:
    """The ``n`` blocks of ``score_map`` with the lowest mean, lowest first.

    The map is cut into about :func:`block_size` voxels per axis (equal blocks
    that cover it all).

    Parameters
    ----------
    score_map : ndarray
        A 2D or 3D score map (e.g. MS-SSIM).
    origin_um, voxel_um : sequence of float
        World position (um) of the map's voxel 0 and its voxel size (um).
    n : int
        How many blocks to return.

    Returns
    -------
    list of dict
        ``rank`` (from 1), ``centre_um`` (world position of the block's centre),
        ``score`` (mean of the map), ``box`` (map voxel slices) and ``size_um``.
    """
    size = block_size(score_map.shape)
    edges = [np.linspace(0, s, max(1, round(s / size)) + 1).astype(int) for s in score_map.shape]
    sums = score_map.astype(np.float64)
    for axis, e in enumerate(edges):
        sums = np.add.reduceat(sums, e[:-1], axis=axis)
    counts = np.ones(sums.shape)
    for axis, e in enumerate(edges):
        shape = [1] * sums.ndim
        shape[axis] = len(e) - 1
        counts = counts * np.diff(e).reshape(shape)
    means = sums / counts
    order = np.argsort(means, axis=None, kind="stable")[:n]
    regions = []
    for rank, flat in enumerate(order, start=1):
        idx = np.unravel_index(flat, means.shape)
        box = tuple(slice(int(e[i]), int(e[i + 1])) for e, i in zip(edges, idx))
        centre = tuple(float(o + (s.start + s.stop - 1) / 2 * v) for o, s, v in zip(origin_um, box, voxel_um))
        regions.append(
            {
                "rank": rank,
                "centre_um": centre,
                "score": float(means[idx]),
                "box": box,
                "size_um": tuple(float((s.stop - s.start) * v) for s, v in zip(box, voxel_um)),
            }
        )
    return regions


def resolution_row(res: dict) -> dict:
    """The numbers of one row of the resolution table (um; None: FRC never dropped, inf: never agreed).

    Parameters
    ----------
    res : dict
        ``{"gaussian": GaussianFit, "frc": FrcResult}``, a value of :attr:`QualityResult.resolution`.

    Returns
    -------
    dict
        ``fwhm_um``, ``sigma_um``, ``frc_1/7_um``, ``frc_half_bit_um`` and ``finest_um``.
    """
    frc = res["frc"]
    return {
        "fwhm_um": res["gaussian"].fwhm_um,
        "sigma_um": res["gaussian"].sigma_um,
        "frc_1/7_um": frc.resolution_um["1/7"],
        "frc_half_bit_um": frc.resolution_um["half-bit"],
        "finest_um": frc.finest_um,
    }


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True, eq=False)
class QualityPlan:
    """A checked quality job, made by :func:`plan_quality` and run by :func:`iter_quality`.

    Attributes
    ----------
    overlap : Overlap
        The HRES voxels measured, and whether the result is cropped or resampled.
    ref : ndarray of float32
        The HRES on the overlap (a copy).
    block : ndarray of float32
        The result's voxels covering the overlap (exactly the overlap when in
        phase, else with a few voxels of halo for the cubic resampling).
    block_voxel_um, block_origin_um : tuple of float
        The block's voxel size and the world position of its voxel 0 (um).
    data_range : float
        The grey-value range every metric uses.
    scales : int
        MS-SSIM scales that fit the overlap.
    baseline : BaselinePlan or None
        The cubic interpolation of the LRES onto the overlap grid, when the LRES is given.
    rl_iterations : int
        Richardson-Lucy iterations.
    with_ssim_map, with_resolution : bool
        Also compute the SSIM map / the effective resolution.
    error_block : ndarray or None
        The error map's voxels over the same block as ``block``.
    """

    overlap: Overlap
    ref: np.ndarray
    block: np.ndarray
    block_voxel_um: tuple[float, ...]
    block_origin_um: tuple[float, ...]
    data_range: float
    scales: int
    baseline: object | None
    rl_iterations: int
    with_ssim_map: bool
    with_resolution: bool
    error_block: np.ndarray | None = None

    @property
    def total(self) -> int:
        """Steps of the job."""
        n = 3 + int(self.with_ssim_map) + int(self.with_resolution)
        if self.baseline is not None:
            n += 4 + self.rl_iterations + 2 * int(self.with_resolution)
        return n


def _finite(a: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what} has NaN or infinite values where the result and the HRES overlap; "
                         "clean it up (e.g. fill the gaps) or choose another region.")
    return a


def plan_quality(
    result,
    result_voxel_um,
    result_origin_um,
    hres,
    hres_voxel_um,
    hres_origin_um,
    *,
    lres=None,
    lres_voxel_um=None,
    lres_origin_um=None,
    data_range=None,
    with_ssim_map: bool = True,
    with_resolution: bool = True,
    rl_iterations: int | None = None,
    error_map=None,
) -> QualityPlan:
    """Check a quality job and copy the voxels it measures, on the caller's thread.

    Parameters
    ----------
    result : array-like
        The upscaled result (2D or 3D; numpy, zarr or any lazily sliced array:
        only the voxels over the HRES are read).
    result_voxel_um, result_origin_um : float or sequence of float
        Its voxel size and the world position of its voxel 0 (um; the layer's
        ``scale`` and ``translate``, or a ``predict`` output's metadata).
    hres : array-like
        The registered HRES.
    hres_voxel_um, hres_origin_um : float or sequence of float
        Its registered voxel size and position (um; the registration's
        ``scale`` and ``offset_um``).
    lres : array-like, optional
        The LRES, for the cubic and Richardson-Lucy baselines; without it only
        the result is measured.
    lres_voxel_um, lres_origin_um : float or sequence of float, optional
        The LRES voxel size and position (um; origin 0 by default: the LRES frame).
    data_range : float, optional
        Grey-value range for PSNR and SSIM; default the HRES overlap's ``max - min``.
    with_ssim_map : bool
        Also compute the (single-scale) SSIM map.
    with_resolution : bool
        Also measure the effective resolution (Gaussian fit and FRC/FSC) of
        every row against the HRES.
    rl_iterations : int, optional
        Richardson-Lucy iterations (default
        :data:`napari_resolve.measure.baselines.DEFAULT_ITERATIONS`).
    error_map : array-like, optional
        The result's error map (``predict --uncertainty``: the same grid as the
        result), shown on the overlap and compared with the true error there.

    Returns
    -------
    QualityPlan

    Raises
    ------
    InputError
        Arrays that are not 2D/3D or differ in dimensionality, an overlap
        thinner than 16 HRES voxels on an axis (or none at all), NaN in the
        overlap, a constant HRES overlap without ``data_range``, a
        non-positive ``data_range``, an invalid LRES or iteration count.
    VoxelSizeError
        If a voxel size is missing or invalid.
    """
    from napari_resolve.measure import baselines
    from napari_resolve.measure.similarity import ms_ssim_scales

    ndim = len(getattr(hres, "shape", ()))
    if ndim not in (2, 3):
        raise InputError(f"The HRES must be a 2D image or a 3D volume, got shape {getattr(hres, 'shape', None)}.")
    if len(getattr(result, "shape", ())) != ndim:
        raise InputError(
            f"The result has shape {getattr(result, 'shape', None)} but the HRES {tuple(hres.shape)}: "
            "compare a result and an HRES of the same dimensionality."
        )
    rv = voxel_tuple(result_voxel_um, ndim, "result voxel size", parameter="result_voxel_um")
    hv = voxel_tuple(hres_voxel_um, ndim, "HRES voxel size")
    ro = per_axis(result_origin_um, ndim, "The result origin", minimum="any", parameter="result_origin_um")
    ho = per_axis(hres_origin_um, ndim, "The HRES origin", minimum="any", parameter="hres_origin_um")
    overlap = plan_overlap(result.shape, rv, ro, hres.shape, hv, ho)

    ref = _finite(np.array(hres[overlap.hres_box], dtype=np.float32), "The HRES")
    if data_range is None:
        dr = float(ref.max()) - float(ref.min())
        if not dr > 0:
            raise InputError("The HRES is constant over the overlap, so there is nothing to compare; check the "
                             "registration and the region, or give the {data_range}.", parameters=("data_range",))
    else:
        try:
            dr = float(data_range)
        except (TypeError, ValueError):
            dr = math.nan
        if not (math.isfinite(dr) and dr > 0):
            raise InputError(f"The {{data_range}} must be a positive number (max - min of the data), got "
                             f"{data_range!r}.", parameters=("data_range",))

    if overlap.in_phase:
        box = overlap.result_box
        block_origin = overlap.origin_um
    else:
        # Only the result voxels the cubic spline needs around the overlap.
        lo = np.asarray(overlap.origin_um)
        hi = lo + (np.asarray(overlap.shape) - 1) * np.asarray(hv)
        start = np.maximum(np.floor((lo - np.asarray(ro)) / rv).astype(int) - _HALO, 0)
        stop = np.minimum(np.ceil((hi - np.asarray(ro)) / rv).astype(int) + _HALO + 1, np.asarray(result.shape))
        box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
        block_origin = tuple(float(v) for v in np.asarray(ro) + start * np.asarray(rv))
    block = _finite(np.array(result[box], dtype=np.float32), "The result")
    error_block = None
    if error_map is not None:
        if tuple(error_map.shape) != tuple(result.shape):
            raise InputError(f"The error map has shape {tuple(error_map.shape)} but the result "
                             f"{tuple(result.shape)}: give the map written with this result.")
        error_block = _finite(np.array(error_map[box], dtype=np.float32), "The error map")

    iterations = baselines.DEFAULT_ITERATIONS if rl_iterations is None else rl_iterations
    baseline = None
    if lres is not None:
        from napari_resolve.geometry.grid import Grid

        lres_ndim = len(getattr(lres, "shape", ()))
        if lres_ndim != ndim:
            raise InputError(f"The LRES has {lres_ndim} axes but the HRES {ndim}; give the LRES of this HRES.")
        lv = voxel_tuple(lres_voxel_um, ndim, "LRES voxel size")
        lo_l = (0.0,) * ndim if lres_origin_um is None else per_axis(
            lres_origin_um, ndim, "The LRES origin", minimum="any", parameter="lres_origin_um")
        # The baselines' grid is the overlap's HRES grid in the LRES frame (LRES voxel 0 at the origin).
        grid = Grid(overlap.shape, overlap.voxel_um, tuple(float(o - a) for o, a in zip(overlap.origin_um, lo_l)))
        baseline = baselines.plan_baseline(lres, lv, grid, "cubic")
        iterations = baselines.check_iterations(iterations, "rl_iterations")
    return QualityPlan(
        overlap=overlap,
        ref=ref,
        block=block,
        block_voxel_um=tuple(rv),
        block_origin_um=tuple(block_origin),
        data_range=dr,
        scales=ms_ssim_scales(overlap.shape),
        baseline=baseline,
        rl_iterations=int(iterations),
        with_ssim_map=bool(with_ssim_map),
        with_resolution=bool(with_resolution),
        error_block=error_block,
    )


# ------------------------------------------------------------------ the job


def _metrics(pred: np.ndarray, ref: np.ndarray, data_range: float, scales: int) -> dict:
    from napari_resolve.measure.similarity import ms_ssim, mse, psnr, ssim

    return {
        "psnr": psnr(pred, ref, data_range),
        "ssim": ssim(pred, ref, data_range),
        "ms_ssim": ms_ssim(pred, ref, data_range, scales=scales),
        "mse": mse(pred, ref),
    }


def _resolution(image: np.ndarray, ref: np.ndarray, voxel_um, what: str, notes: list) -> dict:
    """Gaussian-fit and FRC/FSC resolution of ``image`` against the HRES ``ref``; warnings go to ``notes``."""
    from napari_resolve.measure.resolution import frc, gaussian_resolution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = gaussian_resolution(image, ref, voxel_um)
    notes.extend(f"{what}: {w.message}" for w in caught)
    return {"gaussian": fit, "frc": frc(image, ref, voxel_um)}


def _result_on_overlap(plan: QualityPlan, block=None, order: int = 3) -> np.ndarray:
    """The result's (or its error map's) values at the overlap's HRES voxels (copied, or resampled)."""
    block = plan.block if block is None else block
    if plan.overlap.in_phase:
        return block
    from napari_resolve.geometry.resample import resample_to_grid

    ov = plan.overlap
    return resample_to_grid(block, plan.block_voxel_um, ov.shape, ov.voxel_um, ov.origin_um,
                            origin_um=plan.block_origin_um, order=order, name="upscaled result")


def iter_quality(plan, *args, **kwargs) -> Generator[Progress, None, QualityResult]:
    """Measure an upscaled result against the HRES on their overlap; yields progress records.

    Parameters
    ----------
    plan : QualityPlan
        From :func:`plan_quality`; or :func:`plan_quality`'s arguments, checked
        at once (before the first step).

    Returns
    -------
    generator
        Yields :class:`~napari_resolve.jobs.Progress` records (``data`` None),
        steps 0 to ``plan.total``; returns a :class:`QualityResult`.
    """
    if not isinstance(plan, QualityPlan):
        plan = plan_quality(plan, *args, **kwargs)
    return _iter_quality(plan)


def run_quality(plan, *args, **kwargs) -> QualityResult:
    """:func:`iter_quality` run to its end (same arguments); returns its :class:`QualityResult`."""
    return drain(iter_quality(plan, *args, **kwargs))


def _iter_quality(plan: QualityPlan) -> Generator[Progress, None, QualityResult]:
    from napari_resolve.measure import baselines
    from napari_resolve.measure.similarity import FULL_SCALES_SIDE, MS_SSIM_WEIGHTS, ms_ssim_map, ssim_map

    overlap, ref, dr, scales, total = plan.overlap, plan.ref, plan.data_range, plan.scales, plan.total
    notes: list[str] = []
    step = 0
    if overlap.in_phase:
        yield Progress(step, total, f"Cropping the {format_shape(overlap.shape)} overlap")
    else:
        notes.append("the result is not on the HRES grid, so it was resampled (cubic) onto it")
        yield Progress(step, total, f"Resampling the result onto the {format_shape(overlap.shape)} HRES voxels "
                       "it overlaps")
    pred = _result_on_overlap(plan)
    if scales < len(MS_SSIM_WEIGHTS):
        notes.append(f"MS-SSIM used {scales} of {len(MS_SSIM_WEIGHTS)} scales (all need an overlap over "
                     f"{FULL_SCALES_SIDE} voxels a side)")

    step += 1
    yield Progress(step, total, f"MS-SSIM map ({scales} scales)")
    ms_map = ms_ssim_map(pred, ref, dr, scales=scales)
    s_map = None
    if plan.with_ssim_map:
        step += 1
        yield Progress(step, total, "SSIM map")
        s_map = ssim_map(pred, ref, dr)
    step += 1
    yield Progress(step, total, "Metrics of the upscaled result")
    metrics = {UPSCALED: _metrics(pred, ref, dr, scales)}
    resolution = {}
    if plan.with_resolution:
        step += 1
        yield Progress(step, total, "Effective resolution of the upscaled result (Gaussian fit, FRC)")
        resolution[UPSCALED] = _resolution(pred, ref, overlap.voxel_um, "upscaled", notes)
    error_map, agreement = None, {}
    if plan.error_block is not None:
        error_map = _result_on_overlap(plan, plan.error_block, order=1)  # linear: a bound must not ring
        agreement = error_map_agreement(error_map, pred - ref, ms_map)
    del pred

    psf_sigma = None
    if plan.baseline is not None:
        cubic = yield from forward(baselines.iter_baseline(plan.baseline), step, total)
        step += 1
        yield Progress(step, total, "Metrics of cubic interpolation")
        metrics[CUBIC] = _metrics(cubic.data, ref, dr, scales)
        if plan.with_resolution:
            step += 1
            yield Progress(step, total, "Effective resolution of cubic interpolation")
            resolution[CUBIC] = _resolution(cubic.data, ref, overlap.voxel_um, CUBIC, notes)
        step += 1
        yield Progress(step, total, "Fitting the PSF of the LRES against the HRES (Richardson-Lucy)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            psf = baselines.estimate_psf_sigma(cubic.data, ref, overlap.voxel_um)
        notes.extend(str(w.message) for w in caught)
        psf_sigma = psf.sigma_um
        sigma_vox = tuple(psf_sigma / v for v in overlap.voxel_um)
        iterations = plan.rl_iterations
        rl = yield from forward(baselines.iter_richardson_lucy(cubic.data, sigma_vox, iterations), step, total)
        del cubic
        step += iterations + 1
        yield Progress(step, total, "Metrics of Richardson-Lucy")
        metrics[RL] = _metrics(rl, ref, dr, scales)
        if plan.with_resolution:
            step += 1
            yield Progress(step, total, "Effective resolution of Richardson-Lucy")
            resolution[RL] = _resolution(rl, ref, overlap.voxel_um, RL, notes)
        del rl

    regions = lowest_regions(ms_map, overlap.origin_um, overlap.voxel_um)
    yield Progress(total, total, "Done")
    return QualityResult(ms_map, s_map, metrics, regions, overlap, scales, dr, psf_sigma, notes, resolution,
                         error_map, agreement)
