"""Classical baselines: interpolation, the Gaussian PSF fit and Richardson-Lucy."""

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from napari_resolve.errors import InputError, ResolveWarning
from napari_resolve.geometry.grid import Grid, upscale_grid
from napari_resolve.geometry.resample import resample_to_grid
from napari_resolve.measure import baselines as B
from napari_resolve.measure.similarity import psnr
from napari_resolve.phantom import make_phantom


@pytest.fixture(scope="module")
def phantom():
    # LRES 48^3 at 3 um (blur 1.5 um, noise), HRES 57^3 at 1 um inside it.
    return make_phantom(48, 3, seed=0)


@pytest.fixture(scope="module")
def hres_grid(phantom):
    return Grid(phantom.hres.shape, phantom.hres_voxel_um, phantom.hres_offset_um)


def _blobs(shape, seed=0):
    """A smooth random volume with structure at several scales, values about 0..1."""
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.random(shape), 2.0)
    return ((a - a.min()) / (a.max() - a.min())).astype(np.float32)


def _drain_records(gen):
    records = []
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            return records, stop.value


# ------------------------------------------------------------- interpolation


@pytest.mark.parametrize("method, order", [("linear", 1), ("cubic", 3)])
def test_interpolate_equals_resampling_the_whole_volume(method, order):
    lres = _blobs((40, 36, 38), seed=1)
    roi = (slice(5, 30), slice(8, 28), slice(4, 34))
    grid = upscale_grid(roi, (3.0, 2.0, 2.0), 1.0, phase_origin_um=(0.3, -0.2, 0.45))
    out = B.interpolate(lres, (3.0, 2.0, 2.0), grid, method)
    whole = resample_to_grid(lres, (3.0, 2.0, 2.0), grid.shape, grid.voxel_um, grid.origin_um, order=order)
    assert out.dtype == np.float32 and out.shape == grid.shape
    np.testing.assert_allclose(out, whole, atol=1e-5)
    # The two orders really differ, so the comparison above checks the order used.
    other = resample_to_grid(lres, (3.0, 2.0, 2.0), grid.shape, grid.voxel_um, grid.origin_um, order=4 - order)
    assert np.abs(out - other).max() > 1e-3


def test_interpolate_rejects_bad_method_and_grid():
    lres = _blobs((12, 12, 12))
    grid = Grid((6, 6, 6), (1.0,) * 3, (3.0,) * 3)
    with pytest.raises(InputError, match="'linear', 'cubic'"):
        B.interpolate(lres, 2.0, grid, "quintic")
    with pytest.raises(InputError, match="axes"):
        B.interpolate(lres[0], 2.0, grid, "cubic")
    with pytest.raises(InputError, match="Grid"):
        B.interpolate(lres, 2.0, (6, 6, 6), "cubic")


# ------------------------------------------------------------------ PSF fit


def _blur_with_contrast(truth, sigma_vox, seed=2):
    """What a second scan sees: blurred truth, another contrast, a little noise."""
    rng = np.random.default_rng(seed)
    blurred = ndimage.gaussian_filter(truth, sigma_vox, mode="nearest")
    return (0.8 * blurred + 0.1 + rng.normal(0, 0.02, truth.shape)).astype(np.float32)


def test_psf_fit_recovers_a_known_blur(phantom):
    truth = phantom.hres_truth  # 57^3, 1 um voxels
    up = _blur_with_contrast(truth, 1.6)
    fit = B.estimate_psf_sigma(up, truth, 1.0)
    assert fit.sigma_um == pytest.approx(1.6, rel=0.1)
    assert fit.gain == pytest.approx(0.8, rel=0.05)
    assert fit.offset == pytest.approx(0.1, abs=0.03)
    assert fit.fwhm_um == pytest.approx(2.3548 * fit.sigma_um, rel=1e-4)
    # The curve is what a plot shows: ascending sigmas, minimum at the answer,
    # and clearly worse at no blur and at the widest blur searched.
    sig, err = np.array(fit.curve_sigma_um), np.array(fit.curve_mse)
    assert np.all(np.diff(sig) > 0) and sig[0] == 0
    assert sig[np.argmin(err)] == pytest.approx(fit.sigma_um)
    assert err[0] > 3 * err.min() and err[-1] > 3 * err.min()


def test_psf_fit_with_anisotropic_voxels(phantom):
    truth = phantom.hres_truth
    # 1.6 um on (2, 1, 1) um voxels is (0.8, 1.6, 1.6) voxels.
    up = _blur_with_contrast(truth, (0.8, 1.6, 1.6))
    fit = B.estimate_psf_sigma(up, truth, (2.0, 1.0, 1.0))
    assert fit.sigma_um == pytest.approx(1.6, rel=0.1)
    # Ignoring the voxel size gives a clearly different answer: the test has teeth.
    wrong = B.estimate_psf_sigma(up, truth, 1.0)
    assert abs(wrong.sigma_um - 1.6) > 0.1 * 1.6


