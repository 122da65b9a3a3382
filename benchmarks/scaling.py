"""Time and peak memory of registration and pore analysis as volumes grow.

Each case runs in a fresh process so that its peak resident memory (ru_maxrss)
is its own. Prints JSON.

    python benchmarks/scaling.py            # LRES 64^3, 128^3, 192^3 at ratio 3
    python benchmarks/scaling.py 64 256     # choose LRES sizes
"""

import json
import subprocess
import sys

CASE = r"""
import json, resource, sys, time
import numpy as np
from napari_resolve.phantom import make_phantom
from napari_resolve.registration import register
from napari_resolve.pores.segment import analyse_pores

size = int(sys.argv[1])
t = time.perf_counter()
ph = make_phantom(size, 3, seed=0)
t_phantom = time.perf_counter() - t
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
t_reg = time.perf_counter() - t
rss_reg = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
err = np.abs(np.subtract(reg.offset_um, ph.hres_offset_um)).max()
t = time.perf_counter()
res = analyse_pores(ph.hres_truth, ph.hres_voxel_um, sample_mask=None)
t_pores = time.perf_counter() - t
rss_pores = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({
    "lres_shape": list(ph.lres.shape), "hres_shape": list(ph.hres.shape),
    "phantom_s": round(t_phantom, 1),
    "register_s": round(t_reg, 2), "register_status": reg.status,
    "register_max_error_hres_voxels": round(float(err), 4),
    "pores_on_hres_truth_s": round(t_pores, 2), "pores_counted": res.count,
    "peak_rss_mib_before": round(base), "peak_rss_mib_after_register": round(rss_reg),
    "peak_rss_mib_after_pores": round(rss_pores),
}))
"""

if __name__ == "__main__":
    sizes = [int(s) for s in sys.argv[1:]] or [64, 128, 192]
    rows = []
    for size in sizes:
        out = subprocess.run([sys.executable, "-c", CASE, str(size)], capture_output=True, text=True)
        rows.append(json.loads(out.stdout) if out.returncode == 0 else {"size": size, "error": out.stderr[-500:]})
    print(json.dumps({"benchmark": "scaling", "ratio": 3, "cases": rows}, indent=2))
