"""Pore statistics on known constructions and on the foam phantom truth.

Prints JSON: sphericity of digital balls by radius (isotropic and anisotropic
voxels), count and porosity recovery on the phantom truth, and seconds.

    python benchmarks/pores_accuracy.py
"""

import json
import time

import numpy as np

from napari_resolve.phantom import make_phantom
from napari_resolve.pores.segment import analyse_pores


def ball(radius, voxel):
    """A sphere of ``radius`` um drawn on a grid of ``voxel`` um, in a bright block."""
    n = [int(2 * radius / v) + 9 for v in voxel]
    grids = np.ogrid[tuple(slice(0, k) for k in n)]
    d2 = sum(((g - (k - 1) / 2) * v) ** 2 for g, k, v in zip(grids, n, voxel))
    return np.where(d2 <= radius**2, 0.0, 1.0).astype(np.float32)


def sphericity_table():
    rows = []
    for voxel in ((1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 0.5, 0.5)):
        for r_vox in (4, 6, 8, 10, 14):
            radius = r_vox * min(voxel)
            res = analyse_pores(ball(radius, voxel), voxel, sample_mask=None, threshold=0.5)
            rows.append({"voxel_um": voxel, "radius_um": radius, "count": res.count,
                         "sphericity": round(float(res.table["sphericity"][0]), 4),
                         "diameter_um": round(float(res.table["diameter_um"][0]), 3),
                         "true_diameter_um": 2 * radius})
    return rows


def phantom_truth(seed=0, size=64, ratio=3):
    ph = make_phantom(size, ratio, seed=seed)
    t = time.perf_counter()
    res = analyse_pores(ph.truth, ph.hres_voxel_um)
    seconds = time.perf_counter() - t
    cyl = np.zeros(ph.truth.shape[1:], bool)
    c = np.array(cyl.shape) / 2 - 0.5
    yy, xx = np.ogrid[: cyl.shape[0], : cyl.shape[1]]
    cyl = np.hypot(yy - c[0], xx - c[1]) <= 0.45 * min(cyl.shape)
    true_porosity = (ph.labels > 0).sum() / (cyl.sum() * ph.truth.shape[0])
    # Pores not cut by the top/bottom slices (the cylinder wall cuts none).
    labels = ph.labels
    cut = np.union1d(np.unique(labels[0]), np.unique(labels[-1]))
    interior = len(np.setdiff1d(np.unique(labels), np.append(cut, 0)))
    return {"shape": list(ph.truth.shape), "true_porosity": round(float(true_porosity), 4),
            "measured_porosity": round(res.porosity, 4), "true_interior_pores": int(interior),
            "counted_pores": res.count, "mean_sphericity": round(res.summary()["mean_sphericity"], 4),
            "seconds": round(seconds, 2)}


if __name__ == "__main__":
    print(json.dumps({"balls": sphericity_table(), "phantom_truth": phantom_truth()}, indent=2))
