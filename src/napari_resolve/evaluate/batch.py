"""Batch evaluation: a trained model against cubic interpolation on a folder of LRES/HRES pairs.

After "DRLN on SEM 2021" (docs/references.md; *Application of Deep Learning
Super Resolution Model to Scientific Images*, 2021,
https://datacenteredleadership.com/2021/10/04/application-of-deep-learning-super-resolution-model-to-scientific-images/):
every LRES image of a pair (found by :mod:`~napari_resolve.evaluate.discovery`)
is upscaled with the model and with cubic interpolation onto its HRES grid, both
are compared with the HRES (PSNR, SSIM, MS-SSIM), one row per image; the rows are
then summarised per category (sub-folder) and overall, with the mean paired
difference (model - cubic) and paired significance tests
(:mod:`~napari_resolve.evaluate.stats`).

The job is planned, then run: :func:`plan_evaluate` checks the arguments, finds
the pairs and loads the model; :func:`iter_evaluate` first reads and checks every
pair (files readable, voxel sizes, fields), so that a bad file stops the job
before any upscaling, then upscales and scores the pairs one by one. Reading the
pairs is the job's first phase, not the plan's: TIFFs are read into memory, and a
batch of large files should show progress and be stoppable while it is read.

Geometry
    A pair shows one field. Voxel sizes: the ``lres_voxel_um``/``hres_voxel_um``
    arguments if given, else the file's metadata, else the model's training voxel
    sizes. The LRES voxel must be the model's (it learned that step only) and the
    HRES voxel its output voxel, within 1 %. Where the HRES grid lies in the LRES
    frame (``align``):

    ``"edge"``
        both images start at the same corner of the field: HRES voxel 0 has its
        centre at ``(hres_voxel - lres_voxel) / 2`` from LRES voxel 0's, as
        detector binning or area downsampling (the paper's) gives;
    ``"centre"``
        the centres of voxel 0 coincide (LRES made by taking every n-th pixel);
    ``"origins"``
        the files' origins (OME plane positions, NGFF translations):
        ``hres.origin - lres.origin``;
    ``"auto"`` (default)
        ``"origins"`` when the two files record different origins, else
        ``"edge"`` (equal or missing origins say nothing about the placement).

    With ``"edge"`` and ``"centre"`` the two fields must agree to one LRES voxel
    (a remainder cropped by binning), which catches wrong voxel sizes.

Compared region
    The HRES voxels whose centres lie inside the LRES field shrunk by ``border``
    LRES voxels (default 1) on every side: at the field's edge interpolation and
    the network see replicated edge values, not the sample. The model and the
    cubic interpolation are computed on exactly these voxels.

Metrics
    PSNR, SSIM and MS-SSIM of :mod:`napari_resolve.measure.similarity`, with the data range
    of the compared HRES region (or ``data_range``), the same for both methods.
    MS-SSIM uses as many scales as the region allows (5 need more than 160
    voxels a side), the same number for both methods, recorded per row.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_resolve._text import format_shape, format_um
from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import InputError, ResolveWarning, VoxelSizeError
from napari_resolve.evaluate.discovery import NAMING, Pair, find_pairs
from napari_resolve.evaluate.records import EvalResult, EvalRow, check_csv_outputs, summary_csv_path, write_csv
from napari_resolve.evaluate.stats import category_summaries
from napari_resolve.geometry.grid import Grid
from napari_resolve.jobs import Progress, drain, forward

__all__ = [
    "ALIGNS",
    "EvalPlan",
    "EvalResult",
    "EvalRow",
    "check_csv_outputs",
    "plan_evaluate",
    "iter_evaluate",
    "run_evaluate",
    "summary_csv_path",
    "write_csv",
]

#: How the HRES grid is placed in the LRES frame (see the module docstring).
ALIGNS = ("auto", "edge", "centre", "origins")
#: Voxel sizes may differ from the model's by this fraction (as in inference).
VOXEL_TOLERANCE = 0.01
#: A pair's HRES grid more than this far (HRES voxels) off the training grid's phase is noted.
PHASE_TOLERANCE = 0.25


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Geometry:
    lres_voxel: tuple[float, ...]
    grid: Grid  # the compared HRES voxels, LRES frame
    box: tuple[slice, ...]  # the same voxels as indices of the HRES array
    phase_off: float  # largest distance (HRES voxels) from the training grid's phase


def _pair_geometry(pair: Pair, lres, hres, ckpt, lres_voxel, hres_voxel, align: str, border: float) -> _Geometry:
    """Voxel sizes, placement and compared region of one pair (raises with the file's name)."""
    from napari_resolve.learn.inference import check_lres_voxels

    ndim = lres.ndim
    trained_nd = len(ckpt.hres_voxel_um)
    if hres.ndim != ndim:
        raise InputError(
            f"{pair.label}: the LRES {pair.lres.name} is {ndim}D but the HRES {pair.hres.name} is {hres.ndim}D; "
            "a pair must be two images or two volumes."
        )
    if ndim != trained_nd:
        raise InputError(
            f"{pair.label}: the images are {ndim}D but the model was trained on {trained_nd}D data. "
            f"Evaluate it on {trained_nd}D pairs."
        )
    if lres_voxel is not None:
        lv = voxel_tuple(lres_voxel, ndim, "LRES voxel size")
    else:
        lv = lres.voxel_um or tuple(ckpt.lres_voxel_um)
    if hres_voxel is not None:
        hv = voxel_tuple(hres_voxel, ndim, "HRES voxel size")
    else:
        hv = hres.voxel_um or tuple(ckpt.hres_voxel_um)
    try:
        check_lres_voxels(ckpt, lv)
    except VoxelSizeError as exc:
        raise VoxelSizeError(
            f"{pair.lres}: {exc} If the file's metadata is wrong, give the LRES voxel size ({{lres_voxel_um}}).",
            parameters=("lres_voxel_um",),
        ) from None
    if any(abs(a / b - 1) > VOXEL_TOLERANCE for a, b in zip(hv, ckpt.hres_voxel_um)):
        raise VoxelSizeError(
            f"{pair.hres}: this HRES has {format_um(hv)} voxels but the model upscales to "
            f"{format_um(ckpt.hres_voxel_um)} voxels; it can only be compared with an HRES at its output voxel "
            "size. Give the HRES voxel size ({hres_voxel_um}) if the file's metadata is wrong.",
            parameters=("hres_voxel_um",),
        )
    lv_a, hv_a = np.array(lv), np.array(hv)
    n_l, n_h = np.array(lres.shape), np.array(hres.shape)
    mode = align
    if mode == "auto":
        mode = "edge" if np.allclose(lres.origin_um, hres.origin_um, atol=1e-6) else "origins"
    if mode == "edge":
        origin = (hv_a - lv_a) / 2
    elif mode == "centre":
        origin = np.zeros(ndim)
    else:
        origin = np.array(hres.origin_um, float) - np.array(lres.origin_um, float)
    if mode in ("edge", "centre"):
        ext_l, ext_h = n_l * lv_a, n_h * hv_a
        if np.any(np.abs(ext_l - ext_h) > lv_a * (1 + VOXEL_TOLERANCE)):
            raise InputError(
                f"{pair.label}: the LRES covers {format_um(ext_l)} ({format_shape(n_l)} voxels of {format_um(lv)}) "
                f"but the HRES {format_um(ext_h)} ({format_shape(n_h)} voxels of {format_um(hv)}); a pair must show "
                "the same field. Check the voxel sizes ({lres_voxel_um}, {hres_voxel_um}), or place the images by "
                "their origins ({align} 'origins').",
                parameters=("lres_voxel_um", "hres_voxel_um", "align"),
            )
    # HRES voxels whose centres lie in the LRES field shrunk by the border.
    lo = (-0.5 + border) * lv_a
    hi = (n_l - 0.5 - border) * lv_a
    i0 = np.maximum(np.ceil((lo - origin) / hv_a - 1e-6), 0).astype(int)
    i1 = np.minimum(np.floor((hi - origin) / hv_a + 1e-6), n_h - 1).astype(int) + 1
    size = i1 - i0
    from napari_resolve.measure.similarity import RADIUS

    if np.any(size < 2 * RADIUS + 1):
        raise InputError(
            f"{pair.label}: only {format_shape(np.maximum(size, 0))} HRES voxels lie inside the LRES field less "
            f"a border of {border:g} LRES voxel(s); SSIM needs at least {2 * RADIUS + 1} along every axis. Check the "
            "alignment ({align}) and voxel sizes, or lower the {border}.",
            parameters=("align", "border"),
        )
    box = tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))
    grid = Grid(tuple(int(s) for s in size), tuple(float(v) for v in hv),
                tuple(float(o + a * v) for o, a, v in zip(origin, i0, hv)))
    phase_off = 0.0
    if ckpt.phase_origin_um is not None:
        frac = (np.array(grid.origin_um) - np.array(ckpt.phase_origin_um[-ndim:])) / hv_a
        phase_off = float(np.max(np.abs(frac - np.round(frac))))
    return _Geometry(tuple(float(v) for v in lv), grid, box, phase_off)


