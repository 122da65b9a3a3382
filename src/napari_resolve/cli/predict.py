"""The ``predict`` command: upscale an LRES region with a model, streamed to a file.

Its defaults and choices are the core's (:mod:`napari_resolve.learn.tiling`), so
the help text cannot drift from what :func:`~napari_resolve.learn.inference.plan_predict` does.
"""

from __future__ import annotations

import argparse

from napari_resolve._text import format_shape, format_um
from napari_resolve.cli._common import (
    check_output,
    log,
    read_input,
    roi_arg,
    run_with_progress,
    voxel_arg,
)
from napari_resolve.devices import DEVICES
from napari_resolve.errors import InputError
from napari_resolve.learn.distributed import DEFAULT_CHUNK, SCHEDULER_ENV
from napari_resolve.learn.tiling import (
    BLENDS,
    DEFAULT_BLEND,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    DEFAULT_TILE_Z,
    DEFAULT_TILE_Z_3D,
)


def cmd_predict(args: argparse.Namespace) -> dict:
    models = list(args.model) if isinstance(args.model, (list, tuple)) else [args.model]
    if len(models) > 1:
        return _chain(args, models)
    args.model = models[0]
    if args.workers is not None or args.scheduler or args.resume or args.chunk is not None:
        return _chunked(args)
    from napari_resolve.learn import inference
    from napari_resolve.models.checkpoint import load_checkpoint

    # An output over an input, or an existing one without --overwrite, is refused before anything is read.
    out = check_output(args.out_path, [args.model, args.lres], args.overwrite, parameter="out_path")
    unc = check_output(args.uncertainty_path, [args.model, args.lres, out], args.overwrite,
                       parameter="uncertainty_path")
    std = check_output(args.std_path, [p for p in (args.model, args.lres, out, unc) if p is not None], args.overwrite,
                       parameter="std_path")
    if args.tta and unc is None:
        raise InputError("--tta adds the spread of flipped predictions to the error map: give --uncertainty too.")
    ckpt = load_checkpoint(args.model)
    lres = read_input(args.lres, voxel_arg(args.lres_voxel), "LRES")
    roi = roi_arg(args.roi, lres.ndim, "LRES voxels")
    plan = inference.plan_predict(
        ckpt, lres.data, lres.voxel_um, roi=roi, tile=args.tile, overlap=args.overlap,
        blend=args.blend, out_path=out, overwrite=args.overwrite, device=args.device,
        uncertainty_path=unc, tta=args.tta, samples=args.samples, steps=args.steps, std_path=std,
    )
    log(f"Upscaling {args.lres} with {ckpt.architecture} (trained {ckpt.iteration} iterations) -> {out}: "
        + (f"tiles sized to the free memory of {plan.device}" if plan.fit_memory else
           f"{plan.n_tiles} tiles of {format_shape(plan.tile[-lres.ndim:])} output voxels on {plan.device}")
        + (f"; the mean of {len(plan.variants)} samples" if args.samples and args.samples > 1 else "")
        + ("" if unc is None else f"; error map -> {unc}" + (" (8 flipped predictions a tile)" if args.tta else "")))
    result = run_with_progress(inference.iter_predict(plan))
    return result.summary()


def _chain(args: argparse.Namespace, models: list[str]) -> dict:
    """``predict M1.pt M2.pt ... LRES``: models in series, streamed without writing the middle results."""
    from napari_resolve.learn import chain, inference

    for flag, value in (("--uncertainty", args.uncertainty_path), ("--tta", args.tta), ("--samples", args.samples),
                        ("--sample-std", args.std_path), ("--steps", args.steps), ("--workers", args.workers),
                        ("--scheduler", args.scheduler), ("--resume", args.resume), ("--chunk", args.chunk)):
        if value:
            raise InputError(f"{flag} is not available for models in series ({len(models)} models given) yet: "
                             "run without it, or run the models one after the other.")
    out = check_output(args.out_path, [*models, args.lres], args.overwrite, parameter="out_path")
    lres = read_input(args.lres, voxel_arg(args.lres_voxel), "LRES")
    plan = chain.plan_chain_predict(
        models, lres.data, lres.voxel_um, roi=roi_arg(args.roi, lres.ndim, "LRES voxels"), tile=args.tile,
        overlap=args.overlap, blend=args.blend, out_path=out, overwrite=args.overwrite, device=args.device)
    steps = " -> ".join(format_um(c.lres_voxel_um, compact=True) for c in plan.checkpoint.checkpoints)
    log(f"Upscaling {args.lres} with {len(models)} models in series ({plan.checkpoint.architecture}; "
        f"{steps} -> {format_um(plan.grid.voxel_um, compact=True)}) -> {out}: {plan.n_tiles} tiles of "
        f"{format_shape(plan.tile[-lres.ndim:])} output voxels on {plan.device}")
    result = run_with_progress(inference.iter_predict(plan))
    return {**result.summary(), "models": [str(m) for m in models]}


