"""Pore segmentation and per-pore statistics (the paper's automated route).

The route follows the "automated image analysis workflow" of the DeepNet
resolution-recovery paper (section 2.5), so that LRES, upscaled and HRES
volumes are quantified the same way without manual tuning:

1. threshold (Otsu by default) into a pore phase; pores are dark by default;
2. a sample mask: the material may sit inside air that is as dark as the
   pores, so porosity is taken relative to the sample, not the field of view;
3. a small binary closing of the pore phase to fill noise holes;
4. removal of tiny connected objects as noise;
5. a watershed on the distance map to split pores that merged through
   thin walls;
6. edge-kill: pores cut by the volume border (or by the sample boundary) are
   left out of the per-pore statistics, but still count towards porosity;
7. per-pore statistics: volume, equivalent spherical diameter, marching-cubes
   surface area, sphericity and centroid, all in micrometres.

Everything is physical: voxel sizes are per axis in micrometres (z, y, x), and
anisotropic voxels are respected by the distance map, the closing footprint,
volumes, surfaces and centroids.

:func:`match_pores` scores an analysis against true pore labels (a phantom's,
or an HRES analysis's) on possibly another grid: the share of true pores it
found one to one, the pores it merged and the false pores it invented.

2D images (y, x) go through the same route. Their table holds ``area_um2``
and ``perimeter_um`` instead of ``volume_um3`` and ``surface_um2``; the
``diameter_um`` column is the equivalent circular diameter and the
``sphericity`` column holds the circularity ``4 pi A / P**2``, so that callers
can plot sizes and shapes of 2D and 3D results alike.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Generator, Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import find_contours, marching_cubes, mesh_surface_area
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from napari_resolve._validate import as_image, same_shape, voxel_tuple
from napari_resolve.errors import InputError, ResolveWarning
from napari_resolve.jobs import Progress, drain

__all__ = [
    "PoreMatch",
    "PoreProgress",
    "PoreResult",
    "analyse_pores",
    "iter_analyse_pores",
    "match_pores",
    "pore_table",
    "porosity",
]

#: Table columns of a 3D analysis, in order. Units are in the names.
COLUMNS_3D = (
    "label",
    "volume_um3",
    "diameter_um",
    "surface_um2",
    "sphericity",
    "centroid_z_um",
    "centroid_y_um",
    "centroid_x_um",
)
#: Table columns of a 2D analysis, in order. ``sphericity`` holds circularity.
COLUMNS_2D = (
    "label",
    "area_um2",
    "diameter_um",
    "perimeter_um",
    "sphericity",
    "centroid_y_um",
    "centroid_x_um",
)

# "auto" sample mask: air around the sample is a large dark region that runs
# along the lateral border of the field. A dark region counts as air when it
# touches at least _AIR_COMPONENT_RING of the border ring by itself (a pore cut
# by the border touches only a few per mille of it), and the sample is taken
# as surrounded by air when such regions cover _AIR_RING_FRACTION of the ring.
_AIR_COMPONENT_RING = 0.02
_AIR_RING_FRACTION = 0.2

# Gaussian smoothing (voxels per axis) of a pore mask before its isosurface.
_SURFACE_SIGMA = 0.7

_AXIS_NAMES = {3: ("z", "y", "x"), 2: ("y", "x")}


#: The records this module's generators yield (step, total, message).
PoreProgress = Progress


@dataclass
class PoreResult:
    """Segmentation and statistics of the pores of one image.

    Attributes
    ----------
    labels : numpy.ndarray of int32
        Label image of the counted pores; 0 is solid, outside the sample,
        or a pore left out of the statistics (edge-killed). Labels match the
        ``label`` column of :attr:`table`.
    pore_mask : numpy.ndarray of bool
        Every pore voxel inside the sample after closing and noise removal,
        including edge-killed pores. Porosity is computed from this mask.
    sample_mask : numpy.ndarray of bool
        The voxels that belong to the sample (the porosity denominator).
    table : dict of str to numpy.ndarray
        One entry per counted pore. 3D columns: :data:`COLUMNS_3D`
        (``volume_um3`` in um^3, ``diameter_um`` equivalent spherical
        diameter in um, ``surface_um2`` marching-cubes area in um^2,
        ``sphericity`` in [0, 1], centroids in um). 2D columns:
        :data:`COLUMNS_2D` (``area_um2`` in um^2, ``diameter_um`` equivalent
        circular diameter, ``perimeter_um``, ``sphericity`` = circularity).
    voxel_um : tuple of float
        Voxel size per axis, micrometres, (z, y, x) or (y, x).
    threshold : float
        Grey value that separated pores from solid.
    porosity : float
        Pore voxel fraction of the sample, 0..1 (edge-killed pores included).
    """

    labels: np.ndarray
    pore_mask: np.ndarray
    sample_mask: np.ndarray
    table: dict[str, np.ndarray]
    voxel_um: tuple[float, ...]
    threshold: float
    porosity: float

    @property
    def ndim(self) -> int:
        """2 for an image, 3 for a volume."""
        return len(self.voxel_um)

    @property
    def count(self) -> int:
        """Number of counted (not edge-killed) pores."""
        return len(self.table["label"])

    @property
    def size_column(self) -> str:
        """Name of the size column: ``"volume_um3"`` (3D) or ``"area_um2"`` (2D)."""
        return "volume_um3" if self.ndim == 3 else "area_um2"

    def summary(self) -> dict:
        """Totals as plain Python values (``json.dumps`` works on the result).

        Returns
        -------
        dict
            ``porosity`` (fraction 0..1), ``count``, ``mean_diameter_um``,
            ``median_diameter_um``, ``mean_sphericity`` (``None`` when no pore
            is counted), ``pore_volume_um3`` and ``sample_volume_um3`` (um^3;
            in 2D ``pore_area_um2`` and ``sample_area_um2`` in um^2),
            ``threshold``, ``voxel_um`` (list) and ``ndim``.
            The pore volume includes edge-killed pores, like the porosity.
        """
        d = self.table["diameter_um"]
        s = self.table["sphericity"]
        cell = float(np.prod(self.voxel_um))
        unit = "volume_um3" if self.ndim == 3 else "area_um2"
        return {
            "porosity": float(self.porosity),
            "count": self.count,
            "mean_diameter_um": float(d.mean()) if d.size else None,
            "median_diameter_um": float(np.median(d)) if d.size else None,
            "mean_sphericity": float(s.mean()) if s.size else None,
            f"pore_{unit}": float(np.count_nonzero(self.pore_mask)) * cell,
            f"sample_{unit}": float(np.count_nonzero(self.sample_mask)) * cell,
            "threshold": float(self.threshold),
            "voxel_um": [float(v) for v in self.voxel_um],
            "ndim": int(self.ndim),
        }

    def to_csv(self, path) -> None:
        """Write one row per counted pore, with units in the column names.

        The file appears complete or not at all: it is written under a
        temporary name next to ``path`` and renamed at the end.

        Parameters
        ----------
        path : str or os.PathLike
            Destination ``.csv`` file; an existing file is replaced.
        """
        from napari_resolve.io import atomic_path

        columns = list(self.table)
        with atomic_path(path, overwrite=True) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for i in range(self.count):
                writer.writerow(
                    [int(self.table[c][i]) if c == "label" else repr(float(self.table[c][i])) for c in columns]
                )

    def size_histogram(self, bin_um=None) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of the equivalent diameters of the counted pores.

        Parameters
        ----------
        bin_um : float, array-like or None
            Bin width in micrometres (the paper uses 5 um). Edges are placed
            on multiples of the width, so histograms of different images
            (LRES, upscaled, HRES) with the same width line up. An array is
            used as the bin edges directly. ``None`` lets numpy choose
            (``bins="auto"``).

        Returns
        -------
        edges : numpy.ndarray
            Bin edges, um (one more than ``counts``).
        counts : numpy.ndarray of int64
            Number of pores per bin.
        """
        d = self.table["diameter_um"]
        if bin_um is None:
            counts, edges = np.histogram(d, bins="auto")
        elif np.ndim(bin_um) == 0:
            width = float(bin_um)
            if not (math.isfinite(width) and width > 0):
                raise InputError(f"bin_um must be a positive width in um, got {bin_um}.")
            lo = math.floor(d.min() / width) if d.size else 0
            hi = max(math.floor(d.max() / width) + 1, lo + 1) if d.size else 1
            edges = np.arange(lo, hi + 1) * width
            counts, edges = np.histogram(d, bins=edges)
        else:
            counts, edges = np.histogram(d, bins=np.asarray(bin_um, dtype=float))
        return edges.astype(float), counts.astype(np.int64)


