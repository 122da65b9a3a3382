"""Commands that measure a result: ``quality``, ``resolution``, and the classical ``baseline``."""

from __future__ import annotations

import argparse

import numpy as np

from napari_resolve.cli._common import (
    check_hres_voxel,
    check_output,
    log,
    read_input,
    registration_arg,
    roi_arg,
    run_with_progress,
    voxel_arg,
)
from napari_resolve.errors import InputError


def cmd_quality(args: argparse.Namespace) -> dict:
    inputs = [args.pred, args.ref] + ([args.registration] if args.registration else [])
    outs = {name: check_output(path, inputs, args.overwrite, parameter=name)
            for name, path in (("map", args.map), ("ssim_map", args.ssim_map))}
    if args.registration:
        return _quality_registered(args, outs)
    if args.error_map:
        raise InputError("--error-map compares the map with the true error on the HRES overlap: give the "
                         "HRES's --registration too.")
    from napari_resolve.io import write_volume
    from napari_resolve.measure.similarity import compare, ms_ssim_map, ssim_map

    pred = read_input(args.pred, None, "PRED", need_voxel=False)
    ref = read_input(args.ref, None, "REF", need_voxel=False)
    if pred.voxel_um and ref.voxel_um and not np.allclose(pred.voxel_um, ref.voxel_um, rtol=1e-3):
        raise InputError(
            f"PRED has voxels of {pred.voxel_um} um but REF of {ref.voxel_um} um: they must be on "
            "the same grid to be compared voxel by voxel. Give the HRES's {registration} to compare them "
            "where they overlap, or resample one onto the other first.",
            parameters=("registration",),
        )
    if tuple(pred.shape) != tuple(ref.shape):
        raise InputError(
            f"PRED has shape {tuple(pred.shape)} but REF {tuple(ref.shape)}: they are not on the same grid, so they "
            "cannot be compared voxel by voxel. Give the HRES's {registration} to compare them where they "
            "overlap, or crop one onto the other first.",
            parameters=("registration",),
        )
    if not np.allclose(pred.origin_um, ref.origin_um, atol=1e-3):
        log(f"note: PRED and REF have different origins ({pred.origin_um} and {ref.origin_um} um); they are "
            "compared voxel by voxel as they are (give --registration to place the HRES by its registration).")
    p, r = np.asarray(pred.data), np.asarray(ref.data)
    result = compare(p, r, data_range=args.data_range)
    voxel = ref.voxel_um or pred.voxel_um or 1.0
    for (name, out), fn in zip(outs.items(), (ms_ssim_map, ssim_map)):
        if out is not None:
            quality_map = fn(p, r, data_range=result["data_range"])
            write_volume(out, quality_map, voxel, origin_um=ref.origin_um, overwrite=args.overwrite)
            log(f"Wrote the {'MS-SSIM' if name == 'map' else 'SSIM'} map to {out}")
            result["ms_ssim_map" if name == "map" else "ssim_map"] = str(out)
    return result


def _quality_registered(args: argparse.Namespace, outs: dict) -> dict:
    """PRED on its own grid (voxel size and origin from its file), REF placed by the registration."""
    from napari_resolve.io import write_volume
    from napari_resolve.measure.compare import UPSCALED, iter_quality, plan_quality

    reg = registration_arg(args.registration)
    pred = read_input(args.pred, None, "PRED", need_voxel=False)
    if pred.voxel_um is None:
        raise InputError(
            f"The voxel size of {args.pred} is unknown (the file has no physical-size metadata), so it cannot be "
            "placed over the registered HRES. Compare the output of `napari-resolve predict` or `baseline`, "
            "which records its voxel size and origin."
        )
    ref = read_input(args.ref, None, "REF", need_voxel=False)
    check_hres_voxel(ref, reg, args.ref)
    if len(reg.offset_um) != ref.ndim:
        raise InputError(f"{args.ref} is {ref.ndim}D but the registration places a {len(reg.offset_um)}D HRES; "
                         "give the HRES that was registered.")
    placed = reg.layer_kwargs()
    error_map = None if args.error_map is None else read_input(args.error_map, None, "error map", need_voxel=False)
    if error_map is not None and (error_map.voxel_um is None or not np.allclose(error_map.voxel_um, pred.voxel_um)
                                  or not np.allclose(error_map.origin_um, pred.origin_um, atol=1e-3)):
        raise InputError(f"{args.error_map} is not on the grid of {args.pred}: give the --error-map that "
                         "`predict --uncertainty` wrote with it.")
    plan = plan_quality(pred.data, pred.voxel_um, pred.origin_um, ref.data, placed["scale"], placed["translate"],
                        data_range=args.data_range, with_ssim_map=outs["ssim_map"] is not None,
                        error_map=None if error_map is None else error_map.data)
    res = run_with_progress(iter_quality(plan))
    summary = res.to_dict()
    metrics = summary.pop("metrics")[UPSCALED]
    result = {"pred": str(args.pred), "ref": str(args.ref), "registration": str(args.registration), **metrics,
              **summary}
    result["resolution"] = result["resolution"].get(UPSCALED)
    del result["psf_sigma_um"]  # no baselines here (they need the LRES): the Quality step's RL PSF
    ov = res.overlap
    for name, data in (("map", res.ms_ssim_map), ("ssim_map", res.ssim_map)):
        if outs[name] is not None:
            write_volume(outs[name], data, ov.voxel_um, origin_um=ov.origin_um, overwrite=args.overwrite)
            log(f"Wrote the {'MS-SSIM' if name == 'map' else 'SSIM'} map of the overlap to {outs[name]}")
            result["ms_ssim_map" if name == "map" else "ssim_map"] = str(outs[name])
    return result


