"""Tiled prediction (napari_resolve.learn.inference): seamless tiling, geometry, streaming, stopping, errors."""

from __future__ import annotations

import dataclasses
import json
import os
from functools import cache

import numpy as np
import pytest
import torch

from napari_resolve.errors import FileFormatError, InputError, ResolveError, VoxelSizeError
from napari_resolve.geometry.grid import Grid, check_roi, resample_lres, upscale_grid
from napari_resolve.io import read_volume, write_volume
from napari_resolve.jobs import Progress, drain
from napari_resolve.learn.inference import (
    PredictPlan,
    TileDone,
    iter_predict,
    plan_predict,
    run_predict,
    tile_starts,
)
from napari_resolve.learn.lres_pairs import PATCH_MARGIN, cut_edge, positions
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.learn.training import TrainConfig, run_train
from napari_resolve.models import build_model
from napari_resolve.models.checkpoint import Checkpoint, save_checkpoint
from napari_resolve.phantom import make_phantom
from napari_resolve.registration import register

LV = (3.0, 3.0, 3.0)
HV = (1.0, 1.0, 1.0)
PHASE = (0.4, -0.3, 0.2)  # a training grid not aligned with the LRES voxel edges
ROI = (slice(4, 10), slice(6, 18), slice(5, 17))  # LRES voxels: an 18 x 36 x 36 output

SMALL = {
    "lres3d": {"width": 4, "blocks": 1, "hidden": 4},
    "unet25d": {"width": 4, "slices": 3},
    "unet25d-stack": {"width": 4, "slices": 3, "out": "stack"},
    "pix2pix": {"width": 4, "slices": 3, "disc_width": 4},
    "srcnn": {"n1": 8, "n2": 4},
    "srcnn3d": {"n1": 4, "n2": 4, "f1": 5, "f3": 3},
    "edsr": {"blocks": 2, "features": 4},
    "wdsr": {"blocks": 2, "features": 4, "expansion": 2},
    # EDSR upscales here: DFCAN (the default) does not tile exactly (see below).
    "multioutput": {
        "denoise": {"name": "unet25d", "width": 4, "slices": 3},
        "deblur": {"name": "unet25d", "width": 4, "slices": 1},
        "upscale": {"name": "edsr", "blocks": 2, "features": 4},
    },
}


@cache
def lres3d() -> np.ndarray:
    return make_phantom(32, 3, seed=2).lres


def make_ckpt(key="unet25d", *, random=True, seed=0, norm_in=None, norm_out=None, voxel=(LV, HV), phase=PHASE):
    name = key.split("-")[0]
    model = build_model(name, **SMALL[key])
    if random:  # random weights everywhere, also the unet's zero head: not the identity
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return Checkpoint(
        architecture=name,
        config=dict(model.config),
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        norm_in=norm_in or Normalisation(0.1, 1.1),
        norm_out=norm_out or Normalisation(-0.5, 2.0),
        lres_voxel_um=voxel[0],
        hres_voxel_um=voxel[1],
        registration=None if phase is None else {"offset_um": list(phase)},
    )


def predict(ckpt, lres=None, **kw):
    return run_predict(ckpt, lres3d() if lres is None else lres, ckpt.lres_voxel_um, device="cpu", **kw)


WHOLE = {"tile": (1000, 1000, 1000), "overlap": (0, 0, 0)}
TILED = {
    # On the LRES grid: no blending overlap is needed, every tile reads the LRES its voxels depend on.
    "lres3d": {"tile": (5, 12, 12), "overlap": (0, 0, 0)},
    # (tile - overlap) not a multiple of 4: tile starts must be rounded to the pooling grid.
    "unet25d": {"tile": (5, 16, 16), "overlap": (0, 6, 6)},
    "unet25d-stack": {"tile": (6, 16, 16), "overlap": (1, 6, 6)},
    "pix2pix": {"tile": (5, 16, 16), "overlap": (0, 6, 6)},
    "srcnn": {"tile": (5, 12, 12), "overlap": (1, 4, 4)},
    "srcnn3d": {"tile": (6, 12, 12), "overlap": (2, 4, 4)},
    "edsr": {"tile": (5, 12, 12), "overlap": (1, 4, 4)},
    "wdsr": {"tile": (5, 16, 12), "overlap": (0, 6, 4)},
    "multioutput": {"tile": (5, 16, 16), "overlap": (0, 6, 6)},
}


# ----------------------------------------------------------------------------- seamless tiling


