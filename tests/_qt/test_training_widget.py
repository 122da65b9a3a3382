"""The Training dock widget: ROI from a drawn rectangle, training in a thread, Stop, model files."""

import numpy as np
import pytest
import torch

from napari_resolve._qt._session import session_for
from napari_resolve._qt.training_widget import ROI_LAYER, TrainingWidget
from napari_resolve.errors import FileFormatError, InputError
from napari_resolve.learn.config import DEFAULTS
from napari_resolve.models import model_names


def _stop_after(widget, n: int) -> None:
    """Make the widget's next job stop in its worker right after its ``n``-th record.

    The stop is asked for before that record leaves the worker, so the job runs
    exactly ``n`` iterations however fast the threads are.
    """
    start = widget.job.start

    def limited(gen):
        try:
            for i, record in enumerate(gen, start=1):
                if i == n:
                    widget.job.stop()
                yield record
        finally:
            gen.close()

    widget.job.start = lambda gen: start(limited(gen))


def _wait(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: widget.job.state != "running", timeout=timeout)


def _small(widget, *, model="srcnn", iterations=8, patch=32, batch=2, patience=0):
    """Settings that train in about a second on one CPU thread (every iteration: no early stop)."""
    widget.model_combo.value = model
    widget.iterations.value = iterations
    widget.patience.value = patience
    widget.patch_size.value = patch
    widget.batch_size.value = batch
    widget.device_combo.value = "cpu"


def _rectangle(viewer, hres, y_voxels, x_voxels, z_um=0.0):
    """A Shapes layer with one rectangle whose edges lie on HRES voxel borders.

    ``y_voxels=(10, 60)`` puts the edges at the borders before voxel 10 and
    before voxel 60, i.e. at index 9.5 and 59.5, so the ROI is 10:60.
    """
    t, s = np.asarray(hres.translate, float), np.asarray(hres.scale, float)
    y0, y1 = (t[-2] + (np.asarray(y_voxels) - 0.5) * s[-2]).tolist()
    x0, x1 = (t[-1] + (np.asarray(x_voxels) - 0.5) * s[-1]).tolist()
    corners = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
    if hres.ndim == 3:
        corners = [[z_um, *c] for c in corners]
    return viewer.add_shapes([np.array(corners)], shape_type="rectangle", name="my ROI")


def test_defaults_and_pickers(registered_viewer):
    viewer, lres, hres = registered_viewer
    w = TrainingWidget(viewer)
    assert w.lres_combo.value is lres and w.hres_combo.value is hres
    assert w.roi_combo.value is None
    assert [w.roi_combo.native.itemText(i) for i in range(w.roi_combo.native.count())] == ["(none)"]
    assert (w.iterations.value, w.patch_size.value, w.batch_size.value) == (
        DEFAULTS.iterations, DEFAULTS.patch_size, DEFAULTS.batch_size)
    assert float(w.learning_rate.value) == pytest.approx(DEFAULTS.learning_rate)
    assert w.model_combo.value == DEFAULTS.model == "lres3d"
    # Every registered model is offered and named in the tooltip.
    assert list(w.model_combo.choices) == model_names()
    assert all(name in w.model_combo.tooltip for name in model_names()) and len(model_names()) == 13
    assert w.device_combo.value == "auto" and w.device_combo.current_choice.startswith("auto (")
    # default z range: the whole overlap (here the whole HRES depth)
    assert (w.z_first.value, w.z_last.value) == (0, hres.data.shape[0] - 1)
    assert w.roi_slices() == w.overlap() == (slice(0, 76),) * 3
    assert "76 × 76 × 76 voxels" in w.roi_label.value
    assert "registered" in w.reg_label.value


