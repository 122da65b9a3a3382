"""Error maps without a reference (issue 16): signals, calibration, streaming, the model file and the CLI."""

import json

import numpy as np
import pytest
from scipy import ndimage

from napari_resolve.errors import InputError
from napari_resolve.learn.inference import run_predict
from napari_resolve.learn.uncertainty import (
    Calibration,
    ImagingModel,
    conformal_quantile,
    consistency,
    fit_calibration,
    restore_output,
    transform_input,
    tta_variants,
)

IMAGING = ImagingModel(sigma_um=2.0, gain=0.8, offset=0.1)


def test_conformal_quantile_is_the_finite_sample_rank():
    values = np.arange(1, 101, dtype=float)[::-1]
    # ceil((100 + 1) * 0.9) = 91st smallest.
    assert conformal_quantile(values, 0.9) == 91.0
    assert conformal_quantile(values[-5:], 0.9) == 5.0  # too few values: the largest


def heteroscedastic(rng, n, scale_from_signal):
    signal = rng.uniform(0.01, 1.0, n).astype(np.float32)
    error = rng.normal(0.0, scale_from_signal(signal))
    return signal, error


def test_calibration_covers_fresh_data_and_follows_the_signal():
    rng = np.random.default_rng(0)
    signal, error = heteroscedastic(rng, (40, 30, 30), lambda s: 0.05 * s)
    cal = fit_calibration({"consistency": signal}, error, IMAGING)
    assert 0.86 <= cal.coverage <= 0.94  # held-out half of the same block
    fresh_s, fresh_e = heteroscedastic(np.random.default_rng(1), (40, 30, 30), lambda s: 0.05 * s)
    bound = cal({"consistency": fresh_s})
    assert 0.87 <= np.mean(np.abs(fresh_e) <= bound) <= 0.93
    # The bound grows with the signal: 1.645 sigma of |N(0, 0.05 s)| at each s, within 25 %.
    for s in (0.2, 0.5, 0.9):
        b = float(cal({"consistency": np.array([s], np.float32)})[0])
        assert b == pytest.approx(1.645 * 0.05 * s, rel=0.25)
    assert list(cal.bound) == sorted(cal.bound)
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(again({"consistency": fresh_s}), bound)


def test_calibration_refuses_bad_signals():
    rng = np.random.default_rng(0)
    s, e = heteroscedastic(rng, (20, 20, 20), lambda s: s)
    with pytest.raises(InputError, match="same voxels"):
        fit_calibration({"consistency": s[:-1]}, e, IMAGING)
    bad = s.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_calibration({"consistency": bad}, e, IMAGING)
    with pytest.raises(InputError, match="at least"):
        fit_calibration({"consistency": s[:2, :2]}, e[:2, :2], IMAGING)
    with pytest.raises(InputError, match="signals among"):
        fit_calibration({"colour": s}, e, IMAGING)


def test_consistency_is_zero_for_a_result_that_explains_its_input():
    rng = np.random.default_rng(2)
    pred = ndimage.gaussian_filter(rng.random((24, 30, 30)).astype(np.float32), 1.0)
    voxel, lres_voxel = (1.0, 1.0, 1.0), (3.0, 3.0, 3.0)
    explained = IMAGING.gain * ndimage.gaussian_filter(pred, 2.0, mode="nearest") + IMAGING.offset
    assert consistency(pred, explained, voxel, lres_voxel, IMAGING).max() < 1e-5
    wrong = pred.copy()
    wrong[8:16, 10:20, 10:20] += 0.5
    misfit = consistency(wrong, explained, voxel, lres_voxel, IMAGING)
    assert misfit[12, 15, 15] > 0.1 and misfit[2, 2, 2] < 0.02  # high where the result is wrong only


