"""World boxes (um): a layer's extent, the voxels inside a box, where several layers overlap (geometry/overlap.py)."""

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.geometry.overlap import MIN_OVERLAP_VOXELS, crop_slices, extent_um, overlap_region, region_text


def test_extent_is_voxel_edges():
    lo, hi = extent_um((10, 20), (2.0, 0.5), (4.0, -1.0))
    np.testing.assert_allclose(lo, (3.0, -1.25))
    np.testing.assert_allclose(hi, (23.0, 8.75))


def test_overlap_and_crops_of_anisotropic_grids():
    # Anisotropic voxels; a fine layer inside a coarse one, off the coarse grid.
    coarse = ((10, 20, 20), (4.0, 2.0, 2.0), (0.0, 0.0, 0.0))  # edges: z -2..38, y and x -1..39
    fine = ((40, 30, 30), (0.5, 0.5, 0.5), (4.25, 10.25, 20.25))  # edges: z 4..24, y 10..25, x 20..35
    lo, hi = overlap_region({"coarse": coarse, "fine": fine})
    np.testing.assert_allclose(lo, (4, 10, 20))
    np.testing.assert_allclose(hi, (24, 25, 35))
    # Coarse centres in the box: z 4..24 (both on the edges, kept), y 10..24, x 20..34.
    assert crop_slices(*coarse, lo, hi) == (slice(1, 7), slice(5, 13), slice(10, 18))
    assert crop_slices(*fine, lo, hi) == (slice(0, 40), slice(0, 30), slice(0, 30))
    # A box that misses a layer gives empty slices, never negative ones.
    assert crop_slices(*coarse, (100, 0, 0), (120, 10, 10))[0] == slice(10, 10)
    assert crop_slices(*coarse, (-100, 0, 0), (-50, 10, 10))[0] == slice(0, 0)


def test_thin_or_missing_overlaps_are_refused_naming_the_region_parameter():
    coarse = ((10, 20, 20), (4.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    # Overlapping by 7 um along x, less than 4 coarse voxels (8 um): refused.
    with pytest.raises(InputError, match=rf"only 7 µm along x \(at least 8 µm needed: {MIN_OVERLAP_VOXELS} voxels"):
        overlap_region({"coarse": coarse, "fine": ((40, 30, 30), (0.5, 0.5, 0.5), (4.25, 10.25, 32.25))})
    with pytest.raises(InputError, match="do not overlap") as info:
        overlap_region({"coarse": coarse, "fine": ((40, 30, 30), (0.5, 0.5, 0.5), (4.25, 10.25, 60.0))})
    assert "'coarse', 'fine'" in str(info.value) and info.value.parameters == ("region",)
    assert info.value.render({"region": "--region"}).endswith("measure whole inputs instead (--region).")
    with pytest.raises(InputError, match="mix 2D images and 3D volumes") as info:
        overlap_region({"coarse": coarse, "flat": ((20, 20), (2.0, 2.0), (0.0, 0.0))})
    assert info.value.parameters == ("region",)


def test_a_thin_slab_needs_only_to_lie_inside():
    coarse = ((10, 20, 20), (4.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    # A slab of 2 slices (8 um) is thinner than 4 coarse voxels along z (16 um): it needs only to lie inside.
    slab = ((2, 30, 30), (4.0, 2.0, 2.0), (10.0, 0.0, 0.0))  # z edges 8..16
    lo, hi = overlap_region({"coarse": coarse, "slab": slab})
    assert hi[0] - lo[0] == pytest.approx(8)
    assert crop_slices(*coarse, lo, hi)[0] == slice(2, 5)  # z centres 8, 12 and 16 (8, 16 on the edges)
    half = ((2, 30, 30), (4.0, 2.0, 2.0), (34.0, 0.0, 0.0))  # z edges 32..40: half of it outside
    with pytest.raises(InputError, match="only 6 µm along z"):
        overlap_region({"coarse": coarse, "slab": half})


def test_region_text():
    assert region_text(((0, 10, 20), (5, 30, 40))) == "z 0–5, y 10–30, x 20–40 µm"
    assert region_text(((1.5, 2), (3, 4))) == "y 1.5–3.0, x 2.0–4.0 µm"
    assert region_text(((28.5, 63.5138), (104.5, 139.5138))) == "y 28.5–104.5, x 63.5–139.5 µm"  # one format
    assert region_text(None) == "whole layers"
