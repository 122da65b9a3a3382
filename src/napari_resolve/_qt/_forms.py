"""Form parts shared by the dock widgets."""

from __future__ import annotations

import re
import time

from magicgui.widgets import ComboBox, Label, LineEdit
from qtpy.QtCore import QEvent, QObject, QRect, Qt
from qtpy.QtGui import QFontMetrics
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyleOptionComboBox,
    QStyleOptionHeader,
    QStylePainter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_resolve._text import MICRO, format_duration, parse_per_axis, parse_point  # noqa: F401 - re-exported
from napari_resolve._text import format_um as _format_um

from ._layers import is_outline
from ._workers import Job, as_shown


def format_um(values) -> str:
    """Per-axis lengths as the widgets write them beside a "µm": ``(3.0, 3.0, 3.0)`` -> ``"3, 3, 3"``."""
    return _format_um(values, ", ", unit="")


def format_shape(shape) -> str:
    """A shape as the widgets write it: ``(48, 48, 48)`` -> ``"48 × 48 × 48"`` (the core writes "48 x 48 x 48")."""
    return " × ".join(str(int(n)) for n in shape)


#: Characters a layer picker shows before eliding a name (it widens with the dock).
COMBO_CHARS = 8


def narrow(combo: ComboBox) -> ComboBox:
    """``combo`` as wide as the dock allows, not as its longest entry.

    A long entry (a layer name, a choice's description) is elided, and shown in
    full in the open list, instead of widening the dock past napari's default width.
    """
    combo.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.native.setMinimumContentsLength(COMBO_CHARS)
    if not hasattr(combo.native, "_eliding"):
        combo.native._eliding = _ElidingPaint(combo.native)
    return combo


class _ElidingPaint(QObject):
    """Paints a combo box's current text elided with "…" where it is wider than the box (Qt just cuts it)."""

    def __init__(self, combo: QComboBox):
        super().__init__(combo)
        self.shown = ""  # the text last painted
        combo.installEventFilter(self)

    def eventFilter(self, combo, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() != QEvent.Type.Paint or combo.isEditable():
            return False
        option = QStyleOptionComboBox()
        combo.initStyleOption(option)
        style = combo.style()
        field = style.subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                     QStyle.SubControl.SC_ComboBoxEditField, combo)
        icon = option.iconSize.width() + 4 if not option.currentIcon.isNull() else 0
        option.currentText = self.shown = combo.fontMetrics().elidedText(
            option.currentText, Qt.TextElideMode.ElideRight, max(field.width() - icon - 2, 0))
        painter = QStylePainter(combo)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)
        painter.end()
        return True


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
            self.status.setText(as_shown(getattr(record, "message", "") or ""))

    def show_message(self, text: str) -> None:
        self.status.setText(text)


def heading(text: str) -> Label:
    """A bold section heading inside a widget."""
    label = Label(value=text)
    label.native.setStyleSheet("font-weight: bold;")
    return label


def results_table(columns: list[str], *, fixed_height: bool = False) -> QTableWidget:
    """A read-only table whose rows are selected whole; its columns share the width (:func:`fit_columns`).

    With ``fixed_height`` it is as tall as its rows (a short table that never scrolls).
    """
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setSizeAdjustPolicy(QAbstractItemView.SizeAdjustPolicy.AdjustIgnored)
    table.horizontalHeader().setMinimumSectionSize(40)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    # Row titles are short (ROW_LABELS); anything longer is elided, the full name is in the tooltip.
    table.verticalHeader().setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.setWordWrap(False)
    fit_columns(table, row_titles_at_most=90, fixed_height=fixed_height)
    return table


#: Where a column title may break onto the next line: after a space, "_", "-", "/" or ".".
_PIECES = re.compile(r"[^ _\-/.]+[_\-/.]*|[_\-/.]+| +")


