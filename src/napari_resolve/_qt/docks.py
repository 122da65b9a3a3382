"""The Plugins-menu entries: each step widget in a dock that scrolls, tabbed with the others.

napari does not scroll a dock widget taller than the window (the training
step with its plots is taller than most laptop screens), so every entry wraps
its step in a scroll area. The workflow widget stacks the bare steps and
scrolls as a whole.

Two more things napari's Plugins menu does not do for a plugin:

- **Tabs.** The menu adds each dock below the ones already in its area and
  gives the old ones a quarter of the height (a step dock ends up about 100 px
  tall). napari can tab a dock (``add_dock_widget(..., tabify=True)``), but
  neither the menu nor ``napari.yaml`` can ask for it, so each of our docks
  tabs itself with the napari-resolve dock already in its area, once napari
  has placed it (:class:`TabsWithOurDocks`).
- **An honest width.** A scroll area reports a tiny minimum size, so a dock
  could be made narrower than its form and clip the buttons on the right (the
  horizontal scroll bar is off on purpose). :func:`scrolled_minimum_width`
  gives the width the content needs, kept up to date as the content changes.
"""

from __future__ import annotations

import napari
from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget

from .pores_widget import PoresWidget
from .quality_widget import QualityWidget
from .registration_widget import RegistrationWidget
from .training_widget import TrainingWidget
from .upscale_widget import UpscaleWidget

#: Dynamic Qt property marking the widgets in napari-resolve's docks.
DOCK_PROPERTY = "napari_resolve_dock"


def needed_width(widget: QWidget) -> int:
    """The narrowest width ``widget`` can be shown at: its layout's minimum or a minimum set on it."""
    return max(widget.minimumSizeHint().width(), widget.minimumWidth())


def scrolled_minimum_width(scroll: QScrollArea) -> int:
    """Width a vertical-only scroll area needs to show its widget unclipped: widget, scroll bar and frame."""
    inner = scroll.widget()
    content = needed_width(inner) if inner is not None else 0
    return content + scroll.verticalScrollBar().sizeHint().width() + 2 * scroll.frameWidth()


class _RelayoutWatcher(QObject):
    """Tells a scroll area to recompute its size hints when its content's layout changes."""

    def __init__(self, scroll: QScrollArea):
        super().__init__(scroll)
        self._scroll = scroll

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.LayoutRequest:
            self._scroll.updateGeometry()
        return False


def follow_content_width(scroll: QScrollArea) -> None:
    """Keep ``scroll``'s minimum size hint (see :class:`HonestScrollArea`) current as its content changes."""
    scroll.widget().installEventFilter(_RelayoutWatcher(scroll))


class HonestScrollArea(QScrollArea):
    """A vertical scroll area whose minimum width is what its widget needs (no horizontal scroll bar)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def setWidget(self, widget: QWidget) -> None:  # noqa: N802 - Qt's name
        super().setWidget(widget)
        follow_content_width(self)
        self.updateGeometry()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        hint = super().minimumSizeHint()
        return QSize(max(hint.width(), scrolled_minimum_width(self)), hint.height())


def _our_dock(dock: QDockWidget) -> bool:
    """Whether napari's dock ``dock`` holds one of napari-resolve's dock widgets."""
    inner = dock.widget()
    return inner is not None and bool(inner.property(DOCK_PROPERTY))


class TabsWithOurDocks:
    """Mixin for a dock's widget: once napari has docked it, tab it with our dock already in that area.

    The class using it calls :meth:`_mark_as_dock` in its ``__init__``. Only
    napari-resolve's own docks are tabbed together; napari's and other plugins'
    docks are left where napari put them.
    """

    def _mark_as_dock(self) -> None:
        self.setProperty(DOCK_PROPERTY, True)

    def event(self, event) -> bool:  # Qt's event handler of the QWidget this mixes into
        if event.type() == QEvent.Type.ParentChange:
            # napari wraps us in its dock first and adds that dock to the window afterwards:
            # look for neighbours once the event loop runs again.
            QTimer.singleShot(0, self._tab_with_our_docks)
        return super().event(event)

    def _tab_with_our_docks(self) -> None:
        try:
            dock = self.parentWidget()
        except RuntimeError:  # deleted meanwhile
            return
        if not isinstance(dock, QDockWidget) or dock.isFloating():
            return
        window = dock.parentWidget()
        if not isinstance(window, QMainWindow):
            return
        area = window.dockWidgetArea(dock)
        others = [
            d
            for d in window.findChildren(QDockWidget)
            if d is not dock
            and not d.isHidden()
            and not d.isFloating()
            and window.dockWidgetArea(d) == area
            and _our_dock(d)
        ]
        if not others or others[-1] in window.tabifiedDockWidgets(dock):
            return
        window.tabifyDockWidget(others[-1], dock)
        dock.show()
        dock.raise_()  # the new dock is the tab in front


class ScrollingDock(TabsWithOurDocks, HonestScrollArea):
    """A step widget (``step_class``) in a vertical scroll area; the step is ``self.step``.

    napari passes the viewer to a dock widget class through its ``napari_viewer``
    parameter, so each menu entry is a subclass naming its step.
    """

    step_class: type

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self._mark_as_dock()
        self.step = self.step_class(napari_viewer)
        self.setWidget(self.step)


class RegistrationDock(ScrollingDock):
    """Plugins ▸ napari-resolve ▸ 1 Data and registration."""

    step_class = RegistrationWidget


class TrainingDock(ScrollingDock):
    """Plugins ▸ napari-resolve ▸ 2 Training."""

    step_class = TrainingWidget


class UpscaleDock(ScrollingDock):
    """Plugins ▸ napari-resolve ▸ 3 Preview and upscale."""

    step_class = UpscaleWidget


class QualityDock(ScrollingDock):
    """Plugins ▸ napari-resolve ▸ 4 Quality maps and metrics."""

    step_class = QualityWidget


class PoresDock(ScrollingDock):
    """Plugins ▸ napari-resolve ▸ 5 Pores."""

    step_class = PoresWidget
