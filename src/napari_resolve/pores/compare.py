"""Several inputs' pores compared on the box where they all overlap: the Pores step and ``pores A B C``.

Inputs cover different fields (the LRES the whole sample, the registered HRES
and an upscaled region sub-volumes of it), so by default every input is
cropped to the world box (um, the LRES frame, ``docs/architecture.md``) common
to all of them, and its figures then describe the same piece of sample. Each
crop keeps its input's grid: its voxel 0 is the first input voxel whose
centre lies in the box (:func:`napari_resolve.geometry.overlap.crop_slices`),
so the labels of the crop lie exactly over the input.

The job is planned, then run: :func:`plan_compare_pores` checks the inputs,
finds the common box, crops and plans every analysis
(:func:`napari_resolve.pores.plan_analyse_pores`) on the caller's thread;
:func:`iter_compare_pores` measures the inputs in turn and yields, after each,
a :class:`napari_resolve.jobs.Progress` record whose ``data`` is a
:class:`MeasuredInput`; :func:`run_compare_pores` does both. The result rows
(:func:`summary_row`) and their CSV (:func:`write_csv`, :func:`write_tables`)
are shared by the widget and the command line.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_resolve._validate import per_axis, voxel_tuple
from napari_resolve.errors import InputError, ResolveError
from napari_resolve.geometry.overlap import crop_slices, overlap_region, region_text
from napari_resolve.jobs import Progress, drain, forward
from napari_resolve.pores.segment import PorePlan, iter_analyse_pores, plan_analyse_pores
from napari_resolve.pores.stats import PoreResult

__all__ = [
    "COMMON",
    "WHOLE",
    "ComparePlan",
    "MeasuredInput",
    "PoreComparison",
    "PoreInput",
    "iter_compare_pores",
    "min_volume_voxels",
    "plan_compare_pores",
    "pores_per_mm",
    "run_compare_pores",
    "summary_row",
    "write_csv",
    "write_tables",
]

#: ``region`` values: every input cropped to the common box, or each over its own extent.
COMMON = "common"
WHOLE = "whole"

#: Progress steps given to each input in the job's count.
STEPS_PER_INPUT = 100


@dataclass(frozen=True, eq=False)
class PoreInput:
    """One image to measure, placed in the world frame.

    Attributes
    ----------
    name : str
        How rows, records and messages call it (a layer or file name).
    image : array-like
        2D (y, x) or 3D (z, y, x) grey values; a lazy array (dask, zarr) is
        cropped before it is read.
    voxel_um : float or sequence of float
        Voxel size, um (napari's ``scale``).
    origin_um : sequence of float, optional
        Position (um) of the centre of voxel 0 (napari's ``translate``); zeros by default.
    sample_mask : array-like of bool, optional
        This input's sample mask on its own grid (the image's shape), e.g. one
        drawing carried onto each input by :func:`napari_resolve.pores.masks.mask_on_grid`
        or :func:`~napari_resolve.pores.masks.polygon_mask`; it is cropped with the
        image. None: the comparison's ``sample_mask`` choice.
    """

    name: str
    image: Any = field(repr=False)
    voxel_um: Any
    origin_um: Any = None
    sample_mask: Any = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class MeasuredInput:
    """One input measured: the ``data`` of the record :func:`iter_compare_pores` yields after it.

    Attributes
    ----------
    name : str
    result : PoreResult
    voxel_um : tuple of float
        Voxel size (um) of the measured array: the ``scale`` of its labels layer.
    origin_um : tuple of float
        Position (um) of the measured array's voxel 0 (the input's origin moved to the
        first voxel of the crop): the ``translate`` of its labels layer.
    region : tuple or None
        The world box (lo, hi) in um the input was cropped to; None for the whole input.
    box : tuple of slice
        The measured voxels of the input.
    """

    name: str
    result: PoreResult
    voxel_um: tuple[float, ...]
    origin_um: tuple[float, ...]
    region: tuple | None
    box: tuple[slice, ...]

    def row(self) -> dict:
        """The input's CSV row: its ``name`` and :func:`summary_row`."""
        return {"name": self.name, **summary_row(self.result, self.region)}

    def to_dict(self, name_of=None) -> dict:
        """The input's figures as plain Python values (strict JSON; the region is the comparison's).

        ``warnings`` holds the result's cautions (:attr:`PoreResult.warnings`), their
        parameters named as ``name_of`` says (:meth:`~napari_resolve.pores.stats.PoreWarning.render`).
        """
        row = summary_row(self.result, self.region)
        for key in ("region_lo_um", "region_hi_um", "voxel_z_um", "voxel_y_um", "voxel_x_um"):
            row.pop(key, None)
        return {
            "name": self.name,
            "shape": [int(n) for n in self.result.labels.shape],
            "voxel_um": [float(v) for v in self.voxel_um],
            "origin_um": [float(v) for v in self.origin_um],
            **row,
            "discarded_fraction": float(self.result.discarded_fraction),
            "warnings": [w.render(name_of) for w in self.result.warnings],
        }


