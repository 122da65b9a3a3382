"""The Quality job without Qt: plan_quality checks and copies on the caller's thread, iter_quality only works."""

import json
import math

import numpy as np
import pytest

from napari_resolve.errors import InputError, VoxelSizeError
from napari_resolve.io import json_safe, read_volume
from napari_resolve.jobs import Progress, drain
from napari_resolve.measure import compare as C
from napari_resolve.measure.similarity import ms_ssim_scales, psnr
from napari_resolve.registration import Registration


@pytest.fixture(scope="module")
def pair(foam_dir, foam_registration):
    """(lres volume, hres array, hres voxel, hres origin) placed by the session registration."""
    reg = Registration.load(foam_registration)
    lres = read_volume(foam_dir / "lres.tif")
    hres = np.asarray(read_volume(foam_dir / "hres.tif").data, dtype=np.float32)
    return lres, hres, tuple(reg.scale), tuple(reg.offset_um)


def _noisy(a, sd=0.05, seed=0):
    return (a + np.random.default_rng(seed).normal(0, sd, a.shape)).astype(np.float32)


def _records(gen):
    records = []
    result = drain(gen, records.append)
    return records, result


def test_identical_result_on_the_hres_grid_is_cropped_and_perfect(pair):
    _, hres, hv, ho = pair
    plan = C.plan_quality(hres, hv, ho, hres, hv, ho, with_resolution=False)
    assert plan.overlap.in_phase and plan.overlap.shape == hres.shape
    assert plan.data_range == pytest.approx(float(hres.max() - hres.min()))
    assert plan.scales == ms_ssim_scales(hres.shape)
    records, res = _records(C.iter_quality(plan))
    assert all(isinstance(r, Progress) and r.total == plan.total for r in records)
    steps = [r.step for r in records]
    assert steps == sorted(steps) and steps[-1] == plan.total
    assert res.ms_ssim_map.shape == hres.shape and float(res.ms_ssim_map.min()) > 0.999
    assert res.ssim_map is not None and float(res.ssim_map.min()) > 0.999
    m = res.metrics[C.UPSCALED]
    assert set(res.metrics) == {C.UPSCALED} and m["mse"] == 0 and m["psnr"] == math.inf
    assert res.overlap.origin_um == pytest.approx(ho)
    summary = json.loads(json.dumps(json_safe(res.to_dict()), allow_nan=False))
    ov = summary["overlap"]
    # The box runs from voxel edge to voxel edge: half a voxel beyond the first and last centres.
    assert ov["box_um"]["lo"] == pytest.approx(np.subtract(ho, np.divide(hv, 2)))
    assert ov["box_um"]["hi"] == pytest.approx(np.add(ho, (np.array(hres.shape) - 0.5) * hv))
    assert ov["cropped_exactly"] and summary["metrics"]["upscaled"]["psnr"] is None  # inf: strict JSON null


def test_shifted_off_phase_result_is_resampled_onto_the_overlap(pair):
    from scipy import ndimage

    _, hres, hv, ho = pair
    shift_vox = np.array([10.5, -0.5, 7.5])  # half a voxel out of phase, partly off the HRES
    origin = tuple(np.add(ho, shift_vox * hv))
    # The same object sampled on the shifted grid: voxel i lies at HRES index i + shift.
    result = ndimage.shift(hres, -shift_vox, order=3, mode="nearest")
    plan = C.plan_quality(result, hv, origin, hres, hv, ho, with_ssim_map=False, with_resolution=False)
    ov = plan.overlap
    assert not ov.in_phase
    # HRES voxels inside the result's voxel-centre extent: from 11 (z), 0 (y), 8 (x) to the end / one short.
    index = (np.array(ov.origin_um) - ho) / hv
    np.testing.assert_allclose(index, (11, 0, 8), atol=1e-6)
    n = np.array(hres.shape)
    assert ov.shape == (n[0] - 11, n[1] - 1, n[2] - 8)
    res = C.run_quality(plan)
    assert res.ssim_map is None and res.ms_ssim_map.shape == ov.shape
    assert any("resampled" in note for note in res.notes)
    # Shifted there and back by cubic splines: close to, but not exactly, the HRES...
    placed = res.metrics[C.UPSCALED]["ms_ssim"]
    assert 0.8 < placed < 0.9999
    # ...while the same array compared voxel by voxel, its origin ignored, is 10 voxels off.
    ignored = C.run_quality(result, hv, ho, hres, hv, ho, with_ssim_map=False, with_resolution=False)
    assert ignored.overlap.in_phase and ignored.metrics[C.UPSCALED]["ms_ssim"] < placed - 0.3


def test_baselines_on_the_same_voxels_and_a_noisy_copy_beats_them(pair):
    lres, hres, hv, ho = pair
    noisy = _noisy(hres)
    plan = C.plan_quality(noisy, hv, ho, hres, hv, ho, lres=np.asarray(lres.data), lres_voxel_um=lres.voxel_um,
                          rl_iterations=3, with_resolution=False)
    assert plan.baseline.grid.shape == hres.shape and plan.rl_iterations == 3
    records, res = _records(C.iter_quality(plan))
    assert {r.total for r in records} == {plan.total} and records[-1].step == plan.total
    assert [r.step for r in records] == sorted(r.step for r in records)
    assert any("Richardson-Lucy iteration 3/3" in r.message for r in records)  # forwarded sub-job records
    assert set(res.metrics) == {C.UPSCALED, C.CUBIC, C.RL}
    assert res.metrics[C.UPSCALED]["psnr"] > res.metrics[C.CUBIC]["psnr"] + 5
    assert res.psf_sigma_um is not None and 0.3 < res.psf_sigma_um < 4
    # The metrics are the measure package's own (same PSNR as similarity.psnr on the same voxels).
    assert res.metrics[C.UPSCALED]["psnr"] == pytest.approx(psnr(noisy, hres, res.data_range))
    assert len(res.regions) == C.N_REGIONS
    scores = [r["score"] for r in res.regions]
    assert scores == sorted(scores)


