"""Tests of pore recovery (match_pores): true pores found one to one, merged and invented."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pore_shapes import ball, image_of, separated_balls
from scipy import ndimage as ndi

from napari_resolve.errors import InputError, VoxelSizeError
from napari_resolve.phantom import make_phantom
from napari_resolve.pores import analyse_pores
from napari_resolve.pores.match import PoreMatch, match_pores
from napari_resolve.pores.segment import match_pores as match_pores_from_segment


def test_old_import_path_still_works():
    assert match_pores_from_segment is match_pores


# ----------------------------------------------------------------------------
# pore recovery (match_pores)


def labelled_balls(shape, centres_um, radii_um, voxel, origin_um=None):
    """Label image of balls (label i + 1 for ball i) on a grid with an origin (um)."""
    origin = (0.0,) * len(shape) if origin_um is None else origin_um
    labels = np.zeros(shape, dtype=np.int32)
    for i, (c, r) in enumerate(zip(centres_um, radii_um), start=1):
        labels[ball(shape, np.subtract(c, origin), r, voxel)] = i
    return labels


@pytest.mark.parametrize("shape", [(64, 64, 64), (128, 128)])
def test_match_identical_labels_recovers_every_pore(shape):
    mask, _, radii = separated_balls(shape=shape, radii=(4, 5, 6, 7, 8, 4, 5, 6), seed=12)
    labels, n = ndi.label(mask)
    assert n == len(radii)
    voxel = (0.7,) * len(shape)
    m = match_pores(labels, voxel, labels, voxel)
    assert isinstance(m, PoreMatch)
    assert (m.found, m.total, m.recovery, m.false_pores, m.merged) == (n, n, 1.0, 0, 0)
    d = m.to_dict()
    assert d == {"found": n, "total": n, "recovery": 1.0, "false_pores": 0, "merged": 0}
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(AttributeError):
        m.found = 0  # frozen


def test_match_half_the_pores_deleted():
    mask, _, _ = separated_balls(shape=(64, 64, 64), radii=(4, 5, 6, 7, 4, 5, 6, 7, 4, 5), seed=13)
    labels, n = ndi.label(mask)
    assert n == 10
    result = labels.copy()
    result[np.isin(result, [1, 3, 5, 7, 9])] = 0
    m = match_pores(labels, 1.0, result, 1.0)
    assert (m.found, m.total, m.false_pores, m.merged) == (5, 10, 0, 0)
    assert m.recovery == pytest.approx(0.5)
    # Relabelling the result does not matter: only positions count.
    m2 = match_pores(labels, 1.0, np.where(result > 0, 100 - result, 0), 1.0)
    assert m2 == m


@pytest.mark.parametrize("result_voxel", [(2.0, 2.0, 2.0), (3.0, 2.0, 1.5)])
def test_match_on_a_coarser_offset_grid(result_voxel):
    rng = np.random.default_rng(14)
    fine_shape, fine_voxel, fine_origin = (60, 60, 60), (1.0, 1.0, 1.0), (-3.0, 2.0, 0.5)
    centres, radii = [], []
    while len(centres) < 12:  # balls of radius 4-7 um, 3 um apart, 2 um from the border
        r = rng.uniform(4, 7)
        c = fine_origin + rng.uniform(r + 2, 59 - r - 2, 3)
        if all(np.linalg.norm(c - c2) > r + r2 + 3 for c2, r2 in zip(centres, radii)):
            centres.append(c)
            radii.append(r)
    truth = labelled_balls(fine_shape, centres, radii, fine_voxel, fine_origin)
    # The coarse grid covers the same field, its voxel 0 off by a fraction of a voxel.
    coarse_origin = np.add(fine_origin, (-0.7, 0.4, -1.1))
    coarse_shape = tuple(int(62 / v) + 1 for v in result_voxel)
    result = labelled_balls(coarse_shape, centres, radii, result_voxel, coarse_origin)
    assert len(np.unique(result)) == 13  # every ball exists on the coarse grid
    m = match_pores(
        truth, fine_voxel, result, result_voxel,
        truth_origin_um=fine_origin, result_origin_um=coarse_origin,
    )
    assert (m.found, m.total, m.false_pores, m.merged) == (12, 12, 0, 0)
    assert m.recovery == 1.0
    # Forgetting the offsets shifts the result by up to 3 um: visibly worse.
    moved = np.add(centres, (6.0, 6.0, 6.0))
    shifted = labelled_balls(coarse_shape, moved, radii, result_voxel, coarse_origin)
    worse = match_pores(
        truth, fine_voxel, shifted, result_voxel,
        truth_origin_um=fine_origin, result_origin_um=coarse_origin,
    )
    assert worse.found < 12


def test_match_result_on_a_sub_region_scores_only_centroids_inside_it():
    shape = (64, 64, 64)
    centres = [(20, 20, 12), (20, 40, 14), (44, 22, 18), (44, 44, 40), (22, 44, 50), (40, 20, 48)]
    radii = [6, 5, 6, 7, 5, 6]
    truth = labelled_balls(shape, centres, radii, (1.0, 1.0, 1.0))
    # The result is the truth's own labels in the box x = 0..31 (centre of voxel 0 at 0).
    sub = truth[:, :, :32]
    m = match_pores(truth, 1.0, sub, 1.0, result_origin_um=(0.0, 0.0, 0.0))
    assert m.total == 3  # centroids at x 12, 14 and 18 lie inside; 40, 50 and 48 do not
    assert m.found == 3 and m.false_pores == 0
    # The same box put elsewhere in the frame holds other centroids.
    sub2 = truth[:, :, 32:]
    m2 = match_pores(truth, 1.0, sub2, 1.0, result_origin_um=(0.0, 0.0, 32.0))
    assert (m2.found, m2.total, m2.false_pores) == (3, 3, 0)


def test_merged_pair_counts_once():
    shape = (48, 48, 64)
    centres, radii = [(24, 24, 22), (24, 24, 38)], [7.0, 4.0]
    truth = labelled_balls(shape, centres, radii, (1.0, 1.0, 1.0))
    # One result pore covers both centroids: the two balls joined by a neck.
    merged = (truth > 0) | ball(shape, (24, 24, 30), 3, (1, 1, 1))
    result = merged.astype(np.int32)
    assert ndi.label(merged)[1] == 1
    m = match_pores(truth, 1.0, result, 1.0)
    assert (m.found, m.total, m.merged, m.false_pores) == (1, 2, 1, 0)
    assert m.recovery == pytest.approx(0.5)
    # The big ball is closest in volume to the merged pore and wins; the small
    # one is lost to the merge even when it is the only pore scored.
    assert match_pores(truth, 1.0, result, 1.0, truth_ids=[1]) == PoreMatch(1, 1, 1.0, 0, 0)
    lost = match_pores(truth, 1.0, result, 1.0, truth_ids=[2])
    assert (lost.found, lost.total, lost.merged) == (0, 1, 1)
    # Split correctly, both are found.
    assert match_pores(truth, 1.0, truth, 1.0).found == 2


def test_false_pores_are_counted_but_not_on_the_result_border():
    mask, _, _ = separated_balls(shape=(64, 64, 64), radii=(5, 6, 7), seed=15)
    truth, n = ndi.label(mask)
    empty = ~ndi.binary_dilation(mask, iterations=4)
    result = truth.copy()
    free = np.argwhere(empty[6:-6, 6:-6, 6:-6]) + 6
    rng = np.random.default_rng(15)
    placed = 0
    for c in free[rng.permutation(len(free))]:
        blob = ball(mask.shape, c, 2.5, (1, 1, 1))
        if (blob & ~empty).any() or (blob & (result > 0)).any():
            continue
        result[blob] = 10 + placed
        placed += 1
        if placed == 2:
            break
    assert placed == 2
    # A spurious pore cut by the result border is not judged.
    edge = ball(mask.shape, (0, 0, 0), 3, (1, 1, 1)) & empty
    assert edge.any()
    result[edge] = 20
    m = match_pores(truth, 1.0, result, 1.0)
    assert (m.found, m.total, m.false_pores, m.merged) == (n, n, 2, 0)
    # A split pore: one half covers the centroid (found), the other is false.
    split = truth.copy()
    z = np.nonzero(truth == 1)[0]
    split[(truth == 1) & (np.arange(64)[:, None, None] > np.ceil(z.mean()) + 1)] = 30
    s = match_pores(truth, 1.0, split, 1.0)
    assert (s.found, s.total, s.false_pores) == (n, n, 1)


def test_border_touching_true_pores_are_not_scored():
    shape = (48, 48, 48)
    centres = [(24, 24, 24), (12, 34, 30), (24, 24, 2), (47, 10, 10)]  # the last two are cut
    truth = labelled_balls(shape, centres, [6, 5, 6, 4], (1, 1, 1))
    assert set(np.unique(truth)) == {0, 1, 2, 3, 4}
    m = match_pores(truth, 1.0, truth, 1.0)
    assert (m.found, m.total) == (2, 2)
    # Asking for a cut pore scores it.
    m = match_pores(truth, 1.0, truth, 1.0, truth_ids=[1, 3])
    assert (m.found, m.total) == (2, 2)
    # An analysis that edge-kills the cut pores loses nothing.
    res = analyse_pores(image_of(truth > 0), 1.0)
    assert res.count == 2
    m = match_pores(truth, 1.0, res.labels, 1.0)
    assert (m.found, m.total, m.false_pores, m.merged) == (2, 2, 0, 0)


def test_pore_whose_centroid_lies_outside_it_is_still_matched():
    yy, xx = np.ogrid[:64, :64]
    rho = np.hypot(yy - 32, xx - 32)
    truth = np.zeros((64, 64), dtype=np.int32)
    truth[(rho >= 10) & (rho <= 14) & (xx < 40)] = 1  # a C: its centroid lies in the gap
    truth[(yy - 10) ** 2 + (xx - 52) ** 2 <= 16] = 2
    assert truth[32, 32] == 0
    m = match_pores(truth, 0.5, truth, 0.5)
    assert (m.found, m.total, m.false_pores) == (2, 2, 0)
    # A disc filling the C's gap (a different pore) does not find it.
    wrong = np.where(truth == 1, 0, truth)
    wrong[rho < 8] = 3
    m = match_pores(truth, 0.5, wrong, 0.5)
    assert (m.found, m.total, m.false_pores) == (1, 2, 1)


def test_match_without_pores_and_bad_input():
    empty = np.zeros((16, 16, 16), dtype=np.int32)
    m = match_pores(empty, 1.0, empty, 2.0)
    assert (m.found, m.total, m.false_pores, m.merged) == (0, 0, 0, 0)
    assert math.isnan(m.recovery)
    assert m.to_dict()["recovery"] is None
    json.dumps(m.to_dict())
    labels = labelled_balls((16, 16, 16), [(8, 8, 8)], [4], (1, 1, 1))
    with pytest.raises(InputError, match="axes"):
        match_pores(labels, 1.0, labels[0], 1.0)
    with pytest.raises(InputError, match="integers"):
        match_pores(labels.astype(float), 1.0, labels, 1.0)
    with pytest.raises(InputError, match="negative"):
        match_pores(labels, 1.0, -labels, 1.0)
    with pytest.raises(InputError, match="truth_ids"):
        match_pores(labels, 1.0, labels, 1.0, truth_ids=[1, 7])
    with pytest.raises(InputError, match="result_origin_um"):
        match_pores(labels, 1.0, labels, 1.0, result_origin_um=(0, 0))
    with pytest.raises(VoxelSizeError):
        match_pores(labels, 1.0, labels, None)


def test_match_sparse_label_values():
    labels = labelled_balls((32, 32, 32), [(10, 10, 10), (22, 22, 22)], [4, 5], (1, 1, 1))
    sparse = np.where(labels > 0, labels.astype(np.int64) * 10**9, 0)
    m = match_pores(sparse, 1.0, labels, 1.0)
    assert (m.found, m.total, m.false_pores) == (2, 2, 0)
    assert match_pores(labels, 1.0, sparse, 1.0, truth_ids=[2]).found == 1


def test_match_phantom_truth_analysis_against_its_labels():
    ph = make_phantom(48, 3, seed=0)
    res = analyse_pores(ph.hres_truth, ph.hres_voxel_um)
    box = tuple(slice(k, k + n) for k, n in zip(ph.hres_start, ph.hres.shape))
    # Score the true pores lying wholly inside the HRES box.
    inside = np.setdiff1d(np.unique(ph.labels[box]), np.unique(_faces(ph.labels[box])))
    inside = inside[inside > 0]
    assert inside.size >= 20
    m = match_pores(
        ph.labels, ph.hres_voxel_um, res.labels, ph.hres_voxel_um,
        truth_origin_um=ph.truth_offset_um, result_origin_um=ph.hres_offset_um,
        truth_ids=inside,
    )
    assert m.total == inside.size
    assert m.recovery > 0.95
    assert m.false_pores <= 0.02 * res.count
    # The same on the cropped truth labels, with the default border rule.
    crop = match_pores(
        ph.labels[box], ph.hres_voxel_um, res.labels, ph.hres_voxel_um,
        truth_origin_um=ph.hres_offset_um, result_origin_um=ph.hres_offset_um,
    )
    assert crop == m
    # The wrong origin (truth voxel 0 taken as HRES voxel 0) finds few pores.
    wrong = match_pores(
        ph.labels, ph.hres_voxel_um, res.labels, ph.hres_voxel_um,
        truth_origin_um=ph.hres_offset_um, result_origin_um=ph.hres_offset_um,
        truth_ids=inside,
    )
    assert wrong.found < 0.5 * m.found


def _faces(a):
    """Values on the faces of an array."""
    return np.concatenate(
        [np.take(a, i, axis=ax).ravel() for ax in range(a.ndim) for i in (0, -1)]
    )
