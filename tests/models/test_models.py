"""The model registry, the architectures' promises (shapes, receptive radius) and model files."""

from __future__ import annotations

import dataclasses
import os
from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from napari_resolve.errors import FileFormatError, InputError
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.models import (
    DEFAULT_MODEL,
    MODELS,
    ResolutionModel,
    build_model,
    model_names,
    model_options,
)
from napari_resolve.models.checkpoint import FORMAT, Checkpoint, load_checkpoint, save_checkpoint

SMALL = {
    "unet25d": {"width": 4},
    "srcnn": {"n1": 8, "n2": 4},
    "srcnn3d": {"n1": 4, "n2": 4, "f1": 5, "f3": 3},
    "edsr": {"blocks": 2, "features": 4},
    "wdsr": {"blocks": 2, "features": 4, "expansion": 2},
    "dfcan": {"groups": 1, "blocks": 2, "features": 4, "reduction": 2},
}
#: Slice-wise residual networks whose untrained output is the input.
RESIDUAL = ("edsr", "wdsr", "dfcan")


def randomise(model: nn.Module, seed: int = 0, std: float = 0.2) -> nn.Module:
    """Random weights everywhere (also the zero-initialised unet head)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def linearise(model: nn.Module) -> nn.Module:
    """Same geometry, linear network: activations removed, max- replaced by average pooling.

    Its input -> output support is exactly what the convolutions, poolings and
    upsamplings can reach, with no cancellation by a ReLU or an unselected max.
    """
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, (nn.LeakyReLU, nn.ReLU, nn.GELU)):
                setattr(module, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.AvgPool2d(2))
    return model


def without_attention(model: nn.Module) -> nn.Module:
    """DFCAN with its Fourier channel attention removed: the convolutions alone."""
    from napari_resolve.models.dfcan import FourierChannelAttention

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, FourierChannelAttention):
                setattr(module, name, nn.Identity())
    return model


# ----------------------------------------------------------------------------- registry


def test_every_registered_model_builds_and_describes_itself():
    assert DEFAULT_MODEL in model_names()
    assert set(model_names()) >= {"unet25d", "srcnn", "srcnn3d", "edsr", "wdsr", "dfcan"}
    for name in model_names():
        model = build_model(name)
        assert isinstance(model, ResolutionModel) and isinstance(model, MODELS[name])
        assert model.name == name
        assert model.config == model_options(name)  # the defaults, all recorded
        assert model.parameter_count() > 0
        assert name in model.describe() and "parameters" in model.describe()
        # The config rebuilds the same architecture.
        again = build_model(name, **model.config)
        assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(InputError) as info:
        build_model("unet3d")
    for name in model_names():
        assert name in str(info.value)
    with pytest.raises(InputError):
        model_options("nope")


def test_unknown_setting_lists_the_settings():
    with pytest.raises(InputError, match="no setting colour") as info:
        build_model("unet25d", colour=3)
    for key in model_options("unet25d"):
        assert key in str(info.value)


@pytest.mark.parametrize(
    "name, cfg",
    [
        ("unet25d", {"slices": 4}),
        ("unet25d", {"slices": 0}),
        ("unet25d", {"depth": 5}),
        ("unet25d", {"width": 0}),
        ("unet25d", {"out": "all"}),
        ("unet25d", {"multiscale": 3}),  # more coarse outputs than pooling levels (depth 2)
        ("unet25d", {"multiscale": -1}),
        ("srcnn", {"f1": 8}),
        ("srcnn3d", {"n1": 0}),
        ("edsr", {"blocks": 0}),
        ("edsr", {"res_scale": 0}),
        ("wdsr", {"expansion": 0}),
        ("wdsr", {"features": 0}),
        ("dfcan", {"reduction": 0}),
        ("dfcan", {"groups": 0}),
    ],
)
def test_invalid_settings_raise_input_error(name, cfg):
    with pytest.raises(InputError):
        build_model(name, **cfg)


# ----------------------------------------------------------------------------- shapes and identity


@pytest.mark.parametrize(
    "name, cfg",
    [
        ("unet25d", {"width": 4}),
        ("unet25d", {"width": 4, "slices": 3, "out": "stack"}),
        ("unet25d", {"width": 4, "slices": 1, "depth": 0}),
        ("unet25d", {"width": 4, "slices": 7, "depth": 3}),
        ("srcnn", SMALL["srcnn"]),
        ("srcnn3d", SMALL["srcnn3d"]),
        ("edsr", SMALL["edsr"]),
        ("wdsr", SMALL["wdsr"]),
        ("dfcan", SMALL["dfcan"]),
    ],
)
def test_output_shape_is_input_less_trim_z(name, cfg):
    model = build_model(name, **cfg).eval()
    z = 2 * model.trim_z + 3
    _, my, mx = model.size_multiple
    y, x = 3 * my, 5 * mx if mx > 1 else 13
    with torch.no_grad():
        out = model(torch.randn(2, z, y, x))
    assert out.shape == (2, z - 2 * model.trim_z, y, x)
    if name == "unet25d":
        h = cfg.get("slices", 5) // 2
        assert model.trim_z == (2 * h if cfg.get("out") == "stack" else h)
    else:
        assert model.trim_z == 0


def test_unet_needs_enough_slices():
    model = build_model("unet25d", width=4, slices=5)
    with pytest.raises(InputError, match="at least 5 slices"):
        model(torch.randn(1, 4, 8, 8))


@pytest.mark.parametrize("out", ["centre", "stack"])
def test_untrained_unet_is_exactly_the_identity_on_its_centre_slices(out):
    torch.manual_seed(0)
    model = build_model("unet25d", width=4, slices=5, out=out).eval()
    x = torch.randn(2, 12, 16, 24)
    t = model.trim_z
    with torch.no_grad():
        y = model(x)
    assert torch.equal(y, x[:, t : 12 - t])
    # Not a degenerate network: once the head is non-zero it is no longer the identity.
    randomise(model)
    with torch.no_grad():
        assert (model(x) - x[:, t : 12 - t]).abs().max() > 1e-2


def test_stack_output_averages_the_predictions_of_overlapping_stacks():
    torch.manual_seed(1)
    k, h = 3, 1
    model = randomise(build_model("unet25d", width=4, slices=k, depth=1, out="stack")).eval()
    z = 9
    x = torch.randn(1, z, 8, 8)
    with torch.no_grad():
        y = model(x)
        # Prediction of stack s (input slices s .. s + 2h): k slices.
        stacks = [model._net(x[:, s : s + k]) for s in range(z - 2 * h)]
    assert y.shape == (1, z - 4 * h, 8, 8)
    for i in range(y.shape[1]):
        zz = i + 2 * h  # the input slice this output slice is
        # Every stack that contains slice zz, at its position in the stack.
        preds = [stacks[zz - j][0, j] for j in range(k)]
        expected = x[0, zz] + sum(preds) / k
        torch.testing.assert_close(y[0, i], expected, atol=1e-5, rtol=0)
    # The average does not depend on where the block ends: a shorter block gives
    # the same values on the slices both have.
    with torch.no_grad():
        y_short = model(x[:, 2:])
    torch.testing.assert_close(y_short[0], y[0, 2:], atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- multi-scale outputs

#: The plain unet25d's weights (width 4, depth 2, 2 convs per level), as in checkpoints before multiscale.
PLAIN_UNET_KEYS = {
    f"{m}.{t}"
    for m in ("down.0.0", "down.0.2", "down.1.0", "down.1.2", "bottom.0", "bottom.2", "up.0.1", "up.1.1",
              "merge.0.0", "merge.0.2", "merge.1.0", "merge.1.2", "head")
    for t in ("weight", "bias")
}


@pytest.mark.parametrize("cfg", [{}, {"out": "stack", "slices": 3}])
def test_multiscale_zero_is_the_plain_unet_and_the_heads_leave_its_output_alone(cfg):
    torch.manual_seed(0)
    plain = build_model("unet25d", width=4, **cfg)
    assert plain.config["multiscale"] == 0 and set(plain.state_dict()) == PLAIN_UNET_KEYS
    torch.manual_seed(0)
    multi = build_model("unet25d", width=4, multiscale=2, **cfg)
    # Same seed: the shared layers start from the same weights; the heads are extra keys.
    extra = set(multi.state_dict()) - PLAIN_UNET_KEYS
    assert extra == {f"coarse_heads.{k}.{t}" for k in (0, 1) for t in ("weight", "bias")}
    for key, value in plain.state_dict().items():
        assert torch.equal(multi.state_dict()[key], value), key
    # With any (random) shared weights the full-resolution output is the same, in
    # training and in eval mode, whatever the coarse heads hold.
    randomise(plain, seed=4)
    randomise(multi, seed=5)
    multi.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(2, 11, 16, 24)
    with torch.no_grad():
        for mode in ("train", "eval"):
            plain.train(mode == "train")
            multi.train(mode == "train")
            assert torch.equal(multi(x), plain(x)), mode
    assert multi.receptive_radius == plain.receptive_radius
    assert multi.size_multiple == plain.size_multiple and multi.trim_z == plain.trim_z


@pytest.mark.parametrize("out", ["centre", "stack"])
def test_multiscale_forward_train_returns_coarse_outputs_residual_over_the_block_average(out):
    torch.manual_seed(1)
    model = build_model("unet25d", width=4, slices=3, depth=3, multiscale=3, out=out)
    x = torch.randn(2, 9, 16, 24)
    t = model.trim_z
    with torch.no_grad():
        y, extras = model.forward_train(x)
    assert y.shape == (2, 9 - 2 * t, 16, 24)
    coarse = extras["coarse"]
    assert [tuple(c.shape) for c in coarse] == [(2, 9 - 2 * t, 16 // f, 24 // f) for f in (2, 4, 8)]
    # Untrained (zero heads): each coarse output is the slice-wise block average of
    # the input, the block average of the (identity) full-resolution output.
    for k, c in enumerate(coarse, start=1):
        assert torch.equal(c, F.avg_pool2d(x[:, t : 9 - t], 2**k)), k
        torch.testing.assert_close(c, F.avg_pool2d(y, 2**k), atol=1e-6, rtol=0)
    # Trained heads add a correction, different at every scale...
    randomise(model, seed=2)
    with torch.no_grad():
        y_train, extras = model.forward_train(x)
    for k, c in enumerate(extras["coarse"], start=1):
        assert (c - F.avg_pool2d(x[:, t : 9 - t], 2**k)).abs().max() > 1e-2, k
    # ...and forward, in either mode, returns the same output alone and keeps nothing on the model.
    with torch.no_grad():
        y_plain = model(x)
        model.eval()
        y_eval = model(x)
    assert isinstance(y_eval, torch.Tensor) and torch.equal(y_eval, y_train) and torch.equal(y_plain, y_train)
    assert not hasattr(model, "coarse_outputs")
    # A network without coarse branches has no extras.
    assert build_model("unet25d", width=4).forward_train(torch.zeros(1, 5, 16, 16))[1] == {}


def test_multiscale_coarse_heads_read_the_decoder_level_of_their_scale():
    """Gradients: the 1/2 head depends on the last merge but one, the 1/4 head (depth 2)
    on the bottom block, and neither on the full-resolution merge or the main head."""
    model = randomise(build_model("unet25d", width=4, slices=3, multiscale=2), seed=3)
    x = torch.randn(1, 3, 16, 16)
    _, extras = model.forward_train(x)
    for k, c in enumerate(extras["coarse"], start=1):
        grads = dict(zip(
            [n for n, _ in model.named_parameters()],
            torch.autograd.grad(c.sum(), list(model.parameters()), allow_unused=True, retain_graph=True),
        ))
        used = {n for n, g in grads.items() if g is not None and g.abs().sum() > 0}
        assert f"coarse_heads.{k - 1}.weight" in used
        assert not any(n.startswith(("head.", "merge.1.", f"coarse_heads.{2 - k}.")) for n in used), used
        assert any(n.startswith("merge.0.") for n in used) == (k == 1)
        assert "bottom.2.weight" in used


def test_multiscale_checkpoint_round_trips_and_tiles_like_a_whole_pass(tmp_path):
    from napari_resolve.geometry.grid import resample_lres
    from napari_resolve.learn.inference import run_predict
    from napari_resolve.phantom import make_phantom

    cfg = {"width": 4, "slices": 3, "multiscale": 2}
    ckpt = make_checkpoint("unet25d", cfg, seed=6)
    assert any(k.startswith("coarse_heads.") for k in ckpt.state_dict)
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / "ms.pt"), architecture="unet25d")
    assert loaded.config["multiscale"] == 2
    net = loaded.build()
    assert not net.training and net.multiscale == 2
    for k, v in ckpt.state_dict.items():
        assert torch.equal(net.state_dict()[k], v), k
    lres = make_phantom(32, 3, seed=2).lres
    roi = (slice(4, 10), slice(6, 18), slice(5, 17))
    whole = run_predict(loaded, lres, (3.0, 3.0, 3.0), roi=roi, device="cpu", tile=(1000, 1000, 1000),
                        overlap=(0, 0, 0))
    tiled = run_predict(loaded, lres, (3.0, 3.0, 3.0), roi=roi, device="cpu", tile=(5, 16, 16), overlap=(0, 6, 6))
    assert whole.tiles == 1 and tiled.tiles > 8
    np.testing.assert_allclose(tiled.data, whole.data, atol=1e-4, rtol=0)
    # The same shared weights without the heads predict exactly the same.
    plain = dataclasses.replace(
        loaded,
        config={**cfg, "multiscale": 0},
        state_dict={k: v for k, v in loaded.state_dict.items() if not k.startswith("coarse_heads.")},
    )
    again = run_predict(plain, lres, (3.0, 3.0, 3.0), roi=roi, device="cpu", tile=(1000, 1000, 1000),
                        overlap=(0, 0, 0))
    np.testing.assert_array_equal(again.data, whole.data)
    # ...and they are far from the identity, so these are real comparisons.
    assert np.abs(whole.data - resample_lres(lres, (3.0, 3.0, 3.0), whole.grid)).max() > 0.1


def test_a_checkpoint_from_before_multiscale_builds_the_plain_unet():
    ckpt = make_checkpoint("unet25d")
    old = dataclasses.replace(ckpt, config={k: v for k, v in ckpt.config.items() if k != "multiscale"})
    net = old.build()
    assert net.multiscale == 0 and set(net.state_dict()) == PLAIN_UNET_KEYS


def test_srcnn_works_slice_by_slice_and_srcnn3d_across_slices():
    torch.manual_seed(2)
    s2 = build_model("srcnn", **SMALL["srcnn"]).eval()
    s3 = build_model("srcnn3d", **SMALL["srcnn3d"]).eval()
    assert not s2.volumetric and s3.volumetric
    assert s2.receptive_radius == (0, 6, 6)  # (f1 + f2 + f3 - 3) // 2 with 9, 1, 5
    x = torch.randn(1, 7, 12, 12)
    xp = x.clone()
    xp[0, 3] += 1.0  # perturb one slice
    with torch.no_grad():
        d2 = (s2(xp) - s2(x)).abs().amax(dim=(0, 2, 3))
        d3 = (s3(xp) - s3(x)).abs().amax(dim=(0, 2, 3))
    assert d2[3] > 1e-3 and torch.all(d2[[0, 1, 2, 4, 5, 6]] == 0)
    rz = s3.receptive_radius[0]
    assert rz == 3
    assert torch.all(d3[2:5] > 1e-4)  # neighbours within the radius see it
    # The paper's SRCNN predicts the image itself; residual=True predicts the difference.
    res = build_model("srcnn", residual=True, **SMALL["srcnn"]).eval()
    with torch.no_grad():
        res.body[-1].weight.zero_()
        res.body[-1].bias.zero_()
        assert torch.equal(res(x), x)


def test_srcnn_receptive_radius_defaults():
    assert build_model("srcnn").receptive_radius == (0, 6, 6)
    assert build_model("srcnn3d").receptive_radius == (6, 6, 6)
    assert build_model("srcnn", f1=5, f2=3, f3=3).receptive_radius == (0, 4, 4)


# ----------------------------------------------------------------------------- EDSR, WDSR, DFCAN


@pytest.mark.parametrize(
    "name, cfg",
    [
        ("edsr", {}),
        ("edsr", SMALL["edsr"]),
        ("wdsr", {}),
        ("wdsr", {**SMALL["wdsr"], "weight_norm": False}),
        ("dfcan", {}),
        ("dfcan", SMALL["dfcan"]),
    ],
)
def test_untrained_residual_networks_are_exactly_the_identity(name, cfg):
    torch.manual_seed(0)
    model = build_model(name, **cfg).eval()
    assert not model.volumetric and model.trim_z == 0
    x = torch.randn(2, 3, 24, 20)
    with torch.no_grad():
        assert torch.equal(model(x), x)
        # Not a degenerate network: with non-zero output layers it is no longer the identity.
        randomise(model)
        assert (model(x) - x).abs().max() > 1e-2


def test_new_architectures_receptive_radius_defaults():
    assert build_model("edsr").receptive_radius == (0, 19, 19)  # 3x3 convs: head, 2 x 8 blocks, trunk end, tail
    assert build_model("edsr", blocks=4).receptive_radius == (0, 11, 11)
    assert build_model("wdsr").receptive_radius == (0, 18, 18)  # head, 2 x 8 blocks, tail
    assert build_model("wdsr", blocks=1).receptive_radius == (0, 4, 4)
    assert build_model("dfcan").receptive_radius == (0, 21, 21)  # head, 2 x 3 x 3 blocks, tail, output
    # Same budget: WDSR's 16 x 4 wide blocks cost what EDSR's 32 channels cost.
    e, w = build_model("edsr").parameter_count(), build_model("wdsr").parameter_count()
    assert abs(e - w) / e < 0.1
    assert build_model("dfcan").parameter_count() < e / 2


def test_wdsr_weight_norm_goes_through_a_model_file(tmp_path):
    ckpt = make_checkpoint("wdsr")
    assert any(k.endswith("parametrizations.weight.original0") for k in ckpt.state_dict)  # g
    assert any(k.endswith("parametrizations.weight.original1") for k in ckpt.state_dict)  # v
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / "wdsr.pt"), architecture="wdsr")
    x = torch.randn(1, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.build()(x), ckpt.build()(x))
    plain = build_model("wdsr", **{**SMALL["wdsr"], "weight_norm": False})
    assert not any("parametrizations" in k for k in plain.state_dict())
    # Weights of one kind do not load into the other: a clear error, not a silent mix.
    other = Checkpoint(**{**vars(ckpt), "config": dict(plain.config)})
    with pytest.raises(FileFormatError, match="do not fit a wdsr network"):
        other.build()


def sensitive_dfcan(seed: int = 3, **cfg) -> nn.Module:
    """A random DFCAN whose channel attention responds to its input.

    With random weights the attention's squeeze layer is often dead (all its
    ReLU inputs negative), which makes the attention a constant; a positive
    bias keeps it alive.
    """
    from napari_resolve.models.dfcan import FourierChannelAttention

    model = randomise(build_model("dfcan", **(cfg or SMALL["dfcan"])), seed=seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FourierChannelAttention):
                module.down.bias.fill_(1.0)
    return model.eval()


def test_dfcan_convolutions_alone_respect_the_receptive_radius():
    # Without the attention DFCAN is a stack of convolutions: the radius is exact...
    check_nothing_beyond_the_radius(without_attention(sensitive_dfcan()))
    check_radius_is_reached(linearise(without_attention(build_model("dfcan", **SMALL["dfcan"]))), exact=True)
    check_radius_is_reached(linearise(without_attention(build_model("dfcan", groups=2, blocks=1))), exact=True)


def test_dfcan_attention_is_global_and_declared_so():
    # ...with it, a voxel far beyond the radius still changes the output a little.
    model = sensitive_dfcan()
    assert model.global_context is True
    for name in ("unet25d", "srcnn", "srcnn3d", "edsr", "wdsr"):
        assert not getattr(build_model(name), "global_context", False)
    r = model.receptive_radius[1]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 8 * r, 8 * r, generator=g)
    far = _changes(model, x, 0, 6 * r, 6 * r, [(0, -5 * r, -5 * r)])
    assert 1e-7 < float(far[0]) < 1e-2
    near = _changes(model, x, 0, 6 * r, 6 * r, [(0, 1, 1)])
    assert float(near[0]) > 100 * float(far[0])  # a small, global effect next to the local one


def test_fourier_attention_statistics_hardly_depend_on_the_image_size():
    """The orthonormal FFT and log amplitude make the attention a property of the
    texture, not of the tile size: crops of a stationary field get (nearly) the
    same channel weights, while other contrast or texture changes them."""
    from napari_resolve.models.dfcan import FourierChannelAttention

    g = torch.Generator().manual_seed(0)
    fca = FourierChannelAttention(4, 2)
    with torch.no_grad():
        for p in fca.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        fca.down.bias.fill_(1.0)
    field = F.avg_pool2d(torch.randn(1, 4, 260, 260, generator=g), 5, 1)  # smooth, stationary
    with torch.no_grad():
        w = {s: fca.weights(field[..., :s, :s]).flatten() for s in (32, 64, 128, 256)}
        contrast = fca.weights(3 * field[..., :64, :64]).flatten()
        noise = fca.weights(torch.randn(1, 4, 64, 64, generator=g)).flatten()
    spread = max(float((w[s] - w[256]).abs().max()) for s in w)
    assert spread < 3e-3
    assert float((contrast - w[64]).abs().max()) > 10 * spread
    assert float((noise - w[64]).abs().max()) > 10 * spread
    assert torch.all((w[64] > 0) & (w[64] < 1))


@cache
def _phantom_pair():
    from napari_resolve.phantom import make_phantom
    from napari_resolve.registration import register

    ph = make_phantom(48, 3, seed=0)
    return ph, register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)


@pytest.mark.parametrize(
    "name, cfg, loss, gain_db",
    [
        # Measured gains over the identity (cubic) after 60 iterations: 0.92, 2.55 and 1.30 dB.
        ("edsr", {"blocks": 4, "features": 16}, "l1", 0.5),
        ("wdsr", {"blocks": 4, "features": 8}, "l1", 1.5),
        ("dfcan", {"groups": 2, "blocks": 2, "features": 8, "reduction": 2}, "mse+ssim", 0.7),
    ],
)
def test_new_architectures_learn_in_the_training_loop(name, cfg, loss, gain_db):
    from napari_resolve.learn.pairs import make_pair
    from napari_resolve.learn.training import TrainConfig, run_train
    from napari_resolve.measure.similarity import psnr

    ph, reg = _phantom_pair()
    tc = TrainConfig(model=name, model_config=cfg, loss=loss, iterations=60, val_every=20, batch_size=4,
                     patch_size=32, learning_rate=3e-3, device="cpu", seed=0)
    result = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, tc)
    vi, vt = make_pair(ph.lres, ph.hres, ph.lres_voxel_um, reg.offset_um, reg.scale).validation()
    identity = psnr(vi, vt, data_range=1.0)  # the untrained network's score
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])
    assert result.checkpoint.val_psnr > identity + gain_db, (result.checkpoint.val_psnr, identity)
    assert result.checkpoint.architecture == name and result.checkpoint.train_config["loss"] == loss


# ----------------------------------------------------------------------------- receptive radius


def _changes(model, x, z_out, y0, x0, spikes):
    """How much each spike (z_in, dy, dx) added to the input changes output voxel (z_out, y0, x0)."""
    batch = x.repeat(len(spikes) + 1, 1, 1, 1)
    for i, (z_in, dy, dx) in enumerate(spikes, start=1):
        batch[i, z_in, y0 + dy, x0 + dx] += 10.0
    with torch.no_grad():
        out = model(batch)[:, z_out, y0, x0]
    return (out[1:] - out[0]).abs()


RADIUS_CASES = [
    ("unet25d", {"width": 4, "slices": 3}),
    ("unet25d", {"width": 4, "slices": 1, "depth": 1}),
    ("unet25d", {"width": 4, "slices": 3, "depth": 3, "convs": 1}),
    ("unet25d", {"width": 4, "slices": 3, "out": "stack"}),
    ("unet25d", {"width": 4, "slices": 3, "multiscale": 2}),  # the coarse heads are not on the output path
    ("srcnn", SMALL["srcnn"]),
    ("srcnn", {"n1": 4, "n2": 4}),
    ("srcnn3d", SMALL["srcnn3d"]),
    ("edsr", SMALL["edsr"]),
    ("edsr", {"blocks": 1, "features": 3, "res_scale": 1.0}),
    ("wdsr", SMALL["wdsr"]),
    ("wdsr", {"blocks": 1, "features": 4, "weight_norm": False}),
]
#: Plain stacks of convolutions: the radius is reached exactly.
EXACT_RADIUS = ("srcnn", "srcnn3d", "edsr", "wdsr", "dfcan")


@pytest.mark.parametrize("name, cfg", RADIUS_CASES)
def test_nothing_beyond_the_receptive_radius_reaches_an_output_voxel(name, cfg):
    check_nothing_beyond_the_radius(randomise(build_model(name, **cfg), seed=3).eval())


def check_nothing_beyond_the_radius(model):
    rz, ry, rx = model.receptive_radius
    m = max(model.size_multiple)
    size = (2 * ry + 2 * m + 8) // m * m
    z = 2 * model.trim_z + 2 * rz + 1  # one output slice that sees no z padding
    x = torch.randn(1, z, size, size)
    zo, zc, c = rz, model.trim_z + rz, size // 2  # output slice, its input slice, centre
    beyond = [(ry + 1, 0), (-ry - 1, 0), (0, rx + 1), (0, -rx - 1), (ry + 1, rx + 1), (-ry - 1, -rx - 1)]
    for phase in range(m):  # every position relative to the pooling windows
        yc = c + phase
        assert torch.all(_changes(model, x, zo, yc, yc, [(zc, dy, dx) for dy, dx in beyond]) < 1e-6), phase
    # ...while the centre and the edge slices of the z reach do matter (the test can fail).
    z_reach = model.trim_z + rz
    inside = [(zc, 0, 0), (zc + z_reach, 0, 0), (zc - z_reach, 0, 0)]
    assert torch.all(_changes(model, x, zo, c, c, inside) > 1e-4)
    # Along z: a slice-wise model sees only its own stack, a 3D model its z radius.
    side = -(-6 // m) * m if m < 6 else 2 * m
    xz = torch.randn(1, z + 2, side, side)
    outside = [(zc + 1 + z_reach + 1, 0, 0), (zc + 1 - z_reach - 1, 0, 0)]
    assert torch.all(_changes(model, xz, zo + 1, side // 2, side // 2, outside) < 1e-6)
    assert torch.all(_changes(model, xz, zo + 1, side // 2, side // 2, [(zc + 1, 0, 0)]) > 1e-4)


@pytest.mark.parametrize("name, cfg", RADIUS_CASES)
def test_receptive_radius_is_reached_by_the_network_geometry(name, cfg):
    """Just inside the declared radius an input voxel still matters: the radius is
    not a gross overestimate (which would make tiled inference needlessly slow)."""
    check_radius_is_reached(linearise(build_model(name, **cfg)), exact=name in EXACT_RADIUS)


def check_radius_is_reached(model, exact: bool):
    with torch.no_grad():
        for p in model.parameters():  # positive weights: no cancellations
            p.uniform_(0.05, 0.2)
    rz, ry, rx = model.receptive_radius
    m = max(model.size_multiple)
    size = (2 * ry + 2 * m + 8) // m * m
    z = 2 * model.trim_z + 1
    # One batch element per position of the output voxel relative to the pooling windows.
    x = torch.zeros(m, z, size, size, requires_grad=True)
    c = size // 2
    out = model(x)
    (grad,) = torch.autograd.grad(sum(out[p, 0, c + p, c + p] for p in range(m)), x)
    reach = 0
    for p in range(m):
        support = torch.nonzero(grad[p].abs().sum(dim=0) > 0) - (c + p)
        assert int(support.abs().max()) <= max(ry, rx)
        reach = max(reach, int(support.abs().max()))
    assert reach >= 0.75 * ry, (reach, ry)
    if exact:
        assert reach == ry  # exact for plain convolutions


# ----------------------------------------------------------------------------- checkpoints


def make_checkpoint(name="unet25d", cfg=None, seed=0) -> Checkpoint:
    cfg = SMALL[name] if cfg is None else cfg
    model = randomise(build_model(name, **cfg), seed=seed)
    return Checkpoint(
        architecture=name,
        config=dict(model.config),
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        norm_in=Normalisation(0.1, 1.3),
        norm_out=Normalisation(-0.2, 0.9),
        lres_voxel_um=(3.0, 3.0, 3.0),
        hres_voxel_um=(1.0, 1.0, 1.0),
        registration={"offset_um": [0.5, 1.0, -0.25], "status": "ok"},
        train_config={"iterations": 7},
        history=[{"iteration": 1, "loss": 0.5}, {"iteration": 2, "loss": 0.25, "val_psnr": 20.0}],
        iteration=2,
        val_psnr=20.0,
        extra={"roi": [[0, 4], [0, 16], [0, 16]]},
    )


@pytest.fixture
def saved(tmp_path):
    ckpt = make_checkpoint()
    path = save_checkpoint(ckpt, tmp_path / "model.pt")
    return ckpt, path


@pytest.mark.parametrize("name", sorted(SMALL))
def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, name):
    ckpt = make_checkpoint(name)
    path = save_checkpoint(ckpt, tmp_path / f"{name}.pt")
    loaded = load_checkpoint(path, architecture=name)
    for key in (
        "architecture",
        "config",
        "norm_in",
        "norm_out",
        "lres_voxel_um",
        "hres_voxel_um",
        "registration",
        "train_config",
        "history",
        "iteration",
        "val_psnr",
        "extra",
    ):
        assert getattr(loaded, key) == getattr(ckpt, key), key
    assert loaded.ratio == (3.0, 3.0, 3.0)
    assert loaded.phase_origin_um == (0.5, 1.0, -0.25)
    a, b = ckpt.build(), loaded.build()
    assert not a.training and not b.training
    x = torch.randn(1, 2 * a.trim_z + 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        # ...and they are not trivially equal: another seed predicts differently.
        assert not torch.equal(make_checkpoint(name, seed=1).build()(x), a(x))


def test_checkpoint_loads_with_weights_only(saved):
    _, path = saved
    data = torch.load(path, map_location="cpu", weights_only=True)  # nothing that could execute code
    assert data["format"] == FORMAT and data["architecture"] == "unet25d"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda raw: np.random.default_rng(0).bytes(4096), id="random-bytes"),
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
        pytest.param(lambda raw: raw[:100], id="truncated-header"),
        pytest.param(lambda raw: b"model weights v1\n", id="text"),
    ],
)
def test_load_of_a_damaged_file_is_a_file_format_error(tmp_path, saved, content):
    _, path = saved
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content(path.read_bytes()))
    with pytest.raises(FileFormatError, match="bad.pt"):
        load_checkpoint(bad)


@pytest.mark.parametrize(
    "content",
    [b"hello, these are my notes\n", b""],  # torch.load raises KeyError, resp. EOFError without a message
    ids=["text", "empty"],
)
def test_load_of_a_text_or_empty_file_is_a_file_format_error(tmp_path, content):
    bad = tmp_path / "notes.pt"
    bad.write_bytes(content)
    with pytest.raises(FileFormatError, match="notes.pt"):
        load_checkpoint(bad)


@pytest.mark.parametrize(
    "payload",
    [{"state_dict": {}}, {"format": "something-else"}, [1, 2, 3], torch.zeros(3)],
    ids=["dict", "other-format", "list", "tensor"],
)
def test_load_of_another_torch_file_says_it_is_not_a_model(tmp_path, payload):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(FileFormatError, match="not a napari-resolve model"):
        load_checkpoint(path)


def test_load_of_a_record_lacking_fields_or_from_the_future(tmp_path, saved):
    ckpt, _ = saved
    d = ckpt.to_dict()
    del d["norm_in"]
    torch.save(d, tmp_path / "lacking.pt")
    with pytest.raises(FileFormatError, match="damaged"):
        load_checkpoint(tmp_path / "lacking.pt")
    d = ckpt.to_dict()
    d["version"] = 99
    torch.save(d, tmp_path / "future.pt")
    with pytest.raises(FileFormatError, match="newer"):
        load_checkpoint(tmp_path / "future.pt")


def test_load_with_another_architecture_required(saved):
    _, path = saved
    with pytest.raises(FileFormatError, match="'unet25d' model, not 'srcnn'"):
        load_checkpoint(path, architecture="srcnn")


@pytest.mark.parametrize("edit", ["missing", "reshaped", "extra", "config"])
def test_load_of_weights_that_do_not_fit_the_architecture(tmp_path, saved, edit):
    ckpt, _ = saved
    d = ckpt.to_dict()
    sd = dict(d["state_dict"])
    key = "head.weight"
    if edit == "missing":
        del sd[key]
    elif edit == "reshaped":
        sd[key] = torch.zeros(2, 2)
    elif edit == "extra":
        sd["tail.weight"] = torch.zeros(3)
    else:
        d["config"] = {**d["config"], "width": 8}  # weights of a width-4 net
    d["state_dict"] = sd
    torch.save(d, tmp_path / "edited.pt")
    with pytest.raises(FileFormatError, match="do not fit a unet25d network"):
        load_checkpoint(tmp_path / "edited.pt")


def test_load_of_an_unknown_architecture_or_setting(tmp_path, saved):
    ckpt, _ = saved
    for change in ({"architecture": "unet9d"}, {"config": {"width": 4, "colour": 1}}):
        torch.save({**ckpt.to_dict(), **change}, tmp_path / "odd.pt")
        with pytest.raises(FileFormatError, match="cannot be rebuilt"):
            load_checkpoint(tmp_path / "odd.pt")


def test_load_of_a_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere.pt")
    with pytest.raises(FileFormatError):
        load_checkpoint(tmp_path)  # a folder


def test_save_refuses_to_overwrite_and_leaves_no_temporary_files(tmp_path, saved):
    ckpt, path = saved
    before = path.read_bytes()
    other = make_checkpoint(seed=5)
    with pytest.raises(FileFormatError, match="already exists"):
        save_checkpoint(other, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]
    save_checkpoint(other, path, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]
    loaded = load_checkpoint(path)
    assert torch.equal(loaded.state_dict["head.weight"], other.state_dict["head.weight"])
    with pytest.raises(FileFormatError, match="does not exist"):
        save_checkpoint(ckpt, tmp_path / "no" / "such" / "dir.pt")
