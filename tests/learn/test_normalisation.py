"""Percentile normalisation."""

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.learn.normalisation import Normalisation, fit_normalisation


def test_percentiles_map_to_0_and_1_and_invert_exactly():
    rng = np.random.default_rng(1)
    data = rng.normal(1000, 50, (20, 30, 30)).astype(np.float32)
    norm = fit_normalisation(data, 1, 99)
    out = norm.apply(data)
    assert np.percentile(out, 1) == pytest.approx(0, abs=1e-4)
    assert np.percentile(out, 99) == pytest.approx(1, abs=1e-4)
    np.testing.assert_allclose(norm.invert(out), data, rtol=1e-5)


def test_robust_to_hot_pixels():
    rng = np.random.default_rng(2)
    data = rng.random((16, 32, 32)).astype(np.float32)
    clean = fit_normalisation(data)
    data[0, 0, :5] = 1e6  # a few hot pixels
    hot = fit_normalisation(data)
    assert hot.high == pytest.approx(clean.high, rel=0.01)


def test_mask_and_round_trip_dict():
    data = np.zeros((8, 8), np.float32)
    data[2:6, 2:6] = np.arange(16, dtype=np.float32).reshape(4, 4)
    mask = data > 0
    norm = fit_normalisation(data, 0, 100, mask=mask)
    assert (norm.low, norm.high) == (1.0, 15.0)
    assert Normalisation.from_dict(norm.to_dict()) == norm


def test_bad_input():
    with pytest.raises(InputError, match="constant"):
        fit_normalisation(np.ones((4, 4)))
    with pytest.raises(InputError, match="NaN"):
        fit_normalisation(np.array([[np.nan, 1.0], [2.0, 3.0]]))
    with pytest.raises(InputError, match="empty"):
        fit_normalisation(np.ones((4, 4)), mask=np.zeros((4, 4), bool))
    with pytest.raises(InputError):
        fit_normalisation(np.ones((4, 4)), 90, 10)
