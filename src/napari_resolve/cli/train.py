"""Commands that make models: ``train`` (on a registered pair or synthetic pairs) and ``stack``."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from napari_resolve.cli._common import (
    check_hres_voxel,
    check_output,
    log,
    read_input,
    registration_arg,
    roi_arg,
    voxel_arg,
)
from napari_resolve.errors import InputError, ResolveError
from napari_resolve.learn.config import DEFAULTS, LOSSES, TASKS, help_text, parse_model_config
from napari_resolve.learn.config import HELP as DEFAULT_HELP


class _RegisteredModels:
    """The model registry's names for ``--model``'s choices, read when first needed.

    The registry imports torch; building the parser (for every command) must not.
    """

    def _names(self) -> list[str]:
        from napari_resolve.models import model_names

        return model_names()

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _train_config(args: argparse.Namespace):
    """The TrainConfig of ``train`` (real or synthetic pairs) and the model to resume, if any."""
    from napari_resolve.learn.training import TrainConfig, check_training_data

    model = args.model
    resume = None
    if args.resume:
        from napari_resolve.models.checkpoint import load_checkpoint

        resume = load_checkpoint(args.resume, architecture=model)
        model = resume.architecture
    from napari_resolve.learn.config import SYNTHETIC_MODEL

    cfg = TrainConfig(
        model=model or (SYNTHETIC_MODEL if args.synthetic is not None else DEFAULTS.model),
        model_config=parse_model_config(args.model_config),
        iterations=args.iterations,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        patch_depth=args.patch_size,  # 3D networks train on cubes
        learning_rate=args.learning_rate,
        patience=args.patience,
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


def _inputs(args: argparse.Namespace, *paths) -> list:
    """The files a training reads (the model to resume included): the output may be none of them."""
    return [p for p in (*paths, args.resume) if p is not None]


def cmd_train(args: argparse.Namespace) -> dict:
    from napari_resolve.learn.training import iter_train, plan_train

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
    inputs = _inputs(args, args.lres, args.hres, args.registration)
    out = check_output(args.out_path, inputs, args.overwrite, parameter="out_path")
    reg = registration_arg(args.registration)
    lres = read_input(args.lres, voxel_arg(args.lres_voxel), "LRES")
    hres = read_input(args.hres, voxel_arg(args.hres_voxel), "HRES", need_voxel=False)
    check_hres_voxel(hres, reg, args.hres, override="--hres-voxel")
    if not np.allclose(lres.voxel_um, reg.lres_voxel_um, rtol=0.01):
        raise InputError(
            f"{args.lres} has voxels of {lres.voxel_um} um but the registration was made with "
            f"{reg.lres_voxel_um} um. Register again, or give --lres-voxel."
        )
    cfg, resume = _train_config(args)
    roi = roi_arg(args.roi, lres.ndim, "HRES voxels")
    plan = plan_train(
        np.asarray(lres.data), np.asarray(hres.data), lres.voxel_um, reg, cfg,
        roi=roi, resume=resume, out_path=out, overwrite=args.overwrite, inputs=inputs,
        extra={"lres": str(args.lres), "hres": str(args.hres), "registration": str(args.registration)},
    )
    return _drive_training(iter_train(plan), plan)


def _drive_training(job, plan) -> dict:
    """Run a training job with a status line; Ctrl-C keeps the best model. Returns the JSON result."""
    from napari_resolve.models.checkpoint import load_checkpoint

    cfg, out = plan.config, plan.out_path
    log(f"Training {cfg.model} for {cfg.iterations} iterations (Ctrl-C stops and keeps the best model so far)...")
    from napari_resolve.jobs import drain

    result, stopped, seen = None, False, []
    tty = sys.stderr.isatty()

    def show(record) -> None:
        seen[:] = [record]
        step = record.data
        text = f"[{record.step}/{record.total}] loss {step.loss:.4f}, {record.remaining_s:.0f} s left"
        if step.val_psnr is not None:
            text = f"[{record.step}/{record.total}] {record.message}, {record.remaining_s:.0f} s left"
        if tty:
            print(f"\r{text[:110]:<110}", end="" if step.val_psnr is None else "\n", file=sys.stderr, flush=True)
        elif step.val_psnr is not None:
            log(text)

    try:
        result = drain(job, show)
    except KeyboardInterrupt:
        job.close()  # the job keeps the best model (or the model so far) on disk
        stopped = True
    last = seen[0] if seen else None
    if result is not None:
        ckpt, seconds, device = result.checkpoint, result.seconds, result.device
        if result.early_stop:
            log(result.early_stop)
        maps = ckpt.extra.get("error_map") or {}
        if maps:
            log(f"Error maps calibrated on the validation block: the true |error| stayed below the 90 % map at "
                f"{maps['plain']['coverage']:.1%} of its held-out voxels ({maps['tta']['coverage']:.1%} with "
                + (f"--samples {maps['tta']['samples']}" if maps["tta"].get("samples") else "--tta") + ").")
    else:
        # Stopped: the file holds the best model, or the model trained before the first validation.
        ckpt = last.data.best if last is not None else None
        if ckpt is None and out.exists():
            ckpt = load_checkpoint(out)
        seconds = last.data.elapsed_s if last is not None else 0.0
        device = ckpt.extra.get("device", cfg.device) if ckpt is not None else cfg.device
        if ckpt is None:
            raise ResolveError("Training stopped before the first iteration finished; nothing was saved.")
        if ckpt.val_psnr is None:
            log(f"\nStopped before the first validation: the model trained so far (iteration {ckpt.iteration}, "
                f"not validated) is in {out}.")
        else:
            log(f"\nStopped. The best model so far (iteration {ckpt.iteration}) is in {out}.")
    return {
        "model": str(out),
        "architecture": ckpt.architecture,
        "config": ckpt.config,
        "best_iteration": ckpt.iteration,
        "iterations_run": last.step if last is not None else 0,
        "val_psnr_db": ckpt.val_psnr,
        "val_ssim": next((h.get("val_ssim") for h in reversed(ckpt.history)
                          if h.get("iteration") == ckpt.iteration and "val_ssim" in h), None),
        "validated": ckpt.val_psnr is not None,
        "seconds": round(seconds, 1),
        "device": device,
        "stopped": stopped,
        "stopped_early": bool(result is not None and result.early_stop),
        "error_map_validation_coverage": {k: round(v["coverage"], 4)
                                          for k, v in (ckpt.extra.get("error_map") or {}).items()} or None,
    }


def cmd_train_synthetic(args: argparse.Namespace) -> dict:
    """``train --synthetic HRES``: synthetic pairs from the HRES alone (no LRES scan)."""
    from napari_resolve.learn.synthetic import Degradation, parse_range
    from napari_resolve.learn.training import iter_train, plan_train_synthetic

    if args.lres is not None or args.registration is not None:
        raise InputError(
            "--synthetic HRES trains without an LRES scan: give no LRES/HRES files and no --registration "
            "(or drop --synthetic to train on the registered pair)."
        )
    inputs = _inputs(args, args.synthetic)
    out = check_output(args.out_path, inputs, args.overwrite, parameter="out_path")
    hres = read_input(args.synthetic, voxel_arg(args.hres_voxel), "HRES")
    ndim = hres.ndim
    if args.ratio is not None:
        ratio = voxel_arg(args.ratio)
    elif args.lres_voxel is not None:
        from napari_resolve._validate import voxel_tuple

        lv = voxel_tuple(voxel_arg(args.lres_voxel), ndim, "LRES voxel size")
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
    roi = roi_arg(args.roi, ndim, "HRES voxels")
    lres_um = deg.lres_voxel_um(hres.voxel_um)
    log(f"Synthetic pairs from {args.synthetic}: LRES voxels of {' x '.join(f'{v:g}' for v in lres_um)} um "
        f"(ratio {deg.ratio}), blur {deg.blur} LRES voxels, noise: Gaussian {deg.gaussian_noise}, "
        f"Poisson {deg.poisson} photons, speckle {deg.speckle}")
    plan = plan_train_synthetic(
        np.asarray(hres.data), hres.voxel_um, deg, cfg, roi=roi, resume=resume, out_path=out,
        overwrite=args.overwrite, extra={"hres": str(args.synthetic)}, inputs=inputs,
    )
    result = _drive_training(iter_train(plan), plan)
    return result | {"training_data": "synthetic", "lres_voxel_um": list(lres_um), "degradation": deg.to_dict()}


def cmd_stack(args: argparse.Namespace) -> dict:
    """``stack``: three separately trained stage models -> one multi-output model."""
    from napari_resolve.models.checkpoint import save_checkpoint
    from napari_resolve.models.multioutput import stack_stages

    out = check_output(args.out_path, [args.denoise, args.deblur, args.upscale], args.overwrite,
                       parameter="out_path")
    ckpt = stack_stages(args.denoise, args.deblur, args.upscale)
    save_checkpoint(ckpt, out, overwrite=args.overwrite)
    log(f"Wrote {out}: denoise -> deblur -> upscale in one model; train it further jointly with "
        f"napari-resolve train --synthetic HRES --resume {out} ...")
    return {"model": str(out), "architecture": ckpt.architecture, "config": ckpt.config,
            "stacked": ckpt.extra["stacked"]}


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a registered LRES/HRES pair (or on synthetic pairs from "
                       "an HRES alone: --synthetic); writes MODEL.pt")
    p.add_argument("lres", nargs="?", help="low-resolution scan (TIFF, OME-TIFF or zarr)")
    p.add_argument("hres", nargs="?", help="high-resolution scan of a sub-volume")
    p.add_argument("--registration", metavar="REG.json", help="from napari-resolve register -o (needed with LRES HRES)")
    p.add_argument("--roi", metavar="Z0:Z1,Y0:Y1,X0:X1", help="training region in HRES voxels (default: all)")
    p.add_argument("--model", default=None, choices=_RegisteredModels(), metavar="NAME",
                   help=f"{help_text('model')}: %(choices)s (multioutput: denoise, deblur and upscale outputs; "
                        "needs --synthetic)")
    p.add_argument("--model-option", dest="model_config", nargs="+", metavar="KEY=VALUE",
                   help=DEFAULT_HELP["model_config"])
    p.add_argument("--iterations", type=int, default=DEFAULTS.iterations, help=help_text("iterations"))
    p.add_argument("--patience", type=int, default=DEFAULTS.patience, metavar="N", help=help_text("patience"))
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help=help_text("batch_size"))
    p.add_argument("--patch-size", type=int, default=DEFAULTS.patch_size, help=help_text("patch_size"))
    p.add_argument("--lr", dest="learning_rate", metavar="LR", type=float, default=DEFAULTS.learning_rate,
                   help=f"{help_text('learning_rate')}, {DEFAULTS.schedule} schedule")
    p.add_argument("--loss", default=DEFAULTS.loss, choices=LOSSES, help=help_text("loss"))
    p.add_argument("--ssim-weight", type=float, default=DEFAULTS.ssim_weight, help=help_text("ssim_weight"))
    p.add_argument("--val-fraction", type=float, default=DEFAULTS.val_fraction, help=help_text("val_fraction"))
    p.add_argument("--device", default=DEFAULTS.device, help=DEFAULT_HELP["device"])
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help=help_text("seed"))
    p.add_argument("--resume", metavar="MODEL.pt", help="continue training this model for --iterations more")
    p.add_argument("--lres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("--hres-voxel", type=float, nargs="+", metavar="UM", help="override: 1 value or z y x")
    p.add_argument("-o", "--output", dest="out_path", required=True, metavar="MODEL.pt",
                   help="where to keep the best model")
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
    g.add_argument("--task", default=DEFAULTS.task, choices=tuple(TASKS),
                   help=f"{help_text('task')}, to combine with napari-resolve stack")
    g.add_argument("--stage-weight", type=float, default=DEFAULTS.stage_weight, metavar="W",
                   help=help_text("stage_weight"))
    p.set_defaults(func=cmd_train)


def add_stack(sub) -> None:
    p = sub.add_parser("stack", help="join three stage models (train --synthetic --task denoise/deblur/upscale) "
                       "into one multioutput model")
    p.add_argument("denoise", metavar="DENOISE.pt")
    p.add_argument("deblur", metavar="DEBLUR.pt")
    p.add_argument("upscale", metavar="UPSCALE.pt")
    p.add_argument("-o", "--output", dest="out_path", required=True, metavar="MODEL.pt")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_stack)
