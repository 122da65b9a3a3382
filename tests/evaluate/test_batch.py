"""Batch evaluation (napari_resolve.evaluate): pairing, geometry, scores, statistics, CSV."""

from __future__ import annotations

import csv
import math
import os
import warnings

import numpy as np
import pytest
import tifffile

from napari_resolve.errors import FileFormatError, InputError, ResolveWarning, VoxelSizeError
from napari_resolve.evaluate.batch import iter_evaluate, plan_evaluate, run_evaluate
from napari_resolve.evaluate.discovery import find_pairs
from napari_resolve.evaluate.records import summary_csv_path, write_csv
from napari_resolve.evaluate.stats import ALL_CATEGORY, summarise_metric
from napari_resolve.geometry.grid import Grid
from napari_resolve.io import write_volume
from napari_resolve.jobs import drain
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.measure.baselines import interpolate
from napari_resolve.measure.similarity import ms_ssim, psnr, ssim
from napari_resolve.models import build_model
from napari_resolve.models.checkpoint import Checkpoint
from napari_resolve.phantom import make_phantom

RATIO = 4
LV, HV = (4.0, 4.0), (1.0, 1.0)
EDGE = ((HV[0] - LV[0]) / 2,) * 2  # HRES voxel 0 centre of an edge-aligned (binned) pair


def section(seed: int, size: int = 24):
    """A 2D foam section: LRES of the whole field and an HRES of the same field (binned 4x)."""
    ph = make_phantom(size, RATIO, ndim=2, hres_size=size * RATIO, hres_start=(0, 0), seed=seed)
    return ph.lres, ph.hres


def write_pairs(root, foams=range(6), films=range(10, 16)):
    """Two categories in the two layouts, one file without a partner, and a note that is no image."""
    (root / "foams").mkdir(parents=True)
    for s in foams:
        lres, hres = section(s)
        write_volume(root / "foams" / f"f{s}_lres.tif", lres, LV)
        write_volume(root / "foams" / f"f{s}_HRES.tiff", hres, HV)
    for role in ("lres", "hres"):
        (root / "films" / role).mkdir(parents=True)
    for s in films:
        lres, hres = section(s)
        write_volume(root / "films" / "lres" / f"m{s}.tif", lres, LV)
        write_volume(root / "films" / "hres" / f"m{s}.tif", hres, HV)
    write_volume(root / "foams" / "orphan_lres.tif", section(99)[0], LV)
    (root / "notes.txt").write_text("not an image")
    return root


