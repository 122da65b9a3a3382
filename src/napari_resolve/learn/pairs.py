"""Training pairs: the LRES resampled voxel for voxel onto the registered HRES grid.

Following DeepNet 2024 (docs/references.md; https://doi.org/10.1515/mim-2024-0017) (2.1.1) the network input is the
"pre-upsampled" LRES: cubic interpolation of the LRES at the centres of the HRES
voxels (given by the registration), so input and target are the same size and
the network only has to restore detail.

A :class:`TrainingPair` holds, for a training ROI (HRES voxels, default the whole
overlap of HRES and LRES), the normalised input (with a z halo for 2.5D models,
taken from the real LRES around the ROI) and the normalised target, and the
held-out validation block: the last part of the ROI along its first axis (z in
3D, y for a 2D image). No training patch has a target voxel in that block.

2D images are handled as one-slice volumes, so every model and sampler sees
(z, y, x) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_resolve._validate import as_image, voxel_tuple
from napari_resolve.errors import InputError
from napari_resolve.geometry.grid import Grid, check_roi, resample_lres
from napari_resolve.learn.config import DEFAULTS, MIN_VALIDATION, check_val_fraction
from napari_resolve.learn.normalisation import Normalisation, fit_normalisation

#: Smallest in-plane size of a training patch, in HRES voxels.
MIN_PATCH = 16


def as_3d(image: np.ndarray, voxel_um) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A 2D image as a one-slice volume (voxel z = voxel y); 3D passes through."""
    voxel = voxel_tuple(voxel_um, image.ndim)
    if image.ndim == 2:
        return image[None], (voxel[0],) + voxel
    return image, voxel


def hres_overlap(hres_shape, hres_voxel_um, offset_um, lres_shape, lres_voxel_um) -> tuple[slice, ...]:
    """HRES voxels whose centres lie inside the LRES field of view.

    Raises
    ------
    InputError
        If the registered HRES does not overlap the LRES at all.
    """
    hv, lv = np.asarray(hres_voxel_um, float), np.asarray(lres_voxel_um, float)
    off = np.asarray(offset_um, float)
    lo_um, hi_um = -0.5 * lv, (np.asarray(lres_shape) - 0.5) * lv
    lo = np.maximum(np.ceil((lo_um - off) / hv - 1e-6), 0).astype(int)
    hi = np.minimum(np.floor((hi_um - off) / hv + 1e-6), np.asarray(hres_shape) - 1).astype(int) + 1
    if np.any(hi <= lo):
        raise InputError(
            "The registered HRES does not overlap the LRES field of view; check the registration "
            "(offset_um) and the voxel sizes."
        )
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


@dataclass
class TrainingPair:
    """Normalised input and target of a training ROI, and the validation block.

    Attributes
    ----------
    inputs : ndarray of float32, (z + 2 * halo_z, y, x)
        Pre-upsampled LRES over the ROI, normalised with ``norm_in``, with
        ``halo_z`` extra slices on both z faces.
    target : ndarray of float32, (z, y, x)
        HRES over the ROI, normalised with ``norm_out``.
    halo_z : int
        Extra input slices on each z face.
    val_axis : int
        Axis of ``target`` the validation block is cut along.
    val_start : int
        Index along ``val_axis`` where the validation block starts (it runs to the end).
    norm_in, norm_out : Normalisation
    roi : tuple of slice
        The ROI in HRES voxels (of the original 2D or 3D HRES).
    grid : Grid
        The ROI's grid in the LRES frame (3D; one slice for a 2D image).
    ndim : int
        2 or 3: the dimension of the original images.
    lres_start : tuple of int or None
        For networks on the LRES grid (:mod:`napari_resolve.learn.lres_pairs`):
        ``inputs`` is then the normalised LRES block itself and this is the LRES
        index of its voxel 0; None for pre-upsampled inputs.
    lres_voxel_um : tuple of float or None
        The LRES voxel size (um, 3D) of such a pair.
    lres_halo : int
        LRES voxels kept around the ROI's footprint in such a pair.
    """

    inputs: np.ndarray
    target: np.ndarray
    halo_z: int
    val_axis: int
    val_start: int
    norm_in: Normalisation
    norm_out: Normalisation
    roi: tuple[slice, ...]
    grid: Grid
    ndim: int
    # Keyword-only, so that subclasses (SyntheticPair) may still add fields without defaults.
    lres_start: tuple[int, int, int] | None = field(default=None, kw_only=True)
    lres_voxel_um: tuple[float, float, float] | None = field(default=None, kw_only=True)
    lres_halo: int = field(default=0, kw_only=True)

    @property
    def train_shape(self) -> tuple[int, ...]:
        """Shape of the part of ``target`` that feeds training."""
        shape = list(self.target.shape)
        shape[self.val_axis] = self.val_start
        return tuple(shape)

    def validation(self):
        """Input (with z halo; an LRES-grid batch for LRES-grid pairs) and target of the validation block."""
        if self.lres_start is not None:
            from napari_resolve.learn.lres_pairs import validation_batch

            t = [slice(None)] * 3
            t[self.val_axis] = slice(self.val_start, None)
            return validation_batch(self), self.target[tuple(t)]
        # Input index = target index + halo_z along z, so the same slice start
        # also takes the z halo of the block (to the end of the input).
        t = [slice(None)] * 3
        t[self.val_axis] = slice(self.val_start, None)
        return self.inputs[tuple(t)], self.target[tuple(t)]


