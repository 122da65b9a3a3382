"""The ``napari-resolve`` command line: a thin layer over the core modules.

Every command prints one JSON object on stdout (logs go to stderr), so scripts
can parse the result. A :class:`ResolveError` is printed as a one-line message
and the command exits with status 2, without a traceback. Output files are
never written over an existing file unless ``--overwrite`` is given, and never
over an input file at all.

Heavy modules (torch, scikit-image) are imported inside the commands that need
them, so ``napari-resolve --help`` is quick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_resolve import __version__
from napari_resolve.errors import FileFormatError, InputError, ResolveError, ResolveWarning


def log(message: str) -> None:
    """Progress and information for the person at the terminal (stderr)."""
    print(message, file=sys.stderr, flush=True)


def run_with_progress(job):
    """Drain a core generator (records with step, total, message); return its result.

    On a terminal the records rewrite one status line; in a log (not a
    terminal) each new step is one line, so logs stay short.
    """
    tty = sys.stderr.isatty()
    last_step = None
    while True:
        try:
            rec = next(job)
        except StopIteration as stop:
            if tty:
                print(file=sys.stderr)
            return stop.value
        text = f"[{rec.step}/{rec.total}] {rec.message}"
        if tty:
            print(f"\r{text[:100]:<100}", end="", file=sys.stderr, flush=True)
        elif rec.step != last_step:
            log(text)
        last_step = rec.step


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our own warnings are notes for the user, not code locations."""
    if issubclass(category, ResolveWarning):
        log(f"note: {message}")
    else:
        _DEFAULT_SHOWWARNING(message, category, filename, lineno, file, line)


_DEFAULT_SHOWWARNING = warnings.showwarning


def emit(payload: dict) -> None:
    """The command's result: one strict JSON object on stdout.

    Non-finite numbers become ``null`` (e.g. the PSNR of identical images is
    infinite), because ``Infinity`` and ``NaN`` are not JSON and strict
    parsers reject them.
    """
    from napari_resolve.io import json_safe

    print(json.dumps(json_safe(payload), indent=2, allow_nan=False))


