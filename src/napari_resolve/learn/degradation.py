"""The synthetic degradation: an LRES made from an HRES (local mean, random blur, random noise).

The degradation of Bizhani et al. 2022 (docs/references.md;
https://doi.org/10.1038/s41598-022-08170-8, Methods, "Data"):

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

:mod:`napari_resolve.learn.synthetic` cuts training pairs with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from napari_resolve._validate import as_image, voxel_tuple
from napari_resolve.errors import InputError
from napari_resolve.learn.normalisation import fit_normalisation

#: The Gaussian blur kernel reaches this many standard deviations (scipy's default).
TRUNCATE = 4.0
#: LRES voxels of extra context around a patch for the cubic interpolation: its
#: prefilter's influence decays as 0.268**n (0.1 % at 5 voxels).
SPLINE_MARGIN = 5
#: Smallest extent of the HRES (or training ROI), in LRES voxels, on every axis.
MIN_LRES_VOXELS = 2

Range = tuple[float, float]
_AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


def _range(value, name: str, parameter: str, *, positive: bool = False) -> Range:
    """``(lo, hi)`` with ``0 <= lo <= hi`` (``0 < lo`` when ``positive``), or InputError naming ``parameter``."""

    def refuse(text: str, cause=None):
        raise InputError(f"{name} {text} Change {{{parameter}}}.", parameters=(parameter,)) from cause

    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        refuse(f"must be a range (low, high) of two numbers, got {value!r}.")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        refuse(f"must be finite numbers, got ({lo:g}, {hi:g}).")
    if positive and not lo > 0:
        refuse(f"must be positive (photons per unit intensity), got ({lo:g}, {hi:g}).")
    if lo < 0:
        refuse(f"cannot be negative, got ({lo:g}, {hi:g}). Give a range like (0, {max(hi, 1):g}).")
    if hi < lo:
        refuse(f"must be (low, high) with low <= high, got ({lo:g}, {hi:g}).")
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
                f"The {{ratio}} has {len(values)} values but the HRES has {ndim} axes; give one value or one per axis.",
                parameters=("ratio",),
            )
        out = []
        for v in values:
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise InputError(f"The {{ratio}} must be numbers, got {v!r}.", parameters=("ratio",)) from None
            if not (math.isfinite(f) and f >= 1):
                raise InputError(
                    f"The {{ratio}} (LRES voxel / HRES voxel) must be at least 1 on every axis, got {f:g}: "
                    "the synthetic LRES cannot be finer than the HRES.",
                    parameters=("ratio",),
                )
            out.append(f)
        return tuple(out)

    def blur_ranges(self, ndim: int) -> tuple[Range, ...]:
        """The blur range (LRES voxels) of every axis."""
        b = self.blur
        per_axis = not np.isscalar(b) and len(b) > 0 and all(not np.isscalar(r) for r in b)
        if not per_axis:
            return (_range(b, "The blur sigma range", "blur"),) * ndim
        if len(b) == 1:
            return (_range(b[0], "The blur sigma range", "blur"),) * ndim
        if len(b) != ndim:
            raise InputError(
                f"The {{blur}} has {len(b)} ranges but the HRES has {ndim} axes; give one range or one per axis.",
                parameters=("blur",),
            )
        return tuple(_range(r, f"The blur sigma range of axis {ax}", "blur") for ax, r in zip(_AXES[ndim], b))

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
        _range(self.gaussian_noise, "The Gaussian noise range", "gaussian_noise")
        _range(self.speckle, "The speckle noise range", "speckle")
        if self.poisson is not None:
            _range(self.poisson, "The Poisson photon range", "poisson", positive=True)
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
        gauss = float(rng.uniform(*_range(self.gaussian_noise, "The Gaussian noise range", "gaussian_noise")))
        photons = None
        if self.poisson is not None:
            lo, hi = _range(self.poisson, "The Poisson photon range", "poisson", positive=True)
            photons = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        speckle = float(rng.uniform(*_range(self.speckle, "The speckle noise range", "speckle")))
        return {"blur_sigma": blur, "gaussian_noise": gauss, "poisson_photons": photons, "speckle": speckle}

    def typical(self, ndim: int) -> dict[str, Any]:
        """The middle of every range (geometric middle for photons): the validation's degradation."""
        photons = None
        if self.poisson is not None:
            lo, hi = _range(self.poisson, "The Poisson photon range", "poisson", positive=True)
            photons = math.sqrt(lo * hi)
        return {
            "blur_sigma": [0.5 * (lo + hi) for lo, hi in self.blur_ranges(ndim)],
            "gaussian_noise": 0.5 * sum(_range(self.gaussian_noise, "The Gaussian noise range", "gaussian_noise")),
            "poisson_photons": photons,
            "speckle": 0.5 * sum(_range(self.speckle, "The speckle noise range", "speckle")),
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
                f"{minimum} {'is' if minimum == 1 else 'are'} needed ({need} HRES voxels). Choose a smaller {{ratio}} "
                "or a larger HRES.",
                parameters=("ratio",),
            )
