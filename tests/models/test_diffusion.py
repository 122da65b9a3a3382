"""diffusion: the start-noise field, the sampler's arithmetic, the denoiser's reach, and seamless tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_resolve.errors import InputError
from napari_resolve.models import build_model
from napari_resolve.models.diffusion import voxel_noise

SMALL = {"width": 4, "slices": 3, "depth": 1, "convs": 1, "steps": 3}


def test_the_noise_of_a_voxel_does_not_depend_on_the_block_it_is_drawn_in():
    whole = voxel_noise((4, 40, 50), (3, -8, -8), sample=2)
    part = voxel_noise((2, 16, 20), (4, 10, 20), sample=2)
    np.testing.assert_array_equal(part, whole[1:3, 18:34, 28:48])
    assert not np.allclose(voxel_noise((4, 40, 50), (3, -8, -8), sample=3), whole)  # each sample its own field
    big = voxel_noise((8, 128, 128), (0, 0, 0), sample=0)
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01  # standard normal
    assert abs(np.corrcoef(big[:, :, :-1].ravel(), big[:, :, 1:].ravel())[0, 1]) < 0.01  # neighbours independent


def test_ddim_with_an_exact_denoiser_returns_the_target():
    """With the true v at every step, the deterministic sampler lands on the clean residual: the schedule,
    the v-parameterisation and the step are consistent."""
    net = build_model("diffusion", **SMALL).eval()
    x = torch.randn(1, 5, 16, 16)
    target = torch.randn(1, 3, 16, 16)
    x0 = (target.reshape(3, 1, 16, 16) - x[0, 1:4, None]) / net.scale

    def oracle(cond, z_t, t):
        a, s = (v[:, None, None, None] for v in net._schedule(t))
        eps = (z_t - a * x0) / s.clamp_min(1e-12)
        return a * eps - s * x0

    net.denoise = oracle
    with torch.no_grad():
        out = net(x, origin=(5, -2, -2))
    torch.testing.assert_close(out, target, atol=1e-4, rtol=0)


def test_the_denoiser_reaches_no_further_than_its_receptive_radius():
    net = build_model("diffusion", width=4, slices=3, depth=2, convs=2).eval()
    r = net.receptive_radius[1]
    cond, z_t = torch.randn(1, 3, 96, 96), torch.randn(1, 1, 96, 96)
    t = torch.tensor([0.4])
    far = cond.clone()
    far[..., :, 48 + r + 1 :] += 5.0  # everything beyond the radius of column 48
    with torch.no_grad():
        a, b = net.denoise(cond, z_t, t), net.denoise(far, z_t, t)
    assert torch.equal(a[..., 48], b[..., 48])
    assert not torch.equal(a[..., 48 + r + 1 :], b[..., 48 + r + 1 :])


def test_samples_are_reproducible_and_differ_from_each_other():
    net = build_model("diffusion", **SMALL).eval()
    x = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        a, again, other = net(x, sample=0), net(x, sample=0), net(x, sample=1)
    assert a.shape == (1, 2, 16, 16)
    assert torch.equal(a, again) and (a - other).abs().mean() > 1e-3
    loss = net.denoising_loss(torch.randn(2, 4, 16, 16), torch.randn(2, 2, 16, 16))
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad


@pytest.mark.parametrize("cfg", [{"steps": 0}, {"scale": 0}, {"slices": 2}, {"width": 1}])
def test_invalid_settings(cfg):
    with pytest.raises(InputError, match="diffusion"):
        build_model("diffusion", **cfg)


@pytest.fixture(scope="module")
def trained():
    """A small diffusion model trained briefly on the cross-modality (CT to SEM) foam, and its test LRES."""
    from napari_resolve.learn.training import TrainConfig, run_train
    from napari_resolve.phantom import make_phantom
    from napari_resolve.registration import register

    ph = make_phantom(32, 3, seed=2, hres_modality="sem")
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    cfg = TrainConfig(model="diffusion", model_config={"width": 8, "steps": 4}, iterations=40, batch_size=4,
                      patch_size=32, device="cpu", patience=0, seed=0)
    return run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, cfg), ph


def test_tiles_agree_where_they_overlap_well_below_the_sample_spread(trained):
    """The seam check: a tiled prediction against one pass over the whole region (same noise field)."""
    from napari_resolve.learn.inference import run_predict

    res, ph = trained
    lres = ph.lres[10:14]
    whole = run_predict(res.checkpoint, lres, ph.lres_voxel_um, tile=192, device="cpu")
    tiled = run_predict(res.checkpoint, lres, ph.lres_voxel_um, tile=32, device="cpu")
    assert tiled.tiles > 9 * whole.tiles
    two = run_predict(res.checkpoint, lres, ph.lres_voxel_um, tile=192, device="cpu", samples=2,
                      uncertainty=True, keep_signals=True)
    spread = float(np.median(two.signals["spread"]))  # std of two samples per voxel
    seam = np.abs(tiled.data - whole.data)
    assert spread > 0.02 * float(np.ptp(whole.data))  # the samples really differ
    assert float(seam.max()) < 0.05 * spread  # measured: 4e-7 grey values against a spread of 0.18


def test_the_diffusion_map_is_calibrated_on_its_samples(trained):
    res, _ = trained
    maps = res.checkpoint.extra["error_map"]
    assert maps["tta"]["samples"] == 4 and maps["tta"]["signals"] == ["consistency", "spread"]
    assert maps["plain"]["samples"] == 0 and 0.75 < maps["tta"]["coverage"] <= 1
