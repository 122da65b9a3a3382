"""The command line, through its entry point ``main(argv)``."""

import json

import numpy as np
import pytest
import tifffile

from napari_resolve.cli import main
from napari_resolve.io import read_volume


def _strict(token):
    raise ValueError(f"{token} is not strict JSON")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    if code == 0 and out.strip().startswith("{"):
        out = json.loads(out, parse_constant=_strict)
    return code, out, err


@pytest.fixture
def foam(foam_dir):
    return foam_dir


def test_phantom_writes_files_with_geometry(foam):
    names = sorted(p.name for p in foam.iterdir())
    assert names == ["hres.tif", "lres.tif", "meta.json", "truth.tif", "truth_labels.tif"]
    assert read_volume(foam / "lres.tif").voxel_um == (3.0, 3.0, 3.0)
    assert read_volume(foam / "hres.tif").voxel_um == (1.0, 1.0, 1.0)
    meta = json.loads((foam / "meta.json").read_text())
    assert len(meta["hres_offset_um"]) == 3 and meta["ratio"] == 3


def test_phantom_refuses_to_overwrite(foam, capsys):
    before = (foam / "lres.tif").read_bytes()
    code, _, err = run(capsys, "phantom", foam, "--size", "40", "--seed", "9")
    assert code == 2 and "--overwrite" in err and "Traceback" not in err
    assert (foam / "lres.tif").read_bytes() == before


def test_register_finds_the_true_offset(foam, capsys, tmp_path):
    reg_json = tmp_path / "reg.json"
    code, result, _ = run(capsys, "register", foam / "lres.tif", foam / "hres.tif", "-o", reg_json)
    assert code == 0, result
    truth = json.loads((foam / "meta.json").read_text())["hres_offset_um"]
    assert np.abs(np.subtract(result["offset_um"], truth)).max() < 0.5  # um = HRES voxels here
    assert result["status"] == "ok" and result["ncc"] > 0.5
    assert set(result) >= {"offset_um", "scale", "ncc", "status"}
    assert json.loads(reg_json.read_text())["offset_um"] == pytest.approx(result["offset_um"])


def test_register_without_voxel_size_says_what_to_give(foam, capsys, tmp_path):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.asarray(read_volume(foam / "lres.tif").data), photometric="minisblack")
    code, _, err = run(capsys, "register", plain, foam / "hres.tif")
    assert code == 2 and "--lres-voxel" in err
    code, result, _ = run(capsys, "register", plain, foam / "hres.tif", "--lres-voxel", "3")
    assert code == 0 and result["status"] == "ok"


def test_register_unrelated_scan_is_not_accepted(foam, capsys, tmp_path):
    other = tmp_path / "other"
    assert main(["phantom", str(other), "--size", "40", "--seed", "77"]) == 0
    reg_json = tmp_path / "bad.json"
    capsys.readouterr()
    code, out, err = run(capsys, "register", foam / "lres.tif", other / "hres.tif", "-o", reg_json)
    assert code == 2 and "not credible" in err
    assert not reg_json.exists()


def test_quality_identical_and_map(foam, capsys, tmp_path):
    qmap = tmp_path / "map.tif"
    code, result, _ = run(capsys, "quality", foam / "hres.tif", foam / "hres.tif", "--map", qmap)
    assert code == 0
    assert result["ssim"] == pytest.approx(1.0) and result["ms_ssim"] == pytest.approx(1.0)
    assert result["mse"] == 0 and result["psnr"] is None  # infinite: printed as strict JSON null
    m = read_volume(qmap)
    assert m.voxel_um == (1.0, 1.0, 1.0) and np.allclose(m.data, 1.0, atol=1e-6)


def test_quality_shape_mismatch(foam, capsys):
    code, _, err = run(capsys, "quality", foam / "truth.tif", foam / "hres.tif")  # both 1 um voxels
    assert code == 2 and "shape" in err


