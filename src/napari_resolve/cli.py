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
            quality_map = fn(p, r, data_range=result["data_range"])
            write_volume(out, quality_map, voxel, origin_um=ref.origin_um, overwrite=args.overwrite)
            log(f"Wrote the {name.replace('_', ' ')} to {out}")
            result[name] = str(out)
    return result


def cmd_resolution(args: argparse.Namespace) -> dict:
    from napari_resolve.quality import frc, gaussian_resolution

    plot = _check_output(args.plot, [args.test, args.ref], args.overwrite)
    voxel = _voxel_arg(args.voxel)
    test = _read(args.test, voxel, "TEST", need_voxel=False)
    ref = _read(args.ref, voxel, "REF", need_voxel=False)
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


def _registration_arg(path: str):
    from napari_resolve.registration import Registration

    reg = Registration.load(path)
    if not reg.ok:
        raise ResolveError(
            f"The registration in {path} is marked unreliable ({reg.message}); fix it before training or upscaling."
        )
    return reg


def _roi_arg(text: str | None, ndim: int, units: str):
    from napari_resolve.grid import parse_roi

    return None if text is None else parse_roi(text, ndim, units=units)


def _check_hres_voxel(hres, reg, path: str) -> None:
    """The HRES file's voxel size must be the one the registration used."""
    if hres.voxel_um is not None and not np.allclose(hres.voxel_um, reg.hres_voxel_um, rtol=0.01):
        from napari_resolve.errors import VoxelSizeError

        raise VoxelSizeError(
            f"{path} has voxels of {hres.voxel_um} um but the registration was made with "
            f"{reg.hres_voxel_um} um. Register this HRES again, or give --hres-voxel."
        )


def _model_options(pairs: Sequence[str] | None) -> dict:
    """--model-option width=32 depth=3 -> {"width": 32, "depth": 3}."""
    out: dict = {}
    for item in pairs or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--model-option takes KEY=VALUE, got {item!r} (e.g. width=32).")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a plain string, e.g. out=stack
    return out


def _train_config(args: argparse.Namespace):
    """The TrainConfig of ``train`` (real or synthetic pairs) and the model to resume, if any."""
    from napari_resolve.training import TrainConfig, check_training_data

    model = args.model
    resume = None
    if args.resume:
        from napari_resolve.models.checkpoint import load_checkpoint

        resume = load_checkpoint(args.resume, architecture=model)
        model = resume.architecture
    cfg = TrainConfig(
        model=model or "unet25d",
        model_config=_model_options(args.model_option),
        iterations=args.iterations,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        learning_rate=args.lr,
        loss=args.loss,
        ssim_weight=args.ssim_weight,
        seed=args.seed,
        device=args.device,
        val_fraction=args.val_fraction,
        task=args.task,
        stage_weight=args.stage_weight,
    )
    check_training_data(cfg, synthetic=args.synthetic is not None)  # before any file is read
    return cfg, resume


def cmd_train(args: argparse.Namespace) -> dict:
    from napari_resolve.training import iter_train

    if args.synthetic is not None:
        return cmd_train_synthetic(args)
    stray = [flag for flag, value in (("--ratio", args.ratio), ("--blur", args.blur),
                                      ("--gaussian-noise", args.gaussian_noise), ("--poisson", args.poisson),
                                      ("--speckle", args.speckle), ("--degradation-seed", args.degradation_seed))
             if value is not None]
    if stray:
        verb, them = ("applies", "it") if len(stray) == 1 else ("apply", "them")
        raise InputError(f"{', '.join(stray)} only {verb} to synthetic training: add --synthetic HRES, or drop {them}.")
    if args.lres is None or args.hres is None or args.registration is None:
        raise InputError(
            "train needs LRES HRES --registration REG.json (a registered pair), or --synthetic HRES with "
            "--ratio R to train on synthetic pairs made from the HRES alone."
        )
    out = _check_output(args.output, [args.lres, args.hres, args.registration], args.overwrite)
    reg = _registration_arg(args.registration)
    lres = _read(args.lres, _voxel_arg(args.lres_voxel), "LRES")
    hres = _read(args.hres, _voxel_arg(args.hres_voxel), "HRES", need_voxel=False)
    _check_hres_voxel(hres, reg, args.hres)
    if not np.allclose(lres.voxel_um, reg.lres_voxel_um, rtol=0.01):
        raise InputError(
            f"{args.lres} has voxels of {lres.voxel_um} um but the registration was made with "
            f"{reg.lres_voxel_um} um. Register again, or give --lres-voxel."
        )
    cfg, resume = _train_config(args)
    roi = _roi_arg(args.roi, lres.ndim, "HRES voxels")
    job = iter_train(
        np.asarray(lres.data), np.asarray(hres.data), lres.voxel_um, reg, cfg,
        roi=roi, resume=resume, out_path=out, overwrite=args.overwrite,
        extra={"lres": str(args.lres), "hres": str(args.hres), "registration": str(args.registration)},
    )
    return _drive_training(job, cfg, out, args.device)


