"""Tests of napari_resolve.measure.similarity against skimage and pytorch_msssim."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from napari_resolve.errors import InputError, ResolveError, ResolveWarning
from napari_resolve.measure import similarity as quality

pytorch_msssim = pytest.importorskip("pytorch_msssim")


def make_pair(shape, seed=0, offset=3000.0, span=1000.0):
    """A smooth random reference and a blurred, noisy prediction of it.

    The large offset checks that float32 keeps SSIM's variances precise.
    """
    rng = np.random.default_rng(seed)
    ref = ndi.gaussian_filter(rng.random(shape), 2)
    ref = (ref - ref.min()) / (ref.max() - ref.min()) * span + offset
    pred = ndi.gaussian_filter(ref, 1) + rng.normal(0, 0.03 * span, shape)
    return pred.astype(np.float32), ref.astype(np.float32)


def sk_ssim(pred, ref, data_range):
    # float64 so that the reference numbers carry no float32 error of their own
    return structural_similarity(
        pred.astype(np.float64),
        ref.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        full=True,
    )


def torch_ms_ssim(pred, ref, data_range, weights=None):
    x, y = (torch.from_numpy(a)[None, None] for a in (pred, ref))
    value = pytorch_msssim.ms_ssim(
        x, y, data_range=data_range, size_average=True, win_size=11, win_sigma=1.5, weights=weights
    )
    return float(value)


@pytest.mark.parametrize("shape", [(64, 80), (24, 32, 40)])
def test_ssim_scalar_and_map_match_skimage(shape):
    pred, ref = make_pair(shape)
    dr = float(ref.max() - ref.min())
    expected, expected_map = sk_ssim(pred, ref, dr)
    assert 0.5 < expected < 0.95  # a real, imperfect pair
    assert quality.ssim(pred, ref, dr) == pytest.approx(expected, abs=1e-4)
    got_map = quality.ssim_map(pred, ref, dr)
    assert got_map.dtype == np.float32 and got_map.shape == shape
    assert np.abs(got_map - expected_map).max() < 1e-4


def test_ms_ssim_matches_pytorch_msssim_2d():
    pred, ref = make_pair((192, 200), seed=1)
    dr = float(ref.max() - ref.min())
    expected = torch_ms_ssim(pred, ref, dr)
    assert expected < 0.99
    assert quality.ms_ssim(pred, ref, dr) == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_ms_ssim_matches_pytorch_msssim_3d_five_scales():
    pred, ref = make_pair((168, 168, 168), seed=2, offset=0.0, span=1.0)
    dr = 1.0
    expected = torch_ms_ssim(pred, ref, dr)
    assert quality.ms_ssim(pred, ref, dr) == pytest.approx(expected, abs=1e-4)


def test_ms_ssim_three_scales_matches_pytorch_msssim_with_renormalised_weights():
    # pytorch_msssim checks only the last two sides; 48 slices allow 3 scales.
    pred, ref = make_pair((48, 168, 176), seed=3)
    dr = float(ref.max() - ref.min())
    weights = [w / sum(quality.MS_SSIM_WEIGHTS[:3]) for w in quality.MS_SSIM_WEIGHTS[:3]]
    expected = torch_ms_ssim(pred, ref, dr, weights=weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit scale count must not warn
        got = quality.ms_ssim(pred, ref, dr, scales=3)
    assert got == pytest.approx(expected, abs=1e-4)
    with pytest.warns(ResolveWarning, match="3 of 5 scales"):
        assert quality.ms_ssim(pred, ref, dr) == got


@pytest.mark.parametrize("shape", [(40, 48), (41, 53), (24, 28, 32), (23, 29, 35)])
def test_identical_inputs_give_perfect_scores(shape):
    _, ref = make_pair(shape)
    ref.flags.writeable = False  # like a napari layer's data; must not warn or fail
    assert quality.mse(ref, ref) == 0
    assert quality.psnr(ref, ref) == math.inf
    assert quality.ssim(ref, ref) == pytest.approx(1.0, abs=1e-6)
    assert np.abs(quality.ssim_map(ref, ref) - 1).max() < 1e-6
    with pytest.warns(ResolveWarning):
        assert quality.ms_ssim(ref, ref) == pytest.approx(1.0, abs=1e-6)
    with pytest.warns(ResolveWarning):
        ms_map = quality.ms_ssim_map(ref, ref)
    assert ms_map.dtype == np.float32 and ms_map.shape == shape
    assert np.abs(ms_map - 1).max() < 1e-6


def test_ms_ssim_map_localises_a_fake_feature():
    shape = (64, 64, 64)
    pred, ref = make_pair(shape, seed=4, offset=0.0, span=1.0)
    centre = np.array([16, 16, 16])
    d2 = sum((g - c) ** 2 for g, c in zip(np.indices(shape), centre))
    fake = pred + 0.8 * np.exp(-d2 / (2 * 3.0**2)).astype(np.float32)
    with pytest.warns(ResolveWarning):
        clean = quality.ms_ssim_map(pred, ref, 1.0)
    with pytest.warns(ResolveWarning):
        m = quality.ms_ssim_map(fake, ref, 1.0)
    assert m.min() >= 0 and m.max() <= 1
    inside, far = d2 <= 4**2, d2 >= 24**2
    assert m[inside].max() < 0.6 < np.median(m) - 0.3
    assert np.median(m[far]) > 0.95
    # far from the feature the map is nearly what it is without it (measured 0.005:
    # the coarsest scale's window reaches ~25 voxels)
    assert np.abs(m[far] - clean[far]).max() < 0.01


def test_fewer_scales_warns_and_compare_reports_them():
    pred, ref = make_pair((64, 64, 64), seed=5)
    with pytest.warns(ResolveWarning, match="3 of 5 scales"):
        result = quality.compare(pred, ref)
    assert result["ms_ssim_scales"] == 3
    assert result["data_range"] == pytest.approx(float(ref.max() - ref.min()))
    assert set(result) == {"mse", "psnr", "ssim", "ms_ssim", "data_range", "ms_ssim_scales"}
    assert result["ms_ssim"] == pytest.approx(quality.ms_ssim(pred, ref, scales=3), abs=1e-12)
    assert result["ssim"] == pytest.approx(quality.ssim(pred, ref), abs=1e-12)
    with pytest.raises(InputError, match="scales=3 or fewer"):
        quality.ms_ssim(pred, ref, scales=5)
    with pytest.raises(InputError, match="integer from 1 to 5"):
        quality.ms_ssim_map(pred, ref, scales=0)
    # tiny images fall back to plain SSIM (with a non-negative clip)
    small_pred, small_ref = pred[0, :16, :16], ref[0, :16, :16]
    with pytest.warns(ResolveWarning, match="1 of 5 scales"):
        one = quality.ms_ssim(small_pred, small_ref)
    assert one == pytest.approx(max(quality.ssim(small_pred, small_ref), 0.0), abs=1e-9)


def test_psnr_and_mse_match_skimage():
    pred, ref = make_pair((30, 40, 50), seed=6)
    # skimage subtracts in the input's float32; we subtract in float64
    pred64, ref64 = pred.astype(np.float64), ref.astype(np.float64)
    for dr in (None, 1000.0, 4095.0):
        expected_dr = float(ref.max() - ref.min()) if dr is None else dr
        expected = peak_signal_noise_ratio(ref64, pred64, data_range=expected_dr)
        assert abs(quality.psnr(pred, ref, dr) - expected) < 1e-6
    assert quality.mse(pred, ref) == pytest.approx(mean_squared_error(ref64, pred64), rel=1e-12)


def test_explicit_data_range_changes_ssim_constants():
    pred, ref = make_pair((48, 48), seed=7)
    for dr in (500.0, 5000.0):
        expected, _ = sk_ssim(pred, ref, dr)
        assert quality.ssim(pred, ref, dr) == pytest.approx(expected, abs=1e-4)
    with pytest.warns(ResolveWarning):
        assert quality.compare(pred, ref, 5000.0)["data_range"] == 5000.0


def test_single_slice_volume_is_measured_as_2d():
    pred, ref = make_pair((1, 48, 56), seed=8)
    for name in ("mse", "psnr", "ssim"):
        assert getattr(quality, name)(pred, ref) == getattr(quality, name)(pred[0], ref[0])
    with pytest.warns(ResolveWarning):
        assert quality.ms_ssim(pred, ref) == quality.ms_ssim(pred[0], ref[0])
    assert np.array_equal(quality.ssim_map(pred, ref)[0], quality.ssim_map(pred[0], ref[0]))
    with pytest.warns(ResolveWarning):
        ms_map = quality.ms_ssim_map(pred, ref)
    assert ms_map.shape == (1, 48, 56)
    with pytest.warns(ResolveWarning):
        assert np.array_equal(ms_map[0], quality.ms_ssim_map(pred[0], ref[0]))


def _with_nan(a):
    a = a.copy()
    a[3, 4] = np.nan
    return a


@pytest.mark.parametrize(
    ("make_args", "match"),
    [
        (lambda p, r: (p, r[:, :-1]), "same voxels"),
        (lambda p, r: (_with_nan(p), r), "NaN"),
        (lambda p, r: (p[None, None], r[None, None]), "2D"),
        (lambda p, r: (p[0], r[0]), "2D"),
        (lambda p, r: (p[:8, :8], r[:8, :8]), "at least 11"),
        (lambda p, r: (p, np.full_like(r, 7.0)), "constant"),
    ],
)
def test_bad_input_raises_input_error(make_args, match):
    pred, ref = make_pair((32, 32), seed=9)
    args = make_args(pred, ref)
    funcs = (quality.ssim, quality.ssim_map, quality.ms_ssim, quality.ms_ssim_map, quality.compare)
    for func in funcs:
        with pytest.raises(InputError, match=match), warnings.catch_warnings():
            warnings.simplefilter("ignore", ResolveWarning)
            func(*args)


@pytest.mark.parametrize("data_range", [0, -1.0, float("nan"), "wide"])
def test_bad_data_range_raises(data_range):
    pred, ref = make_pair((32, 32), seed=10)
    with pytest.raises(InputError, match="data_range"):
        quality.psnr(pred, ref, data_range)
    with pytest.raises(InputError, match="data_range"):
        quality.ssim(pred, ref, data_range)


def test_mse_psnr_accept_any_2d_3d_size_but_not_nan():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert quality.mse(a, a + 2) == 4.0
    assert quality.psnr(a, a + 2) == pytest.approx(10 * math.log10(25 / 4))
    b = a.copy()
    b[1, 1] = np.inf
    with pytest.raises(InputError, match="NaN or infinite"):
        quality.mse(a, b)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is missing")
def test_cuda_request_without_gpu_is_an_input_error():
    pred, ref = make_pair((32, 32), seed=11)
    with pytest.raises(InputError, match="CUDA"):
        quality.ssim(pred, ref, device="cuda")
    assert quality.ssim(pred, ref, device="cpu") == quality.ssim(pred, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_cpu_numbers():
    pred, ref = make_pair((40, 48, 56), seed=12, offset=0.0, span=1.0)
    for fn in (quality.ssim, quality.ms_ssim):
        assert fn(pred, ref, 1.0, device="cuda") == pytest.approx(fn(pred, ref, 1.0, device="cpu"), abs=1e-5)
    for fn in (quality.ssim_map, quality.ms_ssim_map):
        np.testing.assert_allclose(fn(pred, ref, 1.0, device="cuda"), fn(pred, ref, 1.0, device="cpu"), atol=1e-4)


# ---------------------------------------------------------------- tiles for large inputs


@pytest.mark.parametrize(
    "shape, budget",
    [((260, 300), 40_000), ((48, 100, 104), 150_000)],  # 2D: 5 scales, 3D: 3 scales
)
def test_tiled_maps_and_scalars_equal_whole_computation(monkeypatch, shape, budget):
    pred, ref = make_pair(shape, seed=21, offset=0.0, span=1.0)
    warnings.simplefilter("ignore", ResolveWarning)  # the 3D case uses 3 scales, on purpose
    whole = {
        "ssim_map": quality.ssim_map(pred, ref, 1.0),
        "ms_ssim_map": quality.ms_ssim_map(pred, ref, 1.0),
        "compare": quality.compare(pred, ref, 1.0),
    }
    monkeypatch.setattr(quality, "MAX_TILE_VOXELS", budget)
    # The budget really forces several tiles, and several combination blocks.
    n = whole["compare"]["ms_ssim_scales"]
    assert len(list(quality._tiles(shape, quality.RADIUS))) > 2
    assert len(list(quality._tiles(shape, 0, align=2 ** (n - 1)))) > 1
    np.testing.assert_allclose(quality.ssim_map(pred, ref, 1.0), whole["ssim_map"], atol=1e-6)
    np.testing.assert_allclose(quality.ms_ssim_map(pred, ref, 1.0), whole["ms_ssim_map"], atol=1e-6)
    tiled = quality.compare(pred, ref, 1.0)
    for key in ("ssim", "ms_ssim"):
        assert tiled[key] == pytest.approx(whole["compare"][key], abs=1e-6)
    assert quality.ms_ssim(pred, ref, 1.0) == pytest.approx(whole["compare"]["ms_ssim"], abs=1e-6)
    assert quality.ssim(pred, ref, 1.0) == pytest.approx(whole["compare"]["ssim"], abs=1e-6)


def test_running_out_of_memory_is_a_clear_error(monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(quality, "_local", no_memory)
    pred, ref = make_pair((32, 32), seed=3)
    with pytest.raises(ResolveError, match="Not enough CPU memory.*MAX_TILE_VOXELS"):
        quality.ssim_map(pred, ref)


def test_fewer_scales_warning_points_at_the_caller():
    pred, ref = make_pair((64, 64, 64), seed=2)
    with pytest.warns(ResolveWarning) as record:
        quality.ms_ssim(pred, ref)
    assert record[0].filename == __file__


def test_ms_ssim_scales_is_the_one_rule():
    from napari_resolve.measure.similarity import ms_ssim_scales

    # n scales need every side longer than 2 * RADIUS * 2 ** (n - 1) = 10 * 2 ** n voxels
    assert ms_ssim_scales((161, 161)) == 5
    assert ms_ssim_scales((160, 400)) == 4
    assert ms_ssim_scales((1, 30, 30)) == ms_ssim_scales((30, 30)) == 2  # one slice counts as 2D
    assert ms_ssim_scales((30, 200, 200)) == 2
    assert ms_ssim_scales((5, 100, 100)) == 1  # not even one fits: ms_ssim refuses the shape


def test_ms_ssim_weights_are_the_one_list():
    from napari_resolve.learn import losses

    assert quality.ms_ssim_weights(5) == list(quality.MS_SSIM_WEIGHTS)  # published, as pytorch_msssim
    three = quality.ms_ssim_weights(3)
    assert sum(three) == pytest.approx(1.0) and three[0] / three[1] == pytest.approx(0.0448 / 0.2856)
    with pytest.raises(InputError):
        quality.ms_ssim_weights(6)
    # The training loss reads the same list (no copy of the numbers in learn/).
    assert losses.ms_ssim_weights is quality.ms_ssim_weights
