"""The Plugins-menu docks as a user opens them, one by one: one session, tabs, widths, Start states."""

import warnings

import pytest
from qtpy.QtCore import QPoint, Qt
from qtpy.QtWidgets import QApplication, QPushButton

from napari_resolve._qt.docks import ScrollingDock
from napari_resolve._qt.training_widget import SYNTHETIC

WORKFLOW = "Resolution recovery workflow (all steps)"
MENU = [WORKFLOW, "1 Data and registration", "2 Training", "3 Preview and upscale", "4 Quality maps and metrics",
        "5 Pores"]


def _open(viewer, name):
    """Open a dock the way Plugins ▸ napari-resolve ▸ name does: napari gives it a proxy of the viewer."""
    return viewer.window.add_plugin_dock_widget("napari-resolve", name)


def test_docks_opened_separately_share_the_model(registered_viewer, tiny_model):
    viewer, _, _ = registered_viewer
    _, train = _open(viewer, "2 Training")
    _, upscale = _open(viewer, "3 Preview and upscale")
    up = upscale.step
    for controls in (up.preview_controls, up.upscale_controls):
        assert not controls.run_button.isEnabled()
        assert controls.run_button.toolTip().startswith("There is no model yet")

    train.step.load_model(tiny_model)  # what the training dock's "Load model…" does

    assert up.session is train.step.session and up.session.model is not None
    assert "loaded from m.pt" in up.model_label.value
    for controls in (up.preview_controls, up.upscale_controls):
        assert controls.run_button.isEnabled() and controls.blocked is None
    # A dock opened later, and the all-steps widget, see the same model.
    _, flow = _open(viewer, WORKFLOW)
    assert flow.step(2).session is up.session and "loaded from m.pt" in flow.step(2).model_label.value


def test_no_dock_reads_private_napari_attributes(registered_viewer):
    viewer, _, _ = registered_viewer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in MENU:
            _open(viewer, name)
        QApplication.processEvents()
    private = [str(w.message) for w in caught if "Private attribute access" in str(w.message)]
    assert private == []


def test_training_start_waits_for_the_registration(registered_viewer):
    viewer, _, hres = registered_viewer
    _, train = _open(viewer, "2 Training")
    _, reg = _open(viewer, "1 Data and registration")
    start = train.step.controls.run_button
    assert start.isEnabled() and train.step.controls.blocked is None

    reg.step.reset()  # the registration dock's Reset: the HRES is back where it was, not registered
    assert not start.isEnabled()
    assert f"{hres.name!r} is not registered yet" in start.toolTip()
    assert start.toolTip() == train.step.reg_label.value

    train.step.data_combo.value = SYNTHETIC  # synthetic pairs need no registration
    assert start.isEnabled() and train.step.controls.blocked is None


def test_a_second_dock_tabs_with_the_first(phantom_viewer, qtbot):
    viewer, _, _ = phantom_viewer
    window = viewer.window._qt_window
    first, _ = _open(viewer, "2 Training")
    second, _ = _open(viewer, "3 Preview and upscale")
    third, _ = _open(viewer, WORKFLOW)
    # Tabbed together rather than stacked (which leaves the first about 100 px tall).
    qtbot.waitUntil(lambda: set(window.tabifiedDockWidgets(first)) == {second, third}, timeout=5000)
    # napari's own docks (layer list and controls, on the left) are left alone.
    assert all(window.dockWidgetArea(d) == window.dockWidgetArea(first) for d in (second, third))
    assert window.tabifiedDockWidgets(viewer.window._qt_viewer.dockLayerList) == []


@pytest.mark.parametrize("name", MENU)
def test_a_dock_at_the_default_width_clips_nothing(make_napari_viewer, name, qtbot):
    import numpy as np

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((8, 32, 32)), name="LRES scan with a long name of 40 chars")
    viewer.add_image(np.zeros((8, 32, 32)), name="HRES")
    dock, widget = _open(viewer, name)
    window = viewer.window._qt_window
    window.resizeDocks([dock], [320], Qt.Orientation.Horizontal)  # napari's default dock width
    scroll = widget if isinstance(widget, ScrollingDock) else widget.scroll
    content = scroll.widget()
    for _ in range(5):  # the resize, then the layouts it invalidates (posted events, no timing)
        QApplication.processEvents()
    if name != WORKFLOW:  # each step fits napari's default width (long names and choices are elided)
        assert dock.width() <= 320, dock.width()
    # The content is never squeezed below what it needs, so the dock is as wide as that...
    assert content.width() >= max(content.minimumSizeHint().width(), content.minimumWidth())
    assert dock.width() >= content.width()
    # ...and every button (Stop, Load… at the right) lies inside the visible part.
    for button in content.findChildren(QPushButton):
        if button.isVisibleTo(content) and button.width() > 0:
            right = button.mapTo(scroll.viewport(), QPoint(button.width(), 0)).x()
            assert right <= scroll.viewport().width(), (button.text(), right, scroll.viewport().width())


def test_result_tables_read_in_full_in_the_styled_docks(registered_viewer, qtbot, misfits):
    """The Quality and Pores tables as napari styles and sizes them: every title, figure and row title whole."""
    import numpy as np

    from napari_resolve._qt._layers import KEY

    viewer, lres, hres = registered_viewer
    viewer.window.show()
    window = viewer.window._qt_window
    window.resize(1400, 900)
    data = np.array(hres.data, np.float32)
    data[30:45, 30:45, 30:45] += 0.3
    # As the upscale step opens a result it wrote (the long name the audit saw cut).
    upscaled = viewer.add_image(data, name="upscaled: upscaled_foam.zarr", scale=hres.scale, translate=hres.translate,
                                metadata={KEY: {"produced": True, "source": "/tmp/upscaled_foam.zarr"}})
    quality_dock, quality = _open(viewer, "4 Quality maps and metrics")
    pores_dock, pores = _open(viewer, "5 Pores")
    q, p = quality.step, pores.step
    q.result_combo.value = upscaled
    p.inputs.value = [lres, upscaled, hres]
    for step in (q, p):
        assert step.run()
        qtbot.waitUntil(lambda step=step: step.job.state != "running", timeout=120_000)
        assert step.job.state == "done", step.job.error
    tables = {quality_dock: [q.table, q.resolution_table, q.regions_table], pores_dock: [p.table.native]}
    for width in (None, 320):  # as napari opened them, then napari's default dock width
        for dock, shown in tables.items():
            dock.raise_()
            if width is not None:
                window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
            for _ in range(5):
                QApplication.processEvents()
            for table in shown:
                assert table.isVisible()
                assert misfits(table) == [], (dock.windowTitle(), dock.width())
    # The Result picker elides the long name with an ellipsis instead of cutting it.
    assert q.result_combo.native._eliding.shown.endswith("…")