@pytest.mark.parametrize("key", sorted(SMALL))
def test_tiled_prediction_equals_a_whole_volume_pass(key):
    ckpt = make_ckpt(key)
    whole = predict(ckpt, roi=ROI, **WHOLE)
    assert whole.tiles == 1
    tiled = predict(ckpt, roi=ROI, **TILED[key])
    assert tiled.tiles > 8
    assert tiled.grid == whole.grid
    assert tiled.data.shape == whole.data.shape == whole.grid.shape
    # The network is far from the identity, so this is a real comparison.
    assert np.abs(whole.data - resample_lres(lres3d(), LV, whole.grid)).max() > 0.1
    np.testing.assert_allclose(tiled.data, whole.data, atol=1e-4, rtol=0)
    # Without the margin the tiles see the zero padding at their edges: seams.
    seams = predict(ckpt, roi=ROI, margin=0, **TILED[key])
    assert np.abs(seams.data - whole.data).max() > 1e-3


def dfcan_ckpt(seed=0):
    """A random DFCAN whose Fourier channel attention responds to its input
    (random squeeze layers are often dead, which would make the attention a constant)."""
    from napari_resolve.models.dfcan import FourierChannelAttention

    ckpt = make_ckpt("srcnn", seed=seed)  # the context; the network is replaced below
    model = build_model("dfcan", groups=1, blocks=2, features=8, reduction=2)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for module in model.modules():
            if isinstance(module, FourierChannelAttention):
                module.down.bias.fill_(1.0)
    ckpt.architecture, ckpt.config = "dfcan", dict(model.config)
    ckpt.state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return ckpt


def test_dfcan_tiles_are_close_to_a_whole_volume_pass_but_not_equal():
    """DFCAN's channel attention averages over the whole tile (FFT + global
    pooling), so tiles cannot reproduce a whole pass exactly. With the margin the
    convolutions are exact and only the attention's statistics change from tile
    to tile: measured 0.03 % of the largest correction on 12-voxel tiles (0.016 %
    on 24-voxel ones); without the margin, 131 %."""
    ckpt = dfcan_ckpt()
    whole = predict(ckpt, roi=ROI, **WHOLE)
    correction = np.abs(whole.data - resample_lres(lres3d(), LV, whole.grid)).max()
    assert correction > 1.0  # far from the identity
    small = predict(ckpt, roi=ROI, tile=(5, 12, 12), overlap=(1, 4, 4))
    large = predict(ckpt, roi=ROI, tile=(5, 24, 24), overlap=(0, 8, 8))
    assert small.tiles > large.tiles > 8
    d_small, d_large = np.abs(small.data - whole.data), np.abs(large.data - whole.data)
    assert d_small.max() > 1e-4  # not exact: the attention sees the tile
    assert d_small.max() < 0.003 * correction
    assert d_large.mean() < d_small.mean()  # larger tiles, steadier statistics
    seams = predict(ckpt, roi=ROI, margin=0, tile=(5, 12, 12), overlap=(1, 4, 4))
    assert np.abs(seams.data - whole.data).max() > 100 * d_small.max()


def test_tiling_at_the_lres_border_and_with_gaussian_blending():
    ckpt = make_ckpt("unet25d", seed=3)
    roi = (slice(0, 5), slice(20, 32), slice(0, 10))  # touches three faces of the LRES
    whole = predict(ckpt, roi=roi, **WHOLE)
    tiled = predict(ckpt, roi=roi, blend="gaussian", tile=(5, 16, 12), overlap=(0, 6, 4))
    np.testing.assert_allclose(tiled.data, whole.data, atol=1e-4, rtol=0)


@pytest.mark.parametrize("tiled", [False, True])
def test_at_the_lres_faces_the_network_sees_what_its_training_patches_saw(tiled):
    """Beyond the LRES edge a block holds PATCH_MARGIN edge voxels repeated, then
    the convolutions' zero padding, like every training patch beyond its margin
    (clipped at the edge, the network left a dark band along the field's faces)."""
    ckpt = make_ckpt("lres3d", seed=4)
    lres = lres3d()[:12, :15, :14]
    result = predict(ckpt, lres, **(TILED["lres3d"] if tiled else WHOLE))
    net = build_model("lres3d", **ckpt.config)
    net.load_state_dict(ckpt.state_dict)
    g = result.grid

    def network_on(margin):
        lo = [-margin] * 3
        block = cut_edge(ckpt.norm_in.apply(lres), lo, [n + margin for n in lres.shape])
        pos = [torch.from_numpy(positions(g.origin_um[ax], g.voxel_um[ax], g.shape[ax], LV[ax], lo[ax]))
               for ax in range(3)]
        with torch.inference_mode():
            return ckpt.norm_out.invert(net(torch.from_numpy(block)[None], [p.float() for p in pos])[0].numpy())

    np.testing.assert_allclose(result.data, network_on(PATCH_MARGIN), atol=1e-4, rtol=0)
    assert np.abs(result.data - network_on(0)).max() > 1e-2