def identity_model(ndim: int = 2) -> Checkpoint:
    """An untrained unet25d: its zero head makes it return the cubic interpolation."""
    net = build_model("unet25d", width=4)
    norm = Normalisation(0.1, 1.2)  # the same in and out: the identity end to end
    return Checkpoint(
        architecture="unet25d",
        config=dict(net.config),
        state_dict={k: v.detach().clone() for k, v in net.state_dict().items()},
        norm_in=norm,
        norm_out=norm,
        lres_voxel_um=(LV[0],) * ndim,
        hres_voxel_um=(HV[0],) * ndim,
        registration={"offset_um": [EDGE[0]] * ndim},
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def trained():
    """A small 2D model trained briefly (about 2 s) on another section: it beats cubic by ~0.4 dB."""
    from napari_resolve.learn.training import TrainConfig, run_train
    from napari_resolve.registration import register

    lres, hres = section(100, size=48)
    reg = register(lres, hres, LV, HV)
    assert reg.ok
    cfg = TrainConfig(model="unet25d", model_config={"width": 8}, iterations=60, batch_size=4, patch_size=32,
                      loss="l1", device="cpu", seed=0)
    return run_train(lres, hres, LV, reg, cfg).checkpoint


def evaluate(model, root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolveWarning)
        return run_evaluate(model, root, device="cpu", **kw)


# ----------------------------------------------------------------------------- pairing


def test_pairs_in_both_layouts_with_categories(folder):
    pairs, unpaired = find_pairs(folder)
    assert [(p.category, p.name) for p in pairs] == [("films", f"m{s}") for s in range(10, 16)] + [
        ("foams", f"f{s}") for s in range(6)
    ]
    films = pairs[0]
    assert films.lres == folder / "films" / "lres" / "m10.tif" and films.hres == folder / "films" / "hres" / "m10.tif"
    foams = pairs[6]
    assert foams.lres.name == "f0_lres.tif" and foams.hres.name == "f0_HRES.tiff"  # any case, .tif or .tiff
    assert unpaired == [folder / "foams" / "orphan_lres.tif"]  # notes.txt is no image: not listed


def test_top_level_pairs_are_category_dot_and_partners_may_be_missing_on_either_side(tmp_path):
    lres, hres = section(1, 12)
    write_volume(tmp_path / "a_lres.tif", lres, LV)
    write_volume(tmp_path / "a_hres.tif", hres, HV)
    (tmp_path / "lres").mkdir()
    (tmp_path / "hres").mkdir()
    write_volume(tmp_path / "lres" / "b.tif", lres, LV)
    write_volume(tmp_path / "lres" / "c.tif", lres, LV)
    write_volume(tmp_path / "hres" / "b.zarr", hres, HV)  # zarr partners a TIFF
    write_volume(tmp_path / "hres" / "d.tif", hres, HV)
    write_volume(tmp_path / "plain.tif", lres, LV)  # neither _lres nor _hres
    (tmp_path / "empty").mkdir()  # a folder without images is no category and no problem
    pairs, unpaired = find_pairs(tmp_path)
    assert [(p.category, p.name, p.label) for p in pairs] == [(".", "a", "a"), (".", "b", "b")]
    assert pairs[1].hres.name == "b.zarr"
    assert [p.relative_to(tmp_path).as_posix() for p in unpaired] == ["hres/d.tif", "lres/c.tif", "plain.tif"]


def test_no_pairs_says_how_to_name_them(tmp_path):
    write_volume(tmp_path / "alone_lres.tif", section(1, 12)[0], LV)
    with pytest.raises(InputError, match=r"No LRES/HRES pairs.*1 image file.*NAME_lres\.tif and NAME_hres\.tif"):
        find_pairs(tmp_path)
    with pytest.raises(FileFormatError, match="not a folder"):
        find_pairs(tmp_path / "alone_lres.tif")


def test_two_files_of_one_kind_are_refused(tmp_path):
    lres, hres = section(1, 12)
    write_volume(tmp_path / "a_lres.tif", lres, LV)
    write_volume(tmp_path / "a_lres.zarr", lres, LV)
    write_volume(tmp_path / "a_hres.tif", hres, HV)
    with pytest.raises(InputError, match="Two LRES files for the pair 'a'"):
        find_pairs(tmp_path)


# ----------------------------------------------------------------------------- scores and geometry


def test_identity_model_equals_cubic_and_scores_are_the_quality_functions(folder):
    with pytest.warns(ResolveWarning, match=r"1 image file\(s\).*no partner.*orphan_lres\.tif"):
        plan = plan_evaluate(identity_model(), folder, device="cpu")
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolveWarning)  # 4 MS-SSIM scales on 88 voxels: noted
        res = drain(iter_evaluate(plan), records.append)
    assert [r.step for r in records if "checking" in r.message] == [0] * 12
    assert [r.step for r in records if "PSNR" in r.message] == list(range(1, 13))
    assert all(r.total == 12 for r in records)
    assert len(res.rows) == 12 and res.unpaired == [os.path.join("foams", "orphan_lres.tif")]
    assert [s.category for s in res.summaries] == ["films", "foams", ALL_CATEGORY]
    for row in res.rows:
        # 24 LRES voxels less one at each side, at 4 HRES voxels each.
        assert row.shape == (88, 88) and row.ms_ssim_scales == 4
        assert abs(row.diff("psnr")) < 1e-3 and abs(row.diff("ssim")) < 1e-5 and abs(row.diff("ms_ssim")) < 1e-5
    # The cubic numbers are the quality functions on the compared region of an edge-aligned pair.
    row = res.rows[-1]
    assert (row.category, row.name) == ("foams", "f5")
    lres, hres = section(5)
    grid = Grid((88, 88), HV, (EDGE[0] + 4, EDGE[1] + 4))
    cubic = interpolate(lres, LV, grid)
    ref = hres[4:92, 4:92]
    dr = float(ref.max() - ref.min())
    assert row.data_range == pytest.approx(dr)
    assert row.cubic["psnr"] == pytest.approx(psnr(cubic, ref, dr), abs=1e-6)
    assert row.cubic["ssim"] == pytest.approx(ssim(cubic, ref, dr), abs=1e-6)
    assert row.cubic["ms_ssim"] == pytest.approx(ms_ssim(cubic, ref, dr, scales=4), abs=1e-6)
    assert 10 < row.cubic["psnr"] < 30 and 0.2 < row.cubic["ssim"] < 0.95
    # No difference beyond float32 rounding: ties, so no test claims one.
    for s in res.summaries:
        for st in s.metrics.values():
            assert st.diff_mean == 0 and st.model_better == 0
            assert st.p_ttest == 1.0 and st.p_wilcoxon == 1.0
    assert res.category(ALL_CATEGORY).n == 12 and res.category("films").n == 6
    assert res.notes and "MS-SSIM used 4 of 5 scales" in res.notes[-1]


