"""One exception family for everything the user can get wrong.

Every message says what was wrong and what to do about it. The command line
prints the message and exits with status 2; widgets show it as a notification.

A message names the *parameter* to change, never a command-line flag or a
widget label, because the same core code serves both: write the parameter as
``{name}`` and list it in ``parameters``::

    raise InputError("The tile is too small; choose a larger {tile}.", parameters=("tile",))

``str(exc)`` shows the parameter's own name (``tile``, as a Python caller types
it); :meth:`ResolveError.render` lets the command line show ``--tile`` and a
widget its field's label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


class ResolveError(Exception):
    """Base class of all napari-resolve errors meant for the user.

    Parameters
    ----------
    message : str
        What was wrong and what to do. ``{name}`` marks a parameter listed in
        ``parameters``; no other braces are interpreted.
    parameters : sequence of str
        The parameters the message names (keyword names of the core function).
    """

    def __init__(self, message: str = "", *args, parameters: Sequence[str] = ()):
        self.template = str(message)
        self.parameters = tuple(parameters)
        super().__init__(self.render(), *args)

    def render(self, name_of: Mapping[str, str] | Callable[[str], str] | None = None) -> str:
        """The message with each parameter written as ``name_of`` says.

        Parameters
        ----------
        name_of : mapping or callable, optional
            Parameter name -> how the reader knows it (``"--tile"``, ``"'Tile size'"``).
            Names a mapping lacks, and every name without ``name_of``, stay as they are.
        """
        text = self.template
        for name in self.parameters:
            if name_of is None:
                shown = name
            elif callable(name_of):
                shown = name_of(name)
            else:
                shown = name_of.get(name, name)
            text = text.replace("{" + name + "}", shown)
        return text

    def prefixed(self, prefix: str) -> ResolveError:
        """The same error (type and parameters) with ``prefix`` before its message, e.g. a file name."""
        return type(self)(prefix + self.template, parameters=self.parameters)


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
