"""One exception family for everything the user can get wrong.

Every message says what was wrong and what to do about it. The command line
prints the message and exits with status 2; widgets show it as a notification.
"""

from __future__ import annotations


class ResolveError(Exception):
    """Base class of all napari-resolve errors meant for the user."""


class InputError(ResolveError, ValueError):
    """An argument or array is unusable (wrong dimensions, NaNs, empty ROI...)."""


class VoxelSizeError(InputError):
    """A voxel size is missing, non-positive or inconsistent."""


class FileFormatError(ResolveError, OSError):
    """A file cannot be read or written (missing, corrupt, unsupported)."""


class RegistrationError(ResolveError):
    """The HRES volume could not be located credibly inside the LRES volume."""


class ResolveWarning(UserWarning):
    """Something was adapted to the input (fewer MS-SSIM scales, a clipped ROI...)."""
