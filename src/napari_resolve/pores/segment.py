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

The job is planned, then run (``docs/architecture.md``):
:func:`plan_analyse_pores` checks the image and every option on the caller's
thread and returns a :class:`PorePlan`; :func:`iter_analyse_pores` runs it,
yielding :class:`napari_resolve.jobs.Progress` records (no ``data``) and
returning a :class:`~napari_resolve.pores.stats.PoreResult`;
:func:`analyse_pores` does both. The per-pore statistics live in
:mod:`napari_resolve.pores.stats`, pore recovery against true labels
(:func:`match_pores`) in :mod:`napari_resolve.pores.match`; both are
re-exported here.

2D images (y, x) go through the same route. Their table holds ``area_um2``
and ``perimeter_um`` instead of ``volume_um3`` and ``surface_um2``; the
``diameter_um`` column is the equivalent circular diameter and the
``sphericity`` column holds the circularity ``4 pi A / P**2``, so that callers
can plot sizes and shapes of 2D and 3D results alike.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.morphology import convex_hull_image, h_maxima
from skimage.segmentation import watershed

from napari_resolve._validate import as_image, same_shape, voxel_tuple
from napari_resolve.errors import InputError, ResolveWarning
from napari_resolve.jobs import Progress, drain, forward

# Moved to their own modules; importable from here as before.
from napari_resolve.pores.match import PoreMatch, match_pores
from napari_resolve.pores.stats import (
    _REPORT_EVERY,
    COLUMNS_2D,
    COLUMNS_3D,
    PoreResult,
    PoreWarning,
    _iter_table,
    pore_table,
    porosity,
)

__all__ = [
    "COLUMNS_2D",
    "COLUMNS_3D",
    "PoreMatch",
    "PorePlan",
    "PoreProgress",
    "PoreResult",
    "analyse_pores",
    "iter_analyse_pores",
    "match_pores",
    "plan_analyse_pores",
    "pore_table",
    "porosity",
]

# "auto" sample mask: air around the sample is a large dark region that runs
# along the lateral border of the field. A dark region counts as air when it
# touches at least _AIR_COMPONENT_RING of the border ring by itself (a pore cut
# by the border touches only a few per mille of it), and the sample is taken
# as surrounded by air when such regions cover _AIR_RING_FRACTION of the ring.
_AIR_COMPONENT_RING = 0.02
_AIR_RING_FRACTION = 0.2

#: A sample mask that leaves out more than this share of the pore phase lying
#: within the sample's outline (its convex hull, slice by slice, so the air
#: around a sample does not count) draws a warning: the automatic mask has then
#: probably taken an open pore network touching the border for air.
DISCARD_WARNING = 0.5

_AXIS_NAMES = {3: ("z", "y", "x"), 2: ("y", "x")}

#: The records this module's generators yield (step, total, message): the one record type.
PoreProgress = Progress

#: Steps of one analysis.
STEPS = 6


@dataclass(frozen=True, eq=False)
class PorePlan:
    """A checked pore analysis, ready to run (:func:`plan_analyse_pores`).

    Attributes
    ----------
    image : numpy.ndarray of float32
        The 2D (y, x) or 3D (z, y, x) grey-value image, finite (a view of the
        caller's array where it was float32 already; never modified).
    voxel_um : tuple of float
        Voxel size per axis, um.
    threshold : "otsu" or float
        Otsu's method, or a grey value within the image's range.
    pores_are : {"dark", "bright"}
    sample_mask : "auto", None or numpy.ndarray of bool
        As :func:`plan_analyse_pores` takes it; an array is non-empty and of the
        image's shape.
    closing_radius : float
        Closing radius in voxels of the finest axis (0: no closing).
    split : bool
    edge_axes : tuple of int or None
        Axes whose faces cut pores (None: no edge-kill).
    min_volume_voxels : float
        Smallest kept pore object, voxels.
    split_h_um : float
        Minimum height of a distance-map maximum that seeds a pore, um (> 0).
    """

    image: np.ndarray = field(repr=False)
    voxel_um: tuple[float, ...]
    threshold: str | float = "otsu"
    pores_are: str = "dark"
    sample_mask: object = field(default="auto", repr=False)
    closing_radius: float = 1.0
    split: bool = True
    edge_axes: tuple[int, ...] | None = None
    min_volume_voxels: float = 8.0
    split_h_um: float = 1.0

    @property
    def ndim(self) -> int:
        """2 for an image, 3 for a volume."""
        return self.image.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        """The image's shape, voxels."""
        return tuple(self.image.shape)


