"""The ``evaluate`` command: a model against cubic interpolation on a folder of pairs."""

from __future__ import annotations

import argparse

from napari_resolve.cli._common import log, run_with_progress, voxel_arg
from napari_resolve.evaluate.batch import ALIGNS


def cmd_evaluate(args: argparse.Namespace) -> dict:
    from napari_resolve.evaluate.batch import check_csv_outputs, iter_evaluate, plan_evaluate, write_csv

    # Both tables are checked before any work; the model and the pairs are inputs.
    check_csv_outputs(args.output, overwrite=args.overwrite, inputs=[args.model])
    plan = plan_evaluate(
        args.model, args.pairs_dir, lres_voxel_um=voxel_arg(args.lres_voxel),
        hres_voxel_um=voxel_arg(args.hres_voxel), align=args.align, border=args.border,
        data_range=args.data_range, device=args.device, tile=args.tile,
    )
    log(f"Evaluating {args.model} against cubic interpolation on the {len(plan.pairs)} pairs in "
        f"{args.pairs_dir}...")
    result = run_with_progress(iter_evaluate(plan))
    table, summary = write_csv(result, args.output, overwrite=args.overwrite)
    log(f"Wrote {table} and {summary}")
    return result.summary() | {"csv": str(table), "summary_csv": str(summary)}


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score a model against cubic interpolation on a folder of LRES/HRES pairs; "
                       "CSV per image, statistics per category")
    p.add_argument("model", metavar="MODEL.pt")
    p.add_argument("pairs_dir", metavar="PAIRS_DIR",
                   help="NAME_lres.tif + NAME_hres.tif, or lres/NAME.tif + hres/NAME.tif; sub-folders are categories")
    p.add_argument("-o", "--output", required=True, metavar="SCORES.csv",
                   help="per-image table; the summary goes to SCORES_summary.csv")
    p.add_argument("--align", default="auto", choices=ALIGNS,
                   help="HRES grid vs LRES: same corner of the field (edge, binning), voxel-0 centres together "
                        "(centre), or the files' origins; auto: the origins if the two files' differ, else edge")
    p.add_argument("--border", type=float, default=1.0, help="LRES voxels left out at every edge (default 1)")
    p.add_argument("--data-range", type=float, default=None,
                   help="intensity range for PSNR/SSIM, e.g. 255 (default: that of each HRES)")
    p.add_argument("--lres-voxel", type=float, nargs="+", metavar="UM",
                   help="override for every pair: 1 value or z y x (default: file, else the model's)")
    p.add_argument("--hres-voxel", type=float, nargs="+", metavar="UM",
                   help="override for every pair: 1 value or z y x (default: file, else the model's)")
    p.add_argument("--tile", type=int, default=None, help="tile size in output voxels (default 128)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_evaluate)