def test_a_trained_model_is_significantly_better(folder, trained):
    res = evaluate(trained, folder)
    for s in res.summaries:
        assert s.n == (12 if s.category == ALL_CATEGORY else 6)
        for m in ("psnr", "ssim"):
            st = s.metrics[m]
            assert st.model_better == s.n
            assert st.diff_mean > (0.2 if m == "psnr" else 0.01)
            assert st.diff_ci95[0] > 0
            assert st.p_ttest < 0.01
            assert st.p_wilcoxon < 0.05  # 6 of 6 positive: the exact p is 2 / 64
            assert st.model_mean == pytest.approx(st.cubic_mean + st.diff_mean)
    assert res.category(ALL_CATEGORY).metrics["psnr"].p_wilcoxon < 0.001  # 12 of 12
    assert not any("phase" in n for n in res.notes)  # the training pair was binned like these


def test_the_alignment_matters_and_origins_are_used_when_the_files_differ(tmp_path):
    model = identity_model()
    lres, hres = section(3)
    write_volume(tmp_path / "a_lres.tif", lres, LV)
    write_volume(tmp_path / "a_hres.tif", hres, HV)
    # The same pair placed by its origins, e.g. stage positions of two acquisitions.
    (tmp_path / "placed").mkdir()
    write_volume(tmp_path / "placed" / "a_lres.tif", lres, LV, origin_um=(100.0, 200.0))
    write_volume(tmp_path / "placed" / "a_hres.tif", hres, HV, origin_um=(100.0 + EDGE[0], 200.0 + EDGE[1]))
    edge = evaluate(model, tmp_path)
    a, placed = edge.rows
    assert placed.category == "placed"
    for m in ("psnr", "ssim", "ms_ssim"):
        assert placed.cubic[m] == pytest.approx(a.cubic[m], abs=1e-6)
    # Centre alignment puts the HRES 1.5 voxels off: clearly worse for every metric.
    centre = evaluate(model, tmp_path, align="centre").rows[0]
    assert centre.cubic["psnr"] < a.cubic["psnr"] - 1.0 and centre.cubic["ssim"] < a.cubic["ssim"] - 0.05
    # ...and the model was trained at the edge-aligned phase: a note says so.
    assert any("phase" in n for n in evaluate(model, tmp_path, align="centre").notes)


def test_border_and_data_range(folder):
    model = identity_model()
    res = evaluate(model, folder / "foams", border=0, data_range=2.0)  # the foams folder alone: category "."
    assert {r.category for r in res.rows} == {"."} and res.rows[0].shape == (96, 96)
    assert all(r.data_range == 2.0 for r in res.rows)
    res = evaluate(model, folder / "foams", border=2.5)
    assert res.rows[0].shape == (76, 76)  # 2.5 LRES voxels = 10 HRES voxels a side