@dataclass(frozen=True, eq=False)
class _Planned:
    name: str
    plan: PorePlan
    voxel_um: tuple[float, ...]
    origin_um: tuple[float, ...]
    box: tuple[slice, ...]


@dataclass(frozen=True, eq=False)
class ComparePlan:
    """A checked comparison (:func:`plan_compare_pores`): one planned analysis per input.

    Attributes
    ----------
    items : tuple
        Per input: its name, :class:`~napari_resolve.pores.PorePlan` (the crop), voxel
        size, origin of the crop (um) and the crop's slices of the input.
    region : tuple or None
        The common box (lo, hi) in um, or None when every input is measured whole.
    """

    items: tuple[_Planned, ...]
    region: tuple | None

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    @property
    def total(self) -> int:
        """Steps of the whole job."""
        return STEPS_PER_INPUT * len(self.items)


@dataclass(frozen=True, eq=False)
class PoreComparison:
    """What :func:`iter_compare_pores` returns: every input measured, in order.

    Attributes
    ----------
    measured : tuple of MeasuredInput
    region : tuple or None
        The common box (lo, hi) in um, or None (whole inputs).
    """

    measured: tuple[MeasuredInput, ...]
    region: tuple | None

    @property
    def results(self) -> dict[str, PoreResult]:
        """The results by input name."""
        return {m.name: m.result for m in self.measured}

    def rows(self) -> list[dict]:
        """One CSV row per input (:meth:`MeasuredInput.row`)."""
        return [m.row() for m in self.measured]

    def to_dict(self, name_of=None) -> dict:
        """The region (``lo_um``, ``hi_um``, ``size_um``; None for whole inputs) and one row per input.

        ``name_of`` names the parameters in the inputs' warnings (:meth:`MeasuredInput.to_dict`).
        """
        return {"region": region_dict(self.region), "inputs": [m.to_dict(name_of) for m in self.measured]}


def region_dict(region) -> dict | None:
    """A world box (lo, hi) in um as ``{"lo_um", "hi_um", "size_um"}`` lists; None stays None."""
    if region is None:
        return None
    lo, hi = (np.asarray(v, dtype=float) for v in region)
    return {"lo_um": lo.tolist(), "hi_um": hi.tolist(), "size_um": (hi - lo).tolist()}


def _as_input(item, index: int) -> PoreInput:
    if isinstance(item, PoreInput):
        return item
    if isinstance(item, Mapping):
        image = item.get("image", item.get("array"))
        if "name" not in item or image is None:
            raise InputError(f"Input {index + 1} lacks its name or image; give name, image (or array), voxel_um "
                             "and origin_um.")
        return PoreInput(item["name"], image, item.get("voxel_um"), item.get("origin_um"), item.get("sample_mask"))
    try:
        return PoreInput(*item)
    except TypeError:
        raise InputError(
            f"Input {index + 1} must be a PoreInput, a mapping or a (name, image, voxel_um, origin_um) "
            f"tuple, got {type(item).__name__}."
        ) from None