def porosity(pore_mask, sample_mask=None) -> float:
    """Pore voxel fraction of the sample.

    Parameters
    ----------
    pore_mask : array-like of bool
        Pore voxels. Voxels outside ``sample_mask`` are ignored.
    sample_mask : array-like of bool, optional
        Voxels of the sample (the denominator); the whole array if omitted.

    Returns
    -------
    float
        Porosity, a fraction 0..1 (dimensionless; voxel size cancels out).

    Raises
    ------
    InputError
        If the masks differ in shape or the sample mask is empty.
    """
    pores = np.asarray(pore_mask).astype(bool, copy=False)
    if sample_mask is None:
        if pores.size == 0:
            raise InputError("The pore mask is empty (no voxels); give a non-empty array.")
        return float(np.count_nonzero(pores)) / float(pores.size)
    sample = np.asarray(sample_mask).astype(bool, copy=False)
    same_shape(pores, sample, ("pore mask", "sample mask"))
    n_sample = np.count_nonzero(sample)
    if n_sample == 0:
        raise InputError(
            "The sample mask selects no voxels, so porosity is undefined. "
            "Give a mask that covers the sample, or none for the whole image."
        )
    return float(np.count_nonzero(pores & sample)) / float(n_sample)


def pore_table(labels, voxel_um) -> dict[str, np.ndarray]:
    """Per-pore statistics of an existing label image.

    Parameters
    ----------
    labels : array-like of int
        2D (y, x) or 3D (z, y, x) label image; 0 is background. Labels need
        not be consecutive.
    voxel_um : float or sequence of float
        Voxel size in micrometres, one number (isotropic) or one per axis.

    Returns
    -------
    dict of str to numpy.ndarray
        3D: ``label``, ``volume_um3`` (um^3), ``diameter_um`` (equivalent
        spherical diameter ``(6V/pi)^(1/3)``, um), ``surface_um2`` (area of the
        marching-cubes surface at level 0.5 of the pore mask, um^2),
        ``sphericity`` (``pi^(1/3) (6V)^(2/3) / A``, clipped to 1 as in the
        paper), ``centroid_z_um``, ``centroid_y_um``, ``centroid_x_um``
        (um, voxel (0, 0, 0) centre at 0).
        2D: ``label``, ``area_um2``, ``diameter_um`` (equivalent circular
        diameter ``2 sqrt(A/pi)``), ``perimeter_um`` (length of the marching
        squares contour at level 0.5), ``sphericity`` (circularity
        ``4 pi A / P^2``, clipped to 1), ``centroid_y_um``, ``centroid_x_um``.

    Raises
    ------
    InputError
        If ``labels`` is not a 2D/3D integer array.
    VoxelSizeError
        If the voxel size is missing or invalid.
    """
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise InputError(
            f"labels must be a 2D (y, x) or 3D (z, y, x) label image, got shape {lab.shape}."
        )
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
        raise InputError(
            f"labels must hold integers (0 = background), got dtype {lab.dtype}. "
            "Label a binary mask first, e.g. with skimage.measure.label."
        )
    voxel = voxel_tuple(voxel_um, lab.ndim)
    return drain(_iter_table(lab.astype(np.int64, copy=False), voxel))


