"""The ``pores`` command."""

from __future__ import annotations

import argparse

import numpy as np

from napari_resolve.cli._common import check_output, float_arg, log, read_input, run_with_progress, voxel_arg


def cmd_pores(args: argparse.Namespace) -> dict:
    from napari_resolve.io import write_volume
    from napari_resolve.pores.segment import iter_analyse_pores

    csv = check_output(args.output, [args.image], args.overwrite)
    labels_out = check_output(args.labels, [args.image], args.overwrite)
    vol = read_input(args.image, voxel_arg(args.voxel), "IMAGE")
    threshold = args.threshold if args.threshold == "otsu" else float_arg(args.threshold, "--threshold")
    mask = {"auto": "auto", "none": None}[args.sample_mask]
    log(f"Segmenting pores in {args.image} (voxel {vol.voxel_um} um, threshold {threshold})...")
    res = run_with_progress(
        iter_analyse_pores(
            np.asarray(vol.data),
            vol.voxel_um,
            threshold=threshold,
            pores_are=args.pores_are,
            sample_mask=mask,
            edge_kill=not args.keep_edge_pores,
        )
    )
    summary = res.summary()
    if csv is not None:
        res.to_csv(csv)  # overwrite was checked above, before any work
        summary["csv"] = str(csv)
    if labels_out is not None:
        write_volume(labels_out, res.labels, vol.voxel_um, origin_um=vol.origin_um, overwrite=args.overwrite)
        summary["labels"] = str(labels_out)
    return summary


def add_pores(sub) -> None:
    p = sub.add_parser("pores", help="segment pores; prints porosity, count, mean diameter, sphericity")
    p.add_argument("image", help="grey-value image or volume (TIFF, OME-TIFF or zarr)")
    p.add_argument("--voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("--threshold", default="otsu", help="'otsu' (default) or a grey value")
    p.add_argument("--pores-are", choices=("dark", "bright"), default="dark")
    p.add_argument("--sample-mask", choices=("auto", "none"), default="auto",
                   help="auto: the sample is found (air outside excluded); none: the whole field")
    p.add_argument("--keep-edge-pores", action="store_true", help="do not drop pores cut by the border")
    p.add_argument("-o", "--output", help="per-pore CSV")
    p.add_argument("--labels", help="write the pore label image (OME-TIFF) here")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_pores)