def test_volumes_work_too(tmp_path):
    ph = make_phantom(16, 2, hres_size=32, hres_start=(0, 0, 0), seed=5)
    write_volume(tmp_path / "v_lres.tif", ph.lres, 2.0)
    write_volume(tmp_path / "v_hres.tif", ph.hres, 1.0)
    net = build_model("unet25d", width=4)
    norm = Normalisation(0.0, 1.0)
    ckpt = Checkpoint("unet25d", dict(net.config), net.state_dict(), norm, norm, (2.0,) * 3, (1.0,) * 3,
                      registration={"offset_um": [-0.5] * 3})
    row = evaluate(ckpt, tmp_path).rows[0]
    assert row.shape == (28, 28, 28) and row.ms_ssim_scales == 2
    assert abs(row.diff("psnr")) < 1e-3
    grid = Grid((28,) * 3, (1.0,) * 3, (1.5,) * 3)
    assert row.cubic["psnr"] == pytest.approx(psnr(interpolate(ph.lres, 2.0, grid), ph.hres[2:30, 2:30, 2:30]))


# ----------------------------------------------------------------------------- wrong inputs


def test_lres_voxel_size_not_the_models_is_refused_before_any_upscaling(tmp_path):
    write_pairs(tmp_path, foams=range(2), films=range(10, 12))
    lres, hres = section(7)
    write_volume(tmp_path / "foams" / "z_lres.tif", lres, 2.0)  # checked last
    write_volume(tmp_path / "foams" / "z_hres.tif", hres, HV)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolveWarning)
        job = iter_evaluate(plan_evaluate(identity_model(), tmp_path, device="cpu"))
    steps = []
    with pytest.raises(VoxelSizeError, match=r"z_lres\.tif: This LRES has 2 x 2 um voxels.*trained on 4 x 4 um"):
        for rec in job:
            steps.append(rec.step)
    assert steps == [0] * 5  # only checking: nothing was upscaled
    # Overriding the voxel size for every pair is what --lres-voxel does.
    res = evaluate(identity_model(), tmp_path, lres_voxel_um=4.0)
    assert len(res.rows) == 5


def test_hres_voxel_and_field_mismatches(tmp_path):
    lres, hres = section(7)
    write_volume(tmp_path / "a_lres.tif", lres, LV)
    write_volume(tmp_path / "a_hres.tif", hres, 0.5)
    with pytest.raises(VoxelSizeError, match=r"a_hres\.tif: this HRES has 0.5 x 0.5 um.*upscales to 1 x 1 um"):
        evaluate(identity_model(), tmp_path)
    write_volume(tmp_path / "a_hres.tif", hres[:60], HV, overwrite=True)
    with pytest.raises(InputError, match=r"a: the LRES covers 96 x 96 um .* but the HRES 60 x 96 um .*same field"):
        evaluate(identity_model(), tmp_path)
    # A 2D model on volumes: said before any work.
    with pytest.raises(InputError, match="trained on 3D data"):
        evaluate(identity_model(3), tmp_path)


def test_files_without_voxel_sizes_take_the_models(tmp_path):
    lres, hres = section(8)
    tifffile.imwrite(tmp_path / "a_lres.tif", lres)
    tifffile.imwrite(tmp_path / "a_hres.tif", hres)
    row = evaluate(identity_model(), tmp_path).rows[0]
    assert row.hres_voxel_um == HV and row.shape == (88, 88)


@pytest.mark.parametrize(
    "kw, match",
    [({"align": "corner"}, "Unknown alignment"), ({"border": -1}, "border"), ({"data_range": 0}, "data_range")],
)
def test_bad_arguments_are_refused_by_the_plan_naming_the_parameter(folder, kw, match):
    with pytest.raises(InputError, match=match) as info:
        plan_evaluate(identity_model(), folder, **kw)
    assert info.value.parameters == tuple(kw)  # the CLI renders it as --align / --border / --data-range
    assert "--" not in str(info.value)


# ----------------------------------------------------------------------------- statistics