def _drive_training(job, cfg, out: Path, device_arg: str) -> dict:
    """Run a training generator with a status line; Ctrl-C keeps the best model. Returns the JSON result."""
    log(f"Training {cfg.model} for {cfg.iterations} iterations (Ctrl-C stops and keeps the best model so far)...")
    result, stopped, last = None, False, None
    tty = sys.stderr.isatty()
    try:
        while True:
            try:
                last = next(job)
            except StopIteration as stop:
                result = stop.value
                break
            text = f"[{last.step}/{last.total}] loss {last.loss:.4f}, {last.remaining_s:.0f} s left"
            if last.val_psnr is not None:
                text = f"[{last.step}/{last.total}] {last.message}, {last.remaining_s:.0f} s left"
            if tty:
                print(f"\r{text[:110]:<110}", end="" if last.val_psnr is None else "\n", file=sys.stderr, flush=True)
            elif last.val_psnr is not None:
                log(text)
    except KeyboardInterrupt:
        job.close()  # keeps the best model on disk
        stopped = True
        log("\nStopped." + (f" The best model so far is in {out}." if out.exists() else " No model was saved yet."))
    if result is not None:
        ckpt, seconds, device = result.checkpoint, result.seconds, result.device
    else:
        ckpt = last.best if last is not None else None
        seconds = last.elapsed_s if last is not None else 0.0
        device = device_arg
    if ckpt is None:
        raise ResolveError("Training stopped before a model was validated; nothing was saved.")
    return {
        "model": str(out),
        "architecture": ckpt.architecture,
        "config": ckpt.config,
        "best_iteration": ckpt.iteration,
        "iterations_run": last.step if last is not None else 0,
        "val_psnr_db": ckpt.val_psnr,
        "val_ssim": next((h.get("val_ssim") for h in reversed(ckpt.history)
                          if h.get("iteration") == ckpt.iteration and "val_ssim" in h), None),
        "seconds": round(seconds, 1),
        "device": device,
        "stopped": stopped,
    }


