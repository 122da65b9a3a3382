"""Sample masks carried onto an input's grid by world position (pores/masks.py), without Qt."""

from __future__ import annotations

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.pores.masks import mask_on_grid, polygon_mask


def test_mask_on_a_finer_grid_takes_the_voxel_under_each_centre():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 3:8] = True  # world y 3..9, x 5..15 (edges) on a 2 um grid from 0
    out = mask_on_grid(mask, 2.0, (0.0, 0.0), (20, 20), 1.0, (0.0, 0.0))
    expected = np.zeros((20, 20), bool)
    expected[3:9, 5:15] = True  # centres 3..8 and 5..14 lie inside those edges
    np.testing.assert_array_equal(out, expected)
    # Round trip: the coarse mask is recovered from the fine one.
    back = mask_on_grid(out, 1.0, (0.0, 0.0), (10, 10), 2.0, (0.0, 0.0))
    np.testing.assert_array_equal(back, mask)


def test_mask_outside_its_extent_is_false_and_labels_count_as_mask():
    labels = np.zeros((4, 4), np.int32)
    labels[:] = 7  # the whole label image is sample
    out = mask_on_grid(labels, 1.0, (10.0, 10.0), (30, 30), 1.0, (0.0, 0.0))
    assert out.sum() == 16 and out[10:14, 10:14].all()


def test_2d_mask_applies_to_every_slice_of_a_volume():
    mask = np.zeros((6, 6), bool)
    mask[1:3, 2:5] = True
    out = mask_on_grid(mask, (1.0, 1.0), None, (4, 6, 6), (2.0, 1.0, 1.0), (5.0, 0.0, 0.0))
    assert out.shape == (4, 6, 6)
    for z in range(4):
        np.testing.assert_array_equal(out[z], mask)
    with pytest.raises(InputError, match="3D sample mask"):
        mask_on_grid(np.ones((2, 3, 3), bool), 1.0, None, (3, 3), 1.0)


def test_polygon_mask_in_world_coordinates_on_every_slice():
    # Voxel centres 10 + 2 j; the rectangle y 30..70, x 30..90 holds j 10..30 and 10..40.
    square = np.array([[30.0, 30.0], [30.0, 90.0], [70.0, 90.0], [70.0, 30.0]])
    out = polygon_mask([square], (3, 40, 50), (1.0, 2.0, 2.0), (0.0, 10.0, 10.0))
    expected = np.zeros((3, 40, 50), bool)
    expected[:, 10:31, 10:41] = True
    np.testing.assert_array_equal(out, expected)
    # Two outlines: their union.
    other = square + (0.0, -20.0)
    both = polygon_mask([square, other], (40, 50), 2.0, (10.0, 10.0))
    assert both.sum() > expected[0].sum()
    for bad in ([], [np.array([[0.0, 0.0], [5.0, 5.0]])]):
        with pytest.raises(InputError, match="outline"):
            polygon_mask(bad, (4, 4), 1.0)