# ----------------------------------------------------------------------------- the job


def _scores(pred: np.ndarray, ref: np.ndarray, data_range: float, scales: int, device) -> dict[str, float]:
    from napari_resolve.measure.similarity import ms_ssim, psnr, ssim

    return {
        "psnr": psnr(pred, ref, data_range),
        "ssim": ssim(pred, ref, data_range, device=device),
        "ms_ssim": ms_ssim(pred, ref, data_range, scales=scales, device=device),
    }


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class EvalPlan:
    """A checked evaluation, made by :func:`plan_evaluate` and run by :func:`iter_evaluate`.

    Attributes
    ----------
    checkpoint : Checkpoint
        The model.
    model_name : str
        The model file, or a description of an in-memory model.
    root : Path
        The evaluated folder.
    pairs : tuple of Pair
        The pairs, in the order of :func:`~napari_resolve.evaluate.discovery.find_pairs`.
    unpaired : tuple of str
        Image files without a partner, relative to ``root``.
    lres_voxel_um, hres_voxel_um : float, tuple of float or None
        Voxel-size overrides for every pair (um).
    align : str
    border : float
        LRES voxels left out at every edge.
    data_range : float or None
    device : str
    tile : int or None
    """

    checkpoint: object
    model_name: str
    root: Path
    pairs: tuple[Pair, ...]
    unpaired: tuple[str, ...]
    lres_voxel_um: object
    hres_voxel_um: object
    align: str
    border: float
    data_range: float | None
    device: str
    tile: int | None


