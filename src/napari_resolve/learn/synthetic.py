"""Synthetic training pairs: training without an LRES scan.

When only a high-resolution volume exists (or a model is wanted before the LRES
scan is made), training pairs are made from the HRES itself with the
degradation of Bizhani et al. 2022 (docs/references.md;
https://doi.org/10.1038/s41598-022-08170-8), see
:mod:`napari_resolve.learn.degradation` (local mean, random blur, random noise).

For training (:func:`napari_resolve.learn.training.plan_train_synthetic`) the
parameters are drawn afresh **for every patch**, so the network learns the
whole range instead of one setting: the patch's HRES neighbourhood is degraded
and interpolated back onto the HRES voxels exactly as a real LRES is
(:func:`napari_resolve.geometry.grid.resample_lres`, cubic, with the LRES voxel
grid in the phase of real binning, :func:`binning_phase_origin_um`). The
validation block is one fixed degradation (every range's midpoint, a fixed
noise seed).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_resolve._validate import as_image, voxel_tuple
from napari_resolve.errors import InputError
from napari_resolve.learn.config import DEFAULTS, MIN_VALIDATION, TASKS
from napari_resolve.learn.degradation import (  # noqa: F401 - re-exported: the old home of these names
    MIN_LRES_VOXELS,
    SPLINE_MARGIN,
    TRUNCATE,
    Degradation,
    _blur,
    _check_size,
    _noise,
    degrade,
    format_range,
    parse_range,
)
from napari_resolve.learn.normalisation import Normalisation, fit_normalisation
from napari_resolve.learn.pairs import PatchSampler, TrainingPair, validation_size


def binning_phase_origin_um(hres_voxel_um, lres_voxel_um) -> tuple[float, ...]:
    """Where HRES voxel 0 of a synthetic pair lies in its LRES frame (um): the phase of binning.

    A synthetic LRES voxel averages whole HRES voxels starting at the HRES's
    edge, as binning does (:func:`synthetic_input` cuts LRES block ``m`` from
    HRES voxel ``m * ratio``): with LRES voxel 0 at the origin, HRES voxel 0 is
    centred at ``(hres_voxel - lres_voxel) / 2``. A model trained on such pairs
    records this as its grid phase, so that upscaling a real LRES puts
    ``ratio`` output voxels flush inside every LRES voxel
    (:func:`napari_resolve.geometry.grid.upscale_grid`), the relation it learned.
    """
    return tuple(0.5 * (float(h) - float(lo)) for h, lo in zip(hres_voxel_um, lres_voxel_um))

def _cut(source: np.ndarray, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
    """``source[lo:hi]`` per axis, mirrored (edge voxel repeated) where it reaches outside."""
    inner = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, source.shape))
    pad = [(max(0, -a), max(0, b - n)) for a, b, n in zip(lo, hi, source.shape)]
    block = source[inner]
    if any(p for pair in pad for p in pair):
        block = np.pad(block, pad, mode="symmetric")
    return block


def synthetic_input(
    source: np.ndarray,
    lo: Sequence[int],
    hi: Sequence[int],
    hres_voxel_um: Sequence[float],
    ratios: Sequence[float],
    params: dict[str, Any],
    rng: np.random.Generator,
    reference: tuple[float, float],
    phase: Sequence[int] | None = None,
    stages: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pre-upsampled synthetic LRES over HRES voxels ``lo:hi`` of ``source``.

    The HRES around the box (enough for the blur and the cubic interpolation;
    mirrored beyond ``source``) is degraded and interpolated back onto the box's
    HRES voxels with :func:`napari_resolve.geometry.grid.resample_lres`, the function that
    makes a real pair's input, on the grid in binning phase: LRES block ``m``
    of the cut starts at its HRES voxel ``m * ratio``.

    Parameters
    ----------
    source : ndarray
        The HRES (2D or 3D), raw grey values.
    lo, hi : sequence of int
        The box in HRES voxels (may reach outside ``source``).
    hres_voxel_um, ratios : sequence of float
        HRES voxel size and LRES/HRES ratio per axis.
    params : dict
        Degradation parameters (:meth:`Degradation.draw`).
    rng : numpy.random.Generator
        For the noise.
    reference : (float, float)
        Grey values of relative intensity 0 and 1.
    phase : sequence of int, optional
        HRES voxels between the box (less its margin) and the first LRES block
        edge, per axis (0 to ``ceil(ratio) - 1``); varies the sub-voxel phase.
    stages : bool
        Also return the LRES before the noise and before the blur (the targets
        of the denoise and deblur stages), interpolated the same way.

    Returns
    -------
    ndarray of float32, shape ``hi - lo``
        The degraded LRES; with ``stages``, the tuple ``(degraded, blurred,
        clean)``: degraded, noise-free but blurred, and local mean only.
    """
    from napari_resolve.geometry.grid import Grid, resample_lres
    from napari_resolve.registration import area_downsample

    nd = source.ndim
    phase = (0,) * nd if phase is None else tuple(int(p) for p in phase)
    starts, blocks = [], []
    for a, b, f, s, p in zip(lo, hi, ratios, params["blur_sigma"], phase):
        margin = math.ceil((math.ceil(TRUNCATE * float(s)) + SPLINE_MARGIN) * f)  # HRES voxels
        r0 = int(a) - margin - p
        blocks.append(math.ceil((int(b) + margin - r0) / f - 1e-9))
        starts.append(r0)
    stops = [r0 + math.ceil(n * f - 1e-9) for r0, n, f in zip(starts, blocks, ratios)]
    region = _cut(source, starts, stops)
    clean = area_downsample(region, ratios, blocks)
    blurred = _blur(clean, params)
    lres = _noise(blurred, params, rng, *reference)
    hv = tuple(float(v) for v in hres_voxel_um)
    lv = tuple(h * f for h, f in zip(hv, ratios))
    # Frame of the cut's LRES: block 0 at the origin, so HRES voxel k of the cut at (k + 0.5) hv - lv / 2.
    origin = tuple((a - r0 + 0.5) * h - 0.5 * lres_v for a, r0, h, lres_v in zip(lo, starts, hv, lv))
    grid = Grid(tuple(int(b) - int(a) for a, b in zip(lo, hi)), hv, origin)
    if not stages:
        return resample_lres(lres, lv, grid)
    return tuple(resample_lres(a, lv, grid) for a in (lres, blurred.astype(np.float32), clean.astype(np.float32)))


