"""Synthetic LRES (napari_resolve.learn.synthetic): the degradation reproduces its parameters, the
synthetic input is made like a real pair's, and the training pair keeps its validation block apart."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.geometry.grid import Grid, resample_lres, upscale_grid
from napari_resolve.learn.synthetic import (
    Degradation,
    SyntheticSampler,
    binning_phase_origin_um,
    degrade,
    format_range,
    make_synthetic_pair,
    parse_range,
    synthetic_input,
)
from napari_resolve.phantom import block_mean, make_phantom
from napari_resolve.registration import area_downsample

CLEAN = {"blur_sigma": [0.0, 0.0, 0.0], "gaussian_noise": 0.0, "poisson_photons": None, "speckle": 0.0}


def clean(ndim=3, **kw):
    p = dict(CLEAN, blur_sigma=[0.0] * ndim)
    p.update(kw)
    return p


# ----------------------------------------------------------------------------- local mean


def test_without_blur_and_noise_it_is_the_exact_local_mean():
    rng = np.random.default_rng(0)
    vol = rng.random((12, 15, 10)).astype(np.float32)
    lres, params = degrade(vol, Degradation(ratio=3), params=clean())
    assert lres.shape == (4, 5, 3) and lres.dtype == np.float32
    expected = vol[:, :, :9].reshape(4, 3, 5, 3, 3, 3).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(lres, expected, atol=1e-6)
    assert params == clean()
    # A non-integer ratio: the exact interval mean (the registration's template), mean preserved.
    img = rng.random((20, 25)).astype(np.float32)
    lres2, _ = degrade(img, Degradation(ratio=2.5), params=clean(2))
    assert lres2.shape == (8, 10)
    np.testing.assert_allclose(lres2, area_downsample(img, (2.5, 2.5)), atol=1e-6)
    assert lres2.mean() == pytest.approx(img.mean(), abs=1e-6)


@pytest.mark.parametrize(("shape", "ratio", "expected"), [
    ((10, 11, 12), (1, 2, 3), (10, 5, 4)),
    ((30, 31), 3, (10, 10)),
    ((17, 40, 41), (2.5, 4, 4), (6, 10, 10)),
])
def test_downsampled_size_is_n_over_ratio(shape, ratio, expected):
    lres, _ = degrade(np.random.default_rng(1).random(shape), Degradation(ratio=ratio), rng=0)
    assert lres.shape == expected


# ----------------------------------------------------------------------------- blur


def _sigma(img: np.ndarray) -> list[float]:
    """Standard deviation of a non-negative image's mass along each axis (voxels)."""
    out = []
    for ax in range(img.ndim):
        prof = img.sum(axis=tuple(a for a in range(img.ndim) if a != ax))
        x = np.arange(len(prof))
        m = (prof * x).sum() / prof.sum()
        out.append(float(np.sqrt((prof * (x - m) ** 2).sum() / prof.sum())))
    return out


def test_blur_sigma_is_in_lres_voxels_and_drawn_per_axis():
    # An HRES cube of 2^3 voxels on the block grid is one LRES voxel at ratio 2.
    vol = np.zeros((62, 62, 62), np.float32)
    vol[30:32, 30:32, 30:32] = 1.0
    lres, _ = degrade(vol, Degradation(ratio=2), params=clean(blur_sigma=[0.8, 1.5, 2.0]))
    np.testing.assert_allclose(_sigma(lres), [0.8, 1.5, 2.0], rtol=0.03)
    # Drawn sigmas: a different one on each axis, inside the range, and the image shows them.
    deg = Degradation(ratio=2, blur=(0.5, 2.0), gaussian_noise=(0, 0), poisson=None, speckle=(0, 0))
    lres, params = degrade(vol, deg, rng=3)
    drawn = params["blur_sigma"]
    assert len(set(drawn)) == 3 and all(0.5 <= s <= 2.0 for s in drawn)
    np.testing.assert_allclose(_sigma(lres), drawn, rtol=0.05)
    # One range per axis.
    per_axis = Degradation(ratio=2, blur=((0, 0), (1, 1), (2, 2)), poisson=None)
    _, params = degrade(vol, per_axis, rng=0, reference=(0.0, 1.0))
    assert params["blur_sigma"] == [0.0, 1.0, 2.0]


# ----------------------------------------------------------------------------- noise


