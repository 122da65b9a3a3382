"""DIDN, MIMO-UNet and DRLN: registry, shapes and identity, the tiling contract, coarse outputs, model files."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from models.test_models import check_nothing_beyond_the_radius, check_radius_is_reached, linearise, randomise
from torch import nn

from napari_resolve.errors import InputError
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.models import build_model, model_names
from napari_resolve.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

NEW = ("didn", "mimo_unet", "drln")
#: Small versions for the tests (random weights stay finite through them).
SMALL = {
    "didn": {"features": 4, "blocks": 1, "recon_units": 1},
    "mimo_unet": {"width": 4, "blocks": 1},
    "drln": {"features": 4, "groups": 1, "modules": 2, "reduction": 2, "pool": 5},
}


def linear(model: nn.Module) -> nn.Module:
    """:func:`linearise`, and the attention gates' sigmoids removed (saturated, they hide their inputs)."""
    model = linearise(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Sigmoid):
                setattr(module, name, nn.Identity())
    return model


def small(name: str, **cfg) -> nn.Module:
    return build_model(name, **{**SMALL[name], **cfg})


# ----------------------------------------------------------------------------- registry and shapes


def test_registered_sized_for_a_cpu_with_the_papers_sizes_in_reach():
    assert set(NEW) <= set(model_names())
    counts = {name: build_model(name).parameter_count() for name in NEW}
    assert counts == {"didn": 223_679, "mimo_unet": 135_577, "drln": 112_817}
    # The papers' sizes are settings away (counted without building the large ones' weights twice).
    assert build_model("mimo_unet", width=32, blocks=8).parameter_count() == pytest.approx(6.8e6, rel=0.03)
    assert build_model("didn", slices=1, features=64, blocks=6, recon_units=4).parameter_count() > 10e6
    assert build_model("drln", features=32, groups=3, modules=3, reduction=8).parameter_count() > 3e6
    assert [build_model(n).receptive_radius for n in NEW] == [(0, 92, 92), (0, 73, 73), (0, 91, 91)]
    assert [build_model(n).size_multiple for n in NEW] == [(1, 8, 8), (1, 4, 4), (1, 1, 1)]
    assert [build_model(n).trim_z for n in NEW] == [1, 0, 0]  # DIDN reads 3 slices by default


@pytest.mark.parametrize(
    "name, cfg",
    [
        ("didn", {"features": 6}),  # not a multiple of 4
        ("didn", {"blocks": 0}),
        ("didn", {"slices": 2}),
        ("mimo_unet", {"blocks": 0}),
        ("mimo_unet", {"width": 1}),
        ("mimo_unet", {"width": 2, "slices": 5}),  # the coarse-input modules need more channels than slices
        ("drln", {"modules": 0}),
        ("drln", {"pool": 4}),
        ("drln", {"pool": -1}),
        ("drln", {"reduction": 0}),
    ],
)
def test_invalid_settings_raise_input_error(name, cfg):
    with pytest.raises(InputError, match=name):
        build_model(name, **cfg)


@pytest.mark.parametrize(
    "name, cfg",
    [("didn", {}), ("didn", {**SMALL["didn"], "slices": 1}), ("mimo_unet", {}), ("mimo_unet", {"slices": 3}),
     ("drln", {}), ("drln", {**SMALL["drln"], "pool": 0})],
)
def test_untrained_network_is_the_identity_on_its_centre_slices(name, cfg):
    torch.manual_seed(0)
    model = build_model(name, **cfg).eval()
    assert not model.volumetric and model.input_grid == "hres"
    t = model.trim_z
    x = torch.randn(2, 2 * t + 3, 24, 32)
    with torch.no_grad():
        assert torch.equal(model(x), x[:, t : t + 3])
        randomise(model, std=0.1)
        assert (model(x) - x[:, t : t + 3]).abs().max() > 1e-2  # not a degenerate network


def test_sizes_off_the_multiple_and_too_few_slices_are_refused():
    with pytest.raises(InputError, match="multiples of 8"):
        build_model("didn")(torch.zeros(1, 3, 20, 24))
    with pytest.raises(InputError, match="at least 3 slices"):
        build_model("didn")(torch.zeros(1, 2, 16, 16))
    with pytest.raises(InputError, match="multiples of 4"):
        build_model("mimo_unet")(torch.zeros(1, 1, 18, 16))


