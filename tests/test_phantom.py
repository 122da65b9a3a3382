"""The foam phantom: seeded, geometrically exact, realistic degradation."""

import numpy as np
import pytest

from napari_resolve.errors import InputError
from napari_resolve.phantom import SEM_EDGE, SEM_GRAIN_SPREAD, SEM_PORE, SEM_SOLID, block_mean, make_phantom


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


@pytest.mark.parametrize("ndim, size, ratio", [(3, 32, 3), (2, 96, 4)])
def test_sem_modality_same_structure_and_lres_other_contrast(ndim, size, ratio):
    from scipy import ndimage

    ct = make_phantom(size, ratio, ndim=ndim, seed=4)
    sem = make_phantom(size, ratio, ndim=ndim, seed=4, hres_modality="sem")
    # The same structure, LRES (a CT scan either way) and HRES box: only the HRES instrument differs.
    np.testing.assert_array_equal(sem.lres, ct.lres)
    np.testing.assert_array_equal(sem.labels, ct.labels)
    assert sem.hres_start == ct.hres_start and sem.params["hres_modality"] == "sem"
    solid = ct.truth > 0.999
    inner_solid = ndimage.binary_erosion(solid, iterations=3)
    inner_pore = ndimage.binary_erosion(ct.labels > 0, iterations=2)
    assert sem.truth[inner_pore].mean() == pytest.approx(SEM_PORE, abs=0.01)
    # Solid: bright, with a grain texture of about the stated spread.
    assert sem.truth[inner_solid].mean() == pytest.approx(SEM_SOLID, abs=0.03)
    assert sem.truth[inner_solid].std() == pytest.approx(SEM_GRAIN_SPREAD, rel=0.4)
    # Brighter on the solid side of a pore boundary (the edge effect).
    rim = solid & ~ndimage.binary_erosion(solid) & ~inner_solid
    assert sem.truth[rim].mean() - sem.truth[inner_solid].mean() > 0.4 * SEM_EDGE
    # The HRES is the SEM truth, blurred, with noise and scan lines.
    assert np.corrcoef(sem.hres.ravel(), sem.hres_truth.ravel())[0, 1] > 0.8
    assert not np.array_equal(sem.truth, ct.truth)


@pytest.mark.parametrize("ndim, size, ratio", [(3, 40, 3), (2, 120, 4)])
def test_a_cross_modality_pair_registers_also_with_inverted_contrast(ndim, size, ratio):
    from napari_resolve.registration import register

    p = make_phantom(size, ratio, ndim=ndim, seed=2, hres_modality="sem")
    for sign in (1, -1):
        reg = register(p.lres, sign * p.hres, p.lres_voxel_um, p.hres_voxel_um)
        assert reg.ok and reg.ncc > 0.8
        np.testing.assert_allclose(reg.offset_um, p.hres_offset_um, atol=0.5 * p.hres_voxel_um[0])
        assert ("inverted contrast" in reg.message) == (sign < 0)


@pytest.mark.parametrize(
    "kwargs",
    [dict(hres_modality="xray"), dict(ratio=2.5), dict(ratio=0), dict(size=4), dict(porosity=0.9),
     dict(pore_radius_um=(5, 2)), dict(ndim=4), dict(hres_size=1000)],
)
def test_bad_parameters(kwargs):
    args = dict(size=16, ratio=2) | kwargs
    with pytest.raises(InputError):
        make_phantom(**args)


@pytest.mark.parametrize("flag, value", [("--hres-voxel", "0"), ("--hres-voxel", "-1"), ("--hres-voxel", "nan"),
                                         ("--blur", "-0.5"), ("--hres-modality", "xray")])
def test_phantom_settings_out_of_range_get_a_message_not_a_traceback(tmp_path, capsys, flag, value):
    from napari_resolve.cli import main

    assert main(["phantom", str(tmp_path / "p"), flag, value]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the "Making a foam phantom" log line
    assert last.startswith("napari-resolve phantom: error: " + flag) and "Traceback" not in last
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("flag, value, says", [
    ("--hres-voxel", "1e300", "less than one HRES voxel"),  # was an OverflowError
    ("--hres-voxel", "1e6", "less than one HRES voxel"),  # was numpy's "Maximum allowed dimension exceeded"
    ("--hres-voxel", "10", "less than one HRES voxel"),  # ran for minutes: sub-voxel pores by the million
    ("--hres-voxel", "2.5", "would place about 21,289 pores"),  # 1-voxel pores: minutes of placing
    ("--blur", "1e300", "at most 192"),  # a blur wider than the field: numpy's "Maximum allowed size exceeded"
    ("--photons", "1e300", "at most 1e+15"),  # numpy's "lam value too large"
    ("--hres-size", "0", "at least 1 HRES voxel"),  # tifffile's ValueError, after lres.tif was written
    ("--hres-gain", "nan", "must be a number"),  # exit 0 and an all-NaN HRES
    ("--hres-offset", "inf", "must be a number"),
    ("--read-noise", "1e300", "at most 1e+06"),  # float32 infinity in the LRES
    ("--size", "600", "more than the phantom makes"),  # a 1800^3 truth
])
def test_absurd_phantom_settings_are_refused_at_once_naming_the_flag(tmp_path, capsys, flag, value, says):
    import time

    from napari_resolve.cli import main

    t0 = time.perf_counter()
    assert main(["phantom", str(tmp_path / "p"), flag, value]) == 2
    assert time.perf_counter() - t0 < 5
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("napari-resolve phantom: error: ") and says in last and flag in last, last
    assert not (tmp_path / "p").exists()


def test_non_finite_contrast_is_refused_in_the_library():
    for kwargs in (dict(hres_gain=float("nan")), dict(hres_offset=float("inf")), dict(ratio=float("nan"))):
        with pytest.raises(InputError):
            make_phantom(16, **({"ratio": 2} | kwargs))


@pytest.mark.parametrize("stop", [OSError("disk full"), KeyboardInterrupt()])
def test_a_phantom_write_that_fails_part_way_leaves_no_files(tmp_path, monkeypatch, stop):
    """The third of five files fails (or Ctrl-C arrives): the two written are removed, and the folder made."""
    import napari_resolve.io as io
    from napari_resolve.phantom import write_phantom

    real, calls = io.write_volume, []

    def flaky(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise stop
        return real(*args, **kwargs)

    monkeypatch.setattr(io, "write_volume", flaky)
    with pytest.raises(type(stop)):
        write_phantom(tmp_path / "p", size=16, ratio=2)
    assert len(calls) == 3 and not (tmp_path / "p").exists()
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "notes.txt").write_text("mine")
    calls.clear()
    with pytest.raises(type(stop)):
        write_phantom(tmp_path / "q", size=16, ratio=2)
    assert [p.name for p in (tmp_path / "q").iterdir()] == ["notes.txt"]