@pytest.mark.parametrize("blend", ["linear", "gaussian"])
def test_identity_model_predicts_the_cubic_lres_on_the_output_grid(blend):
    """An untrained unet25d is the identity, so the blended result must be exactly
    the interpolated LRES: blend weights sum to 1 and every tile sits where it belongs."""
    norm = Normalisation(0.2, 1.3)
    ckpt = make_ckpt("unet25d", random=False, norm_in=norm, norm_out=norm)
    result = predict(ckpt, roi=ROI, blend=blend, tile=(8, 20, 16), overlap=(3, 6, 8))
    assert result.grid.shape == (17, 35, 35)  # off-phase: one voxel fewer than 3x the ROI
    assert result.tiles == 3 * 3 * 4  # overlapping on every axis
    expected_grid = upscale_grid(check_roi(ROI, lres3d().shape, "LRES"), LV, HV, PHASE)
    assert result.grid == expected_grid
    np.testing.assert_allclose(result.data, resample_lres(lres3d(), LV, expected_grid), atol=1e-5, rtol=0)


def test_output_grid_follows_the_training_phase():
    ckpt = make_ckpt("unet25d", random=False, phase=PHASE)
    g = predict(ckpt, roi=ROI, **WHOLE).grid
    assert g.voxel_um == HV
    for o, p in zip(g.origin_um, PHASE):
        assert (o - p) == pytest.approx(round(o - p), abs=1e-9)  # a training-grid voxel centre
    no_phase = predict(make_ckpt("unet25d", random=False, phase=None), roi=ROI, **WHOLE).grid
    assert no_phase == upscale_grid(ROI, LV, HV)  # flush with the ROI edges
    # An explicit grid (e.g. exactly the HRES voxels) is used as given.
    grid = Grid((7, 20, 21), HV, (30.4, 25.7, 20.2))
    res = predict(ckpt, grid=grid, tile=(4, 8, 8), overlap=(0, 4, 4))
    assert res.grid == grid and res.data.shape == grid.shape


def test_default_roi_is_the_whole_lres_and_progress_is_reported():
    ckpt = make_ckpt("srcnn", random=False)
    lres = lres3d()[:4, :8, :8]
    plan = plan_predict(ckpt, lres, LV, device="cpu", tile=(6, 12, 12), overlap=(0, 4, 4))
    records = []
    result = drain(iter_predict(plan), records.append)
    assert all(isinstance(r, Progress) and isinstance(r.data, TileDone) for r in records)
    assert plan.n_tiles == len(records)
    # Every tile's box lies in the result, and together they cover it.
    covered = np.zeros(result.grid.shape, bool)
    for r in records:
        covered[r.data.box] = True
    assert covered.all()
    seconds = [r.data.seconds for r in records]
    assert seconds == sorted(seconds) and records[-1].data.voxels >= covered.size
    assert records[0].remaining_s is None  # the first tile includes warm-up: no estimate from it
    assert all(r.remaining_s >= 0 for r in records[1:]) and records[-1].remaining_s == 0
    assert "voxels/s" in records[-1].message
    assert [r.step for r in records] == list(range(1, len(records) + 1)) and {r.total for r in records} == {
        len(records)
    }
    assert result.grid == upscale_grid(check_roi(None, lres.shape, "LRES"), LV, HV, PHASE)
    nz, ny, nx = result.grid.shape
    n_tiles = len(tile_starts(nz, 6, 0)) * len(tile_starts(ny, 12, 4)) * len(tile_starts(nx, 12, 4))
    assert result.tiles == len(records) == n_tiles > 8
    s = result.summary()
    assert s["shape"] == list(result.grid.shape) and s["output"] is None and s["tiles"] == n_tiles