def test_noise_std_is_what_was_asked_on_a_flat_image():
    flat = np.full((96, 96, 96), 0.5, np.float32)
    ref = (0.0, 1.0)
    deg = Degradation(ratio=2)
    g, _ = degrade(flat, deg, rng=0, params=clean(gaussian_noise=0.1), reference=ref)
    assert g.mean() == pytest.approx(0.5, abs=0.002)
    assert g.std() == pytest.approx(0.1, rel=0.15)
    # Speckle is multiplicative: sigma 0.2 at relative intensity 0.5 -> 0.1.
    s, _ = degrade(flat, deg, rng=0, params=clean(speckle=0.2), reference=ref)
    assert s.std() == pytest.approx(0.1, rel=0.15)
    # Noise levels are relative to the reference range: doubling it doubles the noise in grey values.
    g2, _ = degrade(flat * 2, deg, rng=0, params=clean(gaussian_noise=0.1), reference=(0.0, 2.0))
    assert g2.std() == pytest.approx(2 * g.std(), rel=1e-3)
    # Drawn levels: the reported sigma is the one in the image.
    drawn_deg = Degradation(ratio=2, blur=(0, 0), gaussian_noise=(0.02, 0.2), poisson=None, speckle=(0, 0))
    d, params = degrade(flat, drawn_deg, rng=5, reference=ref)
    assert 0.02 <= params["gaussian_noise"] <= 0.2
    assert d.std() == pytest.approx(params["gaussian_noise"], rel=0.15)


def test_poisson_variance_is_proportional_to_the_mean():
    deg = Degradation(ratio=1)
    photons = 50.0
    ratios = []
    for level in (0.2, 0.5, 1.0):
        flat = np.full((48, 48, 48), level, np.float32)
        noisy, _ = degrade(flat, deg, rng=1, params=clean(poisson_photons=photons), reference=(0.0, 1.0))
        assert noisy.mean() == pytest.approx(level, rel=0.01)
        ratios.append(noisy.var() / level)
    np.testing.assert_allclose(ratios, 1 / photons, rtol=0.05)  # variance = mean / photons
    # More photons, less noise; photons are drawn log-uniformly inside the range.
    rng = np.random.default_rng(0)
    draws = np.log10([Degradation(poisson=(10, 1000)).draw(3, rng)["poisson_photons"] for _ in range(2000)])
    assert 1 <= draws.min() and draws.max() <= 3
    assert draws.mean() == pytest.approx(2, abs=0.05) and draws.std() == pytest.approx(2 / 12**0.5, rel=0.05)


def test_seeds_reproduce():
    vol = make_phantom(24, 2, seed=1).hres
    deg = Degradation(ratio=2, seed=7)
    a, pa = degrade(vol, deg)
    b, pb = degrade(vol, deg)
    c, pc = degrade(vol, Degradation(ratio=2, seed=8))
    np.testing.assert_array_equal(a, b)
    assert pa == pb and pa != pc and not np.array_equal(a, c)
    d, _ = degrade(vol, deg, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, d)


# ----------------------------------------------------------------------------- parameters


def test_record_round_trip():
    deg = Degradation(ratio=(1, 2.5, 2.5), blur=((0, 0.5), (0, 1), (0, 1)), poisson=None, speckle=(0, 0.1), seed=3)
    d = json.loads(json.dumps(deg.to_dict()))
    back = Degradation.from_dict(d)
    assert back.to_dict() == d
    assert back.ratios(3) == (1.0, 2.5, 2.5) and back.poisson is None
    assert back.lres_voxel_um((2.0, 1.0, 1.0)) == (2.0, 2.5, 2.5)
    assert Degradation().lres_voxel_um(1.5) == (4.5, 4.5, 4.5)
    typical = Degradation(blur=(0, 2), gaussian_noise=(0, 0.1), poisson=(100, 10000), speckle=(0, 0.04)).typical(2)
    # pytest.approx compares flat mappings only (pytest 9 refuses nested ones): the per-axis blur apart.
    assert typical.pop("blur_sigma") == pytest.approx([1.0, 1.0])
    assert typical == pytest.approx({"gaussian_noise": 0.05, "poisson_photons": 1000.0, "speckle": 0.02})


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"ratio": 0.5}, "at least 1"),
    ({"ratio": (1, 2)}, "2 values but the HRES has 3 axes"),
    ({"blur": (-1, 2)}, "cannot be negative"),
    ({"blur": (2, 1)}, "low <= high"),
    ({"blur": ((0, 1), (0, 1))}, "2 ranges but the HRES has 3 axes"),
    ({"gaussian_noise": (-0.1, 0.1)}, "Gaussian noise range cannot be negative"),
    ({"speckle": (0.1,)}, "range"),
    ({"poisson": (0, 100)}, "Poisson photon range must be positive"),
    ({"seed": -1}, "seed"),
])
def test_bad_parameters_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match) as err:
        Degradation(**kwargs).check(3)
    if "seed" not in kwargs:  # the message names the parameter to change
        (name,) = err.value.parameters
        assert name in kwargs and name in str(err.value)
    with pytest.raises(InputError, match=match):
        degrade(np.zeros((12, 12, 12)), Degradation(**kwargs))


