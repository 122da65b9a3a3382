"""Where a tiled prediction's finished slabs go: memory, an OME-Zarr pyramid or an OME-TIFF on disk.

:func:`napari_resolve.learn.inference.iter_predict` finishes the output one slab
of z slices at a time and hands each to a :class:`SlabSink`, so the whole output
never has to be in memory when it goes to a file. A zarr output is an OME-NGFF
pyramid (:mod:`napari_resolve.pyramid`): its coarser levels are made from the
written full-resolution level when the run is complete (:meth:`SlabSink.finish`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_resolve.geometry.grid import Grid


@dataclass(frozen=True)
class TileDone:
    """What a prediction's progress record carries (``Progress.data``) after each tile.

    Attributes
    ----------
    box : tuple of slice
        The tile's voxels in the result's grid (2 or 3 slices, like the result).
    seconds : float
        Wall time since the run started.
    voxels : int
        Output voxels predicted so far (a voxel in an overlap counts once for every tile that predicts it).
    """

    box: tuple[slice, ...]
    seconds: float
    voxels: int

    @property
    def voxels_per_s(self) -> float:
        """Prediction speed so far (output voxels per second)."""
        return self.voxels / max(self.seconds, 1e-9)


#: Chunk side of a zarr output (voxels): 1 MiB float32 chunks, a multiple of every pyramid factor used.
ZARR_CHUNK = 64


class SlabSink:
    """Where finished slabs go: memory, a zarr array or a TIFF memory map.

    Parameters
    ----------
    grid : Grid
        The output grid, always 3D (a 2D result is one slice).
    ndim_out : int
        2 or 3: the dimensionality of the result that is kept or written.
    path : Path or None
        The final file name (for its format and the OME name); None keeps the result in memory.
    tmp : Path or None
        The temporary name written to (renamed to ``path`` by the caller when complete).
    """

    def __init__(self, grid: Grid, ndim_out: int, path: Path | None, tmp: Path | None):
        self.path, self.grid = path, grid
        shape = grid.shape if ndim_out == 3 else grid.shape[1:]
        voxel = grid.voxel_um if ndim_out == 3 else grid.voxel_um[1:]
        origin = grid.origin_um if ndim_out == 3 else grid.origin_um[1:]
        self.squeeze = ndim_out == 2
        if tmp is None:
            self.array = np.empty(shape, np.float32)
        elif tmp.suffix.lower() == ".zarr" or path.suffix.lower() == ".zarr":
            from napari_resolve.pyramid import create_pyramid, level_count

            chunks = tuple(min(ZARR_CHUNK, n) for n in shape)
            self.levels = level_count(shape, chunks)
            self.group = create_pyramid(tmp, tuple(shape), voxel, origin, chunks=chunks, levels=self.levels,
                                        name=path.name.split(".")[0])
            self.array = self.group["0"]
        else:
            # Create the OME-TIFF with contiguous pixel data, note where the data
            # start, and unmap it. Slabs are then written through short-lived
            # maps of just their bytes: a map of the whole file would keep every
            # written page in this process's resident memory until the end.
            mm = tiff_memmap(tmp, shape, voxel, origin, path.name)
            self.tiff = (tmp, int(mm.offset), tuple(shape))
            del mm
            self.array = None

    def finish(self) -> None:
        """After the last slab: fill a zarr pyramid's coarser levels from the full-resolution one."""
        if getattr(self, "levels", 1) > 1:
            from napari_resolve.pyramid import build_levels

            build_levels(self.group, self.levels, ZARR_CHUNK)

    def write(self, z0: int, z1: int, slab: np.ndarray) -> None:
        """Store the finished output slices ``z0:z1`` (a ``(z1 - z0, y, x)`` float32 slab)."""
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


def tiff_memmap(path: Path, shape, voxel, origin, name: str) -> np.memmap:
    """An OME-TIFF on disk, written through a memory map (contiguous strips)."""
    import tifffile

    from napari_resolve.io import ome_metadata

    md = ome_metadata(shape, voxel, origin, name)
    big = int(np.prod(shape)) * 4 > 2**31 - 2**25
    return tifffile.memmap(path, shape=tuple(shape), dtype="float32", ome=True, metadata=md,
                           photometric="minisblack", bigtiff=big)