# ----------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_streaming_to_a_file_equals_the_in_memory_result(tmp_path, suffix):
    ckpt = make_ckpt("unet25d", seed=5)
    kw = dict(roi=ROI, tile=(4, 16, 16), overlap=(0, 4, 4))
    mem = predict(ckpt, **kw)
    out = tmp_path / f"up{suffix}"
    res = predict(ckpt, out_path=out, **kw)
    assert res.data is None and res.path == out and res.grid == mem.grid
    assert res.summary()["output"] == str(out)
    vol = read_volume(out)
    np.testing.assert_array_equal(np.asarray(vol.data), mem.data)
    np.testing.assert_allclose(vol.voxel_um, mem.grid.voxel_um)
    np.testing.assert_allclose(vol.origin_um, mem.grid.origin_um, atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == [out.name]  # no temporary files left behind


def test_streaming_a_2d_result(tmp_path):
    ckpt = make_ckpt("unet25d", seed=6, voxel=((3.0, 3.0), (1.0, 1.0)), phase=(0.4, -0.3))
    lres = lres3d()[10]
    mem = predict(ckpt, lres, roi=(slice(2, 14), slice(3, 15)), tile=16, overlap=4)
    assert mem.data.ndim == 2 and mem.data.shape == mem.grid.shape
    out = tmp_path / "up2d.tif"
    predict(ckpt, lres, roi=(slice(2, 14), slice(3, 15)), tile=16, overlap=4, out_path=out)
    vol = read_volume(out)
    np.testing.assert_array_equal(np.asarray(vol.data), mem.data)
    np.testing.assert_allclose(vol.origin_um, mem.grid.origin_um, atol=1e-6)


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_stopping_leaves_no_file(tmp_path, suffix):
    ckpt = make_ckpt("unet25d")
    out = tmp_path / f"up{suffix}"
    gen = iter_predict(ckpt, lres3d(), LV, roi=ROI, tile=(4, 16, 16), overlap=(0, 4, 4), out_path=out, device="cpu")
    records = [next(gen), next(gen)]
    assert records[-1].step == 2 and records[-1].total > 2
    assert os.listdir(tmp_path)  # something is being written...
    gen.close()
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # ...and nothing is left, hidden '.partial' files included


def test_existing_output_is_refused_before_any_tile(tmp_path):
    ckpt = make_ckpt("unet25d")
    out = tmp_path / "up.tif"
    out.write_bytes(b"precious")
    with pytest.raises(FileFormatError, match="already exists") as info:
        iter_predict(ckpt, lres3d(), LV, roi=ROI, out_path=out, device="cpu")  # planned at once: no generator
    assert info.value.parameters == ("overwrite",) and "{overwrite}" in info.value.template
    assert out.read_bytes() == b"precious"
    res = predict(ckpt, roi=ROI, out_path=out, overwrite=True, **WHOLE)
    assert read_volume(out).shape == res.grid.shape
    assert sorted(os.listdir(tmp_path)) == ["up.tif"]


def test_memory_budget():
    ckpt = make_ckpt("unet25d")
    with pytest.raises(ResolveError, match="Write it to a file"):
        next(iter_predict(ckpt, lres3d(), LV, roi=ROI, memory_budget=1000, device="cpu"))


def test_memory_budget_does_not_limit_a_streamed_output(tmp_path):
    ckpt = make_ckpt("srcnn", random=False)
    res = predict(ckpt, roi=(slice(0, 4), slice(0, 6), slice(0, 6)), memory_budget=1000, out_path=tmp_path / "o.zarr")
    assert read_volume(res.path).shape == res.grid.shape


# ----------------------------------------------------------------------------- errors


def test_lres_voxel_size_must_match_the_model():
    ckpt = make_ckpt("unet25d")
    with pytest.raises(VoxelSizeError, match="trained on 3 x 3 x 3 um"):
        run_predict(ckpt, lres3d(), 2.0, roi=ROI, device="cpu")
    with pytest.raises(VoxelSizeError):
        run_predict(ckpt, lres3d(), (3.0, 3.0, 3.3), roi=ROI, device="cpu")
    # Within 1 %: accepted.
    assert run_predict(ckpt, lres3d(), 3.01, roi=ROI, device="cpu", **WHOLE).data is not None


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"blend": "cubic"}, InputError, "Unknown blending"),
        ({"margin": -1}, InputError, "margin"),
        ({"tile": (4, 16, 16), "overlap": (0, 16, 4)}, InputError, "overlap"),
        ({"tile": (4, 8, 8), "overlap": (0, 6, 6)}, InputError, "multiple of 4"),  # unet: pooling by 4
        ({"roi": (slice(0, 40), slice(0, 4), slice(0, 4))}, InputError, "does not fit"),
        ({"out_path": "result.png"}, FileFormatError, "must be .tif"),
    ],
)
def test_bad_arguments(tmp_path, kw, error, match):
    if "out_path" in kw:
        kw = {**kw, "out_path": tmp_path / kw["out_path"]}
    with pytest.raises(error, match=match):
        predict(make_ckpt("unet25d"), **{"roi": ROI, **kw})


def test_model_and_lres_dimensions_must_match():
    with pytest.raises(InputError, match="trained on 3D data; this LRES is 2D"):
        predict(make_ckpt("unet25d"), lres3d()[0])
    with pytest.raises(InputError, match="2D image or a 3D volume"):
        predict(make_ckpt("unet25d"), lres3d()[None])


def test_model_from_a_file(tmp_path):
    ckpt = make_ckpt("srcnn")
    path = save_checkpoint(ckpt, tmp_path / "m.pt")
    a = predict(ckpt, roi=ROI, **WHOLE)
    b = run_predict(path, lres3d(), LV, roi=ROI, device="cpu", **WHOLE)
    np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(FileFormatError):
        run_predict(tmp_path / "none.pt", lres3d(), LV, device="cpu")


