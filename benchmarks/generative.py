"""Regression against generative upscaling, on the foam and on the cross-modality (CT to SEM) foam (issue 17).

For each HRES modality (``ct``: the LRES's own contrast; ``sem``: an SEM image of
the same foam, :func:`napari_resolve.phantom.sem_contrast`), train ``unet25d``,
``pix2pix`` (the same U-Net as generator) and ``diffusion`` with the same settings
on the registered pair of realization 0, upscale the LRES of realization 1 (a
central slab of ``--eval-slices`` LRES slices: diffusion costs its sampler steps
times the samples) and score it against that realization's noiseless truth (in the
HRES modality's contrast): PSNR, SSIM, pores found, and the in-plane power
spectrum against the truth's per frequency band (regression blurs: ratios below 1
at high frequencies; a generative model should stay near 1), plus the seconds per
million output voxels. Diffusion is scored as the mean of ``--samples`` samples and
as one sample; for the mean, the Spearman correlation of the samples' standard
deviation with the true |error| and the calibrated map's coverage; and the seam
check: a tiled prediction against one pass over the same slab. Cubic
interpolation is scored too. Prints JSON.

    python benchmarks/generative.py [--size 64] [--iterations 800] [--modalities ct sem]
        [--methods unet25d pix2pix diffusion] [--eval-slices 12] [--samples 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from napari_resolve.demo import _fine_box
from napari_resolve.io import json_safe
from napari_resolve.learn.inference import run_predict
from napari_resolve.learn.training import TrainConfig, run_train
from napari_resolve.measure.baselines import interpolate
from napari_resolve.phantom import make_phantom
from napari_resolve.registration import register

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from default_model import score  # noqa: E402  (the same scores as the default model's bar)

#: In-plane frequency bands (cycles per HRES voxel) of the spectrum comparison.
BANDS = ((0.02, 0.08), (0.08, 0.16), (0.16, 0.25), (0.25, 0.5))


def band_power_ratios(img: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Power of ``img`` over the truth's in each band of the radially averaged in-plane spectrum
    (mean over z slices; each slice's mean removed)."""
    def power(a):
        a = a - a.mean(axis=(1, 2), keepdims=True)
        return (np.abs(np.fft.fft2(a)) ** 2).mean(0)

    fy = np.fft.fftfreq(img.shape[1])[:, None]
    fx = np.fft.fftfreq(img.shape[2])[None, :]
    r = np.hypot(fy, fx)
    p_img, p_truth = power(img), power(truth)
    return {f"{lo:g}-{hi:g}": float(p_img[(r >= lo) & (r < hi)].sum() / p_truth[(r >= lo) & (r < hi)].sum())
            for lo, hi in BANDS}


