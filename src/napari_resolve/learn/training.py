"""Training a network: one loop fed by two plans.

- :func:`plan_train` plans training on a registered LRES/HRES pair;
  :func:`plan_train_synthetic` on synthetic pairs made from an HRES alone (no
  LRES scan). Both check everything on the caller's thread (settings, data,
  ROI, registration, the model to resume, the device, the output file), build
  the training pair and return a :class:`TrainPlan`.
- :func:`iter_train` (``iter_train(plan)``) runs either plan: it yields a
  :class:`napari_resolve.jobs.Progress` record after every iteration, with a
  :class:`TrainStep` as ``data`` (loss, learning rate; validation PSNR/SSIM, a
  preview slice and the best model so far at validation points), and returns
  a :class:`TrainResult`. :func:`run_train` / :func:`run_train_synthetic` plan
  and drain.

Stopping is closing the generator (napari's ``worker.quit()``) or Ctrl-C: the
best weights so far are in the last record (``data.best``) and, when
``out_path`` is given, on disk. The file is written atomically
(:func:`napari_resolve.io.atomic_path`) at every new best, so it is always a
complete, usable model; a stop before the first validation writes the model
trained so far (``val_psnr`` None).

Reproducible on the CPU: the seed fixes the weights' initialisation and every
patch and augmentation choice (``torch.manual_seed`` + a numpy ``Generator``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_resolve._text import format_um
from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import InputError
from napari_resolve.jobs import Progress, drain
from napari_resolve.learn.config import (  # noqa: F401 - SCHEDULES lived here
    EARLY_STOP_MIN_DB,
    SCHEDULES,
    VALIDATIONS_PER_RUN,
    TrainConfig,
)
from napari_resolve.learn.train_checks import check_training_data, registration_parts, synthetic_model
from napari_resolve.learn.train_step import (  # noqa: F401 - predict_block and _multiscale_loss lived here
    _multiscale_loss,
    _stage_losses,
    cpu_copy,
    make_optimiser,
    predict_block,
    train_step,
    validate,
)
from napari_resolve.models.checkpoint import Checkpoint


@dataclass(frozen=True)
class TrainStep:
    """What one training iteration reports (``Progress.data`` of :func:`iter_train`).

    Attributes
    ----------
    iteration : int
        The model's iteration count after this step (a resumed model continues its own).
    loss : float
        Training loss of the final output (normalised units).
    lr : float
        Learning rate used.
    elapsed_s : float
        Seconds since the job started.
    losses : dict
        The other loss terms of this step (``loss_total``, ``loss_denoise``, ...), if any.
    val_psnr, val_ssim : float or None
        Validation scores (dB; normalised HRES units, range 1) when validated now.
    best_psnr : float or None
        Best validation PSNR so far.
    preview : ndarray or None
        At validation points: the centre slice of the validation block's
        prediction, in HRES grey values.
    best : Checkpoint or None
        The best model so far (shared, not copied).
    """

    iteration: int
    loss: float
    lr: float
    elapsed_s: float
    losses: dict[str, float] = dataclasses.field(default_factory=dict)
    val_psnr: float | None = None
    val_ssim: float | None = None
    best_psnr: float | None = None
    preview: np.ndarray | None = None
    best: Checkpoint | None = None


@dataclass
class TrainResult:
    """What a finished training gives back."""

    checkpoint: Checkpoint
    model: Any
    history: list[dict[str, Any]]
    seconds: float
    device: str
    stopped: bool = False
    path: Path | None = None
    #: Why training ended before its last iteration (early stop), or None.
    early_stop: str | None = None


@dataclass(frozen=True)
class TrainPlan:
    """A checked training job (from :func:`plan_train` or :func:`plan_train_synthetic`).

    Attributes
    ----------
    config : TrainConfig
        The checked settings (``model_config`` complete: the network's own record).
    pair : TrainingPair or SyntheticPair
        The normalised training pair with its validation block.
    lres_voxel_um, hres_voxel_um : tuple of float
        The voxel sizes the model is for (um).
    registration : dict
        Recorded in the checkpoint: the registration of a real pair, or the grid
        phase record of a synthetic one (``offset_um``, ``scale``, ``training_data``).
    resume : Checkpoint or None
        The model training continues from.
    out_path : Path or None
        Where the best model is kept (checked: writable, not an input).
    overwrite : bool
        Whether ``out_path`` may be replaced.
    extra : dict
        Recorded in the checkpoint's ``extra``.
    stages : bool
        Whether the batches carry intermediate (stage) targets.
    device : torch.device
        Where to train.
    lres : array-like or None
        The LRES of a real pair, for the error-map calibration at the end
        (:func:`napari_resolve.learn.uncertainty.calibrate_model`).
    imaging : ImagingModel or None
        The LRES imaging model fitted on a real pair (for the calibration).
    """

    config: TrainConfig
    pair: Any
    lres_voxel_um: tuple[float, ...]
    hres_voxel_um: tuple[float, ...]
    registration: dict
    resume: Checkpoint | None
    out_path: Path | None
    overwrite: bool
    extra: dict
    stages: bool
    device: Any
    lres: Any = field(default=None, repr=False)
    imaging: Any = None

    @property
    def synthetic(self) -> bool:
        """Training on synthetic pairs made from the HRES alone."""
        from napari_resolve.learn.synthetic import SyntheticPair

        return isinstance(self.pair, SyntheticPair)


# ----------------------------------------------------------------------------- planning


def _start(config, resume, out_path, overwrite, inputs, *, synthetic: bool):
    """What both plans check first: settings, the model to resume, the output, the device, the network."""
    from napari_resolve.devices import resolve_device
    from napari_resolve.io import check_output
    from napari_resolve.models import build_model
    from napari_resolve.models.checkpoint import estimated_size, load_checkpoint
    from napari_resolve.outputs import check_room

    cfg = copy.deepcopy(config) if config is not None else TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise InputError("{config} must be a TrainConfig.", parameters=("config",))
    cfg.check()
    sources = [Path(p) for p in inputs]
    start = None
    if resume is not None:
        if not isinstance(resume, Checkpoint):
            sources.append(Path(resume))  # the model to resume is an input: never the output
            resume = load_checkpoint(resume, architecture=cfg.model)
        start = resume
        if start.architecture != cfg.model:
            raise InputError(
                f"The model to resume is a {start.architecture!r}, not {cfg.model!r}; choose "
                f"{start.architecture} as {{model}}, or train a new model.",
                parameters=("model",),
            )
        cfg.model_config = dict(start.config)
    out = None
    if out_path is not None:
        out = check_output(out_path, inputs=sources, overwrite=overwrite, parameter="out_path")
    net = start.build() if start is not None else build_model(cfg.model, **cfg.model_config)
    cfg.model_config = dict(net.config)
    if out is not None:  # a file-size limit would stop the model file part way, after the training
        check_room(out, estimated_size(net), parameter="out_path")
    stages = check_training_data(cfg, synthetic=synthetic)
    return cfg, start, out, net, stages, resolve_device(cfg.device)


def _check_sampler(plan: TrainPlan, net) -> None:
    """Refuse a training region too small for the patches now, not in the first iteration."""
    _sampler(plan, net, np.random.default_rng(0))


def _sampler(plan: TrainPlan, net, rng):
    from napari_resolve.learn.lres_pairs import LresPatchSampler
    from napari_resolve.learn.pairs import PatchSampler
    from napari_resolve.learn.synthetic import SyntheticSampler

    cfg, hv_yx = plan.config, plan.hres_voxel_um[-2:]
    kind = SyntheticSampler if plan.synthetic else LresPatchSampler if net.input_grid == "lres" else PatchSampler
    return kind(
        plan.pair,
        out_depth=cfg.patch_depth if net.volumetric else 1,
        size=cfg.patch_size,
        multiple=max(net.size_multiple[1:]),
        rng=rng,
        augment=cfg.augment,
        square_voxels=abs(hv_yx[0] / hv_yx[1] - 1) < 1e-3,
        stages=plan.stages,
    )


def plan_train(
    lres,
    hres,
    lres_voxel_um,
    registration,
    config: TrainConfig | None = None,
    *,
    roi=None,
    resume: Checkpoint | str | os.PathLike | None = None,
    out_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    inputs: Sequence[str | os.PathLike] = (),
) -> TrainPlan:
    """Check a training on a registered pair and build its training pair.

    Parameters
    ----------
    lres, hres : array-like
        The LRES scan and the HRES scan (2D or 3D).
    lres_voxel_um : float or sequence of float
        LRES voxel size (um). The HRES voxel size is the registration's ``scale``.
    registration : Registration or dict
        Where the HRES lies in the LRES (must be reliable).
    config : TrainConfig, optional
        Settings; default :class:`TrainConfig()`.
    roi : sequence of slice, optional
        Training ROI in HRES voxels (default: the whole overlap).
    resume : Checkpoint or path, optional
        Continue from this model: its weights, normalisation and optimiser state;
        ``config.iterations`` more iterations are run. Its architecture must be
        ``config.model``. A path is an input: it may not be ``out_path``.
    out_path : path, optional
        Where to keep the best model (written atomically at each new best).
    overwrite : bool
        Allow replacing an existing ``out_path`` (never an input).
    extra : dict, optional
        Recorded in the checkpoint's ``extra`` (e.g. data file names).
    inputs : sequence of path, optional
        Files the data came from; ``out_path`` may be none of them.

    Returns
    -------
    TrainPlan

    Raises
    ------
    InputError, FileFormatError, ResolveError
        For bad settings or data, an unreliable registration, an ROI outside
        the overlap or too small, a model to resume of another architecture, an
        unavailable device, or an output that cannot be written.
    """
    from napari_resolve.learn.lres_pairs import lres_halo
    from napari_resolve.learn.pairs import make_pair

    cfg, start, out, net, stages, dev = _start(config, resume, out_path, overwrite, inputs, synthetic=False)
    ndim = len(np.shape(hres))
    offset, scale, reg_record = registration_parts(registration, ndim)
    lv = voxel_tuple(lres_voxel_um, ndim, "LRES voxel size", parameter="lres_voxel_um")
    pair = make_pair(lres, hres, lv, offset, scale, roi=roi, val_fraction=cfg.val_fraction, halo_z=net.trim_z,
                     lres_halo=lres_halo(net) if net.input_grid == "lres" else None)
    if start is not None:
        # Keep the normalisation the weights were trained with.
        pair.inputs = start.norm_in.apply(pair.norm_in.invert(pair.inputs))
        pair.target = start.norm_out.apply(pair.norm_out.invert(pair.target))
        pair.norm_in, pair.norm_out = start.norm_in, start.norm_out
    from napari_resolve.learn.calibrate import fit_imaging, roi_imaging_inputs

    imaging = fit_imaging(lres, lv, *roi_imaging_inputs(pair))
    plan = TrainPlan(cfg, pair, lv, tuple(scale), reg_record, start, out, bool(overwrite), dict(extra or {}),
                     stages, dev, lres=lres, imaging=imaging)
    _check_sampler(plan, net)
    return plan


def plan_train_synthetic(
    hres,
    hres_voxel_um,
    degradation=None,
    config: TrainConfig | None = None,
    *,
    lres_voxel_um=None,
    roi=None,
    resume: Checkpoint | str | os.PathLike | None = None,
    out_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    inputs: Sequence[str | os.PathLike] = (),
) -> TrainPlan:
    """Check a training on synthetic pairs made from an HRES alone, and build the pair.

    Every training patch's input is the HRES degraded with freshly drawn
    parameters (see :mod:`napari_resolve.learn.degradation`) and interpolated
    back onto the HRES voxels as a real LRES is; the validation block is one
    fixed degradation. The model is for a real LRES of ``hres_voxel_um * ratio``
    voxels in the grey-value scale of the HRES: its checkpoint records that LRES
    voxel size, the grid phase of binning
    (:func:`napari_resolve.learn.synthetic.binning_phase_origin_um`) and
    ``extra["degradation"]`` (with ``extra["training_data"] = "synthetic"``).

    Parameters
    ----------
    hres : array-like
        The HRES (2D or 3D).
    hres_voxel_um : float or sequence of float
        Its voxel size (um).
    degradation : Degradation or dict, optional
        How the LRES is made, its ``ratio`` included; default
        :class:`~napari_resolve.learn.degradation.Degradation()`.
    config : TrainConfig, optional
        Settings; default :class:`TrainConfig()`.
    lres_voxel_um : float or sequence of float, optional
        The LRES voxel size (um) the model is for, instead of the degradation's
        ratio (which becomes ``lres_voxel_um / hres_voxel_um``).
    roi, resume, out_path, overwrite, extra, inputs
        As in :func:`plan_train`; a resumed model must be for the same voxel sizes.

    Returns
    -------
    TrainPlan
    """
    from napari_resolve.learn.synthetic import Degradation, make_synthetic_pair

    if degradation is None:
        deg = Degradation()
    elif isinstance(degradation, dict):
        deg = Degradation.from_dict(degradation)
    elif isinstance(degradation, Degradation):
        deg = copy.deepcopy(degradation)
    else:
        raise InputError("{degradation} must be a Degradation or its to_dict() record.", parameters=("degradation",))
    ndim = len(np.shape(hres))
    if ndim not in (2, 3):
        raise InputError(f"The HRES must be a 2D image or a 3D volume, got shape {np.shape(hres)}.")
    hv = voxel_tuple(hres_voxel_um, ndim, "HRES voxel size", parameter="hres_voxel_um")
    if lres_voxel_um is not None:
        lv = voxel_tuple(lres_voxel_um, ndim, "LRES voxel size", parameter="lres_voxel_um")
        deg.ratio = tuple(a / b for a, b in zip(lv, hv))
    deg.check(ndim)
    lv = deg.lres_voxel_um(hv)
    config = synthetic_model(config)
    cfg, start, out, net, stages, dev = _start(config, resume, out_path, overwrite, inputs, synthetic=True)
    if start is not None and (
        len(start.lres_voxel_um) != ndim
        or not np.allclose(start.lres_voxel_um, lv, rtol=1e-3)
        or not np.allclose(start.hres_voxel_um, hv, rtol=1e-3)
    ):
        raise InputError(
            f"The model to resume was trained for LRES {format_um(start.lres_voxel_um)} -> HRES "
            f"{format_um(start.hres_voxel_um)}; this HRES and ratio give {format_um(lv)} -> {format_um(hv)}. "
            "Use the same ratio and HRES voxel size, or train a new model.",
            parameters=("resume",),
        )
    norms = (start.norm_in, start.norm_out) if start is not None else None
    pair = make_synthetic_pair(hres, hv, deg, roi=roi, val_fraction=cfg.val_fraction, halo_z=net.trim_z,
                               norms=norms, task=cfg.task)
    phase = {"offset_um": list(pair.phase_origin_um), "scale": list(hv), "training_data": "synthetic"}
    record = {"training_data": "synthetic", "degradation": deg.to_dict(), **(extra or {})}
    plan = TrainPlan(cfg, pair, lv, hv, phase, start, out, bool(overwrite), record, stages, dev)
    _check_sampler(plan, net)
    return plan


# ----------------------------------------------------------------------------- the loop


def iter_train(plan_or_lres, *args, **kwargs) -> Generator[Progress, None, TrainResult]:
    """Run a training plan, yielding a record per iteration; return the best model.

    ``iter_train(plan)`` runs a :class:`TrainPlan`. The older form
    ``iter_train(lres, hres, lres_voxel_um, registration, config, **options)``
    takes :func:`plan_train`'s arguments and plans first, on the caller's thread
    (bad input raises here, before the generator exists).

    Yields
    ------
    napari_resolve.jobs.Progress
        ``step`` is the iteration of this run (1 .. ``config.iterations``),
        ``data`` a :class:`TrainStep`.

    Returns
    -------
    TrainResult
    """
    if not isinstance(plan_or_lres, TrainPlan):
        return _iter_train(plan_train(plan_or_lres, *args, **kwargs))
    if args or kwargs:
        raise InputError("iter_train(plan) takes the plan alone: its settings are in the plan.")
    return _iter_train(plan_or_lres)


def _iter_train(plan: TrainPlan) -> Generator[Progress, None, TrainResult]:
    import torch

    from napari_resolve.devices import autocast_dtype, describe_device
    from napari_resolve.learn.adversarial import make_adversary
    from napari_resolve.learn.losses import make_loss
    from napari_resolve.models import build_model

    t0 = time.perf_counter()
    cfg, dev, total = plan.config, plan.device, int(plan.config.iterations)
    torch.manual_seed(cfg.seed)
    net = plan.resume.build() if plan.resume is not None else build_model(cfg.model, **cfg.model_config)
    pair = plan.pair.restarted() if plan.synthetic else plan.pair  # a plan run twice draws the same patches
    sampler = _sampler(dataclasses.replace(plan, pair=pair), net, np.random.default_rng(cfg.seed))
    amp = autocast_dtype(dev) if cfg.mixed_precision else None
    net = net.to(dev)
    optimiser, scheduler = make_optimiser(net, cfg, plan.resume)
    adversary = make_adversary(net, cfg.learning_rate)
    # float16 needs loss scaling against underflow; bfloat16 does not.
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    loss_fn = make_loss(cfg.loss, cfg.msssim_weight, cfg.ssim_weight)
    val_every = cfg.val_every or max(1, math.ceil(total / VALIDATIONS_PER_RUN))
    val_in, val_target = pair.validation()
    it0 = plan.resume.iteration if plan.resume is not None else 0
    # A best model may predate the end of its run: its history goes on past its
    # iteration, but the resumed run continues from the model's own iteration.
    history = [h for h in plan.resume.history if h.get("iteration", 0) <= it0] if plan.resume is not None else []
    device_name = describe_device(dev)
    record_extra = {"roi": [[s.start, s.stop] for s in pair.roi], "device": device_name, **plan.extra}
    saver = _Saver(plan)
    best, best_psnr, done = None, -math.inf, 0
    # Early stop: validations in a row without a real improvement on the best PSNR.
    stale, early_stop, mark = 0, None, -math.inf

    def snapshot(psnr):
        return _snapshot(plan, net, pair, optimiser, history, it0 + done, psnr, record_extra)

    try:
        for step in range(1, total + 1):
            lr = optimiser.param_groups[0]["lr"]
            loss, terms = train_step(net, sampler, loss_fn, optimiser, scaler, cfg, dev, amp, step,
                                     best is not None, device_name, adversary)
            scheduler.step()
            done = step
            elapsed = time.perf_counter() - t0
            entry = {"iteration": it0 + step, "loss": loss, "lr": lr, "seconds": round(elapsed, 2), **terms}
            message = f"iteration {step}/{total}, loss {loss:.4f}"
            rec = {}
            if step % val_every == 0 or step == total:
                psnr, ssim_v, preview = validate(net, val_in, val_target, pair, dev, amp)
                entry.update(val_psnr=psnr, val_ssim=ssim_v)
                history.append(entry)
                if psnr > best_psnr:
                    best_psnr, best = psnr, snapshot(psnr)
                    saver.save(best)
                stale = 0 if psnr > mark + EARLY_STOP_MIN_DB else stale + 1
                mark = max(mark, psnr) if stale else psnr
                rec = {"val_psnr": psnr, "val_ssim": ssim_v, "preview": preview}
                message += f", validation PSNR {psnr:.2f} dB SSIM {ssim_v:.3f} (best {best_psnr:.2f} dB)"
                if cfg.patience and stale >= cfg.patience and step < total:
                    early_stop = (
                        f"Stopped by itself at iteration {it0 + step} of {it0 + total}: the validation PSNR has not "
                        f"improved by {EARLY_STOP_MIN_DB:g} dB in {stale} validations ({stale * val_every} "
                        f"iterations). The best model is from iteration {best.iteration}."
                    )
                    message = early_stop
            else:
                history.append(entry)
            data = TrainStep(iteration=it0 + step, loss=loss, lr=lr, elapsed_s=elapsed, losses=terms,
                             best_psnr=None if best is None else best_psnr, best=best, **rec)
            yield Progress(step, total, message, data=data,
                           remaining_s=0.0 if early_stop else elapsed / step * (total - step))
            if early_stop:
                break
    except (GeneratorExit, KeyboardInterrupt):
        if best is None and done >= 1:
            # Stopped before the first validation: keep the model trained so far (val_psnr None).
            saver.save(snapshot(None))
        raise
    if best is not None:
        best.history = list(history)  # the whole run, also after the best point
        if early_stop:
            best.extra["early_stop"] = {"iteration": it0 + done, "planned": it0 + total, "message": early_stop}
        if plan.lres is not None:
            _calibrate(best, plan, dev)
        saver.save(best)
    model = best.build() if best is not None else net.cpu().eval()
    return TrainResult(best, model, history, time.perf_counter() - t0, device_name, path=plan.out_path,
                       early_stop=early_stop)


def _calibrate(best: Checkpoint, plan: TrainPlan, dev) -> None:
    """Store the error-map calibration in the best model; when it cannot be made, the training still ends well.

    A validation block too small to calibrate is the expected case; anything else
    failing here must not cost the user the model they trained, so it warns too.
    """
    from napari_resolve.errors import ResolveWarning
    from napari_resolve.learn.calibrate import calibrate_model

    try:
        best.extra["error_map"] = calibrate_model(best, plan.lres, plan.lres_voxel_um, plan.pair, device=str(dev),
                                                  imaging=plan.imaging)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        warnings.warn(f"No error map for this model: {exc}", ResolveWarning, stacklevel=2)


class _Saver:
    """Writes the plan's output atomically; the first write respects ``overwrite``, later ones replace our own."""

    def __init__(self, plan: TrainPlan):
        self.path, self.overwrite = plan.out_path, plan.overwrite

    def save(self, ckpt: Checkpoint) -> None:
        from napari_resolve.models.checkpoint import save_checkpoint

        if self.path is not None:
            save_checkpoint(ckpt, self.path, overwrite=self.overwrite)
            self.overwrite = True


def _snapshot(plan: TrainPlan, net, pair, optimiser, history, iteration: int, psnr, extra) -> Checkpoint:
    """The model as it is now, with everything prediction and resuming need (tensors copied to the CPU)."""
    return Checkpoint(
        architecture=plan.config.model,
        config=dict(net.config),
        state_dict={k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()},
        norm_in=pair.norm_in,
        norm_out=pair.norm_out,
        lres_voxel_um=plan.lres_voxel_um,
        hres_voxel_um=plan.hres_voxel_um,
        registration=plan.registration,
        train_config=plan.config.to_dict(),
        history=list(history),
        iteration=iteration,
        val_psnr=psnr,
        optimizer_state=cpu_copy(optimiser.state_dict()),
        scheduler_state=None,
        extra=dict(extra),
    )


def run_train(*args, **kwargs) -> TrainResult:
    """:func:`iter_train` run to the end (for scripts and tests): ``run_train(plan)`` or plan_train's arguments."""
    return drain(iter_train(*args, **kwargs))


def iter_train_synthetic(*args, **kwargs) -> Generator[Progress, None, TrainResult]:
    """:func:`plan_train_synthetic`, then :func:`iter_train` of the plan (planned on the caller's thread)."""
    return iter_train(plan_train_synthetic(*args, **kwargs))


def run_train_synthetic(*args, **kwargs) -> TrainResult:
    """:func:`iter_train_synthetic` run to the end (for scripts and tests)."""
    return drain(iter_train_synthetic(*args, **kwargs))
