"""Several inputs' pores on their common box (pores/compare.py), without Qt: the phantom's LRES, HRES and truth."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_resolve.errors import FileFormatError, InputError, VoxelSizeError
from napari_resolve.io import read_volume
from napari_resolve.jobs import drain
from napari_resolve.pores.compare import (
    ComparePlan,
    MeasuredInput,
    PoreInput,
    iter_compare_pores,
    min_volume_voxels,
    plan_compare_pores,
    run_compare_pores,
    summary_row,
    write_csv,
    write_tables,
)
from napari_resolve.registration import Registration


@pytest.fixture(scope="module")
def foam_inputs(foam_dir, foam_registration):
    """The LRES on its grid, the truth with its origin, the HRES placed by the registration."""
    reg = Registration.load(foam_registration)
    lres, hres, truth = (read_volume(foam_dir / f"{n}.tif") for n in ("lres", "hres", "truth"))
    return [
        PoreInput("lres", np.asarray(lres.data), lres.voxel_um, lres.origin_um),
        PoreInput("truth", np.asarray(truth.data), truth.voxel_um, truth.origin_um),
        PoreInput("hres", np.asarray(hres.data), reg.scale, reg.offset_um),
    ]


@pytest.fixture(scope="module")
def compared(foam_inputs):
    records = []
    result = drain(iter_compare_pores(plan_compare_pores(foam_inputs)), records.append)
    return result, records


def test_inputs_are_measured_on_the_hres_box(foam_inputs, compared):
    result, records = compared
    hres = foam_inputs[2]
    lo, hi = np.asarray(hres.origin_um) - 0.5, np.asarray(hres.origin_um) + 47.5  # 48 voxels of 1 um
    np.testing.assert_allclose(result.region, (lo, hi), atol=1e-9)
    by_name = {m.name: m for m in result.measured}
    assert list(by_name) == ["lres", "truth", "hres"]
    # The HRES whole; the truth's 1 um voxels in the box; the LRES's 3 um voxels whose centres lie in it.
    assert by_name["hres"].result.labels.shape == (48, 48, 48)
    assert by_name["truth"].result.labels.shape == (48, 48, 48)
    assert by_name["lres"].result.labels.shape == (16, 16, 16)
    for m in result.measured:
        first = np.asarray(m.origin_um)
        last = first + np.asarray(m.voxel_um) * (np.asarray(m.result.labels.shape) - 1)
        assert np.all(first >= lo - 1e-9) and np.all(first < lo + m.voxel_um)
        assert np.all(last <= hi + 1e-9) and np.all(last > hi - m.voxel_um)
    # The crops stay on their inputs' grids: the LRES labels lie exactly over LRES voxels.
    start = np.asarray(by_name["lres"].origin_um) / 3
    np.testing.assert_allclose(start, np.round(start), atol=1e-9)
    assert by_name["lres"].box == tuple(slice(int(s), int(s) + 16) for s in np.round(start))

    # On the same piece of sample the porosities agree (phantom: LRES 33.6 %, HRES 33.1 %, truth 33.3 %).
    porosity = {m.name: 100 * m.result.porosity for m in result.measured}
    assert all(30 < p < 37 for p in porosity.values()), porosity
    assert abs(porosity["hres"] - porosity["truth"]) < 0.5
    assert abs(porosity["lres"] - porosity["hres"]) < 1.5
    # ... while the LRES misses the small pores the HRES and the truth count.
    count = {m.name: m.result.count for m in result.measured}
    assert count["hres"] == count["truth"] and count["hres"] >= 3 * count["lres"]

    # Progress: 100 steps an input, in order, naming the input; one record per input carries its result.
    assert {r.total for r in records} == {300}
    assert [r.step for r in records] == sorted(r.step for r in records)
    measured = [r for r in records if r.data is not None]
    assert [r.data.name for r in measured] == ["lres", "truth", "hres"]
    assert all(isinstance(r.data, MeasuredInput) for r in measured)
    assert [r.step for r in measured] == [100, 200, 300]
    assert any(r.message.startswith("truth (2/3): ") for r in records)

    # Strict JSON: the region in um and one row per input.
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    np.testing.assert_allclose(payload["region"]["size_um"], (48, 48, 48))
    rows = payload["inputs"]
    assert [r["name"] for r in rows] == ["lres", "truth", "hres"]
    assert rows[0]["shape"] == [16, 16, 16] and rows[0]["voxel_um"] == [3.0, 3.0, 3.0]
    assert rows[2]["porosity_percent"] == pytest.approx(porosity["hres"])
    assert rows[2]["pore_count"] == count["hres"] and 0.9 < rows[2]["mean_sphericity"] <= 1


def test_whole_inputs_and_a_given_box(foam_inputs, compared):
    whole = run_compare_pores(foam_inputs[::2], region="whole")
    assert whole.region is None
    assert [m.result.labels.shape for m in whole.measured] == [(40, 40, 40), (48, 48, 48)]
    assert all(m.region is None and m.row()["region_lo_um"] is None for m in whole.measured)
    # A box given in um: the common box again gives the same figures.
    common, _ = compared
    again = run_compare_pores(foam_inputs, region=common.region)
    for a, b in zip(again.measured, common.measured):
        assert a.result.porosity == b.result.porosity and a.box == b.box
    # One input overlaps itself: measured whole.
    alone = run_compare_pores(foam_inputs[:1])
    assert alone.region is None and alone.measured[0].result.labels.shape == (40, 40, 40)


def test_only_the_crop_of_a_lazy_input_is_read(foam_inputs, compared):
    class Lazy:
        """An array that records what is read of it (no __array__: reading it whole would fail)."""

        def __init__(self, data):
            self.data, self.shape, self.reads = data, data.shape, []

        def __getitem__(self, box):
            self.reads.append(box)
            return self.data[box]

    lres = foam_inputs[0]
    lazy = Lazy(lres.image)
    plan = plan_compare_pores([PoreInput("lazy", lazy, lres.voxel_um, lres.origin_um), *foam_inputs[1:]])
    assert isinstance(plan, ComparePlan) and plan.names == ["lazy", "truth", "hres"]
    assert len(lazy.reads) == 1 and tuple(s.stop - s.start for s in lazy.reads[0]) == (16, 16, 16)
    common, _ = compared
    np.testing.assert_array_equal(drain(iter_compare_pores(plan)).measured[0].result.labels,
                                  common.measured[0].result.labels)


def test_refusals_happen_in_the_plan_and_name_the_input_and_parameter(foam_inputs):
    lres, truth, hres = foam_inputs
    with pytest.raises(InputError, match="at least one image"):
        plan_compare_pores([])
    # Mappings and tuples are inputs too.
    plan = plan_compare_pores([{"name": "a", "array": lres.image, "voxel_um": 3.0},
                               ("b", hres.image, hres.voxel_um, hres.origin_um)])
    assert plan.names == ["a", "b"] and plan.items[0].plan.shape == (16, 16, 16)
    with pytest.raises(InputError, match="lacks its name or image"):
        plan_compare_pores([{"name": "a", "voxel_um": 3.0}])
    with pytest.raises(InputError, match="'lres' is given more than once"):
        plan_compare_pores([lres, lres])
    far = PoreInput("far", hres.image, hres.voxel_um, (1000.0, 1000.0, 1000.0))
    with pytest.raises(InputError, match="do not overlap") as info:
        plan_compare_pores([lres, far])
    assert "'lres', 'far'" in str(info.value) and info.value.parameters == ("region",)
    assert "measure whole inputs instead (--region)" in info.value.render(lambda p: "--" + p)
    assert plan_compare_pores([lres, far], region="whole").region is None
    flat = PoreInput("flat", lres.image[0], (3.0, 3.0), (0.0, 0.0))
    with pytest.raises(InputError, match="mix 2D images and 3D volumes"):
        plan_compare_pores([lres, flat])
    with pytest.raises(InputError, match="region") as info:
        plan_compare_pores([lres, hres], region="middle")
    assert info.value.parameters == ("region",)
    with pytest.raises(InputError, match="no voxel centre inside the region"):
        plan_compare_pores([lres, hres], region=((0, 0, 0), (0.5, 200, 200)))
    with pytest.raises(InputError, match="sample_mask"):
        plan_compare_pores([lres, hres], sample_mask=np.ones((40, 40, 40), bool))
    with pytest.raises(InputError, match="min_diameter_um"):
        plan_compare_pores([lres, hres], min_diameter_um=-1)
    # One grey value for all must lie in every crop's range: the message says which input.
    with pytest.raises(InputError, match=r"^hres: The threshold") as info:
        plan_compare_pores([lres, PoreInput("hres", hres.image * 0.5, hres.voxel_um, hres.origin_um)],
                           threshold=0.7)
    assert info.value.parameters == ("threshold",)
    with pytest.raises(VoxelSizeError, match="^truth: "):
        plan_compare_pores([lres, PoreInput("truth", truth.image, None, truth.origin_um)])
    with pytest.raises(InputError, match="origin"):
        plan_compare_pores([PoreInput("lres", lres.image, lres.voxel_um, (0.0, 0.0))])


def test_min_diameter_removes_small_pores_on_every_grid(foam_inputs, compared):
    common, _ = compared
    big = run_compare_pores(foam_inputs, min_diameter_um=8.0)
    for before, after in zip(common.measured, big.measured):
        assert after.result.count <= before.result.count
        assert np.all(after.result.table["diameter_um"] >= 8.0 * 0.9)
    assert big.measured[2].result.count < common.measured[2].result.count
    assert min_volume_voxels(0, (1, 1, 1)) is None
    assert min_volume_voxels(1, (3, 3, 3)) == 8  # never below the analysis's noise removal
    assert min_volume_voxels(10, (1, 1, 1)) == int(np.ceil(np.pi / 6 * 1000))
    assert min_volume_voxels(10, (1, 1)) == int(np.ceil(np.pi / 4 * 100))


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_tables(compared, tmp_path):
    result, _ = compared
    path = write_csv(tmp_path / "pores.csv", result.rows())
    rows = _read(path)
    assert [r["name"] for r in rows] == ["lres", "truth", "hres"]
    for row, m in zip(rows, result.measured):
        assert float(row["porosity_percent"]) == 100 * m.result.porosity  # full precision
        assert int(row["pore_count"]) == m.result.count
        np.testing.assert_allclose([float(v) for v in row["region_lo_um"].split()], result.region[0])
    assert rows[0]["voxel_x_um"] == "3.0"
    # Never over an existing file unless asked; never over an input.
    path.write_text("mine")
    with pytest.raises(FileFormatError, match="already exists"):
        write_csv(path, result.rows())
    assert path.read_text() == "mine"
    write_csv(path, result.rows(), overwrite=True)
    assert len(_read(path)) == 3
    with pytest.raises(FileFormatError, match="one of the inputs"):
        write_csv(path, result.rows(), overwrite=True, inputs=[path])

    # The summary and one per-pore table per input, all or nothing.
    written = write_tables(tmp_path / "foam", result.measured)
    assert written == [tmp_path / "foam.csv", *(tmp_path / f"foam_{n}.csv" for n in ("lres", "truth", "hres"))]
    summary = _read(written[0])
    assert [r["per_pore_file"] for r in summary] == [p.name for p in written[1:]]
    assert len(_read(written[3])) == result.measured[2].result.count
    clash = tmp_path / "other_truth.csv"
    clash.write_text("keep me")
    with pytest.raises(FileFormatError, match="already exists"):
        write_tables(tmp_path / "other.csv", result.measured)
    assert clash.read_text() == "keep me" and not (tmp_path / "other.csv").exists()


def test_summary_row_2d():
    from napari_resolve.pores import analyse_pores

    yy, xx = np.mgrid[:64, :64]
    image = np.ones((64, 64), np.float32)
    image[(yy - 20) ** 2 + (xx - 20) ** 2 < 36] = 0
    image[(yy - 44) ** 2 + (xx - 40) ** 2 < 64] = 0
    row = summary_row(analyse_pores(image, (0.5, 0.5), sample_mask=None), ((0.0, 0.0), (32.0, 32.0)))
    assert row["ndim"] == 2 and row["pore_count"] == 2 and row["voxel_z_um"] is None
    assert row["region_lo_um"] == "0 0" and row["region_hi_um"] == "32 32"
    assert 0.9 < row["mean_circularity"] <= 1 and "pores_per_mm2" in row and "sample_area_um2" in row
    assert row["pores_per_mm2"] == pytest.approx(2 / (64 * 64 * 0.25) * 1e6)
