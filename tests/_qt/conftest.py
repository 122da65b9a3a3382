"""Viewers with the phantom sample data, registered or not, and a small trained model.

Every widget test starts from what a user has after File > Open Sample:
an LRES layer and an HRES layer (not yet in place).
"""

import copy
import functools
import os

import pytest

# Two torch jobs on two cores slow each other down many times; tests stay single-threaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@functools.cache
def _sample(name):
    """The sample's layer data, made once per test session (the foam takes seconds)."""
    from napari_resolve import _sample_data

    return getattr(_sample_data, name)()


def _add_sample(viewer, name):
    """Add fresh copies of a sample's layers, as File > Open Sample does."""
    layers = []
    for data, kwargs, kind in _sample(name):
        kwargs = copy.deepcopy(kwargs)
        layers.append(getattr(viewer, f"add_{kind}")(data.copy(), **kwargs))
    return layers


@pytest.fixture
def phantom_viewer(make_napari_viewer):
    """A viewer with the 3D foam sample: (viewer, lres_layer, hres_layer); HRES not yet registered."""
    viewer = make_napari_viewer()
    lres, hres = _add_sample(viewer, "foam_phantom")
    return viewer, lres, hres


@pytest.fixture
def section_viewer(make_napari_viewer):
    """A viewer with the 2D SEM-like sample: (viewer, lres_layer, hres_layer), HRES not yet registered."""
    viewer = make_napari_viewer()
    lres, hres = _add_sample(viewer, "sem_section")
    return viewer, lres, hres


@functools.cache
def _registration(name):
    """The sample's registration, computed once per test session."""
    from napari_resolve.registration import register

    (lres, lk, _), (hres, hk, _) = _sample(name)
    reg = register(lres, hres, lk["scale"], hk["scale"])
    assert reg.ok, reg.message
    return reg


def _register(hres_layer, name):
    """Place the HRES layer as the registration step does."""
    from napari_resolve._qt._session import place_registered

    place_registered(hres_layer, _registration(name))


@pytest.fixture
def registered_viewer(phantom_viewer):
    """``phantom_viewer`` with the HRES registered in place (as the registration step leaves it)."""
    viewer, lres, hres = phantom_viewer
    _register(hres, "foam_phantom")
    return viewer, lres, hres


@pytest.fixture
def registered_section(section_viewer):
    """``section_viewer`` with the 2D HRES registered in place."""
    viewer, lres, hres = section_viewer
    _register(hres, "sem_section")
    return viewer, lres, hres


@pytest.fixture(scope="session")
def small_model():
    """A small U-Net trained briefly on the 3D foam sample (a Checkpoint); shared by the tests."""
    from napari_resolve.learn.training import TrainConfig, run_train

    (lres, lk, _), (hres, hk, _) = _sample("foam_phantom")
    reg = _registration("foam_phantom")
    cfg = TrainConfig(
        model="unet25d", model_config={"width": 8}, iterations=40, batch_size=2, patch_size=32, device="cpu"
    )
    return run_train(lres, hres, lk["scale"], reg, cfg).checkpoint


def _misfits(table):
    """What of a results table does not read in full: header lines, cells or row titles wider than their room.

    Measured as Qt paints them: a header's text inside its section less the style's padding
    (the label rectangle of napari's styled header), a cell's text plus the item margins
    inside its column; every column inside the viewport (nothing to scroll to).
    """
    from qtpy.QtCore import QRect, Qt
    from qtpy.QtGui import QFontMetrics
    from qtpy.QtWidgets import QStyle, QStyleOptionHeader

    def label(header, size, length, orientation, text):
        option = QStyleOptionHeader()
        option.initFrom(header)
        option.rect = QRect(0, 0, size, length) if orientation == Qt.Orientation.Horizontal else QRect(
            0, 0, length, size)
        option.orientation = orientation
        option.text = text
        return header.style().subElementRect(QStyle.SubElement.SE_HeaderLabel, option, header)

    bad = []
    header, rows = table.horizontalHeader(), table.verticalHeader()
    widths = [header.sectionSize(j) for j in range(table.columnCount())]
    if sum(widths) > table.viewport().width() or table.horizontalScrollBar().maximum() > 0:
        bad.append(f"columns {widths} wider than the viewport {table.viewport().width()}")
    metrics = header.fontMetrics()
    margin = 2 * (table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1)
    for j, width in enumerate(widths):
        item = table.horizontalHeaderItem(j)
        text = item.text() if item is not None else ""
        room = label(header, width, header.height(), Qt.Orientation.Horizontal, text)
        lines = text.split("\n")
        for line in lines:
            if metrics.horizontalAdvance(line) > room.width():
                bad.append(f"header {line!r}: {metrics.horizontalAdvance(line)} px in {room.width()}")
        if len(lines) * metrics.height() > room.height():
            bad.append(f"header {text!r}: {len(lines)} lines in {room.height()} px")
        for i in range(table.rowCount()):
            cell = table.item(i, j)
            if cell is not None and QFontMetrics(cell.font()).horizontalAdvance(cell.text()) + margin > width:
                bad.append(f"cell {cell.text()!r}: {QFontMetrics(cell.font()).horizontalAdvance(cell.text())} "
                           f"+ {margin} px in {width}")
    for i in range(table.rowCount()):
        item = table.verticalHeaderItem(i)
        text = item.text() if item is not None else ""
        room = label(rows, rows.sectionSize(i), rows.width(), Qt.Orientation.Vertical, text)
        if rows.fontMetrics().horizontalAdvance(text) > room.width():
            bad.append(f"row {text!r}: {rows.fontMetrics().horizontalAdvance(text)} px in {room.width()}")
    return bad


@pytest.fixture
def misfits():
    """``misfits(table)``: the texts of a results table that do not show in full (empty when all read)."""
    return _misfits