def plan_evaluate(
    model,
    pairs_dir: str | os.PathLike,
    *,
    lres_voxel_um=None,
    hres_voxel_um=None,
    align: str = "auto",
    border: float = 1.0,
    data_range: float | None = None,
    device: str = "auto",
    tile: int | None = None,
) -> EvalPlan:
    """Check an evaluation of a model against cubic interpolation on a folder of pairs.

    Checks the arguments, finds the pairs (warning about image files without a
    partner) and loads the model. The pairs' files are read and checked by
    :func:`iter_evaluate` before it upscales any (see the module docstring).

    Parameters
    ----------
    model : Checkpoint or path-like
        A trained model (``.pt``).
    pairs_dir : path-like
        The folder of pairs (see :mod:`~napari_resolve.evaluate.discovery` for the layouts).
    lres_voxel_um, hres_voxel_um : float or sequence of float, optional
        Voxel sizes (um) for every pair, overriding the files' metadata. Without
        them and without metadata, the model's training voxel sizes are used.
    align : {"auto", "edge", "centre", "origins"}
        Where the HRES grid lies relative to the LRES (module docstring).
    border : float
        LRES voxels left out of the comparison along every edge of the field.
    data_range : float, optional
        Intensity range for PSNR and SSIM (e.g. 255 for 8-bit images); default
        the range of each compared HRES region.
    device : str
        "auto", "cpu", "cuda" or "mps" for the network (metrics run on CUDA
        when it is used, else on the CPU).
    tile : int, optional
        In-plane tile of tiled prediction (output voxels; default 128).

    Returns
    -------
    EvalPlan

    Raises
    ------
    InputError, FileFormatError
        For a folder without pairs, a model file that cannot be loaded, or bad arguments.
    """
    from napari_resolve.models.checkpoint import Checkpoint, load_checkpoint

    if align not in ALIGNS:
        raise InputError(f"Unknown alignment {align!r}; choose one of {', '.join(ALIGNS)} ({{align}}).",
                         parameters=("align",))
    try:
        border = float(border)
    except (TypeError, ValueError):
        raise InputError(f"The {{border}} must be a number of LRES voxels, got {border!r}.",
                         parameters=("border",)) from None
    if not (math.isfinite(border) and border >= 0):
        raise InputError(f"The {{border}} must be a number of LRES voxels >= 0, got {border!r}.",
                         parameters=("border",))
    if data_range is not None and not (math.isfinite(float(data_range)) and float(data_range) > 0):
        raise InputError(f"The {{data_range}} must be a positive intensity range, got {data_range!r}.",
                         parameters=("data_range",))
    root = Path(pairs_dir)
    pairs, unpaired = find_pairs(root)
    ckpt = model if isinstance(model, Checkpoint) else load_checkpoint(model)
    model_name = f"in-memory {ckpt.architecture} model" if isinstance(model, Checkpoint) else str(model)
    if unpaired:
        shown = ", ".join(_rel(p, root) for p in unpaired[:10])
        more = f" and {len(unpaired) - 10} more" if len(unpaired) > 10 else ""
        warnings.warn(
            f"{len(unpaired)} image file(s) in {root} have no partner and were skipped: {shown}{more}. {NAMING}",
            ResolveWarning,
            stacklevel=2,
        )
    return EvalPlan(ckpt, model_name, root, tuple(pairs), tuple(_rel(p, root) for p in unpaired), lres_voxel_um,
                    hres_voxel_um, align, border, None if data_range is None else float(data_range), device, tile)


