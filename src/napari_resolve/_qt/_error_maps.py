"""The error map in napari: its layer, its colours, and the list of the least trustworthy regions.

Used by the Preview and upscale step (which computes the map with the result)
and the Quality step (which shows it on the overlap beside the true MS-SSIM map).
The map itself comes from the core (:mod:`napari_resolve.learn.uncertainty`).
"""

from __future__ import annotations

import napari
import numpy as np
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_resolve._text import MICRO, format_values
from napari_resolve.learn.uncertainty import LEVEL, least_trusted_regions

from ._forms import fill_table, results_table
from ._layers import add_or_update, short_name
from ._navigate import go_to

#: Layer names: "error map: <result>".
PREFIX = "error map: "
#: ``metadata["napari_resolve"]["kind"]`` of an error-map layer.
KIND = "error_map"


def high_error_colormap() -> napari.utils.Colormap:
    """Transparent where the error bound is small, through yellow and orange to red where it is largest.

    Over the upscaled image only the regions the map distrusts light up.
    """
    return napari.utils.Colormap(
        colors=[
            [1.0, 1.0, 0.0, 0.0],
            [1.0, 1.0, 0.0, 0.0],
            [1.0, 1.0, 0.0, 0.6],
            [1.0, 0.5, 0.0, 0.9],
            [1.0, 0.0, 0.0, 1.0],
        ],
        # Over the contrast limits (median, top): nothing in the lower quarter, red at the top and above.
        controls=[0.0, 0.25, 0.5, 0.75, 1.0],
        name="high error (napari-resolve)",
    )


def map_limits(data) -> tuple[float, float]:
    """Contrast limits in grey values: the median to the 99.5th percentile of (a sample of) the map.

    The bound is never 0 (noise alone gives every voxel some error): from 0 up, the
    whole map would light up. From the median up, the better half stays
    transparent and the worst voxels stand out.
    """
    sample = np.asarray(data[tuple(slice(None, None, max(1, s // 64)) for s in data.shape)], np.float32)
    if not sample.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [50, 99.5]))
    return (lo, hi) if hi > lo else (0.0, max(hi, 1e-6))


def show_error_map(viewer, data, grid, translate, result_name: str, name: str | None = None):
    """Add (or update) the error-map layer of ``result_name`` over it (same scale and translate).

    Parameters
    ----------
    viewer : napari.Viewer
    data : array-like
        The map (grey values; in memory or lazily read).
    grid : Grid
        The result's grid.
    translate : sequence of float
        Where the result is shown (um).
    result_name : str
        The result layer's name, recorded so the Quality step finds the map.
    name : str, optional
        The layer's name; default "error map: <short name of the result>".
    """
    name = name or PREFIX + short_name(result_name)
    first = name not in viewer.layers
    style = {"colormap": high_error_colormap(), "blending": "translucent", "opacity": 0.8,
             "interpolation2d": "nearest"} if first else {}
    if first and len(grid.shape) == 3:
        style["rendering"] = "mip"  # in 3D show the largest bound along each ray
    return add_or_update(
        viewer, name, data, scale=grid.voxel_um, translate=translate,
        metadata={"kind": KIND, "result": result_name, "grid": grid.to_dict(), "level": LEVEL},
        contrast_limits=map_limits(data), **style,
    )


def error_map_of(viewer, result_name: str):
    """The error-map layer made with the layer ``result_name``, or None."""
    for layer in viewer.layers:
        meta = layer.metadata.get("napari_resolve", {})
        if meta.get("kind") == KIND and meta.get("result") == result_name and meta.get("produced"):
            return layer
    return None


class RegionList(QWidget):
    """The least trustworthy blocks of an error map; selecting one moves the view there.

    Attributes
    ----------
    regions : list of dict
        From :func:`napari_resolve.learn.uncertainty.least_trusted_regions`, highest bound first.
    table : QTableWidget
    """

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.regions: list[dict] = []
        self._filling = False
        self.table = results_table([f"centre ({MICRO})", "error ≤ (grey)"])
        self.table.setToolTip(
            f"The blocks where the error map is highest: the true |error| is below it at {LEVEL:.0%} of voxels. "
            "Select one to go there"
        )
        self.table.setMinimumHeight(120)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)

    def show_map(self, data, origin_um, voxel_um) -> None:
        """Rank the blocks of a map shown at ``origin_um`` (world um) and list them."""
        self.regions = least_trusted_regions(data, origin_um, voxel_um)
        self._filling = True
        try:
            cells = [[format_values(r["centre_um"], ", ", 1), f"{r['score']:.3g}"] for r in self.regions]
            fill_table(self.table, [str(r["rank"]) for r in self.regions], cells)
            self.table.clearSelection()
        finally:
            self._filling = False

    def _selection_changed(self) -> None:
        if self._filling:
            return
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.jump_to(rows[0].row())

    def jump_to(self, row: int) -> dict:
        """Move the view to the ``row``-th least trustworthy block (0 = the worst); returns it."""
        region = self.regions[row]
        go_to(self.viewer, region["centre_um"], region["size_um"])
        return region
