"""What one task of a chunked pore analysis runs on one block (:mod:`napari_resolve.pores.chunked`).

Module-level functions of numpy blocks, so that dask's threads and
``distributed`` worker processes alike can run (and unpickle) them; each
returns small numbers or a per-pore table, never a label image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_resolve.jobs import drain
from napari_resolve.pores.segment import _iter_segment, outline_counts
from napari_resolve.pores.stats import COLUMNS_3D, _iter_table

#: Histogram bins of the global Otsu threshold: ``skimage.filters.threshold_otsu``'s default.
NBINS = 256


def as_float(block) -> np.ndarray:
    return np.asarray(block).astype(np.float32, copy=False)


def block_range(block, mask):
    """(lo, hi, sample voxels, non-finite voxels) of a block's sample voxels."""
    img = as_float(block)
    vals = img if mask is None else img[np.asarray(mask, dtype=bool)]
    ok = np.isfinite(vals)
    bad = int(vals.size - np.count_nonzero(ok))
    vals = vals[ok] if bad else vals
    if not vals.size:
        return 0.0, 0.0, 0, bad
    return vals.min(), vals.max(), int(vals.size), bad


def block_histogram(block, mask, lo, hi) -> np.ndarray:
    """The block's share of the global histogram: ``np.histogram`` exactly as skimage calls it on the whole."""
    img = as_float(block)
    vals = img if mask is None else img[np.asarray(mask, dtype=bool)]
    return np.histogram(vals, bins=NBINS, range=(lo, hi))[0]


def segment_block(block, mask, t, options, core, start, faces, band) -> dict:
    """Segment one extended block and measure the pores this chunk owns (the rules: :mod:`.chunked`).

    Parameters
    ----------
    block, mask : numpy.ndarray
        The extended block's grey values, and its sample mask or None.
    t : float
        The global threshold.
    options
        The segmentation settings (``chunked._Options``).
    core : tuple of slice
        The chunk's core within the block.
    start : tuple of int
        The block's first voxel in the volume.
    faces : tuple of (axis, 0 or -1), or None
        The block's faces on the volume border (edge-kill there), None: no edge-kill.
    band : tuple of (int, int)
        Per axis, the width in voxels of the inexact band along the low and
        high face (0 on the volume border).

    Returns
    -------
    dict
        ``table`` (owned pores, centroids in the volume's frame, um), ``first``
        (their first voxels, (n, 3)), ``pores``/``sample`` (core voxel counts),
        ``too_large``, ``uncertain``, ``lo``/``hi`` (core grey range) and
        ``bad`` (non-finite core voxels).
    """
    img = as_float(block)
    bad = int(img[core].size - np.count_nonzero(np.isfinite(img[core])))
    sample_in = None if mask is None else np.asarray(mask, dtype=bool)
    _, sample, pores, labels, _, removed = drain(_iter_segment(img, t, sample_in, options, faces, keep_removed=True))
    near = np.zeros(img.shape, dtype=bool)  # the band along internal faces where the block is not exact
    for ax, (lo, hi) in enumerate(band):
        for cut in ([slice(0, lo)] if lo else []) + ([slice(img.shape[ax] - hi, None)] if hi else []):
            near[(slice(None),) * ax + (cut,)] = True
    conn1 = ndi.generate_binary_structure(3, 1)
    comps, n_comp = ndi.label(pores, structure=conn1)
    crossing = np.zeros(n_comp + 1, dtype=bool)
    crossing[np.unique(comps[near])] = True
    # A pore object is this chunk's when its first voxel (raster order) lies in the core; all its
    # pores (the watershed split it) go with it. One reaching the band cannot be measured here.
    comp_first = first_voxels(comps, n_comp)
    mine = np.all((comp_first >= [c.start for c in core]) & (comp_first < [c.stop for c in core]), axis=1)
    too_large = int(np.count_nonzero(mine & crossing[1:]))
    owner = np.concatenate([[False], mine & ~crossing[1:]])
    uncertain = 0
    if removed is not None and removed.any():
        noise, _ = ndi.label(removed, structure=conn1)
        cut_noise = np.unique(noise[near])
        uncertain = int(np.count_nonzero(np.isin(noise[core], cut_noise[cut_noise > 0])))

    n_lab = int(labels.max())
    first = first_voxels(labels, n_lab)
    found = first[:, 0] >= 0
    owned = np.zeros(n_lab + 1, dtype=bool)
    owned[1:][found] = owner[comps[tuple(first[found].T)]]
    lut = np.zeros(n_lab + 1, dtype=np.int32)
    lut[owned] = np.arange(1, np.count_nonzero(owned) + 1, dtype=np.int32)
    table = drain(_iter_table(lut[labels], options.voxel_um))
    for name, s, v in zip(COLUMNS_3D[-3:], start, options.voxel_um):
        table[name] = table[name] + s * v
    return {"table": table, "first": first[owned[1:]] + np.asarray(start), "pores": int(np.count_nonzero(pores[core])),
            "sample": int(np.count_nonzero(sample[core])), "too_large": too_large, "uncertain": uncertain,
            "lo": float(img[core].min()), "hi": float(img[core].max()), "bad": bad}


def first_voxels(labels: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) int64: the first voxel in raster order of labels 1..n (-1 for a missing label)."""
    out = np.full((n, 3), -1, dtype=np.int64)
    for i, sl in enumerate(ndi.find_objects(labels, max_label=n)):
        if sl is None:
            continue
        row = labels[sl[0].start, sl[1], sl[2]] == i + 1  # the box's first plane holds the first voxel
        k = int(np.argmax(row))
        width = sl[2].stop - sl[2].start
        out[i] = (sl[0].start, sl[1].start + k // width, sl[2].start + k % width)
    return out


def outline_block(block, mask, t, pores_are) -> tuple[int, int]:
    """A slab of whole slices: :func:`~napari_resolve.pores.segment.outline_counts`."""
    img = as_float(block)
    phase = img < t if pores_are == "dark" else img > t
    return outline_counts(phase, np.asarray(mask, dtype=bool))


def read_block(array, sl):
    return np.asarray(array[sl])
