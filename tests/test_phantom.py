"""The foam phantom: seeded, geometrically exact, realistic degradation."""

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.phantom import block_mean, make_phantom


@pytest.fixture(scope="module")
def ph():
    return make_phantom(32, 3, seed=5)


def test_shapes_and_voxel_sizes(ph):
    assert ph.lres.shape == (32, 32, 32)
    assert ph.truth.shape == ph.labels.shape == (96, 96, 96)
    assert ph.lres_voxel_um == (3.0, 3.0, 3.0) and ph.hres_voxel_um == (1.0, 1.0, 1.0)
    assert ph.lres.dtype == ph.hres.dtype == np.float32


def test_seeded_and_reproducible(ph):
    again = make_phantom(32, 3, seed=5)
    np.testing.assert_array_equal(again.lres, ph.lres)
    np.testing.assert_array_equal(again.hres, ph.hres)
    other = make_phantom(32, 3, seed=6)
    assert not np.array_equal(other.labels, ph.labels)


def test_pores_do_not_overlap_and_are_polydisperse(ph):
    counts = np.bincount(ph.labels.ravel())[1:]
    assert len(counts) > 50
    # Every placed pore is visible (no pore swallowed by another).
    assert (counts > 0).all()
    assert counts.max() > 20 * np.median(counts[counts > 0]) or counts.max() / counts.min() > 20
    porosity = (ph.labels > 0).sum() / (np.pi * (0.45 * 96) ** 2 * 96)
    assert 0.15 < porosity < 0.4


def test_hres_offset_matches_the_truth_geometry(ph):
    """The HRES offset puts HRES voxels exactly on the truth grid in the LRES frame."""
    # truth voxel k is at truth_offset + k*h; HRES voxel 0 is truth voxel hres_start.
    expected = [t + k * h for t, k, h in zip(ph.truth_offset_um, ph.hres_start, ph.hres_voxel_um)]
    assert ph.hres_offset_um == pytest.approx(expected)
    # LRES voxel i is the mean of truth voxels i*r .. i*r+r-1, centred at i*r + (r-1)/2.
    assert ph.truth_offset_um == pytest.approx((-1.0, -1.0, -1.0))


def test_lres_is_blurred_downsampled_truth_with_noise(ph):
    expected = block_mean(ph.truth, 3)
    r = np.corrcoef(expected.ravel(), ph.lres.ravel())[0, 1]
    assert 0.9 < r < 0.999  # related, but blurred and noisy
    # HRES shows the truth at its own offset with independent noise.
    r_h = np.corrcoef(ph.hres_truth.ravel(), ph.hres.ravel())[0, 1]
    assert r_h > 0.9
    noise = ph.hres - ph.hres_truth
    assert 0.02 < noise[ph.hres_truth > 0.99].std() < 0.2


def test_contrast_change_for_second_acquisition():
    p = make_phantom(24, 2, seed=1, hres_gain=0.5, hres_offset=0.3)
    solid = p.hres[p.hres_truth > 0.99].mean()
    assert solid == pytest.approx(0.8, abs=0.03)


def test_2d_variant():
    p = make_phantom(64, 2, ndim=2, seed=3)
    assert p.lres.shape == (64, 64) and p.truth.shape == (128, 128)
    assert p.hres.ndim == 2 and len(p.hres_offset_um) == 2
    assert p.labels.max() > 10


@pytest.mark.parametrize(
    "kwargs",
    [dict(ratio=2.5), dict(ratio=0), dict(size=4), dict(porosity=0.9), dict(pore_radius_um=(5, 2)),
     dict(ndim=4), dict(hres_size=1000)],
)
def test_bad_parameters(kwargs):
    args = dict(size=16, ratio=2) | kwargs
    with pytest.raises(InputError):
        make_phantom(**args)


@pytest.mark.parametrize("flag, value", [("--hres-voxel", "0"), ("--hres-voxel", "-1"), ("--hres-voxel", "nan"),
                                         ("--blur", "-0.5")])
def test_phantom_settings_out_of_range_get_a_message_not_a_traceback(tmp_path, capsys, flag, value):
    from napari_resolve.cli import main

    assert main(["phantom", str(tmp_path / "p"), flag, value]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the "Making a foam phantom" log line
    assert last.startswith("napari-resolve phantom: error: " + flag) and "Traceback" not in last
    assert not (tmp_path / "p").exists()
