"""The 'Data and registration' widget: pick layers, register in place, reset, stop, save/load."""

import copy
import time

import numpy as np
import pytest

from napari_resolve._qt._session import registration_of
from napari_resolve._qt.registration_widget import RegistrationWidget
from napari_resolve.errors import InputError
from napari_resolve.registration import register as real_register


@pytest.fixture(scope="module")
def foam():
    """The 3D foam sample's layer data, made once for this file (making it takes seconds)."""
    from napari_resolve._sample_data import foam_phantom

    return foam_phantom()


@pytest.fixture
def phantom_viewer(make_napari_viewer, foam):
    """Like conftest's ``phantom_viewer`` (LRES and unregistered HRES), from the shared sample data."""
    viewer = make_napari_viewer()
    layers = [getattr(viewer, f"add_{kind}")(data, **copy.deepcopy(kw)) for data, kw, kind in foam]
    return viewer, *layers


@pytest.fixture
def notes(monkeypatch):
    """The notifications shown, as (kind, message)."""
    shown = []
    for kind in ("info", "warning", "error"):
        monkeypatch.setattr(
            f"napari.utils.notifications.show_{kind}", lambda msg, kind=kind: shown.append((kind, str(msg)))
        )
    return shown


def _widget(qtbot, viewer):
    widget = RegistrationWidget(viewer)
    qtbot.addWidget(widget)
    return widget


def _run(qtbot, widget, timeout=20_000):
    assert widget.controls.run() is True, widget.controls.status.text()
    qtbot.waitUntil(lambda: widget.job.state != "running", timeout=timeout)
    return widget.job.state


def _assert_in_place(hres, reg, voxel):
    truth = np.asarray(hres.metadata["true_offset_um"], float)
    err = np.abs(np.asarray(hres.translate) - truth)
    assert np.all(err < 0.5 * np.asarray(voxel)), (tuple(hres.translate), tuple(truth))
    assert np.allclose(hres.translate, reg.offset_um) and np.allclose(hres.scale, reg.scale)


def test_picks_the_layers_and_prefills_the_voxel_sizes(qtbot, phantom_viewer, notes):
    viewer, lres, hres = phantom_viewer
    # The HRES was added last but the names decide which is which.
    viewer.layers.move(viewer.layers.index(hres), 0)
    w = _widget(qtbot, viewer)
    assert w.lres_combo.value is lres and w.hres_combo.value is hres
    assert w.lres_voxel.values(3, "LRES") == (3.0, 3.0, 3.0)
    assert w.hres_voxel.values(3, "HRES") == (1.0, 1.0, 1.0)
    assert w.lres_note.native.isHidden() and w.hres_note.native.isHidden()

    # Picking another layer fills its own voxel size.
    other = viewer.add_image(np.zeros((8, 9, 10), np.float32), name="other", scale=(2.0, 0.5, 0.5))
    w.hres_combo.value = other
    assert w.hres_voxel.values(3, "HRES") == (2.0, 0.5, 0.5)
    w.hres_combo.value = hres
    assert w.hres_voxel.values(3, "HRES") == (1.0, 1.0, 1.0)


def test_picks_first_two_image_layers_without_names(qtbot, make_napari_viewer):
    viewer = make_napari_viewer()
    w = _widget(qtbot, viewer)  # opened before any data
    a = viewer.add_image(np.zeros((20, 20), np.float32), name="scan a", scale=(4, 4))
    b = viewer.add_image(np.zeros((10, 10), np.float32), name="scan b", scale=(1, 1))
    assert w.lres_combo.value is a and w.hres_combo.value is b
    assert w.lres_voxel.value == "4, 4" and w.hres_voxel.value == "1, 1"


def test_register_moves_the_hres_layer_in_place_and_reset_puts_it_back(qtbot, phantom_viewer, notes):
    viewer, lres, hres = phantom_viewer
    data, n_layers = hres.data, len(viewer.layers)
    before_t, before_s = tuple(hres.translate), tuple(hres.scale)
    assert np.abs(np.asarray(hres.metadata["true_offset_um"]) - before_t).max() > 10  # really has to move
    w = _widget(qtbot, viewer)
    got = []
    w.registered.connect(got.append)

    assert _run(qtbot, w) == "done"
    reg = w.registration
    assert reg is not None and reg.ok
    _assert_in_place(hres, reg, (1.0, 1.0, 1.0))
    assert np.allclose(hres.scale, 1.0)
    assert hres.data is data and len(viewer.layers) == n_layers  # moved, not copied
    assert np.allclose(lres.scale, 3.0) and np.allclose(lres.translate, 0.0)
    assert registration_of(hres).offset_um == reg.offset_um  # stored for the later steps
    assert got == [reg]
    text = w.result_box.text()
    assert "OK" in text and f"{reg.ncc:.3f}" in text
    assert [k for k, _ in notes] == ["info"]

    assert w.reset() is True
    assert tuple(hres.translate) == before_t and tuple(hres.scale) == before_s
    assert registration_of(hres) is None and w.registration is None
    assert got[-1] is None
    assert "put back" in w.result_box.text()