@pytest.mark.parametrize("square", [True, False])
def test_tta_variants_are_undone_exactly(square):
    import torch

    variants = tta_variants(square)
    assert len(variants) == (8 if square else 4) and len(set(variants)) == len(variants)
    x = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6)
    for v in variants:
        (seen,) = transform_input((x,), v, lres_grid=False)
        np.testing.assert_array_equal(restore_output(seen[0], v).numpy(), x[0].numpy())
    # On the LRES grid the positions are mirrored with the block: sampling the block at them gives the same voxels.
    block = torch.arange(5 * 7 * 7, dtype=torch.float32).reshape(1, 5, 7, 7)
    pos = tuple(torch.tensor(p, dtype=torch.float32) for p in ([1.0, 2.0], [0.0, 2.5, 6.0], [1.0, 3.0, 4.0]))

    def sample(b, p):  # nearest-neighbour "network": the block at the output positions
        iz, iy, ix = (q.round().long() for q in p)
        return b[0][iz][:, iy][:, :, ix]

    plain = sample(block, pos)
    for v in variants:
        b, p = transform_input((block, pos), v, lres_grid=True)
        np.testing.assert_array_equal(restore_output(sample(b, p), v).numpy(), plain.numpy())


def test_trained_model_carries_a_calibration_and_maps_stream_exactly(tiny_model, foam_dir):
    from napari_resolve.io import read_volume
    from napari_resolve.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tiny_model)
    record = ckpt.extra["error_map"]
    for key in ("plain", "tta"):
        cal = Calibration.from_dict(record[key])
        assert 0.75 <= cal.coverage <= 1.0 and cal.voxels > 1000
        assert cal.imaging["sigma_um"] > 0.5  # the phantom's LRES is blurred
    assert Calibration.from_dict(record["plain"]).signals == ("consistency",)
    assert Calibration.from_dict(record["tta"]).signals == ("consistency", "spread")
    lres = read_volume(foam_dir / "lres.tif")
    roi = (slice(0, 20), slice(4, 30), slice(6, 28))
    one = run_predict(ckpt, lres.data, lres.voxel_um, roi=roi, uncertainty=True, device="cpu")
    plain = run_predict(ckpt, lres.data, lres.voxel_um, roi=roi, device="cpu")
    assert one.uncertainty.shape == one.data.shape
    assert np.isfinite(one.uncertainty).all() and one.uncertainty.min() > 0
    np.testing.assert_array_equal(one.data, plain.data)  # the map leaves the result as it is
    # Several rows of small tiles stream the map slab by slab: the same map as one tile.
    tiled = run_predict(ckpt, lres.data, lres.voxel_um, roi=roi, uncertainty=True, tile=(12, 32, 32), device="cpu")
    np.testing.assert_allclose(tiled.uncertainty, one.uncertainty, atol=1e-4)
    tta = run_predict(ckpt, lres.data, lres.voxel_um, roi=roi, uncertainty=True, tta=True, keep_signals=True,
                      device="cpu")
    assert set(tta.signals) == {"consistency", "spread", "edge"} and tta.signals["spread"].max() > 0
    assert not np.allclose(tta.uncertainty, one.uncertainty)


def test_models_without_calibration_are_refused(tiny_model):
    from napari_resolve.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tiny_model)
    ckpt.extra.pop("error_map")
    with pytest.raises(InputError, match="no error-map calibration"):
        run_predict(ckpt, np.zeros((20, 20, 20), np.float32), ckpt.lres_voxel_um, uncertainty=True)


