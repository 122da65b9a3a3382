"""ROIs and output grids (napari_resolve.geometry.grid): parsing, checking, phase, lazy resampling."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.geometry import grid as grid_module
from napari_resolve.geometry.grid import (
    Grid,
    check_roi,
    format_roi,
    lres_box_for,
    parse_roi,
    resample_lres,
    upscale_grid,
)
from napari_resolve.geometry.resample import resample_to_grid
from napari_resolve.phantom import make_phantom

#: Share of an output voxel that may stick out of the ROI.
TOL = getattr(grid_module, "TOLERANCE", 1e-6)


@cache
def phantom():
    return make_phantom(32, 3, seed=0)


# ----------------------------------------------------------------------------- parse_roi


def test_parse_roi_explicit_open_and_negative_bounds():
    assert parse_roi("0:10, 5:20,3:9", 3) == (slice(0, 10), slice(5, 20), slice(3, 9))
    assert parse_roi(":,10:,:-4", 3) == (slice(None, None), slice(10, None), slice(None, -4))
    assert parse_roi(" -8 : -2 ,1:5", 2) == (slice(-8, -2), slice(1, 5))
    # Round trip with format_roi.
    roi = (slice(2, 7), slice(None, 9), slice(-3, None))
    assert parse_roi(format_roi(roi), 3) == roi


def test_parse_roi_wrong_axis_count_says_what_to_give():
    with pytest.raises(InputError, match=r"2 part\(s\) but the volume has 3 axes") as info:
        parse_roi("0:10,0:10", 3, units="LRES voxels")
    assert "0:32,0:32,0:32" in str(info.value)
    assert "LRES voxels" in str(info.value)
    with pytest.raises(InputError, match="3 part"):
        parse_roi("0:1,0:1,0:1", 2)


@pytest.mark.parametrize("text", ["a:b,0:1,0:1", "10,0:5,0:5", "1:2:3,0:5,0:5", "1.5:4,0:5,0:5", "0-4,0:5,0:5", ""])
def test_parse_roi_garbage_raises_input_error(text):
    with pytest.raises(InputError):
        parse_roi(text, 3)


# ----------------------------------------------------------------------------- check_roi


def test_check_roi_resolves_open_and_negative_bounds():
    shape = (20, 30, 40)
    assert check_roi(None, shape, "v") == (slice(0, 20), slice(0, 30), slice(0, 40))
    assert check_roi(parse_roi(":,10:,-5:", 3), shape, "v") == (slice(0, 20), slice(10, 30), slice(35, 40))
    assert check_roi((slice(-20, -1), slice(0, 30), slice(1, 2)), shape, "v") == (
        slice(0, 19),
        slice(0, 30),
        slice(1, 2),
    )


@pytest.mark.parametrize(
    "roi, match",
    [
        ((slice(0, 21), slice(0, 5), slice(0, 5)), "does not fit inside the LRES"),  # past the end
        ((slice(-25, 5), slice(0, 5), slice(0, 5)), "does not fit"),  # before the start
        ((slice(5, 5), slice(0, 5), slice(0, 5)), "does not fit"),  # empty
        ((slice(8, 3), slice(0, 5), slice(0, 5)), "does not fit"),  # reversed
        ((slice(0, 5), slice(0, 5)), "2 axes but the LRES has 3"),
        ((slice(0, 5, 2), slice(0, 5), slice(0, 5)), "step"),
    ],
)
def test_check_roi_rejects_bad_rois_with_a_message(roi, match):
    with pytest.raises(InputError, match=match):
        check_roi(roi, (20, 30, 40), "the LRES")


def test_check_roi_min_size():
    roi = (slice(0, 20), slice(3, 6), slice(0, 40))
    with pytest.raises(InputError, match=r"3 voxels on axis 1; at least 4"):
        check_roi(roi, (20, 30, 40), "v", min_size=4)
    assert check_roi(roi, (20, 30, 40), "v", min_size=3) == roi


# ----------------------------------------------------------------------------- upscale_grid


def test_upscale_grid_in_phase_with_the_hres_coincides_with_the_truth_voxels():
    ph = phantom()
    h = ph.hres_voxel_um[0]
    roi = ((4, 9), (10, 21), (7, 30))
    grid = upscale_grid(tuple(slice(a, b) for a, b in roi), ph.lres_voxel_um, ph.hres_voxel_um, ph.hres_offset_um)
    # Truth (fine) voxel k has its centre at (k - 1) * h at ratio 3; LRES voxel i
    # covers fine voxels 3i .. 3i + 2, so the ROI's fine voxels are 3*start .. 3*stop - 1.
    assert grid.shape == tuple(3 * (b - a) for a, b in roi)
    assert grid.voxel_um == ph.hres_voxel_um
    np.testing.assert_allclose(grid.origin_um, [(3 * a - 1) * h for a, _ in roi], atol=1e-9)
    # Every grid voxel centre is a truth voxel centre.
    k = np.array(grid.origin_um) / h + 1
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)


def test_upscale_grid_without_phase_is_flush_with_the_roi_edge():
    roi = (slice(2, 7), slice(0, 9), slice(5, 6))
    lv, hv = (2.5, 2.0, 3.0), (1.0, 0.8, 1.5)
    grid = upscale_grid(roi, lv, hv)
    for ax, (s, l_, h_) in enumerate(zip(roi, lv, hv)):
        edge_lo, edge_hi = (s.start - 0.5) * l_, (s.stop - 0.5) * l_
        assert grid.origin_um[ax] == pytest.approx(edge_lo + 0.5 * h_)  # first voxel touches the lower edge
        assert grid.shape[ax] == int(np.floor((edge_hi - edge_lo) / h_ + 1e-9))
        last_hi = grid.origin_um[ax] + (grid.shape[ax] - 0.5) * h_
        assert last_hi <= edge_hi + 1e-9
        assert last_hi + h_ > edge_hi  # one more voxel would stick out


@pytest.mark.parametrize("phase", [(0.3, -0.45, 7.2), (0.0, 0.0, 0.0), (-100.49, 3.5, 2.01), (0.51, 0.97, 0.02)])
def test_upscale_grid_with_phase_is_the_largest_in_phase_grid_inside_the_roi(phase):
    roi = (slice(3, 8), slice(1, 12), slice(0, 4))
    lv, hv = (3.0, 3.0, 3.0), (1.0, 1.0, 1.0)
    grid = upscale_grid(roi, lv, hv, phase)
    for ax, s in enumerate(roi):
        edge_lo, edge_hi = (s.start - 0.5) * lv[ax], (s.stop - 0.5) * lv[ax]
        o, n = grid.origin_um[ax], grid.shape[ax]
        # In phase: the origin is the phase plus a whole number of voxels.
        assert (o - phase[ax]) / hv[ax] == pytest.approx(round((o - phase[ax]) / hv[ax]), abs=1e-9)
        # Inside the ROI (up to the tolerance), and maximal: one more voxel on
        # either side would stick out by more than the tolerance.
        assert o - 0.5 >= edge_lo - TOL - 1e-9 and o + (n - 0.5) <= edge_hi + TOL + 1e-9
        assert o - 1.5 < edge_lo - TOL and o + (n + 0.5) > edge_hi + TOL
        assert n >= 3 * (s.stop - s.start) - 1


def test_upscale_grid_tolerates_a_tiny_registration_error():
    # A registration 1e-4 voxel off the LRES-aligned phase must not lose a row of output voxels.
    roi = (slice(2, 10), slice(14, 34), slice(14, 34))
    exact = upscale_grid(roi, 3.0, 1.0, (-1.0, -1.0, -1.0))
    assert exact.shape == (24, 60, 60)
    for eps in (1e-4, -1e-4):
        near = upscale_grid(roi, 3.0, 1.0, (-1.0 + eps, -1.0 - eps, -1.0 + eps))
        assert near.shape == exact.shape
        np.testing.assert_allclose(near.origin_um, exact.origin_um, atol=2e-4)


def test_upscale_grid_of_a_tiny_roi_keeps_at_least_one_voxel():
    grid = upscale_grid((slice(0, 1), slice(0, 1)), 1.0, 2.0, (0.3, 0.3))
    assert grid.shape == (1, 1)


def test_grid_sub_and_to_dict():
    g = Grid((10, 20, 30), (1.0, 0.5, 2.0), (3.0, -1.0, 0.0))
    s = g.sub((slice(2, 5), slice(0, 20), slice(10, 11)))
    assert s == Grid((3, 20, 1), (1.0, 0.5, 2.0), (5.0, -1.0, 20.0))
    assert g.to_dict() == {"shape": [10, 20, 30], "voxel_um": [1.0, 0.5, 2.0], "origin_um": [3.0, -1.0, 0.0]}
    assert g.ndim == 3


# ----------------------------------------------------------------------------- resample_lres


def _rough_volume(shape, seed=0):
    # White noise: the worst case for the finite halo (no smoothness to hide behind).
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    "origin, shape",
    [
        ((40.3, 31.0, 52.7), (20, 17, 23)),  # inside, far from the edges
        ((-2.2, -1.0, 60.0), (12, 15, 40)),  # reaching outside the volume on both sides
    ],
)
def test_resample_lres_equals_resampling_the_whole_volume(origin, shape):
    lres = _rough_volume((36, 36, 36))
    lv = (3.0, 3.0, 3.0)
    grid = Grid(shape, (1.0, 1.0, 1.0), origin)
    whole = resample_to_grid(lres, lv, grid.shape, grid.voxel_um, grid.origin_um, order=3)
    part = resample_lres(lres, lv, grid)
    assert part.dtype == np.float32 and part.shape == grid.shape
    np.testing.assert_allclose(part, whole, atol=1e-5)
    # The halo matters: without it the result is visibly different (the test can fail).
    no_halo = resample_lres(lres, lv, grid, halo=0)
    assert np.abs(no_halo - whole).max() > 1e-3


def test_resample_lres_reads_only_the_footprint_and_works_in_2d():
    lres = _rough_volume((40, 50), seed=3)
    lv = (2.0, 2.0)
    grid = Grid((11, 13), (0.5, 0.5), (30.25, 41.0))
    box = lres_box_for(grid, lv, lres.shape, halo=2)
    assert box == (slice(13, 21), slice(18, 27))  # floor(lo) - 2 .. ceil(hi) + 1 + 2

    class Guard:
        """Records every slice read, refusing whole-volume reads."""

        shape = lres.shape
        reads: list = []

        def __getitem__(self, key):
            self.reads.append(key)
            return lres[key]

    g = Guard()
    out = resample_lres(g, lv, grid, halo=4)
    (key,) = g.reads
    assert all((s.stop - s.start) < n for s, n in zip(key, lres.shape))
    whole = resample_to_grid(lres, lv, grid.shape, grid.voxel_um, grid.origin_um)
    np.testing.assert_allclose(out, whole, atol=2e-2)  # 4-voxel halo: close, not exact
    np.testing.assert_allclose(resample_lres(lres, lv, grid), whole, atol=1e-5)


def test_resample_lres_linear_order():
    # A linear ramp is reproduced exactly by linear interpolation.
    lres = np.broadcast_to(np.arange(30, dtype=np.float32) * 2.0, (6, 8, 30)).copy()
    grid = Grid((2, 3, 12), (1.0, 1.0, 1.0), (3.0, 4.0, 10.5))
    out = resample_lres(lres, 2.0, grid, order=1)
    np.testing.assert_allclose(out[0, 0], 10.5 + np.arange(12), atol=1e-4)
