"""Every method side by side on the foam phantom at several resolution ratios.

For each ratio (LRES voxel = ratio x 1 um): make a phantom, register its HRES in the
LRES, train every learned method with the same budget (iterations, batch, patch,
seed) on the registered pair, upscale an LRES region outside the HRES (never seen
in training), and score each result against the noiseless truth on that region:

- image metrics: MSE, PSNR (dB), SSIM, MS-SSIM (data range 1);
- pores: recovery (true pores wholly inside the region found one to one),
  porosity error (percentage points) and mean sphericity error against the truth's
  own pore analysis;
- effective resolution: FWHM (um) of the Gaussian blur of the truth that best
  matches the result (``quality.gaussian_resolution``);
- cost: parameters, training seconds, inference throughput (M voxels/s).

Cubic interpolation and Richardson-Lucy (PSF fitted on the registered pair) are
scored on the same region. Prints JSON on stdout and a Markdown table on stderr;
``--figure`` writes a PNG.

    python benchmarks/compare_methods.py [--ratios 2 3 4] [--iterations 600] [--methods unet25d srcnn ...]
        [--figure docs/images/compare_methods.png] [--table docs/compare_methods.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

from napari_resolve.baselines import estimate_psf_sigma, interpolate, run_baseline
from napari_resolve.demo import _fine_box, _unseen_region
from napari_resolve.errors import ResolveWarning
from napari_resolve.grid import Grid
from napari_resolve.inference import run_predict
from napari_resolve.io import json_safe
from napari_resolve.models import model_names
from napari_resolve.phantom import make_phantom
from napari_resolve.pores import analyse_pores, match_pores
from napari_resolve.quality import compare, gaussian_resolution
from napari_resolve.registration import register
from napari_resolve.training import TrainConfig, run_train

BASELINES = ("richardson_lucy", "cubic")
# The 3D SRCNN is the slowest network by far on a CPU and adds nothing the 2D one does not show.
DEFAULT_MODELS = tuple(m for m in model_names() if m != "srcnn3d")


def _train_and_predict(ph, reg, roi, model: str, args) -> tuple[np.ndarray, Grid, dict]:
    cfg = TrainConfig(model=model, iterations=args.iterations, seed=args.seed, device=args.device)
    res = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, cfg)
    t0 = time.perf_counter()
    pred = run_predict(res.checkpoint, ph.lres, ph.lres_voxel_um, roi=roi, device=args.device)
    seconds = time.perf_counter() - t0
    info = {
        "parameters": res.model.parameter_count(),
        "train_seconds": round(res.seconds, 1),
        "best_val_psnr_db": res.checkpoint.val_psnr,
        "predict_mvoxels_per_s": round(float(np.prod(pred.grid.shape)) / 1e6 / seconds, 3),
        "device": res.device,
    }
    return pred.data, pred.grid, info


def _score(img, truth, labels, truth_pores, grid: Grid) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolveWarning)  # fewer MS-SSIM scales on small regions
        q = compare(img, truth, data_range=1.0)
    pores = analyse_pores(img, grid.voxel_um, sample_mask=None)
    match = match_pores(labels, grid.voxel_um, pores.labels, grid.voxel_um,
                        truth_origin_um=grid.origin_um, result_origin_um=grid.origin_um)
    fit = gaussian_resolution(img, truth, grid.voxel_um)
    s, t = pores.summary(), truth_pores.summary()
    return {
        "mse": q["mse"],
        "psnr_db": q["psnr"],
        "ssim": q["ssim"],
        "ms_ssim": q["ms_ssim"],
        "pore_recovery": match.recovery,
        "pores_found": match.found,
        "pores_total": match.total,
        "porosity_error_pp": 100 * (s["porosity"] - t["porosity"]),
        "sphericity_error": _nan_diff(s.get("mean_sphericity"), t.get("mean_sphericity")),
        "fwhm_um": fit.fwhm_um,
    }


def _nan_diff(a, b) -> float | None:
    if a is None or b is None:
        return None
    return float(a) - float(b)


def one_ratio(ratio: int, args) -> dict:
    ph = make_phantom(args.size, ratio, seed=args.seed)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    roi = _unseen_region(ph.lres.shape, ph.meta(), ratio)
    images, info, grid = {}, {}, None
    for model in args.methods:
        print(f"ratio {ratio}: training {model}...", file=sys.stderr, flush=True)
        images[model], grid, info[model] = _train_and_predict(ph, reg, roi, model, args)
    hres_grid = Grid(ph.hres.shape, reg.scale, reg.offset_um)
    psf = estimate_psf_sigma(interpolate(ph.lres, ph.lres_voxel_um, hres_grid), ph.hres, reg.scale)
    t0 = time.perf_counter()
    images["richardson_lucy"] = run_baseline(ph.lres, ph.lres_voxel_um, grid, "rl", psf_sigma_um=psf.sigma_um).data
    info["richardson_lucy"] = {"parameters": 0, "predict_mvoxels_per_s": round(
        float(np.prod(grid.shape)) / 1e6 / (time.perf_counter() - t0), 3)}
    t0 = time.perf_counter()
    images["cubic"] = interpolate(ph.lres, ph.lres_voxel_um, grid, "cubic")
    info["cubic"] = {"parameters": 0, "predict_mvoxels_per_s": round(
        float(np.prod(grid.shape)) / 1e6 / (time.perf_counter() - t0), 3)}

    box = _fine_box(grid, ph.truth_offset_um, ph.hres_voxel_um)
    truth, labels = ph.truth[box], ph.labels[box]
    truth_pores = analyse_pores(truth, grid.voxel_um, sample_mask=None)
    methods = {}
    for name in (*args.methods, *BASELINES):
        methods[name] = {**_score(images[name], truth, labels, truth_pores, grid), **info[name]}
    return {"ratio": ratio, "lres_shape": list(ph.lres.shape), "region_lres_voxels": [[s.start, s.stop] for s in roi],
            "grid": grid.to_dict(), "psf_sigma_um": psf.sigma_um, "methods": methods}


COLUMNS = (
    ("MSE", "mse", "{:.4f}"),
    ("PSNR dB", "psnr_db", "{:.2f}"),
    ("SSIM", "ssim", "{:.3f}"),
    ("MS-SSIM", "ms_ssim", "{:.3f}"),
    ("pores found", "pore_recovery", "{:.2f}"),
    ("porosity err. pp", "porosity_error_pp", "{:+.1f}"),
    ("spher. err.", "sphericity_error", "{:+.3f}"),
    ("FWHM um", "fwhm_um", "{:.2f}"),
    ("params", "parameters", "{:,}"),
    ("train s", "train_seconds", "{:.0f}"),
    ("Mvox/s", "predict_mvoxels_per_s", "{:.2f}"),
)


def markdown(runs: list[dict]) -> str:
    lines = []
    for run in runs:
        lines.append(f"\n**Ratio {run['ratio']}** (LRES {run['ratio']} um -> 1 um, region "
                     f"{'x'.join(str(n) for n in run['grid']['shape'])} HRES voxels)\n")
        lines.append("| method | " + " | ".join(c[0] for c in COLUMNS) + " |")
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for name, m in run["methods"].items():
            cells = []
            for _, key, fmt in COLUMNS:
                v = m.get(key)
                cells.append("–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(runs: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs[0]["methods"])
    panels = (("psnr_db", "PSNR (dB)"), ("ssim", "SSIM"), ("pore_recovery", "pores found"), ("fwhm_um", "FWHM (µm)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), layout="constrained")
    width = 0.8 / len(runs)
    x = np.arange(len(names))
    for k, run in enumerate(runs):
        for ax, (key, label) in zip(axes, panels):
            values = [run["methods"][n].get(key) or np.nan for n in names]
            ax.bar(x + (k - (len(runs) - 1) / 2) * width, values, width, label=f"ratio {run['ratio']}")
            ax.set_title(label)
    for ax in axes:
        ax.set_xticks(x, names, rotation=45, ha="right")
    axes[0].legend()
    fig.suptitle("Upscaling an unseen region of the foam phantom, every method with the same training budget")
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_MODELS), help="registered model names")
    ap.add_argument("--size", type=int, default=64, help="LRES voxels a side")
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--figure", help="write a PNG of the main columns")
    ap.add_argument("--table", help="also write the Markdown table to this file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    runs = [one_ratio(r, args) for r in args.ratios]
    table = markdown(runs)
    print(table, file=sys.stderr)
    if args.table:
        with open(args.table, "w") as f:
            f.write(table + "\n")
    if args.figure:
        figure(runs, args.figure)
    print(json.dumps(json_safe({"iterations": args.iterations, "seed": args.seed, "size": args.size,
                                "seconds": round(time.perf_counter() - t0, 1), "runs": runs}), indent=2))


if __name__ == "__main__":
    main()
