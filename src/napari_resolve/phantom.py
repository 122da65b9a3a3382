"""Synthetic foam phantom: a realistic, seeded LRES/HRES test case with known truth.

Modelled on the foam phantoms of DeepNet 2024 <https://doi.org/10.1515/mim-2024-0017> (Pelt et
al. foams): polydisperse, non-overlapping spherical pores in a solid matrix inside
a cylinder (air outside), scanned twice:

* the **truth** is a noiseless volume on the fine (HRES) grid, with partial-volume
  edges, and a label image of the pores;
* the **LRES** scan covers the whole field: truth blurred by a Gaussian PSF,
  local-mean downsampled by an integer ``ratio`` (what a detector pixel integrates),
  then Poisson (photon) noise and Gaussian read noise;
* the **HRES** scan is a sub-volume of the truth at a known offset, with its own,
  milder blur, its own independent noise, and optionally another contrast
  (gain/offset), as a second acquisition would have.

Coordinates follow the project convention: the centre of LRES voxel 0 is the
origin. LRES voxel ``i`` averages fine voxels ``i*ratio ... i*ratio + ratio - 1``,
so fine voxel ``k`` has its centre at ``(k - (ratio - 1) / 2) * hres_voxel`` um.

A 2D variant (``ndim=2``) gives one SEM-like section: circular pores in a matrix
that fills the field.

With ``hres_modality="sem"`` the HRES is another instrument (the cross-modality
case of the diffusion paper, micro-CT to SEM): a backscattered-electron image of
the same structure, with its own grey level per phase, a grain texture in the
solid that the LRES cannot resolve, brightened edges and scan-line noise. The
LRES stays an absorption CT scan; the truth is then the noiseless SEM image, what
a perfect CT-to-SEM upscaler would give.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from napari_resolve.errors import FileFormatError, InputError

#: Grey values of the noiseless truth (air and pores are dark in absorption CT).
PORE_VALUE = 0.0
MATRIX_VALUE = 1.0
#: HRES modalities: the truth's absorption contrast, or an SEM image of the same structure.
MODALITIES = ("ct", "sem")
#: SEM grey levels: resin-filled pores (and the impregnated air around a cylinder) dark, solid bright.
SEM_PORE, SEM_SOLID = 0.15, 0.8
#: Brightness spread between the solid's grains (orientation / channelling contrast) and their size (um).
SEM_GRAIN_SPREAD, SEM_GRAIN_UM = 0.08, 6.0
#: Edge brightening on the solid side of a pore boundary (the SEM edge effect), at a step's full height.
SEM_EDGE = 0.25
#: Standard deviation of the scan-line offsets of an SEM image (one per line along x).
SEM_LINE_NOISE = 0.02
#: Bounds on what a phantom may take: truth voxels (a few GB of memory at most), pores placed
#: (a few ms each: about a minute at the bound), photon counts (numpy's Poisson limit is 9e18; far
#: beyond 1e15 the noise is nil anyway) and the size of noise and contrast settings (float32).
MAX_FINE_VOXELS, MAX_PORES, MAX_PHOTONS, MAX_LEVEL = 2**27, 20_000, 1e15, 1e6


@dataclass
class Phantom:
    """A foam phantom and its two simulated scans.

    Attributes
    ----------
    truth : ndarray of float32
        Noiseless volume on the fine grid covering the whole field, in the HRES
        modality's contrast (CT: 0 pores and air, 1 solid).
    labels : ndarray of int32
        Pore labels on the fine grid (0 = matrix or air).
    lres : ndarray of float32
        Low-resolution scan of the whole field.
    hres : ndarray of float32
        High-resolution scan of a sub-volume.
    hres_start : tuple of int
        Index of HRES voxel 0 in the fine (truth) grid.
    lres_voxel_um, hres_voxel_um : tuple of float
        Voxel sizes in micrometres, (z, y, x).
    ratio : int
        LRES voxel size / HRES voxel size.
    params : dict
        Every parameter used, for the record.
    """

    truth: np.ndarray
    labels: np.ndarray
    lres: np.ndarray
    hres: np.ndarray
    hres_start: tuple[int, ...]
    lres_voxel_um: tuple[float, ...]
    hres_voxel_um: tuple[float, ...]
    ratio: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def truth_offset_um(self) -> tuple[float, ...]:
        """Position (um, LRES frame) of the centre of truth voxel 0."""
        return tuple(-(self.ratio - 1) / 2 * h for h in self.hres_voxel_um)

    @property
    def hres_offset_um(self) -> tuple[float, ...]:
        """True position (um, LRES frame) of the centre of HRES voxel 0.

        This is the translate that puts the HRES layer in place in napari.
        """
        return tuple(
            (k - (self.ratio - 1) / 2) * h for k, h in zip(self.hres_start, self.hres_voxel_um)
        )

    @property
    def hres_truth(self) -> np.ndarray:
        """The noiseless truth on exactly the HRES voxels."""
        return self.truth[tuple(slice(k, k + n) for k, n in zip(self.hres_start, self.hres.shape))]

    def meta(self) -> dict[str, Any]:
        """JSON-friendly description: voxel sizes, true offset, parameters."""
        return {
            "ratio": self.ratio,
            "lres_shape": list(self.lres.shape),
            "hres_shape": list(self.hres.shape),
            "truth_shape": list(self.truth.shape),
            "lres_voxel_um": list(self.lres_voxel_um),
            "hres_voxel_um": list(self.hres_voxel_um),
            "hres_start_fine_voxels": list(self.hres_start),
            "hres_offset_um": [float(v) for v in self.hres_offset_um],
            "truth_offset_um": [float(v) for v in self.truth_offset_um],
            "pore_count": int(self.labels.max()),
            "params": self.params,
        }


def _place_pores(
    rng: np.random.Generator,
    fine_shape: tuple[int, ...],
    radius_range: tuple[float, float],
    porosity: float,
    cylinder_radius: float | None,
    gap: float,
    max_attempts: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Random sequential addition of non-overlapping spheres (in fine voxels).

    Radii are drawn log-uniformly and placed largest first, which packs a
    polydisperse foam far better than placing them in random order.
    """
    ndim = len(fine_shape)
    lo, hi = radius_range
    if cylinder_radius is None:
        field_volume = float(np.prod(fine_shape))
    elif ndim == 3:
        field_volume = np.pi * cylinder_radius**2 * fine_shape[0]
    else:
        field_volume = np.pi * cylinder_radius**2
    unit = 4 / 3 * np.pi if ndim == 3 else np.pi
    mean_r_pow = np.mean(np.exp(rng.uniform(np.log(lo), np.log(hi), 4096)) ** ndim)
    n_target = max(1, int(porosity * field_volume / (unit * mean_r_pow)))
    radii = np.sort(np.exp(rng.uniform(np.log(lo), np.log(hi), n_target)))[::-1]

    # Pores are checked only against those in the neighbouring cells of a grid
    # whose cell is the largest distance at which two pores can overlap; checking
    # every placed pore made placement quadratic (38 s for a 384^3 field).
    cell = 2 * float(radii.max()) + gap
    grid: dict[tuple[int, ...], list[int]] = {}
    neighbours = np.array(list(itertools.product((-1, 0, 1), repeat=ndim)))
    centres = np.empty((len(radii), ndim))
    kept = np.empty(len(radii))
    n = 0
    centre_yx = np.array(fine_shape[-2:]) / 2 - 0.5
    shape = np.array(fine_shape, dtype=float)
    for r in radii:
        for _ in range(max_attempts):
            c = rng.uniform(0, 1, ndim) * shape - 0.5
            if cylinder_radius is not None:
                # Keep pores wholly inside the cylinder wall; top and bottom
                # may cut pores, as the end slices of a real scan do.
                if np.hypot(*(c[-2:] - centre_yx)) + r + gap > cylinder_radius:
                    continue
            else:
                if np.any(c - r < 0) or np.any(c + r > shape - 1):
                    continue
            keys = (np.floor(c / cell).astype(int) + neighbours).tolist()
            near = [i for k in keys for i in grid.get(tuple(k), ())]
            if near and np.any(np.linalg.norm(centres[near] - c, axis=1) < kept[near] + r + gap):
                continue
            centres[n], kept[n] = c, r
            grid.setdefault(tuple(keys[len(keys) // 2]), []).append(n)  # the centre cell
            n += 1
            break
    return centres[:n], kept[:n]


def _rasterise(
    fine_shape: tuple[int, ...],
    centres: np.ndarray,
    radii: np.ndarray,
    cylinder_radius: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw pores (and the cylinder) with one-voxel partial-volume edges."""
    truth = np.full(fine_shape, MATRIX_VALUE, dtype=np.float32)
    labels = np.zeros(fine_shape, dtype=np.int32)
    if cylinder_radius is not None:
        yy, xx = np.ogrid[: fine_shape[-2], : fine_shape[-1]]
        c = np.array(fine_shape[-2:]) / 2 - 0.5
        rho = np.hypot(yy - c[0], xx - c[1])
        # Fraction of each voxel inside the cylinder, as a linear ramp.
        inside = np.clip(cylinder_radius - rho + 0.5, 0, 1).astype(np.float32)
        truth *= inside  # broadcasts over z
    for label, (c, r) in enumerate(zip(centres, radii), start=1):
        lo = np.maximum(np.floor(c - r - 1).astype(int), 0)
        hi = np.minimum(np.ceil(c + r + 2).astype(int), fine_shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        grids = np.ogrid[box]
        dist = np.sqrt(sum((g - ci) ** 2 for g, ci in zip(grids, c)))
        # Solid fraction of the voxel: 0 well inside the pore, 1 well outside.
        solid = np.clip(dist - r + 0.5, 0, 1).astype(np.float32)
        truth[box] = np.minimum(truth[box], PORE_VALUE + (MATRIX_VALUE - PORE_VALUE) * solid)
        labels[box][dist <= r] = label
    return truth, labels


def _noisy(rng: np.random.Generator, clean: np.ndarray, photons: float, read_noise: float) -> np.ndarray:
    """Poisson (shot) noise at ``photons`` counts per unit intensity plus read noise.

    A dark level of 0.1 keeps shot noise in the pores, where a real scan has it too.
    """
    dark = 0.1
    counts = rng.poisson(np.clip(clean + dark, 0, None) * photons)
    noisy = counts / photons - dark + rng.normal(0.0, read_noise, clean.shape)
    return noisy.astype(np.float32)


def block_mean(volume: np.ndarray, ratio: int) -> np.ndarray:
    """Local-mean downsampling by an integer ratio on every axis (crops any remainder)."""
    shape = tuple(s // ratio for s in volume.shape)
    cropped = volume[tuple(slice(0, s * ratio) for s in shape)]
    split = [d for s in shape for d in (s, ratio)]
    axes = tuple(range(1, 2 * len(shape), 2))
    return cropped.reshape(split).mean(axis=axes, dtype=np.float64).astype(np.float32)


def _positive(value, name: str, what: str, *, zero: bool = False, most: float = math.inf) -> None:
    """Refuse a non-finite, negative (or, unless ``zero``, zero) or above ``most`` setting, naming the parameter."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        v = math.nan
    if not (math.isfinite(v) and (v >= 0 if zero else v > 0) and v <= most):
        bound = ">= 0" if zero else "> 0"
        if math.isfinite(most):
            bound += f" and at most {most:g}"
        raise InputError(f"{{{name}}} must be {what} {bound}, got {value!r}.", parameters=(name,))


def _check_settings(size, ratio, ndim, hres_voxel_um, hres_size, blur_um, hres_blur_um, photons, noises, gain,
                    offset, pore_radius_um, porosity, modality, cylinder):
    """Refuse settings :func:`make_phantom` cannot use, or that would make an absurd phantom (naming the
    setting); returns the LRES shape, the ratio and the HRES shape."""
    if ndim not in (2, 3):
        raise InputError(f"ndim must be 2 or 3, got {ndim}.")
    if modality not in MODALITIES:
        raise InputError(f"{{hres_modality}} must be one of {', '.join(MODALITIES)}, got {modality!r}.",
                         parameters=("hres_modality",))
    try:
        whole = int(ratio) == ratio and 1 <= ratio <= 8
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise InputError(f"{{ratio}} must be an integer from 1 to 8, got {ratio}.", parameters=("ratio",))
    ratio = int(ratio)
    lres_shape = (size,) * ndim if np.isscalar(size) else tuple(int(s) for s in size)
    if len(lres_shape) != ndim or min(lres_shape) < 8:
        raise InputError(f"{{size}} must give {ndim} axes of at least 8 LRES voxels, got {size}.",
                         parameters=("size",))
    fine_shape = tuple(int(s) * ratio for s in lres_shape)
    if math.prod(fine_shape) > MAX_FINE_VOXELS:
        raise InputError(
            f"A {'x'.join(map(str, lres_shape))} LRES at ratio {ratio} makes a truth of "
            f"{'x'.join(map(str, fine_shape))} voxels, more than the phantom makes ({MAX_FINE_VOXELS:,}, a few GB "
            "of memory); choose a smaller {size} or {ratio}.", parameters=("size", "ratio"))
    if not 0 < porosity <= 0.5:
        raise InputError(f"{{porosity}} must be in (0, 0.5], got {porosity}.", parameters=("porosity",))
    _positive(hres_voxel_um, "hres_voxel_um", "an HRES voxel size in um")
    extent = max(fine_shape) * float(hres_voxel_um)  # the field's longest side, um
    for name, value in (("blur_um", blur_um), ("hres_blur_um", hres_blur_um)):
        if value is not None:
            _positive(value, name, "a blur in um (0: none)", zero=True, most=extent)
    for name, value in zip(("photons", "hres_photons"), photons):
        _positive(value, name, "a photon count per unit intensity", most=MAX_PHOTONS)
    for name, value in zip(("read_noise", "hres_read_noise"), noises):
        _positive(value, name, "a noise level (0: none)", zero=True, most=MAX_LEVEL)
    for name, value in (("hres_gain", gain), ("hres_offset", offset)):
        try:
            ok = math.isfinite(float(value)) and abs(float(value)) <= MAX_LEVEL
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise InputError(f"{{{name}}} must be a number from {-MAX_LEVEL:g} to {MAX_LEVEL:g}, got {value!r}.",
                             parameters=(name,))
    try:
        lo_r, hi_r = (float(r) for r in pore_radius_um)
    except (TypeError, ValueError):
        lo_r = hi_r = math.nan
    if not (math.isfinite(hi_r) and 0 < lo_r <= hi_r <= extent):
        raise InputError(f"{{pore_radius_um}} must be (min, max) with 0 < min <= max <= the field ({extent:g} um), "
                         f"got {pore_radius_um}.", parameters=("pore_radius_um",))
    if lo_r < hres_voxel_um:
        raise InputError(
            f"The smallest pore radius ({lo_r:g} um) is less than one HRES voxel ({hres_voxel_um:g} um): such pores "
            "cannot be drawn. Choose a smaller {hres_voxel_um} or larger {pore_radius_um}.",
            parameters=("hres_voxel_um", "pore_radius_um"))
    lo, hi = lo_r / hres_voxel_um, hi_r / hres_voxel_um  # in voxels
    mean_r_pow = lo**ndim if hi == lo else (hi**ndim - lo**ndim) / (ndim * math.log(hi / lo))
    field_volume = math.prod(fine_shape)  # as _place_pores counts it
    if cylinder:
        field_volume = math.pi * (0.45 * min(fine_shape[-2:])) ** 2 * (fine_shape[0] if ndim == 3 else 1)
    pores = porosity * field_volume / ((4 / 3 * math.pi if ndim == 3 else math.pi) * mean_r_pow)
    if pores > MAX_PORES:
        raise InputError(
            f"These settings would place about {pores:,.0f} pores of {lo:.3g} to {hi:.3g} HRES voxels in radius, "
            f"more than the phantom places ({MAX_PORES:,}; each takes milliseconds). Choose a smaller {{size}}, "
            "larger pores ({pore_radius_um}) or a smaller {hres_voxel_um}.",
            parameters=("size", "pore_radius_um", "hres_voxel_um"))
    if hres_size is None:
        return lres_shape, ratio, tuple(max(8, int(0.4 * n)) for n in fine_shape)
    hres_shape = (hres_size,) * ndim if np.isscalar(hres_size) else tuple(hres_size)
    if len(hres_shape) != ndim or any(int(h) != h or h < 1 for h in hres_shape):
        raise InputError(f"{{hres_size}} must give {ndim} axes of at least 1 HRES voxel, got {hres_size}.",
                         parameters=("hres_size",))
    return lres_shape, ratio, tuple(int(h) for h in hres_shape)


def make_phantom(
    size: int | tuple[int, ...] = 64,
    ratio: int = 3,
    *,
    ndim: int = 3,
    hres_voxel_um: float = 1.0,
    hres_size: int | tuple[int, ...] | None = None,
    hres_start: tuple[int, ...] | None = None,
    blur_um: float | None = None,
    hres_blur_um: float | None = None,
    photons: float = 400.0,
    read_noise: float = 0.02,
    hres_photons: float = 200.0,
    hres_read_noise: float = 0.02,
    hres_gain: float = 1.0,
    hres_offset: float = 0.0,
    pore_radius_um: tuple[float, float] = (2.5, 10.0),
    porosity: float = 0.3,
    cylinder: bool | None = None,
    hres_modality: str = "ct",
    seed: int = 0,
) -> Phantom:
    """Make a seeded foam phantom with an LRES scan and an HRES sub-volume scan.

    Parameters
    ----------
    size : int or tuple of int
        LRES shape in voxels (one number: the same on every axis).
    ratio : int
        LRES voxel size / HRES voxel size (an integer, 1 to 8).
    ndim : {3, 2}
        3 for a volume, 2 for one SEM-like section.
    hres_voxel_um : float
        HRES (and truth) voxel size in um; LRES voxels are ``ratio`` times larger.
    hres_size : int or tuple of int, optional
        HRES shape in HRES voxels; default about 40 % of the field on each axis.
    hres_start : tuple of int, optional
        Index of HRES voxel 0 in the fine grid; default a random position inside
        the sample (seeded).
    blur_um : float, optional
        Standard deviation (um) of the LRES Gaussian PSF, applied on the fine grid
        before downsampling. Default: 0.5 LRES voxel.
    hres_blur_um : float, optional
        Standard deviation (um) of the HRES PSF. Default: 0.5 HRES voxel.
    photons, hres_photons : float
        Detected photons per unit intensity (higher = less Poisson noise).
    read_noise, hres_read_noise : float
        Standard deviation of additive Gaussian noise (intensity units; the
        matrix is 1 and pores 0 before noise).
    hres_gain, hres_offset : float
        Contrast of the HRES scan: ``hres = gain * scan + offset``, to mimic a
        second acquisition with other settings.
    pore_radius_um : (float, float)
        Smallest and largest pore radius in um (log-uniform distribution).
    porosity : float
        Target pore fraction of the sample (0 to 0.5); dense packings may fall short.
    cylinder : bool, optional
        Put the foam in a cylinder along z with air outside (default for 3D) or
        fill the field (default for 2D).
    hres_modality : {"ct", "sem"}
        The HRES instrument: the same absorption contrast as the LRES, or an SEM
        image (:func:`sem_contrast`); the structure and positions are the same.
    seed : int
        Seed of every random choice: the same seed gives the same phantom.

    Returns
    -------
    Phantom
    """
    lres_shape, ratio, hres_shape = _check_settings(
        size, ratio, ndim, hres_voxel_um, hres_size, blur_um, hres_blur_um, (photons, hres_photons),
        (read_noise, hres_read_noise), hres_gain, hres_offset, pore_radius_um, porosity, hres_modality,
        cylinder if cylinder is not None else ndim == 3)
    lo_r, hi_r = (float(r) for r in pore_radius_um)

    rng = np.random.default_rng(seed)
    fine_shape = tuple(s * ratio for s in lres_shape)
    if cylinder is None:
        cylinder = ndim == 3
    cyl_r = 0.45 * min(fine_shape[-2:]) if cylinder else None

    centres, radii = _place_pores(
        rng,
        fine_shape,
        (lo_r / hres_voxel_um, hi_r / hres_voxel_um),
        porosity,
        cyl_r,
        gap=1.5,
        max_attempts=200,
    )
    truth, labels = _rasterise(fine_shape, centres, radii, cyl_r)

    # LRES: PSF on the fine grid, then what a big detector pixel integrates.
    lres_voxel = hres_voxel_um * ratio
    blur_um = 0.5 * lres_voxel if blur_um is None else float(blur_um)
    blurred = ndimage.gaussian_filter(truth, blur_um / hres_voxel_um, mode="nearest")
    lres = _noisy(rng, block_mean(blurred, ratio), photons, read_noise)
    if hres_modality == "sem":
        # A generator of its own: the pores and the HRES box stay those of the CT phantom of this seed.
        truth = sem_contrast(truth, hres_voxel_um, np.random.default_rng([seed, 1]))

    # HRES: a sub-volume, placed inside the sample unless given.
    if any(h > f for h, f in zip(hres_shape, fine_shape)):
        raise InputError(f"hres_size {hres_shape} is larger than the field {fine_shape} (fine voxels).")
    if hres_start is None:
        hres_start = _random_start(rng, fine_shape, hres_shape, cyl_r)
    hres_start = tuple(int(k) for k in hres_start)
    if any(k < 0 or k + h > f for k, h, f in zip(hres_start, hres_shape, fine_shape)):
        raise InputError(f"hres_start {hres_start} puts the HRES box outside the field {fine_shape}.")
    box = tuple(slice(k, k + h) for k, h in zip(hres_start, hres_shape))
    hres_blur_um = 0.5 * hres_voxel_um if hres_blur_um is None else float(hres_blur_um)
    # Blur a padded box so the HRES edges see real neighbours, as a real scan does.
    pad = int(np.ceil(4 * hres_blur_um / hres_voxel_um)) + 1
    padded = tuple(slice(max(0, s.start - pad), s.stop + pad) for s in box)
    hres_clean = ndimage.gaussian_filter(truth[padded], hres_blur_um / hres_voxel_um, mode="nearest")
    inner = tuple(slice(s.start - p.start, s.start - p.start + h) for s, p, h in zip(box, padded, hres_shape))
    hres = _noisy(rng, hres_clean[inner], hres_photons, hres_read_noise)
    if hres_modality == "sem":  # the beam's line-to-line drift
        hres += rng.normal(0.0, SEM_LINE_NOISE, hres.shape[:-1] + (1,)).astype(np.float32)
    hres = (hres_gain * hres + hres_offset).astype(np.float32)

    params = {
        "size": list(lres_shape),
        "ratio": ratio,
        "ndim": ndim,
        "hres_voxel_um": hres_voxel_um,
        "hres_size": list(hres_shape),
        "blur_um": blur_um,
        "hres_blur_um": hres_blur_um,
        "photons": photons,
        "read_noise": read_noise,
        "hres_photons": hres_photons,
        "hres_read_noise": hres_read_noise,
        "hres_gain": hres_gain,
        "hres_offset": hres_offset,
        "pore_radius_um": [lo_r, hi_r],
        "porosity_target": porosity,
        "cylinder": bool(cylinder),
        "hres_modality": hres_modality,
        "seed": seed,
    }
    return Phantom(
        truth=truth,
        labels=labels,
        lres=lres,
        hres=hres,
        hres_start=hres_start,
        lres_voxel_um=(float(lres_voxel),) * ndim,
        hres_voxel_um=(float(hres_voxel_um),) * ndim,
        ratio=ratio,
        params=params,
    )


def sem_contrast(truth: np.ndarray, voxel_um: float, rng: np.random.Generator) -> np.ndarray:
    """The noiseless SEM (backscattered-electron) image of a CT phantom's structure.

    The solid fraction of each voxel (from the CT truth) mixes the resin-filled
    pore level :data:`SEM_PORE` with the solid's: :data:`SEM_SOLID`, differing
    from grain to grain by :data:`SEM_GRAIN_SPREAD` (grains: the Voronoi cells of
    random seeds, :data:`SEM_GRAIN_UM` apart; far below an LRES voxel, so only the
    HRES shows them). The solid side of every pore boundary is brightened by up to
    :data:`SEM_EDGE` (the edge effect: more electrons escape near a surface).

    Parameters
    ----------
    truth : ndarray
        CT truth, 0 (pore or air) to 1 (solid).
    voxel_um : float
        Its voxel size (um).
    rng : numpy.random.Generator
        For the grains.

    Returns
    -------
    ndarray of float32
        SEM grey values (about 0.15 to 1.05).
    """
    solid = np.clip((truth - PORE_VALUE) / (MATRIX_VALUE - PORE_VALUE), 0.0, 1.0).astype(np.float32)
    n_grains = max(1, int(round(truth.size * (voxel_um / SEM_GRAIN_UM) ** truth.ndim)))
    seeds = np.zeros(truth.shape, np.int32)
    seeds.flat[rng.integers(0, truth.size, n_grains)] = np.arange(1, n_grains + 1, dtype=np.int32)
    # Each voxel takes the grain of its nearest seed (scipy's exact EDT gives the nearest seed's index).
    nearest = ndimage.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
    grain_level = SEM_SOLID + SEM_GRAIN_SPREAD * rng.standard_normal(n_grains + 1).astype(np.float32)
    level = grain_level[seeds[tuple(nearest)]]
    del nearest
    # A unit step smoothed by a Gaussian of sigma 1 voxel has a gradient of at most 1 / sqrt(2 pi).
    edge = ndimage.gaussian_gradient_magnitude(solid, 1.0) * np.float32(math.sqrt(2 * math.pi))
    return (SEM_PORE + (level - SEM_PORE) * solid + SEM_EDGE * np.clip(edge, 0, 1) * solid).astype(np.float32)


def _random_start(
    rng: np.random.Generator,
    fine_shape: tuple[int, ...],
    hres_shape: tuple[int, ...],
    cylinder_radius: float | None,
) -> tuple[int, ...]:
    """A random HRES box position, inside the cylinder when there is one."""
    for _ in range(1000):
        start = tuple(int(rng.integers(0, f - h + 1)) for f, h in zip(fine_shape, hres_shape))
        if cylinder_radius is None:
            return start
        # An interior scan: every corner of the box in the (y, x) plane lies
        # inside the sample, so the HRES sees foam, not air.
        centre = np.array(fine_shape[-2:]) / 2 - 0.5
        corners = [
            (start[-2] + dy, start[-1] + dx)
            for dy in (0, hres_shape[-2] - 1)
            for dx in (0, hres_shape[-1] - 1)
        ]
        if all(np.hypot(*(np.array(c) - centre)) <= cylinder_radius for c in corners):
            return start
    raise InputError(
        f"An HRES box of {hres_shape} fine voxels does not fit inside the sample; "
        "choose a smaller hres_size."
    )


#: The files :func:`write_phantom` writes, by role.
PHANTOM_FILES = {
    "lres": "lres.tif",
    "hres": "hres.tif",
    "truth": "truth.tif",
    "truth_labels": "truth_labels.tif",
    "meta": "meta.json",
}


def write_phantom(out_dir, *, overwrite: bool = False, **kwargs) -> tuple[dict[str, Path], dict[str, Any]]:
    """Make a phantom and write it as OME-TIFF files plus ``meta.json``.

    The LRES and HRES files carry their voxel sizes but no position (like two
    separate scans), so the HRES must be registered; ``meta.json`` holds the true
    HRES offset (um, LRES frame) to check a registration against. ``truth.tif``
    and ``truth_labels.tif`` carry their true origin.

    Parameters
    ----------
    out_dir : path
        Folder to write to (created if missing).
    overwrite : bool
        Replace phantom files already in the folder; otherwise they raise. A write that
        fails part way (or is interrupted) removes the files this call wrote.
    **kwargs
        Passed to :func:`make_phantom`.

    Returns
    -------
    paths : dict of Path
        Written files by role (see :data:`PHANTOM_FILES`).
    meta : dict
        :meth:`Phantom.meta`.
    """
    from napari_resolve.io import write_json, write_volume

    out_dir = Path(out_dir)
    paths = {role: out_dir / name for role, name in PHANTOM_FILES.items()}
    clash = [p.name for p in paths.values() if p.exists()]
    if clash and not overwrite:
        raise FileFormatError(
            f"{out_dir} already holds {', '.join(clash)}; they were left untouched. "
            "Choose another folder or allow overwriting ({overwrite}).",
            parameters=("overwrite",),
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise FileFormatError(f"{out_dir} is a file, not a folder; choose another {{out_dir}}.",
                              parameters=("out_dir",))
    ph = make_phantom(**kwargs)  # before creating the folder: bad parameters leave nothing behind
    made = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileFormatError(f"The folder {out_dir} could not be created ({exc.strerror or exc}); choose another "
                              "{out_dir}.", parameters=("out_dir",)) from None
    meta = ph.meta()
    written: list[Path] = []
    try:  # all the files or none: a failure part way removes what this call wrote
        for role, data, voxel, origin in (("lres", ph.lres, ph.lres_voxel_um, None),
                                          ("hres", ph.hres, ph.hres_voxel_um, None),
                                          ("truth", ph.truth, ph.hres_voxel_um, ph.truth_offset_um),
                                          ("truth_labels", ph.labels, ph.hres_voxel_um, ph.truth_offset_um)):
            write_volume(paths[role], data, voxel, origin_um=origin, overwrite=overwrite)
            written.append(paths[role])
        write_json(paths["meta"], meta, overwrite=overwrite)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return paths, meta