def analyse_pores(image, voxel_um, **options) -> PoreResult:
    """Segment pores and measure them: :func:`iter_analyse_pores` run to its end.

    Takes the same arguments (forwarded, so the two signatures cannot drift
    apart) and returns its :class:`PoreResult`.
    """
    return drain(iter_analyse_pores(image, voxel_um, **options))


def iter_analyse_pores(
    image,
    voxel_um,
    *,
    threshold="otsu",
    pores_are="dark",
    sample_mask="auto",
    closing_radius=1,
    split=True,
    edge_kill=True,
    min_volume_voxels=None,
    split_h_um=None,
) -> Generator[PoreProgress, None, PoreResult]:
    """Segment pores and measure them, yielding progress records.

    Parameters
    ----------
    image : array-like
        2D (y, x) or 3D (z, y, x) grey-value image. It is not modified.
    voxel_um : float or sequence of float
        Voxel size in micrometres, one number or one per axis (z, y, x).
    threshold : "otsu" or float
        Grey value between pores and solid. ``"otsu"`` uses Otsu's method on
        the sample voxels when an explicit ``sample_mask`` is given, on the
        whole image otherwise. A number must lie within the image's range.
        Dark pores are ``image < threshold``, bright ones ``image > threshold``.
        Otsu assumes two populations of comparable weight: with a few percent
        of pores in a noisy image it may split the solid's noise instead; give
        a number then.
    pores_are : {"dark", "bright"}
        Whether pores are darker (X-ray CT of voids) or brighter than solid.
    sample_mask : "auto", None or array-like of bool
        Voxels that belong to the sample (the porosity denominator).
        ``None``: the whole image. An array: that mask (same shape as the
        image). ``"auto"``: the solid phase with its holes filled slice by
        slice in the (y, x) plane, largest connected part; used only when dark
        regions touching the lateral border look like air around the sample
        (large regions covering much of the border), otherwise the whole image
        is the sample. Pores open to the air in a slice lie outside such a
        mask. Pass ``None`` for open pore networks that fill the field.
    closing_radius : float
        Radius of the binary closing of the pore phase, in voxels of the finest
        axis (the footprint is a ball in physical units); 0 disables it.
    split : bool
        Split merged pores by a watershed on the distance map.
    edge_kill : bool or iterable of axes
        Leave pores cut by the image border out of the per-pore statistics
        (they stay in ``pore_mask`` and in the porosity). ``True``: all
        faces. An iterable of axis indices or names (``"z"``, ``"y"``,
        ``"x"``) limits it to the faces across those axes, e.g. ``("z",)``
        for the top and bottom slices of a cylinder. Unless ``False``, pores
        touching the boundary of the sample mask (cut by the sample surface)
        are left out too.
    min_volume_voxels : int, optional
        Connected pore objects smaller than this many voxels are noise and are
        removed from the pore mask before splitting (so they do not count
        towards porosity). Default 8 in 3D, 4 in 2D; 0 keeps everything.
    split_h_um : float, optional
        Minimum height (um) of a distance-map maximum to seed its own pore.
        Two touching balls of radius R joined by a neck of radius r differ
        by ``R - r``; digital noise on a single ball is below one voxel.
        Default: the largest voxel size.

    Yields
    ------
    PoreProgress
        One record per step.

    Returns
    -------
    PoreResult
        Masks, labels, the per-pore table and the porosity. An image without
        pores gives count 0, porosity 0 and an empty table.

    Raises
    ------
    InputError
        For an unusable image, mask of another shape, a threshold outside the
        image range, or an invalid option.
    VoxelSizeError
        If the voxel size is missing or invalid.
    """
    img = as_image(image, "image")
    ndim = img.ndim
    voxel = voxel_tuple(voxel_um, ndim)
    if pores_are not in ("dark", "bright"):
        raise InputError(f'pores_are must be "dark" or "bright", got {pores_are!r}.')
    closing_radius = _number(closing_radius, "closing_radius (voxels)")
    if min_volume_voxels is None:
        min_volume_voxels = 8 if ndim == 3 else 4
    min_volume_voxels = _number(min_volume_voxels, "min_volume_voxels")
    split_h_um = _number(max(voxel) if split_h_um is None else split_h_um, "split_h_um")
    if split_h_um == 0:
        raise InputError("split_h_um must be a positive length in um, got 0.")
    kill_axes = _edge_axes(edge_kill, ndim)

    explicit = None
    if isinstance(sample_mask, str):
        if sample_mask != "auto":
            raise InputError(
                f'sample_mask must be "auto", None or a boolean array, got {sample_mask!r}.'
            )
    elif sample_mask is not None:
        explicit = np.asarray(sample_mask)
        same_shape(img, explicit, ("image", "sample mask"))
        explicit = explicit.astype(bool, copy=False)
        if not explicit.any():
            raise InputError(
                "The sample mask selects no voxels. Give a mask that covers the "
                "sample, sample_mask=None for the whole image, or 'auto'."
            )

    total = 6
    yield PoreProgress(0, total, "thresholding")
    lo, hi = float(img.min()), float(img.max())
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise InputError(f'threshold must be "otsu" or a number, got {threshold!r}.')
        t = float(threshold_otsu(img[explicit] if explicit is not None else img))
    else:
        try:
            t = float(threshold)
        except (TypeError, ValueError):
            raise InputError(f'threshold must be "otsu" or a number, got {threshold!r}.') from None
        if not (lo <= t <= hi):
            raise InputError(
                f"threshold {t:g} lies outside the image range [{lo:g}, {hi:g}], so "
                "every voxel would fall on one side. Choose a value inside it, or 'otsu'."
            )
    # Strict on both sides: voxels at the threshold are solid, so a constant
    # image (Otsu returns its value) has no pores whichever way pores point.
    phase = img < t if pores_are == "dark" else img > t

    yield PoreProgress(1, total, "finding the sample")
    if explicit is not None:
        sample = explicit.copy()
    elif sample_mask is None:
        sample = np.ones(img.shape, dtype=bool)
    else:
        sample = _auto_sample_mask(phase)
    pores = phase & sample

    yield PoreProgress(2, total, "closing small holes")
    if closing_radius > 0 and pores.any():
        pores = _closing(pores, _ellipsoid_footprint(closing_radius, voxel)) & sample
    conn1 = ndi.generate_binary_structure(ndim, 1)
    components, n_comp = ndi.label(pores, structure=conn1)
    if min_volume_voxels > 0 and n_comp:
        sizes = np.bincount(components.ravel())
        small = sizes < min_volume_voxels
        small[0] = False
        if small.any():
            pores &= ~small[components]
            components, n_comp = ndi.label(pores, structure=conn1)

    yield PoreProgress(3, total, "splitting merged pores")
    if split and n_comp:
        labels = yield from _report(
            _iter_split(pores, components, voxel, split_h_um), 3, total, "splitting merged pores"
        )
    else:
        labels = components
    labels = labels.astype(np.int32, copy=False)

    yield PoreProgress(4, total, "removing pores cut by the border")
    if kill_axes is not None and labels.any():
        killed = _touching_labels(labels, kill_axes, sample)
        if killed.size:
            lut = np.arange(int(labels.max()) + 1, dtype=np.int32)
            lut[killed] = 0
            labels = lut[labels]

    # Consecutive labels 1..n so that the table row i describes label i + 1.
    uniq = np.unique(labels)
    uniq = uniq[uniq > 0]
    if uniq.size and uniq[-1] != uniq.size:
        lut = np.zeros(int(uniq[-1]) + 1, dtype=np.int32)
        lut[uniq] = np.arange(1, uniq.size + 1, dtype=np.int32)
        labels = lut[labels]

    yield PoreProgress(5, total, "measuring pores")
    table = yield from _report(_iter_table(labels, voxel), 5, total, "measuring pores")
    result = PoreResult(
        labels=labels,
        pore_mask=pores,
        sample_mask=sample,
        table=table,
        voxel_um=voxel,
        threshold=t,
        porosity=porosity(pores, sample),
    )
    yield PoreProgress(6, total, f"{result.count} pores, porosity {result.porosity:.4f}")
    return result


