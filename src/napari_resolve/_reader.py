"""npe2 reader: TIFF/OME-TIFF/zarr volumes with their voxel size as the layer scale."""

from __future__ import annotations

import warnings
from pathlib import Path

from napari_resolve.errors import ResolveWarning
from napari_resolve.io import TIFF_SUFFIXES, ZARR_SUFFIXES, read_volume


def get_reader(path):
    """Return a reader function for one supported path, else None (napari tries others)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    suffix = Path(path).suffix.lower()
    if suffix not in TIFF_SUFFIXES + ZARR_SUFFIXES:
        return None
    return read_layer


def read_layer(path):
    """Read ``path`` into one image layer: scale = voxel size (um), translate = origin (um)."""
    path = path[0] if isinstance(path, list) else path
    vol = read_volume(path)
    kwargs = {
        "name": vol.name,
        "translate": vol.origin_um,
        "metadata": {"source": vol.source, "voxel_um": vol.voxel_um, **vol.metadata},
    }
    if vol.voxel_um is not None:
        kwargs["scale"] = vol.voxel_um
    else:
        # napari would silently use 1 per voxel; tell the user it is not a size.
        warnings.warn(
            f"{Path(path).name} has no voxel size in its metadata; it is shown with 1 unit per "
            "voxel. Set the voxel size in the napari-resolve widgets before measuring.",
            ResolveWarning,
            stacklevel=2,
        )
    kwargs["metadata"]["voxel_known"] = vol.voxel_um is not None
    data = vol.data
    if len(levels := vol.metadata.get("levels", ())) > 1:
        # An OME-Zarr pyramid: napari shows the coarse levels while zoomed out and reads only what is in view.
        import zarr

        group = zarr.open_group(str(path), mode="r")
        data = [group[name] for name in levels]
        kwargs["multiscale"] = True
    return [(data, kwargs, "image")]

