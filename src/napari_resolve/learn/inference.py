"""Tiled prediction over an LRES region, blended without seams, streamed to disk.

How a region is upscaled:

1. The output grid is the HRES-sized grid over the LRES ROI, in phase with the
   grid the model was trained on (:func:`napari_resolve.grid.upscale_grid`).
2. The grid is cut into overlapping tiles. Each tile's input is the LRES
   interpolated (cubic) onto the tile's grid *extended by a margin*: in y and x
   the network's receptive radius (rounded up to its downsampling factor), in z
   the slices a 2.5D model consumes plus, for 3D models, their receptive radius.
   The margin is interpolated from the real LRES around the tile, predicted, and
   discarded, so the kept voxels never see the zero padding at a tile edge.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import (
    FileFormatError,
    InputError,
    ResolveError,
    VoxelSizeError,
)
from napari_resolve.geometry.grid import Grid, check_roi, resample_lres, upscale_grid

#: Default in-plane tile (output voxels) and blending overlap.
DEFAULT_TILE = 128
DEFAULT_OVERLAP = 16
#: Outputs above this many bytes must go to a file (they are streamed).
DEFAULT_MEMORY_BUDGET = 2 * 2**30
BLENDS = ("linear", "gaussian")


@dataclass(frozen=True)
class PredictProgress:
    """One finished tile: ``step`` of ``total``, with a message."""

    step: int
    total: int
    message: str
    seconds: float


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
        Wall time.
    tiles : int
        Tiles predicted.
    device : str
        Where the network ran.
    """

    data: np.ndarray | None
    path: Path | None
    grid: Grid
    seconds: float
    tiles: int
    device: str

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
        }