# ----------------------------------------------------------------------------
# steps


def _number(value, name: str) -> float:
    """``value`` as a finite float >= 0, or an InputError naming the option."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number >= 0, got {value!r}.") from None
    if not (math.isfinite(out) and out >= 0):
        raise InputError(f"{name} must be a number >= 0, got {value!r}.")
    return out


def _edge_axes(edge_kill, ndim: int) -> tuple[int, ...] | None:
    """Axes whose two faces cut pores; ``None`` disables edge-kill entirely."""
    if edge_kill is None or isinstance(edge_kill, (bool, np.bool_)):
        return tuple(range(ndim)) if edge_kill else None
    names = _AXIS_NAMES[ndim]
    if isinstance(edge_kill, (str, int)):
        edge_kill = (edge_kill,)
    if not isinstance(edge_kill, Iterable):
        raise InputError(
            f"edge_kill must be True, False or axes such as ('z',), got {edge_kill!r}."
        )
    axes = []
    for a in edge_kill:
        if isinstance(a, str) and a.lower() in names:
            axes.append(names.index(a.lower()))
        elif isinstance(a, (int, np.integer)) and -ndim <= a < ndim:
            axes.append(int(a) % ndim)
        else:
            raise InputError(
                f"edge_kill axis {a!r} is not one of {names} or an index below {ndim}."
            )
    return tuple(sorted(set(axes)))


def _ellipsoid_footprint(radius: float, voxel: tuple[float, ...]) -> np.ndarray:
    """Ball of ``radius`` finest-axis voxels in physical space, sampled on the grid."""
    r_um = radius * min(voxel)
    half = [math.floor(r_um / v) for v in voxel]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((g * v / r_um) ** 2 for g, v in zip(grids, voxel))
    return dist2 <= 1.0 + 1e-9


def _closing(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Binary closing that treats the array border as a mirror, not as solid.

    scipy erodes from a False border, which would shave pores cut by the
    border; edge padding continues them outwards instead.
    """
    pad = [(h - 1, h - 1) for h in footprint.shape]  # twice the footprint radius
    closed = ndi.binary_closing(np.pad(mask, pad, mode="edge"), structure=footprint)
    return closed[tuple(slice(p, p + n) for (p, _), n in zip(pad, mask.shape))]