def test_quality_voxel_size_mismatch(foam, capsys, tmp_path):
    from napari_resolve.io import write_volume

    data = np.asarray(read_volume(foam / "hres.tif").data)
    other = write_volume(tmp_path / "coarse.tif", data, 3.0)
    code, _, err = run(capsys, "quality", other, foam / "hres.tif")
    assert code == 2 and "same grid" in err


def test_resolution_of_a_known_blur_with_curves_and_plot(foam, capsys, tmp_path):
    from scipy import ndimage

    from napari_resolve.io import write_volume

    hres = np.asarray(read_volume(foam / "hres.tif").data)
    blurred = write_volume(tmp_path / "blurred.tif", ndimage.gaussian_filter(hres, 1.5, mode="nearest"), 1.0)
    png = tmp_path / "curves.png"
    code, result, err = run(capsys, "resolution", blurred, foam / "hres.tif", "--curves", "--plot", png)
    assert code == 0, err
    g, f = result["gaussian"], result["frc"]
    assert g["sigma_um"] == pytest.approx(1.5, rel=0.1)
    assert g["fwhm_um"] == pytest.approx(2.3548 * g["sigma_um"], rel=1e-4)
    assert len(g["curve"]["sigma_um"]) == len(g["curve"]["mse"]) > 10
    assert set(f["resolution_um"]) == {"1/7", "half-bit"} and f["kind"] == "FSC (shells)"
    assert len(f["curve"]["correlation"]) == len(f["curve"]["half-bit"]) == len(f["curve"]["frequency_per_um"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result["plot"] == str(png)
    # Identical inputs: no blur, and the FSC never drops (finer than the finest period measured).
    code, result, _ = run(capsys, "resolution", foam / "hres.tif", foam / "hres.tif", "--method", "frc")
    assert code == 0 and "gaussian" not in result and "curve" not in result["frc"]
    assert result["frc"]["resolution_um"] == {"1/7": None, "half-bit": None}
    assert result["frc"]["status"]["1/7"] == "not reached" and result["frc"]["finest_um"] == pytest.approx(2.0)
    code, _, err = run(capsys, "resolution", blurred, foam / "hres.tif", "--plot", png)
    assert code == 2 and "--overwrite" in err


def test_resolution_bad_inputs(foam, capsys, tmp_path):
    hres = np.asarray(read_volume(foam / "hres.tif").data)
    code, _, err = run(capsys, "resolution", foam / "truth.tif", foam / "hres.tif")
    assert code == 2 and "shape" in err and "Traceback" not in err
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, hres, photometric="minisblack")
    code, _, err = run(capsys, "resolution", plain, plain)
    assert code == 2 and "--voxel" in err
    code, result, _ = run(capsys, "resolution", plain, plain, "--voxel", "2", "--method", "gaussian")
    assert code == 0 and result["voxel_um"] == [2.0, 2.0, 2.0] and result["gaussian"]["sigma_um"] < 0.05
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, hres[:10, :10, :10], photometric="minisblack")
    code, _, err = run(capsys, "resolution", small, small, "--voxel", "1")
    assert code == 2 and "at least 16" in err
    bad = hres.copy()
    bad[5, 5, 5] = np.nan
    nan = tmp_path / "nan.tif"
    tifffile.imwrite(nan, bad, photometric="minisblack")
    code, _, err = run(capsys, "resolution", nan, plain, "--voxel", "1")
    assert code == 2 and "NaN" in err


def test_pores_on_truth(foam, capsys, tmp_path):
    csv, labels = tmp_path / "p.csv", tmp_path / "labels.tif"
    code, result, err = run(capsys, "pores", foam / "truth.tif", "-o", csv, "--labels", labels)
    assert code == 0
    # Progress: one line per stage in a log (stderr is not a terminal here).
    assert "[5/6] measuring pores" in err and err.count("measuring pores") == 1
    assert 0.1 < result["porosity"] < 0.45
    assert result["count"] > 20 and result["mean_sphericity"] > 0.8
    rows = csv.read_text().strip().splitlines()
    assert len(rows) == result["count"] + 1 and "um" in rows[0]
    assert read_volume(labels).voxel_um == (1.0, 1.0, 1.0)


