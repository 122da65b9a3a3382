"""Training patches and prediction of networks on the LRES grid (any ratio and phase, 2D and 3D)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_resolve.geometry.grid import resample_lres
from napari_resolve.learn.inference import run_predict
from napari_resolve.learn.lres_pairs import LresPatchSampler, lres_halo
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.learn.pairs import make_pair
from napari_resolve.models import build_model
from napari_resolve.models.checkpoint import Checkpoint
from napari_resolve.models.interpolate import interpolate

SMALL = {"width": 4, "blocks": 1, "hidden": 4}


def ramp(shape, voxel, origin, coef=(0.3, -0.2, 0.5)):
    """A linear function of the physical position sampled on a grid: linear interpolation is exact on it."""
    axes = [o + np.arange(n) * v for n, v, o in zip(shape, voxel, origin)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return (coef[0] * zz + coef[1] * yy + coef[2] * xx).astype(np.float32)


@pytest.mark.parametrize("lv, hv, offset", [
    ((3.0, 3.0, 3.0), (1.0, 1.0, 1.0), (10.4, 8.7, 9.2)),
    ((2.5, 2.0, 2.0), (1.0, 0.8, 0.8), (7.3, 6.1, 5.55)),  # non-integer, anisotropic ratio
])
def test_patch_positions_follow_every_flip_and_rotation(lv, hv, offset):
    lres = ramp((16, 18, 18), lv, (0, 0, 0))
    hres = ramp((20, 24, 24), hv, offset)
    pair = make_pair(lres, hres, lv, offset, hv, lres_halo=3)
    assert pair.lres_start is not None and pair.inputs.ndim == 3
    sampler = LresPatchSampler(pair, out_depth=6, size=12, multiple=1, rng=np.random.default_rng(1), augment=True,
                               square_voxels=True)
    assert sampler.rotate
    batch, target = sampler.sample(16)
    pred = interpolate(torch.from_numpy(batch.block)[:, None], [torch.from_numpy(p) for p in batch.positions])[:, 0]
    # Interpolating each (flipped, rotated) LRES block at its positions gives its (flipped, rotated) target.
    np.testing.assert_allclose(pair.norm_out.invert(target), pair.norm_in.invert(pred.numpy()), atol=2e-4)
    # ... and the patches really were flipped and rotated in different ways.
    assert len({tuple(np.sign(np.diff(t[0, :, 0]))[:1]) + tuple(np.sign(np.diff(t[0, 0, :]))[:1])
                for t in target}) >= 3


def lres3d_ckpt(lv, hv, phase, seed=0, **options):
    model = build_model("lres3d", **(SMALL | options))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return Checkpoint(architecture="lres3d", config=dict(model.config), state_dict=model.state_dict(),
                      norm_in=Normalisation(0.1, 1.1), norm_out=Normalisation(-0.5, 2.0), lres_voxel_um=lv,
                      hres_voxel_um=hv, registration={"offset_um": list(phase)})


@pytest.mark.parametrize("refine", [0, 4])
def test_tiles_equal_a_whole_pass_at_a_non_integer_anisotropic_ratio(refine):
    rng = np.random.default_rng(0)
    lres = rng.random((14, 20, 22)).astype(np.float32)
    lv, hv = (2.5, 2.0, 2.0), (1.0, 0.8, 0.8)
    ckpt = lres3d_ckpt(lv, hv, (0.35, -0.2, 0.1), refine=refine)
    whole = run_predict(ckpt, lres, lv, tile=(1000, 1000, 1000), device="cpu")
    tiled = run_predict(ckpt, lres, lv, tile=(7, 13, 11), device="cpu")
    assert whole.tiles == 1 and tiled.tiles > 20
    assert whole.grid.voxel_um == hv
    # A real network: far from cubic interpolation; and yet tiles agree to float precision.
    assert np.abs(whole.data - resample_lres(lres, lv, whole.grid)).max() > 0.1
    np.testing.assert_allclose(tiled.data, whole.data, atol=1e-4, rtol=0)
    seams = run_predict(ckpt, lres, lv, tile=(7, 13, 11), margin=0, device="cpu")
    assert np.abs(seams.data - whole.data).max() > 1e-3


def test_a_2d_image_is_upscaled_and_tiles_exactly():
    rng = np.random.default_rng(1)
    lres = rng.random((30, 26)).astype(np.float32)
    ckpt = lres3d_ckpt((3.0, 3.0), (1.0, 1.0), (0.0, 0.0))
    whole = run_predict(ckpt, lres, (3.0, 3.0), tile=(1000, 1000), device="cpu")
    tiled = run_predict(ckpt, lres, (3.0, 3.0), tile=(20, 17), device="cpu")
    assert whole.data.shape == whole.grid.shape and whole.data.ndim == 2
    assert whole.data.shape[0] >= 88
    np.testing.assert_allclose(tiled.data, whole.data, atol=1e-4, rtol=0)


def test_the_pair_keeps_the_halo_the_network_needs():
    net = build_model("lres3d", blocks=2)
    assert lres_halo(net) == max(net.receptive_radius) + 3


def test_the_default_tile_grows_in_z_while_a_row_of_tiles_fits_its_budget():
    from napari_resolve.learn.inference import plan_predict
    from napari_resolve.learn.tiling import DEFAULT_TILE_LRES_GRID, ROW_BUDGET, lres_grid_tile_z

    assert lres_grid_tile_z((144, 144, 144)) == 144  # a small output: one tile along z
    assert lres_grid_tile_z((60, 144, 144)) == DEFAULT_TILE_LRES_GRID[0]  # never below the default
    wide = int((ROW_BUDGET // 8 // 200) ** 0.5)
    assert lres_grid_tile_z((3000, wide, wide)) == 200
    assert lres_grid_tile_z((3000, 3000, 3000)) == DEFAULT_TILE_LRES_GRID[0]
    lres = np.zeros((50, 20, 20), np.float32)
    plan = plan_predict(lres3d_ckpt((3.0,) * 3, (1.0,) * 3, (0.0,) * 3), lres, 3.0, device="cpu")
    assert plan.tile[0] == 150 and plan.n_tiles == 1
