"""napari-resolve: learned resolution recovery for 3D microscopy volumes.

The public API is re-exported here lazily (PEP 562): ``import napari_resolve``
loads no Qt, napari or torch, and not even scipy, so that napari's plugin
discovery and scripts that only read files stay quick. The first use of a
name imports its module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from napari_resolve.errors import (
    FileFormatError,
    InputError,
    RegistrationError,
    ResolveError,
    ResolveWarning,
    VoxelSizeError,
)

__version__ = "0.4.0"

# name -> module that defines it
_LAZY = {
    "Volume": "io",
    "read_volume": "io",
    "write_volume": "io",
    "Normalisation": "learn.normalisation",
    "fit_normalisation": "learn.normalisation",
    "Phantom": "phantom",
    "make_phantom": "phantom",
    "write_phantom": "phantom",
    "Registration": "registration",
    "register": "registration",
    "resample_to_grid": "geometry.resample",
    "compare": "measure.similarity",
    "gaussian_resolution": "measure.resolution",
    "frc": "measure.resolution",
    "run_quality": "measure.compare",
    "run_evaluate": "evaluate.batch",
    "Degradation": "learn.degradation",
    "degrade": "learn.degradation",
    "mse": "measure.similarity",
    "psnr": "measure.similarity",
    "ssim": "measure.similarity",
    "ssim_map": "measure.similarity",
    "ms_ssim": "measure.similarity",
    "ms_ssim_map": "measure.similarity",
    "PoreResult": "pores.stats",
    "analyse_pores": "pores.segment",
    "plan_analyse_pores": "pores.segment",
    "iter_analyse_pores": "pores.segment",
    "run_compare_pores": "pores.compare",
    "plan_chunked_pores": "pores.chunked",
    "iter_chunked_pores": "pores.chunked",
    "run_chunked_pores": "pores.chunked",
}

__all__ = [
    "__version__",
    "FileFormatError",
    "InputError",
    "RegistrationError",
    "ResolveError",
    "ResolveWarning",
    "VoxelSizeError",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_resolve' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"napari_resolve.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from napari_resolve.evaluate.batch import run_evaluate  # noqa: F401
    from napari_resolve.geometry.resample import resample_to_grid  # noqa: F401
    from napari_resolve.io import Volume, read_volume, write_volume  # noqa: F401
    from napari_resolve.learn.degradation import Degradation, degrade  # noqa: F401
    from napari_resolve.learn.normalisation import Normalisation, fit_normalisation  # noqa: F401
    from napari_resolve.measure.compare import run_quality  # noqa: F401
    from napari_resolve.measure.resolution import frc, gaussian_resolution  # noqa: F401
    from napari_resolve.measure.similarity import (  # noqa: F401
        compare,
        ms_ssim,
        ms_ssim_map,
        mse,
        psnr,
        ssim,
        ssim_map,
    )
    from napari_resolve.phantom import Phantom, make_phantom, write_phantom  # noqa: F401
    from napari_resolve.pores.chunked import iter_chunked_pores, plan_chunked_pores, run_chunked_pores  # noqa: F401
    from napari_resolve.pores.compare import run_compare_pores  # noqa: F401
    from napari_resolve.pores.segment import analyse_pores, iter_analyse_pores, plan_analyse_pores  # noqa: F401
    from napari_resolve.pores.stats import PoreResult  # noqa: F401
    from napari_resolve.registration import Registration, register  # noqa: F401