def validation_size(roi_shape, val_fraction: float = DEFAULTS.val_fraction, min_val: int = MIN_VALIDATION) -> int:
    """Voxels of the validation block of a training ROI, checked: the one split rule.

    The block is cut along axis 0 (z in 3D, y in 2D) at the end of the ROI and is
    ``max(min_val, round(val_fraction * n))`` voxels long; what is left must still
    hold a training patch (a 2D image needs ``MIN_PATCH`` rows), and the ROI must
    be at least ``MIN_PATCH`` voxels wide in y and x. Real pairs
    (:func:`make_pair`), synthetic pairs and the Training widget's preview all
    cut it with this function.

    Parameters
    ----------
    roi_shape : sequence of int
        The ROI's shape in HRES voxels (2D or 3D).
    val_fraction : float
        Share held out, in (0, 0.5].
    min_val : int
        Smallest validation block (default
        :data:`~napari_resolve.learn.config.MIN_VALIDATION`).

    Raises
    ------
    InputError
        For a share outside (0, 0.5] or an ROI too small for both parts.
    """
    val_fraction = check_val_fraction(val_fraction)
    n_axis = int(roi_shape[0])
    n_val = max(min_val, round(val_fraction * n_axis))
    min_train = MIN_PATCH if len(roi_shape) == 2 else 1
    if n_axis - n_val < min_train:
        raise InputError(
            f"The training ROI is {n_axis} voxels along axis 0: too small for a validation block of "
            f"{n_val} voxels plus training data. Choose a larger ROI (at least {n_val + min_train} voxels "
            "on axis 0) or a smaller {val_fraction}.",
            parameters=("val_fraction",),
        )
    in_plane = [int(n) for n in roi_shape[-2:]]
    if min(in_plane) < MIN_PATCH:
        raise InputError(
            f"The training ROI is {in_plane[0]} x {in_plane[1]} HRES voxels in (y, x); at least "
            f"{MIN_PATCH} x {MIN_PATCH} are needed. Choose a larger ROI."
        )
    return n_val


