"""Preview and upscale: run the session's model on one tile, or on a whole region to a file.

*Preview tile* upscales a small region around where the user looks (the camera
centre, in the current slice; or the centre of a drawn rectangle) in memory and
shows it as the layer "upscaled preview", exactly over the LRES at the HRES voxel
size; repeated previews update that one layer. The slider stays where it was; the
camera moves only when the tile is not fully in view (and zooms out only when the
tile is larger than the canvas).

With *Error map* on (models trained on a pair carry its calibration), both also
compute the calibrated error map (:mod:`napari_resolve.learn.uncertainty`) and
show it over the result as the layer "error map: <result>" (transparent where the
bound is small, red where it is largest, contrast limits in grey values from
the map's median up); the
region upscale writes it beside its output as ``<name>_error.tif|zarr``. The
table below lists the blocks where the map is highest; selecting one goes there.

*Upscale region* runs a rectangle (or the whole LRES) and an LRES z range to an
OME-TIFF or zarr file, tile by tile with progress and Stop, then opens the file
lazily as the layer "upscaled: <file name>". The core writes under a temporary
name and renames at the end, so a stopped or failed run leaves no file.

Both are planned on the main thread with
:func:`napari_resolve.learn.inference.plan_predict`, which refuses bad input (a
model for another voxel size, an existing file...) before any thread starts; the
widget only turns its fields into the plan's arguments and checks nothing itself.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import CheckBox, Container, FileEdit, Label, PushButton, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_resolve._text import MICRO, format_bytes, format_rate, format_um
from napari_resolve.errors import InputError
from napari_resolve.io import open_lazily
from napari_resolve.learn.calibrate import CALIBRATION_SAMPLES, is_generative
from napari_resolve.learn.config import MAX_STEPS
from napari_resolve.learn.inference import OUTPUT_SUFFIXES, check_model_fits, iter_predict, output_grid, plan_predict
from napari_resolve.learn.predict_checks import MAX_SAMPLES

from ._error_maps import RegionList, show_error_map
from ._forms import JobControls, format_shape, heading, layer_combo, select_layer
from ._layers import add_or_update, check_plain_geometry, layer_data, shape_box_um, spatial_ndim, world_to_index
from ._session import NO_MODEL, session_for
from ._workers import Job, error_message

PREVIEW_NAME = "upscaled preview"
#: The preview's per-voxel standard deviation of a diffusion model's samples.
STD_NAME = "sample std: upscaled preview"
RESULT_PREFIX = "upscaled: "

#: How the core's parameters read in this widget's messages (its field labels).
LABELS = {
    "tile": "Tile (HRES px)",
    "out_path": "Output",
    "overwrite": "overwrite an existing file",
    "lres_voxel_um": "LRES voxel",
    "roi": "Region",
    "samples": "samples",
    "steps": "sampler steps",
}


def error_map_path(path: Path) -> Path:
    """Where the region upscale writes its error map: ``<name>_error`` beside the output, same format."""
    suffix = path.suffix
    return path.with_name(path.name[: len(path.name) - len(suffix)] + "_error" + suffix)


def _um(values) -> str:
    return format_um(values, sep=", ", unit=MICRO)


def _breakable(path: str) -> str:
    """``path`` with a zero-width space after each separator, so a word-wrapped label can break a long path."""
    return re.sub(r"([/\\])", "\\1\u200b", path)


class UpscaleWidget(QWidget):
    """Preview one upscaled tile in place, or upscale a region to a file.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer; its session's model (see ``_session.session_for``) is used.

    Attributes
    ----------
    preview_job, upscale_job : Job
        The running preview (in memory) and region upscale (to a file).
    preview_controls, upscale_controls : JobControls
        Their Run/Stop buttons, progress bars and status lines.
    model_label : magicgui Label
        The current model, updated when the session's model changes.
    lres_combo, region_combo : ComboBox
        The LRES image layer and an optional Shapes layer with a rectangle.
    tile_size, tile_depth : SpinBox
        Preview tile in HRES voxels (in-plane) and HRES slices (3D only).
    z_first, z_last : SpinBox
        LRES slices (inclusive) of the region to upscale (3D only).
    region_label : magicgui Label
        Size of the region in LRES voxels and of the output in HRES voxels and GiB.
    output : FileEdit
        The output file (.tif OME-TIFF or .zarr).
    output_label : magicgui Label
        The output's file name and folder in full, word-wrapped (the field is too narrow for a path).
    overwrite : CheckBox
        Replace an existing output file.
    error_check, tta_check : CheckBox
        Compute the calibrated error map with the result; add the spread of the flipped predictions to it.
    regions : RegionList
        The least trustworthy blocks of the last error map; selecting one moves the view there.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.preview_job = Job("Preview", LABELS)
        self.upscale_job = Job("Upscale", LABELS)
        self._pending: dict = {}  # what the running upscale writes, for its finished handler
        self._preview_style: dict = {}
        self._watched_shapes = None
        self._generative = False  # the session's model is a diffusion model (samples instead of flips)

        # --- model
        self.model_label = Label(value="")
        self.model_label.native.setWordWrap(True)
        self.model_label.tooltip = "The model used for preview and upscaling: trained in the Training step or loaded"
        self.load_button = PushButton(text="Load model…", tooltip="Load a model file (.pt) saved by napari-resolve")
        self.load_button.changed.connect(self._load_clicked)

        # --- input
        self.lres_combo = layer_combo(
            napari_viewer, napari.layers.Image, "LRES", tooltip="The low-resolution scan to upscale"
        )
        self.lres_voxel_label = Label(value="", label=LABELS["lres_voxel_um"])
        self.lres_voxel_label.tooltip = "The LRES layer's scale (µm); the model must have been trained at this size"
        self.region_combo = layer_combo(
            napari_viewer,
            napari.layers.Shapes,
            LABELS["roi"],
            optional=True,
            tooltip=(
                "A Shapes layer with a rectangle (the selected or last one). (none): the preview is centred on the "
                "viewer's current position and the upscale covers the whole LRES in-plane."
            ),
        )

        # --- preview
        self.tile_size = SpinBox(
            value=128,
            min=16,
            max=1024,
            step=16,
            label=LABELS["tile"],
            tooltip="Preview tile size in y and x, in HRES voxels",
        )
        self.tile_depth = SpinBox(
            value=16,
            min=1,
            max=256,
            label="Depth (HRES sl.)",
            tooltip="Preview tile depth in HRES slices, centred on the current z slice (3D only)",
        )

        # --- upscale region
        self.z_first = SpinBox(
            value=0, min=0, max=0, label="z from (LRES)", tooltip="First LRES slice of the region to upscale (3D only)"
        )
        self.z_last = SpinBox(
            value=0,
            min=0,
            max=0,
            label="z to (LRES)",
            tooltip="Last LRES slice of the region to upscale, included (3D only)",
        )
        self.region_label = Label(value="")
        self.region_label.native.setWordWrap(True)
        self.region_label.tooltip = "Size of the region (LRES voxels) and of the upscaled output (HRES voxels, float32)"
        self.output = FileEdit(
            mode="w",
            filter=" ".join("*" + suffix for suffix in OUTPUT_SUFFIXES),
            label=LABELS["out_path"],
            tooltip="File to write: .tif (OME-TIFF) or .zarr; written under a temporary name, renamed when complete",
        )
        # At the default dock width the field shows about 20 characters of the path: the label
        # below it shows the whole path, wrapped at its separators.
        self.output_label = Label(value="")
        self.output_label.native.setWordWrap(True)
        self.output_label.tooltip = "The file the upscale writes"
        self.overwrite = CheckBox(
            value=False,
            text=LABELS["overwrite"],
            tooltip="Without it, an existing output file is left untouched and nothing runs",
        )

        self.error_check = CheckBox(
            value=True,
            text="Error map (where to trust the result)",
            tooltip="Also compute a map of the error to expect, without an HRES: at each voxel a grey value the "
            "true |error| stays below at 90 % of voxels, calibrated at the end of training on the pair's "
            "validation block (data consistency with the LRES, about 1.1x the time)",
        )
        self.tta_check = CheckBox(
            value=False,
            text="Add flipped predictions (8× slower)",
            tooltip="Predict the 8 in-plane flips and rotations too: their spread is what lets the map rank "
            "the regions (docs/learning.md); the result becomes their mean",
        )
        # A diffusion model's sampling: its samples' spread replaces the flipped predictions'.
        self.samples = SpinBox(
            label="samples", min=1, max=MAX_SAMPLES, value=1,
            tooltip="Samples drawn per voxel: the result is their mean; from 2 on, their standard deviation "
            "shows as a 'sample std' layer and feeds the error map (the map is calibrated for "
            f"{CALIBRATION_SAMPLES}); each sample costs the sampler steps again",
        )
        self.steps = SpinBox(
            label="sampler steps", min=1, max=MAX_STEPS, value=8,
            tooltip="Deterministic (DDIM) denoising steps per sample, one network pass each; the model's own "
            "number is the default. Fewer are faster and blurrier",
        )
        self.sampling_form = Container(widgets=[self.samples, self.steps])
        self.error_check.changed.connect(self._error_toggled)
        self.regions_heading = heading("Least trustworthy regions")
        self.regions = RegionList(napari_viewer)
        self.regions_heading.visible = False
        self.regions.setVisible(False)

        inputs = Container(widgets=[self.lres_combo, self.lres_voxel_label, self.region_combo])
        preview_form = Container(widgets=[self.tile_size, self.tile_depth])
        upscale_form = Container(widgets=[self.z_first, self.z_last, self.output])
        self.preview_controls = JobControls(self.preview_job, "Preview tile", self._start_preview)
        self.upscale_controls = JobControls(self.upscale_job, "Upscale region", self._start_upscale)
        self.preview_controls.run_button.setToolTip("Upscale one tile at the current position and show it in place")
        self.upscale_controls.run_button.setToolTip("Upscale the region to the output file, then open it")

        layout = QVBoxLayout(self)
        for part in (
            # The word-wrapped labels sit in the outer layout: inside a Container their height is clipped.
            heading("Model and input"),
            self.model_label,
            self.load_button,
            inputs,
            self.error_check,
            self.tta_check,
            self.sampling_form,
            heading("Preview"),
            preview_form,
            self.preview_controls,
            heading("Upscale region"),
            upscale_form,
            self.output_label,
            self.region_label,
            self.overwrite,
            self.upscale_controls,
            self.regions_heading,
            self.regions,
        ):
            layout.addWidget(part if isinstance(part, QWidget) else part.native)
        layout.addStretch(1)

        self.session.model_changed.connect(self._model_changed)
        self.lres_combo.changed.connect(self._lres_changed)
        self.region_combo.changed.connect(self._region_changed)
        self.z_first.changed.connect(self._update_region_label)
        self.z_last.changed.connect(self._update_region_label)
        self.output.changed.connect(self._output_changed)
        self.preview_job.finished.connect(self._preview_finished)
        self.upscale_job.finished.connect(self._upscale_finished)

        select_layer(self.lres_combo, "LRES")
        self._model_changed()
        self._lres_changed()
        self._region_changed()
        self._output_changed()

    # ------------------------------------------------------------------ model

    def _model_changed(self, *_args) -> None:
        try:
            self.model_label.value = self.session.describe_model()
        except RuntimeError:  # the Qt side of this widget is gone; the session outlives it
            self.session.model_changed.disconnect(self._model_changed)
            return
        no_model = None if self.session.model is not None else NO_MODEL
        for controls in (self.preview_controls, self.upscale_controls):
            controls.block(no_model)
        calibrated = self.session.model is not None and bool((self.session.model.extra or {}).get("error_map"))
        self.error_check.enabled = calibrated
        self.error_check.value = calibrated
        self.error_check.tooltip = self.error_check.tooltip.split("\n⚠")[0] + (
            "" if calibrated or self.session.model is None else
            "\n⚠ This model has no calibration: it was trained on synthetic pairs, stopped by hand, or made "
            "by a napari-resolve without error maps. Train it on a registered pair to get one."
        )
        generative = self._generative = self.session.model is not None and is_generative(self.session.model)
        self.sampling_form.visible = generative
        self.tta_check.visible = not generative
        if generative:
            self.steps.value = int(self.session.model.config.get("steps", self.steps.value))
        self._error_toggled()
        self._update_region_label()

    def _error_toggled(self, *_args) -> None:
        self.tta_check.enabled = bool(self.error_check.value)
        self._output_changed()

    def _error_options(self) -> dict:
        """``plan_predict``'s error-map and sampling arguments from the form."""
        on = bool(self.error_check.value and self.error_check.enabled)
        if self._generative:
            return {"uncertainty": on, "samples": int(self.samples.value), "steps": int(self.steps.value)}
        return {"uncertainty": on, "tta": on and bool(self.tta_check.value)}

    def load_model(self, path: str | Path):
        """Load a model file and make it the session's model.

        Parameters
        ----------
        path : path-like
            A ``.pt`` file written by napari-resolve.

        Returns
        -------
        Checkpoint

        Raises
        ------
        FileFormatError
            If the file is missing or not a napari-resolve model.
        """
        return self.session.load_model(path)

    def _load_clicked(self, *_args) -> None:
        from napari.utils.notifications import show_error
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Load a napari-resolve model", "", "Model (*.pt);;All files (*)")
        if not path:
            return
        try:
            self.load_model(path)
        except Exception as exc:  # a bad file is a message, not a traceback
            show_error(f"Load model: {error_message(exc)}")

    # ------------------------------------------------------------------ inputs

    def _lres(self):
        """The LRES layer, its array (lazy if it is), voxel size and dimensionality, checked."""
        layer = self.lres_combo.value
        if layer is None:
            raise InputError("Choose the LRES image layer to upscale (open one, or File ▸ Open Sample).")
        ndim = spatial_ndim(layer)
        check_plain_geometry(layer, "LRES")
        return layer, layer_data(layer), tuple(float(s) for s in layer.scale), ndim

    def _lres_changed(self, *_args) -> None:
        layer = self.lres_combo.value
        three_d = layer is not None and layer.ndim == 3
        self.tile_depth.visible = three_d
        self.z_first.visible = self.z_last.visible = three_d
        if layer is not None:
            if three_d:
                depth = int(layer_data(layer).shape[0])
                self.z_first.max = self.z_last.max = depth - 1
                self.z_first.value, self.z_last.value = 0, depth - 1
        self._update_region_label()

    def _region_changed(self, *_args) -> None:
        # Follow the rectangles of the chosen Shapes layer so the size shown stays right.
        if self._watched_shapes is not None:
            try:
                self._watched_shapes.events.data.disconnect(self._update_region_label)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._watched_shapes = self.region_combo.value
        if self._watched_shapes is not None:
            self._watched_shapes.events.data.connect(self._update_region_label)
        self._update_region_label()

    def _camera(self):
        # napari 0.9 moved the camera to viewer.scene (viewer.camera is deprecated there).
        scene = getattr(self.viewer, "scene", None)
        return scene.camera if scene is not None else self.viewer.camera

    def _view_point(self) -> np.ndarray:
        """Where the user looks (world um, every viewer axis): the sliders, the displayed axes at the camera centre.

        The slider position alone does not follow panning or zooming; the camera centre does.
        """
        dims = self.viewer.dims
        point = np.asarray(dims.point, dtype=float).copy()
        displayed = list(dims.displayed)
        point[displayed] = np.asarray(self._camera().center, dtype=float)[-len(displayed) :]
        return point

    def _centre_world(self, ndim: int) -> np.ndarray:
        """Where the preview goes (um): the view's centre in the current slice, in-plane the rectangle's centre."""
        centre = self._view_point()[-ndim:]
        shapes = self.region_combo.value
        if shapes is not None:
            lo, hi = shape_box_um(shapes)
            centre[-2:] = (lo[-2:] + hi[-2:]) / 2
        return centre

    def preview_region(self) -> tuple[slice, ...]:
        """LRES voxels (slices) covering the preview tile around the view's centre, clipped to the LRES.

        Raises
        ------
        InputError
            If there is no model or LRES, or the position lies outside the LRES.
        """
        ckpt = self.session.require_model()
        layer, data, lv, ndim = self._lres()
        check_model_fits(ckpt, data.shape, lv)  # the tile's extent below needs the model's HRES voxel
        hv = tuple(ckpt.hres_voxel_um)
        shape = tuple(int(n) for n in data.shape)
        centre = world_to_index(layer, self._centre_world(ndim))
        if np.any(centre < -0.5) or np.any(centre > np.asarray(shape) - 0.5):
            raise InputError(
                f"The preview position ({_um(np.round(self._centre_world(ndim), 1))}) is outside the LRES "
                f"{layer.name!r}. Pan the view (or move the rectangle) onto the LRES."
            )
        sizes = ([self.tile_depth.value] if ndim == 3 else []) + [self.tile_size.value] * 2
        roi = []
        for c, size, h, lvox, n in zip(centre, sizes, hv, lv, shape):
            # Enough LRES voxels to hold the tile's physical extent, centred on the position.
            count = max(1, math.ceil(size * h / lvox - 1e-9))
            start = math.floor(c - (count - 1) / 2 + 0.5)
            roi.append(slice(max(start, 0), min(start + count, n)))
        return tuple(roi)

    def upscale_region(self) -> tuple[slice, ...]:
        """LRES voxels (slices) to upscale: the rectangle's box (or all) in-plane, the z range in depth.

        Raises
        ------
        InputError
            If there is no LRES, the rectangle misses the LRES or the z range is empty.
        """
        layer, data, _lv, ndim = self._lres()
        shape = tuple(int(n) for n in data.shape)
        roi = [slice(0, n) for n in shape]
        shapes = self.region_combo.value
        if shapes is not None:
            lo, hi = shape_box_um(shapes)
            # Use the LRES voxels whose centres lie inside the rectangle.
            lo_w, hi_w = np.zeros(ndim), np.zeros(ndim)
            lo_w[-2:], hi_w[-2:] = lo[-2:], hi[-2:]
            lo_i, hi_i = world_to_index(layer, lo_w)[-2:], world_to_index(layer, hi_w)[-2:]
            for k, (a, b) in enumerate(zip(lo_i, hi_i)):
                axis, n = ndim - 2 + k, shape[ndim - 2 + k]
                start, stop = max(math.ceil(a - 1e-6), 0), min(math.floor(b + 1e-6) + 1, n)
                if stop <= start:
                    raise InputError(
                        f"The rectangle in {shapes.name!r} does not cover any LRES voxel centre. "
                        "Draw it over the LRES, at least one LRES voxel wide."
                    )
                roi[axis] = slice(start, stop)
        if ndim == 3:
            first, last = int(self.z_first.value), int(self.z_last.value)
            if last < first or last >= shape[0]:
                raise InputError(f"The z range {first}–{last} is empty or beyond the LRES (0–{shape[0] - 1}).")
            roi[0] = slice(first, last + 1)
        return tuple(roi)

    def _update_region_label(self, *_args) -> None:
        """Refresh the LRES voxel size and the region/output sizes (cheap: no data are read)."""
        layer = self.lres_combo.value
        try:
            self.lres_voxel_label.value = "—" if layer is None else _um(layer.scale)
            text = self._region_text()
        except InputError as exc:
            text = error_message(exc, LABELS)
        except RuntimeError:  # widget deleted while a layer event still arrives
            return
        self.region_label.value = text

    def _region_text(self) -> str:
        if self.lres_combo.value is None:
            return "Choose an LRES layer."
        _layer, data, lv, _ndim = self._lres()
        roi = self.upscale_region()
        text = f"Region: {format_shape(s.stop - s.start for s in roi)} LRES voxels"
        ckpt = self.session.model
        if ckpt is None:
            return text + " (load or train a model to see the output size)."
        try:
            grid = output_grid(ckpt, data.shape, lv, roi)  # the core's checks, without building the network
        except InputError as exc:
            return f"{text}.\n⚠ {error_message(exc, LABELS)}"
        size = format_bytes(int(np.prod(grid.shape)) * 4)
        return f"{text} → output {format_shape(grid.shape)} HRES voxels, {size}."

    # ------------------------------------------------------------------ preview

    def preview(self) -> bool:
        """Upscale one tile at the view's centre (what "Preview tile" does); False if refused."""
        return self.preview_controls.run()

    def _start_preview(self) -> None:
        ckpt = self.session.require_model()
        roi = self.preview_region()
        layer, data, lv, _ndim = self._lres()
        self._preview_style = self._style_of(layer)
        self._preview_style["shift"] = tuple(float(t) for t in layer.translate)
        # One tile in-plane (a multiple of any downsampling factor, larger than the region's output).
        tile = tuple(
            64 * math.ceil((s.stop - s.start) * v / h / 64 + 0.1) for s, v, h in zip(roi, lv, ckpt.hres_voxel_um)
        )
        tile = tile if len(tile) == 3 else (16, *tile)
        # Refuses here, on the main thread.
        options = self._error_options()
        # A diffusion model's sample spread is shown too (a preview tile's signals fit in memory).
        spread = options["uncertainty"] and options.get("samples", 1) > 1
        plan = plan_predict(ckpt, data, lv, roi=roi, tile=tile, keep_signals=spread, **options)
        self.preview_job.start(iter_predict(plan))

    @staticmethod
    def _style_of(layer) -> dict:
        return {"colormap": layer.colormap, "contrast_limits": tuple(layer.contrast_limits)}

    def _keep_view(self):
        """Remember the dims position and active layer; the returned function puts them back."""
        point = tuple(self.viewer.dims.point)
        active = self.viewer.layers.selection.active

        def restore() -> None:
            if len(self.viewer.dims.point) == len(point):
                self.viewer.dims.point = point
            if active is not None and active in self.viewer.layers:
                self.viewer.layers.selection.active = active

        return restore

    def _bring_into_view(self, layer) -> None:
        """Centre the camera on ``layer`` if part of it is off the canvas; zoom out only if it is larger (2D view)."""
        dims = self.viewer.dims
        if dims.ndisplay != 2:
            return  # in 3D view the tile lies at the camera centre already; the angles are the user's
        try:
            canvas = np.asarray(self.viewer.canvas.viewbox_size(self.viewer.layers), dtype=float)  # (h, w) px
        except AttributeError:  # napari < 0.9 has no public canvas size: leave the camera alone
            return
        offset = dims.ndim - layer.ndim  # the layer's axes are the last world axes
        axes = [d - offset for d in dims.displayed]
        if min(axes) < 0 or np.any(canvas <= 0):
            return
        scale, translate = np.asarray(layer.scale, float)[axes], np.asarray(layer.translate, float)[axes]
        shape = np.asarray(layer.data.shape, float)[axes]
        lo, hi = translate - scale / 2, translate + (shape - 0.5) * scale  # voxel edges (um)
        camera = self._camera()
        centre = np.asarray(camera.center, float)[-2:]
        half = canvas / 2 / camera.zoom  # half the visible field (um); zoom is canvas px per um
        if np.all(lo >= centre - half - 1e-6) and np.all(hi <= centre + half + 1e-6):
            return
        if np.any(hi - lo > 2 * half):
            camera.zoom = 0.95 * float(np.min(canvas / (hi - lo)))
        camera.center = (float(camera.center[0]), *((lo + hi) / 2))

    def _shown_translate(self, grid_origin, shift) -> tuple[float, ...]:
        # The core's origin is in the LRES frame (LRES voxel 0 at 0); follow the LRES layer if it was moved.
        return tuple(o + s for o, s in zip(grid_origin, shift[-len(grid_origin) :]))

    def _preview_finished(self, result) -> None:
        if result is None:
            return
        style = dict(self._preview_style)
        shift = style.pop("shift")
        restore = self._keep_view()
        layer = add_or_update(
            self.viewer,
            PREVIEW_NAME,
            result.data,
            scale=result.grid.voxel_um,
            translate=self._shown_translate(result.grid.origin_um, shift),
            metadata={"grid": result.grid.to_dict()},
            **style,
        )
        if result.uncertainty is not None:
            show_error_map(self.viewer, result.uncertainty, result.grid, layer.translate, PREVIEW_NAME)
            self._list_regions(result.uncertainty, layer.translate, result.grid.voxel_um)
        if result.signals and "spread" in result.signals and self._generative:
            show_error_map(self.viewer, result.signals["spread"].reshape(result.data.shape), result.grid,
                           layer.translate, PREVIEW_NAME, name=STD_NAME)
        restore()
        self._bring_into_view(layer)
        self.preview_controls.show_message(
            f"Preview: {format_shape(result.grid.shape)} HRES voxels in {result.seconds:.1f} s "
            f"({result.tiles} tile{'s' if result.tiles != 1 else ''}, {result.device})." + self._map_note(result)
        )

    def _list_regions(self, data, translate, voxel) -> None:
        self.regions.show_map(data, tuple(float(t) for t in translate), voxel)
        self.regions_heading.visible = True
        self.regions.setVisible(True)

    @staticmethod
    def _map_note(result) -> str:
        if result.coverage is None:
            return ""
        return (f" Error map: the true |error| stayed below it at {result.coverage:.0%} of the validation "
                "block's voxels (calibrated for 90 %).")

    # ------------------------------------------------------------------ upscale

    def upscale(self, path: str | Path, overwrite: bool = False) -> bool:
        """Upscale the region to ``path`` (what "Upscale region" does); False if refused."""
        self.output.value = Path(path)
        self.overwrite.value = bool(overwrite)
        return self.upscale_controls.run()

    def _output_text(self) -> str:
        return str(self.output.line_edit.value or "").strip()

    def _output_path(self) -> Path:
        """The Output field as a file path (its format, folder and existence are the plan's to check).

        An empty field, or one that names a folder (after its file name was deleted), is not a file to
        write: the plan would read the folder's name as the file's.
        """
        text = self._output_text()
        if text in ("", "."):
            raise InputError("Choose an output file (.tif for OME-TIFF, or .zarr).")
        path = Path(text).expanduser()
        if path.suffix.lower() != ".zarr" and (text.endswith(("/", os.sep)) or path.is_dir()):
            raise InputError(
                f"The {{out_path}} field names the folder {str(path)!r}, not a file: add a file name "
                "ending in .tif (OME-TIFF) or .zarr.",
                parameters=("out_path",),
            )
        return path

    def _output_changed(self, *_args) -> None:
        """Show the output's file name and folder in full (the field shows only part of a long path)."""
        try:
            path = self._output_path()
        except InputError as exc:
            text = error_message(exc, LABELS)
        except RuntimeError:  # widget deleted
            return
        else:
            folder = str(path.parent.resolve() if not path.is_absolute() else path.parent)
            also = f" and {error_map_path(path).name}" if self._error_options()["uncertainty"] else ""
            text = f"Writes {path.name}{also}\nin {_breakable(folder)}"
        self.output_label.value = text
        self.output_label.tooltip = self._output_text() or "No output file chosen"

    def _start_upscale(self) -> None:
        ckpt = self.session.require_model()
        layer, data, lv, _ndim = self._lres()
        roi = self.upscale_region()
        # Every refusal (model, voxel size, output file...) happens here, before the thread starts.
        path = self._output_path()
        options = self._error_options()
        plan = plan_predict(ckpt, data, lv, roi=roi, out_path=path, overwrite=bool(self.overwrite.value),
                            uncertainty_path=error_map_path(path) if options.pop("uncertainty") else None,
                            **options)
        self._update_region_label()
        self._pending = {**self._style_of(layer), "shift": tuple(float(t) for t in layer.translate)}
        self.upscale_job.start(iter_predict(plan))

    def _upscale_finished(self, result) -> None:
        if result is None:
            return
        from napari.utils.notifications import show_error

        style = dict(self._pending)
        shift = style.pop("shift")
        grid, path = result.grid, Path(result.path)
        voxels = int(np.prod(grid.shape))
        summary = (
            f"Wrote {path.name}: {format_shape(grid.shape)} voxels ({format_bytes(voxels * 4)}), "
            f"{result.tiles} tiles in {result.seconds:.1f} s ({format_rate(voxels / max(result.seconds, 1e-9))}, "
            f"{result.device})."
        )
        try:
            data = open_lazily(path)
        except Exception as exc:  # the file is written; only showing it failed
            show_error(f"Upscale: {error_message(exc)}")
            self.upscale_controls.show_message(f"{summary} It could not be opened: {error_message(exc)}")
            return
        restore = self._keep_view()
        translate = self._shown_translate(grid.origin_um, shift)
        add_or_update(
            self.viewer,
            RESULT_PREFIX + path.name,
            data,
            scale=grid.voxel_um,
            translate=translate,
            metadata={"grid": grid.to_dict(), "source": str(path)},
            **style,
        )
        if result.uncertainty_path is not None:
            try:
                error_map = open_lazily(result.uncertainty_path)
            except Exception as exc:
                summary += f" The error map could not be opened: {error_message(exc)}"
            else:
                show_error_map(self.viewer, error_map, grid, translate, RESULT_PREFIX + path.name)
                self._list_regions(error_map, translate, grid.voxel_um)
                summary += f" Error map: {Path(result.uncertainty_path).name}." + self._map_note(result)
        restore()
        self.upscale_controls.show_message(summary)