def cmd_train_synthetic(args: argparse.Namespace) -> dict:
    """``train --synthetic HRES``: synthetic pairs from the HRES alone (no LRES scan)."""
    from napari_resolve.degradation import Degradation, parse_range
    from napari_resolve.training import iter_train_synthetic

    if args.lres is not None or args.registration is not None:
        raise InputError(
            "--synthetic HRES trains without an LRES scan: give no LRES/HRES files and no --registration "
            "(or drop --synthetic to train on the registered pair)."
        )
    out = _check_output(args.output, [args.synthetic], args.overwrite)
    hres = _read(args.synthetic, _voxel_arg(args.hres_voxel), "HRES")
    ndim = hres.ndim
    if args.ratio is not None:
        ratio = _voxel_arg(args.ratio)
    elif args.lres_voxel is not None:
        from napari_resolve._validate import voxel_tuple

        lv = voxel_tuple(_voxel_arg(args.lres_voxel), ndim, "LRES voxel size")
        ratio = tuple(a / b for a, b in zip(lv, hres.voxel_um))
    else:
        raise InputError(
            "Synthetic training needs the LRES the model is for: give --ratio R (LRES voxel / HRES voxel, "
            "e.g. 3) or --lres-voxel UM."
        )
    defaults = Degradation()
    deg = Degradation(
        ratio=ratio,
        blur=parse_range(args.blur, "--blur", per_axis=True) or defaults.blur,
        gaussian_noise=parse_range(args.gaussian_noise, "--gaussian-noise") or defaults.gaussian_noise,
        poisson=defaults.poisson if args.poisson is None else parse_range(args.poisson, "--poisson", allow_off=True),
        speckle=parse_range(args.speckle, "--speckle") or defaults.speckle,
        seed=args.seed if args.degradation_seed is None else args.degradation_seed,
    )
    deg.check(ndim)
    cfg, resume = _train_config(args)
    roi = _roi_arg(args.roi, ndim, "HRES voxels")
    lres_um = deg.lres_voxel_um(hres.voxel_um)
    log(f"Synthetic pairs from {args.synthetic}: LRES voxels of {' x '.join(f'{v:g}' for v in lres_um)} um "
        f"(ratio {deg.ratio}), blur {deg.blur} LRES voxels, noise: Gaussian {deg.gaussian_noise}, "
        f"Poisson {deg.poisson} photons, speckle {deg.speckle}")
    job = iter_train_synthetic(
        np.asarray(hres.data), hres.voxel_um, deg, cfg, roi=roi, resume=resume, out_path=out,
        overwrite=args.overwrite, extra={"hres": str(args.synthetic)},
    )
    result = _drive_training(job, cfg, out, args.device)
    return result | {"training_data": "synthetic", "lres_voxel_um": list(lres_um), "degradation": deg.to_dict()}


def cmd_stack(args: argparse.Namespace) -> dict:
    """``stack``: three separately trained stage models -> one multi-output model."""
    from napari_resolve.models.checkpoint import save_checkpoint
    from napari_resolve.models.multioutput import stack_stages

    out = _check_output(args.output, [args.denoise, args.deblur, args.upscale], args.overwrite)
    ckpt = stack_stages(args.denoise, args.deblur, args.upscale)
    save_checkpoint(ckpt, out, overwrite=args.overwrite)
    log(f"Wrote {out}: denoise -> deblur -> upscale in one model; train it further jointly with "
        f"napari-resolve train --synthetic HRES --resume {out} ...")
    return {"model": str(out), "architecture": ckpt.architecture, "config": ckpt.config,
            "stacked": ckpt.extra["stacked"]}


def cmd_predict(args: argparse.Namespace) -> dict:
    from napari_resolve.inference import iter_predict
    from napari_resolve.models.checkpoint import load_checkpoint

    out = _check_output(args.output, [args.model, args.lres], args.overwrite)
    ckpt = load_checkpoint(args.model)
    lres = _read(args.lres, _voxel_arg(args.lres_voxel), "LRES")
    roi = _roi_arg(args.roi, lres.ndim, "LRES voxels")
    log(f"Upscaling {args.lres} with {ckpt.architecture} (trained {ckpt.iteration} iterations) -> {out}")
    result = run_with_progress(
        iter_predict(
            ckpt, lres.data, lres.voxel_um, roi=roi, tile=args.tile, overlap=args.overlap,
            blend=args.blend, out_path=out, overwrite=args.overwrite, device=args.device,
        )
    )
    return result.summary()


