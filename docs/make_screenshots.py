"""Take the user guide's screenshots from the real viewer: one per workflow step.

Run under a virtual display from the repository root::

    OMP_NUM_THREADS=2 xvfb-run -a -s "-screen 0 1400x900x24" python docs/make_screenshots.py

It opens the foam sample, docks the workflow widget, drives every step as a
user would (pressing the same buttons through the widgets' methods) and saves
``docs/images/guide_<n>_<step>.png``. Training runs 300 iterations (about
half a minute on 2 CPU cores). Look at every image before committing it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_resolve._qt.workflow_widget import WorkflowWidget

OUT = Path(__file__).parent / "images"
DOCK_WIDTH = 430


def settle(seconds: float = 0.3) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def finish(job, timeout: float = 2400) -> None:
    """Keep the viewer alive while a job runs, as the user's event loop would."""
    end = time.perf_counter() + timeout
    while job.state == "running" and time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.02)
    if job.state != "done":
        sys.exit(f"{job.name} ended {job.state}: {job.error}")


def close_notifications(viewer) -> None:
    """Close the toasts of earlier steps so they do not cover the canvas."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def shot(viewer, flow, step: int, name: str, show=None) -> None:
    """Screenshot with only ``step`` expanded, scrolled to the widget ``show`` if given."""
    flow.open_step(step, only=True)
    close_notifications(viewer)
    settle(0.5)
    if show is not None:
        flow.scroll.ensureWidgetVisible(show, 0, 10)
        settle(0.3)
    path = OUT / f"guide_{step + 1}_{name}.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    lres, hres = viewer.open_sample("napari-resolve", "foam_phantom")
    flow = WorkflowWidget(viewer)
    dock = viewer.window.add_dock_widget(flow, name="napari-resolve", area="right")
    dock.setMinimumWidth(DOCK_WIDTH)
    reg_w, train_w, up_w, qual_w, pores_w = (flow.step(i) for i in range(5))
    settle()

    # 1. Registration: the HRES (magma) jumps into place over the LRES.
    hres.colormap = "magma"
    reg_w.controls.run()
    finish(reg_w.job)
    viewer.dims.set_point(0, hres.translate[0] + hres.scale[0] * hres.data.shape[0] / 2)
    viewer.reset_view()
    shot(viewer, flow, 0, "registration")

    # 2. Training on an ROI drawn over the HRES (the default rectangle covers the overlap).
    hres.colormap = "gray"
    train_w.add_roi_layer()
    train_w.iterations.value = 300
    train_w.controls.run()
    finish(train_w.job)
    shot(viewer, flow, 1, "training", show=train_w.preview)

    # 3. Preview a tile outside the HRES, then upscale a region around the HRES to a file.
    viewer.layers["training ROI"].visible = False
    hres.visible = False
    # The tile lands where the user looks: pan there (the slider picks the slice).
    viewer.dims.set_point(0, 96.0)
    viewer.camera.center = (96.0, 140.0, 130.0)
    up_w.region_combo.value = None
    up_w.preview()
    finish(up_w.preview_job)
    region = viewer.add_shapes(
        [[[96, 55, 16], [96, 55, 104], [96, 146, 104], [96, 146, 16]]],
        shape_type="rectangle",
        name="region",
        edge_color="yellow",
        face_color="transparent",
        edge_width=1.5,
    )
    up_w.region_combo.value = region
    up_w.z_first.value, up_w.z_last.value = 8, 36
    out = Path(tempfile.mkdtemp()) / "upscaled_foam.zarr"
    up_w.upscale(out)
    finish(up_w.upscale_job)
    region.visible = False
    error_maps = [layer for layer in viewer.layers if layer.name.startswith("error map: ")]
    for layer in error_maps:
        layer.visible = False  # first the result alone
    viewer.layers.selection.active = lres
    viewer.camera.center = (96.0, 110.0, 90.0)
    viewer.camera.zoom = 3.2
    shot(viewer, flow, 2, "preview_upscale")

    # 3b. The error map over the upscaled region, at its least trustworthy block.
    region_map = viewer.layers["error map: upscaled_foam"]
    region_map.visible = True
    viewer.layers.selection.active = region_map
    block = up_w.regions.jump_to(0)
    viewer.camera.center = (block["centre_um"][0], 110.0, 90.0)
    viewer.camera.zoom = 3.2
    shot(viewer, flow, 2, "error_map", show=up_w.regions)
    region_map.visible = False

    # 4. Quality of the upscaled region against the HRES, with cubic and Richardson-Lucy.
    upscaled = viewer.layers[f"upscaled: {out.name}"]
    hres.visible = True
    upscaled.visible = False
    qual_w.result_combo.value = upscaled
    qual_w.run()
    finish(qual_w.job)
    map_layer = qual_w.map_layer
    for layer in viewer.layers:
        layer.visible = layer in (lres, hres, map_layer)
    viewer.layers.selection.active = map_layer
    region = qual_w.jump_to(0)  # the slice of the lowest-scoring block
    # Show the whole HRES field around it rather than the block alone.
    viewer.camera.center = (region["centre_um"][0], 102.0, 60.0)
    viewer.camera.zoom = 5.0
    shot(viewer, flow, 3, "quality")

    # 4b. On the overlap: the error map made without the HRES, over the HRES, and how it agrees (the summary).
    for layer in viewer.layers:
        layer.visible = layer in (hres, qual_w.error_layer)
    viewer.layers.selection.active = qual_w.error_layer
    shot(viewer, flow, 3, "error_map_agreement", show=qual_w.summary.native)

    # 5. Pores on LRES, upscaled and HRES side by side.
    for layer in viewer.layers:
        layer.visible = layer in (lres, upscaled)
    pores_w.inputs.value = [lres, upscaled, hres]
    pores_w.run()
    finish(pores_w.job)
    viewer.layers["pores: upscaled_foam"].visible = True
    viewer.reset_view()
    shot(viewer, flow, 4, "pores")

    viewer.close()


if __name__ == "__main__":
    np.random.seed(0)
    main()