def test_pores_bad_threshold_and_output_equal_to_input(foam, capsys):
    code, _, err = run(capsys, "pores", foam / "truth.tif", "--threshold", "abc")
    assert code == 2 and "threshold" in err
    before = (foam / "truth.tif").read_bytes()
    code, _, err = run(capsys, "pores", foam / "truth.tif", "--labels", foam / "truth.tif", "--overwrite")
    assert code == 2 and "one of the inputs" in err
    assert (foam / "truth.tif").read_bytes() == before


def test_missing_file_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run(capsys, "pores", tmp_path / "nope.tif", "--voxel", "1")
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


def test_demo_into_a_file_is_refused(capsys, tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("mine")
    code, _, err = run(capsys, "demo", target)
    assert code == 2 and "not a folder" in err and target.read_text() == "mine"


def test_unwritable_output_folder_is_a_one_line_error(foam, capsys, tmp_path):
    code, _, err = run(capsys, "pores", foam / "truth.tif", "-o", tmp_path / "missing" / "p.csv")
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


@pytest.mark.slow
def test_demo_end_to_end(capsys, tmp_path):
    out = tmp_path / "demo"
    code, table, err = run(capsys, "demo", out, "--size", "40", "--iterations", "80", "--device", "cpu")
    assert code == 0 and isinstance(table, str)
    report = json.loads((out / "demo_report.json").read_text())
    assert report["registration"]["status"] == "ok"
    assert np.abs(report["registration"]["error_hres_voxels"]).max() < 0.5
    names = {p.name for p in out.iterdir()}
    for name in ("model.pt", "upscaled.tif", "cubic.tif", "richardson_lucy.tif", "ms_ssim_map_upscaled.tif",
                 "truth_region.tif", "demo_figure.png", "registration.json"):
        assert name in names
    assert (out / "demo_figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The upscaled region records where it lies: it does not overlap the HRES box.
    up = read_volume(out / "upscaled.tif")
    assert up.voxel_um == (1.0, 1.0, 1.0) and up.origin_um == pytest.approx(report["region"]["origin_um"])
    hres_lo = np.array(report["registration"]["offset_um"])
    hres_hi = hres_lo + np.array(report["phantom"]["hres_shape"]) - 1
    up_lo = np.array(up.origin_um)
    up_hi = up_lo + np.array(up.shape) - 1
    assert np.any((up_lo > hres_hi) | (up_hi < hres_lo))
    q = report["quality"]
    # Even 80 iterations improve on cubic interpolation (the model starts as cubic interpolation).
    assert q["upscaled"]["psnr"] > q["cubic"]["psnr"] + 0.3
    assert report["pores"]["truth"]["match"]["recovery"] > 0.8
    assert "MS-SSIM" in table and "Richardson-Lucy" in table
    # A second run into the same demo folder replaces its own files.
    assert main(["demo", str(out), "--size", "40", "--iterations", "2", "--device", "cpu"]) == 0
    # But a folder with other files is left alone.
    other = tmp_path / "mine"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    assert main(["demo", str(other)]) == 2
    assert (other / "precious.txt").read_text() == "keep"


@pytest.fixture
def trained(foam_registration, tiny_model):
    """A registration and a briefly trained small model (tests/conftest.py), through the command line."""
    return foam_registration, tiny_model


def test_train_writes_a_model_and_reports_it(trained, foam, capsys, tmp_path):
    reg, model = trained
    assert model.stat().st_size > 1000
    from napari_resolve.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model)
    assert ckpt.architecture == "lres3d" and ckpt.config["width"] == 4  # the default network
    assert ckpt.lres_voxel_um == (3.0, 3.0, 3.0) and ckpt.registration["status"] == "ok"
    # Resuming continues the count of iterations; the JSON says what happened.
    out = tmp_path / "m2.pt"
    code, res, err = run(capsys, "train", foam / "lres.tif", foam / "hres.tif", "--registration", reg,
                         "--iterations", "4", "--batch-size", "2", "--patch-size", "32", "--resume", model,
                         "--device", "cpu", "-o", out)
    assert code == 0, err
    assert res["iterations_run"] == 4 and res["best_iteration"] > ckpt.iteration - 1
    assert load_checkpoint(out).iteration == res["best_iteration"]


def test_train_another_architecture_with_its_loss(trained, foam, tmp_path):
    from napari_resolve.models.checkpoint import load_checkpoint

    reg, _ = trained
    out = tmp_path / "dfcan.pt"
    argv = ["train", str(foam / "lres.tif"), str(foam / "hres.tif"), "--registration", str(reg),
            "--model", "dfcan", "--model-option", "groups=1", "blocks=1", "features=8",
            "--loss", "mse+ssim", "--ssim-weight", "0.2", "--iterations", "4", "--batch-size", "2",
            "--patch-size", "32", "--device", "cpu", "-o", str(out)]
    assert main(argv) == 0
    ckpt = load_checkpoint(out)
    assert ckpt.architecture == "dfcan" and ckpt.config["features"] == 8
    assert ckpt.train_config["loss"] == "mse+ssim" and ckpt.train_config["ssim_weight"] == 0.2


def test_train_refuses_bad_requests_before_work(trained, foam, capsys, tmp_path):
    reg, model = trained
    base = ["train", foam / "lres.tif", foam / "hres.tif", "--registration", reg]
    code, _, err = run(capsys, *base, "-o", model)
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, *base, "--model", "nonet", "-o", tmp_path / "x.pt")
    assert code == 2 and "unet25d" in err and not (tmp_path / "x.pt").exists()
    code, _, err = run(capsys, *base, "--roi", "0:5,0:5", "-o", tmp_path / "x.pt")
    assert code == 2 and "3 axes" in err
    code, _, err = run(capsys, *base, "--resume", model, "--model", "srcnn", "-o", tmp_path / "x.pt")
    assert code == 2 and "'lres3d' model, not 'srcnn'" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, "train", foam / "lres.tif", foam / "hres.tif", "--registration", bad, "-o",
                       tmp_path / "x.pt")
    assert code == 2 and err.count("\n") == 1


