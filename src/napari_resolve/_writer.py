"""npe2 writer: an image layer to OME-TIFF or zarr with scale and translate as geometry."""

from __future__ import annotations

from napari_resolve.io import write_volume


def write_image(path: str, data, meta: dict) -> list[str]:
    """Write one image layer; its ``scale`` is the voxel size (um), ``translate`` the origin.

    napari's save dialog has already asked before replacing an existing file, so
    the file is overwritten here (still through a temporary name).
    """
    ndim = len(data.shape)
    scale = meta.get("scale") or (1.0,) * ndim
    translate = meta.get("translate") or (0.0,) * ndim
    write_volume(path, data, tuple(scale)[-ndim:], origin_um=tuple(translate)[-ndim:], overwrite=True)
    return [path]