def plan_compare_pores(
    inputs: Sequence,
    *,
    region=COMMON,
    threshold="otsu",
    pores_are="dark",
    sample_mask="auto",
    edge_kill=True,
    min_diameter_um=0.0,
    closing_radius=1,
    split=True,
) -> ComparePlan:
    """Check a comparison of several inputs, find their common box and plan each analysis.

    Everything is checked here, on the caller's thread: the inputs and their
    geometry, the common box, and every analysis on its crop (an input's
    lazy array is cropped, then read here).

    Parameters
    ----------
    inputs : sequence of PoreInput
        The images with their voxel size and origin (um); a mapping with those
        keys or a ``(name, image, voxel_um, origin_um)`` tuple also do. Names
        must differ.
    region : "common", "whole" or (lo, hi)
        ``"common"``: every input cropped to the world box (um) where all of
        them overlap (with one input: the whole input); ``"whole"``: each over
        its own extent; a box ``(lo, hi)`` in um: every input cropped to it.
    threshold : "otsu" or float
        As :func:`~napari_resolve.pores.plan_analyse_pores`: Otsu per input, or
        one grey value for all, within every crop's range.
    pores_are, edge_kill, closing_radius, split
        As :func:`~napari_resolve.pores.plan_analyse_pores`, for every input.
    sample_mask : "auto" or None
        As :func:`~napari_resolve.pores.plan_analyse_pores`, for the inputs
        without their own :attr:`PoreInput.sample_mask` (one array cannot fit
        inputs on different grids).
    min_diameter_um : float
        Pore objects of a smaller equivalent diameter (um) are noise
        (:func:`min_volume_voxels` on each input's grid); 0: the analysis's default.

    Returns
    -------
    ComparePlan

    Raises
    ------
    InputError
        For no inputs, repeated names, inputs without a common box or mixing 2D
        and 3D (with ``"common"``), a crop without voxels, or an input its
        analysis refuses (the message starts with the input's name).
    VoxelSizeError
        If an input's voxel size is missing or invalid.
    """
    items = [_as_input(item, i) for i, item in enumerate(inputs)]
    if not items:
        raise InputError("Give at least one image ({inputs}) to measure.", parameters=("inputs",))
    names = [item.name for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"The inputs' names must differ; {', '.join(map(repr, repeated))} is given more than once.",
                         parameters=("inputs",))
    if not (sample_mask is None or (isinstance(sample_mask, str) and sample_mask == "auto")):
        raise InputError(f'{{sample_mask}} must be "auto" or None when inputs are compared, got {sample_mask!r}.',
                         parameters=("sample_mask",))
    try:
        min_d = float(min_diameter_um)
    except (TypeError, ValueError):
        min_d = math.nan
    if not (math.isfinite(min_d) and min_d >= 0):
        raise InputError(f"{{min_diameter_um}} must be a length >= 0 in um, got {min_diameter_um!r}.",
                         parameters=("min_diameter_um",))

    geometries = {}
    for item in items:
        shape = tuple(int(n) for n in np.shape(item.image))
        try:
            voxel = voxel_tuple(item.voxel_um, len(shape)) if len(shape) in (2, 3) else ()
            origin = (per_axis(0.0 if item.origin_um is None else item.origin_um, len(shape), "The origin",
                               minimum="any") if len(shape) in (2, 3) else ())
        except ResolveError as exc:
            raise exc.prefixed(f"{item.name}: ") from None
        if len(shape) not in (2, 3):
            raise InputError(f"{item.name}: must be a 2D (y, x) image or a 3D (z, y, x) volume, got shape {shape}.")
        geometries[item.name] = (shape, voxel, origin)

    box_um = _region(region, geometries)
    planned = []
    for item in items:
        shape, voxel, origin = geometries[item.name]
        image = item.image
        box = tuple(slice(0, n) for n in shape)
        if box_um is not None:
            if len(box_um[0]) != len(shape):
                raise InputError(f"{item.name} is {len(shape)}D but the {{region}} box has {len(box_um[0])} axes.",
                                 parameters=("region",))
            box = crop_slices(shape, voxel, origin, *box_um)
            if any(s.stop - s.start < 1 for s in box):
                raise InputError(
                    f"{item.name} has no voxel centre inside the region {region_text(box_um)}. Pick inputs that "
                    "overlap more, or measure every input whole ({region}).",
                    parameters=("region",),
                )
            # Slicing keeps a lazy array lazy: only the crop is read, below.
            image = image[box]
            origin = tuple(o + s.start * v for o, s, v in zip(origin, box, voxel))
        mask = sample_mask
        if item.sample_mask is not None:
            mask = np.asarray(item.sample_mask)
            if tuple(mask.shape) != shape:
                raise InputError(f"{item.name}: its sample mask has shape {tuple(mask.shape)} but the image has "
                                 f"{shape}; give the mask on the image's grid.", parameters=("sample_mask",))
            mask = mask[box]
        try:
            plan = plan_analyse_pores(
                np.asarray(image), voxel, threshold=threshold, pores_are=pores_are, sample_mask=mask,
                edge_kill=edge_kill, closing_radius=closing_radius, split=split,
                min_volume_voxels=min_volume_voxels(min_d, voxel),
            )
        except ResolveError as exc:  # the analysis says "image"; say which input
            raise exc.prefixed(f"{item.name}: ") from None
        planned.append(_Planned(item.name, plan, voxel, tuple(float(o) for o in origin), box))
    return ComparePlan(tuple(planned), box_um)


