"""Effective resolution in um: the Gaussian fit and Fourier ring/shell correlation.

Two measures of how sharp a result is against a reference, both in um, both
working in physical units on every axis (anisotropic voxels are normal):

* :func:`gaussian_resolution`, the Gaussian fit of DeepNet 2024 (section 2.5.1,
  https://doi.org/10.1515/mim-2024-0017): blur the reference with wider and
  wider Gaussians and find the one that best reproduces the result; its FWHM is
  how much blurrier the result is (:mod:`napari_resolve.measure.blur_fit` does
  the fit);
* :func:`frc`, Fourier ring (2D) or shell (3D) correlation (Saxton & Baumeister
  1982, J. Microsc. 127, 127-138; used for resolution by Wang et al. 2018, eq. 4,
  https://arxiv.org/abs/1810.12183): the normalised
  correlation of the two images ring by ring in Fourier space, and the spatial
  frequency at which it drops below 1/7 or the half-bit curve of van Heel &
  Schatz (2005, https://doi.org/10.1016/j.jsb.2005.05.009).

See the functions' docstrings and ``docs/methods.md`` for what they do and do
not measure. This module never imports torch: measuring resolution must not
load it (``tests/measure/test_resolution.py`` checks).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from napari_resolve._validate import as_image, same_shape, voxel_tuple
from napari_resolve.errors import InputError, ResolveWarning
from napari_resolve.measure.blur_fit import FWHM_PER_SIGMA, BlurFit, default_max_sigma, discrete_gaussian

__all__ = [
    "FRC_THRESHOLDS",
    "FWHM_PER_SIGMA",
    "FrcResult",
    "GaussianFit",
    "frc",
    "gaussian_resolution",
    "half_bit_threshold",
]

#: Fewest voxels per axis (axes of one voxel aside) for the Gaussian fit and FRC.
MIN_RESOLUTION_SIZE = 16

#: The FRC/FSC works on a central crop of at most this many voxels: resolution is
#: decided by the highest frequencies, which any large block samples well, and
#: the FFTs of a whole 1000^3 volume would need many GiB.
FRC_MAX_VOXELS = 256**3

#: Share of each axis tapered at each end by the FRC's default Tukey window (1/8
#: of the field on each side, as Nieuwenhuizen et al. 2013): enough to remove the
#: spectral cross that the image borders leave, while keeping most of the data.
TUKEY_ALPHA = 0.25

#: Names of the FRC thresholds, in the order they are reported.
FRC_THRESHOLDS = ("1/7", "half-bit")


def half_bit_threshold(n) -> np.ndarray:
    """Van Heel & Schatz (2005) half-bit threshold for rings/shells of ``n`` Fourier voxels.

    ``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))``: the
    correlation at which the two images share half a bit of information per
    Fourier voxel; it tends to 0.1716 for large rings and rises towards 1 for
    rings of a few voxels, where chance correlations are large.
    """
    root = np.sqrt(np.maximum(np.asarray(n, dtype=np.float64), 1.0))
    return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)


def _two_images(test, reference, voxel_um, names: tuple[str, str]):
    """Validated float32 arrays (a (1, Y, X) volume as 2D), the voxel size per axis and the input shape."""
    t = as_image(test, names[0])
    r = as_image(reference, names[1])
    same_shape(t, r, names)
    shape = t.shape
    voxel = voxel_tuple(voxel_um, t.ndim, "voxel size")
    if t.ndim == 3 and shape[0] == 1:
        t, r, voxel = t[0], r[0], voxel[1:]
    if min(t.shape) < MIN_RESOLUTION_SIZE:
        raise InputError(
            f"{names[0]} and {names[1]} have shape {shape}, but measuring resolution needs at least "
            f"{MIN_RESOLUTION_SIZE} voxels along every axis (a (1, Y, X) volume counts as a 2D "
            "image). Choose a larger region, or measure a thin stack slice by slice."
        )
    return t, r, np.array(voxel, dtype=float), shape


# ---------------------------------------------------------------- Gaussian fit


@dataclass(frozen=True)
class GaussianFit:
    """Gaussian-fit effective resolution of a test image against a reference.

    Attributes
    ----------
    sigma_um : float
        Standard deviation (um) of the isotropic Gaussian that, applied to the
        reference, best reproduces the test image: how much blurrier the test
        is than the reference. 0 means at least as sharp as the reference.
    fwhm_um : float
        Its full width at half maximum, ``2.3548 * sigma_um`` (um): the paper's
        measure of the resolution difference.
    sigmas_um : tuple of float
        The sigmas tried (um), ascending: the grid plus the refined optimum.
    mse : tuple of float
        Mean squared difference at each sigma (squared grey values of the test
        image; after the gain/offset fit when ``fit_contrast``).
    gain, offset : float
        The contrast map ``test ~ gain * blurred + offset`` at the optimum
        (1 and 0 when ``fit_contrast`` is False).
    fit_contrast : bool
        Whether gain and offset were fitted at every sigma.
    at_limit : bool
        The optimum is the widest sigma searched: the blur may be wider.
    sigma_axes_um, fwhm_axes_um : tuple of float or None
        With ``per_axis=True``: a separate sigma (and FWHM) per axis, (z, y, x).
    """

    sigma_um: float
    fwhm_um: float
    sigmas_um: tuple[float, ...]
    mse: tuple[float, ...]
    gain: float
    offset: float
    fit_contrast: bool
    at_limit: bool
    sigma_axes_um: tuple[float, ...] | None = None
    fwhm_axes_um: tuple[float, ...] | None = None

    def to_dict(self, curves: bool = True) -> dict:
        """JSON-friendly copy; ``curves=False`` leaves out the MSE curve."""
        out = {
            "sigma_um": self.sigma_um,
            "fwhm_um": self.fwhm_um,
            "gain": self.gain,
            "offset": self.offset,
            "fit_contrast": self.fit_contrast,
            "at_limit": self.at_limit,
            "sigma_axes_um": None if self.sigma_axes_um is None else list(self.sigma_axes_um),
            "fwhm_axes_um": None if self.fwhm_axes_um is None else list(self.fwhm_axes_um),
        }
        if curves:
            out["curve"] = {"sigma_um": list(self.sigmas_um), "mse": list(self.mse)}
        return out

    def plot(self, ax, *, color="tab:blue", label=None) -> None:
        """Draw the MSE curve on matplotlib axes ``ax``, with a dropline at the optimum."""
        ax.plot(self.sigmas_um, self.mse, "-o", color=color, markersize=3, label=label)
        best = float(min(self.mse))
        ax.axvline(self.sigma_um, color=color, linestyle=":", linewidth=1)
        ax.plot([self.sigma_um], [best], "o", color=color, markersize=6)
        ax.set_xlabel("Gaussian sigma applied to the reference (µm)")
        ax.set_ylabel("MSE" + (" (gain/offset fitted)" if self.fit_contrast else ""))
        ax.set_title(f"Gaussian fit: FWHM {self.fwhm_um:.2f} µm (sigma {self.sigma_um:.2f} µm)", fontsize=9)


def gaussian_resolution(
    test, reference, voxel_um, *, sigmas_um=None, fit_contrast: bool = True, per_axis: bool = False
) -> GaussianFit:
    """Effective resolution by the Gaussian fit of DeepNet 2024 (section 2.5.1).

    The reference is blurred with isotropic (in um) Gaussians of increasing
    sigma; the sigma whose blurred reference is closest to ``test`` in the
    least-squares sense measures how much blurrier ``test`` is than the
    reference. The paper reports its FWHM.

    Parameters
    ----------
    test : array-like
        The image to judge (e.g. an upscaled volume), 2D (y, x) or 3D (z, y, x).
    reference : array-like
        The sharp reference on the same voxels (e.g. the registered HRES, or the
        truth of a phantom). It should be less noisy than ``test``: blurring a
        noisy reference also removes its noise, which lowers the MSE and pulls
        the fit towards wider sigmas.
    voxel_um : float or sequence of float
        Voxel size (um), one number or one per axis; the blur has
        ``sigma_um / voxel_um[axis]`` voxels on each axis.
    sigmas_um : sequence of float, optional
        The grid of sigmas (um) to evaluate, at least 3, ascending, >= 0. Default:
        17 values from 0 to 8 voxels of the largest voxel size (at most a quarter
        of the smallest extent). The best grid point is then refined by a
        bounded scalar minimisation between its neighbours.
    fit_contrast : bool
        True (default): at every sigma, fit ``test ~ gain * blurred + offset`` by
        least squares and use the residual, so a contrast or brightness
        difference between the two images does not bias the sigma. False: the
        plain MSE of the paper, for images on the same grey scale.
    per_axis : bool
        Also fit one sigma per axis (Powell's method, bounded by the grid),
        starting from the isotropic optimum: for scans whose resolution differs
        along z (FIB-SEM slicing, anisotropic CT).

    Returns
    -------
    GaussianFit

    Raises
    ------
    InputError
        If the arrays are unusable (not 2D/3D, NaN), differ in shape, are
        smaller than 16 voxels on an axis, are constant, or ``sigmas_um`` is
        not an ascending list of at least 3 lengths >= 0.
    VoxelSizeError
        If the voxel size is missing or invalid.

    Warns
    -----
    ResolveWarning
        If the best sigma is the widest searched.

    Notes
    -----
    The blur is Lindeberg's discrete Gaussian (exact variance at any sigma,
    including below a voxel) with ``"nearest"`` edges, and the MSE is taken on
    a central block away from the edges (at most 64^3 voxels, the block of
    :func:`napari_resolve.measure.baselines.estimate_psf_sigma`, which shares this code
    (:mod:`napari_resolve.measure.blur_fit`) and answers the same question with scipy's
    sampled Gaussian).

    References
    ----------
    DeepNet 2024 (docs/references.md), section 2.5.1: https://doi.org/10.1515/mim-2024-0017
    """
    t, r, voxel, _ = _two_images(test, reference, voxel_um, ("the test image", "the reference"))
    if sigmas_um is None:
        sigmas = np.linspace(0.0, default_max_sigma(t.shape, voxel), 17)
    else:
        try:
            sigmas = np.asarray(sigmas_um, dtype=float).ravel()
        except (TypeError, ValueError):
            raise InputError(f"sigmas_um must be a list of lengths in um, got {sigmas_um!r}.") from None
        if (
            sigmas.size < 3
            or not np.all(np.isfinite(sigmas))
            or sigmas.min() < 0
            or np.any(np.diff(sigmas) <= 0)
        ):
            raise InputError(
                f"sigmas_um must be at least 3 ascending lengths >= 0 (um), got {sigmas_um!r}; "
                "e.g. numpy.linspace(0, 8, 17)."
            )
    fitter = BlurFit(
        t,
        r,
        voxel,
        float(sigmas[-1]),
        fit_contrast=bool(fit_contrast),
        blur=discrete_gaussian,
        test_constant="The test image is constant over the fitted region: there is no structure to "
        "measure a resolution from. Choose another region.",
        ref_constant="The reference is constant over the fitted region: there is no structure to "
        "measure a resolution from. Choose another region, or check the registration.",
    )
    scan = fitter.scan(sigmas)
    if scan.at_limit:
        warnings.warn(
            f"The best Gaussian sigma is the widest searched ({sigmas[-1]:.3g} um): the test image is "
            "blurrier than that, or it does not show the same structures as the reference (check the "
            "registration). Search wider sigmas.",
            ResolveWarning,
            stacklevel=2,
        )
    axes = fwhm_axes = None
    if per_axis:
        from scipy import optimize

        free = [n > 1 for n in t.shape]
        start = np.full(t.ndim, max(scan.sigma_um, 0.05 * float(voxel.min())))

        def cost(x):
            full = np.zeros(t.ndim)
            full[free] = x
            return fitter(full)[0]

        res = optimize.minimize(
            cost,
            start[free],
            method="Powell",
            bounds=[(0.0, float(sigmas[-1]))] * int(sum(free)),
            options={"xtol": 1e-3, "ftol": 1e-6},
        )
        full = np.zeros(t.ndim)
        full[free] = res.x
        axes = tuple(float(v) for v in full)
        fwhm_axes = tuple(FWHM_PER_SIGMA * v for v in axes)
    return GaussianFit(
        sigma_um=scan.sigma_um,
        fwhm_um=FWHM_PER_SIGMA * scan.sigma_um,
        sigmas_um=scan.curve_sigma_um,
        mse=scan.curve_mse,
        gain=scan.gain,
        offset=scan.offset,
        fit_contrast=bool(fit_contrast),
        at_limit=bool(scan.at_limit),
        sigma_axes_um=axes,
        fwhm_axes_um=fwhm_axes,
    )


# ---------------------------------------------------------------- FRC / FSC


@dataclass(frozen=True, eq=False)
class FrcResult:
    """Fourier ring (2D) or shell (3D) correlation of two images.

    Attributes
    ----------
    frequencies_per_um : ndarray
        Centre of each ring/shell, spatial frequency in cycles per um, from the
        first ring above zero up to the Nyquist frequency of the coarsest axis.
    correlation : ndarray
        The FRC/FSC of each ring: 1 where the images agree, about 0 where they
        are unrelated.
    n_voxels : ndarray of int
        Fourier voxels in each ring (both half-spaces).
    thresholds : dict of str to ndarray
        ``"1/7"`` (constant 0.1429) and ``"half-bit"`` (van Heel & Schatz 2005,
        from ``n_voxels``), per ring.
    resolution_um : dict of str to float or None
        For each threshold, ``1 / f`` (um) at the first frequency ``f`` where
        the correlation falls below it (linear interpolation between rings).
        ``None``: never below, the resolution is finer than the finest period
        measured (``1 / frequencies_per_um[-1]``); ``inf``: already below at the
        first ring, no agreement at any scale.
    ndim : int
        2 (rings) or 3 (shells).
    shape : tuple of int
        The block measured (a central crop of large volumes).
    window : str or None
        The apodisation window used.
    """

    frequencies_per_um: np.ndarray
    correlation: np.ndarray
    n_voxels: np.ndarray
    thresholds: dict
    resolution_um: dict
    ndim: int
    shape: tuple[int, ...]
    window: str | None

    @property
    def finest_um(self) -> float:
        """The finest period measured, ``1 / frequencies_per_um[-1]`` (um)."""
        return 1.0 / float(self.frequencies_per_um[-1])

    def status(self, name: str) -> str:
        """``"crossed"``, ``"not reached"`` (resolution finer than :attr:`finest_um`) or
        ``"below at every frequency"`` for threshold ``name``."""
        value = self.resolution_um[name]
        if value is None:
            return "not reached"
        return "below at every frequency" if math.isinf(value) else "crossed"

    def to_dict(self, curves: bool = True) -> dict:
        """JSON-friendly copy; ``curves=False`` leaves out the per-ring curves.

        An infinite resolution becomes ``null`` in strict JSON; ``status`` tells
        it apart from a threshold never reached.
        """
        out = {
            "kind": "FRC (rings)" if self.ndim == 2 else "FSC (shells)",
            "resolution_um": dict(self.resolution_um),
            "status": {k: self.status(k) for k in self.resolution_um},
            "finest_um": self.finest_um,
            "shape": list(self.shape),
            "window": self.window,
        }
        if curves:
            out["curve"] = {
                "frequency_per_um": self.frequencies_per_um.tolist(),
                "correlation": self.correlation.tolist(),
                "n_voxels": self.n_voxels.tolist(),
                **{k: v.tolist() for k, v in self.thresholds.items()},
            }
        return out

    def plot(self, ax, *, color="tab:blue", label=None) -> None:
        """Draw the curve, both thresholds and the crossings on matplotlib axes ``ax``."""
        f = self.frequencies_per_um
        ax.plot(f, self.correlation, "-", color=color, label=label or ("FRC" if self.ndim == 2 else "FSC"))
        styles = {"1/7": ("tab:orange", "--"), "half-bit": ("tab:green", ":")}
        for name, thr in self.thresholds.items():
            c, ls = styles.get(name, ("gray", "--"))
            res = self.resolution_um[name]
            text = "not reached" if res is None else ("never above" if math.isinf(res) else f"{res:.2f} µm")
            ax.plot(f, thr, ls, color=c, linewidth=1, label=f"{name}: {text}")
            if res is not None and not math.isinf(res):
                ax.axvline(1.0 / res, color=c, linestyle=ls, linewidth=0.8)
        ax.set_xlim(0, float(f[-1]))
        ax.set_ylim(min(-0.1, float(self.correlation.min()) - 0.05), 1.05)
        ax.set_xlabel("spatial frequency (1/µm)")
        kind = "FRC" if self.ndim == 2 else "FSC"
        ax.set_ylabel(kind)
        res = self.resolution_um["1/7"]
        text = f"finer than {self.finest_um:.2f} µm" if res is None else (
            "no agreement" if math.isinf(res) else f"{res:.2f} µm"
        )
        ax.set_title(f"{kind} resolution (1/7): {text}", fontsize=9)


def _window(shape: tuple[int, ...], kind: str | None) -> np.ndarray | None:
    """Separable apodisation window (float32, broadcast over the array), or None."""
    if kind is None:
        return None
    from scipy.signal import windows

    w = np.ones((), np.float32)
    for axis, n in enumerate(shape):
        line = windows.tukey(n, TUKEY_ALPHA) if kind == "tukey" else windows.hann(n)
        w = w[..., None] * line.astype(np.float32) if axis else line.astype(np.float32)
    return w


def _crop_center(a: np.ndarray, b: np.ndarray, max_voxels: int):
    """Central crops of ``a`` and ``b`` with at most ``max_voxels`` voxels (the longest axes cut first)."""
    lengths = list(a.shape)
    while math.prod(lengths) > max_voxels:
        ax = int(np.argmax(lengths))
        lengths[ax] = max(MIN_RESOLUTION_SIZE, int(lengths[ax] * 0.9))
    box = tuple(slice((n - L) // 2, (n - L) // 2 + L) for n, L in zip(a.shape, lengths))
    return a[box], b[box]


def frc(a, b, voxel_um, *, bins=None, window="tukey") -> FrcResult:
    """Fourier ring (2D) or shell (3D) correlation between two images, with resolution in um.

    ``FRC(r) = Re sum F_a F_b* / sqrt(sum |F_a|^2 sum |F_b|^2)`` over the
    Fourier voxels of ring/shell ``r`` (Saxton & Baumeister 1982; the MDCNN
    paper's eq. 4 writes the denominator as one sum of products, a misprint).

    FRC is usually taken between two *independent* measurements of the same
    object (two half data sets, two scans): then it measures up to which
    spatial frequency signal rises above noise, and the 1/7 and half-bit
    thresholds have their textbook meaning. Between a result and a reference
    (an upscaled volume and the HRES) it measures up to which frequency the two
    agree, whatever limits that: noise of either, blur together with noise, or
    hallucinated detail. A pure blur without noise does not lower it in theory
    (the correlation is normalised ring by ring); in practice it drops where the
    blur has left almost no power, below the window's leakage. With a reference
    of white spectrum and independent white noise of signal-to-noise ratio
    ``snr`` (variance ratio) on a test image blurred by a Gaussian of ``sigma``
    um, the curve is ``1 / sqrt(1 + exp(4 pi^2 sigma^2 f^2) / snr)``
    and crosses a threshold ``T`` at ``f = sqrt(ln(snr (1 - T^2) / T^2)) / (2 pi sigma)``.

    Parameters
    ----------
    a, b : array-like
        Two images of the same shape, 2D (y, x) or 3D (z, y, x), at least 16
        voxels along every axis; a (1, Y, X) volume is measured as 2D.
        Volumes larger than :data:`FRC_MAX_VOXELS` are measured on a central
        crop of that size.
    voxel_um : float or sequence of float
        Voxel size (um), one number or one per axis. Frequencies are physical
        (cycles per um) on every axis, so rings/shells of anisotropic voxels are
        round in um, not in voxels; they stop at the Nyquist frequency of the
        coarsest axis, the highest one measured in every direction.
    bins : int, optional
        Number of rings/shells from 0 to that frequency. Default (and largest
        allowed): one per Fourier sample along the most coarsely sampled axis
        (``1 / (n * voxel)``), so every ring holds voxels.
    window : {"tukey", "hann", None}
        Apodisation applied to both images (after removing their means) so that
        the image borders do not add a correlated cross to both spectra.
        ``"tukey"`` (default) tapers 1/8 of each axis at each end; ``"hann"``
        tapers everything (more robust, fewer effective voxels); None or False:
        none. True means ``"tukey"``.

    Returns
    -------
    FrcResult

    Raises
    ------
    InputError
        If the arrays are unusable or differ in shape, are smaller than 16
        voxels on an axis, either is constant, ``bins`` is not a whole number
        from 2 to the default, or ``window`` is unknown.
    VoxelSizeError
        If the voxel size is missing or invalid.

    Notes
    -----
    The half-bit threshold uses the number of Fourier voxels per ring; an
    apodisation window lowers the effective number somewhat, which this
    ignores (as is usual).
    """
    from scipy import fft

    if window is True:
        window = "tukey"
    elif window is False:
        window = None
    if window not in ("tukey", "hann", None):
        raise InputError(f"window must be 'tukey', 'hann' or None, got {window!r}.")
    x, y, voxel, _ = _two_images(a, b, voxel_um, ("the first image", "the second image"))
    x, y = _crop_center(x, y, FRC_MAX_VOXELS)
    shape = x.shape
    f_max = float(np.min(0.5 / voxel))  # Nyquist of the coarsest axis
    step = float(np.max(1.0 / (np.array(shape) * voxel)))  # coarsest Fourier sampling
    n_default = int(math.floor(f_max / step + 1e-9))
    if bins is None:
        n_bins = n_default
    else:
        whole = isinstance(bins, (int, np.integer)) and not isinstance(bins, (bool, np.bool_))
        if not whole or not 2 <= bins <= n_default:
            raise InputError(
                f"bins must be a whole number from 2 to {n_default} for this shape and voxel size "
                f"(finer rings would be empty), got {bins!r}."
            )
        n_bins = int(bins)
    width = f_max / n_bins

    w = _window(shape, window)
    spectra = []
    for img, name in ((x, "first"), (y, "second")):
        centred = img.astype(np.float32) - np.float32(np.mean(img, dtype=np.float64))
        if not np.any(centred):
            raise InputError(f"The {name} image is constant: it has no structure to correlate.")
        if w is not None:
            centred *= w
        spectra.append(fft.rfftn(centred))
    fa, fb = spectra

    # Ring index of every Fourier voxel, from its physical frequency. The last
    # axis is a half-space (rfft): voxels with a conjugate twin count twice, so
    # the sums and counts equal those of the full spectrum.
    freqs = [fft.fftfreq(n, d) for n, d in zip(shape[:-1], voxel[:-1])]
    freqs.append(fft.rfftfreq(shape[-1], voxel[-1]))
    twice = np.full(len(freqs[-1]), 2.0)
    twice[0] = 1.0
    if shape[-1] % 2 == 0:
        twice[-1] = 1.0
    f2_rest = np.zeros((1,) * (len(shape) - 1))
    for axis, f in enumerate(freqs[:-1]):
        f2_rest = f2_rest + (f**2).reshape([-1 if i == axis else 1 for i in range(len(shape) - 1)])
    sums = np.zeros((3, n_bins + 2))
    counts = np.zeros(n_bins + 2)
    # One slab of the first axis at a time keeps the temporaries small.
    lead = f2_rest.reshape(shape[0], -1) if len(shape) == 3 else f2_rest.reshape(shape[0], 1)
    for i in range(shape[0]):
        f2 = lead[i][..., None] + freqs[-1] ** 2 if len(shape) == 3 else lead[i] + freqs[-1] ** 2
        ring = np.rint(np.sqrt(f2) / width).astype(np.int64)
        np.minimum(ring, n_bins + 1, out=ring)  # beyond the last ring: discarded
        weight = np.broadcast_to(twice, ring.shape)
        pa, pb = fa[i], fb[i]
        cross = (pa.real * pb.real + pa.imag * pb.imag) * weight
        ring = ring.ravel()
        sums[0] += np.bincount(ring, cross.ravel(), n_bins + 2)
        sums[1] += np.bincount(ring, (np.abs(pa) ** 2 * weight).ravel(), n_bins + 2)
        sums[2] += np.bincount(ring, (np.abs(pb) ** 2 * weight).ravel(), n_bins + 2)
        counts += np.bincount(ring, weight.ravel(), n_bins + 2)
    sel = slice(1, n_bins + 1)  # ring 0 is the (removed) mean
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = sums[0, sel] / np.sqrt(sums[1, sel] * sums[2, sel])
    corr = np.nan_to_num(corr, nan=0.0)
    freq = np.arange(1, n_bins + 1) * width
    n_vox = np.rint(counts[sel]).astype(np.int64)
    thresholds = {"1/7": np.full(n_bins, 1.0 / 7.0), "half-bit": half_bit_threshold(n_vox)}
    resolution = {name: _crossing(freq, corr, thresholds[name]) for name in FRC_THRESHOLDS}
    return FrcResult(
        frequencies_per_um=freq,
        correlation=corr,
        n_voxels=n_vox,
        thresholds=thresholds,
        resolution_um=resolution,
        ndim=len(shape),
        shape=tuple(int(n) for n in shape),
        window=window,
    )


def _crossing(freq: np.ndarray, corr: np.ndarray, thr: np.ndarray) -> float | None:
    """``1 / f`` at the first downward crossing of ``thr`` (None: never below; inf: below from the start)."""
    d = corr - thr
    below = np.flatnonzero(d < 0)
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return math.inf
    f = freq[i - 1] + (freq[i] - freq[i - 1]) * d[i - 1] / (d[i - 1] - d[i])
    return float(1.0 / f)