def test_neighbouring_slices_reach_the_output_only_with_slices_above_one():
    x = torch.randn(1, 7, 16, 16)
    xp = x.clone()
    xp[0, 3] += 1.0
    for slices in (1, 3):
        model = randomise(small("didn", slices=slices), std=0.1).eval()
        with torch.no_grad():
            d = (model(xp) - model(x)).abs().amax(dim=(0, 2, 3))
        h = slices // 2
        changed = [i + h for i in range(d.numel()) if d[i] > 1e-6]  # input slices whose output changed
        assert changed == list(range(3 - h, 4 + h)), (slices, changed)


# ----------------------------------------------------------------------------- the tiling contract

RADIUS_CASES = [
    ("didn", SMALL["didn"]),
    ("didn", {**SMALL["didn"], "blocks": 2, "slices": 1}),
    ("mimo_unet", SMALL["mimo_unet"]),
    ("mimo_unet", {"width": 2, "blocks": 2, "slices": 3}),
    ("drln", SMALL["drln"]),
    ("drln", {"features": 4, "groups": 2, "modules": 1, "reduction": 2, "pool": 3, "slices": 3}),
]


@pytest.mark.parametrize("name, cfg", RADIUS_CASES)
def test_nothing_beyond_the_receptive_radius_reaches_an_output_voxel(name, cfg):
    check_nothing_beyond_the_radius(randomise(build_model(name, **cfg), seed=3, std=0.1).eval())


@pytest.mark.parametrize("name, cfg", RADIUS_CASES)
def test_receptive_radius_is_reached_by_the_network_geometry(name, cfg):
    # DIDN's bound is conservative by 6 voxels per DUB after the first; MIMO-UNet's and
    # DRLN's are reached exactly at some phase of the pooling grid (measured).
    check_radius_is_reached(linear(build_model(name, **cfg)), exact=name == "drln")


def test_drln_global_attention_is_the_papers_and_declared_so():
    local, glob = small("drln"), small("drln", pool=0)
    assert not local.global_context and glob.global_context
    assert glob.receptive_radius == (0, 17, 17)  # the convolutions' reach: head, 2 x 7 per module, tail
    model = randomise(glob, seed=1, std=0.3).eval()
    x = torch.randn(2, 1, 96, 96)
    x[1, 0, 5, 5] += 10.0  # far beyond the radius of the centre voxel
    with torch.no_grad():
        out = model(x)
    assert 0 < float((out[1, 0, 48, 48] - out[0, 0, 48, 48]).abs()) < 0.1 * float((out[1] - out[0]).abs().max())


@cache
def _lres() -> np.ndarray:
    from napari_resolve.phantom import make_phantom

    return make_phantom(32, 3, seed=2).lres


def _checkpoint(name: str, cfg: dict, seed: int = 0, std: float = 0.1) -> Checkpoint:
    model = randomise(build_model(name, **cfg), seed=seed, std=std)
    return Checkpoint(
        architecture=name, config=dict(model.config),
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        norm_in=Normalisation(0.1, 1.1), norm_out=Normalisation(-0.5, 2.0),
        lres_voxel_um=(3.0, 3.0, 3.0), hres_voxel_um=(1.0, 1.0, 1.0),
        registration={"offset_um": [0.4, -0.3, 0.2]},
    )


ROI = (slice(4, 10), slice(6, 18), slice(5, 17))  # an 18 x 36 x 36 output
TILED = {
    # (tile - overlap) not a multiple of the size multiple: tile starts are rounded to it.
    "didn": {"tile": (5, 16, 16), "overlap": (0, 5, 5)},
    "mimo_unet": {"tile": (5, 12, 12), "overlap": (1, 3, 3)},
    "drln": {"tile": (5, 12, 12), "overlap": (1, 4, 4)},
    # The stages' radii add up (132 here): a smaller output, 6 x 24 x 24, keeps it quick.
    "multioutput": {"tile": (2, 16, 16), "overlap": (0, 6, 6), "roi": (slice(4, 6), slice(6, 14), slice(5, 13))},
}
STAGES = {
    "denoise": {"name": "didn", **SMALL["didn"]},
    "deblur": {"name": "mimo_unet", **SMALL["mimo_unet"]},
    "upscale": {"name": "drln", **SMALL["drln"]},
}