def test_roi_from_a_drawn_rectangle(registered_viewer):
    viewer, lres, hres = registered_viewer
    w = TrainingWidget(viewer)
    shapes = _rectangle(viewer, hres, (10, 60), (5, 50))
    w.roi_combo.value = shapes
    w.z_first.value, w.z_last.value = 20, 59
    assert w.roi_slices() == (slice(20, 60), slice(10, 60), slice(5, 50))
    assert "40 × 50 × 45 voxels" in w.roi_label.value
    # A rectangle reaching beyond the HRES is clipped to it.
    shapes.data = [_rectangle(viewer, hres, (-20, 30), (40, 200)).data[0]]
    assert w.roi_slices()[1:] == (slice(0, 30), slice(40, 76))
    # Too small to hold a training patch: a clear refusal, also shown under the fields.
    shapes.data = [_rectangle(viewer, hres, (10, 20), (10, 60)).data[0]]
    with pytest.raises(InputError, match="at least 16 × 16"):
        w.roi_slices()
    assert "at least 16 × 16" in w.roi_label.value
    # Entirely outside the HRES.
    shapes.data = [_rectangle(viewer, hres, (200, 260), (10, 60)).data[0]]
    with pytest.raises(InputError, match="does not cover"):
        w.roi_slices()
    # An empty z range.
    shapes.data = [_rectangle(viewer, hres, (10, 60), (5, 50)).data[0]]
    w.z_first.value, w.z_last.value = 30, 10
    with pytest.raises(InputError, match="z range"):
        w.roi_slices()


def test_add_roi_layer_covers_the_overlap_and_is_reused(registered_viewer):
    viewer, lres, hres = registered_viewer
    w = TrainingWidget(viewer)
    viewer.dims.set_point(0, 60.0)
    layer = w.add_roi_layer()
    assert layer.name == ROI_LAYER and len(layer.data) == 1 and layer.shape_type == ["rectangle"]
    assert layer.mode == "add_rectangle"
    assert w.roi_combo.value is layer
    assert np.allclose(layer.data[0][:, 0], 60.0)  # drawn at the current z
    assert w.roi_slices() == w.overlap()
    # A second click resets the same layer instead of adding another one.
    layer.data = [_rectangle(viewer, hres, (10, 60), (5, 50)).data[0]]
    again = w.add_roi_layer()
    assert again is layer and len(layer.data) == 1
    assert sum(lay.name.startswith(ROI_LAYER) for lay in viewer.layers) == 1
    assert w.roi_slices() == w.overlap()


def test_unregistered_hres_is_refused(phantom_viewer, monkeypatch):
    viewer, lres, hres = phantom_viewer
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    w = TrainingWidget(viewer)
    _small(w)
    assert w.controls.run() is False
    assert w.job.state == "idle"
    assert len(shown) == 1 and "register" in shown[0].lower()
    assert "register" in w.controls.status.text().lower()
    assert "register" in w.reg_label.value.lower()
    # "Add ROI layer" needs the overlap, hence the registration, too.
    w._add_roi_clicked()
    assert len(shown) == 2 and "register" in shown[1].lower()
    assert ROI_LAYER not in viewer.layers


def test_bad_learning_rate_is_refused(registered_viewer, monkeypatch):
    viewer, lres, hres = registered_viewer
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    w = TrainingWidget(viewer)
    w.learning_rate.value = "fast"
    assert w.controls.run() is False
    assert "learning rate" in shown[0]
    w.learning_rate.value = "0"  # a number: the plan refuses it, naming the field
    assert w.controls.run() is False and w.job.state == "idle"
    assert "'learning rate' must be a positive number" in shown[1]


