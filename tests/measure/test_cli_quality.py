"""`napari-resolve quality UPSCALED HRES --registration REG.json`: a result on its own grid vs the placed HRES."""

import json
import math

import numpy as np
import pytest

from napari_resolve.cli import main
from napari_resolve.io import read_volume, write_volume
from napari_resolve.registration import Registration


def _strict(token):
    raise ValueError(f"{token} is not strict JSON")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    if code == 0:
        out = json.loads(out, parse_constant=_strict)
    return code, out, err


@pytest.fixture(scope="module")
def upscaled(foam_dir, foam_registration, tiny_model, tmp_path_factory):
    """``predict`` output over the whole registered HRES (plus a voxel of margin), as a user makes it."""
    reg = Registration.load(foam_registration)
    hres = read_volume(foam_dir / "hres.tif")
    lres_voxel = np.asarray(read_volume(foam_dir / "lres.tif").voxel_um)
    first = np.asarray(reg.offset_um)
    last = first + (np.asarray(hres.shape) - 1) * np.asarray(reg.scale)
    lo = np.floor(first / lres_voxel).astype(int) - 1
    hi = np.ceil(last / lres_voxel).astype(int) + 2
    roi = ",".join(f"{a}:{b}" for a, b in zip(lo, hi))
    out = tmp_path_factory.mktemp("upscaled") / "up.tif"
    argv = ["predict", str(tiny_model), str(foam_dir / "lres.tif"), "--roi", roi, "--tile", "32", "--device", "cpu",
            "-o", str(out)]
    assert main(argv) == 0
    return out


@pytest.mark.slow
def test_quality_on_the_registered_overlap(upscaled, foam_dir, foam_registration, capsys, tmp_path):
    reg = Registration.load(foam_registration)
    hres = read_volume(foam_dir / "hres.tif")
    up = read_volume(upscaled)
    assert up.shape != hres.shape  # different grids: only the registration relates them
    qmap, smap = tmp_path / "ms.tif", tmp_path / "ssim.tif"
    code, res, err = run(capsys, "quality", upscaled, foam_dir / "hres.tif", "--registration", foam_registration,
                         "--map", qmap, "--ssim-map", smap)
    assert code == 0, err
    ov = res["overlap"]
    # The result covers the whole HRES, so the overlap is all of it, placed where the registration says.
    assert tuple(ov["shape"]) == hres.shape
    assert ov["origin_um"] == pytest.approx(reg.offset_um, abs=1e-6)
    assert ov["voxel_um"] == pytest.approx(reg.scale)
    lo, hi = np.array(ov["box_um"]["lo"]), np.array(ov["box_um"]["hi"])
    np.testing.assert_allclose(hi - lo, np.array(hres.shape) * np.asarray(reg.scale), atol=1e-6)
    assert math.isfinite(res["psnr"]) and 0 < res["ms_ssim"] < 1 and res["mse"] > 0
    assert set(res) >= {"mse", "psnr", "ssim", "ms_ssim", "data_range", "ms_ssim_scales", "regions", "resolution"}
    assert res["resolution"]["fwhm_um"] >= 0 and len(res["regions"]) == 10

    # The same numbers as the same-grid call on the arrays cropped to that overlap.
    box = tuple(slice(int(a), int(b)) for a, b in ov["hres_box"])
    start = np.rint((np.asarray(ov["origin_um"]) - np.asarray(up.origin_um)) / np.asarray(up.voxel_um)).astype(int)
    crop = np.asarray(up.data)[tuple(slice(int(s), int(s) + n) for s, n in zip(start, ov["shape"]))]
    a = write_volume(tmp_path / "a.tif", crop, up.voxel_um)
    b = write_volume(tmp_path / "b.tif", np.asarray(hres.data)[box], up.voxel_um)
    code, same, err = run(capsys, "quality", a, b)
    assert code == 0, err
    margin = 1e-4 if ov["cropped_exactly"] else 0.5  # dB: exact crop, or the cubic resampling of the result
    assert res["psnr"] == pytest.approx(same["psnr"], abs=margin)
    assert res["data_range"] == pytest.approx(same["data_range"])

    # Both maps on the overlap grid: its shape, the HRES voxel and the overlap's origin.
    for path, key in ((qmap, "ms_ssim_map"), (smap, "ssim_map")):
        m = read_volume(path)
        assert res[key] == str(path) and m.shape == hres.shape
        assert m.voxel_um == pytest.approx(reg.scale) and m.origin_um == pytest.approx(ov["origin_um"], abs=1e-6)
    assert float(np.mean(read_volume(qmap).data)) == pytest.approx(res["ms_ssim_map_mean"], abs=1e-6)

    # --data-range reaches every metric: twice the range, PSNR 6.02 dB higher.
    code, wide, err = run(capsys, "quality", upscaled, foam_dir / "hres.tif", "--registration", foam_registration,
                          "--data-range", 2 * res["data_range"])
    assert code == 0, err
    assert wide["data_range"] == pytest.approx(2 * res["data_range"])
    assert wide["psnr"] - res["psnr"] == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert wide["ssim"] > res["ssim"]

    # Outputs are checked before any work: an existing map is kept without --overwrite.
    before = qmap.read_bytes()
    code, _, err = run(capsys, "quality", upscaled, foam_dir / "hres.tif", "--registration", foam_registration,
                       "--map", qmap)
    assert code == 2 and "--overwrite" in err and err.count("\n") == 1 and qmap.read_bytes() == before


@pytest.mark.slow
def test_quality_refusals(upscaled, foam_dir, foam_registration, capsys, tmp_path):
    up = read_volume(upscaled)
    # Different grids without --registration: refused, pointing at the flag.
    code, _, err = run(capsys, "quality", upscaled, foam_dir / "hres.tif")
    assert code == 2 and "--registration" in err and err.count("\n") == 1 and "Traceback" not in err
    # Placed away from the HRES: no overlap.
    far = write_volume(tmp_path / "far.tif", np.asarray(up.data), up.voxel_um,
                       origin_um=tuple(np.asarray(up.origin_um) + np.array([0.0, 1000.0, 0.0])))
    out = tmp_path / "map.tif"
    code, _, err = run(capsys, "quality", far, foam_dir / "hres.tif", "--registration", foam_registration,
                       "--map", out)
    assert code == 2 and "does not overlap" in err and err.count("\n") == 1 and not out.exists()
    # A bad data range names the flag, not the parameter.
    code, _, err = run(capsys, "quality", upscaled, foam_dir / "hres.tif", "--registration", foam_registration,
                       "--data-range", "-1")
    assert code == 2 and "--data-range" in err and "{" not in err
    # The map may not replace an input.
    code, _, err = run(capsys, "quality", upscaled, foam_dir / "hres.tif", "--registration", foam_registration,
                       "--map", upscaled)
    assert code == 2 and err.count("\n") == 1
