"""The learning issue's quality bar: default model vs cubic, Richardson-Lucy and SRCNN.

On foam phantoms at ratio 3 (LRES 3 um -> HRES 1 um), for each seed: register the
HRES in the LRES, train the default model (unet25d) and SRCNN (2D, the paper's
9-1-5 network) with the same budget on the registered pair, then upscale an LRES
region that lies outside the HRES (never seen in training) and score every
method against the noiseless truth: PSNR, SSIM, MS-SSIM and pore recovery (share
of the true pores wholly inside the region that the pore analysis found, one to
one). Prints JSON.

    python benchmarks/learning_quality.py [--seeds 0 1] [--iterations 600] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

from napari_resolve.demo import _fine_box, _unseen_region
from napari_resolve.errors import ResolveWarning
from napari_resolve.geometry.grid import Grid
from napari_resolve.io import json_safe
from napari_resolve.learn.inference import run_predict
from napari_resolve.learn.training import TrainConfig, run_train
from napari_resolve.measure.baselines import estimate_psf_sigma, interpolate, run_baseline
from napari_resolve.measure.similarity import compare
from napari_resolve.phantom import make_phantom
from napari_resolve.pores.segment import analyse_pores, match_pores
from napari_resolve.registration import register

METHODS = ("unet25d", "srcnn", "richardson_lucy", "cubic")


def one_seed(seed: int, size: int, iterations: int, device: str) -> dict:
    ph = make_phantom(size, 3, seed=seed)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    roi = _unseen_region(ph.lres.shape, ph.meta(), 3)
    images, train_info = {}, {}
    for model in ("unet25d", "srcnn"):
        cfg = TrainConfig(model=model, iterations=iterations, seed=seed, device=device)
        res = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, cfg)
        t0 = time.perf_counter()
        pred = run_predict(res.checkpoint, ph.lres, ph.lres_voxel_um, roi=roi, device=device)
        images[model] = pred.data
        grid = pred.grid
        train_info[model] = {
            "train_seconds": round(res.seconds, 1),
            "best_val_psnr_db": res.checkpoint.val_psnr,
            "best_iteration": res.checkpoint.iteration,
            "parameters": res.model.parameter_count(),
            "predict_seconds": round(time.perf_counter() - t0, 2),
            "predict_mvoxels_per_s": round(np.prod(grid.shape) / 1e6 / (time.perf_counter() - t0), 2),
            "device": res.device,
        }
    hres_grid = Grid(ph.hres.shape, reg.scale, reg.offset_um)
    psf = estimate_psf_sigma(interpolate(ph.lres, ph.lres_voxel_um, hres_grid), ph.hres, reg.scale)
    images["richardson_lucy"] = run_baseline(ph.lres, ph.lres_voxel_um, grid, "rl", psf_sigma_um=psf.sigma_um).data
    images["cubic"] = interpolate(ph.lres, ph.lres_voxel_um, grid, "cubic")

    box = _fine_box(grid, ph.truth_offset_um, ph.hres_voxel_um)
    truth, labels = ph.truth[box], ph.labels[box]
    out = {"seed": seed, "roi_lres_voxels": [[s.start, s.stop] for s in roi], "grid": grid.to_dict(),
           "psf_sigma_um": psf.sigma_um, "methods": {}}
    for name in METHODS:
        img = images[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResolveWarning)  # fewer MS-SSIM scales on a 72^3 region
            q = compare(img, truth, data_range=1.0)
        pores = analyse_pores(img, grid.voxel_um, sample_mask=None)
        m = match_pores(labels, grid.voxel_um, pores.labels, grid.voxel_um,
                        truth_origin_um=grid.origin_um, result_origin_um=grid.origin_um)
        out["methods"][name] = {
            "psnr_db": q["psnr"], "ssim": q["ssim"], "ms_ssim": q["ms_ssim"], "ms_ssim_scales": q["ms_ssim_scales"],
            "pore_recovery": m.recovery, "pores_found": m.found, "pores_total": m.total,
            "false_pores": m.false_pores, **train_info.get(name, {}),
        }
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--size", type=int, default=64, help="LRES voxels a side")
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    runs = []
    for seed in args.seeds:
        print(f"seed {seed}...", file=sys.stderr, flush=True)
        runs.append(one_seed(seed, args.size, args.iterations, args.device))
    summary = {}
    for name in METHODS:
        rows = [r["methods"][name] for r in runs]
        found = sum(r["pores_found"] for r in rows)
        total = sum(r["pores_total"] for r in rows)
        summary[name] = {
            "psnr_db": float(np.mean([r["psnr_db"] for r in rows])),
            "ssim": float(np.mean([r["ssim"] for r in rows])),
            "ms_ssim": float(np.mean([r["ms_ssim"] for r in rows])),
            "pore_recovery": found / total if total else None,
            "pores_found": found,
            "pores_total": total,
        }
    u, c, rl, sr = (summary[k] for k in ("unet25d", "cubic", "richardson_lucy", "srcnn"))
    bar = {
        "beats_cubic_psnr_ssim_pores": u["psnr_db"] > c["psnr_db"] and u["ssim"] > c["ssim"]
        and u["pore_recovery"] > c["pore_recovery"],
        "beats_rl_psnr_ssim_pores": u["psnr_db"] > rl["psnr_db"] and u["ssim"] > rl["ssim"]
        and u["pore_recovery"] > rl["pore_recovery"],
        "beats_srcnn_ssim": u["ssim"] > sr["ssim"],
    }
    print(json.dumps(json_safe({"ratio": 3, "size": args.size, "iterations": args.iterations,
                                "summary": summary, "quality_bar": bar, "runs": runs}), indent=2))


if __name__ == "__main__":
    main()
