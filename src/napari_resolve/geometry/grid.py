"""Regions of interest and output grids, in one place for training, inference and baselines.

Conventions (docs/architecture.md): arrays are (z, y, x); voxel ``i`` of a grid with
origin ``o`` (um) and voxel size ``v`` (um) has its centre at ``o + i * v``. The
LRES frame has the centre of LRES voxel 0 at the origin.

An upscaled LRES region is put on an HRES-sized grid *in phase* with the grid the
model was trained on (the registered HRES grid): its voxel centres are the HRES
voxel centres ``offset + n * hres_voxel`` extended over the whole LRES field. A
model thus always sees LRES samples at the same sub-voxel phases as in training,
and the result of two neighbouring regions tiles without a half-voxel jump.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import InputError

#: Share of an output voxel that may stick out of the ROI (see upscale_grid).
TOLERANCE = 0.05

_ROI_PART = re.compile(r"^\s*(-?\d*)\s*:\s*(-?\d*)\s*$")


def parse_roi(text: str, ndim: int, *, units: str = "voxels") -> tuple[slice, ...]:
    """Parse ``"Z0:Z1,Y0:Y1,X0:X1"`` (or ``"Y0:Y1,X0:X1"`` in 2D) into slices.

    Empty bounds mean "from the start" / "to the end", as in Python (``":,10:50,:"``).

    Parameters
    ----------
    text : str
        One ``start:stop`` pair per axis, separated by commas.
    ndim : int
        Number of axes of the volume the ROI applies to.
    units : str
        What the numbers count, for error messages (e.g. ``"LRES voxels"``).

    Raises
    ------
    InputError
        If the text is not ``ndim`` pairs of integers.
    """
    parts = text.split(",")
    if len(parts) != ndim:
        raise InputError(
            f"The ROI {text!r} has {len(parts)} part(s) but the volume has {ndim} axes; "
            f"give one start:stop pair in {units} per axis, e.g. "
            + ",".join(["0:32"] * ndim)
            + "."
        )
    out = []
    for part in parts:
        m = _ROI_PART.match(part)
        if not m:
            raise InputError(f"The ROI part {part!r} is not start:stop in {units} (e.g. 10:74).")
        lo, hi = (int(v) if v not in ("", "-") else None for v in m.groups())
        out.append(slice(lo, hi))
    return tuple(out)


def check_roi(roi: Sequence[slice] | None, shape: Sequence[int], what: str, *, min_size: int = 1) -> tuple[slice, ...]:
    """Resolve ``roi`` (slices, possibly open) against ``shape`` and check it.

    Parameters
    ----------
    roi : sequence of slice, optional
        The region; None means the whole volume.
    shape : sequence of int
        Shape of the volume the ROI indexes.
    what : str
        What the ROI indexes, for messages (e.g. ``"the LRES (LRES voxels)"``).
    min_size : int
        Smallest allowed extent on every axis.

    Returns
    -------
    tuple of slice
        Slices with explicit, non-negative ``start`` and ``stop`` and step 1.

    Raises
    ------
    InputError
        If the ROI has the wrong number of axes, a step, lies (partly) outside the
        volume or is smaller than ``min_size`` on an axis.
    """
    shape = tuple(int(s) for s in shape)
    if roi is None:
        roi = tuple(slice(0, s) for s in shape)
    roi = tuple(roi)
    if len(roi) != len(shape):
        raise InputError(f"The ROI has {len(roi)} axes but {what} has {len(shape)} (shape {shape}).")
    out = []
    for ax, (s, n) in enumerate(zip(roi, shape)):
        if s.step not in (None, 1):
            raise InputError("An ROI cannot have a step; give start:stop only.")
        lo = 0 if s.start is None else int(s.start)
        hi = n if s.stop is None else int(s.stop)
        lo, hi = (lo + n if lo < 0 else lo), (hi + n if hi < 0 else hi)
        if not 0 <= lo < hi <= n:
            raise InputError(
                f"The ROI {_fmt_roi(roi)} does not fit inside {what} of shape {shape}: axis {ax} "
                f"must satisfy 0 <= start < stop <= {n}."
            )
        if hi - lo < min_size:
            raise InputError(
                f"The ROI {_fmt_roi(roi)} is {hi - lo} voxels on axis {ax}; at least {min_size} are "
                "needed here. Choose a larger region."
            )
        out.append(slice(lo, hi))
    return tuple(out)


def _fmt_roi(roi: Sequence[slice]) -> str:
    return ",".join(f"{'' if s.start is None else s.start}:{'' if s.stop is None else s.stop}" for s in roi)


def format_roi(roi: Sequence[slice]) -> str:
    """The inverse of :func:`parse_roi` (``"z0:z1,y0:y1,x0:x1"``)."""
    return _fmt_roi(roi)


@dataclass(frozen=True)
class Grid:
    """A regular grid of voxel centres in the LRES frame.

    Attributes
    ----------
    shape : tuple of int
        Voxels per axis.
    voxel_um : tuple of float
        Voxel size (um).
    origin_um : tuple of float
        Centre of voxel 0 (um, LRES frame): the napari ``translate``.
    """

    shape: tuple[int, ...]
    voxel_um: tuple[float, ...]
    origin_um: tuple[float, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def sub(self, box: Sequence[slice]) -> Grid:
        """The grid of a box of this grid's voxels (slices with explicit bounds)."""
        return Grid(
            tuple(s.stop - s.start for s in box),
            self.voxel_um,
            tuple(o + s.start * v for o, s, v in zip(self.origin_um, box, self.voxel_um)),
        )

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "voxel_um": list(self.voxel_um), "origin_um": list(self.origin_um)}


