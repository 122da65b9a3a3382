"""The Preview and upscale widget: a preview tile in place, a region upscaled to a file and opened lazily."""

from __future__ import annotations

import numpy as np
import pytest

from napari_resolve._qt._session import session_for
from napari_resolve._qt.upscale_widget import PREVIEW_NAME, UpscaleWidget
from napari_resolve.learn.inference import run_predict

LRES_LO, LRES_HI = -1.5, 190.5  # world extent (um) of the 64^3 LRES at 3 um: voxel centres 0..189


def _wait(qtbot, job, timeout=60_000):
    qtbot.waitUntil(lambda: job.state != "running", timeout=timeout)


def _phase_steps(layer, hres):
    """Where the layer's voxel 0 lies on the registered HRES grid, in HRES voxels (integral if in phase)."""
    return (np.asarray(layer.translate) - np.asarray(hres.translate)) / np.asarray(hres.scale)


def _extent(layer):
    scale, translate = np.asarray(layer.scale), np.asarray(layer.translate)
    shape = np.asarray(layer.data.shape)
    return translate - scale / 2, translate + (shape - 1) * scale + scale / 2


def _rectangle(viewer, y0, x0, y1, x1, z=96.0):
    """A rectangle drawn on slice ``z`` (world um), as napari's rectangle tool leaves it."""
    corners = [[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]]
    return viewer.add_shapes([corners], shape_type="rectangle", name="region")


@pytest.fixture(scope="module")
def foam():
    """The foam sample's layer data, made once (making it takes seconds)."""
    from napari_resolve._sample_data import foam_phantom

    return foam_phantom()


@pytest.fixture
def placed_viewer(make_napari_viewer, foam, small_model):
    """What ``registered_viewer`` gives, quicker: the sample made once, and the HRES placed by the registration
    the model was trained with (same pair, same deterministic registration) instead of registering again."""
    from napari_resolve._qt._session import place_registered
    from napari_resolve.registration import Registration

    viewer = make_napari_viewer()
    lres, hres = (getattr(viewer, f"add_{kind}")(np.copy(data), **kwargs) for data, kwargs, kind in foam)
    place_registered(hres, Registration.from_dict(small_model.registration))
    return viewer, lres, hres


@pytest.fixture
def widget(placed_viewer, small_model):
    viewer, lres, hres = placed_viewer
    session_for(viewer).set_model(small_model, "test")
    return UpscaleWidget(viewer), viewer, lres, hres


@pytest.fixture
def errors(monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    return shown


def test_preview_lies_exactly_over_the_lres_at_hres_voxel_size(widget, small_model, qtbot):
    w, viewer, lres, hres = widget
    assert w.lres_combo.value is lres and w.region_combo.value is None
    assert "loaded" not in w.model_label.value and "unet25d" in w.model_label.value
    viewer.dims.set_point(range(3), (96.0, 60.0, 120.0))
    _pan(viewer, 60.0, 120.0, 3.0)
    point = np.array(viewer.dims.point)

    assert w.preview()
    _wait(qtbot, w.preview_job)
    assert w.preview_job.state == "done"
    layer = viewer.layers[PREVIEW_NAME]
    np.testing.assert_allclose(layer.scale, small_model.hres_voxel_um)
    steps = _phase_steps(layer, hres)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)  # on the HRES grid, not half a voxel off
    lo, hi = _extent(layer)
    assert np.all(lo >= LRES_LO - 1e-6) and np.all(hi <= LRES_HI + 1e-6)
    assert np.all(lo <= point) and np.all(point <= hi)  # around where the user looks
    # about the asked tile: 128 HRES voxels in-plane, 16 HRES slices deep
    assert 120 <= layer.data.shape[1] <= 136 and 120 <= layer.data.shape[2] <= 136
    assert 14 <= layer.data.shape[0] <= 20
    np.testing.assert_allclose(viewer.dims.point, point)  # the view did not jump
    # the same values as the core on that region (a full-tile pass equals the tiled one)
    direct = run_predict(small_model, np.asarray(lres.data), tuple(lres.scale), roi=w.preview_region(), device="cpu")
    np.testing.assert_allclose(layer.translate, direct.grid.origin_um, atol=1e-9)
    np.testing.assert_allclose(layer.data, direct.data, atol=1e-4)
    assert layer.colormap.name == lres.colormap.name
    np.testing.assert_allclose(layer.contrast_limits, lres.contrast_limits)
    assert "HRES voxels" in w.preview_controls.status.text()


