"""The Pores dock widget: segment and measure pores on several images side by side.

The user picks any image layers (LRES, upscaled, HRES, a baseline...); the
core's comparison job (:mod:`napari_resolve.pores.compare`) measures each in
turn: the widget reads the layers and calls :func:`plan_compare_pores` on the
main thread, then runs :func:`iter_compare_pores` in a worker. Every
input gets a labels layer ``"pores: <short layer name>"`` of its counted pores lying
over it (and ``"cut pores: <short layer name>"`` of the pores the border or the
sample surface cuts, left out of the statistics), a column in a table
(porosity, count, diameters, sphericity: one column per input, so that the
table reads at a dock's default width) and a curve in a pore size distribution
plot, so that what the LRES misses and what an upscaled volume recovers can be
read at a glance. The measured box is drawn as a Shapes outline. The table and
the per-pore tables export to CSV.

The Images list offers scans and results only: the user's layers and the
upscaled results written to a file, not quality maps or preview tiles. The
sample (the porosity's denominator) is found automatically, is the whole
field, or is a Labels or Shapes layer the user drew, carried onto each input's
grid in world coordinates (:mod:`napari_resolve.pores.masks`); when the mask
leaves out most of the pore phase, the core's warning shows under the table.

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
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSizePolicy,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from napari_resolve._text import MICRO, format_values
from napari_resolve._text import format_um as _format_um
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
from napari_resolve.pores.masks import mask_on_grid, polygon_mask

from ._forms import JobControls, fit_columns, follow_layer_list, follow_with_choices, heading, refit
from ._layers import (
    KEY,
    add_or_update,
    check_plain_geometry,
    is_produced,
    layer_data,
    origin_um,
    short_names,
    spatial_ndim,
    voxel_um,
)
from ._plots import PlotCanvas
from ._workers import Job, error_message, parameter_label

#: Names of the plugin's quality maps: never offered as inputs.
MAP_PREFIXES = ("MS-SSIM map", "SSIM map")

#: Sample choices besides a Labels or Shapes layer.
AUTO_SAMPLE = "auto (find the sample)"
WHOLE_FIELD = "whole field"

#: The Shapes layer outlining the measured box.
BOX_NAME = "pores: measured box"
BOX_COLOUR = "#ffd95e"

#: Decimals of the table, the status line and the plot (one rule for all three).
PERCENT_DIGITS = 1
UM_DIGITS = 2
SHAPE_DIGITS = 2

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
    "sample_mask": "Sample",
}

_AXES = {2: "yx", 3: "zyx"}

# A colour cycle that reads well on the dark canvas and does not start with the
# blue napari uses for selection.
_COLOURS = ("#f4a259", "#5ec2e8", "#b5e86f", "#e86fa8", "#c9a0ff", "#ffd95e", "#7fdbca", "#ff8a80")


def is_scan_or_result(layer) -> bool:
    """True for an image worth measuring: a user's scan, or an upscaled result written to a file.

    The plugin's quality maps (their layers record a map ``kind``) and preview
    tiles (a grid but no ``source`` file) are not inputs; neither is a layer
    named like a quality map.
    """
    if layer.name.startswith(MAP_PREFIXES):
        return False
    if not is_produced(layer):
        return True
    meta = layer.metadata.get(KEY, {})
    return "source" in meta and "kind" not in meta


def default_selected(layer) -> bool:
    """True for a user's LRES or HRES layer (the inputs most runs compare)."""
    name = layer.name
    if not is_scan_or_result(layer) or is_produced(layer):
        return False
    return "lres" in name.lower() or "hres" in name.lower()