def test_bad_records_and_small_hres_raise_input_error():
    with pytest.raises(InputError, match="Unknown degradation parameter.*blurr"):
        Degradation.from_dict({"blurr": [0, 1]})
    with pytest.raises(InputError, match="at least 1 on every axis"):
        Degradation.from_dict({"ratio": 0})
    with pytest.raises(InputError, match=r"5 voxels along z: at ratio 8 that is 0.62 LRES voxels.*smaller ratio"):
        degrade(np.zeros((5, 40, 40)), Degradation(ratio=8))
    with pytest.raises(InputError, match=r"HRES is 20 voxels along x.*at least 2 are needed \(24 HRES voxels\)"):
        make_synthetic_pair(np.random.default_rng(0).random((40, 40, 20)), 1.0, Degradation(ratio=12))


def test_ranges_as_text():
    assert parse_range("0:2", "x") == (0.0, 2.0) and parse_range(" 0.5 ", "x") == (0.5, 0.5)
    assert parse_range("0:1,0:2,0:2", "x", per_axis=True) == ((0.0, 1.0), (0.0, 2.0), (0.0, 2.0))
    assert parse_range("off", "x", allow_off=True) is None and parse_range(None, "x") is None
    with pytest.raises(InputError, match="--speckle takes one range"):
        parse_range("0:1,0:2", "--speckle")
    with pytest.raises(InputError, match=r"--blur takes LO:HI \(e.g. 0:1"):
        parse_range("a:b", "--blur", per_axis=True)
    with pytest.raises(InputError, match="LO:HI"):
        parse_range("off", "--gaussian-noise")  # only where a noise can be left out
    for value in [(0.0, 1.0), ((0.0, 0.5), (0.0, 1.0), (0.0, 1.0)), None]:
        assert parse_range(format_range(value), "x", per_axis=True, allow_off=True) == value


# ----------------------------------------------------------------------------- the synthetic input


def test_synthetic_input_is_made_like_a_real_pair_input():
    """No blur, no noise: the synthetic input of a truth box equals the real pipeline's input (cubic
    interpolation of the binned truth at the HRES voxel centres) when the cut starts on a bin edge."""
    ph = make_phantom(24, 3, seed=0)
    truth = ph.truth
    lres = block_mean(truth, 3)  # the phantom's binning: LRES voxel i averages truth voxels 3i..3i+2
    lo, hi = (30, 20, 25), (38, 52, 60)
    # Truth voxel k has its centre at (k - 1) um in the LRES frame (ratio 3, 1 um voxels).
    real = resample_lres(lres, (3.0,) * 3, Grid(tuple(b - a for a, b in zip(lo, hi)), (1.0,) * 3,
                                                tuple(a - 1.0 for a in lo)))
    rng = np.random.default_rng(0)
    # The cut starts (margin + phase) before ``lo``: phase = lo mod 3 puts it on a bin edge.
    aligned = synthetic_input(truth, lo, hi, (1.0,) * 3, (3, 3, 3), clean(), rng, (0.0, 1.0), phase=(0, 2, 1))
    assert np.abs(aligned - real).max() < 2e-3
    # Another phase is another (equally valid) binning: clearly different.
    other = synthetic_input(truth, lo, hi, (1.0,) * 3, (3, 3, 3), clean(), rng, (0.0, 1.0), phase=(0, 0, 0))
    assert np.abs(other - real).max() > 0.1


