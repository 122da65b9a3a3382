"""Resampling onto another physical grid."""

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.geometry.resample import resample_to_grid


def test_linear_ramp_is_sampled_at_physical_positions():
    # value = position in um along x, on a 3 um grid
    lres = np.tile(np.arange(20, dtype=np.float32) * 3.0, (5, 6, 1))
    out = resample_to_grid(lres, 3.0, (2, 3, 10), 1.0, (3.0, 3.0, 10.5), order=1)
    np.testing.assert_allclose(out[0, 0], 10.5 + np.arange(10), atol=1e-4)


def test_identity_and_origin():
    rng = np.random.default_rng(0)
    img = rng.random((12, 13)).astype(np.float32)
    same = resample_to_grid(img, (2.0, 1.0), img.shape, (2.0, 1.0), (4.0, 7.0), origin_um=(4.0, 7.0))
    np.testing.assert_allclose(same, img, atol=1e-5)


def test_bad_grid():
    with pytest.raises(InputError):
        resample_to_grid(np.zeros((4, 4, 4)), 1.0, (2, 2), 1.0, (0, 0))