# ----------------------------------------------------------------------------- tiling


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def tile_starts(n: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of tiles covering ``range(n)``.

    Starts are multiples of ``multiple``; consecutive tiles overlap by at least
    ``overlap`` voxels; the last tile ends at ``n`` (it may be shorter).
    """
    if tile >= n:
        return [(0, n)]
    step = (tile - overlap) // multiple * multiple
    if step < 1:
        raise InputError(
            f"Tiles of {tile} voxels overlapping by {overlap} leave no step that is a multiple of {multiple} "
            "(the network's downsampling); use a larger tile or a smaller overlap."
        )
    out, s = [], 0
    while True:
        out.append((s, min(s + tile, n)))
        if s + tile >= n:
            return out
        s += step


def _ramp(length: int, lo_overlap: int, hi_overlap: int, blend: str) -> np.ndarray:
    """1D blending weight of one tile along one axis (positive everywhere)."""
    i = np.arange(length, dtype=np.float64)
    if blend == "gaussian":
        sigma = max(length / 4, 1.0)
        w = np.exp(-0.5 * ((i - (length - 1) / 2) / sigma) ** 2)
        return np.maximum(w, 1e-3)
    w = np.ones(length)
    if lo_overlap > 0:
        w = np.minimum(w, (i + 1) / (lo_overlap + 1))
    if hi_overlap > 0:
        w = np.minimum(w, (length - i) / (hi_overlap + 1))
    return w


def _axis_tiles(n: int, tile: int, overlap: int, multiple: int, blend: str):
    """Tiles along one axis with their weights (overlaps with the neighbours)."""
    spans = tile_starts(n, tile, overlap, multiple)
    out = []
    for k, (a, b) in enumerate(spans):
        lo = spans[k - 1][1] - a if k > 0 else 0
        hi = b - spans[k + 1][0] if k + 1 < len(spans) else 0
        out.append((a, b, _ramp(b - a, lo, hi, blend).astype(np.float32)))
    return out


# ----------------------------------------------------------------------------- outputs


class _Sink:
    """Where finished slabs go: memory, a zarr array or a TIFF memory map."""

    def __init__(self, grid: Grid, ndim_out: int, path: Path | None, tmp: Path | None):
        self.path, self.grid = path, grid
        shape = grid.shape if ndim_out == 3 else grid.shape[1:]
        voxel = grid.voxel_um if ndim_out == 3 else grid.voxel_um[1:]
        origin = grid.origin_um if ndim_out == 3 else grid.origin_um[1:]
        self.squeeze = ndim_out == 2
        if tmp is None:
            self.array = np.empty(shape, np.float32)
        elif tmp.suffix.lower() == ".zarr" or path.suffix.lower() == ".zarr":
            from napari_resolve.io import create_zarr

            self.array = create_zarr(tmp, shape, np.float32, voxel, origin)
        else:
            # Create the OME-TIFF with contiguous pixel data, note where the data
            # start, and unmap it. Slabs are then written through short-lived
            # maps of just their bytes: a map of the whole file would keep every
            # written page in this process's resident memory until the end.
            mm = _tiff_memmap(tmp, shape, voxel, origin, path.name)
            self.tiff = (tmp, int(mm.offset), tuple(shape))
            del mm
            self.array = None

    def write(self, z0: int, z1: int, slab: np.ndarray) -> None:
        if self.array is None:
            tmp, offset, shape = self.tiff
            plane = int(np.prod(shape[1:])) if len(shape) == 3 else int(np.prod(shape))
            rows = (z1 - z0) if len(shape) == 3 else 1
            mm = np.memmap(tmp, np.float32, "r+", offset=offset + z0 * plane * 4,
                           shape=(rows,) + tuple(shape[-2:]))
            mm[:] = slab
            mm.flush()
            del mm
        elif self.squeeze:
            self.array[...] = slab[0]
        else:
            self.array[z0:z1] = slab

    def close(self) -> None:
        pass


def _tiff_memmap(path: Path, shape, voxel, origin, name: str) -> np.memmap:
    """An OME-TIFF on disk, written through a memory map (contiguous strips)."""
    import tifffile

    from napari_resolve.io import ome_metadata

    md = ome_metadata(shape, voxel, origin, name)
    big = int(np.prod(shape)) * 4 > 2**31 - 2**25
    return tifffile.memmap(path, shape=tuple(shape), dtype="float32", ome=True, metadata=md,
                           photometric="minisblack", bigtiff=big)


# ----------------------------------------------------------------------------- prediction


def check_lres_voxels(ckpt, lres_voxel: tuple[float, ...]) -> None:
    """Refuse an LRES whose voxel size differs by more than 1 % from the model's training LRES.

    Raises
    ------
    VoxelSizeError
        Saying both sizes and what to do.
    """
    trained = tuple(ckpt.lres_voxel_um)[-len(lres_voxel):]
    if any(abs(a / b - 1) > 0.01 for a, b in zip(lres_voxel, trained)):
        raise VoxelSizeError(
            f"This LRES has {_um(lres_voxel)} voxels but the model was trained on {_um(trained)} LRES voxels; "
            "it learned that resolution step only. Use an LRES scanned at the training voxel size, or "
            "train a model on a pair at this voxel size."
        )


def _um(v) -> str:
    return " x ".join(f"{x:g}" for x in v) + " um"


def iter_predict(
    model,
    lres,
    lres_voxel_um,
    *,
    roi=None,
    tile: int | tuple[int, int, int] | None = None,
    overlap: int | tuple[int, int, int] | None = None,
    margin: int | None = None,
    blend: str = "linear",
    out_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    device: str | None = "auto",
    grid: Grid | None = None,
) -> Generator[PredictProgress, None, PredictResult]:
    """Upscale an LRES region tile by tile; yields progress, returns the result.

    Parameters
    ----------
    model : Checkpoint or path-like
        A trained model (see :func:`napari_resolve.models.checkpoint.load_checkpoint`).
    lres : array-like
        The LRES scan (2D or 3D; numpy, zarr or any lazily sliced array).
    lres_voxel_um : float or sequence of float
        Its voxel size (um); must match the model's training LRES voxel size.
    roi : sequence of slice, optional
        LRES voxels to upscale (default all).
    tile : int or (z, y, x), optional
        Output voxels per tile; an int sets y and x (z is chosen: 16 slices for
        slice-wise models, the int for 3D ones). Default 128.
    overlap : int or (z, y, x), optional
        Blending overlap of neighbouring tiles (output voxels), default 16.
    margin : int, optional
        In-plane input margin discarded around each tile; default the model's
        receptive radius. Smaller margins are faster but can show seams.
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

    Yields
    ------
    PredictProgress
        After every tile.

    Returns
    -------
    PredictResult
    """
    import torch

    from napari_resolve.devices import (
        autocast_dtype,
        describe_device,
        is_out_of_memory,
        resolve_device,
    )
    from napari_resolve.io import atomic_path
    from napari_resolve.models.checkpoint import Checkpoint, load_checkpoint

    t0 = time.perf_counter()
    ckpt = model if isinstance(model, Checkpoint) else load_checkpoint(model)
    if not hasattr(lres, "shape") or len(lres.shape) not in (2, 3):
        raise InputError(f"The LRES must be a 2D image or a 3D volume, got shape {getattr(lres, 'shape', None)}.")
    ndim = len(lres.shape)
    if len(ckpt.hres_voxel_um) != ndim:
        raise InputError(f"The model was trained on {len(ckpt.hres_voxel_um)}D data; this LRES is {ndim}D.")
    lv = voxel_tuple(lres_voxel_um, ndim, "LRES voxel size")
    check_lres_voxels(ckpt, lv)
    if blend not in BLENDS:
        raise InputError(f"Unknown blending {blend!r}; choose one of {', '.join(BLENDS)}.")
    if grid is None:
        roi = check_roi(roi, lres.shape, "the LRES (LRES voxels)")
        grid = upscale_grid(roi, lv, ckpt.hres_voxel_um, ckpt.phase_origin_um)
    net = ckpt.build()
    # Work in 3D throughout: a 2D image is a one-slice volume.
    lres3 = lres if ndim == 3 else _OneSlice(lres)
    lv3 = lv if ndim == 3 else (lv[0],) + lv
    grid3 = grid if ndim == 3 else Grid((1,) + grid.shape, (grid.voxel_um[0],) + grid.voxel_um, (0.0,) + grid.origin_um)

    nbytes = int(np.prod(grid3.shape)) * 4
    path = Path(out_path) if out_path is not None else None
    if path is None and nbytes > memory_budget:
        raise ResolveError(
            f"The upscaled region would be {nbytes / 2**30:.1f} GiB ({' x '.join(map(str, grid.shape))} voxels), "
            f"more than the {memory_budget / 2**30:.1f} GiB allowed in memory. Write it to a file "
            "(-o OUT.zarr or OUT.tif), which streams it slab by slab, or choose a smaller ROI."
        )
    if path is not None and path.suffix.lower() not in (".tif", ".tiff", ".zarr"):
        raise FileFormatError(f"{path.name}: the output must be .tif (OME-TIFF) or .zarr.")

    mz, my, mx = net.size_multiple
    rz, ry, rx = net.receptive_radius
    m_in = ry if margin is None else int(margin)
    if m_in < 0:
        raise InputError(f"margin must be >= 0, got {margin}.")
    m_x = rx if margin is None else int(margin)
    halo = (net.trim_z + rz, _round_up(m_in, my), _round_up(m_x, mx))
    # Slice-wise models see 16 output slices per tile; 3D models a cube.
    if tile is not None and np.isscalar(tile) and net.volumetric:
        tz_default = int(tile)
    else:
        tz_default = 64 if net.volumetric else 16
    if tile is None:
        tile3 = (tz_default, DEFAULT_TILE, DEFAULT_TILE)
    elif np.isscalar(tile):
        tile3 = (tz_default, int(tile), int(tile))
    else:
        tile3 = tuple(int(t) for t in tile)
    if overlap is None:
        ov3 = (0 if not net.volumetric else DEFAULT_OVERLAP, DEFAULT_OVERLAP, DEFAULT_OVERLAP)
    elif np.isscalar(overlap):
        ov3 = (int(overlap) if net.volumetric else 0, int(overlap), int(overlap))
    else:
        ov3 = tuple(int(o) for o in overlap)
    tile3 = tuple(max(m, t // m * m) for t, m in zip(tile3, (mz, my, mx)))
    if any(o < 0 or o >= t for o, t in zip(ov3, tile3)):
        raise InputError(f"The overlap {ov3} must be at least 0 and smaller than the tile {tile3}.")

    dev = resolve_device(device)
    amp = autocast_dtype(dev)
    net = net.to(dev)
    norm_in, norm_out = ckpt.norm_in, ckpt.norm_out
    z_tiles = _axis_tiles(grid3.shape[0], tile3[0], ov3[0], mz, blend)
    y_tiles = _axis_tiles(grid3.shape[1], tile3[1], ov3[1], my, blend)
    x_tiles = _axis_tiles(grid3.shape[2], tile3[2], ov3[2], mx, blend)
    total = len(z_tiles) * len(y_tiles) * len(x_tiles)
    _, ny, nx = grid3.shape

    def predict_tile(z0, z1, y0, y1, x0, x1) -> np.ndarray:
        hz, hy, hx = halo
        size_y = _round_up(y1 - y0 + 2 * hy, my)
        size_x = _round_up(x1 - x0 + 2 * hx, mx)
        size_z = _round_up(z1 - z0 + 2 * hz, mz)
        sub = Grid(
            (size_z, size_y, size_x),
            grid3.voxel_um,
            tuple(o + (s - h) * v for o, s, h, v in zip(grid3.origin_um, (z0, y0, x0), halo, grid3.voxel_um)),
        )
        inp = norm_in.apply(resample_lres(lres3, lv3, sub))
        t = torch.from_numpy(inp)[None].to(dev)
        with torch.inference_mode(), torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            out = net(t)[0].float()
        zc = rz  # a 3D model's z halo is still in its output; a 2.5D model consumed its own
        out = out[zc : zc + (z1 - z0), hy : hy + (y1 - y0), hx : hx + (x1 - x0)]
        return norm_out.invert(out.cpu().numpy())

    def run(sink: _Sink) -> Generator[PredictProgress, None, int]:
        done = 0
        # Rolling accumulator over the z range of unfinished rows of tiles.
        buf_z0 = 0
        acc = np.zeros((0, ny, nx), np.float32)
        wsum = np.zeros((0, ny, nx), np.float32)
        for k, (z0, z1, wz) in enumerate(z_tiles):
            if z1 - buf_z0 > acc.shape[0]:
                grow = z1 - buf_z0 - acc.shape[0]
                acc = np.concatenate([acc, np.zeros((grow, ny, nx), np.float32)])
                wsum = np.concatenate([wsum, np.zeros((grow, ny, nx), np.float32)])
            for y0, y1, wy in y_tiles:
                for x0, x1, wx in x_tiles:
                    try:
                        pred = predict_tile(z0, z1, y0, y1, x0, x1)
                    except (RuntimeError, MemoryError) as exc:
                        if is_out_of_memory(exc):
                            raise ResolveError(
                                f"{describe_device(dev)} ran out of memory on a tile of {tile3} voxels. "
                                "Use a smaller --tile, or --device cpu."
                            ) from exc
                        raise
                    w = wz[:, None, None] * wy[None, :, None] * wx[None, None, :]
                    acc[z0 - buf_z0 : z1 - buf_z0, y0:y1, x0:x1] += pred * w
                    wsum[z0 - buf_z0 : z1 - buf_z0, y0:y1, x0:x1] += w
                    done += 1
                    yield PredictProgress(done, total, f"tile {done}/{total}", time.perf_counter() - t0)
            # Slices before the next row's start are final: write them, forget them.
            final = z_tiles[k + 1][0] if k + 1 < len(z_tiles) else grid3.shape[0]
            n = final - buf_z0
            if n > 0:
                sink.write(buf_z0, final, acc[:n] / wsum[:n])
                acc, wsum = acc[n:].copy(), wsum[n:].copy()
                buf_z0 = final
        return done

    name = describe_device(dev)
    if path is None:
        sink = _Sink(grid3, ndim, None, None)
        tiles = yield from run(sink)
        return PredictResult(sink.array, None, grid, time.perf_counter() - t0, tiles, name)
    with atomic_path(path, overwrite=overwrite) as tmp:
        sink = _Sink(grid3, ndim, path, tmp)
        try:
            tiles = yield from run(sink)
        finally:
            sink.close()
    return PredictResult(None, path, grid, time.perf_counter() - t0, tiles, name)


def run_predict(model, lres, lres_voxel_um, **kwargs) -> PredictResult:
    """:func:`iter_predict` run to the end (for scripts and tests)."""
    from napari_resolve.jobs import drain

    return drain(iter_predict(model, lres, lres_voxel_um, **kwargs))


class _OneSlice:
    """A 2D array seen as a (1, y, x) volume, slicing lazily."""

    def __init__(self, a):
        self.a = a
        self.shape = (1,) + tuple(a.shape)

    def __getitem__(self, key):
        return np.asarray(self.a[key[1:]])[None]
