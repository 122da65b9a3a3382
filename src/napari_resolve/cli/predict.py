"""The ``predict`` command: upscale an LRES region with a model, streamed to a file."""

from __future__ import annotations

import argparse

from napari_resolve.cli._common import (
    check_output,
    log,
    read_input,
    roi_arg,
    run_with_progress,
    voxel_arg,
)


def cmd_predict(args: argparse.Namespace) -> dict:
    from napari_resolve.learn.inference import iter_predict
    from napari_resolve.models.checkpoint import load_checkpoint

    out = check_output(args.output, [args.model, args.lres], args.overwrite)
    ckpt = load_checkpoint(args.model)
    lres = read_input(args.lres, voxel_arg(args.lres_voxel), "LRES")
    roi = roi_arg(args.roi, lres.ndim, "LRES voxels")
    log(f"Upscaling {args.lres} with {ckpt.architecture} (trained {ckpt.iteration} iterations) -> {out}")
    result = run_with_progress(
        iter_predict(
            ckpt, lres.data, lres.voxel_um, roi=roi, tile=args.tile, overlap=args.overlap,
            blend=args.blend, out_path=out, overwrite=args.overwrite, device=args.device,
        )
    )
    return result.summary()



def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="upscale an LRES region with a model; prints origin_um, voxel_um, shape")
    p.add_argument("model", metavar="MODEL.pt")
    p.add_argument("lres", help="low-resolution scan")
    p.add_argument("--roi", metavar="Z0:Z1,Y0:Y1,X0:X1", help="region in LRES voxels (default: all)")
    p.add_argument("--tile", type=int, default=None, help="tile size in output voxels (default 128)")
    p.add_argument("--overlap", type=int, default=None, help="blending overlap of tiles, output voxels (default 16)")
    p.add_argument("--blend", default="linear", choices=("linear", "gaussian"))
    p.add_argument("--device", default="auto")
    p.add_argument("--lres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tif|OUT.zarr",
                   help="OME-TIFF or zarr, streamed slab by slab")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_predict)
