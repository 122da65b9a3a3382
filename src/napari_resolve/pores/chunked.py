"""Pore statistics of volumes larger than memory: chunks with an overlap, run on dask.

The volume is cut into chunks (cores); each is segmented by the whole-volume
route of :mod:`napari_resolve.pores.segment` (the same functions) on the core
extended by a halo of ``overlap`` voxels on each side, clipped at the volume.
This is the "overlap + ownership" rule of blockwise segmentation (dask-image's
``ndmeasure.label`` and cellpose's ``contrib/distributed_segmentation.py``
work block by block the same way; here pores are measured whole inside one
block instead of merged across blocks):

- one global threshold first: Otsu's method on the histogram of the whole
  volume (the sample voxels of a given mask), summed chunk by chunk over the
  volume's grey-value range found in a first pass: the histogram
  ``skimage.filters.threshold_otsu`` would compute, so the threshold is exact;
- a voxel of an extended block is exact (as in the whole volume) farther than
  the closing's reach from the block's internal faces (those that are not the
  volume border). A pore object (a connected part of the pore phase after
  closing and noise removal; the watershed splits each on its own) that stays
  off that band is an object of the whole volume, split and measured exactly
  as there;
- an object belongs to the chunk whose core holds its first voxel in raster
  order (global coordinates), and all its pores with it: each pore is counted
  once;
- an object that reaches the band of the chunk holding its first voxel is
  larger than the overlap and cannot be measured whole. Such pieces are
  counted (``too_large``), left out of the table, kept in the porosity, and the
  result warns to raise the overlap (merging by label equivalence would give
  counts and volumes but not the watershed split or the surface of the merged
  object). An open pore network that percolates through the volume (a foam of
  50 % porosity) is one such object: measure it whole;
- porosity = pore voxels / sample voxels summed over the cores (exact once the
  overlap covers the closing's reach, which the plan requires; a noise object
  cut by the band of a core it reaches could be removed as too small there
  and not in the whole volume: those voxels are counted, ``uncertain_voxels``,
  and warned about);
- edge-kill applies only at the volume border (and the sample boundary).

Tasks read their own block (the image is a numpy, zarr or dask array; a
``distributed.Client`` gets the work as futures, else dask's threaded or
synchronous scheduler runs it in waves) and return small per-pore tables,
never label images. Checked against :func:`~napari_resolve.pores.segment.analyse_pores`
on volumes that fit (``tests/pores/test_chunked.py``).
"""

from __future__ import annotations

import itertools
import math
import os
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from napari_resolve._validate import per_axis, voxel_tuple
from napari_resolve.errors import InputError
from napari_resolve.jobs import Progress, drain
from napari_resolve.pores.blocks import NBINS, block_histogram, block_range, outline_block, read_block, segment_block
from napari_resolve.pores.compare import min_volume_voxels
from napari_resolve.pores.segment import DISCARD_WARNING, _discard_warning, _number
from napari_resolve.pores.stats import COLUMNS_3D, PoreResult, PoreWarning

__all__ = ["ChunkedPorePlan", "ChunkedPoreResult", "iter_chunked_pores", "plan_chunked_pores", "run_chunked_pores"]

@dataclass(frozen=True)
class _Options:
    """The per-block settings every task gets (small: pickled into each task)."""

    voxel_um: tuple[float, ...]
    pores_are: str
    closing_radius: float
    min_volume_voxels: float
    split: bool
    split_h_um: float

    @property
    def reach(self) -> tuple[int, ...]:
        """Voxels per axis from an internal block face within which a block differs from the volume."""
        r_um = self.closing_radius * min(self.voxel_um)
        return tuple(2 * math.floor(r_um / v) + 1 if self.closing_radius > 0 else 1 for v in self.voxel_um)


