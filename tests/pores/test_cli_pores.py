"""``napari-resolve pores A B C --registration REG.json``: several inputs side by side on their common box."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_resolve.cli import main
from napari_resolve.io import read_volume, write_volume
from napari_resolve.registration import Registration


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


@pytest.fixture(scope="module")
def offset(foam_registration):
    return np.asarray(Registration.load(foam_registration).offset_um)


def _rows(result):
    return {row["name"]: row for row in result["inputs"]}


def test_lres_truth_and_registered_hres_on_the_hres_box(foam_dir, foam_registration, offset, capsys, tmp_path):
    out, labels = tmp_path / "pores.csv", tmp_path / "labels.tif"
    code, result, err = run(capsys, "pores", foam_dir / "lres.tif", foam_dir / "truth.tif", foam_dir / "hres.tif",
                            "--registration", foam_registration, "-o", out, "--labels", labels)
    assert code == 0, err
    # The common box is the registered HRES's: 48 voxels of 1 um from its first voxel's edge.
    region = result["region"]
    np.testing.assert_allclose(region["lo_um"], offset - 0.5, atol=1e-9)
    np.testing.assert_allclose(region["size_um"], (48, 48, 48), atol=1e-9)
    assert result["registered"] == "hres"
    rows = _rows(result)
    assert list(rows) == ["lres", "truth", "hres"]
    assert rows["lres"]["shape"] == [16, 16, 16] and rows["hres"]["shape"] == [48, 48, 48]
    assert rows["truth"]["shape"] == [48, 48, 48] and rows["hres"]["file"] == str(foam_dir / "hres.tif")
    np.testing.assert_allclose(rows["hres"]["origin_um"], offset)
    # Phantom: LRES 33.6 %, HRES 33.1 %, truth 33.3 % on this box.
    porosity = {name: row["porosity_percent"] for name, row in rows.items()}
    assert all(30 < p < 37 for p in porosity.values()), porosity
    assert abs(porosity["hres"] - porosity["truth"]) < 0.5
    assert abs(porosity["lres"] - porosity["hres"]) < 1.5
    assert rows["hres"]["pore_count"] >= 3 * rows["lres"]["pore_count"]
    assert all(8 < row["mean_diameter_um"] < 13 for row in rows.values())
    assert rows["hres"]["mean_sphericity"] > 0.9
    # Progress on stderr names the inputs, one line a step.
    assert "[300/300] hres: " in err and "truth (2/3): " in err

    # The CSV: one row per input, the same figures, the region as "z y x".
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["name"] for r in table] == ["lres", "truth", "hres"]
    for r in table:
        assert float(r["porosity_percent"]) == pytest.approx(porosity[r["name"]], abs=1e-9)
        assert int(r["pore_count"]) == rows[r["name"]]["pore_count"]
        np.testing.assert_allclose([float(v) for v in r["region_hi_um"].split()], region["hi_um"], atol=1e-6)
    assert result["csv"] == str(out)
    # One label image per input, lying over the crop it came from.
    for name, row in rows.items():
        vol = read_volume(tmp_path / f"labels_{name}.tif")
        assert vol.shape == tuple(row["shape"]) and vol.voxel_um == tuple(row["voxel_um"])
        np.testing.assert_allclose(vol.origin_um, row["origin_um"], atol=1e-6)
        assert int(np.asarray(vol.data).max()) == row["pore_count"]


def test_registered_input_by_position_and_whole_region(foam_dir, foam_registration, capsys):
    code, first, err = run(capsys, "pores", foam_dir / "hres.tif", foam_dir / "lres.tif", "--registration",
                           foam_registration, "--registered", "1")
    assert code == 0, err
    assert first["registered"] == "hres" and [r["name"] for r in first["inputs"]] == ["hres", "lres"]
    assert _rows(first)["lres"]["shape"] == [16, 16, 16]
    # Whole inputs: the 120 um LRES field is compared with the 48 um HRES; no common region.
    code, whole, err = run(capsys, "pores", foam_dir / "lres.tif", foam_dir / "hres.tif", "--registration",
                           foam_registration, "--region", "whole")
    assert code == 0, err
    assert whole["region"] is None
    assert _rows(whole)["lres"]["shape"] == [40, 40, 40]
    assert _rows(whole)["hres"]["porosity_percent"] == pytest.approx(_rows(first)["hres"]["porosity_percent"])


def test_without_registration_inputs_lie_by_their_own_origin(foam_dir, capsys):
    # The truth file carries its origin: it covers the whole LRES field, so the box is the LRES's.
    code, result, err = run(capsys, "pores", foam_dir / "lres.tif", foam_dir / "truth.tif", "--min-diameter", "6")
    assert code == 0, err
    assert result["registered"] is None
    np.testing.assert_allclose(result["region"]["lo_um"], (-1.5, -1.5, -1.5))
    np.testing.assert_allclose(result["region"]["size_um"], (120, 120, 120))  # 40 LRES voxels = 120 truth voxels
    assert _rows(result)["lres"]["shape"] == [40, 40, 40] and _rows(result)["truth"]["shape"] == [120, 120, 120]
    # Over the whole field the LRES loses the small pores the truth holds (phantom: 19.5 % against 25.9 %).
    lres, truth = _rows(result)["lres"], _rows(result)["truth"]
    assert truth["porosity_percent"] - lres["porosity_percent"] > 3
    assert truth["pores_per_mm3"] > 2 * lres["pores_per_mm3"]
    assert truth["mean_diameter_um"] > 6  # --min-diameter 6 dropped the smaller objects


def _one_line_error(capsys, *argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1, err
    return err


def test_refusals_are_one_line_with_status_2(foam_dir, foam_registration, capsys, tmp_path):
    lres, hres = foam_dir / "lres.tif", foam_dir / "hres.tif"
    err = _one_line_error(capsys, "pores", hres, "--registration", foam_registration)
    assert "--registration places the HRES among the inputs" in err
    for bad in ("3", "0", "-1"):
        err = _one_line_error(capsys, "pores", lres, hres, "--registration", foam_registration, "--registered", bad)
        assert f"--registered is the position of the HRES among the 2 inputs, 1 to 2; got {bad}" in err
    err = _one_line_error(capsys, "pores", lres, hres, "--registered", "2")
    assert "--registered applies to the input placed by a registration; give --registration too" in err
    err = _one_line_error(capsys, "pores", lres, "--min-diameter", "-2")
    assert "--min-diameter must be a length >= 0" in err

    # A registration that places the HRES outside the LRES: no common box.
    far = Registration.load(foam_registration)
    far.offset_um = (1000.0, 1000.0, 1000.0)
    far_json = far.save(tmp_path / "far.json")
    err = _one_line_error(capsys, "pores", lres, hres, "--registration", far_json)
    assert "'lres', 'hres' do not overlap" in err and "(--region)" in err
    # ... as for an input whose own origin lies elsewhere.
    elsewhere = tmp_path / "elsewhere.tif"
    write_volume(elsewhere, np.asarray(read_volume(hres).data), 1.0, origin_um=(500.0, 0.0, 0.0))
    err = _one_line_error(capsys, "pores", lres, elsewhere)
    assert "do not overlap (along z)" in err

    # Outputs are checked before any work: an existing CSV is left untouched; an input is never an output.
    taken = tmp_path / "taken.csv"
    taken.write_text("mine")
    err = _one_line_error(capsys, "pores", lres, hres, "--registration", foam_registration, "-o", taken)
    assert "already exists" in err and "--overwrite" in err and taken.read_text() == "mine"
    err = _one_line_error(capsys, "pores", lres, hres, "--registration", foam_registration, "-o", foam_registration,
                          "--overwrite")
    assert "one of the inputs" in err and "--output" in err
    # One fixed grey value must lie in every input's range; the message says which.
    err = _one_line_error(capsys, "pores", lres, hres, "--registration", foam_registration, "--threshold", "7")
    assert err.startswith("napari-resolve pores: error: lres: The --threshold 7 lies outside")


def test_a_sample_mask_that_leaves_out_the_network_is_reported(capsys, tmp_path):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    field = ndi.gaussian_filter(rng.standard_normal((32, 48, 48)), 2)
    pores = field < np.median(field)
    image = np.where(pores, 0.2, 0.8).astype(np.float32) + rng.normal(0, 0.03, pores.shape).astype(np.float32)
    path = write_volume(tmp_path / "network.tif", image, 1.0)
    # One image: the automatic mask takes the network for air; the JSON and stderr say so, with the flag.
    code, result, err = run(capsys, "pores", path)
    assert code == 0, err
    (warning,) = result["warnings"]
    assert "leaves out" in warning and "(--sample-mask)" in warning and "{" not in warning
    assert result["discarded_fraction"] > 0.5 and result["porosity"] < 0.2
    assert "note: The sample mask leaves out" in err
    code, result, err = run(capsys, "pores", path, "--sample-mask", "none")
    assert code == 0, err
    assert result["warnings"] == [] and abs(result["porosity"] - pores.mean()) < 0.03 and "note:" not in err
    # Several inputs: each row carries its own warnings.
    code, result, err = run(capsys, "pores", path, path, "--region", "whole")
    assert code == 0, err
    assert all(len(row["warnings"]) == 1 and "--sample-mask" in row["warnings"][0] for row in result["inputs"])
    assert "note: network: The sample mask" in err
