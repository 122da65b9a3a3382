"""The ``pores`` command: one image's pores, or several inputs' side by side on their common box."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import numpy as np

from napari_resolve.cli._common import (
    check_output,
    float_arg,
    log,
    read_placed,
    registration_arg,
    run_with_progress,
    voxel_arg,
)
from napari_resolve.errors import InputError


def cmd_pores(args: argparse.Namespace) -> dict:
    if args.chunks is None:
        for given, name in ((args.overlap, "overlap_um"), (args.workers, "workers"),
                            (args.scheduler_address, "scheduler_address")):
            if given is not None:
                raise InputError(f"{{{name}}} applies to an analysis by chunks; give {{chunks}} too.",
                                 parameters=(name, "chunks"))
    elif len(args.image) != 1 or args.registration is not None:
        raise InputError("{chunks} measures one image by chunks; give one IMAGE and no {registration}.",
                         parameters=("chunks", "registration"))
    else:
        return _chunked(args)
    if args.registration is None:
        for given, name in ((args.registered, "registered"), (args.hres_voxel, "hres_voxel")):
            if given is not None:
                raise InputError(
                    f"{{{name}}} applies to the input placed by a registration; give {{registration}} too.",
                    parameters=(name, "registration"),
                )
        if len(args.image) == 1:
            return _one(args)
    return _several(args)


def _namer():
    """How this command names a core parameter (``sample_mask`` -> ``--sample-mask``)."""
    from napari_resolve.cli import build_parser, flag_namer

    return flag_namer(build_parser(), "pores")


def _log_warnings(name: str | None, result, name_of) -> None:
    """The result's cautions (e.g. a sample mask that left out most pores), as notes on stderr."""
    for warning in result.warnings:
        log(f"note: {name + ': ' if name else ''}{warning.render(name_of)}")


def _options(args: argparse.Namespace) -> dict:
    """The analysis options every input shares, as the core takes them."""
    if not args.min_diameter >= 0:
        raise InputError(f"{{min_diameter_um}} must be a length >= 0 in um, got {args.min_diameter:g}.",
                         parameters=("min_diameter_um",))
    return {
        "threshold": args.threshold if args.threshold == "otsu" else float_arg(args.threshold, "--threshold"),
        "pores_are": args.pores_are,
        "sample_mask": {"auto": "auto", "none": None, None: "auto"}[args.sample_mask],
        "edge_kill": not args.keep_edge_pores,
    }


def _one(args: argparse.Namespace) -> dict:
    """One image, whole: its summary, per-pore CSV and label image (the command's first form)."""
    from napari_resolve.io import write_volume
    from napari_resolve.pores.compare import min_volume_voxels
    from napari_resolve.pores.segment import iter_analyse_pores, plan_analyse_pores

    (image,) = args.image
    csv = check_output(args.output, [image], args.overwrite)
    labels_out = check_output(args.labels, [image], args.overwrite, parameter="labels")
    vol, _ = read_placed(image, voxel_arg(args.voxel), "IMAGE")
    options = _options(args)
    plan = plan_analyse_pores(np.asarray(vol.data), vol.voxel_um, **options,
                              min_volume_voxels=min_volume_voxels(args.min_diameter, vol.voxel_um))
    log(f"Segmenting pores in {image} (voxel {vol.voxel_um} um, threshold {options['threshold']})...")
    res = run_with_progress(iter_analyse_pores(plan))
    summary = _one_image_summary(res, csv)
    if labels_out is not None:
        write_volume(labels_out, res.labels, vol.voxel_um, origin_um=vol.origin_um, overwrite=args.overwrite)
        summary["labels"] = str(labels_out)
    return summary


def _one_image_summary(res, csv) -> dict:
    """One image's JSON: its summary, its warnings (also on stderr) and its per-pore CSV when asked for."""
    summary = res.summary()
    name_of = _namer()
    summary["warnings"] = [w.render(name_of) for w in res.warnings]
    _log_warnings(None, res, name_of)
    if csv is not None:
        res.to_csv(csv)  # overwrite was checked before any work
        summary["csv"] = str(csv)
    return summary


