"""Input checks shared by the core modules, so that messages are consistent."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_resolve._text import format_um
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


def per_axis(
    value,
    ndim: int,
    name: str,
    *,
    minimum: str = "positive",
    error: type[InputError] = InputError,
    parameter: str | None = None,
) -> tuple[float, ...]:
    """Return one number (all axes) or one per axis as a tuple of ``ndim`` floats, in micrometres.

    The one rule for per-axis lengths given as numbers (voxel sizes, offsets,
    search radii, PSF widths); text typed into a field is parsed by
    :func:`napari_resolve._text.parse_per_axis` first.

    Parameters
    ----------
    value : float or sequence of float
        One value (isotropic) or one per axis in (z, y, x) order.
    ndim : int
        Axes of the data.
    name : str
        How the message calls it, starting with a capital (``"The LRES voxel size"``).
    minimum : {"positive", "non-negative", "any"}
        What the values must be besides finite.
    error : type
        The exception to raise (a subclass of :class:`InputError`).
    parameter : str, optional
        The parameter that gives the value, named in the message after ``name``.
    """
    params = (parameter,) if parameter else ()
    if parameter:
        name = f"{name} ({{{parameter}}})"
    if np.isscalar(value):
        values = (float(value),) * ndim
    else:
        try:
            values = tuple(float(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise error(f"{name} must be numbers in micrometres, got {value!r}.", parameters=params) from exc
        if len(values) == 1:
            values = values * ndim
    if len(values) != ndim:
        raise error(
            f"{name} has {len(values)} values {values} but the data has {ndim} "
            "axes. Give one value (isotropic) or one per axis in (z, y, x) order.",
            parameters=params,
        )
    ok = {"positive": lambda v: v > 0, "non-negative": lambda v: v >= 0, "any": lambda v: True}[minimum]
    if not all(np.isfinite(v) and ok(v) for v in values):
        kind = {"positive": "positive", "non-negative": "finite and non-negative", "any": "finite"}[minimum]
        raise error(f"{name} must be {kind} micrometres, got {values}.", parameters=params)
    return values


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
    return per_axis(voxel, ndim, f"The {name}", minimum="positive", error=VoxelSizeError,
                    parameter=parameter or _voxel_parameter(name))


def same_shape(a: np.ndarray, b: np.ndarray, names: Sequence[str] = ("a", "b")) -> None:
    """Raise :class:`InputError` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise InputError(
            f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; "
            "they must cover the same voxels. Resample or crop one onto the other first."
        )


def voxel_ratio(lres_voxel_um: Sequence[float], hres_voxel_um: Sequence[float], *,
                axes: str | None = None) -> tuple[float, ...]:
    """LRES voxel / HRES voxel per axis, refusing an HRES that is not the finer scan.

    The one rule for which scan is which: the HRES must have voxels no larger
    than the LRES on every axis and smaller on at least one, or there is no
    resolution to recover (a "6 um HRES" against a 3 um LRES would be
    "upscaled" to 6 um).

    Parameters
    ----------
    lres_voxel_um, hres_voxel_um : sequence of float
        Checked voxel sizes (um), one per axis, e.g. from :func:`voxel_tuple`.
    axes : str, optional
        Axis names for the message (default ``"zyx"`` or ``"yx"``).

    Raises
    ------
    VoxelSizeError
        If the HRES voxel is larger on some axis, or not smaller on any.
    """
    lv = tuple(float(v) for v in lres_voxel_um)
    hv = tuple(float(v) for v in hres_voxel_um)
    axes = axes or "zyx"[-len(lv):]
    ratio = tuple(a / b for a, b in zip(lv, hv))
    tol = 1e-6  # voxel sizes read from files carry rounding
    coarser = [axes[i] for i, f in enumerate(ratio) if f < 1 - tol]
    if coarser or all(f <= 1 + tol for f in ratio):
        if coarser:
            how = f"larger than the LRES voxels ({{lv_text}}) on {'axes' if len(coarser) > 1 else 'axis'} " \
                  f"{', '.join(coarser)}"
        else:
            how = "the same size as the LRES voxels ({lv_text})"
        how = how.replace("{lv_text}", format_um(lv, compact=True) + ", {lres_voxel_um}")
        raise VoxelSizeError(
            f"The HRES voxels ({format_um(hv, compact=True)}, {{hres_voxel_um}}) are {how}, so there is "
            "no resolution to recover. The HRES must be the finer scan: check that the two scans (and "
            "their voxel sizes) are not swapped.",
            parameters=("hres_voxel_um", "lres_voxel_um"),
        )
    return ratio