def _region(region, geometries: dict) -> tuple | None:
    """The world box to crop to, or None (whole inputs)."""
    if isinstance(region, str):
        if region == WHOLE or (region == COMMON and len(geometries) == 1):  # one input overlaps itself
            return None
        if region == COMMON:
            return overlap_region(geometries)
        raise InputError(f'{{region}} must be "{COMMON}", "{WHOLE}" or a box (lo, hi) in um, got {region!r}.',
                         parameters=("region",))
    try:
        lo, hi = (tuple(float(v) for v in corner) for corner in region)
    except (TypeError, ValueError):
        raise InputError(f'{{region}} must be "{COMMON}", "{WHOLE}" or a box (lo, hi) in um, got {region!r}.',
                         parameters=("region",)) from None
    if len(lo) != len(hi) or not all(math.isfinite(a) and math.isfinite(b) and a < b for a, b in zip(lo, hi)):
        raise InputError(f"The {{region}} box must have lo < hi on every axis (um), got {lo} and {hi}.",
                         parameters=("region",))
    return lo, hi


def iter_compare_pores(plan: ComparePlan) -> Generator[Progress, None, PoreComparison]:
    """Measure every input of a plan in turn.

    Yields
    ------
    napari_resolve.jobs.Progress
        The analyses' records as steps of the whole job (:data:`STEPS_PER_INPUT`
        per input), their messages starting with the input's name; after each
        input, a record whose ``data`` is its :class:`MeasuredInput`.

    Returns
    -------
    PoreComparison
    """
    measured = []
    count, total = len(plan.items), plan.total
    for i, item in enumerate(plan.items):
        result = yield from forward(iter_analyse_pores(item.plan), STEPS_PER_INPUT * i, total, span=STEPS_PER_INPUT,
                                    prefix=f"{item.name} ({i + 1}/{count}): ")
        done = MeasuredInput(item.name, result, item.voxel_um, item.origin_um, plan.region, item.box)
        measured.append(done)
        yield Progress(STEPS_PER_INPUT * (i + 1), total,
                       f"{item.name}: {result.count} pores, porosity {100 * result.porosity:.1f} %", data=done)
    return PoreComparison(tuple(measured), plan.region)


def run_compare_pores(inputs: Sequence, **options) -> PoreComparison:
    """:func:`plan_compare_pores` (same arguments), then the job run to its end."""
    return drain(iter_compare_pores(plan_compare_pores(inputs, **options)))


def min_volume_voxels(diameter_um: float, voxel_um) -> int | None:
    """Voxels of the smallest kept pore object of equivalent diameter ``diameter_um`` (um).

    ``None`` (the analysis's default noise removal) for 0. Never below that
    default (8 voxels in 3D, 4 pixels in 2D), so noise removal stays on.
    """
    if diameter_um <= 0:
        return None
    ndim = len(voxel_um)
    cell = float(np.prod(voxel_um))
    size = math.pi / 6 * diameter_um**3 if ndim == 3 else math.pi / 4 * diameter_um**2
    return max(8 if ndim == 3 else 4, math.ceil(size / cell - 1e-9))


def pores_per_mm(result: PoreResult) -> float:
    """Counted pores per mm^3 of sample (per mm^2 in 2D): compares fields of different size."""
    s = result.summary()
    sample = s["sample_volume_um3"] if result.ndim == 3 else s["sample_area_um2"]
    per_um = result.count / sample if sample else 0.0
    return per_um * (1e9 if result.ndim == 3 else 1e6)