def test_predict_writes_a_placed_volume_and_prints_its_geometry(trained, foam, capsys, tmp_path):
    reg, model = trained
    for name in ("up.tif", "up.zarr"):
        code, res, err = run(capsys, "predict", model, foam / "lres.tif", "--roi", "2:10,5:20,5:21",
                             "--tile", "32", "--device", "cpu", "-o", tmp_path / name)
        assert code == 0, err
        vol = read_volume(tmp_path / name)
        assert list(vol.shape) == res["shape"] and vol.voxel_um == tuple(res["voxel_um"])
        assert vol.origin_um == pytest.approx(res["origin_um"])
        # 8 LRES voxels of 3 um along z -> 24 HRES voxels (one may drop at a sub-voxel phase).
        assert res["shape"][0] in (23, 24) and res["shape"][1] in (44, 45)
        assert set(res) >= {"origin_um", "voxel_um", "shape", "seconds"}
    a = np.asarray(read_volume(tmp_path / "up.tif").data)
    b = np.asarray(read_volume(tmp_path / "up.zarr").data)
    assert np.array_equal(a, b)
    code, _, err = run(capsys, "predict", model, foam / "lres.tif", "--roi", "0:5,0:5,50:60", "-o", tmp_path / "o.tif")
    assert code == 2 and "does not fit" in err and not (tmp_path / "o.tif").exists()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    code, _, err = run(capsys, "predict", junk, foam / "lres.tif", "-o", tmp_path / "o.tif")
    assert code == 2 and "model" in err and err.count("\n") == 1