def upscale_grid(
    roi: Sequence[slice],
    lres_voxel_um,
    hres_voxel_um,
    phase_origin_um=None,
) -> Grid:
    """The HRES-sized grid covering an LRES ROI, in phase with the training grid.

    Parameters
    ----------
    roi : sequence of slice
        LRES voxels (explicit bounds, see :func:`check_roi`).
    lres_voxel_um, hres_voxel_um : float or sequence of float
        Voxel sizes (um).
    phase_origin_um : sequence of float, optional
        Any voxel centre of the training grid (the registered HRES ``translate``).
        Without it the grid is aligned to the LRES voxel edges.

    Returns
    -------
    Grid
        The output voxels whose extent lies inside the ROI's physical extent
        (up to :data:`TOLERANCE` of a voxel), at least one per axis.
    """
    nd = len(roi)
    lv = np.array(voxel_tuple(lres_voxel_um, nd, "LRES voxel size"))
    hv = np.array(voxel_tuple(hres_voxel_um, nd, "HRES voxel size"))
    start = np.array([s.start for s in roi], float)
    stop = np.array([s.stop for s in roi], float)
    edge_lo = (start - 0.5) * lv
    edge_hi = (stop - 0.5) * lv
    if phase_origin_um is None:
        phase = edge_lo + 0.5 * hv  # first HRES voxel flush with the ROI's lower edge
    else:
        phase = np.asarray(phase_origin_um, float)
    # A registration is exact only to a fraction of a voxel: a voxel that sticks
    # out of the ROI by less than TOLERANCE of its size still belongs to it.
    n0 = np.ceil((edge_lo - phase) / hv + 0.5 - TOLERANCE)
    n1 = np.floor((edge_hi - phase) / hv - 0.5 + TOLERANCE)
    n1 = np.maximum(n1, n0)
    shape = tuple(int(v) for v in n1 - n0 + 1)
    origin = tuple(float(v) for v in phase + n0 * hv)
    return Grid(shape, tuple(float(v) for v in hv), origin)


def lres_box_for(grid: Grid, lres_voxel_um, lres_shape, halo: int = 0) -> tuple[slice, ...]:
    """LRES voxels needed to interpolate ``grid`` (plus ``halo`` voxels), clipped to the volume."""
    lv = np.array(voxel_tuple(lres_voxel_um, grid.ndim, "LRES voxel size"))
    lo = np.array(grid.origin_um) / lv
    hi = (np.array(grid.origin_um) + (np.array(grid.shape) - 1) * np.array(grid.voxel_um)) / lv
    a = np.maximum(np.floor(lo).astype(int) - halo, 0)
    b = np.minimum(np.ceil(hi).astype(int) + 1 + halo, np.array(lres_shape))
    return tuple(slice(int(i), int(j)) for i, j in zip(a, b))


def resample_lres(lres: np.ndarray, lres_voxel_um, grid: Grid, *, order: int = 3, halo: int = 12) -> np.ndarray:
    """Interpolate the LRES onto ``grid`` reading only the LRES voxels it needs.

    Cubic B-spline prefiltering has infinite support but decays as 0.268^n, so a
    12-voxel halo gives the same values as resampling the whole volume to ~1e-7
    of the grey range; this keeps memory proportional to the grid, not to the LRES.

    Parameters
    ----------
    lres : array-like
        The LRES volume (numpy, zarr or any array that slices lazily).
    lres_voxel_um : float or sequence of float
        LRES voxel size (um).
    grid : Grid
        Where to sample (LRES frame); positions outside the LRES take the edge value.
    order : int
        Spline order: 1 linear, 3 cubic.
    halo : int
        Extra LRES voxels read around the grid's footprint.

    Returns
    -------
    ndarray of float32
        Shape ``grid.shape``.
    """
    from napari_resolve.geometry.resample import resample_to_grid

    lv = voxel_tuple(lres_voxel_um, grid.ndim, "LRES voxel size")
    box = lres_box_for(grid, lv, lres.shape, halo)
    block = np.asarray(lres[box], dtype=np.float32)
    origin = tuple(s.start * v for s, v in zip(box, lv))
    return resample_to_grid(block, lv, grid.shape, grid.voxel_um, grid.origin_um, origin_um=origin, order=order,
                            name="LRES")


class OneSlice:
    """A 2D array seen as a (1, y, x) volume, slicing lazily (so 2D and 3D share one tiling path)."""

    def __init__(self, a):
        self.a = a
        self.shape = (1,) + tuple(a.shape)

    def __getitem__(self, key):
        return np.asarray(self.a[key[1:]])[None]
