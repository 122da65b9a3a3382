"""Effective resolution: the Gaussian fit (paper 2.5.1) and Fourier ring/shell correlation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from napari_resolve.errors import InputError, ResolveWarning, VoxelSizeError
from napari_resolve.io import json_safe
from napari_resolve.measure import resolution as Q
from napari_resolve.phantom import make_phantom


@pytest.fixture(scope="module")
def truth():
    # The noiseless foam truth on the HRES voxels: 57^3 at 1 um.
    return make_phantom(48, 3, seed=0).hres_truth


def _noisy(a, sd, seed):
    rng = np.random.default_rng(seed)
    return (a + rng.normal(0, sd, a.shape)).astype(np.float32)


def _white(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _frc_cutoff_um(sigma_um, snr, threshold=1 / 7):
    """Where the FRC of a white reference against its blurred, noisy copy crosses ``threshold``.

    FRC(f) = 1 / sqrt(1 + exp(4 pi^2 sigma^2 f^2) / snr) for white signal and noise
    (``snr`` = signal / noise variance), so it equals T at
    f = sqrt(ln(snr (1 - T^2) / T^2)) / (2 pi sigma); the resolution is 1 / f.
    """
    t2 = threshold**2
    return 2 * math.pi * sigma_um / math.sqrt(math.log(snr * (1 - t2) / t2))


# ------------------------------------------------------------------ Gaussian fit


def test_gaussian_fit_recovers_a_known_blur(truth):
    test = _noisy(ndimage.gaussian_filter(truth, 1.5, mode="nearest"), 0.02, seed=1)
    fit = Q.gaussian_resolution(test, truth, 1.0)
    assert fit.sigma_um == pytest.approx(1.5, rel=0.1)
    assert fit.fwhm_um == pytest.approx(2.3548 * fit.sigma_um, rel=1e-4)
    assert fit.gain == pytest.approx(1.0, abs=0.05) and not fit.at_limit
    # The curve a plot shows: ascending sigmas from 0, minimum at the answer,
    # clearly worse without blur and at the widest blur searched.
    sig, err = np.array(fit.sigmas_um), np.array(fit.mse)
    assert sig[0] == 0 and np.all(np.diff(sig) > 0)
    assert sig[np.argmin(err)] == pytest.approx(fit.sigma_um)
    assert err[0] > 3 * err.min() and err[-1] > 10 * err.min()


def test_gaussian_fit_contrast_and_plain_mse(truth):
    blurred = ndimage.gaussian_filter(truth, 1.5, mode="nearest")
    other = (0.6 * blurred + 0.3).astype(np.float32)  # another contrast, the same sharpness
    fit = Q.gaussian_resolution(other, truth, 1.0)
    assert fit.sigma_um == pytest.approx(1.5, rel=0.1)
    assert fit.gain == pytest.approx(0.6, rel=0.02) and fit.offset == pytest.approx(0.3, abs=0.02)
    # The paper's plain MSE is right on the same grey scale, and biased by a contrast change.
    plain = Q.gaussian_resolution(blurred, truth, 1.0, fit_contrast=False)
    assert plain.sigma_um == pytest.approx(1.5, rel=0.1) and (plain.gain, plain.offset) == (1.0, 0.0)
    biased = Q.gaussian_resolution(other, truth, 1.0, fit_contrast=False)
    assert abs(biased.sigma_um - 1.5) > 0.3


def test_gaussian_fit_of_identical_images_is_zero(truth):
    fit = Q.gaussian_resolution(truth, truth, 1.0)
    assert fit.sigma_um < 0.02 and fit.mse[0] == pytest.approx(0.0, abs=1e-12)
    # A sub-voxel blur is still measured (the discrete Gaussian has the right variance there).
    small = Q.gaussian_resolution(ndimage.gaussian_filter(truth, 0.6, mode="nearest"), truth, 1.0)
    assert small.sigma_um == pytest.approx(0.6, rel=0.15)


def test_gaussian_fit_anisotropic_voxels_and_per_axis(truth):
    # 1.5 um on (2, 1, 1) um voxels is (0.75, 1.5, 1.5) voxels.
    test = ndimage.gaussian_filter(truth, (0.75, 1.5, 1.5), mode="nearest")
    fit = Q.gaussian_resolution(test, truth, (2.0, 1.0, 1.0))
    assert fit.sigma_um == pytest.approx(1.5, rel=0.1)
    wrong = Q.gaussian_resolution(test, truth, 1.0)  # ignoring the voxel size: the test has teeth
    assert abs(wrong.sigma_um - 1.5) > 0.15
    # A scan blurrier along z: one sigma per axis tells it, the isotropic one averages.
    test = ndimage.gaussian_filter(truth, (3.0, 1.0, 1.0), mode="nearest")
    fit = Q.gaussian_resolution(test, truth, 1.0, per_axis=True)
    assert fit.sigma_axes_um == pytest.approx((3.0, 1.0, 1.0), rel=0.12)
    assert fit.fwhm_axes_um[0] == pytest.approx(2.3548 * fit.sigma_axes_um[0], rel=1e-4)
    assert 1.1 < fit.sigma_um < 2.9


def test_gaussian_fit_2d_and_single_slice():
    truth = make_phantom(40, 3, ndim=2, seed=3).hres_truth  # 48 x 48
    test = ndimage.gaussian_filter(truth, 2.4, mode="nearest")
    fit = Q.gaussian_resolution(test, truth, 0.5)  # 2.4 px of 0.5 um is 1.2 um
    assert fit.sigma_um == pytest.approx(1.2, rel=0.1)
    one = Q.gaussian_resolution(test[None], truth[None], (3.0, 0.5, 0.5))  # a 1-slice volume
    assert one.sigma_um == pytest.approx(fit.sigma_um, rel=1e-6)


def test_gaussian_fit_errors_and_search_limit(truth):
    with pytest.raises(InputError, match="shape"):
        Q.gaussian_resolution(truth, truth[:-1], 1.0)
    bad = truth.copy()
    bad[3, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        Q.gaussian_resolution(bad, truth, 1.0)
    with pytest.raises(InputError, match="at least 16"):
        Q.gaussian_resolution(truth[:8], truth[:8], 1.0)
    with pytest.raises(InputError, match="constant"):
        Q.gaussian_resolution(truth, np.ones_like(truth), 1.0)
    with pytest.raises(InputError, match="sigmas_um"):
        Q.gaussian_resolution(truth, truth, 1.0, sigmas_um=[0, 2, 1])
    with pytest.raises(VoxelSizeError):
        Q.gaussian_resolution(truth, truth, None)
    blurred = ndimage.gaussian_filter(truth, 3.0, mode="nearest")
    with pytest.warns(ResolveWarning, match="widest searched"):
        fit = Q.gaussian_resolution(blurred, truth, 1.0, sigmas_um=[0, 0.5, 1.0])
    assert fit.at_limit and fit.sigma_um == pytest.approx(1.0)


# ------------------------------------------------------------------ FRC / FSC


def _reference_frc(a, b, voxel, n_bins):
    """Straightforward FRC with the full complex FFT, to check the half-space sums."""
    w = Q._window(a.shape, "tukey")
    fa = np.fft.fftn((a - a.mean()) * w)
    fb = np.fft.fftn((b - b.mean()) * w)
    grids = np.meshgrid(*[np.fft.fftfreq(n, d) for n, d in zip(a.shape, voxel)], indexing="ij")
    f = np.sqrt(sum(g**2 for g in grids))
    ring = np.rint(f / (min(0.5 / v for v in voxel) / n_bins)).astype(int)
    out, counts = [], []
    for r in range(1, n_bins + 1):
        m = ring == r
        num = np.sum(fa[m] * np.conj(fb[m])).real
        out.append(num / np.sqrt(np.sum(np.abs(fa[m]) ** 2) * np.sum(np.abs(fb[m]) ** 2)))
        counts.append(int(m.sum()))
    return np.array(out), np.array(counts)


@pytest.mark.parametrize("shape, voxel", [((40, 33), (1.0, 1.0)), ((18, 21, 24), (2.0, 1.0, 1.0))])
def test_frc_matches_a_full_spectrum_computation(shape, voxel):
    a = ndimage.gaussian_filter(_white(shape, 1), 1.0)
    b = a + 0.3 * _white(shape, 2)
    res = Q.frc(a, b, voxel)
    expected, counts = _reference_frc(a, b, voxel, len(res.correlation))
    np.testing.assert_allclose(res.correlation, expected, atol=1e-5)
    np.testing.assert_array_equal(res.n_voxels, counts)
    assert res.frequencies_per_um[-1] == pytest.approx(min(0.5 / v for v in voxel))


@pytest.mark.parametrize("shape", [(128, 128), (48, 48, 48)])
def test_frc_cutoff_follows_blur_and_noise(shape):
    """White reference x, test G_sigma x + noise (SNR 100): the 1/7 crossing is where theory puts it."""
    x = _white(shape, 0)
    noise = _white(shape, 1) * 0.1  # variance ratio 100
    resolutions = []
    for sigma in (1.0, 1.5, 2.0, 2.5):
        y = ndimage.gaussian_filter(x, sigma, mode="wrap") + noise
        res = Q.frc(x, y, 1.0)
        if sigma == 1.5:
            assert res.resolution_um["1/7"] == pytest.approx(_frc_cutoff_um(1.5, 100.0), rel=0.1)
        assert res.status("1/7") == "crossed" and res.status("half-bit") == "crossed"
        # The half-bit curve lies above 1/7, so it is crossed first (a coarser resolution).
        assert res.resolution_um["half-bit"] >= res.resolution_um["1/7"]
        resolutions.append(res.resolution_um["1/7"])
    # Worse with more blur, by a clear margin at every step.
    assert all(b > 1.15 * a for a, b in zip(resolutions, resolutions[1:])), resolutions


def test_frc_worsens_with_noise_and_ignores_pure_blur():
    x = _white((128, 128), 3)
    blurred = ndimage.gaussian_filter(x, 1.5, mode="wrap")
    values = []
    for sd in (0.01, 0.1, 0.5):  # signal-to-noise variance ratios 10^4, 100, 4
        res = Q.frc(x, blurred + sd * _white(x.shape, 4), 1.0)
        assert res.resolution_um["1/7"] == pytest.approx(_frc_cutoff_um(1.5, sd**-2), rel=0.1)
        values.append(res.resolution_um["1/7"])
    assert all(b > 1.1 * a for a, b in zip(values, values[1:])), values
    # Without noise a blur is only a gain per ring: FRC stays near 1 (it measures agreement,
    # not sharpness; not exactly 1, as scipy's kernel is not perfectly round).
    clean = Q.frc(x, ndimage.gaussian_filter(x, 1.0, mode="wrap"), 1.0)
    assert clean.correlation.min() > 0.9 and clean.resolution_um == {"1/7": None, "half-bit": None}


def test_frc_identical_unrelated_and_anisotropic():
    x = ndimage.gaussian_filter(_white((24, 40, 40), 5), 1.0)
    same = Q.frc(x, x, (2.0, 1.0, 1.0))
    assert np.allclose(same.correlation, 1.0, atol=1e-6)
    assert same.resolution_um == {"1/7": None, "half-bit": None} and same.status("1/7") == "not reached"
    # Physical frequencies: shells stop at the Nyquist frequency of the 2 um axis.
    assert same.frequencies_per_um[-1] == pytest.approx(0.25) and same.finest_um == pytest.approx(4.0)
    other = Q.frc(x, ndimage.gaussian_filter(_white(x.shape, 6), 1.0), (2.0, 1.0, 1.0))
    assert np.abs(other.correlation).mean() < 0.15
    assert other.resolution_um["half-bit"] == math.inf and other.status("half-bit") == "below at every frequency"

    # A blur of 2.5 um on (2, 1, 1) um voxels, white signal, SNR 100.
    w = _white((48, 64, 64), 7)
    y = ndimage.gaussian_filter(w, (1.25, 2.5, 2.5), mode="wrap") + 0.1 * _white(w.shape, 8)
    res = Q.frc(w, y, (2.0, 1.0, 1.0))
    assert res.resolution_um["1/7"] == pytest.approx(_frc_cutoff_um(2.5, 100.0), rel=0.1)
    wrong = Q.frc(w, y, 1.0)  # in voxels the blur is not isotropic: a clearly different answer
    assert abs(wrong.resolution_um["1/7"] - res.resolution_um["1/7"]) > 0.5


def test_frc_window_removes_the_border_cross():
    # A ramp (non-periodic: a jump at the borders) under independent noise.
    # Without apodisation the borders' spectral cross is shared by both images and
    # keeps the correlation high up to Nyquist; with it the noise decides.
    yy, xx = np.mgrid[:96, :96].astype(np.float32)
    ramp = 30.0 * (xx + 0.5 * yy) / 96
    a, b = ramp + _white(ramp.shape, 1), ramp + _white(ramp.shape, 2)
    raw = Q.frc(a, b, 1.0, window=None)
    assert raw.correlation[-10:].mean() > 0.4 and raw.resolution_um["1/7"] is None
    for window in ("tukey", "hann", True):
        res = Q.frc(a, b, 1.0, window=window)
        assert abs(res.correlation[-10:].mean()) < 0.1 and res.resolution_um["1/7"] > 4.0
        assert res.window in ("tukey", "hann")


def test_frc_single_slice_bins_and_threshold():
    x = ndimage.gaussian_filter(_white((64, 64), 9), 1.0)
    y = x + 0.05 * _white(x.shape, 10)
    flat = Q.frc(x, y, (1.0, 0.5))
    one = Q.frc(x[None], y[None], (5.0, 1.0, 0.5))
    np.testing.assert_allclose(one.correlation, flat.correlation)
    assert one.ndim == 2 and one.shape == (64, 64)
    assert len(Q.frc(x, y, 1.0, bins=8).correlation) == 8
    for bins in (1, 33, 2.5, True):
        with pytest.raises(InputError, match="bins"):
            Q.frc(x, y, 1.0, bins=bins)
    assert Q.half_bit_threshold(1) == pytest.approx(1.0, abs=1e-4)
    assert Q.half_bit_threshold(1e8) == pytest.approx(0.2071 / 1.2071, abs=1e-3)


def test_frc_errors():
    x = _white((32, 32), 0)
    with pytest.raises(InputError, match="shape"):
        Q.frc(x, x[:-1], 1.0)
    with pytest.raises(InputError, match="at least 16"):
        Q.frc(x[:10], x[:10], 1.0)
    with pytest.raises(InputError, match="constant"):
        Q.frc(x, np.zeros_like(x), 1.0)
    with pytest.raises(InputError, match="window"):
        Q.frc(x, x, 1.0, window="kaiser")
    with pytest.raises(VoxelSizeError):
        Q.frc(x, x, (1.0, -1.0))
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(InputError, match="NaN or infinite"):
        Q.frc(bad, x, 1.0)


def test_results_to_json_and_plots(truth):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fit = Q.gaussian_resolution(ndimage.gaussian_filter(truth, 1.0), truth, 1.0)
    curve = Q.frc(truth, _noisy(truth, 0.5, 3), 1.0)
    for part in (fit, curve):
        text = json.dumps(json_safe(part.to_dict()), allow_nan=False)
        assert "curve" in json.loads(text)
        assert "curve" not in part.to_dict(curves=False)
    d = curve.to_dict()
    assert len(d["curve"]["correlation"]) == len(d["curve"]["half-bit"]) == len(curve.frequencies_per_um)
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    fit.plot(ax1)
    curve.plot(ax2)
    assert len(ax1.lines) >= 2 and len(ax2.lines) >= 3 and "FSC" in ax2.get_ylabel()


def test_measuring_resolution_never_loads_torch():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from napari_resolve.measure.resolution import frc, gaussian_resolution\n"
        "a = np.random.default_rng(0).random((20, 20, 20)).astype('float32')\n"
        "gaussian_resolution(a, a, 1.0); frc(a, a, 1.0)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_old_imports_of_the_moved_names_still_work():
    from napari_resolve.measure import baselines, blur_fit, resolution, similarity

    assert similarity.gaussian_resolution is Q.gaussian_resolution and similarity.frc is Q.frc
    assert similarity.FrcResult is resolution.FrcResult and similarity.GaussianFit is resolution.GaussianFit
    assert baselines._BlurFit is blur_fit.BlurFit and baselines._fit_boxes is blur_fit.fit_boxes
    # One definition of the FWHM factor, whichever module it is read from.
    assert baselines.FWHM_PER_SIGMA is similarity.FWHM_PER_SIGMA is blur_fit.FWHM_PER_SIGMA
    assert blur_fit.FWHM_PER_SIGMA == pytest.approx(2.3548, abs=1e-4)
