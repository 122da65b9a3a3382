"""Models in series (napari_resolve.learn.chain): tiled chain = the models one after the other, refusals, CLI."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import torch

from napari_resolve.errors import InputError, VoxelSizeError
from napari_resolve.io import read_volume
from napari_resolve.learn.chain import Chain, ChainNetwork, plan_chain_predict, run_chain_predict
from napari_resolve.learn.inference import PredictPlan, iter_predict, run_predict
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.models import build_model
from napari_resolve.models.checkpoint import Checkpoint
from napari_resolve.phantom import make_phantom

# The DeepNet paper's integrated circuit: 6.75 -> 2.25 -> 0.75 um, two models of ratio 3.
V1, V2, V3 = (6.75,) * 3, (2.25,) * 3, (0.75,) * 3
SMALL = {"lres3d": {"width": 4, "blocks": 1, "hidden": 4}, "unet25d": {"width": 4, "slices": 3, "depth": 1},
         "diffusion": {"width": 4, "slices": 3, "depth": 1, "convs": 1, "steps": 3}}
ROI = (slice(3, 9), slice(4, 11), slice(5, 12))  # LRES voxels: about 18 x 21 x 21 middle voxels, 54 x 63 x 63 out


@cache
def lres() -> np.ndarray:
    return make_phantom(20, 3, seed=2).lres


def ckpt(name, voxel, phase, seed):
    """A model with random weights everywhere (far from the identity), normalisations that are not."""
    net = build_model(name, **SMALL[name])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return Checkpoint(name, dict(net.config), {k: v.clone() for k, v in net.state_dict().items()},
                      Normalisation(0.1, 1.1), Normalisation(-0.5, 2.0), voxel[0], voxel[1],
                      registration=None if phase is None else {"offset_um": list(phase)})


def one_after_the_other(models, data, voxel, roi=None):
    """The reference: M1 over the whole LRES (ROI), then M2 over all of its result...; the last grid (LRES frame)."""
    origin = np.zeros(data.ndim)
    for k, m in enumerate(models):
        r = run_predict(m, data, voxel, roi=roi if k == 0 else None, device="cpu")
        data, voxel, origin = r.data, r.grid.voxel_um, origin + r.grid.origin_um
    return data, r.grid.voxel_um, origin


@pytest.mark.parametrize("first, second", [("lres3d", "lres3d"), ("lres3d", "unet25d"), ("unet25d", "lres3d")])
def test_a_tiled_chain_equals_the_models_one_after_the_other(first, second):
    m1 = ckpt(first, (V1, V2), (0.4, -0.3, 0.2), seed=1)
    m2 = ckpt(second, (V2, V3), (0.1, 0.2, -0.3), seed=2)
    ref, voxel, origin = one_after_the_other([m1, m2], lres(), V1, ROI)
    result = run_chain_predict([m1, m2], lres(), V1, roi=ROI, device="cpu", tile=(16, 24, 24))
    assert result.tiles >= 12
    assert result.grid.shape == ref.shape and min(ref.shape) >= 48
    assert result.grid.voxel_um == voxel
    np.testing.assert_allclose(result.grid.origin_um, origin, atol=1e-9)
    # Real networks: the second stage changes its input a lot.
    assert np.abs(ref).max() > 1
    np.testing.assert_allclose(result.data, ref, atol=1e-4, rtol=0)


def test_a_2d_chain_of_three_models():
    image = make_phantom(40, 3, ndim=2, seed=1).lres
    v = [(6.75, 6.75), (2.25, 2.25), (0.75, 0.75), (0.375, 0.375)]
    models = [ckpt("lres3d", (v[0], v[1]), (-0.3, 0.2), 1), ckpt("unet25d", (v[1], v[2]), (0.2, -0.3), 2),
              ckpt("lres3d", (v[2], v[3]), None, 3)]
    roi = (slice(10, 22), slice(5, 19))
    ref, voxel, origin = one_after_the_other(models, image, v[0], roi)
    result = run_chain_predict(models, image, v[0], roi=roi, device="cpu", tile=(40, 48))
    assert result.tiles >= 4 and result.data.shape == ref.shape
    np.testing.assert_allclose(result.grid.origin_um, origin, atol=1e-9)
    np.testing.assert_allclose(result.data, ref, atol=1e-4, rtol=0)


def test_the_plan_is_a_predict_plan_that_does_no_work_and_stops_cleanly(tmp_path):
    m1, m2 = ckpt("lres3d", (V1, V2), None, 1), ckpt("lres3d", (V2, V3), None, 2)
    out = tmp_path / "out.tif"
    plan = plan_chain_predict([m1, m2], lres(), V1, roi=ROI, device="cpu", tile=16, out_path=out)
    assert isinstance(plan, PredictPlan) and isinstance(plan.network, ChainNetwork)
    assert isinstance(plan.checkpoint, Chain) and plan.checkpoint.architecture == "lres3d -> lres3d"
    assert plan.grid.voxel_um == V3 and plan.n_tiles > 1 and not out.exists()
    assert all(r > 0 for r in plan.network.receptive_radius)
    job = iter_predict(plan)
    record = next(job)
    assert record.step == 1
    job.close()
    assert list(tmp_path.iterdir()) == []  # no output, no temporary


def test_models_whose_steps_do_not_meet_are_refused_naming_them_and_their_sizes():
    m1 = ckpt("lres3d", (V1, V2), None, 1)
    m2 = ckpt("lres3d", ((2.0,) * 3, (0.75,) * 3), None, 2)
    with pytest.raises(VoxelSizeError) as err:
        plan_chain_predict([m1, m2], lres(), V1, device="cpu")
    text = str(err.value)
    assert "model 1 outputs 2.25 um voxels" in text and "model 2 was trained on 2 um LRES voxels" in text
    # The right order is accepted; the wrong order is refused too.
    with pytest.raises(VoxelSizeError, match="model 1 outputs 0.75"):
        plan_chain_predict([ckpt("lres3d", (V2, V3), None, 2), m1], lres(), V2, device="cpu")


def test_what_a_chain_refuses():
    m1 = ckpt("lres3d", (V1, V2), None, 1)
    with pytest.raises(InputError, match="two models or more"):
        plan_chain_predict([m1], lres(), V1)
    gen = ckpt("diffusion", (V2, V3), None, 3)
    with pytest.raises(InputError, match="generative"):
        plan_chain_predict([m1, gen], lres(), V1, device="cpu")
    with pytest.raises(VoxelSizeError):  # the LRES must fit the first model
        plan_chain_predict([m1, ckpt("lres3d", (V2, V3), None, 2)], lres(), V2, device="cpu")


# ----------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def second_model(foam_dir, tmp_path_factory):
    """A unet25d trained on synthetic pairs for the tiny model's next step: 1 um LRES -> 1/3 um (6 iterations)."""
    from napari_resolve.cli import main

    out = tmp_path_factory.mktemp("chain") / "m2.pt"
    assert main(["train", "--synthetic", str(foam_dir / "hres.tif"), "--hres-voxel", str(1 / 3), "--ratio", "3",
                 "--iterations", "6", "--batch-size", "2", "--patch-size", "24", "--model-option", "width=4",
                 "slices=3", "depth=1", "--device", "cpu", "-o", str(out)]) == 0
    return out