def test_a_second_preview_updates_the_same_layer(widget, qtbot):
    w, viewer, lres, hres = widget
    w.tile_size.value, w.tile_depth.value = 64, 8  # quicker
    viewer.dims.set_point(range(3), (96.0, 60.0, 60.0))
    _pan(viewer, 60.0, 60.0, 3.0)
    assert w.preview()
    _wait(qtbot, w.preview_job)
    first = np.array(viewer.layers[PREVIEW_NAME].translate)
    n_layers = len(viewer.layers)

    # Now at a drawn rectangle's centre (the rectangle wins over the viewer's y, x).
    shapes = _rectangle(viewer, 120.0, 110.0, 150.0, 160.0)
    w.region_combo.value = shapes
    assert w.preview()
    _wait(qtbot, w.preview_job)
    assert w.preview_job.state == "done"
    assert len(viewer.layers) == n_layers + 1  # only the shapes layer is new
    assert sum(layer.name.startswith("upscaled preview") for layer in viewer.layers) == 1
    layer = viewer.layers[PREVIEW_NAME]
    assert not np.allclose(layer.translate, first)
    lo, hi = _extent(layer)
    centre = (lo + hi) / 2
    np.testing.assert_allclose(centre[1:], (135.0, 135.0), atol=3.0)  # within one LRES voxel
    steps = _phase_steps(layer, hres)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)


def test_preview_without_a_model_or_with_a_foreign_voxel_size_is_refused(placed_viewer, small_model, errors):
    viewer, lres, _hres = placed_viewer
    w = UpscaleWidget(viewer)
    assert "No model" in w.model_label.value
    assert not w.preview()
    assert w.preview_job.state == "idle" and PREVIEW_NAME not in viewer.layers
    assert errors and "no model" in errors[-1].lower()
    assert "train one" in w.preview_controls.status.text()

    # The model label follows the session.
    session_for(viewer).set_model(small_model, "trained here")
    assert "trained here" in w.model_label.value

    # An LRES at 2 um: the model learned 3 um -> 1 um only; the core's message reaches the user.
    other = viewer.add_image(np.asarray(lres.data), scale=(2.0, 2.0, 2.0), name="LRES other 2um")
    w.lres_combo.value = other
    assert "⚠" in w.region_label.value
    assert not w.preview()
    assert w.preview_job.state == "idle"
    # in µm, as every length in the widgets
    assert "trained on 3 × 3 × 3 µm" in errors[-1] and "trained on 3 × 3 × 3 µm" in w.preview_controls.status.text()
    assert " um" not in errors[-1] and " um" not in w.region_label.value and "µm" in w.region_label.value


def test_load_model_sets_the_session_model(widget, small_model, tmp_path):
    from napari_resolve.errors import FileFormatError
    from napari_resolve.models.checkpoint import save_checkpoint

    w, viewer, _lres, _hres = widget
    path = save_checkpoint(small_model, tmp_path / "model.pt")
    ckpt = w.load_model(path)
    assert session_for(viewer).model is ckpt and ckpt is not small_model
    assert ckpt.hres_voxel_um == small_model.hres_voxel_um
    assert "loaded from model.pt" in w.model_label.value
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(FileFormatError):
        w.load_model(tmp_path / "junk.pt")
    assert session_for(viewer).model is ckpt


