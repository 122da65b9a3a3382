"""Exporting a model (napari_resolve.learn.export): TorchScript and ONNX reproduce the model, the sidecar suffices."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from napari_resolve.errors import FileFormatError, InputError
from napari_resolve.geometry.grid import Grid, resample_lres
from napari_resolve.learn.export import example_inputs, export_model, sidecar_path
from napari_resolve.learn.inference import run_predict
from napari_resolve.learn.lres_pairs import lres_halo, tile_block
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.models import build_model
from napari_resolve.models.checkpoint import Checkpoint
from napari_resolve.phantom import make_phantom

# torch.jit is deprecated in favour of torch.export, which other tools do not load: the tests load it all the same.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

LV, HV = (3.0, 3.0, 3.0), (1.0, 1.0, 1.0)
SMALL = {"lres3d": {"width": 4, "blocks": 1, "hidden": 4}, "lres3d-norefine": {"width": 4, "blocks": 1, "refine": 0},
         "unet25d": {"width": 4, "slices": 3}, "diffusion": {"width": 4, "slices": 3, "depth": 1, "convs": 1}}


def ckpt(key, seed=0):
    name = key.split("-")[0]
    net = build_model(name, **SMALL[key])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():  # random everywhere, the zero heads too: far from the identity
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return Checkpoint(name, dict(net.config), {k: v.clone() for k, v in net.state_dict().items()},
                      Normalisation(0.1, 1.1), Normalisation(-0.5, 2.0), LV, HV,
                      registration={"offset_um": [0.4, -0.3, 0.2]})


def by_hand(record, script, *inputs):
    """The exported file applied as another tool would: the sidecar's normalisations around it."""
    nin, nout = record["normalisation"]["input"], record["normalisation"]["output"]
    first = (inputs[0] - nin["low"]) / (nin["high"] - nin["low"])
    with torch.inference_mode():
        y = script(torch.from_numpy(first.astype(np.float32))[None], *(torch.from_numpy(p) for p in inputs[1:]))
    return y[0].numpy() * (nout["high"] - nout["low"]) + nout["low"]


@pytest.mark.parametrize("key", ["lres3d", "lres3d-norefine"])
def test_exported_lres3d_reproduces_the_prediction(key, tmp_path):
    model = ckpt(key)
    result = export_model(model, tmp_path / "m.torchscript.pt")
    assert result.onnx is None and result.max_abs_diff["torchscript"] < 1e-5
    record = json.loads(sidecar_path(result.torchscript).read_text())
    assert record == result.record
    assert record["input_grid"] == "lres" and [i["name"] for i in record["inputs"]] == ["block", "pz", "py", "px"]
    assert record["lres_voxel_um"] == list(LV) and record["phase_origin_um"] == [0.4, -0.3, 0.2]
    assert record["dynamic_shapes"] is True and record["halo"][0] == lres_halo(model.build())
    script = torch.jit.load(str(result.torchscript))
    # What the prediction computes on a region: one tile cut as inference cuts it, with the sidecar's halo.
    lres = make_phantom(24, 3, seed=2).lres * 3.0 + 0.5  # grey values the normalisation has to map
    roi = (slice(5, 11), slice(4, 12), slice(6, 13))
    ref = run_predict(model, lres, LV, roi=roi, device="cpu", tile=(1000, 1000, 1000))
    box = tuple((0, n) for n in ref.grid.shape)
    block, pos = tile_block(lres, LV, ref.grid, box, record["halo"])
    got = by_hand(record, script, block, *pos)
    assert got.shape == ref.data.shape and np.abs(ref.data).max() > 1
    assert np.abs(got - ref.data).max() < 1e-5


def test_exported_unet25d_reproduces_the_model_on_inputs_of_any_size(tmp_path):
    model = ckpt("unet25d", seed=3)
    result = export_model(model, tmp_path / "u.torchscript.pt")
    record = json.loads(result.sidecar.read_text())
    assert result.sidecar.name == "u.torchscript.json"
    assert record["input_grid"] == "hres" and record["slices"] == 3 and record["trim_z"] == 1
    assert record["size_multiple"] == [1, 4, 4] and record["dynamic_shapes"] is True
    script = torch.jit.load(str(result.torchscript))
    net = model.build()
    lres = make_phantom(24, 3, seed=2).lres * 3.0 + 0.5
    for shape in ((5, 32, 32), (7, 40, 48)):  # the pre-upsampled LRES on a grid of the output voxels
        x = resample_lres(lres, LV, Grid(shape, HV, (20.0, 18.5, 16.0)))
        got = by_hand(record, script, x)
        with torch.inference_mode():
            want = net(torch.from_numpy(model.norm_in.apply(x))[None])[0].numpy()
        want = model.norm_out.invert(want)
        assert got.shape == (shape[0] - 2, *shape[1:]) and np.abs(want).max() > 1
        assert np.abs(got - want).max() < 1e-5


def test_cli_export_with_onnx(tiny_model, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from napari_resolve.cli import main

    out, onnx = tmp_path / "m.torchscript.pt", tmp_path / "m.onnx"
    assert main(["export", str(tiny_model), "-o", str(out), "--onnx", str(onnx)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["onnx"] == str(onnx) and summary["architecture"] == "lres3d"
    assert summary["max_abs_diff"]["torchscript"] < 1e-5 and summary["max_abs_diff"]["onnx"] < 1e-5
    record = json.loads((tmp_path / "m.torchscript.json").read_text())
    assert record["files"] == {"model": "m.pt", "torchscript": out.name, "onnx": onnx.name}
    # The ONNX file on an input of another size than the example it was exported on.
    from napari_resolve.models.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_model)
    net = model.build()
    args = example_inputs(model, net, larger=True, seed=5)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: a.numpy() for n, a in zip(("block", "pz", "py", "px"), args)})[0]
    with torch.inference_mode():
        want = net(args[0], tuple(args[1:])).numpy()
    assert record["onnx_dynamic_shapes"] is True and np.abs(got - want).max() < 1e-5
    # Existing outputs are refused before any work, naming the flag.
    assert main(["export", str(tiny_model), "-o", str(out), "--onnx", str(onnx)]) == 2
    err = capsys.readouterr().err
    assert "m.torchscript.pt already exists" in err and "--overwrite" in err


def test_without_the_onnx_packages_onnx_is_skipped_with_a_note(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.warns(UserWarning, match="ONNX was skipped: the onnx and onnxscript packages are not installed"):
        result = export_model(ckpt("unet25d"), tmp_path / "u.pt", onnx_path=tmp_path / "u.onnx")
    assert result.onnx is None and result.torchscript.exists() and not (tmp_path / "u.onnx").exists()
    assert result.summary()["notes"] and json.loads(result.sidecar.read_text())["files"]["onnx"] is None


def test_what_export_refuses(tmp_path):
    with pytest.raises(InputError, match="diffusion model cannot be exported"):
        export_model(ckpt("diffusion"), tmp_path / "d.pt")
    with pytest.raises(InputError, match="three different files"):
        export_model(ckpt("unet25d"), tmp_path / "u.json")
    with pytest.raises(InputError, match="three different files"):
        export_model(ckpt("unet25d"), tmp_path / "u.pt", onnx_path=tmp_path / "u.json")
    (tmp_path / "u.json").write_text("{}")
    with pytest.raises(FileFormatError, match="exists"):  # the sidecar too is never replaced silently
        export_model(ckpt("unet25d"), tmp_path / "u.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.json"]
