"""The model registry: every network is built by name from a plain config dict.

``build_model("unet25d", width=32)`` makes a network; a checkpoint stores the
name and the config, so :func:`napari_resolve.models.checkpoint.load_checkpoint`
rebuilds it without the original data. Add an architecture by subclassing
:class:`~napari_resolve.models.base.ResolutionModel` in its own module and
listing it in :data:`MODELS`.
"""

from __future__ import annotations

import inspect
from typing import Any

from napari_resolve.errors import InputError
from napari_resolve.learn.config import DEFAULT_MODEL
from napari_resolve.models.base import ResolutionModel
from napari_resolve.models.dfcan import DFCAN
from napari_resolve.models.didn import DIDN
from napari_resolve.models.diffusion import Diffusion
from napari_resolve.models.drln import DRLN
from napari_resolve.models.edsr import EDSR, WDSR
from napari_resolve.models.lres3d import LRES3D
from napari_resolve.models.mimo_unet import MIMOUNet
from napari_resolve.models.multioutput import MultiOutput
from napari_resolve.models.pix2pix import Pix2Pix
from napari_resolve.models.srcnn import SRCNN, SRCNN3D
from napari_resolve.models.unet25d import UNet25D

#: name -> class
MODELS: dict[str, type[ResolutionModel]] = {
    cls.name: cls for cls in (LRES3D, UNet25D, SRCNN, SRCNN3D, EDSR, WDSR, DFCAN, DRLN, DIDN, MIMOUNet,
                                 MultiOutput, Pix2Pix, Diffusion)
}


def model_names() -> list[str]:
    """Registered architecture names."""
    return list(MODELS)


def model_options(name: str) -> dict[str, Any]:
    """The settings of an architecture and their defaults."""
    cls = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.default is not inspect.Parameter.empty
    }


def _lookup(name: str) -> type[ResolutionModel]:
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"Unknown model {name!r}. Available models: {', '.join(MODELS)}.") from None


def build_model(name: str = DEFAULT_MODEL, **config: Any) -> ResolutionModel:
    """Build a registered network.

    Parameters
    ----------
    name : str
        Architecture, one of :func:`model_names`.
    **config
        Architecture settings (see :func:`model_options`); unknown ones raise.

    Returns
    -------
    ResolutionModel

    Raises
    ------
    InputError
        For an unknown name or setting, or an invalid value.
    """
    cls = _lookup(name)
    known = model_options(name)
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise InputError(
            f"Model {name!r} has no setting {', '.join(unknown)}; its settings are "
            + ", ".join(f"{k} (default {v!r})" for k, v in known.items())
            + "."
        )
    return cls(**config)


__all__ = ["DEFAULT_MODEL", "MODELS", "ResolutionModel", "build_model", "model_names", "model_options"]