@pytest.mark.parametrize("name", ["out.zarr", "out.tif"])
def test_upscale_region_writes_the_file_and_opens_it_lazily(widget, small_model, tmp_path, qtbot, name):
    w, viewer, lres, hres = widget
    shapes = _rectangle(viewer, 60.0, 90.0, 93.0, 126.0)  # LRES voxels 20..31 (y) and 30..42 (x)
    w.region_combo.value = shapes
    w.z_first.value, w.z_last.value = 30, 35
    roi = w.upscale_region()
    assert roi == (slice(30, 36), slice(20, 32), slice(30, 43))
    assert "6 × 12 × 13 LRES voxels → output" in w.region_label.value and "MiB" in w.region_label.value

    path = tmp_path / name
    assert w.upscale(path)
    _wait(qtbot, w.upscale_job)
    assert w.upscale_job.state == "done"
    error_name = name.replace(".", "_error.", 1) if "." in name else name + "_error"
    assert path.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted([name, error_name])
    layer = viewer.layers[f"upscaled: {name}"]
    assert not isinstance(layer.data, np.ndarray)  # opened lazily, not read into memory
    direct = run_predict(small_model, np.asarray(lres.data), tuple(lres.scale), roi=roi, device="cpu")
    assert layer.data.shape == direct.grid.shape
    np.testing.assert_allclose(layer.scale, small_model.hres_voxel_um)
    np.testing.assert_allclose(layer.translate, direct.grid.origin_um, atol=1e-9)
    steps = _phase_steps(layer, hres)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.data[2]), direct.data[2], atol=1e-4)
    status = w.upscale_controls.status.text()
    assert "tiles" in status and "voxels/s" in status and name in status


def test_an_existing_file_is_refused_without_overwrite(widget, tmp_path, qtbot, errors):
    w, viewer, _lres, _hres = widget
    w.region_combo.value = _rectangle(viewer, 60.0, 60.0, 80.0, 80.0)
    w.z_first.value, w.z_last.value = 30, 32
    path = tmp_path / "out.tif"
    path.write_bytes(b"keep me")
    assert not w.upscale(path)
    assert w.upscale_job.state == "idle"
    assert path.read_bytes() == b"keep me" and len(list(tmp_path.iterdir())) == 1
    assert "already exists" in errors[-1] and "overwrite" in w.upscale_controls.status.text()

    assert w.upscale(path, overwrite=True)
    _wait(qtbot, w.upscale_job)
    assert w.upscale_job.state == "done" and path.read_bytes() != b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "out_error.tif"]  # and its error map


@pytest.mark.parametrize(
    "name, match",
    [("out.png", "must be .tif"), ("missing/out.tif", "does not exist")],
)
def test_a_bad_output_is_refused_by_the_plan_before_a_thread_starts(widget, tmp_path, errors, name, match):
    w, viewer, _lres, _hres = widget
    w.region_combo.value = _rectangle(viewer, 60.0, 60.0, 80.0, 80.0)
    assert not w.upscale(tmp_path / name)
    assert w.upscale_job.state == "idle" and w.upscale_job.worker is None  # no thread was started
    assert match in errors[-1] and "'Output'" in errors[-1]  # the core's message, naming this widget's field
    assert list(tmp_path.iterdir()) == []


def test_stop_during_an_upscale_leaves_no_file(widget, tmp_path, qtbot, monkeypatch):
    import threading

    from napari_resolve.jobs import Progress
    from napari_resolve.learn.inference import TileDone

    w, viewer, _lres, _hres = widget
    assert w.region_combo.value is None and w.upscale_region() == (slice(0, 64),) * 3  # the whole LRES
    # The job waits after its first tile until Stop was pressed, so the test does not race the thread
    # (on a fast machine the whole run could otherwise end before Stop arrives).
    pressed = threading.Event()

    def held(gen):
        yield next(gen)
        pressed.wait(60)
        return (yield from gen)

    start = w.upscale_job.start
    monkeypatch.setattr(w.upscale_job, "start", lambda gen: start(held(gen)))
    records = []
    w.upscale_job.progress.connect(records.append)
    path = tmp_path / "whole.zarr"
    assert w.upscale(path)
    qtbot.waitUntil(lambda: len(records) >= 1, timeout=60_000)
    assert isinstance(records[0], Progress) and isinstance(records[0].data, TileDone)
    assert records[0].total > 4
    w.upscale_controls.stop()
    pressed.set()
    _wait(qtbot, w.upscale_job)
    assert len(records) < records[0].total
    assert w.upscale_job.state == "stopped"
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary twin
    assert not any(layer.name.startswith("upscaled:") for layer in viewer.layers)


