"""The Pores dock widget: segment and measure pores on several images side by side.

The user picks any image layers (LRES, upscaled, HRES, a baseline...); one job
runs :func:`napari_resolve.pores.iter_analyse_pores` on each in turn. Every
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

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton, Select, Table
from qtpy.QtWidgets import QAbstractItemView, QStyledItemDelegate, QVBoxLayout, QWidget

from napari_resolve.errors import InputError
from napari_resolve.geometry.overlap import (  # noqa: F401 - MIN_OVERLAP_VOXELS and extent_um re-exported for the tests
    MIN_OVERLAP_VOXELS,
    WHOLE,
    crop_slices,
    extent_um,
    overlap_region,
    region_text,
)
from napari_resolve.jobs import Progress
from napari_resolve.pores.segment import iter_analyse_pores

from ._forms import JobControls, format_um, heading
from ._layers import add_or_update, check_plain_geometry, is_produced, layer_data, origin_um, spatial_ndim, voxel_um
from ._plots import PlotCanvas
from ._workers import Job, error_message

#: Names of the plugin's quality maps: listed, but never selected by default.
MAP_PREFIXES = ("MS-SSIM map", "SSIM map")

#: Progress steps given to each input in the job's global count.
_STEPS_PER_INPUT = 100

OTSU = "Otsu (automatic)"
FIXED = "Fixed grey value"
BY_NUMBER = "% of pores"
BY_VOLUME = "% of pore volume"

OVERLAP = "where all inputs overlap"

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


@dataclass(frozen=True)
class InputMeasured(Progress):
    """The record yielded when one input is measured; it carries the result.

    Attributes
    ----------
    name : str
        The input layer's name when the job started.
    result : napari_resolve.pores.PoreResult
    scale, translate : tuple of float
        Voxel size and origin (um) of the measured array (the input layer's,
        moved to the first voxel of the crop), for its labels layer.
    region : tuple or None
        The world box (lo, hi) in um the input was cropped to; None for the
        whole layer.
    """

    name: str = ""
    result: object = None
    scale: tuple = ()
    translate: tuple = ()
    region: tuple | None = None


@dataclass(frozen=True)
class _Input:
    name: str
    image: object  # the (cropped) layer data; a lazy array is read in the worker
    scale: tuple
    translate: tuple
    options: dict
    region: tuple | None = None


def _renumbered(gen, name: str, index: int, count: int):
    """Yield ``gen``'s records as steps of the whole job, naming the input; return its result."""
    total = _STEPS_PER_INPUT * count
    base = _STEPS_PER_INPUT * index
    prefix = f"{name} ({index + 1}/{count})"
    try:
        while True:
            try:
                record = next(gen)
            except StopIteration as done:
                return done.value
            except InputError as exc:  # the core says "image"; say which layer
                raise InputError(f"{name}: {exc}") from exc
            frac = record.step / record.total if record.total else 0.0
            step = base + min(_STEPS_PER_INPUT - 1, int(frac * _STEPS_PER_INPUT))
            yield Progress(step, total, f"{prefix}: {record.message}")
    finally:
        gen.close()


def measure_inputs(inputs):
    """The job: measure each input in turn, yielding an :class:`InputMeasured` after each.

    Parameters
    ----------
    inputs : sequence of _Input
        Arrays and geometry read from the layers on the main thread.

    Returns
    -------
    dict of str to PoreResult
    """
    results = {}
    count = len(inputs)
    for i, item in enumerate(inputs):
        gen = iter_analyse_pores(item.image, item.scale, **item.options)
        result = yield from _renumbered(gen, item.name, i, count)
        results[item.name] = result
        yield InputMeasured(
            _STEPS_PER_INPUT * (i + 1),
            _STEPS_PER_INPUT * count,
            f"{item.name}: {result.count} pores, porosity {100 * result.porosity:.1f} %",
            name=item.name,
            result=result,
            scale=item.scale,
            translate=item.translate,
            region=item.region,
        )
    return results


