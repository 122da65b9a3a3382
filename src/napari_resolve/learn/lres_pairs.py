"""Training pairs and patches for networks that work on the LRES grid (``input_grid = "lres"``).

The pre-upsampled networks train on the LRES interpolated onto the HRES voxels
(:mod:`napari_resolve.learn.pairs`). A network such as
:class:`~napari_resolve.models.lres3d.LRES3D` instead takes the LRES block itself
and the positions of the output voxels in it. Its training pair keeps:

* ``inputs``: the normalised LRES over the training ROI's footprint plus a halo
  (the network's reach, :func:`lres_halo`) on every side; voxels beyond the LRES
  repeat its edge;
* ``lres_start``: the LRES index of ``inputs[0, 0, 0]`` (negative where the halo
  reaches past the LRES);
* the target and validation block as for every pair.

A patch is a target box of HRES voxels and the LRES block around it (with a
margin of :data:`PATCH_MARGIN` LRES voxels, so the interpolations read real
LRES), and the positions of the target voxels in that block: LRES voxel units,
from the registration, so any ratio and sub-voxel phase is learned as it is.
A 2D image is a one-slice volume with a one-slice LRES block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from napari_resolve.learn.pairs import PatchSampler

#: LRES voxels a training patch's block reaches beyond its target's footprint.
PATCH_MARGIN = 2


@dataclass(frozen=True)
class LresBatch:
    """Network input of ``input_grid = "lres"`` networks: LRES blocks and the output positions in them.

    Attributes
    ----------
    block : ndarray of float32, (batch, z, y, x)
        Normalised LRES blocks.
    positions : tuple of three ndarrays
        Output voxel positions along z, y, x (LRES voxels relative to the block's
        voxel 0), each ``(batch, n)`` float32.
    """

    block: np.ndarray
    positions: tuple[np.ndarray, np.ndarray, np.ndarray]

    def to_torch(self, device):
        """(block, positions) as tensors on ``device``."""
        import torch

        return (torch.from_numpy(np.ascontiguousarray(self.block)).to(device),
                tuple(torch.from_numpy(np.ascontiguousarray(p)).to(device) for p in self.positions))


def lres_halo(net) -> int:
    """LRES voxels a block needs beyond the footprint of its output for exact (interior) predictions."""
    from napari_resolve.models.lres3d import INTERP_REACH

    return max(net.receptive_radius) + max(INTERP_REACH) + 1


def positions(origin_um: float, voxel_um: float, n: int, lres_voxel_um: float, lres_start: float) -> np.ndarray:
    """LRES coordinates (voxel units, relative to LRES voxel ``lres_start``) of ``n`` grid voxels along an axis."""
    return ((origin_um + np.arange(n) * voxel_um) / lres_voxel_um - lres_start).astype(np.float64)


def footprint(origin_um: float, voxel_um: float, n: int, lres_voxel_um: float, halo: int) -> tuple[int, int]:
    """(start, stop) LRES indices a grid axis reads, with ``halo`` voxels beyond the interpolation's reach."""
    p = positions(origin_um, voxel_um, n, lres_voxel_um, 0)
    return int(math.floor(p[0])) - halo, int(math.floor(p[-1])) + 1 + halo


def cut_edge(source: np.ndarray, lo, hi) -> np.ndarray:
    """``source[lo:hi]`` per axis as float32, repeating the edge voxel where the box leaves ``source``."""
    inner = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, source.shape))
    block = np.asarray(source[inner], dtype=np.float32)
    pad = [(max(0, -a), max(0, b - n)) for a, b, n in zip(lo, hi, source.shape)]
    if any(p for pair in pad for p in pair):
        block = np.pad(block, pad, mode="edge")
    return block


def lres_block(lres3: np.ndarray, lres_voxel3, grid3, halo: int, one_slice: bool) -> tuple[np.ndarray, tuple]:
    """The LRES block a pair keeps for ``grid3`` (3D) with ``halo`` voxels around it, and its start index."""
    spans = []
    for ax in range(3):
        if ax == 0 and one_slice:
            spans.append((0, 1))
            continue
        spans.append(footprint(grid3.origin_um[ax], grid3.voxel_um[ax], grid3.shape[ax], lres_voxel3[ax], halo))
    lo, hi = [a for a, _ in spans], [b for _, b in spans]
    return cut_edge(lres3, lo, hi), tuple(lo)