def test_training_runs_and_keeps_the_model(registered_viewer, qtbot):
    viewer, lres, hres = registered_viewer
    w = TrainingWidget(viewer)
    qtbot.addWidget(w)
    w.show()  # the plots draw only when visible
    _small(w, iterations=8)
    w.roi_combo.value = _rectangle(viewer, hres, (8, 56), (12, 60))
    w.z_first.value, w.z_last.value = 10, 49
    records = []
    w.job.progress.connect(records.append)
    assert w.controls.run()
    assert w.job.state == "running"
    _wait(qtbot, w)
    assert w.job.state == "done", w.job.error
    assert [r.step for r in records] == list(range(1, 9))
    assert [h[0] for h in w.history] == list(range(1, 9))
    assert all(np.isfinite(h[1]) and h[1] > 0 for h in w.history)
    # the plot has every iteration's loss and the validation points
    assert len(w.loss_line.get_xdata()) == 8
    psnrs = [h[2] for h in w.history if h[2] is not None]
    assert len(psnrs) >= 4 and len(w.psnr_line.get_xdata()) == len(psnrs)
    # the session model is the run's best, trained on this ROI and these layers
    session = session_for(viewer)
    ckpt = session.model
    assert ckpt is w.job.result.checkpoint
    assert ckpt.val_psnr == pytest.approx(max(psnrs))
    assert ckpt.extra["roi"] == [[10, 50], [8, 56], [12, 60]]
    assert ckpt.extra["hres_layer"] == hres.name and ckpt.extra["lres_layer"] == lres.name
    assert session.model_source == f"trained on {hres.name}"
    assert "best validation PSNR" in w.summary_text and w.summary_text in w.controls.status.text()
    assert w.controls.bar.format() == "done"
    # the preview shows the prediction beside the matching HRES slice
    assert "validation slice at iteration" in w.preview_label.value
    assert len(w.preview.figure.axes) == 2
    pred, ref = (ax.images[0].get_array() for ax in w.preview.figure.axes)
    assert pred.shape == ref.shape == (48, 48)
    assert np.corrcoef(np.ravel(pred), np.ravel(ref))[0, 1] > 0.3  # the same place of the foam
    assert "validation PSNR" in w.model_label.value
    qtbot.wait(50)  # let the queued redraws run while the widget exists


def test_stop_keeps_the_best_model_seen(registered_viewer, qtbot):
    viewer, lres, hres = registered_viewer
    w = TrainingWidget(viewer)
    _small(w, iterations=400)  # a validation every 20 iterations
    w.roi_combo.value = _rectangle(viewer, hres, (10, 58), (10, 58))
    w.z_first.value, w.z_last.value = 20, 51
    _stop_after(w, 45)  # after the validations at 20 and 40
    assert w.controls.run()
    _wait(qtbot, w)
    assert w.job.state == "stopped"
    last = w.history[-1][0]
    assert last == 45 == len(w.history)
    assert [h[0] for h in w.history if h[2] is not None] == [20, 40]
    psnrs = [(it, p) for it, p in ((h[0], h[2]) for h in w.history) if p is not None]
    best_it, best_psnr = max(psnrs, key=lambda v: v[1])
    ckpt = session_for(viewer).model
    assert ckpt is not None and ckpt.iteration == best_it and ckpt.val_psnr == pytest.approx(best_psnr)
    assert w.summary_text.startswith(f"Stopped at iteration {last}") and "best validation PSNR" in w.summary_text
    assert w.controls.run_button.isEnabled()


def test_stop_before_the_first_validation_keeps_no_model(registered_viewer, qtbot):
    viewer, lres, hres = registered_viewer
    w = TrainingWidget(viewer)
    _small(w, iterations=2000)  # the first validation at iteration 100
    _stop_after(w, 3)
    assert w.controls.run()
    _wait(qtbot, w)
    assert w.job.state == "stopped" and [h[0] for h in w.history] == [1, 2, 3]
    assert session_for(viewer).model is None
    assert "no model was kept" in w.summary_text