def summary_row(result: PoreResult, region=None) -> dict:
    """One input's figures for a table and the CSV, with units in the keys.

    ``region`` is the world box (lo, hi) in um the input was cropped to; the
    row gives each corner as "z y x" (None for a whole input).
    """
    s = result.summary()
    three = result.ndim == 3
    voxel = [float(v) for v in result.voxel_um]
    row = {
        "ndim": result.ndim,
        "porosity_percent": 100 * s["porosity"],
        "pore_count": s["count"],
        ("pores_per_mm3" if three else "pores_per_mm2"): pores_per_mm(result),
        "mean_diameter_um": s["mean_diameter_um"],
        "median_diameter_um": s["median_diameter_um"],
        ("mean_sphericity" if three else "mean_circularity"): s["mean_sphericity"],
        "voxel_z_um": voxel[0] if three else None,
        "voxel_y_um": voxel[-2],
        "voxel_x_um": voxel[-1],
        "threshold": s["threshold"],
        "region_lo_um": None if region is None else " ".join(f"{v:.12g}" for v in region[0]),
        "region_hi_um": None if region is None else " ".join(f"{v:.12g}" for v in region[1]),
    }
    for key in ("pore_volume_um3", "sample_volume_um3", "pore_area_um2", "sample_area_um2"):
        if key in s:
            row[key] = s[key]
    return row


def sanitise(name: str) -> str:
    """A name made safe for a file name: ``"LRES foam 3um"`` -> ``"LRES_foam_3um"``."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "input"


def write_csv(path, rows: Sequence[Mapping], *, overwrite: bool = False, inputs: Sequence = (),
              parameter: str = "output") -> Path:
    """Write rows side by side, one line each; the columns are every key, in order of appearance.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.csv`` file. It appears complete or not at all (:func:`napari_resolve.io.atomic_path`).
    rows : sequence of mapping
        E.g. :meth:`PoreComparison.rows`. None is written as an empty cell, floats in full precision.
    overwrite : bool
        Replace an existing file; without it an existing file is refused, untouched.
    inputs : sequence of path
        The job's input files, which the output may never be.
    parameter : str
        The caller's name of the output, for messages.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileFormatError
        As :func:`napari_resolve.io.check_output`.
    """
    from napari_resolve.io import atomic_path, check_output

    path = check_output(path, inputs=inputs, overwrite=overwrite, parameter=parameter)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row.get(c)) for c in columns])
    return path


def per_pore_paths(path, names: Sequence[str]) -> dict[str, Path]:
    """The per-pore tables next to a summary ``path``: ``<stem>_<name>.csv``, distinct where names sanitise alike."""
    path = Path(path)
    out: dict[str, Path] = {}
    used = {path.name.lower()}
    for name in names:
        base = f"{path.stem}_{sanitise(name)}"
        candidate, n = f"{base}.csv", 2
        while candidate.lower() in used:
            candidate, n = f"{base}_{n}.csv", n + 1
        used.add(candidate.lower())
        out[name] = path.with_name(candidate)
    return out


def write_tables(path, measured: Sequence[MeasuredInput], *, overwrite: bool = False) -> list[Path]:
    """Write the summary (one row per input) and, next to it, one per-pore table per input.

    Parameters
    ----------
    path : str or os.PathLike
        The summary file (``.csv`` is added if there is no suffix); the per-pore
        tables are :func:`per_pore_paths` (see :meth:`~napari_resolve.pores.PoreResult.to_csv`),
        named in the summary's ``per_pore_file`` column.
    measured : sequence of MeasuredInput
    overwrite : bool
        Replace existing files. Without it nothing is written if any of the files exists.

    Returns
    -------
    list of pathlib.Path
        The files written, the summary first.

    Raises
    ------
    FileFormatError
        As :func:`napari_resolve.io.check_output`, for any of the files, before any is written.
    """
    from napari_resolve.io import check_output

    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".csv")
    per_input = per_pore_paths(path, [m.name for m in measured])
    targets = [path, *per_input.values()]
    for target in targets:
        check_output(target, overwrite=overwrite)
    rows = [{**m.row(), "per_pore_file": per_input[m.name].name} for m in measured]
    write_csv(path, rows, overwrite=overwrite)
    for m in measured:
        m.result.to_csv(per_input[m.name])
    return targets


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)