def test_baseline_methods(trained, foam, capsys, tmp_path):
    reg, _ = trained
    for method in ("linear", "cubic"):
        code, res, err = run(capsys, "baseline", foam / "lres.tif", "--registration", reg, "--method", method,
                             "--roi", "2:10,5:20,5:21", "-o", tmp_path / f"{method}.tif")
        assert code == 0, err
        assert read_volume(tmp_path / f"{method}.tif").origin_um == pytest.approx(res["origin_um"])
    code, res, err = run(capsys, "baseline", foam / "lres.tif", "--registration", reg, "--method", "rl",
                         "--hres", foam / "hres.tif", "--roi", "2:10,5:20,5:21", "-o", tmp_path / "rl.tif")
    assert code == 0, err
    assert 0.5 < res["psf_sigma_um"] < 4 and res["iterations"] == 10
    code, _, err = run(capsys, "baseline", foam / "lres.tif", "--registration", reg, "--method", "rl",
                       "-o", tmp_path / "rl2.tif")
    assert code == 2 and "--psf-sigma" in err and not (tmp_path / "rl2.tif").exists()


def test_evaluate_a_folder_of_pairs(capsys, tmp_path):
    from napari_resolve.io import write_volume
    from napari_resolve.learn.normalisation import Normalisation
    from napari_resolve.models import build_model
    from napari_resolve.models.checkpoint import Checkpoint, save_checkpoint
    from napari_resolve.phantom import make_phantom

    pairs = tmp_path / "pairs"
    for k, category in enumerate(("a", "b")):
        (pairs / category).mkdir(parents=True)
        for seed in range(3):
            ph = make_phantom(16, 4, ndim=2, hres_size=64, hres_start=(0, 0), seed=10 * k + seed)
            write_volume(pairs / category / f"s{seed}_lres.tif", ph.lres, 4.0)
            write_volume(pairs / category / f"s{seed}_hres.tif", ph.hres, 1.0)
    write_volume(pairs / "b" / "lonely_hres.tif", ph.hres, 1.0)
    net = build_model("unet25d", width=4)  # untrained: the cubic interpolation itself
    norm = Normalisation(0.0, 1.0)
    model = save_checkpoint(Checkpoint("unet25d", dict(net.config), net.state_dict(), norm, norm, (4.0, 4.0),
                                       (1.0, 1.0), registration={"offset_um": [-1.5, -1.5]}), tmp_path / "m.pt")
    out = tmp_path / "scores.csv"
    code, res, err = run(capsys, "evaluate", model, pairs, "-o", out, "--device", "cpu")
    assert code == 0, err
    assert "lonely_hres.tif" in err and "NAME_lres.tif" in err  # the skipped file, said once
    assert res["images"] == 6 and res["categories"] == ["a", "b"]
    assert res["unpaired"] == ["b/lonely_hres.tif"]
    assert [res["summary"][c]["n"] for c in ("a", "b", "(all)")] == [3, 3, 6]
    psnr = res["summary"]["(all)"]["psnr"]
    assert psnr["diff_mean"] == 0 and psnr["p_ttest"] == 1.0 and 10 < psnr["cubic_mean"] < 30
    assert res["summary"]["a"]["ssim"]["p_wilcoxon"] is None  # 3 images: not applicable, strict JSON null
    assert len(out.read_text().strip().splitlines()) == 7
    summary = tmp_path / "scores_summary.csv"
    assert res["csv"] == str(out) and res["summary_csv"] == str(summary)
    assert [line.split(",")[0] for line in summary.read_text().strip().splitlines()] == ["category", "a", "b",
                                                                                          "(all)"]
    # Existing results are kept unless --overwrite; either file blocks the run before any work.
    out.unlink()
    before = summary.read_bytes()
    code, _, err = run(capsys, "evaluate", model, pairs, "-o", out, "--device", "cpu")
    assert code == 2 and "scores_summary.csv already exists" in err and not out.exists()
    assert summary.read_bytes() == before
    code, _, err = run(capsys, "evaluate", model, pairs, "-o", out, "--device", "cpu", "--overwrite")
    assert code == 0 and out.exists(), err
    # User errors: one line, exit 2.
    code, _, err = run(capsys, "evaluate", model, tmp_path, "-o", tmp_path / "x.csv")
    assert code == 2 and "No LRES/HRES pairs" in err and err.count("\n") == 1
    code, _, err = run(capsys, "evaluate", model, pairs, "-o", tmp_path / "x.csv", "--lres-voxel", "2")
    last = err.strip().splitlines()[-1]  # after the note and the checking records: the error, on one line
    assert code == 2 and last.startswith("napari-resolve evaluate: error:")
    assert "s0_lres.tif: This LRES has 2 x 2 um voxels" in last
    assert not (tmp_path / "x.csv").exists()