def test_2d_section_registers_in_place(qtbot, section_viewer, notes):
    viewer, lres, hres = section_viewer
    data = hres.data
    w = _widget(qtbot, viewer)
    assert w.lres_voxel.value == "4, 4" and w.hres_voxel.value == "1, 1"
    assert _run(qtbot, w) == "done"
    assert w.registration.ok
    _assert_in_place(hres, w.registration, (1.0, 1.0))
    assert hres.data is data and len(viewer.layers) == 2


def test_bad_inputs_are_refused_and_it_works_afterwards(qtbot, phantom_viewer, notes):
    viewer, lres, hres = phantom_viewer
    w = _widget(qtbot, viewer)
    before = tuple(hres.translate)

    # Swapped: the "HRES" field (64 x 3 um) is larger than the "LRES" one (76 x 1 um).
    w.lres_combo.value, w.hres_combo.value = hres, lres
    assert w.controls.run() is False
    assert "larger than the LRES" in w.controls.status.text()
    assert notes and notes[-1][0] == "error" and "larger" in notes[-1][1]
    assert w.job.state == "idle"

    # A 2D HRES against a 3D LRES.
    flat = viewer.add_image(np.random.default_rng(0).random((40, 40), np.float32), name="HRES slice", scale=(1, 1))
    w.lres_combo.value, w.hres_combo.value = lres, flat
    assert w.controls.run() is False
    assert "3D" in w.controls.status.text() and "2D" in w.controls.status.text()

    # The same layer twice.
    w.hres_combo.value = lres
    assert w.controls.run() is False and "both" in w.controls.status.text()

    # A search radius without a start offset.
    w.hres_combo.value = hres
    w.search_radius.value = "20"
    assert w.controls.run() is False and "start offset" in w.controls.status.text()
    w.search_radius.value = ""
    assert tuple(hres.translate) == before  # nothing moved by the refusals

    # Too small to locate: the core refuses it in the worker; the job fails with its message.
    tiny = viewer.add_image(np.random.default_rng(0).random((4, 4, 4), np.float32), name="HRES tiny")
    w.hres_combo.value = tiny
    assert _run(qtbot, w) == "failed"
    assert notes[-1][0] == "error" and "too few" in notes[-1][1]
    assert "failed" in w.result_box.text() and np.allclose(tiny.translate, 0.0)
    w.hres_combo.value = hres

    assert _run(qtbot, w) == "done" and w.registration.ok
    _assert_in_place(hres, w.registration, (1.0, 1.0, 1.0))


def test_start_offset_and_radius_are_used(qtbot, phantom_viewer, notes):
    viewer, lres, hres = phantom_viewer
    w = _widget(qtbot, viewer)
    truth = np.asarray(hres.metadata["true_offset_um"], float)
    w.init_offset.value = ", ".join(f"{v + 4:g}" for v in truth)
    w.search_radius.value = "12"
    w.refine_scale.value = True
    assert _run(qtbot, w) == "done"
    reg = w.registration
    assert reg.ok
    # The search window was the one asked for (to a whole LRES voxel or two), not the whole field.
    assert np.all(np.asarray(reg.search_lo_um) >= truth + 4 - 12 - 6.01)
    assert np.all(np.asarray(reg.search_hi_um) <= truth + 4 + 12 + 6.01)
    _assert_in_place(hres, reg, (1.0, 1.0, 1.0))
    assert np.allclose(hres.scale, 1.0, rtol=0.01)  # refined, close to the true 1 um


def test_unknown_voxel_size_must_be_typed_and_sets_the_lres_scale(qtbot, phantom_viewer, notes):
    viewer, lres, hres = phantom_viewer
    # As the reader leaves a file without a voxel size: 1 unit per voxel, voxel_known False.
    lres.scale = (1.0, 1.0, 1.0)
    lres.metadata = {**lres.metadata, "voxel_known": False}
    w = _widget(qtbot, viewer)
    assert w.lres_voxel.value == ""
    assert not w.lres_note.native.isHidden() and "no voxel size" in w.lres_note.value
    assert w.controls.run() is False and "Type the LRES voxel size" in w.controls.status.text()

    w.lres_voxel.value = "3"
    assert w.lres_note.native.isHidden()  # typed: the note has done its job
    w.lres_voxel.value = ""
    assert not w.lres_note.native.isHidden()  # emptied again: it is back
    w.lres_voxel.value = "3"
    assert _run(qtbot, w) == "done" and w.registration.ok
    assert np.allclose(lres.scale, 3.0)  # so that both layers show in place
    assert lres.data.dtype == np.float32 and lres.data.shape == (64, 64, 64)
    _assert_in_place(hres, w.registration, (1.0, 1.0, 1.0))