def plan_analyse_pores(
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
) -> PorePlan:
    """Check a pore analysis on the caller's thread: every refusal happens here, before any work.

    Parameters
    ----------
    image : array-like
        2D (y, x) or 3D (z, y, x) grey-value image. It is not modified (a lazy
        array is read here).
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

    Returns
    -------
    PorePlan

    Raises
    ------
    InputError
        For an unusable image, mask of another shape, a threshold outside the
        image range, or an invalid option (the message names the parameter).
    VoxelSizeError
        If the voxel size is missing or invalid.
    """
    img = as_image(image, "image")
    ndim = img.ndim
    voxel = voxel_tuple(voxel_um, ndim)
    if pores_are not in ("dark", "bright"):
        raise InputError(f'{{pores_are}} must be "dark" or "bright", got {pores_are!r}.', parameters=("pores_are",))
    closing = _number(closing_radius, "closing_radius", "voxels")
    if min_volume_voxels is None:
        min_volume_voxels = 8 if ndim == 3 else 4
    min_volume = _number(min_volume_voxels, "min_volume_voxels", "voxels")
    h_um = _number(max(voxel) if split_h_um is None else split_h_um, "split_h_um", "um")
    if h_um == 0:
        raise InputError("{split_h_um} must be a positive length in um, got 0.", parameters=("split_h_um",))
    kill_axes = _edge_axes(edge_kill, ndim)

    mask = sample_mask
    if isinstance(sample_mask, str):
        if sample_mask != "auto":
            raise InputError(
                f'{{sample_mask}} must be "auto", None or a boolean array, got {sample_mask!r}.',
                parameters=("sample_mask",),
            )
    elif sample_mask is not None:
        mask = np.asarray(sample_mask)
        same_shape(img, mask, ("image", "sample mask"))
        mask = mask.astype(bool, copy=True)  # the plan's own copy: the caller's mask may change
        if not mask.any():
            raise InputError(
                "The sample mask ({sample_mask}) selects no voxels. Give a mask that covers the "
                "sample, None for the whole image, or 'auto'.",
                parameters=("sample_mask",),
            )

    t: str | float = threshold
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise InputError(f'{{threshold}} must be "otsu" or a number, got {threshold!r}.',
                             parameters=("threshold",))
    else:
        try:
            t = float(threshold)
        except (TypeError, ValueError):
            raise InputError(f'{{threshold}} must be "otsu" or a number, got {threshold!r}.',
                             parameters=("threshold",)) from None
        lo, hi = float(img.min()), float(img.max())
        if not (lo <= t <= hi):
            raise InputError(
                f"The {{threshold}} {t:g} lies outside the image range [{lo:g}, {hi:g}], so "
                "every voxel would fall on one side. Choose a value inside it, or 'otsu'.",
                parameters=("threshold",),
            )
    return PorePlan(
        image=img, voxel_um=voxel, threshold=t, pores_are=pores_are, sample_mask=mask,
        closing_radius=closing, split=bool(split), edge_axes=kill_axes, min_volume_voxels=min_volume,
        split_h_um=h_um,
    )


def analyse_pores(image, voxel_um, **options) -> PoreResult:
    """Segment pores and measure them: :func:`plan_analyse_pores`, then the job run to its end.

    Takes the arguments of :func:`plan_analyse_pores` (forwarded, so the
    signatures cannot drift apart) and returns the :class:`PoreResult`.
    """
    return drain(iter_analyse_pores(plan_analyse_pores(image, voxel_um, **options)))


def iter_analyse_pores(plan, voxel_um=None, **options) -> Generator[Progress, None, PoreResult]:
    """Segment pores and measure them, yielding progress records.

    Parameters
    ----------
    plan : PorePlan or array-like
        A plan from :func:`plan_analyse_pores`. An image is planned first, here
        (``iter_analyse_pores(image, voxel_um, **options)``, the older call
        form): bad input is refused by this call, before the generator exists.
    voxel_um, **options
        With an image only: the arguments of :func:`plan_analyse_pores`.

    Yields
    ------
    napari_resolve.jobs.Progress
        One record per step (:data:`STEPS` in all), more while splitting and
        measuring many pores; ``data`` is None.

    Returns
    -------
    PoreResult
        Masks, labels, the per-pore table and the porosity. An image without
        pores gives count 0, porosity 0 and an empty table.
    """
    if not isinstance(plan, PorePlan):
        plan = plan_analyse_pores(plan, voxel_um, **options)
    elif voxel_um is not None or options:
        raise TypeError("iter_analyse_pores(plan) takes no other arguments; they are the plan's.")
    return _run(plan)


