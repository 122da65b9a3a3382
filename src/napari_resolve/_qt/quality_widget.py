"""Quality dock widget: where can an upscaled result be trusted?

An upscaled LRES region is compared with the registered HRES on the voxels
they share:

- an **MS-SSIM map** (and optionally an SSIM map) on the HRES grid of the
  overlap, added as a layer over the HRES whose colormap lights up only where
  the score is low, so suspected hallucinations stand out on the image;
- **scalar metrics** (PSNR, SSIM, MS-SSIM, MSE) of the result and of the
  classical baselines (cubic interpolation and Richardson-Lucy deconvolution of
  the LRES, :mod:`napari_resolve.measure.baselines`) on exactly the same grid;
- the **lowest-scoring regions**: the MS-SSIM map cut into blocks, the ten with
  the lowest mean listed; selecting one moves the viewer there and outlines the
  block (the Shapes layer "region outline", beside "HRES outline" around the HRES);
- the **effective resolution** of each of them against the HRES
  (:func:`napari_resolve.measure.resolution.gaussian_resolution`, the paper's Gaussian fit,
  as a FWHM in µm, and :func:`napari_resolve.measure.resolution.frc`, the Fourier
  ring/shell correlation at the 1/7 and half-bit thresholds), in a table and
  two plots (the MSE-versus-sigma curves and the FRC curves with thresholds).

The job itself (geometry, metrics, baselines, regions) is in the core,
:mod:`napari_resolve.measure.compare`: the widget reads the layers and calls
:func:`~napari_resolve.measure.compare.plan_quality` on the main thread, runs
:func:`~napari_resolve.measure.compare.iter_quality` in its worker and shows the
:class:`~napari_resolve.measure.compare.QualityResult`.
"""

from __future__ import annotations

import math

import napari
import numpy as np
from magicgui.widgets import CheckBox, Container, Label, SpinBox
from napari.layers import Image
from qtpy.QtWidgets import (
    QVBoxLayout,
    QWidget,
)

from napari_resolve._text import MICRO, format_values
from napari_resolve.errors import InputError
from napari_resolve.geometry.grid import Grid
from napari_resolve.geometry.overlap import MIN_OVERLAP, Overlap, plan_overlap  # noqa: F401 - re-exported for the tests
from napari_resolve.measure.compare import (  # noqa: F401 - the job's names, re-exported for older imports
    CUBIC,
    N_REGIONS,
    RL,
    UPSCALED,
    QualityResult,
    block_size,
    iter_quality,
    lowest_regions,
    plan_quality,
    resolution_row,
)

from ._error_maps import PREFIX as ERROR_PREFIX
from ._error_maps import error_map_of, show_error_map
from ._forms import JobControls, heading, layer_combo, select_layer
from ._forms import fill_table as _fill
from ._forms import results_table as _table
from ._forms import wrapping as _wrapping
from ._layers import (
    KEY,
    SUFFIX,
    _find_produced,
    add_or_update,
    check_plain_geometry,
    is_produced,
    layer_data,
    origin_um,
    short_name,
    voxel_um,
)
from ._navigate import camera, go_to
from ._plots import PlotCanvas
from ._session import registration_of, require_registration
from ._workers import Job

#: Metric keys and the column titles they are shown under.
#: MSE is measured too (``metrics``) but shown only in the row tooltips: a fourth
#: column does not fit napari's 320 px dock, and PSNR carries the same information.
COLUMNS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM"}

#: Row titles of the metrics and resolution tables, as in the plot legends: short,
#: so that three number columns fit a 320 px dock (the full names are in the row tooltips).
ROW_LABELS = {UPSCALED: "upscaled", CUBIC: "cubic", RL: "RL"}
_ROW_TIPS = {
    CUBIC: "cubic: cubic interpolation of the LRES onto the HRES grid",
    RL: "RL: Richardson-Lucy deconvolution of the LRES, then cubic interpolation onto the HRES grid",
}

