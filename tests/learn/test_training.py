"""Training (napari_resolve.learn.training): reproducibility, progress, stopping, resuming, errors,
and a small version of the quality bar (the model beats cubic interpolation away from the HRES)."""

from __future__ import annotations

import dataclasses
import math
import os
from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_resolve.errors import FileFormatError, InputError, ResolveError
from napari_resolve.jobs import Progress
from napari_resolve.learn.inference import run_predict
from napari_resolve.learn.pairs import make_pair
from napari_resolve.learn.training import (
    TrainConfig,
    TrainPlan,
    TrainStep,
    _multiscale_loss,
    iter_train,
    plan_train,
    plan_train_synthetic,
    predict_block,
    run_train,
)
from napari_resolve.measure.baselines import interpolate
from napari_resolve.measure.similarity import psnr, ssim
from napari_resolve.models.checkpoint import Checkpoint, load_checkpoint
from napari_resolve.phantom import make_phantom
from napari_resolve.registration import register


@cache
def data():
    """LRES 48^3 (3 um) and HRES 57^3 (1 um), registered."""
    ph = make_phantom(48, 3, seed=0)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    assert reg.ok
    return ph, reg


def config(**kw) -> TrainConfig:
    """A small, fast training of the pre-upsampled unet25d: these tests are about the loop itself
    (the default network, on the LRES grid, has its own tests below)."""
    base = dict(
        model="unet25d",
        model_config={"width": 8},
        patch_depth=16,
        loss="l1",
        iterations=10,
        batch_size=4,
        patch_size=32,
        learning_rate=3e-3,
        device="cpu",
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def train(cfg=None, **kw):
    ph, reg = data()
    return run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, cfg or config(), **kw)


@pytest.fixture(scope="module")
def trained():
    """A small unet25d trained for 150 iterations (shared by several tests)."""
    return train(config(iterations=150, val_every=30))


def losses(result):
    return [h["loss"] for h in result.history]


# ----------------------------------------------------------------------------- reproducibility


@pytest.mark.slow
def test_training_is_reproducible_on_the_cpu():
    a = train(config(iterations=10, val_every=5))
    b = train(config(iterations=10, val_every=5))
    c = train(config(iterations=10, val_every=5, seed=1))
    assert len(losses(a)) == 10
    assert losses(a) == losses(b)
    assert [h.get("val_psnr") for h in a.history] == [h.get("val_psnr") for h in b.history]
    for k, v in a.checkpoint.state_dict.items():
        assert torch.equal(v, b.checkpoint.state_dict[k]), k
    assert losses(a) != losses(c)
    assert not all(torch.equal(v, c.checkpoint.state_dict[k]) for k, v in a.checkpoint.state_dict.items())


# ----------------------------------------------------------------------------- learning


def test_validation_psnr_improves_by_a_real_margin(trained):
    ph, reg = data()
    pair = make_pair(ph.lres, ph.hres, ph.lres_voxel_um, reg.offset_um, reg.scale, halo_z=2)
    vi, vt = pair.validation()
    identity = psnr(vi[2:-2], vt, data_range=1.0)  # what the untrained (identity) network scores
    vals = [h["val_psnr"] for h in trained.history if "val_psnr" in h]
    assert len(vals) == 5
    assert max(vals) > identity + 1.5, (identity, vals)
    assert vals[-1] > vals[0] + 0.5, vals
    # The result is the best validated model, recorded as such.
    ckpt = trained.checkpoint
    assert ckpt.val_psnr == pytest.approx(max(vals))
    best_it = [h["iteration"] for h in trained.history if h.get("val_psnr") == max(vals)][0]
    assert ckpt.iteration == best_it
    assert len(ckpt.history) == 150 and [h["iteration"] for h in ckpt.history] == list(range(1, 151))
    # Its weights give that score again.
    pred = predict_block(trained.model, vi, torch.device("cpu"))
    assert psnr(pred, vt, data_range=1.0) == pytest.approx(ckpt.val_psnr, abs=1e-3)


def test_checkpoint_records_what_prediction_needs(trained):
    ph, reg = data()
    ckpt = trained.checkpoint
    assert ckpt.architecture == "unet25d"
    assert ckpt.config["width"] == 8 and ckpt.config["slices"] == 5  # defaults filled in
    assert ckpt.lres_voxel_um == ph.lres_voxel_um and ckpt.hres_voxel_um == tuple(reg.scale)
    assert ckpt.phase_origin_um == pytest.approx(reg.offset_um)
    assert ckpt.train_config["iterations"] == 150 and ckpt.train_config["model_config"] == ckpt.config
    assert ckpt.extra["roi"] == [[0, n] for n in ph.hres.shape]
    assert ckpt.optimizer_state is not None
    assert trained.device.startswith("cpu")
    assert trained.path is None and not trained.stopped
    assert not trained.model.training