def _run(plan: PorePlan) -> Generator[Progress, None, PoreResult]:
    """The work of :func:`iter_analyse_pores`: nothing is checked here."""
    img, voxel, total = plan.image, plan.voxel_um, STEPS
    explicit = plan.sample_mask if isinstance(plan.sample_mask, np.ndarray) else None

    yield Progress(0, total, "thresholding")
    if plan.threshold == "otsu":
        t = float(threshold_otsu(img[explicit] if explicit is not None else img))
    else:
        t = float(plan.threshold)
    faces = None if plan.edge_axes is None else tuple((ax, i) for ax in plan.edge_axes for i in (0, -1))
    mask = plan.sample_mask if explicit is None else explicit.copy()
    phase, sample, pores, labels, cut, _ = yield from _iter_segment(img, t, mask, plan, faces)

    # Consecutive labels 1..n so that the table row i describes label i + 1.
    uniq = np.unique(labels)
    uniq = uniq[uniq > 0]
    if uniq.size and uniq[-1] != uniq.size:
        lut = np.zeros(int(uniq[-1]) + 1, dtype=np.int32)
        lut[uniq] = np.arange(1, uniq.size + 1, dtype=np.int32)
        labels = lut[labels]

    yield Progress(5, total, "measuring pores")
    table = yield from forward(_iter_table(labels, voxel), 5, total, span=1, prefix="measuring pores ")
    discarded = discarded_fraction(phase, sample)
    notes = ()
    if discarded > DISCARD_WARNING:
        notes = (_discard_warning(discarded, automatic=explicit is None),)
    result = PoreResult(labels=labels, pore_mask=pores, sample_mask=sample, table=table, voxel_um=voxel, threshold=t,
                        porosity=porosity(pores, sample), cut_labels=cut, discarded_fraction=discarded, warnings=notes)
    yield Progress(6, total, f"{result.count} pores, porosity {100 * result.porosity:.1f} %")
    return result


def _iter_segment(img, t, sample_mask, options, faces, keep_removed=False):
    """Steps 1-4 with a known threshold ``t`` (phase, sample, closing, noise removal, split, edge-kill).

    ``img`` is the image or one block of it (:mod:`napari_resolve.pores.chunked`);
    ``sample_mask`` as in :class:`PorePlan` (an array is used, not copied);
    ``options`` a :class:`PorePlan` or any object with its ``voxel_um``,
    ``pores_are``, ``closing_radius``, ``min_volume_voxels``, ``split`` and
    ``split_h_um``; ``faces`` the (axis, 0 or -1) faces of ``img`` that cut
    pores (with the sample boundary), None for no edge-kill. Yields Progress,
    returns ``(phase, sample, pores, labels, cut, removed)``: ``removed`` holds
    the voxels removed as noise when ``keep_removed``, else None.
    """
    voxel, ndim, total = options.voxel_um, img.ndim, STEPS
    # Strict on both sides: voxels at the threshold are solid, so a constant
    # image (Otsu returns its value) has no pores whichever way pores point.
    phase = img < t if options.pores_are == "dark" else img > t

    yield Progress(1, total, "finding the sample")
    if isinstance(sample_mask, np.ndarray):
        sample = sample_mask
    elif sample_mask is None:
        sample = np.ones(img.shape, dtype=bool)
    else:
        sample = _auto_sample_mask(phase)
    pores = phase & sample

    yield Progress(2, total, "closing small holes")
    if options.closing_radius > 0 and pores.any():
        pores = _closing(pores, _ellipsoid_footprint(options.closing_radius, voxel)) & sample
    conn1 = ndi.generate_binary_structure(ndim, 1)
    components, n_comp = ndi.label(pores, structure=conn1)
    removed = np.zeros(img.shape, dtype=bool) if keep_removed else None
    if options.min_volume_voxels > 0 and n_comp:
        sizes = np.bincount(components.ravel())
        small = sizes < options.min_volume_voxels
        small[0] = False
        if small.any():
            if keep_removed:
                removed = small[components]
            pores &= ~small[components]
            components, n_comp = ndi.label(pores, structure=conn1)

    yield Progress(3, total, "splitting merged pores")
    if options.split and n_comp:
        labels = yield from forward(_iter_split(pores, components, voxel, options.split_h_um), 3, total, span=1,
                                    prefix="splitting merged pores ")
    else:
        labels = components
    labels = labels.astype(np.int32, copy=False)

    yield Progress(4, total, "removing pores cut by the border")
    cut = None
    if faces is not None:
        cut = np.zeros(labels.shape, dtype=np.int32)
        killed = _touching_labels(labels, faces, sample) if labels.any() else np.zeros(0, np.int64)
        if killed.size:
            lut = np.arange(int(labels.max()) + 1, dtype=np.int32)
            lut[killed] = 0
            cut_lut = np.zeros_like(lut)
            cut_lut[killed] = np.arange(1, killed.size + 1, dtype=np.int32)
            cut = cut_lut[labels]
            labels = lut[labels]
    return phase, sample, pores, labels, cut, removed