def test_continue_from_the_current_model(registered_viewer, qtbot, small_model, monkeypatch):
    viewer, lres, hres = registered_viewer
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    w = TrainingWidget(viewer)
    assert not w.resume_check.enabled
    session_for(viewer).set_model(small_model, "test")
    assert w.resume_check.enabled
    _small(w, model="srcnn", iterations=4)
    w.resume_check.value = True
    assert w.model_combo.value == "unet25d"  # ticking it picks the model's architecture
    w.model_combo.value = "srcnn"
    assert w.controls.run() is False and "untick" in shown[0]
    w.model_combo.value = "unet25d"
    assert w.controls.run()
    _wait(qtbot, w)
    assert w.job.state == "done", w.job.error
    start = small_model.iteration
    assert [h[0] for h in w.history] == list(range(start + 1, start + 5))
    ckpt = session_for(viewer).model
    assert ckpt.config == small_model.config and start < ckpt.iteration <= start + 4


def test_save_and_load_roundtrip(registered_viewer, small_model, tmp_path, monkeypatch):
    viewer, lres, hres = registered_viewer
    w = TrainingWidget(viewer)
    session = session_for(viewer)
    with pytest.raises(InputError, match="no model"):
        w.save_model(tmp_path / "none.pt")
    assert not w.save_button.enabled
    session.set_model(small_model, "trained on HRES")
    assert w.save_button.enabled
    path = w.save_model(tmp_path / "model.pt")
    assert path.is_file()
    w.save_model(path)  # replacing: the file dialog asked already
    session.set_model(None, "")
    loaded = w.load_model(path)
    assert session.model is loaded and "model.pt" in session.model_source
    assert loaded.architecture == small_model.architecture and loaded.config == small_model.config
    assert loaded.state_dict.keys() == small_model.state_dict.keys()
    for key, value in small_model.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value), key
    # A file that is not a model: a clear message, and the current model stays.
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(FileFormatError, match="cannot be read as a model file"):
        w.load_model(junk)
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getOpenFileName", lambda *a, **k: (str(junk), ""))
    w._load_clicked()
    assert len(shown) == 1 and shown[0].startswith("Load model:") and "junk.pt" in shown[0]
    assert session.model is loaded
    # The save button writes through the dialog's path (".pt" added when missing).
    monkeypatch.setattr(
        "qtpy.QtWidgets.QFileDialog.getSaveFileName", lambda *a, **k: (str(tmp_path / "from_dialog"), "")
    )
    w._save_clicked()
    assert (tmp_path / "from_dialog.pt").is_file()


def test_2d_section_trains(registered_section, qtbot):
    viewer, lres, hres = registered_section
    w = TrainingWidget(viewer)
    assert not w.z_first.visible and not w.z_last.visible
    assert len(w.roi_slices()) == 2
    _small(w, iterations=6)
    assert w.controls.run()
    _wait(qtbot, w)
    assert w.job.state == "done", w.job.error
    assert len(w.history) == 6 and len(w.loss_line.get_xdata()) == 6
    ckpt = session_for(viewer).model
    assert ckpt is not None and len(ckpt.hres_voxel_um) == 2
    assert len(w.preview.figure.axes) == 2  # prediction and the matching HRES rows


def test_an_adversarial_model_plots_its_discriminator_loss(registered_viewer, qtbot):
    viewer, lres, hres = registered_viewer
    w = TrainingWidget(viewer)
    qtbot.addWidget(w)
    w.show()
    _small(w, model="srcnn", iterations=4)
    assert w.controls.run()
    _wait(qtbot, w)
    assert len(w.disc_line.get_xdata()) == 0 and w.disc_line not in w._legend_handles  # no discriminator
    _small(w, model="pix2pix", iterations=6)
    assert w.controls.run()
    _wait(qtbot, w)
    assert w.job.state == "done", w.job.error
    assert all(h[3] is not None and 0 < h[3] < 2 for h in w.history)
    assert len(w.disc_line.get_xdata()) > 0 and w.disc_line in w._legend_handles


