"""How tiled prediction cuts a region into tiles and blends them: the defaults and the tile arithmetic.

This module is the one home of the tiling defaults (:data:`DEFAULT_TILE`,
:data:`DEFAULT_OVERLAP`, :data:`BLENDS`...) and of the in-memory budget of a
prediction; :mod:`napari_resolve.learn.inference`, the ``predict`` command and
the Preview-and-upscale widget import them from here. It needs only numpy, so
the command line can build its help from these values without loading torch.

Tiles start on multiples of the network's downsampling factor (so pooling windows
fall where they fall in a whole-volume pass) and consecutive tiles overlap by at
least the blending overlap. Blend weights are positive everywhere; the caller
divides the weighted sum by the sum of the weights, so they sum to 1 at every voxel.
"""

from __future__ import annotations

import numpy as np

from napari_resolve.errors import InputError

#: In-plane tile (y, x), in output (HRES) voxels.
DEFAULT_TILE = 128
#: Output slices per tile of a slice-wise (2D / 2.5D) network: each output slice is
#: independent, so a thin slab keeps memory low at no cost in exactness.
DEFAULT_TILE_Z = 16
#: Output slices per tile of a 3D network when no tile is given (a cube of an int
#: ``tile`` otherwise): its memory grows with the cube.
DEFAULT_TILE_Z_3D = 64
#: Blending overlap of neighbouring tiles (output voxels), in-plane; also in z for
#: 3D networks (slice-wise ones need none in z).
DEFAULT_OVERLAP = 16
#: Tile (z, y, x, output voxels) of networks on the LRES grid (``input_grid = "lres"``): they read
#: the LRES itself, so a large tile costs little memory and amortises the halo of LRES voxels
#: each tile re-reads (the upsampler's memory is bounded by its own slab, not by the tile).
DEFAULT_TILE_LRES_GRID = (96, 384, 384)
#: Bytes the row of tiles of an LRES-grid network may hold (its accumulator and weights, float32): when
#: the output is thin enough in-plane, the default tile grows in z up to this, so fewer tiles re-read
#: the LRES halo in z (a 144^3 output is one tile).
ROW_BUDGET = 2**30
#: Their smallest tile (output voxels per axis).
MIN_TILE_LRES_GRID = 4
#: Their blending overlap: none. Each tile reads all the LRES its voxels depend on, so
#: neighbouring tiles agree exactly and every output voxel is predicted once.
DEFAULT_OVERLAP_LRES_GRID = 0
#: Blending weights: linear ramps over the overlap, or a Gaussian over the tile.
BLENDS = ("linear", "gaussian")
DEFAULT_BLEND = "linear"
#: An in-memory result may take at most this many bytes; larger ones must be
#: streamed to a file.
DEFAULT_MEMORY_BUDGET = 2 * 2**30
#: Share of a GPU's available memory the default tile may take when it is sized from it
#: (:func:`fit_tile_to_memory`); the rest is for the allocator's fragmentation, cuDNN's
#: workspaces and other processes.
MEMORY_SHARE = 0.5
#: The small tile (z, y, x, output voxels) whose peak memory is measured to size the default tile:
#: small, so that it fits any GPU; its halo share is larger than a real tile's, so the estimate
#: per voxel errs on the safe side.
PROBE_TILE = (16, 64, 64)


