"""The shared Qt parts: jobs in threads, plugin layers, layer pickers, forms."""

import itertools
import re
import threading
import time

import numpy as np
import pytest

from napari_resolve._qt._forms import JobControls, VoxelSizeEdit, layer_combo, parse_point
from napari_resolve._qt._layers import add_or_update, is_produced
from napari_resolve._qt._workers import Job, callback_generator
from napari_resolve.errors import InputError, ResolveError
from napari_resolve.jobs import Progress


def _wait(qtbot, job, timeout=10_000):
    qtbot.waitUntil(lambda: job.state != "running", timeout=timeout)


def test_job_runs_in_a_thread_and_reports(qtbot):
    main = threading.get_ident()
    seen_threads, records = [], []

    def gen():
        for i in range(5):
            seen_threads.append(threading.get_ident())
            yield Progress(i + 1, 5, f"step {i + 1}")
        return "result"

    job = Job("Test")
    states = []
    job.state_changed.connect(states.append)
    job.progress.connect(lambda r: records.append((threading.get_ident(), r.step)))
    job.start(gen())
    _wait(qtbot, job)
    assert job.state == "done" and job.result == "result"
    assert states == ["running", "done"]
    assert all(t != main for t in seen_threads)  # the work ran in the worker
    assert [s for _, s in records] == [1, 2, 3, 4, 5]
    assert all(t == main for t, _ in records)  # the handlers ran on the main thread


def test_stop_closes_the_generator_in_the_worker(qtbot):
    cleaned = []

    def gen():
        try:
            for i in itertools.count():  # endless: only Stop ends it, however fast the machine
                time.sleep(0.002)
                yield Progress(i, 10_000, "")
        finally:
            cleaned.append(threading.get_ident())
        return "finished"  # never reached

    job = Job("Long")
    got = []
    job.progress.connect(got.append)
    job.start(gen())
    qtbot.waitUntil(lambda: len(got) > 3, timeout=5000)
    job.stop()
    _wait(qtbot, job)
    assert job.state == "stopped" and job.result is None
    assert cleaned and cleaned[0] != threading.get_ident()


def test_error_becomes_a_failed_state_with_the_message(qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)

    def gen():
        yield Progress(1, 2, "")
        raise ResolveError("The ROI is empty; draw a larger one.")

    job = Job("Training")
    job.start(gen())
    _wait(qtbot, job)
    assert job.state == "failed"
    assert shown == ["Training failed: The ROI is empty; draw a larger one."]
    # usable again afterwards
    job.start(x for x in [Progress(1, 1, "")])
    _wait(qtbot, job)
    assert job.state == "done"


def test_callback_function_stops_at_its_next_report(qtbot):
    calls = []

    def slow(n, progress):
        for i in range(n):
            progress(f"stage {i}")
            calls.append(i)
            time.sleep(0.01)
        return n

    job = Job("Callback")
    job.start(callback_generator(slow, 3))
    _wait(qtbot, job)
    assert job.state == "done" and job.result == 3 and calls == [0, 1, 2]

    calls.clear()
    job.start(callback_generator(slow, 10_000))
    qtbot.waitUntil(lambda: len(calls) > 2, timeout=5000)
    job.stop()
    _wait(qtbot, job)
    assert job.state == "stopped"
    assert len(calls) < 10_000


