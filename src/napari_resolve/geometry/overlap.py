"""Boxes in world coordinates (um): where layers and grids overlap.

napari places voxel centres at ``translate + index * scale`` (um, the LRES frame);
a voxel covers half a voxel either side of its centre. These functions answer
"which voxels of this array lie inside that box" and "where do these arrays all
overlap", for the Quality and Pores steps, their command-line twins and scripts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_resolve.errors import InputError

#: Fewest overlap voxels per axis: SSIM's window needs 11 (quality.RADIUS), and
#: fewer than 16 leaves too few voxels for a block list or a second MS-SSIM scale.
MIN_OVERLAP = 16

#: Share of a voxel by which two grids may be out of phase and still be cropped
#: exactly (as napari_resolve.grid.TOLERANCE).
PHASE_TOLERANCE = 0.05

#: The common region must span at least this many voxels of the coarsest input along every axis: fewer
#: can hold no pore that the coarse input resolves, and Otsu's threshold needs more than a few voxels.
MIN_OVERLAP_VOXELS = 4

_AXES = {2: "yx", 3: "zyx"}

#: How the Pores step calls measuring every input over its own extent (named in messages).
WHOLE = "whole layers"


@dataclass(frozen=True)
class Overlap:
    """The HRES voxels shared by a result and the HRES, and how the result reaches them.

    Attributes
    ----------
    hres_box : tuple of slice
        The overlap in HRES voxel indices.
    origin_um : tuple of float
        World position (um) of the overlap's first HRES voxel: the ``translate`` of
        the map layers.
    voxel_um : tuple of float
        The HRES voxel size (um): the ``scale`` of the map layers.
    result_box : tuple of slice or None
        The same voxels in the result, when the grids are in phase and can be
        cropped exactly; None when the result must be resampled.
    """

    hres_box: tuple[slice, ...]
    origin_um: tuple[float, ...]
    voxel_um: tuple[float, ...]
    result_box: tuple[slice, ...] | None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.hres_box)

    @property
    def in_phase(self) -> bool:
        return self.result_box is not None


def plan_overlap(
    result_shape,
    result_voxel_um,
    result_origin_um,
    hres_shape,
    hres_voxel_um,
    hres_origin_um,
    *,
    min_size: int = MIN_OVERLAP,
) -> Overlap:
    """Find the HRES voxels inside the result's extent (voxel centres, world um).

    Parameters
    ----------
    result_shape, hres_shape : sequence of int
    result_voxel_um, hres_voxel_um : sequence of float
        Voxel sizes (layer ``scale``), um.
    result_origin_um, hres_origin_um : sequence of float
        Positions of voxel 0 (layer ``translate``), um.
    min_size : int
        Fewest overlap voxels per axis.

    Returns
    -------
    Overlap

    Raises
    ------
    InputError
        If the overlap is empty or thinner than ``min_size`` voxels on an axis.
    """
    rs, hs = np.asarray(result_shape, int), np.asarray(hres_shape, int)
    rv, hv = np.asarray(result_voxel_um, float), np.asarray(hres_voxel_um, float)
    ro, ho = np.asarray(result_origin_um, float), np.asarray(hres_origin_um, float)
    # The result's voxel-centre extent, in continuous HRES indices: HRES voxels
    # inside it are measured (interpolated, never extrapolated, when resampled).
    lo = (ro - ho) / hv
    hi = (ro + (rs - 1) * rv - ho) / hv
    first = np.maximum(np.ceil(lo - PHASE_TOLERANCE), 0).astype(int)
    last = np.minimum(np.floor(hi + PHASE_TOLERANCE), hs - 1).astype(int)
    count = last - first + 1
    if np.any(count < min_size):
        sizes = " x ".join(str(max(int(c), 0)) for c in count)
        what = "does not overlap the HRES" if np.any(count < 1) else f"overlaps the HRES on only {sizes} voxels"
        raise InputError(
            f"The result {what}; at least {min_size} HRES voxels per axis are needed to measure its quality. "
            "Upscale a region that overlaps the registered HRES (the HRES outline inside the LRES)."
        )
    box = tuple(slice(int(a), int(a + c)) for a, c in zip(first, count))
    origin = tuple(float(v) for v in ho + first * hv)
    result_box = None
    if np.allclose(rv, hv, rtol=1e-6, atol=0):
        start = (ho + first * hv - ro) / rv  # result index of the first overlap voxel
        if np.all(np.abs(start - np.round(start)) <= PHASE_TOLERANCE):
            r0 = np.round(start).astype(int)
            result_box = tuple(slice(int(a), int(a + c)) for a, c in zip(r0, count))
    return Overlap(box, origin, tuple(float(v) for v in hv), result_box)


def extent_um(shape, scale, translate) -> tuple[np.ndarray, np.ndarray]:
    """The world box (lo, hi) in um covered by a layer's voxels, from edge to edge.

    napari places voxel centres at ``translate + index * scale``; each voxel
    covers half a voxel either side of its centre.
    """
    shape, scale, translate = (np.asarray(v, dtype=float) for v in (shape, scale, translate))
    return translate - scale / 2, translate + (shape - 0.5) * scale


def crop_slices(shape, scale, translate, lo, hi) -> tuple[slice, ...]:
    """The voxels of a layer whose centres lie inside the world box ``[lo, hi]`` (um), as slices.

    A centre on the box boundary counts as inside (within a millionth of a
    voxel, so rounding in the translates does not drop a slice). The slices
    may be empty if the box misses the layer.
    """
    shape = np.asarray(shape, dtype=int)
    scale, translate = np.asarray(scale, dtype=float), np.asarray(translate, dtype=float)
    first = np.ceil((np.asarray(lo, dtype=float) - translate) / scale - 1e-6).astype(int)
    last = np.floor((np.asarray(hi, dtype=float) - translate) / scale + 1e-6).astype(int)
    start = np.clip(first, 0, shape)
    stop = np.clip(last + 1, start, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))


def overlap_region(geometries: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The world box (lo, hi) in um where all layers overlap, or :class:`InputError`.

    Parameters
    ----------
    geometries : dict of str to (shape, scale, translate)
        Each input layer's data shape, voxel size (um) and translate (um), by
        layer name. All must have the same dimensionality.

    Returns
    -------
    lo, hi : tuple of float
        The intersection of the layers' extents (voxel edges).

    Raises
    ------
    InputError
        If the layers differ in dimensionality, or the intersection is empty or
        thinner along some axis than :data:`MIN_OVERLAP_VOXELS` voxels of the
        coarsest input (or than the thinnest input, where that is thinner).
    """
    names = list(geometries)
    listed = ", ".join(repr(n) for n in names)
    ndims = {len(shape) for shape, _, _ in geometries.values()}
    if len(ndims) > 1:
        raise InputError(
            f"The inputs {listed} mix 2D images and 3D volumes, so they have no common region. Pick inputs of "
            "one kind, or measure whole inputs instead ({region}).",
            parameters=("region",),
        )
    boxes = [extent_um(*g) for g in geometries.values()]
    lo = np.max([b[0] for b in boxes], axis=0)
    hi = np.min([b[1] for b in boxes], axis=0)
    axes = _AXES[len(lo)]
    for a, axis in enumerate(axes):
        # A few voxels of the coarsest input along this axis; where an input is thinner than that (a slab
        # of a few slices), the region can be no thicker than it, and must then hold it whole.
        coarsest = max(MIN_OVERLAP_VOXELS * scale[a] for _, scale, _ in geometries.values())
        need = min(coarsest, min(shape[a] * scale[a] for shape, scale, _ in geometries.values()))
        if hi[a] - lo[a] < need * (1 - 1e-6):
            if hi[a] <= lo[a]:
                what = f"do not overlap (along {axis})"
            else:
                what = f"overlap by only {hi[a] - lo[a]:.3g} µm along {axis} (at least {need:.3g} µm needed"
                what += f": {MIN_OVERLAP_VOXELS} voxels of the coarsest input)" if need == coarsest else ")"
            raise InputError(
                f"The inputs {listed} {what}, so there is no common region to measure. Pick inputs that overlap "
                "(e.g. the HRES after registration and the LRES), or measure whole inputs instead ({region}).",
                parameters=("region",),
            )
    return tuple(float(v) for v in lo), tuple(float(v) for v in hi)


def region_text(region) -> str:
    """``((0, 10, 20), (5, 30, 40))`` -> ``"z 0–5, y 10–30, x 20–40 µm"``; "whole layers" for None."""
    if region is None:
        return WHOLE
    lo, hi = region
    # One number format for the whole box: whole micrometres, or every bound to 0.1 µm.
    whole = all(float(v).is_integer() for v in (*lo, *hi))
    spec = ".0f" if whole else ".1f"
    return ", ".join(f"{axis} {a:{spec}}–{b:{spec}}" for axis, a, b in zip(_AXES[len(lo)], lo, hi)) + " µm"
