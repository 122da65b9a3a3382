"""Can the error map be trusted? (issue 16): calibrated on one foam, validated on another.

Trains the default model on one realization's registered HRES (``--train-seed``),
exactly as ``default_model.py`` does (the issue-15 foam: 192^3, ratio 3, LRES blur
sigma 3 HRES voxels); training ends by calibrating the error maps on the pair's
validation block. Then upscales the whole LRES of another realization
(``--test-seed``, never seen) with ``uncertainty=True`` (without and with
test-time augmentation) and compares each map with the true |error| against that
realization's noiseless truth:

* ``coverage``: share of voxels whose |error| lies below the 90 % map (over the
  whole field, and ``in_sample``: inside the sample cylinder, without the air);
* ``spearman``: rank correlation of the map and |error| (a random sample of
  ``--sample`` voxels);
* sparsification: the mean |error| of the voxels left after removing the share
  ``f`` with the highest map values, against the oracle (removing the highest
  |error| first) and random order (flat); ``ause`` is the area between the map's
  curve and the oracle's, both divided by the mean |error| of all voxels, over
  f = 0 ... 0.95; ``cut_10_share_of_oracle`` is the mean-error cut of removing
  the top 10 % by the map as a share of the oracle's cut (the issue asks >= 0.5);

for each signal alone (``consistency`` and ``edge`` from the plain prediction,
``spread`` from the test-time-augmented one, each calibrated on the same
validation block), all three combined, and the maps ``--uncertainty``
(consistency) and ``--uncertainty --tta`` (consistency and spread) write
(:data:`napari_resolve.learn.calibrate.MAP_SIGNALS`). Also the cost of
the maps: ``predict`` time with the map, without and with TTA, over the plain
``predict`` measured in the same run (medians of ``--repeats``). Prints JSON.

    python benchmarks/trust.py [--ratio 3] [--field 192] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from default_model import HRES_SIDE  # noqa: E402

from napari_resolve.demo import _fine_box  # noqa: E402
from napari_resolve.io import json_safe  # noqa: E402
from napari_resolve.jobs import drain  # noqa: E402
from napari_resolve.learn.calibrate import validation_block, validation_signals  # noqa: E402
from napari_resolve.learn.inference import run_predict  # noqa: E402
from napari_resolve.learn.training import TrainConfig, iter_train, plan_train  # noqa: E402
from napari_resolve.learn.uncertainty import Calibration, ImagingModel, fit_calibration  # noqa: E402
from napari_resolve.phantom import make_phantom  # noqa: E402
from napari_resolve.registration import register  # noqa: E402

FRACTIONS = np.round(np.arange(0.0, 0.951, 0.05), 2)


def sparsification(order_key: np.ndarray, err: np.ndarray) -> np.ndarray:
    """Mean |error| of the voxels left after removing each share of FRACTIONS, highest ``order_key`` first."""
    order = np.argsort(-order_key, kind="stable")
    tail = np.cumsum(err[order][::-1])[::-1]  # sum of the errors from each rank on
    n = err.size
    start = np.minimum((FRACTIONS * n).astype(int), n - 1)
    return tail[start] / (n - start)


def judge(bound: np.ndarray, err: np.ndarray, rng: np.random.Generator, sample: int) -> dict:
    bound, err = bound.ravel().astype(np.float64), np.abs(err.ravel()).astype(np.float64)
    pick = rng.choice(err.size, min(sample, err.size), replace=False)
    curve, oracle = sparsification(bound, err), sparsification(err, err)
    mean = err.mean()
    i10 = int(np.argmin(np.abs(FRACTIONS - 0.1)))
    return {
        "coverage": float(np.mean(err <= bound)),
        "spearman": float(stats.spearmanr(bound[pick], err[pick]).statistic),
        "mean_bound": float(bound.mean()), "mean_abs_error": float(mean),
        "ause": float(np.trapezoid((curve - oracle) / mean, FRACTIONS)),
        "cut_10": float(mean - curve[i10]), "oracle_cut_10": float(mean - oracle[i10]),
        "cut_10_share_of_oracle": float((mean - curve[i10]) / (mean - oracle[i10])),
        "sparsification": {"fraction": FRACTIONS.tolist(), "map": curve.tolist(), "oracle": oracle.tolist(),
                           "random": [float(mean)] * len(FRACTIONS)},
    }


def timed(repeats: int, **kwargs) -> tuple[float, object]:
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run_predict(**kwargs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratio", type=int, default=3)
    ap.add_argument("--blur", type=float, default=3.0, help="LRES blur sigma, HRES voxels")
    ap.add_argument("--field", type=int, default=192, help="fine (truth) voxels a side")
    ap.add_argument("--hres", type=int, default=HRES_SIDE, help="HRES voxels a side")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--test-seed", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=None, help="default: TrainConfig's")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample", type=int, default=2_000_000, help="voxels for the Spearman correlation")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", metavar="MODEL.pt",
                    help="judge this model (trained on --train-seed's pair with the defaults, e.g. by "
                         "default_model.py --save) instead of training one")
    args = ap.parse_args(argv)

    def foam(seed):
        return make_phantom(args.field // args.ratio, args.ratio, hres_size=args.hres, blur_um=args.blur, seed=seed)

    train_ph, test_ph = foam(args.train_seed), foam(args.test_seed)
    reg = register(train_ph.lres, train_ph.hres, train_ph.lres_voxel_um, train_ph.hres_voxel_um).require_ok()
    cfg = TrainConfig(device=args.device, seed=0)
    if args.iterations:
        cfg.iterations = args.iterations
    plan = plan_train(train_ph.lres, train_ph.hres, train_ph.lres_voxel_um, reg, cfg)  # its pair: the same split
    train_s = None
    if args.model:
        from napari_resolve.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.model)
        if "error_map" not in ckpt.extra:  # a model from before the calibration: calibrate it as training does
            from napari_resolve.learn.calibrate import calibrate_model

            ckpt.extra["error_map"] = calibrate_model(ckpt, train_ph.lres, train_ph.lres_voxel_um, plan.pair,
                                                      device=args.device, imaging=plan.imaging)
    else:
        print(f"training {cfg.model} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        ckpt = drain(iter_train(plan)).checkpoint
        train_s = round(time.perf_counter() - t0, 1)
    stored = {k: Calibration.from_dict(v) for k, v in ckpt.extra["error_map"].items()}
    imaging = ImagingModel(**stored["plain"].imaging)

    # Each signal alone (and consistency with spread), calibrated on the same validation block as the stored maps.
    hres_val, val_grid = validation_block(plan.pair)
    val = {tta: validation_signals(ckpt, train_ph.lres, train_ph.lres_voxel_um, hres_val, val_grid, imaging,
                                   tta=tta, device=args.device) for tta in (False, True)}
    subsets = {"consistency": (False, ("consistency",)), "edge": (False, ("edge",)), "spread": (True, ("spread",)),
               "all three": (True, ("consistency", "spread", "edge"))}
    cals = {name: (tta, fit_calibration({k: val[tta][0][k] for k in keys}, val[tta][1], imaging))
            for name, (tta, keys) in subsets.items()}
    cals["map (--uncertainty)"] = (False, stored["plain"])
    cals["map (--uncertainty --tta)"] = (True, stored["tta"])

    print("predicting the unseen foam ...", file=sys.stderr, flush=True)
    common = dict(model=ckpt, lres=test_ph.lres, lres_voxel_um=test_ph.lres_voxel_um, device=args.device)
    plain_s, plain = timed(args.repeats, **common)
    map_s, with_map = timed(args.repeats, **common, uncertainty=True, keep_signals=True)
    tta_s, with_tta = timed(1, **common, uncertainty=True, tta=True, keep_signals=True)
    grid = plain.grid
    truth = test_ph.truth[_fine_box(grid, test_ph.truth_offset_um, test_ph.hres_voxel_um)]
    rng = np.random.default_rng(0)
    # Inside the sample cylinder alone (no HRES, and so no calibration voxel, shows the air around it).
    n = np.array(test_ph.truth.shape[-2:])
    yy, xx = np.meshgrid(*[np.arange(m) for m in grid.shape[1:]], indexing="ij")
    inside = np.hypot(yy - (n[0] - 1) / 2, xx - (n[1] - 1) / 2) < 0.45 * n.min() - 2
    signals = {}
    for name, (tta, cal) in cals.items():
        res = with_tta if tta else with_map
        bound, err = cal(res.signals), res.data - truth
        in_sample = judge(bound[:, inside], err[:, inside], rng, args.sample)
        in_sample.pop("sparsification")
        signals[name] = {"signals": list(cal.signals), "tta": tta, "validation_coverage": cal.coverage,
                         **judge(bound, err, rng, args.sample), "in_sample": in_sample}
    out = {
        "ratio": args.ratio, "blur_sigma_hres_voxels": args.blur, "field_voxels": args.field,
        "train_seed": args.train_seed, "test_seed": args.test_seed, "output_shape": list(grid.shape),
        "model": ckpt.architecture, "model_file": args.model, "train_seconds": train_s, "level": stored["plain"].level,
        "imaging_model": stored["plain"].imaging,
        "validation_voxels": stored["plain"].voxels,
        "signals": signals,
        "cost": {"predict_s": round(plain_s, 2), "with_map_s": round(map_s, 2), "with_map_tta_s": round(tta_s, 2),
                 "map_over_plain": round(map_s / plain_s, 2), "map_tta_over_plain": round(tta_s / plain_s, 2),
                 "repeats": args.repeats},
    }
    print(json.dumps(json_safe(out), indent=2))


if __name__ == "__main__":
    main()