def test_job_controls_follow_the_state(qtbot, monkeypatch):
    monkeypatch.setattr("napari.utils.notifications.show_error", lambda msg: None)
    job = Job("Thing")

    def on_run():
        job.start((Progress(i, 3, f"at {i}") for i in range(1, 4)))

    controls = JobControls(job, "Go", on_run)
    qtbot.addWidget(controls)
    assert controls.run() is True
    assert not controls.run_button.isEnabled() and controls.stop_button.isEnabled()
    _wait(qtbot, job)
    assert controls.run_button.isEnabled() and not controls.stop_button.isEnabled()
    assert controls.bar.value() == controls.bar.maximum() and controls.bar.format() == "done"

    # Records without their own estimate still get a time left, from the elapsed time per step:
    # a clock that advances 3 s per reading makes it independent of how fast this machine is.
    ticks = iter(range(0, 10_000, 3))
    slow = Job("Tiles")

    def tiles():
        for i in range(1, 5):
            yield Progress(i, 200, f"tile {i}")

    formats = []
    tiled = JobControls(slow, "Go", lambda: slow.start(tiles()))
    tiled.clock = lambda: float(next(ticks))
    qtbot.addWidget(tiled)
    slow.progress.connect(lambda r: formats.append(tiled.bar.format()))
    assert tiled.run()
    _wait(qtbot, slow)
    assert formats and formats[-1].startswith("4/200")
    # 4 steps took at least 3 s each by that clock, so 196 more take minutes: "about N min ... left".
    assert re.search(r"about \d+ (min|h) .* left", formats[-1]), formats[-1]

    def refuse():
        raise InputError("Pick an LRES layer first.")

    refusing = JobControls(Job("Other"), "Go", refuse)
    qtbot.addWidget(refusing)
    assert refusing.run() is False
    assert "Pick an LRES layer first." in refusing.status.text()


def test_add_or_update_never_duplicates_nor_touches_user_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    user = viewer.add_image(np.zeros((4, 4)), name="preview")
    a = add_or_update(viewer, "preview", np.ones((8, 8)), scale=(0.5, 0.5), translate=(1, 2))
    assert a is not user and a.name == "preview (napari-resolve)" and is_produced(a)
    assert np.all(user.data == 0)
    b = add_or_update(viewer, "preview", np.full((6, 6), 2.0), scale=(0.25, 0.25), translate=(3, 4))
    assert b is a and len(viewer.layers) == 2
    assert tuple(b.scale) == (0.25, 0.25) and tuple(b.translate) == (3, 4) and b.data.shape == (6, 6)
    lab = add_or_update(viewer, "pores", np.zeros((5, 5), int), kind="labels")
    assert lab.__class__.__name__ == "Labels"


def test_layer_combo_follows_the_layer_list(make_napari_viewer):
    import napari

    viewer = make_napari_viewer()
    combo = layer_combo(viewer, napari.layers.Image, "LRES")
    assert list(combo.choices) == []
    layer = viewer.add_image(np.zeros((4, 4)), name="scan")
    viewer.add_points([[1, 1]], name="points")
    assert list(combo.choices) == [layer]
    layer.name = "renamed"
    assert combo.native.itemText(0) == "renamed"
    viewer.layers.remove(layer)
    assert list(combo.choices) == []


def test_voxel_and_point_fields_explain_bad_input():
    edit = VoxelSizeEdit("voxel")
    edit.value = "3"
    assert edit.values(3, "LRES") == (3.0, 3.0, 3.0)
    edit.value = "3, 1.5 ,1.5 um"
    assert edit.values(3, "LRES") == (3.0, 1.5, 1.5)
    for bad in ("abc", "1, 2", "0", "-1, 1, 1"):
        edit.value = bad
        with pytest.raises(InputError, match="LRES voxel size"):
            edit.values(3, "LRES")
    assert parse_point("", 3, "offset") is None
    assert parse_point("1, 2, 3", 3, "offset") == (1.0, 2.0, 3.0)
    with pytest.raises(InputError, match="offset"):
        parse_point("1, 2", 3, "offset")


def test_closing_the_controls_stops_their_job(qtbot):
    from qtpy.QtWidgets import QApplication

    job = Job("Long")
    steps = []

    def gen():
        for i in itertools.count():  # endless: only closing the controls ends it
            time.sleep(0.002)
            steps.append(i)
            yield Progress(i, 100_000, "")

    controls = JobControls(job, "Go", lambda: job.start(gen()))
    assert controls.run()
    qtbot.waitUntil(lambda: len(steps) > 3, timeout=5000)
    controls.deleteLater()
    QApplication.processEvents()  # delivers the deferred delete
    qtbot.waitUntil(lambda: job.state != "running", timeout=5000)
    assert job.state == "stopped"