@dataclass(frozen=True, eq=False)
class ChunkedPorePlan:
    """A checked chunked pore analysis (:func:`plan_chunked_pores`); the image is not read.

    Attributes
    ----------
    image, sample_mask : array
        The (z, y, x) volume and None or a mask of its shape (numpy, zarr or dask).
    options : _Options
        Voxel size (um), ``pores_are`` and the segmentation settings.
    chunk_shape, overlap : tuple of int
        Core and halo per axis, voxels.
    threshold : "otsu" or float
    edge_kill : bool
    client, scheduler, workers
        Where the tasks run.
    """

    image: object = field(repr=False)
    sample_mask: object = field(repr=False)
    options: _Options
    chunk_shape: tuple[int, ...]
    overlap: tuple[int, ...]
    threshold: str | float = "otsu"
    edge_kill: bool = True
    client: object = field(default=None, repr=False)
    scheduler: str = "threads"
    workers: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.image.shape)

    @property
    def overlap_um(self) -> tuple[float, ...]:
        return tuple(h * v for h, v in zip(self.overlap, self.options.voxel_um))

    def cores(self) -> list[tuple[slice, ...]]:
        """Every chunk's core, in raster order of the chunk grid."""
        starts = [range(0, n, c) for n, c in zip(self.shape, self.chunk_shape)]
        return [tuple(slice(s, min(s + c, n)) for s, c, n in zip(first, self.chunk_shape, self.shape))
                for first in itertools.product(*starts)]


@dataclass
class ChunkedPoreResult:
    """Pore statistics of a chunked analysis: a :class:`~napari_resolve.pores.stats.PoreResult` without images.

    Attributes
    ----------
    table : dict of str to numpy.ndarray
        :data:`~napari_resolve.pores.stats.COLUMNS_3D`, one row per counted pore
        (um, um^2, um^3), in raster order of each pore's first voxel; labels 1..n.
    voxel_um : tuple of float
    threshold : float
    porosity : float
        Pore voxels / sample voxels, 0..1 (edge-killed and too-large pores included).
    pore_voxels, sample_voxels : int
    discarded_fraction : float
        As :attr:`PoreResult.discarded_fraction` (0 without a sample mask).
    warnings : tuple of PoreWarning
    chunks : int
    chunk_shape : tuple of int
        Voxels.
    overlap_um : tuple of float
        The halo per axis, um.
    too_large : int
        Pieces of pores that reach past the overlap in the chunk owning them (left out of the table).
    uncertain_voxels : int
        Core voxels of noise objects cut by a halo's edge, whose removal may differ from the whole volume's.
    """

    table: dict[str, np.ndarray]
    voxel_um: tuple[float, ...]
    threshold: float
    porosity: float
    pore_voxels: int
    sample_voxels: int
    discarded_fraction: float = 0.0
    warnings: tuple[PoreWarning, ...] = ()
    chunks: int = 0
    chunk_shape: tuple[int, ...] = ()
    overlap_um: tuple[float, ...] = ()
    too_large: int = 0
    uncertain_voxels: int = 0

    ndim = 3
    size_column = "volume_um3"
    count = PoreResult.count
    to_csv = PoreResult.to_csv
    size_histogram = PoreResult.size_histogram

    def summary(self) -> dict:
        """:meth:`PoreResult.summary`'s keys, plus ``chunks``, ``chunk_shape``, ``overlap_um``, ``too_large``
        and ``uncertain_voxels``."""
        d, s = self.table["diameter_um"], self.table["sphericity"]
        cell = float(np.prod(self.voxel_um))
        return {
            "porosity": float(self.porosity), "count": self.count,
            "mean_diameter_um": float(d.mean()) if d.size else None,
            "median_diameter_um": float(np.median(d)) if d.size else None,
            "mean_sphericity": float(s.mean()) if s.size else None,
            "pore_volume_um3": self.pore_voxels * cell, "sample_volume_um3": self.sample_voxels * cell,
            "threshold": float(self.threshold), "voxel_um": [float(v) for v in self.voxel_um], "ndim": 3,
            "discarded_fraction": float(self.discarded_fraction), "warnings": [str(w) for w in self.warnings],
            "chunks": self.chunks, "chunk_shape": list(self.chunk_shape),
            "overlap_um": [float(v) for v in self.overlap_um], "too_large": self.too_large,
            "uncertain_voxels": self.uncertain_voxels,
        }


