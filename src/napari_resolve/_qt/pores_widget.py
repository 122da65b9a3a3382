"""The Pores dock widget: segment and measure pores on several images side by side.

The user picks any image layers (LRES, upscaled, HRES, a baseline...); the
core's comparison job (:mod:`napari_resolve.pores.compare`) measures each in
turn: the widget reads the layers and calls :func:`plan_compare_pores` on the
main thread, then runs :func:`iter_compare_pores` in a worker. Every
input gets a labels layer ``"pores: <layer name>"`` lying over it, a row in a
table (porosity, count, diameters, sphericity) and a curve in a pore size
distribution plot, so that what the LRES misses and what an upscaled volume
recovers can be read at a glance. The table and the per-pore tables export
to CSV.

Inputs cover different fields (the LRES the whole sample, the HRES and an
upscaled region sub-volumes of it), so by default every input is cropped to
the box where all of them overlap: the figures then describe the same piece of
sample. "whole layers" measures each input over its own extent.
"""

from __future__ import annotations

import math

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, Select, Table
from qtpy.QtWidgets import QAbstractItemView, QStyledItemDelegate, QVBoxLayout, QWidget

from napari_resolve.errors import InputError
from napari_resolve.geometry.overlap import WHOLE, region_text
from napari_resolve.pores.compare import (  # noqa: F401 - min_volume_voxels, summary_row, sanitise: moved from here
    COMMON,
    MeasuredInput,
    PoreInput,
    iter_compare_pores,
    min_volume_voxels,
    plan_compare_pores,
    pores_per_mm,
    sanitise,
    summary_row,
    write_tables,
)
from napari_resolve.pores.compare import WHOLE as WHOLE_INPUTS

from ._forms import JobControls, format_um, heading
from ._layers import add_or_update, check_plain_geometry, is_produced, layer_data, origin_um, spatial_ndim, voxel_um
from ._plots import PlotCanvas
from ._workers import Job, error_message

#: Names of the plugin's quality maps: listed, but never selected by default.
MAP_PREFIXES = ("MS-SSIM map", "SSIM map")

OTSU = "Otsu (automatic)"
FIXED = "Fixed grey value"
BY_NUMBER = "% of pores"
BY_VOLUME = "% of pore volume"

OVERLAP = "where all inputs overlap"

#: The form's labels of the core's parameters, for messages.
_LABELS = {
    "inputs": "Images",
    "region": "Region",
    "threshold": "Grey value",
    "pores_are": "Pores are",
    "min_diameter_um": "Min. ⌀ (µm)",
    "edge_kill": "Skip pores cut by the edge",
}

_AXES = {2: "yx", 3: "zyx"}

# A colour cycle that reads well on the dark canvas and does not start with the
# blue napari uses for selection.
_COLOURS = ("#f4a259", "#5ec2e8", "#b5e86f", "#e86fa8", "#c9a0ff", "#ffd95e", "#7fdbca", "#ff8a80")


def default_selected(layer) -> bool:
    """True for a user's LRES or HRES layer (the inputs most runs compare)."""
    name = layer.name
    if name.startswith(MAP_PREFIXES) or is_produced(layer):
        return False
    return "lres" in name.lower() or "hres" in name.lower()