def test_train_synthetic_without_an_lres_then_predict_the_real_lres(foam, capsys, tmp_path):
    from napari_resolve.models.checkpoint import load_checkpoint

    model = tmp_path / "syn.pt"
    small = ["--iterations", "4", "--batch-size", "2", "--patch-size", "32", "--model-option", "width=4",
             "--device", "cpu"]
    code, res, err = run(capsys, "train", "--synthetic", foam / "hres.tif", "--ratio", "3", "--blur", "0:1.5",
                         "--gaussian-noise", "0:0.05", "--poisson", "off", "--speckle", "0.01", *small, "-o", model)
    assert code == 0, err
    assert res["training_data"] == "synthetic" and res["lres_voxel_um"] == [3.0, 3.0, 3.0]
    assert res["degradation"]["blur"] == [0.0, 1.5] and res["degradation"]["poisson"] is None
    assert res["iterations_run"] == 4 and "Synthetic pairs from" in err
    ckpt = load_checkpoint(model)
    assert ckpt.extra["degradation"] == res["degradation"] and ckpt.extra["hres"] == str(foam / "hres.tif")
    assert ckpt.lres_voxel_um == (3.0, 3.0, 3.0) and ckpt.extra["degradation"]["speckle"] == [0.01, 0.01]
    # The model upscales the real LRES (3 um voxels) in binning phase.
    code, res, err = run(capsys, "predict", model, foam / "lres.tif", "--roi", "2:10,5:20,5:21", "--device", "cpu",
                         "-o", tmp_path / "up.tif")
    assert code == 0, err
    assert res["shape"] == [24, 45, 48] and res["origin_um"] == pytest.approx([5.0, 14.0, 14.0])
    # --lres-voxel instead of --ratio; per-axis blur ranges.
    code, res, err = run(capsys, "train", "--synthetic", foam / "hres.tif", "--lres-voxel", "3",
                         "--blur", "0:0.5,0:1,0:1", *small, "-o", tmp_path / "b.pt")
    assert code == 0, err
    assert res["degradation"]["ratio"] == [3.0, 3.0, 3.0] and res["degradation"]["blur"][0] == [0.0, 0.5]
    # Refusals: one line, exit 2, nothing written.
    for argv, message in [
        (["--synthetic", foam / "hres.tif"], "--ratio"),
        (["--synthetic", foam / "hres.tif", "--ratio", "0.5"], "at least 1"),
        (["--synthetic", foam / "hres.tif", "--ratio", "3", "--blur=-1:2"], "cannot be negative"),
        (["--synthetic", foam / "hres.tif", "--ratio", "3", "--gaussian-noise", "a lot"], "LO:HI"),
        (["--synthetic", foam / "hres.tif", "--ratio", "3", "--registration", tmp_path / "r.json"],
         "no --registration"),
        ([foam / "lres.tif", foam / "hres.tif"], "--synthetic HRES"),
        ([foam / "lres.tif", foam / "hres.tif", "--registration", tmp_path / "r.json", "--blur", "0:1"],
         "--blur only applies to synthetic training"),
    ]:
        code, _, err = run(capsys, "train", *argv, "-o", tmp_path / "x.pt")
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
        assert not (tmp_path / "x.pt").exists()