def cmd_resolution(args: argparse.Namespace) -> dict:
    from napari_resolve.measure.similarity import frc, gaussian_resolution

    plot = check_output(args.plot, [args.test, args.ref], args.overwrite)
    voxel = voxel_arg(args.voxel)
    test = read_input(args.test, voxel, "TEST", need_voxel=False)
    ref = read_input(args.ref, voxel, "REF", need_voxel=False)
    if test.voxel_um and ref.voxel_um and not np.allclose(test.voxel_um, ref.voxel_um, rtol=1e-3):
        raise InputError(
            f"TEST has voxels of {test.voxel_um} um but REF of {ref.voxel_um} um: they must be on the "
            "same grid to be compared voxel by voxel. Resample one onto the other first, or give --voxel."
        )
    voxel_um = ref.voxel_um or test.voxel_um
    if voxel_um is None:
        raise InputError(
            "The voxel size is unknown (neither file has physical-size metadata) and resolution is "
            "reported in um. Give it with --voxel UM (one value, or three for z y x)."
        )
    t, r = np.asarray(test.data), np.asarray(ref.data)
    result: dict = {"test": str(args.test), "ref": str(args.ref), "voxel_um": list(voxel_um), "shape": list(t.shape)}
    fit = curve = None
    if args.method in ("gaussian", "both"):
        if args.max_sigma is not None and not args.max_sigma > 0:
            raise InputError(f"--max-sigma must be a positive length in um, got {args.max_sigma}.")
        sigmas = None if args.max_sigma is None else np.linspace(0.0, args.max_sigma, 17)
        log("Gaussian fit: blurring REF until it best matches TEST...")
        fit = gaussian_resolution(t, r, voxel_um, sigmas_um=sigmas, fit_contrast=not args.plain_mse,
                                  per_axis=args.per_axis)
        result["gaussian"] = fit.to_dict(curves=args.curves)
    if args.method in ("frc", "both"):
        log("Fourier ring/shell correlation...")
        curve = frc(t, r, voxel_um)
        result["frc"] = curve.to_dict(curves=args.curves)
    if plot is not None:
        from matplotlib.figure import Figure

        from napari_resolve.io import atomic_path

        parts = [x for x in (fit, curve) if x is not None]
        fig = Figure(figsize=(5 * len(parts), 4), layout="constrained")
        for ax, part in zip(np.atleast_1d(fig.subplots(1, len(parts))), parts):
            part.plot(ax)
            if part is curve:
                ax.legend(fontsize=8)
        with atomic_path(plot, overwrite=args.overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        log(f"Wrote the curves to {plot}")
        result["plot"] = str(plot)
    return result


def cmd_baseline(args: argparse.Namespace) -> dict:
    from napari_resolve.geometry.grid import Grid, check_roi, upscale_grid
    from napari_resolve.io import write_volume
    from napari_resolve.measure.baselines import estimate_psf_sigma, interpolate, iter_baseline, plan_baseline

    out = check_output(args.output, [args.lres, args.registration] + ([args.hres] if args.hres else []),
                        args.overwrite)
    reg = registration_arg(args.registration)
    lres = read_input(args.lres, voxel_arg(args.lres_voxel), "LRES")
    roi = check_roi(roi_arg(args.roi, lres.ndim, "LRES voxels"), lres.shape, "the LRES (LRES voxels)")
    grid = upscale_grid(roi, lres.voxel_um, reg.scale, reg.offset_um)
    data = np.asarray(lres.data)
    sigma = None
    if args.method == "rl":
        if args.psf_sigma is not None:
            sigma = voxel_arg(args.psf_sigma)
        elif args.hres:
            hres = read_input(args.hres, None, "HRES", need_voxel=False)
            check_hres_voxel(hres, reg, args.hres)
            hres_grid = Grid(hres.shape, reg.scale, reg.offset_um)
            log("Fitting the PSF on the registered pair...")
            fit = estimate_psf_sigma(interpolate(data, lres.voxel_um, hres_grid, "cubic"), np.asarray(hres.data),
                                     reg.scale)
            sigma = fit.sigma_um
            log(f"PSF sigma {fit.sigma_um:.3f} um (FWHM {fit.fwhm_um:.3f} um)")
        else:
            raise InputError("Richardson-Lucy needs the PSF: give --hres HRES (fitted on the registered pair) "
                             "or --psf-sigma UM.")
    plan = plan_baseline(data, lres.voxel_um, grid, args.method, psf_sigma_um=sigma, iterations=args.iterations)
    result = run_with_progress(iter_baseline(plan))
    write_volume(out, result.data, grid.voxel_um, origin_um=grid.origin_um, overwrite=args.overwrite)
    return {
        "output": str(out),
        "method": args.method,
        **grid.to_dict(),
        "psf_sigma_um": None if sigma is None else sigma,
        "iterations": result.iterations if args.method == "rl" else None,
        "seconds": round(result.seconds, 2),
    }


def add_quality(sub) -> None:
    p = sub.add_parser("quality", help="MSE, PSNR, SSIM, MS-SSIM of PRED against REF (same grid, or placed by "
                                       "--registration and compared on their overlap)")
    p.add_argument("pred", help="the image to judge (e.g. an upscaled volume from predict: its voxel size and "
                                "origin place it)")
    p.add_argument("ref", help="the reference: on the same grid (e.g. truth), or the HRES placed by --registration")
    p.add_argument("--registration", metavar="REG.json",
                   help="place REF (the HRES) by this registration and measure where PRED overlaps it (um)")
    p.add_argument("--map", help="write the MS-SSIM map (OME-TIFF) here (on the overlap with --registration)")
    p.add_argument("--ssim-map", help="write the SSIM map here")
    p.add_argument("--error-map", metavar="UNC.tif|UNC.zarr",
                   help="with --registration: the error map `predict --uncertainty` wrote with PRED; reports its "
                        "coverage and rank correlation with the true error on the overlap")
    p.add_argument("--data-range", type=float, default=None,
                   help="intensity range for SSIM/PSNR (default: max - min of REF)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_quality)


def add_resolution(sub) -> None:
    p = sub.add_parser("resolution", help="effective resolution of TEST against REF (Gaussian-fit FWHM, FRC/FSC), um")
    p.add_argument("test", help="the image to judge (e.g. an upscaled volume)")
    p.add_argument("ref", help="the sharper reference on the same grid (e.g. HRES or truth)")
    p.add_argument("--voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("--method", choices=("gaussian", "frc", "both"), default="both",
                   help="Gaussian fit (FWHM), Fourier ring/shell correlation, or both (default)")
    p.add_argument("--max-sigma", type=float, default=None, metavar="UM",
                   help="widest Gaussian sigma searched, um (default 8 voxels)")
    p.add_argument("--plain-mse", action="store_true",
                   help="compare grey values as they are (default: fit gain and offset at every sigma)")
    p.add_argument("--per-axis", action="store_true", help="also fit one Gaussian sigma per axis")
    p.add_argument("--curves", action="store_true", help="include the MSE and FRC curves in the JSON")
    p.add_argument("--plot", metavar="OUT.png", help="draw the curves into this PNG")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_resolution)


def add_baseline(sub) -> None:
    p = sub.add_parser("baseline", help="classical upscaling of an LRES region: linear, cubic or Richardson-Lucy")
    p.add_argument("lres", help="low-resolution scan")
    p.add_argument("--registration", required=True, metavar="REG.json",
                   help="gives the HRES voxel size and grid phase")
    p.add_argument("--method", required=True, choices=("linear", "cubic", "rl"))
    p.add_argument("--roi", metavar="Z0:Z1,Y0:Y1,X0:X1", help="region in LRES voxels (default: all)")
    p.add_argument("--hres", help="registered HRES scan, to fit the PSF for rl")
    p.add_argument("--psf-sigma", type=float, nargs="+", metavar="UM", help="PSF sigma for rl, um (1 or z y x)")
    p.add_argument("--iterations", type=int, default=10, help="Richardson-Lucy iterations (default 10)")
    p.add_argument("--lres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("-o", "--output", required=True, metavar="OUT.tif|OUT.zarr")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_baseline)
