"""Training pairs (napari_resolve.learn.pairs): geometry, normalisation, held-out validation, patches."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.geometry.resample import resample_to_grid
from napari_resolve.learn.pairs import MIN_PATCH, PatchSampler, as_3d, hres_overlap, make_pair
from napari_resolve.phantom import make_phantom
from napari_resolve.registration import register


@cache
def phantom3d():
    return make_phantom(32, 3, seed=1)  # LRES 32^3 (3 um), HRES 38^3 (1 um)


@cache
def registered3d():
    ph = phantom3d()
    return register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)


@cache
def phantom2d():
    return make_phantom(96, 4, ndim=2, seed=0)  # LRES 96^2 (4 um), HRES 153^2 (1 um)


def pair3d(halo_z=2, **kw):
    ph, reg = phantom3d(), registered3d()
    return make_pair(ph.lres, ph.hres, ph.lres_voxel_um, reg.offset_um, reg.scale, halo_z=halo_z, **kw)


def pair2d(halo_z=2, **kw):
    ph = phantom2d()
    return make_pair(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_offset_um, ph.hres_voxel_um, halo_z=halo_z, **kw)


def percentiles(a):
    return np.percentile(np.asarray(a, np.float32), [0.5, 99.5])


# ----------------------------------------------------------------------------- the pair


def test_registration_of_the_test_phantom_is_good():
    ph, reg = phantom3d(), registered3d()
    assert reg.ok
    assert np.abs(np.subtract(reg.offset_um, ph.hres_offset_um)).max() < 0.1


def test_target_is_the_normalised_hres_and_input_the_normalised_cubic_lres_on_its_grid():
    ph, reg = phantom3d(), registered3d()
    h = 2
    pair = pair3d(halo_z=h)
    n = ph.hres.shape[0]
    assert pair.ndim == 3 and pair.val_axis == 0 and pair.halo_z == h
    assert pair.roi == tuple(slice(0, s) for s in ph.hres.shape)  # the whole HRES lies inside the LRES
    assert pair.target.shape == ph.hres.shape
    assert pair.inputs.shape == (n + 2 * h,) + ph.hres.shape[1:]
    assert pair.inputs.dtype == np.float32 and pair.target.dtype == np.float32
    assert pair.grid.shape == ph.hres.shape
    np.testing.assert_allclose(pair.grid.origin_um, reg.offset_um)
    np.testing.assert_allclose(pair.grid.voxel_um, reg.scale)

    # Normalisations are fitted on the training part only (no look at the validation block).
    vs = pair.val_start
    np.testing.assert_allclose([pair.norm_out.low, pair.norm_out.high], percentiles(ph.hres[:vs]), rtol=1e-5)
    target = (ph.hres - pair.norm_out.low) / (pair.norm_out.high - pair.norm_out.low)
    np.testing.assert_allclose(pair.target, target, atol=1e-5)

    # Input: cubic interpolation of the LRES at the HRES voxel centres, h extra slices each side.
    origin = (reg.offset_um[0] - h * reg.scale[0],) + tuple(reg.offset_um[1:])
    cubic = resample_to_grid(ph.lres, ph.lres_voxel_um, pair.inputs.shape, reg.scale, origin, order=3)
    np.testing.assert_allclose([pair.norm_in.low, pair.norm_in.high], percentiles(cubic[h : h + vs]), rtol=1e-4)
    expected = (cubic - pair.norm_in.low) / (pair.norm_in.high - pair.norm_in.low)
    np.testing.assert_allclose(pair.inputs, expected, atol=1e-5)
    # The mapping really is voxel for voxel: input and target correlate strongly
    # at the registered position and clearly less one voxel off.
    core = pair.inputs[h : h + n]
    r0 = np.corrcoef(core.ravel(), pair.target.ravel())[0, 1]
    r1 = np.corrcoef(core[:, :, 2:].ravel(), pair.target[:, :, :-2].ravel())[0, 1]
    assert r0 > 0.8 and r0 > r1 + 0.05


def test_validation_block_is_the_last_part_along_z():
    h = 2
    pair = pair3d(halo_z=h)
    n = pair.target.shape[0]
    n_val = max(4, round(0.2 * n))
    assert pair.val_start == n - n_val
    assert pair.train_shape == (n - n_val,) + pair.target.shape[1:]
    vi, vt = pair.validation()
    assert vt.shape == (n_val,) + pair.target.shape[1:]
    assert vi.shape == (n_val + 2 * h,) + pair.target.shape[1:]
    np.testing.assert_array_equal(vt, pair.target[pair.val_start :])
    # Input slice h + k of the block belongs to target slice k of the block.
    np.testing.assert_array_equal(vi[h : h + n_val], pair.inputs[h + pair.val_start : h + n])
    # A larger share and a minimum size.
    assert pair3d(val_fraction=0.5).val_start == n - round(0.5 * n)
    assert pair3d(val_fraction=0.01).val_start == n - 4
    assert pair3d(val_fraction=0.01, min_val=7).val_start == n - 7


@pytest.mark.parametrize("out_depth, halo", [(1, 2), (1, 0), (8, 0)])
def test_no_training_patch_touches_the_validation_block(out_depth, halo):
    pair = pair3d(halo_z=halo)
    vs, n = pair.val_start, pair.target.shape[0]
    # Target slice z holds z on the training part and NaN in the validation block.
    pair.target = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], pair.target.shape).copy()
    pair.target[vs:] = np.nan
    sampler = PatchSampler(pair, out_depth=out_depth, size=24, multiple=4, rng=np.random.default_rng(0))
    assert sampler.shape == (out_depth, 24, 24)
    seen = set()
    for _ in range(20):
        xs, ys = sampler.sample(150)
        assert xs.shape == (150, out_depth + 2 * halo, 24, 24) and ys.shape == (150, out_depth, 24, 24)
        assert not np.isnan(ys).any()
        seen.update(np.unique(ys).astype(int).tolist())
    # ...and the whole training part is used, up to its last slice.
    assert seen == set(range(vs))


def test_no_training_patch_touches_the_validation_block_2d():
    pair = pair2d()
    vs = pair.val_start
    pair.target[0, vs:] = np.nan
    sampler = PatchSampler(pair, out_depth=1, size=32, multiple=4, rng=np.random.default_rng(1))
    rows_max = 0.0
    pair.target[0, :vs] = np.arange(vs, dtype=np.float32)[:, None]
    for _ in range(10):
        xs, ys = sampler.sample(200)
        assert not np.isnan(ys).any()
        rows_max = max(rows_max, float(ys.max()))
    assert rows_max == vs - 1


def _orientation(patch: np.ndarray) -> tuple[float, float]:
    """Steps along x and along y of a patch of the field 100 * y + x: (1, 100) unaugmented."""
    return float(patch[0, 1] - patch[0, 0]), float(patch[1, 0] - patch[0, 0])


@pytest.mark.parametrize(
    "augment, square, n_orientations",
    [(True, True, 8), (True, False, 4), (False, True, 1)],
)
def test_augmentation_keeps_input_and_target_aligned(augment, square, n_orientations):
    h = 2
    pair = pair3d(halo_z=h)
    nz, ny, nx = pair.inputs.shape
    zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    pair.inputs = (10_000 * zz + 100 * yy + xx).astype(np.float32)  # exact in float32
    # A known mapping: target = 2 * input of the same voxel + 1.
    pair.target = 2 * pair.inputs[h : nz - h] + 1
    sampler = PatchSampler(
        pair, out_depth=1, size=16, multiple=1, rng=np.random.default_rng(2), augment=augment, square_voxels=square
    )
    xs, ys = sampler.sample(400)
    np.testing.assert_array_equal(ys, 2 * xs[:, h : h + 1] + 1)
    # The z halo slices are the neighbours of the same (y, x) voxels, in order.
    np.testing.assert_array_equal(np.diff(xs, axis=1), np.full_like(xs[:, 1:], 10_000))
    orientations = {_orientation(x[0]) for x in xs}
    assert len(orientations) == n_orientations
    if not augment:
        assert orientations == {(1.0, 100.0)}


def test_sampling_is_reproducible_with_the_seed():
    pair = pair3d()
    a = PatchSampler(pair, out_depth=1, size=32, multiple=4, rng=np.random.default_rng(7)).sample(6)
    b = PatchSampler(pair, out_depth=1, size=32, multiple=4, rng=np.random.default_rng(7)).sample(6)
    c = PatchSampler(pair, out_depth=1, size=32, multiple=4, rng=np.random.default_rng(8)).sample(6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_patch_size_is_fitted_to_the_region_and_the_multiple():
    pair = pair3d()
    tz, ty, tx = pair.train_shape
    assert PatchSampler(pair, out_depth=1, size=30, multiple=4, rng=np.random.default_rng()).shape == (1, 28, 28)
    big = PatchSampler(pair, out_depth=100, size=1000, multiple=8, rng=np.random.default_rng())
    assert big.shape == (tz, ty // 8 * 8, tx // 8 * 8)
    xs, ys = big.sample(2)
    assert ys.shape == (2,) + big.shape
    with pytest.raises(InputError, match="too small for patches"):
        PatchSampler(pair, out_depth=1, size=6, multiple=1, rng=np.random.default_rng())
    with pytest.raises(InputError, match="too small"):
        PatchSampler(pair, out_depth=1, size=64, multiple=64, rng=np.random.default_rng())


# ----------------------------------------------------------------------------- ROIs


def test_explicit_roi_inside_the_overlap():
    ph, reg = phantom3d(), registered3d()
    roi = (slice(3, 30), slice(5, 27), slice(10, 38))
    pair = pair3d(roi=roi, halo_z=1)
    assert pair.roi == roi
    assert pair.target.shape == (27, 22, 28)
    expected_origin = [o + r.start * v for o, r, v in zip(reg.offset_um, roi, reg.scale)]
    np.testing.assert_allclose(pair.grid.origin_um, expected_origin)
    raw = pair.norm_out.invert(pair.target)
    np.testing.assert_allclose(raw, ph.hres[roi], atol=1e-5)
    # The z halo comes from the real LRES around the ROI (HRES slices 2 and 30 exist).
    full = pair3d(halo_z=0)
    np.testing.assert_allclose(
        pair.norm_in.invert(pair.inputs[:, :, :]),
        full.norm_in.invert(full.inputs[2:31, 5:27, 10:38]),
        atol=1e-4,
    )


@pytest.mark.parametrize(
    "roi, match",
    [
        ((slice(0, 39), slice(0, 38), slice(0, 38)), "does not fit"),  # beyond the HRES
        ((slice(0, 4), slice(0, 38), slice(0, 38)), "too small for a validation block"),
        ((slice(0, 38), slice(0, 15), slice(0, 38)), f"at least {MIN_PATCH} x {MIN_PATCH}"),
        ((slice(0, 38), slice(0, 38), slice(30, 38)), f"at least {MIN_PATCH} x {MIN_PATCH}"),
    ],
)
def test_bad_training_rois(roi, match):
    with pytest.raises(InputError, match=match):
        pair3d(roi=roi)


def test_smallest_roi_along_z_has_one_training_slice():
    pair = pair3d(roi=(slice(0, 5), slice(0, 38), slice(0, 38)))
    assert pair.val_start == 1


def test_hres_partly_outside_the_lres_trains_on_the_overlap_only():
    ph = phantom3d()
    # Move the HRES so its first 10 slices lie above the LRES field (z < -1.5 um).
    offset = (-11.5,) + tuple(ph.hres_offset_um[1:])
    overlap = hres_overlap(ph.hres.shape, ph.hres_voxel_um, offset, ph.lres.shape, ph.lres_voxel_um)
    assert overlap == (slice(10, 38), slice(0, 38), slice(0, 38))
    pair = make_pair(ph.lres, ph.hres, ph.lres_voxel_um, offset, ph.hres_voxel_um)
    assert pair.roi == overlap and pair.target.shape == (28, 38, 38)
    with pytest.raises(InputError, match="leaves the part of the HRES that lies inside the LRES on axis 0"):
        make_pair(ph.lres, ph.hres, ph.lres_voxel_um, offset, ph.hres_voxel_um, roi=(slice(5, 38),) + overlap[1:])
    with pytest.raises(InputError, match="does not overlap"):
        make_pair(ph.lres, ph.hres, ph.lres_voxel_um, (500.0, 0.0, 0.0), ph.hres_voxel_um)


def test_bad_inputs():
    ph, reg = phantom3d(), registered3d()
    lv, off, hv = ph.lres_voxel_um, reg.offset_um, reg.scale
    with pytest.raises(InputError, match="3D but the HRES is 2D"):
        make_pair(ph.lres, ph.hres[0], lv, off, hv)
    nan = ph.lres.copy()
    nan[3, 4, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        make_pair(nan, ph.hres, lv, off, hv)
    with pytest.raises(InputError, match="NaN"):
        bad = ph.hres.copy()
        bad[-1, -1, -1] = np.inf
        make_pair(ph.lres, bad, lv, off, hv)
    for frac in (0.0, 0.6, -0.1):
        with pytest.raises(InputError, match="val_fraction"):
            make_pair(ph.lres, ph.hres, lv, off, hv, val_fraction=frac)
    with pytest.raises(InputError, match="offset"):
        make_pair(ph.lres, ph.hres, lv, off[:2], hv)


# ----------------------------------------------------------------------------- 2D


def test_2d_image_pair():
    ph = phantom2d()
    h = 2
    pair = pair2d(halo_z=h)
    ny, nx = ph.hres.shape
    assert pair.ndim == 2 and pair.val_axis == 1
    assert pair.target.shape == (1, ny, nx)
    assert pair.inputs.shape == (2 * h + 1, ny, nx)
    # A 2D image has no z neighbours: the halo repeats the one slice.
    for k in range(2 * h + 1):
        np.testing.assert_array_equal(pair.inputs[k], pair.inputs[h])
    n_val = max(4, round(0.2 * ny))
    assert pair.val_start == ny - n_val
    assert pair.train_shape == (1, ny - n_val, nx)
    assert pair.grid.shape == (1, ny, nx) and pair.grid.origin_um[1:] == ph.hres_offset_um
    raw = pair.norm_out.invert(pair.target[0])
    np.testing.assert_allclose(raw, ph.hres, atol=1e-4)
    cubic = resample_to_grid(ph.lres, ph.lres_voxel_um, ph.hres.shape, ph.hres_voxel_um, ph.hres_offset_um)
    np.testing.assert_allclose(pair.norm_in.invert(pair.inputs[h]), cubic, atol=1e-4)
    vi, vt = pair.validation()
    assert vt.shape == (1, n_val, nx) and vi.shape == (2 * h + 1, n_val, nx)
    np.testing.assert_array_equal(vt[0], pair.target[0, pair.val_start :])
    xs, ys = PatchSampler(pair, out_depth=1, size=32, multiple=4, rng=np.random.default_rng(0)).sample(4)
    assert xs.shape == (4, 2 * h + 1, 32, 32) and ys.shape == (4, 1, 32, 32)


def test_2d_roi_too_short_for_training_and_validation():
    # 2D: the validation block is cut along y, and what is left must hold a patch.
    with pytest.raises(InputError, match="too small"):
        pair2d(roi=(slice(0, MIN_PATCH + 3), slice(0, 153)))  # 4 validation rows + 15
    assert pair2d(roi=(slice(0, MIN_PATCH + 4), slice(0, 153))).val_start == MIN_PATCH


def test_as_3d():
    img = np.zeros((5, 6), np.float32)
    vol, voxel = as_3d(img, (2.0, 0.5))
    assert vol.shape == (1, 5, 6) and voxel == (2.0, 2.0, 0.5)
    v3 = np.zeros((2, 3, 4))
    same, voxel3 = as_3d(v3, 1.5)
    assert same is v3 and voxel3 == (1.5, 1.5, 1.5)
