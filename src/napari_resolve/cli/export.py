"""The ``export`` command: a trained model as TorchScript (and ONNX) with a JSON sidecar, for other tools."""

from __future__ import annotations

import argparse

from napari_resolve.cli._common import check_output, log


def cmd_export(args: argparse.Namespace) -> dict:
    from napari_resolve.learn.export import export_model, sidecar_path

    # Outputs over the model, or existing ones without --overwrite, are refused before the model is read.
    out = check_output(args.out_path, [args.model], args.overwrite, parameter="out_path")
    check_output(sidecar_path(out), [args.model], args.overwrite, parameter="out_path")
    onnx = check_output(args.onnx_path, [args.model], args.overwrite, parameter="onnx_path")
    log(f"Exporting {args.model} -> {out} (TorchScript) and {sidecar_path(out)}"
        + ("" if onnx is None else f" and {onnx} (ONNX)") + ", checked against the model on an example input")
    return export_model(args.model, out, onnx_path=onnx, overwrite=args.overwrite).summary()


def add_export(sub) -> None:
    p = sub.add_parser(
        "export", help="write a model as TorchScript (and ONNX) with a JSON sidecar (input form, normalisation, "
                       "voxel sizes) for other tools; checked against the model")
    p.add_argument("model", metavar="MODEL.pt", help="a model written by napari-resolve train")
    p.add_argument("-o", "--output", dest="out_path", required=True, metavar="MODEL.torchscript.pt",
                   help="the TorchScript file (torch.jit.load reads it); the sidecar goes beside it as .json")
    p.add_argument("--onnx", dest="onnx_path", metavar="MODEL.onnx",
                   help="also write ONNX, where the onnx packages and the network's operators allow (otherwise "
                        "skipped with a note)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_export)