def _chunked(args: argparse.Namespace) -> dict:
    """``predict --workers/--scheduler/--resume/--chunk``: one dask task per output chunk, an OME-Zarr out."""
    from napari_resolve.learn import distributed

    for flag, value in (("--uncertainty", args.uncertainty_path), ("--tta", args.tta), ("--samples", args.samples),
                        ("--sample-std", args.std_path), ("--steps", args.steps)):
        if value:
            raise InputError(f"{flag} is not available in chunked runs (--workers, --scheduler, --resume, --chunk) "
                             "yet: run without those to use it.")
    out = check_output(args.out_path, [args.model, args.lres], args.overwrite, parameter="out_path")
    plan = distributed.plan_chunked_predict(
        args.model, args.lres, out, lres_voxel_um=voxel_arg(args.lres_voxel), roi=_roi(args), chunk=args.chunk,
        tile=args.tile, overlap=args.overlap, blend=args.blend, device=args.device, workers=args.workers,
        scheduler=args.scheduler, resume=args.resume, overwrite=args.overwrite)
    where = plan.scheduler or f"{plan.workers or 'local'} worker(s) on this machine"
    log(f"Upscaling {args.lres} -> {out} (OME-Zarr, {plan.job.levels} level(s)): {len(plan.todo)} of "
        f"{plan.n_chunks} chunks of {format_shape(plan.job.chunk)} output voxels to compute on {where}")
    job = distributed.iter_chunked_predict(plan)
    try:
        return run_with_progress(job).summary()
    except KeyboardInterrupt as exc:
        job.close()
        left = plan.n_chunks - len(distributed._done(plan.partial)) if plan.partial.exists() else plan.n_chunks
        exc.kept = (f"the finished chunks are kept in {plan.partial} ({plan.n_chunks - left} of {plan.n_chunks}): "
                    "run the same command with --resume to compute the other chunks.")
        raise


def _roi(args):
    if args.roi is None:
        return None
    from napari_resolve.io import open_lazily

    return roi_arg(args.roi, open_lazily(args.lres).ndim, "LRES voxels")


def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="upscale an LRES region with a model (or models in series); prints origin_um, "
                                       "voxel_um, shape")
    p.add_argument("model", metavar="MODEL.pt", nargs="+",
                   help="a model; several are applied in series, the first to the LRES, each trained for the "
                        "previous one's HRES voxel size (e.g. 6.75 -> 2.25 um, then 2.25 -> 0.75 um), streamed "
                        "without writing the middle results")
    p.add_argument("lres", help="low-resolution scan")
    p.add_argument("--roi", metavar="Z0:Z1,Y0:Y1,X0:X1", help="region in LRES voxels (default: all)")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help=f"tile size in y and x, output voxels (default {DEFAULT_TILE}); in z {DEFAULT_TILE_Z} slices "
                        f"for slice-wise models, N (default {DEFAULT_TILE_Z_3D}) for 3D ones; rounded down to "
                        "the network's downsampling; without it, on a CUDA GPU the tile is sized to half its free "
                        "memory, measured on a small tile")
    p.add_argument("--overlap", type=int, default=None, metavar="N",
                   help=f"blending overlap of neighbouring tiles, output voxels (default {DEFAULT_OVERLAP}; "
                        "none in z for slice-wise models)")
    p.add_argument("--blend", default=DEFAULT_BLEND, choices=BLENDS,
                   help=f"blending weights: linear ramps over the overlap or a Gaussian (default {DEFAULT_BLEND})")
    p.add_argument("--device", default="auto", help=f"{', '.join(DEVICES)} or e.g. cuda:1 (default auto)")
    p.add_argument("--lres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("-o", "--output", dest="out_path", required=True, metavar="OUT.tif|OUT.zarr",
                   help="OME-TIFF or zarr, streamed slab by slab")
    p.add_argument("--uncertainty", dest="uncertainty_path", metavar="UNC.tif|UNC.zarr",
                   help="also write the calibrated error map (same grid): at each voxel a grey value the true "
                        "|error| stays below for 90 %% of voxels, from data consistency (and --tta's spread); "
                        "the model must come from a training on a pair")
    p.add_argument("--tta", action="store_true",
                   help="with --uncertainty: add the spread of the in-plane flips and rotations to the map "
                        "(about 8x slower); the output is then their mean")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="diffusion models: samples drawn per voxel; the output is their mean and, with "
                        "--uncertainty, their standard deviation is the map's spread (default 1; N times slower)")
    p.add_argument("--sample-std", dest="std_path", metavar="STD.tif|STD.zarr",
                   help="diffusion models, with --samples 2 or more: also write the samples' per-voxel standard "
                        "deviation (grey values, same grid)")
    p.add_argument("--steps", type=int, default=None, metavar="K",
                   help="diffusion models: sampler (DDIM) steps per sample (default the model's, set in training)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    dist = p.add_argument_group("chunked runs on dask (OUT.zarr: an OME-Zarr pyramid, one task per chunk)")
    dist.add_argument("--workers", type=int, default=None, metavar="N",
                      help="start N local worker processes (torch threads shared between them; one per GPU "
                           "by default on a GPU machine)")
    dist.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                      help=f"run on a running dask cluster (default ${SCHEDULER_ENV} when set; see "
                           "`dask scheduler` and `dask worker`)")
    dist.add_argument("--chunk", type=int, nargs="+", default=None, metavar="N",
                      help=f"output voxels per chunk: 1 value or z y x (default {DEFAULT_CHUNK}; rounded up to a "
                           "multiple of 8 and of the network's downsampling)")
    dist.add_argument("--resume", action="store_true",
                      help="finish an interrupted chunked run of the same command: only chunks not yet written "
                           "are computed")
    p.set_defaults(func=cmd_predict)
