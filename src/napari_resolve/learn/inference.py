"""Tiled prediction over an LRES region, blended without seams, streamed to disk.

A prediction is planned, then run. :func:`plan_predict` checks everything on the
caller's thread (the model file, the LRES and its voxel size, the ROI, the tile
and overlap against the network's downsampling, the output file, the memory
budget, the device) and returns a :class:`PredictPlan`; :func:`iter_predict`
runs a plan tile by tile, yielding :class:`napari_resolve.jobs.Progress` records
(with a :class:`TileDone` as ``data``); :func:`run_predict` drains it.

How a region is upscaled:

1. The output grid is the HRES-sized grid over the LRES ROI, in phase with the
   grid the model was trained on (:func:`napari_resolve.geometry.grid.upscale_grid`).
2. The grid is cut into overlapping tiles (:mod:`napari_resolve.learn.tiling`).
   Each tile's input is the LRES interpolated (cubic) onto the tile's grid
   *extended by a margin*: in y and x the network's receptive radius (rounded up
   to its downsampling factor), in z the slices a 2.5D model consumes plus, for
   3D models, their receptive radius. The margin is interpolated from the real
   LRES around the tile, predicted, and discarded, so the kept voxels never see
   the zero padding at a tile edge.
3. Tiles start on multiples of the network's downsampling factor, so pooling
   windows fall where they fall in a whole-volume pass.
4. Overlapping tiles are blended with weights (linear ramps or a Gaussian)
   divided by their sum, so they sum to 1 at every voxel.

With margins at least the receptive radius, the tiled result equals a
whole-volume pass (tested to 1e-4). Rows of tiles along z are finished one after
the other; finished slabs go to the output (memory, zarr or an OME-TIFF memory
map) and leave memory, so peak memory depends on the tile row, not on the output.
A stopped or failed run leaves no file under the target name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_resolve._text import format_rate, format_shape
from napari_resolve.errors import InputError, ResolveError
from napari_resolve.geometry.grid import Grid, OneSlice, resample_lres
from napari_resolve.jobs import Progress, drain
from napari_resolve.learn.predict_checks import (
    OUTPUT_SUFFIXES,
    _checkpoint,
    check_finite,
    check_lres_voxels,
    check_model_fits,
    check_result_output,
    check_sampling,
    check_std_output,
    output_grid,
)
from napari_resolve.learn.sinks import SlabSink, TileDone
from napari_resolve.learn.tiling import (
    BLENDS,
    DEFAULT_BLEND,
    DEFAULT_MEMORY_BUDGET,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    axis_weights,
    fit_tile_to_memory,
    lres_grid_tile_z,
    overlap_shape,
    round_up,
    tile_shape,
    tile_spans,
    tile_starts,
)

__all__ = [
    "BLENDS",
    "DEFAULT_BLEND",
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "OUTPUT_SUFFIXES",
    "PredictPlan",
    "PredictResult",
    "TileDone",
    "check_lres_voxels",
    "check_model_fits",
    "iter_predict",
    "output_grid",
    "plan_predict",
    "run_predict",
    "tile_starts",
]

#: Smallest part (output voxels along the cut axis) a tile is cut into when it runs out of device memory.
MIN_SPLIT = 8


@dataclass(frozen=True, eq=False)
class PredictPlan:
    """A checked prediction, ready to run with :func:`iter_predict` (made by :func:`plan_predict`).

    Attributes
    ----------
    checkpoint : Checkpoint
        The model.
    lres : array-like
        The LRES scan (2D or 3D), read lazily tile by tile.
    lres_voxel_um : tuple of float
        Its voxel size (um).
    grid : Grid
        The result's grid: shape, voxel size and origin (um, LRES frame).
    tile, overlap : (int, int, int)
        Tile and blending overlap (output voxels, z y x), after rounding the
        tile to the network's downsampling factor.
    halo : (int, int, int)
        Input margin predicted and discarded around each tile (output voxels);
        for networks on the LRES grid, the LRES voxels read around each tile's
        footprint.
    blend : str
        One of :data:`~napari_resolve.learn.tiling.BLENDS`.
    device : str
        The torch device the network runs on (``"cpu"``, ``"cuda"``...).
    out_path : Path or None
        The file the result is streamed to; None keeps it in memory.
    overwrite : bool
        Whether an existing ``out_path`` is replaced.
    spans : tuple of three tuples of (start, stop)
        The tiles along z, y and x (output voxels).
    network : torch.nn.Module
        The network with the model's weights (on the CPU until the run).
    error_map : ErrorMapPlan or None
        The error map computed alongside (:mod:`napari_resolve.learn.uncertainty`).
    fit_memory : bool
        Whether the run sizes the tile from the GPU's free memory (the default tile on CUDA):
        ``tile`` and ``spans`` are then the smallest the run uses.
    variants : tuple
        The predictions each tile averages: in-plane flips (test-time augmentation) or a diffusion
        model's sample numbers; empty for the plain prediction.
    std_path : Path or None
        Where a diffusion model's per-voxel standard deviation of its samples is streamed to.
    """

    checkpoint: Any = field(repr=False)
    lres: Any = field(repr=False)
    lres_voxel_um: tuple[float, ...]
    grid: Grid
    tile: tuple[int, int, int]
    overlap: tuple[int, int, int]
    halo: tuple[int, int, int]
    blend: str
    device: str
    out_path: Path | None
    overwrite: bool
    spans: tuple[tuple[tuple[int, int], ...], ...] = field(repr=False)
    network: Any = field(repr=False)
    error_map: Any = None
    fit_memory: bool = False
    variants: tuple = ()
    std_path: Path | None = None

    @property
    def ndim(self) -> int:
        """2 for an image, 3 for a volume."""
        return self.grid.ndim

    @property
    def n_tiles(self) -> int:
        """Tiles the run will predict."""
        return int(np.prod([len(s) for s in self.spans]))

    @property
    def nbytes(self) -> int:
        """Size of the result (float32)."""
        return int(np.prod(self.grid.shape)) * 4


@dataclass
class PredictResult:
    """An upscaled region.

    Attributes
    ----------
    data : ndarray or None
        The result (HRES grey values, float32) when kept in memory.
    path : Path or None
        The written file, when streamed to disk.
    grid : Grid
        Shape, voxel size and origin (um, LRES frame) of the result: its napari
        ``scale`` and ``translate``.
    seconds : float
        Wall time of the run.
    tiles : int
        Tiles predicted.
    device : str
        Where the network ran.
    uncertainty : ndarray or None
        The calibrated error map (grey values, same grid) when asked for and kept in memory.
    uncertainty_path : Path or None
        Where the error map was written.
    signals : dict or None
        The raw error-map signals of the whole grid, when asked for (``keep_signals``).
    coverage : float or None
        The error map's coverage on the model's validation block (0 to 1).
    """

    data: np.ndarray | None
    path: Path | None
    grid: Grid
    seconds: float
    tiles: int
    device: str
    uncertainty: np.ndarray | None = None
    uncertainty_path: Path | None = None
    signals: dict | None = None
    coverage: float | None = None
    std_path: Path | None = None

    def summary(self) -> dict:
        """What ``napari-resolve predict`` prints."""
        return {
            "origin_um": list(self.grid.origin_um),
            "voxel_um": list(self.grid.voxel_um),
            "shape": list(self.grid.shape),
            "seconds": round(self.seconds, 2),
            "tiles": self.tiles,
            "device": self.device,
            "output": None if self.path is None else str(self.path),
            **({} if self.uncertainty_path is None else {
                "uncertainty": str(self.uncertainty_path),
                "uncertainty_validation_coverage": None if self.coverage is None else round(self.coverage, 3)}),
            **({} if self.std_path is None else {"sample_std": str(self.std_path)}),
        }


# ----------------------------------------------------------------------------- plan


def plan_predict(
    model,
    lres,
    lres_voxel_um,
    *,
    roi=None,
    tile: int | tuple[int, ...] | None = None,
    overlap: int | tuple[int, ...] | None = None,
    margin: int | None = None,
    blend: str = DEFAULT_BLEND,
    out_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    device: str | None = "auto",
    grid: Grid | None = None,
    uncertainty: bool = False,
    uncertainty_path: str | os.PathLike | None = None,
    tta: bool = False,
    error_imaging=None,
    keep_signals: bool = False,
    samples: int | None = None,
    steps: int | None = None,
    std_path: str | os.PathLike | None = None,
) -> PredictPlan:
    """Check a prediction and plan its tiles; refuses bad input before any work.

    Nothing is predicted, written or read from ``lres`` here (only its shape).

    Parameters
    ----------
    model : Checkpoint or path-like
        A trained model (see :func:`napari_resolve.models.checkpoint.load_checkpoint`).
    lres : array-like
        The LRES scan (2D or 3D; numpy, zarr or any lazily sliced array).
    lres_voxel_um : float or sequence of float
        Its voxel size (um); must match the model's training LRES voxel size (1 %).
    roi : sequence of slice, optional
        LRES voxels to upscale (default all).
    tile : int or sequence of int, optional
        Output voxels per tile; an int sets y and x (z is chosen: 16 slices for
        slice-wise models, the int for 3D ones), two ints y and x, three z, y, x.
        Default :data:`~napari_resolve.learn.tiling.DEFAULT_TILE` in-plane.
        Rounded down to the network's downsampling factor.
    overlap : int or sequence of int, optional
        Blending overlap of neighbouring tiles (output voxels), default
        :data:`~napari_resolve.learn.tiling.DEFAULT_OVERLAP` (none in z for
        slice-wise models).
    margin : int, optional
        In-plane input margin discarded around each tile; default the model's
        receptive radius. Smaller margins are faster but can show seams. For
        networks on the LRES grid: LRES voxels read around each tile's
        footprint on every axis (default: the network's reach).
    blend : {"linear", "gaussian"}
        Blending weights.
    out_path : path-like, optional
        ``.tif`` (OME-TIFF) or ``.zarr`` file to stream the result to. Without
        it the result is kept in memory, which must fit ``memory_budget``.
    overwrite : bool
        Replace an existing ``out_path``.
    memory_budget : int
        Bytes an in-memory result may take.
    device : str
        "auto", "cpu", "cuda" or "mps".
    grid : Grid, optional
        Predict on this grid (LRES frame, HRES voxel size) instead of the one
        derived from ``roi`` (e.g. exactly the HRES grid, for validation).
    uncertainty : bool
        Also compute the calibrated error map (:mod:`napari_resolve.learn.uncertainty`):
        at each voxel, a value (grey values) the true |error| stays below for 90 % of
        voxels. Needs a model calibrated at the end of its training on a pair.
    uncertainty_path : path-like, optional
        ``.tif`` or ``.zarr`` to stream the map to (implies ``uncertainty``); without
        it the map is kept in memory (``memory_budget`` applies to it too).
    tta : bool
        With ``uncertainty``: add the spread of the 8 in-plane flips and rotations to
        the map (about 8x the network's time); the result is then their mean.
    error_imaging : ImagingModel, optional
        While calibrating: compute the raw signals with this imaging model (no map).
    keep_signals : bool
        Also return the raw signals (``PredictResult.signals``), for validation.
    samples, steps : int, optional
        Generative models (``diffusion``): samples drawn per voxel (the result is their mean, their
        standard deviation the error map's spread signal; default 1) and sampler steps (default the model's).
    std_path : path-like, optional
        ``.tif`` or ``.zarr`` to stream that standard deviation to (grey values, same grid; 2 samples or more).

    Returns
    -------
    PredictPlan

    Raises
    ------
    FileFormatError
        For an unreadable model file, an output of another format, an existing
        output without ``overwrite``, or a missing output folder.
    VoxelSizeError
        For an LRES voxel size other than the model's.
    InputError
        For wrong dimensions, an ROI outside the LRES, bad tile, overlap,
        margin or blend values, or an unavailable device.
    ResolveError
        For an in-memory result larger than ``memory_budget``.
    """
    from napari_resolve.devices import resolve_device

    ckpt = _checkpoint(model)
    shape = tuple(int(n) for n in lres.shape) if hasattr(lres, "shape") else None
    lv = check_model_fits(ckpt, shape, lres_voxel_um)
    ndim = len(shape)
    if blend not in BLENDS:
        raise InputError(
            f"Unknown blending {blend!r} ({{blend}}); choose one of {', '.join(BLENDS)}.", parameters=("blend",)
        )
    if grid is None:
        grid = output_grid(ckpt, shape, lv, roi)
    elif grid.ndim != ndim:
        raise InputError(f"The grid is {grid.ndim}D but the LRES is {ndim}D.")

    path = check_result_output(grid, out_path, overwrite, memory_budget)

    net = ckpt.build()  # FileFormatError if the weights do not fit the architecture
    samples = check_sampling(net, samples, steps, tta)
    std = check_std_output(std_path, samples, overwrite, (path, uncertainty_path))
    mz, my, mx = net.size_multiple
    rz, ry, rx = net.receptive_radius
    if margin is not None and int(margin) < 0:
        raise InputError(f"The {{margin}} must be at least 0, got {margin}.", parameters=("margin",))
    lres_grid = net.input_grid == "lres"
    if lres_grid:
        from napari_resolve.learn.lres_pairs import lres_halo

        # LRES voxels read around each tile's footprint, on every axis.
        halo = (lres_halo(net),) * 3 if margin is None else (int(margin),) * 3
    else:
        m_y = ry if margin is None else int(margin)
        m_x = rx if margin is None else int(margin)
        halo = (net.trim_z + rz, round_up(m_y, my), round_up(m_x, mx))
    tile3 = tile_shape(tile, net.volumetric, (mz, my, mx), lres_grid)
    shape3 = grid.shape if ndim == 3 else (1,) + tuple(grid.shape)
    if lres_grid and tile is None:
        tile3 = (lres_grid_tile_z(shape3),) + tile3[1:]
    ov3 = overlap_shape(overlap, net.volumetric, lres_grid)
    if any(o < 0 or o >= t for o, t in zip(ov3, tile3)):
        raise InputError(
            f"The overlap {ov3} must be at least 0 and smaller than the tile {tile3} (output voxels, z y x); "
            "choose a smaller {overlap} or a larger {tile}.",
            parameters=("overlap", "tile"),
        )
    spans = tile_spans(shape3, tile3, ov3, (mz, my, mx))
    dev = resolve_device(device)
    error_map = None
    if uncertainty or uncertainty_path is not None or error_imaging is not None:
        from napari_resolve.learn.uncertainty import plan_error_map

        error_map = plan_error_map(ckpt, net, grid, tta=tta or samples > 1, samples=samples,
                                   path=uncertainty_path, overwrite=overwrite,
                                   out_path=path, memory_budget=memory_budget, imaging=error_imaging,
                                   keep_signals=keep_signals)
    return PredictPlan(
        checkpoint=ckpt, lres=lres, lres_voxel_um=lv, grid=grid, tile=tile3, overlap=ov3, halo=halo,
        blend=blend, device=str(dev), out_path=path, overwrite=bool(overwrite), spans=spans, network=net,
        error_map=error_map, fit_memory=tile is None and dev.type == "cuda",
        variants=error_map.variants if error_map is not None else tuple(range(samples if samples > 1 else 0)),
        std_path=std,
    )


# ----------------------------------------------------------------------------- run


def iter_predict(plan, *args, **kwargs) -> Generator[Progress, None, PredictResult]:
    """Upscale an LRES region tile by tile; yields progress, returns the result.

    Parameters
    ----------
    plan : PredictPlan
        Made by :func:`plan_predict`. For older callers, the arguments of
        :func:`plan_predict` (``model, lres, lres_voxel_um, **options``) are
        accepted too and planned at once (so bad input raises here, before
        the generator is returned).

    Yields
    ------
    Progress
        After every tile; ``data`` is a :class:`TileDone`, ``remaining_s`` an
        estimate from the tiles after the first (which includes warm-up).

    Returns
    -------
    PredictResult
    """
    if not isinstance(plan, PredictPlan):
        plan = plan_predict(plan, *args, **kwargs)
    elif args or kwargs:
        raise TypeError("iter_predict(plan) takes no other arguments; give them to plan_predict.")
    return _run(plan)


def _run(plan: PredictPlan) -> Generator[Progress, None, PredictResult]:
    import torch

    from napari_resolve.devices import autocast_dtype, describe_device, device_memory, is_out_of_memory
    from napari_resolve.io import atomic_path
    from napari_resolve.learn.uncertainty import ErrorMapStream, predict_variants

    t0 = time.perf_counter()
    dev = torch.device(plan.device)
    amp = autocast_dtype(dev)
    net = plan.network.to(dev)
    ckpt, grid, ndim = plan.checkpoint, plan.grid, plan.ndim
    norm_in, norm_out = ckpt.norm_in, ckpt.norm_out
    # Work in 3D throughout: a 2D image is a one-slice volume.
    lv = plan.lres_voxel_um
    lres3 = plan.lres if ndim == 3 else OneSlice(plan.lres)
    lv3 = lv if ndim == 3 else (lv[0],) + lv
    grid3 = grid if ndim == 3 else Grid((1,) + grid.shape, (grid.voxel_um[0],) + grid.voxel_um, (0.0,) + grid.origin_um)
    mz, my, mx = net.size_multiple
    rz = net.receptive_radius[0]
    _, ny, nx = grid3.shape

    lres_grid = net.input_grid == "lres"
    if lres_grid and dev.type == "cpu":
        # oneDNN's 3D convolutions run about twice as fast on channels-last tensors on the CPU
        # (benchmarks/speed.py); the network converts its input itself.
        net = net.to(memory_format=torch.channels_last_3d)

    def network_input(z0, z1, y0, y1, x0, x1):
        """The tile's network input: the pre-upsampled LRES with margins, or the LRES block and positions."""
        if lres_grid:
            from napari_resolve.learn.lres_pairs import tile_block

            block, pos = tile_block(lres3, lv3, grid3, ((z0, z1), (y0, y1), (x0, x1)), plan.halo)
            pos = tuple(torch.from_numpy(p).to(dev) for p in pos)
            return (torch.from_numpy(norm_in.apply(block))[None].to(dev), pos), 0, (0, 0)
        hz, hy, hx = plan.halo
        size_y = round_up(y1 - y0 + 2 * hy, my)
        size_x = round_up(x1 - x0 + 2 * hx, mx)
        size_z = round_up(z1 - z0 + 2 * hz, mz)
        sub = Grid(
            (size_z, size_y, size_x),
            grid3.voxel_um,
            tuple(o + (s - h) * v for o, s, h, v in zip(grid3.origin_um, (z0, y0, x0), plan.halo, grid3.voxel_um)),
        )
        inp = norm_in.apply(resample_lres(lres3, lv3, sub))
        # A 3D model's z halo is still in its output; a 2.5D model consumed its own.
        return (torch.from_numpy(inp)[None].to(dev),), rz, (hy, hx)

    splits = []  # tiles retried in parts after running out of device memory, for the progress message

    emap, variants = plan.error_map, plan.variants

    def predict_fitting(z0, z1, y0, y1, x0, x1) -> np.ndarray:
        """A tile's prediction (and spread: channels first); out of memory, it is cut in two and retried.

        Exact: every part reads the input margin it needs, like any tile.
        """
        try:
            return predict_tile(z0, z1, y0, y1, x0, x1)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            box = [[z0, z1], [y0, y1], [x0, x1]]
            mult = (mz, my, mx)
            sizes = [(b - a) // m * m if ax or net.volumetric or lres_grid else 0
                     for ax, ((a, b), m) in enumerate(zip(box, mult))]
            ax = int(np.argmax(sizes))
            half = (box[ax][1] - box[ax][0]) // 2 // mult[ax] * mult[ax]
            if half < max(MIN_SPLIT, mult[ax]):
                raise
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            splits.append((z1 - z0) * (y1 - y0) * (x1 - x0))
            lo, hi = [list(b) for b in box], [list(b) for b in box]
            lo[ax][1] = hi[ax][0] = box[ax][0] + half
            parts = [predict_fitting(*(v for pair in part for v in pair)) for part in (lo, hi)]
            return np.concatenate(parts, axis=ax + 1)

    def predict_tile(z0, z1, y0, y1, x0, x1) -> np.ndarray:
        args, zc, (hy, hx) = network_input(z0, z1, y0, y1, x0, x1)
        with torch.inference_mode(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            out = predict_variants(net, args, variants, lres_grid, origin=(z0, y0 - hy, x0 - hx))
        out = out[:, zc : zc + (z1 - z0), hy : hy + (y1 - y0), hx : hx + (x1 - x0)]
        pred = check_finite(norm_out.invert(out.cpu().numpy()), (z0, y0, x0), amp, describe_device(dev), args)
        # With test-time augmentation (or a diffusion model's samples) the result is the variants' mean, and
        # their spread goes to the error map.
        return np.stack([pred.mean(0), pred.std(0)]) if len(pred) > 1 else pred

    tile3, spans, memory = plan.tile, plan.spans, device_memory(dev) if plan.fit_memory else None
    if memory is not None:
        tile3, _ = fit_tile_to_memory(tile3, grid3.shape, (mz, my, mx), plan.overlap, memory,
                                      lambda box: predict_tile(*(v for span in box for v in span)))
        spans = tile_spans(grid3.shape, tile3, plan.overlap, (mz, my, mx))
    z_tiles, y_tiles, x_tiles = ([(a, b, w) for (a, b), w in zip(s, axis_weights(s, plan.blend))] for s in spans)
    total = int(np.prod([len(s) for s in spans]))
    if memory is not None:
        yield Progress(0, total, f"{total} tiles of {format_shape(tile3)} output voxels fit the free memory "
                       f"of {describe_device(dev)}")

    def run(sink: SlabSink, stream) -> Generator[Progress, None, int]:
        done, voxels, t_first = 0, 0, None
        # Rolling accumulator over the z range of unfinished rows of tiles.
        buf_z0 = 0
        acc = np.zeros((2 if variants else 1, 0, ny, nx), np.float32)
        # Tiles that do not overlap cover every voxel once: no weights to multiply, sum and divide by.
        blend = any(plan.overlap)
        wsum = np.zeros((0, ny, nx), np.float32)
        for k, (z0, z1, wz) in enumerate(z_tiles):
            if z1 - buf_z0 > acc.shape[1]:
                grow = z1 - buf_z0 - acc.shape[1]
                acc = np.concatenate([acc, np.zeros((len(acc), grow, ny, nx), np.float32)], axis=1)
                if blend:
                    wsum = np.concatenate([wsum, np.zeros((grow, ny, nx), np.float32)])
            for y0, y1, wy in y_tiles:
                for x0, x1, wx in x_tiles:
                    n_split = len(splits)
                    try:
                        pred = predict_fitting(z0, z1, y0, y1, x0, x1)
                    except (RuntimeError, MemoryError) as exc:
                        if is_out_of_memory(exc):
                            raise ResolveError(
                                f"{describe_device(dev)} ran out of memory on a tile of {format_shape(tile3)} "
                                f"output voxels, also cut down to parts of {MIN_SPLIT} voxels. Use a smaller "
                                "{tile}, or set {device} to cpu.",
                                parameters=("tile", "device"),
                            ) from exc
                        raise
                    w = wz[:, None, None] * wy[None, :, None] * wx[None, None, :] if blend else None
                    if blend:
                        acc[:, z0 - buf_z0 : z1 - buf_z0, y0:y1, x0:x1] += pred * w
                        wsum[z0 - buf_z0 : z1 - buf_z0, y0:y1, x0:x1] += w
                    else:
                        acc[:, z0 - buf_z0 : z1 - buf_z0, y0:y1, x0:x1] = pred
                    done += 1
                    voxels += pred[0].size
                    now = time.perf_counter()
                    # The first tile pays for warm-up (device transfer, kernel selection): estimate from the rest.
                    t_first = now if t_first is None else t_first
                    left = (now - t_first) / (done - 1) * (total - done) if done > 1 else None
                    box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
                    info = TileDone(box if ndim == 3 else box[1:], now - t0, voxels)
                    note = ""
                    if len(splits) > n_split:
                        note = (f"; out of {describe_device(dev)} memory, tile {done} was predicted in "
                                f"{len(splits) - n_split + 1} parts (a smaller tile avoids the retries)")
                    yield Progress(done, total, f"tile {done}/{total} ({format_rate(info.voxels_per_s)}){note}",
                                   data=info, remaining_s=left)
            # Slices before the next row's start are final: write them, forget them.
            final = z_tiles[k + 1][0] if k + 1 < len(z_tiles) else grid3.shape[0]
            n = final - buf_z0
            if n > 0:
                slab = acc[:, :n] / wsum[:n] if blend else acc[:, :n]
                sink.write(buf_z0, final, slab[0])
                if std_sink is not None:
                    std_sink.write(buf_z0, final, slab[1])
                if stream is not None:
                    stream.push(buf_z0, final, slab[0], slab[1] if variants else None)
                acc = acc[:, n:].copy()
                if blend:
                    wsum = wsum[n:].copy()
                buf_z0 = final
        return done

    path = plan.out_path
    with ExitStack() as files:
        tmp = None if path is None else files.enter_context(atomic_path(path, overwrite=plan.overwrite))
        sink, stream, map_sink, std_sink = SlabSink(grid3, ndim, path, tmp), None, None, None
        if plan.std_path is not None:
            std_sink = SlabSink(grid3, ndim, plan.std_path, files.enter_context(atomic_path(plan.std_path,
                                                                                           overwrite=plan.overwrite)))
        if emap is not None:
            utmp = None if emap.path is None else files.enter_context(atomic_path(emap.path, overwrite=emap.overwrite))
            map_sink = SlabSink(grid3, ndim, emap.path, utmp)
            stream = ErrorMapStream(lres3, lv3, grid3, emap.imaging, emap.calibration,
                                    map_sink.write if emap.calibration is not None else None, keep=emap.keep_signals)
        tiles = yield from run(sink, stream)
        for done in (sink, map_sink, std_sink):
            done is not None and done.finish()
    result = PredictResult(sink.array if path is None else None, path, grid, time.perf_counter() - t0, tiles,
                           describe_device(dev), std_path=plan.std_path)
    if emap is not None:
        result.signals = stream.result_signals()
        if emap.calibration is not None:
            result.uncertainty = map_sink.array if emap.path is None else None
            result.uncertainty_path, result.coverage = emap.path, emap.calibration.coverage
    return result


def run_predict(model, lres=None, lres_voxel_um=None, **kwargs) -> PredictResult:
    """A prediction planned (:func:`plan_predict`) and run to the end (for scripts and tests).

    ``model`` may also be a :class:`PredictPlan` (then give nothing else).
    """
    if isinstance(model, PredictPlan):
        return drain(iter_predict(model))
    return drain(iter_predict(plan_predict(model, lres, lres_voxel_um, **kwargs)))