def test_progress_records():
    ph, reg = data()
    gen = iter_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=6, val_every=3))
    records = list(gen)
    assert all(isinstance(r, Progress) and isinstance(r.data, TrainStep) for r in records)
    assert [r.step for r in records] == list(range(1, 7)) and {r.total for r in records} == {6}
    assert [r.data.iteration for r in records] == list(range(1, 7))
    validated = [r.step for r in records if r.data.val_psnr is not None]
    assert validated == [3, 6]
    for rec in records:
        r = rec.data
        assert math.isfinite(r.loss) and r.loss > 0 and r.elapsed_s >= 0 and rec.remaining_s >= 0
        assert f"iteration {rec.step}/6" in rec.message
        if r.val_psnr is not None:
            assert r.preview.shape == ph.hres.shape[1:] and r.preview.dtype == np.float32
            assert isinstance(r.best, Checkpoint) and r.best_psnr >= r.val_psnr
            assert 0 < r.val_ssim <= 1
        else:
            assert r.preview is None
    assert records[0].data.best is None
    # Cosine schedule: the learning rate decays from the configured value.
    lrs = [r.data.lr for r in records]
    assert lrs[0] == pytest.approx(3e-3) and all(a > b for a, b in zip(lrs, lrs[1:]))


def test_other_losses_and_models_train():
    ph, reg = data()
    r = train(config(iterations=4, val_every=2, loss="l1+msssim"))
    assert all(0 < x < 1.5 for x in losses(r))
    r = train(config(iterations=3, loss="mse", schedule="constant"))
    assert all(math.isfinite(x) for x in losses(r))
    assert {h["lr"] for h in r.history} == {3e-3}
    r = train(config(model="srcnn", model_config={"n1": 8, "n2": 4}, iterations=3))
    assert r.checkpoint.architecture == "srcnn"
    r = train(config(model="srcnn3d", model_config={"n1": 4, "n2": 4, "f1": 5, "f3": 3}, iterations=3, patch_depth=8))
    assert r.checkpoint.architecture == "srcnn3d" and math.isfinite(r.checkpoint.val_psnr)


def test_2d_training():
    ph = make_phantom(96, 4, ndim=2, seed=0)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    r = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=4, val_every=2))
    assert r.checkpoint.hres_voxel_um == tuple(reg.scale) and len(r.checkpoint.lres_voxel_um) == 2
    assert math.isfinite(r.checkpoint.val_psnr)
    assert all(math.isfinite(h["val_ssim"]) for h in r.history if "val_ssim" in h)


def test_training_on_a_small_hres_with_the_default_validation_share():
    # HRES 38 slices: a validation block of 8, too thin for a 3D SSIM (11 voxels a side).
    ph = make_phantom(32, 3, seed=1)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    r = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=2, val_every=1))
    assert math.isfinite(r.checkpoint.val_psnr)
    assert all(0 < h["val_ssim"] <= 1 for h in r.history)


# ----------------------------------------------------------------------------- multi-scale outputs


def test_multiscale_training_trains_the_coarse_heads_only_while_asked_and_predicts_normally(tmp_path):
    ms = {"width": 8, "multiscale": 2}
    out = tmp_path / "ms.pt"
    r = train(config(model_config=ms, iterations=8, val_every=4), out_path=out)
    # The coarse losses count for the first half (multiscale_until 0.5); the
    # reported loss stays the full-resolution one, the optimised one is recorded.
    assert [("loss_total" in h) for h in r.history] == [True] * 4 + [False] * 4
    assert all(h["loss_total"] > h["loss"] for h in r.history[:4])
    heads = {k: v for k, v in r.checkpoint.state_dict.items() if k.startswith("coarse_heads.")}
    assert len(heads) == 4 and all(v.abs().max() > 0 for v in heads.values())  # trained from zero
    # The checkpoint loads and predicts like any model (eval mode: one output).
    ckpt = load_checkpoint(out)
    assert ckpt.config["multiscale"] == 2 and ckpt.train_config["multiscale_until"] == 0.5
    ph, _ = data()
    pred = run_predict(ckpt, ph.lres, ph.lres_voxel_um, roi=(slice(20, 23), slice(20, 30), slice(20, 30)),
                       device="cpu")
    assert pred.data.shape == pred.grid.shape and np.isfinite(pred.data).all()
    # Without the coarse losses (until 0) nothing reaches the heads: they stay zero,
    # and the full-resolution training is exactly that of the plain U-Net.
    r0 = train(config(model_config=ms, iterations=4, multiscale_until=0.0))
    assert all(v.abs().max() == 0 for k, v in r0.checkpoint.state_dict.items() if k.startswith("coarse_heads."))
    plain = train(config(model_config={"width": 8}, iterations=4))
    assert losses(r0) == losses(plain) and all("loss_total" not in h for h in plain.history)
    for k, v in plain.checkpoint.state_dict.items():
        assert torch.equal(r0.checkpoint.state_dict[k], v), k


def test_multiscale_with_an_ssim_loss_uses_its_pixel_term_at_the_coarse_scales():
    # Patches of 32: the 1/4 scale (8 x 8) is smaller than an SSIM window.
    r = train(config(model_config={"width": 8, "multiscale": 2, "out": "stack", "slices": 3}, iterations=2,
                     loss="mse+ssim", multiscale_until=1.0))
    assert all(math.isfinite(h["loss_total"]) and h["loss_total"] > h["loss"] for h in r.history)