def test_cli_writes_the_map_on_the_output_grid(tiny_model, foam_dir, tmp_path, capsys):
    from napari_resolve.cli import main
    from napari_resolve.io import read_volume

    out, unc = tmp_path / "up.tif", tmp_path / "unc.zarr"
    argv = ["predict", str(tiny_model), str(foam_dir / "lres.tif"), "--roi", "0:12,0:20,0:20", "-o", str(out),
            "--uncertainty", str(unc), "--device", "cpu"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["uncertainty"] == str(unc) and 0 < summary["uncertainty_validation_coverage"] <= 1
    up, m = read_volume(out), read_volume(unc)
    assert m.data.shape == up.data.shape
    np.testing.assert_allclose(m.voxel_um, up.voxel_um)
    np.testing.assert_allclose(m.origin_um, up.origin_um)
    # Refusals before any work: --tta alone, the map over the output, an existing map without --overwrite.
    assert main(["predict", str(tiny_model), str(foam_dir / "lres.tif"), "-o", str(tmp_path / "b.tif"),
                 "--tta"]) == 2
    assert "--uncertainty" in capsys.readouterr().err
    assert main(["predict", str(tiny_model), str(foam_dir / "lres.tif"), "-o", str(tmp_path / "c.tif"),
                 "--uncertainty", str(tmp_path / "c.tif")]) != 0
    capsys.readouterr()
    again = [tmp_path / "d.tif" if a == str(out) else a for a in argv]
    assert main([str(a) for a in again]) != 0
    err = capsys.readouterr().err
    assert "unc.zarr already exists" in err and "--overwrite" in err
    assert not any((tmp_path / n).exists() for n in ("b.tif", "c.tif", "d.tif"))


def test_least_trusted_regions_find_the_hot_block_also_with_a_stride(monkeypatch):
    from napari_resolve.learn import uncertainty

    rng = np.random.default_rng(3)
    emap = rng.uniform(0.0, 0.1, (64, 64, 64)).astype(np.float32)
    emap[32:64, 0:32, 32:64] += 1.0
    for budget in (uncertainty.REGIONS_READ_BYTES, 64**3 * 4 // 20):  # whole map, then every 3rd voxel
        monkeypatch.setattr(uncertainty, "REGIONS_READ_BYTES", budget)
        top = uncertainty.least_trusted_regions(emap, (0.0, 0.0, 0.0), (2.0, 2.0, 2.0))
        assert len(top) == 5 and [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True)
        for r in top:  # all in the hot eighth, whose blocks average above 1; the rest average 0.05
            centre = np.asarray(r["centre_um"]) / 2.0  # voxels
            assert r["score"] > 0.9 and 32 <= centre[0] < 64 and 0 <= centre[1] < 32 and 32 <= centre[2] < 64
        assert all(s.stop <= 64 for s in top[0]["box"])


def test_agreement_of_a_perfect_and_of_a_random_map():
    from napari_resolve.measure.compare import error_map_agreement as agreement

    rng = np.random.default_rng(4)
    err = rng.normal(0, 1, (30, 30, 30))
    perfect = agreement(np.abs(err) * 1.001, err)
    assert perfect["coverage"] == 1.0 and perfect["spearman_abs_error"] > 0.999
    blind = agreement(rng.uniform(0, 2, err.shape), err)
    assert abs(blind["spearman_abs_error"]) < 0.05


def test_train_reports_the_calibration(foam_dir, foam_registration, tmp_path, capsys):
    from napari_resolve.cli import main

    argv = ["train", str(foam_dir / "lres.tif"), str(foam_dir / "hres.tif"), "--registration", str(foam_registration),
            "--iterations", "2", "--batch-size", "2", "--patch-size", "24", "--model-option", "width=4",
            "--device", "cpu", "-o", str(tmp_path / "m.pt")]
    assert main(argv) == 0
    out = capsys.readouterr()
    coverage = json.loads(out.out)["error_map_validation_coverage"]
    assert set(coverage) == {"plain", "tta"} and all(0.5 < v <= 1 for v in coverage.values())
    assert "Error maps calibrated on the validation block" in out.err


def test_the_faces_of_a_region_are_not_taken_for_misfits():
    from napari_resolve.learn.uncertainty import local_signals

    rng = np.random.default_rng(6)
    truth = ndimage.gaussian_filter(rng.random((40, 40, 40)).astype(np.float32), 2.0)
    lres_up = IMAGING.gain * ndimage.gaussian_filter(truth, 2.0, mode="nearest") + IMAGING.offset
    inner = (slice(8, 32),) * 3  # a region cut out of a larger field: the LRES saw what lies beyond its faces
    plain = local_signals(truth[inner], lres_up[inner], (1.0,) * 3, (3.0,) * 3, IMAGING,
                          faces=((False, False),) * 3)["consistency"]
    fixed = local_signals(truth[inner], lres_up[inner], (1.0,) * 3, (3.0,) * 3, IMAGING)["consistency"]
    centre = fixed[10:14, 10:14, 10:14].mean()
    assert plain[:, 0].mean() > 1.5 * plain[10:14, 10:14, 10:14].mean()  # without: the border lights up
    assert fixed[:, 0].mean() < 1.5 * centre + 1e-6 and fixed.max() < 2.0 * plain[10:14, 10:14, 10:14].max() + 1e-6
