"""The Plugins-menu entries: each step widget in a dock that scrolls.

napari does not scroll a dock widget taller than the window (the training
step with its plots is taller than most laptop screens), so every entry wraps
its step in a scroll area. The workflow widget stacks the bare steps and
scrolls as a whole.
"""

from __future__ import annotations

import napari
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea

from .pores_widget import PoresWidget
from .quality_widget import QualityWidget
from .registration_widget import RegistrationWidget
from .training_widget import TrainingWidget
from .upscale_widget import UpscaleWidget


class ScrollingDock(QScrollArea):
    """A step widget (``step_class``) in a vertical scroll area; the step is ``self.step``.

    napari passes the viewer to a dock widget class through its ``napari_viewer``
    parameter, so each menu entry is a subclass naming its step.
    """

    step_class: type

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.step = self.step_class(napari_viewer)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(self.step)
        # As wide as the step needs, plus room for the scroll bar.
        self.setMinimumWidth(self.step.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width())


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