def test_multiscale_loss_compares_each_coarse_output_with_the_block_averaged_target():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 1, 16, 16, generator=g)
    exact = [F.avg_pool2d(y, 2), F.avg_pool2d(y, 4)]
    cfg = TrainConfig(multiscale_weight=0.5, multiscale_until=0.5)
    assert float(_multiscale_loss(exact, y, cfg, 1, 10)) == 0.0
    off = [exact[0] + 0.1, exact[1] - 0.2]
    assert float(_multiscale_loss(off, y, cfg, 5, 10)) == pytest.approx(0.5 * (0.1 + 0.2), rel=1e-5)
    assert float(_multiscale_loss(off, y, dataclasses.replace(cfg, loss="mse"), 5, 10)) == pytest.approx(
        0.5 * (0.01 + 0.04), rel=1e-5
    )
    assert _multiscale_loss(off[:1], y, cfg, 6, 10) is None  # dropped after half the iterations
    assert _multiscale_loss(off[:1], y, dataclasses.replace(cfg, multiscale_weight=0.0), 1, 10) is None
    assert _multiscale_loss(None, y, cfg, 1, 10) is None  # a network without coarse outputs


# ----------------------------------------------------------------------------- stopping


def test_stopping_before_a_validation_keeps_a_usable_model(tmp_path):
    ph, reg = data()
    out = tmp_path / "model.pt"
    gen = iter_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=50, val_every=100), out_path=out)
    for _ in range(3):
        next(gen)
    assert not out.exists()
    gen.close()
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary files left
    ckpt = load_checkpoint(out)
    assert ckpt.iteration == 3 and ckpt.val_psnr is None
    assert len(ckpt.history) == 3
    result = run_predict(
        ckpt, ph.lres, ph.lres_voxel_um, roi=(slice(20, 23), slice(20, 30), slice(20, 30)), device="cpu"
    )
    assert result.data.shape == result.grid.shape and np.isfinite(result.data).all()


def test_stopping_after_validations_keeps_the_best(tmp_path):
    ph, reg = data()
    out = tmp_path / "model.pt"
    gen = iter_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=50, val_every=2), out_path=out)
    records = [next(gen) for _ in range(5)]
    gen.close()
    assert os.listdir(tmp_path) == ["model.pt"]
    ckpt = load_checkpoint(out)
    best = records[-1].data.best
    assert ckpt.iteration == best.iteration in (2, 4)
    assert ckpt.val_psnr == pytest.approx(records[-1].data.best_psnr)
    for k, v in best.state_dict.items():
        assert torch.equal(ckpt.state_dict[k], v)


def test_finished_training_writes_the_best_model_with_the_whole_history(tmp_path):
    out = tmp_path / "m.pt"
    r = train(config(iterations=6, val_every=3), out_path=out)
    assert r.path == out and os.listdir(tmp_path) == ["m.pt"]
    ckpt = load_checkpoint(out)
    assert len(ckpt.history) == 6 and ckpt.iteration == r.checkpoint.iteration
    with pytest.raises(FileFormatError, match="already exists"):
        train(config(iterations=6), out_path=out)
    r2 = train(config(iterations=3, seed=4), out_path=out, overwrite=True)
    assert load_checkpoint(out).iteration == r2.checkpoint.iteration


# ----------------------------------------------------------------------------- resuming


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "first.pt"
    result = train(config(iterations=10, val_every=5), out_path=path)
    return result, path


@pytest.mark.parametrize("from_path", [False, True])
def test_resume_continues_the_iteration_count_and_the_history(first_run, from_path):
    first, path = first_run
    start = first.checkpoint
    assert start.iteration == 10 == len(start.history)  # the best model is the last one
    r = train(config(iterations=6, val_every=3, seed=3), resume=path if from_path else start)
    ckpt = r.checkpoint
    assert len(r.history) == len(start.history) + 6 == len(ckpt.history)
    assert r.history[: len(start.history)] == start.history
    assert [h["iteration"] for h in r.history[-6:]] == list(range(start.iteration + 1, start.iteration + 7))
    assert start.iteration < ckpt.iteration <= start.iteration + 6
    # The weights were trained further, with the normalisation they started with.
    assert ckpt.norm_in == start.norm_in and ckpt.norm_out == start.norm_out
    assert ckpt.config == start.config
    assert not all(torch.equal(v, start.state_dict[k]) for k, v in ckpt.state_dict.items())


def test_resume_from_an_early_best_keeps_iterations_increasing(first_run):
    # A run of 10 iterations whose best model came at iteration 5: its checkpoint has
    # iteration 5 but the history of all 10 (what iter_train writes in that case).
    first, _ = first_run
    early = dataclasses.replace(first.checkpoint, iteration=5)
    assert len(early.history) == 10
    r = train(config(iterations=4, val_every=2), resume=early)
    # The records of the first run after its best model belong to an abandoned branch.
    assert [h["iteration"] for h in r.history] == list(range(1, 10))
    assert r.history[:5] == early.history[:5]
    assert r.checkpoint.iteration in (7, 9)


def test_resume_with_another_architecture(first_run):
    first, path = first_run
    with pytest.raises(ResolveError, match="unet25d"):
        train(config(model="srcnn", model_config={}, iterations=2), resume=first.checkpoint)
    with pytest.raises(FileFormatError, match="'unet25d' model, not 'srcnn'"):
        train(config(model="srcnn", model_config={}, iterations=2), resume=path)


