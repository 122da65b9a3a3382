"""Models in series: M1 then M2 (then M3 ...) as one tiled prediction, the middle results never written.

The DeepNet paper's integrated circuit goes 6.75 -> 2.25 -> 0.75 um with two
models, each trained for one step. :func:`plan_chain_predict` checks that the
steps meet (each model's training LRES voxel size is the previous model's HRES
voxel size, to 1 %) and returns a :class:`~napari_resolve.learn.inference.PredictPlan`
that :func:`~napari_resolve.learn.inference.iter_predict` runs like any other:
tiles, blending, streaming to disk, stopping, progress.

The chain looks like one network to the tiling (:class:`ChainNetwork`, on the
LRES grid). For an output tile it works backwards through the stages: the box of
the last middle grid that the last model reads for the tile (its own margins,
the footprint of its interpolation), then the box of the grid before that the
previous model reads for *that* box, and so on down to the LRES; then forwards,
each stage predicting its box as a prediction of its own (its own tiles and
margins, :func:`~napari_resolve.learn.inference.iter_predict`) from the box of
the stage before. Boxes are cut at the edges of their grid, so a model sees the
same grid edges as when it runs over the whole of the previous result: the
tiled chain equals running M1 over the whole LRES, then M2 over the whole of its
output (tested to 1e-4), and nothing but a tile's boxes is ever in memory.

Geometry: the middle grid is M1's output grid over the ROI (in phase with M1's
training grid), M2's grid is its output grid over the whole middle grid, in phase
with M2's training grid *in the middle grid's frame* (as when M2 is run on M1's
result); the chain's result lies at the sum of those origins in the LRES frame.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_resolve._text import format_um
from napari_resolve.errors import InputError, VoxelSizeError
from napari_resolve.geometry.grid import Grid, lres_box_for, resample_lres
from napari_resolve.jobs import drain
from napari_resolve.learn.inference import PredictPlan, PredictResult, iter_predict, plan_predict
from napari_resolve.learn.lres_pairs import footprint
from napari_resolve.learn.normalisation import Normalisation
from napari_resolve.learn.predict_checks import _checkpoint, check_model_fits, check_result_output
from napari_resolve.learn.tiling import (
    BLENDS,
    DEFAULT_BLEND,
    DEFAULT_MEMORY_BUDGET,
    lres_grid_tile_z,
    overlap_shape,
    tile_shape,
    tile_spans,
)

__all__ = ["Chain", "ChainNetwork", "check_chain", "plan_chain_predict", "run_chain_predict"]

#: The voxel sizes of consecutive models must agree to this fraction (as an LRES must agree with its model).
VOXEL_TOLERANCE = 0.01
#: LRES voxels :func:`~napari_resolve.geometry.grid.resample_lres` reads around a grid (its spline prefilter's halo).
RESAMPLE_HALO = inspect.signature(resample_lres).parameters["halo"].default
#: The chain's input and output are grey values: each stage normalises and maps back itself.
IDENTITY = Normalisation(0.0, 1.0)


@dataclass(frozen=True)
class Chain:
    """Models in series, in the place of a checkpoint in a :class:`PredictPlan` (``plan.checkpoint``).

    Attributes
    ----------
    checkpoints : tuple of Checkpoint
        The models, first (applied to the LRES) to last.
    sources : tuple of str
        How each model is named in messages (its file, or ``model 2``).
    """

    checkpoints: tuple
    sources: tuple[str, ...]
    norm_in: Normalisation = IDENTITY
    norm_out: Normalisation = IDENTITY

    @property
    def architecture(self) -> str:
        return " -> ".join(c.architecture for c in self.checkpoints)

    @property
    def lres_voxel_um(self) -> tuple[float, ...]:
        return tuple(self.checkpoints[0].lres_voxel_um)

    @property
    def hres_voxel_um(self) -> tuple[float, ...]:
        return tuple(self.checkpoints[-1].hres_voxel_um)

    @property
    def iteration(self) -> int:
        """Training iterations of the last model (what a log line of one model shows)."""
        return int(self.checkpoints[-1].iteration)


def _name(model, k: int) -> str:
    return f"model {k + 1}" if not isinstance(model, (str, os.PathLike)) else f"model {k + 1} ({Path(model).name})"


def check_chain(checkpoints, sources) -> None:
    """Refuse models that cannot run in series: fewer than two, of different dimensions, steps that do not meet.

    Raises
    ------
    InputError
        Fewer than two models, or models trained on data of different dimensionality.
    VoxelSizeError
        A model whose training LRES voxel size is not the previous model's HRES voxel size (1 %),
        naming both models and both sizes.
    """
    if len(checkpoints) < 2:
        raise InputError("A chain needs two models or more, the first applied to the LRES.")
    for k, (a, b) in enumerate(zip(checkpoints, checkpoints[1:])):
        if len(a.hres_voxel_um) != len(b.lres_voxel_um):
            raise InputError(
                f"{sources[k]} was trained on {len(a.hres_voxel_um)}D data and {sources[k + 1]} on "
                f"{len(b.lres_voxel_um)}D data: models in series must be of one dimensionality.")
        out, inp = tuple(a.hres_voxel_um), tuple(b.lres_voxel_um)
        if any(abs(x / y - 1) > VOXEL_TOLERANCE for x, y in zip(out, inp)):
            raise VoxelSizeError(
                f"{sources[k]} outputs {format_um(out, compact=True)} voxels but {sources[k + 1]} was trained "
                f"on {format_um(inp, compact=True)} LRES voxels: in series, each model's training LRES voxel size "
                f"must be the previous model's HRES voxel size (to {VOXEL_TOLERANCE:.0%}). Give the models in the "
                "order of their steps (coarsest first), or train a model for the missing step.")


@dataclass(frozen=True, eq=False)
class _Stage:
    """One model of a chain: a plan of its whole prediction (network, margins, tiles) and its output grid.

    ``grid`` is in the frame of the stage's input (the LRES for the first, the previous grid's voxel 0 after).
    """

    plan: PredictPlan
    grid: Grid

    @property
    def net(self):
        return self.plan.network


def _source_box(stage: _Stage, box, src_shape, src_voxel, align) -> list[tuple[int, int]]:
    """The voxels of a stage's input that its prediction of ``box`` (of its grid) reads, cut at the input's edges.

    The start is rounded down to ``align`` (the previous stage's size multiple), so that stage's tiles fall
    where they fall in a pass over its whole grid.
    """
    nd = len(box)
    sub = stage.grid.sub(tuple(slice(a, b) for a, b in box))
    net, halo = stage.net, stage.plan.halo[-nd:]
    if net.input_grid == "lres":
        spans = [(0, 1) if src_shape[ax] == 1 else
                 footprint(sub.origin_um[ax], sub.voxel_um[ax], sub.shape[ax], src_voxel[ax], halo[ax])
                 for ax in range(nd)]
    else:
        # The pre-upsampled input of each of its tiles: the tile, its margin, up to a multiple more, interpolated
        # from the input voxels around it (and the spline prefilter's halo).
        mult = net.size_multiple[-nd:]
        ext = Grid(tuple(n + 2 * h + m for n, h, m in zip(sub.shape, halo, mult)), sub.voxel_um,
                   tuple(o - h * v for o, h, v in zip(sub.origin_um, halo, sub.voxel_um)))
        spans = [(s.start, s.stop) for s in lres_box_for(ext, src_voxel, src_shape, RESAMPLE_HALO)]
    out = []
    for (a, b), n, m in zip(spans, src_shape, align[-nd:]):
        a = max(a, 0) // m * m
        out.append((a, max(min(b, n), a + 1)))
    return out


class ChainNetwork(nn.Module):
    """Models in series as one network on the LRES grid, for the tiling of :func:`iter_predict`.

    Its forward is given a tile's LRES block and output positions like any network on the LRES grid, and
    ``origin``, the tile's first output voxel (``generative = True`` is what makes the tiling pass it; the
    chain draws no samples). It predicts the tile from the LRES itself, through each stage's box
    (see the module notes), and returns grey values (the plan's normalisations are the identity).
    """

    name = "chain"
    volumetric = True
    input_grid = "lres"
    generative = True  # so that the tiling gives forward the tile's origin; nothing is sampled
    trim_z = 0

    def __init__(self, stages, lres, lres_voxel_um):
        super().__init__()
        self.stage_networks = nn.ModuleList(s.net for s in stages)  # moved to the device with the chain
        self._stages = tuple(stages)
        self._lres = lres
        self._lres_voxel = tuple(lres_voxel_um)
        self.config = {"models": [s.plan.checkpoint.architecture for s in stages]}

    @property
    def size_multiple(self) -> tuple[int, int, int]:
        """The last model's: output tiles start where its own tiles would."""
        return tuple(self._stages[-1].net.size_multiple)

    @property
    def receptive_radius(self) -> tuple[int, int, int]:
        """LRES voxels (z, y, x) around a tile's footprint that the chain reads at most (all stages' reaches)."""
        reach = np.zeros(3)
        src_voxel = np.array(self._lres_voxel[-3:] if len(self._lres_voxel) == 3 else (0.0, *self._lres_voxel))
        for st in self._stages:
            out_voxel = np.array(st.grid.voxel_um if st.grid.ndim == 3 else (0.0, *st.grid.voxel_um))
            halo, mult = np.array(st.plan.halo), np.array(st.net.size_multiple)
            if st.net.input_grid == "lres":
                reach += (halo + 1) * src_voxel
            else:
                reach += (halo + mult) * out_voxel + (RESAMPLE_HALO + 2) * src_voxel
            src_voxel = out_voxel
        lv = np.array(self._lres_voxel if len(self._lres_voxel) == 3 else (1.0, *self._lres_voxel))
        r = [int(math.ceil(v / w)) for v, w in zip(reach, lv)]
        return (r[0] if len(self._lres_voxel) == 3 else 0, r[1], r[2])

    def to(self, *args, memory_format=None, **kwargs):
        """Moves the stages' networks; their own runs lay out their weights (``memory_format`` is theirs to set)."""
        return super().to(*args, **kwargs) if args or kwargs else self

    def forward(self, block, positions, origin=(0, 0, 0), sample=0) -> torch.Tensor:
        """The tile whose first output voxel is ``origin`` (z y x) and whose size is the positions' lengths.

        Returns
        -------
        Tensor, (1, nz, ny, nx)
            Grey values of the last model, on ``block``'s device.
        """
        nd = len(self._lres_voxel)
        box = [(int(o), int(o) + int(p.shape[-1])) for o, p in zip(origin, positions)][-nd:]
        out = self.predict_box(box)
        return torch.from_numpy(out if nd == 3 else out[None]).to(block.device)[None]

    def predict_box(self, box) -> np.ndarray:
        """The chain's prediction of a box of its output grid (``(start, stop)`` per axis), float32 grey values."""
        stages = self._stages
        boxes = [None] * len(stages)
        boxes[-1] = list(box)
        for j in range(len(stages) - 1, 0, -1):  # backwards: what each stage reads of the grid before it
            before = stages[j - 1]
            boxes[j - 1] = _source_box(stages[j], boxes[j], before.grid.shape, before.grid.voxel_um,
                                       before.net.size_multiple)
        src, src_voxel, src_start = self._lres, self._lres_voxel, (0,) * len(box)
        for st, b in zip(stages, boxes):  # forwards: each stage predicts its box from the box before
            origin = tuple(o + a * v - s * w for o, (a, _), v, s, w in
                           zip(st.grid.origin_um, b, st.grid.voxel_um, src_start, src_voxel))
            sub = Grid(tuple(e - a for a, e in b), st.grid.voxel_um, origin)
            shape3 = sub.shape if sub.ndim == 3 else (1, *sub.shape)
            plan = dataclasses.replace(
                st.plan, lres=src, lres_voxel_um=src_voxel, grid=sub, fit_memory=False,
                spans=tile_spans(shape3, st.plan.tile, st.plan.overlap, st.net.size_multiple))
            src, src_voxel, src_start = drain(iter_predict(plan)).data, sub.voxel_um, [a for a, _ in b]
        return src


# ----------------------------------------------------------------------------- plan


def plan_chain_predict(
    models,
    lres,
    lres_voxel_um,
    *,
    roi=None,
    tile: int | tuple[int, ...] | None = None,
    overlap: int | tuple[int, ...] | None = None,
    blend: str = DEFAULT_BLEND,
    out_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    device: str | None = "auto",
) -> PredictPlan:
    """Check models in series on an LRES and plan the chain's tiles; refuses bad input before any work.

    Parameters
    ----------
    models : sequence of Checkpoint or path-like
        Two models or more, the first applied to the LRES; each model's training LRES voxel size must be the
        previous model's HRES voxel size (1 %).
    lres, lres_voxel_um, roi, blend, out_path, overwrite, memory_budget, device
        As in :func:`~napari_resolve.learn.inference.plan_predict` (the voxel size is the first model's).
    tile, overlap : int or sequence of int, optional
        Output tiles of the chain (the last model's voxels), as for a network on the LRES grid (default
        large tiles, no overlap: tiles agree exactly). Each model runs on its part of a tile with its own
        default tiles and margins.

    Returns
    -------
    PredictPlan
        Run it with :func:`~napari_resolve.learn.inference.iter_predict`; ``plan.checkpoint`` is a
        :class:`Chain`, ``plan.network`` a :class:`ChainNetwork`.

    Raises
    ------
    InputError, VoxelSizeError
        As :func:`check_chain`; generative models (their noise is drawn per output voxel of a whole grid);
        and every refusal of ``plan_predict``.
    """
    from napari_resolve.devices import resolve_device

    models = list(models)
    sources = tuple(_name(m, k) for k, m in enumerate(models))
    ckpts = [_checkpoint(m) for m in models]
    check_chain(ckpts, sources)
    shape = tuple(int(n) for n in lres.shape) if hasattr(lres, "shape") else None
    lv = check_model_fits(ckpts[0], shape, lres_voxel_um)
    ndim = len(shape)
    if blend not in BLENDS:
        raise InputError(
            f"Unknown blending {blend!r} ({{blend}}); choose one of {', '.join(BLENDS)}.", parameters=("blend",))
    dev = str(resolve_device(device))
    stages, src, src_voxel, origin = [], lres, lv, np.zeros(ndim)
    for k, ckpt in enumerate(ckpts):
        # Each stage's prediction of its whole grid, planned in memory: only its network, margins and tiles
        # are used, on boxes of that grid (an in-memory placeholder of the middle grid costs nothing).
        stage = plan_predict(ckpt, src, src_voxel, roi=roi if k == 0 else None, device=dev,
                             memory_budget=sys.maxsize)
        if getattr(stage.network, "generative", False):
            raise InputError(
                f"{sources[k]} is a generative model ({ckpt.architecture}): its noise is drawn per voxel of a "
                "whole output grid, which a chain cuts into boxes. Run it on its own.")
        stages.append(_Stage(stage, stage.grid))
        origin = origin + np.array(stage.grid.origin_um)
        src, src_voxel = np.broadcast_to(np.float32(0), stage.grid.shape), stage.grid.voxel_um
    last = stages[-1].grid
    grid = Grid(last.shape, last.voxel_um, tuple(float(o) for o in origin))

    path = check_result_output(grid, out_path, overwrite, memory_budget)

    net = ChainNetwork(stages, lres, lv)
    mult = net.size_multiple
    shape3 = grid.shape if ndim == 3 else (1, *grid.shape)
    tile3 = tile_shape(tile, True, mult, lres_grid=True)
    if tile is None:
        tile3 = (max(mult[0], lres_grid_tile_z(shape3) // mult[0] * mult[0]),) + tile3[1:]
    ov3 = overlap_shape(overlap, True, lres_grid=True)
    if any(o < 0 or o >= t for o, t in zip(ov3, tile3)):
        raise InputError(
            f"The overlap {ov3} must be at least 0 and smaller than the tile {tile3} (output voxels, z y x); "
            "choose a smaller {overlap} or a larger {tile}.",
            parameters=("overlap", "tile"),
        )
    return PredictPlan(
        checkpoint=Chain(tuple(ckpts), sources), lres=lres, lres_voxel_um=lv, grid=grid, tile=tile3, overlap=ov3,
        halo=(0, 0, 0), blend=blend, device=dev, out_path=path, overwrite=bool(overwrite),
        spans=tile_spans(shape3, tile3, ov3, mult), network=net,
    )


def run_chain_predict(models, lres, lres_voxel_um, **kwargs: Any) -> PredictResult:
    """:func:`plan_chain_predict` run to the end (for scripts and tests)."""
    return drain(iter_predict(plan_chain_predict(models, lres, lres_voxel_um, **kwargs)))
