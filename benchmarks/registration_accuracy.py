"""Registration accuracy and speed on the seeded foam phantom; prints JSON.

For LRES/HRES voxel ratios 2, 3 and 4 and several seeds (a random HRES position
each), registers the phantom's HRES in its LRES and reports, per ratio, the max
and mean absolute error of ``offset_um`` per axis (z, y, x) in HRES voxels, the
NCC and the seconds per registration. A second block does the same with a 2 %
wrong nominal HRES voxel size and ``refine_scale=True``, and reports the error
of the refined scale too.

    python benchmarks/registration_accuracy.py [--size 64] [--seeds 5] [--no-scale]
        [--photons 400 --hres-photons 200]   (lower = noisier; the phantom's defaults)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from napari_resolve.phantom import make_phantom
from napari_resolve.registration import register


def summarise(errors, nccs, seconds, statuses, extra=None):
    e = np.array(errors)
    out = {
        "runs": len(errors),
        "max_abs_error_hres_voxels_zyx": [round(float(v), 4) for v in e.max(axis=0)],
        "mean_abs_error_hres_voxels_zyx": [round(float(v), 4) for v in e.mean(axis=0)],
        "ncc_min": round(float(np.min(nccs)), 4),
        "ncc_mean": round(float(np.mean(nccs)), 4),
        "seconds_mean": round(float(np.mean(seconds)), 3),
        "seconds_max": round(float(np.max(seconds)), 3),
        "all_ok": all(s == "ok" for s in statuses),
    }
    out.update(extra or {})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="LRES voxels a side")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ratios", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--photons", type=float, default=400.0, help="LRES photons per unit intensity")
    parser.add_argument("--hres-photons", type=float, default=200.0, help="HRES photons per unit intensity")
    parser.add_argument("--no-scale", action="store_true", help="skip the refine_scale block")
    args = parser.parse_args()

    report = {
        "benchmark": "registration_accuracy",
        "lres_shape": [args.size] * 3,
        "hres_fraction_of_field": 0.4,
        "photons": args.photons,
        "hres_photons": args.hres_photons,
        "seeds": list(range(args.seeds)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "ratios": {},
    }
    if not args.no_scale:
        report["refine_scale_2pct_wrong_voxel"] = {}
    for ratio in args.ratios:
        plain = ([], [], [], [])
        scaled = ([], [], [], [], [])
        hres_shape = None
        for seed in range(args.seeds):
            ph = make_phantom(
                args.size, ratio, seed=seed, photons=args.photons, hres_photons=args.hres_photons
            )
            hres_shape = list(ph.hres.shape)
            truth = np.array(ph.hres_offset_um)
            h = np.array(ph.hres_voxel_um)

            t0 = time.perf_counter()
            res = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um)
            plain[2].append(time.perf_counter() - t0)
            plain[0].append(np.abs(np.array(res.offset_um) - truth) / h)
            plain[1].append(res.ncc)
            plain[3].append(res.status)

            if not args.no_scale:
                wrong = 1.02 if seed % 2 == 0 else 0.98
                t0 = time.perf_counter()
                res = register(ph.lres, ph.hres, ph.lres_voxel_um, h * wrong, refine_scale=True)
                scaled[2].append(time.perf_counter() - t0)
                scaled[0].append(np.abs(np.array(res.offset_um) - truth) / h)
                scaled[1].append(res.ncc)
                scaled[3].append(res.status)
                scaled[4].append(np.max(np.abs(np.array(res.scale) / h - 1)))
        report["ratios"][str(ratio)] = summarise(*plain, extra={"hres_shape": hres_shape})
        if not args.no_scale:
            report["refine_scale_2pct_wrong_voxel"][str(ratio)] = summarise(
                *scaled[:4],
                extra={"max_rel_scale_error_percent": round(100 * float(np.max(scaled[4])), 3)},
            )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
