"""Upscaling speed (issue 15): every registered model's ``predict`` against the references, in one process.

On a foam LRES of ``--size`` voxels a side at ratio 3 (48^3 -> 144^3 by default),
for each registered model (untrained weights: speed does not depend on them,
the last layer is randomised so the output is not plain interpolation):

* ``predict``: the tiled, streamed pipeline with its default tile and overlap;
  output Mvox/s (median of ``--repeats``);
* ``whole``: the bare network run once over the whole volume (its input made as
  ``predict`` makes it), the ideal without tiling;
* ``monai``: MONAI's ``sliding_window_inference`` with the same network, the
  same tile (input window) and overlap, Gaussian blending;
* interior deviation of ``predict`` and ``monai`` from ``whole`` (max |diff| over
  the voxels at least one receptive radius from the border, in units of the
  output's grey range): 0 means seamless;
* GFLOP per million output voxels (``torch.utils.flop_counter`` on the whole
  pass) and the GFLOP/s achieved, next to a float32 2048^2 matmul roof measured
  in the same process;

and, on the same output grid, scipy's cubic ``zoom`` (one thread) as the speed
every learned model is compared with (``ratio_to_zoom``), and the peak RSS.
Prints JSON. Machines are shared and noisy: compare the ratios.

    python benchmarks/speed.py [--size 48] [--repeats 3] [--models lres3d unet25d]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

import numpy as np
import torch

from napari_resolve.geometry.grid import resample_lres
from napari_resolve.learn.inference import output_grid, plan_predict, run_predict
from napari_resolve.learn.lres_pairs import positions
from napari_resolve.learn.normalisation import fit_normalisation
from napari_resolve.models import build_model, model_names
from napari_resolve.models.checkpoint import Checkpoint
from napari_resolve.phantom import make_phantom

RATIO = 3


def median_time(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one untimed call (oneDNN builds its kernels on the
    first call of a shape: a one-off cost per process, not a per-volume one), the same for every method."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_roof(repeats: int) -> float:
    a = torch.randn(2048, 2048)
    return 2 * 2048**3 / median_time(lambda: a @ a, max(repeats, 3)) / 1e9


def checkpoint_for(name: str, ph) -> Checkpoint:
    torch.manual_seed(0)
    net = build_model(name)
    last = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))][-1]
    torch.nn.init.normal_(last.weight, std=0.05)  # not the identity-start: a real, non-trivial output
    norm = fit_normalisation(ph.lres)
    return Checkpoint(
        architecture=name, config=dict(net.config), state_dict=net.state_dict(), norm_in=norm, norm_out=norm,
        lres_voxel_um=ph.lres_voxel_um, hres_voxel_um=ph.hres_voxel_um,
        registration={"offset_um": list(ph.meta()["hres_offset_um"]), "scale": list(ph.hres_voxel_um)},
        train_config={}, history=[], iteration=0, val_psnr=None, optimizer_state=None, scheduler_state=None,
        extra={},
    )


def whole_input(ckpt, net, ph, grid):
    """The network input of a whole-volume pass and where its output sits in ``grid`` (z offset)."""
    if net.input_grid == "lres":
        block = torch.from_numpy(ckpt.norm_in.apply(ph.lres.astype(np.float32)))[None]
        pos = tuple(torch.from_numpy(positions(o, v, n, lv, 0).astype(np.float32))
                    for o, v, n, lv in zip(grid.origin_um, grid.voxel_um, grid.shape, ph.lres_voxel_um))
        return (block, pos)
    from napari_resolve.geometry.grid import Grid

    # Pre-upsampled input with the z slices a 2.5D network consumes, so it returns the whole grid.
    h = net.trim_z
    ext = Grid((grid.shape[0] + 2 * h, *grid.shape[1:]), grid.voxel_um,
               (grid.origin_um[0] - h * grid.voxel_um[0], *grid.origin_um[1:]))
    inp = ckpt.norm_in.apply(resample_lres(ph.lres, ph.lres_voxel_um, ext))
    my = net.size_multiple[1]
    pad = [(0, 0), (0, (-inp.shape[1]) % my), (0, (-inp.shape[2]) % my)]
    return (torch.from_numpy(np.pad(inp, pad, mode="edge"))[None],)


def monai_run(net, args, plan, grid):
    """MONAI's sliding window over the same input, with the plan's tile and overlap (gaussian blending)."""
    from monai.inferers import sliding_window_inference

    x = args[0][:, None]  # (1, 1, z, y, x)
    if net.input_grid == "lres":
        # Windows of LRES voxels covering the plan's output tile; each returns RATIO times its size.
        tile = tuple(max(4, t // RATIO) for t in plan.tile)
        overlap = max(o / t for o, t in zip(plan.overlap, plan.tile)) or 0.25

        def predictor(w):
            n = w.shape[2:]
            pos = tuple(torch.arange(RATIO * k, dtype=torch.float32) / RATIO - (RATIO - 1) / (2 * RATIO) for k in n)
            return net(w[:, 0], pos)[:, None]
    else:
        h = net.trim_z
        tile = (plan.tile[0] + 2 * h, plan.tile[1], plan.tile[2])
        overlap = max(plan.overlap[1] / plan.tile[1], 0.0)

        def predictor(w):
            # 2.5D: z shrinks by 2h; repeat the edge slices so MONAI gets the window's size back (what a
            # MONAI user would do; the blending then mixes those approximations in: its deviation).
            out = net(w[:, 0])[:, None]
            return torch.nn.functional.pad(out, (0, 0, 0, 0, h, h), mode="replicate") if h else out
    with torch.inference_mode():
        out = sliding_window_inference(x, tile, 1, predictor, overlap=overlap, mode="gaussian")
    out = out[0, 0]
    if net.input_grid != "lres" and net.trim_z:
        out = out[net.trim_z : out.shape[0] - net.trim_z]
    return out[: grid.shape[0], : grid.shape[1], : grid.shape[2]].numpy()


def interior_deviation(a, b, r, span) -> float:
    core = tuple(slice(r, n - r) for n in a.shape)
    return float(np.abs(a[core] - b[core]).max() / span)


def compiled_pass(net, args, whole, repeats: int, eager_s: float) -> dict:
    """``torch.compile`` on the whole-volume pass: its first call (the compilation), its speed against
    eager in the same process, and its deviation from the eager output."""
    try:
        t0 = time.perf_counter()
        comp = torch.compile(net)
        with torch.inference_mode():
            out = comp(*args)[0]
            first = time.perf_counter() - t0
            t = median_time(lambda: comp(*args), repeats)
    except Exception as exc:  # no C++ compiler, an unsupported op...: report it, it is what a user would meet
        return {"compile": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    n = [min(a, b) for a, b in zip(out.shape, whole.shape)]
    dev = float(np.abs(out[: n[0], : n[1], : n[2]].numpy() - whole[: n[0], : n[1], : n[2]]).max())
    return {"compile_first_call_s": round(first, 1), "compiled_whole_s": round(t, 3),
            "compiled_over_eager": round(eager_s / t, 2), "compiled_max_abs_deviation": dev}


def one_model(name: str, ph, grid, repeats: int, roof: float, compile_too: bool = False) -> dict:
    ckpt = checkpoint_for(name, ph)
    net = ckpt.build().eval()
    mvox = np.prod(grid.shape) / 1e6
    plan = plan_predict(ckpt, ph.lres, ph.lres_voxel_um, device="cpu")
    result = {}

    def predict():
        result["data"] = run_predict(plan).data

    t_predict = median_time(predict, repeats)
    args = whole_input(ckpt, net, ph, grid)
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            whole = net(*args)[0]
        raw = whole.numpy().copy()
        whole = ckpt.norm_out.invert(whole[: grid.shape[0], : grid.shape[1], : grid.shape[2]].numpy())

        def whole_pass():
            net(*args)

        t_whole = median_time(whole_pass, repeats)
    gflop = counter.get_total_flops() / 1e9
    out = {
        "parameters": net.parameter_count(),
        "input_grid": net.input_grid,
        "tile": list(plan.tile), "overlap": list(plan.overlap), "tiles": plan.n_tiles,
        "gflop_per_mvox": round(gflop / mvox, 1),
        "predict_s": round(t_predict, 3), "predict_mvox_per_s": round(mvox / t_predict, 3),
        "predict_gflop_per_s": round(gflop / t_predict, 1), "predict_share_of_roof": round(gflop / t_predict / roof, 3),
        "whole_s": round(t_whole, 3), "whole_mvox_per_s": round(mvox / t_whole, 3),
    }
    if compile_too:
        out.update(compiled_pass(net, args, raw, repeats, t_whole))
    span = float(whole.max() - whole.min()) or 1.0
    r = max(net.receptive_radius) * (RATIO if net.input_grid == "lres" else 1) + 4
    out["predict_interior_deviation"] = interior_deviation(result["data"], whole, r, span)
    try:
        mon = {}

        def monai():
            mon["data"] = monai_run(net, args, plan, grid)

        t_monai = median_time(monai, repeats)
        mon_data = ckpt.norm_out.invert(mon["data"])
        out.update(monai_s=round(t_monai, 3), monai_mvox_per_s=round(mvox / t_monai, 3),
                   predict_over_monai=round(t_monai / t_predict, 2),
                   monai_interior_deviation=interior_deviation(mon_data, whole, r, span))
    except ImportError:
        out["monai"] = "not installed (pip install monai)"
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=48, help="LRES voxels a side")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile on the whole-volume pass (needs a C++ compiler)")
    args = ap.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    ph = make_phantom(args.size, RATIO, seed=3)
    grid = output_grid(checkpoint_for("lres3d", ph), ph.lres.shape, ph.lres_voxel_um)
    mvox = np.prod(grid.shape) / 1e6
    from scipy import ndimage

    t_zoom = median_time(lambda: ndimage.zoom(ph.lres.astype(np.float32), RATIO, order=3), args.repeats)
    roof = matmul_roof(args.repeats)
    report = {
        "lres_shape": list(ph.lres.shape), "output_shape": list(grid.shape), "ratio": RATIO,
        "torch_threads": torch.get_num_threads(),
        "matmul_roof_gflop_per_s": round(roof, 1),
        "scipy_cubic_zoom_mvox_per_s": round(mvox / t_zoom, 3),
        "models": {},
    }
    for name in args.models or model_names():
        print(f"{name} ...", file=sys.stderr, flush=True)
        row = one_model(name, ph, grid, args.repeats, roof, args.compile)
        row["predict_over_zoom"] = round(row["predict_mvox_per_s"] / report["scipy_cubic_zoom_mvox_per_s"], 2)
        report["models"][name] = row
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
