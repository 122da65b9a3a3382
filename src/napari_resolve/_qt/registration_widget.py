"""Dock widget "Data and registration": locate the HRES scan inside the LRES scan.

The user picks the LRES and HRES image layers (voxel sizes are pre-filled
from the layers' ``scale`` and can be corrected), optionally gives an initial
offset and a search radius, and presses Register. The core's
:func:`~napari_resolve.registration.register` runs in a worker thread; on a
reliable result the HRES layer is shown in place by setting only its
``translate`` and ``scale`` (no copy of the data), and the registration is
stored on the layer for the later steps. Reset puts the layer back; Save/Load
exchange the registration as JSON with the command line
(``napari-resolve register ... -o reg.json``).
"""

from __future__ import annotations

import html

import napari
import numpy as np
from magicgui.widgets import CheckBox, Container, Label, LineEdit
from napari.layers import Image
from psygnal import Signal
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_resolve.errors import InputError, ResolveError
from napari_resolve.registration import Registration, register

from ._forms import JobControls, VoxelSizeEdit, format_um, layer_combo, parse_per_axis, parse_point
from ._layers import check_plain_geometry, is_produced, layer_data, spatial_ndim, voxel_um
from ._session import place_registered, registration_of, require_registration, reset_registration
from ._workers import Job, as_shown, callback_generator

_AXES = {2: "y, x", 3: "z, y, x"}


def _notify(kind: str, message: str) -> None:
    # Looked up at call time so that tests can capture the notifications.
    from napari.utils import notifications

    getattr(notifications, f"show_{kind}")(message)


def _voxel_unknown(layer) -> bool:
    """True when the layer came from a file without a voxel size and nobody has set one since.

    napari shows such a layer with 1 unit per voxel; a scale other than 1
    means the user (or a registration) has set a real size meanwhile.
    """
    return layer.metadata.get("voxel_known") is False and all(float(s) == 1.0 for s in layer.scale)


def _nominal_hres_voxel(layer) -> tuple[float, ...]:
    """The HRES voxel size the user gave, even when a registration has refined the layer's scale."""
    reg = registration_of(layer)
    return tuple(reg.hres_voxel_um) if reg is not None else voxel_um(layer)


def parse_radius(text: str, ndim: int) -> tuple[float, ...] | None:
    """Search radius in um: empty -> None, one number (all axes) or one per axis."""
    if not text.strip():
        return None
    return parse_per_axis(text, ndim, "search radius", example="'30' (um) or leave it empty")