@pytest.mark.parametrize("name", [*NEW, "multioutput"])
def test_tiled_prediction_equals_a_whole_volume_pass(name):
    from napari_resolve.geometry.grid import resample_lres
    from napari_resolve.learn.inference import run_predict

    ckpt = _checkpoint(name, STAGES if name == "multioutput" else SMALL[name])
    lres, lv = _lres(), (3.0, 3.0, 3.0)
    tiling = {"roi": ROI, **TILED[name]}
    whole = run_predict(ckpt, lres, lv, roi=tiling["roi"], device="cpu", tile=(1000, 1000, 1000), overlap=(0, 0, 0))
    tiled = run_predict(ckpt, lres, lv, device="cpu", **tiling)
    assert whole.tiles == 1 and tiled.tiles > 8
    assert tiled.grid == whole.grid and tiled.data.shape == whole.data.shape
    correction = np.abs(whole.data - resample_lres(lres, lv, whole.grid)).max()
    assert correction > 0.1  # far from the identity: a real comparison
    np.testing.assert_allclose(tiled.data, whole.data, atol=1e-4 * max(1.0, correction), rtol=0)
    seams = run_predict(ckpt, lres, lv, device="cpu", margin=0, **tiling)
    assert np.abs(seams.data - whole.data).max() > 1e-3  # the margin is what makes it exact


# ----------------------------------------------------------------------------- MIMO-UNet's coarse outputs


def test_mimo_unet_gives_its_coarse_outputs_to_training_and_forward_the_final_one_alone():
    torch.manual_seed(0)
    model = build_model("mimo_unet", width=4, blocks=1, slices=3)
    x = torch.randn(2, 7, 16, 24)
    centre = x[:, 1:6]
    y, extras = model.forward_train(x)
    assert torch.equal(y, centre)
    coarse = extras["coarse"]
    assert [tuple(c.shape) for c in coarse] == [(2, 5, 8, 12), (2, 5, 4, 6)]
    for k, c in enumerate(coarse, start=1):  # untrained: the block means of the input at 1/2 and 1/4
        assert torch.equal(c, F.avg_pool2d(centre, 2**k))
    randomise(model, seed=2, std=0.1)
    with torch.no_grad():
        y_train, extras = model.forward_train(x)
        for k, c in enumerate(extras["coarse"], start=1):
            assert (c - F.avg_pool2d(centre, 2**k)).abs().max() > 1e-2
        # The coarse output convolutions are side branches: forward ignores them.
        y_eval = model.eval()(x)
        model.out2.weight.add_(1.0)
        model.out4.bias.add_(1.0)
        assert torch.equal(model(x), y_eval)
    torch.testing.assert_close(y_eval, y_train, atol=1e-6, rtol=0)


def test_mimo_unet_coarse_losses_enter_the_training_loss():
    from napari_resolve.learn.training import TrainConfig, run_train
    from napari_resolve.phantom import make_phantom
    from napari_resolve.registration import register

    ph = make_phantom(32, 3, seed=0)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    cfg = TrainConfig(model="mimo_unet", model_config=SMALL["mimo_unet"], iterations=4, val_every=4, batch_size=2,
                      patch_size=24, device="cpu", multiscale_until=1.0, loss="l1")
    history = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, cfg).history
    assert all(h["loss_total"] > h["loss"] for h in history)  # the final loss plus the two coarse ones


# ----------------------------------------------------------------------------- inside the multi-output network


def test_the_papers_denoise_and_deblur_networks_as_multioutput_stages():
    net = build_model("multioutput", denoise="didn", deblur="mimo_unet")
    assert net.trim_z == 1 and net.size_multiple == (1, 8, 8)
    assert net.receptive_radius == (0, 92 + 73 + 21, 92 + 73 + 21)  # DFCAN upscales by default
    x = torch.rand(1, 5, 16, 24)
    y, extras = net.forward_train(x)
    assert list(extras) == ["stages"] and torch.equal(y, x[:, 1:4])
    with pytest.raises(InputError, match="only the denoise stage"):
        build_model("multioutput", deblur={"name": "mimo_unet", "slices": 3})
    with pytest.raises(InputError, match="only the denoise stage"):
        build_model("multioutput", deblur="didn")  # three slices by default


# ----------------------------------------------------------------------------- model files


@pytest.mark.parametrize("name", NEW)
def test_model_file_round_trip_gives_identical_predictions(tmp_path, name):
    ckpt = _checkpoint(name, SMALL[name])
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / f"{name}.pt"), architecture=name)
    assert loaded.config == ckpt.config
    a, b = ckpt.build(), loaded.build()
    x = torch.randn(1, 2 * a.trim_z + 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.equal(_checkpoint(name, SMALL[name], seed=1).build()(x), a(x))