@dataclass
class SyntheticPair(TrainingPair):
    """A :class:`~napari_resolve.learn.pairs.TrainingPair` whose input is made from the HRES.

    The training part's inputs are made per patch (:meth:`patch`, fresh
    parameters every time); ``inputs`` holds the whole ROI degraded once with
    the typical (mid-range) parameters and a fixed seed, which gives the
    validation block and the input normalisation.

    Attributes
    ----------
    source : ndarray of float32
        The HRES over the ROI, raw grey values, in its own dimension (2D or 3D).
    inputs, target : ndarray of float32
        As in :class:`~napari_resolve.learn.pairs.TrainingPair` (3D, normalised), for
        the pair's ``task`` (see :data:`TASKS`).
    halo_z, val_axis, val_start, norm_in, norm_out, roi, grid, ndim
        As in :class:`~napari_resolve.learn.pairs.TrainingPair`.
    degradation : Degradation
    hres_voxel_um : tuple of float
        In the source's dimension.
    reference : (float, float)
        Grey values of relative intensity 0 and 1 (the HRES normalisation's range).
    rng : numpy.random.Generator
        Draws the training patches' parameters and noise (seeded by ``degradation.seed``).
    task : str
        What the pair teaches (a key of :data:`TASKS`). For the denoise and
        deblur tasks the target is an LRES, normalised like the input
        (``norm_out is norm_in``), so that separately trained stages chain.
    """

    # The TrainingPair fields (inputs ... ndim) come first, then these.
    source: np.ndarray
    degradation: Degradation
    hres_voxel_um: tuple[float, ...]
    reference: tuple[float, float]
    rng: np.random.Generator
    task: str = "full"

    @property
    def phase_origin_um(self) -> tuple[float, ...]:
        """HRES voxel 0's centre in the LRES frame (um): the grid phase a model of this pair records."""
        ratios = self.degradation.ratios(self.ndim)
        return binning_phase_origin_um(self.hres_voxel_um, tuple(h * f for h, f in zip(self.hres_voxel_um, ratios)))

    def restarted(self) -> SyntheticPair:
        """The same pair with its patch generator back at its start (a new run draws the same patches)."""
        return dataclasses.replace(self, rng=_generators(self.degradation.seed)[2])

    def patch(self, start: Sequence[int], shape: Sequence[int], stages: bool = False) -> list[np.ndarray]:
        """Normalised input and target of the patch at ``start`` (3D, ``shape`` = (z, y, x) target voxels).

        Fresh degradation parameters and noise are drawn; only the training part
        of the ROI is read (mirrored beyond it), so no validation voxel enters.

        Parameters
        ----------
        start, shape : sequence of int
            The target patch in the pair's (z, y, x) target voxels.
        stages : bool
            For the full task: add the denoise and deblur stages' targets (the
            LRES before the noise and before the blur, normalised like the input).

        Returns
        -------
        list of ndarray
            ``[input (with z halo), target]``, then with ``stages`` the two stage targets.
        """
        h = self.halo_z
        ratios = self.degradation.ratios(self.ndim)
        params = self.degradation.draw(self.ndim, self.rng)
        phase = [int(self.rng.integers(0, math.ceil(f - 1e-9))) for f in ratios]
        train = self.source[: self.val_start]  # the validation block is at the end of axis 0
        variants = stages or self.task != "full"
        if self.ndim == 3:
            lo = (start[0] - h, start[1], start[2])
            hi = (start[0] + shape[0] + h, start[1] + shape[1], start[2] + shape[2])
        else:
            lo, hi = (start[1], start[2]), (start[1] + shape[1], start[2] + shape[2])
        made = synthetic_input(train, lo, hi, self.hres_voxel_um, ratios, params, self.rng, self.reference, phase,
                               stages=variants)
        blocks = made if variants else (made,)
        if self.ndim == 2:  # a 2D image has no z neighbours: the halo repeats the slice
            blocks = tuple(np.repeat(b[None], 2 * h + 1, axis=0) for b in blocks)
        z, y, x = start
        pz, py, px = shape
        hres = self.target[z : z + pz, y : y + py, x : x + px]
        if not variants:
            return [self.norm_in.apply(blocks[0]), hres]
        noisy, blurred, clean = (self.norm_in.apply(b) for b in blocks)
        inputs, targets = _task_arrays(self.task, noisy, blurred, clean, hres, h)
        if stages and self.task == "full":
            targets += [blurred[h : blurred.shape[0] - h], clean[h : clean.shape[0] - h]]
        return [inputs, *targets]


