"""State shared by the plugin's widgets in one viewer.

The training widget makes a model, the preview widget uses it, the quality
widget compares its output: they meet in one :class:`Session` per viewer. The
registration is not kept here but on the HRES layer itself
(``metadata["napari_resolve"]["registration"]``), so it travels with the layer.
"""

from __future__ import annotations

import weakref
from typing import Any

from psygnal import Signal

from napari_resolve._text import MICRO, format_um, format_values
from napari_resolve.errors import InputError

from ._layers import KEY

_SESSIONS: dict[int, Session] = {}

#: Why a step that runs the model cannot start yet.
NO_MODEL = "There is no model yet: train one in the Training step, or load a model file."


class Session:
    """The current model of one viewer; ``model_changed`` fires when it is replaced."""

    model_changed = Signal(object)

    def __init__(self):
        self.model = None  # a napari_resolve.models.checkpoint.Checkpoint
        self.model_source = ""  # "trained on ..." or the file it was loaded from

    def set_model(self, checkpoint, source: str) -> None:
        self.model = checkpoint
        self.model_source = source
        self.model_changed.emit(checkpoint)

    def load_model(self, path):
        """Read a model file and make it the current model.

        Returns
        -------
        Checkpoint

        Raises
        ------
        FileFormatError
            If the file is missing, damaged or not a napari-resolve model (the
            current model is kept).
        """
        from pathlib import Path

        from napari_resolve.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        self.set_model(ckpt, f"loaded from {Path(path).name}")
        return ckpt

    def require_model(self):
        if self.model is None:
            raise InputError(NO_MODEL)
        return self.model

    def describe_model(self) -> str:
        if self.model is None:
            return "No model yet: train one or load a model file."
        m = self.model
        psnr = f", validation PSNR {m.val_psnr:.2f} dB" if m.val_psnr is not None else ""
        return (
            f"{m.architecture}, ×{format_values(m.ratio, '×', compact=True, spec='.3g')} "
            f"({format_um(m.lres_voxel_um, '×', compact=True, unit='')} → "
            f"{format_um(m.hres_voxel_um, '×', compact=True, unit=MICRO)}), "
            f"{m.iteration} iterations{psnr}; {self.model_source}"
        )


def _real_viewer(viewer):
    """The viewer behind napari's proxies.

    napari hands each dock widget its own ``PublicOnlyProxy`` of the viewer (a
    ``wrapt`` proxy), a different object per dock: keyed on the proxy, each
    dock opened from the Plugins menu would get a session of its own.
    """
    while hasattr(type(viewer), "__wrapped__"):  # a wrapt proxy's class defines it; a viewer's does not
        viewer = viewer.__wrapped__
    return viewer


def session_for(viewer) -> Session:
    """The viewer's session, created on first use and dropped with the viewer.

    One session per viewer, whether ``viewer`` is the viewer itself or one of
    the proxies napari gives to dock widgets.
    """
    viewer = _real_viewer(viewer)
    key = id(viewer)
    if key not in _SESSIONS:
        _SESSIONS[key] = Session()
        weakref.finalize(viewer, _SESSIONS.pop, key, None)
    return _SESSIONS[key]


def registration_of(layer) -> Any:
    """The :class:`~napari_resolve.registration.Registration` stored on an HRES layer, or None."""
    from napari_resolve.registration import Registration

    record = layer.metadata.get(KEY, {}).get("registration")
    return Registration.from_dict(record) if record else None


def require_registration(layer):
    """The layer's registration, checked to still match where the layer is shown."""
    import numpy as np

    reg = registration_of(layer)
    if reg is None:
        raise InputError(
            f"{layer.name!r} is not registered yet. Register it in the 'Data and registration' step first."
        )
    if not reg.ok:
        raise InputError(f"The registration of {layer.name!r} is unreliable ({reg.message}). Register it again.")
    if not (np.allclose(layer.translate, reg.offset_um, atol=1e-6) and np.allclose(layer.scale, reg.scale, rtol=1e-6)):
        raise InputError(
            f"{layer.name!r} was moved or rescaled after registration. Register it again, or press Reset and "
            "Register to put it back."
        )
    return reg


def place_registered(layer, reg) -> None:
    """Show the HRES ``layer`` where ``reg`` says it lies, remembering where it was.

    Only the layer's ``translate`` and ``scale`` change (no copy of the data);
    the geometry before the first registration is kept for :func:`reset_registration`.
    """
    meta = dict(layer.metadata.get(KEY, {}))
    original = {"translate": [float(t) for t in layer.translate], "scale": [float(s) for s in layer.scale]}
    meta.setdefault("original", original)
    meta["registration"] = reg.to_dict()
    layer.metadata = {**layer.metadata, KEY: meta}
    layer.scale = tuple(reg.scale)
    layer.translate = tuple(reg.offset_um)


def reset_registration(layer) -> bool:
    """Put a registered layer back where it was and forget its registration; False if it was not moved."""
    meta = dict(layer.metadata.get(KEY, {}))
    original = meta.pop("original", None)
    meta.pop("registration", None)
    layer.metadata = {**layer.metadata, KEY: meta}
    if original is None:
        return False
    layer.scale = tuple(original["scale"])
    layer.translate = tuple(original["translate"])
    return True
