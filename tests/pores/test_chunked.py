"""Pore statistics by chunks with an overlap equal the whole-volume route on volumes that fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pore_shapes import ball, image_of
from scipy import ndimage as ndi

from napari_resolve.errors import InputError
from napari_resolve.jobs import drain
from napari_resolve.pores.chunked import iter_chunked_pores, plan_chunked_pores, run_chunked_pores
from napari_resolve.pores.segment import analyse_pores


def random_balls(shape=(48, 48, 48), n=40, seed=0, voxel=(1.0, 1.0, 1.0), rmax=5.0):
    """Balls of radius 2-5 um that may overlap (merged pairs get split) and be cut by the border; blurred, noisy."""
    rng = np.random.default_rng(seed)
    pores = np.zeros(shape, dtype=bool)
    for _ in range(n):
        centre = [rng.uniform(0, s * v) for s, v in zip(shape, voxel)]
        pores |= ball(shape, centre, rng.uniform(2, rmax), voxel)
    img = ndi.gaussian_filter(image_of(pores), 0.7) + rng.normal(0, 0.1, shape)
    return img.astype(np.float32)


def assert_same(whole, chunked):
    assert chunked.threshold == whole.threshold
    assert abs(chunked.porosity - whole.porosity) < 1e-9
    assert chunked.count == whole.count
    np.testing.assert_allclose(np.sort(chunked.table["diameter_um"]), np.sort(whole.table["diameter_um"]),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.sort(chunked.table["sphericity"]), np.sort(whole.table["sphericity"]),
                               rtol=0, atol=1e-9)
    assert chunked.too_large == 0 and chunked.uncertain_voxels == 0 and chunked.warnings == ()
    assert_same_summary(whole.summary(), chunked.summary())


def assert_same_summary(whole, chunked):
    """The whole route's summary keys, equal (floats to 1e-9 relative)."""
    for key, value in whole.items():
        if isinstance(value, float):
            assert chunked[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert chunked[key] == value, key


def cut_by_cores(result, chunk):
    """Counted pores whose extent (equivalent ball around the centroid) crosses a core border."""
    centre = np.stack([result.table[f"centroid_{a}_um"] for a in "zyx"], axis=1)
    radius = result.table["diameter_um"][:, None] / 2
    return int(np.count_nonzero(np.any(np.floor((centre - radius) / chunk) != np.floor((centre + radius) / chunk),
                                       axis=1)))


IMAGE = random_balls()


@pytest.mark.parametrize("options", [
    {"scheduler": "synchronous"},
    {"keep_edge_pores": True},
    {"threshold": 0.5, "workers": 2},
    {"pores_are": "bright"},
], ids=["otsu", "keep-edge", "threshold", "bright"])
def test_chunked_equals_whole_on_pores_cut_by_chunks(options):
    img = 1 - IMAGE if options.get("pores_are") == "bright" else IMAGE
    whole = analyse_pores(img, 1.0, sample_mask=None, edge_kill=not options.get("keep_edge_pores", False),
                          **{k: v for k, v in options.items() if k in ("threshold", "pores_are")})
    chunked = run_chunked_pores(img, 1.0, chunks=16, overlap_um=14, **options)
    assert chunked.chunks == 27 and chunked.chunk_shape == (16, 16, 16) and chunked.overlap_um == (14, 14, 14)
    assert whole.count >= 15 and cut_by_cores(whole, 16) >= 10  # most pores are cut by the chunk grid
    assert_same(whole, chunked)
    # One table row per pore, labels 1..n, centroids in the volume's frame.
    assert list(chunked.table["label"]) == list(range(1, chunked.count + 1))
    np.testing.assert_allclose(np.sort(chunked.table["centroid_x_um"]), np.sort(whole.table["centroid_x_um"]),
                               atol=1e-9)


def test_anisotropic_voxels_uneven_chunks_and_a_lazy_mask(tmp_path):
    zarr = pytest.importorskip("zarr")
    da = pytest.importorskip("dask.array")
    voxel = (1.5, 1.0, 1.0)
    img = random_balls((40, 48, 44), n=30, seed=1, voxel=voxel, rmax=4)
    mask = np.ones(img.shape, dtype=bool)
    mask[:, 15:30, 12:30] = False  # a hole inside the sample's outline: discarded fraction > 0
    stored = zarr.open(str(tmp_path / "img.zarr"), mode="w", shape=img.shape, chunks=(8, 16, 16), dtype="f4")
    stored[:] = img
    whole = analyse_pores(img, voxel, sample_mask=mask)
    chunked = run_chunked_pores(stored, voxel, chunks=(10, 20, 13), overlap_um=(15, 14, 14),
                                sample_mask=da.from_array(mask, chunks=24))
    assert whole.discarded_fraction > 0.05
    assert chunked.discarded_fraction == pytest.approx(whole.discarded_fraction, abs=1e-12)
    assert_same(whole, chunked)


def test_a_pore_larger_than_the_overlap_is_warned_and_still_counts_in_the_porosity():
    shape = (48, 48, 48)
    pores = ball(shape, (24, 24, 24), 11, (1, 1, 1))
    for centre in [(6, 6, 6), (6, 40, 8), (40, 8, 40), (41, 41, 7)]:
        pores |= ball(shape, centre, 3, (1, 1, 1))
    img = image_of(pores)
    whole = analyse_pores(img, 1.0, sample_mask=None)
    assert whole.count == 5
    small = run_chunked_pores(img, 1.0, chunks=16, overlap_um=6)
    assert small.too_large >= 1 and small.count == 4
    assert abs(small.porosity - whole.porosity) < 1e-9
    (note,) = small.warnings
    assert note.parameters == ("overlap_um",) and "overlap_um" in str(note) and "past the overlap" in str(note)
    assert small.summary()["too_large"] == small.too_large
    assert_same(whole, run_chunked_pores(img, 1.0, chunks=16, overlap_um=24))


def test_a_distributed_cluster_gives_the_same_result():
    distributed = pytest.importorskip("distributed")
    whole = analyse_pores(IMAGE, 1.0, sample_mask=None)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        chunked = run_chunked_pores(IMAGE, 1.0, chunks=16, overlap_um=14, client=client)
    assert_same(whole, chunked)


def test_progress_counts_chunks_and_estimates_the_time_left():
    plan = plan_chunked_pores(IMAGE, 1.0, chunks=24, overlap_um=8, scheduler="synchronous")
    records = []
    result = drain(iter_chunked_pores(plan), records.append)
    assert {r.total for r in records} == {24} and records[-1].step == 24  # 8 chunks, three passes
    assert [r.step for r in records] == sorted(r.step for r in records)
    assert "segmenting (8/8 chunks)" in [r.message for r in records]
    assert any(r.remaining_s is not None for r in records if "segmenting" in r.message)
    assert result.chunks == 8
    job = iter_chunked_pores(plan)
    next(job)
    job.close()  # stops at a yield


def test_csv_has_one_row_per_pore(tmp_path):
    result = run_chunked_pores(IMAGE, 1.0, chunks=16, overlap_um=14)
    result.to_csv(tmp_path / "p.csv")
    rows = (tmp_path / "p.csv").read_text().strip().splitlines()
    assert len(rows) == result.count + 1 and "diameter_um" in rows[0]
    edges, counts = result.size_histogram(2.0)
    assert counts.sum() == result.count
    json.dumps(result.summary())


@pytest.mark.parametrize("call, parameter", [
    (lambda: plan_chunked_pores(IMAGE[0], 1.0, chunks=16), "image"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=0), "chunks"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=(16, 16)), "chunks"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=8.5), "chunks"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=16, overlap_um=-1), "overlap_um"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=16, overlap_um=1), "overlap_um"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=16, sample_mask="auto"), "sample_mask"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=16, sample_mask=np.ones((4, 4, 4), bool)), "sample_mask"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=16, sample_mask=np.zeros(IMAGE.shape, bool)), "sample_mask"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=16, threshold=7.0), "threshold"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=16, pores_are="grey"), "pores_are"),
    (lambda: plan_chunked_pores(IMAGE, 1.0, chunks=16, workers=0), "workers"),
    (lambda: plan_chunked_pores(IMAGE, 0.0, chunks=16), "voxel_um"),
], ids=["2d", "chunks-0", "chunks-2", "chunks-float", "negative-overlap", "overlap-below-reach", "auto-mask",
        "mask-shape", "empty-mask", "threshold-range", "pores-are", "workers", "voxel"])
