"""Chunked prediction on dask (issue 18): 1 and 2 local workers, a stop and a resume, dask's own cluster tools.

On a phantom LRES of ``--size`` voxels a side (ratio 3), with a model of the default
architecture trained for ``--iterations`` (its speed does not depend on training):

* ``single``: ``predict -o OUT.zarr`` in one process (the reference output);
* ``workers_1`` / ``workers_2``: ``predict --workers N --chunk C`` (median of
  ``--repeats`` runs each), their throughput, speed-up, chunk count, peak RSS per
  worker, and the largest difference from the single-process output;
* ``workers_2_large_chunks``: one 2-worker run with ``--large-chunk`` (each chunk
  reads the network's halo around it, which larger chunks amortise);
* ``resume``: ``predict --workers 2`` sent SIGTERM once about ``--stop-at`` of its
  chunks are done, then the same command with ``--resume``: chunks computed by the
  resumed run against a fresh run, and the difference of its output;
* ``dask_cli``: ``dask scheduler`` and ``dask worker --nworkers 2`` started on
  loopback, ``predict --scheduler``: the difference of its output.

Every run is a ``napari-resolve`` command in its own process, as a user runs it.
Prints JSON.

    python benchmarks/distributed.py [--size 64] [--chunk 32] [--large-chunk 96] [--repeats 3] [--iterations 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This file's name is the dask package's: take its folder off the path so that `distributed` is dask's.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import zarr  # noqa: E402

CLI = [str(Path(sys.executable).with_name("napari-resolve"))]


def run(argv, **kwargs) -> dict:
    """A napari-resolve command; returns its JSON result and wall time (s)."""
    t0 = time.perf_counter()
    out = subprocess.run([*CLI, *map(str, argv)], capture_output=True, text=True, **kwargs)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({out.returncode}): {out.stderr[-2000:]}")
    return {**json.loads(out.stdout), "wall_s": time.perf_counter() - t0}


def level0(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["0"][:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_and_resume(model, lres, out: Path, chunk: int, stop_at: float, reference: np.ndarray) -> dict:
    argv = ["predict", model, lres, "-o", out, "--workers", "2", "--chunk", chunk, "--device", "cpu"]
    partial = out.with_name(f".{out.name}.partial")
    proc = subprocess.Popen([*CLI, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    total = None
    while proc.poll() is None:
        done = partial / "napari_resolve_done"
        if total is None and (partial / "napari_resolve_job.json").exists():
            record = json.loads((partial / "napari_resolve_job.json").read_text())
            total = int(np.prod([-(-s // c) for s, c in zip(record["shape"], record["chunk"])]))
        if total and done.is_dir() and len(os.listdir(done)) >= stop_at * total:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    kept = len(os.listdir(partial / "napari_resolve_done"))
    resumed = run([*argv, "--resume"])
    return {
        "stopped_exit_status": proc.returncode, "stop_message": err.strip().splitlines()[-1],
        "chunks": resumed["chunks"], "chunks_kept_after_stop": kept,
        "chunks_computed_by_resume": resumed["chunks_computed"],
        "max_abs_diff_from_single": float(np.abs(level0(out) - reference).max()),
    }


def dask_cli(model, lres, out: Path, chunk: int, reference: np.ndarray) -> dict:
    dask = Path(sys.executable).with_name("dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                  "--no-dashboard"], **quiet)
    worker = subprocess.Popen([dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                              **quiet)
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        result = run(["predict", model, lres, "-o", out, "--scheduler", address, "--chunk", chunk,
                      "--device", "cpu"])
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
            proc.wait(timeout=30)
    return {"commands": ["dask scheduler --host 127.0.0.1 --port P", "dask worker tcp://127.0.0.1:P --nworkers 2 "
                         "--nthreads 1", f"napari-resolve predict ... --scheduler tcp://127.0.0.1:P --chunk {chunk}"],
            "workers": result["workers"], "chunks": result["chunks"], "seconds": result["seconds"],
            "max_abs_diff_from_single": float(np.abs(level0(out) - reference).max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="LRES voxels a side (the output is 3x)")
    ap.add_argument("--chunk", type=int, default=32, help="output voxels per chunk side")
    ap.add_argument("--large-chunk", type=int, default=96, help="the chunk side of one more 2-worker run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--stop-at", type=float, default=0.4, help="share of the chunks done when SIGTERM is sent")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nr-distributed-"))
    try:
        run(["phantom", work / "ph", "--size", args.size, "--ratio", 3, "--seed", 1])
        lres, hres = work / "ph" / "lres.tif", work / "ph" / "hres.tif"
        run(["register", lres, hres, "-o", work / "reg.json"])
        model = work / "m.pt"
        trained = run(["train", lres, hres, "--registration", work / "reg.json", "--iterations", args.iterations,
                       "--device", "cpu", "-o", model])
        single_runs = [run(["predict", model, lres, "-o", work / f"single{i}.zarr", "--device", "cpu"])
                       for i in range(args.repeats)]
        reference = level0(work / "single0.zarr")
        voxels = int(reference.size)
        report = {
            "machine": {"cpus": os.cpu_count()}, "lres_shape": [args.size] * 3, "output_shape": list(reference.shape),
            "model": trained["architecture"], "chunk": args.chunk, "repeats": args.repeats,
            "single": {"seconds_median": statistics.median(r["seconds"] for r in single_runs),
                       "wall_s_median": statistics.median(r["wall_s"] for r in single_runs),
                       "levels": None},
        }
        report["single"]["mvox_per_s"] = voxels / report["single"]["seconds_median"] / 1e6
        report["single"]["levels"] = len(zarr.open_group(str(work / "single0.zarr"), mode="r"))
        for n in (1, 2):
            runs = [run(["predict", model, lres, "-o", work / f"w{n}_{i}.zarr", "--workers", n, "--chunk", args.chunk,
                         "--device", "cpu"]) for i in range(args.repeats)]
            seconds = statistics.median(r["seconds"] for r in runs)
            report[f"workers_{n}"] = {
                "seconds_median": seconds, "wall_s_median": statistics.median(r["wall_s"] for r in runs),
                "mvox_per_s": voxels / seconds / 1e6, "chunks": runs[0]["chunks"], "levels": runs[0]["levels"],
                "peak_rss_mib_per_worker": runs[-1]["peak_rss_mib_per_worker"],
                "max_abs_diff_from_single": max(float(np.abs(level0(work / f"w{n}_{i}.zarr") - reference).max())
                                                for i in range(args.repeats)),
            }
        report["speedup_2_over_1_workers"] = report["workers_1"]["seconds_median"] / report["workers_2"][
            "seconds_median"]
        # Each chunk reads the network's halo around it: larger chunks amortise it (fewer, longer tasks).
        big = run(["predict", model, lres, "-o", work / "big.zarr", "--workers", 2, "--chunk", args.large_chunk,
                   "--device", "cpu"])
        report["workers_2_large_chunks"] = {"chunk": args.large_chunk, "chunks": big["chunks"],
                                            "seconds": big["seconds"], "mvox_per_s": voxels / big["seconds"] / 1e6}
        report["resume"] = stop_and_resume(model, lres, work / "resumed.zarr", args.chunk, args.stop_at, reference)
        report["dask_cli"] = dask_cli(model, lres, work / "cli.zarr", args.chunk, reference)
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