def layer_select(viewer, layer_type, label: str, *, tooltip: str = "", default=None, keep=None) -> Select:
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
    keep : callable, optional
        ``keep(layer) -> bool``: the layers listed (default: all of ``layer_type``).
    """

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers
                if isinstance(layer, layer_type) and (keep is None or keep(layer))]

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

    def inserted(layer):
        wanted = (default is not None and not state["touched"] and isinstance(layer, layer_type)
                  and (keep is None or keep(layer)) and default(layer))
        refresh(add=(layer,) if wanted else ())

    follow_layer_list(viewer, refresh, inserted)
    select.changed.connect(changed)
    if default is not None:
        state["syncing"] = True
        select.value = [layer for _, layer in choices() if default(layer)]
        state["syncing"] = False
    return select


def sample_combo(viewer) -> ComboBox:
    """The Sample choice: automatic, the whole field, or one of the user's Labels or Shapes layers."""

    def choices(_widget=None):
        masks = [(f"layer: {layer.name}", layer) for layer in viewer.layers
                 if isinstance(layer, (napari.layers.Labels, napari.layers.Shapes)) and not is_produced(layer)]
        return [(AUTO_SAMPLE, AUTO_SAMPLE), (WHOLE_FIELD, WHOLE_FIELD), *masks]

    combo = ComboBox(
        label="Sample",
        choices=choices,
        value=AUTO_SAMPLE,
        nullable=False,
        tooltip="The voxels that belong to the sample (porosity = pore voxels / sample voxels). Auto: the solid "
        "with its holes filled, when dark air surrounds the sample (otherwise the whole field). Whole field: "
        "every voxel, for a pore network that fills the field. A Labels layer (non-zero = sample) or a Shapes "
        "layer (rectangles, polygons, ellipses drawn around the sample; in 3D they outline every slice) is "
        "carried onto each input by world position (µm).",
    )
    return follow_with_choices(viewer, combo)


def _shape_outline(layer, index: int) -> np.ndarray:
    """World (y, x) vertices (um) of one shape of a Shapes layer, an ellipse as a polygon."""
    kind = layer.shape_type[index]
    if kind in ("line", "path"):
        raise InputError(
            f"The Sample layer {layer.name!r} holds a {kind}, which encloses no area; draw rectangles, polygons "
            "or ellipses around the sample."
        )
    vertices = np.asarray(layer.data[index], dtype=float)
    world = np.array([layer.data_to_world(v) for v in vertices])[:, -2:]
    if kind == "ellipse":
        # napari keeps an ellipse as the four corners of its bounding box (possibly rotated).
        centre = world.mean(axis=0)
        a, b = (world[1] - world[0]) / 2, (world[3] - world[0]) / 2
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)[:, None]
        world = centre + np.cos(t) * a + np.sin(t) * b
    return world


