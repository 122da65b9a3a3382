"""Layers the plugin makes, and the geometry of the user's layers.

A layer the plugin produces carries ``metadata["napari_resolve"]["produced"]``.
:func:`add_or_update` finds such a layer by name and updates it in place, so a
repeated preview or analysis never piles up copies; a *user's* layer with the
same name is never touched (the new layer gets a suffixed name instead).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from napari_resolve.errors import InputError

KEY = "napari_resolve"
SUFFIX = " (napari-resolve)"
# The public classes, not the private ``Layer._type_string`` (gone in napari 0.10).
_LAYER_CLASSES = {"image": Image, "labels": Labels}


def is_produced(layer) -> bool:
    """True for a layer made by this plugin."""
    return bool(layer.metadata.get(KEY, {}).get("produced"))


#: File endings dropped from a layer name in the names of the layers made from it.
_FILE_ENDING = re.compile(r"\.(ome\.)?(tiff?|zarr|n5|npy|npz|h5|hdf5|mrc|nii(\.gz)?|png|jpe?g)$", re.IGNORECASE)


def short_name(name: str) -> str:
    """The part of a layer name that says which data it is, for the names of layers made from it.

    A plugin prefix (everything up to the last ``": "``, as in ``"upscaled: "``) and a
    file ending go: ``"upscaled: upscaled_foam.tif"`` -> ``"upscaled_foam"``, so a
    map of it is ``"MS-SSIM: upscaled_foam"`` rather than ``"MS-SSIM map: upscaled:
    upscaled_foam.tif"``.
    """
    stem = _FILE_ENDING.sub("", name.rsplit(": ", 1)[-1].strip())
    return stem or name


def short_names(names) -> dict[str, str]:
    """:func:`short_name` of every name, or the names as they are where two would become one."""
    short = {name: short_name(name) for name in names}
    return short if len(set(short.values())) == len(short) else {name: name for name in names}


def is_outline(layer) -> bool:
    """True for an outline this plugin drew (the HRES field, a measured or jumped-to box)."""
    return layer.metadata.get(KEY, {}).get("kind") == "outline"


def _find_produced(viewer, name: str, kind: str):
    """Our layer called ``name`` (or its suffixed twin), or the free name to use."""
    for candidate in (name, name + SUFFIX):
        if candidate not in viewer.layers:
            return None, candidate
        layer = viewer.layers[candidate]
        if is_produced(layer) and isinstance(layer, _LAYER_CLASSES[kind]):
            return layer, candidate
    # Both names taken by layers we must not touch: pick a free numbered one.
    n = 2
    while f"{name}{SUFFIX} {n}" in viewer.layers:
        n += 1
    return None, f"{name}{SUFFIX} {n}"


def add_or_update(
    viewer,
    name: str,
    data,
    *,
    kind: str = "image",
    scale=None,
    translate=None,
    metadata: dict | None = None,
    **kwargs: Any,
):
    """Add a plugin layer, or update the plugin's layer of that name.

    Parameters
    ----------
    viewer : napari.Viewer
    name : str
        Layer name. A user's layer of that name is left alone; ours is updated.
    data : array-like
    kind : {"image", "labels"}
    scale, translate : sequence of float, optional
        Voxel size (um) and position of voxel 0 (um, LRES frame).
    metadata : dict, optional
        Stored under ``metadata["napari_resolve"]`` with ``produced=True``.
    **kwargs
        Further layer properties (colormap, contrast_limits, opacity...). On an
        update, only those given are changed.

    Returns
    -------
    napari.layers.Layer
    """
    ndim = np.ndim(data) if not hasattr(data, "ndim") else data.ndim
    scale = tuple(scale) if scale is not None else (1.0,) * ndim
    translate = tuple(translate) if translate is not None else (0.0,) * ndim
    meta = {KEY: {**(metadata or {}), "produced": True}}
    layer, free = _find_produced(viewer, name, kind)
    if layer is not None and layer.ndim == ndim:
        # Geometry first, then data: napari recomputes the extent once per change.
        layer.scale = scale
        layer.translate = translate
        layer.data = data
        for key, value in kwargs.items():
            setattr(layer, key, value)
        layer.metadata = {**layer.metadata, **meta}
        if kind == "image" and "contrast_limits" not in kwargs:
            layer.reset_contrast_limits()
        return layer
    if layer is not None:  # same name but other dimensionality: replace our own layer
        viewer.layers.remove(layer)
    add = {"image": viewer.add_image, "labels": viewer.add_labels}[kind]
    return add(data, name=free, scale=scale, translate=translate, metadata=meta, **kwargs)


def layer_data(layer):
    """The layer's full-resolution array (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def voxel_um(layer) -> tuple[float, ...]:
    """The layer's voxel size in um (its ``scale``)."""
    return tuple(float(s) for s in layer.scale)


def origin_um(layer) -> tuple[float, ...]:
    """Position of the layer's voxel 0 in um (its ``translate``)."""
    return tuple(float(t) for t in layer.translate)


def check_plain_geometry(layer, what: str) -> None:
    """Refuse layers that are rotated, sheared or affinely transformed.

    The core works with axis-aligned grids (scale and translate only).
    """
    if not np.allclose(layer.affine.affine_matrix, np.eye(layer.ndim + 1)) or not np.allclose(
        layer.rotate, np.eye(layer.ndim)
    ):
        raise InputError(
            f"The {what} layer {layer.name!r} is rotated, sheared or has an affine transform; napari-resolve needs "
            "axis-aligned layers (scale and translate only). Reset its transform in the layer controls."
        )


def spatial_ndim(layer) -> int:
    """2 or 3: the layer's dimensionality, refusing RGB and time series."""
    if getattr(layer, "rgb", False):
        raise InputError(f"{layer.name!r} is an RGB image; convert it to grey values first.")
    if layer.ndim not in (2, 3):
        raise InputError(
            f"{layer.name!r} has {layer.ndim} dimensions; napari-resolve works on 2D images (y, x) and "
            "3D volumes (z, y, x). Split time points or channels into separate layers first."
        )
    return layer.ndim


def world_to_index(layer, world) -> np.ndarray:
    """Continuous voxel index of a world position (um) in ``layer`` (last ndim axes)."""
    world = np.asarray(world, dtype=float)[-layer.ndim :]
    return (world - np.asarray(layer.translate)) / np.asarray(layer.scale)


def shape_box_um(shapes_layer, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World bounding box (lo, hi) in um of a Shapes layer's shape (default: the last one drawn).

    Only the in-plane (y, x) extent is meaningful for a rectangle drawn on a
    slice; callers take the other axes from their own fields.
    """
    if len(shapes_layer.data) == 0:
        raise InputError(
            f"The shapes layer {shapes_layer.name!r} is empty. Draw a rectangle with its rectangle tool first."
        )
    if index is None:
        selected = sorted(shapes_layer.selected_data)
        index = selected[-1] if selected else len(shapes_layer.data) - 1
    vertices = np.asarray(shapes_layer.data[index], dtype=float)
    world = np.array([shapes_layer.data_to_world(v) for v in vertices])
    return world.min(axis=0), world.max(axis=0)