def _chunked(args: argparse.Namespace) -> dict:
    """One image by chunks with an overlap, on dask (:mod:`napari_resolve.pores.chunked`): no label image."""
    from napari_resolve.pores.chunked import iter_chunked_pores, plan_chunked_pores

    (image,) = args.image
    if args.labels is not None:
        raise InputError("An analysis by chunks ({chunks}) keeps no label image ({labels}); leave one of them out.",
                         parameters=("chunks", "labels"))
    if args.workers is not None and args.scheduler_address is not None:
        raise InputError("Give {workers} (a local cluster) or {scheduler_address} (a running one), not both.",
                         parameters=("workers", "scheduler_address"))
    if args.workers is not None and args.workers < 1:
        raise InputError(f"{{workers}} must be 1 or more, got {args.workers}.", parameters=("workers",))
    csv = check_output(args.output, [image], args.overwrite)
    vol, _ = read_placed(image, voxel_arg(args.voxel), "IMAGE")  # zarr stays lazy; a TIFF is read whole
    options = _options(args)
    with _cluster(args) as client:
        plan = plan_chunked_pores(
            vol.data, vol.voxel_um, chunks=args.chunks, overlap_um=voxel_arg(args.overlap),
            threshold=options["threshold"], pores_are=args.pores_are, sample_mask=args.sample_mask or "none",
            keep_edge_pores=args.keep_edge_pores, min_diameter_um=args.min_diameter, client=client)
        log(f"Segmenting pores in {image} by {len(plan.cores())} chunks of {plan.chunk_shape} voxels, overlap "
            f"{plan.overlap_um} um (voxel {vol.voxel_um} um, threshold {options['threshold']})...")
        res = run_with_progress(iter_chunked_pores(plan))
    return _one_image_summary(res, csv)


@contextlib.contextmanager
def _cluster(args: argparse.Namespace):
    """None (dask's threads), a local cluster of ``--workers`` processes, or the one at ``--scheduler``."""
    if args.workers is None and args.scheduler_address is None:
        yield None
        return
    from napari_resolve.jobs import dask_client

    with dask_client(args.workers, args.scheduler_address, scheduler_parameter="scheduler_address") as client:
        yield client


def input_names(paths) -> list[str]:
    """Short distinct names for the input files: the file name less its image suffixes."""
    names: list[str] = []
    for path in paths:
        name = Path(path).name
        for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".zarr"):
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
        base, n = name, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def labels_paths(path, names) -> dict[str, Path]:
    """One label image per input next to ``path``: ``LABELS.tif`` -> ``LABELS_<name>.tif``."""
    from napari_resolve.pores.compare import sanitise

    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.name.lower().endswith(".ome.tif") else path.suffix
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    out: dict[str, Path] = {}
    for name in names:
        candidate, n = f"{stem}_{sanitise(name)}{suffix}", 2
        while path.with_name(candidate) in out.values():
            candidate, n = f"{stem}_{sanitise(name)}_{n}{suffix}", n + 1
        out[name] = path.with_name(candidate)
    return out


def _several(args: argparse.Namespace) -> dict:
    """Several inputs (or one placed by a registration), measured side by side."""
    from napari_resolve.io import write_volume
    from napari_resolve.pores.compare import PoreInput, iter_compare_pores, plan_compare_pores, write_csv

    images = list(args.image)
    registration = None
    placed = None
    if args.registration is not None:
        if len(images) < 2:
            raise InputError(
                "{registration} places the HRES among the inputs to compare; give the LRES (and any other "
                "input) too, or leave it out to measure one image.",
                parameters=("registration",),
            )
        count = len(images)
        placed = count if args.registered is None else args.registered
        if not 1 <= placed <= count:
            raise InputError(
                f"{{registered}} is the position of the HRES among the {count} inputs, 1 to {count}; got {placed}.",
                parameters=("registered",),
            )
        registration = registration_arg(args.registration)
    sources = images + ([args.registration] if args.registration else [])
    names = input_names(images)
    csv = check_output(args.output, sources, args.overwrite)
    labels = {} if args.labels is None else labels_paths(args.labels, names)
    for path in labels.values():
        check_output(path, sources, args.overwrite, parameter="labels")

    inputs, files = [], {}
    for i, (path, name) in enumerate(zip(images, names), start=1):
        if i == placed:
            vol, (_, scale, translate) = read_placed(path, voxel_arg(args.hres_voxel), "HRES", registration,
                                                       override="--hres-voxel")
        else:
            vol, (_, scale, translate) = read_placed(path, voxel_arg(args.voxel), "IMAGE")
        inputs.append(PoreInput(name, vol.data, scale, translate))
        files[name] = str(path)
    plan = plan_compare_pores(inputs, region=args.region, min_diameter_um=args.min_diameter, **_options(args))
    where = "whole inputs" if plan.region is None else "their common box"
    log(f"Measuring pores in {', '.join(names)} on {where}...")
    result = run_with_progress(iter_compare_pores(plan))

    name_of = _namer()
    for m in result.measured:
        _log_warnings(m.name, m.result, name_of)
    payload = result.to_dict(name_of)
    for row in payload["inputs"]:
        row["file"] = files[row["name"]]
    payload["registered"] = None if placed is None else names[placed - 1]
    if csv is not None:
        rows = [{"name": r["name"], "file": files[r["name"]], **r} for r in result.rows()]
        payload["csv"] = str(write_csv(csv, rows, overwrite=args.overwrite, inputs=sources))
    if labels:
        for m in result.measured:
            write_volume(labels[m.name], m.result.labels, m.voxel_um, origin_um=m.origin_um,
                         overwrite=args.overwrite)
        payload["labels"] = {name: str(p) for name, p in labels.items()}
    return payload


