"""The parts of a training iteration: the optimiser, one step, the losses of extra outputs, validation.

:func:`napari_resolve.learn.training.iter_train` runs them; they hold no state
of their own.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from napari_resolve.errors import ResolveError
from napari_resolve.learn.config import COSINE_FLOOR, TrainConfig


def make_optimiser(net, cfg: TrainConfig, resume=None):
    """Adam (with the resumed model's state at the configured rate) and the learning-rate schedule."""
    optimiser = torch.optim.Adam(net.optimised_parameters(), lr=cfg.learning_rate)
    if resume is not None and resume.optimizer_state:
        optimiser.load_state_dict(resume.optimizer_state)
        for group in optimiser.param_groups:
            group["lr"] = cfg.learning_rate
    if cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=int(cfg.iterations), eta_min=cfg.learning_rate * COSINE_FLOOR
        )
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda _: 1.0)
    return optimiser, scheduler


def train_step(net, sampler, loss_fn, optimiser, scaler, cfg, dev, amp, step, have_best, device_name,
               adversary=None):
    """One optimiser step (and one of the discriminator, given an ``adversary``); returns the final
    output's loss and the other loss terms."""
    from napari_resolve.devices import is_out_of_memory

    net.train()
    xb, yb, *stage_b = sampler.sample(cfg.batch_size)
    x = xb.to_torch(dev) if hasattr(xb, "to_torch") else (torch.from_numpy(xb).to(dev),)  # LRES-grid batches
    y = torch.from_numpy(yb).to(dev)
    try:
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            if getattr(net, "generative", False):  # a diffusion model learns to denoise, not to predict
                pred, extras, loss = None, {}, net.denoising_loss(*x, y)
            else:
                pred, extras = net.forward_train(*x)
        loss = loss_fn(pred.float(), y) if pred is not None else loss
        coarse_loss = _multiscale_loss(extras.get("coarse"), y, cfg, step, int(cfg.iterations))
        stage_losses = _stage_losses(extras.get("stages"), stage_b, dev, cfg)
        optimised = loss if coarse_loss is None else loss + coarse_loss
        if stage_losses:
            optimised = optimised + cfg.stage_weight * sum(stage_losses.values())
        adversarial = adversary.generator_term(x[0], pred) if adversary is not None else None
        if adversarial is not None:
            optimised = optimised + adversarial
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(optimised).backward()
        scaler.step(optimiser)
        scaler.update()
        disc = adversary.step(x[0], pred, y) if adversary is not None else {}
    except (RuntimeError, MemoryError) as exc:
        if is_out_of_memory(exc):
            raise ResolveError(
                f"{device_name} ran out of memory at iteration {step} (batch {cfg.batch_size}, patch "
                f"{cfg.patch_size}). Lower the {{batch_size}}, the {{patch_size}} or the model width, or choose "
                "the CPU as {device}." + (" The best model so far is kept." if have_best else ""),
                parameters=("batch_size", "patch_size", "device"),
            ) from exc
        raise
    value = float(loss.detach())
    if not math.isfinite(value):
        raise ResolveError(
            f"The training loss became {value} at iteration {step}: the {{learning_rate}} "
            f"{cfg.learning_rate:g} is too high for this data. Lower it (e.g. by 10x) and train again.",
            parameters=("learning_rate",),
        )
    terms = {}
    if coarse_loss is not None or stage_losses or adversarial is not None:
        terms["loss_total"] = float(optimised.detach())  # "loss" stays the final output's, comparable across options
    terms.update({f"loss_{stage}": float(v.detach()) for stage, v in stage_losses.items()})
    if adversarial is not None:
        terms.update(loss_adv=float(adversarial.detach()), **disc)
    return value, terms


def _multiscale_loss(coarse, y, cfg: TrainConfig, step: int, total: int):
    """MDCNN's coarse-output terms, or None when the network has none or they were dropped.

    ``multiscale_weight * sum_k pixel_loss(coarse_k, 2**k block average of y)``
    (Wang et al. 2018, docs/references.md; https://arxiv.org/abs/1810.12183):
    the pixel term (L1 or MSE) of the configured loss, because the SSIM windows
    (11 voxels) do not fit the 1/4, 1/8 ... scale patches, and MS-SSIM already
    looks at coarse scales itself.

    Parameters
    ----------
    coarse : list of Tensor or None
        ``extras["coarse"]`` of :meth:`~napari_resolve.models.base.ResolutionModel.forward_train`.
    """
    if not coarse or cfg.multiscale_weight == 0 or step > cfg.multiscale_until * total:
        return None
    import torch.nn.functional as F

    pixel = F.mse_loss if cfg.loss.startswith("mse") else F.l1_loss
    return cfg.multiscale_weight * sum(pixel(c.float(), F.avg_pool2d(y, 2**k)) for k, c in enumerate(coarse, 1))


def _stage_losses(outputs, stage_targets, dev, cfg: TrainConfig) -> dict:
    """L1 loss of each intermediate output against its target (the paper's first two losses), by stage name.

    ``outputs`` is ``extras["stages"]`` (stage name -> Tensor); ``stage_targets``
    the sampler's stage targets in the same order.
    """
    if not outputs or not stage_targets or cfg.stage_weight == 0:
        return {}
    import torch.nn.functional as F

    return {
        stage: F.l1_loss(out.float(), torch.from_numpy(t).to(dev))
        for (stage, out), t in zip(outputs.items(), stage_targets)
    }


def cpu_copy(state):
    """A copy of an optimiser state dict with tensors on the CPU."""

    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: cpu_copy(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(cpu_copy(v) for v in state)
    return state


# ----------------------------------------------------------------------------- validation


def predict_block(net, inputs: np.ndarray, dev, amp=None, *, max_slices: int = 32) -> np.ndarray:
    """Run a network on a whole (small) normalised block, padding y/x to its multiple.

    Used for validation, where the block is the held-out part of the training
    ROI; slice-wise models run ``max_slices`` output slices at a time. For
    networks on the LRES grid ``inputs`` is an
    :class:`~napari_resolve.learn.lres_pairs.LresBatch` of one block.
    """

    if hasattr(inputs, "to_torch"):  # an LRES block and the output positions: one pass
        net.eval()
        with torch.inference_mode(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            return net(*inputs.to_torch(dev))[0].float().cpu().numpy()
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


def validate(net, val_in, val_target, pair, dev, amp) -> tuple[float, float, np.ndarray]:
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