def test_statistics_of_a_clear_and_of_no_difference():
    rng = np.random.default_rng(0)
    cubic = rng.normal(20, 2, 10)
    clear = summarise_metric(cubic + rng.normal(1.0, 0.3, 10), cubic)
    assert clear.n == 10 and clear.model_better == 10
    assert clear.p_ttest < 1e-4 and clear.p_wilcoxon == pytest.approx(2 / 2**10)
    assert clear.diff_ci95[0] > 0.5 and clear.diff_ci95[1] < 1.5
    noise = summarise_metric(cubic + rng.normal(0.0, 0.3, 10), cubic)
    assert noise.p_ttest > 0.05 and noise.p_wilcoxon > 0.05
    assert noise.diff_ci95[0] < 0 < noise.diff_ci95[1]


def test_statistics_where_tests_do_not_apply():
    one = summarise_metric([1.0], [0.5])
    assert one.n == 1 and one.diff_mean == 0.5
    assert math.isnan(one.model_sd) and math.isnan(one.p_ttest) and math.isnan(one.p_wilcoxon)
    five = summarise_metric([1, 2, 3, 4, 5.5], [0, 1, 2, 3, 4])
    assert five.p_ttest < 0.05 and math.isnan(five.p_wilcoxon)  # 5 images: no Wilcoxon
    same = summarise_metric([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6])
    assert same.p_ttest == 1.0 and same.p_wilcoxon == 1.0 and same.model_better == 0
    # Float32 rounding, however systematic, is no effect.
    values = np.linspace(15, 25, 20)
    rounding = summarise_metric(values * (1 + 3e-8), values)
    assert rounding.p_ttest == 1.0 and rounding.p_wilcoxon == 1.0 and rounding.diff_mean == 0
    # Identical images have an infinite PSNR: left out of that metric's statistics.
    inf = summarise_metric([math.inf, 30, 31], [20, 25, 26])
    assert inf.n == 2 and inf.diff_mean == 5.0


# ----------------------------------------------------------------------------- CSV


def test_csv_files(folder, tmp_path):
    res = evaluate(identity_model(), folder)
    out = tmp_path / "scores.csv"
    paths = write_csv(res, out)
    assert paths == (out, tmp_path / "scores_summary.csv") and summary_csv_path(out) == paths[1]
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    assert list(rows[0])[:12] == [
        "category", "name", "shape",
        "model_psnr", "cubic_psnr", "diff_psnr",
        "model_ssim", "cubic_ssim", "diff_ssim",
        "model_ms_ssim", "cubic_ms_ssim", "diff_ms_ssim",
    ]
    r = rows[-1]
    assert (r["category"], r["name"], r["shape"]) == ("foams", "f5", "88x88")
    assert float(r["cubic_psnr"]) == res.rows[-1].cubic["psnr"]  # every digit kept
    assert r["lres_file"] == os.path.join("foams", "f5_lres.tif")
    with open(paths[1], newline="") as fh:
        summary = list(csv.DictReader(fh))
    assert [s["category"] for s in summary] == ["films", "foams", ALL_CATEGORY]
    assert [int(s["n"]) for s in summary] == [6, 6, 12]
    for key in ("psnr_model_mean", "psnr_model_sd", "psnr_cubic_mean", "psnr_diff_mean", "psnr_p_ttest",
                "psnr_p_wilcoxon", "ssim_diff_ci95_low", "ms_ssim_model_better"):
        assert key in summary[0]
    assert float(summary[2]["psnr_model_mean"]) == pytest.approx(res.category(ALL_CATEGORY).metrics["psnr"].model_mean)
    # Never over existing files without overwrite; nothing half-written is left.
    before = out.read_bytes()
    with pytest.raises(FileFormatError, match="already exists"):
        write_csv(res, out)
    assert out.read_bytes() == before
    write_csv(res, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "scores_summary.csv"]


def test_a_test_that_does_not_apply_is_an_empty_cell(tmp_path):
    lres, hres = section(2)
    write_volume(tmp_path / "a_lres.tif", lres, LV)
    write_volume(tmp_path / "a_hres.tif", hres, HV)
    res = evaluate(identity_model(), tmp_path)
    _, summary = write_csv(res, tmp_path / "s.csv")
    rows = list(csv.DictReader(open(summary, newline="")))
    assert [r["category"] for r in rows] == [".", ALL_CATEGORY]
    assert rows[0]["psnr_p_ttest"] == "" and rows[0]["psnr_model_sd"] == "" and rows[0]["psnr_model_mean"] != ""