def layer_select(viewer, layer_type, label: str, *, tooltip: str = "", default=None) -> Select:
    """A multi-select list of the viewer's layers of ``layer_type`` that follows the layer list.

    Like :func:`napari_resolve._qt._forms.layer_combo`, but several layers can
    be picked and the picks survive renaming, moving and adding layers.

    Parameters
    ----------
    viewer : napari.Viewer
    layer_type : type
        Layer class to list (e.g. ``napari.layers.Image``).
    label : str
    tooltip : str
    default : callable, optional
        ``default(layer) -> bool``: layers selected when they appear, until the
        user changes the selection by hand.
    """

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, layer_type)]

    select = Select(label=label, choices=choices, allow_multiple=True, tooltip=tooltip)
    state = {"syncing": False, "touched": False}

    def refresh(event=None, add=()):
        try:
            keep = [layer for layer in select.value if layer in viewer.layers]
            state["syncing"] = True
            # Rebuild from scratch: the Qt list treats a renamed layer as a new
            # item and would append it at the end, unselected.
            select.choices = ()
            select.reset_choices()
            present = [layer for _, layer in choices()]
            select.value = [layer for layer in present if layer in keep or any(layer is a for a in add)]
        except RuntimeError:  # the Qt widget is gone (viewer closing)
            return
        finally:
            state["syncing"] = False

    def changed(_value):
        if not state["syncing"]:
            state["touched"] = True

    def inserted(event):
        layer = event.value
        # A renamed layer keeps its place in the list but needs its new name shown.
        layer.events.name.connect(refresh)
        wanted = default is not None and not state["touched"] and isinstance(layer, layer_type) and default(layer)
        refresh(add=(layer,) if wanted else ())

    for layer in viewer.layers:
        layer.events.name.connect(refresh)
    viewer.layers.events.inserted.connect(inserted)
    viewer.layers.events.removed.connect(refresh)
    viewer.layers.events.moved.connect(refresh)
    select.changed.connect(changed)
    if default is not None:
        state["syncing"] = True
        select.value = [layer for _, layer in choices() if default(layer)]
        state["syncing"] = False
    return select


def _nice_width(span: float) -> float:
    """A round bin width near ``span / 20`` (1, 2, 2.5 or 5 times a power of ten)."""
    if not (span > 0 and math.isfinite(span)):
        return 1.0
    raw = span / 20
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