def min_volume_voxels(diameter_um: float, voxel_um) -> int | None:
    """Voxels of the smallest kept pore object of equivalent diameter ``diameter_um``.

    ``None`` (the core's default noise removal) for 0. Never below the core's
    default (8 voxels in 3D, 4 pixels in 2D), so noise removal stays on.
    """
    if diameter_um <= 0:
        return None
    ndim = len(voxel_um)
    cell = float(np.prod(voxel_um))
    size = math.pi / 6 * diameter_um**3 if ndim == 3 else math.pi / 4 * diameter_um**2
    return max(8 if ndim == 3 else 4, math.ceil(size / cell - 1e-9))


def _density(result) -> float:
    """Counted pores per mm^3 of sample (per mm^2 in 2D)."""
    s = result.summary()
    sample = s["sample_volume_um3"] if result.ndim == 3 else s["sample_area_um2"]
    per_um = result.count / sample if sample else 0.0
    return per_um * (1e9 if result.ndim == 3 else 1e6)


def summary_row(result, region=None) -> dict:
    """One input's figures for the table and the CSV, with units in the keys.

    ``region`` is the world box (lo, hi) in um the input was cropped to; the
    CSV gives each corner as "z y x" (blank for a whole layer).
    """
    s = result.summary()
    three = result.ndim == 3
    voxel = [float(v) for v in result.voxel_um]
    row = {
        "ndim": result.ndim,
        "porosity_percent": 100 * s["porosity"],
        "pore_count": s["count"],
        ("pores_per_mm3" if three else "pores_per_mm2"): _density(result),
        "mean_diameter_um": s["mean_diameter_um"],
        "median_diameter_um": s["median_diameter_um"],
        ("mean_sphericity" if three else "mean_circularity"): s["mean_sphericity"],
        "voxel_z_um": voxel[0] if three else None,
        "voxel_y_um": voxel[-2],
        "voxel_x_um": voxel[-1],
        "threshold": s["threshold"],
        "region_lo_um": None if region is None else " ".join(f"{v:.12g}" for v in region[0]),
        "region_hi_um": None if region is None else " ".join(f"{v:.12g}" for v in region[1]),
    }
    for key in ("pore_volume_um3", "sample_volume_um3", "pore_area_um2", "sample_area_um2"):
        if key in s:
            row[key] = s[key]
    return row