def round_up(v: int, m: int) -> int:
    """The smallest multiple of ``m`` that is at least ``v``."""
    return -(-v // m) * m


def tile_starts(n: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of tiles covering ``range(n)``.

    Starts are multiples of ``multiple``; consecutive tiles overlap by at least
    ``overlap`` voxels; the last tile ends at ``n`` (it may be shorter).

    Raises
    ------
    InputError
        If ``tile - overlap`` leaves no step that is a multiple of ``multiple``.
    """
    if tile >= n:
        return [(0, n)]
    step = (tile - overlap) // multiple * multiple
    if step < 1:
        raise InputError(
            f"Tiles of {tile} voxels overlapping by {overlap} leave no step that is a multiple of {multiple} "
            "(the network's downsampling); use a larger {tile} or a smaller {overlap}.",
            parameters=("tile", "overlap"),
        )
    out, s = [], 0
    while True:
        if n - s == 1 and multiple == 1 and tile > 1:
            # A tile one voxel long gives a network its output positions without their spacing, which
            # lres3d's in-plane refinement reads from them (0.3 of the grey range off): start it a
            # voxel earlier, overlapping its neighbour.
            s -= 1
        out.append((s, min(s + tile, n)))
        if s + tile >= n:
            return out
        s += step


def ramp(length: int, lo_overlap: int, hi_overlap: int, blend: str) -> np.ndarray:
    """1D blending weight of one tile along one axis (positive everywhere).

    ``lo_overlap`` and ``hi_overlap`` are the voxels shared with the previous and
    the next tile; ``"linear"`` ramps over them, ``"gaussian"`` ignores them.
    """
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


def axis_weights(spans: list[tuple[int, int]] | tuple[tuple[int, int], ...], blend: str) -> list[np.ndarray]:
    """The float32 weight of every tile of :func:`tile_starts` along its axis (from its overlaps)."""
    out = []
    for k, (a, b) in enumerate(spans):
        lo = spans[k - 1][1] - a if k > 0 else 0
        hi = b - spans[k + 1][0] if k + 1 < len(spans) else 0
        out.append(ramp(b - a, lo, hi, blend).astype(np.float32))
    return out


def tile_shape(tile, volumetric: bool, multiple: tuple[int, int, int], lres_grid: bool = False
               ) -> tuple[int, int, int]:
    """The (z, y, x) tile in output voxels for a ``tile`` argument, rounded down to the network's multiple.

    ``None`` gives the defaults (:data:`DEFAULT_TILE_LRES_GRID` for networks on
    the LRES grid); an int sets y and x (and z for a 3D network); two ints set y
    and x, three z, y and x. Every axis is at least one multiple.

    Raises
    ------
    InputError
        If ``tile`` is not one, two or three positive numbers.
    """
    z_default = DEFAULT_TILE_Z_3D if volumetric else DEFAULT_TILE_Z
    if lres_grid:
        z_default = DEFAULT_TILE_LRES_GRID[0]
    if tile is None:
        tile3 = DEFAULT_TILE_LRES_GRID if lres_grid else (z_default, DEFAULT_TILE, DEFAULT_TILE)
    elif np.isscalar(tile):
        tile3 = (int(tile) if volumetric else DEFAULT_TILE_Z, int(tile), int(tile))
    else:
        tile3 = tuple(int(t) for t in tile)
        tile3 = (z_default, *tile3) if len(tile3) == 2 else tile3
    if len(tile3) != 3 or any(t < 1 for t in tile3):
        raise InputError(
            f"The {{tile}} must be one positive number (y and x), two (y, x) or three (z, y, x); got {tile!r}.",
            parameters=("tile",),
        )
    if lres_grid and min(tile3) < MIN_TILE_LRES_GRID:
        # Each tile re-reads a halo of LRES voxels around its footprint: tiny tiles multiply the work.
        raise InputError(
            f"A tile of {tile!r} output voxels is too small: every tile reads the network's margin of LRES "
            f"voxels around it, so tiny tiles repeat that work many times. Give a {{tile}} of at least "
            f"{MIN_TILE_LRES_GRID} voxels per axis (the default {DEFAULT_TILE_LRES_GRID} is fastest).",
            parameters=("tile",),
        )
    return tuple(max(m, t // m * m) for t, m in zip(tile3, multiple))


def tile_spans(shape3, tile3, overlap3, multiple) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The (start, stop) tiles along z, y and x of a grid (:func:`tile_starts` on each axis)."""
    return tuple(tuple(tile_starts(n, t, o, m)) for n, t, o, m in zip(shape3, tile3, overlap3, multiple))


def memory_tile(tile3, shape3, multiple, max_voxels: int, z_cap: int, overlap3=(0, 0, 0)) -> tuple[int, int, int]:
    """The largest tile of at most ``max_voxels`` output voxels near ``tile3``: shrunk (longest axis
    first) when ``tile3`` is larger, grown otherwise (y and x by turns, z up to ``z_cap``), never
    beyond the grid (rounded up to the network's multiple), always whole multiples and longer than
    the blending overlap by a multiple (a shorter tile leaves no step)."""
    cap = [round_up(int(n), m) for n, m in zip(shape3, multiple)]
    cap[0] = min(cap[0], max(multiple[0], int(z_cap) // multiple[0] * multiple[0]))
    # In-plane at least 2: a tile one voxel wide has no spacing to its positions (see tile_starts).
    least = [round_up(max(o + m, 2 if ax else 1), m) for ax, (o, m) in enumerate(zip(overlap3, multiple))]
    t = [max(m, min(int(a), c)) for a, c, m in zip(tile3, cap, multiple)]
    while np.prod(t) > max_voxels:
        shrinkable = [ax for ax in range(3) if t[ax] > max(least[ax], multiple[ax])]
        if not shrinkable:
            return tuple(t)
        ax = max(shrinkable, key=lambda a: t[a])
        t[ax] = max(least[ax], multiple[ax], t[ax] // 2 // multiple[ax] * multiple[ax])
    for axes in ((1, 2), (0,)):
        grown = True
        while grown:
            grown = False
            for ax in axes:
                rest = int(np.prod(t)) // t[ax]
                longer = min(cap[ax], t[ax] * 2, max_voxels // rest // multiple[ax] * multiple[ax])
                if longer > t[ax]:
                    t[ax], grown = longer, True
    return tuple(t)


def fit_tile_to_memory(tile3, shape3, multiple, overlap3, memory, predict) -> tuple[tuple[int, int, int], float]:
    """The default tile sized to a GPU's memory, from the peak memory of one small tile.

    Parameters
    ----------
    tile3 : tuple of int
        The default tile (z, y, x, output voxels).
    shape3 : tuple of int
        The output grid.
    multiple, overlap3 : tuple of int
        The network's size multiple and the blending overlap.
    memory : napari_resolve.devices.DeviceMemory
        The device's memory counters.
    predict : callable
        Predicts the tile of a ``((z0, z1), (y0, y1), (x0, x1))`` box, as the run will.

    Returns
    -------
    tile : tuple of int
        At most :data:`MEMORY_SHARE` of the available memory at the probe's bytes per voxel.
    bytes_per_voxel : float
        The probe's peak device memory per output voxel (bytes).
    """
    probe = [max(m, min(p, round_up(int(n), m))) for p, n, m in zip(PROBE_TILE, shape3, multiple)]
    base = memory.reset_peak()
    predict(tuple((0, min(p, int(n))) for p, n in zip(probe, shape3)))
    probed = int(np.prod([min(p, int(n)) for p, n in zip(probe, shape3)]))
    per_voxel = max(memory.peak() - base, 1) / probed
    max_voxels = int(MEMORY_SHARE * memory.available() / per_voxel)
    # The row of tiles is held on the host (accumulator and weights): its z stays within ROW_BUDGET.
    z_cap = max(int(tile3[0]), ROW_BUDGET // (8 * int(shape3[1]) * int(shape3[2])))
    return memory_tile(tile3, shape3, multiple, max_voxels, z_cap, overlap3), per_voxel


def lres_grid_tile_z(grid_shape3) -> int:
    """Default z tile of an LRES-grid network on an output grid: at least the default, more while the
    row of tiles fits :data:`ROW_BUDGET`, at most the grid."""
    nz, ny, nx = (int(n) for n in grid_shape3)
    return max(DEFAULT_TILE_LRES_GRID[0], min(nz, ROW_BUDGET // (8 * ny * nx)))


def overlap_shape(overlap, volumetric: bool, lres_grid: bool = False) -> tuple[int, int, int]:
    """The (z, y, x) blending overlap for an ``overlap`` argument (slice-wise networks need none in z).

    ``None`` gives :data:`DEFAULT_OVERLAP` (:data:`DEFAULT_OVERLAP_LRES_GRID` for
    networks on the LRES grid); an int sets y and x (and z for a 3D network); two
    ints set y and x, three z, y and x.
    """
    z_default = DEFAULT_OVERLAP if volumetric else 0
    if overlap is None:
        if lres_grid:
            return (DEFAULT_OVERLAP_LRES_GRID,) * 3
        return (z_default, DEFAULT_OVERLAP, DEFAULT_OVERLAP)
    if np.isscalar(overlap):
        return (int(overlap) if volumetric else 0, int(overlap), int(overlap))
    ov3 = tuple(int(o) for o in overlap)
    ov3 = (z_default, *ov3) if len(ov3) == 2 else ov3
    if len(ov3) != 3:
        raise InputError(
            f"The {{overlap}} must be one number (y and x), two (y, x) or three (z, y, x); got {overlap!r}.",
            parameters=("overlap",),
        )
    return ov3