def discarded_fraction(phase: np.ndarray, sample: np.ndarray) -> float:
    """Share (0..1) of the pore phase within the sample's outline that the sample mask leaves out.

    The outline is the convex hull of the mask in each (y, x) slice: dark air
    around a cylinder or a grain lies outside it and is rightly left out, while
    pores that an automatic mask took for air (an open network touching the
    border) lie inside it.

    Parameters
    ----------
    phase : numpy.ndarray of bool
        The thresholded pore phase (before the sample mask).
    sample : numpy.ndarray of bool
        The sample mask, same shape.

    Returns
    -------
    float
        0 when the mask is the whole image or no pore phase lies within the outline.
    """
    if sample.all():
        return 0.0
    inside, left_out = outline_counts(phase, sample)
    return left_out / inside if inside else 0.0


def outline_counts(phase: np.ndarray, sample: np.ndarray) -> tuple[int, int]:
    """Pore-phase voxels within the sample's outline and those of them outside the mask (discarded_fraction)."""
    phase3, sample3 = (phase[None], sample[None]) if phase.ndim == 2 else (phase, sample)
    inside = left_out = 0
    for z in range(sample3.shape[0]):
        if not sample3[z].any():
            continue
        hull = convex_hull_image(sample3[z]) | sample3[z]
        within = phase3[z] & hull
        inside += int(np.count_nonzero(within))
        left_out += int(np.count_nonzero(within & ~sample3[z]))
    return inside, left_out


def _discard_warning(fraction: float, automatic: bool) -> PoreWarning:
    """The caution for a sample mask that leaves out most of the pore phase."""
    why = (
        "the automatic mask has probably taken a pore network that touches the border for the air around the "
        "sample. If the sample fills the field, measure the whole field ({sample_mask})."
        if automatic
        else "check that the mask ({sample_mask}) covers the sample."
    )
    return PoreWarning(
        f"The sample mask leaves out {100 * fraction:.0f} % of the pore phase within the sample's outline, so the "
        f"porosity and pore count miss most pores: {why}",
        ("sample_mask",),
    )


# ----------------------------------------------------------------------------
# steps


def _number(value, parameter: str, unit: str) -> float:
    """``value`` as a finite float >= 0, or an InputError naming the parameter."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not (math.isfinite(out) and out >= 0):
        raise InputError(f"{{{parameter}}} must be a number >= 0 ({unit}), got {value!r}.", parameters=(parameter,))
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
            f"{{edge_kill}} must be True, False or axes such as ('z',), got {edge_kill!r}.",
            parameters=("edge_kill",),
        )
    axes = []
    for a in edge_kill:
        if isinstance(a, str) and a.lower() in names:
            axes.append(names.index(a.lower()))
        elif isinstance(a, (int, np.integer)) and -ndim <= a < ndim:
            axes.append(int(a) % ndim)
        else:
            raise InputError(
                f"The {{edge_kill}} axis {a!r} is not one of {names} or an index below {ndim}.",
                parameters=("edge_kill",),
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


def _iter_split(
    pores: np.ndarray, components: np.ndarray, voxel: tuple[float, ...], h_um: float
) -> Generator[Progress, None, np.ndarray]:
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
            yield Progress(i, len(objects), f"({i}/{len(objects)})")
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


def _touching_labels(labels: np.ndarray, faces, sample: np.ndarray) -> np.ndarray:
    """Labels of pores on the chosen faces ((axis, 0 or -1) pairs) of the array or on the sample boundary."""
    found = [np.unique(np.take(labels, idx, axis=ax)) for ax, idx in faces]
    if not sample.all():
        # A pore next to a voxel outside the sample is cut by the sample surface.
        face = ndi.generate_binary_structure(sample.ndim, 1)
        near_out = ndi.binary_dilation(~sample, structure=face)
        found.append(np.unique(labels[near_out]))
    if not found:
        return np.zeros(0, dtype=np.int64)
    ids = np.unique(np.concatenate(found))
    return ids[ids > 0]
