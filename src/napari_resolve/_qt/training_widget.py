"""The Training step: learn the LRES -> HRES mapping on the registered overlap.

Without an LRES scan ("training data: synthetic from HRES only") the pairs are
made from the HRES alone (local mean, random blur and noise, see
:mod:`napari_resolve.learn.synthetic`) and the model is for an LRES of the HRES
voxel size times the ratio.

The form picks the LRES and the registered HRES, a training ROI (a rectangle
drawn in a Shapes layer over the HRES, plus a z range in HRES slices) and the
training settings. Start plans the job on the main thread
(:func:`napari_resolve.learn.training.plan_train` or ``plan_train_synthetic``:
every refusal shows at once) and runs :func:`~napari_resolve.learn.training.iter_train`
of the plan in a thread worker (:class:`~napari_resolve._qt._workers.Job`); every iteration's
record feeds the progress bar, the loss/PSNR plot and, at validation points,
the preview slice. The best model becomes the viewer's session model (used by
the prediction and quality steps) when training ends or is stopped, and can be
saved to / loaded from a model file.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, PushButton, SpinBox
from qtpy.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from napari_resolve.errors import InputError, ResolveError
from napari_resolve.learn.config import DEFAULTS, HELP

from ._forms import JobControls, format_duration, format_um, heading, layer_combo, narrow, select_layer
from ._layers import (
    check_plain_geometry,
    layer_data,
    shape_box_um,
    spatial_ndim,
    voxel_um,
    world_to_index,
)
from ._plots import FOREGROUND, PlotCanvas
from ._session import registration_of, require_registration, session_for
from ._workers import Job, as_shown

#: Name of the Shapes layer made by "Add ROI layer".
ROI_LAYER = "training ROI"
#: The "training data" choices: a registered pair, or synthetic pairs from the HRES alone.
PAIR, SYNTHETIC = "pair", "synthetic"
#: Seconds between two redraws of the loss plot (validation points and the end always redraw).
_REDRAW_S = 0.25

#: Core parameter -> the label of its field, for error messages.
_LABELS = {
    "model": "model",
    "model_config": "model settings",
    "iterations": "iterations",
    "patience": "stop after (checks)",
    "patch_size": "patch (voxels)",
    "batch_size": "batch size",
    "learning_rate": "learning rate",
    "device": "device",
    "resume": "continue from current model",
    "ratio": "ratio (LRES/HRES)",
    "blur": "blur σ (LRES vox)",
    "gaussian_noise": "Gaussian noise σ",
    "poisson": "Poisson photons",
    "speckle": "speckle σ",
}

LOSS_COLOUR = "#4aa3ff"
PSNR_COLOUR = "#ffa64a"
#: The discriminator's loss of adversarially trained models (pix2pix).
DISC_COLOUR = "#b07cff"


def _tip(name: str) -> str:
    """A field's tooltip: the setting's one line of :data:`napari_resolve.learn.config.HELP`."""
    text = HELP[name]
    return text[0].upper() + text[1:]


def _device_choices() -> list[tuple[str, str]]:
    """Device combo items: "auto (what it finds)", "cpu", and the GPUs present."""
    import torch

    from napari_resolve.devices import resolve_device

    auto = resolve_device("auto")
    if auto.type == "cuda":
        found = f"GPU: {torch.cuda.get_device_name(auto)}"
    elif auto.type == "mps":
        found = "Apple GPU (MPS)"
    else:
        found = "CPU"
    items = [(f"auto ({found})", "auto"), ("cpu", "cpu")]
    if torch.cuda.is_available():
        items.append(("cuda", "cuda"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        items.append(("mps", "mps"))
    return items


def _round_index(value: float) -> int:
    """Nearest integer, halves up (a rectangle edge on a voxel border includes the voxel after it).

    The tolerance absorbs the float error of a border going world -> index and
    back (napari keeps shape vertices in float32).
    """
    return int(math.floor(value + 0.5 + 1e-3))


class TrainingWidget(QWidget):
    """Dock widget that trains a model on the registered LRES/HRES overlap.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer (injected by napari).
    parent : QWidget, optional

    Attributes
    ----------
    job : Job
        The training job ("Training").
    controls : JobControls
        Start/Stop buttons, progress bar (with time left) and status line.
    plot : PlotCanvas
        Training loss (log scale) and validation PSNR (twin axis) per iteration.
    preview : PlotCanvas
        The validation slice of the latest validation (and the matching HRES slice).
    history : list of tuple
        ``(iteration, loss, val_psnr or None)`` of the current or last run.
    lres_combo, hres_combo, roi_combo : ComboBox
        Layer pickers (the ROI picker holds Shapes layers, "(none)" = whole overlap).
    z_first, z_last : SpinBox
        Training z range in HRES slices, both included (3D only).
    model_combo, iterations, patch_size, batch_size, learning_rate, device_combo, resume_check
        The training settings.
    data_combo : ComboBox
        Training data: ``"pair"`` (registered LRES/HRES) or ``"synthetic"`` (from the HRES only).
    ratio, blur, gaussian_noise, poisson, speckle
        The synthetic degradation (shown in synthetic mode): LRES/HRES ratio, and
        ``LO:HI`` ranges of the blur sigma (LRES voxels), Gaussian and speckle noise
        sigma (share of the HRES grey range) and Poisson photons ("off": none).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.job = Job("Training", labels=_LABELS)
        self.history: list[tuple[int, float, float | None, float | None]] = []  # iteration, loss, PSNR, disc.
        self.summary_text = ""
        self._last_best = None  # the best Checkpoint seen in the records (kept when stopped)
        self._last_record = None
        self._run: dict = {}  # what the running job was started with
        self._last_draw = 0.0
        self._watched_shapes = None
        self._watched_hres = None

        from napari_resolve.models import DEFAULT_MODEL, model_names

        # --- data -----------------------------------------------------------
        self.lres_combo = layer_combo(
            napari_viewer, napari.layers.Image, "LRES", tooltip="The low-resolution scan of the whole field (input)"
        )
        self.hres_combo = layer_combo(
            napari_viewer,
            napari.layers.Image,
            "HRES",
            tooltip="The high-resolution scan of the sub-volume (target); register it in the previous step first",
        )
        select_layer(self.lres_combo, "LRES")
        select_layer(self.hres_combo, "HRES")
        self.reg_label = Label(value="")
        self.reg_label.native.setWordWrap(True)

        # --- synthetic pairs (no LRES scan) ----------------------------------
        from napari_resolve.learn.synthetic import Degradation, format_range

        defaults = Degradation()
        self.data_combo = narrow(ComboBox(
            label="training data",
            choices=[("registered LRES/HRES pair", PAIR), ("synthetic from HRES only", SYNTHETIC)],
            value=PAIR,
            tooltip="A registered pair (LRES and HRES of the same sample), or pairs made from the HRES alone by "
            "local-mean downsampling, random blur and noise, when there is no LRES scan (yet)",
        ))
        self.ratio = FloatSpinBox(
            label="ratio (LRES/HRES)",
            min=1.0,
            max=32.0,
            step=0.5,
            value=float(defaults.ratio),
            tooltip="LRES voxel size / HRES voxel size: the model is for an LRES of the HRES voxel size times this",
        )
        self.blur = LineEdit(
            label="blur σ (LRES vox)",
            value=format_range(defaults.blur),
            tooltip="Range LO:HI of the Gaussian blur sigma in LRES voxels, drawn per axis and patch "
            "(0:1 ≈ a scanner's own PSF; the paper's 0:2 for unknown, heavier blur)",
        )
        self.gaussian_noise = LineEdit(
            label="Gaussian noise σ",
            value=format_range(defaults.gaussian_noise),
            tooltip="Range LO:HI of the additive noise sigma, as a share of the HRES grey range (0.12 ≈ 30 of 255)",
        )
        self.poisson = LineEdit(
            label="Poisson photons",
            value=format_range(defaults.poisson),
            tooltip="Range LO:HI of photons per unit intensity (fewer = more shot noise), drawn log-uniformly; "
            "off: no Poisson noise",
        )
        self.speckle = LineEdit(
            label="speckle σ",
            value=format_range(defaults.speckle),
            tooltip="Range LO:HI of the multiplicative (speckle) noise sigma",
        )
        self.synthetic_box = Container(
            widgets=[self.ratio, self.blur, self.gaussian_noise, self.poisson, self.speckle]
        )

        # --- ROI ------------------------------------------------------------
        self.roi_combo = layer_combo(
            napari_viewer,
            napari.layers.Shapes,
            "ROI layer",
            tooltip="A Shapes layer with a rectangle over the HRES (the selected or last shape is used); "
            "(none) = the whole HRES/LRES overlap",
            optional=True,
        )
        self.roi_combo.value = None
        self.add_roi_button = PushButton(
            text="Add ROI layer",
            tooltip=f"Add a Shapes layer {ROI_LAYER!r} with a rectangle over the whole overlap at the current z; "
            "edit it or draw a new rectangle",
        )
        self.z_first = SpinBox(
            label="z first (slice)", min=0, max=0, tooltip="First HRES slice (z) of the training ROI, included"
        )
        self.z_last = SpinBox(
            label="z last (slice)", min=0, max=0, tooltip="Last HRES slice (z) of the training ROI, included"
        )
        self.roi_label = Label(value="")
        self.roi_label.native.setWordWrap(True)

        # --- settings -------------------------------------------------------
        self.model_combo = narrow(ComboBox(
            label="model",
            choices=model_names(),
            value=DEFAULT_MODEL,
            tooltip=f"Network architecture, one of {', '.join(model_names())} ({DEFAULT_MODEL} recommended)",
        ))
        self.model_settings = LineEdit(label="model settings", value="")
        self.model_settings.native.setClearButtonEnabled(True)
        self._model_picked(self.model_combo.value)
        self.iterations = SpinBox(
            label="iterations", min=1, max=1_000_000, step=100, value=DEFAULTS.iterations,
            tooltip=_tip("iterations"),
        )
        self.patience = SpinBox(
            label="stop after (checks)", min=0, max=1000, value=DEFAULTS.patience, tooltip=_tip("patience"),
        )
        self.patch_size = SpinBox(
            label="patch (voxels)",
            min=16,
            max=1024,
            step=4,
            value=DEFAULTS.patch_size,
            tooltip=_tip("patch_size"),
        )
        self.batch_size = SpinBox(
            label="batch size",
            min=1,
            max=512,
            value=DEFAULTS.batch_size,
            tooltip=_tip("batch_size"),
        )
        self.learning_rate = LineEdit(
            label="learning rate", value=f"{DEFAULTS.learning_rate:g}",
            tooltip=f"{_tip('learning_rate')}, {DEFAULTS.schedule} schedule"
        )
        self.device_combo = narrow(ComboBox(
            label="device",
            choices=_device_choices(),
            value=DEFAULTS.device,
            tooltip="Where to train: auto takes a CUDA GPU, then Apple MPS, then the CPU",
        ))
        self.resume_check = CheckBox(
            text="continue from current model",
            value=False,
            tooltip="Start from the current model's weights and optimiser state (same architecture) "
            "and run the iterations above on top",
        )

        # --- model file -----------------------------------------------------
        self.model_label = Label(value="")
        self.model_label.native.setWordWrap(True)
        self.save_button = PushButton(text="Save model…", tooltip="Write the current model to a .pt file")
        self.load_button = PushButton(text="Load model…", tooltip="Read a model file; it becomes the current model")

        # --- layout ---------------------------------------------------------
        self.controls = JobControls(self.job, "Start training", self._start)
        self.plot = PlotCanvas(height=2.2)
        self.plot.setToolTip("Training loss per iteration (log scale) and validation PSNR (dB, right axis)")
        self.preview = PlotCanvas(height=1.7)
        self.preview.setToolTip("Centre slice of the validation block: prediction, and the HRES it should match")
        self.preview_label = Label(value="The validation slice appears here during training.")
        self.preview_label.native.setWordWrap(True)

        data_box = Container(widgets=[self.data_combo, self.lres_combo, self.hres_combo])
        roi_box = Container(widgets=[self.roi_combo, self.z_first, self.z_last])
        settings_box = Container(
            widgets=[
                self.model_combo,
                self.model_settings,
                self.iterations,
                self.patience,
                self.patch_size,
                self.batch_size,
                self.learning_rate,
                self.device_combo,
            ]
        )
        files_box = Container(widgets=[self.save_button, self.load_button], layout="horizontal", labels=False)

        inner = QWidget()
        layout = QVBoxLayout(inner)
        for part in (
            heading("Data"),
            data_box,
            self.synthetic_box,
            self.reg_label,
            heading("Training region (ROI)"),
            roi_box,
            self.add_roi_button,
            self.roi_label,
            heading("Settings"),
            settings_box,
            self.resume_check,
        ):
            layout.addWidget(part.native)
        layout.addWidget(self.controls)
        layout.addWidget(self.plot)
        layout.addWidget(self.preview)
        layout.addWidget(self.preview_label.native)
        layout.addWidget(heading("Model").native)
        layout.addWidget(self.model_label.native)
        layout.addWidget(files_box.native)
        layout.addStretch(1)
        for box in (data_box, self.synthetic_box, roi_box, settings_box, files_box):
            box.native.layout().setContentsMargins(0, 0, 0, 0)
        # Taller than most screens: its dock scrolls (see docks.py and the workflow widget).
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(inner)

        self._reset_plot()
        self._clear_preview()

        # --- signals --------------------------------------------------------
        self.hres_combo.changed.connect(self._hres_changed)
        self.lres_combo.changed.connect(self._hres_changed)
        self.data_combo.changed.connect(self._data_changed)
        self.ratio.changed.connect(self._update_registration_info)
        self.roi_combo.changed.connect(self._roi_layer_changed)
        self.iterations.changed.connect(self._iterations_changed)
        self.z_first.changed.connect(self._update_roi_info)
        self.z_last.changed.connect(self._update_roi_info)
        self.add_roi_button.changed.connect(self._add_roi_clicked)
        self.save_button.changed.connect(self._save_clicked)
        self.load_button.changed.connect(self._load_clicked)
        self.resume_check.changed.connect(self._resume_toggled)
        self.model_combo.changed.connect(self._model_picked)
        self.session.model_changed.connect(self._model_changed)
        self.job.progress.connect(self._on_progress)
        self.job.finished.connect(self._on_finished)
        if sum(isinstance(layer, napari.layers.Image) for layer in napari_viewer.layers) == 1:
            self.data_combo.value = SYNTHETIC  # one image, no LRES to pair it with: the HRES alone
        self._data_changed()
        self._model_changed()

    # ------------------------------------------------------------------ geometry

    @property
    def synthetic(self) -> bool:
        """Whether the form trains on synthetic pairs from the HRES alone."""
        return self.data_combo.value == SYNTHETIC

    def degradation(self):
        """The :class:`~napari_resolve.degradation.Degradation` of the form (synthetic mode).

        Raises
        ------
        InputError
            If a range is not ``LO:HI`` numbers or cannot work (negative, reversed).
        """
        from napari_resolve.learn.synthetic import Degradation, parse_range

        deg = Degradation(
            ratio=float(self.ratio.value),
            blur=parse_range(self.blur.value, "The blur σ", per_axis=True),
            gaussian_noise=parse_range(self.gaussian_noise.value, "The Gaussian noise σ"),
            poisson=parse_range(self.poisson.value, "Poisson photons", allow_off=True),
            speckle=parse_range(self.speckle.value, "The speckle σ"),
        )
        hres = self.hres_combo.value
        deg.check(spatial_ndim(hres) if hres is not None else None)
        return deg

    def _layers(self):
        """The chosen (lres, hres) layers, checked to be usable images of one dimension.

        In synthetic mode only the HRES is needed: (None, hres).
        """
        lres, hres = self.lres_combo.value, self.hres_combo.value
        if self.synthetic:
            if hres is None:
                raise InputError("Choose the HRES image layer to make the synthetic pairs from.")
            check_plain_geometry(hres, "HRES")
            return None, hres
        if lres is None or hres is None:
            raise InputError("Choose an LRES and an HRES image layer (File > Open, or the sample data).")
        if lres is hres:
            raise InputError("The LRES and the HRES are the same layer; choose two different scans.")
        if spatial_ndim(lres) != spatial_ndim(hres):
            raise InputError(
                f"The LRES is {lres.ndim}D but the HRES is {hres.ndim}D; choose two images of the same dimension."
            )
        check_plain_geometry(lres, "LRES")
        check_plain_geometry(hres, "HRES")
        return lres, hres

    def overlap(self) -> tuple[slice, ...]:
        """The HRES voxels inside the LRES (whole HRES while it is not registered)."""
        from napari_resolve.learn.pairs import hres_overlap

        lres, hres = self._layers()
        shape = layer_data(hres).shape
        if self.synthetic or registration_of(hres) is None:
            return tuple(slice(0, n) for n in shape)
        return hres_overlap(shape, voxel_um(hres), tuple(hres.translate), layer_data(lres).shape, voxel_um(lres))

    def roi_slices(self) -> tuple[slice, ...]:
        """The training ROI in HRES voxels (z, y, x or y, x).

        The rectangle of the ROI layer (the selected shape, else the last one)
        gives y and x: its corners are taken to HRES voxel indices, rounded and
        clipped to the part of the HRES inside the LRES; the z spin boxes give z.

        Raises
        ------
        InputError
            If the ROI is empty or smaller than a training patch needs.
        """
        from napari_resolve.geometry.grid import check_roi
        from napari_resolve.learn.pairs import MIN_PATCH

        lres, hres = self._layers()
        shape = layer_data(hres).shape
        ndim = len(shape)
        overlap = self.overlap()
        shapes = self.roi_combo.value
        if shapes is None:
            yx = overlap[-2:]
        else:
            lo, hi = shape_box_um(shapes)
            # Only the in-plane extent of the rectangle matters; z comes from the spin boxes.
            lead = tuple(float(t) for t in hres.translate[:-2])
            i_lo = world_to_index(hres, lead + tuple(lo[-2:]))[-2:]
            i_hi = world_to_index(hres, lead + tuple(hi[-2:]))[-2:]
            yx = []
            for a, b, o in zip(i_lo, i_hi, overlap[-2:]):
                start = min(max(_round_index(min(a, b)), o.start), o.stop)
                stop = min(max(_round_index(max(a, b)), o.start), o.stop)
                yx.append(slice(start, stop))
            if any(s.stop <= s.start for s in yx):
                raise InputError(
                    f"The ROI rectangle in {shapes.name!r} does not cover any of the HRES inside the LRES. "
                    "Draw it over the HRES (or choose (none) for the whole overlap)."
                )
        roi = tuple(yx)
        if ndim == 3:
            z0, z1 = int(self.z_first.value), int(self.z_last.value)
            if z1 < z0:
                raise InputError(f"The z range {z0} to {z1} is empty: 'z last' must not be below 'z first'.")
            roi = (slice(z0, z1 + 1),) + roi
        roi = check_roi(roi, shape, "the HRES (HRES voxels)")
        small = [s.stop - s.start for s in roi[-2:]]
        if min(small) < MIN_PATCH:
            raise InputError(
                f"The ROI is {small[0]} × {small[1]} HRES voxels in (y, x); training needs at least "
                f"{MIN_PATCH} × {MIN_PATCH}. Draw a larger rectangle."
            )
        return roi

    def _hres_changed(self, _value=None) -> None:
        """New HRES (or LRES): follow its geometry, reset the z range, refresh the labels."""
        hres = self.hres_combo.value
        if self._watched_hres is not None and self._watched_hres is not hres:
            for event in (self._watched_hres.events.translate, self._watched_hres.events.scale):
                event.disconnect(self._hres_moved)
            self._watched_hres = None
        if hres is not None and self._watched_hres is None:
            # A registration done after this widget was opened moves the HRES: follow it.
            hres.events.translate.connect(self._hres_moved)
            hres.events.scale.connect(self._hres_moved)
            self._watched_hres = hres
        self._hres_moved()

    def _hres_moved(self, _event=None) -> None:
        hres = self.hres_combo.value
        three_d = hres is not None and hres.ndim == 3
        for box in (self.z_first, self.z_last):
            box.visible = three_d
            box.enabled = three_d
        if three_d:
            depth = layer_data(hres).shape[0]
            try:
                z = self.overlap()[0]
            except ResolveError:
                z = slice(0, depth)
            for box in (self.z_first, self.z_last):
                box.max = depth - 1
            self.z_first.value, self.z_last.value = z.start, z.stop - 1
        self._update_registration_info()
        self._update_roi_info()

    def _data_changed(self, _value=None) -> None:
        """Show the LRES picker or the degradation fields; the ROI follows (whole HRES when synthetic)."""
        synthetic = self.synthetic
        self.synthetic_box.visible = synthetic
        self.lres_combo.visible = not synthetic
        self.lres_combo.enabled = not synthetic
        self._hres_changed()

    def _update_registration_info(self, _value=None) -> None:
        hres = self.hres_combo.value
        blocked = None  # why Start is off: only what the form cannot fix (the registration)
        if hres is None:
            text = "Choose the HRES layer."
        elif self.synthetic:
            hv = voxel_um(hres)
            lv = [v * float(self.ratio.value) for v in hv]
            text = (
                f"No LRES needed: pairs are made from the HRES. The model is for an LRES of {format_um(lv)} µm "
                f"voxels (HRES {format_um(hv)} µm × {float(self.ratio.value):g})."
            )
        else:
            try:
                reg = require_registration(hres)
                text = f"HRES registered at {format_um(reg.offset_um)} µm, voxel {format_um(reg.scale)} µm."
            except ResolveError as exc:
                text = blocked = as_shown(str(exc))
        self.reg_label.value = text
        self.controls.block(blocked)

    def _roi_layer_changed(self, _value=None) -> None:
        shapes = self.roi_combo.value
        if self._watched_shapes is not None and self._watched_shapes is not shapes:
            self._watched_shapes.events.data.disconnect(self._update_roi_info)
            self._watched_shapes.events.highlight.disconnect(self._update_roi_info)
            self._watched_shapes = None
        if shapes is not None and self._watched_shapes is None:
            shapes.events.data.connect(self._update_roi_info)
            shapes.events.highlight.connect(self._update_roi_info)  # selection changes the shape used
            self._watched_shapes = shapes
        self._update_roi_info()

    def _update_roi_info(self, _event=None) -> None:
        """Show the ROI's size in voxels and µm, or why it cannot be used."""
        try:
            roi = self.roi_slices()
        except ResolveError as exc:
            self.roi_label.value = f"ROI: {as_shown(str(exc))}"
            return
        except Exception:  # a half-edited shape or a layer being removed: say nothing yet
            self.roi_label.value = ""
            return
        hres = self.hres_combo.value
        n = [s.stop - s.start for s in roi]
        um = [k * v for k, v in zip(n, voxel_um(hres))]
        axes = "z × y × x" if len(n) == 3 else "y × x"
        start = ", ".join(str(s.start) for s in roi)
        self.roi_label.value = (
            f"ROI {' × '.join(map(str, n))} voxels ({axes}) = {' × '.join(f'{u:.4g}' for u in um)} µm, "
            f"from voxel {start}."
        )

    def add_roi_layer(self):
        """Add (or reset) the Shapes layer "training ROI": one rectangle over the overlap at the current z.

        Returns
        -------
        napari.layers.Shapes
            The layer, in rectangle-drawing mode and chosen in the ROI picker.
        """
        lres, hres = self._layers()
        if not self.synthetic:
            require_registration(hres)
        overlap = self.overlap()
        scale, translate = np.asarray(voxel_um(hres)), np.asarray(hres.translate, float)
        # Rectangle edges on voxel borders, so the rectangle covers the overlap's voxels exactly.
        lo = translate + (np.array([s.start for s in overlap]) - 0.5) * scale
        hi = translate + (np.array([s.stop for s in overlap]) - 0.5) * scale
        (y0, x0), (y1, x1) = lo[-2:], hi[-2:]
        corners = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
        if hres.ndim == 3:
            z = float(self.viewer.dims.point[-3]) if self.viewer.dims.ndim >= 3 else float(translate[0])
            corners = [[z, *c] for c in corners]
        rect = np.asarray(corners)
        width = max(1.0, 0.01 * float(max(hi[-2:] - lo[-2:])))  # um, visible at any zoom
        layer = self.viewer.layers[ROI_LAYER] if ROI_LAYER in self.viewer.layers else None
        if layer is not None and (not isinstance(layer, napari.layers.Shapes) or layer.ndim != rect.shape[1]):
            self.viewer.layers.remove(layer)
            layer = None
        if layer is None:
            layer = self.viewer.add_shapes(
                [rect],
                shape_type="rectangle",
                name=ROI_LAYER,
                edge_color="yellow",
                face_color=[1.0, 1.0, 0.0, 0.08],
                edge_width=width,
            )
        else:
            layer.selected_data = set()
            layer.data = []
            layer.add_rectangles([rect], edge_width=width, edge_color="yellow", face_color=[1.0, 1.0, 0.0, 0.08])
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        self.roi_combo.reset_choices()
        self.roi_combo.value = layer
        self._roi_layer_changed()
        return layer

    def _add_roi_clicked(self, _value=None) -> None:
        try:
            self.add_roi_layer()
        except ResolveError as exc:
            self._show_error(f"Add ROI layer: {exc}")

    # ------------------------------------------------------------------ training

    def config(self):
        """The :class:`~napari_resolve.learn.config.TrainConfig` of the form (the plan checks it)."""
        from napari_resolve.learn.config import TrainConfig, parse_model_config

        text = self.learning_rate.value.strip()
        try:
            lr = float(text)
        except ValueError:
            raise InputError(f"The learning rate {text!r} is not a number; write e.g. 1e-3.") from None
        return TrainConfig(
            model=self.model_combo.value,
            model_config=parse_model_config(self.model_settings.value),
            iterations=int(self.iterations.value),
            patch_size=int(self.patch_size.value),
            patch_depth=int(self.patch_size.value),  # 3D networks train on cubes of this side
            patience=int(self.patience.value),
            batch_size=int(self.batch_size.value),
            learning_rate=lr,
            device=self.device_combo.value,
        )

    def _resume_model(self, lres_um, hres_um):
        """The session model to continue from, checked against the form and the voxel sizes (µm) of the data."""
        ckpt = self.session.require_model()
        if ckpt.architecture != self.model_combo.value:
            raise InputError(
                f"The current model is a {ckpt.architecture!r}, not {self.model_combo.value!r}: choose "
                f"{ckpt.architecture} as the model to continue it, or untick 'continue from current model'."
            )
        ratio = [a / b for a, b in zip(lres_um, hres_um)]
        if len(ratio) != len(ckpt.ratio) or not np.allclose(ratio, ckpt.ratio, rtol=1e-3):
            raise InputError(
                f"The current model was trained for LRES {format_um(ckpt.lres_voxel_um)} µm → HRES "
                f"{format_um(ckpt.hres_voxel_um)} µm, these scans are {format_um(lres_um)} → "
                f"{format_um(hres_um)} µm. Untick 'continue from current model' to train a new one."
            )
        return ckpt

    def _start(self) -> None:
        """Plan the training from the form (every refusal shows now) and start it (the Start button)."""
        from napari_resolve.learn.training import iter_train, plan_train, plan_train_synthetic

        lres, hres = self._layers()
        cfg = self.config()
        roi = self.roi_slices()
        hres_data = layer_data(hres)
        if self.synthetic:
            deg = self.degradation()
            hv = voxel_um(hres)
            resume = self._resume_model(deg.lres_voxel_um(hv), hv) if self.resume_check.value else None
            plan = plan_train_synthetic(hres_data, hv, deg, cfg, roi=roi, resume=resume,
                                        extra={"hres_layer": hres.name})
        else:
            reg = require_registration(hres)
            resume = self._resume_model(voxel_um(lres), reg.scale) if self.resume_check.value else None
            plan = plan_train(layer_data(lres), hres_data, voxel_um(lres), reg, cfg, roi=roi, resume=resume,
                              extra={"lres_layer": lres.name, "hres_layer": hres.name})
        self._run = {
            "synthetic": self.synthetic,
            "hres": hres.name,
            "it0": resume.iteration if resume is not None else 0,
            "total": cfg.iterations,
            "reference": self._preview_reference(hres_data, plan.pair.roi, plan.config.val_fraction),
        }
        self.history = []
        self._last_best = None
        self._last_record = None
        self.summary_text = ""
        self._reset_plot()
        self._clear_preview()
        self.job.start(iter_train(plan))

    @staticmethod
    def _preview_reference(hres_data, roi, val_fraction: float):
        """The HRES slice at the centre of the validation block (cut by the core's rule), or None."""
        from napari_resolve.learn.pairs import validation_size

        try:
            n_val = validation_size([s.stop - s.start for s in roi], val_fraction)
            if len(roi) == 3:
                z = roi[0].stop - n_val + n_val // 2
                return np.asarray(hres_data[z, roi[1], roi[2]], dtype=float)
            return np.asarray(hres_data[roi[0].stop - n_val : roi[0].stop, roi[1]], dtype=float)
        except Exception:  # only a nicety: the prediction is shown alone
            return None

    def _on_progress(self, rec) -> None:
        """One training record (``Progress`` with a ``TrainStep``): history, plot (throttled) and preview."""
        step = rec.data
        if step is None:
            return
        self.history.append((step.iteration, float(step.loss), step.val_psnr, (step.losses or {}).get("loss_disc")))
        self._last_record = rec
        if step.best is not None:
            self._last_best = step.best
        if step.preview is not None:
            self._show_preview(step.preview, step.iteration, step.val_psnr)
        now = time.monotonic()
        if step.val_psnr is not None or rec.step >= rec.total or now - self._last_draw >= _REDRAW_S:
            self._redraw()

    def _on_finished(self, result) -> None:
        """Keep the best model in the session and write the summary line."""
        self._redraw()
        state = self.job.state
        rec = self._last_record
        hres_name = self._run.get("hres", "HRES")
        if state == "done" and result is not None:
            ckpt = result.checkpoint
            seconds, device = result.seconds, result.device
        elif state == "stopped":
            ckpt = self._last_best
            seconds = rec.data.elapsed_s if rec is not None else 0.0
            device = ckpt.extra.get("device", "") if ckpt is not None else ""
        else:
            return  # failed: JobControls shows the error
        last = self.history[-1][0] if self.history else self._run.get("it0", 0)
        if ckpt is None:
            self.summary_text = f"Stopped at iteration {last}, before the first validation: no model was kept."
        else:
            how = " (synthetic pairs)" if self._run.get("synthetic") else ""
            self.session.set_model(ckpt, f"trained on {hres_name}{how}")
            verb = "Done" if state == "done" else f"Stopped at iteration {last}"
            if state == "done" and result.early_stop:
                verb = f"Stopped by itself at iteration {last} (no longer improving)"
            psnr = f"{ckpt.val_psnr:.2f} dB" if ckpt.val_psnr is not None else "n/a"
            self.summary_text = (
                f"{verb}: best validation PSNR {psnr} at iteration {ckpt.iteration}; "
                f"{last - self._run.get('it0', 0)} iterations in {format_duration(seconds)} on {device}."
            )
        self.controls.show_message(self.summary_text)

    # ------------------------------------------------------------------ plot and preview

    @staticmethod
    def _draw(canvas) -> None:
        # A hidden canvas is drawn by showEvent: a draw_idle queued for a widget that
        # is deleted before the event loop runs it raises in matplotlib's timer.
        if canvas.isVisible():
            canvas.draw_idle()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.plot.draw_idle()
        self.preview.draw_idle()

    def _reset_plot(self) -> None:
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax = self.plot.axes()
        ax.set_yscale("log")
        # Plain numbers at 1, 2, 5 x 10^k: matplotlib's default labels every minor tick as "a x 10^k".
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.tick_params(which="minor", colors=FOREGROUND, labelsize=8)  # style() colours the major ones
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("train loss", fontsize=8, color=LOSS_COLOUR)
        ax2 = ax.twinx()
        self.plot.style(ax2)
        ax2.set_ylabel("val PSNR (dB)", fontsize=8, color=PSNR_COLOUR)
        (self.loss_line,) = ax.plot([], [], color=LOSS_COLOUR, lw=0.8, alpha=0.35)
        (self.loss_mean_line,) = ax.plot([], [], color=LOSS_COLOUR, lw=1.5, label="train loss (mean)")
        (self.psnr_line,) = ax2.plot([], [], color=PSNR_COLOUR, marker="o", ms=3, lw=1, label="validation PSNR")
        (self.disc_line,) = ax.plot([], [], color=DISC_COLOUR, lw=1.2, label="discriminator loss (mean)")
        self._ax, self._ax2 = ax, ax2
        self._legend([self.loss_mean_line, self.psnr_line])
        it0 = self._run.get("it0", 0)
        ax.set_xlim(it0, it0 + (self._run.get("total") or int(self.iterations.value)))
        # Sensible empty ranges until the first records arrive (not matplotlib's -0.04..0.04).
        ax.set_ylim(0.01, 1.0)
        ax2.set_ylim(10, 40)
        self._placeholder = ax.text(
            0.5,
            0.5,
            "training curves appear here",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color=FOREGROUND,
            alpha=0.6,
            fontsize=8,
        )
        self._draw(self.plot)

    def _legend(self, handles) -> None:
        # Above the axes: inside, it would hide the falling loss or the rising PSNR.
        self._legend_handles = handles
        self.plot.legend(self._ax, handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                         ncol=2, frameon=False)  # two a row: three would squeeze the axes at the dock's width

    def _iterations_changed(self, value: int) -> None:
        # The empty plot spans the planned run; a finished run's plot stays as it was.
        if not self.history and not self.job.running:
            self._ax.set_xlim(0, int(value))
            self._draw(self.plot)

    def _redraw(self) -> None:
        """Put the history into the plot lines and redraw (cheap: no new artists)."""
        self._last_draw = time.monotonic()
        if not self.history:
            return
        its = np.array([h[0] for h in self.history], float)
        loss = np.array([h[1] for h in self.history], float)
        keep = loss > 0  # a log axis cannot show 0
        its, loss = its[keep], loss[keep]
        self._placeholder.set_visible(False)
        self.loss_line.set_data(its, loss)
        # The per-iteration loss is noisy (one small batch): a running mean shows the trend.
        window = max(1, min(len(loss), int(self._run.get("total") or len(loss)) // 40))
        csum = np.concatenate([[0.0], np.cumsum(loss)])
        mean = (csum[window:] - csum[:-window]) / window
        self.loss_mean_line.set_data(its[window - 1 :], mean)
        disc = np.array([(h[0], h[3]) for h in self.history if h[3] is not None], float).reshape(-1, 2)
        if len(disc):  # an adversarially trained model: its discriminator's loss, smoothed like the loss
            k = max(1, min(len(disc), window))
            self.disc_line.set_data(disc[k - 1 :, 0], np.convolve(disc[:, 1], np.ones(k) / k, mode="valid"))
            if self.disc_line not in self._legend_handles:
                self._legend([self.loss_mean_line, self.disc_line, self.psnr_line])
        val = [(h[0], h[2]) for h in self.history if h[2] is not None]
        self.psnr_line.set_data([v[0] for v in val], [v[1] for v in val])
        for ax, has_data in ((self._ax, len(its) > 0), (self._ax2, bool(val))):
            if has_data:  # an empty axis keeps its placeholder range
                ax.relim()
                ax.set_autoscaley_on(True)
                ax.autoscale_view(scalex=False)
        self._draw(self.plot)

    def _clear_preview(self) -> None:
        ax = self.preview.axes()
        ax.set_axis_off()
        self._draw(self.preview)

    def _show_preview(self, image, iteration: int, psnr) -> None:
        """Show the validation slice, with the HRES it should match when that is at hand."""
        image = np.asarray(image, dtype=float)
        ref = self._run.get("reference")
        pair = ref is not None and ref.shape == image.shape
        lo, hi = np.percentile(ref if pair else image, [0.5, 99.5])
        if not hi > lo:
            lo, hi = float(image.min()), float(image.max()) + 1e-6
        # A 2D section's validation block is a wide strip: stack the two panels then.
        wide = image.shape[1] > 2 * image.shape[0]
        grid = ((2, 1) if wide else (1, 2)) if pair else (1, 1)
        axs = list(np.atleast_1d(self.preview.axes(*grid)).flat)
        panels = [(image, "prediction"), (ref, "HRES")] if pair else [(image, "prediction")]
        for ax, (img, title) in zip(axs, panels):
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(title, fontsize=8, color=FOREGROUND)
            ax.set_xticks([])
            ax.set_yticks([])
        self._draw(self.preview)
        psnr_text = f", PSNR {psnr:.2f} dB" if psnr is not None else ""
        self.preview_label.value = f"validation slice at iteration {iteration}{psnr_text}"

    # ------------------------------------------------------------------ model files

    def _model_changed(self, _ckpt=None) -> None:
        self.model_label.value = self.session.describe_model()
        has = self.session.model is not None
        self.save_button.enabled = has
        self.resume_check.enabled = has
        if not has:
            self.resume_check.value = False

    def _resume_toggled(self, on: bool) -> None:
        # Continuing needs the same architecture and settings: pick them for the user.
        model = self.session.model
        if on and model is not None and model.architecture in self.model_combo.choices:
            self.model_combo.value = model.architecture
            self.model_settings.value = " ".join(f"{k}={v}" for k, v in model.config.items())

    def _model_picked(self, name: str) -> None:
        """Show the picked architecture's settings and defaults; settings of another one are cleared."""
        from napari_resolve.models import model_options

        options = model_options(name)
        self.model_settings.value = ""
        self.model_settings.native.setPlaceholderText("defaults (e.g. " + " ".join(
            f"{k}={v}" for k, v in list(options.items())[:2]) + ")")
        self.model_settings.tooltip = (
            f"Settings of {name} as KEY=VALUE separated by spaces; empty: the defaults, which are "
            + ", ".join(f"{k}={v}" for k, v in options.items()))

    def save_model(self, path) -> Path:
        """Write the session model to ``path`` (replacing it: the file dialog asked already).

        Raises
        ------
        InputError
            If there is no model yet.
        FileFormatError
            If the file cannot be written.
        """
        from napari_resolve.models.checkpoint import save_checkpoint

        ckpt = self.session.require_model()
        return save_checkpoint(ckpt, Path(path), overwrite=True)

    def load_model(self, path):
        """Read a model file and make it the session model.

        Returns
        -------
        Checkpoint

        Raises
        ------
        FileFormatError
            If the file is missing, damaged or not a napari-resolve model.
        """
        return self.session.load_model(path)

    def _save_clicked(self, _value=None) -> None:
        if self.session.model is None:
            self._show_error("Save model: there is no model yet; train one or load a model file.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.pt", "napari-resolve model (*.pt)")
        if not path:
            return
        path = Path(path)
        if not path.suffix and not path.with_suffix(".pt").exists():
            path = path.with_suffix(".pt")
        try:
            written = self.save_model(path)
        except ResolveError as exc:
            self._show_error(f"Save model: {exc}")
            return
        self.controls.show_message(f"Model saved to {written}.")

    def _load_clicked(self, _value=None) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", "napari-resolve model (*.pt);;All files (*)")
        if not path:
            return
        try:
            self.load_model(path)
        except ResolveError as exc:
            self._show_error(f"Load model: {exc}")
            return
        self.controls.show_message(f"Model loaded from {Path(path).name}.")

    def _show_error(self, text: str) -> None:
        from napari.utils.notifications import show_error

        show_error(text)
        self.controls.show_message(text)


__all__ = ["ROI_LAYER", "TrainingWidget"]