def plan_chunked_pores(image, voxel_um, *, chunks, overlap_um=None, threshold="otsu", pores_are="dark",
                       sample_mask="none", keep_edge_pores=False, min_diameter_um=0.0, closing_radius=1,
                       split=True, split_h_um=None, client=None, scheduler="threads",
                       workers=None) -> ChunkedPorePlan:
    """Check a chunked pore analysis on the caller's thread, without reading a lazy volume.

    Parameters
    ----------
    image : numpy, zarr or dask array
        The 3D (z, y, x) grey-value volume; it must be sliceable (a block is read per task).
    voxel_um : float or sequence of float
        Voxel size, um (one value or z, y, x).
    chunks : int or sequence of int
        The core of a chunk, voxels per axis (one value: a cube).
    overlap_um : float or sequence of float, optional
        The halo around each core, um per axis: more than the largest pore's
        size plus the closing's reach, or such pores are left out of the table
        (and warned about). At least the closing's reach. Default: a quarter
        of the chunk (and at least the reach).
    threshold : "otsu" or float
        As :func:`~napari_resolve.pores.segment.plan_analyse_pores`; Otsu on the
        global histogram. A number is checked against the image's range here
        for a numpy array, after the segmentation pass for a lazy one.
    pores_are : {"dark", "bright"}
    sample_mask : "none" or array of bool
        ``"none"`` (or None): the whole volume is the sample. An array (numpy,
        zarr, dask) of the image's shape: that mask. ``"auto"`` is refused: it
        fills holes slice by slice and keeps the largest connected part of the
        solid, which no block can decide on its own; make the mask once (e.g. on
        a downsampled volume, upsampled) and pass it.
    keep_edge_pores : bool
        Keep the pores cut by the volume border (and the sample boundary) in the table.
    min_diameter_um : float
        Pore objects of a smaller equivalent diameter are noise (0: under 8 voxels).
    closing_radius, split, split_h_um
        As :func:`~napari_resolve.pores.segment.plan_analyse_pores`.
    client : distributed.Client, optional
        Run the tasks on this cluster.
    scheduler : {"threads", "synchronous"}
        dask's local scheduler without a client.
    workers : int, optional
        Threads of the threaded scheduler (default: the CPU count).

    Returns
    -------
    ChunkedPorePlan

    Raises
    ------
    InputError, VoxelSizeError
        With the parameter named (image not 3D, bad chunks, a negative or too small overlap...).
    """
    img = image if hasattr(image, "shape") and hasattr(image, "__getitem__") else np.asarray(image)
    if len(img.shape) != 3:
        raise InputError(f"The chunked pore analysis takes a 3D (z, y, x) {{image}}, got shape {tuple(img.shape)}; "
                         "analyse a 2D image whole (analyse_pores).", parameters=("image",))
    dtype = np.dtype(img.dtype)
    if min(img.shape) < 1 or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputError(f"The {{image}} must hold real numbers and no empty axis, got shape {tuple(img.shape)} "
                         f"of {dtype}.", parameters=("image",))
    voxel = voxel_tuple(voxel_um, 3)
    chunk = _chunk_shape(chunks)
    if pores_are not in ("dark", "bright"):
        raise InputError(f'{{pores_are}} must be "dark" or "bright", got {pores_are!r}.', parameters=("pores_are",))
    if not (isinstance(min_diameter_um, (int, float)) and min_diameter_um >= 0):
        raise InputError(f"{{min_diameter_um}} must be a length >= 0 in um, got {min_diameter_um!r}.",
                         parameters=("min_diameter_um",))
    opts = _Options(voxel, pores_are, _number(closing_radius, "closing_radius", "voxels"),
                    float(min_volume_voxels(min_diameter_um, voxel) or 8), bool(split),
                    _number(max(voxel) if split_h_um is None else split_h_um, "split_h_um", "um"))
    if opts.split_h_um == 0:
        raise InputError("{split_h_um} must be a positive length in um, got 0.", parameters=("split_h_um",))
    reach = opts.reach
    if overlap_um is None:
        halo = tuple(max(r, math.ceil(c / 4)) for r, c in zip(reach, chunk))
    else:
        given = per_axis(overlap_um, 3, "The overlap", minimum="non-negative", parameter="overlap_um")
        halo = tuple(math.ceil(o / v - 1e-9) for o, v in zip(given, voxel))
        short = [(h, r, v) for h, r, v in zip(halo, reach, voxel) if h < r]
        if short:
            need = max(r * v for _, r, v in short)
            raise InputError(f"The {{overlap_um}} of {_fmt(given)} um is less than the closing's reach ({need:g} um): "
                             "block borders would change the pores next to them. Give at least that, better more "
                             "than the largest pore.", parameters=("overlap_um",))

    mask = None
    if isinstance(sample_mask, str) or sample_mask is None:
        if sample_mask == "auto":
            raise InputError("An automatic {sample_mask} ('auto') needs the whole volume at once (holes filled per "
                             "slice, the largest solid part): give 'none' (the whole field) or a mask array.",
                             parameters=("sample_mask",))
        if sample_mask not in (None, "none"):
            raise InputError(f"{{sample_mask}} must be 'none' or a boolean array, got {sample_mask!r}.",
                             parameters=("sample_mask",))
    else:
        mask = sample_mask if hasattr(sample_mask, "shape") else np.asarray(sample_mask)
        if tuple(mask.shape) != tuple(img.shape):
            raise InputError(f"The {{sample_mask}} has shape {tuple(mask.shape)} but the image {tuple(img.shape)}.",
                             parameters=("sample_mask",))
        if isinstance(mask, np.ndarray) and not mask.any():
            raise InputError("The {sample_mask} selects no voxels.", parameters=("sample_mask",))

    t: str | float = threshold
    if not (isinstance(threshold, str) and threshold == "otsu"):
        try:
            t = float(threshold)
        except (TypeError, ValueError):
            raise InputError(f'{{threshold}} must be "otsu" or a number, got {threshold!r}.',
                             parameters=("threshold",)) from None
    if isinstance(img, np.ndarray):  # in memory: checked now, as the whole-volume route does
        _check_values(*block_range(img, None), t)
    if scheduler not in ("threads", "synchronous"):
        raise InputError(f'{{scheduler}} must be "threads" or "synchronous", got {scheduler!r}.',
                         parameters=("scheduler",))
    if workers is not None and not (isinstance(workers, int) and workers >= 1):
        raise InputError(f"{{workers}} must be a whole number >= 1, got {workers!r}.", parameters=("workers",))
    return ChunkedPorePlan(image=img, sample_mask=mask, options=opts, chunk_shape=chunk, overlap=halo,
                           threshold=t, edge_kill=not keep_edge_pores, client=client, scheduler=scheduler,
                           workers=workers)


