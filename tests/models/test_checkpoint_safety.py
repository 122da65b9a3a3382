"""Model files someone sent or edited (issue 13): code is never run, settings and weights are bounded."""

import time

import pytest
import torch

from napari_resolve.errors import FileFormatError
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.models import build_model
from napari_resolve.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


def _record(**changes) -> dict:
    model = build_model("unet25d", width=4, depth=2)
    ckpt = Checkpoint(
        architecture="unet25d", config=dict(model.config),
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        norm_in=Normalisation(0.0, 1.0), norm_out=Normalisation(0.0, 1.0),
        lres_voxel_um=(3.0, 3.0, 3.0), hres_voxel_um=(1.0, 1.0, 1.0),
    )
    return {**ckpt.to_dict(), **changes}


class _Payload:
    """Unpickling this would call ``ran.append`` (a harmless stand-in for os.system)."""

    ran: list = []

    def __reduce__(self):
        return (_Payload.ran.append, ("code ran",))


def test_a_file_holding_code_is_refused_for_safety_and_the_code_never_runs(tmp_path):
    path = tmp_path / "gift.pt"
    torch.save({**_record(), "extra": {"payload": _Payload()}}, path)
    with pytest.raises(FileFormatError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "objects or code" in message and "for safety" in message and "written by napari-resolve" in message
    assert "damaged" not in message and message.endswith(".")
    assert _Payload.ran == []


def test_a_huge_network_setting_in_a_small_file_is_refused_before_allocating(tmp_path):
    record = _record()
    record["config"] = {**record["config"], "width": 10**6}  # ~5e14 weights, terabytes if allocated
    torch.save(record, tmp_path / "huge.pt")
    start = time.perf_counter()
    with pytest.raises(FileFormatError, match="do not fit a unet25d network"):
        load_checkpoint(tmp_path / "huge.pt")
    assert time.perf_counter() - start < 10.0


def test_non_finite_weights_are_refused(tmp_path):
    record = _record()
    weights = dict(record["state_dict"])
    key = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[key] = weights[key].clone()
    weights[key].view(-1)[0] = float("nan")
    record["state_dict"] = weights
    torch.save(record, tmp_path / "nan.pt")
    with pytest.raises(FileFormatError, match=f"NaN or infinite values \\({key}"):
        load_checkpoint(tmp_path / "nan.pt")


@pytest.mark.parametrize(
    "lres, hres, match",
    [((0.0, 3.0, 3.0), (1.0, 1.0, 1.0), "positive"),
     ((3.0, 3.0, 3.0), (6.0, 6.0, 6.0), "larger than the LRES"),
     ((3.0, 3.0), (1.0, 1.0, 1.0), "2 LRES and 3 HRES")],
    ids=["zero", "swapped", "lengths"],
)
def test_voxel_sizes_a_model_cannot_have_are_refused(tmp_path, lres, hres, match):
    torch.save(_record(lres_voxel_um=list(lres), hres_voxel_um=list(hres)), tmp_path / "odd.pt")
    with pytest.raises(FileFormatError, match=match):
        load_checkpoint(tmp_path / "odd.pt")


def test_a_valid_file_still_loads(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save(_record(), path)
    assert load_checkpoint(path).ratio == (3.0, 3.0, 3.0)
    assert save_checkpoint(load_checkpoint(path), tmp_path / "copy.pt").is_file()


def test_junk_bytes_are_called_damaged_not_unsafe(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(FileFormatError, match="cannot be read as a model file .*damaged") as info:
        load_checkpoint(junk)
    assert "safety" not in str(info.value)