def _camera(viewer):
    return viewer.scene.camera


def _visible(viewer, layer) -> bool:
    """True if the whole layer (voxel edges) lies inside the canvas in the 2D view (displayed y, x)."""
    camera = _camera(viewer)
    half = np.asarray(viewer.canvas.viewbox_size(viewer.layers), float) / 2 / camera.zoom
    centre = np.asarray(camera.center, float)[-2:]
    lo, hi = _extent(layer)
    return bool(np.all(lo[-2:] >= centre - half - 1e-6) and np.all(hi[-2:] <= centre + half + 1e-6))


def _pan(viewer, y, x, zoom):
    """Pan and zoom as the mouse does: the camera moves, the dims slider does not."""
    camera = _camera(viewer)
    camera.center = (float(camera.center[0]), y, x)
    camera.zoom = zoom


def test_preview_is_centred_on_the_camera_in_the_current_slice(widget, qtbot):
    w, viewer, _lres, _hres = widget
    w.tile_size.value, w.tile_depth.value = 64, 8
    viewer.dims.set_point(range(3), (60.0, 96.0, 96.0))
    _pan(viewer, 140.0, 45.0, 3.0)
    point = tuple(viewer.dims.point)
    assert point[1:] == (96.0, 96.0)  # the slider did not follow the camera
    assert w.preview()
    _wait(qtbot, w.preview_job)
    assert w.preview_job.state == "done"
    layer = viewer.layers[PREVIEW_NAME]
    lo, hi = _extent(layer)
    looked_at = np.array([60.0, 140.0, 45.0])  # the current slice, and the camera centre in-plane
    assert np.all(lo <= looked_at) and np.all(looked_at <= hi)
    assert np.all(np.abs((lo + hi)[1:] / 2 - looked_at[1:]) <= 3.0)  # centred, within one LRES voxel
    assert 60 <= layer.data.shape[1] <= 68 and 60 <= layer.data.shape[2] <= 68
    # It was in view already: neither the slider nor the camera moved.
    assert tuple(viewer.dims.point) == point
    np.testing.assert_allclose(_camera(viewer).center[1:], (140.0, 45.0))
    assert _camera(viewer).zoom == 3.0 and _visible(viewer, layer)


def test_preview_in_the_3d_view_is_centred_on_the_camera(widget, qtbot):
    w, viewer, _lres, _hres = widget
    w.tile_size.value, w.tile_depth.value = 64, 8
    viewer.dims.set_point(range(3), (96.0, 96.0, 96.0))
    viewer.dims.ndisplay = 3
    camera = _camera(viewer)
    camera.center = (50.0, 140.0, 45.0)  # in 3D the camera centre has a depth too
    angles = tuple(camera.angles)
    assert w.preview()
    _wait(qtbot, w.preview_job)
    lo, hi = _extent(viewer.layers[PREVIEW_NAME])
    assert np.all(lo <= (50.0, 140.0, 45.0)) and np.all((50.0, 140.0, 45.0) <= hi)
    np.testing.assert_allclose(camera.center, (50.0, 140.0, 45.0))  # the user's view is left alone
    assert tuple(camera.angles) == angles