def wrap_title(text: str, width: int, metrics) -> str:
    """``text`` on as many lines as it takes to be at most ``width`` px wide (``metrics``: its QFontMetrics).

    Lines break at spaces and after "_", "-", "/" or "."; a word wider than ``width`` by
    itself is broken inside, the last resort of a very narrow column.
    """
    lines: list[str] = []
    line = ""
    for piece in _PIECES.findall(text):
        if piece.isspace():
            line += piece
            continue
        if not line.strip() or metrics.horizontalAdvance(line + piece) <= width:
            line += piece
        else:
            lines.append(line.rstrip())
            line = piece
        while metrics.horizontalAdvance(line) > width and len(line) > 1:
            cut = len(line) - 1
            while cut > 1 and metrics.horizontalAdvance(line[:cut]) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    lines.append(line.rstrip())
    return "\n".join(part for part in lines if part) or text


def _label_margin(header: QHeaderView, orientation) -> int:
    """Pixels of a header section that are not its text (padding, borders) in the style in use."""
    option = QStyleOptionHeader()
    option.initFrom(header)
    option.rect = QRect(0, 0, 200, 40)
    option.orientation = orientation
    option.text = "x"
    label = header.style().subElementRect(QStyle.SubElement.SE_HeaderLabel, option, header)
    return 200 - label.width() if label.width() > 0 else 8


#: Header item roles: the column's title, and the wrapped text last shown for it.
_TITLE_ROLE = Qt.ItemDataRole.UserRole + 11
_SHOWN_ROLE = Qt.ItemDataRole.UserRole + 12


def column_title(table: QTableWidget, column: int) -> str:
    """The title of ``column`` as given (one line), whatever lines :func:`fit_columns` broke it into."""
    item = table.horizontalHeaderItem(column)
    if item is None:
        return ""
    if item.data(_TITLE_ROLE) is not None and item.data(_SHOWN_ROLE) == item.text():
        return item.data(_TITLE_ROLE)
    return item.text()


class _ColumnFitter(QObject):
    """Sizes a table's columns to what they hold and wraps their titles; see :func:`fit_columns`."""

    def __init__(self, table: QTableWidget, row_titles_at_most: int | None, fixed_height: bool):
        super().__init__(table)
        self.table = table
        self.row_titles_at_most = row_titles_at_most
        self.fixed_height = fixed_height
        self._busy = False
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setStretchLastSection(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        model = table.model()
        # New titles or columns; new figures come through fill_table or refit.
        for signal in (model.headerDataChanged, model.columnsInserted, model.columnsRemoved, model.modelReset):
            signal.connect(self.fit)
        table.viewport().installEventFilter(self)
        table.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.StyleChange,
                            QEvent.Type.FontChange, QEvent.Type.Polish):
            self.fit()
        return False

    def _row_titles(self) -> None:
        """The row titles' column as wide as its texts need (Qt's hint is wider), at most ``row_titles_at_most``."""
        table = self.table
        rows = table.verticalHeader()
        metrics = rows.fontMetrics()
        titles = [table.verticalHeaderItem(i) for i in range(table.rowCount())]
        widest = max((metrics.horizontalAdvance(t.text()) for t in titles if t is not None), default=0)
        need = widest + _label_margin(rows, Qt.Orientation.Vertical) + 2
        if self.row_titles_at_most is not None:
            need = min(need, self.row_titles_at_most)
        rows.setMaximumWidth(max(need, 12))

    def fit(self, *_args) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self._fit()
        except RuntimeError:  # the table is gone
            pass
        finally:
            self._busy = False

    def _fit(self) -> None:
        table = self.table
        n = table.columnCount()
        if n == 0:
            return
        self._row_titles()
        header = table.horizontalHeader()
        metrics = header.fontMetrics()
        margin = _label_margin(header, Qt.Orientation.Horizontal)
        cell_margin = 2 * (table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1) + 1
        titles = [column_title(table, j) for j in range(n)]
        cells, smallest, whole = [], [], []
        for j, title in enumerate(titles):
            need = table.sizeHintForColumn(j)
            for i in range(table.rowCount()):
                item = table.item(i, j)
                if item is not None and item.text():
                    need = max(need, _item_metrics(item).horizontalAdvance(item.text()) + cell_margin)
            cells.append(need)
            words = [p for p in _PIECES.findall(title) if not p.isspace()] or [title]
            floor = header.minimumSectionSize()  # Qt never makes a section narrower
            smallest.append(max(floor, need, max(metrics.horizontalAdvance(w) for w in words) + margin))
            whole.append(max(floor, need, metrics.horizontalAdvance(title) + margin))
        available = table.viewport().width()
        widths = _share(available, smallest, whole, floor=header.minimumSectionSize(),
                        lines=lambda j, width: wrap_title(titles[j], width - margin, metrics).count("\n") + 1)
        for j, width in enumerate(widths):
            if header.sectionSize(j) != width:
                header.resizeSection(j, width)
        for j, title in enumerate(titles):
            item = table.horizontalHeaderItem(j)
            if item is None:
                continue
            shown = wrap_title(title, widths[j] - margin, metrics)
            if item.text() != shown or item.data(_TITLE_ROLE) != title:
                item.setData(_TITLE_ROLE, title)
                item.setData(_SHOWN_ROLE, shown)
                item.setText(shown)
        if self.fixed_height:
            fit_height(table)