def test_refusals_are_eager_and_name_the_parameter(call, parameter):
    with pytest.raises(InputError) as info:
        call()
    assert parameter in info.value.parameters and parameter in str(info.value)


def test_lazy_volumes_are_not_read_by_the_plan_and_bad_values_are_refused_by_the_job():
    da = pytest.importorskip("dask.array")
    bad = IMAGE.copy()
    bad[30, 30, 30] = np.nan
    plan = plan_chunked_pores(da.from_array(bad, chunks=16), 1.0, chunks=24, overlap_um=8)  # no error yet
    with pytest.raises(InputError, match="NaN") as info:
        drain(iter_chunked_pores(plan))
    assert info.value.parameters == ("image",)
    plan = plan_chunked_pores(da.from_array(IMAGE, chunks=16), 1.0, chunks=24, overlap_um=8, threshold=7.0)
    with pytest.raises(InputError, match="outside the image range"):
        drain(iter_chunked_pores(plan))


# ----------------------------------------------------------------------------
# the command line


def run(capsys, *argv):
    from napari_resolve.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from napari_resolve.io import write_volume

    path = tmp_path_factory.mktemp("chunked") / "balls.zarr"
    write_volume(path, IMAGE, (1.0, 1.0, 1.0))
    return path


def test_cli_chunks_give_the_whole_volume_result(stored, capsys, tmp_path):
    code, whole, err = run(capsys, "pores", stored, "--sample-mask", "none")
    assert code == 0, err
    code, chunked, err = run(capsys, "pores", stored, "--chunks", "16", "--overlap", "14", "-o", tmp_path / "p.csv")
    assert code == 0, err
    assert chunked["chunks"] == 27 and chunked["chunk_shape"] == [16, 16, 16] and chunked["overlap_um"] == [14] * 3
    assert_same_summary(whole, chunked)
    assert "segmenting (27/27 chunks)" in err
    assert len((tmp_path / "p.csv").read_text().strip().splitlines()) == chunked["count"] + 1


