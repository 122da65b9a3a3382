"""Training a network on a registered LRES/HRES pair (or, without an LRES scan, on
synthetic pairs made from the HRES: :func:`iter_train_synthetic`).

``iter_train(...)`` is a generator: it yields a :class:`TrainProgress` record
after every iteration (loss, learning rate, elapsed time; validation PSNR/SSIM and
a preview slice at validation points) and returns a :class:`TrainResult`.
``run_train`` drains it. Stopping is closing the generator (napari's
``worker.quit()`` does that at the next yield): the best weights so far are kept
in the last record (``best``) and, when ``out_path`` is given, on disk — the file
is rewritten atomically at every new best, so it is always a usable model.

Reproducible on the CPU: the seed fixes the weights' initialisation and every
patch and augmentation choice (``torch.manual_seed`` + a numpy ``Generator``).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import InputError, ResolveError
from napari_resolve.models.checkpoint import Checkpoint

SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    """Training settings (all recorded in the checkpoint).

    Attributes
    ----------
    model : str
        Architecture (see :func:`napari_resolve.models.model_names`).
    model_config : dict
        Its settings (e.g. ``{"width": 32}``).
    iterations : int
        Optimiser steps.
    batch_size : int
        Patches per step.
    patch_size : int
        In-plane patch size (HRES voxels).
    patch_depth : int
        Patch depth for 3D models (HRES voxels); slice-wise models predict one slice.
    learning_rate : float
        Adam's initial learning rate.
    schedule : {"cosine", "constant"}
        Learning-rate schedule (cosine decays to 1 % over the iterations).
    loss : {"l1", "mse", "l1+msssim", "mse+ssim"}
        Training loss (see :func:`napari_resolve.losses.make_loss`).
    msssim_weight : float
        MS-SSIM share of the ``l1+msssim`` loss.
    ssim_weight : float
        Weight of ``1 - SSIM`` added to the MSE in the ``mse+ssim`` loss (DFCAN's 0.1).
    val_fraction : float
        Share of the ROI (first axis) held out for validation.
    val_every : int
        Iterations between validations (0: about 20 over the run).
    seed : int
        Seed of initialisation, patch sampling and augmentation.
    device : str
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda" or "mps".
    mixed_precision : bool
        Use bfloat16/float16 autocast on CUDA (ignored elsewhere).
    augment : bool
        In-plane flips and 90-degree rotations of the patches.
    multiscale_weight : float
        For networks with coarse output branches (``unet25d`` with ``multiscale``
        > 0): weight of each coarse output's loss (the pixel term of ``loss``
        against the block-averaged target) next to the full-resolution loss's 1.
        MDCNN gives every branch the same weight, 1.
    multiscale_until : float
        Share of the iterations after which the coarse losses are dropped (MDCNN
        drops them "at a later stage"); 1 keeps them to the end.
    task : {"full", "denoise", "deblur", "upscale"}
        What to learn from synthetic pairs (see
        :data:`napari_resolve.degradation.TASKS`): the whole job, or one stage of
        it, to be stacked with the others
        (:func:`napari_resolve.models.multioutput.stack_stages`). Real pairs
        only have the whole job.
    stage_weight : float
        For networks with intermediate outputs (``multioutput``): weight of the
        L1 loss of each of the denoise and deblur outputs against their targets
        (the paper's three losses), next to the final output's 1. 0 trains on
        the final output alone, which also works on a real pair (e.g. to
        fine-tune a model trained on synthetic pairs).
    """

    model: str = "unet25d"
    model_config: dict[str, Any] = field(default_factory=dict)
    iterations: int = 1000
    batch_size: int = 8
    patch_size: int = 64
    patch_depth: int = 16
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    loss: str = "l1"
    msssim_weight: float = 0.84
    ssim_weight: float = 0.1
    val_fraction: float = 0.2
    val_every: int = 0
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    augment: bool = True
    multiscale_weight: float = 1.0
    multiscale_until: float = 0.5
    task: str = "full"
    stage_weight: float = 1.0

    def check(self) -> None:
        """Raise :class:`InputError` for settings that cannot work."""
        from napari_resolve.learn.losses import LOSSES
        from napari_resolve.models import model_names

        if self.model not in model_names():
            raise InputError(f"Unknown model {self.model!r}; choose one of {', '.join(model_names())}.")
        for name in ("iterations", "batch_size", "patch_size", "patch_depth"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be positive, got {self.learning_rate}.")
        if self.schedule not in SCHEDULES:
            raise InputError(f"Unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}.")
        if self.loss not in LOSSES:
            raise InputError(f"Unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}.")
        from napari_resolve.learn.synthetic import TASKS

        if self.task not in TASKS:
            raise InputError(f"Unknown task {self.task!r}; choose one of {', '.join(TASKS)}.")
        if not 0 <= self.stage_weight < math.inf:
            raise InputError(f"stage_weight must be 0 or more, got {self.stage_weight}.")
        if not 0 <= self.multiscale_weight < math.inf or not 0 <= self.multiscale_until <= 1:
            raise InputError(
                f"multiscale_weight must be 0 or more and multiscale_until between 0 and 1, got "
                f"{self.multiscale_weight} and {self.multiscale_until}."
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainProgress:
    """One training iteration.

    Attributes
    ----------
    step, total : int
        Iteration done and iterations planned (of this run).
    loss : float
        Training loss of this iteration (normalised units).
    lr : float
        Learning rate used.
    elapsed_s, remaining_s : float
        Seconds since the start, and an estimate of the seconds left.
    val_psnr, val_ssim : float or None
        Validation scores (dB; normalised HRES units, range 1) when validated now.
    best_psnr : float or None
        Best validation PSNR so far.
    preview : ndarray or None
        At validation points: the centre slice of the validation block's
        prediction, in HRES grey values.
    best : Checkpoint or None
        The best model so far (shared, not copied).
    message : str
        One line for a status bar.
    """

    step: int
    total: int
    loss: float
    lr: float
    elapsed_s: float
    remaining_s: float
    val_psnr: float | None = None
    val_ssim: float | None = None
    best_psnr: float | None = None
    preview: np.ndarray | None = None
    best: Checkpoint | None = None
    message: str = ""


@dataclass
class TrainResult:
    """What a finished (or stopped) training gives back."""

    checkpoint: Checkpoint
    model: Any
    history: list[dict[str, Any]]
    seconds: float
    device: str
    stopped: bool = False
    path: Path | None = None


def _registration_parts(registration, ndim: int) -> tuple[tuple[float, ...], tuple[float, ...], dict]:
    """offset_um, scale and a dict record from a Registration, dict or (offset, scale)."""
    from napari_resolve.registration import Registration

    if isinstance(registration, Registration):
        reg = registration
    elif isinstance(registration, dict):
        reg = Registration.from_dict(registration)
    else:
        raise InputError("registration must be a Registration (from register()) or its to_dict() record.")
    if len(reg.offset_um) != ndim:
        raise InputError(f"The registration is {len(reg.offset_um)}D but the images are {ndim}D.")
    if not reg.ok:
        raise ResolveError(
            f"The registration is marked unreliable ({reg.message}) — training on a misaligned pair teaches "
            "the network to blur. Fix the registration first."
        )
    return tuple(reg.offset_um), tuple(reg.scale), reg.to_dict()


def iter_train(
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
    degradation=None,
) -> Generator[TrainProgress, None, TrainResult]:
    """Train a model on a registered pair, yielding progress; return the best model.

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
        ``config.model``.
    out_path : path, optional
        Where to keep the best model (rewritten atomically at each new best).
    overwrite : bool
        Allow replacing an existing ``out_path``.
    extra : dict, optional
        Recorded in the checkpoint's ``extra`` (e.g. data file names).
    degradation : Degradation, optional
        Train on synthetic pairs made from ``hres`` alone (``lres`` is then
        unused); :func:`iter_train_synthetic` sets this with the matching
        registration record.

    Yields
    ------
    TrainProgress

    Returns
    -------
    TrainResult
    """
    import torch

    from napari_resolve.devices import (
        autocast_dtype,
        describe_device,
        is_out_of_memory,
        resolve_device,
    )
    from napari_resolve.learn.losses import make_loss
    from napari_resolve.models import build_model
    from napari_resolve.models.checkpoint import load_checkpoint, save_checkpoint
    from napari_resolve.learn.pairs import PatchSampler, make_pair

    t0 = time.perf_counter()
    cfg = copy.deepcopy(config) if config is not None else TrainConfig()
    cfg.check()
    out = Path(out_path) if out_path is not None else None
    if out is not None:
        if out.exists() and not overwrite:
            raise InputError(f"{out} already exists and was left untouched; choose another name or allow overwriting.")
        if not out.parent.is_dir():
            raise InputError(f"The folder {out.parent} does not exist. Create it first.")
    ndim = len(np.shape(hres))
    offset, scale, reg_record = _registration_parts(registration, ndim)
    lv = voxel_tuple(lres_voxel_um, ndim, "LRES voxel size")

    start_ckpt = None
    if resume is not None:
        start_ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume, architecture=cfg.model)
        if start_ckpt.architecture != cfg.model:
            raise InputError(
                f"The model to resume is a {start_ckpt.architecture!r}, not {cfg.model!r}; choose --model "
                f"{start_ckpt.architecture} or train a new model."
            )
        cfg.model_config = dict(start_ckpt.config)

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = start_ckpt.build() if start_ckpt is not None else build_model(cfg.model, **cfg.model_config)
    cfg.model_config = dict(net.config)
    stages = check_training_data(cfg, synthetic=degradation is not None)
    if degradation is not None:
        from napari_resolve.learn.synthetic import SyntheticSampler, make_synthetic_pair

        norms = (start_ckpt.norm_in, start_ckpt.norm_out) if start_ckpt is not None else None
        pair = make_synthetic_pair(hres, scale, degradation, roi=roi, val_fraction=cfg.val_fraction,
                                   halo_z=net.trim_z, norms=norms, task=cfg.task)
        sampler_cls = SyntheticSampler  # PatchSampler's interface, fresh degradation per patch
    else:
        pair = make_pair(lres, hres, lv, offset, scale, roi=roi, val_fraction=cfg.val_fraction, halo_z=net.trim_z)
        sampler_cls = PatchSampler
    if start_ckpt is not None and degradation is None:
        # Keep the normalisation the weights were trained with.
        pair.inputs = start_ckpt.norm_in.apply(pair.norm_in.invert(pair.inputs))
        pair.target = start_ckpt.norm_out.apply(pair.norm_out.invert(pair.target))
        pair.norm_in, pair.norm_out = start_ckpt.norm_in, start_ckpt.norm_out
    hv_yx = scale[-2:]
    sampler = sampler_cls(
        pair,
        out_depth=cfg.patch_depth if net.volumetric else 1,
        size=cfg.patch_size,
        multiple=max(net.size_multiple[1:]),
        rng=rng,
        augment=cfg.augment,
        square_voxels=abs(hv_yx[0] / hv_yx[1] - 1) < 1e-3,
        stages=stages,
    )
    dev = resolve_device(cfg.device)
    amp = autocast_dtype(dev) if cfg.mixed_precision else None
    net = net.to(dev)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    if start_ckpt is not None and start_ckpt.optimizer_state:
        optimiser.load_state_dict(start_ckpt.optimizer_state)
        for group in optimiser.param_groups:
            group["lr"] = cfg.learning_rate
    total = int(cfg.iterations)
    if cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total, eta_min=cfg.learning_rate * 0.01)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _: 1.0)
    # float16 needs loss scaling against underflow; bfloat16 does not.
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    loss_fn = make_loss(cfg.loss, cfg.msssim_weight, cfg.ssim_weight)
    val_every = cfg.val_every or max(1, math.ceil(total / 20))
    val_in, val_target = pair.validation()
    it0 = start_ckpt.iteration if start_ckpt is not None else 0
    # A best model may predate the end of its run: its history goes on past its
    # iteration, but the resumed run continues from the model's own iteration.
    history: list[dict[str, Any]] = (
        [h for h in start_ckpt.history if h.get("iteration", 0) <= it0] if start_ckpt is not None else []
    )
    device_name = describe_device(dev)
    record_extra = {"roi": [[s.start, s.stop] for s in pair.roi], "device": device_name, **(extra or {})}
    best: Checkpoint | None = None
    best_psnr = -math.inf
    step = 0

    def snapshot(psnr: float | None) -> Checkpoint:
        return Checkpoint(
            architecture=cfg.model,
            config=dict(net.config),
            state_dict={k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()},
            norm_in=pair.norm_in,
            norm_out=pair.norm_out,
            lres_voxel_um=lv,
            hres_voxel_um=scale,
            registration=reg_record,
            train_config=cfg.to_dict(),
            history=list(history),
            iteration=it0 + step,
            val_psnr=psnr,
            optimizer_state=_cpu(optimiser.state_dict()),
            scheduler_state=None,
            extra=record_extra,
        )

    try:
        for step in range(1, total + 1):
            net.train()
            xb, yb, *stage_b = sampler.sample(cfg.batch_size)
            x = torch.from_numpy(xb).to(dev)
            y = torch.from_numpy(yb).to(dev)
            lr = optimiser.param_groups[0]["lr"]
            try:
                with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                    pred = net(x)
                loss = loss_fn(pred.float(), y)
                coarse_loss = _multiscale_loss(net, y, cfg, step, total)
                stage_losses = _stage_losses(net, stage_b, dev, cfg)
                optimised = loss if coarse_loss is None else loss + coarse_loss
                if stage_losses:
                    optimised = optimised + cfg.stage_weight * sum(stage_losses.values())
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(optimised).backward()
                scaler.step(optimiser)
                scaler.update()
            except (RuntimeError, MemoryError) as exc:
                if is_out_of_memory(exc):
                    raise ResolveError(
                        f"{device_name} ran out of memory at iteration {step} (batch {cfg.batch_size}, patch "
                        f"{cfg.patch_size}). Lower the batch or patch size or the model width, or use --device cpu."
                        + (" The best model so far is kept." if best is not None else "")
                    ) from exc
                raise
            scheduler.step()
            loss_v = float(loss.detach())
            if not math.isfinite(loss_v):
                raise ResolveError(
                    f"The training loss became {loss_v} at iteration {step}: the learning rate "
                    f"{cfg.learning_rate:g} is too high for this data. Lower it (e.g. by 10x) and train again."
                )
            elapsed = time.perf_counter() - t0
            rec = TrainProgress(
                step=step,
                total=total,
                loss=loss_v,
                lr=lr,
                elapsed_s=elapsed,
                remaining_s=elapsed / step * (total - step),
                best_psnr=None if best is None else best_psnr,
                best=best,
                message=f"iteration {step}/{total}, loss {loss_v:.4f}",
            )
            entry = {"iteration": it0 + step, "loss": loss_v, "lr": lr, "seconds": round(elapsed, 2)}
            if coarse_loss is not None or stage_losses:  # "loss" stays the final output's, comparable across options
                entry["loss_total"] = float(optimised.detach())
            entry.update({f"loss_{stage}": float(v.detach()) for stage, v in stage_losses.items()})
            if step % val_every == 0 or step == total:
                psnr, ssim_v, preview = _validate(net, val_in, val_target, pair, dev, amp)
                entry.update(val_psnr=psnr, val_ssim=ssim_v)
                history.append(entry)
                rec.val_psnr, rec.val_ssim, rec.preview = psnr, ssim_v, preview
                if psnr > best_psnr:
                    best_psnr = psnr
                    best = snapshot(psnr)
                    if out is not None:
                        save_checkpoint(best, out, overwrite=True)
                rec.best, rec.best_psnr = best, best_psnr
                rec.message += f", validation PSNR {psnr:.2f} dB SSIM {ssim_v:.3f} (best {best_psnr:.2f} dB)"
            else:
                history.append(entry)
            yield rec
    except GeneratorExit:
        if best is None and step >= 1 and out is not None:
            # Stopped before the first validation: keep what there is.
            save_checkpoint(snapshot(None), out, overwrite=True)
        raise
    if best is not None:
        best.history = list(history)  # the whole run, also after the best point
        if out is not None:
            save_checkpoint(best, out, overwrite=True)
    model = best.build() if best is not None else net.cpu().eval()
    return TrainResult(best, model, history, time.perf_counter() - t0, device_name, path=out)


def run_train(*args, **kwargs) -> TrainResult:
    """:func:`iter_train` run to the end (for scripts and tests)."""
    from napari_resolve.jobs import drain

    return drain(iter_train(*args, **kwargs))


def iter_train_synthetic(
    hres,
    hres_voxel_um,
    degradation=None,
    config: TrainConfig | None = None,
    *,
    roi=None,
    resume: Checkpoint | str | os.PathLike | None = None,
    out_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
) -> Generator[TrainProgress, None, TrainResult]:
    """Train a model on synthetic pairs made from an HRES alone (no LRES scan).

    Every training patch's input is the HRES degraded with freshly drawn
    parameters (see :mod:`napari_resolve.learn.synthetic`) and interpolated back
    onto the HRES voxels as a real LRES is; the validation block is one fixed
    degradation. The model is for a real LRES of ``hres_voxel_um * ratio``
    voxels in the grey-value scale of the HRES: its checkpoint records that
    LRES voxel size, a registration-like record whose offset puts the HRES grid
    in binning phase (``ratio`` output voxels flush inside every LRES voxel),
    and ``extra["degradation"]`` (with ``extra["training_data"] = "synthetic"``).

    Parameters
    ----------
    hres : array-like
        The HRES (2D or 3D).
    hres_voxel_um : float or sequence of float
        Its voxel size (um).
    degradation : Degradation or dict, optional
        How the LRES is made; default :class:`~napari_resolve.degradation.Degradation()`.
    config : TrainConfig, optional
        Settings; default :class:`TrainConfig()`.
    roi : sequence of slice, optional
        Training ROI in HRES voxels (default the whole HRES).
    resume, out_path, overwrite, extra
        As in :func:`iter_train`; a resumed model must be for the same voxel sizes.

    Yields
    ------
    TrainProgress

    Returns
    -------
    TrainResult
    """
    from napari_resolve.learn.synthetic import Degradation, synthetic_registration
    from napari_resolve.models.checkpoint import load_checkpoint

    if degradation is None:
        deg = Degradation()
    elif isinstance(degradation, dict):
        deg = Degradation.from_dict(degradation)
    elif isinstance(degradation, Degradation):
        deg = copy.deepcopy(degradation)
    else:
        raise InputError("degradation must be a Degradation or its to_dict() record.")
    ndim = len(np.shape(hres))
    if ndim not in (2, 3):
        raise InputError(f"The HRES must be a 2D image or a 3D volume, got shape {np.shape(hres)}.")
    deg.check(ndim)
    hv = voxel_tuple(hres_voxel_um, ndim, "HRES voxel size")
    lv = deg.lres_voxel_um(hv)
    if resume is not None and not isinstance(resume, Checkpoint):
        resume = load_checkpoint(resume)
    if resume is not None and (
        len(resume.lres_voxel_um) != ndim
        or not np.allclose(resume.lres_voxel_um, lv, rtol=1e-3)
        or not np.allclose(resume.hres_voxel_um, hv, rtol=1e-3)
    ):
        raise InputError(
            f"The model to resume was trained for LRES {_fmt_um(resume.lres_voxel_um)} -> HRES "
            f"{_fmt_um(resume.hres_voxel_um)} um; this HRES and ratio give {_fmt_um(lv)} -> {_fmt_um(hv)} um. "
            "Use the same ratio and HRES voxel size, or train a new model."
        )
    record = {"training_data": "synthetic", "degradation": deg.to_dict(), **(extra or {})}
    return (
        yield from iter_train(
            None, hres, lv, synthetic_registration(hv, lv), config, roi=roi, resume=resume, out_path=out_path,
            overwrite=overwrite, extra=record, degradation=deg,
        )
    )


def run_train_synthetic(*args, **kwargs) -> TrainResult:
    """:func:`iter_train_synthetic` run to the end (for scripts and tests)."""
    from napari_resolve.jobs import drain

    return drain(iter_train_synthetic(*args, **kwargs))


def _fmt_um(values) -> str:
    return " x ".join(f"{float(v):g}" for v in values)


def _multiscale_loss(net, y, cfg: TrainConfig, step: int, total: int):
    """MDCNN's coarse-output terms, or None when the network has none or they were dropped.

    ``multiscale_weight * sum_k pixel_loss(coarse_k, 2**k block average of y)``:
    the pixel term (L1 or MSE) of the configured loss, because the SSIM windows
    (11 voxels) do not fit the 1/4, 1/8 ... scale patches, and MS-SSIM already
    looks at coarse scales itself.
    """
    coarse = getattr(net, "coarse_outputs", None)
    if coarse:
        net.coarse_outputs = []  # read once: the model does not keep this step's tensors
    if not coarse or cfg.multiscale_weight == 0 or step > cfg.multiscale_until * total:
        return None
    import torch.nn.functional as F

    pixel = F.mse_loss if cfg.loss.startswith("mse") else F.l1_loss
    return cfg.multiscale_weight * sum(pixel(c.float(), F.avg_pool2d(y, 2**k)) for k, c in enumerate(coarse, 1))


def check_training_data(cfg: TrainConfig, *, synthetic: bool) -> bool:
    """Check that the model and task can learn from this kind of pair; say whether the
    batches must carry intermediate (stage) targets.

    Parameters
    ----------
    cfg : TrainConfig
    synthetic : bool
        Synthetic pairs from an HRES (which have the intermediate images), or a real pair.

    Returns
    -------
    bool
        True for a multi-output network with stage losses.

    Raises
    ------
    InputError
        For a task other than the whole job on a real pair, a multi-output
        network trained for one stage, or stage losses on a real pair.
    """
    from napari_resolve.models import MODELS

    cfg.check()
    if cfg.task != "full" and not synthetic:
        raise InputError(
            f"The {cfg.task!r} task needs the intermediate images of a synthetic pair: train it on an HRES "
            "alone (napari-resolve train --synthetic HRES), or use task 'full'."
        )
    if not MODELS[cfg.model].stage_names:
        return False
    if cfg.task != "full":
        raise InputError(
            f"A {cfg.model} network learns all three stages at once (task 'full'); to train the {cfg.task!r} "
            "stage on its own, train the network that stage uses (e.g. unet25d)."
        )
    if cfg.stage_weight > 0 and not synthetic:
        raise InputError(
            f"The {cfg.model} network's denoise and deblur outputs are trained against images that only "
            "synthetic pairs have. Train it on an HRES alone (synthetic pairs; napari-resolve train --synthetic "
            "HRES), or train its final output alone on this pair with stage_weight 0 (--stage-weight 0), e.g. "
            "to fine-tune a model trained on synthetic pairs."
        )
    return cfg.stage_weight > 0


def _stage_losses(net, stage_targets, dev, cfg: TrainConfig) -> dict:
    """L1 loss of each intermediate output against its target (the paper's first two losses), by stage name."""
    outputs = getattr(net, "stage_outputs", None)
    if outputs:
        net.stage_outputs = []  # read once: the model does not keep this step's tensors
    if not outputs or not stage_targets or cfg.stage_weight == 0:
        return {}
    import torch
    import torch.nn.functional as F

    return {
        stage: F.l1_loss(out.float(), torch.from_numpy(t).to(dev))
        for stage, out, t in zip(net.stage_names, outputs, stage_targets)
    }


def _cpu(state):
    """A copy of an optimiser state dict with tensors on the CPU."""
    import torch

    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_cpu(v) for v in state)
    return state


def predict_block(net, inputs: np.ndarray, dev, amp=None, *, max_slices: int = 32) -> np.ndarray:
    """Run a network on a whole (small) normalised block, padding y/x to its multiple.

    Used for validation, where the block is the held-out part of the training
    ROI; slice-wise models run ``max_slices`` output slices at a time.
    """
    import torch

    _, my, mx = net.size_multiple
    z, y, x = inputs.shape
    py, px = (-y) % my, (-x) % mx
    padded = np.pad(inputs, ((0, 0), (0, py), (0, px)), mode="reflect" if min(y, x) > max(py, px) else "edge")
    net.eval()
    outs = []
    tz = net.trim_z
    n_out = z - 2 * tz
    step = n_out if net.volumetric else max_slices
    with torch.inference_mode(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
        for a in range(0, n_out, step):
            b = min(n_out, a + step)
            block = torch.from_numpy(np.ascontiguousarray(padded[a : b + 2 * tz]))[None].to(dev)
            outs.append(net(block)[0].float().cpu().numpy())
    return np.concatenate(outs)[:, :y, :x]


def _validate(net, val_in, val_target, pair, dev, amp) -> tuple[float, float, np.ndarray]:
    """Validation PSNR/SSIM in normalised units (range 1) and a preview slice."""
    from napari_resolve.measure.similarity import psnr, ssim

    pred = predict_block(net, val_in, dev, amp)
    target = val_target
    if pair.ndim == 2:
        pred, target = pred[0], target[0]
    p = float(psnr(pred, target, data_range=1.0))
    if min(target.shape) >= 11:
        s = float(ssim(pred, target, data_range=1.0))
    elif min(target.shape[-2:]) >= 11 and target.ndim == 3:
        # A thin validation slab: the mean of per-slice (2D) SSIMs.
        s = float(np.mean([ssim(a, b, data_range=1.0) for a, b in zip(pred, target)]))
    else:
        s = float("nan")
    preview = pred if pred.ndim == 2 else pred[pred.shape[0] // 2]
    return p, s, pair.norm_out.invert(preview)