def _item_metrics(item) -> QFontMetrics:
    """The font metrics of a table item's own font (bold figures are wider)."""
    return QFontMetrics(item.font())


def _share(available: int, smallest: list[int], whole: list[int], floor: int = 1, lines=None) -> list[int]:
    """Column widths filling ``available`` px: each its one-line need if all fit, else at least its wrapped need.

    ``lines(j, width)`` is the number of lines column ``j``'s title takes at ``width``.
    Room beyond the wrapped needs first lowers the header (every title of the most
    lines gets one line fewer, while that fits), then goes to the columns evenly;
    when even the wrapped needs do not fit, every column shrinks in proportion
    (titles then break inside words).
    """
    n = len(smallest)
    if available <= 0:
        return list(smallest)
    if sum(whole) <= available:
        widths = list(whole)
    elif sum(smallest) <= available:
        widths = list(smallest)
        while lines is not None:
            tallest = max(lines(j, widths[j]) for j in range(n))
            if tallest <= 1:
                break
            grown = list(widths)
            for j in range(n):
                if lines(j, widths[j]) == tallest:
                    lo, hi = widths[j], whole[j]  # the narrowest width at which it takes a line fewer
                    while lo < hi:
                        mid = (lo + hi) // 2
                        lo, hi = (lo, mid) if lines(j, mid) < tallest else (mid + 1, hi)
                    grown[j] = lo
            if sum(grown) > available or grown == widths:
                break
            widths = grown
    else:
        widths = [max(floor, available * s // sum(smallest)) for s in smallest]
    spare = available - sum(widths)
    if spare >= 0:
        for j in range(n):
            widths[j] += spare // n + (1 if j < spare % n else 0)
    else:  # the floors took more than their share: the widest give it back
        widest = max(range(n), key=lambda k: widths[k])
        widths[widest] = max(floor, widths[widest] + spare)
    return widths


def fit_columns(table: QTableWidget, *, row_titles_at_most: int | None = None, fixed_height: bool = False) -> None:
    """Share ``table``'s width among its columns by what they hold, and wrap titles that do not fit on one line.

    Every column gets the width its figures need and, where the dock allows, its
    title on one line; otherwise the title breaks at spaces or after "_" (a word is
    broken only where a column is narrower than it). The row titles' column is as
    wide as its texts. Kept up to date as the table is resized or refilled;
    :func:`column_title` gives a title unbroken. With ``fixed_height`` the table is
    kept as tall as its header and rows (:func:`fit_height`).
    """
    table._fitter = _ColumnFitter(table, row_titles_at_most, fixed_height)
    table._fitter.fit()


def refit(table: QTableWidget) -> None:
    """Size a :func:`fit_columns` table's columns (and height) again, after changing its contents."""
    fitter = getattr(table, "_fitter", None)
    if fitter is not None:
        fitter.fit()


def fit_height(table: QTableWidget) -> None:
    """Make ``table`` exactly as tall as its header and rows: it never scrolls and leaves no empty band."""
    height = table.horizontalHeader().sizeHint().height() + table.verticalHeader().length() + 2 * table.frameWidth() + 2
    table.setFixedHeight(max(height, 40))


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
    refit(table)