def test_the_binning_phase_puts_ratio_output_voxels_flush_inside_every_lres_voxel():
    phase = binning_phase_origin_um((1.0, 1.0, 1.0), (3.0, 3.0, 3.0))
    assert phase == (-1.0, -1.0, -1.0)
    # Upscaling LRES voxels 2..9 gives 3 output voxels flush inside each: the first centred 1 um after
    # the LRES edge at 1.5 x 3 um.
    grid = upscale_grid((slice(2, 10),) * 3, (3.0,) * 3, (1.0,) * 3, phase)
    assert grid.shape == (24, 24, 24) and grid.origin_um == pytest.approx((5.0, 5.0, 5.0))
    # A non-integer ratio: HRES voxel 0 still starts at the LRES voxel's edge (-lres / 2).
    phase = binning_phase_origin_um((1.0, 0.5), (2.5, 1.25))
    assert phase == pytest.approx((-0.75, -0.375))
    assert [p - h / 2 for p, h in zip(phase, (1.0, 0.5))] == pytest.approx([-1.25, -0.625])
    # The synthetic pair records the phase of the ratio it was cut with.
    _, pair = _pair(ratio=3)
    assert pair.phase_origin_um == pytest.approx((-1.0, -1.0, -1.0))


# ----------------------------------------------------------------------------- the training pair


@cache
def _hres():
    """A 40 x 48 x 48 HRES of the foam (1 um voxels)."""
    return make_phantom(48, 2, seed=2, hres_size=(40, 48, 48)).hres


def _pair(ratio=2, **kw):
    vol = _hres()
    return vol, make_synthetic_pair(vol, 1.0, Degradation(ratio=ratio), **kw)


def test_pair_validation_block_and_normalisation():
    vol, pair = _pair(halo_z=2)
    assert pair.target.shape == (40, 48, 48) and pair.inputs.shape == (44, 48, 48)
    assert pair.val_start == 32 and pair.train_shape == (32, 48, 48)  # 20 % of 40 held out, as make_pair
    vi, vt = pair.validation()
    assert vi.shape == (12, 48, 48) and vt.shape == (8, 48, 48)
    np.testing.assert_allclose(pair.norm_out.invert(vt), vol[32:], atol=1e-5)
    # The input normalisation puts the degraded training part on about 0..1, like a real pair's.
    train = pair.inputs[2:34]
    assert np.percentile(train, 0.5) == pytest.approx(0, abs=0.03)
    assert np.percentile(train, 99.5) == pytest.approx(1, abs=0.03)
    # 2D: the validation block is the last rows; the input is repeated as z neighbours.
    img = make_phantom(80, 2, ndim=2, seed=0).hres
    p2 = make_synthetic_pair(img, 1.0, Degradation(ratio=2), halo_z=2)
    assert p2.target.shape == (1,) + img.shape and p2.inputs.shape == (5,) + img.shape
    assert p2.val_axis == 1 and p2.val_start == img.shape[0] - round(0.2 * img.shape[0])
    np.testing.assert_array_equal(p2.inputs[0], p2.inputs[4])


def test_patches_never_read_the_validation_block_and_vary():
    poisoned = _hres().copy()
    poisoned[32:] = 1e6  # the validation block of a 40-slice HRES
    pair = make_synthetic_pair(poisoned, 1.0, Degradation(ratio=2, blur=(0, 2)), halo_z=2)
    assert np.abs(pair.validation()[1]).max() > 1e5  # the block is there, and poisoned
    sampler = SyntheticSampler(pair, out_depth=1, size=32, multiple=4, rng=np.random.default_rng(0))
    for _ in range(30):
        x, y = sampler.sample(4)
        assert x.shape == (4, 5, 32, 32) and y.shape == (4, 1, 32, 32)
        assert np.abs(x).max() < 10 and np.abs(y).max() < 10
    # Fresh parameters and noise for every patch, also at the same place.
    a, b = pair.patch((10, 5, 5), (1, 32, 32))[0], pair.patch((10, 5, 5), (1, 32, 32))[0]
    assert a.shape == (5, 32, 32) and np.abs(a - b).mean() > 0.01
    # Reproducible from the seeds.
    _, again = _pair(halo_z=2)
    _, pair1 = _pair(halo_z=2)
    np.testing.assert_array_equal(again.patch((3, 4, 5), (1, 16, 16))[0], pair1.patch((3, 4, 5), (1, 16, 16))[0])