def _layer_mask(layer, shape, voxel, origin) -> np.ndarray:
    """A Labels or Shapes layer as a sample mask on an input's grid (world positions, um)."""
    if isinstance(layer, napari.layers.Shapes):
        if len(layer.data) == 0:
            raise InputError(f"The Sample layer {layer.name!r} is empty; draw the sample's outline in it first.")
        return polygon_mask([_shape_outline(layer, i) for i in range(len(layer.data))], shape, voxel, origin)
    check_plain_geometry(layer, "sample")
    return mask_on_grid(layer_data(layer), voxel_um(layer), origin_um(layer), shape, voxel, origin)


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
    sample : magicgui.widgets.ComboBox
        The sample mask: ``AUTO_SAMPLE``, ``WHOLE_FIELD`` or a Labels or Shapes layer.
    table : magicgui.widgets.Table
        One column per input, one row per quantity: transposed so that every
        figure reads at a dock's default width (about 320 px) with a few
        inputs. Columns are titled with the inputs' short names (those of their
        pores layers), wrapped onto more lines where the dock is narrow
        (:func:`~napari_resolve._qt._forms.fit_columns`); the full name is in
        the title's tooltip.
    warning_label : magicgui.widgets.Label
        The results' warnings (e.g. a sample mask that left out most pores).
    plot : PlotCanvas
        The pore size distributions, one curve per input (legend below the axes).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.results: dict = {}
        self.regions: dict = {}
        self._measured: dict[str, MeasuredInput] = {}  # name -> what the job yielded for it
        self._layer_names: dict[str, str] = {}  # input layer name -> the name its pores layers carry

        self.inputs = layer_select(
            napari_viewer,
            napari.layers.Image,
            "Images",
            tooltip="Image layers to measure (Ctrl/Shift-click to pick several): LRES, upscaled, HRES, baselines. "
            "Each is measured at its own voxel size (its layer scale, µm). Quality maps and preview tiles are "
            "not listed.",
            default=default_selected,
            keep=is_scan_or_result,
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
        self.grey.enabled = False
        self._grey_decimals()
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
        self.sample = sample_combo(napari_viewer)
        self.edge = CheckBox(
            label="Skip pores cut by the edge",
            value=True,
            tooltip="Pores cut by the image border or the sample surface are left out of the count, sizes and "
            "shapes (they still count towards porosity).",
        )
        self.method.changed.connect(lambda v: setattr(self.grey, "enabled", v == FIXED))
        self.inputs.changed.connect(self._grey_decimals)
        fields = [self.inputs, self.region, self.method, self.grey, self.pores_are, self.sample, self.min_diameter,
                  self.edge]
        form = Container(widgets=fields)
        form.margins = (0, 0, 0, 0)

        self.job = Job("Pore analysis", labels=_LABELS)
        self.controls = JobControls(self.job, "Measure pores", self._start)
        self.job.progress.connect(self._progress)
        self.job.finished.connect(self._finished)
        self.job.state_changed.connect(self._state)

        self.region_label = Label(value="")
        _wrapping(self.region_label)
        self.region_label.tooltip = "The region the table and the plot describe"
        self.table = Table(value={"data": [], "index": [], "columns": []})
        native = self.table.native
        native.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # magicgui's delegate re-formats every number-like cell with 4 decimals ("1.504e+05"); show our text.
        native.setItemDelegate(QStyledItemDelegate(native))
        # The inputs share the width left by the row names, each as its figures need; a short layer name
        # that does not fit on one line wraps onto two (fit_columns), and the table is as tall as its rows.
        native.horizontalHeader().setMinimumSectionSize(40)
        native.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        native.setWordWrap(True)
        fit_columns(native, fixed_height=True)
        native.setToolTip("One column per input; hover a row name for its meaning, a column header for the input.")

        self.warning_label = Label(value="")
        self.warning_label.native.setWordWrap(True)
        self.warning_label.native.setStyleSheet("color: #ffd95e;")
        _wrapping(self.warning_label)
        self.warning_label.visible = False

        self.weighting = ComboBox(
            label="Plot",
            choices=[BY_NUMBER, BY_VOLUME],
            value=BY_NUMBER,
            tooltip="Size distribution by number of pores, or weighted by pore volume (area in 2D). Curves are "
            "percentages of each input's own pores, so fields of different size compare.",
        )
        self.weighting.changed.connect(lambda _v: self._draw())
        self.plot = PlotCanvas(2.6)
        self._plot_height = self.plot.minimumHeight()
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
        layout.addWidget(self.warning_label.native)
        layout.addWidget(self.plot)
        layout.addWidget(bottom.native)
        hint = Label(value="Labels layers 'pores: <image>' show the counted pores, 'cut pores: <image>' those cut by "
                     f"the border or the sample surface; '{BOX_NAME}' outlines the region measured.")
        _wrapping(hint)
        layout.addWidget(hint.native)
        layout.addStretch(1)
        self._draw()

    def _grey_decimals(self, _value=None) -> None:
        """Decimals and step of the Grey value for the selected images' range: "0.50" for 0-1, "128" for 0-255."""
        spans = []
        for layer in self.inputs.value:
            lo, hi = (float(v) for v in layer.contrast_limits_range)
            if math.isfinite(hi - lo) and hi > lo:
                spans.append(hi - lo)
        span = max(spans) if spans else 1.0
        decimals = int(min(4, max(0, 2 - math.floor(math.log10(span)))))
        native = self.grey.native
        if native.decimals() != decimals:
            native.setDecimals(decimals)
            native.setSingleStep(10.0 ** -decimals)

    # ------------------------------------------------------------------ run

    def run(self) -> bool:
        """Validate the form and start measuring (the Measure button); False if refused."""
        return self.controls.run()

    def _start(self) -> None:
        layers = [layer for layer in self.inputs.value if layer in self.viewer.layers]
        if not layers:
            raise InputError("Select at least one image layer under 'Images' (Ctrl-click to pick several).")
        choice = self.sample.value
        drawn = None if isinstance(choice, str) else choice
        if drawn is not None and drawn not in self.viewer.layers:
            raise InputError("The Sample layer was removed; choose another, or auto / whole field.")
        inputs = []
        for layer in layers:
            spatial_ndim(layer)
            check_plain_geometry(layer, "input")
            # Layer data and geometry are read here, on the main thread; the plan crops a lazy array before
            # reading it, so only the common box of a big LRES is loaded.
            data, voxel, origin = layer_data(layer), voxel_um(layer), origin_um(layer)
            # A drawn sample is carried onto each input's own grid by world position.
            mask = None if drawn is None else _layer_mask(drawn, np.shape(data), voxel, origin)
            inputs.append(PoreInput(layer.name, data, voxel, origin, sample_mask=mask))
        plan = plan_compare_pores(
            inputs,
            region=COMMON if self.region.value == OVERLAP else WHOLE_INPUTS,
            threshold=float(self.grey.value) if self.method.value == FIXED else "otsu",
            pores_are=self.pores_are.value,
            sample_mask=None if choice == WHOLE_FIELD else "auto",
            edge_kill=bool(self.edge.value),
            min_diameter_um=float(self.min_diameter.value),
        )
        # Layers made from an input carry its short name ("pores: upscaled_foam", not
        # "pores: upscaled: upscaled_foam.zarr"), unless two inputs would share one.
        self._layer_names = short_names([layer.name for layer in layers])
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
            f"pores: {self._short(name)}",
            result.labels,
            kind="labels",
            scale=measured.voxel_um,
            translate=measured.origin_um,
            metadata={"pores_of": name, "region_um": measured.region, "summary": result.summary()},
        )
        cut_name = f"cut pores: {self._short(name)}"
        if result.cut_labels is not None:
            existing = cut_name in self.viewer.layers and is_produced(self.viewer.layers[cut_name])
            add_or_update(
                self.viewer,
                cut_name,
                result.cut_labels,
                kind="labels",
                scale=measured.voxel_um,
                translate=measured.origin_um,
                metadata={"cut_pores_of": name, "region_um": measured.region},
                # Fainter than the counted pores; a later run keeps what the user changed.
                **({} if existing else {"opacity": 0.4}),
            )
        elif cut_name in self.viewer.layers and is_produced(self.viewer.layers[cut_name]):
            self.viewer.layers.remove(cut_name)  # edge-kill off: every pore is counted
        self._show_box(measured.region)
        self._refresh()

    def _show_box(self, region) -> None:
        """Outline the measured box (its y, x extent on every slice) in a Shapes layer; none for whole layers."""
        layer = self.viewer.layers[BOX_NAME] if BOX_NAME in self.viewer.layers else None
        if layer is not None and not (is_produced(layer) and isinstance(layer, napari.layers.Shapes)):
            layer = None  # a user's layer of that name is never touched
            if region is None:
                return
        if region is None:
            if layer is not None:
                self.viewer.layers.remove(layer)
            return
        (y0, x0), (y1, x1) = region[0][-2:], region[1][-2:]
        rectangle = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float)
        width = max(y1 - y0, x1 - x0) / 150
        meta = {KEY: {"produced": True, "kind": "outline", "region_um": region}}
        if layer is not None:
            layer.data = [rectangle]
            layer.edge_width = [width]
            layer.metadata = {**layer.metadata, **meta}
            return
        name = BOX_NAME if BOX_NAME not in self.viewer.layers else BOX_NAME + " (napari-resolve)"
        self.viewer.add_shapes(
            [rectangle], shape_type="rectangle", name=name, edge_color=BOX_COLOUR, face_color="transparent",
            edge_width=width, metadata=meta,
        )

    def _finished(self, comparison) -> None:
        if comparison is None:
            if self.results:
                done = ", ".join(self._short(name) for name in self.results)
                self.controls.show_message(
                    f"{self.controls.status.text()} Measured so far: {done} (kept in the table)."
                )
            return
        parts = [f"{self._short(m.name)}: {_number(100 * m.result.porosity, PERCENT_DIGITS)} %, {m.result.count} "
                 f"pore{'' if m.result.count == 1 else 's'}" for m in comparison.measured]
        where = "whole layers" if comparison.region is None else "the common region"
        warned = any(m.result.warnings for m in comparison.measured)
        self.controls.show_message(f"Done on {where}. " + "; ".join(parts) + "."
                                   + (" See the warning under the table." if warned else ""))

    def _short(self, name: str) -> str:
        """The name an input goes by in the table, the status line, the plot and its layers (short, unique)."""
        return self._layer_names.get(name, name)

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
    def _row_names(ndims: set) -> list[str]:
        """The table's row names (the quantities), with their units."""
        if ndims == {2}:
            density, shape = "Pores/mm²", "Mean circularity"
        elif ndims == {3}:
            density, shape = "Pores/mm³", "Mean sphericity"
        else:
            density, shape = "Pores/mm³ or mm²", "Sphericity/circularity"
        return ["Porosity (%)", "Pores", density, f"Mean ⌀ ({MICRO})", f"Median ⌀ ({MICRO})", shape,
                f"Voxel ({MICRO})"]

    _ROW_TIPS = (
        "Pore voxels / sample voxels, edge-cut pores included",
        "Counted pores (edge-cut pores excluded when 'Skip pores cut by the edge' is on)",
        "Counted pores per mm³ (mm² in 2D) of sample: compares fields of different size",
        "Mean equivalent diameter of the counted pores (sphere of equal volume; circle of equal area in 2D)",
        "Median equivalent diameter of the counted pores",
        "Mean sphericity in 3D (1 = sphere); mean circularity 4πA/P² in 2D (1 = disc)",
        "Voxel size of the input (its layer scale); one number when isotropic, else z, y, x",
    )

    def _refresh(self) -> None:
        """Rebuild the table, the warnings and the plot from :attr:`results`."""
        columns, names = [], []
        for name, result in self.results.items():
            s = result.summary()
            # Text, not numbers: the table would show every float with 4 decimals.
            columns.append(
                [
                    _number(100 * s["porosity"], PERCENT_DIGITS),
                    str(s["count"]),
                    _number(pores_per_mm(result), 0),
                    _number(s["mean_diameter_um"], UM_DIGITS),
                    _number(s["median_diameter_um"], UM_DIGITS),
                    _number(s["mean_sphericity"], SHAPE_DIGITS),
                    _format_um(result.voxel_um, ", ", compact=True, unit=""),
                ]
            )
            names.append(self._short(name))
        ndims = {r.ndim for r in self.results.values()} or {3}
        row_names = self._row_names(ndims)
        rows = [[column[i] for column in columns] for i in range(len(row_names))] if columns else []
        self.table.value = {"data": rows, "index": row_names if columns else [], "columns": names}
        native = self.table.native
        line = self._region_line()
        self.region_label.value = f"Measured on {line}." if line else ""
        self.region_label.visible = bool(line)
        for j, name in enumerate(self.results):
            item = native.horizontalHeaderItem(j)
            if item is not None:
                shape = "×".join(str(n) for n in self.results[name].labels.shape)
                item.setToolTip(f"{name}: {shape} voxels measured, {region_text(self.regions.get(name))}")
        for i, tip in enumerate(self._ROW_TIPS[: len(rows)]):
            item = native.verticalHeaderItem(i)
            if item is not None:
                item.setToolTip(tip)
        native.resizeRowsToContents()
        refit(native)  # the new titles and figures: widths, wrapped titles, and a height for every row
        warnings = [
            f"{name}: {w.render(lambda n: parameter_label(n, _LABELS))}"
            for name, result in self.results.items()
            for w in result.warnings
        ]
        self.warning_label.value = "\n".join(f"⚠ {w}" for w in warnings)
        self.warning_label.visible = bool(warnings)
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
                values, edges, label=f"{self._short(name)} (n={result.count})", color=_COLOURS[i % len(_COLOURS)],
                linewidth=1.5,
            )
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        # Below the axes, never over the curves; the canvas grows a line per curve to keep the axes' height.
        self.plot.legend(self.plot.figure, loc="outside lower center", ncols=1)
        self.plot.setMinimumHeight(self._plot_height + 14 * sum(1 for r in self.results.values() if r.count))
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


def _wrapping(label: Label) -> None:
    """Make a label wrap its text at the dock's width.

    magicgui labels have a fixed horizontal size policy, so a wrapped one is as
    narrow as its minimum (a word a line); without a minimum width, Qt asks for
    the whole text on one line and widens the dock instead.
    """
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    label.native.setMinimumWidth(10)


def _number(value, digits: int) -> str:
    """A figure with fixed decimals (:func:`napari_resolve._text.format_values`); "–" for none."""
    return "–" if value is None else format_values([value], digits=digits)