def test_stopped_bar_says_where_it_stopped(qtbot):
    job = Job("Training")

    def gen():
        for i in range(1, 152):
            yield Progress(i, 300, f"iteration {i}")
        while True:  # then at 151 until stopped, however fast this machine is
            time.sleep(0.002)
            yield Progress(151, 300, "iteration 151")

    controls = JobControls(job, "Go", lambda: job.start(gen()))
    qtbot.addWidget(controls)
    assert controls.run()
    qtbot.waitUntil(lambda: controls.bar.value() == 151, timeout=10_000)
    job.stop()
    _wait(qtbot, job)
    assert job.state == "stopped"
    # Not a blank bar: it stays at 151 of 300 and says so.
    assert controls.bar.format() == "stopped at 151/300"
    assert (controls.bar.value(), controls.bar.maximum()) == (151, 300)
    assert controls.bar.text() == "stopped at 151/300"


def test_blocked_run_button_says_why_and_stays_off_after_a_run(qtbot):
    job = Job("Preview")
    controls = JobControls(job, "Go", lambda: job.start(Progress(1, 1, "") for _ in range(1)))
    qtbot.addWidget(controls)
    controls.run_button.setToolTip("Upscale one tile")
    assert controls.run_button.isEnabled() and controls.blocked is None
    controls.block("There is no model yet: train one or load a model file.")
    assert not controls.run_button.isEnabled()
    assert controls.run_button.toolTip().startswith("There is no model yet")
    # A job that ends (started another way) must not turn a blocked button back on.
    assert controls.run()
    _wait(qtbot, job)
    assert job.state == "done" and not controls.run_button.isEnabled()
    controls.block(None)
    assert controls.run_button.isEnabled() and controls.run_button.toolTip() == "Upscale one tile"


def test_plugin_layers_through_napari_proxy_use_no_private_api(make_napari_viewer):
    import warnings

    from napari.utils._proxies import PublicOnlyProxy

    # What a dock widget gets from napari: a proxy that warns on private attributes
    # (napari 0.10 refuses them).
    viewer = PublicOnlyProxy(make_napari_viewer())
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        a = add_or_update(viewer, "pores", np.zeros((5, 5), int), kind="labels")
        b = add_or_update(viewer, "pores", np.ones((5, 5), int), kind="labels")
        img = add_or_update(viewer, "pores", np.ones((5, 5)), kind="image")
    assert b.__wrapped__ is a.__wrapped__ and np.all(b.data == 1)
    assert img.__wrapped__ is not a.__wrapped__ and img.name == "pores (napari-resolve)"


def test_core_lengths_read_in_micrometres_but_user_names_stay():
    from napari_resolve._qt._workers import in_micrometres

    assert in_micrometres("voxels of 3 um (um), 'LRES 4um', umbra") == "voxels of 3 µm (µm), 'LRES 4um', umbra"


def test_plugin_outlines_are_never_offered_as_inputs(make_napari_viewer):
    from napari.layers import Shapes

    from napari_resolve._qt._forms import layer_combo
    from napari_resolve._qt._layers import KEY

    viewer = make_napari_viewer()
    square = [[0, 0], [0, 10], [10, 10], [10, 0]]
    mine = viewer.add_shapes([square], name="my region")
    viewer.add_shapes([square], name="HRES outline", metadata={KEY: {"produced": True, "kind": "outline"}})
    combo = layer_combo(viewer, Shapes, "Region", optional=True)
    assert combo.choices == (None, mine)
    outline = {KEY: {"produced": True, "kind": "outline"}}
    late = viewer.add_shapes([square], name="pores: measured box", metadata=outline)
    assert late not in combo.choices and mine in combo.choices