class PoresWidget(QWidget):
    """Segment pores on several image layers and compare them side by side.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    parent : QWidget, optional

    Attributes
    ----------
    job : Job
        The measuring job ("Pore analysis").
    results : dict of str to PoreResult
        The last run's results, by input layer name, in the order measured.
    regions : dict of str to tuple or None
        The world box (lo, hi) in um each input was cropped to (None: the whole
        layer), by input layer name.
    region : magicgui.widgets.ComboBox
        What to measure: ``OVERLAP`` (default) or ``WHOLE``.
    table : magicgui.widgets.Table
        One row per input (layer names as row headers).
    plot : PlotCanvas
        The pore size distributions, one curve per input.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.results: dict = {}
        self.regions: dict = {}
        self._measured: dict[str, MeasuredInput] = {}  # name -> what the job yielded for it

        self.inputs = layer_select(
            napari_viewer,
            napari.layers.Image,
            "Images",
            tooltip="Image layers to measure (Ctrl/Shift-click to pick several): LRES, upscaled, HRES, baselines. "
            "Each is measured at its own voxel size (its layer scale, µm).",
            default=default_selected,
        )
        self.inputs.native.setMaximumHeight(110)
        self.region = ComboBox(
            label="Region",
            choices=[OVERLAP, WHOLE],
            value=OVERLAP,
            tooltip="Where all inputs overlap: every input is cropped to the box (µm) common to all of them, so "
            "the figures describe the same piece of sample (e.g. the LRES on the HRES field). Whole layers: "
            "each input over its own extent, which differs between a full LRES and an HRES sub-volume. "
            "With one input, both are the same.",
        )
        self.method = ComboBox(
            label="Threshold",
            choices=[OTSU, FIXED],
            value=OTSU,
            tooltip="How pores are separated from solid: Otsu's method per image, or one grey value for all.",
        )
        self.grey = FloatSpinBox(
            label="Grey value",
            value=0.5,
            min=-1e9,
            max=1e9,
            step=0.01,
            tooltip="Grey value between pores and solid (used with 'Fixed grey value'); it must lie within "
            "every selected image's range.",
        )
        self.grey.native.setDecimals(4)
        self.grey.enabled = False
        self.pores_are = ComboBox(
            label="Pores are",
            choices=["dark", "bright"],
            value="dark",
            tooltip="Dark: voids in X-ray CT and most SEM images. Bright: e.g. a resin-filled pore space.",
        )
        self.min_diameter = FloatSpinBox(
            label="Min. ⌀ (µm)",
            value=0.0,
            min=0.0,
            max=1e4,
            step=0.5,
            tooltip="Pore objects whose equivalent diameter is below this are removed as noise (and do not count "
            "towards porosity). 0: remove only objects under 8 voxels (4 pixels in 2D). Give the same value to "
            "all inputs to compare like with like.",
        )
        self.edge = CheckBox(
            label="Skip pores cut by the edge",
            value=True,
            tooltip="Pores cut by the image border or the sample surface are left out of the count, sizes and "
            "shapes (they still count towards porosity).",
        )
        self.method.changed.connect(lambda v: setattr(self.grey, "enabled", v == FIXED))
        fields = [self.inputs, self.region, self.method, self.grey, self.pores_are, self.min_diameter, self.edge]
        form = Container(widgets=fields)
        form.margins = (0, 0, 0, 0)

        self.job = Job("Pore analysis", labels=_LABELS)
        self.controls = JobControls(self.job, "Measure pores", self._start)
        self.job.progress.connect(self._progress)
        self.job.finished.connect(self._finished)
        self.job.state_changed.connect(self._state)

        self.region_label = Label(value="")
        self.region_label.native.setWordWrap(True)
        self.region_label.tooltip = "The region the table and the plot describe"
        self.table = Table(value={"data": [], "index": [], "columns": self._headers({3})})
        self.table.native.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # magicgui's delegate re-formats every number-like cell with 4 decimals ("1.504e+05"); show our text.
        self.table.native.setItemDelegate(QStyledItemDelegate(self.table.native))
        self.table.native.setMinimumHeight(120)  # two-line headers and two rows
        self.table.native.setMaximumHeight(150)
        self.table.native.setToolTip("One row per input; hover a column header for its meaning.")

        self.weighting = ComboBox(
            label="Plot",
            choices=[BY_NUMBER, BY_VOLUME],
            value=BY_NUMBER,
            tooltip="Size distribution by number of pores, or weighted by pore volume (area in 2D). Curves are "
            "percentages of each input's own pores, so fields of different size compare.",
        )
        self.weighting.changed.connect(lambda _v: self._draw())
        self.plot = PlotCanvas(2.6)
        self.plot.setToolTip("Pore size distribution of the counted pores, one curve per input")

        self.export_button = PushButton(text="Export CSV…")
        self.export_button.tooltip = (
            "Save the table (one row per input) and, next to it, one per-pore table per input (<name>_<layer>.csv)"
        )
        self.export_button.enabled = False
        self.export_button.changed.connect(self._export_clicked)
        bottom = Container(widgets=[self.weighting, self.export_button])
        bottom.margins = (0, 0, 0, 0)

        layout = QVBoxLayout(self)
        layout.addWidget(heading("Inputs").native)
        layout.addWidget(form.native)
        layout.addWidget(self.controls)
        layout.addWidget(heading("Results").native)
        layout.addWidget(self.region_label.native)
        layout.addWidget(self.table.native)
        layout.addWidget(self.plot)
        layout.addWidget(bottom.native)
        hint = Label(value="Labels layers 'pores: <image>' show the counted pores.")
        hint.native.setWordWrap(True)
        layout.addWidget(hint.native)
        layout.addStretch(1)
        self._draw()

    # ------------------------------------------------------------------ run

    def run(self) -> bool:
        """Validate the form and start measuring (the Measure button); False if refused."""
        return self.controls.run()

    def _start(self) -> None:
        layers = [layer for layer in self.inputs.value if layer in self.viewer.layers]
        if not layers:
            raise InputError("Select at least one image layer under 'Images' (Ctrl-click to pick several).")
        inputs = []
        for layer in layers:
            spatial_ndim(layer)
            check_plain_geometry(layer, "input")
            # Layer data and geometry are read here, on the main thread; the plan crops a lazy array before
            # reading it, so only the common box of a big LRES is loaded.
            inputs.append(PoreInput(layer.name, layer_data(layer), voxel_um(layer), origin_um(layer)))
        plan = plan_compare_pores(
            inputs,
            region=COMMON if self.region.value == OVERLAP else WHOLE_INPUTS,
            threshold=float(self.grey.value) if self.method.value == FIXED else "otsu",
            pores_are=self.pores_are.value,
            edge_kill=bool(self.edge.value),
            min_diameter_um=float(self.min_diameter.value),
        )
        # A new run defines the table: its rows and curves come from this run only.
        self.results = {}
        self.regions = {}
        self._measured = {}
        self._refresh()
        self.job.start(iter_compare_pores(plan))

    def _progress(self, record) -> None:
        measured = record.data
        if not isinstance(measured, MeasuredInput):
            return
        name, result = measured.name, measured.result
        self.results[name] = result
        self.regions[name] = measured.region
        self._measured[name] = measured
        add_or_update(
            self.viewer,
            f"pores: {name}",
            result.labels,
            kind="labels",
            scale=measured.voxel_um,
            translate=measured.origin_um,
            metadata={"pores_of": name, "region_um": measured.region, "summary": result.summary()},
        )
        self._refresh()

    def _finished(self, comparison) -> None:
        if comparison is None:
            if self.results:
                done = ", ".join(self.results)
                self.controls.show_message(
                    f"{self.controls.status.text()} Measured so far: {done} (kept in the table)."
                )
            return
        parts = [f"{m.name}: {100 * m.result.porosity:.1f} %, {m.result.count} pores" for m in comparison.measured]
        where = "whole layers" if comparison.region is None else "the common region"
        self.controls.show_message(f"Done on {where}. " + "; ".join(parts) + ".")

    def _region_line(self) -> str:
        """What the results cover, for the line above the table."""
        regions = set(self.regions.values())
        if not self.results:
            return ""
        if regions == {None}:
            return "whole layers" if len(self.results) > 1 else "the whole layer"
        if len(regions) == 1:
            return f"region {region_text(next(iter(regions)))}"
        return "regions differ between inputs"

    def _state(self, state: str) -> None:
        self.export_button.enabled = state != "running" and bool(self.results)

    # ------------------------------------------------------------- results

    @staticmethod
    def _headers(ndims: set) -> list[str]:
        """Column headers; two lines each so that the table fits a narrow dock."""
        if ndims == {2}:
            density, shape = "Pores\n/mm²", "Mean\ncircularity"
        elif ndims == {3}:
            density, shape = "Pores\n/mm³", "Mean\nsphericity"
        else:
            density, shape = "Pores/\nmm³ or mm²", "Sphericity/\ncircularity"
        return ["Porosity\n(%)", "Pores", density, "Mean ⌀\n(µm)", "Median ⌀\n(µm)", shape, "Voxel\n(µm)"]

    _HEADER_TIPS = (
        "Pore voxels / sample voxels, edge-cut pores included",
        "Counted pores (edge-cut pores excluded when 'Skip pores cut by the edge' is on)",
        "Counted pores per mm³ (mm² in 2D) of sample: compares fields of different size",
        "Mean equivalent diameter of the counted pores (sphere of equal volume; circle of equal area in 2D)",
        "Median equivalent diameter of the counted pores",
        "Mean sphericity in 3D (1 = sphere); mean circularity 4πA/P² in 2D (1 = disc)",
        "Voxel size of the input (its layer scale), z, y, x",
    )

    def _refresh(self) -> None:
        """Rebuild the table and the plot from :attr:`results`."""
        rows, index = [], []
        for name, result in self.results.items():
            s = result.summary()
            # Text, not numbers: the table would show every float with 4 decimals.
            rows.append(
                [
                    f"{100 * s['porosity']:.2f}",
                    str(s["count"]),
                    f"{pores_per_mm(result):.0f}",
                    _text(s["mean_diameter_um"], 2),
                    _text(s["median_diameter_um"], 2),
                    _text(s["mean_sphericity"], 3),
                    format_um(result.voxel_um),
                ]
            )
            index.append(name)
        ndims = {r.ndim for r in self.results.values()} or {3}
        self.table.value = {"data": rows, "index": index, "columns": self._headers(ndims)}
        line = self._region_line()
        self.region_label.value = f"Measured on {line}." if line else ""
        self.region_label.visible = bool(line)
        for i, name in enumerate(index):
            item = self.table.native.verticalHeaderItem(i)
            if item is not None:
                shape = "×".join(str(n) for n in self.results[name].labels.shape)
                item.setToolTip(f"{name}: {shape} voxels measured, {region_text(self.regions.get(name))}")
        for i, tip in enumerate(self._HEADER_TIPS):
            item = self.table.native.horizontalHeaderItem(i)
            if item is not None:
                item.setToolTip(tip)
        self.table.native.resizeColumnsToContents()
        self.export_button.enabled = bool(self.results) and not self.job.running
        self._draw()

    def _draw(self) -> None:
        ax = self.plot.axes()
        by_volume = self.weighting.value == BY_VOLUME
        ndims = {r.ndim for r in self.results.values()} or {3}
        ax.set_xlabel("Equivalent diameter (µm)", fontsize=8)
        if by_volume:
            ax.set_ylabel("% of pore area" if ndims == {2} else "% of pore volume", fontsize=8)
        else:
            ax.set_ylabel("% of pores", fontsize=8)
        diameters = [r.table["diameter_um"] for r in self.results.values() if r.count]
        if not diameters:
            text = "Measure pores to see their sizes" if not self.results else "No pore counted"
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#d0d0d0", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            self.plot.draw_idle()
            return
        top = max(float(d.max()) for d in diameters)
        width = _nice_width(top)
        edges = np.arange(0.0, top + width, width)
        if edges[-1] <= top:
            edges = np.append(edges, edges[-1] + width)
        for i, (name, result) in enumerate(self.results.items()):
            if not result.count:
                continue
            d = result.table["diameter_um"]
            weights = result.table[result.size_column] if by_volume else np.ones_like(d)
            values, _ = np.histogram(d, bins=edges, weights=weights)
            values = 100 * values / max(float(weights.sum()), 1e-300)
            ax.stairs(
                values, edges, label=f"{name} (n={result.count})", color=_COLOURS[i % len(_COLOURS)], linewidth=1.5
            )
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        self.plot.legend(ax, loc="upper right")
        self.plot.draw_idle()

    # -------------------------------------------------------------- export

    def export_csv(self, path, overwrite: bool = False) -> list:
        """Write the summary table and one per-pore table per input (:func:`napari_resolve.pores.compare.write_tables`).

        Parameters
        ----------
        path : str or os.PathLike
            The summary file (``.csv`` is added if there is no suffix): one row
            per input, units in the column names. Next to it go the per-pore
            tables ``<stem>_<layer name>.csv``.
        overwrite : bool
            Replace existing files. Without it, nothing is written if any of
            the files exists.

        Returns
        -------
        list of pathlib.Path
            The files written, the summary first.

        Raises
        ------
        InputError
            If there is nothing to export.
        FileFormatError
            If the folder is missing, or a file exists and ``overwrite`` is False.
        """
        if not self._measured:
            raise InputError("There are no results yet: measure pores first, then export.")
        written = write_tables(path, list(self._measured.values()), overwrite=overwrite)
        path, per_input = written[0], written[1:]
        self.controls.show_message(
            f"Wrote {path.name} and {len(per_input)} per-pore table{'s' if len(per_input) != 1 else ''} "
            f"({', '.join(p.name for p in per_input)}) in {path.parent}."
        )
        return written

    def _export_clicked(self, _value=None) -> None:
        from napari.utils.notifications import show_error
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, "Export pore tables", "pores.csv", "CSV files (*.csv)")
        if not path:
            return
        try:
            # The dialog has asked about the summary file; its per-pore siblings go with it.
            self.export_csv(path, overwrite=True)
        except Exception as exc:
            show_error(f"Export: {error_message(exc)}")
            self.controls.show_message(error_message(exc))


def _text(value, digits: int) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"