# ----------------------------------------------------------------------------- errors


def test_unreliable_registration_is_refused():
    ph, reg = data()
    bad = dataclasses.replace(reg, status="unreliable", message="peak on the search border")
    with pytest.raises(ResolveError, match="unreliable.*peak on the search border"):
        run_train(ph.lres, ph.hres, ph.lres_voxel_um, bad, config(iterations=2))
    with pytest.raises(ResolveError, match="unreliable"):
        run_train(ph.lres, ph.hres, ph.lres_voxel_um, bad.to_dict(), config(iterations=2))
    # The record of a good registration works as well as the object.
    r = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg.to_dict(), config(iterations=1))
    assert len(r.history) == 1
    with pytest.raises(InputError, match="registration must be"):
        run_train(ph.lres, ph.hres, ph.lres_voxel_um, (reg.offset_um, reg.scale), config(iterations=1))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"loss": "l2"}, "Unknown loss"),
        ({"iterations": 0}, "iterations must be a whole number of at least 1"),
        ({"stage_weight": -1.0}, "stage_weight must be 0 or more"),
        ({"val_fraction": 0.7}, r"val_fraction must be in \(0, 0.5\]"),
        ({"batch_size": 0}, "batch_size"),
        ({"patch_size": -1}, "patch_size"),
        ({"model": "unet4d"}, "Unknown model"),
        ({"model_config": {"colour": 3}}, "no setting colour"),
        ({"model_config": {"slices": 4}}, "odd"),
        ({"schedule": "linear"}, "Unknown schedule"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"msssim_weight": 2.0, "loss": "l1+msssim"}, "msssim_weight"),
        ({"multiscale_until": 1.5}, "multiscale_until"),
        ({"multiscale_weight": -1.0}, "multiscale_weight"),
        ({"model_config": {"multiscale": 3}}, "multiscale must be between 0 and depth"),
    ],
)
def test_bad_settings_raise_input_error(change, match):
    with pytest.raises(InputError, match=match):
        train(config(**change))


def test_nan_in_the_lres_is_refused():
    ph, reg = data()
    lres = ph.lres.copy()
    lres[5, 6, 7] = np.nan
    with pytest.raises(InputError, match="NaN"):
        run_train(lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=2))


def test_existing_output_is_refused_before_training(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"precious")
    ph, reg = data()
    with pytest.raises(FileFormatError, match="already exists"):
        iter_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=2), out_path=out)  # planned: no job
    assert out.read_bytes() == b"precious"
    with pytest.raises(FileFormatError, match="does not exist"):
        train(config(iterations=2), out_path=tmp_path / "missing" / "model.pt")


def test_an_output_under_a_regular_file_is_refused_by_the_plan(tmp_path):
    """As root permission bits stop nothing: a path under a regular file cannot be written."""
    (tmp_path / "file.txt").write_text("not a folder")
    ph, reg = data()
    with pytest.raises(FileFormatError, match="file.txt is a file, not a folder") as err:
        plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(), out_path=tmp_path / "file.txt" / "m.pt")
    assert err.value.parameters == ("out_path",)
    with pytest.raises(FileFormatError, match="folder, not a file"):
        plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(), out_path=tmp_path, overwrite=True)
    with pytest.raises(FileFormatError, match="one of the inputs"):
        plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(), out_path=tmp_path / "file.txt",
                   overwrite=True, inputs=[tmp_path / "file.txt"])
    assert (tmp_path / "file.txt").read_text() == "not a folder"


def test_the_model_to_resume_is_an_input_and_never_the_output(first_run, tmp_path):
    _, path = first_run
    before = path.read_bytes()
    ph, reg = data()
    with pytest.raises(FileFormatError, match="one of the inputs"):
        plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(), resume=path, out_path=path, overwrite=True)
    assert path.read_bytes() == before


def test_a_plan_runs_the_same_twice_and_takes_no_other_arguments():
    ph, reg = data()
    plan = plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=3, val_every=3))
    assert isinstance(plan, TrainPlan) and not plan.synthetic and plan.config.model_config["width"] == 8
    assert losses(run_train(plan)) == losses(run_train(plan))
    with pytest.raises(InputError, match="the plan alone"):
        iter_train(plan, config())
    syn = plan_train_synthetic(ph.hres, ph.hres_voxel_um, {"ratio": 3, "poisson": None}, config(iterations=2))
    assert syn.synthetic and losses(run_train(syn)) == losses(run_train(syn))
    # The LRES voxel size instead of the ratio: the same plan.
    by_size = plan_train_synthetic(ph.hres, ph.hres_voxel_um, {"poisson": None}, config(iterations=2),
                                   lres_voxel_um=3.0)
    assert by_size.lres_voxel_um == syn.lres_voxel_um == (3.0, 3.0, 3.0)
    assert by_size.extra["degradation"]["ratio"] == [3.0, 3.0, 3.0] and syn.extra["degradation"]["ratio"] == 3.0
    assert losses(run_train(by_size)) == losses(run_train(syn))


