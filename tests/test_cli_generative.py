"""The generative models from the command line, on the cross-modality (CT to SEM) phantom, 2D and 3D."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_resolve.cli import main
from napari_resolve.io import read_volume

TINY = {"diffusion": ["width=4", "depth=1", "convs=1", "steps=2"],
        "pix2pix": ["width=4", "depth=1", "convs=1", "disc_width=4"]}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and out.strip().startswith("{") else out), err


@pytest.fixture(scope="module", params=[2, 3], ids=["2d", "3d"])
def sem_pair(request, tmp_path_factory):
    """A registered CT (LRES) / SEM (HRES) phantom pair written by the CLI."""
    folder = tmp_path_factory.mktemp(f"sem{request.param}d")
    size = "96" if request.param == 2 else "28"
    assert main(["phantom", str(folder / "ph"), "--ndim", str(request.param), "--size", size,
                 "--hres-modality", "sem", "--seed", "3"]) == 0
    assert main(["register", str(folder / "ph" / "lres.tif"), str(folder / "ph" / "hres.tif"),
                 "-o", str(folder / "reg.json")]) == 0
    return folder, request.param


@pytest.mark.parametrize("model", ["diffusion", "pix2pix"])
def test_generative_models_train_and_predict_a_placed_result(sem_pair, model, capsys):
    folder, ndim = sem_pair
    ph = folder / "ph"
    out_model = folder / f"{model}.pt"
    code, res, err = run(capsys, "train", ph / "lres.tif", ph / "hres.tif", "--registration", folder / "reg.json",
                         "--model", model, "--model-option", *TINY[model], "--iterations", "6", "--batch-size", "2",
                         "--patch-size", "32", "--device", "cpu", "-o", out_model)
    assert code == 0, err
    assert res["architecture"] == model
    extra = ["--samples", "3", "--steps", "3", "--uncertainty", folder / f"{model}_unc.tif",
             "--sample-std", folder / f"{model}_std.zarr"] if model == "diffusion" else []
    out = folder / f"{model}_up.tif"
    code, res, err = run(capsys, "predict", out_model, ph / "lres.tif", "-o", out, "--device", "cpu", *extra)
    assert code == 0, err
    up = read_volume(out)
    lres = read_volume(ph / "lres.tif")
    # The HRES-sized grid over the whole LRES, in phase with the training grid: within a voxel of 3x.
    assert up.data.ndim == ndim and all(abs(a - 3 * n) <= 1 for a, n in zip(up.data.shape, lres.data.shape))
    assert np.isfinite(up.data).all() and res["voxel_um"] == [1.0] * ndim
    if model == "diffusion":
        assert "the mean of 3 samples" in err
        unc = read_volume(folder / "diffusion_unc.tif")
        assert unc.data.shape == up.data.shape and np.isfinite(unc.data).all() and unc.data.min() > 0
        assert res["uncertainty_validation_coverage"] > 0.5
        std = read_volume(folder / "diffusion_std.zarr")  # the samples' spread itself, same grid
        assert std.data.shape == up.data.shape and std.voxel_um == up.voxel_um and res["sample_std"].endswith("zarr")
        assert np.asarray(std.data).min() >= 0 and np.asarray(std.data).max() > 0
        # It is the spread the error map was made from: the library's own signal for the same prediction.
        from napari_resolve.learn.inference import run_predict
        from napari_resolve.models.checkpoint import load_checkpoint

        ref = run_predict(load_checkpoint(out_model), lres.data, lres.voxel_um, samples=3, steps=3, device="cpu",
                          uncertainty=True, keep_signals=True)
        np.testing.assert_allclose(ref.data, up.data, atol=1e-6)
        np.testing.assert_allclose(np.asarray(std.data), ref.signals["spread"].reshape(up.data.shape), atol=1e-6)


def test_sampling_settings_are_refused_where_they_do_not_apply(sem_pair, capsys):
    folder, _ = sem_pair
    ph = folder / "ph"
    if not (folder / "pix2pix.pt").exists():
        pytest.skip("needs the trained models of the test above")
    code, _, err = run(capsys, "predict", folder / "pix2pix.pt", ph / "lres.tif", "-o", folder / "x.tif",
                       "--samples", "4")
    assert code == 2 and "--samples and --steps apply to generative models" in err
    code, _, err = run(capsys, "predict", folder / "diffusion.pt", ph / "lres.tif", "-o", folder / "x.tif",
                       "--tta", "--uncertainty", folder / "u.tif")
    assert code == 2 and "Set --samples to 2 or more" in err
    for bad in ("0", "65"):
        code, _, err = run(capsys, "predict", folder / "diffusion.pt", ph / "lres.tif", "-o", folder / "x.tif",
                           "--samples", bad)
        assert code == 2 and "--samples must be a whole number from 1 to 64" in err
    code, _, err = run(capsys, "predict", folder / "diffusion.pt", ph / "lres.tif", "-o", folder / "x.tif",
                       "--sample-std", folder / "s.tif")
    assert code == 2 and "--sample-std) needs 2 or more --samples" in err
    assert not (folder / "x.tif").exists() and not (folder / "s.tif").exists()
