"""Multiscale (OME-NGFF) pyramids: level shapes, their geometry metadata, and 2x block means.

A result of hundreds of billions of voxels is only usable in napari if the viewer
can show a coarse level first and load detail where the user looks. OME-NGFF
(the "OME-Zarr" format, version 0.4) stores such a pyramid in one zarr group:
arrays ``"0"`` (full resolution), ``"1"`` (2x coarser), ... and a ``multiscales``
attribute giving every level's voxel size (``scale``) and the position of its
first voxel centre (``translation``) in micrometres.

Level ``l`` is the mean of 2 x 2 (x 2) blocks of level ``l - 1`` along every
axis, so its voxel is ``2**l`` times larger and its first voxel centre lies
``(2**l - 1) / 2`` full-resolution voxels after the first one. A block cut by
the end of the array is the mean of the voxels it holds. Because a chunk of
level 0 whose shape is a multiple of ``2**(levels - 1)`` covers whole blocks of
every level, each chunk's part of every level can be written by the task that
computed the chunk, without reading any neighbour.

The metadata are written here rather than with the ``ome-zarr`` package: its
current release pins an older pydantic than napari's and pulls in S3 clients,
and the part of the specification we need is a few lines of JSON.

References
----------
Moore, J. et al. (2021). OME-NGFF: a next-generation file format for expanding
bioimaging data-access strategies. *Nature Methods* 18, 1496-1498.
https://doi.org/10.1038/s41592-021-01326-w ; specification 0.4:
https://ngff.openmicroscopy.org/0.4/
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Levels are added while the coarsest level stays at least this many voxels along its longest axis.
MIN_TOP_SIDE = 64
#: At most this many levels (a 2**7 = 128x coarser top level).
MAX_LEVELS = 8


def level_shape(shape, level: int) -> tuple[int, ...]:
    """Shape of pyramid level ``level`` (0 = full resolution): each axis halved ``level`` times, rounded up."""
    return tuple(math.ceil(int(n) / 2**level) for n in shape)


def level_count(shape, chunk=None) -> int:
    """Levels for an array of ``shape``: down to about :data:`MIN_TOP_SIDE` voxels on the longest axis.

    With ``chunk`` (the level-0 chunk shape), a level is only added if every chunk
    side shorter than its axis is a multiple of its factor, so that chunks cover whole blocks.
    """
    levels = 1
    while levels < MAX_LEVELS and max(shape) / 2**levels >= MIN_TOP_SIDE:
        if chunk is not None and not _covers_blocks(shape, chunk, levels + 1):
            break
        levels += 1
    return levels


def _covers_blocks(shape, chunks, levels: int) -> bool:
    """Whether every chunk (but those ending at the array's end) holds whole blocks of the coarsest level."""
    return all(int(c) >= int(n) or int(c) % 2 ** (levels - 1) == 0 for c, n in zip(chunks, shape))


def level_geometry(voxel_um, origin_um, level: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Voxel size and first voxel centre (um) of level ``level``."""
    f = 2**level
    voxel = tuple(float(v) * f for v in voxel_um)
    origin = tuple(float(o) + (f - 1) / 2 * float(v) for o, v in zip(origin_um, voxel_um))
    return voxel, origin


def multiscales_attrs(ndim: int, voxel_um, origin_um, levels: int = 1, name: str | None = None) -> dict[str, Any]:
    """The OME-NGFF 0.4 ``multiscales`` attributes of a pyramid of ``levels`` arrays named ``"0"``, ``"1"``, ..."""
    datasets = []
    for level in range(levels):
        voxel, origin = level_geometry(voxel_um, origin_um, level)
        datasets.append({
            "path": str(level),
            "coordinateTransformations": [
                {"type": "scale", "scale": list(voxel)},
                {"type": "translation", "translation": list(origin)},
            ],
        })
    entry: dict[str, Any] = {
        "version": "0.4",
        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"[-ndim:]],
        "datasets": datasets,
    }
    if levels > 1:
        entry["type"] = "mean"  # how the levels were made (the specification's optional field)
    if name:
        entry["name"] = name
    return {"multiscales": [entry]}


def halve(block: np.ndarray) -> np.ndarray:
    """Mean of 2 x 2 (x 2) blocks along every axis; a block cut by the end holds fewer voxels and is their mean."""
    block = np.asarray(block, np.float32)
    padded_shape = tuple(n + n % 2 for n in block.shape)
    if padded_shape != block.shape:
        # NaN-pad the odd end so the cut blocks average only the voxels they hold.
        padded = np.full(padded_shape, np.nan, np.float32)
        padded[tuple(slice(0, n) for n in block.shape)] = block
    else:
        padded = block
    axes = []
    split = []
    for i, n in enumerate(padded.shape):
        split += [n // 2, 2]
        axes.append(2 * i + 1)
    blocks = padded.reshape(split)
    if padded is block:
        return blocks.mean(axis=tuple(axes), dtype=np.float32)
    return np.nanmean(blocks, axis=tuple(axes)).astype(np.float32)


def create_pyramid(path, shape, voxel_um, origin_um, *, chunks, levels: int, dtype=np.float32, name=None):
    """Create an empty OME-NGFF group at ``path`` with ``levels`` arrays; level ``l`` is chunked ``chunks / 2**l``.

    Returns the zarr group. Chunks of level 0 shorter than their axis must be multiples of ``2**(levels - 1)``.
    """
    import zarr

    if not _covers_blocks(shape, chunks, levels):
        raise ValueError(f"chunks {tuple(chunks)} are not multiples of {2 ** (levels - 1)} ({levels} levels)")
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs.update(multiscales_attrs(len(shape), voxel_um, origin_um, levels, name))
    for level in range(levels):
        lshape = level_shape(shape, level)
        lchunks = tuple(min(math.ceil(int(c) / 2**level), n) for c, n in zip(chunks, lshape))
        group.create_array(str(level), shape=lshape, chunks=lchunks, dtype=dtype)
    return group


def write_levels(group, box, block: np.ndarray, levels: int) -> None:
    """Write ``block`` (level-0 voxels ``box``, a tuple of (start, stop)) and its block means into every level.

    ``box`` starts must be multiples of ``2**(levels - 1)``; the stops may be the array's end.
    """
    for level in range(levels):
        if level:
            block = halve(block)
        f = 2**level
        region = tuple(slice(a // f, a // f + n) for (a, _), n in zip(box, block.shape))
        group[str(level)][region] = block


def build_levels(group, levels: int, slab: int) -> None:
    """Fill levels 1.. of ``group`` from level 0, ``slab`` level-0 slices at a time (for a streamed result).

    ``slab`` must be a multiple of ``2**(levels - 1)``.
    """
    base = group["0"]
    for z in range(0, base.shape[0], slab):
        block = np.asarray(base[z : z + slab])
        for level in range(1, levels):
            block = halve(block)
            f = 2**level
            group[str(level)][z // f : z // f + block.shape[0]] = block
