"""Moving the view to a region: the one rule shared by the Quality step and the error maps' region lists."""

from __future__ import annotations

import numpy as np


def camera(viewer):
    """The viewer's camera (napari 0.9 moved it to ``viewer.scene``; ``viewer.camera`` is deprecated there)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def go_to(viewer, centre_um, size_um) -> None:
    """Centre the view on a block: sliders, camera and (2D view) a zoom where it fills a third of the canvas.

    Parameters
    ----------
    viewer : napari.Viewer
    centre_um, size_um : sequence of float
        The block's centre and size in world um, one value per axis of the
        layers it belongs to (the last world axes). Layers are not changed.
    """
    centre = np.asarray(centre_um, float)
    dims = viewer.dims
    nd = len(centre)
    axes = list(range(dims.ndim - nd, dims.ndim))  # the layer's axes are the last world axes
    point = np.asarray(dims.point, float)
    point[axes] = centre
    dims.set_point(axes, tuple(centre))
    displayed = list(dims.displayed)
    cam = camera(viewer)
    cam_centre = tuple(float(point[d]) for d in displayed)
    if len(cam_centre) == 2:
        cam_centre = (float(cam.center[0]), *cam_centre)
    cam.center = cam_centre
    if dims.ndisplay == 2:
        try:
            canvas = min(viewer.canvas.size)
        except Exception:  # no canvas (headless model): keep the zoom
            canvas = 0
        extent = max(size_um[d - (dims.ndim - nd)] for d in displayed if d >= dims.ndim - nd)
        if canvas > 0 and extent > 0:
            cam.zoom = canvas / (3.0 * extent)