def run_chunked_pores(image, voxel_um, **options) -> ChunkedPoreResult:
    """:func:`plan_chunked_pores`, then the job run to its end (same arguments)."""
    return drain(iter_chunked_pores(plan_chunked_pores(image, voxel_um, **options)))


def iter_chunked_pores(plan: ChunkedPorePlan) -> Generator[Progress, None, ChunkedPoreResult]:
    """Run a chunked pore analysis, yielding one record per wave of finished tasks.

    Passes: the grey-value range and the histogram (Otsu only), the
    segmentation of every chunk, and the sample's outline (a given mask only,
    by slabs of whole slices, for the discarded fraction). ``step``/``total``
    count tasks over all passes; ``remaining_s`` is estimated in the
    segmentation pass from its own rate. ``data`` is None.

    Returns
    -------
    ChunkedPoreResult
    """
    cores = plan.cores()
    n, otsu, shape = len(cores), plan.threshold == "otsu", plan.shape
    plane = shape[1] * shape[2]
    thick = max(1, int(np.prod(plan.chunk_shape)) // plane)
    slabs = [(z, min(z + thick, shape[0])) for z in range(0, shape[0], thick)] if plan.sample_mask is not None else []
    total = n * (3 if otsu else 1) + len(slabs)
    read, step = _reader(plan), 0

    def full(sl):
        return read(plan.image, sl), None if plan.sample_mask is None else read(plan.sample_mask, sl)

    import dask

    def task(fn):
        return dask.delayed(fn, pure=False)

    if otsu:
        ranges = yield from _run_tasks(plan, [task(block_range)(*full(c)) for c in cores], step, total,
                                       "grey-value range")
        step += n
        found = [r for r in ranges if r[2]]
        lo, hi = (min(r[0] for r in found), max(r[1] for r in found)) if found else (0.0, 0.0)
        _check_values(lo, hi, sum(r[2] for r in ranges), sum(r[3] for r in ranges), None)
        hists = yield from _run_tasks(plan, [task(block_histogram)(*full(c), lo, hi) for c in cores], step, total,
                                      "histogram")
        step += n
        t = _otsu(np.sum(hists, axis=0), lo, hi)
    else:
        t = float(plan.threshold)

    calls = []
    for core in cores:
        ext = tuple(slice(max(c.start - h, 0), min(c.stop + h, s)) for c, h, s in zip(core, plan.overlap, shape))
        inner = tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(core, ext))
        band = tuple((0 if e.start == 0 else r, 0 if e.stop == s else r)
                     for e, s, r in zip(ext, shape, plan.options.reach))
        faces = tuple((ax, i) for ax, (e, s) in enumerate(zip(ext, shape))
                      for i, at_border in ((0, e.start == 0), (-1, e.stop == s)) if at_border)
        calls.append(task(segment_block)(*full(ext), t, plan.options, inner, tuple(e.start for e in ext),
                                         faces if plan.edge_kill else None, band))
    parts = yield from _run_tasks(plan, calls, step, total, "segmenting", estimate=True)
    step += n
    pore_voxels, sample_voxels = sum(p["pores"] for p in parts), sum(p["sample"] for p in parts)
    _check_values(min(p["lo"] for p in parts), max(p["hi"] for p in parts), sample_voxels,
                  sum(p["bad"] for p in parts), None if otsu else t)

    discarded = 0.0
    if slabs and sample_voxels < int(np.prod(shape)):
        counts = yield from _run_tasks(plan, [task(outline_block)(*full((slice(*z),)), t, plan.options.pores_are)
                                              for z in slabs], step, total, "sample outline", unit="slabs")
        inside, left_out = np.sum(counts, axis=0)
        discarded = float(left_out / inside) if inside else 0.0
    result = _merge(plan, parts, t, pore_voxels, sample_voxels, discarded)
    yield Progress(total, total, f"{result.count} pores, porosity {100 * result.porosity:.1f} % ({n} chunks)")
    return result