def test_interrupting_before_the_first_validation_saves_the_model_so_far(tmp_path):
    """Ctrl-C arrives inside an iteration (a KeyboardInterrupt raised in the job), not at a yield."""
    ph, reg = data()
    out = tmp_path / "model.pt"
    plan = plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=50, val_every=100), out_path=out)
    gen = iter_train(plan)
    for _ in range(2):
        next(gen)
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt)
    assert os.listdir(tmp_path) == ["model.pt"]  # complete, and no temporary file left
    ckpt = load_checkpoint(out)
    assert ckpt.iteration == 2 and ckpt.val_psnr is None and len(ckpt.history) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_cuda_is_an_input_error():
    with pytest.raises(InputError, match="CUDA"):
        train(config(iterations=2, device="cuda"))
    with pytest.raises(InputError, match="Unknown device"):
        train(config(iterations=2, device="tpu9"))


# ----------------------------------------------------------------------------- stopping by itself


def test_training_stops_by_itself_when_the_validation_stops_improving(tmp_path):
    # A learning rate this small cannot move the validation PSNR by 0.02 dB: the first validation
    # is the best, and three more without improvement end the run at iteration 4 * 2.
    ph, reg = data()
    plan = plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg,
                      config(iterations=60, val_every=2, patience=3, learning_rate=1e-12), out_path=tmp_path / "m.pt")
    records = list(iter_train(plan))
    assert [r.step for r in records] == list(range(1, 9))
    last = records[-1]
    assert last.message.startswith("Stopped by itself at iteration 8 of 60") and last.remaining_s == 0
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.extra["early_stop"]["iteration"] == 8 and ckpt.extra["early_stop"]["planned"] == 60
    assert len(ckpt.history) == 8


def test_patience_zero_runs_every_iteration_and_the_default_stops():
    result = train(config(iterations=12, val_every=2, patience=0, learning_rate=1e-12))
    assert len(result.history) == 12 and result.early_stop is None
    assert "early_stop" not in result.checkpoint.extra
    stopped = train(config(iterations=40, val_every=2, learning_rate=1e-12))  # the default patience
    assert stopped.early_stop and len(stopped.history) == 2 * (TrainConfig().patience + 1)


# ----------------------------------------------------------------------------- the default network


def test_the_default_network_trains_on_the_lres_grid_and_beats_cubic_on_validation():
    ph, reg = data()
    # Measured: +1.8 dB over cubic after 80 iterations (34 s on 2 cores).
    cfg = TrainConfig(model_config={"width": 16, "blocks": 2, "hidden": 8}, iterations=80, learning_rate=2e-3,
                      val_every=20, device="cpu", seed=0, patience=0)
    assert cfg.model == "lres3d"
    result = train(cfg)
    pair = make_pair(ph.lres, ph.hres, ph.lres_voxel_um, reg.offset_um, reg.scale, halo_z=0)
    cubic, target = pair.validation()  # the pre-upsampled (cubic) LRES over the validation block
    identity = psnr(cubic, target, data_range=1.0)
    assert result.checkpoint.architecture == "lres3d" and result.checkpoint.val_psnr > identity + 1.0, (
        identity, result.checkpoint.val_psnr)


# ----------------------------------------------------------------------------- the quality bar


@pytest.mark.slow
def test_model_beats_cubic_interpolation_away_from_the_hres():
    """Train the default network, upscale an LRES region the HRES never saw, and
    compare with the noiseless truth on exactly the same voxels."""
    ph, reg = data()
    cfg = config(model_config={"width": 16}, iterations=200)
    result = train(cfg)
    # HRES occupies fine z 35..91 (LRES z 11..30): LRES z 2..10 is disjoint from it; y, x 14..34
    # is inside the cylinder (radius 21.6 LRES voxels about 23.5).
    assert ph.hres_start[0] // 3 > 10
    roi = (slice(2, 10), slice(14, 34), slice(14, 34))
    pred = run_predict(result.checkpoint, ph.lres, ph.lres_voxel_um, roi=roi, device="cpu")
    grid = pred.grid
    assert grid.voxel_um == tuple(reg.scale)
    # Truth voxel k has its centre at (k - 1) um (ratio 3, 1 um voxels).
    start = [round(o / v) + 1 for o, v in zip(grid.origin_um, grid.voxel_um)]
    np.testing.assert_allclose(np.array(start) - 1, np.array(grid.origin_um), atol=0.1)
    truth = ph.truth[tuple(slice(k, k + n) for k, n in zip(start, grid.shape))]
    assert truth.shape == grid.shape == pred.data.shape
    cubic = interpolate(ph.lres, ph.lres_voxel_um, grid, "cubic")
    p_model, p_cubic = psnr(pred.data, truth, data_range=1.0), psnr(cubic, truth, data_range=1.0)
    s_model, s_cubic = ssim(pred.data, truth, data_range=1.0), ssim(cubic, truth, data_range=1.0)
    print(f"model {p_model:.2f} dB SSIM {s_model:.3f}; cubic {p_cubic:.2f} dB SSIM {s_cubic:.3f}")
    assert p_model >= p_cubic + 2.0
    assert s_model >= s_cubic + 0.1


