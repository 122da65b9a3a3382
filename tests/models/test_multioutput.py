"""The end-to-end multi-output network, its stage targets, separate stage training and stacking."""

from __future__ import annotations

import copy
from functools import cache

import numpy as np
import pytest
import torch

from napari_resolve.errors import InputError
from napari_resolve.learn.pairs import PatchSampler, make_pair
from napari_resolve.learn.synthetic import Degradation, SyntheticSampler, make_synthetic_pair
from napari_resolve.learn.training import TrainConfig, run_train, run_train_synthetic
from napari_resolve.models import build_model
from napari_resolve.models.checkpoint import load_checkpoint, save_checkpoint
from napari_resolve.models.multioutput import STAGES, MultiOutput, stack_stages
from napari_resolve.phantom import make_phantom
from napari_resolve.registration import register

TINY = {
    "denoise": {"name": "unet25d", "width": 4, "slices": 3, "depth": 1},
    "deblur": {"name": "unet25d", "width": 4, "slices": 1, "depth": 1},
    "upscale": {"name": "edsr", "blocks": 1, "features": 4},
}
QUIET = Degradation(ratio=2, blur=(0.0, 0.0), gaussian_noise=(0.0, 0.0), poisson=None, speckle=(0.0, 0.0))


@cache
def phantom():
    return make_phantom(32, 2, seed=3)


def fast(**kw) -> TrainConfig:
    base = {"iterations": 3, "batch_size": 2, "patch_size": 16, "device": "cpu", "val_every": 3}
    return TrainConfig(**(base | kw))


def randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


# ----------------------------------------------------------------------------- the network


def test_untrained_network_is_the_identity_and_gives_its_stage_outputs_to_training():
    net = build_model("multioutput", **TINY)
    assert net.trim_z == 1
    assert net.size_multiple == (1, 2, 2)
    r = [build_model(s["name"], **{k: v for k, v in s.items() if k != "name"}).receptive_radius for s in TINY.values()]
    assert net.receptive_radius == tuple(sum(x[a] for x in r) for a in range(3))
    x = torch.rand(2, 5, 16, 16)
    net.train()
    y, extras = net.forward_train(x)
    assert y.shape == (2, 3, 16, 16)
    torch.testing.assert_close(y, x[:, 1:4])  # every stage starts as a zero residual
    assert list(extras["stages"]) == list(net.stage_names) == ["denoise", "deblur"]
    assert [o.shape for o in extras["stages"].values()] == [y.shape, y.shape]
    # forward gives the final output alone, the same in both modes, and keeps nothing on the model.
    assert torch.equal(net(x), y)
    net.eval()
    assert torch.equal(net(x), y) and not hasattr(net, "stage_outputs")


def test_default_stages_follow_the_paper_and_are_recorded_in_the_config():
    net = build_model("multioutput")
    assert net.config["upscale"] == {"name": "dfcan"}
    assert net.config["denoise"]["slices"] == 5 and net.config["deblur"]["slices"] == 1
    assert net.global_context  # DFCAN's attention: tiles are close to, not equal to, a whole pass
    assert not build_model("multioutput", **TINY).global_context


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"deblur": {"name": "unet25d", "slices": 3}}, "only the denoise stage"),
        ({"upscale": "srcnn3d"}, "3D network"),
        ({"upscale": "multioutput"}, "cannot itself"),
        ({"denoise": 5}, "registered model name"),
        ({"upscale": "nonsense"}, "Unknown model"),
        ({"upscale": {"name": "edsr", "colour": 3}}, "no setting colour"),
    ],
)
def test_bad_stage_specs_say_what_is_wrong(spec, match):
    with pytest.raises(InputError, match=match):
        build_model("multioutput", **spec)


# ----------------------------------------------------------------------------- stage targets


def test_without_noise_and_blur_the_three_lres_variants_coincide_through_the_augmentation():
    ph = phantom()
    pair = make_synthetic_pair(ph.hres, ph.hres_voxel_um, QUIET, halo_z=1)
    sampler = SyntheticSampler(pair, out_depth=1, size=16, multiple=2, rng=np.random.default_rng(0), stages=True)
    x, y, denoised, deblurred = sampler.sample(6)
    assert x.shape == (6, 3, 16, 16) and y.shape == denoised.shape == deblurred.shape == (6, 1, 16, 16)
    np.testing.assert_allclose(denoised, x[:, 1:2], atol=1e-6)
    np.testing.assert_allclose(deblurred, x[:, 1:2], atol=1e-6)
    assert np.abs(y - x[:, 1:2]).mean() > 0.02  # the HRES is not the LRES