# ----------------------------------------------------------------------------
# helpers


def _chunk_shape(chunks) -> tuple[int, ...]:
    """``chunks`` as 3 whole numbers >= 1, or an InputError naming it."""
    values = (chunks,) * 3 if np.isscalar(chunks) else tuple(chunks) if np.iterable(chunks) else (chunks,)
    if len(values) == 1:
        values = values * 3
    ok = len(values) == 3 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                  for v in values)
    if not ok:
        raise InputError(f"{{chunks}} must be one whole number of voxels >= 1 (a cube) or three (z, y, x), "
                         f"got {chunks!r}.", parameters=("chunks",))
    return tuple(int(v) for v in values)


def _check_values(lo, hi, n_sample, bad, t) -> None:
    """Refusals that need the voxel values (now for a numpy array, after a pass for a lazy one)."""
    if bad:
        raise InputError(f"The {{image}} contains {bad} NaN or infinite voxels. Replace them (for example with the "
                         "median of the volume) or crop them away before continuing.", parameters=("image",))
    if not n_sample:
        raise InputError("The {sample_mask} selects no voxels.", parameters=("sample_mask",))
    if t is not None and t != "otsu" and not (lo <= t <= hi):
        raise InputError(f"The {{threshold}} {t:g} lies outside the image range [{lo:g}, {hi:g}], so every voxel "
                         "would fall on one side. Choose a value inside it, or 'otsu'.", parameters=("threshold",))


