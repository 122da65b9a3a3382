"""What a training plan checks about its data and model, before any work.

:func:`napari_resolve.learn.training.plan_train` and
:func:`~napari_resolve.learn.training.plan_train_synthetic` call these on the
caller's thread; the command line calls :func:`check_training_data` before it
reads a file. Re-exported from :mod:`napari_resolve.learn.training`.
"""

from __future__ import annotations

import copy

from napari_resolve.errors import InputError, ResolveError
from napari_resolve.learn.config import TrainConfig


def registration_parts(registration, ndim: int) -> tuple[tuple[float, ...], tuple[float, ...], dict]:
    """offset_um, scale and a dict record from a Registration or its dict record."""
    from napari_resolve.registration import Registration

    if isinstance(registration, Registration):
        reg = registration
    elif isinstance(registration, dict):
        reg = Registration.from_dict(registration)
    else:
        raise InputError("{registration} must be a Registration (from register()) or its to_dict() record.",
                         parameters=("registration",))
    if len(reg.offset_um) != ndim:
        raise InputError(f"The {{registration}} is {len(reg.offset_um)}D but the images are {ndim}D.",
                         parameters=("registration",))
    if not reg.ok:
        raise ResolveError(
            f"The registration is marked unreliable ({reg.message}) — training on a misaligned pair teaches "
            "the network to blur. Fix the {registration} first.",
            parameters=("registration",),
        )
    return tuple(reg.offset_um), tuple(reg.scale), reg.to_dict()


def synthetic_model(config):
    """The config a synthetic training runs: the default LRES-grid network becomes :data:`SYNTHETIC_MODEL`.

    Synthetic inputs are made pre-upsampled (on the HRES grid); a network on the
    LRES grid cannot take them. The default is swapped with a warning, another
    LRES-grid network named on purpose is refused.
    """
    import warnings

    from napari_resolve.errors import ResolveWarning
    from napari_resolve.learn.config import DEFAULT_MODEL, SYNTHETIC_MODEL
    from napari_resolve.models import MODELS, model_options

    cfg = copy.deepcopy(config) if isinstance(config, TrainConfig) else (TrainConfig() if config is None else config)
    if not isinstance(cfg, TrainConfig) or MODELS.get(cfg.model) is None:
        return cfg  # _start refuses what is wrong
    if MODELS[cfg.model].input_grid != "lres":
        return cfg
    if cfg.model != DEFAULT_MODEL:
        raise InputError(
            f"{cfg.model} works on the LRES grid and learns from a registered LRES/HRES pair; synthetic pairs "
            f"(made from the HRES alone) feed networks on the HRES grid. Choose {SYNTHETIC_MODEL} (or another "
            "of them) as {model}.",
            parameters=("model",),
        )
    warnings.warn(
        f"Synthetic pairs train {SYNTHETIC_MODEL}: the default network ({DEFAULT_MODEL}) works on the LRES grid "
        "and learns from a registered LRES/HRES pair only.",
        ResolveWarning,
        stacklevel=3,
    )
    options = model_options(SYNTHETIC_MODEL)
    cfg.model = SYNTHETIC_MODEL
    cfg.model_config = {k: v for k, v in cfg.model_config.items() if k in options}  # e.g. width carries over
    return cfg


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
            f"The {cfg.task!r} {{task}} needs the intermediate images of a synthetic pair: train it on an HRES "
            "alone (synthetic pairs), or use task 'full'.",
            parameters=("task",),
        )
    if not MODELS[cfg.model].stage_names:
        return False
    if cfg.task != "full":
        raise InputError(
            f"A {cfg.model} network learns all three stages at once ({{task}} 'full'); to train the {cfg.task!r} "
            "stage on its own, train the network that stage uses (e.g. unet25d).",
            parameters=("task",),
        )
    if cfg.stage_weight > 0 and not synthetic:
        raise InputError(
            f"The {cfg.model} network's denoise and deblur outputs are trained against images that only "
            "synthetic pairs have. Train it on an HRES alone (synthetic pairs), or train its final output alone "
            "on this pair with {stage_weight} 0, e.g. to fine-tune a model trained on synthetic pairs.",
            parameters=("stage_weight",),
        )
    return cfg.stage_weight > 0