@pytest.mark.slow
def test_the_default_model_beats_cubic_and_richardson_lucy_where_it_never_saw_the_hres():
    """The quality bar of the default network and settings (only fewer iterations): on an LRES region the HRES
    never covered, against the noiseless truth, it must beat Richardson-Lucy (PSF fitted on the pair, the
    paper's strongest classical baseline) by 1.5 dB PSNR and 0.05 SSIM, and cubic by more."""
    from napari_resolve.geometry.grid import Grid
    from napari_resolve.measure.baselines import estimate_psf_sigma, run_baseline

    ph, reg = data()
    result = train(TrainConfig(iterations=300, device="cpu", seed=0))
    assert result.checkpoint.architecture == "lres3d"
    roi = (slice(2, 10), slice(14, 34), slice(14, 34))  # away from the HRES (see the test above)
    pred = run_predict(result.checkpoint, ph.lres, ph.lres_voxel_um, roi=roi, device="cpu")
    grid = pred.grid
    start = [round(o / v) + 1 for o, v in zip(grid.origin_um, grid.voxel_um)]
    truth = ph.truth[tuple(slice(k, k + n) for k, n in zip(start, grid.shape))]
    psf = estimate_psf_sigma(interpolate(ph.lres, ph.lres_voxel_um, Grid(ph.hres.shape, reg.scale, reg.offset_um)),
                             ph.hres, reg.scale)
    rl = run_baseline(ph.lres, ph.lres_voxel_um, grid, "rl", psf_sigma_um=psf.sigma_um).data
    cubic = interpolate(ph.lres, ph.lres_voxel_um, grid, "cubic")
    scores = {name: (psnr(img, truth, data_range=1.0), ssim(img, truth, data_range=1.0))
              for name, img in (("model", pred.data), ("rl", rl), ("cubic", cubic))}
    print(scores)
    (p_m, s_m), (p_rl, s_rl), (p_c, s_c) = scores["model"], scores["rl"], scores["cubic"]
    assert p_m >= p_rl + 1.5 and s_m >= s_rl + 0.05
    assert p_m >= p_c + 3.0 and s_m >= s_c + 0.1


# ----------------------------------------------------------------------------- synthetic pairs (no LRES scan)


def synthetic(cfg=None, degradation=None, **kw):
    from napari_resolve.learn.training import run_train_synthetic

    ph, _ = data()
    return run_train_synthetic(ph.hres, ph.hres_voxel_um, degradation, cfg or config(), **kw)


@pytest.mark.slow
def test_synthetic_training_beats_cubic_on_the_real_lres():
    """Train on synthetic pairs from the HRES alone, then upscale the *real* LRES where the HRES never was:
    measured +3.3 dB PSNR and +0.19 SSIM over cubic (150 iterations; seeds 0 and 1 give +3.3 and +3.7 dB)."""
    ph, _ = data()
    result = synthetic(config(model_config={"width": 16}, iterations=150, learning_rate=2e-3))
    roi = (slice(2, 10), slice(14, 34), slice(14, 34))  # away from the HRES (see the test above)
    pred = run_predict(result.checkpoint, ph.lres, ph.lres_voxel_um, roi=roi, device="cpu")
    grid = pred.grid
    # The declared phase is that of binning: output voxels flush inside the LRES voxels, i.e. truth
    # voxels exactly (truth voxel k at (k - 1) um).
    assert grid.origin_um == pytest.approx((5.0, 41.0, 41.0))
    start = [round(o / v) + 1 for o, v in zip(grid.origin_um, grid.voxel_um)]
    truth = ph.truth[tuple(slice(k, k + n) for k, n in zip(start, grid.shape))]
    cubic = interpolate(ph.lres, ph.lres_voxel_um, grid, "cubic")
    p_model, p_cubic = psnr(pred.data, truth, data_range=1.0), psnr(cubic, truth, data_range=1.0)
    s_model, s_cubic = ssim(pred.data, truth, data_range=1.0), ssim(cubic, truth, data_range=1.0)
    print(f"synthetic model {p_model:.2f} dB SSIM {s_model:.3f}; cubic {p_cubic:.2f} dB SSIM {s_cubic:.3f}")
    assert p_model >= p_cubic + 2.0
    assert s_model >= s_cubic + 0.1