def test_a_preview_out_of_view_is_brought_into_view(widget, qtbot):
    w, viewer, _lres, _hres = widget
    w.tile_size.value, w.tile_depth.value = 64, 8
    viewer.dims.set_point(range(3), (96.0, 40.0, 40.0))
    _pan(viewer, 40.0, 40.0, 4.0)
    w.region_combo.value = _rectangle(viewer, 140.0, 150.0, 170.0, 180.0)  # centre (155, 165)
    assert w.preview()
    _wait(qtbot, w.preview_job)
    layer = viewer.layers[PREVIEW_NAME]
    lo, hi = _extent(layer)
    np.testing.assert_allclose((lo + hi)[1:] / 2, (155.0, 165.0), atol=3.0)
    assert _visible(viewer, layer)  # the camera went to the tile...
    assert _camera(viewer).zoom == 4.0  # ...without changing the zoom: the tile fits
    assert tuple(viewer.dims.point) == (96.0, 40.0, 40.0)

    # Zoomed in far beyond the tile's size, elsewhere: the camera goes there and zooms out just enough.
    _pan(viewer, 40.0, 40.0, 40.0)
    assert not _visible(viewer, layer)
    assert w.preview()
    _wait(qtbot, w.preview_job)
    assert _visible(viewer, layer)
    zoom = _camera(viewer).zoom
    assert zoom < 40.0
    fits = np.min(np.asarray(viewer.canvas.viewbox_size(viewer.layers), float) / (hi - lo)[1:])
    assert 0.8 * fits <= zoom <= fits  # the tile fills most of the canvas, not zoomed out to the whole LRES


def test_the_output_path_is_readable_at_the_default_dock_width(widget, qtbot, tmp_path):
    from qtpy.QtCore import QRect, Qt
    from qtpy.QtWidgets import QLabel, QLineEdit

    w, _viewer, _lres, _hres = widget
    path = tmp_path / "experiments" / "2026-11-foam" / "upscaled_foam_region_a.tif"
    w.output.value = path
    w.setFixedWidth(320)  # napari's default dock width
    w.show()
    qtbot.waitExposed(w)
    assert w.minimumSizeHint().width() <= 320

    def readable(widget) -> bool:
        if isinstance(widget, QLineEdit):
            text = widget.text()
            fits = widget.fontMetrics().horizontalAdvance(text) <= widget.contentsRect().width() - 8
            return str(path) == text and fits
        shown = widget.text().replace("\u200b", "")
        if path.name not in shown or str(path.parent) not in shown:
            return False
        width = widget.contentsRect().width()
        box = widget.fontMetrics().boundingRect(QRect(0, 0, width, 10_000), int(Qt.TextWordWrap), widget.text())
        return box.width() <= width and widget.heightForWidth(width) <= widget.height()

    shown = [x for x in w.findChildren(QLineEdit) + w.findChildren(QLabel) if x.isVisible() and readable(x)]
    assert shown, "neither the field nor a label shows the whole output path"


def test_a_cleared_output_or_a_folder_is_refused_naming_the_field(widget, tmp_path, errors):
    w, viewer, _lres, _hres = widget
    w.region_combo.value = _rectangle(viewer, 60.0, 60.0, 80.0, 80.0)
    w.output.value = tmp_path / "out.tif"  # a valid file first, then the file name deleted from the field
    labels = {}
    for text in (str(tmp_path), str(tmp_path / "new") + "/"):  # the folder left in the field
        w.output.line_edit.value = text
        assert not w.upscale_controls.run()
        assert w.upscale_job.worker is None  # refused before a thread started
        message = errors[-1]
        # not "<folder name>: the output must be .tif", as if the folder were the file
        assert not message.startswith(f"Upscale: {tmp_path.name}") and not message.startswith("Upscale: new:")
        assert "'Output'" in message and "folder" in message and "add a file name" in message
        labels[text] = w.output_label.value
    for text in ("", "   "):  # the field emptied
        w.output.line_edit.value = text
        assert not w.upscale_controls.run()
        assert errors[-1] == "Upscale: Choose an output file (.tif for OME-TIFF, or .zarr)."
        labels[text] = w.output_label.value
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == []
    # The label under the field says the same before any run.
    assert all("folder" in labels[t] for t in (str(tmp_path), str(tmp_path / "new") + "/"))
    assert all("Choose an output file" in labels[t] for t in ("", "   "))
    w.output.value = tmp_path / "out.tif"
    assert w.output_label.value.startswith("Writes out.tif")


