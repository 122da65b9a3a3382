"""Synthetic LRES from an HRES: training without an LRES scan.

When only a high-resolution volume exists (or a model is wanted before the LRES
scan is made), training pairs are made from the HRES itself with the
degradation of ``cnn-denoise-deblur-sr-digital-rock.txt`` (Methods, "Data"):

1. **local-mean downsampling** by ``ratio`` HRES voxels per LRES voxel on each
   axis (:func:`napari_resolve.registration.area_downsample`: an exact block
   mean for integer ratios, an exact interval mean otherwise). LRES voxel ``m``
   averages HRES-index interval ``[m f - 0.5, (m + 1) f - 0.5]``; its centre is
   HRES index ``(m + 0.5) f - 0.5``;
2. **Gaussian blur** with a standard deviation (in LRES voxels) drawn
   independently for each axis from ``blur`` (the paper: ``[0, 2]``, "randomly
   chosen in each direction"; default here ``[0, 1]``);
3. **noise**, all three kinds in every sample (as in the paper): Poisson (shot)
   noise at a photon count drawn log-uniformly from ``poisson``, speckle
   (multiplicative Gaussian) noise and additive Gaussian noise with standard
   deviations drawn uniformly from ``speckle`` and ``gaussian_noise``.

Noise levels are relative to the HRES's robust grey-value range ``[low, high]``
(its 0.5 and 99.5 percentiles, the range the target is normalised with):
with ``u = (x - low) / (high - low)`` the relative intensity (clipped at 0),
Poisson noise replaces ``u`` by ``Poisson(u * photons) / photons`` (variance
``u / photons``), speckle adds ``u * N(0, s^2)`` and Gaussian noise
``N(0, g^2)``. The paper's Gaussian sigma range ``[0, 30]`` grey levels of an
8-bit image is about ``[0, 0.12]`` of the range.

For training (:func:`napari_resolve.training.iter_train_synthetic`) the
parameters are drawn afresh **for every patch**, so the network learns the
whole range instead of one setting: the patch's HRES neighbourhood is degraded
(downsample, blur, noise) and interpolated back onto the HRES voxels exactly as
a real LRES is (:func:`napari_resolve.grid.resample_lres`, cubic, with the LRES
voxel grid in the phase of real binning). The validation block is one fixed
degradation (every range's midpoint, a fixed noise seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from napari_resolve._validate import as_image, voxel_tuple
from napari_resolve.errors import InputError
from napari_resolve.learn.normalisation import Normalisation, fit_normalisation
from napari_resolve.learn.pairs import PatchSampler, TrainingPair, validation_size

#: The Gaussian blur kernel reaches this many standard deviations (scipy's default).
TRUNCATE = 4.0
#: LRES voxels of extra context around a patch for the cubic interpolation: its
#: prefilter's influence decays as 0.268**n (0.1 % at 5 voxels).
SPLINE_MARGIN = 5
#: Smallest extent of the HRES (or training ROI), in LRES voxels, on every axis.
MIN_LRES_VOXELS = 2

Range = tuple[float, float]
_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


def _range(value, name: str, *, positive: bool = False) -> Range:
    """``(lo, hi)`` with ``0 <= lo <= hi`` (``0 < lo`` when ``positive``), or InputError."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a range (low, high) of two numbers, got {value!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{name} must be finite numbers, got ({lo:g}, {hi:g}).")
    if positive and not lo > 0:
        raise InputError(f"{name} must be positive (photons per unit intensity), got ({lo:g}, {hi:g}).")
    if lo < 0:
        raise InputError(f"{name} cannot be negative, got ({lo:g}, {hi:g}). Give a range like (0, {max(hi, 1):g}).")
    if hi < lo:
        raise InputError(f"{name} must be (low, high) with low <= high, got ({lo:g}, {hi:g}).")
    return lo, hi


