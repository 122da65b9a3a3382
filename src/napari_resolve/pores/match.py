"""Pore recovery: which true pores an analysis found, one to one.

:func:`match_pores` scores a pore analysis (:func:`napari_resolve.pores.analyse_pores`)
against true pore labels (a phantom's, or an HRES analysis's) on possibly
another grid: the share of true pores it found one to one, the pores it merged
and the false pores it invented. Positions are compared in micrometres in one
common frame (the LRES frame, ``docs/architecture.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import InputError

__all__ = ["PoreMatch", "match_pores"]

@dataclass(frozen=True)
class PoreMatch:
    """How many true pores an analysis found, one-to-one (see :func:`match_pores`).

    Attributes
    ----------
    found : int
        Scored true pores whose centroid is covered by a result pore that is
        matched to them alone.
    total : int
        Number of scored true pores.
    recovery : float
        ``found / total``, 0..1; NaN when ``total`` is 0.
    false_pores : int
        Result pores that cover no true-pore centroid (pores touching the
        border of the result image, or lying outside the truth grid, are not
        judged).
    merged : int
        Scored true pores whose centroid is covered by a result pore that
        another true pore won: pores lost because the analysis merged them.
        The other missed pores (``total - found - merged``) fell on solid.
    """

    found: int
    total: int
    recovery: float
    false_pores: int
    merged: int

    def to_dict(self) -> dict:
        """The fields as plain Python values (``json.dumps`` works on the result).

        ``recovery`` is ``None`` instead of NaN when no true pore is scored,
        so that the output is strict JSON, as in :meth:`PoreResult.summary`.
        """
        rec = None if math.isnan(self.recovery) else float(self.recovery)
        return {
            "found": int(self.found),
            "total": int(self.total),
            "recovery": rec,
            "false_pores": int(self.false_pores),
            "merged": int(self.merged),
        }


def match_pores(
    truth_labels,
    truth_voxel_um,
    result_labels,
    result_voxel_um,
    *,
    truth_origin_um=None,
    result_origin_um=None,
    truth_ids=None,
) -> PoreMatch:
    """Match the true pores to the pores an analysis found, one to one.

    A fair "pore recovery" to compare LRES, interpolated and upscaled
    analyses: a plain ratio of counts rewards an analysis that splits pores
    falsely, this one does not. The two label images may lie on different
    grids (another voxel size, an offset sub-region); positions are compared
    in micrometres, voxel ``i`` of a grid with origin ``o`` and voxel size
    ``v`` having its centre at ``o + i * v``.

    Rules:

    * scored true pores: ``truth_ids``, by default every label of
      ``truth_labels`` that does not touch the border of the truth image
      (pores cut by the border are left out, like the edge-kill rule of
      :func:`analyse_pores`); of these, those whose centroid falls outside
      the result grid (nearest result voxel outside the image) are dropped;
    * a true pore is *covered* by the result pore at the nearest result voxel
      to its centroid (um); a centroid on result label 0 is missed. Where the
      centroid lies outside the true pore itself (a crescent or a ring), the
      pore's own voxel nearest to the centroid stands in for it;
    * one to one: when one result pore covers the centroids of several true
      pores (a merge), only the true pore whose equivalent volume is closest
      to the result pore's (smallest ``|log(V_true / V_result)|``, volumes in
      um^3, areas in 2D; ties go to the lower label) is found; the others
      count as ``merged``. Every true pore with its centroid in the result
      grid takes part in this contest, scored or not, because a merge with an
      unscored neighbour is still a merge;
    * false pores: result pores that cover no true-pore centroid (of any true
      pore, scored or not). Result pores touching the border of the result
      image, or whose own centroid falls outside the truth grid, are not
      judged.

    Parameters
    ----------
    truth_labels : array-like of int
        2D (y, x) or 3D (z, y, x) label image of the true pores; 0 is not a
        pore. Labels need not be consecutive.
    truth_voxel_um : float or sequence of float
        Voxel size of the truth grid in micrometres, one number or one per axis.
    result_labels : array-like of int
        Label image of the analysis to score (e.g. :attr:`PoreResult.labels`),
        same number of axes as the truth; 0 is not a pore.
    result_voxel_um : float or sequence of float
        Voxel size of the result grid in micrometres.
    truth_origin_um, result_origin_um : sequence of float, optional
        Position (um) of the centre of voxel 0 of each grid, in one common
        frame (e.g. the LRES frame). Default: zeros.
    truth_ids : iterable of int, optional
        Labels of the true pores to score. Default: every label not touching
        the border of ``truth_labels``. Given ids are scored even if they
        touch the border (still only where their centroid lies in the result
        grid); each must be present in ``truth_labels``.

    Returns
    -------
    PoreMatch
        ``found``, ``total``, ``recovery`` (``found / total``; NaN when no
        true pore is scored), ``false_pores`` and ``merged``.

    Raises
    ------
    InputError
        If a label image is not 2D/3D integer (or boolean) data without
        negative labels, the two differ in number of axes, an origin has the
        wrong length, or a requested id is absent from ``truth_labels``.
    VoxelSizeError
        If a voxel size is missing or invalid.

    Notes
    -----
    Centroids and sizes come from one pass of ``numpy.bincount`` over the
    label image (in slabs, so memory stays bounded), which is fast for
    hundreds of thousands of pores. The rule suits the roughly convex pores
    of foams and rocks; for a long, curved pore the single anchor point makes
    the match depend on which part of it the result resolved.
    """
    truth = _label_image(truth_labels, "truth_labels")
    result = _label_image(result_labels, "result_labels")
    if truth.ndim != result.ndim:
        raise InputError(
            f"truth_labels has {truth.ndim} axes (shape {truth.shape}) but result_labels "
            f"has {result.ndim} (shape {result.shape}); compare images of the same dimension."
        )
    ndim = truth.ndim
    t_voxel = np.asarray(voxel_tuple(truth_voxel_um, ndim, "truth voxel size"))
    r_voxel = np.asarray(voxel_tuple(result_voxel_um, ndim, "result voxel size"))
    t_origin = _origin(truth_origin_um, ndim, "truth_origin_um")
    r_origin = _origin(result_origin_um, ndim, "result_origin_um")

    # Every true pore: its id, equivalent volume (um^3) and centroid (um).
    t_ids, t_count, t_centre = _label_stats(truth)
    t_size = t_count * float(np.prod(t_voxel))
    t_pos = t_origin + _anchor(truth, t_ids, t_centre, t_voxel) * t_voxel

    if truth_ids is None:
        scored = ~np.isin(t_ids, _border_labels(truth))
    else:
        want = np.unique(np.asarray(list(truth_ids), dtype=np.int64))
        missing = want[~np.isin(want, t_ids)]
        if missing.size:
            shown = ", ".join(str(int(m)) for m in missing[:10])
            more = " ..." if missing.size > 10 else ""
            raise InputError(
                f"truth_ids {shown}{more} do not occur in truth_labels; give labels "
                "present in the truth image, or leave truth_ids out to score all of them."
            )
        scored = np.isin(t_ids, want)

    # The result voxel nearest to each true centroid.
    r_idx = np.floor((t_pos - r_origin) / r_voxel + 0.5).astype(np.int64)
    inside = np.all((r_idx >= 0) & (r_idx < np.asarray(result.shape)), axis=1)
    covered_by = np.zeros(t_ids.size, dtype=np.int64)
    if inside.any():
        covered_by[inside] = result[tuple(r_idx[inside].T)]

    # Result pores: their ids, sizes and centroids.
    r_ids, r_count, r_centre = _label_stats(result)
    r_size = r_count * float(np.prod(r_voxel))

    # One to one: per covering result pore, the closest true pore by volume wins.
    cand = np.flatnonzero(covered_by > 0)
    winners = np.zeros(0, dtype=np.int64)
    if cand.size:
        r_of = covered_by[cand]
        v_res = r_size[np.searchsorted(r_ids, r_of)]
        misfit = np.abs(np.log(t_size[cand] / v_res))
        order = np.lexsort((t_ids[cand], misfit, r_of))
        first = np.ones(order.size, dtype=bool)
        first[1:] = r_of[order][1:] != r_of[order][:-1]
        winners = cand[order[first]]
    won = np.zeros(t_ids.size, dtype=bool)
    won[winners] = True

    counted = scored & inside
    total = int(np.count_nonzero(counted))
    found = int(np.count_nonzero(counted & won))
    merged = int(np.count_nonzero(counted & (covered_by > 0) & ~won))

    # False pores: judged result pores that cover no true centroid.
    judged = ~np.isin(r_ids, _border_labels(result))
    r_pos = r_origin + r_centre * r_voxel
    t_idx = np.floor((r_pos - t_origin) / t_voxel + 0.5).astype(np.int64)
    judged &= np.all((t_idx >= 0) & (t_idx < np.asarray(truth.shape)), axis=1)
    judged &= ~np.isin(r_ids, covered_by)
    false_pores = int(np.count_nonzero(judged))

    recovery = found / total if total else math.nan
    return PoreMatch(
        found=found, total=total, recovery=recovery, false_pores=false_pores, merged=merged
    )


def _label_image(labels, name: str) -> np.ndarray:
    """``labels`` as a 2D/3D array of non-negative integers, or an InputError."""
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise InputError(
            f"{name} must be a 2D (y, x) or 3D (z, y, x) label image, got shape {lab.shape}."
        )
    if lab.dtype == bool:
        return lab.astype(np.uint8)
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(
            f"{name} must hold integers (0 = background), got dtype {lab.dtype}. "
            "Label a binary mask first, e.g. with skimage.measure.label."
        )
    if lab.size and np.issubdtype(lab.dtype, np.signedinteger) and lab.min() < 0:
        raise InputError(
            f"{name} holds negative labels; labels must be 0 (background) or positive."
        )
    return lab


def _origin(origin, ndim: int, name: str) -> np.ndarray:
    """An origin (um) as ``ndim`` finite floats; zeros when omitted."""
    if origin is None:
        return np.zeros(ndim)
    try:
        out = np.asarray(origin, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be {ndim} numbers in um, got {origin!r}.") from None
    if out.size != ndim or not np.isfinite(out).all():
        raise InputError(
            f"{name} must be {ndim} finite numbers in um, (z, y, x) order, got {origin!r}."
        )
    return out


# Voxels per slab of the label statistics, to bound the memory of the weights.
_STATS_SLAB = 1 << 22


def _label_stats(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids (sorted, > 0), voxel counts and centroids (index units) of every label.

    Bincounts over slabs along axis 0, so a volume of any size needs memory
    for one slab of weights only. Sparse label values are compacted first.
    """
    ndim = labels.ndim
    top = int(labels.max()) if labels.size else 0
    if top > 4 * labels.size + 1024:  # very sparse ids: compact them
        values, inverse = np.unique(labels, return_inverse=True)
        labels = inverse.reshape(labels.shape)
        ids_of = values
        top = values.size - 1
    else:
        ids_of = None
    n = top + 1
    counts = np.zeros(n, dtype=np.float64)
    sums = np.zeros((ndim, n), dtype=np.float64)
    per_slab = max(1, _STATS_SLAB // max(1, int(np.prod(labels.shape[1:]))))
    for z0 in range(0, labels.shape[0], per_slab):
        slab = labels[z0 : z0 + per_slab]
        flat = slab.ravel()
        counts += np.bincount(flat, minlength=n)
        grids = np.ogrid[tuple(slice(0, s) for s in slab.shape)]
        for ax, g in enumerate(grids):
            w = np.broadcast_to(g + (z0 if ax == 0 else 0), slab.shape).ravel()
            sums[ax] += np.bincount(flat, weights=w, minlength=n)
    present = np.flatnonzero(counts)
    present = present[present > 0] if ids_of is None else present[ids_of[present] > 0]
    cnt = counts[present]
    centre = (sums[:, present] / cnt).T
    ids = present if ids_of is None else ids_of[present]
    return ids.astype(np.int64), cnt, centre


def _anchor(
    labels: np.ndarray, ids: np.ndarray, centre: np.ndarray, voxel: np.ndarray
) -> np.ndarray:
    """Each pore's centroid (index units), or its nearest own voxel where it lies outside.

    The centroid of a crescent or a ring lies outside the pore; such a pore
    is represented by its voxel nearest (in um) to the centroid, so that an
    exact copy of the labels still covers every pore.
    """
    out = centre.copy()
    if ids.size == 0:
        return out
    at = labels[tuple(np.floor(centre + 0.5).astype(np.int64).T)]
    bad = at != ids
    if not bad.any():
        return out
    bad_ids = ids[bad]
    where = np.isin(labels, bad_ids)
    coords = np.argwhere(where)
    lab = labels[where].astype(np.int64)  # same C order as argwhere
    row = np.searchsorted(bad_ids, lab)
    d2 = (((coords - centre[bad][row]) * voxel) ** 2).sum(axis=1)
    order = np.lexsort((d2, lab))
    first = np.ones(order.size, dtype=bool)
    first[1:] = lab[order][1:] != lab[order][:-1]
    pick = order[first]  # one voxel per bad id, in increasing id order
    out[np.flatnonzero(bad)] = coords[pick]
    return out


def _border_labels(labels: np.ndarray) -> np.ndarray:
    """Labels (> 0) present on any face of the image."""
    faces = [np.unique(np.take(labels, i, axis=ax)) for ax in range(labels.ndim) for i in (0, -1)]
    ids = np.unique(np.concatenate(faces)).astype(np.int64)
    return ids[ids > 0]
