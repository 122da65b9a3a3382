"""Every training setting and its default, in one place.

:class:`TrainConfig` holds the settings of a training run (all recorded in the
model file). The command line (``napari-resolve train``) builds its defaults,
help texts and choice lists from :data:`DEFAULTS`, :data:`HELP` and the name
tuples here, and the Training widget its field defaults and tooltips, so a
default is changed here and nowhere else.

Importing this module loads neither torch nor scipy.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from napari_resolve.errors import InputError

#: The model trained when none is named (a key of :data:`napari_resolve.models.MODELS`): 3D features on
#: the LRES grid, chosen by measurement (docs/comparison.md, benchmarks/default_model.py).
DEFAULT_MODEL = "lres3d"
#: What synthetic pairs (made from the HRES alone) train when :data:`DEFAULT_MODEL` is asked for:
#: they are made pre-upsampled, which only networks on the HRES grid take.
SYNTHETIC_MODEL = "unet25d"
#: Learning-rate schedules (``TrainConfig.schedule``).
SCHEDULES = ("cosine", "constant")
#: Training losses (``TrainConfig.loss``, see :func:`napari_resolve.learn.losses.make_loss`).
LOSSES = ("l1", "mse", "l1+msssim", "mse+ssim")
#: What a network trained on synthetic pairs learns (``TrainConfig.task``): input -> target.
#: The last three are the stages of the denoise-deblur-upscale chain of Bizhani et al. 2022
#: (https://doi.org/10.1038/s41598-022-08170-8), trained separately and stacked
#: (:func:`napari_resolve.models.multioutput.stack_stages`).
TASKS = {
    "full": "degraded LRES -> HRES (the whole job)",
    "denoise": "degraded LRES -> the same LRES without noise",
    "deblur": "noise-free LRES -> the LRES without blur (the local mean)",
    "upscale": "the local-mean LRES (no blur, no noise) -> HRES",
}
#: Smallest validation block, in voxels along the split axis (see
#: :func:`napari_resolve.learn.pairs.validation_size`).
MIN_VALIDATION = 4
#: Largest share of the ROI that may be held out for validation.
MAX_VAL_FRACTION = 0.5
#: Sampler steps a diffusion model may take per sample (its ``steps`` setting, or a prediction's).
MAX_STEPS = 1000
#: Validations over a run when ``val_every`` is 0.
VALIDATIONS_PER_RUN = 20
#: Smallest rise of the validation PSNR (dB) that counts as an improvement for early stopping.
EARLY_STOP_MIN_DB = 0.02
#: Share of the initial learning rate the cosine schedule decays to.
COSINE_FLOOR = 0.01


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
        Learning-rate schedule (cosine decays to :data:`COSINE_FLOOR` of it over the iterations).
    loss : {"l1", "mse", "l1+msssim", "mse+ssim"}
        Training loss (see :func:`napari_resolve.learn.losses.make_loss`).
    msssim_weight : float
        MS-SSIM share of the ``l1+msssim`` loss, 0 to 1.
    ssim_weight : float
        Weight of ``1 - SSIM`` added to the MSE in the ``mse+ssim`` loss (DFCAN's 0.1).
    val_fraction : float
        Share of the ROI (first axis) held out for validation, in (0, 0.5].
    val_every : int
        Iterations between validations (0: about :data:`VALIDATIONS_PER_RUN` over the run).
    patience : int
        Early stop: training ends by itself after this many validations in a row
        without a validation PSNR :data:`EARLY_STOP_MIN_DB` above the best so far
        (0: always run every iteration).
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
        What to learn from synthetic pairs (see :data:`TASKS`): the whole job,
        or one stage of it, to be stacked with the others. Real pairs only have
        the whole job.
    stage_weight : float
        For networks with intermediate outputs (``multioutput``): weight of the
        L1 loss of each of the denoise and deblur outputs against their targets,
        next to the final output's 1. 0 trains on the final output alone, which
        also works on a real pair (e.g. to fine-tune a model trained on
        synthetic pairs).
    """

    model: str = DEFAULT_MODEL
    model_config: dict[str, Any] = field(default_factory=dict)
    iterations: int = 2000
    batch_size: int = 4
    patch_size: int = 36
    patch_depth: int = 36
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    loss: str = "l1+msssim"
    msssim_weight: float = 0.84
    ssim_weight: float = 0.1
    val_fraction: float = 0.2
    val_every: int = 0
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    augment: bool = True
    multiscale_weight: float = 1.0
    multiscale_until: float = 0.5
    task: str = "full"
    stage_weight: float = 1.0

    def check(self) -> None:
        """Raise :class:`InputError` for settings that cannot work.

        The model name is checked against the registry (which loads torch).
        """
        from napari_resolve.models import model_names

        if self.model not in model_names():
            raise InputError(
                f"Unknown model {self.model!r}; choose one of {', '.join(model_names())} as {{model}}.",
                parameters=("model",),
            )
        for name in ("iterations", "batch_size", "patch_size", "patch_depth"):
            _whole(name, getattr(self, name), minimum=1)
        _whole("val_every", self.val_every, minimum=0)
        _whole("patience", self.patience, minimum=0)
        _whole("seed", self.seed, minimum=0)
        if not (isinstance(self.learning_rate, numbers.Real) and 0 < self.learning_rate < math.inf):
            raise InputError(f"{{learning_rate}} must be a positive number, got {self.learning_rate!r}.",
                             parameters=("learning_rate",))
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("loss", self.loss, LOSSES)
        _choice("task", self.task, TASKS)
        _between("msssim_weight", self.msssim_weight, 0.0, 1.0)
        _between("ssim_weight", self.ssim_weight, 0.0, math.inf)
        _between("stage_weight", self.stage_weight, 0.0, math.inf)
        _between("multiscale_weight", self.multiscale_weight, 0.0, math.inf)
        _between("multiscale_until", self.multiscale_until, 0.0, 1.0)
        check_val_fraction(self.val_fraction)
        if not isinstance(self.model_config, dict):
            raise InputError(f"{{model_config}} must be a dict of settings, got {self.model_config!r}.",
                             parameters=("model_config",))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The defaults, for forms and the command line (read-only use: copy before changing).
