"""Form parts shared by the dock widgets."""

from __future__ import annotations

import time

from magicgui.widgets import ComboBox, Label, LineEdit
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_resolve._text import MICRO, format_duration, parse_per_axis, parse_point  # noqa: F401 - re-exported
from napari_resolve._text import format_um as _format_um

from ._layers import is_outline
from ._workers import Job, in_micrometres


def format_um(values) -> str:
    """Per-axis lengths as the widgets write them beside a "µm": ``(3.0, 3.0, 3.0)`` -> ``"3, 3, 3"``."""
    return _format_um(values, ", ", unit="")


#: Characters a layer picker shows before eliding a name (it widens with the dock).
COMBO_CHARS = 8


def narrow(combo: ComboBox) -> ComboBox:
    """``combo`` as wide as the dock allows, not as its longest entry.

    A long entry (a layer name, a choice's description) is elided, and shown in
    full in the open list, instead of widening the dock past napari's default width.
    """
    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(COMBO_CHARS)
    return combo


def layer_combo(viewer, layer_type, label: str, *, optional: bool = False, tooltip: str = "") -> ComboBox:
    """A drop-down of the viewer's layers of ``layer_type`` that follows the layer list.

    With ``optional`` the first entry is "(none)" (value ``None``).
    """

    def choices(_widget=None):
        # Outlines the plugin draws (the HRES field, a measured box) are for looking, never an input.
        items = [(layer.name, layer) for layer in viewer.layers
                 if isinstance(layer, layer_type) and not is_outline(layer)]
        return [("(none)", None), *items] if optional else items

    # Not nullable: magicgui would add its own empty entry beside "(none)".
    return follow_with_choices(viewer, narrow(ComboBox(label=label, choices=choices, nullable=False,
                                                       tooltip=tooltip)))


def follow_with_choices(viewer, combo: ComboBox) -> ComboBox:
    """``combo`` with its choices recomputed whenever the viewer's layer list changes."""

    def refresh(event=None):
        try:
            combo.reset_choices()
        except RuntimeError:  # the Qt widget is gone (viewer closing)
            pass

    follow_layer_list(viewer, refresh)
    return combo


def follow_layer_list(viewer, refresh, inserted=None) -> None:
    """Call ``refresh()`` whenever the viewer's layer list changes: a layer added, removed, moved or renamed.

    ``inserted(layer)``, if given, is called for a new layer instead of ``refresh()``
    (e.g. to select it). A renamed layer keeps its place in a list but needs its
    new name shown, so every layer's name events are followed too.
    """

    def on_inserted(event):
        event.value.events.name.connect(refresh)
        if inserted is None:
            refresh()
        else:
            inserted(event.value)

    for layer in viewer.layers:
        layer.events.name.connect(refresh)
    viewer.layers.events.inserted.connect(on_inserted)
    viewer.layers.events.removed.connect(refresh)
    viewer.layers.events.moved.connect(refresh)


def select_layer(combo: ComboBox, name_contains: str) -> None:
    """Pick the first layer whose name contains ``name_contains`` (case-insensitive)."""
    for layer in combo.choices:
        if layer is not None and name_contains.lower() in layer.name.lower():
            combo.value = layer
            return


class VoxelSizeEdit(LineEdit):
    """Voxel size in um: one number (isotropic) or one per axis, "z, y, x"."""

    def __init__(self, label: str, tooltip: str = ""):
        super().__init__(
            label=label,
            tooltip=tooltip or "Voxel size in um: one number, or one per axis (z, y, x)",
        )

    def set_values(self, values) -> None:
        self.value = format_um(values)

    def values(self, ndim: int, what: str) -> tuple[float, ...]:
        """The voxel size as ``ndim`` floats, or :class:`InputError` saying what is wrong."""
        return parse_per_axis(self.value, ndim, f"{what} voxel size", example="'3' or '3, 1, 1'")