def _otsu(counts, lo, hi) -> float:
    """``threshold_otsu`` of the whole volume from its summed histogram (same bins, same centres)."""
    from skimage.filters import threshold_otsu

    if lo == hi:  # a constant volume: threshold_otsu returns its value
        return float(lo)
    edges = np.histogram(np.asarray([lo], dtype=np.float32), bins=NBINS, range=(lo, hi))[1]  # the tasks' bins
    return float(threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2.0)))


def _reader(plan):
    """How a task gets a block: a slice of a dask array, or a read of the one shared array key."""
    import dask
    from dask.array import Array

    keys: dict[int, object] = {}

    def read(array, sl):
        if isinstance(array, Array):
            return array[sl]
        if id(array) not in keys:  # one graph key per array: shipped once, not once per task
            keys[id(array)] = dask.delayed(array, name=f"pores-source-{uuid.uuid4().hex}", traverse=False)
        return dask.delayed(read_block, pure=False)(keys[id(array)], sl)

    return read


def _run_tasks(plan, calls, step, total, what, estimate=False, unit="chunks") -> Generator[Progress, None, list]:
    """Compute dask tasks on the plan's client or local scheduler; yield progress, return results in order."""
    import dask

    results: list = [None] * len(calls)
    start, done = time.monotonic(), 0

    def record():
        left = None
        if estimate and done:
            left = (time.monotonic() - start) / done * (len(calls) - done)
        return Progress(step + done, total, f"{what} ({done}/{len(calls)} {unit})", remaining_s=left)

    yield Progress(step, total, f"{what} (0/{len(calls)} {unit})")
    if plan.client is not None:
        from distributed import as_completed

        futures = plan.client.compute(calls)
        where = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                results[where[fut.key]] = fut.result()
                done += 1
                yield record()
        finally:
            plan.client.cancel(futures)
        return results
    wave = 2 * (plan.workers or os.cpu_count() or 2) if plan.scheduler == "threads" else 1
    for i in range(0, len(calls), wave):
        results[i:i + wave] = dask.compute(*calls[i:i + wave], scheduler=plan.scheduler, num_workers=plan.workers)
        done = min(len(calls), i + wave)
        yield record()
    return results


def _merge(plan, parts, t, pore_voxels, sample_voxels, discarded) -> ChunkedPoreResult:
    """One table from the chunks' owned pores (raster order of first voxels), and the warnings."""
    first = np.concatenate([p["first"] for p in parts])
    order = np.lexsort(first.T[::-1]) if first.size else np.zeros(0, dtype=np.int64)
    table = {c: np.concatenate([p["table"][c] for p in parts])[order] for c in COLUMNS_3D[1:]}
    table = {"label": np.arange(1, order.size + 1, dtype=np.int32), **table}
    too_large, uncertain = sum(p["too_large"] for p in parts), sum(p["uncertain"] for p in parts)
    notes = []
    where = f"({_fmt(plan.overlap_um)} um)"
    if too_large:
        notes.append(PoreWarning(
            f"{too_large} piece(s) of pores reach past the overlap {where} of the chunk that holds them: they count in "
            "the porosity but not in the pore count and sizes. Raise {overlap_um} above the largest pore's size.",
            ("overlap_um",)))
    if uncertain:
        notes.append(PoreWarning(
            f"{uncertain} voxels of small objects cut by an overlap's edge {where} may be counted differently from "
            "the whole volume's noise removal: raise {overlap_um}.", ("overlap_um",)))
    if discarded > DISCARD_WARNING:
        notes.append(_discard_warning(discarded, automatic=False))
    return ChunkedPoreResult(
        table=table, voxel_um=plan.options.voxel_um, threshold=t, porosity=pore_voxels / sample_voxels,
        pore_voxels=pore_voxels, sample_voxels=sample_voxels, discarded_fraction=discarded, warnings=tuple(notes),
        chunks=len(parts), chunk_shape=plan.chunk_shape, overlap_um=plan.overlap_um, too_large=too_large,
        uncertain_voxels=uncertain)


def _fmt(values) -> str:
    return " ".join(f"{v:g}" for v in values)
