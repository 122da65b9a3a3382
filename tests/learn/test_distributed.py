"""Chunked prediction on dask: equal to one process, resumable, refusals before any worker starts."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_resolve.errors import FileFormatError, InputError
from napari_resolve.io import read_volume, write_volume
from napari_resolve.jobs import drain
from napari_resolve.learn import distributed as D
from napari_resolve.learn.inference import run_predict


@pytest.fixture(scope="module")
def single(tiny_model, foam_dir, tmp_path_factory):
    """The single-process result of the shared model on the shared phantom (a zarr written by predict)."""
    lres = read_volume(foam_dir / "lres.tif")
    out = tmp_path_factory.mktemp("single") / "single.zarr"
    run_predict(tiny_model, lres.data, lres.voxel_um, device="cpu", out_path=out)
    return np.asarray(zarr.open_group(str(out), mode="r")["0"][:])


def _level0(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["0"][:])


@pytest.mark.slow
def test_two_workers_equal_one_process_and_a_stopped_run_resumes(tiny_model, foam_dir, single, tmp_path):
    out = tmp_path / "out.zarr"
    plan = D.plan_chunked_predict(tiny_model, foam_dir / "lres.tif", out, chunk=40, workers=2, device="cpu")
    assert plan.n_chunks == 27 and plan.job.chunk == (40, 40, 40)
    job = D.iter_chunked_predict(plan)
    records = [next(job) for _ in range(6)]  # the plan's line, then five chunks
    job.close()  # a stop: the finished chunks stay in the hidden store
    assert records[-1].step == 5 and records[-1].total == 27 and records[-1].remaining_s > 0
    assert not out.exists() and plan.partial.is_dir()
    done = D._done(plan.partial)
    assert 5 <= len(done) < 27
    # A chunk whose marker is missing (its task was killed while writing) is computed again.
    lost = sorted(done)[0]
    (plan.partial / D.DONE_DIR / str(lost)).unlink()
    zarr.open_group(str(plan.partial), mode="r+")["0"][tuple(slice(a, b) for a, b in plan.boxes[lost])] = -7.0

    with pytest.raises(FileFormatError, match="--resume"):
        D.plan_chunked_predict(tiny_model, foam_dir / "lres.tif", out, chunk=40, workers=2, device="cpu")
    resumed = D.plan_chunked_predict(tiny_model, foam_dir / "lres.tif", out, chunk=40, workers=2, device="cpu",
                                     resume=True)
    assert len(resumed.todo) == 27 - len(done) + 1 and lost in resumed.todo
    result = drain(D.iter_chunked_predict(resumed))
    assert result.computed == len(resumed.todo) < 27 and result.workers == 2
    assert set(result.peak_rss_mib) == {"0", "1"} and all(v > 50 for v in result.peak_rss_mib.values())
    assert out.is_dir() and not plan.partial.exists()
    assert (out / D.JOB_FILE).is_file() and not (out / D.DONE_DIR).exists()  # provenance kept, markers gone
    assert np.abs(_level0(out) - single).max() < 1e-5
    vol = read_volume(out)
    assert vol.voxel_um == (1.0, 1.0, 1.0) and np.allclose(vol.origin_um, result.grid.origin_um)


def test_refusals_before_any_worker_starts(tiny_model, foam_dir, tmp_path):
    lres = foam_dir / "lres.tif"
    with pytest.raises(FileFormatError, match=r"\.zarr"):
        D.plan_chunked_predict(tiny_model, lres, tmp_path / "out.tif")
    with pytest.raises(FileFormatError, match="no unfinished run to resume"):
        D.plan_chunked_predict(tiny_model, lres, tmp_path / "out.zarr", resume=True, device="cpu")
    with pytest.raises(InputError, match="at least 1"):
        D.plan_chunked_predict(tiny_model, lres, tmp_path / "out.zarr", workers=0, device="cpu")
    with pytest.raises(InputError, match="not both"):
        D.plan_chunked_predict(tiny_model, lres, tmp_path / "out.zarr", workers=2, scheduler="tcp://x:1",
                               device="cpu")
    with pytest.raises(InputError, match="chunk"):
        D.plan_chunked_predict(tiny_model, lres, tmp_path / "out.zarr", chunk=(8, 8), device="cpu")
    existing = tmp_path / "there.zarr"
    write_volume(existing, np.zeros((4, 4, 4), np.float32), 1.0)
    with pytest.raises(FileFormatError, match="exists"):
        D.plan_chunked_predict(tiny_model, lres, existing, device="cpu")


def test_resume_refuses_another_job(tiny_model, foam_dir, tmp_path):
    out = tmp_path / "out.zarr"
    plan = D.plan_chunked_predict(tiny_model, foam_dir / "lres.tif", out, chunk=40, device="cpu")
    plan.partial.mkdir()
    (plan.partial / D.JOB_FILE).write_text(json.dumps(D._fingerprint(plan.job)))
    same = D.plan_chunked_predict(tiny_model, foam_dir / "lres.tif", out, chunk=40, device="cpu", resume=True)
    assert len(same.todo) == 27  # nothing done yet
    with pytest.raises(InputError, match="chunk"):
        D.plan_chunked_predict(tiny_model, foam_dir / "lres.tif", out, chunk=64, device="cpu", resume=True)


def test_chunks_round_up_to_the_network_and_the_pyramid():
    assert D._chunk_shape(None, (300, 300, 300), (1, 4, 4)) == (256, 256, 256)
    assert [D._store_chunk(c) for c in (256, 384, 96, 200, 120)] == [128, 128, 96, 40, 120]
    assert D._chunk_shape(30, (300, 300, 300), (1, 4, 4)) == (32, 32, 32)
    assert D._chunk_shape((10, 50, 50), (20, 30, 300), (1, 3, 3)) == (16, 30, 72)  # never longer than the axis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_cluster_started_with_dask_s_own_commands(tiny_model, foam_dir, single, tmp_path):
    """``dask scheduler`` and ``dask worker`` on loopback, ``predict --scheduler`` with a zarr LRES."""
    from napari_resolve.cli import main

    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        dask = shutil.which("dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    scheduler = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                  "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    worker = subprocess.Popen([str(dask), "worker", address, "--nworkers", "2", "--nthreads", "1",
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        lres = read_volume(foam_dir / "lres.tif")
        lres_zarr = write_volume(tmp_path / "lres.zarr", np.asarray(lres.data), lres.voxel_um, chunks=16)
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "out.zarr"
        assert main(["predict", str(tiny_model), str(lres_zarr), "-o", str(out), "--scheduler", address,
                     "--chunk", "64", "--device", "cpu"]) == 0
        assert np.abs(_level0(out) - single).max() < 1e-5
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        for proc in (worker, scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
