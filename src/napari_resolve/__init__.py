"""napari-resolve: learned resolution recovery for 3D microscopy volumes.

This module never imports Qt, napari or torch, so that ``import napari_resolve``
stays cheap for scripts and for napari's plugin discovery.
"""

__version__ = "0.1.0"

from napari_resolve.errors import (
    FileFormatError,
    InputError,
    RegistrationError,
    ResolveError,
    ResolveWarning,
    VoxelSizeError,
)

__all__ = [
    "__version__",
    "FileFormatError",
    "InputError",
    "RegistrationError",
    "ResolveError",
    "ResolveWarning",
    "VoxelSizeError",
]