def test_synthetic_checkpoint_records_the_degradation_and_the_lres_it_is_for(tmp_path):
    from napari_resolve.learn.synthetic import Degradation

    ph, _ = data()
    deg = Degradation(ratio=3, blur=(0.2, 0.8), gaussian_noise=(0.01, 0.05), poisson=None, speckle=(0, 0.02), seed=4)
    out = tmp_path / "syn.pt"
    r = synthetic(config(iterations=4, val_every=2), deg, out_path=out, extra={"hres": "hres.tif"})
    ckpt = load_checkpoint(out)
    assert ckpt.extra["training_data"] == "synthetic" and ckpt.extra["hres"] == "hres.tif"
    assert ckpt.extra["degradation"] == deg.to_dict() and Degradation.from_dict(ckpt.extra["degradation"]) == deg
    assert ckpt.lres_voxel_um == (3.0, 3.0, 3.0) and ckpt.hres_voxel_um == (1.0, 1.0, 1.0)
    assert ckpt.phase_origin_um == pytest.approx((-1.0, -1.0, -1.0))  # (hres - lres) / 2: binning phase
    assert ckpt.registration == {"offset_um": [-1.0, -1.0, -1.0], "scale": [1.0, 1.0, 1.0],
                                 "training_data": "synthetic"}  # the grid phase, not a made-up registration
    assert ckpt.extra["roi"] == [[0, n] for n in ph.hres.shape]
    assert len(r.history) == 4 and [h.get("val_psnr") is not None for h in r.history] == [False, True] * 2
    # A dict record works too, and the same seeds give the same run.
    again = synthetic(config(iterations=4, val_every=2), deg.to_dict())
    assert losses(again) == losses(r)
    other = synthetic(config(iterations=4, val_every=2), Degradation(**{**deg.to_dict(), "seed": 5}))
    assert losses(other) != losses(r)
    # Resuming continues the count; a model for another ratio is refused.
    more = synthetic(config(iterations=2, val_every=1), deg, resume=out)
    assert more.checkpoint.iteration > ckpt.iteration
    with pytest.raises(InputError, match="same ratio"):
        synthetic(config(iterations=2), Degradation(ratio=2), resume=out)


def test_synthetic_training_of_a_2d_section():
    from napari_resolve.learn.synthetic import Degradation

    ph = make_phantom(96, 4, ndim=2, seed=0)
    from napari_resolve.learn.training import run_train_synthetic

    r = run_train_synthetic(ph.hres, 1.0, Degradation(ratio=4), config(model="srcnn", model_config={}, iterations=3))
    ckpt = r.checkpoint
    assert ckpt.lres_voxel_um == (4.0, 4.0) and ckpt.phase_origin_um == pytest.approx((-1.5, -1.5))
    pred = run_predict(ckpt, ph.lres, ph.lres_voxel_um, roi=(slice(3, 9), slice(4, 12)), device="cpu")
    assert pred.data.shape == (24, 32) and pred.grid.origin_um == pytest.approx((10.5, 14.5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"degradation": {"ratio": 0.5}}, "at least 1"),
        ({"degradation": {"blur": [-1, 1]}}, "cannot be negative"),
        ({"degradation": {"ratio": 30}}, "at ratio 30 that is 1.9 LRES voxels"),
        ({"degradation": {"noise": [0, 1]}}, "Unknown degradation parameter"),
        ({"degradation": "strong"}, "Degradation"),
        ({"roi": (slice(0, 5), slice(0, 57), slice(0, 57))}, "training ROI is 5 voxels along z: at ratio 3"),
    ],
)
def test_bad_synthetic_requests_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        synthetic(config(iterations=1), **kwargs)


# ----------------------------------------------------------------------------- the command line


def test_train_refuses_an_unwritable_output_before_any_training(foam_dir, foam_registration, tmp_path, capsys):
    """An output under a regular file, or the resumed model as the output: status 2, at once, nothing touched."""
    import time

    from napari_resolve.cli import main

    (tmp_path / "file.txt").write_text("not a folder")
    pair = [str(foam_dir / "lres.tif"), str(foam_dir / "hres.tif"), "--registration", str(foam_registration)]
    fast = ["--iterations", "100000", "--device", "cpu"]  # would run for minutes if it started
    t0 = time.perf_counter()
    assert main(["train", *pair, *fast, "-o", str(tmp_path / "file.txt" / "m.pt")]) == 2
    assert time.perf_counter() - t0 < 5
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "--output" in err and "out_path" not in err
    model = tmp_path / "m.pt"
    model.write_bytes(b"a model")
    assert main(["train", *pair, *fast, "--resume", str(model), "-o", str(model), "--overwrite"]) == 2
    assert "one of the inputs" in capsys.readouterr().err
    assert model.read_bytes() == b"a model" and (tmp_path / "file.txt").read_text() == "not a folder"


def test_the_command_line_takes_its_defaults_and_choices_from_the_config():
    from napari_resolve.cli import build_parser
    from napari_resolve.learn.config import DEFAULTS, LOSSES, TASKS
    from napari_resolve.models import model_names

    args = build_parser().parse_args(["train", "-o", "m.pt"])
    for name in ("iterations", "batch_size", "patch_size", "learning_rate", "loss", "ssim_weight", "val_fraction",
                 "device", "seed", "task", "stage_weight"):
        assert getattr(args, name) == getattr(DEFAULTS, name), name
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    actions = {a.dest: a for a in sub.choices["train"]._actions}
    assert tuple(actions["loss"].choices) == LOSSES and tuple(actions["task"].choices) == tuple(TASKS)
    assert list(actions["model"].choices) == model_names()
    assert "multioutput" in actions["model"].choices and "unet4d" not in actions["model"].choices


