"""Numbers with units, as people read them, and per-axis values as people type them.

One home for the formatting rules: every message, status line, table and log
formats lengths, shapes, durations, sizes and rates through these functions, so
the same quantity reads the same everywhere (``"3 x 3 x 3 um"``, ``"1 min 05 s"``).
No Qt, napari or torch here: the core, the command line and the widgets all use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from napari_resolve.errors import InputError

#: The micrometre unit: ASCII "um" in logs, messages and JSON (plain terminals), and
#: the sign "µm" in the widgets (Qt renders it).
UM = "um"
MICRO = "µm"


def format_values(values: Iterable[float], sep: str = " x ", digits: int | None = None, *,
                  compact: bool = False, spec: str | None = None) -> str:
    """``(3.0, 1.5, 1.5)`` -> ``"3 x 1.5 x 1.5"``.

    ``digits`` fixes the decimals (``"%.2f"``), ``spec`` gives any format spec
    (``".3g"``); by default the shortest form (``"%g"``). With ``compact``, equal
    values collapse to one (an isotropic voxel, a ratio equal on every axis).
    """
    vals = [float(v) for v in values]
    if compact and vals and len({round(v, 9) for v in vals}) == 1:
        vals = vals[:1]
    fmt = spec or ("g" if digits is None else f".{digits}f")
    return sep.join(f"{v:{fmt}}" for v in vals)


def format_um(values: Iterable[float] | float, sep: str = " x ", *, compact: bool = False,
              digits: int | None = None, unit: str = UM) -> str:
    """A length or per-axis lengths in micrometres: ``(3, 3, 3)`` -> ``"3 x 3 x 3 um"``.

    With ``compact``, equal values collapse to one (``"3 um"``), as for an isotropic
    voxel. ``unit=""`` leaves the unit out (a field that names it already);
    widgets pass :data:`MICRO`.
    """
    vals = [float(values)] if isinstance(values, (int, float)) else values
    text = format_values(vals, sep, digits, compact=compact)
    return f"{text} {unit}" if unit else text


def format_shape(shape: Iterable[int]) -> str:
    """``(48, 48, 48)`` -> ``"48 x 48 x 48"`` (voxels)."""
    return " x ".join(str(int(n)) for n in shape)


def format_duration(seconds: float) -> str:
    """``65`` -> ``"1 min 05 s"``; ``3700`` -> ``"1 h 01 min"``; ``12.4`` -> ``"12 s"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def format_bytes(nbytes: float) -> str:
    """Bytes in GiB, or in MiB where that would read 0.00 GiB."""
    gib = nbytes / 2**30
    return f"{gib:.2f} GiB" if gib >= 0.01 else f"{nbytes / 2**20:.1f} MiB"


def format_rate(voxels_per_s: float) -> str:
    """``2.5e6`` -> ``"2.50 M voxels/s"``; below 0.1 M in k voxels/s."""
    if voxels_per_s >= 1e5:
        return f"{voxels_per_s / 1e6:.2f} M voxels/s"
    return f"{voxels_per_s / 1e3:.1f} k voxels/s"


def _numbers(text: str) -> list[float]:
    """Numbers separated by commas, semicolons or spaces; a trailing um/µm is allowed."""
    text = text.replace(";", ",").replace("µm", "").replace(UM, "")
    return [float(t) for t in text.replace(",", " ").split()]


def parse_per_axis(text: str, ndim: int, what: str, example: str = "'3'") -> tuple[float, ...]:
    """One positive number (all axes) or one per axis, in um, as typed -> ``ndim`` floats.

    Raises
    ------
    InputError
        Naming ``what`` and saying what to write instead.
    """
    axes = "z, y, x" if ndim == 3 else "y, x"
    try:
        numbers = _numbers(text)
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        numbers = numbers * ndim
    if len(numbers) != ndim or not all(math.isfinite(v) and v > 0 for v in numbers):
        raise InputError(
            f"The {what} must be one positive number in um (all axes) or {ndim} ({axes}), "
            f"e.g. {example}; got {text.strip()!r}."
        )
    return tuple(numbers)


def parse_point(text: str, ndim: int, what: str) -> tuple[float, ...] | None:
    """A position typed as ``"z, y, x"`` in um -> floats; empty text -> None."""
    if not text.replace(UM, "").replace("µm", "").strip(" ,;"):
        return None
    try:
        numbers = tuple(_numbers(text))
    except ValueError:
        numbers = ()
    axes = "z, y, x" if ndim == 3 else "y, x"
    if len(numbers) != ndim or not all(math.isfinite(v) for v in numbers):
        raise InputError(f"The {what} must be {ndim} numbers in um ({axes}), or empty; got {text.strip()!r}.")
    return numbers
