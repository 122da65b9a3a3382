"""The end-to-end multi-output network: denoise, deblur and upscale in one model.

After Bizhani et al. 2022 (docs/references.md;
https://doi.org/10.1038/s41598-022-08170-8, "End-to-end reconstruction"):
three sub-networks in a row, each with its own output,

1. **denoise**: the degraded LRES -> the same LRES without noise (the paper: DIDN,
   a down-up network; by default here a 2.5D U-Net, which sees the neighbouring
   slices; ``denoise="didn"`` gives :class:`~napari_resolve.models.didn.DIDN`);
2. **deblur**: -> the LRES without blur, i.e. the local mean of the HRES (the
   paper: MIMO-UNet+; by default here a 2D U-Net; ``deblur="mimo_unet"`` gives
   :class:`~napari_resolve.models.mimo_unet.MIMOUNet`, whose coarse outputs are
   not trained inside this network);
3. **upscale**: -> the HRES (the paper: DFCAN).

Any slice-wise registered network can be a stage; the defaults stay the
U-Nets, which docs/learning.md measures.

Trained *jointly* with three losses (the paper: L1 on the two intermediate
outputs, L2 + SSIM on the last; here the configured loss on the last), the later
stages learn from the earlier stages' real, imperfect outputs. Trained
*separately* on their own tasks and stacked (:func:`stack_stages`), each stage
only ever saw perfect inputs. The paper found joint training far better.

As everywhere in this package the stages work on the pre-upsampled LRES, so the
intermediate outputs are LRES interpolated onto the HRES voxels (in the input's
normalisation) and every stage is residual over its input. The intermediate
targets exist only for synthetic pairs (:mod:`napari_resolve.learn.synthetic`):
the LRES before the noise and before the blur.

:meth:`MultiOutput.forward_train` returns the denoised and deblurred outputs
beside the final one (``extras["stages"]``); :meth:`~MultiOutput.forward`
returns the final output alone, so tiled inference treats the model like any
other.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import torch

from napari_resolve.errors import InputError
from napari_resolve.models.base import ResolutionModel

#: Stage names, in order, and the network each one gets by default (read-only: they are
#: the constructor's default arguments, which :func:`~napari_resolve.models.model_options` lists).
STAGES = ("denoise", "deblur", "upscale")
DEFAULT_STAGES: dict[str, MappingProxyType] = {
    "denoise": MappingProxyType({"name": "unet25d", "slices": 5, "width": 16, "depth": 2}),
    "deblur": MappingProxyType({"name": "unet25d", "slices": 1, "width": 16, "depth": 2}),
    "upscale": MappingProxyType({"name": "dfcan"}),
}


def _stage_spec(stage: str, spec) -> dict[str, Any]:
    """A stage's ``{"name": architecture, **settings}`` as a new dict, checked."""
    if isinstance(spec, MappingProxyType):
        spec = dict(spec)
    if isinstance(spec, str):
        return {"name": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InputError(
            f"multioutput: the {stage} stage must be a registered model name or a dict like "
            f'{{"name": "unet25d", "width": 16}}, got {spec!r}.'
        )
    return dict(spec)


class MultiOutput(ResolutionModel):
    """Denoise, deblur and upscale sub-networks in a row, each with its own output.

    Parameters
    ----------
    denoise, deblur, upscale : str or dict, optional
        Each stage's network: a registered model name, or ``{"name": NAME,
        **settings}`` (default :data:`DEFAULT_STAGES`). A given dict replaces the
        default whole (unnamed settings take that network's defaults). The stages
        must work slice by slice; only the first may read neighbouring slices
        (``trim_z``).
    """

    name = "multioutput"
    stage_names = STAGES[:2]

    def __init__(
        self,
        denoise=DEFAULT_STAGES["denoise"],
        deblur=DEFAULT_STAGES["deblur"],
        upscale=DEFAULT_STAGES["upscale"],
    ):
        from napari_resolve.models import build_model

        specs = {s: _stage_spec(s, v) for s, v in zip(STAGES, (denoise, deblur, upscale))}
        super().__init__(specs)
        self.stages = torch.nn.ModuleDict()
        for stage, spec in specs.items():
            options = {k: v for k, v in spec.items() if k != "name"}
            if spec["name"] == self.name:
                raise InputError("multioutput: a stage cannot itself be a multioutput network.")
            net = build_model(spec["name"], **options)
            if net.volumetric:
                raise InputError(
                    f"multioutput: the {stage} stage ({spec['name']}) is a 3D network; the stages must work "
                    "slice by slice."
                )
            if stage != STAGES[0] and net.trim_z:
                raise InputError(
                    f"multioutput: only the denoise stage may read neighbouring slices; the {stage} stage "
                    f"({spec['name']}) consumes {net.trim_z} slice(s) on each side. Use slices=1 for it."
                )
            self.stages[stage] = net

    @property
    def global_context(self) -> bool:
        """Whether a stage's output depends on the whole tile (e.g. DFCAN's attention)."""
        return any(getattr(net, "global_context", False) for net in self.stages.values())

    @property
    def trim_z(self) -> int:
        return self.stages[STAGES[0]].trim_z

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        # Stages in a row: their reaches add up.
        radii = [net.receptive_radius for net in self.stages.values()]
        return tuple(sum(r[axis] for r in radii) for axis in range(3))

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        multiples = [net.size_multiple for net in self.stages.values()]
        return tuple(math.lcm(*(m[axis] for m in multiples)) for axis in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x)[0]

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The final output, and the denoise and deblur outputs as ``extras["stages"]`` (by stage name)."""
        denoised = self.stages["denoise"](x)
        deblurred = self.stages["deblur"](denoised)
        return self.stages["upscale"](deblurred), {"stages": {"denoise": denoised, "deblur": deblurred}}


def stack_stages(denoise, deblur, upscale):
    """One multi-output model from three stage models trained separately.

    The models come from training on synthetic pairs of one HRES with one
    degradation (:func:`napari_resolve.learn.training.plan_train_synthetic` with
    ``TrainConfig.task`` ``"denoise"``, ``"deblur"`` and ``"upscale"``), so
    that each one's output is in the normalisation the next one expects. The
    result runs the three in a row ("experiment 1" of
    Bizhani et al. 2022 (docs/references.md; https://doi.org/10.1038/s41598-022-08170-8)) and can be trained further,
    jointly (``--resume``, "experiment 2").

    Parameters
    ----------
    denoise, deblur, upscale : Checkpoint or path
        The three stage models.

    Returns
    -------
    Checkpoint
        A ``multioutput`` model; ``extra["stacked"]`` records where each stage
        came from.

    Raises
    ------
    InputError
        If a model was trained for another task, another voxel size, or in
        another normalisation than the stage before it produces.
    """
    from napari_resolve.models.checkpoint import Checkpoint, load_checkpoint

    ckpts = {}
    for stage, item in zip(STAGES, (denoise, deblur, upscale)):
        ckpt = item if isinstance(item, Checkpoint) else load_checkpoint(item)
        task = ckpt.train_config.get("task", "full")
        if task != stage:
            raise InputError(
                f"The model given as the {stage} stage was trained for the {task!r} task. Train it on synthetic "
                f"pairs with {{task}} {stage!r}.",
                parameters=("task",),
            )
        ckpts[stage] = ckpt
    first, last = ckpts["denoise"], ckpts["upscale"]
    for stage, ckpt in ckpts.items():
        if not (_close(ckpt.lres_voxel_um, first.lres_voxel_um) and _close(ckpt.hres_voxel_um, first.hres_voxel_um)):
            raise InputError(
                f"The {stage} model is for {_fmt(ckpt.lres_voxel_um)} -> {_fmt(ckpt.hres_voxel_um)} um voxels, the "
                f"denoise model for {_fmt(first.lres_voxel_um)} -> {_fmt(first.hres_voxel_um)} um. Train all three "
                "stages for the same voxel sizes."
            )
    # Each stage's output must be in the normalisation the next stage was trained on.
    for a, b in zip(STAGES, STAGES[1:]):
        if not _same_norm(ckpts[a].norm_out, ckpts[b].norm_in):
            raise InputError(
                f"The {a} model's output and the {b} model's input are in different grey-value scales: the stages "
                "were trained on different data. Train all three from the same HRES, ROI and degradation."
            )
    config = {stage: {"name": c.architecture, **c.config} for stage, c in ckpts.items()}
    state = {f"stages.{stage}.{k}": v for stage, c in ckpts.items() for k, v in c.state_dict.items()}
    model = MultiOutput(**config)
    model.load_state_dict(state)  # checks that every weight found its place
    record = {
        stage: {"architecture": c.architecture, "iteration": c.iteration, "val_psnr": c.val_psnr}
        for stage, c in ckpts.items()
    }
    extra = {k: v for k, v in last.extra.items() if k in ("training_data", "degradation")}
    return Checkpoint(
        architecture=MultiOutput.name,
        config=dict(model.config),
        state_dict=state,
        norm_in=first.norm_in,
        norm_out=last.norm_out,
        lres_voxel_um=tuple(last.lres_voxel_um),
        hres_voxel_um=tuple(last.hres_voxel_um),
        registration=last.registration,
        train_config={"model": MultiOutput.name, "model_config": dict(model.config), "task": "full"},
        history=[],
        iteration=sum(c.iteration for c in ckpts.values()),
        val_psnr=None,
        extra={**extra, "stacked": record},
    )


def _close(a, b) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-3) for x, y in zip(a, b))


def _same_norm(a, b) -> bool:
    return math.isclose(a.low, b.low, rel_tol=1e-5, abs_tol=1e-6) and math.isclose(
        a.high, b.high, rel_tol=1e-5, abs_tol=1e-6
    )


def _fmt(values) -> str:
    return " x ".join(f"{float(v):g}" for v in values)