DEFAULTS = TrainConfig()

#: One line per setting, for command-line help and widget tooltips (units included).
HELP = {
    "model": "network architecture",
    "model_config": "architecture settings, e.g. width=32",
    "iterations": "optimiser steps",
    "batch_size": "patches per optimiser step (lower it if memory is short)",
    "patch_size": "side of the training patches, HRES voxels (3D networks: cubes)",
    "patch_depth": "patch depth of 3D models, HRES voxels",
    "learning_rate": "Adam's initial learning rate",
    "schedule": "learning-rate schedule",
    "loss": "training loss (mse+ssim is DFCAN's)",
    "msssim_weight": "MS-SSIM share of the l1+msssim loss",
    "ssim_weight": "SSIM weight of the mse+ssim loss",
    "val_fraction": "share of the ROI held out for validation",
    "val_every": "iterations between validations (0: about 20 over the run)",
    "patience": f"stop by itself after this many validations without a {EARLY_STOP_MIN_DB:g} dB better "
                "validation PSNR (0: never)",
    "seed": "seed of initialisation, patch sampling and augmentation",
    "device": "auto (CUDA, then MPS, then CPU), cpu, cuda or mps",
    "task": "what to learn from synthetic pairs: the whole job, or one stage of it",
    "stage_weight": "multioutput: weight of the denoise and deblur outputs' L1 losses (0 trains the final "
                    "output alone, which also works on a registered pair)",
}


def parse_model_config(pairs) -> dict[str, Any]:
    """Architecture settings written as ``KEY=VALUE`` items (``["width=32", "out=stack"]``) as a dict.

    Values are read as JSON (numbers, true/false) or else kept as text. A single string is split at spaces.

    Raises
    ------
    InputError
        For an item without ``=`` or without a key.
    """
    import json

    out: dict[str, Any] = {}
    for item in pairs.split() if isinstance(pairs, str) else pairs or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"The {{model_config}} are KEY=VALUE items (e.g. width=32), got {item!r}.",
                             parameters=("model_config",))
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a plain string, e.g. out=stack
    return out


def default(name: str):
    """The default of a :class:`TrainConfig` setting (a fresh copy for dicts)."""
    value = getattr(TrainConfig(), name)
    return dict(value) if isinstance(value, dict) else value


def help_text(name: str) -> str:
    """``HELP[name]`` with its default, e.g. ``"optimiser steps (default 1000)"``."""
    return f"{HELP[name]} (default {default(name)!s})"


def setting_names() -> tuple[str, ...]:
    """The names of every :class:`TrainConfig` setting."""
    return tuple(f.name for f in fields(TrainConfig))


def check_val_fraction(val_fraction) -> float:
    """The validation share, checked: in (0, :data:`MAX_VAL_FRACTION`]."""
    try:
        value = float(val_fraction)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 < value <= MAX_VAL_FRACTION:
        raise InputError(f"{{val_fraction}} must be in (0, {MAX_VAL_FRACTION:g}], got {val_fraction!r}.",
                         parameters=("val_fraction",))
    return value


def _whole(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"{{{name}}} must be a whole number of at least {minimum}, got {value!r}.",
                         parameters=(name,))


def _between(name: str, value, lo: float, hi: float) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and lo <= value <= hi and value < math.inf
    if not ok:
        bound = "0 or more" if hi == math.inf else f"between {lo:g} and {hi:g}"
        raise InputError(f"{{{name}}} must be {bound}, got {value!r}.", parameters=(name,))


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise InputError(f"Unknown {name} {value!r}; choose one of {', '.join(choices)} as {{{name}}}.",
                         parameters=(name,))
