"""pix2pix: a U-Net generator that alone predicts, a PatchGAN discriminator that trains beside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_resolve.errors import InputError
from napari_resolve.models import build_model


def test_the_generator_alone_predicts_and_is_what_counts():
    net = build_model("pix2pix", width=4, slices=3, disc_width=4).eval()
    x = torch.randn(2, 5, 32, 32)
    with torch.no_grad():
        out = net(x)
        np.testing.assert_array_equal(out.numpy(), net.generator(x).numpy())
    # An untrained generator is the identity (residual with a zero head): cubic interpolation.
    np.testing.assert_allclose(out.numpy(), x[:, 1:4].numpy(), atol=1e-6)
    assert (net.trim_z, net.size_multiple, net.receptive_radius) == (
        net.generator.trim_z, net.generator.size_multiple, net.generator.receptive_radius)
    generator = {id(p) for p in net.generator.parameters()}
    assert {id(p) for p in net.optimised_parameters()} == generator  # the discriminator has its own optimiser
    assert net.parameter_count() == net.generator.parameter_count() < sum(p.numel() for p in net.parameters())


def test_the_discriminator_scores_patches_of_each_output_slice_beside_its_condition():
    net = build_model("pix2pix", width=4, slices=3, disc_width=4)
    x, y = torch.randn(2, 5, 64, 48), torch.randn(2, 3, 64, 48)
    pairs = net.condition_pairs(x, y)
    assert pairs.shape == (6, 2, 64, 48)
    torch.testing.assert_close(pairs[4, 0], x[1, 2])  # batch 1, output slice 1: LRES slice 1 + trim
    torch.testing.assert_close(pairs[4, 1], y[1, 1])
    logits = net.discriminator(pairs)
    assert logits.shape[:2] == (6, 1) and 10 <= logits.shape[2] <= 16 and 7 <= logits.shape[3] <= 12


@pytest.mark.parametrize("cfg", [{"adv_weight": 0}, {"adv_weight": 2}, {"disc_width": 0}])
def test_invalid_settings(cfg):
    with pytest.raises(InputError, match="pix2pix"):
        build_model("pix2pix", **cfg)


def test_adversarial_training_steps_both_networks_and_records_their_losses():
    from napari_resolve.learn.inference import run_predict
    from napari_resolve.learn.training import TrainConfig, run_train
    from napari_resolve.phantom import make_phantom
    from napari_resolve.registration import register

    ph = make_phantom(32, 3, seed=1)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    cfg = TrainConfig(model="pix2pix", model_config={"width": 4, "slices": 3, "disc_width": 4}, iterations=12,
                      batch_size=2, patch_size=32, loss="l1", device="cpu", val_every=6, patience=0)
    torch.manual_seed(0)
    start = build_model("pix2pix", **cfg.model_config)
    res = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, cfg)
    last = res.history[-1]
    assert {"loss_adv", "loss_disc", "disc_accuracy", "loss_total"} <= set(last)
    assert 0 < last["loss_adv"] < 0.1 and 0 < last["loss_disc"] < 2 and 0 <= last["disc_accuracy"] <= 1
    assert last["loss_total"] == pytest.approx(last["loss"] + last["loss_adv"], rel=1e-5)
    trained = res.checkpoint.build()
    for part in ("generator", "discriminator"):  # both moved away from their (seeded) start
        before = torch.cat([p.flatten() for p in getattr(start, part).parameters()])
        after = torch.cat([p.flatten() for p in getattr(trained, part).parameters()])
        assert (after - before).abs().max() > 1e-3
    up = run_predict(res.checkpoint, ph.lres[:8, :8, :8], ph.lres_voxel_um, device="cpu")
    assert up.data.shape == (24, 24, 24) and np.isfinite(up.data).all()