def sanitise(name: str) -> str:
    """A layer name made safe for a file name: ``"LRES foam 3um"`` -> ``"LRES_foam_3um"``."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "layer"


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
        self._geometry: dict[str, tuple] = {}  # name -> (scale, translate) of the measured array
        self._planned: list[str] = []

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

        self.job = Job("Pore analysis")
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

    def _options(self, voxel: tuple, image) -> dict:
        options = {"pores_are": self.pores_are.value, "edge_kill": bool(self.edge.value)}
        if self.method.value == FIXED:
            value = float(self.grey.value)
            data = np.asarray(image)  # the grey range needs the data (a lazy crop is read here)
            lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
            if not lo <= value <= hi:
                raise InputError(
                    f"The grey value {value:g} lies outside the range of an input ({lo:.4g} to {hi:.4g}); "
                    "choose a value inside every selected image's range, or use Otsu."
                )
            options["threshold"] = value
        minimum = min_volume_voxels(float(self.min_diameter.value), voxel)
        if minimum is not None:
            options["min_volume_voxels"] = minimum
        return options

    def _start(self) -> None:
        layers = [layer for layer in self.inputs.value if layer in self.viewer.layers]
        if not layers:
            raise InputError("Select at least one image layer under 'Images' (Ctrl-click to pick several).")
        geometries = {}
        for layer in layers:
            spatial_ndim(layer)
            check_plain_geometry(layer, "input")
            data = layer_data(layer)
            geometries[layer.name] = (tuple(data.shape), voxel_um(layer), origin_um(layer))
        # With one input its overlap is itself: measure it whole.
        region = overlap_region(geometries) if self.region.value == OVERLAP and len(layers) > 1 else None
        inputs = []
        for layer in layers:
            shape, scale, translate = geometries[layer.name]
            image = layer_data(layer)
            if region is not None:
                box = crop_slices(shape, scale, translate, *region)
                if any(s.stop - s.start < 1 for s in box):  # overlap_region's size check makes this rare
                    raise InputError(
                        f"{layer.name!r} has no voxel centre inside the common region {region_text(region)}. "
                        f"Pick layers that overlap more, or choose '{WHOLE}' under Region."
                    )
                # Slicing keeps a dask or zarr array lazy: only the crop is read, in the worker.
                image = image[box]
                # The crop's voxel 0 sits at the first kept voxel, so its labels lie exactly over the input.
                translate = tuple(t + s.start * v for t, s, v in zip(translate, box, scale))
            try:
                options = self._options(scale, image)
            except InputError as exc:
                raise InputError(f"{layer.name}: {exc}") from exc
            inputs.append(_Input(layer.name, image, scale, translate, options, region))
        # A new run defines the table: its rows and curves come from this run only.
        self.results = {}
        self.regions = {}
        self._geometry = {}
        self._planned = [item.name for item in inputs]
        self._refresh()
        self.job.start(measure_inputs(inputs))

    def _progress(self, record) -> None:
        if not isinstance(record, InputMeasured):
            return
        name, result = record.name, record.result
        self.results[name] = result
        self.regions[name] = record.region
        self._geometry[name] = (record.scale, record.translate)
        add_or_update(
            self.viewer,
            f"pores: {name}",
            result.labels,
            kind="labels",
            scale=record.scale,
            translate=record.translate,
            metadata={"pores_of": name, "region_um": record.region, "summary": result.summary()},
        )
        self._refresh()

    def _finished(self, results) -> None:
        if results is None:
            if self.results:
                done = ", ".join(self.results)
                self.controls.show_message(
                    f"{self.controls.status.text()} Measured so far: {done} (kept in the table)."
                )
            return
        parts = [f"{name}: {100 * r.porosity:.1f} %, {r.count} pores" for name, r in results.items()]
        where = "whole layers" if set(self.regions.values()) == {None} else "the common region"
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
                    f"{_density(result):.0f}",
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

    def export_csv(self, path, overwrite: bool = False) -> list[Path]:
        """Write the summary table and one per-pore table per input.

        Parameters
        ----------
        path : str or os.PathLike
            The summary file (``.csv`` is added if there is no suffix): one row
            per input, units in the column names. Next to it go the per-pore
            tables ``<stem>_<layer name>.csv`` (see :meth:`PoreResult.to_csv`).
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
            If there is nothing to export, the folder is missing, or a file
            exists and ``overwrite`` is False.
        """
        from napari_resolve.io import atomic_path

        if not self.results:
            raise InputError("There are no results yet: measure pores first, then export.")
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".csv")
        if not path.parent.is_dir():
            raise InputError(f"The folder {path.parent} does not exist. Choose another place.")
        per_input: dict[str, Path] = {}
        used = {path.name.lower()}
        for name in self.results:
            base = f"{path.stem}_{sanitise(name)}"
            candidate, n = f"{base}.csv", 2
            while candidate.lower() in used:  # two layer names that sanitise alike
                candidate, n = f"{base}_{n}.csv", n + 1
            used.add(candidate.lower())
            per_input[name] = path.with_name(candidate)
        targets = [path, *per_input.values()]
        existing = [p.name for p in targets if p.exists()]
        if existing and not overwrite:
            raise InputError(
                f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} in {path.parent} and "
                "were left untouched. Choose another name, or confirm overwriting in the save dialog."
            )

        rows = []
        for name, result in self.results.items():
            row = summary_row(result, self.regions.get(name))
            rows.append({"layer": name, **row, "per_pore_file": per_input[name].name})
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        with atomic_path(path, overwrite=True) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([_csv_value(row.get(c)) for c in columns])
        for name, result in self.results.items():
            result.to_csv(per_input[name])
        self.controls.show_message(
            f"Wrote {path.name} and {len(per_input)} per-pore table{'s' if len(per_input) != 1 else ''} "
            f"({', '.join(p.name for p in per_input.values())}) in {path.parent}."
        )
        return targets

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


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)
