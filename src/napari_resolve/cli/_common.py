"""What every command shares: logging, progress, the JSON result, output checks, reading inputs."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_resolve.errors import InputError, ResolveError, ResolveWarning


def log(message: str) -> None:
    """Progress and information for the person at the terminal (stderr)."""
    print(message, file=sys.stderr, flush=True)


def run_with_progress(job):
    """Drain a core job (:class:`~napari_resolve.jobs.Progress` records); return its result.

    On a terminal the records rewrite one status line; in a log (not a
    terminal) each new step is one line, so logs stay short.
    """
    from napari_resolve.jobs import drain

    tty = sys.stderr.isatty()
    last_step = None

    def show(rec) -> None:
        nonlocal last_step
        text = f"[{rec.step}/{rec.total}] {rec.message}"
        if tty:
            print(f"\r{text[:100]:<100}", end="", file=sys.stderr, flush=True)
        elif rec.step != last_step:
            log(text)
        last_step = rec.step

    result = drain(job, show)
    if tty:
        print(file=sys.stderr)
    return result


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Our own warnings are notes for the user, not code locations."""
    if issubclass(category, ResolveWarning):
        log(f"note: {message}")
    else:
        _DEFAULT_SHOWWARNING(message, category, filename, lineno, file, line)


_DEFAULT_SHOWWARNING = warnings.showwarning


def emit(payload: dict) -> None:
    """The command's result: one strict JSON object on stdout.

    Non-finite numbers become ``null`` (e.g. the PSNR of identical images is
    infinite), because ``Infinity`` and ``NaN`` are not JSON and strict
    parsers reject them.
    """
    from napari_resolve.io import json_safe

    print(json.dumps(json_safe(payload), indent=2, allow_nan=False))


def voxel_arg(values: Sequence[float] | None) -> tuple[float, ...] | float | None:
    """--voxel takes one value (isotropic) or three (z, y, x)."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def check_output(
    path: str | Path | None, inputs: Sequence[str | Path], overwrite: bool, parameter: str = "output"
) -> Path | None:
    """:func:`napari_resolve.io.check_output` for an optional output flag (None: no output asked for).

    ``parameter`` is the flag's destination, so a message names the flag.
    """
    from napari_resolve.io import check_output as check

    return None if path is None else check(path, inputs=inputs, overwrite=overwrite, parameter=parameter)


def read_input(path: str, voxel, label: str, *, need_voxel: bool = True):
    from napari_resolve.io import read_volume

    vol = read_volume(path, voxel_um=voxel)
    if need_voxel and vol.voxel_um is None:
        flag = {"LRES": "--lres-voxel", "HRES": "--hres-voxel"}.get(label, "--voxel")
        raise InputError(
            f"The voxel size of {label} ({path}) is unknown: the file has no physical-size "
            f"metadata. Give it with {flag} UM (one value, or three for z y x)."
        )
    return vol


def registration_arg(path: str):
    from napari_resolve.registration import Registration

    reg = Registration.load(path)
    if not reg.ok:
        raise ResolveError(
            f"The registration in {path} is marked unreliable ({reg.message}); fix it before training or upscaling."
        )
    return reg


def roi_arg(text: str | None, ndim: int, units: str):
    from napari_resolve.geometry.grid import parse_roi

    return None if text is None else parse_roi(text, ndim, units=units)


def float_arg(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{flag} must be 'otsu' or a number, got {text!r}.") from None

def check_hres_voxel(hres, reg, path: str, override: str | None = None) -> None:
    """The HRES file's voxel size must be the one the registration used.

    ``override`` is the command's flag that sets the HRES voxel size, if it has one.
    """
    if hres.voxel_um is not None and not np.allclose(hres.voxel_um, reg.hres_voxel_um, rtol=0.01):
        from napari_resolve.errors import VoxelSizeError

        raise VoxelSizeError(
            f"{path} has voxels of {hres.voxel_um} um but the registration was made with "
            f"{reg.hres_voxel_um} um: it is not the HRES that was registered, or its voxel size is wrong. "
            "Register this HRES again" + (f", or give its voxel size with {override}." if override else ".")
        )


def read_placed(path: str, voxel, label: str, registration=None, override: str | None = None):
    """Read an input and place it in the LRES world frame, as napari would show it.

    Returns ``(volume, (shape, scale, translate))``: the geometry that
    :func:`napari_resolve.geometry.overlap.overlap_region` and ``plan_overlap`` take.
    An input with a ``registration`` (the HRES) is placed by it (its ``offset_um``
    and ``scale``); any other input by its own voxel size and origin metadata
    (a ``predict`` output carries the origin of its region in the LRES frame).
    """
    vol = read_input(path, voxel, label)
    if registration is None:
        return vol, (vol.shape, tuple(vol.voxel_um), tuple(vol.origin_um))
    check_hres_voxel(vol, registration, path, override)
    if len(registration.offset_um) != vol.ndim:
        raise InputError(
            f"{path} is {vol.ndim}D but the registration places a {len(registration.offset_um)}D HRES; "
            "give the HRES that was registered."
        )
    placed = registration.layer_kwargs()
    return vol, (vol.shape, tuple(placed["scale"]), tuple(placed["translate"]))