def test_core_messages_show_shapes_with_a_times_sign(qtbot):
    """The core writes "18 x 114 x 111" (for terminals); every widget shows "18 × 114 × 111", as its own texts."""
    from napari_resolve._qt._forms import format_shape
    from napari_resolve._qt._workers import as_shown, error_message

    assert as_shown("18 tiles of 18 x 114 x 111 output voxels, 3 x 3 x 3 um") == (
        "18 tiles of 18 × 114 × 111 output voxels, 3 × 3 × 3 µm")
    assert as_shown("'LRES 2 x 2' x 3") == "'LRES 2 × 2' x 3"  # only a number x a number
    assert format_shape((76, 76, 76)) == "76 × 76 × 76"
    assert error_message(InputError("only 76 x 76 x 8 voxels")) == "only 76 × 76 × 8 voxels"
    job = Job("Tiles")
    controls = JobControls(job, "Go", lambda: job.start(iter([Progress(1, 2, "a tile of 18 x 114 x 111 voxels")])))
    qtbot.addWidget(controls)
    shown = []
    job.progress.connect(lambda r: shown.append(controls.status.text()))
    assert controls.run()
    _wait(qtbot, job)
    assert shown == ["a tile of 18 × 114 × 111 voxels"]


def test_column_titles_wrap_at_word_breaks_and_fit_their_width(qtbot):
    from qtpy.QtWidgets import QTableWidget

    from napari_resolve._qt._forms import fill_table, results_table, wrap_title

    table = QTableWidget()
    metrics = table.fontMetrics()
    width = metrics.horizontalAdvance("upscaled_") + 1
    assert wrap_title("upscaled_foam", width, metrics) == "upscaled_\nfoam"
    assert wrap_title("LRES foam 3um", metrics.horizontalAdvance("LRES foam") + 1, metrics) == "LRES foam\n3um"
    assert wrap_title("short", 500, metrics) == "short"
    tiny = wrap_title("upscaled", metrics.horizontalAdvance("ups") + 1, metrics)  # the last resort: inside a word
    assert tiny.replace("\n", "") == "upscaled" and all(
        metrics.horizontalAdvance(line) <= metrics.horizontalAdvance("ups") + 1 for line in tiny.split("\n"))

    from napari_resolve._qt._forms import column_title

    table = results_table(["a long column title", "B"])
    qtbot.addWidget(table)
    table.resize(150, 200)
    table.show()
    qtbot.waitExposed(table)
    fill_table(table, ["r"], [["1.00", "2.00"]])
    qtbot.wait(20)
    header = table.horizontalHeader()
    assert "\n" in table.horizontalHeaderItem(0).text()  # wrapped to the narrow table...
    assert column_title(table, 0) == "a long column title"  # ...and still known by its title
    assert header.sectionSize(0) + header.sectionSize(1) == table.viewport().width()
    assert header.sectionSize(0) > header.sectionSize(1)  # the column with the longer title gets the room
    table.resize(600, 200)
    qtbot.wait(20)
    assert table.horizontalHeaderItem(0).text() == "a long column title"  # one line once there is room


def test_a_long_layer_name_is_elided_with_an_ellipsis_in_a_picker(make_napari_viewer, qtbot):
    from napari.layers import Image
    from qtpy.QtGui import QPixmap

    viewer = make_napari_viewer()
    name = "upscaled: upscaled_foam_with_a_long_name.zarr"
    viewer.add_image(np.zeros((4, 4)), name=name)
    combo = layer_combo(viewer, Image, "Result")
    native = combo.native
    qtbot.addWidget(native)
    for width, elided in ((130, True), (600, False)):
        native.resize(width, native.sizeHint().height())
        native.render(QPixmap(native.size()))  # what the picker paints
        shown = native._eliding.shown
        assert shown.endswith("…") == elided and name.startswith(shown.rstrip("…")), shown
        assert native.fontMetrics().horizontalAdvance(shown) < width
