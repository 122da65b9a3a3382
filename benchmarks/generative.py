"""Regression against adversarial upscaling, on the foam and on the cross-modality (CT to SEM) foam (issue 17).

For each HRES modality (``ct``: the LRES's own contrast; ``sem``: an SEM image of
the same foam, :func:`napari_resolve.phantom.sem_contrast`), train ``unet25d``
and ``pix2pix`` (the same U-Net as generator) with the same settings on the
registered pair of realization 0, upscale the whole LRES of realization 1 and
score it against that realization's noiseless truth (in the HRES modality's
contrast): PSNR, SSIM, pores found, and the in-plane power spectrum against the
truth's per frequency band (regression blurs: ratios below 1 at high
frequencies; a generative model should stay near 1), plus the seconds per
million output voxels. Cubic interpolation is scored too. Prints JSON.

    python benchmarks/generative.py [--size 64] [--iterations 800] [--modalities ct sem]
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


def run(modality: str, size: int, iterations: int) -> dict:
    train_ph = make_phantom(size, 3, seed=0, hres_modality=modality)
    test_ph = make_phantom(size, 3, seed=1, hres_modality=modality)
    reg = register(train_ph.lres, train_ph.hres, train_ph.lres_voxel_um, train_ph.hres_voxel_um).require_ok()
    out = {"registration_ncc": reg.ncc, "methods": {}}
    grid = None
    for name in ("unet25d", "pix2pix"):
        print(f"{modality}: training {name} ...", file=sys.stderr, flush=True)
        cfg = TrainConfig(model=name, iterations=iterations, batch_size=8, patch_size=64, loss="l1", patience=0,
                          seed=0)
        res = run_train(train_ph.lres, train_ph.hres, train_ph.lres_voxel_um, reg, cfg)
        t0 = time.perf_counter()
        pred = run_predict(res.checkpoint, test_ph.lres, test_ph.lres_voxel_um)
        seconds = time.perf_counter() - t0
        grid = pred.grid
        truth = test_ph.truth[_fine_box(grid, test_ph.truth_offset_um, test_ph.hres_voxel_um)]
        row = score(pred.data, grid, test_ph)
        row.update(train_s=round(res.seconds, 1), best_val_psnr_db=res.checkpoint.val_psnr,
                   predict_s_per_mvox=round(seconds / (np.prod(grid.shape) / 1e6), 2),
                   spectrum_over_truth=band_power_ratios(pred.data, truth))
        last = res.history[-1]
        if "disc_accuracy" in last:
            row.update(final_disc_accuracy=last["disc_accuracy"], final_loss_disc=last["loss_disc"])
        out["methods"][name] = row
    cubic = interpolate(test_ph.lres, test_ph.lres_voxel_um, grid, "cubic")
    out["methods"]["cubic"] = score(cubic, grid, test_ph) | {
        "spectrum_over_truth": band_power_ratios(cubic, truth)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="LRES voxels a side (ratio 3)")
    ap.add_argument("--iterations", type=int, default=800)
    ap.add_argument("--modalities", nargs="*", default=["ct", "sem"])
    args = ap.parse_args(argv)
    report = {"size": args.size, "ratio": 3, "iterations": args.iterations,
              **{m: run(m, args.size, args.iterations) for m in args.modalities}}
    print(json.dumps(json_safe(report), indent=2))


if __name__ == "__main__":
    main()
