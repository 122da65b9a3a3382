"""Every command-line flag reaches the code it sets: one test per flag group, checked by its effect.

The effect is read from what the command wrote (phantom metadata, the model
file's training record, the evaluation summary, the demo report) or, where the
effect is only a search setting, from the arguments the core function received.
At least one command runs through the installed console script, as a user runs it.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_resolve.cli import main
from napari_resolve.io import read_volume, write_volume


def _json(capsys):
    out, err = capsys.readouterr()
    return json.loads(out), err


def _console_script() -> str:
    script = Path(sys.executable).with_name("napari-resolve")
    return str(script) if script.exists() else shutil.which("napari-resolve")


def test_console_script_version_and_a_command(tmp_path):
    from napari_resolve import __version__

    script = _console_script()
    assert script, "the napari-resolve console script is not installed"
    out = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"napari-resolve {__version__}"
    # A 2D phantom with its own HRES voxel size and blur, through the script.
    run = subprocess.run([script, "phantom", str(tmp_path / "sem"), "--ndim", "2", "--size", "48",
                          "--hres-voxel", "0.5", "--blur", "0.9", "--seed", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    meta = json.loads(run.stdout)
    assert len(meta["lres_shape"]) == 2 and meta["hres_voxel_um"] == [0.5, 0.5]
    assert meta["lres_voxel_um"] == [1.5, 1.5] and meta["params"]["blur_um"] == pytest.approx(0.9)
    assert read_volume(tmp_path / "sem" / "hres.tif").voxel_um == (0.5, 0.5)
    # A bad value is refused in one line with status 2 by the script as by main().
    bad = subprocess.run([script, "phantom", str(tmp_path / "x"), "--ndim", "4"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--ndim" in bad.stderr


def test_register_search_flags_reach_the_search(foam_dir, capsys, monkeypatch):
    import napari_resolve.registration as registration

    seen = {}
    real = registration.register

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(registration, "register", spy)
    truth = json.loads((foam_dir / "meta.json").read_text())["hres_offset_um"]
    start = [v + 2.0 for v in truth]
    code = main(["register", str(foam_dir / "lres.tif"), str(foam_dir / "hres.tif"),
                 "--init-offset", *map(str, start), "--search-radius", "9", "--refine-scale"])
    result, err = _json(capsys)
    assert code == 0, err
    assert seen["init_offset_um"] == pytest.approx(start) and seen["search_radius_um"] == 9.0
    assert seen["refine_scale"] is True
    # Started 2 um off and searching within 9 um, it still lands within half an HRES voxel.
    assert np.abs(np.subtract(result["offset_um"], truth)).max() < 0.5
    assert "scale" in result and len(result["scale"]) == 3


def test_quality_ssim_map_and_data_range(foam_dir, capsys, tmp_path):
    hres = foam_dir / "hres.tif"
    smap = tmp_path / "ssim.tif"
    assert main(["quality", str(hres), str(hres), "--ssim-map", str(smap), "--data-range", "7.5"]) == 0
    result, _ = _json(capsys)
    assert result["data_range"] == 7.5 and result["ssim_map"] == str(smap)
    written = read_volume(smap)
    assert written.shape == read_volume(hres).shape and np.allclose(written.data, 1.0, atol=1e-5)


def test_train_lr_val_fraction_seed_and_roi_are_recorded(foam_dir, foam_registration, tmp_path):
    from napari_resolve.models.checkpoint import load_checkpoint

    model = tmp_path / "m.pt"
    argv = ["train", str(foam_dir / "lres.tif"), str(foam_dir / "hres.tif"), "--registration",
            str(foam_registration), "--iterations", "2", "--batch-size", "1", "--patch-size", "32",
            "--model-option", "width=4", "--device", "cpu", "--lr", "0.0005", "--val-fraction", "0.3",
            "--seed", "11", "--roi", "0:40,2:46,3:47", "-o", str(model)]
    assert main(argv) == 0
    ckpt = load_checkpoint(model)
    cfg = ckpt.train_config
    assert cfg["learning_rate"] == 0.0005 and cfg["val_fraction"] == 0.3 and cfg["seed"] == 11
    assert ckpt.extra["roi"] == [[0, 40], [2, 46], [3, 47]]


def test_baseline_psf_sigma_is_used(foam_dir, foam_registration, capsys, tmp_path):
    out = tmp_path / "rl.tif"
    argv = ["baseline", str(foam_dir / "lres.tif"), "--registration", str(foam_registration), "--method", "rl",
            "--psf-sigma", "2.5", "--iterations", "3", "--roi", "2:8,2:8,2:8", "-o", str(out)]
    assert main(argv) == 0
    result, _ = _json(capsys)
    assert result["psf_sigma_um"] == 2.5 and result["iterations"] == 3
    # A wider PSF sharpens more: the same region deconvolved with sigma 0.5 um differs by a real margin.
    out2 = tmp_path / "rl_narrow.tif"
    assert main([*argv[:-4], "--psf-sigma", "0.5", "--iterations", "3", "--roi", "2:8,2:8,2:8", "-o", str(out2)]) == 0
    capsys.readouterr()
    wide, narrow = np.asarray(read_volume(out).data), np.asarray(read_volume(out2).data)
    assert np.abs(wide - narrow).mean() > 0.01 * np.ptp(narrow)


@pytest.fixture
def pairs_dir(foam_dir, tmp_path):
    """One LRES/HRES pair covering the same field (the HRES is the noiseless truth), as evaluate expects."""
    lres = read_volume(foam_dir / "lres.tif")
    truth = read_volume(foam_dir / "truth.tif")
    folder = tmp_path / "pairs"
    folder.mkdir()
    write_volume(folder / "a_lres.tif", np.asarray(lres.data)[:12, :12, :12], lres.voxel_um)
    write_volume(folder / "a_hres.tif", np.asarray(truth.data)[:36, :36, :36], truth.voxel_um)
    return folder


def test_evaluate_align_and_border_are_applied(tiny_model, pairs_dir, capsys, tmp_path):
    scores = {}
    for align, border in (("edge", "1"), ("centre", "2")):
        out = tmp_path / f"{align}.csv"
        assert main(["evaluate", str(tiny_model), str(pairs_dir), "--align", align, "--border", border,
                     "--device", "cpu", "-o", str(out)]) == 0
        result, _ = _json(capsys)
        assert result["align"] == align and result["border_lres_voxels"] == float(border)
        scores[align] = result["summary"]["(all)"]["psnr"]
    # Binning (edge) is how the phantom's LRES was made; centring the grids misplaces it by 1 um.
    assert scores["edge"] != scores["centre"]


def test_demo_seed_and_ratio(capsys, tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", str(out), "--size", "40", "--ratio", "2", "--seed", "5", "--iterations", "2",
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    report = json.loads((out / "demo_report.json").read_text())
    assert report["phantom"]["ratio"] == 2 and report["phantom"]["params"]["seed"] == 5
    assert read_volume(out / "lres.tif").voxel_um == (2.0, 2.0, 2.0)


def test_phantom_noise_size_pore_and_contrast_flags_reach_the_phantom(capsys, tmp_path):
    argv = ["phantom", str(tmp_path / "{}"), "--size", "24", "--seed", "3"]
    assert main([a.format("plain") for a in argv]) == 0
    assert main([a.format("set") for a in argv] + [
        "--hres-size", "20", "--photons", "900", "--read-noise", "0.05", "--hres-photons", "150",
        "--pore-radius", "3", "6", "--porosity", "0.15", "--hres-gain", "2", "--hres-offset", "0.5"]) == 0
    capsys.readouterr()
    plain = json.loads((tmp_path / "plain" / "meta.json").read_text())
    meta = json.loads((tmp_path / "set" / "meta.json").read_text())
    params = meta["params"]
    assert params["photons"] == 900 and params["read_noise"] == 0.05 and params["hres_photons"] == 150
    assert params["pore_radius_um"] == [3.0, 6.0] and params["porosity_target"] == 0.15
    # ...and by their effect on the images:
    assert meta["hres_shape"] == [20, 20, 20] and plain["hres_shape"] != [20, 20, 20]
    truth = read_volume(tmp_path / "set" / "truth_labels.tif").data
    truth_plain = read_volume(tmp_path / "plain" / "truth_labels.tif").data
    assert (truth > 0).mean() < (truth_plain > 0).mean() - 0.04  # porosity 0.15 against 0.3 (measured 0.10, 0.17)
    # Pores of 3-6 um instead of 2.5-10 um: less than half the mean pore volume (measured 400 against 1100 voxels).
    assert (truth > 0).sum() / meta["pore_count"] < 0.5 * (truth_plain > 0).sum() / plain["pore_count"]
    hres = read_volume(tmp_path / "set" / "hres.tif").data
    hres_plain = read_volume(tmp_path / "plain" / "hres.tif").data
    assert hres.mean() > 1.6 * hres_plain.mean() + 0.3  # gain 2 and offset 0.5 against 1 and 0


def test_register_min_ncc_decides_the_verdict(foam_dir, capsys, tmp_path):
    lres, hres = str(foam_dir / "lres.tif"), str(foam_dir / "hres.tif")
    assert main(["register", lres, hres]) == 0
    ncc = _json(capsys)[0]["ncc"]
    assert 0.5 < ncc < 0.995
    assert main(["register", lres, hres, "--min-ncc", "0.995", "-o", str(tmp_path / "r.json")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("napari-resolve register: error:") and f"NCC {ncc:.3f} < 0.995" in last
    assert not (tmp_path / "r.json").exists()


def test_resolution_max_sigma_plain_mse_and_per_axis(foam_dir, capsys, tmp_path):
    from scipy import ndimage

    from napari_resolve.io import write_volume

    ref = read_volume(foam_dir / "hres.tif")
    sigma = 1.5  # um = HRES voxels
    blurred = ndimage.gaussian_filter(np.asarray(ref.data, np.float32), sigma)
    test = write_volume(tmp_path / "test.tif", 2.0 * blurred + 0.3, ref.voxel_um)  # other contrast
    argv = ["resolution", str(test), str(foam_dir / "hres.tif"), "--method", "gaussian"]

    def fit(*extra):
        assert main(argv + list(extra)) == 0
        return _json(capsys)[0]["gaussian"]

    default = fit()
    assert default["fit_contrast"] and abs(default["sigma_um"] - sigma) < 0.25 and default["sigma_axes_um"] is None
    assert abs(default["gain"] - 2.0) < 0.2
    per_axis = fit("--per-axis")
    assert len(per_axis["sigma_axes_um"]) == 3 and all(abs(s - sigma) < 0.4 for s in per_axis["sigma_axes_um"])
    capped = fit("--max-sigma", "0.75")
    assert capped["sigma_um"] <= 0.75 + 1e-9 and capped["at_limit"]
    plain = fit("--plain-mse")
    assert not plain["fit_contrast"] and abs(plain["sigma_um"] - sigma) > 0.25  # contrast mismatch misleads it


def test_pores_are_bright_and_keep_edge_pores(foam_dir, capsys):
    truth = str(foam_dir / "truth.tif")

    def measure(*extra):
        assert main(["pores", truth, "--sample-mask", "none", *extra]) == 0
        return _json(capsys)[0]

    dark, bright, kept = measure(), measure("--pores-are", "bright"), measure("--keep-edge-pores")
    # The same Otsu threshold splits the noiseless truth into two phases: the bright one is the rest.
    assert dark["threshold"] == bright["threshold"]
    assert bright["porosity"] == pytest.approx(1.0 - dark["porosity"], abs=0.01)
    assert abs(bright["porosity"] - dark["porosity"]) > 0.03  # measured 0.472 against 0.530
    # Pores cut by the border count only with --keep-edge-pores (measured 322 against 270).
    assert kept["count"] > dark["count"] + 20 and kept["porosity"] == pytest.approx(dark["porosity"])


def test_train_patience_degradation_seed_and_stage_weight(foam_dir, capsys, tmp_path):
    from napari_resolve.models.checkpoint import load_checkpoint

    tiny = {"denoise": {"name": "unet25d", "width": 4, "slices": 3, "depth": 1},
            "deblur": {"name": "unet25d", "width": 4, "slices": 1, "depth": 1},
            "upscale": {"name": "edsr", "blocks": 1, "features": 4}}
    model = tmp_path / "m.pt"
    # A learning rate too small to improve anything: patience 1 stops at the second validation.
    argv = ["train", "--synthetic", str(foam_dir / "hres.tif"), "--ratio", "3", "--iterations", "40",
            "--batch-size", "1", "--patch-size", "24", "--lr", "1e-12", "--device", "cpu", "--seed", "3",
            "--model", "multioutput", "--model-option", *(f"{k}={json.dumps(v)}" for k, v in tiny.items()),
            "--stage-weight", "0.25", "--degradation-seed", "7", "--patience", "1", "-o", str(model)]
    assert main(argv) == 0
    result, _ = _json(capsys)
    assert result["stopped_early"] and result["iterations_run"] < 40
    ckpt = load_checkpoint(model)
    assert ckpt.train_config["patience"] == 1 and ckpt.train_config["stage_weight"] == 0.25
    assert ckpt.extra["degradation"]["seed"] == 7 and ckpt.train_config["seed"] == 3


def test_quality_error_map_is_compared_with_the_true_error(tiny_model, foam_dir, foam_registration, capsys,
                                                          tmp_path):
    up, unc = tmp_path / "up.tif", tmp_path / "unc.tif"
    assert main(["predict", str(tiny_model), str(foam_dir / "lres.tif"), "--device", "cpu", "-o", str(up),
                 "--uncertainty", str(unc)]) == 0
    capsys.readouterr()
    argv = ["quality", str(up), str(foam_dir / "hres.tif"), "--registration", str(foam_registration)]
    assert main(argv) == 0
    assert not _json(capsys)[0].get("error_map_agreement")  # nothing to compare
    assert main([*argv, "--error-map", str(unc)]) == 0
    agreement = _json(capsys)[0]["error_map_agreement"]
    # A calibrated 90 % map of even a barely trained model covers most of the true error on the overlap.
    assert 0.6 < agreement["coverage"] <= 1.0 and -1.0 <= agreement["spearman_abs_error"] <= 1.0