def test_ctrl_c_before_the_first_validation_keeps_the_model_so_far_and_says_so(tmp_path, capsys):
    from napari_resolve.cli.train import _drive_training

    ph, reg = data()
    out = tmp_path / "model.pt"
    plan = plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(iterations=50, val_every=100), out_path=out)
    job = iter_train(plan)

    def interrupted():  # Ctrl-C arrives during the third iteration
        yield next(job)
        yield next(job)
        job.throw(KeyboardInterrupt)

    result = _drive_training(interrupted(), plan)
    assert result["stopped"] and not result["validated"] and result["best_iteration"] == 2
    assert result["iterations_run"] == 2 and result["val_psnr_db"] is None
    assert "not validated" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["model.pt"] and load_checkpoint(out).iteration == 2


def test_a_file_size_limit_below_the_model_is_refused_before_training(tmp_path, monkeypatch):
    """``ulimit -f``: torch would fail part way through the model file, after the whole training."""
    import napari_resolve.outputs as outputs

    ph, reg = data()
    monkeypatch.setattr(outputs, "file_size_limit", lambda: 100 * 1024)
    limit = r"m.pt \(out_path\) will be about 0.4 MiB.*ulimit -f\) is 0.1 MiB"
    with pytest.raises(FileFormatError, match=limit) as err:
        plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(), out_path=tmp_path / "m.pt")
    assert err.value.parameters == ("out_path",) and os.listdir(tmp_path) == []
    monkeypatch.setattr(outputs, "file_size_limit", lambda: 2**20)  # room for this model: planned
    plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(), out_path=tmp_path / "m.pt")


def test_train_under_a_real_file_size_limit_exits_2_before_training(foam_dir, foam_registration, tmp_path):
    """The command in a process with RLIMIT_FSIZE set (as ``ulimit -f 100`` does): one line, status 2, at once."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    entry = "import sys; from napari_resolve.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", entry, "train", str(foam_dir / "lres.tif"), str(foam_dir / "hres.tif"),
           "--registration", str(foam_registration), "--iterations", "100000", "--device", "cpu",
           "-o", str(tmp_path / "m.pt")]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "file-size limit (ulimit -f) is 0.1 MiB" in proc.stderr and "--output" in proc.stderr
    assert "Traceback" not in proc.stderr and os.listdir(tmp_path) == []


def test_a_model_write_that_fails_part_way_is_a_clear_error(tiny_model, tmp_path):
    """torch reports a write cut short by the file-size limit as a RuntimeError ('unexpected pos');
    save_checkpoint says the model could not be written and why, and leaves nothing behind."""
    import subprocess
    import sys

    code = (
        "import resource, sys\n"
        "from napari_resolve.errors import FileFormatError\n"
        "from napari_resolve.models.checkpoint import load_checkpoint, save_checkpoint\n"
        "ckpt = load_checkpoint(sys.argv[1])\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "try:\n    save_checkpoint(ckpt, sys.argv[2])\n"
        "except FileFormatError as exc:\n    print(exc)\n"
    )
    half = os.path.getsize(tiny_model) // 2
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_model), str(tmp_path / "m.pt"), str(half)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith(f"The model could not be written to {tmp_path / 'm.pt'}: the write stopped part way")
    assert "file-size limit (ulimit -f" in proc.stdout and "out_path" in proc.stdout
    assert os.listdir(tmp_path) == []


def test_a_failed_model_write_names_the_system_reason(tiny_model, tmp_path, monkeypatch):
    import torch as torch_module

    from napari_resolve.models.checkpoint import save_checkpoint

    ckpt = load_checkpoint(tiny_model)

    def refuse(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:747] . open file failed with strerror: "
                           "No space left on device")

    monkeypatch.setattr(torch_module, "save", refuse)
    with pytest.raises(FileFormatError, match="could not be written to .*: No space left on device. Nothing"):
        save_checkpoint(ckpt, tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


def test_degradation_messages_name_the_command_line_flag(foam_dir, tmp_path, capsys):
    from napari_resolve.cli import main

    argv = ["train", "--synthetic", str(foam_dir / "hres.tif"), "--ratio", "3", "-o", str(tmp_path / "m.pt")]
    assert main([*argv, "--blur=-1:2"]) == 2
    assert "cannot be negative" in (err := capsys.readouterr().err) and "Change --blur." in err
    assert main([*argv, "--stage-weight=-1"]) == 2
    assert "--stage-weight must be 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_the_plan_fits_the_lres_imaging_model_of_a_real_pair_once():
    ph, reg = data()
    small = {"model": "lres3d", "model_config": {"width": 4, "blocks": 1, "hidden": 4}, "patch_depth": 12,
             "patch_size": 12}
    plan = plan_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(**small))
    assert plan.imaging.sigma_um > 1.0  # the phantom's LRES blur, fitted for the calibration at the end


def test_a_failing_calibration_warns_and_keeps_the_trained_model(monkeypatch, tmp_path):
    from napari_resolve.errors import ResolveWarning

    def broken(*args, **kwargs):
        raise RuntimeError("calibration exploded")

    monkeypatch.setattr("napari_resolve.learn.calibrate.calibrate_model", broken)
    with pytest.warns(ResolveWarning, match="No error map for this model: calibration exploded"):
        result = train(config(iterations=4, val_every=2), out_path=tmp_path / "m.pt")
    assert "error_map" not in result.checkpoint.extra and (tmp_path / "m.pt").exists()
    assert result.checkpoint.history[-1]["iteration"] == 4