#: Names of the outline layers (Shapes, world coordinates): the registered HRES, which the
#: refusal of a result outside it refers to, and the block :meth:`QualityWidget.jump_to` went to.
HRES_OUTLINE = "HRES outline"
REGION_OUTLINE = "region outline"
#: The error map on the overlap is the layer "error map: overlap of <result>".
OVERLAP_PREFIX = "overlap of "
_OUTLINE_COLORS = {HRES_OUTLINE: "#4fc3f7", REGION_OUTLINE: "#ff40ff"}  # magenta: not in the red-yellow map

_HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ms_ssim": True, "mse": False}

#: Effective-resolution keys (of ``QualityWidget.resolution`` rows) and their column titles.
#: All are lengths in µm, smaller is sharper.
RESOLUTION_COLUMNS = {"fwhm_um": "FWHM", "frc_1/7_um": "FRC 1/7", "frc_half_bit_um": "half-bit"}

#: Curve colours of the rows in the resolution plots.
_ROW_COLORS = {UPSCALED: "#4fc3f7", CUBIC: "#ffb74d", RL: "#e57373"}


def low_score_colormap() -> napari.utils.Colormap:
    """Red where the score is lowest, through orange and yellow, transparent at the top.

    Over an image only the regions with a low score light up; a perfect score
    leaves the image underneath untouched.
    """
    return napari.utils.Colormap(
        colors=[
            [1.0, 0.0, 0.0, 1.0],
            [1.0, 0.5, 0.0, 0.9],
            [1.0, 1.0, 0.0, 0.6],
            [1.0, 1.0, 0.0, 0.0],
            [1.0, 1.0, 0.0, 0.0],
        ],
        # With the MS-SSIM map's contrast limits (0.5, 1): red at 0.5 and below,
        # orange at 0.68, yellow at 0.83, nothing from about 0.93 up (good agreement).
        controls=[0.0, 0.35, 0.65, 0.85, 1.0],
        name="low score (napari-resolve)",
    )


# ------------------------------------------------------------------ the widget