class RegistrationWidget(QWidget):
    """Pick the LRES and HRES layers and register the HRES in place.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    parent : QWidget, optional

    Attributes
    ----------
    job : Job
        The registration job ("Registration").
    controls : JobControls
        Register/Stop buttons, progress bar and status line.
    lres_combo, hres_combo : magicgui.widgets.ComboBox
        The layer pickers.
    lres_voxel, hres_voxel : VoxelSizeEdit
        Voxel sizes in um, pre-filled from the picked layers.
    init_offset, search_radius : magicgui.widgets.LineEdit
        Optional initial HRES offset ("z, y, x" um) and search radius (um).
    refine_scale : magicgui.widgets.CheckBox
        Also refine the HRES voxel size.
    registration : Registration or None
        The last result (reliable or not); None before the first and after Reset.
    registered : psygnal.Signal
        Emitted with the :class:`Registration` whenever the HRES layer is placed
        (Register or Load), and with None after Reset.
    """

    registered = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.registration: Registration | None = None
        # (lres layer, hres layer, lres voxel) of the run in flight: the result goes to the
        # layers picked when Register was pressed, even if the pickers change meanwhile.
        self._pending = None

        self.lres_combo = layer_combo(
            napari_viewer, Image, "LRES layer", tooltip="The low-resolution scan of the whole field"
        )
        self.lres_voxel = VoxelSizeEdit(
            "LRES voxel µm", "LRES voxel size in µm: one number, or one per axis (z, y, x). From the layer; editable."
        )
        self.lres_note = Label(value="")
        self.hres_combo = layer_combo(
            napari_viewer, Image, "HRES layer", tooltip="The high-resolution scan of a sub-volume inside the LRES field"
        )
        self.hres_voxel = VoxelSizeEdit(
            "HRES voxel µm", "HRES voxel size in µm: one number, or one per axis (z, y, x). From the layer; editable."
        )
        self.hres_note = Label(value="")
        self.init_offset = LineEdit(
            label="Start offset µm",
            tooltip="Optional guess of where HRES voxel 0 lies in the LRES frame (µm, z, y, x), e.g. from the "
            "stage positions. Empty: search the whole LRES field.",
        )
        self.search_radius = LineEdit(
            label="Radius µm",
            tooltip="Optional half-width (µm) of the searched range around the start offset: one number or one "
            "per axis. Empty: 5 LRES voxels or a quarter of the HRES extent, whichever is larger.",
        )
        self.search_radius.native.setPlaceholderText("optional")
        self.refine_scale = CheckBox(
            text="Refine HRES voxel size",
            tooltip="Also fit the HRES voxel size per axis (within ±15 %), when the nominal size may be inexact.",
        )
        for edit in (self.lres_voxel, self.hres_voxel):
            edit.native.setPlaceholderText("e.g. 3 or 3, 1.5, 1.5")
        for note in (self.lres_note, self.hres_note):
            note.native.setWordWrap(True)
            note.native.setStyleSheet("color: #f0b400;")
            note.visible = False
        self.form = Container(
            widgets=[
                self.lres_combo,
                self.lres_voxel,
                self.lres_note,
                self.hres_combo,
                self.hres_voxel,
                self.hres_note,
                self.init_offset,
                self.search_radius,
                self.refine_scale,
            ],
            labels=True,
        )
        self.form.margins = (0, 0, 0, 0)

        self.job = Job("Registration")
        self.controls = JobControls(self.job, "Register", self._on_run)
        self.controls.run_button.setToolTip("Locate the HRES inside the LRES and show it in place")

        self.result_box = QLabel("Not registered yet.")
        self.result_box.setWordWrap(True)
        self.result_box.setTextFormat(Qt.TextFormat.RichText)
        self.result_box.setStyleSheet("QLabel { border: 1px solid #5a5f6a; border-radius: 3px; padding: 4px; }")

        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Put the HRES layer back where it was before registration")
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save the registration as JSON (for the command line or a later session)")
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip(
            "Load a registration JSON (e.g. from 'napari-resolve register -o') and apply it to the HRES layer"
        )
        buttons = QHBoxLayout()
        for button in (self.reset_button, self.save_button, self.load_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.controls)
        layout.addWidget(self.result_box)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self.lres_combo.changed.connect(self._lres_changed)
        self.hres_combo.changed.connect(self._hres_changed)
        self.lres_voxel.changed.connect(lambda *_: self._voxel_typed(self.lres_voxel, self.lres_note, self.lres_combo))
        self.hres_voxel.changed.connect(lambda *_: self._voxel_typed(self.hres_voxel, self.hres_note, self.hres_combo))
        self.job.finished.connect(self._finished)
        self.job.state_changed.connect(self._state_changed)
        self.reset_button.clicked.connect(self._reset_clicked)
        self.save_button.clicked.connect(self._save_clicked)
        self.load_button.clicked.connect(self._load_clicked)
        napari_viewer.layers.events.inserted.connect(self._layers_inserted)

        self._auto_pick()
        self._lres_changed()
        self._hres_changed()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._align_labels()

    def _align_labels(self) -> None:
        """Give the form's labels one width, measured with the font napari's style sheet applies.

        magicgui measures the labels with the application's default font before
        the widget is styled, so the fields end up ragged in napari.
        """
        labels = []
        for widget in self.form:
            labeled = widget._labeled_widget() if hasattr(widget, "_labeled_widget") else None
            if labeled is not None:
                labels.append(labeled._label_widget.native)
        if labels:
            width = max(label.sizeHint().width() for label in labels)
            for label in labels:
                label.setMinimumWidth(width)

    # ----------------------------------------------------------------- pickers

    def _auto_pick(self) -> None:
        """Pick layers named like LRES/HRES, else the first two image layers."""
        images = [lay for lay in self.viewer.layers if isinstance(lay, Image) and not is_produced(lay)]
        lres = next((lay for lay in images if "lres" in lay.name.lower()), None)
        hres = next((lay for lay in images if "hres" in lay.name.lower() and lay is not lres), None)
        rest = [lay for lay in images if lay is not lres and lay is not hres]
        if lres is None and rest:
            lres = rest.pop(0)
        if hres is None and rest:
            hres = rest.pop(0)
        if lres is not None:
            self.lres_combo.value = lres
        if hres is not None:
            self.hres_combo.value = hres

    def _layers_inserted(self, event=None) -> None:
        # Opened before the data: the pickers fall on the first layer; pick again
        # until there is a distinct pair (never overriding a pair the user chose).
        lres, hres = self.lres_combo.value, self.hres_combo.value
        if lres is None or hres is None or lres is hres:
            self._auto_pick()

    def _lres_changed(self, *_) -> None:
        layer = self.lres_combo.value
        self._fill_voxel(self.lres_voxel, self.lres_note, layer, voxel_um(layer) if layer is not None else None)
        if layer is not None and layer.ndim in _AXES:
            self.init_offset.native.setPlaceholderText(f"{_AXES[layer.ndim]} (optional)")

    def _hres_changed(self, *_) -> None:
        layer = self.hres_combo.value
        self._fill_voxel(
            self.hres_voxel, self.hres_note, layer, _nominal_hres_voxel(layer) if layer is not None else None
        )
        if not self.job.running:
            self.result_box.setText(self._layer_state(layer))

    def _layer_state(self, layer) -> str:
        """What the result box says of a picked HRES layer: its stored registration, if it has one.

        The registration lives on the layer, so a layer registered earlier (in
        another dock, or loaded) is shown as registered here too.
        """
        reg = registration_of(layer) if layer is not None else None
        if reg is None:
            return "Not registered yet."
        text = f"{self._esc(layer.name)} is registered.<br>" + self._describe(reg)
        try:
            require_registration(layer)
        except ResolveError as exc:
            text += f"<br>{self._esc(exc)}"
        return text

    @staticmethod
    def _voxel_typed(edit: VoxelSizeEdit, note: Label, combo) -> None:
        """The "no voxel size" note stays only while the field does not hold a usable size."""
        layer = combo.value
        if layer is None or not _voxel_unknown(layer):
            return
        try:
            edit.values(spatial_ndim(layer), "")
        except InputError:
            note.visible = True
        else:
            note.visible = False

    @staticmethod
    def _fill_voxel(edit: VoxelSizeEdit, note: Label, layer, values) -> None:
        if layer is None:
            edit.value = ""
            note.visible = False
            return
        if _voxel_unknown(layer):
            # Leave the field empty so that 1 unit per voxel is never taken for a size.
            edit.value = ""
            note.value = f"{layer.name!r} has no voxel size in its file: type it (µm)."
            note.visible = True
        else:
            edit.set_values(values)
            note.visible = False

    # --------------------------------------------------------------- register

    def _read_form(self):
        """Check the form and return (lres layer, hres layer, lres voxel, hres voxel, ndim)."""
        lres, hres = self.lres_combo.value, self.hres_combo.value
        if lres is None or hres is None:
            raise InputError("Pick an LRES and an HRES image layer (open your scans, or File > Open Sample).")
        if lres is hres:
            raise InputError(f"{lres.name!r} is picked as both LRES and HRES; pick the HRES scan as HRES.")
        ndim = spatial_ndim(lres)
        if spatial_ndim(hres) != ndim:
            raise InputError(
                f"The LRES {lres.name!r} is {ndim}D but the HRES {hres.name!r} is {hres.ndim}D; "
                "both must be 2D images or both 3D volumes."
            )
        check_plain_geometry(lres, "LRES")
        check_plain_geometry(hres, "HRES")
        for edit, layer, what in ((self.lres_voxel, lres, "LRES"), (self.hres_voxel, hres, "HRES")):
            if not edit.value.strip():
                raise InputError(f"Type the {what} voxel size of {layer.name!r} in µm (the field is empty).")
        lres_voxel = self.lres_voxel.values(ndim, "LRES")
        hres_voxel = self.hres_voxel.values(ndim, "HRES")
        return lres, hres, lres_voxel, hres_voxel, ndim

    def _on_run(self) -> None:
        lres, hres, lres_voxel, hres_voxel, ndim = self._read_form()
        init_offset = parse_point(self.init_offset.value, ndim, "start offset")
        radius = parse_radius(self.search_radius.value, ndim)
        if radius is not None and init_offset is None:
            raise InputError("A search radius needs a start offset to search around; give one or clear the radius.")
        # Cheap checks here, so that an obviously wrong pair is refused before any thread starts
        # (the core checks everything again).
        lres_data, hres_data = layer_data(lres), layer_data(hres)
        extent_l = np.array(lres_data.shape) * lres_voxel
        extent_h = np.array(hres_data.shape) * hres_voxel
        if np.any(extent_h > extent_l * (1 + 1e-6)):
            raise InputError(
                f"The HRES field ({format_um(np.round(extent_h, 1))} µm) is larger than the LRES field "
                f"({format_um(np.round(extent_l, 1))} µm), so it cannot lie inside it. Check the voxel sizes "
                "and that LRES and HRES are not swapped."
            )
        # Only arrays and numbers go to the worker, never the layers. A numpy array is passed as
        # is (the core never writes to it; copying a large scan would double the memory); a lazy
        # array (dask, zarr) is read in the worker.
        gen = callback_generator(
            register,
            lres_data,
            hres_data,
            lres_voxel,
            hres_voxel,
            init_offset_um=init_offset,
            search_radius_um=radius,
            refine_scale=bool(self.refine_scale.value),
        )
        self._pending = (lres, hres, lres_voxel)
        self.result_box.setText("Registering…")
        self.job.start(gen)

    def _state_changed(self, state: str) -> None:
        running = state == "running"
        for button in (self.reset_button, self.load_button):
            button.setEnabled(not running)
        if state == "stopped":
            self.result_box.setText("Stopped; the HRES layer was not moved.")
        elif state == "failed":
            self.result_box.setText(
                f"Registration failed; the HRES layer was not moved.<br>{self._esc(self.job.error)}"
            )

    def _finished(self, reg) -> None:
        pending, self._pending = self._pending, None
        if reg is None or pending is None:  # stopped or failed: handled by _state_changed
            return
        lres, hres, lres_voxel = pending
        self.registration = reg
        if not reg.ok:
            # Never move the layer on an unreliable match; the message says what to try.
            self.result_box.setText(self._describe(reg) + f"<br>{self._esc(as_shown(reg.message))}")
            _notify("warning", as_shown(reg.message))
            return
        if hres not in self.viewer.layers or lres not in self.viewer.layers:
            self.result_box.setText(self._describe(reg) + "<br>A layer was removed meanwhile; nothing was moved.")
            return
        notes = self._apply(lres, hres, reg, lres_voxel)
        self.result_box.setText(self._describe(reg) + "".join(f"<br>{self._esc(n)}" for n in notes))
        _notify(
            "info", f"{hres.name} registered: NCC {reg.ncc:.3f}, voxel 0 at {format_um(np.round(reg.offset_um, 2))} µm."
        )

    def _apply(self, lres, hres, reg: Registration, lres_voxel) -> list[str]:
        """Show the HRES in place (and the LRES in its frame); returns notes on what changed."""
        notes = []
        # The registration's positions are in the LRES frame (LRES voxel 0 at the origin, LRES
        # voxel size as typed). Put the LRES layer in that frame too, so both show in place;
        # only its geometry changes, never its data.
        if not np.allclose(lres.scale, lres_voxel, rtol=1e-9):
            lres.scale = tuple(lres_voxel)
            notes.append(f"LRES layer scale set to {format_um(lres_voxel)} µm.")
        if not np.allclose(lres.translate, 0.0):
            lres.translate = (0.0,) * lres.ndim
            notes.append("LRES layer moved to the origin (the registration's frame).")
        place_registered(hres, reg)
        self.registration = reg
        self.registered.emit(reg)
        return notes

    @staticmethod
    def _esc(text) -> str:
        return html.escape(str(text or ""))

    @staticmethod
    def _describe(reg: Registration) -> str:
        verdict = '<b style="color:#4caf50;">OK</b>' if reg.ok else '<b style="color:#f0b400;">unreliable</b>'
        axes = _AXES.get(reg.ndim, "")
        return (
            f"Verdict: {verdict} · NCC {reg.ncc:.3f}<br>"
            f"Offset ({axes}): {format_um(np.round(reg.offset_um, 2))} µm<br>"
            f"HRES voxel: {format_um(np.round(reg.scale, 4))} µm · {reg.seconds:.1f} s"
        )

    # ------------------------------------------------------------ reset, files

    def reset(self) -> bool:
        """Put the picked HRES layer back where it was; False if it had not been moved."""
        hres = self.hres_combo.value
        if hres is None:
            raise InputError("Pick the HRES layer to reset.")
        moved = reset_registration(hres)
        self.registration = None
        self.result_box.setText(
            f"{self._esc(hres.name)} was put back where it was (not registered)."
            if moved
            else f"{self._esc(hres.name)} was not moved by a registration; nothing to reset."
        )
        self.registered.emit(None)
        return moved

    def save_registration(self, path) -> str:
        """Write the registration of the picked HRES layer (else the last result) as JSON; returns the path."""
        hres = self.hres_combo.value
        reg = registration_of(hres) if hres is not None else None
        reg = reg or self.registration
        if reg is None:
            raise InputError("There is no registration to save yet: press Register first (or load one).")
        saved = str(reg.save(path))
        self.controls.show_message(f"Registration saved to {saved}.")
        return saved

    def load_registration(self, path) -> Registration:
        """Read a registration JSON and apply it to the picked HRES layer.

        The file's dimensionality must match the HRES layer, its HRES voxel
        size the HRES voxel field (when filled), and it must be reliable.
        """
        reg = Registration.load(path)
        hres = self.hres_combo.value
        if hres is None:
            raise InputError("Pick the HRES layer to apply the registration to.")
        ndim = spatial_ndim(hres)
        if reg.ndim != ndim:
            raise InputError(
                f"The registration in {path} is {reg.ndim}D but {hres.name!r} is {ndim}D; "
                "pick the HRES it was made for."
            )
        if not reg.ok:
            raise InputError(f"The registration in {path} is marked unreliable ({reg.message}); register again.")
        check_plain_geometry(hres, "HRES")
        if self.hres_voxel.value.strip():
            typed = self.hres_voxel.values(ndim, "HRES")
            if not np.allclose(typed, reg.hres_voxel_um, rtol=0.01):
                raise InputError(
                    f"The registration was made with HRES voxels of {format_um(reg.hres_voxel_um)} µm but the HRES "
                    f"voxel field says {format_um(typed)} µm. Check that you picked the right HRES layer, or correct "
                    "the field."
                )
        notes = []
        lres = self.lres_combo.value
        if lres is not None and lres is not hres and lres.ndim == ndim:
            check_plain_geometry(lres, "LRES")
            notes = self._apply(lres, hres, reg, reg.lres_voxel_um)
            self.lres_voxel.set_values(reg.lres_voxel_um)
        else:
            place_registered(hres, reg)
            self.registration = reg
            self.registered.emit(reg)
        self.hres_voxel.set_values(reg.hres_voxel_um)
        self.result_box.setText(
            f"Loaded from {self._esc(path)}<br>" + self._describe(reg) + "".join(f"<br>{self._esc(n)}" for n in notes)
        )
        return reg

    def _guarded(self, action) -> None:
        """Run a button's action, turning user errors into a notification."""
        try:
            action()
        except ResolveError as exc:
            _notify("error", as_shown(str(exc)))
            self.controls.show_message(as_shown(str(exc)))

    def _reset_clicked(self) -> None:
        self._guarded(self.reset)

    def _save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save registration", "registration.json", "JSON (*.json)")
        if path:
            self._guarded(lambda: self.save_registration(path))

    def _load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load registration", "", "JSON (*.json);;All files (*)")
        if path:
            self._guarded(lambda: self.load_registration(path))