def _spearman(a: np.ndarray, b: np.ndarray, n: int = 200_000) -> float:
    from scipy.stats import spearmanr

    step = max(1, a.size // n)
    return float(spearmanr(a.ravel()[::step], b.ravel()[::step]).statistic)


def _diffusion_rows(ckpt, lres, lv, roi, test_ph, samples: int) -> dict:
    """The mean of ``samples`` samples, one sample, the std's rank correlation with the error, the seam check."""
    t0 = time.perf_counter()
    mean = run_predict(ckpt, lres, lv, roi=roi, samples=samples, uncertainty=True, keep_signals=True)
    seconds = time.perf_counter() - t0
    grid = mean.grid
    truth = test_ph.truth[_fine_box(grid, test_ph.truth_offset_um, test_ph.hres_voxel_um)]
    error = np.abs(mean.data - truth)
    std = mean.signals["spread"].reshape(mean.data.shape)
    row = score(mean.data, grid, test_ph) | {
        "samples": samples, "predict_s_per_mvox": round(seconds / (np.prod(grid.shape) / 1e6), 2),
        "spectrum_over_truth": band_power_ratios(mean.data, truth),
        "std_spearman_with_abs_error": _spearman(std, error),
        "map_coverage": float(np.mean(error <= mean.uncertainty)), "median_std": float(np.median(std))}
    one = run_predict(ckpt, lres, lv, roi=roi)
    single = score(one.data, grid, test_ph) | {"spectrum_over_truth": band_power_ratios(one.data, truth)}
    # Seam check on 4 LRES slices: 64-voxel tiles (the default 16-voxel overlap) against one tile.
    mid = (roi[0].start + roi[0].stop) // 2
    thin = (slice(mid - 2, mid + 2),) + tuple(roi[1:])
    tiled = run_predict(ckpt, lres, lv, roi=thin, tile=64)
    whole = run_predict(ckpt, lres, lv, roi=thin, tile=64 * (max(tiled.grid.shape[1:]) // 64 + 2))
    seam = np.abs(tiled.data - whole.data)
    row["seam_check"] = {"tiles": tiled.tiles, "max_abs_diff": float(seam.max()),
                         "p99_abs_diff": float(np.percentile(seam, 99)), "median_sample_std": float(np.median(std))}
    return {"diffusion": row, "diffusion_1_sample": single}


def run(modality: str, size: int, iterations: int, methods, eval_slices: int | None, samples: int) -> dict:
    train_ph = make_phantom(size, 3, seed=0, hres_modality=modality)
    test_ph = make_phantom(size, 3, seed=1, hres_modality=modality)
    reg = register(train_ph.lres, train_ph.hres, train_ph.lres_voxel_um, train_ph.hres_voxel_um).require_ok()
    out = {"registration_ncc": reg.ncc, "methods": {}}
    n = test_ph.lres.shape[0]
    k = n if eval_slices is None else min(n, eval_slices)
    roi = (slice((n - k) // 2, (n - k) // 2 + k), slice(None), slice(None))
    lres, lv = test_ph.lres, test_ph.lres_voxel_um
    grid = None
    for name in methods:
        print(f"{modality}: training {name} ...", file=sys.stderr, flush=True)
        cfg = TrainConfig(model=name, iterations=iterations, batch_size=8, patch_size=64, loss="l1", patience=0,
                          seed=0)
        res = run_train(train_ph.lres, train_ph.hres, train_ph.lres_voxel_um, reg, cfg)
        train = {"train_s": round(res.seconds, 1), "best_val_psnr_db": res.checkpoint.val_psnr}
        if name == "diffusion":
            rows = _diffusion_rows(res.checkpoint, lres, lv, roi, test_ph, samples)
            rows["diffusion"].update(train)
            out["methods"].update(rows)
            continue
        t0 = time.perf_counter()
        pred = run_predict(res.checkpoint, lres, lv, roi=roi)
        seconds = time.perf_counter() - t0
        grid = pred.grid
        truth = test_ph.truth[_fine_box(grid, test_ph.truth_offset_um, test_ph.hres_voxel_um)]
        row = score(pred.data, grid, test_ph)
        row.update(train, predict_s_per_mvox=round(seconds / (np.prod(grid.shape) / 1e6), 2),
                   spectrum_over_truth=band_power_ratios(pred.data, truth))
        last = res.history[-1]
        if "disc_accuracy" in last:
            row.update(final_disc_accuracy=last["disc_accuracy"], final_loss_disc=last["loss_disc"])
        out["methods"][name] = row
    if grid is None:
        from napari_resolve.learn.inference import output_grid

        grid = output_grid(res.checkpoint, lres.shape, lv, roi)
    truth = test_ph.truth[_fine_box(grid, test_ph.truth_offset_um, test_ph.hres_voxel_um)]
    cubic = interpolate(lres, lv, grid, "cubic")
    out["methods"]["cubic"] = score(cubic, grid, test_ph) | {
        "spectrum_over_truth": band_power_ratios(cubic, truth)}
    out["eval_grid_shape"] = list(grid.shape)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="LRES voxels a side (ratio 3)")
    ap.add_argument("--iterations", type=int, default=800)
    ap.add_argument("--modalities", nargs="*", default=["ct", "sem"])
    ap.add_argument("--methods", nargs="*", default=["unet25d", "pix2pix", "diffusion"])
    ap.add_argument("--eval-slices", type=int, default=12, help="LRES slices of the test slab (0: all)")
    ap.add_argument("--samples", type=int, default=4, help="diffusion samples per voxel")
    args = ap.parse_args(argv)
    report = {"size": args.size, "ratio": 3, "iterations": args.iterations, "eval_slices": args.eval_slices,
              **{m: run(m, args.size, args.iterations, args.methods, args.eval_slices or None, args.samples)
                 for m in args.modalities}}
    print(json.dumps(json_safe(report), indent=2))


if __name__ == "__main__":
    main()