def test_data_range_is_used_by_every_metric(pair):
    _, hres, hv, ho = pair
    noisy = _noisy(hres)
    own = C.run_quality(noisy, hv, ho, hres, hv, ho, with_ssim_map=False, with_resolution=False)
    double = C.run_quality(noisy, hv, ho, hres, hv, ho, data_range=2 * own.data_range, with_ssim_map=False,
                           with_resolution=False)
    assert double.data_range == pytest.approx(2 * own.data_range)
    # PSNR grows by 20 log10(2) dB; SSIM's constants grow, so SSIM rises.
    gain = double.metrics[C.UPSCALED]["psnr"] - own.metrics[C.UPSCALED]["psnr"]
    assert gain == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert double.metrics[C.UPSCALED]["ssim"] > own.metrics[C.UPSCALED]["ssim"] + 1e-3


def test_resolution_rows_of_a_known_blur(pair):
    from scipy import ndimage

    _, hres, hv, ho = pair
    blurred = ndimage.gaussian_filter(hres, 1.5 / hv[0], mode="nearest")
    res = C.run_quality(blurred, hv, ho, hres, hv, ho, with_ssim_map=False)
    row = C.resolution_row(res.resolution[C.UPSCALED])
    assert row["sigma_um"] == pytest.approx(1.5, rel=0.15)
    assert row["fwhm_um"] == pytest.approx(2.3548 * row["sigma_um"], rel=1e-4)
    assert res.to_dict()["resolution"]["upscaled"]["fwhm_um"] == row["fwhm_um"]


def test_plan_refuses_bad_input_before_any_work(pair):
    lres, hres, hv, ho = pair
    far = tuple(np.add(ho, (0.0, 500.0, 0.0)))
    with pytest.raises(InputError, match="does not overlap"):
        C.plan_quality(hres, hv, far, hres, hv, ho)
    with pytest.raises(InputError, match="dimensionality"):
        C.plan_quality(hres[0], hv[1:], ho[1:], hres, hv, ho)
    with pytest.raises(VoxelSizeError) as info:
        C.plan_quality(hres, None, ho, hres, hv, ho)
    assert info.value.parameters == ("result_voxel_um",)
    with pytest.raises(InputError) as info:
        C.plan_quality(hres, hv, ho, hres, hv, ho, data_range=0)
    assert info.value.parameters == ("data_range",) and "{data_range}" in info.value.template
    with pytest.raises(InputError, match="constant") as info:
        C.plan_quality(hres, hv, ho, np.ones_like(hres), hv, ho)
    assert info.value.parameters == ("data_range",)
    broken = hres.copy()
    broken[5, 5, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        C.plan_quality(broken, hv, ho, hres, hv, ho)
    with pytest.raises(InputError) as info:
        C.plan_quality(hres, hv, ho, hres, hv, ho, lres=np.asarray(lres.data), lres_voxel_um=lres.voxel_um,
                       rl_iterations=0)
    assert info.value.parameters == ("rl_iterations",)
    with pytest.raises(InputError, match="LRES"):
        C.plan_quality(hres, hv, ho, hres, hv, ho, lres=np.asarray(lres.data)[0], lres_voxel_um=lres.voxel_um[1:])


def test_closing_the_job_stops_it(pair):
    lres, hres, hv, ho = pair
    gen = C.iter_quality(hres, hv, ho, hres, hv, ho, lres=np.asarray(lres.data), lres_voxel_um=lres.voxel_um)
    first = next(gen)
    assert first.step == 0 and "Cropping" in first.message
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)


def test_lowest_regions_finds_a_low_block():
    score = np.ones((48, 48, 48), np.float32)
    score[16:32, 32:48, 0:16] = 0.2  # 2 x 2 x 2 blocks of 8 voxels (48 voxels a side: blocks of 8)
    assert C.block_size(score.shape) == 8
    regions = C.lowest_regions(score, (10.0, 0.0, -5.0), (2.0, 1.0, 1.0), n=9)
    assert [r["rank"] for r in regions] == list(range(1, 10))
    assert [round(r["score"], 6) for r in regions] == [0.2] * 8 + [1.0]
    # World centres (um) of the low blocks lie inside the low box, at their blocks' centres.
    for r in regions[:8]:
        z, y, x = r["centre_um"]
        assert 10.0 + 16 * 2.0 < z < 10.0 + 32 * 2.0 and 32 < y < 48 and -5.0 < x < -5.0 + 16
        assert r["size_um"] == pytest.approx((16.0, 8.0, 8.0))
    assert regions[0]["centre_um"] == pytest.approx((10.0 + 19.5 * 2.0, 35.5, -5.0 + 3.5))
    assert C.block_size((20, 20, 20)) == 4 and C.block_size((200, 200)) == 32


def test_the_quality_job_module_loads_no_torch():
    """The Quality widget imports it when napari opens, which must not load torch."""
    import subprocess
    import sys

    code = "import sys, napari_resolve.measure.compare; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