def iter_evaluate(plan: EvalPlan, *args, **kwargs) -> Generator[Progress, None, EvalResult]:
    """Run a planned evaluation: check every pair, then upscale and score them one by one.

    Parameters
    ----------
    plan : EvalPlan
        From :func:`plan_evaluate`. (Called with ``plan_evaluate``'s arguments
        instead, it plans first, for scripts written against 0.4.)

    Yields
    ------
    Progress
        ``step`` 0 while checking pairs, then ``step`` = pairs done, with a
        record per predicted tile in between (stopping takes effect at the next tile).

    Returns
    -------
    EvalResult

    Raises
    ------
    InputError, VoxelSizeError, FileFormatError
        While checking, for a pair whose files cannot be read, whose voxel sizes do
        not fit the model, or whose images do not show the same field; while
        scoring, for a constant HRES region. The message names the file.
    """
    if not isinstance(plan, EvalPlan):
        plan = plan_evaluate(plan, *args, **kwargs)
    return _evaluate(plan)


def _evaluate(plan: EvalPlan) -> Generator[Progress, None, EvalResult]:
    from napari_resolve.io import read_volume
    from napari_resolve.learn.inference import iter_predict
    from napari_resolve.measure.baselines import interpolate
    from napari_resolve.measure.similarity import FULL_SCALES_SIDE, MS_SSIM_WEIGHTS, ms_ssim_scales

    t0 = time.perf_counter()
    ckpt, pairs, device = plan.checkpoint, plan.pairs, plan.device
    n = len(pairs)
    # Metrics on CUDA when the network runs there; MPS lacks float64 sums, so the CPU there.
    q_device = "cuda" if device == "cuda" else ("cpu" if device in ("cpu", "mps") else None)

    def geometry(pair, lres, hres) -> _Geometry:
        return _pair_geometry(pair, lres, hres, ckpt, plan.lres_voxel_um, plan.hres_voxel_um, plan.align,
                              plan.border)

    # 1. Check every pair before any upscaling: a bad file late in a long batch
    #    would otherwise cost all the work before it.
    for i, pair in enumerate(pairs):
        yield Progress(0, n, f"checking {i + 1}/{n}: {pair.label}")
        geometry(pair, read_volume(pair.lres), read_volume(pair.hres))

    # 2. Upscale and score.
    rows: list[EvalRow] = []
    off_phase: list[str] = []
    dev_name = ""
    for i, pair in enumerate(pairs):
        t_pair = time.perf_counter()
        lres, hres = read_volume(pair.lres), read_volume(pair.hres)
        geo = geometry(pair, lres, hres)
        if geo.phase_off > PHASE_TOLERANCE:
            off_phase.append(pair.label)
        job = iter_predict(ckpt, lres.data, geo.lres_voxel, grid=geo.grid, device=device, tile=plan.tile)
        predicted = yield from forward(job, i, n, span=1, prefix=f"{pair.label}: ")
        dev_name = predicted.device
        cubic = interpolate(lres.data, geo.lres_voxel, geo.grid, "cubic")
        ref = np.asarray(hres.data[geo.box], dtype=np.float32)
        dr = plan.data_range if plan.data_range is not None else float(ref.max()) - float(ref.min())
        if not dr > 0:
            raise InputError(
                f"{pair.hres}: the compared HRES region is constant, so it has no intensity range for PSNR/SSIM. "
                "Remove this pair, or give the {data_range}.",
                parameters=("data_range",),
            )
        scales = ms_ssim_scales(ref.shape)
        row = EvalRow(
            category=pair.category,
            name=pair.name,
            lres_file=_rel(pair.lres, plan.root),
            hres_file=_rel(pair.hres, plan.root),
            shape=tuple(int(s) for s in ref.shape),
            hres_voxel_um=geo.grid.voxel_um,
            data_range=dr,
            ms_ssim_scales=scales,
            model=_scores(predicted.data, ref, dr, scales, q_device),
            cubic=_scores(cubic, ref, dr, scales, q_device),
            seconds=time.perf_counter() - t_pair,
        )
        rows.append(row)
        yield Progress(i + 1, n, f"{pair.label}: PSNR {row.model['psnr']:.2f} dB (cubic {row.cubic['psnr']:.2f}), "
                                 f"SSIM {row.model['ssim']:.3f} (cubic {row.cubic['ssim']:.3f})")

    notes = []
    if off_phase:
        notes.append(
            f"{len(off_phase)} pair(s) ({', '.join(off_phase[:5])}{' ...' if len(off_phase) > 5 else ''}) have "
            f"HRES grids more than {PHASE_TOLERANCE:g} HRES voxel off the phase the model was trained at; it sees "
            "their LRES at other sub-voxel positions and may score lower than on in-phase data. Check the "
            "alignment (align)."
        )
    few = sorted({r.ms_ssim_scales for r in rows if r.ms_ssim_scales < len(MS_SSIM_WEIGHTS)})
    if few:
        notes.append(
            f"MS-SSIM used {'/'.join(map(str, few))} of {len(MS_SSIM_WEIGHTS)} scales on some images (all need more "
            f"than {FULL_SCALES_SIDE} voxels a side in the compared region); those values are not comparable with "
            f"{len(MS_SSIM_WEIGHTS)}-scale MS-SSIM."
        )
    for note in notes:
        warnings.warn(note, ResolveWarning, stacklevel=2)
    return EvalResult(
        rows=rows,
        summaries=category_summaries(rows),
        unpaired=list(plan.unpaired),
        pairs_dir=str(plan.root),
        model=plan.model_name,
        align=plan.align,
        border_lres_voxels=plan.border,
        seconds=time.perf_counter() - t0,
        device=dev_name,
        notes=notes,
    )


def run_evaluate(model, pairs_dir, **kwargs) -> EvalResult:
    """:func:`plan_evaluate`, then :func:`iter_evaluate` run to the end (for scripts and tests)."""
    return drain(iter_evaluate(plan_evaluate(model, pairs_dir, **kwargs)))
