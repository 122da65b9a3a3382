"""Tests of napari_resolve.registration on the seeded foam phantom (no Qt)."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
from scipy import ndimage

from napari_resolve import registration as reg
from napari_resolve.errors import (
    FileFormatError,
    InputError,
    RegistrationError,
    ResolveError,
    VoxelSizeError,
)
from napari_resolve.phantom import block_mean, make_phantom
from napari_resolve.registration import Registration, area_downsample, register


@cache
def phantom(size, ratio, ndim=3, seed=0, hres_start=None, **kw):
    return make_phantom(size, ratio, ndim=ndim, seed=seed, hres_start=hres_start, **kw)


def errors_in_hres_voxels(result: Registration, ph) -> np.ndarray:
    return np.abs(np.subtract(result.offset_um, ph.hres_offset_um)) / np.array(ph.hres_voxel_um)


def off_grid_start(rng, fine_shape, hres_shape, ratio):
    """A random HRES start that is not a multiple of ``ratio`` on any axis."""
    start = []
    for f, h in zip(fine_shape, hres_shape):
        while True:
            k = int(rng.integers(0, f - h + 1))
            if k % ratio:
                start.append(k)
                break
    return tuple(start)


# ----------------------------------------------------------------- resampling


def test_area_downsample_integer_equals_block_mean():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(13, 14, 15)).astype(np.float32)
    np.testing.assert_allclose(area_downsample(a, (3, 3, 3)), block_mean(a, 3), rtol=1e-5, atol=1e-6)


def test_area_downsample_general_path_matches_block_mean_and_keeps_constants():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(12, 17))
    # The cumulative-sum path (used for non-integer factors) on integer edges.
    out = reg._interval_mean(a, 1, np.arange(5) * 3.0, np.arange(1, 6) * 3.0)
    np.testing.assert_allclose(out, a[:, :15].reshape(12, 5, 3).mean(axis=2))
    const = np.full((20, 20), 7.0)
    np.testing.assert_allclose(area_downsample(const, (2.5, 1.7)), 7.0)
    assert area_downsample(const, (2.5, 1.7)).shape == (8, 11)


def test_area_downsample_non_integer_is_exact_interval_mean():
    a = np.arange(10, dtype=float)  # piecewise constant: voxel k has value k on [k, k+1]
    out = area_downsample(a, (2.5,))
    # Block 0 covers [0, 2.5]: (0 + 1 + 0.5 * 2) / 2.5; block 1 covers [2.5, 5].
    np.testing.assert_allclose(out[:2], [(0 + 1 + 1.0) / 2.5, (0.5 * 2 + 3 + 4) / 2.5])
    assert out.shape == (4,)


# ------------------------------------------------------------- accuracy, 3D/2D


@pytest.mark.parametrize("ratio", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_3d_phantom_seeded_start(ratio, seed):
    ph = phantom(40, ratio, seed=seed)
    res = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    err = errors_in_hres_voxels(res, ph)
    assert res.ok, res.message
    assert np.all(err < 0.5), (err, res.message)
    assert np.all(err < 0.15)  # the typical error is a few hundredths of a voxel
    assert res.ncc > 0.9
    assert res.scale == ph.hres_voxel_um
    assert res.template_shape == tuple(h // ratio for h in ph.hres.shape)


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_3d_phantom_off_grid_start(ratio):
    rng = np.random.default_rng(100 + ratio)
    fine = (36 * ratio,) * 3
    hres_shape = (int(0.4 * fine[0]),) * 3
    start = off_grid_start(rng, fine, hres_shape, ratio)
    ph = phantom(36, ratio, seed=10 + ratio, hres_start=start)
    assert all(k % ratio for k in ph.hres_start)
    res = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    err = errors_in_hres_voxels(res, ph)
    assert res.ok, res.message
    assert np.all(err < 0.5), err
    # The coarse result alone is off by a fraction of an LRES voxel; refinement fixes it.
    coarse_err = np.abs(np.subtract(res.coarse_offset_um, ph.hres_offset_um))
    assert np.all(coarse_err <= ph.lres_voxel_um[0] + 1e-6)


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_2d_phantom(ratio):
    for seed in (0, 1, 2):
        ph = phantom(96, ratio, ndim=2, seed=seed)
        res = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
        err = errors_in_hres_voxels(res, ph)
        assert res.ok, res.message
        assert len(res.offset_um) == 2
        assert np.all(err < 0.5), (seed, err)


@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_contrast_and_noise_difference(ratio):
    ph = phantom(36, ratio, seed=7, hres_gain=0.6, hres_offset=0.3, hres_photons=60.0, photons=150.0)
    res = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    err = errors_in_hres_voxels(res, ph)
    assert res.ok, res.message
    assert not res.inverted
    assert np.all(err < 0.5), err


@pytest.mark.parametrize("ratio", [2, 4])
def test_heavy_noise(ratio):
    # 10 photons per unit intensity: SNR about 3 per LRES voxel. Without the
    # smoothing before refinement the error here exceeded half an HRES voxel.
    ph = phantom(40, ratio, seed=2, photons=10.0, hres_photons=10.0)
    res = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    assert res.ok, res.message
    assert np.all(errors_in_hres_voxels(res, ph) < 0.5)


def test_inverted_contrast_is_detected():
    ph = phantom(36, 3, seed=7, hres_gain=0.6, hres_offset=0.3)
    res = register(ph.lres, 2.0 - ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    assert res.ok, res.message
    assert res.inverted and "inverted" in res.message
    assert np.all(errors_in_hres_voxels(res, ph) < 0.5)


def resampled_case(truth, lres_voxel, origin, start, hres_shape, seed=0):
    """LRES with any voxel size (not the phantom's integer ratio) from a fine truth.

    LRES voxel ``i`` is the blurred truth sampled at fine index ``origin + i * voxel``;
    the HRES (voxel 1 um) starts at fine index ``start``, so the true offset is
    ``start - origin`` um.
    """
    rng = np.random.default_rng(seed)
    v = np.asarray(lres_voxel, float)
    blurred = ndimage.gaussian_filter(truth, 0.5 * v)
    n = np.floor((np.array(truth.shape) - 1 - np.array(origin)) / v).astype(int) + 1
    grids = np.meshgrid(*[o + np.arange(k) * s for o, k, s in zip(origin, n, v)], indexing="ij")
    lres = ndimage.map_coordinates(blurred, np.stack(grids), order=1) + rng.normal(0, 0.03, tuple(n))
    box = tuple(slice(s, s + k) for s, k in zip(start, hres_shape))
    hres = ndimage.gaussian_filter(truth, 0.5)[box] + rng.normal(0, 0.05, hres_shape)
    return lres.astype(np.float32), hres.astype(np.float32), np.subtract(start, origin)


@pytest.mark.parametrize(
    "voxel, origin", [((2.5, 2.5), (0.75, 0.75)), ((2.7, 1.6), (0.3, 1.1)), ((3.3, 3.3), (0.0, 0.0))]
)
def test_non_integer_and_anisotropic_ratio_2d(voxel, origin):
    truth = phantom(96, 2, ndim=2, seed=4).truth
    lres, hres, true_offset = resampled_case(truth, voxel, origin, (57, 33), (70, 80))
    res = register(lres, hres, voxel, 1.0)
    assert res.ok, res.message
    assert np.all(np.abs(np.subtract(res.offset_um, true_offset)) < 0.5)


def test_non_integer_anisotropic_ratio_3d():
    truth = phantom(32, 2, seed=4).truth
    voxel = (3.0, 2.5, 2.0)
    lres, hres, true_offset = resampled_case(truth, voxel, (0.5, 0.75, 0.5), (10, 17, 23), (28, 28, 28))
    res = register(lres, hres, voxel, 1.0)
    assert res.ok, res.message
    assert res.template_shape == (9, 11, 14)
    assert np.all(np.abs(np.subtract(res.offset_um, true_offset)) < 0.5)


def test_pyramid_search_gives_the_same_answer(monkeypatch):
    ph = phantom(40, 3, seed=3)
    direct = register(ph.lres, ph.hres, 3.0, 1.0)
    monkeypatch.setattr(reg, "MAX_SEARCH_VOXELS", 1000)
    messages = []
    res = register(ph.lres, ph.hres, 3.0, 1.0, progress=messages.append)
    assert any("pyramid" in m for m in messages)
    assert res.ok, res.message
    assert np.all(errors_in_hres_voxels(res, ph) < 0.5)
    np.testing.assert_allclose(res.offset_um, direct.offset_um, atol=0.05)


def test_pyramid_search_per_axis_for_a_thin_hres(monkeypatch):
    ph = phantom(40, 3, seed=3, hres_size=(5, 60, 60))
    monkeypatch.setattr(reg, "MAX_SEARCH_VOXELS", 1000)
    messages = []
    res = register(ph.lres, ph.hres, 3.0, 1.0, progress=messages.append)
    assert any("1:1x2x2 pyramid" in m for m in messages), messages
    assert res.ok, res.message
    assert np.all(errors_in_hres_voxels(res, ph) < 0.5)


# ------------------------------------------------------------ search window


def test_init_offset_near_truth_small_radius():
    ph = phantom(40, 3, seed=1)
    init = np.add(ph.hres_offset_um, (2.0, -3.0, 4.0))
    res = register(ph.lres, ph.hres, 3.0, 1.0, init_offset_um=init, search_radius_um=6.0)
    assert res.ok, res.message
    assert np.all(errors_in_hres_voxels(res, ph) < 0.5)
    assert np.all(np.array(res.search_lo_um) <= ph.hres_offset_um)
    assert np.all(np.array(res.search_hi_um) >= ph.hres_offset_um)
    # The window was small: far less than the whole LRES.
    assert np.all(np.subtract(res.search_hi_um, res.search_lo_um) <= 2 * 6.0 + 4 * 3.0 + 1e-6)


def test_init_offset_far_from_truth_is_unreliable():
    ph = phantom(40, 3, seed=1)
    init = np.add(ph.hres_offset_um, (0.0, 0.0, 30.0))
    res = register(ph.lres, ph.hres, 3.0, 1.0, init_offset_um=init, search_radius_um=6.0)
    assert res.status == "unreliable"
    assert not res.ok
    assert res.message and ("border" in res.message or "NCC" in res.message)
    with pytest.raises(RegistrationError, match="Unreliable"):
        res.require_ok()


def test_init_offset_shifted_along_one_axis_flags_border():
    ph = phantom(40, 3, seed=1)
    init = np.add(ph.hres_offset_um, (0.0, 0.0, 12.0))  # 4 LRES voxels along x
    res = register(ph.lres, ph.hres, 3.0, 1.0, init_offset_um=init, search_radius_um=3.0)
    assert res.status == "unreliable"
    assert "border" in res.message and "axis x" in res.message


def test_init_offset_outside_field_raises():
    ph = phantom(40, 3, seed=1)
    with pytest.raises(RegistrationError, match="init_offset_um"):
        register(ph.lres, ph.hres, 3.0, 1.0, init_offset_um=(500.0, 0.0, 0.0), search_radius_um=10.0)


# ----------------------------------------------------------- unreliable inputs


def test_unrelated_phantom_is_unreliable():
    ph = phantom(40, 3, seed=1)
    other = phantom(40, 3, seed=2)
    res = register(ph.lres, other.hres, 3.0, 1.0)
    assert res.status == "unreliable"
    assert "NCC" in res.message and "To fix" in res.message
    assert res.ncc < 0.5


def test_pure_noise_is_unreliable():
    ph = phantom(40, 3, seed=1)
    noise = np.random.default_rng(5).normal(size=ph.hres.shape).astype(np.float32)
    res = register(ph.lres, noise, 3.0, 1.0)
    assert res.status == "unreliable"
    assert res.ncc < 0.3
    assert res.message


def test_repeated_structure_is_ambiguous():
    # An LRES with two identical copies of the region: two equal peaks.
    ph = phantom(96, 2, ndim=2, seed=1)
    half = ph.lres[:, :48]
    lres = np.concatenate([half, half], axis=1)
    hres = ph.truth[20:60, 20:60] + np.random.default_rng(0).normal(0, 0.05, (40, 40))
    res = register(lres, hres, 2.0, 1.0)
    assert res.status == "unreliable"
    assert "ambiguous" in res.message
    assert res.peak_ratio > 0.9


# ---------------------------------------------------------------- errors


def test_hres_larger_than_lres_raises():
    ph = phantom(40, 2, seed=0)
    with pytest.raises(RegistrationError, match="larger than the LRES field"):
        register(ph.lres[:10], ph.hres, 2.0, 1.0)
    # Voxel sizes that make the HRES the coarser scan are refused before any field is compared.
    with pytest.raises(VoxelSizeError, match="swapped"):
        register(ph.lres, ph.hres, 2.0, 3.0)


def test_ndim_mismatch_raises():
    ph = phantom(40, 2, seed=0)
    with pytest.raises(InputError, match="2D"):
        register(ph.lres, ph.hres[0], 2.0, 1.0)


def test_nan_raises_input_error():
    ph = phantom(40, 2, seed=0)
    bad = ph.hres.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        register(ph.lres, bad, 2.0, 1.0)


def test_voxel_size_errors():
    ph = phantom(40, 2, seed=0)
    with pytest.raises(VoxelSizeError):
        register(ph.lres, ph.hres, (2.0, 2.0), 1.0)
    with pytest.raises(VoxelSizeError):
        register(ph.lres, ph.hres, 2.0, None)
    with pytest.raises(VoxelSizeError):
        register(ph.lres, ph.hres, 2.0, -1.0)


def test_other_input_errors():
    ph = phantom(40, 2, seed=0)
    with pytest.raises(InputError, match="constant"):
        register(ph.lres, np.ones_like(ph.hres), 2.0, 1.0)
    with pytest.raises(RegistrationError, match="too few"):
        register(ph.lres, ph.hres[:3, :3, :3], 2.0, 1.0)
    with pytest.raises(InputError, match="init_offset_um"):
        register(ph.lres, ph.hres, 2.0, 1.0, init_offset_um=(1.0, 2.0))
    with pytest.raises(InputError, match="search_radius_um"):
        register(ph.lres, ph.hres, 2.0, 1.0, init_offset_um=(1.0, 2.0, 3.0), search_radius_um=-1)
    with pytest.raises(InputError, match="min_ncc"):
        register(ph.lres, ph.hres, 2.0, 1.0, min_ncc=2)
    # All are ResolveErrors, which the CLI and widgets catch.
    assert issubclass(RegistrationError, ResolveError) and issubclass(InputError, ResolveError)


def test_inputs_are_not_modified_and_progress_is_reported():
    ph = phantom(40, 2, seed=0)
    lres, hres = ph.lres.copy(), ph.hres.copy()
    messages: list[str] = []
    register(lres, hres, 2.0, 1.0, progress=messages.append)
    np.testing.assert_array_equal(lres, ph.lres)
    np.testing.assert_array_equal(hres, ph.hres)
    assert len(messages) >= 3 and all(isinstance(m, str) and m for m in messages)


# ----------------------------------------------------------- scale refinement


@pytest.mark.parametrize("wrong", [1.02, 0.98])
def test_refine_scale_recovers_a_2_percent_voxel_error(wrong):
    ph = phantom(40, 3, seed=0)
    plain = register(ph.lres, ph.hres, 3.0, wrong)
    res = register(ph.lres, ph.hres, 3.0, wrong, refine_scale=True)
    assert res.ok, res.message
    assert res.hres_voxel_um == (wrong,) * 3
    np.testing.assert_allclose(res.scale, ph.hres_voxel_um, rtol=0.005)
    err = errors_in_hres_voxels(res, ph)
    assert np.all(err < 0.5), err
    # Without refinement the wrong voxel size costs far more accuracy.
    assert errors_in_hres_voxels(plain, ph).max() > 2 * err.max()
    assert res.ncc >= plain.ncc


def test_refine_scale_with_exact_voxel_stays_put():
    ph = phantom(96, 3, ndim=2, seed=0)
    res = register(ph.lres, ph.hres, 3.0, 1.0, refine_scale=True)
    assert res.ok, res.message
    np.testing.assert_allclose(res.scale, 1.0, rtol=0.005)
    assert np.all(errors_in_hres_voxels(res, ph) < 0.5)


def test_refine_scale_keeps_the_size_of_a_thin_axis():
    # 5 HRES slices cover one LRES voxel in z: that scale cannot be measured.
    ph = phantom(40, 3, seed=3, hres_size=(5, 60, 60))
    res = register(ph.lres, ph.hres, 3.0, 1.02, refine_scale=True)
    assert res.ok, res.message
    assert res.template_shape[0] == 1
    assert res.scale[0] == 1.02
    np.testing.assert_allclose(res.scale[1:], 1.0, rtol=0.01)
    assert np.all(errors_in_hres_voxels(res, ph) < 0.5)


# ------------------------------------------------------------ serialisation


def test_dict_and_file_round_trip(tmp_path):
    ph = phantom(96, 2, ndim=2, seed=0)
    res = register(ph.lres, ph.hres, 2.0, 1.0)
    d = res.to_dict()
    json.dumps(d)  # JSON-friendly
    for key in ("offset_um", "scale", "ncc", "status", "message"):
        assert key in d
    assert isinstance(d["offset_um"], list) and all(type(v) is float for v in d["offset_um"])
    assert Registration.from_dict(d) == res
    path = res.save(tmp_path / "reg.json")
    assert Registration.load(path) == res
    assert not list(tmp_path.glob("*.tmp"))
    assert res.layer_kwargs() == {"translate": list(res.offset_um), "scale": list(res.scale)}


def test_round_trip_of_an_unreliable_result(tmp_path):
    ph = phantom(40, 3, seed=1)
    noise = np.random.default_rng(5).normal(size=ph.hres.shape)
    res = register(ph.lres, noise, 3.0, 1.0)
    again = Registration.load(res.save(tmp_path / "r.json"))
    assert again == res and not again.ok


def test_load_errors(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        Registration.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"offset_um": [1, 2', encoding="utf-8")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        Registration.load(bad)
    bad.write_text('{"offset_um": [1, 2]}', encoding="utf-8")
    with pytest.raises(FileFormatError, match="lacks"):
        Registration.load(bad)
    with pytest.raises(RegistrationError, match="lacks"):
        Registration.from_dict({"offset_um": [1.0, 2.0]})
    with pytest.raises(RegistrationError):
        Registration.from_dict([1, 2])


# ---------------------------------------------------------------- warnings


def test_search_radius_without_init_warns_and_searches_everything():
    from napari_resolve.errors import ResolveWarning

    ph = phantom(96, 2, ndim=2, seed=0)
    with pytest.warns(ResolveWarning, match="search_radius_um is ignored"):
        res = register(ph.lres, ph.hres, 2.0, 1.0, search_radius_um=5.0)
    assert res.ok
    assert res.search_lo_um == (-0.5, -0.5)


@pytest.mark.parametrize("hres_voxel", [2.5, 2.0, (1.0, 2.5)], ids=["coarser", "equal", "coarser-on-x"])
def test_an_hres_that_is_not_the_finer_scan_is_refused(hres_voxel):
    from napari_resolve.errors import VoxelSizeError

    ph = phantom(96, 2, ndim=2, seed=0)
    with pytest.raises(VoxelSizeError, match="HRES voxels .* (larger than|the same size as) the LRES voxels .*swapped"):
        register(ph.lres, ph.hres[:30, :30], 2.0, hres_voxel)


def test_a_registration_record_with_a_coarser_hres_is_refused():
    from napari_resolve.registration import Registration

    ph = phantom(96, 2, ndim=2, seed=0)
    record = register(ph.lres, ph.hres, 2.0, 1.0).to_dict()
    record["hres_voxel_um"] = [6.0, 6.0]
    with pytest.raises(RegistrationError, match="not usable.*HRES voxels .*larger"):
        Registration.from_dict(record)