def _voxel_arg(values: Sequence[float] | None) -> tuple[float, ...] | float | None:
    """--voxel takes one value (isotropic) or three (z, y, x)."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _check_output(path: str | Path | None, inputs: Sequence[str | Path], overwrite: bool) -> Path | None:
    """Refuse to write over an input, over an existing file without --overwrite, or
    into a missing folder: checked before any work, so nothing is computed in vain."""
    if path is None:
        return None
    path = Path(path)
    for src in inputs:
        if Path(src).resolve() == path.resolve():
            raise FileFormatError(f"The output {path} is one of the inputs; choose another output name.")
    if path.exists() and not overwrite:
        raise FileFormatError(f"{path} already exists and was left untouched; choose another name or add --overwrite.")
    if not path.parent.is_dir():
        raise FileFormatError(f"The folder {path.parent} does not exist. Create it first.")
    return path


def _read(path: str, voxel, label: str, *, need_voxel: bool = True):
    from napari_resolve.io import read_volume

    vol = read_volume(path, voxel_um=voxel)
    if need_voxel and vol.voxel_um is None:
        flag = {"LRES": "--lres-voxel", "HRES": "--hres-voxel"}.get(label, "--voxel")
        raise InputError(
            f"The voxel size of {label} ({path}) is unknown: the file has no physical-size "
            f"metadata. Give it with {flag} UM (one value, or three for z y x)."
        )
    return vol


# --------------------------------------------------------------------------- commands


def cmd_phantom(args: argparse.Namespace) -> dict:
    from napari_resolve.phantom import write_phantom

    out = Path(args.out_dir)
    log(f"Making a foam phantom (seed {args.seed}, LRES {args.size} voxels a side, ratio {args.ratio})...")
    paths, meta = write_phantom(
        out,
        overwrite=args.overwrite,
        size=args.size,
        ratio=args.ratio,
        ndim=args.ndim,
        hres_voxel_um=args.hres_voxel,
        hres_size=args.hres_size,
        blur_um=args.blur,
        photons=args.photons,
        read_noise=args.read_noise,
        hres_photons=args.hres_photons,
        pore_radius_um=tuple(args.pore_radius),
        porosity=args.porosity,
        hres_gain=args.hres_gain,
        hres_offset=args.hres_offset,
        seed=args.seed,
    )
    log(f"Wrote {', '.join(p.name for p in paths.values())} to {out}")
    return {"out_dir": str(out), "files": {k: str(v) for k, v in paths.items()}, **meta}


def cmd_register(args: argparse.Namespace) -> dict:
    from napari_resolve.io import write_json
    from napari_resolve.registration import register

    out = _check_output(args.output, [args.lres, args.hres], args.overwrite)
    lres = _read(args.lres, _voxel_arg(args.lres_voxel), "LRES")
    hres = _read(args.hres, _voxel_arg(args.hres_voxel), "HRES")
    t0 = time.perf_counter()
    reg = register(
        np.asarray(lres.data),
        np.asarray(hres.data),
        lres.voxel_um,
        hres.voxel_um,
        init_offset_um=args.init_offset,
        search_radius_um=args.search_radius,
        refine_scale=args.refine_scale,
        min_ncc=args.min_ncc,
        progress=log,
    )
    result = reg.to_dict() | {"seconds": round(time.perf_counter() - t0, 2)}
    if not reg.ok:
        emit(result)
        raise ResolveError(f"Registration is not credible: {reg.message}")
    if out is not None:
        write_json(out, reg.to_dict(), overwrite=args.overwrite)
        log(f"Wrote {out}")
    return result


def cmd_quality(args: argparse.Namespace) -> dict:
    from napari_resolve.io import write_volume
    from napari_resolve.quality import compare, ms_ssim_map, ssim_map

    outs = [_check_output(p, [args.pred, args.ref], args.overwrite) for p in (args.map, args.ssim_map)]
    pred = _read(args.pred, None, "PRED", need_voxel=False)
    ref = _read(args.ref, None, "REF", need_voxel=False)
    if pred.voxel_um and ref.voxel_um and not np.allclose(pred.voxel_um, ref.voxel_um, rtol=1e-3):
        raise InputError(
            f"PRED has voxels of {pred.voxel_um} um but REF of {ref.voxel_um} um: they must be on "
            "the same grid to be compared voxel by voxel. Resample one onto the other first."
        )
    p, r = np.asarray(pred.data), np.asarray(ref.data)
    result = compare(p, r, data_range=args.data_range)
    voxel = ref.voxel_um or pred.voxel_um or 1.0
    for out, fn, name in zip(outs, (ms_ssim_map, ssim_map), ("ms_ssim_map", "ssim_map")):
        if out is not None:
            write_volume(out, fn(p, r, data_range=result["data_range"]), voxel, origin_um=ref.origin_um, overwrite=args.overwrite)
            log(f"Wrote the {name.replace('_', ' ')} to {out}")
            result[name] = str(out)
    return result


def cmd_pores(args: argparse.Namespace) -> dict:
    from napari_resolve.io import write_volume
    from napari_resolve.pores import iter_analyse_pores

    csv = _check_output(args.output, [args.image], args.overwrite)
    labels_out = _check_output(args.labels, [args.image], args.overwrite)
    vol = _read(args.image, _voxel_arg(args.voxel), "IMAGE")
    threshold = args.threshold if args.threshold == "otsu" else _float_arg(args.threshold, "--threshold")
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


def _float_arg(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{flag} must be 'otsu' or a number, got {text!r}.") from None


def cmd_demo(args: argparse.Namespace) -> None:
    from napari_resolve.demo import run_demo

    report = run_demo(Path(args.out_dir), seed=args.seed, size=args.size, ratio=args.ratio, log=log)
    # The demo is for a person: a table, not JSON (the JSON is in demo_report.json).
    print(report["table"])
    return None


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-resolve",
        description="Learned resolution recovery for 3D microscopy volumes. "
        "Lengths are in micrometres (um); arrays are (z, y, x).",
    )
    parser.add_argument("--version", action="version", version=f"napari-resolve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("phantom", help="write a synthetic foam phantom (LRES, HRES, truth)")
    p.add_argument("out_dir", help="folder for lres.tif, hres.tif, truth.tif, truth_labels.tif, meta.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="LRES voxels a side (default 64)")
    p.add_argument("--ratio", type=int, default=3, help="LRES/HRES voxel size ratio (default 3)")
    p.add_argument("--ndim", type=int, choices=(2, 3), default=3, help="3 (volume) or 2 (SEM-like section)")
    p.add_argument("--hres-voxel", type=float, default=1.0, help="HRES voxel size, um (default 1)")
    p.add_argument("--hres-size", type=int, default=None, help="HRES voxels a side (default 40%% of the field)")
    p.add_argument("--blur", type=float, default=None, help="LRES Gaussian PSF sigma, um (default 0.5 LRES voxel)")
    p.add_argument("--photons", type=float, default=400.0, help="LRES photons per unit intensity")
    p.add_argument("--read-noise", type=float, default=0.02, help="LRES read-noise sigma")
    p.add_argument("--hres-photons", type=float, default=200.0, help="HRES photons per unit intensity")
    p.add_argument("--pore-radius", type=float, nargs=2, default=(2.5, 10.0), metavar=("MIN", "MAX"),
                   help="pore radius range, um (default 2.5 10)")
    p.add_argument("--porosity", type=float, default=0.3, help="target porosity of the sample (default 0.3)")
    p.add_argument("--hres-gain", type=float, default=1.0, help="HRES contrast gain (another acquisition)")
    p.add_argument("--hres-offset", type=float, default=0.0, help="HRES contrast offset")
    p.add_argument("--overwrite", action="store_true", help="replace existing phantom files in OUT_DIR")
    p.set_defaults(func=cmd_phantom)

    p = sub.add_parser("register", help="locate HRES inside LRES; prints offset_um, scale, ncc, status")
    p.add_argument("lres", help="low-resolution scan of the whole field (TIFF, OME-TIFF or zarr)")
    p.add_argument("hres", help="high-resolution scan of a sub-volume (same formats)")
    p.add_argument("--lres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("--hres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("--init-offset", type=float, nargs="+", metavar="UM",
                   help="approximate HRES offset (um, LRES frame), e.g. from stage positions")
    p.add_argument("--search-radius", type=float, default=None, metavar="UM",
                   help="search this far around --init-offset (um)")
    p.add_argument("--refine-scale", action="store_true", help="also refine the HRES voxel size")
    p.add_argument("--min-ncc", type=float, default=0.5, help="least credible NCC (default 0.5)")
    p.add_argument("-o", "--output", help="write the registration JSON here")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("quality", help="MSE, PSNR, SSIM, MS-SSIM of PRED against REF (same shape)")
    p.add_argument("pred", help="the image to judge (e.g. an upscaled volume)")
    p.add_argument("ref", help="the reference on the same grid (e.g. HRES or truth)")
    p.add_argument("--map", help="write the full-size MS-SSIM map (OME-TIFF) here")
    p.add_argument("--ssim-map", help="write the full-size SSIM map here")
    p.add_argument("--data-range", type=float, default=None,
                   help="intensity range for SSIM/PSNR (default: max - min of REF)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_quality)

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

    p = sub.add_parser("demo", help="run the workflow on a built-in foam phantom")
    p.add_argument("out_dir", nargs="?", default="napari-resolve-demo",
                   help="output folder (default ./napari-resolve-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="LRES voxels a side (default 64)")
    p.add_argument("--ratio", type=int, default=3)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            warnings.simplefilter("once", ResolveWarning)
            result = args.func(args)
    except ResolveError as exc:
        print(f"napari-resolve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            f"napari-resolve {args.command}: error: not enough memory for this volume. "
            "Work on a smaller region or close other programs.",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:  # permission denied, disk full...: the system's words suffice
        print(f"napari-resolve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"napari-resolve {args.command}: stopped.", file=sys.stderr)
        return 130
    try:
        if result is not None:
            emit(result)
    except BrokenPipeError:  # e.g. piped into `head`: not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