def cmd_baseline(args: argparse.Namespace) -> dict:
    from napari_resolve.baselines import estimate_psf_sigma, interpolate, iter_baseline
    from napari_resolve.grid import Grid, check_roi, upscale_grid
    from napari_resolve.io import write_volume

    out = _check_output(args.output, [args.lres, args.registration] + ([args.hres] if args.hres else []),
                        args.overwrite)
    reg = _registration_arg(args.registration)
    lres = _read(args.lres, _voxel_arg(args.lres_voxel), "LRES")
    roi = check_roi(_roi_arg(args.roi, lres.ndim, "LRES voxels"), lres.shape, "the LRES (LRES voxels)")
    grid = upscale_grid(roi, lres.voxel_um, reg.scale, reg.offset_um)
    data = np.asarray(lres.data)
    sigma = None
    if args.method == "rl":
        if args.psf_sigma is not None:
            sigma = _voxel_arg(args.psf_sigma)
        elif args.hres:
            hres = _read(args.hres, None, "HRES", need_voxel=False)
            _check_hres_voxel(hres, reg, args.hres)
            hres_grid = Grid(hres.shape, reg.scale, reg.offset_um)
            log("Fitting the PSF on the registered pair...")
            fit = estimate_psf_sigma(interpolate(data, lres.voxel_um, hres_grid, "cubic"), np.asarray(hres.data),
                                     reg.scale)
            sigma = fit.sigma_um
            log(f"PSF sigma {fit.sigma_um:.3f} um (FWHM {fit.fwhm_um:.3f} um)")
        else:
            raise InputError("Richardson-Lucy needs the PSF: give --hres HRES (fitted on the registered pair) "
                             "or --psf-sigma UM.")
    result = run_with_progress(
        iter_baseline(data, lres.voxel_um, grid, args.method, psf_sigma_um=sigma, iterations=args.iterations)
    )
    write_volume(out, result.data, grid.voxel_um, origin_um=grid.origin_um, overwrite=args.overwrite)
    return {
        "output": str(out),
        "method": args.method,
        **grid.to_dict(),
        "psf_sigma_um": None if sigma is None else sigma,
        "iterations": result.iterations if args.method == "rl" else None,
        "seconds": round(result.seconds, 2),
    }


def cmd_evaluate(args: argparse.Namespace) -> dict:
    from napari_resolve.evaluate import iter_evaluate, summary_csv_path, write_csv

    out = _check_output(args.output, [args.model], args.overwrite)
    if out.suffix.lower() != ".csv":
        raise FileFormatError(f"{out.name}: the evaluation table must be a .csv file.")
    _check_output(summary_csv_path(out), [args.model], args.overwrite)
    job = iter_evaluate(
        args.model, args.pairs_dir, lres_voxel_um=_voxel_arg(args.lres_voxel),
        hres_voxel_um=_voxel_arg(args.hres_voxel), align=args.align, border=args.border,
        data_range=args.data_range, device=args.device, tile=args.tile,
    )
    log(f"Evaluating {args.model} against cubic interpolation on the pairs in {args.pairs_dir}...")
    result = run_with_progress(job)
    table, summary = write_csv(result, out, overwrite=args.overwrite)
    log(f"Wrote {table} and {summary}")
    return result.summary() | {"csv": str(table), "summary_csv": str(summary)}