def test_stage_targets_are_the_lres_before_noise_and_before_blur():
    ph = phantom()
    deg = Degradation(ratio=2, blur=(1.0, 1.0), gaussian_noise=(0.1, 0.1), poisson=None, speckle=(0.0, 0.0))
    pair = make_synthetic_pair(ph.hres, ph.hres_voxel_um, deg)
    sampler = SyntheticSampler(pair, out_depth=1, size=16, multiple=2, rng=np.random.default_rng(1), stages=True)
    x, y, denoised, deblurred = sampler.sample(8)
    noise = np.std(x - denoised)
    assert 0.05 < noise  # the noise was taken out of the denoise target
    # The deblur target is sharper than the blurred one: more energy in its gradients.
    def sharpness(a):
        return float(np.mean(np.abs(np.diff(a, axis=-1))))

    assert sharpness(deblurred) > 1.2 * sharpness(denoised)


@pytest.mark.parametrize("task", ["denoise", "deblur", "upscale"])
def test_a_stage_task_pairs_the_right_images_and_keeps_the_input_scale(task):
    ph = phantom()
    deg = Degradation(ratio=2, blur=(0.8, 0.8), gaussian_noise=(0.05, 0.05), poisson=None, speckle=(0.0, 0.0))
    full = make_synthetic_pair(ph.hres, ph.hres_voxel_um, deg, halo_z=1)
    pair = make_synthetic_pair(ph.hres, ph.hres_voxel_um, deg, halo_z=1, task=task)
    assert pair.norm_in == full.norm_in  # stages trained separately chain
    assert (pair.norm_out is pair.norm_in) == (task != "upscale")
    val_in, val_target = pair.validation()
    if task == "denoise":
        np.testing.assert_array_equal(val_in, full.validation()[0])  # the same degraded input
        assert np.std(val_in[1:-1] - val_target) > 0.02
    if task == "upscale":
        np.testing.assert_array_equal(val_target, full.validation()[1])  # the HRES
    sampler = SyntheticSampler(pair, out_depth=1, size=16, multiple=2, rng=np.random.default_rng(0))
    assert len(sampler.sample(2)) == 2


def test_a_real_pair_has_no_stage_targets():
    ph = phantom()
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    pair = make_pair(ph.lres, ph.hres, ph.lres_voxel_um, reg.offset_um, reg.scale)
    with pytest.raises(InputError, match="only synthetic pairs"):
        PatchSampler(pair, out_depth=1, size=16, multiple=2, rng=np.random.default_rng(0), stages=True)


# ----------------------------------------------------------------------------- training


@pytest.mark.slow
def test_joint_training_teaches_the_intermediate_outputs_their_stages():
    ph = phantom()
    deg = Degradation(ratio=2, blur=(0.5, 1.0), gaussian_noise=(0.05, 0.1), poisson=None, speckle=(0.0, 0.0))
    small = {
        "denoise": {"name": "unet25d", "width": 8, "slices": 3, "depth": 1},
        "deblur": {"name": "unet25d", "width": 8, "slices": 1, "depth": 1},
        "upscale": {"name": "edsr", "blocks": 1, "features": 4},
    }
    # Zero-initialised residual heads sit on a plateau for the first ~60 iterations: a constant
    # rate and one validation at the end (the model kept is the last one).
    cfg = fast(model="multioutput", model_config=small, iterations=140, batch_size=4, patch_size=32,
               learning_rate=2e-3, schedule="constant", val_every=140)
    net = run_train_synthetic(ph.hres, ph.hres_voxel_um, deg, cfg).checkpoint.build().eval()
    # The denoise output on the held-out block, against the noise-free LRES (same seeds and
    # scale as the training pair's): the untrained stage is the identity.
    val_in, val_target = make_synthetic_pair(ph.hres, ph.hres_voxel_um, deg, halo_z=1, task="denoise").validation()
    val_in, val_target = val_in[..., :24, :24], val_target[..., :24, :24]  # multiples of the U-Net's 2
    with torch.no_grad():
        denoised = net.stages["denoise"](torch.from_numpy(val_in)[None])[0].numpy()
    before = np.abs(val_in[1:-1] - val_target).mean()
    after = np.abs(denoised - val_target).mean()
    assert after < 0.85 * before, (before, after)


def test_the_optimised_loss_is_the_final_loss_plus_the_weighted_stage_losses():
    ph = phantom()
    cfg = fast(model="multioutput", model_config=TINY, iterations=4, stage_weight=0.5)
    history = run_train_synthetic(ph.hres, ph.hres_voxel_um, Degradation(ratio=2), cfg).history
    for e in history:
        assert e["loss_denoise"] > 0 and e["loss_deblur"] > 0
        assert e["loss_total"] == pytest.approx(e["loss"] + 0.5 * (e["loss_denoise"] + e["loss_deblur"]), rel=1e-5)