def _task_arrays(task, noisy, blurred, clean, hres, h) -> tuple[np.ndarray, list[np.ndarray]]:
    """Input (with the z halo) and target list of a task, from the three LRES variants and the HRES."""
    def core(a):
        return a[h : a.shape[0] - h]

    if task == "full":
        return noisy, [hres]
    if task == "denoise":
        return noisy, [core(blurred)]
    if task == "deblur":
        return blurred, [core(clean)]
    if task == "upscale":
        return clean, [hres]
    raise InputError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")


def _generators(seed: int) -> tuple[np.random.Generator, ...]:
    """The validation block's, the input normalisation's and the training patches' generators."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))


def make_synthetic_pair(
    hres,
    hres_voxel_um,
    degradation: Degradation,
    *,
    roi=None,
    val_fraction: float = DEFAULTS.val_fraction,
    halo_z: int = 0,
    min_val: int = MIN_VALIDATION,
    norms: tuple[Normalisation, Normalisation] | None = None,
    task: str = "full",
) -> SyntheticPair:
    """The synthetic training pair of an HRES alone.

    Parameters
    ----------
    hres : array-like
        The HRES (2D or 3D).
    hres_voxel_um : float or sequence of float
        Its voxel size (um).
    degradation : Degradation
        How the LRES is made.
    roi : sequence of slice, optional
        Training ROI in HRES voxels (default the whole HRES); only its voxels are used.
    val_fraction, halo_z, min_val
        As in :func:`napari_resolve.learn.pairs.make_pair`: the validation block
        is cut by :func:`~napari_resolve.learn.pairs.validation_size`.
    norms : (Normalisation, Normalisation), optional
        Input and target normalisations to keep (when resuming a model).
    task : str
        What the pair teaches, a key of :data:`TASKS` (default the whole job).
        The input normalisation does not depend on the task, so stages trained
        separately on one HRES and degradation chain.

    Raises
    ------
    InputError
        On bad parameters, NaNs, an ROI outside the HRES, or an ROI too small
        for the ratio, a validation block and a training patch.
    """
    from napari_resolve.geometry.grid import Grid, check_roi

    if task not in TASKS:
        raise InputError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    image = as_image(hres, "HRES", min_size=2)
    ndim = image.ndim
    hv = voxel_tuple(hres_voxel_um, ndim, "HRES voxel size")
    degradation.check(ndim)
    ratios = degradation.ratios(ndim)
    roi = check_roi(roi, image.shape, "the HRES (HRES voxels)")
    source = np.ascontiguousarray(image[roi])
    _check_size(source.shape, ratios, "The training ROI" if source.shape != image.shape else "The HRES")
    n_axis = source.shape[0]
    val_start = n_axis - validation_size(source.shape, val_fraction, min_val)
    target3 = source if ndim == 3 else source[None]
    val_axis = 0 if ndim == 3 else 1
    train_t = [slice(None)] * 3
    train_t[val_axis] = slice(0, val_start)
    norm_in, norm_out = norms if norms is not None else (None, fit_normalisation(target3[tuple(train_t)]))
    reference = (norm_out.low, norm_out.high)

    # One fixed degradation (typical parameters, fixed seed) of the whole ROI
    # gives the validation block's input; one of the training part alone (so no
    # validation voxel enters) gives the input normalisation, which a real LRES
    # is later scaled with.
    val_rng, norm_rng, train_rng = _generators(degradation.seed)
    typical = degradation.typical(ndim)
    variants = task != "full"
    if ndim == 3:
        lo, hi = (-halo_z, 0, 0), (n_axis + halo_z,) + source.shape[1:]
        made = synthetic_input(source, lo, hi, hv, ratios, typical, val_rng, reference, stages=variants)
        blocks = made if variants else (made,)
    else:
        made = synthetic_input(source, (0, 0), source.shape, hv, ratios, typical, val_rng, reference, stages=variants)
        blocks = tuple(np.repeat(b[None], 2 * halo_z + 1, axis=0) for b in (made if variants else (made,)))
    if norm_in is None:
        train = source[:val_start]
        norm_in = fit_normalisation(synthetic_input(train, (0,) * ndim, train.shape, hv, ratios, typical, norm_rng,
                                                    reference))
    blocks = tuple(norm_in.apply(b) for b in blocks)
    if variants:
        # LRES targets are normalised like the input: a stage's output feeds the next stage.
        inputs, (target,) = _task_arrays(task, *blocks, norm_out.apply(target3), halo_z)
        if task in ("denoise", "deblur"):
            norm_out = norm_in
    else:
        inputs, target = blocks[0], norm_out.apply(target3)
    origin = tuple(r.start * v for r, v in zip(roi, hv))  # the HRES's own frame: voxel 0 at 0
    grid = Grid(target3.shape, hv if ndim == 3 else (hv[0],) + hv, origin if ndim == 3 else (0.0,) + origin)
    return SyntheticPair(
        source=source,
        inputs=inputs,
        target=target,
        halo_z=halo_z,
        val_axis=val_axis,
        val_start=val_start,
        norm_in=norm_in,
        norm_out=norm_out,
        roi=roi,
        grid=grid,
        ndim=ndim,
        degradation=degradation,
        hres_voxel_um=hv,
        reference=reference,
        rng=train_rng,
        task=task,
    )


class SyntheticSampler(PatchSampler):
    """Random training patches of a :class:`SyntheticPair`, each with fresh degradation parameters.

    Same arguments, patch shapes and augmentation as
    :class:`~napari_resolve.learn.pairs.PatchSampler` (whose ``rng`` chooses positions
    and flips); the pair's own generator draws the degradation and the noise.
    With ``stages`` (full task only) every batch also carries the targets of a
    multi-output network's denoise and deblur outputs.
    """

    provides_stages = True

    def _patch(self, z: int, y: int, x: int) -> list[np.ndarray]:
        # Degraded afresh for every patch (the pair's generator draws the parameters).
        return self.pair.patch((z, y, x), self.shape, stages=self.stages)
