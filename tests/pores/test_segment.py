"""Tests of pore segmentation and statistics on small seeded constructions."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from pore_shapes import ball, image_of, separated_balls
from scipy import ndimage as ndi

from napari_resolve.errors import InputError, VoxelSizeError
from napari_resolve.jobs import Progress, drain
from napari_resolve.pores.segment import (
    COLUMNS_2D,
    COLUMNS_3D,
    PorePlan,
    PoreProgress,
    PoreResult,
    analyse_pores,
    iter_analyse_pores,
    plan_analyse_pores,
    pore_table,
    porosity,
)

# ----------------------------------------------------------------------------
# constructions


def ellipsoid(grids, centre, semi_axes):
    """Boolean ellipsoid on open grids, axes aligned with (z, y, x)."""
    return sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, semi_axes)) <= 1


# ----------------------------------------------------------------------------
# porosity


def carved_block():
    shape = (40, 50, 60)
    pores = np.zeros(shape, dtype=bool)
    pores[5:15, 5:20, 5:25] = True  # 3000 voxels
    pores[20:30, 30:45, 10:20] = True  # 1500
    pores[25:35, 5:15, 35:55] = True  # 2000
    return pores


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5)])
@pytest.mark.parametrize("threshold", ["otsu", 0.5])
def test_porosity_exact_on_carved_block(voxel, threshold):
    pores = carved_block()
    img = image_of(pores)
    truth = 6500 / pores.size
    for mask in ("auto", None):
        res = analyse_pores(img, voxel, threshold=threshold, sample_mask=mask)
        assert abs(res.porosity - truth) < 1e-12
        assert res.sample_mask.all()
        assert res.count == 3
        cell = float(np.prod(voxel))
        assert sorted(res.table["volume_um3"]) == pytest.approx(
            [1500 * cell, 2000 * cell, 3000 * cell], rel=1e-12
        )
    assert abs(porosity(pores) - truth) < 1e-12


@pytest.mark.parametrize("voxel", [1.0, (2.0, 1.0, 0.5)])
def test_porosity_exact_with_sample_mask(voxel):
    pores = carved_block()
    img = image_of(pores)
    sample = np.zeros(pores.shape, dtype=bool)
    sample[:, :, :30] = True  # holds the 3000 and 1500 voxel boxes, not the 2000 one
    truth = 4500 / sample.sum()
    res = analyse_pores(img, voxel, sample_mask=sample)
    assert abs(res.porosity - truth) < 1e-12
    assert abs(porosity(pores, sample) - truth) < 1e-12
    # The pore at x 35..55 lies outside the sample and is no pore at all.
    assert res.count == 2
    assert not res.pore_mask[:, :, 30:].any()
    s = res.summary()
    cell = float(np.prod(res.voxel_um))
    assert s["pore_volume_um3"] == pytest.approx(4500 * cell)
    assert s["sample_volume_um3"] == pytest.approx(sample.sum() * cell)


# ----------------------------------------------------------------------------
# counts, volumes, shapes


def test_count_and_volumes_of_separated_balls():
    mask, centres, radii = separated_balls()
    voxel = (1.5, 1.5, 1.5)
    res = analyse_pores(image_of(mask), voxel)
    assert res.count == 10
    assert res.porosity == pytest.approx(mask.mean(), abs=1e-12)
    cell = 1.5**3
    cz, cy, cx = (res.table[f"centroid_{a}_um"] for a in "zyx")
    for c, r in zip(centres, radii):
        digital = ball(mask.shape, c, r, (1.0, 1.0, 1.0)).sum() * cell
        dist = np.sqrt((cz - c[0] * 1.5) ** 2 + (cy - c[1] * 1.5) ** 2 + (cx - c[2] * 1.5) ** 2)
        i = int(np.argmin(dist))
        assert dist[i] < 0.5 * 1.5  # centroid within half a voxel (um)
        assert res.table["volume_um3"][i] == pytest.approx(digital, rel=0.03)
        d = (6 * digital / math.pi) ** (1 / 3)
        assert res.table["diameter_um"][i] == pytest.approx(d, rel=0.01)


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0)])
@pytest.mark.parametrize("radius_um", [6.0, 8.0, 10.0])
def test_sphericity_of_digital_balls(voxel, radius_um):
    shape = tuple(math.ceil(2 * radius_um / v) + 9 for v in voxel)
    centre = tuple((n - 1) / 2 * v for n, v in zip(shape, voxel))
    mask = ball(shape, centre, radius_um, voxel)
    res = analyse_pores(image_of(mask), voxel)
    assert res.count == 1
    # Measured 0.975-0.988; the paper's ground-truth foam averaged 0.990.
    assert res.table["sphericity"][0] >= 0.95
    area = 4 * math.pi * radius_um**2
    assert res.table["surface_um2"][0] == pytest.approx(area, rel=0.05)


def test_sphericity_of_elongated_pore_is_lower():
    grids = np.ogrid[:40, :20, :20]
    mask = ellipsoid(grids, (19.5, 9.5, 9.5), (12, 4, 4))
    res = analyse_pores(image_of(mask), 1.0)
    assert res.count == 1
    # A 3:1 prolate spheroid has sphericity 0.846.
    assert res.table["sphericity"][0] == pytest.approx(0.846, abs=0.04)


# ----------------------------------------------------------------------------
# splitting


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0)])
def test_touching_balls_are_split_and_single_ball_is_not(voxel):
    shape = tuple(int(64 / v) for v in voxel)
    # Two balls of radius 8 and 7 um with centres 14 um apart (overlap 1 um).
    pair = ball(shape, (32, 32, 24), 8, voxel) | ball(shape, (32, 32, 38), 7, voxel)
    assert ndi.label(pair)[1] == 1  # one merged object before splitting
    res = analyse_pores(image_of(pair), voxel)
    assert res.count == 2
    vols = sorted(res.table["volume_um3"])
    assert vols[0] == pytest.approx(4 / 3 * math.pi * 7**3, rel=0.15)
    assert vols[1] == pytest.approx(4 / 3 * math.pi * 8**3, rel=0.15)
    assert analyse_pores(image_of(pair), voxel, split=False).count == 1

    for r in (4.0, 6.0, 10.0, 14.0):
        single = ball(shape, (32, 32, 32), r, voxel)
        assert analyse_pores(image_of(single), voxel).count == 1


def test_balls_touching_at_a_point_are_split():
    shape = (48, 48, 64)
    pair = ball(shape, (24, 24, 18), 9, (1, 1, 1)) | ball(shape, (24, 24, 36), 9, (1, 1, 1))
    assert ndi.label(pair)[1] == 1
    assert analyse_pores(image_of(pair), 1.0).count == 2


def test_elongated_pore_is_not_split():
    grids = np.ogrid[:40, :24, :24]
    mask = ellipsoid(grids, (19.5, 11.5, 11.5), (14, 6, 6))
    assert analyse_pores(image_of(mask), 1.0).count == 1


# ----------------------------------------------------------------------------
# edge-kill


def test_edge_kill_excludes_cut_pore_from_count_but_not_porosity():
    shape = (48, 48, 48)
    inner = ball(shape, (24, 24, 24), 6, (1, 1, 1))
    cut = ball(shape, (24, 24, 2), 6, (1, 1, 1))  # cut by the x = 0 face
    pores = inner | cut
    img = image_of(pores)
    res = analyse_pores(img, 1.0)
    assert res.count == 1
    assert res.table["centroid_x_um"][0] == pytest.approx(24, abs=0.5)
    assert abs(res.porosity - pores.mean()) < 1e-12
    assert res.pore_mask[cut].all()
    assert not res.labels[cut].any()  # killed pores are 0 in the label image
    assert analyse_pores(img, 1.0, edge_kill=False).count == 2
    # Only the top and bottom slices kill: the x-cut pore is counted.
    assert analyse_pores(img, 1.0, edge_kill=("z",)).count == 2
    assert analyse_pores(img, 1.0, edge_kill=[2]).count == 1


# ----------------------------------------------------------------------------
# automatic sample mask


def cylinder_in_air(seed=1):
    shape = (40, 96, 96)
    rng = np.random.default_rng(seed)
    _, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cylinder = np.broadcast_to((yy - 47.5) ** 2 + (xx - 47.5) ** 2 <= 40**2, shape)
    pores = np.zeros(shape, dtype=bool)
    placed = []
    while len(placed) < 25:
        r = rng.uniform(3, 7)
        # Some pores are cut by the top and bottom slices, none by the side.
        c = np.array([rng.uniform(0, shape[0] - 1), *rng.uniform(47.5 - 28, 47.5 + 28, 2)])
        if np.hypot(c[1] - 47.5, c[2] - 47.5) + r > 37:
            continue
        if any(np.linalg.norm(c - c2) < r + r2 + 2 for c2, r2 in placed):
            continue
        placed.append((c, r))
        pores |= ball(shape, c, r, (1, 1, 1))
    img = np.where(cylinder & ~pores, 1.0, 0.0).astype(np.float32)
    truth = (pores & cylinder).sum() / cylinder.sum()
    return img, cylinder, truth


def test_auto_sample_mask_finds_cylinder_in_air():
    img, cylinder, truth = cylinder_in_air()
    res = analyse_pores(img, (1.0, 1.0, 1.0))
    assert abs(res.porosity - truth) < 0.01
    assert (res.sample_mask ^ cylinder).mean() < 0.005
    # Whole field: air would count as pore space.
    whole = analyse_pores(img, 1.0, sample_mask=None)
    assert whole.porosity > truth + 0.2
    # Anisotropic voxels do not change a voxel fraction.
    aniso = analyse_pores(img, (3.0, 1.0, 1.0))
    assert abs(aniso.porosity - res.porosity) < 1e-12


def test_auto_sample_mask_is_whole_field_for_foam_filling_the_field():
    rng = np.random.default_rng(3)
    shape = (48, 64, 64)
    pores = np.zeros(shape, dtype=bool)
    for _ in range(60):  # overlapping balls, many cut by every face
        pores |= ball(shape, rng.uniform(0, 64, 3) * (0.75, 1, 1), rng.uniform(3, 7), (1, 1, 1))
    img = image_of(pores)
    res = analyse_pores(img, 1.0)
    assert res.sample_mask.all()
    assert abs(res.porosity - analyse_pores(img, 1.0, sample_mask=None).porosity) < 1e-12
    # Without the closing (which fills crevices between overlapping balls) exact.
    raw = analyse_pores(img, 1.0, closing_radius=0)
    assert raw.sample_mask.all()
    assert abs(raw.porosity - pores.mean()) < 1e-12
    assert res.porosity > 0.15


def test_auto_sample_mask_2d_disk_in_air():
    yy, xx = np.ogrid[:128, :128]
    disk = (yy - 63.5) ** 2 + (xx - 63.5) ** 2 <= 50**2
    pores = np.zeros_like(disk)
    for cy, cx, r in [(50, 50, 8), (80, 70, 6), (60, 90, 5)]:
        pores |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    img = np.where(disk & ~pores, 1.0, 0.0)
    res = analyse_pores(img, 0.5)
    assert res.count == 3
    assert res.porosity == pytest.approx(pores.sum() / disk.sum(), abs=1e-12)


# ----------------------------------------------------------------------------
# noise robustness


@pytest.mark.parametrize("seed", [0, 1])
def test_count_exact_on_blurred_noisy_balls(seed):
    # About 4 % porosity: Otsu needs both populations to carry some weight.
    radii = (4, 5, 6, 7, 8, 4, 5, 6, 7, 8)
    mask, _, _ = separated_balls(shape=(64, 64, 64), radii=radii, seed=seed)
    rng = np.random.default_rng(5 + seed)
    img = ndi.gaussian_filter(image_of(mask), 1.0) + rng.normal(0, 0.15, mask.shape)
    res = analyse_pores(img.astype(np.float32), 1.0)
    assert res.count == 10
    assert res.porosity == pytest.approx(mask.mean(), rel=0.15)
    assert res.sample_mask.all()


def test_bright_pores():
    mask, _, _ = separated_balls(shape=(64, 64, 64), radii=(4, 5, 6, 7), seed=4)
    img = 100.0 + 50.0 * mask
    res = analyse_pores(img, 1.0, pores_are="bright")
    assert res.count == 4
    assert abs(res.porosity - mask.mean()) < 1e-12


# ----------------------------------------------------------------------------
# 2D


@pytest.mark.parametrize("voxel", [(1.0, 1.0), (0.4, 0.4)])
def test_2d_circles_count_and_circularity(voxel):
    radii = (6, 7, 8, 10, 12, 6, 9)
    mask, _, _ = separated_balls(shape=(160, 160), radii=radii, seed=7)
    res = analyse_pores(image_of(mask), voxel)
    assert res.count == len(radii)
    assert tuple(res.table) == COLUMNS_2D
    assert res.size_column == "area_um2"
    assert res.table["sphericity"].min() >= 0.9  # circularity, measured about 0.96
    cell = voxel[0] * voxel[1]
    assert res.table["area_um2"].sum() == pytest.approx(mask.sum() * cell, rel=0.02)
    s = res.summary()
    assert s["ndim"] == 2 and "pore_area_um2" in s
    json.dumps(s)


def test_2d_anisotropic_circle():
    voxel = (2.0, 1.0)
    mask = ball((40, 80), (40.0, 40.0), 16.0, voxel)  # a circle in physical space
    res = analyse_pores(image_of(mask), voxel)
    assert res.count == 1
    assert res.table["sphericity"][0] >= 0.85
    assert res.table["perimeter_um"][0] == pytest.approx(2 * math.pi * 16, rel=0.05)


# ----------------------------------------------------------------------------
# empty results, outputs


def test_no_pores_gives_empty_statistics(tmp_path):
    img = np.ones((16, 16, 16), dtype=np.float32)
    res = analyse_pores(img, 1.0)
    assert res.count == 0
    assert res.porosity == 0.0
    assert tuple(res.table) == COLUMNS_3D
    assert all(v.shape == (0,) for v in res.table.values())
    s = res.summary()
    assert s["mean_diameter_um"] is None and s["count"] == 0
    json.dumps(s)
    res.to_csv(tmp_path / "empty.csv")
    lines = (tmp_path / "empty.csv").read_text().splitlines()
    assert lines == [",".join(COLUMNS_3D)]
    edges, counts = res.size_histogram(5.0)
    assert counts.sum() == 0 and len(edges) == len(counts) + 1


def test_csv_summary_and_histogram(tmp_path):
    mask, _, _ = separated_balls(shape=(64, 64, 64), radii=(3, 4, 5, 6, 7), seed=8)
    res = analyse_pores(image_of(mask), (2.0, 1.0, 1.0))
    assert isinstance(res, PoreResult)
    path = tmp_path / "pores.csv"
    res.to_csv(path)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header == list(COLUMNS_3D)
    assert {"volume_um3", "diameter_um", "surface_um2", "centroid_z_um"} <= set(header)
    assert len(rows) == 1 + res.count == 6
    assert [int(r[0]) for r in rows[1:]] == list(res.table["label"])
    assert float(rows[1][1]) == res.table["volume_um3"][0]
    assert not list(tmp_path.glob("*.tmp"))

    s = res.summary()
    text = json.dumps(s)
    assert json.loads(text) == s
    for key in (
        "porosity", "count", "mean_diameter_um", "median_diameter_um", "mean_sphericity",
        "pore_volume_um3", "sample_volume_um3", "threshold", "voxel_um",
    ):
        assert key in s
    assert type(s["count"]) is int and type(s["porosity"]) is float
    assert s["voxel_um"] == [2.0, 1.0, 1.0]

    edges, counts = res.size_histogram(5.0)
    assert counts.sum() == res.count
    assert np.allclose(edges / 5.0, np.round(edges / 5.0))
    edges, counts = res.size_histogram()
    assert counts.sum() == res.count
    edges, counts = res.size_histogram([0, 10, 20, 30])
    assert counts.sum() == res.count

    # Labels in the image match the table rows.
    assert set(np.unique(res.labels)) - {0} == set(res.table["label"])
    assert res.labels.dtype == np.int32


def test_pore_table_on_existing_labels():
    mask, _, _ = separated_balls(shape=(64, 64, 64), radii=(4, 6, 8), seed=9)
    labels, n = ndi.label(mask)
    table = pore_table(labels, (1.0, 0.5, 0.5))
    assert len(table["label"]) == n == 3
    assert table["volume_um3"].sum() == pytest.approx(mask.sum() * 0.25)
    with pytest.raises(InputError):
        pore_table(labels.astype(float), 1.0)
    with pytest.raises(VoxelSizeError):
        pore_table(labels, None)


def test_progress_generator_returns_same_result():
    mask, _, _ = separated_balls(shape=(48, 48, 48), radii=(4, 5), seed=10)
    gen = iter_analyse_pores(image_of(mask), 1.0)
    records = []
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert all(isinstance(r, PoreProgress) for r in records)
    assert records[-1].step == records[-1].total
    assert result.count == 2


def test_plan_then_run_gives_the_same_result_as_analyse():
    mask, _, _ = separated_balls(shape=(48, 48, 48), radii=(4, 5, 6), seed=10)
    img = image_of(mask)
    plan = plan_analyse_pores(img, (1.0, 1.0, 1.0), threshold=0.5, min_volume_voxels=20)
    assert isinstance(plan, PorePlan) and plan.shape == (48, 48, 48) and plan.threshold == 0.5
    assert plan.min_volume_voxels == 20 and plan.edge_axes == (0, 1, 2)
    records = []
    result = drain(iter_analyse_pores(plan), records.append)
    assert all(isinstance(r, Progress) and r.total == 6 for r in records)
    assert [r.step for r in records] == sorted(r.step for r in records)
    assert result.count == 3
    again = analyse_pores(img, 1.0, threshold=0.5, min_volume_voxels=20)
    np.testing.assert_array_equal(again.labels, result.labels)
    # The plan is run again as often as asked, giving the same result.
    np.testing.assert_array_equal(drain(iter_analyse_pores(plan)).labels, result.labels)
    with pytest.raises(TypeError):
        iter_analyse_pores(plan, 1.0)


def test_plan_keeps_its_own_sample_mask():
    mask, _, _ = separated_balls(shape=(40, 40, 40), radii=(4, 5), seed=3)
    sample = np.ones(mask.shape, bool)
    plan = plan_analyse_pores(image_of(mask), 1.0, sample_mask=sample)
    sample[:] = False  # the caller reuses its array: the plan is not affected
    assert drain(iter_analyse_pores(plan)).count == 2


def test_old_call_form_refuses_before_the_generator_runs():
    img = image_of(carved_block())
    # Planned in the call itself, not at the first next(): a widget sees the refusal on its own thread.
    with pytest.raises(InputError, match="outside the image range"):
        iter_analyse_pores(img, 1.0, threshold=5.0)
    with pytest.raises(VoxelSizeError):
        iter_analyse_pores(img, None)
    gen = iter_analyse_pores(img, 1.0)
    assert next(gen).step == 0
    gen.close()


def test_messages_name_the_parameter():
    img = image_of(carved_block())
    for options, name in [({"threshold": 5.0}, "threshold"), ({"pores_are": "grey"}, "pores_are"),
                          ({"closing_radius": -1}, "closing_radius"), ({"split_h_um": 0}, "split_h_um"),
                          ({"edge_kill": ("w",)}, "edge_kill"), ({"sample_mask": "cylinder"}, "sample_mask")]:
        with pytest.raises(InputError) as info:
            plan_analyse_pores(img, 1.0, **options)
        assert info.value.parameters == (name,)
        assert f"--{name.replace('_', '-')}" in info.value.render(lambda p: "--" + p.replace("_", "-"))


# ----------------------------------------------------------------------------
# bad input


def test_bad_input_raises_helpful_errors():
    img = image_of(carved_block())
    with pytest.raises(InputError, match="shape"):
        analyse_pores(img, 1.0, sample_mask=np.ones((4, 4, 4), bool))
    with pytest.raises(InputError, match="no voxels"):
        analyse_pores(img, 1.0, sample_mask=np.zeros(img.shape, bool))
    bad = img.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        analyse_pores(bad, 1.0)
    with pytest.raises(VoxelSizeError):
        analyse_pores(img, None)
    with pytest.raises(VoxelSizeError):
        analyse_pores(img, (1.0, 1.0))
    with pytest.raises(InputError, match="outside the image range"):
        analyse_pores(img, 1.0, threshold=2.0)
    with pytest.raises(InputError):
        analyse_pores(img, 1.0, threshold="triangle")
    with pytest.raises(InputError):
        analyse_pores(img, 1.0, pores_are="grey")
    with pytest.raises(InputError):
        analyse_pores(img, 1.0, sample_mask="cylinder")
    with pytest.raises(InputError):
        analyse_pores(img, 1.0, edge_kill=("w",))
    with pytest.raises(InputError, match="closing_radius"):
        analyse_pores(img, 1.0, closing_radius="big")
    with pytest.raises(InputError, match="min_volume_voxels"):
        analyse_pores(img, 1.0, min_volume_voxels=-1)
    with pytest.raises(InputError):
        analyse_pores(np.zeros((4, 4, 4, 2)), 1.0)
    with pytest.raises(InputError):
        porosity(np.ones((3, 3), bool), np.zeros((3, 3), bool))
    with pytest.raises(InputError):
        porosity(np.ones((3, 3), bool), np.ones((3, 4), bool))


def test_input_is_not_modified():
    mask, _, _ = separated_balls(shape=(48, 48, 48), radii=(4, 5), seed=11)
    img = image_of(mask)
    before = img.copy()
    sample = np.ones(img.shape, bool)
    analyse_pores(img, 1.0, sample_mask=sample)
    assert np.array_equal(img, before) and sample.all()


# ----------------------------------------------------------------------------
# a sample mask that discards the pore phase; pores cut by the border


def connected_network(shape=(40, 64, 64), seed=0):
    """Smoothed noise thresholded at its median: one pore network, half the field, touching every face."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.standard_normal(shape), 2)
    pores = field < np.median(field)
    return np.where(pores, 0.2, 0.8).astype(np.float32) + rng.normal(0, 0.03, shape).astype(np.float32), pores


