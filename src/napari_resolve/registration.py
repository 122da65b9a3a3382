"""Locate a high-resolution (HRES) scan inside a low-resolution (LRES) scan.

The HRES covers a small sub-volume of the sample; the LRES covers all of it.
:func:`register` finds where the HRES lies and returns a :class:`Registration`
whose ``offset_um`` and ``scale`` are exactly the ``translate`` and ``scale`` of
the HRES layer in napari (the LRES layer has ``scale`` = LRES voxel size and
``translate`` = 0).

This module is one algorithm (template matching, then sub-voxel NCC refinement
and a verdict on its credibility), kept whole so that its steps read in order.

Coordinates
-----------
Arrays are (z, y, x) or (y, x); positions are in micrometres, at voxel centres.
The LRES frame has its origin at the centre of LRES voxel 0, so LRES voxel ``i``
lies at ``i * lres_voxel``. HRES voxel ``q`` lies at ``offset + q * hres_voxel``.

Method
------
1. **Template.** The HRES is brought to the LRES voxel size by exact area
   averaging (what a larger detector pixel integrates): along an axis with
   ``f = lres_voxel / hres_voxel`` HRES voxels per LRES voxel, template voxel
   ``m`` is the mean of the HRES over the HRES-index interval
   ``[m f - 0.5, (m + 1) f - 0.5]`` (a block mean when ``f`` is an integer,
   an interpolated cumulative sum otherwise). Its centre is HRES index
   ``(m + 0.5) f - 0.5``, so template voxel 0 lies ``(lres_voxel - hres_voxel) / 2``
   after HRES voxel 0. Template voxels never reach outside the HRES.
2. **Coarse.** Normalised cross-correlation (NCC) of the template with every
   position of the LRES search window (``skimage.feature.match_template``,
   ``pad_input=False``). The best peak gives the position to one LRES voxel;
   the best separate local maximum gives the ``peak_ratio`` used to detect
   ambiguous matches. A negative peak stronger than every positive one is
   taken as inverted contrast. A window too large for one FFT is searched on
   a block-mean pyramid level first, and its 8 best peaks are re-matched at
   full LRES resolution.
3. **Fine.** The LRES is sampled by cubic B-spline interpolation at the
   template's voxel centres shifted by ``s`` (and, with ``refine_scale``,
   stretched about the template centre by a factor per axis), and the NCC with
   the template is maximised by Nelder-Mead from the sub-voxel parabola fit of
   the coarse peak. Why this and not ``phase_cross_correlation`` on equal
   crops: the template and the LRES differ in blur, noise and contrast; an NCC
   objective is invariant to gain and offset, needs no windowing, uses every
   template voxel, extends to a scale per axis with no change, and its cost
   does not grow with the HRES size (the template has LRES voxels).

   Both the LRES and the template are first smoothed by the same 3-tap kernel
   (Gaussian, sigma 0.75 voxel, truncated at one voxel), and the one-voxel rim
   of the template, whose smoothed value would need data from outside the
   HRES, is left out. Without smoothing, interpolation averages the LRES noise
   between voxel centres, so the NCC rises at half-voxel shifts and biases the
   optimum on noisy data (0.8 HRES voxel at 10 photons per unit intensity on
   the phantom; 0.17 with it). Smoothing only the LRES would instead bias
   matches near strong asymmetric structure (the sample edge): smoothing both
   alike keeps the two sides the same functional of the scene. The reported
   ``ncc`` is computed without smoothing, on the whole template.
4. **Verdict.** The result is ``"unreliable"`` (never silently accepted) when
   the NCC after refinement is below ``min_ncc``, when the best peak sits on
   the border of a search window that was limited by ``search_radius_um``, when
   a separate peak is almost as high as the best, or when the refinement ran
   away (moved more than 1.5 LRES voxels or hit a bound). Problems with the
   inputs themselves raise (:class:`~napari_resolve.errors.RegistrationError`,
   :class:`~napari_resolve.errors.InputError`).

The HRES must lie wholly inside the LRES field; the input arrays are never
modified.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, optimize

from napari_resolve._text import format_values
from napari_resolve._validate import as_image, per_axis, voxel_ratio, voxel_tuple
from napari_resolve.errors import (
    FileFormatError,
    InputError,
    RegistrationError,
    ResolveWarning,
    VoxelSizeError,
)

__all__ = ["Registration", "register"]

#: A separate peak at least this fraction of the best one makes the match ambiguous.
MAX_PEAK_RATIO = 0.9
#: Refinement may move the coarse position by at most this many LRES voxels.
MAX_REFINE_SHIFT = 1.5
#: Bound of the refinement's search box around the coarse position (LRES voxels).
REFINE_SHIFT_BOUND = 2.0
#: Allowed relative change of the HRES voxel size with ``refine_scale``.
SCALE_BOUND = 0.15
#: Above this many voxels in the LRES search window, the coarse search runs on a
#: block-mean pyramid level (one FFT of the window costs about 50 bytes a voxel).
MAX_SEARCH_VOXELS = 2**23
#: Pyramid peaks re-matched at full resolution.
PYRAMID_CANDIDATES = 8
#: At most this many template voxels enter the refinement's NCC (a regular subset beyond).
MAX_REFINE_POINTS = 300_000
#: The template must have at least this many voxels for a meaningful correlation.
MIN_TEMPLATE_VOXELS = 27

#: Smoothing of both the LRES and the template during refinement: a Gaussian of this
#: sigma (LRES voxels), truncated at one voxel (a 3-tap kernel). Interpolating noise
#: lowers its variance between voxel centres, which pulls an NCC optimum towards
#: half-voxel shifts on noisy data; smoothing first makes the noise nearly
#: shift-invariant.
REFINE_SMOOTH = 0.75
_SMOOTH_TRUNCATE = 4 / 3

_FORMAT = "napari-resolve.registration"
_FORMAT_VERSION = 1
_AXES = {2: "yx", 3: "zyx"}


# --------------------------------------------------------------------------- result


@dataclass
class Registration:
    """Where the HRES lies in the LRES frame, and how far to trust it.

    Attributes
    ----------
    offset_um : tuple of float
        Position (um, LRES frame) of the centre of HRES voxel 0: the HRES
        layer's ``translate`` in napari.
    scale : tuple of float
        HRES voxel size in um: the HRES layer's ``scale``. Equal to
        ``hres_voxel_um`` unless ``refine_scale`` refined it.
    ncc : float
        Normalised cross-correlation of the HRES (area-averaged to LRES voxels)
        with the LRES after alignment, at LRES resolution. For inverted
        contrast it is the correlation with the negated HRES.
    status : str
        ``"ok"`` or ``"unreliable"``.
    message : str
        Human-readable verdict; for an unreliable result, what was wrong and
        what to do.
    lres_voxel_um, hres_voxel_um : tuple of float
        The voxel sizes used (``hres_voxel_um`` is the nominal, input size).
    coarse_offset_um : tuple of float
        HRES offset from the best whole-LRES-voxel template position.
    coarse_ncc : float
        NCC at that position.
    peak_ratio : float
        Height of the best separate local maximum of the NCC map relative to
        the best peak (0 when there is none); near 1 means ambiguous.
    inverted : bool
        The HRES matched with inverted contrast.
    search_lo_um, search_hi_um : tuple of float
        The range of HRES offsets that was searched.
    refine_shift_voxels : tuple of float
        How far refinement moved the template centre from the coarse position
        (LRES voxels).
    template_shape : tuple of int
        Shape of the HRES area-averaged to LRES voxels.
    seconds : float
        Wall time of the registration.
    problems : tuple of str
        What made the result unreliable (empty when ok).
    """

    offset_um: tuple[float, ...]
    scale: tuple[float, ...]
    ncc: float
    status: str
    message: str
    lres_voxel_um: tuple[float, ...]
    hres_voxel_um: tuple[float, ...]
    coarse_offset_um: tuple[float, ...]
    coarse_ncc: float = float("nan")
    peak_ratio: float = 0.0
    inverted: bool = False
    search_lo_um: tuple[float, ...] = ()
    search_hi_um: tuple[float, ...] = ()
    refine_shift_voxels: tuple[float, ...] = ()
    template_shape: tuple[int, ...] = ()
    seconds: float = 0.0
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the registration can be trusted."""
        return self.status == "ok"

    @property
    def ndim(self) -> int:
        return len(self.offset_um)

    def require_ok(self) -> Registration:
        """Return ``self`` if trustworthy, else raise :class:`RegistrationError`."""
        if not self.ok:
            raise RegistrationError(self.message)
        return self

    def layer_kwargs(self) -> dict[str, list[float]]:
        """``translate`` and ``scale`` that put the HRES layer in place in napari."""
        return {"translate": list(self.offset_um), "scale": list(self.scale)}

    # ------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of plain floats, ints, lists and strings."""
        d: dict[str, Any] = {"format": _FORMAT, "version": _FORMAT_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [_plain(v) for v in value]
            else:
                value = _plain(value)
            d[f.name] = value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Registration:
        """Rebuild from :meth:`to_dict` output.

        Raises
        ------
        RegistrationError
            If ``d`` is not a registration record (missing or invalid values).
        """
        if not isinstance(d, dict):
            raise RegistrationError(f"A registration record must be a JSON object, got {type(d).__name__}.")
        fmt = d.get("format", _FORMAT)
        if fmt != _FORMAT:
            raise RegistrationError(f"This is a {fmt!r} record, not a registration ({_FORMAT!r}).")
        required = (
            "offset_um", "scale", "ncc", "status", "message",
            "lres_voxel_um", "hres_voxel_um", "coarse_offset_um",
        )  # fmt: skip
        missing = [k for k in required if k not in d]
        if missing:
            raise RegistrationError(
                f"The registration record lacks {', '.join(missing)}. "
                "Run the registration again to recreate it."
            )
        kwargs: dict[str, Any] = {}
        try:
            for f in fields(cls):
                if f.name not in d:
                    continue
                value = d[f.name]
                if f.name in ("status", "message"):
                    kwargs[f.name] = str(value)
                elif f.name == "problems":
                    kwargs[f.name] = tuple(str(v) for v in value)
                elif f.name == "inverted":
                    kwargs[f.name] = bool(value)
                elif f.name == "template_shape":
                    kwargs[f.name] = tuple(int(v) for v in value)
                elif f.name in ("ncc", "coarse_ncc", "peak_ratio", "seconds"):
                    kwargs[f.name] = float("nan") if value is None else float(value)
                else:
                    kwargs[f.name] = tuple(float(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise RegistrationError(f"The registration record has an invalid value: {exc}.") from exc
        ndim = len(kwargs["offset_um"])
        for key in ("scale", "lres_voxel_um", "hres_voxel_um", "coarse_offset_um"):
            if len(kwargs[key]) != ndim:
                raise RegistrationError(
                    f"The registration record's {key} has {len(kwargs[key])} values but offset_um has {ndim}."
                )
        if ndim not in (2, 3) or not all(math.isfinite(v) for v in kwargs["offset_um"] + kwargs["scale"]):
            raise RegistrationError(
                "The registration record's offset_um or scale is not a finite 2D/3D value."
            )
        try:
            voxel_ratio(kwargs["lres_voxel_um"], kwargs["hres_voxel_um"])
        except VoxelSizeError as exc:
            raise RegistrationError(f"The registration record is not usable: {exc}") from exc
        if kwargs["status"] not in ("ok", "unreliable"):
            raise RegistrationError(
                f"The registration record's status must be 'ok' or 'unreliable', got {kwargs['status']!r}."
            )
        return cls(**kwargs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the registration as a JSON file (atomically) and return its path."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise FileFormatError(f"Cannot write the registration to {path}: {exc}.") from exc
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Registration:
        """Read a registration written by :meth:`save`.

        Raises
        ------
        FileFormatError
            If the file is missing, unreadable, not JSON or not a registration.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise FileFormatError(
                f"Registration file {path} does not exist. Check the path or run the registration first."
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"Cannot read registration file {path}: {exc}.") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FileFormatError(
                f"Registration file {path} is not valid JSON ({exc}). It may be truncated or "
                "not a registration file; run the registration again to recreate it."
            ) from exc
        try:
            return cls.from_dict(data)
        except RegistrationError as exc:
            raise FileFormatError(f"Registration file {path} is corrupt: {exc}") from exc


def _plain(value: Any) -> Any:
    """A JSON-safe plain Python value (NaN and infinities become None)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


# --------------------------------------------------------------------- resampling


def area_downsample(
    image: np.ndarray, factors: Sequence[float], shape: Sequence[int] | None = None
) -> np.ndarray:
    """Average ``image`` over blocks of ``factors`` voxels (non-integer allowed).

    Output voxel ``m`` on an axis with factor ``f`` is the exact mean of the
    input, taken as piecewise constant, over input-index interval
    ``[m f - 0.5, (m + 1) f - 0.5]``; its centre is input index
    ``(m + 0.5) f - 0.5``. ``shape`` defaults to ``floor(n / f)`` per axis, so
    that no output voxel reaches outside the input.

    Returns
    -------
    ndarray of float64
    """
    if shape is None:
        shape = tuple(math.floor(n / f + 1e-9) for n, f in zip(image.shape, factors))
    out = np.asarray(image)  # float64 from the first reduction on, without a full copy
    for ax, (f, n) in enumerate(zip(factors, shape)):
        f = float(f)
        if n * f > out.shape[ax] + 1e-6:
            raise InputError(f"{n} blocks of {f} voxels do not fit in an axis of {out.shape[ax]}.")
        fi = round(f)
        if abs(f - fi) < 1e-9 and fi >= 1:
            x = out[(slice(None),) * ax + (slice(0, n * fi),)]
            out = x.reshape(x.shape[:ax] + (n, fi) + x.shape[ax + 1 :]).mean(axis=ax + 1, dtype=np.float64)
        else:
            out = _interval_mean(out, ax, np.arange(n) * f, np.arange(1, n + 1) * f)
    return np.asarray(out, dtype=np.float64)


def _interval_mean(a: np.ndarray, axis: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of piecewise-constant ``a`` over ``[lo, hi]`` along ``axis``.

    ``lo`` and ``hi`` are in edge units: voxel ``k`` spans ``[k, k + 1]``.
    """
    n = a.shape[axis]
    cum = np.cumsum(a, axis=axis, dtype=np.float64)
    zero = np.zeros_like(np.take(cum, [0], axis=axis))
    cum = np.concatenate([zero, cum], axis=axis)

    def integral(t: np.ndarray) -> np.ndarray:
        t = np.clip(t, 0.0, n)
        i = np.minimum(np.floor(t).astype(int), n - 1)
        w = (t - i).reshape((-1,) + (1,) * (a.ndim - 1 - axis))
        return np.take(cum, i, axis=axis) * (1 - w) + np.take(cum, i + 1, axis=axis) * w

    width = (hi - lo).reshape((-1,) + (1,) * (a.ndim - 1 - axis))
    return (integral(hi) - integral(lo)) / width


def _block_mean(a: np.ndarray, b: Sequence[int]) -> np.ndarray:
    """Integer block mean (remainder cropped)."""
    shape = tuple(s // k for s, k in zip(a.shape, b))
    x = a[tuple(slice(0, s * k) for s, k in zip(shape, b))]
    split = [d for s, k in zip(shape, b) for d in (s, k)]
    return x.reshape(split).mean(axis=tuple(range(1, 2 * len(shape), 2)))


def _match(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """NCC of ``template`` at every position where it fits wholly in ``image``."""
    from skimage.feature import match_template

    result = match_template(image.astype(np.float32), template.astype(np.float32), pad_input=False)
    return np.nan_to_num(np.asarray(result, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


# --------------------------------------------------------------------- helpers


def _fmt(values: Sequence[float], digits: int = 2) -> str:
    """``(25.95, 7.00, 24.01)``: a position or size as the messages show it (z, y, x)."""
    return f"({format_values(values, ', ', digits)})"


def _local_maxima(values: np.ndarray) -> np.ndarray:
    """Boolean mask of voxels not lower than any of their neighbours."""
    return values >= ndimage.maximum_filter(values, size=3, mode="nearest")


def _second_peak(score: np.ndarray, peak: Sequence[int], exclude: Sequence[int]) -> float:
    """Highest local maximum of ``score`` outside a box of ``exclude`` around ``peak``."""
    mask = _local_maxima(score)
    box = tuple(slice(max(0, p - r), p + r + 1) for p, r in zip(peak, exclude))
    mask[box] = False
    return float(score[mask].max()) if mask.any() else float("-inf")


def _top_peaks(score: np.ndarray, count: int, exclude: int) -> list[np.ndarray]:
    """Positions of the ``count`` highest local maxima, each more than ``exclude`` apart."""
    mask = _local_maxima(score)
    idx = np.argwhere(mask)
    order = np.argsort(-score[mask], kind="stable")
    peaks: list[np.ndarray] = []
    for i in order:
        p = idx[i]
        if all(np.max(np.abs(p - q)) > exclude for q in peaks):
            peaks.append(p)
            if len(peaks) == count:
                break
    return peaks


def _parabola(values: np.ndarray, peak: Sequence[int]) -> np.ndarray:
    """Sub-voxel peak position by a 3-point parabola per axis (0 at edges)."""
    delta = np.zeros(len(peak))
    for ax, p in enumerate(peak):
        if 0 < p < values.shape[ax] - 1:
            idx = list(peak)
            idx[ax] = p - 1
            a = values[tuple(idx)]
            idx[ax] = p + 1
            c = values[tuple(idx)]
            b = values[tuple(peak)]
            den = a - 2 * b + c
            if den < 0:
                delta[ax] = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return delta


# --------------------------------------------------------------------- register


def register(
    lres,
    hres,
    lres_voxel_um,
    hres_voxel_um,
    *,
    init_offset_um=None,
    search_radius_um=None,
    refine_scale: bool = False,
    min_ncc: float = 0.5,
    progress: Callable[[str], Any] | None = None,
) -> Registration:
    """Locate the HRES scan inside the LRES scan.

    Parameters
    ----------
    lres : array-like, 2D (y, x) or 3D (z, y, x)
        The low-resolution scan of the whole field.
    hres : array-like, same ndim
        The high-resolution scan of a sub-volume lying wholly inside the LRES field.
    lres_voxel_um, hres_voxel_um : float or sequence of float
        Voxel sizes in um (one value: isotropic; else one per axis). Their
        ratio need not be an integer.
    init_offset_um : sequence of float, optional
        A guess of the result's ``offset_um`` (e.g. from stage positions). With
        it, only offsets within ``search_radius_um`` of the guess are searched.
    search_radius_um : float or sequence of float, optional
        Half-width of the searched offset range per axis, in um. Default with
        ``init_offset_um``: 5 LRES voxels or a quarter of the HRES extent,
        whichever is larger. Ignored (with a warning) without ``init_offset_um``.
    refine_scale : bool
        Also refine the HRES voxel size per axis (within +-15 %), for when the
        nominal size is not exact. Axes on which the HRES spans fewer than 4
        LRES voxels keep their nominal size (too short to measure it).
    min_ncc : float
        Smallest NCC after refinement that counts as a match.
    progress : callable(str), optional
        Called with a short message at each stage.

    Returns
    -------
    Registration
        With ``status == "unreliable"`` and an explanatory ``message`` when the
        match is not credible (low NCC, peak on the search border, ambiguous
        peaks, refinement ran away). Use :meth:`Registration.require_ok` to
        turn that into an exception.

    Raises
    ------
    InputError
        Unusable arrays (not 2D/3D, NaN or infinite values, different ndim,
        constant HRES) or arguments.
    VoxelSizeError
        A voxel size is missing, non-positive or has the wrong length, or the
        HRES voxel is not smaller than the LRES voxel (the scans are swapped).
    RegistrationError
        The HRES is larger than the LRES, too small to match, or cannot fit in
        the search window.
    """
    t_start = time.perf_counter()

    def report(msg: str) -> None:
        if progress is not None:
            progress(msg)

    geo, min_ncc = _check_inputs(lres, hres, lres_voxel_um, hres_voxel_um, min_ncc)
    window = _search_window(geo, init_offset_um, search_radius_um)

    # ---- template
    report(f"Averaging HRES {tuple(int(h) for h in geo.hres.shape)} to LRES voxels")
    template = area_downsample(geo.hres, geo.f, geo.nt)
    if float(template.std()) <= 1e-12 * max(1.0, float(np.abs(template).max())):
        raise InputError("The HRES is constant; there is nothing to locate it by.")

    # ---- coarse search, fine refinement, verdict
    coarse = _coarse_search(geo, window, template, report)
    on_border = window.on_border(coarse.p, geo.axes)
    report("Refining to sub-voxel precision")
    fine = _refine(geo, template, coarse, refine_scale)
    status, message, problems = _verdict(geo, coarse, fine, on_border, min_ncc, refine_scale)

    seconds = time.perf_counter() - t_start
    report(message)
    return Registration(
        offset_um=tuple(float(v) for v in fine.offset),
        scale=tuple(float(v) for v in fine.scale),
        ncc=float(fine.ncc),
        status=status,
        message=message,
        lres_voxel_um=tuple(float(v) for v in geo.vl),
        hres_voxel_um=tuple(float(v) for v in geo.vh),
        coarse_offset_um=tuple(float(v) for v in geo.offset_of(coarse.p)),
        coarse_ncc=coarse.ncc,
        peak_ratio=float(coarse.peak_ratio),
        inverted=bool(coarse.inverted),
        search_lo_um=tuple(float(v) for v in geo.offset_of(window.lo)),
        search_hi_um=tuple(float(v) for v in geo.offset_of(window.hi)),
        refine_shift_voxels=tuple(float(v) for v in fine.shift),
        template_shape=tuple(int(n) for n in geo.nt),
        seconds=float(seconds),
        problems=tuple(problems),
    )


# ------------------------------------------------------------ register: inputs


@dataclass(frozen=True, eq=False)
class _Geometry:
    """Validated inputs of :func:`register` and where the template lies in the HRES.

    Vectors are numpy arrays with one value per axis, (z, y, x) or (y, x).
    """

    lres: np.ndarray  #: the LRES, as validated by ``as_image``
    hres: np.ndarray  #: the HRES, likewise
    axes: str  #: axis names, ``"zyx"`` or ``"yx"``
    vl: np.ndarray  #: LRES voxel size (um)
    vh: np.ndarray  #: nominal HRES voxel size (um)
    f: np.ndarray  #: HRES voxels per LRES voxel
    nt: np.ndarray  #: template shape (LRES voxels)
    extent_h: np.ndarray  #: HRES field (um)
    d0: np.ndarray  #: template voxel 0 lies ``d0`` um after HRES voxel 0
    qc: np.ndarray  #: the template centre lies ``qc`` HRES voxels after HRES voxel 0
    half: np.ndarray  #: template centre, in template (= LRES) voxels

    @property
    def ndim(self) -> int:
        return len(self.axes)

    def offset_of(self, p: np.ndarray) -> np.ndarray:
        """HRES offset (um, LRES frame) when template voxel 0 lies at LRES index ``p``."""
        return p * self.vl - self.d0


def _check_inputs(lres, hres, lres_voxel_um, hres_voxel_um, min_ncc) -> tuple[_Geometry, float]:
    """Validate the arguments of :func:`register`.

    Returns the :class:`_Geometry` of the HRES in the LRES and ``min_ncc`` as a
    float; raises :class:`InputError`, :class:`VoxelSizeError` or
    :class:`RegistrationError` as :func:`register` documents (a VoxelSizeError
    also when the HRES voxel is not the smaller one).
    """
    lres_arr = as_image(lres, "LRES")
    hres_arr = as_image(hres, "HRES")
    if lres_arr.ndim != hres_arr.ndim:
        raise InputError(
            f"LRES is {lres_arr.ndim}D {lres_arr.shape} but HRES is {hres_arr.ndim}D "
            f"{hres_arr.shape}; both must be 2D images or both 3D volumes."
        )
    ndim = lres_arr.ndim
    axes = _AXES[ndim]
    vl = np.array(voxel_tuple(lres_voxel_um, ndim, "LRES voxel size"))
    vh = np.array(voxel_tuple(hres_voxel_um, ndim, "HRES voxel size"))
    if not -1.0 <= float(min_ncc) <= 1.0:
        raise InputError(f"{{min_ncc}} must be between -1 and 1, got {min_ncc}.", parameters=("min_ncc",))
    min_ncc = float(min_ncc)

    f = np.array(voxel_ratio(vl, vh, axes=axes))  # HRES voxels per LRES voxel; refuses a coarser HRES
    L = np.array(lres_arr.shape)
    H = np.array(hres_arr.shape)
    extent_l = L * vl
    extent_h = H * vh
    too_big = [axes[a] for a in range(ndim) if extent_h[a] > extent_l[a] * (1 + 1e-6)]
    if too_big:
        raise RegistrationError(
            f"The HRES field {_fmt(extent_h, 1)} um is larger than the LRES field "
            f"{_fmt(extent_l, 1)} um on axis {', '.join(too_big)}, so it cannot lie inside it. "
            "Check the voxel sizes (and that LRES and HRES are not swapped), or crop the HRES."
        )
    nt = np.floor(H / f + 1e-9).astype(int)
    if np.any(nt < 1) or int(np.prod(nt)) < MIN_TEMPLATE_VOXELS:
        raise RegistrationError(
            f"The HRES {tuple(int(h) for h in H)} covers only {tuple(int(n) for n in nt)} LRES voxels, too few "
            f"to locate it (at least one per axis and {MIN_TEMPLATE_VOXELS} in all). "
            "Use a larger HRES region or check the voxel sizes."
        )

    # Template voxel 0 lies d0 after HRES voxel 0; its centre voxel qc HRES voxels after.
    d0 = (vl - vh) / 2
    qc = (nt * f - 1) / 2
    half = (nt - 1) / 2  # template centre, in template (= LRES) voxels
    geo = _Geometry(lres_arr, hres_arr, axes, vl, vh, f, nt, extent_h, d0, qc, half)
    return geo, min_ncc


# ------------------------------------------------------ register: search window


@dataclass(frozen=True, eq=False)
class _Window:
    """The searched LRES indices of template voxel 0: ``lo`` to ``hi`` inclusive.

    ``limited_lo`` and ``limited_hi`` mark the sides (per axis) that were cut
    by ``search_radius_um`` rather than by the LRES field.
    """

    lo: np.ndarray
    hi: np.ndarray
    limited_lo: np.ndarray
    limited_hi: np.ndarray

    def on_border(self, p: np.ndarray, axes: str) -> list[str]:
        """Names of the axes on which ``p`` lies on a side limited by the radius."""
        return [
            axes[a]
            for a in range(len(axes))
            if (p[a] == self.lo[a] and self.limited_lo[a]) or (p[a] == self.hi[a] and self.limited_hi[a])
        ]


def _search_window(geo: _Geometry, init_offset_um, search_radius_um) -> _Window:
    """The :class:`_Window` to search, from the optional initial offset and radius.

    Without ``init_offset_um`` it is every position at which the template fits
    in the LRES (and a ``search_radius_um`` is ignored with a warning). Raises
    :class:`RegistrationError` when no position is both within the radius and
    inside the LRES.
    """
    ndim, vl, d0 = geo.ndim, geo.vl, geo.d0
    last = np.array(geo.lres.shape) - geo.nt  # largest index at which the template fits
    if init_offset_um is None:
        if search_radius_um is not None:
            warnings.warn(
                "search_radius_um is ignored without init_offset_um; the whole LRES is searched.",
                ResolveWarning,
                stacklevel=3,  # the caller of register()
            )
        return _Window(np.zeros(ndim, int), last.copy(), np.zeros(ndim, bool), np.zeros(ndim, bool))
    init = np.array(per_axis(init_offset_um, ndim, "The initial offset", minimum="any", parameter="init_offset_um"))
    if search_radius_um is None:
        radius = np.maximum(5 * vl, 0.25 * geo.extent_h)
    else:
        radius = np.array(per_axis(search_radius_um, ndim, "The search radius", minimum="non-negative",
                                  parameter="search_radius_um"))
    p_init = (init + d0) / vl
    # One voxel of margin, so that a true position inside the radius never
    # shows as a border peak.
    want_lo = np.floor(p_init - radius / vl).astype(int) - 1
    want_hi = np.ceil(p_init + radius / vl).astype(int) + 1
    lo = np.maximum(want_lo, 0)
    hi = np.minimum(want_hi, last)
    if np.any(lo > hi):
        raise RegistrationError(
            f"The HRES cannot lie within {_fmt(radius, 1)} um ({{search_radius_um}}) of the initial offset "
            f"{_fmt(init, 1)} um ({{init_offset_um}}) and inside the LRES field: offsets from {_fmt(-d0, 1)} to "
            f"{_fmt(last * vl - d0, 1)} um are possible. Check the initial offset, its "
            "units (um, LRES frame) and the voxel sizes, or search without it.",
            parameters=("search_radius_um", "init_offset_um"),
        )
    return _Window(lo, hi, want_lo > 0, want_hi < last)


# ------------------------------------------------------- register: coarse search


@dataclass(frozen=True, eq=False)
class _CoarseMap:
    """NCC map around the best match, from the direct or the pyramid search.

    ``fine_map`` is the sign-corrected full-resolution NCC map (its maximum is
    the best match) whose element 0 lies at window index ``origin``.
    """

    best: float  #: sign-corrected NCC of the best peak
    second: float  #: sign-corrected NCC of the best separate peak (-inf if none)
    sign: float  #: -1.0 for inverted contrast, else 1.0
    fine_map: np.ndarray
    origin: np.ndarray


@dataclass(frozen=True, eq=False)
class _Coarse:
    """Result of the coarse search (whole LRES voxels, plus a parabola fit)."""

    p: np.ndarray  #: LRES index of template voxel 0 at the best peak
    delta: np.ndarray  #: sub-voxel parabola offset of the peak (LRES voxels)
    ncc: float  #: NCC at ``p``
    peak_ratio: float  #: best separate peak / best peak (1 when the best is not positive)
    sign: float  #: -1.0 for inverted contrast, else 1.0

    @property
    def inverted(self) -> bool:
        return self.sign < 0


def _coarse_search(
    geo: _Geometry, window: _Window, template: np.ndarray, report: Callable[[str], None]
) -> _Coarse:
    """Template-match over the search window, on a pyramid level if it is too large.

    Takes the geometry, the :class:`_Window` and the template (LRES voxels);
    returns the best peak as a :class:`_Coarse`.
    """
    lo, hi, nt = window.lo, window.hi, geo.nt
    n_positions = int(np.prod(hi - lo + 1))
    region = geo.lres[tuple(slice(a, b + n) for a, b, n in zip(lo, hi, nt))]
    # Pyramid: halve axes (keeping 6+ template voxels) until one FFT is affordable.
    level = np.ones(geo.ndim, int)
    while region.size / np.prod(level) > MAX_SEARCH_VOXELS:
        can = nt // (2 * level) >= 6
        if not can.any():
            break
        level[can] *= 2
    if np.all(level == 1):
        report(f"Searching {n_positions} positions")
        found = _match_direct(region, template)
    else:
        report(f"Searching {n_positions} positions on a 1:{'x'.join(map(str, level))} pyramid level")
        found = _match_pyramid(region, template, level, hi - lo)
    best_value, fine_map = found.best, found.fine_map
    peak_ratio = max(0.0, found.second / best_value) if best_value > 0 else 1.0
    local = np.array(np.unravel_index(fine_map.argmax(), fine_map.shape))
    return _Coarse(
        p=lo + found.origin + local,
        delta=_parabola(fine_map, tuple(local)),
        ncc=float(fine_map[tuple(local)]),
        peak_ratio=peak_ratio,
        sign=found.sign,
    )


def _match_direct(region: np.ndarray, template: np.ndarray) -> _CoarseMap:
    """NCC of ``template`` at every position in ``region``, in one FFT.

    A negative peak stronger than every positive one means inverted contrast.
    """
    coarse_map = _match(region, template)
    best_pos = np.unravel_index(coarse_map.argmax(), coarse_map.shape)
    best_neg = np.unravel_index(coarse_map.argmin(), coarse_map.shape)
    inverted = bool(-coarse_map[best_neg] > coarse_map[best_pos])
    sign = -1.0 if inverted else 1.0
    coarse_peak = np.array(best_neg if inverted else best_pos)
    best_value = sign * float(coarse_map[tuple(coarse_peak)])
    second = _second_peak(np.abs(coarse_map), tuple(coarse_peak), (3,) * region.ndim)
    return _CoarseMap(best_value, second, sign, sign * coarse_map, np.zeros(region.ndim, int))


def _match_pyramid(
    region: np.ndarray, template: np.ndarray, level: np.ndarray, last: np.ndarray
) -> _CoarseMap:
    """Match on a block-mean pyramid ``level``, then re-match the best peaks in full.

    ``last`` is the largest position of template voxel 0 in ``region``.
    """
    nt = template.shape
    coarse_map = _match(_block_mean(region, level), _block_mean(template, level))
    # The few best pyramid peaks are each re-matched at full resolution (blocks
    # may be misaligned by up to a block), so that a template made small by the
    # pyramid cannot pick a wrong peak.
    candidates = []
    for c in _top_peaks(np.abs(coarse_map), PYRAMID_CANDIDATES, exclude=2):
        c_sign = 1.0 if coarse_map[tuple(c)] >= 0 else -1.0
        origin = np.maximum(c * level - level, 0)
        sub_hi = np.minimum(c * level + level, last)
        sub = region[tuple(slice(a, b + n) for a, b, n in zip(origin, sub_hi, nt))]
        m = c_sign * _match(sub, template)
        local = np.array(np.unravel_index(m.argmax(), m.shape))
        candidates.append((float(m[tuple(local)]), c_sign, origin, m, origin + local))
    candidates.sort(key=lambda t: -t[0])
    best_value, sign, fine_origin, fine_map, best_at = candidates[0]
    others = [v for v, _, _, _, at in candidates[1:] if np.max(np.abs(at - best_at)) > 3]
    second = max(others, default=float("-inf"))
    return _CoarseMap(best_value, second, sign, fine_map, fine_origin)


# ---------------------------------------------------------- register: refinement


@dataclass(frozen=True, eq=False)
class _Samples:
    """One side of the refinement's NCC: LRES spline coefficients and template samples.

    ``tvec`` holds the selected template voxels, centred and of unit norm;
    ``rel`` their positions per axis relative to the template centre (template
    voxels); ``shape`` the shape of that selection.
    """

    coeffs: np.ndarray
    tvec: np.ndarray
    rel: list[np.ndarray]
    shape: tuple[int, ...]


def _template_samples(coeffs: np.ndarray, values: np.ndarray, trim: np.ndarray, half: np.ndarray) -> _Samples:
    """The template side of the refinement's NCC, paired with the LRES ``coeffs``.

    Takes the template ``values`` less a rim of ``trim`` voxels, on a regular
    subset of at most :data:`MAX_REFINE_POINTS` voxels, and the template
    centre ``half``; returns them as :class:`_Samples`.
    """
    ndim = values.ndim
    inner = np.array(values.shape) - 2 * trim
    stride = np.ones(ndim, int)
    while np.prod(np.ceil(inner / stride)) > MAX_REFINE_POINTS:
        stride[np.argmax(inner / stride)] += 1
    sel = tuple(slice(t, n - t, s) for t, n, s in zip(trim, values.shape, stride))
    tv = values[sel]
    vec = (tv - tv.mean()).ravel()
    vec /= max(math.sqrt(float(np.square(vec).sum())), 1e-300)
    # Template voxel positions relative to the template centre.
    rel = [np.arange(n)[s] - h for n, s, h in zip(values.shape, sel, half)]
    return _Samples(coeffs, vec, rel, tv.shape)


class _NccObjective:
    """The refinement's NCC as a function of the parameter vector ``x``.

    ``x`` is the shift of the template from the coarse position (LRES voxels,
    one per axis), followed by one scale parameter per axis in ``scale_axes``
    (in units that move the template edge by one voxel). The LRES around the
    coarse position is cropped and turned into cubic B-spline coefficients
    once, both raw and smoothed (see the module docstring).
    """

    def __init__(
        self, geo: _Geometry, template: np.ndarray, p_coarse: np.ndarray, sign: float, scale_axes: list[int]
    ) -> None:
        ndim, nt, half = geo.ndim, geo.nt, geo.half
        self.ndim, self.sign, self.scale_axes = ndim, sign, scale_axes
        self.centre0 = p_coarse + half  # LRES index of the template centre, coarse
        self.scale_unit = np.maximum(half, 1.0)  # a unit of the scale parameter moves the edge one voxel
        margin = math.ceil(REFINE_SHIFT_BOUND + SCALE_BOUND * float(half.max())) + 4
        self.c_lo = np.maximum(np.floor(p_coarse - margin).astype(int), 0)
        c_hi = np.minimum(np.ceil(p_coarse + nt - 1 + margin).astype(int) + 1, np.array(geo.lres.shape))
        crop = geo.lres[tuple(slice(a, b) for a, b in zip(self.c_lo, c_hi))]
        crop = crop.astype(np.float64)
        coeffs_raw = ndimage.spline_filter(crop, order=3, mode="mirror")
        # Smooth the LRES and the template alike, and compare only template voxels
        # whose smoothed value needs no data from outside the HRES: both sides are
        # then the same functional of the scene, which keeps the optimum unbiased.
        reach = math.ceil(_SMOOTH_TRUNCATE * REFINE_SMOOTH)
        sigma = np.where(nt >= 2 * reach + 4, REFINE_SMOOTH, 0.0)
        trim = np.where(sigma > 0, reach, 0)
        smoothed = ndimage.gaussian_filter(crop, sigma, mode="mirror", truncate=_SMOOTH_TRUNCATE)
        coeffs_smooth = ndimage.spline_filter(smoothed, order=3, mode="mirror")
        t_smooth = ndimage.gaussian_filter(template, sigma, mode="mirror", truncate=_SMOOTH_TRUNCATE)
        self.smooth = _template_samples(coeffs_smooth, t_smooth, trim, half)
        self.raw = _template_samples(coeffs_raw, template, np.zeros(ndim, int), half)

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The shift (LRES voxels) and the scale factor per axis encoded in ``x``."""
        shift = x[: self.ndim]
        k = np.ones(self.ndim)
        k[self.scale_axes] += x[self.ndim :] / self.scale_unit[self.scale_axes]
        return shift, k

    def ncc(self, x: np.ndarray, smooth: bool = True) -> float:
        """Sign-corrected NCC at ``x``, on the smoothed or the raw data."""
        s = self.smooth if smooth else self.raw
        shift, k = self.unpack(x)
        coords = np.empty((self.ndim,) + s.shape)
        for a in range(self.ndim):
            axis_coords = self.centre0[a] + shift[a] + s.rel[a] * k[a] - self.c_lo[a]
            shape = [1] * self.ndim
            shape[a] = -1
            coords[a] = axis_coords.reshape(shape)
        v = ndimage.map_coordinates(s.coeffs, coords, order=3, mode="mirror", prefilter=False).ravel()
        v -= v.mean()
        # Plain reductions, not BLAS: multithreaded BLAS on small vectors is
        # much slower on a busy machine.
        norm = math.sqrt(float(np.square(v).sum()))
        if norm <= 0:
            return 0.0
        return self.sign * float((s.tvec * v).sum()) / norm

    def neg_ncc(self, x: np.ndarray) -> float:
        """``-ncc(x)`` on the smoothed data: the function to minimise."""
        return -self.ncc(x)


@dataclass(frozen=True, eq=False)
class _Fine:
    """Result of the sub-voxel refinement."""

    offset: np.ndarray  #: HRES offset (um, LRES frame)
    scale: np.ndarray  #: HRES voxel size (um)
    shift: np.ndarray  #: shift from the coarse position (LRES voxels)
    ncc: float  #: NCC on the raw data, whole template
    hit_shift_bound: np.ndarray  #: per axis, whether the shift ended at its bound
    hit_scale_bound: bool  #: whether some scale parameter ended at its bound


def _refine(geo: _Geometry, template: np.ndarray, coarse: _Coarse, refine_scale: bool) -> _Fine:
    """Maximise the NCC by Nelder-Mead from the coarse peak's parabola fit.

    Takes the geometry, the template (LRES voxels) and the :class:`_Coarse`
    result; returns the optimised offset, scale and NCC as a :class:`_Fine`.
    """
    ndim = geo.ndim
    # The scale of an axis only 4 or more template voxels long is measurable.
    scale_axes = [a for a in range(ndim) if geo.nt[a] >= 4] if refine_scale else []
    objective = _NccObjective(geo, template, coarse.p, coarse.sign, scale_axes)
    scale_unit = objective.scale_unit

    x0 = np.concatenate([coarse.delta, np.zeros(len(scale_axes))])
    bounds = [(-REFINE_SHIFT_BOUND, REFINE_SHIFT_BOUND)] * ndim
    bounds += [(-SCALE_BOUND * scale_unit[a], SCALE_BOUND * scale_unit[a]) for a in scale_axes]
    lower = np.array([b[0] for b in bounds])
    upper = np.array([b[1] for b in bounds])

    res = optimize.minimize(
        objective.neg_ncc,
        x0,
        method="Nelder-Mead",
        bounds=bounds,
        options={
            "initial_simplex": _simplex(x0, 0.25, lower, upper),
            "xatol": 1e-3,
            "fatol": 1e-6,
            "maxiter": 2000,
        },
    )
    # A restart from the optimum guards against a collapsed simplex.
    res2 = optimize.minimize(
        objective.neg_ncc,
        res.x,
        method="Nelder-Mead",
        bounds=bounds,
        options={
            "initial_simplex": _simplex(res.x, 0.1, lower, upper),
            "xatol": 1e-4,
            "fatol": 1e-7,
            "maxiter": 2000,
        },
    )
    x_best = res2.x if res2.fun <= res.fun else res.x
    ncc = objective.ncc(x_best, smooth=False)
    shift, k = objective.unpack(x_best)
    scale = geo.vh * k
    centre_um = (objective.centre0 + shift) * geo.vl
    offset = centre_um - geo.qc * scale
    hit = np.isclose(np.abs(x_best), upper, rtol=0, atol=1e-3)
    return _Fine(offset, scale, shift, ncc, hit[:ndim], bool(np.any(hit[ndim:])))


def _simplex(x: np.ndarray, step: float, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Initial Nelder-Mead simplex: ``x`` and one vertex ``step`` away per parameter."""
    # Step away from the nearer bound so that no vertex is clipped onto another.
    pts = [x]
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = step if x[i] + step <= upper[i] else -step
        pts.append(np.clip(x + e, lower, upper))
    return np.array(pts)


# ------------------------------------------------------------- register: verdict


def _verdict(
    geo: _Geometry,
    coarse: _Coarse,
    fine: _Fine,
    on_border: list[str],
    min_ncc: float,
    refine_scale: bool,
) -> tuple[str, str, list[str]]:
    """Judge the match: returns ``(status, message, problems)``.

    ``status`` is ``"unreliable"`` when any problem was found (low NCC, peak
    on a radius-limited border, ambiguous peaks, refinement ran away), else
    ``"ok"``; ``message`` says what was found, and for an unreliable result
    what to do.
    """
    axes, ncc, peak_ratio, shift = geo.axes, fine.ncc, coarse.peak_ratio, fine.shift
    problems: list[str] = []
    advice: list[str] = []
    if ncc < min_ncc:
        problems.append(f"the correlation after alignment is low (NCC {ncc:.3f} < {min_ncc:g}, the least credible NCC)")
        advice.append(
            "check that the HRES shows part of this LRES sample and that both voxel sizes are right"
        )
    if on_border:
        problems.append(
            f"the best match lies on the border of the search window on axis {', '.join(on_border)}, "
            "so the true position may be outside it"
        )
        advice.append("check init_offset_um or give a larger search_radius_um (or none)")
    if peak_ratio >= MAX_PEAK_RATIO:
        problems.append(f"the match is ambiguous: a separate peak reaches {peak_ratio:.0%} of the best one")
        advice.append("give init_offset_um with a search_radius_um that excludes the other match")
    moved = np.abs(shift) > MAX_REFINE_SHIFT
    if np.any(moved) or np.any(fine.hit_shift_bound) or fine.hit_scale_bound:
        what = []
        if np.any(moved | fine.hit_shift_bound):
            what.append(
                f"moved {_fmt(shift)} LRES voxels ({', '.join(axes)}) from the coarse match, "
                f"more than the {MAX_REFINE_SHIFT} allowed"
            )
        if fine.hit_scale_bound:
            what.append(f"hit the +-{SCALE_BOUND:.0%} limit of the voxel size refinement")
        problems.append("the sub-voxel refinement ran away (" + "; ".join(what) + ")")
        advice.append("check the voxel sizes, and try refine_scale if they may be inexact")
    if coarse.inverted:
        note = " The HRES matched with inverted contrast."
    else:
        note = ""
    pos = f"{_fmt(fine.offset)} um"
    if problems:
        status = "unreliable"
        unique_advice = list(dict.fromkeys(advice))
        message = (
            f"Unreliable registration: {'; '.join(problems)}. Best guess: HRES voxel 0 at "
            f"{pos} ({', '.join(axes)}), NCC {ncc:.2f}. To fix: {'; '.join(unique_advice)}." + note
        )
    else:
        status = "ok"
        message = (
            f"HRES located: voxel 0 at {pos} ({', '.join(axes)}), NCC {ncc:.2f}"
            + (f", scale {_fmt(fine.scale, 4)} um" if refine_scale else "")
            + f"; best other peak {peak_ratio:.0%} of the match."
            + note
        )
    return status, message, problems