def test_unreliable_result_does_not_move_the_layer(qtbot, phantom_viewer, notes):
    viewer, lres, hres = phantom_viewer
    noise = np.random.default_rng(1).normal(size=(40, 40, 40)).astype(np.float32)
    other = viewer.add_image(noise, name="HRES noise", scale=(1, 1, 1))
    w = _widget(qtbot, viewer)
    w.hres_combo.value = other
    got = []
    w.registered.connect(got.append)
    assert _run(qtbot, w) == "done"
    reg = w.registration
    assert reg is not None and not reg.ok
    assert np.allclose(other.translate, 0.0) and registration_of(other) is None
    assert got == []
    assert "unreliable" in w.result_box.text() and "To fix" in w.result_box.text()
    # The core's message, written as the widgets write units and shapes ("µm", "×").
    from napari_resolve._qt._workers import as_shown

    assert ("warning", as_shown(reg.message)) in notes


def test_stop_leaves_the_layer_where_it_was(qtbot, phantom_viewer, notes, monkeypatch):
    viewer, lres, hres = phantom_viewer
    calls = []

    def slow_register(*args, progress, **kwargs):
        for i in range(500):
            progress(f"stage {i}")
            calls.append(i)
            time.sleep(0.01)
        return real_register(*args, progress=progress, **kwargs)

    monkeypatch.setattr("napari_resolve._qt.registration_widget.register", slow_register)
    w = _widget(qtbot, viewer)
    before_t, before_s = tuple(hres.translate), tuple(hres.scale)
    assert w.controls.run() is True
    qtbot.waitUntil(lambda: len(calls) > 3, timeout=5000)
    assert not w.reset_button.isEnabled()
    w.controls.stop_button.click()
    qtbot.waitUntil(lambda: w.job.state != "running", timeout=5000)
    assert w.job.state == "stopped"
    assert len(calls) < 500
    assert tuple(hres.translate) == before_t and tuple(hres.scale) == before_s
    assert registration_of(hres) is None and w.registration is None
    assert "Stopped" in w.result_box.text() and w.reset_button.isEnabled()


def test_save_and_load_roundtrip(qtbot, phantom_viewer, notes, tmp_path):
    viewer, lres, hres = phantom_viewer
    w = _widget(qtbot, viewer)
    with pytest.raises(InputError, match="Register first"):
        w.save_registration(tmp_path / "none.json")
    assert _run(qtbot, w) == "done"
    placed_t, placed_s = tuple(hres.translate), tuple(hres.scale)
    path = w.save_registration(tmp_path / "reg.json")

    w.reset()
    assert np.allclose(hres.translate, 0.0)
    got = []
    w.registered.connect(got.append)
    reg = w.load_registration(path)
    assert np.allclose(hres.translate, placed_t, atol=1e-9) and np.allclose(hres.scale, placed_s)
    assert registration_of(hres).offset_um == reg.offset_um and got == [reg]
    assert "Loaded" in w.result_box.text()


def test_load_checks_the_dimensionality(qtbot, section_viewer, foam, notes, tmp_path):
    # A 3D registration (as the command line writes it) does not go onto a 2D HRES.
    (lres3, lk, _), (hres3, hk, _) = foam
    path = real_register(lres3, hres3, lk["scale"], hk["scale"]).save(tmp_path / "reg3d.json")
    viewer, lres, hres = section_viewer
    w = _widget(qtbot, viewer)
    with pytest.raises(InputError, match="3D"):
        w.load_registration(path)
    assert np.allclose(hres.translate, 0.0) and registration_of(hres) is None


def test_an_already_registered_hres_is_shown_as_registered(qtbot, registered_viewer, notes):
    from napari_resolve._qt.workflow_widget import WorkflowWidget

    viewer, lres, hres = registered_viewer  # registered before this step was opened (another dock, a file)
    reg = registration_of(hres)
    w = _widget(qtbot, viewer)
    text = w.result_box.text()
    assert "Not registered yet" not in text
    assert "is registered" in text and f"NCC {reg.ncc:.3f}" in text and "OK" in text
    # The all-steps widget's registration step says the same.
    flow = WorkflowWidget(viewer)
    qtbot.addWidget(flow)
    assert "is registered" in flow.step(0).result_box.text()

    hres.translate = tuple(t + 5.0 for t in hres.translate)  # moved by hand since
    w.hres_combo.value = lres
    w.hres_combo.value = hres
    assert "was moved or rescaled after registration" in w.result_box.text()
    w.reset()
    w.hres_combo.value = lres
    w.hres_combo.value = hres
    assert w.result_box.text() == "Not registered yet."