def test_stages_trained_separately_then_stacked_then_trained_jointly(foam, capsys, tmp_path):
    """The three stages of the multi-output network, each trained on its own task, joined with
    ``stack``; the stacked model upscales like any other and trains on jointly with ``--resume``."""
    common = ["--synthetic", foam / "hres.tif", "--ratio", "3", "--iterations", "2", "--batch-size", "2",
              "--patch-size", "32", "--device", "cpu"]
    specs = {"denoise": ("unet25d", ["width=4", "slices=3", "depth=1"]),
             "deblur": ("unet25d", ["width=4", "slices=1", "depth=1"]),
             "upscale": ("edsr", ["blocks=1", "features=4"])}
    paths = {}
    for task, (model, options) in specs.items():
        paths[task] = tmp_path / f"{task}.pt"
        code, res, err = run(capsys, "train", *common, "--task", task, "--model", model, "--model-option", *options,
                             "-o", paths[task])
        assert code == 0, err
    stacked = tmp_path / "stacked.pt"
    code, res, err = run(capsys, "stack", paths["denoise"], paths["deblur"], paths["upscale"], "-o", stacked)
    assert code == 0, err
    assert res["architecture"] == "multioutput" and res["config"]["upscale"]["name"] == "edsr"
    assert set(res["stacked"]) == {"denoise", "deblur", "upscale"}
    code, res, err = run(capsys, "predict", stacked, foam / "lres.tif", "--roi", "2:6,5:13,5:13", "--device", "cpu",
                         "-o", tmp_path / "up.tif")
    assert code == 0, err
    assert res["shape"] == [12, 24, 24]
    code, res, err = run(capsys, "train", *common, "--resume", stacked, "-o", tmp_path / "joint.pt")
    assert code == 0, err
    assert res["architecture"] == "multioutput"
    # Refusals: one line, exit 2, nothing written.
    for argv, message in [
        (["stack", paths["deblur"], paths["denoise"], paths["upscale"]], "trained for the 'deblur' task"),
        (["stack", paths["denoise"], paths["deblur"], paths["upscale"], "--overwrite"], None),
        (["train", *common, "--model", "multioutput", "--task", "denoise"], "all three stages at once"),
    ]:
        out = tmp_path / "x.pt"
        code, _, err = run(capsys, *argv, "-o", out)
        if message is None:  # the control: the same command with a correct order works
            assert code == 0, err
            out.unlink()
            continue
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
        assert not out.exists()
    code, _, err = run(capsys, "stack", paths["denoise"], paths["deblur"], paths["upscale"], "-o", stacked)
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "a.tif", "b.tif", "--loss", "bad", "-o", "m.pt"], "argument --loss: invalid choice: 'bad'"),
    (["train"], "required: -o/--output"),
    (["predict", "m.pt"], "required: lres, -o/--output"),
    (["phantom", "x", "--size", "abc"], "argument --size: invalid int value: 'abc'"),
    (["bogus"], "invalid choice: 'bogus'"),
    ([], "required: COMMAND"),
])
def test_unparsable_command_lines_get_one_line_and_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "usage:" not in err, err
    assert err.startswith("napari-resolve") and "--help" in err


def test_version_and_help_still_work(capsys):
    from napari_resolve import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"napari-resolve {__version__}"
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0 and "--synthetic" in capsys.readouterr().out