def test_psf_fit_in_2d():
    truth = make_phantom(40, 3, ndim=2, seed=3).hres_truth  # 48 x 48, 1 um pixels
    up = _blur_with_contrast(truth, 1.2 / 0.5)
    fit = B.estimate_psf_sigma(up, truth, 0.5)  # 0.5 um pixels: 2.4 px is 1.2 um
    assert fit.sigma_um == pytest.approx(1.2, rel=0.1)


def test_psf_fit_errors_and_search_limit():
    a = _blobs((24, 24, 24))
    with pytest.raises(InputError, match="shape"):
        B.estimate_psf_sigma(a, a[:-1], 1.0)
    with pytest.raises(InputError, match="constant"):
        B.estimate_psf_sigma(a, np.ones_like(a), 1.0)
    with pytest.raises(InputError, match="max_sigma_um"):
        B.estimate_psf_sigma(a, a, 1.0, max_sigma_um=0)
    blurred = ndimage.gaussian_filter(a, 3.0, mode="nearest")
    with pytest.warns(ResolveWarning, match="largest searched"):
        fit = B.estimate_psf_sigma(blurred, a, 1.0, max_sigma_um=1.0)
    assert fit.sigma_um == pytest.approx(1.0)


# ----------------------------------------------------------- Richardson-Lucy


def test_rl_sharpens_a_known_blur(phantom):
    truth = phantom.hres_truth
    rng = np.random.default_rng(4)
    blurred = ndimage.gaussian_filter(truth, 1.5, mode="nearest") + rng.normal(0, 0.01, truth.shape)
    blurred = blurred.astype(np.float32)
    before = blurred.copy()
    out = B.run_richardson_lucy(blurred, 1.5, iterations=20)
    assert out.dtype == np.float32 and out.shape == truth.shape
    mse_blurred = np.mean((blurred - truth) ** 2)
    mse_rl = np.mean((out - truth) ** 2)
    # Measured: RL leaves 38 % of the blurred image's error; demand at most 60 %.
    assert mse_rl < 0.6 * mse_blurred
    # RL conserves flux (the shift to positive values is undone exactly).
    assert abs(float(out.mean()) - float(blurred.mean())) < 1e-3
    np.testing.assert_array_equal(blurred, before)  # input untouched


def test_rl_sigma_zero_returns_the_input_and_bad_inputs_raise():
    img = _blobs((20, 22, 24)) * 5 - 2  # negative values are fine
    np.testing.assert_array_equal(B.run_richardson_lucy(img, 0.0, 5), img)
    np.testing.assert_array_equal(B.run_richardson_lucy(img, (0, 0, 0), 1), img)
    with pytest.raises(InputError, match="at least 1"):
        B.iter_richardson_lucy(img, 1.0, iterations=0)  # raised on the call, not at next()
    with pytest.raises(InputError, match="whole number"):
        B.iter_richardson_lucy(img, 1.0, iterations=2.5)
    bad = img.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        B.iter_richardson_lucy(bad, 1.0)
    with pytest.raises(InputError, match=">= 0"):
        B.iter_richardson_lucy(img, -1.0)
    with pytest.raises(InputError, match="axes"):
        B.iter_richardson_lucy(img, (1.0, 1.0))


def test_rl_in_2d_with_negative_grey_values():
    truth = make_phantom(40, 3, ndim=2, seed=5).truth  # 120 x 120
    scan = 200.0 * truth - 50.0  # other units and an offset below zero
    blurred = ndimage.gaussian_filter(scan, 1.5, mode="nearest").astype(np.float32)
    out = B.run_richardson_lucy(blurred, 1.5, iterations=20)
    assert out.shape == truth.shape
    assert np.mean((out - scan) ** 2) < 0.6 * np.mean((blurred - scan) ** 2)


def test_rl_generator_records():
    img = _blobs((16, 16, 16))
    records, out = _drain_records(B.iter_richardson_lucy(img, 1.0, iterations=4))
    assert [r.step for r in records] == [1, 2, 3, 4]
    assert {r.total for r in records} == {4}
    assert records[2].message == "Richardson-Lucy iteration 3/4"
    assert out.dtype == np.float32 and out.shape == img.shape
    # Stopping early (what worker.quit() does) leaves nothing behind to clean up.
    gen = B.iter_richardson_lucy(img, 1.0, iterations=4)
    next(gen)
    gen.close()


# ----------------------------------------------------------- baseline jobs