def _untrained_2d(lres, hres):
    """A 2D U-Net with its initial weights, for the section's voxel sizes and registration."""
    from napari_resolve.learn.normalisation import Normalisation
    from napari_resolve.models import build_model
    from napari_resolve.models.checkpoint import Checkpoint

    net = build_model("unet25d", width=4)
    return Checkpoint(
        architecture="unet25d",
        config=dict(net.config),
        state_dict={k: v.detach().clone() for k, v in net.state_dict().items()},
        norm_in=Normalisation(0.0, 1.0),
        norm_out=Normalisation(0.0, 1.0),
        lres_voxel_um=tuple(lres.scale),
        hres_voxel_um=tuple(hres.scale),
        registration={"offset_um": list(hres.translate)},
    )


def test_2d_preview_and_upscale(registered_section, small_model, tmp_path, qtbot, errors):
    viewer, lres, hres = registered_section
    w = UpscaleWidget(viewer)
    assert not w.tile_depth.visible and not w.z_first.visible

    session_for(viewer).set_model(small_model, "3D model")  # a 3D model cannot run on a 2D section
    assert not w.preview()
    assert "3D data; this LRES is 2D" in errors[-1]

    session_for(viewer).set_model(_untrained_2d(lres, hres), "untrained")
    w.tile_size.value = 64
    viewer.dims.set_point(range(2), (300.0, 330.0))
    _pan(viewer, 300.0, 330.0, 2.0)
    assert w.preview()
    _wait(qtbot, w.preview_job)
    assert w.preview_job.state == "done"
    layer = viewer.layers[PREVIEW_NAME]
    assert layer.ndim == 2
    np.testing.assert_allclose(layer.scale, hres.scale)
    steps = _phase_steps(layer, hres)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    lo, hi = _extent(layer)
    assert np.all(lo <= (300.0, 330.0)) and np.all((300.0, 330.0) <= hi)
    assert 60 <= layer.data.shape[0] <= 68 and 60 <= layer.data.shape[1] <= 68

    # Panned and zoomed (the slider stays): the next tile is where the camera looks.
    _pan(viewer, 420.0, 200.0, 2.0)
    assert tuple(viewer.dims.point) == (300.0, 330.0)
    assert w.preview()
    _wait(qtbot, w.preview_job)
    lo, hi = _extent(viewer.layers[PREVIEW_NAME])
    assert np.all(lo <= (420.0, 200.0)) and np.all((420.0, 200.0) <= hi)
    assert _visible(viewer, viewer.layers[PREVIEW_NAME]) and _camera(viewer).zoom == 2.0

    w.region_combo.value = viewer.add_shapes([[[200, 200], [200, 260], [260, 260], [260, 200]]], shape_type="rectangle")
    path = tmp_path / "section.tif"
    assert w.upscale(path)
    _wait(qtbot, w.upscale_job)
    assert w.upscale_job.state == "done"
    result = viewer.layers["upscaled: section.tif"]
    assert result.ndim == 2 and not isinstance(result.data, np.ndarray)
    np.testing.assert_allclose(result.scale, hres.scale)
    steps = _phase_steps(result, hres)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    lo, hi = _extent(result)
    # inside the extent of the LRES voxels whose centres the rectangle holds (50..65 at 4 um), up to the
    # 5 % of an HRES voxel the output grid may stick out (napari_resolve.grid.TOLERANCE)
    assert np.all(lo >= 198.0 - 0.05) and np.all(hi <= 262.0 + 0.05)
    assert np.all(hi - lo >= 60.0)


