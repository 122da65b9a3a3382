"""Resample a volume onto another physical grid (e.g. LRES onto the HRES voxels).

Positions follow the project convention: voxel ``i`` of a grid with origin ``o``
and voxel size ``v`` has its centre at ``o + i * v`` um.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_resolve._validate import as_image, voxel_tuple
from napari_resolve.errors import InputError


def resample_to_grid(
    image,
    voxel_um,
    out_shape,
    out_voxel_um,
    out_origin_um,
    *,
    origin_um=None,
    order: int = 3,
    name: str = "source image",
) -> np.ndarray:
    """Sample ``image`` at the voxel centres of another grid.

    Parameters
    ----------
    image : array-like
        2D or 3D source, voxel size ``voxel_um`` and voxel-0 centre ``origin_um``.
    voxel_um : float or sequence of float
        Source voxel size in um.
    out_shape : sequence of int
        Shape of the output grid, in output voxels.
    out_voxel_um : float or sequence of float
        Output voxel size in um.
    out_origin_um : sequence of float
        Position (um) of the centre of output voxel 0, in the source's frame.
    origin_um : sequence of float, optional
        Position (um) of the centre of source voxel 0 (default 0).
    order : int
        Spline order: 0 nearest, 1 linear, 3 cubic.
    name : str
        What the source is called in error messages (e.g. ``"LRES"``).

    Returns
    -------
    ndarray of float32
        Output voxels; positions outside the source take the nearest edge value.

    Notes
    -----
    Uses :func:`scipy.ndimage.affine_transform` with a diagonal matrix, which needs
    no coordinate arrays, so memory stays at the size of the input plus output.
    """
    src = as_image(image, name)
    nd = src.ndim
    voxel = np.array(voxel_tuple(voxel_um, nd, "source voxel size"))
    out_voxel = np.array(voxel_tuple(out_voxel_um, nd, "output voxel size"))
    origin = np.zeros(nd) if origin_um is None else np.asarray(origin_um, float)
    out_origin = np.asarray(out_origin_um, float)
    out_shape = tuple(int(s) for s in out_shape)
    if len(out_shape) != nd or len(out_origin) != nd or min(out_shape) < 1:
        raise InputError(f"The output grid {out_shape} does not match a {nd}D source.")
    # Source index = (out_origin + j * out_voxel - origin) / voxel.
    return ndimage.affine_transform(
        src,
        out_voxel / voxel,
        offset=(out_origin - origin) / voxel,
        output_shape=out_shape,
        order=order,
        mode="nearest",
        output=np.float32,
    )