def make_pair(
    lres,
    hres,
    lres_voxel_um,
    offset_um,
    hres_voxel_um,
    *,
    roi=None,
    val_fraction: float = DEFAULTS.val_fraction,
    halo_z: int = 0,
    min_val: int = MIN_VALIDATION,
    lres_halo: int | None = None,
) -> TrainingPair:
    """Build the training pair of a registered LRES/HRES couple.

    Parameters
    ----------
    lres, hres : array-like
        The two scans (2D or 3D, same dimension).
    lres_voxel_um : float or sequence of float
        LRES voxel size (um).
    offset_um, hres_voxel_um : sequence of float
        The registration: HRES ``translate`` (um, LRES frame) and ``scale``.
    roi : sequence of slice, optional
        Training ROI in HRES voxels; default the whole HRES/LRES overlap.
    val_fraction : float
        Share of the ROI (along its first axis) held out for validation (0 to 0.5).
    halo_z : int
        Input slices needed beyond the ROI on each z face (the model's ``trim_z``
        plus, for 3D models, nothing: they pad).
    min_val : int
        Smallest validation block, in voxels along the split axis.
    lres_halo : int, optional
        For a network on the LRES grid: keep the LRES block itself (not
        pre-upsampled) over the ROI's footprint plus this many LRES voxels on
        every side (see :mod:`napari_resolve.learn.lres_pairs`).

    Returns
    -------
    TrainingPair

    Raises
    ------
    InputError
        On mismatched dimensions, NaNs, an ROI outside the overlap or too small to
        hold both a training region and a validation block.
    """
    lres_a = as_image(lres, "LRES", min_size=2)
    hres_a = as_image(hres, "HRES", min_size=2)
    if lres_a.ndim != hres_a.ndim:
        raise InputError(
            f"The LRES is {lres_a.ndim}D but the HRES is {hres_a.ndim}D; give two images of the same dimension."
        )
    ndim = hres_a.ndim
    lv = voxel_tuple(lres_voxel_um, ndim, "LRES voxel size")
    hv = voxel_tuple(hres_voxel_um, ndim, "HRES voxel size")
    if len(offset_um) != ndim:
        raise InputError(f"The registration offset has {len(offset_um)} values but the images are {ndim}D.")
    overlap = hres_overlap(hres_a.shape, hv, offset_um, lres_a.shape, lv)
    if roi is None:
        roi = overlap
    roi = check_roi(roi, hres_a.shape, "the HRES (HRES voxels)")
    outside = [ax for ax, (r, o) in enumerate(zip(roi, overlap)) if r.start < o.start or r.stop > o.stop]
    if outside:
        raise InputError(
            f"The training ROI leaves the part of the HRES that lies inside the LRES on axis {outside[0]} "
            f"(overlap {','.join(f'{o.start}:{o.stop}' for o in overlap)} in HRES voxels). Choose an ROI inside it."
        )
    n_val = validation_size([r.stop - r.start for r in roi], val_fraction, min_val)

    target = hres_a[roi]
    origin = tuple(o + r.start * v for o, r, v in zip(offset_um, roi, hv))
    grid_nd = Grid(target.shape, hv, origin)
    lres_fields = {}
    if lres_halo is not None:
        from napari_resolve.learn.lres_pairs import lres_block

        lres3, lv3 = as_3d(lres_a, lv)
        target3 = target if ndim == 3 else target[None]
        grid3 = grid_nd if ndim == 3 else Grid((1,) + grid_nd.shape, (hv[0],) + hv, (0.0,) + origin)
        inputs, start = lres_block(lres3, lv3, grid3, lres_halo, one_slice=ndim == 2)
        lres_fields = {"lres_start": start, "lres_voxel_um": tuple(lv3), "lres_halo": int(lres_halo)}
    # The input over the ROI, extended by the z halo from the LRES around it.
    elif ndim == 3:
        ext = Grid(
            (target.shape[0] + 2 * halo_z,) + target.shape[1:],
            hv,
            (origin[0] - halo_z * hv[0],) + origin[1:],
        )
        inputs = resample_lres(lres_a, lv, ext)
        target3, grid3 = target, grid_nd
    else:
        core = resample_lres(lres_a, lv, grid_nd)
        inputs = np.repeat(core[None], 2 * halo_z + 1, axis=0)  # a 2D image has no z neighbours
        target3 = target[None]
        grid3 = Grid((1,) + grid_nd.shape, (hv[0],) + hv, (0.0,) + origin)
    val_axis = 0 if ndim == 3 else 1
    val_start = target3.shape[val_axis] - n_val
    train_t = [slice(None)] * 3
    train_t[val_axis] = slice(0, val_start)
    train_i = list(train_t)
    if val_axis == 0:
        train_i[0] = slice(halo_z, halo_z + val_start)
    else:
        train_i[0] = slice(halo_z, halo_z + 1)
    # The LRES block's own statistics stand in for the pre-upsampled ROI's (same grey values).
    norm_in = fit_normalisation(inputs if lres_fields else inputs[tuple(train_i)])
    norm_out = fit_normalisation(target3[tuple(train_t)])
    return TrainingPair(
        inputs=norm_in.apply(inputs),
        target=norm_out.apply(target3),
        halo_z=halo_z,
        val_axis=val_axis,
        val_start=val_start,
        norm_in=norm_in,
        norm_out=norm_out,
        roi=roi,
        grid=grid3,
        ndim=ndim,
        **lres_fields,
    )