def _float_arg(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{flag} must be 'otsu' or a number, got {text!r}.") from None


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


# --------------------------------------------------------------------------- parser


class UsageError(Exception):
    """A command line that argparse could not parse (unknown flag, bad choice, missing argument)."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse with our error style: one line and exit status 2, like every other bad input.

    argparse's own ``error`` prints the whole usage text and exits from deep inside
    ``parse_args``; here it raises, and :func:`main` prints one line that points to
    ``--help``. Sub-parsers are made by the same class (``add_subparsers`` uses it).
    """

    def error(self, message: str):
        raise UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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

    p = sub.add_parser("train", help="train a model on a registered LRES/HRES pair (or on synthetic pairs from "
                       "an HRES alone: --synthetic); writes MODEL.pt")
    p.add_argument("lres", nargs="?", help="low-resolution scan (TIFF, OME-TIFF or zarr)")
    p.add_argument("hres", nargs="?", help="high-resolution scan of a sub-volume")
    p.add_argument("--registration", metavar="REG.json", help="from napari-resolve register -o (needed with LRES HRES)")
    p.add_argument("--roi", metavar="Z0:Z1,Y0:Y1,X0:X1", help="training region in HRES voxels (default: all)")
    p.add_argument("--model", default=None,
                   help="architecture: unet25d (default), srcnn, srcnn3d, edsr, wdsr, dfcan or multioutput "
                        "(denoise, deblur and upscale outputs; needs --synthetic)")
    p.add_argument("--model-option", nargs="+", metavar="KEY=VALUE", help="architecture settings, e.g. width=32")
    p.add_argument("--iterations", type=int, default=1000, help="optimiser steps (default 1000)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=64, help="in-plane patch size, HRES voxels (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (default 1e-3, cosine decay)")
    p.add_argument("--loss", default="l1", choices=("l1", "mse", "l1+msssim", "mse+ssim"),
                   help="training loss (default l1; mse+ssim is DFCAN's)")
    p.add_argument("--ssim-weight", type=float, default=0.1, help="SSIM share of the mse+ssim loss (default 0.1)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of the ROI held out (default 0.2)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", metavar="MODEL.pt", help="continue training this model for --iterations more")
    p.add_argument("--lres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("--hres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.pt", help="where to keep the best model")
    p.add_argument("--overwrite", action="store_true")
    g = p.add_argument_group("training without an LRES scan (synthetic pairs: local mean, random blur and noise)")
    g.add_argument("--synthetic", metavar="HRES", help="train on synthetic pairs made from this HRES alone")
    g.add_argument("--ratio", type=float, nargs="+", metavar="R",
                   help="LRES voxel / HRES voxel: 1 value or z y x (or give --lres-voxel)")
    g.add_argument("--blur", metavar="LO:HI", help="Gaussian blur sigma range, LRES voxels, drawn per axis "
                   "(default 0:1; the paper's 0:2 for unknown blur; LO:HI,LO:HI,LO:HI per axis)")
    g.add_argument("--gaussian-noise", metavar="LO:HI",
                   help="additive noise sigma range, share of the HRES grey range (default 0:0.12)")
    g.add_argument("--poisson", metavar="LO:HI",
                   help="photons per unit intensity, drawn log-uniformly (default 100:10000; off: none)")
    g.add_argument("--speckle", metavar="LO:HI", help="multiplicative noise sigma range (default 0:0.05)")
    g.add_argument("--degradation-seed", type=int, default=None, metavar="N",
                   help="seed of the degradation (default --seed)")
    g.add_argument("--task", default="full", choices=("full", "denoise", "deblur", "upscale"),
                   help="what to learn: the whole job (default), or one stage of it, to combine with "
                        "napari-resolve stack")
    g.add_argument("--stage-weight", type=float, default=1.0, metavar="W",
                   help="multioutput: weight of the denoise and deblur outputs' L1 losses (default 1; 0 trains "
                        "the final output alone, which also works on a registered pair)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("stack", help="join three stage models (train --synthetic --task denoise/deblur/upscale) "
                       "into one multioutput model")
    p.add_argument("denoise", metavar="DENOISE.pt")
    p.add_argument("deblur", metavar="DEBLUR.pt")
    p.add_argument("upscale", metavar="UPSCALE.pt")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.pt")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_stack)

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

    p = sub.add_parser("evaluate", help="score a model against cubic interpolation on a folder of LRES/HRES pairs; "
                       "CSV per image, statistics per category")
    p.add_argument("model", metavar="MODEL.pt")
    p.add_argument("pairs_dir", metavar="PAIRS_DIR",
                   help="NAME_lres.tif + NAME_hres.tif, or lres/NAME.tif + hres/NAME.tif; sub-folders are categories")
    p.add_argument("-o", "--output", required=True, metavar="SCORES.csv",
                   help="per-image table; the summary goes to SCORES_summary.csv")
    p.add_argument("--align", default="auto", choices=("auto", "edge", "centre", "origins"),
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

    p = sub.add_parser("demo", help="run the workflow on a built-in foam phantom")
    p.add_argument("out_dir", nargs="?", default="napari-resolve-demo",
                   help="output folder (default ./napari-resolve-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="LRES voxels a side (default 64)")
    p.add_argument("--ratio", type=int, default=3)
    p.add_argument("--iterations", type=int, default=None,
                   help="training iterations (default 600: about 3 minutes on 2 CPU cores)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu or cuda")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"{exc.prog}: error: {exc} (see {exc.prog} --help)", file=sys.stderr)
        return 2
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