def test_auto_mask_on_a_connected_network_warns_and_the_whole_field_is_right():
    from napari_resolve.pores.segment import DISCARD_WARNING

    img, pores = connected_network()
    auto = analyse_pores(img, 1.0)
    # The network is taken for air around the sample: most of it is left out.
    assert auto.porosity < 0.15 and pores.mean() > 0.45
    assert auto.discarded_fraction > 0.8 > DISCARD_WARNING
    (warning,) = auto.warnings
    assert "leaves out" in str(warning) and "{sample_mask}" in warning.template
    assert warning.render({"sample_mask": "--sample-mask"}).count("--sample-mask") == 1
    assert auto.summary()["warnings"] == [str(warning)]
    whole = analyse_pores(img, 1.0, sample_mask=None)
    assert abs(whole.porosity - pores.mean()) < 0.03
    assert whole.warnings == () and whole.discarded_fraction == 0.0


def test_no_warning_for_a_sample_in_air():
    img, cylinder, truth = cylinder_in_air()
    res = analyse_pores(img, 1.0)
    # The air around the cylinder is left out rightly: it lies outside the sample's outline.
    assert res.warnings == () and res.discarded_fraction < 0.2
    # An explicit mask that cuts the sample in half leaves out half of its pores, not most: no warning...
    half = cylinder.copy()
    half[:, :, : img.shape[2] // 2] = False
    assert analyse_pores(img, 1.0, sample_mask=half).warnings == ()
    # ... a mask that keeps only the solid does, and asks to check the mask.
    solid = cylinder & (img > 0.5)
    (warning,) = analyse_pores(img, 1.0, sample_mask=solid).warnings
    assert "covers the sample" in str(warning)


def test_pores_cut_by_the_border_get_their_own_labels():
    img, pores = connected_network((24, 40, 40), seed=1)
    res = analyse_pores(img, 1.0, sample_mask=None)
    cut, counted = res.cut_labels, res.labels
    assert cut.dtype == np.int32 and cut.max() > 0
    np.testing.assert_array_equal(np.unique(cut[cut > 0]), np.arange(1, cut.max() + 1))
    assert not np.any((cut > 0) & (counted > 0))
    np.testing.assert_array_equal((cut > 0) | (counted > 0), res.pore_mask)
    faces = np.concatenate([cut[[0, -1]].ravel(), cut[:, [0, -1]].ravel(), cut[:, :, [0, -1]].ravel()])
    assert set(np.unique(faces)) - {0} == set(range(1, cut.max() + 1))  # every cut pore touches a face
    assert analyse_pores(img, 1.0, sample_mask=None, edge_kill=False).cut_labels is None
