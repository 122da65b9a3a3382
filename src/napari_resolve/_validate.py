"""Input checks shared by the core modules, so that messages are consistent."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_resolve.errors import InputError, VoxelSizeError


def as_image(array, name: str = "image", *, min_size: int = 1) -> np.ndarray:
    """Return ``array`` as a finite float32 2D or 3D numpy array.

    Parameters
    ----------
    array : array-like
        A 2D (y, x) image or a 3D (z, y, x) volume.
    name : str
        How the array is called in error messages (e.g. ``"LRES"``).
    min_size : int
        Smallest allowed length of every axis, in voxels.

    Raises
    ------
    InputError
        If the array is not 2D/3D, is smaller than ``min_size`` on an axis,
        or holds NaN or infinite values.
    """
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise InputError(
            f"{name} must be a 2D (y, x) image or a 3D (z, y, x) volume, "
            f"got an array of shape {arr.shape}. Remove channel or time axes first."
        )
    if min(arr.shape) < min_size:
        raise InputError(
            f"{name} has shape {arr.shape}, but every axis must have at least "
            f"{min_size} voxels here. Choose a larger region."
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise InputError(
            f"{name} contains {bad} NaN or infinite voxels. Replace them (for example "
            "with the median of the volume) or crop them away before continuing."
        )
    return arr


def _voxel_parameter(name: str) -> str:
    """The parameter a voxel size is given by, from how a message calls it ("LRES voxel size" -> lres_voxel_um)."""
    for scan in ("lres", "hres"):
        if name.lower().startswith(scan):
            return f"{scan}_voxel_um"
    return "voxel_um"


def voxel_tuple(voxel, ndim: int, name: str = "voxel size", parameter: str | None = None) -> tuple[float, ...]:
    """Return a voxel size as a tuple of ``ndim`` positive floats in micrometres.

    A single number means an isotropic voxel. ``None`` raises, telling the
    user to supply the size, because guessing it would silently scale every
    physical measurement.

    ``parameter`` is the parameter that gives the size, for the message (by
    default ``lres_voxel_um``/``hres_voxel_um`` when ``name`` starts with LRES/HRES,
    else ``voxel_um``).

    Raises
    ------
    VoxelSizeError
        If the size is missing, has the wrong length, or is not positive.
    """
    if voxel is None:
        param = parameter or _voxel_parameter(name)
        raise VoxelSizeError(
            f"The {name} is unknown (the file has no physical-size metadata). "
            "Give it ({" + param + "}) in micrometres: one value (e.g. 3) or one per axis (e.g. 3 1.5 1.5).",
            parameters=(param,),
        )
    if np.isscalar(voxel):
        values = (float(voxel),) * ndim
    else:
        values = tuple(float(v) for v in voxel)  # type: ignore[union-attr]
        if len(values) == 1:
            values = values * ndim
    if len(values) != ndim:
        raise VoxelSizeError(
            f"The {name} has {len(values)} values {values} but the data has {ndim} "
            "axes. Give one value (isotropic) or one per axis in (z, y, x) order."
        )
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise VoxelSizeError(f"The {name} must be positive micrometres, got {values}.")
    return values


def same_shape(a: np.ndarray, b: np.ndarray, names: Sequence[str] = ("a", "b")) -> None:
    """Raise :class:`InputError` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise InputError(
            f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; "
            "they must cover the same voxels. Resample or crop one onto the other first."
        )