@dataclass
class Degradation:
    """How a synthetic LRES is made from an HRES (every parameter recorded in the model).

    Attributes
    ----------
    ratio : float or sequence of float
        LRES voxel size / HRES voxel size, one value (all axes) or one per axis
        (z, y, x or y, x); at least 1, not necessarily an integer.
    blur : (float, float) or sequence of (float, float)
        Range of the Gaussian blur's standard deviation in LRES voxels, drawn
        independently for each axis; one range for all axes or one per axis.
        Default ``(0, 1)``, about a scanner's own PSF; the paper's ``(0, 2)``
        covers unknown, heavier blur but costs quality on lightly blurred scans
        (see ``docs/learning.md``).
    gaussian_noise : (float, float)
        Range of the additive Gaussian noise's standard deviation, as a share of
        the HRES grey-value range.
    poisson : (float, float) or None
        Range of the photon count per unit relative intensity (drawn
        log-uniformly; fewer photons = more shot noise); None: no Poisson noise.
    speckle : (float, float)
        Range of the multiplicative (speckle) noise's standard deviation.
    seed : int
        Seed of the noise and of the parameter draws.
    """

    ratio: float | tuple[float, ...] = 3.0
    blur: Range | tuple[Range, ...] = (0.0, 1.0)
    gaussian_noise: Range = (0.0, 0.12)
    poisson: Range | None = (100.0, 10_000.0)
    speckle: Range = (0.0, 0.05)
    seed: int = 0

    # ------------------------------------------------------------ per axis

    def ratios(self, ndim: int) -> tuple[float, ...]:
        """The ratio per axis (``ndim`` values), checked."""
        values = (self.ratio,) if np.isscalar(self.ratio) else tuple(self.ratio)
        if len(values) == 1:
            values = values * ndim
        if len(values) != ndim:
            raise InputError(
                f"The ratio has {len(values)} values but the HRES has {ndim} axes; give one value or one per axis."
            )
        out = []
        for v in values:
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise InputError(f"The ratio must be numbers, got {v!r}.") from None
            if not (math.isfinite(f) and f >= 1):
                raise InputError(
                    f"The ratio (LRES voxel / HRES voxel) must be at least 1 on every axis, got {f:g}: "
                    "the synthetic LRES cannot be finer than the HRES."
                )
            out.append(f)
        return tuple(out)

    def blur_ranges(self, ndim: int) -> tuple[Range, ...]:
        """The blur range (LRES voxels) of every axis."""
        b = self.blur
        per_axis = not np.isscalar(b) and len(b) > 0 and all(not np.isscalar(r) for r in b)
        if not per_axis:
            return (_range(b, "The blur sigma range"),) * ndim
        if len(b) == 1:
            return (_range(b[0], "The blur sigma range"),) * ndim
        if len(b) != ndim:
            raise InputError(
                f"The blur has {len(b)} ranges but the HRES has {ndim} axes; give one range or one per axis."
            )
        return tuple(_range(r, f"The blur sigma range of axis {ax}") for ax, r in zip(_AXES[ndim], b))

    def lres_voxel_um(self, hres_voxel_um, ndim: int | None = None) -> tuple[float, ...]:
        """The LRES voxel size (um) a model trained with this degradation expects: HRES voxel x ratio."""
        if ndim is None:
            ndim = 3 if np.isscalar(hres_voxel_um) else len(hres_voxel_um)
        hv = voxel_tuple(hres_voxel_um, ndim, "HRES voxel size")
        return tuple(h * f for h, f in zip(hv, self.ratios(ndim)))

    def _implied_ndim(self) -> int:
        """The number of axes a per-axis ratio or blur implies (3 when all are single values)."""
        if not np.isscalar(self.ratio) and len(self.ratio) > 1:
            return len(self.ratio)
        b = self.blur
        if not np.isscalar(b) and len(b) > 1 and all(not np.isscalar(r) for r in b):
            return len(b)
        return 3

    def check(self, ndim: int | None = None) -> None:
        """Raise :class:`InputError` for parameters that cannot work (on data of ``ndim`` axes)."""
        ndim = self._implied_ndim() if ndim is None else ndim
        self.ratios(ndim)
        self.blur_ranges(ndim)
        _range(self.gaussian_noise, "The Gaussian noise range")
        _range(self.speckle, "The speckle noise range")
        if self.poisson is not None:
            _range(self.poisson, "The Poisson photon range", positive=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError(f"The degradation seed must be a whole number >= 0, got {self.seed!r}.")

    # ------------------------------------------------------------ draws

    def draw(self, ndim: int, rng: np.random.Generator) -> dict[str, Any]:
        """One random set of parameters (what one patch is degraded with).

        Returns
        -------
        dict
            ``blur_sigma`` (LRES voxels, one per axis), ``gaussian_noise``,
            ``poisson_photons`` (None when off) and ``speckle``.
        """
        blur = [float(rng.uniform(lo, hi)) for lo, hi in self.blur_ranges(ndim)]
        gauss = float(rng.uniform(*_range(self.gaussian_noise, "The Gaussian noise range")))
        photons = None
        if self.poisson is not None:
            lo, hi = _range(self.poisson, "The Poisson photon range", positive=True)
            photons = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        speckle = float(rng.uniform(*_range(self.speckle, "The speckle noise range")))
        return {"blur_sigma": blur, "gaussian_noise": gauss, "poisson_photons": photons, "speckle": speckle}

    def typical(self, ndim: int) -> dict[str, Any]:
        """The middle of every range (geometric middle for photons): the validation's degradation."""
        photons = None
        if self.poisson is not None:
            lo, hi = _range(self.poisson, "The Poisson photon range", positive=True)
            photons = math.sqrt(lo * hi)
        return {
            "blur_sigma": [0.5 * (lo + hi) for lo, hi in self.blur_ranges(ndim)],
            "gaussian_noise": 0.5 * sum(_range(self.gaussian_noise, "The Gaussian noise range")),
            "poisson_photons": photons,
            "speckle": 0.5 * sum(_range(self.speckle, "The speckle noise range")),
        }

    # ------------------------------------------------------------ records

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly record (lists and plain numbers)."""

        def plain(v):
            if v is None:
                return None
            return float(v) if np.isscalar(v) else [plain(x) for x in v]

        record = {f.name: plain(getattr(self, f.name)) for f in fields(self) if f.name != "seed"}
        return record | {"seed": int(self.seed)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Degradation:
        """Rebuild from :meth:`to_dict` output (missing keys take the defaults).

        Raises
        ------
        InputError
            If ``d`` has unknown keys or values that cannot work.
        """
        if not isinstance(d, dict):
            raise InputError(f"A degradation record must be a dict, got {type(d).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(
                f"Unknown degradation parameter(s) {', '.join(unknown)}; the parameters are {', '.join(sorted(known))}."
            )

        def tup(v):
            return v if v is None or np.isscalar(v) else tuple(tup(x) for x in v)

        deg = cls(**{k: tup(v) for k, v in d.items()})
        deg.check()
        return deg


def parse_range(text: str | None, what: str, *, per_axis: bool = False, allow_off: bool = False):
    """``"LO:HI"`` (or one number: a fixed value) -> ``(lo, hi)``, for forms and the command line.

    Parameters
    ----------
    text : str or None
        The text; None gives None.
    what : str
        The field's name, for messages (e.g. ``"--blur"``).
    per_axis : bool
        Allow ``"LO:HI,LO:HI,LO:HI"``: one range per axis (z, y, x).
    allow_off : bool
        ``"off"``, ``"none"`` or an empty text give None (a noise that is left out).

    Raises
    ------
    InputError
        If the text is not a range of numbers (the values themselves are checked
        by :meth:`Degradation.check`).
    """
    if text is None:
        return None
    if allow_off and text.strip().lower() in ("off", "none", ""):
        return None
    parts = text.split(",")
    if len(parts) > 1 and not per_axis:
        raise InputError(f"{what} takes one range LO:HI, got {text!r}.")
    ranges = []
    for part in parts:
        lo, sep, hi = part.strip().partition(":")
        try:
            ranges.append((float(lo), float(hi)) if sep else (float(lo), float(lo)))
        except ValueError:
            example = "0:1 or 0:0.5,0:1,0:1" if per_axis else "0:0.1" + (", or off" if allow_off else "")
            raise InputError(f"{what} takes LO:HI (e.g. {example}), got {text!r}.") from None
    return tuple(ranges) if len(ranges) > 1 else ranges[0]


def format_range(value) -> str:
    """The inverse of :func:`parse_range` (``(0, 1)`` -> ``"0:1"``, None -> ``"off"``)."""
    if value is None:
        return "off"
    if not np.isscalar(value[0]):
        return ",".join(format_range(v) for v in value)
    return f"{float(value[0]):g}:{float(value[1]):g}"


# ----------------------------------------------------------------------------- degrading


def _reference(image: np.ndarray, reference) -> tuple[float, float]:
    """The grey values noise levels are relative to (``low``, ``high``)."""
    if reference is not None:
        low, high = (float(v) for v in reference)
        if not high > low:
            raise InputError(f"The intensity reference must be (low, high) with low < high, got ({low:g}, {high:g}).")
        return low, high
    norm = fit_normalisation(image)
    return norm.low, norm.high


def _blur(lres: np.ndarray, params: dict) -> np.ndarray:
    """Step 2 of the degradation: the Gaussian blur (sigma per axis in LRES voxels)."""
    sigma = [float(s) for s in params["blur_sigma"]]
    if any(s > 0 for s in sigma):
        return ndimage.gaussian_filter(lres, sigma, mode="reflect", truncate=TRUNCATE)
    return lres


def _noise(lres: np.ndarray, params: dict, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Step 3 of the degradation: Poisson, speckle and Gaussian noise (float64 in, float32 out)."""
    span = high - low
    u = np.clip((lres - low) / span, 0.0, None)  # relative intensity the noise acts on
    noise = np.zeros_like(lres)
    photons = params.get("poisson_photons")
    if photons:
        noise += rng.poisson(u * photons) / photons - u
    if params["speckle"] > 0:
        noise += u * rng.normal(0.0, params["speckle"], u.shape)
    if params["gaussian_noise"] > 0:
        noise += rng.normal(0.0, params["gaussian_noise"], u.shape)
    return (lres + span * noise).astype(np.float32)


def _blur_and_noise(lres: np.ndarray, params: dict, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Steps 2 and 3 of the degradation on a local-mean downsampled block (float64 in, float32 out)."""
    return _noise(_blur(lres, params), params, rng, low, high)


def degrade(
    hres,
    degradation: Degradation | None = None,
    rng: np.random.Generator | int | None = None,
    *,
    params: dict[str, Any] | None = None,
    reference: tuple[float, float] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A synthetic LRES of ``hres``: local mean, random blur, random noise.

    Parameters
    ----------
    hres : array-like
        2D image or 3D volume.
    degradation : Degradation, optional
        The parameter ranges; default :class:`Degradation()`.
    rng : numpy.random.Generator or int, optional
        Source of the draws and the noise; default ``degradation.seed``.
    params : dict, optional
        Use these parameters (as :meth:`Degradation.draw` returns them) instead
        of drawing them.
    reference : (float, float), optional
        Grey values of relative intensity 0 and 1 for the noise levels; default
        the 0.5 and 99.5 percentiles of ``hres``.

    Returns
    -------
    lres : ndarray of float32
        ``floor(n / ratio)`` voxels per axis; voxel ``m`` is centred on HRES
        index ``(m + 0.5) * ratio - 0.5``.
    params : dict
        The parameters used (blur sigma per axis in LRES voxels, noise levels).

    Raises
    ------
    InputError
        If the parameters cannot work or the HRES holds less than one LRES
        voxel on an axis.
    """
    from napari_resolve.registration import area_downsample

    image = as_image(hres, "HRES")
    deg = Degradation() if degradation is None else degradation
    deg.check(image.ndim)
    ratios = deg.ratios(image.ndim)
    _check_size(image.shape, ratios, "The HRES", minimum=1)
    if rng is None or isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(deg.seed if rng is None else int(rng))
    if params is None:
        params = deg.draw(image.ndim, rng)
    noisy = bool(params.get("poisson_photons")) or params["speckle"] > 0 or params["gaussian_noise"] > 0
    # Without noise no reference is needed (a flat or impulse image has no percentile range).
    low, high = _reference(image, reference) if noisy else (0.0, 1.0)
    lres = area_downsample(image, ratios)
    return _blur_and_noise(lres, params, rng, low, high), params


def _check_size(shape, ratios, what: str, minimum: int = MIN_LRES_VOXELS) -> None:
    axes = _AXES.get(len(shape), tuple(str(i) for i in range(len(shape))))
    for ax, n, f in zip(axes, shape, ratios):
        if n < minimum * f - 1e-6:
            need = math.ceil(minimum * f - 1e-6)
            raise InputError(
                f"{what} is {n} voxels along {ax}: at ratio {f:g} that is {n / f:.2g} LRES voxels, and at least "
                f"{minimum} {'is' if minimum == 1 else 'are'} needed ({need} HRES voxels). Choose a smaller ratio "
                "or a larger HRES."
            )


def synthetic_registration(hres_voxel_um, lres_voxel_um) -> dict[str, Any]:
    """The registration record of a synthetic pair (the phase of its HRES grid).

    A synthetic LRES voxel averages whole HRES voxels starting at the HRES's
    edge, as binning does: in the LRES frame (LRES voxel 0 at the origin) HRES
    voxel 0 lies at ``(hres_voxel - lres_voxel) / 2``. Upscaling a real LRES
    with this phase puts ``ratio`` output voxels flush inside every LRES voxel
    (:func:`napari_resolve.grid.upscale_grid`), the relation the model learned.
    """
    from napari_resolve.registration import Registration

    hv, lv = tuple(float(v) for v in hres_voxel_um), tuple(float(v) for v in lres_voxel_um)
    offset = tuple(0.5 * (h - lo) for h, lo in zip(hv, lv))
    reg = Registration(
        offset_um=offset,
        scale=hv,
        ncc=float("nan"),
        status="ok",
        message="Synthetic training pair (no LRES scan): the LRES was made from the HRES by local-mean "
        "downsampling, blur and noise; the HRES grid is in the phase of binning.",
        lres_voxel_um=lv,
        hres_voxel_um=hv,
        coarse_offset_um=offset,
    )
    return reg.to_dict()


# ----------------------------------------------------------------------------- training pairs


def _cut(source: np.ndarray, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
    """``source[lo:hi]`` per axis, mirrored (edge voxel repeated) where it reaches outside."""
    inner = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, source.shape))
    pad = [(max(0, -a), max(0, b - n)) for a, b, n in zip(lo, hi, source.shape)]
    block = source[inner]
    if any(p for pair in pad for p in pair):
        block = np.pad(block, pad, mode="symmetric")
    return block


def synthetic_input(
    source: np.ndarray,
    lo: Sequence[int],
    hi: Sequence[int],
    hres_voxel_um: Sequence[float],
    ratios: Sequence[float],
    params: dict[str, Any],
    rng: np.random.Generator,
    reference: tuple[float, float],
    phase: Sequence[int] | None = None,
    stages: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pre-upsampled synthetic LRES over HRES voxels ``lo:hi`` of ``source``.

    The HRES around the box (enough for the blur and the cubic interpolation;
    mirrored beyond ``source``) is degraded and interpolated back onto the box's
    HRES voxels with :func:`napari_resolve.grid.resample_lres`, the function that
    makes a real pair's input, on the grid in binning phase: LRES block ``m``
    of the cut starts at its HRES voxel ``m * ratio``.

    Parameters
    ----------
    source : ndarray
        The HRES (2D or 3D), raw grey values.
    lo, hi : sequence of int
        The box in HRES voxels (may reach outside ``source``).
    hres_voxel_um, ratios : sequence of float
        HRES voxel size and LRES/HRES ratio per axis.
    params : dict
        Degradation parameters (:meth:`Degradation.draw`).
    rng : numpy.random.Generator
        For the noise.
    reference : (float, float)
        Grey values of relative intensity 0 and 1.
    phase : sequence of int, optional
        HRES voxels between the box (less its margin) and the first LRES block
        edge, per axis (0 to ``ceil(ratio) - 1``); varies the sub-voxel phase.
    stages : bool
        Also return the LRES before the noise and before the blur (the targets
        of the denoise and deblur stages), interpolated the same way.

    Returns
    -------
    ndarray of float32, shape ``hi - lo``
        The degraded LRES; with ``stages``, the tuple ``(degraded, blurred,
        clean)``: degraded, noise-free but blurred, and local mean only.
    """
    from napari_resolve.geometry.grid import Grid, resample_lres
    from napari_resolve.registration import area_downsample

    nd = source.ndim
    phase = (0,) * nd if phase is None else tuple(int(p) for p in phase)
    starts, blocks = [], []
    for a, b, f, s, p in zip(lo, hi, ratios, params["blur_sigma"], phase):
        margin = math.ceil((math.ceil(TRUNCATE * float(s)) + SPLINE_MARGIN) * f)  # HRES voxels
        r0 = int(a) - margin - p
        blocks.append(math.ceil((int(b) + margin - r0) / f - 1e-9))
        starts.append(r0)
    stops = [r0 + math.ceil(n * f - 1e-9) for r0, n, f in zip(starts, blocks, ratios)]
    region = _cut(source, starts, stops)
    clean = area_downsample(region, ratios, blocks)
    blurred = _blur(clean, params)
    lres = _noise(blurred, params, rng, *reference)
    hv = tuple(float(v) for v in hres_voxel_um)
    lv = tuple(h * f for h, f in zip(hv, ratios))
    # Frame of the cut's LRES: block 0 at the origin, so HRES voxel k of the cut at (k + 0.5) hv - lv / 2.
    origin = tuple((a - r0 + 0.5) * h - 0.5 * lres_v for a, r0, h, lres_v in zip(lo, starts, hv, lv))
    grid = Grid(tuple(int(b) - int(a) for a, b in zip(lo, hi)), hv, origin)
    if not stages:
        return resample_lres(lres, lv, grid)
    return tuple(resample_lres(a, lv, grid) for a in (lres, blurred.astype(np.float32), clean.astype(np.float32)))


@dataclass
class SyntheticPair(TrainingPair):
    """A :class:`~napari_resolve.pairs.TrainingPair` whose input is made from the HRES.

    The training part's inputs are made per patch (:meth:`patch`, fresh
    parameters every time); ``inputs`` holds the whole ROI degraded once with
    the typical (mid-range) parameters and a fixed seed, which gives the
    validation block and the input normalisation.

    Attributes
    ----------
    source : ndarray of float32
        The HRES over the ROI, raw grey values, in its own dimension (2D or 3D).
    inputs, target : ndarray of float32
        As in :class:`~napari_resolve.pairs.TrainingPair` (3D, normalised), for
        the pair's ``task`` (see :data:`TASKS`).
    halo_z, val_axis, val_start, norm_in, norm_out, roi, grid, ndim
        As in :class:`~napari_resolve.pairs.TrainingPair`.
    degradation : Degradation
    hres_voxel_um : tuple of float
        In the source's dimension.
    reference : (float, float)
        Grey values of relative intensity 0 and 1 (the HRES normalisation's range).
    rng : numpy.random.Generator
        Draws the training patches' parameters and noise (seeded by ``degradation.seed``).
    task : str
        What the pair teaches (a key of :data:`TASKS`). For the denoise and
        deblur tasks the target is an LRES, normalised like the input
        (``norm_out is norm_in``), so that separately trained stages chain.
    """

    # The TrainingPair fields (inputs ... ndim) come first, then these.
    source: np.ndarray
    degradation: Degradation
    hres_voxel_um: tuple[float, ...]
    reference: tuple[float, float]
    rng: np.random.Generator
    task: str = "full"

    def patch(self, start: Sequence[int], shape: Sequence[int], stages: bool = False) -> list[np.ndarray]:
        """Normalised input and target of the patch at ``start`` (3D, ``shape`` = (z, y, x) target voxels).

        Fresh degradation parameters and noise are drawn; only the training part
        of the ROI is read (mirrored beyond it), so no validation voxel enters.

        Parameters
        ----------
        start, shape : sequence of int
            The target patch in the pair's (z, y, x) target voxels.
        stages : bool
            For the full task: add the denoise and deblur stages' targets (the
            LRES before the noise and before the blur, normalised like the input).

        Returns
        -------
        list of ndarray
            ``[input (with z halo), target]``, then with ``stages`` the two stage targets.
        """
        h = self.halo_z
        ratios = self.degradation.ratios(self.ndim)
        params = self.degradation.draw(self.ndim, self.rng)
        phase = [int(self.rng.integers(0, math.ceil(f - 1e-9))) for f in ratios]
        train = self.source[: self.val_start]  # the validation block is at the end of axis 0
        variants = stages or self.task != "full"
        if self.ndim == 3:
            lo = (start[0] - h, start[1], start[2])
            hi = (start[0] + shape[0] + h, start[1] + shape[1], start[2] + shape[2])
        else:
            lo, hi = (start[1], start[2]), (start[1] + shape[1], start[2] + shape[2])
        made = synthetic_input(train, lo, hi, self.hres_voxel_um, ratios, params, self.rng, self.reference, phase,
                               stages=variants)
        blocks = made if variants else (made,)
        if self.ndim == 2:  # a 2D image has no z neighbours: the halo repeats the slice
            blocks = tuple(np.repeat(b[None], 2 * h + 1, axis=0) for b in blocks)
        z, y, x = start
        pz, py, px = shape
        hres = self.target[z : z + pz, y : y + py, x : x + px]
        if not variants:
            return [self.norm_in.apply(blocks[0]), hres]
        noisy, blurred, clean = (self.norm_in.apply(b) for b in blocks)
        inputs, targets = _task_arrays(self.task, noisy, blurred, clean, hres, h)
        if stages and self.task == "full":
            targets += [blurred[h : blurred.shape[0] - h], clean[h : clean.shape[0] - h]]
        return [inputs, *targets]


#: What a network trained on synthetic pairs learns (``TrainConfig.task``): input -> target.
#: The last three are the stages of ``cnn-denoise-deblur-sr-digital-rock.txt``, trained
#: separately and stacked (:func:`napari_resolve.models.multioutput.stack_stages`).
TASKS = {
    "full": "degraded LRES -> HRES (the whole job)",
    "denoise": "degraded LRES -> the same LRES without noise",
    "deblur": "noise-free LRES -> the LRES without blur (the local mean)",
    "upscale": "the local-mean LRES (no blur, no noise) -> HRES",
}


def _task_arrays(task, noisy, blurred, clean, hres, h) -> tuple[np.ndarray, list[np.ndarray]]:
    """Input (with the z halo) and target list of a task, from the three LRES variants and the HRES."""
    def core(a):
        return a[h : a.shape[0] - h]

    if task == "full":
        return noisy, [hres]
    if task == "denoise":
        return noisy, [core(blurred)]
    if task == "deblur":
        return blurred, [core(clean)]
    if task == "upscale":
        return clean, [hres]
    raise InputError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")


def make_synthetic_pair(
    hres,
    hres_voxel_um,
    degradation: Degradation,
    *,
    roi=None,
    val_fraction: float = 0.2,
    halo_z: int = 0,
    min_val: int = 4,
    norms: tuple[Normalisation, Normalisation] | None = None,
    task: str = "full",
) -> SyntheticPair:
    """The synthetic training pair of an HRES alone.

    Parameters
    ----------
    hres : array-like
        The HRES (2D or 3D).
    hres_voxel_um : float or sequence of float
        Its voxel size (um).
    degradation : Degradation
        How the LRES is made.
    roi : sequence of slice, optional
        Training ROI in HRES voxels (default the whole HRES); only its voxels are used.
    val_fraction, halo_z, min_val
        As in :func:`napari_resolve.pairs.make_pair`: the validation block is
        the last ``max(min_val, round(val_fraction * n))`` voxels along axis 0.
    norms : (Normalisation, Normalisation), optional
        Input and target normalisations to keep (when resuming a model).
    task : str
        What the pair teaches, a key of :data:`TASKS` (default the whole job).
        The input normalisation does not depend on the task, so stages trained
        separately on one HRES and degradation chain.

    Raises
    ------
    InputError
        On bad parameters, NaNs, an ROI outside the HRES, or an ROI too small
        for the ratio, a validation block and a training patch.
    """
    from napari_resolve.geometry.grid import Grid, check_roi

    if task not in TASKS:
        raise InputError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    image = as_image(hres, "HRES", min_size=2)
    ndim = image.ndim
    hv = voxel_tuple(hres_voxel_um, ndim, "HRES voxel size")
    degradation.check(ndim)
    ratios = degradation.ratios(ndim)
    roi = check_roi(roi, image.shape, "the HRES (HRES voxels)")
    source = np.ascontiguousarray(image[roi])
    _check_size(source.shape, ratios, "The training ROI" if source.shape != image.shape else "The HRES")
    n_axis = source.shape[0]
    val_start = n_axis - validation_size(source.shape, val_fraction, min_val)
    target3 = source if ndim == 3 else source[None]
    val_axis = 0 if ndim == 3 else 1
    train_t = [slice(None)] * 3
    train_t[val_axis] = slice(0, val_start)
    norm_in, norm_out = norms if norms is not None else (None, fit_normalisation(target3[tuple(train_t)]))
    reference = (norm_out.low, norm_out.high)

    # One fixed degradation (typical parameters, fixed seed) of the whole ROI
    # gives the validation block's input; one of the training part alone (so no
    # validation voxel enters) gives the input normalisation, which a real LRES
    # is later scaled with.
    seeds = np.random.SeedSequence(int(degradation.seed)).spawn(3)
    val_rng, norm_rng, train_rng = (np.random.default_rng(s) for s in seeds)
    typical = degradation.typical(ndim)
    variants = task != "full"
    if ndim == 3:
        lo, hi = (-halo_z, 0, 0), (n_axis + halo_z,) + source.shape[1:]
        made = synthetic_input(source, lo, hi, hv, ratios, typical, val_rng, reference, stages=variants)
        blocks = made if variants else (made,)
    else:
        made = synthetic_input(source, (0, 0), source.shape, hv, ratios, typical, val_rng, reference, stages=variants)
        blocks = tuple(np.repeat(b[None], 2 * halo_z + 1, axis=0) for b in (made if variants else (made,)))
    if norm_in is None:
        train = source[:val_start]
        norm_in = fit_normalisation(synthetic_input(train, (0,) * ndim, train.shape, hv, ratios, typical, norm_rng,
                                                    reference))
    blocks = tuple(norm_in.apply(b) for b in blocks)
    if variants:
        # LRES targets are normalised like the input: a stage's output feeds the next stage.
        inputs, (target,) = _task_arrays(task, *blocks, norm_out.apply(target3), halo_z)
        if task in ("denoise", "deblur"):
            norm_out = norm_in
    else:
        inputs, target = blocks[0], norm_out.apply(target3)
    origin = tuple(r.start * v for r, v in zip(roi, hv))  # the HRES's own frame: voxel 0 at 0
    grid = Grid(target3.shape, hv if ndim == 3 else (hv[0],) + hv, origin if ndim == 3 else (0.0,) + origin)
    return SyntheticPair(
        source=source,
        inputs=inputs,
        target=target,
        halo_z=halo_z,
        val_axis=val_axis,
        val_start=val_start,
        norm_in=norm_in,
        norm_out=norm_out,
        roi=roi,
        grid=grid,
        ndim=ndim,
        degradation=degradation,
        hres_voxel_um=hv,
        reference=reference,
        rng=train_rng,
        task=task,
    )


class SyntheticSampler(PatchSampler):
    """Random training patches of a :class:`SyntheticPair`, each with fresh degradation parameters.

    Same arguments, patch shapes and augmentation as
    :class:`~napari_resolve.pairs.PatchSampler` (whose ``rng`` chooses positions
    and flips); the pair's own generator draws the degradation and the noise.
    With ``stages`` (full task only) every batch also carries the targets of a
    multi-output network's denoise and deblur outputs.
    """

    provides_stages = True

    def _patch(self, z: int, y: int, x: int) -> list[np.ndarray]:
        # Degraded afresh for every patch (the pair's generator draws the parameters).
        return self.pair.patch((z, y, x), self.shape, stages=self.stages)
