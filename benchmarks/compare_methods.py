"""Every method side by side on the foam phantom at several resolution ratios.

For each ratio (LRES voxel = ratio x 1 um) and seed: make a phantom, register its
HRES in the LRES, train every learned method with the same budget (iterations,
batch, patch, seed), upscale an LRES region outside the HRES (never seen in
training), and score each result against the noiseless truth on that region:

- image metrics: MSE, PSNR (dB), SSIM, MS-SSIM (data range 1);
- pores: recovery (true pores wholly inside the region found one to one),
  porosity error (percentage points) and mean sphericity error against the truth's
  own pore analysis;
- effective resolution: FWHM (um) of the Gaussian blur of the truth that best
  matches the result (``quality.gaussian_resolution``);
- cost: parameters, training seconds, inference throughput (M voxels/s).

Methods are registered model names (trained on the registered real pair), or
``synthetic:NAME`` (trained on synthetic pairs made from the HRES alone, see
``napari_resolve.learn.synthetic``), or ``synthetic:stacked`` (the multi-output
network's three stages trained separately, each for the full budget, on their own
tasks, then stacked). ``synthetic:multioutput`` is the same network trained
jointly with its three losses; ``synthetic:stacked+joint`` the stacked stages
trained on jointly for the budget again (not in the default list).

Cubic interpolation and Richardson-Lucy (PSF fitted on the registered pair) are
scored on the same region. Prints JSON on stdout and a Markdown table on stderr;
``--figure`` writes a PNG. With several seeds the table shows means, and PSNR as
mean +- standard deviation over the seeds. Seeds can run in separate processes
(``--json-out``) and be joined with ``--merge``.

    python benchmarks/compare_methods.py [--ratios 2 3 4] [--iterations 600] [--seeds 0 1]
        [--methods unet25d srcnn synthetic:multioutput ...] [--figure PNG] [--table MD]
    python benchmarks/compare_methods.py --merge seed0.json seed1.json --figure PNG --table MD
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
from napari_resolve.learn.synthetic import Degradation
from napari_resolve.learn.training import TrainConfig, run_train, run_train_synthetic
from napari_resolve.measure.baselines import estimate_psf_sigma, interpolate, run_baseline
from napari_resolve.measure.similarity import compare, gaussian_resolution
from napari_resolve.models import model_names
from napari_resolve.models.multioutput import DEFAULT_STAGES, STAGES, stack_stages
from napari_resolve.phantom import make_phantom
from napari_resolve.pores.segment import analyse_pores, match_pores
from napari_resolve.registration import register

BASELINES = ("richardson_lucy", "cubic")
SYNTHETIC = "synthetic:"
# The 3D SRCNN is the slowest network by far on a CPU and adds nothing the 2D one does not show;
# the multi-output network needs synthetic pairs for its intermediate targets.
DEFAULT_MODELS = tuple(m for m in model_names() if m not in ("srcnn3d", "multioutput")) + (
    "synthetic:unet25d", "synthetic:multioutput", "synthetic:stacked")


def _train(ph, reg, method: str, seed: int, args):
    """(checkpoint, parameters, training seconds, device) of one method."""
    def config(model, **kw):
        return TrainConfig(model=model, iterations=args.iterations, seed=seed, device=args.device, **kw)

    if not method.startswith(SYNTHETIC):
        res = run_train(ph.lres, ph.hres, ph.lres_voxel_um, reg, config(method))
        return res.checkpoint, res.model.parameter_count(), res.seconds, res.device
    deg = Degradation(ratio=ph.meta()["ratio"], seed=seed)
    name = method[len(SYNTHETIC):]
    if name not in ("stacked", "stacked+joint"):  # a registered model name
        res = run_train_synthetic(ph.hres, ph.hres_voxel_um, deg, config(name))
        return res.checkpoint, res.model.parameter_count(), res.seconds, res.device
    stages, seconds, params = [], 0.0, 0
    for stage in STAGES:
        spec = dict(DEFAULT_STAGES[stage])
        model = spec.pop("name")
        res = run_train_synthetic(ph.hres, ph.hres_voxel_um, deg, config(model, model_config=spec, task=stage))
        stages.append(res.checkpoint)
        seconds += res.seconds
        params += res.model.parameter_count()
    stacked = stack_stages(*stages)
    if name == "stacked":
        return stacked, params, seconds, res.device
    # The paper's experiment 2: the separately trained stages, then trained on jointly.
    res = run_train_synthetic(ph.hres, ph.hres_voxel_um, deg, config("multioutput"), resume=stacked)
    return res.checkpoint, params, seconds + res.seconds, res.device


def _train_and_predict(ph, reg, roi, method: str, seed: int, args) -> tuple[np.ndarray, Grid, dict]:
    ckpt, params, train_s, device = _train(ph, reg, method, seed, args)
    t0 = time.perf_counter()
    pred = run_predict(ckpt, ph.lres, ph.lres_voxel_um, roi=roi, device=args.device)
    seconds = time.perf_counter() - t0
    info = {
        "parameters": params,
        "train_seconds": round(train_s, 1),
        "best_val_psnr_db": ckpt.val_psnr,
        "predict_mvoxels_per_s": round(float(np.prod(pred.grid.shape)) / 1e6 / seconds, 3),
        "device": device,
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


def one_ratio(ratio: int, seed: int, args) -> dict:
    ph = make_phantom(args.size, ratio, seed=seed)
    reg = register(ph.lres, ph.hres, ph.lres_voxel_um, ph.hres_voxel_um).require_ok()
    roi = _unseen_region(ph.lres.shape, ph.meta(), ratio)
    images, info, grid = {}, {}, None
    for method in args.methods:
        print(f"ratio {ratio}, seed {seed}: training {method}...", file=sys.stderr, flush=True)
        images[method], g, info[method] = _train_and_predict(ph, reg, roi, method, seed, args)
        # Every result must lie on the same truth voxels to be scored against one truth box: a
        # synthetic pair's grid is in the binning phase, a real pair's in the registered one
        # (0.01 um off on the phantom).
        if grid is not None and not (g.shape == grid.shape and np.allclose(
                g.origin_um, grid.origin_um, atol=0.25 * min(grid.voxel_um))):
            raise RuntimeError(f"{method} predicted on another grid ({g}) than the first method ({grid}).")
        grid = g
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
    return {"ratio": ratio, "seed": seed, "lres_shape": list(ph.lres.shape),
            "region_lres_voxels": [[s.start, s.stop] for s in roi], "grid": grid.to_dict(),
            "psf_sigma_um": psf.sigma_um, "methods": methods}


def aggregate(runs: list[dict]) -> list[dict]:
    """One entry per ratio: every metric's mean over the seeds, with ``psnr_db_sd`` and ``seeds``."""
    out = []
    for ratio in sorted({r["ratio"] for r in runs}):
        group = [r for r in runs if r["ratio"] == ratio]
        methods = {}
        for name in group[0]["methods"]:
            rows = [r["methods"][name] for r in group if name in r["methods"]]
            merged = {}
            for key, value in rows[0].items():
                values = [row.get(key) for row in rows]
                if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                    merged[key] = float(np.mean(values))
                else:
                    merged[key] = value
            psnrs = [row["psnr_db"] for row in rows]
            merged["psnr_db_sd"] = float(np.std(psnrs, ddof=1)) if len(psnrs) > 1 else None
            merged["seeds"] = len(rows)
            methods[name] = merged
        out.append({**{k: group[0][k] for k in ("ratio", "grid")}, "seeds": [r["seed"] for r in group],
                    "methods": methods})
    return out


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
    ("Mvox/s", "predict_mvoxels_per_s", "{:.2g}"),
)