def test_model_settings_train_a_diffusion_model_and_bad_ones_are_refused(registered_viewer, qtbot, monkeypatch):
    viewer, lres, hres = registered_viewer
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    w = TrainingWidget(viewer)
    qtbot.addWidget(w)
    _small(w, model="diffusion", iterations=4)
    assert "steps=8" in w.model_settings.tooltip and "scale=0.5" in w.model_settings.tooltip
    w.model_settings.value = "width=4 colour=3"
    assert w.controls.run() is False and w.job.state == "idle"
    assert "no setting colour" in shown[-1] and "steps (default 8)" in shown[-1]
    w.model_settings.value = "width"
    assert w.controls.run() is False and "'model settings' are KEY=VALUE items" in shown[-1]
    w.model_settings.value = "width=4 depth=1 convs=1 steps=2"
    assert w.controls.run()
    _wait(qtbot, w)
    assert w.job.state == "done", w.job.error
    model = session_for(viewer).model
    assert model.architecture == "diffusion" and model.config["steps"] == 2 and model.config["width"] == 4
    w.model_combo.value = "unet25d"  # another architecture's settings do not carry over
    assert w.model_settings.value == ""
    w.resume_check.value = True  # continuing picks the model's architecture and settings
    assert w.model_combo.value == "diffusion" and "steps=2" in w.model_settings.value


def test_core_refusals_reach_the_user(registered_viewer, qtbot, monkeypatch):
    """A z range too thin for a validation block is refused by the core's plan, before any thread starts."""
    viewer, lres, hres = registered_viewer
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    w = TrainingWidget(viewer)
    _small(w)
    w.z_first.value, w.z_last.value = 30, 33
    assert w.controls.run() is False
    assert w.job.state == "idle"
    assert len(shown) == 1 and shown[0].startswith("Training:") and "larger ROI" in shown[0]
    assert "larger ROI" in w.controls.status.text()
    assert session_for(viewer).model is None
    # the widget stays usable
    w.z_first.value, w.z_last.value = 0, 75
    w.iterations.value = 2
    assert w.controls.run()
    _wait(qtbot, w)
    assert w.job.state == "done"


# ----------------------------------------------------------------------------- synthetic pairs (no LRES)


def test_synthetic_mode_trains_from_the_hres_alone(phantom_viewer, qtbot):
    viewer, lres, hres = phantom_viewer
    viewer.layers.remove(lres)  # only the HRES: no LRES scan yet, and no registration
    w = TrainingWidget(viewer)
    qtbot.addWidget(w)
    w.show()
    # One image layer: the form starts in synthetic mode, without the LRES picker.
    assert w.data_combo.value == "synthetic" and w.synthetic
    assert w.synthetic_box.visible and not w.lres_combo.visible
    assert "No LRES needed" in w.reg_label.value and "3, 3, 3 µm" in w.reg_label.value
    w.ratio.value = 2.5
    assert "2.5, 2.5, 2.5 µm" in w.reg_label.value
    w.ratio.value = 3.0
    assert w.roi_slices() == (slice(0, 76),) * 3 and "76 × 76 × 76 voxels" in w.roi_label.value
    assert w.add_roi_layer().name == ROI_LAYER  # over the whole HRES, no registration needed
    w.roi_combo.value = None
    # A residual network starts as the interpolated input: after 6 iterations its preview already
    # resembles the HRES slice (a network that predicts the image, like srcnn, may not yet).
    _small(w, model="unet25d", iterations=6)
    w.blur.value = "0:0.5"
    w.poisson.value = "off"
    w.z_first.value, w.z_last.value = 20, 59
    assert w.controls.run(), w.controls.status.text()
    _wait(qtbot, w)
    assert w.job.state == "done", w.job.error
    assert [h[0] for h in w.history] == list(range(1, 7))
    session = session_for(viewer)
    ckpt = session.model
    assert ckpt is w.job.result.checkpoint
    assert ckpt.extra["training_data"] == "synthetic" and ckpt.extra["hres_layer"] == hres.name
    deg = ckpt.extra["degradation"]
    assert deg["ratio"] == 3.0 and deg["blur"] == [0.0, 0.5] and deg["poisson"] is None
    assert deg["gaussian_noise"] == [0.0, 0.12] and deg["speckle"] == [0.0, 0.05]  # the defaults
    assert ckpt.lres_voxel_um == (3.0, 3.0, 3.0) and ckpt.phase_origin_um == pytest.approx((-1.0, -1.0, -1.0))
    assert ckpt.extra["roi"] == [[20, 60], [0, 76], [0, 76]]
    assert session.model_source == f"trained on {hres.name} (synthetic pairs)"
    assert "best validation PSNR" in w.summary_text
    # The preview pairs the prediction with the matching HRES slice, as for a real pair.
    pred, ref = (ax.images[0].get_array() for ax in w.preview.figure.axes)
    assert pred.shape == ref.shape == (76, 76)
    assert np.corrcoef(np.ravel(pred), np.ravel(ref))[0, 1] > 0.5
    # Continuing needs the same ratio.
    w.resume_check.value = True
    w.ratio.value = 2.0
    with pytest.raises(InputError, match="Untick"):
        w._start()
    qtbot.wait(50)


