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
    extra = ["--samples", "3", "--steps", "3", "--uncertainty", folder / f"{model}_unc.tif"] if model == "diffusion" \
        else []
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
    assert not (folder / "x.tif").exists()
