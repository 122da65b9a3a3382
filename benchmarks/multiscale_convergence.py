"""Does training with MDCNN's coarse output branches converge faster? Loss against iterations.

Wang et al. 2018 <https://arxiv.org/abs/1810.12183> reports that coarse outputs at 1/2, 1/4 ...
resolution, trained jointly with the full-resolution one (same weight at first,
dropped later), make a U-Net converge much faster. Here the default ``unet25d`` is
trained on the 64^3 foam phantom at ratio 3 (LRES 3 um -> HRES 1 um, registered)
twice with the same seed, the same initial weights of the shared layers and the
same patches: once plain (``multiscale=0``) and once with ``multiscale`` coarse
branches. Both runs record the full-resolution L1 training loss at every
iteration and the validation PSNR every ``--val-every`` iterations; the JSON gives
both curves, the iteration at which each first reaches a validation PSNR of
cubic + g dB for a few gains g, and the final and best PSNRs.

    python benchmarks/multiscale_convergence.py [--iterations 400] [--multiscale 2] [--until 0.5] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from napari_resolve.io import json_safe
from napari_resolve.learn.pairs import make_pair
from napari_resolve.learn.training import TrainConfig, run_train
from napari_resolve.measure.similarity import psnr
from napari_resolve.models import build_model
from napari_resolve.phantom import make_phantom
from napari_resolve.registration import register


def first_reaching(val: list[tuple[int, float]], level: float) -> int | None:
    """First validated iteration with a PSNR of at least ``level`` (None: never)."""
    return next((it for it, p in val if p >= level), None)


def one_run(ph, reg, seed: int, multiscale: int, args) -> dict:
    cfg = TrainConfig(
        model_config={"multiscale": multiscale},
        iterations=args.iterations,
        val_every=args.val_every,
        multiscale_weight=args.weight,
        multiscale_until=args.until,
        device=args.device,
        seed=seed,
    )
    print(f"seed {seed}, multiscale {multiscale}...", file=sys.stderr, flush=True)
    res = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, cfg)
    loss = [h["loss"] for h in res.history]
    val = [(h["iteration"], h["val_psnr"]) for h in res.history if "val_psnr" in h]
    block = args.smooth
    return {
        "seed": seed,
        "multiscale": multiscale,
        "seconds": round(res.seconds, 1),
        "seconds_per_iteration": round(res.seconds / args.iterations, 3),
        "parameters": build_model("unet25d", multiscale=multiscale).parameter_count(),
        "device": res.device,
        "final_val_psnr_db": val[-1][1],
        "best_val_psnr_db": max(p for _, p in val),
        "best_iteration": res.checkpoint.iteration,
        "train_loss_l1": loss,
        "train_loss_l1_mean_per_block": [float(np.mean(loss[i : i + block])) for i in range(0, len(loss), block)],
        "optimised_loss": [h.get("loss_total", h["loss"]) for h in res.history],
        "val_psnr_db": val,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--size", type=int, default=64, help="LRES voxels a side")
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--val-every", type=int, default=10)
    ap.add_argument("--multiscale", type=int, default=2, help="coarse branches of the compared run")
    ap.add_argument("--weight", type=float, default=1.0, help="TrainConfig.multiscale_weight")
    ap.add_argument("--until", type=float, default=0.5, help="TrainConfig.multiscale_until")
    ap.add_argument("--gains", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
                    help="validation PSNR levels, dB over cubic")
    ap.add_argument("--smooth", type=int, default=25, help="iterations per block of the mean loss curve")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    ph = make_phantom(args.size, 3, seed=0)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    trim = build_model("unet25d").trim_z
    vi, vt = make_pair(ph.lres, ph.hres, ph.lres_voxel_um, reg.offset_um, reg.scale, halo_z=trim).validation()
    cubic = float(psnr(vi[trim:-trim], vt, data_range=1.0))  # the untrained (identity) network's score
    # Warm up (first-call costs would otherwise count against the first run's timing).
    run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, TrainConfig(iterations=2, device=args.device))
    runs, comparison = [], []
    for seed in args.seeds:
        plain, multi = (one_run(ph, reg, seed, m, args) for m in (0, args.multiscale))
        runs += [plain, multi]
        reach = {}
        for g in args.gains:
            a, b = (first_reaching(r["val_psnr_db"], cubic + g) for r in (plain, multi))
            reach[f"+{g:g} dB"] = {"multiscale=0": a, f"multiscale={args.multiscale}": b}
        lp, lm = np.array(plain["train_loss_l1"]), np.array(multi["train_loss_l1"])
        comparison.append({
            "seed": seed,
            "iteration_reaching_cubic_plus": reach,
            "final_val_psnr_db": {"multiscale=0": plain["final_val_psnr_db"],
                                  f"multiscale={args.multiscale}": multi["final_val_psnr_db"]},
            "best_val_psnr_db": {"multiscale=0": plain["best_val_psnr_db"],
                                 f"multiscale={args.multiscale}": multi["best_val_psnr_db"]},
            # Same patches in both runs, so the per-iteration difference is paired; by quarters of the run.
            "mean_train_l1_difference_multi_minus_plain": {
                f"{q[0] + 1}-{q[-1] + 1}": float(np.mean(lm[q] - lp[q])) for q in np.array_split(np.arange(len(lp)), 4)
            },
            "seconds_per_iteration": {"multiscale=0": plain["seconds_per_iteration"],
                                      f"multiscale={args.multiscale}": multi["seconds_per_iteration"]},
        })
    out = {
        "data": {"phantom_size": args.size, "ratio": 3, "hres_shape": list(ph.hres.shape)},
        "config": {"model": "unet25d (defaults)", "iterations": args.iterations, "val_every": args.val_every,
                   "multiscale": args.multiscale, "multiscale_weight": args.weight, "multiscale_until": args.until,
                   "loss": "l1", "seeds": args.seeds, "device": args.device},
        "cubic_val_psnr_db": cubic,
        "comparison": comparison,
        "runs": runs,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(json_safe(out)))


if __name__ == "__main__":
    main()
