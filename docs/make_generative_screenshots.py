"""Screenshots of the diffusion model in the Training and Preview steps, on the cross-modality sample.

Run from the repository root (about 4 minutes on 2 CPU cores)::

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/make_generative_screenshots.py [ITERATIONS]

Writes ``docs/images/guide_2_diffusion_training.png`` and ``guide_3_diffusion_samples.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import napari

sys.path.insert(0, str(Path(__file__).parent))
from make_screenshots import DOCK_WIDTH, finish, settle, shot  # noqa: E402

from napari_resolve._qt.workflow_widget import WorkflowWidget  # noqa: E402


def main(iterations: int) -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    lres, hres = viewer.open_sample("napari-resolve", "cross_modality_foam")
    flow = WorkflowWidget(viewer)
    dock = viewer.window.add_dock_widget(flow, name="napari-resolve", area="right")
    dock.setMinimumWidth(DOCK_WIDTH)
    reg_w, train_w, up_w = (flow.step(i) for i in range(3))
    settle()
    reg_w.controls.run()
    finish(reg_w.job)

    # Training: the diffusion model with its settings.
    train_w.add_roi_layer()
    train_w.model_combo.value = "diffusion"
    train_w.model_settings.value = "width=16 steps=6"
    train_w.iterations.value = iterations
    train_w.patience.value = 0
    train_w.controls.run()
    finish(train_w.job)
    shot(viewer, flow, 1, "diffusion_training", show=train_w.model_settings.native)

    # Preview: 4 samples of 6 steps, the samples' standard deviation over the mean.
    viewer.layers["training ROI"].visible = False
    hres.visible = False
    viewer.dims.set_point(0, 96.0)
    viewer.camera.center = (96.0, 100.0, 100.0)
    up_w.samples.value, up_w.steps.value = 4, 6
    up_w.preview()
    finish(up_w.preview_job)
    std = viewer.layers["sample std: upscaled preview"]
    for layer in viewer.layers:
        layer.visible = layer.name in ("upscaled preview", std.name, lres.name)
    viewer.layers.selection.active = std
    viewer.camera.zoom = 2.6
    shot(viewer, flow, 2, "diffusion_samples", show=up_w.sampling_form.native)
    print(up_w.preview_controls.status.text())
    viewer.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
