"""Commands that make or place data: ``phantom``, ``register``, ``demo``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_resolve.cli._common import check_output, emit, log, read_input, voxel_arg
from napari_resolve.errors import ResolveError


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
        hres_modality=args.hres_modality,
        seed=args.seed,
    )
    log(f"Wrote {', '.join(p.name for p in paths.values())} to {out}")
    return {"out_dir": str(out), "files": {k: str(v) for k, v in paths.items()}, **meta}


def cmd_register(args: argparse.Namespace) -> dict:
    from napari_resolve.io import write_json
    from napari_resolve.registration import register

    out = check_output(args.output, [args.lres, args.hres], args.overwrite)
    lres = read_input(args.lres, voxel_arg(args.lres_voxel), "LRES")
    hres = read_input(args.hres, voxel_arg(args.hres_voxel), "HRES")
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


def cmd_demo(args: argparse.Namespace) -> None:
    from napari_resolve.demo import DEMO_ITERATIONS, run_demo

    report = run_demo(
        Path(args.out_dir),
        seed=args.seed,
        size=args.size,
        ratio=args.ratio,
        iterations=args.iterations or DEMO_ITERATIONS,
        device=args.device,
        log=log,
    )
    # The demo is for a person: a table, not JSON (the JSON is in demo_report.json).
    print(report["table"])
    return None


def add_phantom(sub) -> None:
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
    # No argparse choices: the names live in phantom.MODALITIES, which make_phantom checks (and scipy stays unloaded).
    p.add_argument("--hres-modality", default="ct", metavar="ct|sem",
                   help="the HRES instrument: ct (the LRES's contrast) or sem (an SEM image of the same structure: "
                        "other grey levels per phase, grain texture, bright edges, scan-line noise)")
    p.add_argument("--overwrite", action="store_true", help="replace existing phantom files in OUT_DIR")
    p.set_defaults(func=cmd_phantom)


def add_register(sub) -> None:
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


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the workflow on a built-in foam phantom")
    p.add_argument("out_dir", nargs="?", default="napari-resolve-demo",
                   help="output folder (default ./napari-resolve-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="LRES voxels a side (default 64)")
    p.add_argument("--ratio", type=int, default=3)
    from napari_resolve.demo import DEMO_DURATION, DEMO_ITERATIONS

    p.add_argument("--iterations", type=int, default=None,
                   help=f"training iterations (default {DEMO_ITERATIONS}; the whole demo takes {DEMO_DURATION})")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu or cuda")
    p.set_defaults(func=cmd_demo)
