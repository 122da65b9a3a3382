"""A matplotlib canvas that fits in a napari dock widget (dark theme)."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

BACKGROUND = "#262930"  # napari's dark theme background
FOREGROUND = "#d0d0d0"


class PlotCanvas(FigureCanvasQTAgg):
    """A small figure with napari-like colours; ``style(ax)`` styles new axes.

    Parameters
    ----------
    height : float
        Height in inches (the width follows the dock).
    """

    def __init__(self, height: float = 2.4, parent=None):
        self.figure = Figure(figsize=(4, height), facecolor=BACKGROUND, layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setMinimumHeight(int(height * 70))
        self._stale = False

    def draw_idle(self) -> None:
        """Redraw soon if shown; otherwise when next shown.

        A redraw queued for a hidden canvas can fire after Qt has deleted the
        widget (a closed dock, a collapsed section): matplotlib then raises.
        """
        if self.isVisible():
            super().draw_idle()
        else:
            self._stale = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self._stale = False
            super().draw_idle()

    @staticmethod
    def style(ax) -> None:
        """Dark background, light ticks, labels and frame."""
        ax.set_facecolor(BACKGROUND)
        for spine in ax.spines.values():
            spine.set_color(FOREGROUND)
        ax.tick_params(colors=FOREGROUND, labelsize=8)
        ax.xaxis.label.set_color(FOREGROUND)
        ax.yaxis.label.set_color(FOREGROUND)
        ax.title.set_color(FOREGROUND)

    def axes(self, nrows: int = 1, ncols: int = 1, **kwargs):
        """Clear the figure and return fresh styled axes."""
        self.figure.clear()
        axs = self.figure.subplots(nrows, ncols, squeeze=False, **kwargs)
        for ax in axs.flat:
            self.style(ax)
        return axs[0, 0] if axs.size == 1 else axs

    def legend(self, ax, **kwargs) -> None:
        leg = ax.legend(fontsize=7, facecolor=BACKGROUND, edgecolor=FOREGROUND, **kwargs)
        for text in leg.get_texts():
            text.set_color(FOREGROUND)