def markdown(summary: list[dict]) -> str:
    """The aggregated runs as Markdown tables, one per ratio."""
    lines = []
    for run in summary:
        seeds = run["seeds"]
        lines.append(f"\n**Ratio {run['ratio']}** (LRES {run['ratio']} um -> 1 um, region "
                     f"{'x'.join(str(n) for n in run['grid']['shape'])} HRES voxels; "
                     + (f"mean of seeds {', '.join(map(str, seeds))})\n" if len(seeds) > 1 else f"seed {seeds[0]})\n"))
        lines.append("| method | " + " | ".join(c[0] for c in COLUMNS) + " |")
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for name, m in run["methods"].items():
            cells = []
            for _, key, fmt in COLUMNS:
                v = m.get(key)
                cell = "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)
                if key == "parameters" and cell != "–":
                    cell = f"{int(round(v)):,}"
                if key == "psnr_db" and m.get("psnr_db_sd") is not None:
                    cell += f" ± {m['psnr_db_sd']:.2f}"
                cells.append(cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(runs: list[dict], path: str) -> None:
    """Bars of the main columns, one colour per ratio; PSNR with the seeds' standard deviation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs[0]["methods"])
    panels = (("psnr_db", "PSNR (dB)"), ("ssim", "SSIM"), ("pore_recovery", "pores found"), ("fwhm_um", "FWHM (µm)"))
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), layout="constrained")
    width = 0.8 / len(runs)
    x = np.arange(len(names))
    for k, run in enumerate(runs):
        for ax, (key, label) in zip(axes.flat, panels):
            values = [run["methods"][n].get(key) or np.nan for n in names]
            errors = None
            if key == "psnr_db":
                errors = [run["methods"][n].get("psnr_db_sd") or 0.0 for n in names]
            ax.bar(x + (k - (len(runs) - 1) / 2) * width, values, width, yerr=errors, capsize=2,
                   label=f"ratio {run['ratio']}")
            ax.set_title(label)
    axes.flat[0].set_ylim(bottom=10)  # PSNR: the differences are in the top half
    for ax in axes.flat:
        ax.set_xticks(x, names, rotation=35, ha="right")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(runs))
    seeds = runs[0].get("seeds", [])
    fig.suptitle("Upscaling an unseen region of the foam phantom, every method with the same training budget"
                 + (f" (mean of {len(seeds)} seeds; PSNR ± sd)" if len(seeds) > 1 else ""))
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_MODELS),
                    help="registered model names, synthetic:NAME or synthetic:stacked")
    ap.add_argument("--size", type=int, default=64, help="LRES voxels a side")
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="phantom, training and degradation seeds")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--merge", nargs="+", metavar="JSON", help="join earlier runs' JSON output instead of running")
    ap.add_argument("--json-out", help="also write the JSON to this file")
    ap.add_argument("--figure", help="write a PNG of the main columns")
    ap.add_argument("--table", help="also write the Markdown table to this file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.merge:
        loaded = [json.load(open(path)) for path in args.merge]
        runs = [run for d in loaded for run in d["runs"]]
        iterations = sorted({d["iterations"] for d in loaded})
        if len(iterations) > 1:
            raise SystemExit(f"The runs to merge used different budgets: {iterations} iterations.")
        iterations = iterations[0]
    else:
        runs = [one_ratio(r, seed, args) for seed in args.seeds for r in args.ratios]
        iterations = args.iterations
    summary = aggregate(runs)
    table = markdown(summary)
    print(table, file=sys.stderr)
    if args.table:
        with open(args.table, "w") as f:
            f.write(table + "\n")
    if args.figure:
        figure(summary, args.figure)
    record = json_safe({"iterations": iterations, "size": args.size, "seconds": round(time.perf_counter() - t0, 1),
                        "runs": runs, "summary": summary})
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(record, f, indent=2)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