def test_preview_and_upscale_show_the_error_map_and_its_worst_regions(widget, small_model, tmp_path, qtbot):
    from napari_resolve._qt._error_maps import PREFIX, error_map_of

    w, viewer, lres, _hres = widget
    assert w.error_check.enabled and w.error_check.value  # the model carries a calibration
    assert w.preview()
    _wait(qtbot, w.preview_job)
    tile = viewer.layers[PREVIEW_NAME]
    emap = error_map_of(viewer, PREVIEW_NAME)
    assert emap is not None and emap.name == PREFIX + PREVIEW_NAME
    np.testing.assert_allclose(emap.translate, tile.translate)
    np.testing.assert_allclose(emap.scale, tile.scale)
    lo, hi = emap.contrast_limits
    assert emap.data.shape == tile.data.shape and 0 < lo < hi <= float(np.max(emap.data))
    assert "validation block" in w.preview_controls.status.text()
    # The listed regions are the blocks with the highest bound, and selecting one moves the view there.
    regions = w.regions.regions
    assert w.regions.isVisible() or w.regions.isVisibleTo(w)
    assert len(regions) >= 2 and regions[0]["score"] >= regions[-1]["score"] > 0
    w.regions.table.selectRow(1)
    centre = np.asarray(regions[1]["centre_um"])
    np.testing.assert_allclose(np.asarray(viewer.dims.point)[-3], centre[0], atol=tile.scale[0])

    # The region upscale writes the map beside its output and opens both.
    w.region_combo.value = _rectangle(viewer, 60.0, 90.0, 93.0, 126.0)
    w.z_first.value, w.z_last.value = 30, 33
    w.tta_check.value = True
    assert w.upscale(tmp_path / "up.zarr")
    assert "up_error.zarr" in w.output_label.value
    _wait(qtbot, w.upscale_job, timeout=120_000)
    assert w.upscale_job.state == "done"
    assert (tmp_path / "up_error.zarr").exists()
    emap = error_map_of(viewer, "upscaled: up.zarr")
    assert emap is not None and emap.data.shape == viewer.layers["upscaled: up.zarr"].data.shape
    assert "Error map: up_error.zarr" in w.upscale_controls.status.text()


def test_a_model_without_calibration_switches_the_error_map_off(widget, small_model, qtbot):
    import copy

    w, viewer, _lres, _hres = widget
    bare = copy.copy(small_model)
    bare.extra = {k: v for k, v in small_model.extra.items() if k != "error_map"}
    session_for(viewer).set_model(bare, "test")
    assert not w.error_check.enabled and not w.error_check.value
    assert "no calibration" in w.error_check.tooltip
    assert w.preview()
    _wait(qtbot, w.preview_job)
    assert w.preview_job.state == "done" and "error map: " + PREVIEW_NAME not in viewer.layers


def test_a_diffusion_model_offers_its_sampling_and_shows_the_sample_std(widget, qtbot, errors):
    """Samples and sampler steps replace the flipped predictions; the preview adds the samples' std as a layer."""
    from napari_resolve._qt._error_maps import error_map_of
    from napari_resolve._qt.upscale_widget import STD_NAME
    from napari_resolve.learn.training import TrainConfig, run_train

    from .conftest import _registration, _sample

    w, viewer, _lres, _hres = widget
    assert w.sampling_form.native.isHidden() and not w.tta_check.native.isHidden()  # a U-Net: nothing to sample
    (lres, lk, _), (hres, _, _) = _sample("foam_phantom")
    cfg = TrainConfig(model="diffusion", model_config={"width": 4, "depth": 1, "convs": 1, "steps": 3},
                      iterations=6, batch_size=2, patch_size=32, device="cpu", patience=0)
    model = run_train(lres, hres, lk["scale"], _registration("foam_phantom"), cfg).checkpoint
    session_for(viewer).set_model(model, "test")
    assert not w.sampling_form.native.isHidden() and w.tta_check.native.isHidden() and w.steps.value == 3
    assert w.error_check.enabled  # calibrated at the end of its training
    w.samples.value, w.steps.value = 2, 2
    assert w.preview()
    _wait(qtbot, w.preview_job)
    assert w.preview_job.state == "done", w.preview_job.error
    tile, std = viewer.layers[PREVIEW_NAME], viewer.layers[STD_NAME]
    assert std.data.shape == tile.data.shape and float(np.min(std.data)) >= 0 < float(np.max(std.data))
    np.testing.assert_allclose(std.translate, tile.translate)
    assert error_map_of(viewer, PREVIEW_NAME) is not None
    w.samples.value = 1  # one sample: no spread to show, and no refusal
    w.steps.value = 1
    assert w.preview() and not errors
    _wait(qtbot, w.preview_job)
    assert w.preview_job.state == "done"