def test_iter_baseline_rl_records_and_result(phantom, hres_grid):
    records, res = _drain_records(
        B.iter_baseline(phantom.lres, phantom.lres_voxel_um, hres_grid, "rl", psf_sigma_um=1.7, iterations=5)
    )
    # Steps done: 0 while interpolating (1 step), then 1 + k after iteration k.
    assert len(records) == 5 + 1
    assert [r.step for r in records] == [0, 2, 3, 4, 5, 6]
    assert {r.total for r in records} == {6}
    assert records[1].message == "Richardson-Lucy iteration 1/5"
    assert isinstance(res, B.BaselineResult)
    assert res.data.shape == hres_grid.shape and res.data.dtype == np.float32
    assert res.grid == hres_grid and res.method == "rl" and res.iterations == 5
    assert res.psf is None and res.psf_sigma_um == (1.7, 1.7, 1.7)
    assert res.seconds > 0
    json.dumps(res.to_dict())
    # The same as interpolating and deconvolving by hand.
    cubic = B.interpolate(phantom.lres, phantom.lres_voxel_um, hres_grid, "cubic")
    np.testing.assert_allclose(res.data, B.run_richardson_lucy(cubic, 1.7, 5), atol=1e-6)


def test_iter_baseline_estimates_the_psf_from_a_reference(phantom, hres_grid):
    records, res = _drain_records(
        B.iter_baseline(phantom.lres, phantom.lres_voxel_um, hres_grid, "rl", reference=phantom.hres, iterations=3)
    )
    # Interpolating (step 0), estimating the PSF (1 done), 3 iterations (2 + k done).
    assert [r.step for r in records] == [0, 1, 3, 4, 5]
    assert {r.total for r in records} == {5}
    assert "PSF" in records[1].message
    assert res.psf is not None and res.psf_sigma_um == (res.psf.sigma_um,) * 3
    json.dumps(res.to_dict())


def test_iter_baseline_interpolation_and_errors(phantom, hres_grid):
    lres, lv = phantom.lres, phantom.lres_voxel_um
    records, res = _drain_records(B.iter_baseline(lres, lv, hres_grid, "linear"))
    assert [(r.step, r.total) for r in records] == [(0, 1), (1, 1)]
    np.testing.assert_array_equal(res.data, B.interpolate(lres, lv, hres_grid, "linear"))
    assert res.psf is None and res.psf_sigma_um is None and res.iterations == 0
    with pytest.raises(InputError, match="psf_sigma_um") as info:
        B.iter_baseline(lres, lv, hres_grid, "rl")
    assert "--" not in str(info.value) and info.value.parameters == ("psf_sigma_um",)  # the CLI renders the flag
    with pytest.raises(InputError, match="shape"):
        B.iter_baseline(lres, lv, hres_grid, "rl", reference=phantom.hres[:-1])
    with pytest.raises(InputError, match="'rl'"):
        B.iter_baseline(lres, lv, hres_grid, "srcnn")
    assert B.METHODS == ("linear", "cubic", "rl")


def test_rl_with_the_estimated_psf_beats_cubic_on_the_phantom(phantom, hres_grid):
    cubic = B.run_baseline(phantom.lres, phantom.lres_voxel_um, hres_grid, "cubic")
    rl = B.run_baseline(phantom.lres, phantom.lres_voxel_um, hres_grid, "rl", reference=phantom.hres)
    truth = phantom.hres_truth
    # The LRES blur relative to the HRES: PSF 1.5 um, 3 um voxel integration
    # (sigma 3 / sqrt(12)) less the HRES's own 0.5 um, about 1.66 um; cubic
    # interpolation smooths a little more (measured 1.74 um).
    expected = math.sqrt(1.5**2 + 3**2 / 12 - 0.5**2)
    assert rl.psf.sigma_um == pytest.approx(expected, rel=0.1)
    p_cubic = psnr(cubic.data, truth, data_range=1.0)
    p_rl = psnr(rl.data, truth, data_range=1.0)
    # Measured with the default 10 iterations: cubic 13.75 dB, RL 15.71 dB.
    assert p_rl > p_cubic + 1.0


def test_plan_baseline_checks_everything_before_the_work(phantom, hres_grid):
    lres, lv = phantom.lres, phantom.lres_voxel_um
    plan = B.plan_baseline(lres, lv, hres_grid, "rl", psf_sigma_um=1.7, iterations=2)
    assert isinstance(plan, B.BaselinePlan)
    assert plan.psf_sigma_um == (1.7, 1.7, 1.7) and plan.iterations == 2 and plan.lres_voxel_um == (3.0, 3.0, 3.0)
    # A plan and the old call form give the same result.
    np.testing.assert_array_equal(B.run_baseline(plan).data,
                                  B.run_baseline(lres, lv, hres_grid, "rl", psf_sigma_um=1.7, iterations=2).data)
    with pytest.raises(InputError, match="iterations"):
        B.plan_baseline(lres, lv, hres_grid, "rl", psf_sigma_um=1.7, iterations=0)
    with pytest.raises(InputError, match="method") as info:
        B.plan_baseline(lres, lv, hres_grid, "bicubic")
    assert info.value.parameters == ("method",)
    assert B.plan_baseline(lres, lv, hres_grid, "cubic", iterations=0).iterations == 0  # unused by interpolation
