"""The whole workflow in one dock: the five step widgets in collapsible sections.

The sections are the same widgets the Plugins menu offers one by one; they
share the viewer's session (the current model) and the registration stored on
the HRES layer, so a user can move between the stacked and the separate form.
"""

from __future__ import annotations

import napari
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget
from superqt import QCollapsible

from .docks import HonestScrollArea, TabsWithOurDocks
from .pores_widget import PoresWidget
from .quality_widget import QualityWidget
from .registration_widget import RegistrationWidget
from .training_widget import TrainingWidget
from .upscale_widget import UpscaleWidget

#: (section title, widget class) in workflow order
STEPS = (
    ("1 · Data and registration", RegistrationWidget),
    ("2 · Training", TrainingWidget),
    ("3 · Preview and upscale", UpscaleWidget),
    ("4 · Quality", QualityWidget),
    ("5 · Pores", PoresWidget),
)

INTRO = (
    "Load an LRES scan and an HRES scan of part of it (or File ▸ Open Sample ▸ napari-resolve), then go "
    "through the steps in order. Every step runs in the background and can be stopped."
)


class WorkflowWidget(TabsWithOurDocks, QWidget):
    """All steps of napari-resolve in one scrollable dock, one collapsible section per step.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose layers the steps use.

    Attributes
    ----------
    steps : dict
        Section title -> step widget (``RegistrationWidget``, ``TrainingWidget``...).
    sections : dict
        Section title -> its ``superqt.QCollapsible``.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self._mark_as_dock()
        self.viewer = napari_viewer
        self.steps: dict[str, QWidget] = {}
        self.sections: dict[str, QCollapsible] = {}

        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(4, 4, 4, 4)  # the steps have margins of their own
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        column.addWidget(intro)
        for title, cls in STEPS:
            step = cls(napari_viewer)
            section = QCollapsible(title)
            # The collapsible's own frame margins would make the dock wider than the widest step needs.
            section.layout().setContentsMargins(0, 0, 0, 0)
            section.addWidget(step)
            column.addWidget(section)
            self.steps[title] = step
            self.sections[title] = section
        column.addStretch(1)

        # The steps together are taller than a screen: scroll rather than squeeze, and never be
        # narrower than the widest step (which would hide Stop and Load... on the right).
        self.scroll = HonestScrollArea()
        self.scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll)

        self.open_step(0)
        # Once the HRES is in place, the next thing to do is train.
        self.step(0).registered.connect(lambda reg: self.open_step(1) if reg is not None and reg.ok else None)

    def step(self, index: int) -> QWidget:
        """The step widget at ``index`` (0 = registration ... 4 = pores)."""
        return self.steps[STEPS[index][0]]

    def open_step(self, index: int, *, only: bool = False) -> None:
        """Expand the section of step ``index`` (with ``only``, collapse the others) and scroll to it."""
        for i, (title, _) in enumerate(STEPS):
            section = self.sections[title]
            if i == index and not section.isExpanded():
                section.expand(animate=False)
            elif only and i != index and section.isExpanded():
                section.collapse(animate=False)
        self.scroll.ensureWidgetVisible(self.sections[STEPS[index][0]], 0, 0)