def add_pores(sub) -> None:
    p = sub.add_parser(
        "pores",
        help="segment pores; one image: porosity, count, mean diameter, sphericity; several: side by side on "
        "their common box",
        description="Segment and measure pores. With one IMAGE: its porosity, pore count, sizes and sphericity. "
        "With several (e.g. the LRES, an upscaled result and the HRES placed by --registration), every input is "
        "measured on the box (um, LRES frame) where all of them overlap, one row per input.",
    )
    p.add_argument("image", nargs="+", help="grey-value images or volumes (TIFF, OME-TIFF or zarr)")
    p.add_argument("--registration", metavar="REG.json",
                   help="places one input (the HRES, see --registered) in the LRES frame; the others lie on the "
                   "LRES grid by their own origin and voxel size")
    p.add_argument("--registered", type=int, metavar="N",
                   help="position (1 = first) of the input the registration places (default: the last)")
    p.add_argument("--region", choices=("common", "whole"), default="common",
                   help="common (default): every input cropped to the box where all overlap; whole: each over its "
                   "own extent")
    p.add_argument("--voxel", type=float, nargs="+", metavar="UM",
                   help="override for the inputs not placed by the registration: 1 value or z y x")
    p.add_argument("--hres-voxel", type=float, nargs="+", metavar="UM",
                   help="the registered HRES's voxel size where its file lacks it: 1 value or z y x")
    p.add_argument("--threshold", default="otsu", help="'otsu' (default, per input) or a grey value")
    p.add_argument("--pores-are", choices=("dark", "bright"), default="dark")
    p.add_argument("--sample-mask", choices=("auto", "none"), default=None,
                   help="auto (default; with --chunks: none): the sample is found (air outside excluded; the result "
                   "warns when the mask leaves out most of the pore phase, e.g. a pore network touching the "
                   "border); none: the whole field")
    p.add_argument("--keep-edge-pores", action="store_true", help="do not drop pores cut by the border")
    p.add_argument("--min-diameter", type=float, default=0.0, metavar="UM",
                   help="pore objects of a smaller equivalent diameter are noise (default 0: under 8 voxels)")
    p.add_argument("-o", "--output", metavar="PORES.csv",
                   help="one image: its per-pore CSV; several: one row per input, side by side")
    p.add_argument("--labels", metavar="LABELS.tif",
                   help="write the pore label image (OME-TIFF) here; several inputs: LABELS_<name>.tif each")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--chunks", type=int, metavar="N",
                   help="one image larger than memory: measure it by chunks of N voxels a side with an overlap, on "
                   "dask (a zarr input is read chunk by chunk); a pore is counted by the chunk holding its first "
                   "voxel, and measured whole when it fits in the overlap (else warned); no --labels")
    p.add_argument("--overlap", type=float, nargs="+", metavar="UM",
                   help="with --chunks: the halo around each chunk, um (1 value or z y x); more than the largest "
                   "pore (default: a quarter of the chunk)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --chunks: a local dask cluster of N processes (default: threads in this process)")
    p.add_argument("--scheduler", dest="scheduler_address", metavar="ADDR",
                   help="with --chunks: a running dask scheduler, e.g. tcp://host:8786")
    p.set_defaults(func=cmd_pores)