def test_stage_weight_zero_trains_the_final_output_alone_also_on_a_real_pair():
    ph = phantom()
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    with pytest.raises(InputError, match="synthetic"):
        run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, fast(model="multioutput", model_config=TINY))
    res = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg,
                    fast(model="multioutput", model_config=TINY, stage_weight=0.0))
    assert "loss_denoise" not in res.history[-1]
    assert res.checkpoint.architecture == "multioutput"


def test_tasks_need_synthetic_pairs_and_a_single_stage_network():
    ph = phantom()
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    with pytest.raises(InputError, match="synthetic pair") as err:
        run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, fast(task="denoise"))
    assert err.value.parameters == ("task",) and "--" not in str(err.value)
    with pytest.raises(InputError, match="all three stages at once"):
        run_train_synthetic(ph.hres, ph.hres_voxel_um, QUIET, fast(model="multioutput", task="denoise"))
    with pytest.raises(InputError, match="Unknown task"):
        fast(task="sharpen").check()


# ----------------------------------------------------------------------------- stacking


@cache
def stage_models():
    ph = phantom()
    deg = Degradation(ratio=2, blur=(0.5, 1.0), gaussian_noise=(0.05, 0.1), poisson=None, speckle=(0.0, 0.0))
    out = {}
    for stage in STAGES:
        spec = dict(TINY[stage])
        model = spec.pop("name")
        out[stage] = run_train_synthetic(ph.hres, ph.hres_voxel_um, deg,
                                         fast(model=model, model_config=spec, task=stage)).checkpoint
    return out


def test_stacked_model_runs_the_three_stage_models_in_a_row(tmp_path):
    stages = stage_models()
    before = {stage: {k: v.clone() for k, v in c.state_dict.items()} for stage, c in stages.items()}
    paths = []
    for stage, shared in stages.items():
        # A copy: the cached stage models are shared with the other tests, which must see them unchanged.
        ckpt = copy.deepcopy(shared)
        # Random weights: trained for 3 iterations the stages would be nearly the identity.
        net = randomise(ckpt.build(), seed=len(paths))
        ckpt.state_dict = {k: v.detach().clone() for k, v in net.state_dict().items()}
        paths.append(tmp_path / f"{stage}.pt")
        save_checkpoint(ckpt, paths[-1])
    stacked = stack_stages(*paths)
    assert stacked.architecture == "multioutput"
    assert stacked.norm_in == stages["denoise"].norm_in and stacked.norm_out == stages["upscale"].norm_out
    assert set(stacked.extra["stacked"]) == set(STAGES)
    model = stacked.build().eval()
    assert isinstance(model, MultiOutput)
    x = torch.rand(1, 5, 16, 16)
    with torch.no_grad():
        expected = x
        for path in paths:
            expected = load_checkpoint(path).build().eval()(expected)
        torch.testing.assert_close(model(x), expected)
        assert (expected - x[:, 1:4]).abs().max() > 0.1  # far from the identity: a real comparison
    # The shared stage models the other tests stack and train are unchanged (no order dependence).
    for stage, ckpt in stage_models().items():
        assert all(torch.equal(v, before[stage][k]) for k, v in ckpt.state_dict.items()), stage


def test_stacking_refuses_wrong_order_other_data_and_other_voxels():
    stages = stage_models()
    with pytest.raises(InputError, match="trained for the 'deblur' task"):
        stack_stages(stages["deblur"], stages["denoise"], stages["upscale"])
    other = make_phantom(32, 2, seed=11)
    spec = dict(TINY["deblur"])
    model = spec.pop("name")
    foreign = run_train_synthetic(other.hres * 2.0 + 1.0, other.hres_voxel_um, QUIET,
                                  fast(model=model, model_config=spec, task="deblur")).checkpoint
    with pytest.raises(InputError, match="different grey-value scales"):
        stack_stages(stages["denoise"], foreign, stages["upscale"])
    coarse = copy.deepcopy(stages["upscale"])
    coarse.lres_voxel_um = (3.0, 3.0, 3.0)
    with pytest.raises(InputError, match="same voxel sizes"):
        stack_stages(stages["denoise"], stages["deblur"], coarse)


def test_a_stacked_model_trains_on_jointly():
    ph = phantom()
    stacked = stack_stages(*stage_models().values())
    deg = Degradation(ratio=2, blur=(0.5, 1.0), gaussian_noise=(0.05, 0.1), poisson=None, speckle=(0.0, 0.0))
    res = run_train_synthetic(ph.hres, ph.hres_voxel_um, deg, fast(model="multioutput"), resume=stacked)
    assert res.checkpoint.config == stacked.config
    assert res.checkpoint.iteration == stacked.iteration + 3
    assert "loss_deblur" in res.history[-1]
