"""The default model's quality bar (issue 15): train on one foam, judge on another.

Tried as a new user would: a 192^3 foam (about 600 pores) at ratio 3 with an LRES
blur of sigma 3 HRES voxels; register the 96^3 HRES of one realization
(``--train-seed``), train with the *default* settings (``TrainConfig()``: the
default model, iterations and early stop), then upscale the *whole LRES of
another realization* (``--test-seed``, never seen) and score it against that
realization's noiseless truth: SSIM, PSNR (data range 1) and pore recovery
(share of the true pores the pore analysis found, one to one). Cubic
interpolation and Richardson-Lucy (PSF fitted on the training pair) are scored on
the same grid. Prints JSON.

    python benchmarks/default_model.py [--ratio 3] [--model NAME] [--iterations N] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

from napari_resolve.demo import _fine_box
from napari_resolve.errors import ResolveWarning
from napari_resolve.geometry.grid import Grid
from napari_resolve.io import json_safe
from napari_resolve.learn.inference import run_predict
from napari_resolve.learn.training import TrainConfig, run_train
from napari_resolve.measure.baselines import estimate_psf_sigma, interpolate, run_baseline
from napari_resolve.measure.similarity import compare, ssim_map
from napari_resolve.phantom import make_phantom
from napari_resolve.pores.segment import analyse_pores, match_pores
from napari_resolve.registration import register

#: Fine (truth) voxels a side, and the HRES scan's side, as in the issue.
FIELD, HRES_SIDE = 192, 96


def foam(ratio: int, seed: int, blur_hres_voxels: float):
    return make_phantom(FIELD // ratio, ratio, hres_size=HRES_SIDE, blur_um=blur_hres_voxels * 1.0, seed=seed)


def score(img, grid, ph) -> dict:
    box = _fine_box(grid, ph.truth_offset_um, ph.hres_voxel_um)
    truth, labels = ph.truth[box], ph.labels[box]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolveWarning)
        q = compare(img, truth, data_range=1.0)
    # Inside the sample cylinder alone (the HRES, and so the training data, never shows the air around it).
    fine = np.array(ph.truth.shape[-2:])
    yy, xx = np.meshgrid(*[np.arange(b.start, b.start + n) for b, n in zip(box[1:], img.shape[1:])], indexing="ij")
    inside = np.hypot(yy - (fine[0] - 1) / 2, xx - (fine[1] - 1) / 2) < 0.45 * fine.min() - 2
    smap = ssim_map(img, truth, data_range=1.0)
    sample = {"ssim_in_sample": float(smap[:, inside].mean()),
              "psnr_in_sample_db": float(-10 * np.log10(np.mean((img[:, inside] - truth[:, inside]) ** 2)))}
    pores = analyse_pores(img, grid.voxel_um)
    m = match_pores(labels, grid.voxel_um, pores.labels, grid.voxel_um,
                    truth_origin_um=grid.origin_um, result_origin_um=grid.origin_um)
    return {"psnr_db": q["psnr"], "ssim": q["ssim"], **sample, "pore_recovery": m.recovery, "pores_found": m.found,
            "pores_total": m.total, "false_pores": m.false_pores}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=int, default=3)
    ap.add_argument("--blur", type=float, default=3.0, help="LRES blur sigma, HRES voxels")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--test-seed", type=int, default=1)
    ap.add_argument("--model", default=None, help="default: TrainConfig's")
    ap.add_argument("--iterations", type=int, default=None, help="default: TrainConfig's")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="other TrainConfig settings (model_config.KEY for the network's)")
    ap.add_argument("--baselines", action="store_true", help="also score Richardson-Lucy")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--save", metavar="DIR", help="also write the model and the upscaled test LRES here")
    args = ap.parse_args(argv)

    train_ph = foam(args.ratio, args.train_seed, args.blur)
    test_ph = foam(args.ratio, args.test_seed, args.blur)
    reg = register(train_ph.lres, train_ph.hres, train_ph.lres_voxel_um, train_ph.hres_voxel_um).require_ok()
    cfg = TrainConfig(device=args.device, seed=0)
    if args.model:
        cfg.model = args.model
    if args.iterations:
        cfg.iterations = args.iterations
    for item in args.set:
        key, value = item.split("=", 1)
        value = json.loads(value) if value[:1].isdigit() or value[:1] in "-[{" or value in ("true", "false") \
            else value
        if key.startswith("model_config."):
            cfg.model_config[key.split(".", 1)[1]] = value
        else:
            setattr(cfg, key, value)
    print(f"training {cfg.model} ...", file=sys.stderr, flush=True)
    res = run_train(train_ph.lres, train_ph.hres, train_ph.lres_voxel_um, reg, cfg)
    t0 = time.perf_counter()
    pred = run_predict(res.checkpoint, test_ph.lres, test_ph.lres_voxel_um, device=args.device)
    predict_s = time.perf_counter() - t0
    grid = pred.grid
    if args.save:
        from pathlib import Path

        from napari_resolve.io import write_volume
        from napari_resolve.models.checkpoint import save_checkpoint

        Path(args.save).mkdir(parents=True, exist_ok=True)
        save_checkpoint(res.checkpoint, Path(args.save) / "model.pt", overwrite=True)
        write_volume(Path(args.save) / "upscaled.tif", pred.data, grid.voxel_um, overwrite=True)
    methods = {"model": score(pred.data, grid, test_ph),
               "cubic": score(interpolate(test_ph.lres, test_ph.lres_voxel_um, grid, "cubic"), grid, test_ph)}
    if args.baselines:
        hres_grid = Grid(train_ph.hres.shape, reg.scale, reg.offset_um)
        psf = estimate_psf_sigma(interpolate(train_ph.lres, train_ph.lres_voxel_um, hres_grid), train_ph.hres,
                                 reg.scale)
        rl = run_baseline(test_ph.lres, test_ph.lres_voxel_um, grid, "rl", psf_sigma_um=psf.sigma_um).data
        methods["richardson_lucy"] = score(rl, grid, test_ph)
    last = res.history[-1] if res.history else {}
    out = {
        "ratio": args.ratio, "blur_sigma_hres_voxels": args.blur, "field_voxels": FIELD,
        "train_seed": args.train_seed, "test_seed": args.test_seed, "output_shape": list(grid.shape),
        "model": res.checkpoint.architecture, "model_config": res.checkpoint.config,
        "parameters": res.model.parameter_count(),
        "iterations_run": last.get("iteration"), "iterations_planned": cfg.iterations,
        "best_iteration": res.checkpoint.iteration, "best_val_psnr_db": res.checkpoint.val_psnr,
        "train_seconds": round(res.seconds, 1), "predict_seconds": round(predict_s, 2),
        "predict_mvoxels_per_s": round(np.prod(grid.shape) / 1e6 / predict_s, 3),
        "stopped_early": bool(res.checkpoint.extra.get("early_stop")),
        "methods": methods,
    }
    print(json.dumps(json_safe(out), indent=2))


if __name__ == "__main__":
    main()
