"""Sample masks given on another grid, carried onto an input's grid in world coordinates.

A sample mask can come from a label image (drawn or segmented) or from outlines
(polygons) drawn over the data, neither necessarily on the grid of the image
being measured: an LRES, its upscaled region and the registered HRES each have
their own voxel size and origin. These functions place the mask on an input's
grid by world position (um, the project's convention ``world = origin + index *
voxel`` at voxel centres, ``docs/architecture.md``), so one drawing serves every
input. Grids are axis-aligned; a voxel is in the mask when its centre is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_resolve._validate import per_axis, voxel_tuple
from napari_resolve.errors import InputError

__all__ = ["mask_on_grid", "polygon_mask"]


def _grid(shape, voxel_um, origin_um) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise InputError(f"The grid must be 2D (y, x) or 3D (z, y, x) with voxels, got shape {shape}.")
    voxel = np.asarray(voxel_tuple(voxel_um, len(shape)), dtype=float)
    origin = np.zeros(len(shape)) if origin_um is None else np.asarray(
        per_axis(origin_um, len(shape), "The origin", minimum="any"), dtype=float)
    return shape, voxel, origin


def mask_on_grid(mask, mask_voxel_um, mask_origin_um, shape, voxel_um, origin_um=None) -> np.ndarray:
    """A mask on its own grid, sampled at the voxel centres of another grid (nearest voxel).

    Parameters
    ----------
    mask : array-like
        2D (y, x) or 3D (z, y, x); non-zero voxels are in the mask (a label
        image works as it is). A 2D mask on a 3D grid applies to every z
        slice, as napari shows a 2D layer over a volume.
    mask_voxel_um, mask_origin_um : float or sequence of float
        The mask's voxel size (um) and the position (um) of its voxel 0's centre.
    shape : sequence of int
        The target grid's shape, voxels.
    voxel_um, origin_um : float or sequence of float
        The target grid's voxel size and voxel-0 centre, um (origin 0 by default).

    Returns
    -------
    numpy.ndarray of bool
        ``shape``; False where the target voxel's centre lies outside the mask's extent.

    Raises
    ------
    InputError
        For a mask that is not 2D or 3D, or a 3D mask on a 2D grid.
    """
    src = np.asarray(mask)
    if src.ndim not in (2, 3):
        raise InputError(f"The sample mask must be a 2D (y, x) or 3D (z, y, x) array, got shape {src.shape}.")
    shape, voxel, origin = _grid(shape, voxel_um, origin_um)
    if src.ndim > len(shape):
        raise InputError("A 3D sample mask cannot be placed on a 2D image; give a 2D mask.")
    m_voxel = np.asarray(voxel_tuple(mask_voxel_um, src.ndim, "mask voxel size"), dtype=float)
    m_origin = np.zeros(src.ndim) if mask_origin_um is None else np.asarray(
        per_axis(mask_origin_um, src.ndim, "The mask origin", minimum="any"), dtype=float)
    lead = len(shape) - src.ndim  # a 2D mask over a volume: the leading z axis is broadcast
    index, valid = [], []
    for a in range(src.ndim):
        t = lead + a
        centres = origin[t] + np.arange(shape[t]) * voxel[t]
        # Round half up, consistently: a centre on a voxel boundary goes to the higher voxel.
        j = np.floor((centres - m_origin[a]) / m_voxel[a] + 0.5 + 1e-9).astype(np.int64)
        ok = (j >= 0) & (j < src.shape[a])
        index.append(np.clip(j, 0, src.shape[a] - 1))
        valid.append(ok)
    out = src[np.ix_(*index)] != 0
    for a, ok in enumerate(valid):
        view = [1] * src.ndim
        view[a] = -1
        out &= ok.reshape(view)
    if lead:
        out = np.broadcast_to(out, shape).copy()
    return out


def polygon_mask(polygons: Sequence, shape, voxel_um, origin_um=None) -> np.ndarray:
    """Outlines drawn in world coordinates, rasterised on a grid's (y, x) plane.

    Parameters
    ----------
    polygons : sequence of array-like
        Each an (n, 2) array of (y, x) vertices in um (n >= 3), e.g. a
        rectangle or polygon drawn over the data. The mask is their union.
    shape : sequence of int
        The grid's shape, voxels; a 3D grid gets the same (y, x) mask on every
        z slice (an outline drawn on one slice outlines a cylinder-like sample).
    voxel_um, origin_um : float or sequence of float
        The grid's voxel size and voxel-0 centre, um.

    Returns
    -------
    numpy.ndarray of bool
        ``shape``; True at voxels whose centre lies inside an outline.

    Raises
    ------
    InputError
        For no outline, or an outline with fewer than 3 vertices.
    """
    from skimage.draw import polygon2mask

    shape, voxel, origin = _grid(shape, voxel_um, origin_um)
    polygons = list(polygons)
    if not polygons:
        raise InputError("The sample outline has no shapes; draw a rectangle, polygon or ellipse around the sample.")
    plane = np.zeros(shape[-2:], dtype=bool)
    for vertices in polygons:
        v = np.asarray(vertices, dtype=float)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
            raise InputError("A sample outline must be a closed shape of at least 3 (y, x) vertices (a rectangle, "
                             "polygon or ellipse); lines and paths enclose no area.")
        plane |= polygon2mask(shape[-2:], (v - origin[-2:]) / voxel[-2:])
    return np.broadcast_to(plane, shape).copy() if len(shape) == 3 else plane