def test_cli_predict_with_two_models_equals_predicting_twice(tiny_model, second_model, foam_dir, tmp_path, capsys):
    from napari_resolve.cli import main

    lres_file, roi = foam_dir / "lres.tif", ["--roi", "4:12,6:14,6:14", "--device", "cpu"]
    assert main(["predict", str(tiny_model), str(second_model), str(lres_file), *roi, "--tile", "24",
                 "-o", str(tmp_path / "chain.tif")]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert chain["models"] == [str(tiny_model), str(second_model)] and chain["tiles"] > 1
    assert main(["predict", str(tiny_model), str(lres_file), *roi, "-o", str(tmp_path / "mid.tif")]) == 0
    mid = json.loads(capsys.readouterr().out)
    assert main(["predict", str(second_model), str(tmp_path / "mid.tif"), "--device", "cpu",
                 "-o", str(tmp_path / "seq.tif")]) == 0
    seq = json.loads(capsys.readouterr().out)
    assert chain["shape"] == seq["shape"]
    np.testing.assert_allclose(chain["origin_um"], np.add(mid["origin_um"], seq["origin_um"]), atol=1e-6)
    a, b = read_volume(tmp_path / "chain.tif").data, read_volume(tmp_path / "seq.tif").data
    assert np.abs(b).max() > 0.1
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_cli_refuses_a_chain_that_does_not_meet_and_options_it_lacks(tiny_model, foam_dir, tmp_path, capsys):
    from napari_resolve.cli import main

    out = tmp_path / "o.tif"
    # The same model twice: it outputs 1 um voxels but was trained on 3 um ones.
    assert main(["predict", str(tiny_model), str(tiny_model), str(foam_dir / "lres.tif"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model 1 (m.pt) outputs 1 um" in err and "model 2 (m.pt) was trained on 3 um" in err
    for flag in (["--uncertainty", str(tmp_path / "u.tif")], ["--workers", "2"], ["--tta"]):
        assert main(["predict", str(tiny_model), str(tiny_model), str(foam_dir / "lres.tif"), "-o", str(out),
                     *flag]) == 2
        assert f"{flag[0]} is not available for models in series" in capsys.readouterr().err
    assert not out.exists()