def _auto_sample_mask(phase: np.ndarray) -> np.ndarray:
    """Sample mask from the pore phase: solid with holes filled per (y, x) slice.

    Filling per slice (not in 3D) matters because pores cut by the first or
    last slice would connect the inside of a cylinder to the outside in 3D.
    """
    solid = ~phase
    slices = solid[None] if solid.ndim == 2 else solid
    filled = np.empty_like(slices)
    for z in range(slices.shape[0]):
        filled[z] = ndi.binary_fill_holes(slices[z])
    conn1 = ndi.generate_binary_structure(3, 1)
    lab, n = ndi.label(filled, structure=conn1)
    if n == 0:
        warnings.warn(
            "No solid phase was found, so the automatic sample mask is the whole "
            "image. Check the threshold and pores_are.",
            ResolveWarning,
            stacklevel=4,
        )
        return np.ones(phase.shape, dtype=bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    filled = lab == int(np.argmax(sizes))

    # Is the rest air around the sample, or only pores cut by the border?
    outside = ~filled
    ring = np.zeros(slices.shape[1:], dtype=bool)
    ring[[0, -1], :] = True
    ring[:, [0, -1]] = True
    ring3 = np.broadcast_to(ring, slices.shape)
    n_ring = int(np.count_nonzero(ring3))
    out_lab, n_out = ndi.label(outside, structure=conn1)
    if n_out:
        contact = np.bincount(out_lab[ring3], minlength=n_out + 1)
        contact[0] = 0
        air = contact[contact >= _AIR_COMPONENT_RING * n_ring].sum()
    else:
        air = 0
    if air < _AIR_RING_FRACTION * n_ring:
        return np.ones(phase.shape, dtype=bool)
    return filled[0] if phase.ndim == 2 else filled


def _report(gen, step: int, total: int, message: str):
    """Turn a helper's ``(done, of)`` records into :class:`PoreProgress`; return its value."""
    while True:
        try:
            done, of = next(gen)
        except StopIteration as stop:
            return stop.value
        yield PoreProgress(step, total, f"{message} ({done}/{of})")




# Per-object loops report every this many objects, so that a stop request is
# honoured within a fraction of a second even in volumes with 10^5 pores.
_REPORT_EVERY = 256


def _iter_split(
    pores: np.ndarray, components: np.ndarray, voxel: tuple[float, ...], h_um: float
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Watershed of merged pores, seeded by h-maxima of the physical distance map.

    h-maxima (rather than plain local maxima) ignore the plateaus and sub-voxel
    bumps of a digital ball's distance map, so single balls stay whole while
    two balls joined by a neck (a maximum at least ``h_um`` above the neck)
    get one seed each. Work is done per connected component, inside its
    bounding box, so big volumes with many small pores stay fast.
    """
    out = np.zeros(pores.shape, dtype=np.int32)
    nxt = 1
    ndim = pores.ndim
    objects = ndi.find_objects(components)
    for i, sl in enumerate(objects, start=1):
        if i % _REPORT_EVERY == 0:
            yield i, len(objects)
        if sl is None:
            continue
        # One voxel of margin so that the distance map sees the pore's surface.
        box = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(sl, pores.shape)
        )
        mask = components[box] == i
        if mask.sum() < 2:
            out[box][mask] = nxt
            nxt += 1
            continue
        dist = ndi.distance_transform_edt(mask, sampling=voxel)
        peaks = h_maxima(dist, h_um) & mask
        markers, n = ndi.label(peaks, structure=np.ones((3,) * ndim, dtype=bool))
        if n <= 1:
            out[box][mask] = nxt
            nxt += 1
            continue
        ws = watershed(-dist, markers, mask=mask)
        sub = out[box]
        sub[mask] = ws[mask] + (nxt - 1)
        nxt += n
    return out


def _touching_labels(
    labels: np.ndarray, axes: tuple[int, ...], sample: np.ndarray
) -> np.ndarray:
    """Labels of pores on the chosen faces of the array or on the sample boundary."""
    found = []
    for ax in axes:
        for idx in (0, -1):
            face = np.take(labels, idx, axis=ax)
            found.append(np.unique(face))
    if not sample.all():
        # A pore next to a voxel outside the sample is cut by the sample surface.
        face = ndi.generate_binary_structure(sample.ndim, 1)
        near_out = ndi.binary_dilation(~sample, structure=face)
        found.append(np.unique(labels[near_out]))
    if not found:
        return np.zeros(0, dtype=np.int64)
    ids = np.unique(np.concatenate(found))
    return ids[ids > 0]


def _iter_table(
    labels: np.ndarray, voxel: tuple[float, ...]
) -> Generator[tuple[int, int], None, dict[str, np.ndarray]]:
    """Per-label statistics; only each label's bounding box is visited."""
    ndim = labels.ndim
    cell = float(np.prod(voxel))
    rows = []
    objects = ndi.find_objects(labels)
    for i, sl in enumerate(objects, start=1):
        if i % _REPORT_EVERY == 0:
            yield i, len(objects)
        if sl is None:
            continue
        mask = labels[sl] == i
        idx = np.nonzero(mask)
        centroid = [(float(ix.mean()) + s.start) * v for ix, s, v in zip(idx, sl, voxel)]
        size = idx[0].size * cell
        boundary, enclosed = _boundary(mask, voxel)
        if ndim == 3:
            diameter = (6.0 * size / math.pi) ** (1.0 / 3.0)
            shape = math.pi ** (1.0 / 3.0) * (6.0 * enclosed) ** (2.0 / 3.0) / boundary
        else:
            diameter = 2.0 * math.sqrt(size / math.pi)
            shape = 4.0 * math.pi * enclosed / boundary**2
        # The paper rounds values above 1 (surface estimate noise) down to 1.
        rows.append((i, size, diameter, boundary, min(shape, 1.0), *centroid))
    names = COLUMNS_3D if ndim == 3 else COLUMNS_2D
    table = {}
    for j, name in enumerate(names):
        dtype = np.int32 if name == "label" else np.float64
        table[name] = np.asarray([r[j] for r in rows], dtype=dtype)
    return table


def _boundary(mask: np.ndarray, voxel: tuple[float, ...]) -> tuple[float, float]:
    """Surface area (3D, um^2) or perimeter (2D, um) of one pore, and what it encloses.

    The isosurface at 0.5 of the raw binary mask is a chamfered staircase
    whose area is about 8 % too large for a ball at any radius (sphericity
    0.88-0.93, worse with anisotropic voxels). Smoothing the mask with a
    Gaussian of _SURFACE_SIGMA voxels per axis first gives a surface close to
    the underlying smooth shape. Sphericity then uses the volume enclosed by
    that same surface, so the slight shrinkage of the smoothing cancels
    (balls of radius 3-16 voxels score 0.97-0.99, ellipsoids within about
    0.02 of their true value). Pores too thin to survive the smoothing fall
    back to the raw mask.
    """
    padded = np.pad(mask, 2).astype(np.float32)
    smooth = ndi.gaussian_filter(padded, _SURFACE_SIGMA, mode="constant")
    n_vox = float(np.count_nonzero(mask)) * float(np.prod(voxel))
    for level_map in (smooth, padded):
        if level_map.max() <= 0.5:
            continue
        if mask.ndim == 3:
            verts, faces, _, _ = marching_cubes(level_map, 0.5, spacing=voxel)
            area = float(mesh_surface_area(verts, faces))
            a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
            # Divergence theorem: signed tetrahedra from the origin.
            enclosed = abs(float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum())) / 6.0
        else:
            area = enclosed = 0.0
            for contour in find_contours(level_map, 0.5):
                pts = contour * np.asarray(voxel)
                area += float(np.sqrt((np.diff(pts, axis=0) ** 2).sum(axis=1)).sum())
                # Shoelace formula; contours of holes subtract.
                enclosed += 0.5 * float(
                    np.sum(pts[:-1, 0] * pts[1:, 1] - pts[1:, 0] * pts[:-1, 1])
                )
            enclosed = abs(enclosed)
        if area > 0 and enclosed >= 0.5 * n_vox:
            return area, enclosed
    return area, n_vox


# ----------------------------------------------------------------------------
# pore recovery: which true pores did an analysis find?


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
