"""The Plugins menu entries and the whole workflow in one dock, as a new user goes through it."""

import numpy as np
import pytest

from napari_resolve._qt.workflow_widget import STEPS, WorkflowWidget

MENU = [
    "Resolution recovery workflow (all steps)",
    "1 Data and registration",
    "2 Training",
    "3 Preview and upscale",
    "4 Quality maps and metrics",
    "5 Pores",
]


def _finish(qtbot, job, timeout=60_000):
    qtbot.waitUntil(lambda: job.state != "running", timeout=timeout)
    assert job.state == "done", job.error


@pytest.mark.parametrize("name", MENU)
def test_every_step_is_in_the_plugins_menu(make_napari_viewer, name):
    from napari_resolve._qt.docks import ScrollingDock

    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-resolve", name)
    assert not dock.isHidden()
    if name.startswith("Resolution"):
        assert isinstance(widget, WorkflowWidget)
    else:
        # A single step scrolls in its own dock; it is the workflow's step of that number.
        assert isinstance(widget, ScrollingDock)
        assert isinstance(widget.step, STEPS[int(name[0]) - 1][1])


@pytest.mark.slow
def test_the_whole_workflow_in_one_dock(phantom_viewer, qtbot, tmp_path):
    viewer, lres, hres = phantom_viewer
    flow = WorkflowWidget(viewer)
    qtbot.addWidget(flow)
    assert [s.isExpanded() for s in flow.sections.values()] == [True, False, False, False, False]
    reg_w, train_w, up_w, qual_w, pores_w = (flow.step(i) for i in range(len(STEPS)))
    user_layers = {layer.name: layer.data for layer in viewer.layers}

    # 1. Register: the HRES moves into place and the training section opens.
    assert reg_w.controls.run()
    _finish(qtbot, reg_w.job)
    truth = np.asarray(hres.metadata["true_offset_um"])
    assert np.all(np.abs(np.asarray(hres.translate) - truth) < 0.5 * np.asarray(hres.scale))
    assert flow.sections[STEPS[1][0]].isExpanded()

    # 2. Train briefly on the whole overlap: the model is shared with the other steps.
    train_w.iterations.value = 30
    train_w.patch_size.value = 32
    train_w.batch_size.value = 2
    train_w.device_combo.value = "cpu"
    assert train_w.controls.run()
    _finish(qtbot, train_w.job)
    assert train_w.session.model is not None
    assert "lres3d" in up_w.model_label.value

    # 3. Preview a tile where the viewer looks: the slider picks the slice, a pan the place (the HRES middle).
    centre = np.asarray(hres.translate) + np.asarray(hres.scale) * (np.asarray(hres.data.shape) - 1) / 2
    viewer.dims.point = tuple(centre)
    viewer.scene.camera.center = tuple(centre)
    assert up_w.preview()
    _finish(qtbot, up_w.preview_job)
    preview = viewer.layers["upscaled preview"]
    np.testing.assert_allclose(preview.scale, hres.scale)
    phase = (np.asarray(preview.translate) - np.asarray(hres.translate)) / np.asarray(hres.scale)
    np.testing.assert_allclose(phase, np.round(phase), atol=1e-6)

    # 4. Quality of the preview against the HRES, with the baselines.
    qual_w.result_combo.value = preview
    assert qual_w.run()
    _finish(qtbot, qual_w.job)
    assert set(qual_w.metrics) == {"upscaled", "cubic", "Richardson-Lucy"}
    assert all(np.isfinite(v["ssim"]) for v in qual_w.metrics.values())
    assert "MS-SSIM: upscaled preview" in viewer.layers

    # 5. Pores on LRES and HRES side by side (a preview tile is a look, not a result: not offered).
    assert preview not in pores_w.inputs.choices
    pores_w.inputs.value = [lres, hres]
    assert pores_w.run()
    _finish(qtbot, pores_w.job)
    assert set(pores_w.results) == {lres.name, hres.name}
    for name in (lres.name, hres.name):
        assert f"pores: {name}" in viewer.layers

    # The user's own layers were never replaced or changed.
    for name, data in user_layers.items():
        assert viewer.layers[name].data is data