# ----------------------------------------------------------------------------- plan, then run


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a network runs or the LRES is interpolated (the first work of a tile)."""

    def forbidden(*_args, **_kwargs):
        raise AssertionError("work started before the plan was complete")

    monkeypatch.setattr(torch.nn.Module, "__call__", forbidden)
    monkeypatch.setattr("napari_resolve.learn.inference.resample_lres", forbidden)
    return monkeypatch


@pytest.mark.parametrize(
    "kw, error, match, parameter",
    [
        ({"roi": (slice(0, 40), slice(0, 4), slice(0, 4))}, InputError, "does not fit", None),
        ({"lres_voxel_um": 2.0}, VoxelSizeError, "trained on 3 x 3 x 3 um", "lres_voxel_um"),
        ({"tile": (4, 8, 8), "overlap": (0, 6, 6)}, InputError, "multiple of 4", "tile"),  # unet: pooling by 4
        ({"tile": (4, 16, 16), "overlap": (0, 16, 4)}, InputError, "smaller than the tile", "overlap"),
        ({"out_path": "exists.tif"}, FileFormatError, "already exists", "overwrite"),
        ({"out_path": "missing/up.tif"}, FileFormatError, "does not exist", "out_path"),
        ({"margin": -2}, InputError, "at least 0", "margin"),
    ],
)
def test_plan_refuses_bad_input_before_any_work(tmp_path, no_work, kw, error, match, parameter):
    (tmp_path / "exists.tif").write_bytes(b"keep")
    kw = dict(kw)
    lv = kw.pop("lres_voxel_um", LV)
    out = tmp_path / kw.pop("out_path", "new.tif")
    with pytest.raises(error, match=match) as info:
        plan_predict(make_ckpt("unet25d"), lres3d(), lv, out_path=out, device="cpu", **{"roi": ROI, **kw})
    if parameter is not None:  # named as a parameter, for the CLI's flag or the widget's label
        assert parameter in info.value.parameters and "{" + parameter + "}" in info.value.template
    assert "--" not in str(info.value)  # no command-line flag in a core message
    assert sorted(os.listdir(tmp_path)) == ["exists.tif"] and (tmp_path / "exists.tif").read_bytes() == b"keep"


def test_a_plan_does_no_work_and_runs_to_the_same_result(tmp_path, no_work):
    ckpt = make_ckpt("unet25d", seed=7)
    out = tmp_path / "up.zarr"
    kw = dict(roi=ROI, tile=(4, 16, 16), overlap=(0, 4, 4), device="cpu")
    plan = plan_predict(ckpt, lres3d(), LV, out_path=out, **kw)
    assert isinstance(plan, PredictPlan) and os.listdir(tmp_path) == []
    assert plan.grid == upscale_grid(ROI, LV, HV, PHASE) and plan.out_path == out and plan.device == "cpu"
    assert plan.tile == (4, 16, 16) and plan.overlap == (0, 4, 4)
    assert plan.n_tiles == np.prod([len(s) for s in plan.spans]) > 8
    assert plan.nbytes == np.prod(plan.grid.shape) * 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.blend = "gaussian"
    with pytest.raises(TypeError):
        iter_predict(plan, lres3d())
    no_work.undo()
    res = run_predict(plan)
    assert res.path == out and res.tiles == plan.n_tiles
    mem = predict(ckpt, **{k: v for k, v in kw.items() if k != "device"})
    np.testing.assert_array_equal(np.asarray(read_volume(out).data), mem.data)


@pytest.mark.parametrize("key", ["lres3d", "unet25d"])
def test_a_tile_that_runs_out_of_memory_is_predicted_in_parts_exactly_and_said_so(monkeypatch, key):
    plan = plan_predict(make_ckpt(key), lres3d(), LV, roi=ROI, device="cpu", **WHOLE)
    forward = plan.network.forward
    sizes = []

    def spy(x, *args):
        sizes.append(x.numel())
        return forward(x, *args)

    monkeypatch.setattr(plan.network, "forward", spy)
    expected = run_predict(plan).data
    whole = sizes[0]

    def small_memory(x, *args):  # a device on which the whole tile does not fit, but its parts do
        if x.numel() >= whole:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x, *args)

    monkeypatch.setattr(plan.network, "forward", small_memory)
    records = []
    result = drain(iter_predict(plan), records.append)
    assert result.tiles == 1
    np.testing.assert_allclose(result.data, expected, atol=1e-4, rtol=0)
    assert "memory, tile 1 was predicted in" in records[0].message and "parts" in records[0].message


def test_out_of_memory_names_the_tile_and_device(monkeypatch):
    plan = plan_predict(make_ckpt("unet25d"), lres3d(), LV, roi=ROI, device="cpu", **WHOLE)

    def oom(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(plan.network, "forward", oom)
    with pytest.raises(ResolveError, match="ran out of memory") as info:
        run_predict(plan)
    assert info.value.parameters == ("tile", "device")
    assert "smaller tile, or set device to cpu" in str(info.value)
    assert "--tile" in info.value.render(lambda name: "--" + name)


class FakeGPU:
    """Memory counters of a made-up GPU on which every output value the network makes costs ``per_voxel`` bytes."""

    def __init__(self, network, per_voxel, available, monkeypatch):
        self.per_voxel, self._available, self.made = per_voxel, available, 0
        forward = network.forward

        def counting(*args):
            out = forward(*args)
            self.made += out.numel()
            return out

        monkeypatch.setattr(network, "forward", counting)

    def reset_peak(self):
        self.made = 0
        return 10**6  # the weights

    def peak(self):
        return 10**6 + self.per_voxel * self.made

    def available(self):
        return self._available


@pytest.mark.parametrize("key", ["lres3d", "unet25d"])
def test_the_default_tile_on_a_gpu_is_sized_from_its_free_memory_exactly(monkeypatch, key):
    from napari_resolve import devices
    from napari_resolve.learn.tiling import MEMORY_SHARE

    plan = plan_predict(make_ckpt(key), lres3d(), LV, roi=ROI, device="cpu")
    expected = run_predict(plan)
    # A GPU with room for about a fifth of the region: the tile shrinks (and the result does not change).
    small = dataclasses.replace(plan, fit_memory=True)
    gpu = FakeGPU(small.network, per_voxel=2000, available=int(2000 * np.prod(plan.grid.shape) / 5 / MEMORY_SHARE),
                  monkeypatch=monkeypatch)
    monkeypatch.setattr(devices, "device_memory", lambda dev: gpu)
    records = []
    result = drain(iter_predict(small), records.append)
    assert "fit the free memory" in records[0].message
    boxes = [r.data.box for r in records if isinstance(r.data, TileDone)]
    assert result.tiles == len(boxes) >= 4 > plan.n_tiles
    for box in boxes:  # every tile within the share of memory it may take
        assert np.prod([s.stop - s.start for s in box]) * gpu.per_voxel <= MEMORY_SHARE * gpu.available()
    np.testing.assert_allclose(result.data, expected.data, atol=1e-5, rtol=0)
    # A GPU with room to spare: one tile where the default needs more (the slice-wise network's 16 slices).
    tiled = plan_predict(make_ckpt(key), lres3d(), LV, roi=ROI, device="cpu", tile=(4, 12, 12) if key == "lres3d"
                         else (16, 16, 16), overlap=(0, 0, 0) if key == "lres3d" else (0, 4, 4))
    big = dataclasses.replace(tiled, fit_memory=True)
    gpu = FakeGPU(big.network, per_voxel=2000, available=10**12, monkeypatch=monkeypatch)
    result = run_predict(big)
    assert result.tiles == 1 < tiled.n_tiles
    np.testing.assert_allclose(result.data, expected.data, atol=1e-5, rtol=0)


def test_memory_tile_shrinks_and_grows_in_whole_multiples_within_the_grid():
    from napari_resolve.learn.tiling import memory_tile

    big = (1000, 1000, 1000)
    assert memory_tile((96, 384, 384), big, (1, 1, 1), 96 * 384 * 384 * 4, 1000) == (96, 768, 768)  # y, x first
    assert memory_tile((96, 384, 384), big, (1, 1, 1), 96 * 384 * 384 * 16, 1000) == (226, 1000, 1000)
    assert memory_tile((96, 384, 384), big, (1, 1, 1), 96 * 384 * 384 * 16, 120) == (120, 1000, 1000)  # z cap
    assert memory_tile((96, 384, 384), big, (1, 1, 1), 96 * 384 * 384 // 4, 1000) == (96, 192, 192)
    assert memory_tile((96, 384, 384), (50, 100, 90), (1, 1, 1), 10**9, 1000) == (50, 100, 90)  # the grid
    tile = memory_tile((16, 128, 128), big, (1, 16, 16), 16 * 200 * 200, 1000)
    assert tile[1] % 16 == tile[2] % 16 == 0 and 16 * 128 * 128 < np.prod(tile) <= 16 * 200 * 200
    assert memory_tile((16, 128, 128), big, (4, 16, 16), 1, 1000) == (4, 16, 16)  # never below one multiple
    assert memory_tile((16, 128, 128), big, (1, 4, 4), 1, 1000, (0, 16, 16)) == (1, 20, 20)  # nor the overlap
    assert memory_tile((16, 128, 128), big, (1, 1, 1), 1, 1000) == (1, 2, 2)  # in-plane at least 2


# ----------------------------------------------------------------------------- command line


@pytest.fixture
def cli_files(tmp_path):
    model = save_checkpoint(make_ckpt("unet25d", seed=4), tmp_path / "m.pt")
    lres = write_volume(tmp_path / "lres.tif", lres3d()[:6, :12, :12], LV)
    return model, lres


@pytest.fixture
def planned(monkeypatch):
    """Every plan the command line makes."""
    from napari_resolve.learn import inference

    plans, real = [], inference.plan_predict

    def spy(*args, **kwargs):
        plans.append(real(*args, **kwargs))
        return plans[-1]

    monkeypatch.setattr(inference, "plan_predict", spy)
    return plans


def _cli_predict(capsys, files, out, *flags):
    from napari_resolve.cli import main

    model, lres = files
    assert main(["predict", str(model), str(lres), "--device", "cpu", "--tile", "16", "-o", str(out), *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_overlap_reaches_the_tiling(cli_files, tmp_path, capsys, planned):
    narrow = _cli_predict(capsys, cli_files, tmp_path / "a.tif", "--overlap", "0")
    wide = _cli_predict(capsys, cli_files, tmp_path / "b.tif", "--overlap", "8")
    assert [p.overlap for p in planned] == [(0, 0, 0), (0, 8, 8)]  # slice-wise model: no z overlap
    assert narrow["shape"] == wide["shape"] == [17, 35, 35]
    # 35 voxels in tiles of 16: steps of 16 (3 tiles per axis) without overlap, of 8 (4 tiles) with it.
    assert (narrow["tiles"], wide["tiles"]) == (2 * 3 * 3, 2 * 4 * 4)
    a, b = (np.asarray(read_volume(tmp_path / n).data) for n in ("a.tif", "b.tif"))
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)  # both seamless: the same result


def test_cli_blend_reaches_the_plan(cli_files, tmp_path, capsys, planned):
    _cli_predict(capsys, cli_files, tmp_path / "g.tif", "--overlap", "4", "--blend", "gaussian")
    _cli_predict(capsys, cli_files, tmp_path / "l.tif", "--overlap", "4")
    assert [p.blend for p in planned] == ["gaussian", "linear"]


def test_cli_refuses_a_tile_too_small_for_the_overlap_naming_the_flags(cli_files, tmp_path, capsys):
    from napari_resolve.cli import main

    model, lres = cli_files
    code = main(["predict", str(model), str(lres), "--device", "cpu", "--tile", "8", "--overlap", "6",
                 "-o", str(tmp_path / "x.tif")])
    err = capsys.readouterr().err
    assert code == 2 and "multiple of 4" in err and "--tile" in err and "--overlap" in err
    assert not (tmp_path / "x.tif").exists()


# ----------------------------------------------------------------------------- 2D


@pytest.fixture(scope="module")
def model2d():
    ph = make_phantom(96, 4, ndim=2, seed=0)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
    cfg = TrainConfig(model_config={"width": 4}, iterations=6, batch_size=4, patch_size=32, device="cpu", seed=0)
    return ph, reg, run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, cfg).checkpoint


def test_2d_prediction_from_a_2d_trained_model(model2d):
    ph, reg, ckpt = model2d
    roi = (slice(30, 50), slice(40, 62))
    whole = run_predict(ckpt, ph.lres, ph.lres_voxel_um, roi=roi, device="cpu", tile=1000)
    g = whole.grid
    assert g.ndim == 2 and whole.data.shape == g.shape == (80, 88)
    assert g.voxel_um == pytest.approx(reg.scale)
    for o, p in zip(g.origin_um, reg.offset_um):  # in phase with the registered HRES
        assert (o - p) == pytest.approx(round(o - p), abs=1e-6)
    assert np.isfinite(whole.data).all()
    # The trained head is not zero any more, and tiles still agree with the whole.
    cubic = resample_lres(ph.lres, ph.lres_voxel_um, g)
    assert np.abs(whole.data - cubic).max() > 1e-3
    tiled = run_predict(ckpt, ph.lres, ph.lres_voxel_um, roi=roi, device="cpu", tile=24, overlap=8)
    assert tiled.tiles > 4
    np.testing.assert_allclose(tiled.data, whole.data, atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- tile_starts


@pytest.mark.parametrize("n", [1, 7, 16, 17, 63, 64, 65, 200])
@pytest.mark.parametrize(
    "tile, overlap, multiple",
    [(16, 4, 1), (16, 4, 4), (32, 8, 8), (24, 0, 4), (8, 3, 1), (12, 8, 4), (1, 0, 1), (2, 0, 1), (3, 1, 1)]
)
def test_tile_starts_cover_the_axis(n, tile, overlap, multiple):
    spans = tile_starts(n, tile, overlap, multiple)
    assert spans[0][0] == 0 and spans[-1][1] == n
    covered = np.zeros(n, bool)
    for a, b in spans:
        assert a % multiple == 0 and 0 < b - a <= tile and b <= n
        covered[a:b] = True
    assert covered.all()
    for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
        assert a0 < a1 and b0 < b1
        assert b0 - a1 >= overlap  # consecutive tiles overlap enough to blend
    if len(spans) > 1:
        assert all(b - a == tile for a, b in spans[:-1])  # only the last one may be shorter
        # Never one voxel where it can start anywhere.
        assert spans[-1][1] - spans[-1][0] >= (2 if multiple == 1 and tile > 1 else 1)


def test_a_last_tile_of_one_voxel_does_not_change_the_result():
    ckpt = make_ckpt("lres3d")
    whole = predict(ckpt, roi=ROI, **WHOLE).data  # 17 x 35 x 35 output voxels
    for tile in ((18, 36, 34), (18, 34, 36)):  # tiles of 34 and then one of one voxel
        np.testing.assert_allclose(predict(ckpt, roi=ROI, tile=tile, overlap=0).data, whole, atol=1e-5, rtol=0)


def test_tile_starts_refuses_a_step_below_the_multiple():
    # Tiles of 8 overlapping by 6 cannot start on multiples of 4 and overlap by 6.
    with pytest.raises(InputError, match="multiple of 4"):
        tile_starts(40, 8, 6, 4)
    assert tile_starts(40, 8, 4, 4)[:2] == [(0, 8), (4, 12)]


def test_tile_and_overlap_arguments():
    from napari_resolve.learn.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, DEFAULT_TILE_Z, overlap_shape, tile_shape

    assert tile_shape(None, False, (1, 4, 4)) == (DEFAULT_TILE_Z, DEFAULT_TILE, DEFAULT_TILE)
    assert tile_shape(30, False, (1, 4, 4)) == (DEFAULT_TILE_Z, 28, 28)  # rounded down to the pooling
    assert tile_shape(30, True, (2, 2, 2)) == (30, 30, 30)  # a 3D network: a cube
    assert tile_shape((40, 24), False, (1, 8, 8)) == (DEFAULT_TILE_Z, 40, 24)  # (y, x)
    assert tile_shape((2, 3, 3), False, (1, 4, 4)) == (2, 4, 4)  # at least one multiple
    assert overlap_shape(None, False) == (0, DEFAULT_OVERLAP, DEFAULT_OVERLAP)
    assert overlap_shape(6, True) == (6, 6, 6) and overlap_shape((1, 2, 3), False) == (1, 2, 3)
    for bad in [(0, 16, 16), (1, 2, 3, 4)]:
        with pytest.raises(InputError, match="tile") as info:
            tile_shape(bad, False, (1, 4, 4))
        assert info.value.parameters == ("tile",)
    with pytest.raises(InputError) as info:
        overlap_shape((1, 2, 3, 4), False)
    assert info.value.parameters == ("overlap",)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_non_finite_prediction_is_refused_and_nothing_is_written(tmp_path):
    """An output that overflows float32 (here: a target range of 6e38) is an error, never a silent NaN/inf file."""
    ckpt = make_ckpt("unet25d", random=False, norm_in=Normalisation(0.2, 1.3), norm_out=Normalisation(-3e38, 3e38))
    out = tmp_path / "up.tif"
    with pytest.raises(ResolveError, match="NaN or infinite voxels .*from a finite LRES, on cpu .*at full "
                                           "precision; nothing was written.*train it again") as info:
        predict(ckpt, roi=ROI, tile=(8, 20, 16), overlap=(3, 6, 8), out_path=out)
    assert "Run on the CPU" not in str(info.value)  # it ran there
    assert os.listdir(tmp_path) == []


def test_a_non_finite_prediction_names_its_cause():
    """An input with NaN: the LRES is named, not the model; mixed precision on a GPU: try the CPU."""
    import torch

    from napari_resolve.errors import InputError
    from napari_resolve.learn.predict_checks import check_finite

    pred = np.full((1, 2, 4, 4), np.nan, np.float32)
    block = torch.ones(1, 3, 4, 4)
    block[0, 1, 2, 2] = float("nan")
    positions = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(InputError, match=r"The LRES holds NaN or infinite voxels: the input of the tile at output "
                                         r"voxels \(0, 8, 16\) has 1 such value, so the prediction there has 32"):
        check_finite(pred, (0, 8, 16), None, "cpu (2 threads)", (block, positions))
    with pytest.raises(ResolveError, match="float16 mixed precision on cuda .*Run on the CPU") as info:
        check_finite(pred, (0, 0, 0), torch.float16, "cuda (NVIDIA H100, 79 GiB)", (torch.ones(1, 3, 4, 4),))
    assert info.value.parameters == ("device",)
    finite = np.ones((1, 2, 4, 4), np.float32)
    assert check_finite(finite, (0, 0, 0), None, "cpu", (block,)) is finite  # a finite output passes