class JobControls(QWidget):
    """Run and Stop buttons, a progress bar and a status line, bound to a :class:`Job`.

    Parameters
    ----------
    job : Job
    run_text : str
        Label of the run button (e.g. "Register").
    on_run : callable
        Called when the run button is clicked; it validates the form and calls
        ``job.start(...)``. An :class:`InputError` it raises is shown as a
        notification and nothing starts.
    """

    #: Seconds of a monotonic clock, for the time left (a test may give its own clock).
    clock = staticmethod(time.perf_counter)

    def __init__(self, job: Job, run_text: str, on_run, parent=None):
        super().__init__(parent)
        self.job = job
        self._on_run = on_run
        self._started = self.clock()
        self._last = (0, 0)  # (step, total) of the last record, for "stopped at 151/300"
        self._blocked: str | None = None  # why the run button is off while idle (see block)
        self._run_tip = ""  # the run button's own tooltip, shown again once unblocked
        self.run_button = QPushButton(run_text)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.setToolTip("Stop at the next step; finished work is kept")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(True)
        self.bar.setFormat("")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        job.state_changed.connect(self._state)
        job.progress.connect(self._progress)
        # Closing the dock (or the viewer) stops the job and cuts it loose.
        self.destroyed.connect(job.abandon)

    def run(self) -> bool:
        """Validate and start (what the run button does); False if refused."""
        from napari.utils.notifications import show_error

        from ._workers import error_message

        if self.job.running:
            return False
        try:
            self._on_run()
        except Exception as exc:  # a refusal, before any thread started
            text = error_message(exc, self.job.labels)
            show_error(f"{self.job.name}: {text}")
            self.status.setText(text)
            return False
        return True

    def block(self, reason: str | None) -> None:
        """Turn the run button off while idle, with ``reason`` as its tooltip; None turns it back on.

        For what the form cannot fix by itself (no registration, no model): the
        user sees why before pressing, and in the tooltip what to do.
        """
        if reason and self._blocked is None:
            self._run_tip = self.run_button.toolTip()
        elif not reason and self._blocked is not None:
            self.run_button.setToolTip(self._run_tip)
        self._blocked = reason or None
        if self._blocked:
            self.run_button.setToolTip(self._blocked)
        self.run_button.setEnabled(not self.job.running and self._blocked is None)

    @property
    def blocked(self) -> str | None:
        """Why the run button is off (see :meth:`block`), or None."""
        return self._blocked

    def stop(self) -> None:
        self.job.stop()
        if self.job.running:
            self.status.setText("Stopping at the next step…")

    def _state(self, state: str) -> None:
        running = state == "running"
        self.run_button.setEnabled(not running and self._blocked is None)
        self.stop_button.setEnabled(running)
        if running:
            self._started = self.clock()
            self._last = (0, 0)
            self.bar.setRange(0, 0)  # busy until the first record says how far
            self.bar.setFormat("")
            self.status.setText(f"{self.job.name}: starting…")
        elif state == "stopped":
            step, total = self._last
            if total > 0:
                # Keep the bar where it stopped: a reset bar (value outside its range) shows no text at all.
                self.bar.setRange(0, total)
                self.bar.setValue(min(step, total))
                self.bar.setFormat(f"stopped at {step}/{total}")
            else:
                self.bar.setRange(0, 1)
                self.bar.setValue(0)
                self.bar.setFormat("stopped")
            self.status.setText(f"{self.job.name} stopped.")
        elif state == "failed":
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.bar.setFormat("failed")
            self.status.setText(self.job.error or "failed")
        elif state == "done":
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
            self.bar.setFormat("done")

    def _progress(self, record) -> None:
        step, total = int(getattr(record, "step", 0)), int(getattr(record, "total", 0))
        if total > 0:
            self._last = (step, total)
            self.bar.setRange(0, total)
            self.bar.setValue(min(step, total))
            left = getattr(record, "remaining_s", None)
            if left is None and step > 0:
                # Records without their own estimate (tiles, pores...): assume steps take equally long.
                left = (self.clock() - self._started) / step * (total - step)
            text = f"{step}/{total}"
            if left is not None and step > 0:
                text += f" · about {format_duration(left)} left"
            self.bar.setFormat(text)
        if not self.job.stopping:
            self.status.setText(in_micrometres(getattr(record, "message", "") or ""))

    def show_message(self, text: str) -> None:
        self.status.setText(text)


def heading(text: str) -> Label:
    """A bold section heading inside a widget."""
    label = Label(value=text)
    label.native.setStyleSheet("font-weight: bold;")
    return label


def results_table(columns: list[str]) -> QTableWidget:
    """A read-only table whose rows are selected whole."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setSizeAdjustPolicy(QAbstractItemView.SizeAdjustPolicy.AdjustIgnored)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.horizontalHeader().setMinimumSectionSize(40)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    # Row titles are short (ROW_LABELS); anything longer is elided, the full name is in the tooltip.
    table.verticalHeader().setMaximumWidth(90)
    table.verticalHeader().setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.setWordWrap(False)
    return table


def wrapping(label: QLabel) -> QLabel:
    """Let a label wrap to the dock's width instead of widening the dock to its one-line width."""
    label.setWordWrap(True)
    # magicgui labels are fixed-width: a long wrapped text would still widen the whole dock.
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
    label.setMinimumWidth(0)
    return label


def fill_table(table: QTableWidget, rows: list[str], cells: list[list[str]], bold=None, tips=None) -> None:
    """Replace the table's rows (row headers ``rows``; text right-aligned, some of it bold)."""
    table.setRowCount(len(rows))
    for i, name in enumerate(rows):
        header = QTableWidgetItem(name)
        header.setToolTip(name if tips is None else tips[i])
        table.setVerticalHeaderItem(i, header)
        for j, text in enumerate(cells[i]):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if bold is not None and bold[i][j]:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            table.setItem(i, j, item)
