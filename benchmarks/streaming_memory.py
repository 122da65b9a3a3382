"""Peak memory of streamed prediction does not grow with the output size.

Upscales synthetic LRES volumes (ratio 3) to outputs of increasing size, written
to zarr and to OME-TIFF, each run in its own process, and reports the process's
peak resident memory (VmHWM), the output size and the time. The network is a
deliberately tiny SRCNN (random weights): memory behaviour does not depend on the
weights, and a small network keeps a multi-GB run to minutes on 2 CPU cores.

    python benchmarks/streaming_memory.py [--sizes 100 200 320] [--formats zarr tif]

With the defaults the largest output is 960^3 float32 voxels = 3.5 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, shutil, sys, time
from pathlib import Path
import numpy as np
from scipy import ndimage
from napari_resolve.learn.inference import plan_predict, run_predict
from napari_resolve.models import build_model
from napari_resolve.models.checkpoint import Checkpoint
from napari_resolve.learn.normalisation import Normalisation

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 2**20  # kB -> GiB

size, fmt, folder = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
rng = np.random.default_rng(0)
lres = ndimage.gaussian_filter(rng.random((size,) * 3, dtype=np.float32), 1.5)
net = build_model("srcnn", n1=8, n2=4, f1=3, f2=1, f3=3)
ckpt = Checkpoint("srcnn", net.config, net.state_dict(), Normalisation(0, 1), Normalisation(0, 1),
                  (3.0,) * 3, (1.0,) * 3, {"offset_um": [-1.0, -1.0, -1.0]})
before = hwm()
out = folder / f"out.{fmt}"
t0 = time.perf_counter()
plan = plan_predict(ckpt, lres, 3.0, out_path=out, device="cpu", tile=256)
res = run_predict(plan)
seconds = time.perf_counter() - t0
size_on_disk = sum(p.stat().st_size for p in out.rglob("*")) if out.is_dir() else out.stat().st_size
print(json.dumps({
    "lres_shape": [size] * 3, "output_shape": list(res.grid.shape), "format": fmt,
    "output_gib": float(np.prod(res.grid.shape)) * 4 / 2**30, "file_gib": size_on_disk / 2**30,
    "lres_gib": lres.nbytes / 2**30, "peak_rss_gib_before_predict": before, "peak_rss_gib": hwm(),
    "seconds": round(seconds, 1), "output_mvoxels_per_s": round(np.prod(res.grid.shape) / 1e6 / seconds, 1),
    "tiles": res.tiles, "tile": list(plan.tile),
}))
shutil.rmtree(out) if out.is_dir() else out.unlink()
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 320], help="LRES voxels a side")
    ap.add_argument("--formats", nargs="+", default=["zarr", "tif"], choices=("zarr", "tif"))
    ap.add_argument("--folder", default=None, help="where to write the outputs (default: a temporary folder)")
    args = ap.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        for size in args.sizes:
            for fmt in args.formats:
                print(f"LRES {size}^3 -> {fmt}...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", CHILD, str(size), fmt, tmp],
                                      capture_output=True, text=True, check=True)
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                run["process_seconds"] = round(time.perf_counter() - t0, 1)
                runs.append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    growth = max(r["peak_rss_gib"] - r["lres_gib"] for r in runs) - min(r["peak_rss_gib"] - r["lres_gib"] for r in runs)
    print(json.dumps({
        "runs": runs,
        "largest_output_gib": max(r["output_gib"] for r in runs),
        "peak_rss_minus_input_spread_gib": growth,
    }, indent=2))


if __name__ == "__main__":
    main()