def test_synthetic_mode_refuses_bad_ranges_and_switches_back(registered_viewer, qtbot, monkeypatch):
    viewer, lres, hres = registered_viewer
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    w = TrainingWidget(viewer)
    qtbot.addWidget(w)
    w.show()  # magicgui's ``visible`` is False for every part of a hidden widget
    assert w.data_combo.value == "pair" and not w.synthetic_box.visible and w.lres_combo.visible
    w.data_combo.value = "synthetic"
    assert w.synthetic_box.visible and not w.lres_combo.visible
    assert (w.blur.value, w.gaussian_noise.value, w.poisson.value, w.speckle.value) == (
        "0:1", "0:0.12", "100:10000", "0:0.05")
    _small(w)
    for field, text, message in [
        (w.blur, "-1:2", "cannot be negative"),
        (w.blur, "2:1", "low <= high"),
        (w.gaussian_noise, "a lot", "LO:HI"),
        (w.poisson, "0:100", "must be positive"),
        (w.speckle, "0:0.1,0:0.1", "one range"),
    ]:
        before = field.value
        field.value = text
        assert w.controls.run() is False and w.job.state == "idle"
        assert message in shown[-1], (text, shown[-1])
        field.value = before
    assert w.degradation().blur == (0.0, 1.0)
    w.blur.value = "0:0.5,0:1,0:1"  # one range per axis
    assert w.degradation().blur_ranges(3) == ((0.0, 0.5), (0.0, 1.0), (0.0, 1.0))
    # Back to the registered pair: the LRES picker returns and the overlap is the registered one.
    w.data_combo.value = "pair"
    assert w.lres_combo.visible and not w.synthetic_box.visible
    assert "registered" in w.reg_label.value


def test_the_multi_output_network_trains_on_synthetic_pairs_and_is_refused_on_a_real_pair(
        registered_viewer, qtbot, monkeypatch):
    viewer, lres, hres = registered_viewer
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    w = TrainingWidget(viewer)
    qtbot.addWidget(w)
    w.show()
    _small(w, model="multioutput", iterations=2)
    assert w.controls.run() is False and w.job.state == "idle"
    assert "synthetic pairs" in shown[-1] and "'stage weight' 0" in shown[-1] and "--" not in shown[-1]
    w.data_combo.value = "synthetic"
    w.z_first.value, w.z_last.value = 20, 59
    assert w.controls.run(), w.controls.status.text()
    _wait(qtbot, w)
    assert w.job.state == "done", w.job.error
    ckpt = session_for(viewer).model
    assert ckpt.architecture == "multioutput" and ckpt.extra["training_data"] == "synthetic"
    assert {"loss_denoise", "loss_deblur"} <= set(ckpt.history[-1])