class PatchSampler:
    """Random training patches with in-plane flips and 90-degree rotations.

    Parameters
    ----------
    pair : TrainingPair
    out_depth : int
        Target slices per patch (1 for 2.5D models, the patch size for 3D ones).
    size : int
        In-plane patch size (HRES voxels); reduced to fit the training region.
    multiple : int
        In-plane sizes are rounded down to a multiple of this (the network's
        downsampling factor).
    rng : numpy.random.Generator
        The source of every random choice (seeded for reproducibility).
    augment : bool
        Random flips of y and x and, for square patches of square voxels,
        rotations by multiples of 90 degrees in the (y, x) plane.
    square_voxels : bool
        Whether y and x voxel sizes are equal (rotations allowed).
    stages : bool
        Also return the targets of a multi-output network's intermediate
        outputs; only samplers that have them (``provides_stages``) accept this.
    """

    #: Whether this sampler can give intermediate (stage) targets.
    provides_stages = False

    def __init__(self, pair: TrainingPair, *, out_depth: int, size: int, multiple: int, rng: np.random.Generator,
                 augment: bool = True, square_voxels: bool = True, stages: bool = False):
        if stages and not self.provides_stages:
            raise InputError(
                "This training pair has no intermediate (denoise, deblur) targets: only synthetic pairs made "
                "from an HRES have them."
            )
        self.pair, self.rng, self.augment, self.stages = pair, rng, augment, stages
        tz, ty, tx = pair.train_shape
        py = min(size, ty) // multiple * multiple
        px = min(size, tx) // multiple * multiple
        pz = min(out_depth, tz)
        if min(py, px) < max(MIN_PATCH // 2, multiple) or pz < 1:
            raise InputError(
                f"The training region ({tz} x {ty} x {tx} HRES voxels without the validation block) is too small "
                f"for patches of {size} voxels; choose a larger ROI or a smaller patch size."
            )
        self.shape = (pz, py, px)
        self.rotate = augment and square_voxels and py == px

    def _patch(self, z: int, y: int, x: int) -> list[np.ndarray]:
        """Input (with z halo) and target of the patch whose target starts at (z, y, x)."""
        pz, py, px = self.shape
        h = self.pair.halo_z
        return [
            self.pair.inputs[z : z + pz + 2 * h, y : y + py, x : x + px],
            self.pair.target[z : z + pz, y : y + py, x : x + px],
        ]

    def sample(self, batch: int) -> tuple[np.ndarray, ...]:
        """``batch`` input patches (with z halo) and target patches, float32.

        With ``stages``, the stage targets follow (each shaped like the targets),
        flipped and rotated with their patch.
        """
        pz, py, px = self.shape
        tz, ty, tx = self.pair.train_shape
        h = self.pair.halo_z
        out = None
        for b in range(batch):
            z = int(self.rng.integers(0, tz - pz + 1))
            y = int(self.rng.integers(0, ty - py + 1))
            x = int(self.rng.integers(0, tx - px + 1))
            arrays = self._patch(z, y, x)
            if self.augment:
                if self.rng.random() < 0.5:
                    arrays = [a[:, ::-1] for a in arrays]
                if self.rng.random() < 0.5:
                    arrays = [a[:, :, ::-1] for a in arrays]
                if self.rotate:
                    k = int(self.rng.integers(0, 4))
                    arrays = [np.rot90(a, k, axes=(1, 2)) for a in arrays]
            if out is None:
                out = [np.empty((batch, pz + 2 * h, py, px), np.float32)]
                out += [np.empty((batch, pz, py, px), np.float32) for _ in arrays[1:]]
            for dest, a in zip(out, arrays):
                dest[b] = a
        return tuple(out)