@pytest.mark.parametrize("argv, flag", [
    (["--overlap", "5"], "--overlap"),
    (["--workers", "2"], "--workers"),
    (["--chunks", "16", "--labels", "labels.tif"], "--labels"),
    (["--chunks", "16", "--sample-mask", "auto"], "--sample-mask"),
    (["--chunks", "16", "--overlap", "-2"], "--overlap"),
    (["--chunks", "16", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
    (["--chunks", "0"], "--chunks"),
])
def test_cli_refusals_are_one_line_naming_the_flag(stored, capsys, argv, flag):
    code, _, err = run(capsys, "pores", stored, *argv)
    assert code == 2 and err.count("\n") == 1 and flag in err, err


def test_cli_chunks_take_one_image(stored, capsys):
    code, _, err = run(capsys, "pores", stored, stored, "--chunks", "16")
    assert code == 2 and "--chunks" in err and err.count("\n") == 1


@pytest.mark.slow
def test_cli_workers_and_scheduler_run_on_dask_clusters(stored, capsys):
    distributed = pytest.importorskip("distributed")
    code, threads, err = run(capsys, "pores", stored, "--chunks", "16", "--overlap", "14")
    assert code == 0, err
    code, local, err = run(capsys, "pores", stored, "--chunks", "16", "--overlap", "14", "--workers", "2")
    assert code == 0, err
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        code, remote, err = run(capsys, "pores", stored, "--chunks", "16", "--overlap", "14",
                                "--scheduler", cluster.scheduler_address)
    assert code == 0, err
    assert local == threads and remote == threads