def _fmt(key: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key.endswith("_um"):
        return "none" if math.isinf(value) else f"{value:.2f}"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if key == "psnr":
        return f"{value:.2f}"
    if key == "mse":
        return f"{value:.2e}"
    return f"{value:.3f}"  # SSIM and MS-SSIM: 3 decimals everywhere in the dock


class QualityWidget(QWidget):
    """Check an upscaled layer against the registered HRES: maps, metrics, worst regions.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer

    Attributes
    ----------
    job : Job
        The quality job ("Quality check"); ``job.result`` is a :class:`QualityResult`.
    metrics : dict
        ``{"upscaled" | "cubic" | "Richardson-Lucy": {"psnr", "ssim", "ms_ssim", "mse"}}``
        of the last finished check (empty before).
    regions : list of dict
        The lowest-scoring regions of the last check, lowest first (see
        :func:`lowest_regions`); :meth:`jump_to` moves the viewer to one.
    table : QTableWidget
        The metrics table (rows "upscaled", "cubic", "RL"; the full names in the row tooltips).
    regions_table : QTableWidget
        The lowest regions (rank, centre, mean MS-SSIM); selecting a row jumps there.
    map_layer, ssim_layer : napari.layers.Image or None
        The map layers of the last check ("MS-SSIM: <short>", "SSIM: <short>", see :meth:`map_names`).
    error_layer : napari.layers.Image or None
        When the result came with an error map (Preview and upscale step), that map on
        the same overlap ("error map: overlap of <short>"), beside the MS-SSIM map; the
        summary says how well they agree.
    resolution : dict
        ``{"upscaled" | "cubic" | "Richardson-Lucy": {"fwhm_um", "sigma_um", "frc_1/7_um",
        "frc_half_bit_um", "finest_um"}}`` of the last check (see :func:`resolution_row`;
        empty when not measured).
    resolution_table : QTableWidget
        FWHM and FRC resolutions (µm) per row, the sharpest of each column in bold.
    resolution_plot : PlotCanvas
        Top: MSE against the Gaussian sigma applied to the HRES (one curve per row,
        the optimum dotted); bottom: the FRC/FSC curves with the 1/7 and half-bit thresholds.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.job = Job("Quality check")
        self.metrics: dict = {}
        self.regions: list[dict] = []
        self.resolution: dict = {}
        self.map_layer = None
        self.ssim_layer = None
        self.error_layer = None
        self._pending: dict | None = None
        self._filling = False
        self._outlines: dict[str, tuple[np.ndarray, np.ndarray]] = {}

        viewer = napari_viewer
        self.result_combo = layer_combo(
            viewer,
            Image,
            "Result",
            tooltip=f"The upscaled image layer to check (its scale and translate place it, {MICRO})",
        )
        self.hres_combo = layer_combo(
            viewer, Image, "HRES", tooltip="The registered high-resolution scan the result is compared with"
        )
        self.lres_combo = layer_combo(
            viewer,
            Image,
            "LRES",
            optional=True,
            tooltip="The low-resolution scan, for the cubic and Richardson-Lucy baselines; (none) skips them",
        )
        self.ssim_check = CheckBox(
            text="SSIM map too",
            value=True,
            tooltip="Also add the single-scale SSIM map (hidden at first; finer, noisier than MS-SSIM)",
        )
        self.baselines_check = CheckBox(
            text="Baselines (cubic, Richardson-Lucy)",
            value=True,
            tooltip="Measure cubic interpolation and Richardson-Lucy deconvolution of the LRES on the same voxels",
        )
        from napari_resolve.measure.baselines import DEFAULT_ITERATIONS

        self.rl_iterations = SpinBox(
            label="RL iterations",
            value=DEFAULT_ITERATIONS,
            min=1,
            max=200,
            tooltip="Richardson-Lucy iterations (more sharpen more, and amplify noise)",
        )
        self.resolution_check = CheckBox(
            text="Effective resolution (FWHM, FRC)",
            value=True,
            tooltip="Gaussian-fit FWHM and Fourier ring/shell correlation of each image against the HRES, "
            "in µm, with their curves (about a second per image)",
        )
        form = Container(
            widgets=[
                self.result_combo,
                self.hres_combo,
                self.lres_combo,
                self.ssim_check,
                self.baselines_check,
                self.rl_iterations,
                self.resolution_check,
            ],
            labels=True,
        )
        form.native.layout().setContentsMargins(0, 0, 0, 0)
        self.controls = JobControls(self.job, "Check quality", self._start)

        self.table = _table(list(COLUMNS.values()), fixed_height=True)
        self.table.setToolTip(
            "All against the HRES on the overlap; best of each column in bold; MSE in the row tooltips. "
            "RL: Richardson-Lucy deconvolution of the LRES"
        )
        self.resolution_heading = _wrapping(heading(f"Effective resolution vs the HRES ({MICRO})").native)
        self.resolution_table = _table(list(RESOLUTION_COLUMNS.values()), fixed_height=True)
        self.resolution_table.setToolTip(
            "All in µm, smaller is sharper. FWHM: the Gaussian blur that, applied to the HRES, best "
            "matches the image (0: as sharp). FRC 1/7, half-bit: the finest period where the image still "
            "agrees with the HRES at that threshold; '<' means down to the finest period measured."
        )
        self.resolution_plot = PlotCanvas(height=4.0)
        self.resolution_plot.setToolTip(
            "Top: MSE against the Gaussian sigma applied to the HRES; the dotted line marks the best "
            "sigma. Bottom: FRC/FSC against the HRES with the 1/7 (dashed) and half-bit (dotted) thresholds."
        )
        for part in (self.resolution_heading, self.resolution_table, self.resolution_plot):
            part.setVisible(False)  # shown once there is something to show
        self.regions_table = _table([f"centre z, y, x ({MICRO})", "MS-SSIM"])
        self.regions_table.setToolTip("The blocks with the lowest mean MS-SSIM; select one to go there")
        self.regions_table.setMinimumHeight(150)
        self.regions_table.itemSelectionChanged.connect(self._selection_changed)

        self.summary = Label(value="")
        _wrapping(self.summary.native)

        layout = QVBoxLayout(self)
        layout.addWidget(_wrapping(heading("Compare an upscaled result with the HRES").native))
        layout.addWidget(form.native)
        layout.addWidget(self.controls)
        layout.addWidget(self.summary.native)
        layout.addWidget(_wrapping(heading("Metrics on the overlap").native))
        layout.addWidget(self.table)
        layout.addWidget(self.resolution_heading)
        layout.addWidget(self.resolution_table)
        layout.addWidget(self.resolution_plot)
        layout.addWidget(_wrapping(heading("Lowest MS-SSIM regions").native))
        layout.addWidget(self.regions_table, 1)  # the list takes the dock's spare height

        self.job.finished.connect(self._finished)
        self.baselines_check.changed.connect(self._baselines_toggled)
        viewer.layers.events.inserted.connect(self._layer_inserted)
        # An outline is drawn for the view: a rectangle in a 2D slice, a box in 3D.
        viewer.dims.events.ndisplay.connect(self._redraw_outlines)
        viewer.dims.events.order.connect(self._redraw_outlines)
        self._watched_hres = None
        self.hres_combo.changed.connect(self._hres_changed)
        self._preselect()
        self._hres_changed()

    # -------------------------------------------------------------- form

    def _preselect(self) -> None:
        """Pick an upscaled result, a registered HRES and the LRES when the names say so."""
        upscaled = [la for la in self.result_combo.choices if la.name.lower().startswith("upscaled")]
        if upscaled:
            self.result_combo.value = upscaled[-1]  # the newest
        registered = [la for la in self.hres_combo.choices if registration_of(la) is not None]
        if registered:
            self.hres_combo.value = registered[0]
        else:
            select_layer(self.hres_combo, "HRES")
        if self.lres_combo.value is None:
            select_layer(self.lres_combo, "LRES")

    def _hres_changed(self, _value=None) -> None:
        """Follow the picked HRES: a registration made in another step moves it (translate, scale)."""
        hres = self.hres_combo.value
        if self._watched_hres is not None and self._watched_hres is not hres:
            for event in (self._watched_hres.events.translate, self._watched_hres.events.scale):
                event.disconnect(self._update_block)
            self._watched_hres = None
        if hres is not None and self._watched_hres is None:
            hres.events.translate.connect(self._update_block)
            hres.events.scale.connect(self._update_block)
            self._watched_hres = hres
        self._update_block()

    def _update_block(self, _event=None) -> None:
        """Check quality is off, saying why, while the HRES is not registered where it is shown."""
        hres = self.hres_combo.value
        reason = None  # no HRES picked: the form says so when run
        if hres is not None:
            try:
                require_registration(hres)
            except InputError as exc:
                reason = str(exc)
        self.controls.block(reason)

    def _layer_inserted(self, event) -> None:
        # A new upscaled result (from the upscaling step) is what a user wants to check next.
        layer = event.value
        if isinstance(layer, Image) and layer.name.lower().startswith("upscaled"):
            self.result_combo.reset_choices()
            if layer in self.result_combo.choices:
                self.result_combo.value = layer

    def _baselines_toggled(self, on: bool) -> None:
        self.lres_combo.enabled = on
        self.rl_iterations.enabled = on

    # -------------------------------------------------------------- running

    def run(self) -> bool:
        """Validate the form and start the check (what the button does); False if refused."""
        return self.controls.run()

    def _start(self) -> None:
        result, hres = self.result_combo.value, self.hres_combo.value
        if result is None:
            raise InputError("Choose the upscaled result layer to check.")
        if hres is None:
            raise InputError("Choose the registered HRES layer to compare with (add and register it first).")
        if result is hres:
            raise InputError("The result and the HRES are the same layer; choose the upscaled layer as the result.")
        if is_produced(result) and result.metadata.get("napari_resolve", {}).get("kind") in ("ms_ssim_map", "ssim_map"):
            raise InputError(f"{result.name!r} is a quality map; choose the upscaled result layer instead.")
        require_registration(hres)
        for layer, what in ((result, "result"), (hres, "HRES")):
            check_plain_geometry(layer, what)
        # Before planning: a result outside the HRES is refused with a pointer to this outline.
        self.draw_hres_outline(hres)
        lres = self.lres_combo.value if self.baselines_check.value else None
        if lres is not None:
            if lres is hres or lres is result:
                raise InputError("Choose the LRES scan for the baselines (not the result or the HRES), or (none).")
            check_plain_geometry(lres, "LRES")
        plan = plan_quality(
            layer_data(result),
            voxel_um(result),
            origin_um(result),
            layer_data(hres),
            voxel_um(hres),
            origin_um(hres),
            lres=None if lres is None else layer_data(lres),
            lres_voxel_um=None if lres is None else voxel_um(lres),
            lres_origin_um=None if lres is None else origin_um(lres),
            with_ssim_map=bool(self.ssim_check.value),
            rl_iterations=int(self.rl_iterations.value),
            with_resolution=bool(self.resolution_check.value),
            error_map=self._error_map_data(result),
        )
        self._pending = {"result": result.name, "hres": hres.name, "lres": None if lres is None else lres.name}
        self.job.start(iter_quality(plan))

    def _error_map_data(self, result):
        """The error map the Preview and upscale step made with ``result`` (same grid), or None."""
        layer = error_map_of(self.viewer, result.name)
        if layer is None or layer.data.shape != layer_data(result).shape:
            return None
        return layer_data(layer)

    # -------------------------------------------------------------- results

    def _finished(self, res: QualityResult | None) -> None:
        if res is None or self._pending is None:
            return
        names, self._pending = self._pending, None
        stale = self._outline_layer(REGION_OUTLINE)  # a block of the previous check
        if stale is not None:
            stale.selected_data = set()
            stale.data = []
        self._outlines.pop(REGION_OUTLINE, None)
        self._show_maps(res, names)
        self.metrics = res.metrics
        self.regions = res.regions
        self._fill_metrics(res, names["result"])
        self._show_resolution(res, names["result"])
        self._fill_regions(res)
        self._write_summary(res)

    def map_names(self, result_name: str) -> dict[str, str]:
        """The names of the map layers of ``result_name``: ``{"ms_ssim_map": "MS-SSIM: <short>", ...}``.

        ``<short>`` is :func:`short_name` of the result; when maps of another result
        already hold those names, a number is added (``"MS-SSIM: foam (2)"``), so
        names stay unique and a check never overwrites another result's maps.
        """
        short = short_name(result_name)
        n = 1
        while True:
            tail = short if n == 1 else f"{short} ({n})"
            names = {"ms_ssim_map": f"MS-SSIM: {tail}", "ssim_map": f"SSIM: {tail}"}
            if not any(self._other_results_map(name, result_name) for name in names.values()):
                return names
            n += 1

    def _other_results_map(self, name: str, result_name: str) -> bool:
        if name not in self.viewer.layers:
            return False
        layer = self.viewer.layers[name]
        meta = layer.metadata.get("napari_resolve", {})
        ours = is_produced(layer) and meta.get("kind") in ("ms_ssim_map", "ssim_map")
        return ours and meta.get("result") != result_name

    def _show_maps(self, res: QualityResult, names: dict) -> None:
        ov = res.overlap
        meta = {"result": names["result"], "hres": names["hres"], "scales": res.scales}
        nd = len(ov.shape)
        layer_names = self.map_names(names["result"])
        for kind, data, limits, visible in (
            ("ms_ssim_map", res.ms_ssim_map, (0.5, 1.0), True),
            ("ssim_map", res.ssim_map, (0.0, 1.0), False),
        ):
            if data is None:
                continue
            name = layer_names[kind]
            existing, _ = _find_produced(self.viewer, name, "image")
            style = {}
            if existing is None or existing.ndim != nd:
                # Only a new layer gets the style; a user's later changes (opacity, visibility) are kept.
                style = {
                    "colormap": low_score_colormap(),
                    "blending": "translucent",
                    "opacity": 0.7,
                    "visible": visible,
                    "interpolation2d": "nearest",
                }
                if nd == 3:
                    style["rendering"] = "minip"  # in 3D show the lowest score along each ray
            layer = add_or_update(
                self.viewer,
                name,
                data,
                scale=ov.voxel_um,
                translate=ov.origin_um,
                metadata={**meta, "kind": kind},
                contrast_limits=limits,
                **style,
            )
            if kind == "ms_ssim_map":
                self.map_layer = layer
            else:
                self.ssim_layer = layer
        if res.error_map is not None:
            # The estimate beside the truth: the error map cropped to the same overlap as the MS-SSIM map.
            self.error_layer = show_error_map(
                self.viewer, res.error_map, Grid(ov.shape, ov.voxel_um, ov.origin_um), ov.origin_um,
                OVERLAP_PREFIX + names["result"], name=f"{ERROR_PREFIX}{OVERLAP_PREFIX}{short_name(names['result'])}",
            )

    def _row_tips(self, result_name: str) -> dict[str, str]:
        return {**_ROW_TIPS, UPSCALED: f"upscaled: the result, {result_name!r}"}

    def _fill_metrics(self, res: QualityResult, result_name: str) -> None:
        labels = self._row_tips(result_name)
        rows = [name for name in (UPSCALED, CUBIC, RL) if name in res.metrics]
        best = {}
        if len(rows) > 1:
            for key in COLUMNS:
                values = [res.metrics[r][key] for r in rows]
                best[key] = max(values) if _HIGHER_IS_BETTER[key] else min(values)
        cells = [[_fmt(key, res.metrics[r][key]) for key in COLUMNS] for r in rows]
        bold = [[key in best and res.metrics[r][key] == best[key] for key in COLUMNS] for r in rows]
        tips = [f"{labels[r]}; MSE {res.metrics[r]['mse']:.3g} (grey values²)" for r in rows]
        # As tall as its rows (results_table's fixed_height): it never scrolls and leaves no empty band.
        _fill(self.table, [ROW_LABELS[r] for r in rows], cells, bold, tips)

    def _show_resolution(self, res: QualityResult, result_name: str) -> None:
        """Fill the resolution table and draw its curves (or hide them when not measured)."""
        rows = [name for name in (UPSCALED, CUBIC, RL) if name in res.resolution]
        self.resolution = {r: resolution_row(res.resolution[r]) for r in rows}
        for part in (self.resolution_heading, self.resolution_table, self.resolution_plot):
            part.setVisible(bool(rows))
        if not rows:
            self.resolution_table.setRowCount(0)
            self.resolution_plot.figure.clear()
            return
        labels = self._row_tips(result_name)

        def sortable(value) -> float:
            # None: the FRC never dropped, finer than anything measured; inf: no agreement at all.
            return 0.0 if value is None else value

        def text(row: dict, key: str) -> str:
            value = row[key]
            if value is None:
                return f"< {row['finest_um']:.2f}"
            return _fmt(key, value)

        best = {}
        if len(rows) > 1:
            best = {key: min(sortable(self.resolution[r][key]) for r in rows) for key in RESOLUTION_COLUMNS}
        cells = [[text(self.resolution[r], key) for key in RESOLUTION_COLUMNS] for r in rows]
        bold = [[key in best and sortable(self.resolution[r][key]) == best[key] for key in RESOLUTION_COLUMNS]
                for r in rows]
        tips = [
            f"{labels[r]}; Gaussian σ {self.resolution[r]['sigma_um']:.2f} {MICRO}; FRC measured down to "
            f"{self.resolution[r]['finest_um']:.2f} {MICRO}"
            for r in rows
        ]
        _fill(self.resolution_table, [ROW_LABELS[r] for r in rows], cells, bold, tips)
        self._plot_resolution(res, rows)

    def _plot_resolution(self, res: QualityResult, rows: list[str]) -> None:
        canvas = self.resolution_plot
        ax_fit, ax_frc = canvas.axes(2, 1).flat
        short = ROW_LABELS
        for r in rows:
            fit, curve = res.resolution[r]["gaussian"], res.resolution[r]["frc"]
            color = _ROW_COLORS[r]
            ax_fit.plot(fit.sigmas_um, fit.mse, "-", color=color, linewidth=1.2, label=short[r])
            ax_fit.axvline(fit.sigma_um, color=color, linestyle=":", linewidth=1)
            ax_frc.plot(curve.frequencies_per_um, curve.correlation, "-", color=color, linewidth=1.2)
        first = res.resolution[rows[0]]["frc"]  # same grid for every row: same rings and thresholds
        ax_frc.plot(first.frequencies_per_um, first.thresholds["1/7"], "--", color="#bdbdbd", linewidth=0.8,
                    label="1/7")
        ax_frc.plot(first.frequencies_per_um, first.thresholds["half-bit"], ":", color="#bdbdbd", linewidth=1,
                    label="half-bit")
        ax_fit.set_xlabel("Gaussian σ applied to the HRES (µm)", fontsize=8)
        ax_fit.set_ylabel("MSE", fontsize=8)
        ax_fit.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax_fit.yaxis.get_offset_text().set_fontsize(7)
        ax_fit.yaxis.get_offset_text().set_color(ax_fit.yaxis.label.get_color())
        ax_frc.set_xlabel("spatial frequency (1/µm)", fontsize=8)
        ax_frc.set_ylabel("FRC" if first.ndim == 2 else "FSC", fontsize=8)
        ax_frc.set_xlim(0, float(first.frequencies_per_um[-1]))
        ax_frc.set_ylim(min(-0.1, min(float(res.resolution[r]["frc"].correlation.min()) for r in rows) - 0.05), 1.05)
        canvas.legend(ax_fit, loc="upper left")
        canvas.legend(ax_frc, loc="upper right")
        canvas.draw_idle()

    def _fill_regions(self, res: QualityResult) -> None:
        self._filling = True
        try:
            axes = "z, y, x" if len(res.overlap.shape) == 3 else "y, x"
            self.regions_table.setHorizontalHeaderLabels([f"centre {axes} (µm)", "MS-SSIM"])
            cells = [[format_values(r["centre_um"], ", ", 1), _fmt("ms_ssim", r["score"])] for r in res.regions]
            _fill(self.regions_table, [str(r["rank"]) for r in res.regions], cells)
            self.regions_table.clearSelection()
        finally:
            self._filling = False

    def _write_summary(self, res: QualityResult) -> None:
        ov = res.overlap
        how = "cropped exactly (result on the HRES grid)" if ov.in_phase else "the result resampled onto the HRES grid"
        text = (
            f"Overlap {' × '.join(map(str, ov.shape))} HRES voxels, {how}. "
            f"Mean of the MS-SSIM map {_fmt('ms_ssim', float(np.mean(res.ms_ssim_map)))}; "
            f"data range {res.data_range:.3g} (HRES)."
        )
        if res.psf_sigma_um is not None:
            text += f" Richardson-Lucy PSF σ {res.psf_sigma_um:.2f} {MICRO}."
        if res.resolution:
            text += " Effective resolution is measured against the HRES, whose own noise and blur limit it."
        elif self.baselines_check.value:
            text += " Baselines skipped: no LRES layer chosen."
        agree = res.error_agreement
        if agree:
            text += (
                f" Error map on the overlap: the true |error| is below it at {agree['coverage']:.0%} of voxels "
                f"(calibrated for 90 %, the HRES's own noise counts as error here); rank correlation with "
                f"|error| {agree['spearman_abs_error']:.2f}, with 1 − MS-SSIM {agree['spearman_ms_ssim_loss']:.2f}."
            )
        if res.notes:
            text += " Note: " + "; ".join(res.notes) + "."
        self.summary.value = text
        self.controls.show_message("Done: select a region below to inspect it; red on the map marks low scores.")

    # -------------------------------------------------------------- navigation

    def _selection_changed(self) -> None:
        if self._filling:
            return
        rows = self.regions_table.selectionModel().selectedRows()
        if rows:
            self.jump_to(rows[0].row())

    def jump_to(self, row: int) -> dict:
        """Move the viewer to the ``row``-th lowest region (0 = lowest); returns that region.

        The slider of every non-displayed layer axis goes to the region's centre,
        the camera is centred on it and, in 2D view, zoomed so that the block
        fills about a third of the canvas. Layers are not changed.
        """
        if not self.regions:
            raise InputError("There are no regions yet: run the quality check first.")
        if not 0 <= row < len(self.regions):
            raise InputError(f"Region {row + 1} does not exist; there are {len(self.regions)}.")
        region = self.regions[row]
        centre = np.asarray(region["centre_um"], float)
        go_to(self.viewer, centre, region["size_um"])
        half = np.asarray(region["size_um"], float) / 2
        self.draw_outline(REGION_OUTLINE, centre - half, centre + half)
        return region

    # -------------------------------------------------------------- outlines

    def draw_hres_outline(self, hres) -> napari.layers.Shapes:
        """Outline the HRES layer's voxels (their outer borders, world µm) in the layer "HRES outline"."""
        scale, origin = np.asarray(voxel_um(hres)), np.asarray(origin_um(hres))
        shape = np.asarray(layer_data(hres).shape[-len(scale):])
        return self.draw_outline(HRES_OUTLINE, origin - 0.5 * scale, origin + (shape - 0.5) * scale)

    def draw_outline(self, name: str, lo, hi) -> napari.layers.Shapes:
        """Draw (or move) the outline layer ``name`` around the world box ``lo``..``hi`` (µm, z, y, x or y, x).

        The layer is a Shapes layer the plugin owns (a user's layer of that name is left
        alone): in a 2D view one rectangle, shown on the slices that cross the box; in a
        3D view the box's twelve edges.
        """
        self._outlines[name] = (np.asarray(lo, float), np.asarray(hi, float))
        return self._render_outline(name)

    def _redraw_outlines(self, event=None) -> None:
        for name in list(self._outlines):
            if self._outline_layer(name) is not None:
                self._render_outline(name)

    def _outline_layer(self, name: str):
        for candidate in (name, name + SUFFIX):
            layer = self.viewer.layers[candidate] if candidate in self.viewer.layers else None
            if isinstance(layer, napari.layers.Shapes) and is_produced(layer):
                return layer
        return None

    def _render_outline(self, name: str) -> napari.layers.Shapes:
        lo, hi = self._outlines[name]
        nd = len(lo)
        dims = self.viewer.dims
        first = dims.ndim - nd  # the box's axes are the last world axes
        scale, translate = np.ones(nd), np.zeros(nd)

        def corners(a, b, c0, c1):  # the rectangle c0..c1 in the plane of axes a, b
            return [[c0[a], c0[b]], [c0[a], c1[b]], [c1[a], c1[b]], [c1[a], c0[b]]]

        if nd == 2:
            shapes, types = [np.asarray(corners(0, 1, lo, hi))], ["rectangle"]
        elif dims.ndisplay == 3:
            # The twelve edges: the rings at both ends of z and the four edges joining them.
            ring = corners(1, 2, lo, hi)
            ends = [np.array([[z, *c] for c in ring + ring[:1]]) for z in (lo[0], hi[0])]
            shapes = ends + [np.array([[lo[0], *c], [hi[0], *c]]) for c in ring]
            types = ["path", "path"] + ["line"] * 4
        else:
            # napari shows a shape in a 2D slice only where it lies in that slice. Along the
            # axis off the view the layer's one data slice is made as thick as the box (scale =
            # the box's length, data 0 at its middle), so one rectangle shows on every slice
            # inside the box and on no other.
            displayed = [d - first for d in dims.displayed if d >= first]
            off = [ax for ax in range(nd) if ax not in displayed]
            k = off[0] if len(off) == 1 else 0
            scale[k], translate[k] = max(hi[k] - lo[k], 1e-6), (lo[k] + hi[k]) / 2
            a, b = [ax for ax in range(nd) if ax != k]
            rect = np.insert(np.asarray(corners(a, b, lo, hi), float), k, 0.0, axis=1)
            shapes, types = [rect], ["rectangle"]
        extent = float(max(hi[-2:] - lo[-2:]))
        style = {
            "edge_width": (0.01 if name == HRES_OUTLINE else 0.03) * extent,
            "edge_color": _OUTLINE_COLORS[name],
            "face_color": [0.0, 0.0, 0.0, 0.0],
        }
        layer = self._outline_layer(name)
        if layer is not None and layer.ndim != nd:
            self.viewer.layers.remove(layer)
            layer = None
        if layer is None:
            free = name if name not in self.viewer.layers else name + SUFFIX
            # napari makes a new layer the selected one; keep the user's selection (and tools).
            selection = self.viewer.layers.selection
            selected, active = set(selection), selection.active
            layer = self.viewer.add_shapes(
                shapes,
                shape_type=types,
                name=free,
                scale=scale,
                translate=translate,
                metadata={KEY: {"produced": True, "kind": "outline"}},
                **style,
            )
            selection.clear()
            selection.update(selected)
            selection.active = active
        else:
            layer.selected_data = set()
            layer.data = []
            layer.scale, layer.translate = scale, translate
            layer.add(shapes, shape_type=types, **style)
        return layer

    def _camera(self):
        return camera(self.viewer)