def tile_block(lres3, lres_voxel3, grid3, box, halo) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The LRES block a prediction tile reads (with its halo) and the tile's output positions in it.

    Parameters
    ----------
    lres3 : array-like
        The LRES as a volume (z y x), read lazily.
    lres_voxel3 : tuple of float
        Its voxel size (um).
    grid3 : Grid
        The prediction's grid (3D).
    box : sequence of (start, stop)
        The tile's output voxels on each axis.
    halo : sequence of int
        LRES voxels read around the tile's footprint on each axis.

    Returns
    -------
    block : ndarray
        LRES grey values (float32).
    positions : tuple of ndarray
        Per axis, each output voxel's position in the block (LRES voxels, float32).
    """
    lo, hi, pos = [], [], []
    for ax, (a, b) in enumerate(box):
        o, v, n_l = grid3.origin_um[ax] + a * grid3.voxel_um[ax], grid3.voxel_um[ax], lres3.shape[ax]
        s, e = footprint(o, v, b - a, lres_voxel3[ax], halo[ax])
        # At the LRES edge: PATCH_MARGIN voxels of the edge repeated, then the convolutions' zero padding,
        # which is what every training patch shows beyond its margin. Clipped at the edge itself, the
        # network left a dark band (-0.1 of the grey range, 6 output voxels deep) along the field's
        # faces; repeating the edge by the whole halo is no better and costs 4x on a 48^3 LRES; making
        # the convolutions pad by repeating their edges (training too) scored worse (docs/comparison.md).
        s, e = (0, 1) if n_l == 1 else (max(s, -PATCH_MARGIN), min(e, n_l + PATCH_MARGIN))
        lo.append(s)
        hi.append(e)
        pos.append(positions(o, v, b - a, lres_voxel3[ax], s).astype(np.float32))
    return cut_edge(lres3, lo, hi), tuple(pos)


def pair_positions(pair, ax: int, start: int, n: int, block_start: int) -> np.ndarray:
    """Positions of target voxels ``start .. start + n`` along ``ax`` in a block starting at LRES ``block_start``."""
    g = pair.grid
    return positions(g.origin_um[ax] + start * g.voxel_um[ax], g.voxel_um[ax], n, pair.lres_voxel_um[ax],
                     block_start)


def validation_batch(pair) -> LresBatch:
    """The validation block's input: the kept LRES block cut in z around the block, and the positions."""
    t = [0, 0, 0]
    t[pair.val_axis] = pair.val_start
    shape = list(pair.target.shape)
    shape[pair.val_axis] -= pair.val_start
    one_slice = pair.ndim == 2
    lo, hi = [], []
    for ax in range(3):
        if ax == 0 and one_slice:
            lo.append(0)
            hi.append(1)
            continue
        a, b = footprint(pair.grid.origin_um[ax] + t[ax] * pair.grid.voxel_um[ax], pair.grid.voxel_um[ax],
                         shape[ax], pair.lres_voxel_um[ax], pair.lres_halo)
        lo.append(max(a - pair.lres_start[ax], 0))
        hi.append(min(b - pair.lres_start[ax], pair.inputs.shape[ax]))
    block = pair.inputs[tuple(slice(a, b) for a, b in zip(lo, hi))]
    pos = tuple(
        pair_positions(pair, ax, t[ax], shape[ax], pair.lres_start[ax] + lo[ax])[None].astype(np.float32)
        for ax in range(3)
    )
    return LresBatch(block[None], pos)


class LresPatchSampler(PatchSampler):
    """Random LRES blocks and their HRES target boxes, with in-plane flips and 90-degree rotations.

    Same parameters as :class:`~napari_resolve.learn.pairs.PatchSampler`; the
    target box is ``out_depth`` x ``size`` x ``size`` HRES voxels (one slice for a
    2D image) and ``sample`` returns an :class:`LresBatch` and the targets.
    """

    def __init__(self, pair, **kwargs):
        super().__init__(pair, **kwargs)
        self.one_slice = pair.ndim == 2
        g, lv = pair.grid, pair.lres_voxel_um
        # Every patch's block has the same size: the longest footprint of its target box, plus margins.
        self.block_shape = tuple(
            1 if (ax == 0 and self.one_slice)
            else int(math.ceil((n - 1) * g.voxel_um[ax] / lv[ax])) + 2 + 2 * PATCH_MARGIN
            for ax, n in enumerate(self.shape)
        )

    def _patch(self, z: int, y: int, x: int):
        """LRES block, target and target positions of the patch whose target starts at (z, y, x)."""
        pair, starts = self.pair, (z, y, x)
        lo, pos = [], []
        for ax, (s, n, length) in enumerate(zip(starts, self.shape, self.block_shape)):
            if ax == 0 and self.one_slice:
                lo.append(0)
                pos.append(np.zeros(1))
                continue
            p = pair_positions(pair, ax, s, n, pair.lres_start[ax])
            b = int(math.floor(p[0])) - PATCH_MARGIN
            lo.append(b)
            pos.append(p - b)
        block = cut_edge(pair.inputs, lo, [a + n for a, n in zip(lo, self.block_shape)])
        pz, py, px = self.shape
        arrays = [block, pair.target[z : z + pz, y : y + py, x : x + px]]
        return arrays, pos

    def sample(self, batch: int):
        """``batch`` patches: an :class:`LresBatch` and the target patches (float32)."""
        tz, ty, tx = self.pair.train_shape
        pz, py, px = self.shape
        blocks = np.empty((batch, *self.block_shape), np.float32)
        targets = np.empty((batch, pz, py, px), np.float32)
        pos = [np.empty((batch, n), np.float32) for n in self.shape]
        for b in range(batch):
            z = int(self.rng.integers(0, tz - pz + 1))
            y = int(self.rng.integers(0, ty - py + 1))
            x = int(self.rng.integers(0, tx - px + 1))
            (block, target), (qz, qy, qx) = self._patch(z, y, x)
            if self.augment:
                ly, lx = block.shape[1:]
                if self.rng.random() < 0.5:
                    block, target, qy = block[:, ::-1], target[:, ::-1], (ly - 1) - qy[::-1]
                if self.rng.random() < 0.5:
                    block, target, qx = block[:, :, ::-1], target[:, :, ::-1], (lx - 1) - qx[::-1]
                if self.rotate:
                    for _ in range(int(self.rng.integers(0, 4))):
                        # np.rot90 over (y, x): new y runs along old x backwards, new x along old y.
                        lx = block.shape[2]
                        block, target = np.rot90(block, 1, axes=(1, 2)), np.rot90(target, 1, axes=(1, 2))
                        qy, qx = (lx - 1) - qx[::-1], qy
            blocks[b], targets[b] = block, target
            for dest, q in zip(pos, (qz, qy, qx)):
                dest[b] = q
        return LresBatch(blocks, tuple(pos)), targets
