"""Error maps without a reference: data consistency and test-time spread, calibrated on the overlap.

Outside the HRES nothing tells a user where an upscale is wrong. Two signals that
need no reference are computed while a region is upscaled
(:func:`napari_resolve.learn.inference.plan_predict` with ``uncertainty=True``):

*consistency*
    The result is degraded again with the LRES imaging model fitted on the
    registered pair (:func:`napari_resolve.measure.baselines.estimate_psf_sigma`:
    ``LRES ~ gain * G_sigma(HRES) + offset`` on the HRES grid) and compared with
    the LRES interpolated onto the same grid: a result that does not explain its
    own input is suspect (the idea of NanoJ-SQUIRREL). The local RMS of that
    residual, over a Gaussian window one LRES voxel wide, in HRES grey values.
*spread*
    The standard deviation of the predictions of the in-plane flips and 90-degree
    rotations of the input (test-time augmentation, 8 variants; 4 flips when the
    in-plane voxels are not square), each mapped back. A network that is sure of a
    structure predicts it the same way up in every orientation.
*edge*
    The gradient magnitude of the result at the scale of the LRES blur (Gaussian
    derivatives of the fitted PSF's sigma): what a blurred scan hides, and so
    where a learned upscale errs, is where the result changes fast. Measured and
    left out of the stored maps (:data:`napari_resolve.learn.calibrate.MAP_SIGNALS`):
    on an unseen foam it ranked the errors the wrong way round.

:func:`fit_calibration` turns the signals into one map in grey values that means
"the true |error| is below this value for :data:`LEVEL` of voxels": a least-
squares fit of ``log |error|`` on the logs of the signals gives one score, and a
conformal quantile of ``|error|`` in each of :data:`N_BINS` bins of that score
(split conformal prediction) maps the score to grey values. It is fitted at the
end of training on the validation block of the registered pair, which the
network never trained on, and stored in the model file (``extra["error_map"]``).

References
----------
.. [1] Culley S. et al. (2018) Quantitative mapping and minimization of super-resolution optical
   imaging artifacts. Nat. Methods 15, 263-266. https://doi.org/10.1038/nmeth.4605
.. [2] Angelopoulos A. N., Bates S. (2021) A gentle introduction to conformal prediction and
   distribution-free uncertainty quantification. https://arxiv.org/abs/2107.07511
.. [3] Ilg E. et al. (2018) Uncertainty estimates and multi-hypotheses networks for optical flow.
   ECCV 2018 (sparsification curves and AUSE). https://arxiv.org/abs/1802.07095
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_resolve._text import format_bytes
from napari_resolve.errors import InputError, ResolveError
from napari_resolve.geometry.grid import Grid, resample_lres

#: What the calibrated map promises: the true |error| is below it for this share of voxels.
LEVEL = 0.9
#: Bins of the combined score, each with its own conformal quantile.
N_BINS = 16
#: The signals, in the order they are combined.
SIGNALS = ("consistency", "spread", "edge")
#: A Gaussian filter reaches this many sigmas (scipy's default truncate).
TRUNCATE = 4.0
#: Spline order of the LRES the consistency compares with (and the imaging model is fitted on): linear, as
#: the misfit is averaged over one LRES voxel anyway; cubic cost 7x more, more than the network itself.
LRES_ORDER = 1


@dataclass(frozen=True)
class ImagingModel:
    """How the LRES shows an HRES image, on the HRES grid: ``LRES ~ gain * G_sigma(HRES) + offset``.

    Attributes
    ----------
    sigma_um : float
        Gaussian PSF relative to the HRES (um).
    gain, offset : float
        Contrast map from the blurred HRES to the LRES grey values.
    """

    sigma_um: float
    gain: float
    offset: float


def sigma_voxels(sigma_um: float, voxel_um) -> tuple[float, ...]:
    """A length in um as a Gaussian sigma in voxels on each axis."""
    return tuple(float(sigma_um) / float(v) for v in voxel_um)


def filter_radius(sigma_vox) -> tuple[int, ...]:
    """Voxels a :func:`scipy.ndimage.gaussian_filter` of ``sigma_vox`` reaches on each axis."""
    return tuple(int(TRUNCATE * float(s) + 0.5) for s in sigma_vox)


def consistency_halo(imaging: ImagingModel, voxel_um, lres_voxel_um) -> tuple[int, ...]:
    """Output voxels on each side that one consistency voxel depends on (z y x)."""
    a = filter_radius(sigma_voxels(imaging.sigma_um, voxel_um))
    b = filter_radius(tuple(lv / v for lv, v in zip(lres_voxel_um, voxel_um)))
    return tuple(x + y for x, y in zip(a, b))


def local_signals(pred: np.ndarray, lres_up: np.ndarray, voxel_um, lres_voxel_um, imaging: ImagingModel,
                  faces=((True, True),) * 3) -> dict:
    """The signals of one upscaled block that need no other prediction: consistency and edge.

    Parameters
    ----------
    pred : ndarray
        The upscaled block (HRES grey values), 3D (one slice for an image).
    lres_up : ndarray
        The LRES interpolated (:data:`LRES_ORDER`) onto the same voxels.
    voxel_um, lres_voxel_um : sequence of float
        The block's and the LRES voxel sizes (um); the RMS window is a Gaussian
        of one LRES voxel (sigma) on each axis.
    imaging : ImagingModel
    faces : sequence of (bool, bool)
        Per axis, whether the block's start and end are faces of the region
        upscaled. Within one PSF radius of a face the blurred result lacks what
        lies beyond it while the LRES does not, so the misfit there says nothing
        about the result: it is replaced by the first misfit inside (without
        this every region's border lit up as untrustworthy).

    Returns
    -------
    dict of str to ndarray of float32
        ``consistency``: ``sqrt(G_w((lres_up - offset) / gain - G_sigma(pred))^2)``
        (HRES grey values); ``edge``: the gradient magnitude of ``G_sigma(pred)``
        (grey values per voxel, central differences). Edges repeat.
    """
    blurred = ndimage.gaussian_filter(pred.astype(np.float32), sigma_voxels(imaging.sigma_um, voxel_um),
                                      mode="nearest", truncate=TRUNCATE)
    resid = (lres_up - np.float32(imaging.offset)) / np.float32(imaging.gain) - blurred
    for ax, (r, (start, end)) in enumerate(zip(filter_radius(sigma_voxels(imaging.sigma_um, voxel_um)), faces)):
        n = resid.shape[ax]
        if r < 1 or n < 2 * r + 2:
            continue
        view = np.moveaxis(resid, ax, 0)
        if start:
            view[:r] = view[r]
        if end:
            view[n - r :] = view[n - r - 1]
    window = tuple(lv / v for lv, v in zip(lres_voxel_um, voxel_um))
    local = ndimage.gaussian_filter(resid * resid, window, mode="nearest", truncate=TRUNCATE)
    # The gradient of the blurred block, not a Gaussian-derivative filter of the block: the same scale, 14x cheaper.
    grads = [np.gradient(blurred, axis=ax) for ax in range(blurred.ndim) if blurred.shape[ax] > 1]
    edge = np.sqrt(sum(g * g for g in grads)).astype(np.float32)
    return {"consistency": np.sqrt(np.maximum(local, 0)).astype(np.float32), "edge": edge}


def consistency(pred: np.ndarray, lres_up: np.ndarray, voxel_um, lres_voxel_um, imaging: ImagingModel) -> np.ndarray:
    """The consistency signal of :func:`local_signals` alone."""
    return local_signals(pred, lres_up, voxel_um, lres_voxel_um, imaging)["consistency"]


# ----------------------------------------------------------------------------- test-time augmentation


def tta_variants(square_in_plane: bool) -> tuple[tuple[bool, bool, bool], ...]:
    """In-plane flips and rotations: (flip y, flip x, swap y and x); 8 with square pixels, else the 4 flips."""
    flips = tuple((fy, fx, False) for fy in (False, True) for fx in (False, True))
    return flips + tuple((fy, fx, True) for fy, fx, _ in flips) if square_in_plane else flips


def transform_input(args, variant, lres_grid: bool):
    """A tile's network input seen in a flipped / swapped orientation (torch tensors, last two axes y x)."""
    fy, fx, swap = variant
    if lres_grid:
        block, (pz, py, px) = args
        if fy:
            block, py = block.flip(-2), (block.shape[-2] - 1) - py.flip(0)
        if fx:
            block, px = block.flip(-1), (block.shape[-1] - 1) - px.flip(0)
        if swap:
            block, py, px = block.transpose(-1, -2), px, py
        return block, (pz, py, px)
    (x,) = args
    if fy:
        x = x.flip(-2)
    if fx:
        x = x.flip(-1)
    return (x.transpose(-1, -2) if swap else x,)


def predict_variants(net, args, variants, lres_grid: bool, origin=(0, 0, 0)):
    """The network's outputs for each variant of one input, turned back and stacked (torch, first axis).

    ``variants`` empty: the plain prediction alone. For a generative network the variants are sample
    numbers, and ``origin`` (the block's place in the output grid, see
    :meth:`napari_resolve.models.diffusion.Diffusion.forward`) fixes their noise.
    """
    import torch

    if getattr(net, "generative", False):
        return torch.stack([net(*args, origin=origin, sample=s)[0].float() for s in variants or (0,)])
    if not variants:
        return net(*args)[:1].float()
    return torch.stack([restore_output(net(*transform_input(args, v, lres_grid))[0].float(), v) for v in variants])


def restore_output(out, variant):
    """A network output in a variant's orientation, turned back (undoes :func:`transform_input`)."""
    fy, fx, swap = variant
    if swap:
        out = out.transpose(-1, -2)
    if fx:
        out = out.flip(-1)
    if fy:
        out = out.flip(-2)
    return out


# ----------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """A conformal map from the signals to an error bound in grey values (see the module notes).

    Attributes
    ----------
    signals : tuple of str
        The signals combined, from :data:`SIGNALS`.
    coef : tuple of float
        ``log score = coef[0] + sum(coef[i + 1] * log(signal_i + floor_i))``.
    floor : tuple of float
        Added to each signal before its log (grey values): 1 % of its median.
    score : tuple of float
        Median score of each bin, ascending (grey values).
    bound : tuple of float
        The conformal :attr:`level` quantile of |error| of each bin, non-decreasing
        (grey values); between bin medians the map is interpolated linearly.
    level : float
        The share of voxels whose true |error| the map bounds.
    coverage : float
        Share of voxels of the held-out half of the validation block whose
        |error| lies below the map fitted on the other half.
    voxels : int
        Validation voxels the calibration used.
    imaging : dict
        The :class:`ImagingModel` of the consistency signal.
    samples : int
        For a diffusion model's map with the spread signal: the samples per voxel it was calibrated
        with (0 otherwise).
    """

    signals: tuple[str, ...]
    coef: tuple[float, ...]
    floor: tuple[float, ...]
    score: tuple[float, ...]
    bound: tuple[float, ...]
    level: float
    coverage: float
    voxels: int
    imaging: dict
    samples: int = 0

    def __call__(self, signals: dict[str, np.ndarray]) -> np.ndarray:
        """The calibrated map (grey values, float32) from the signals' arrays."""
        s = _score(self.coef, self.floor, [signals[k] for k in self.signals])
        return np.interp(s, self.score, self.bound).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-friendly record, as stored in a model file."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """The calibration from :meth:`to_dict`'s record."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _score(coef, floor, arrays) -> np.ndarray:
    log = np.full(np.shape(arrays[0]), coef[0], np.float64)
    for c, f, a in zip(coef[1:], floor, arrays):
        log += c * np.log(np.asarray(a, np.float64) + f)
    return np.exp(log)


def conformal_quantile(values: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ``ceil((n + 1) * level)``-th smallest of ``n`` values."""
    v = np.sort(np.asarray(values, np.float64).ravel())
    k = min(len(v), int(np.ceil((len(v) + 1) * level)))
    return float(v[k - 1])


def _fit(signals: list[np.ndarray], err: np.ndarray, level: float, n_bins: int):
    floor = [max(float(np.median(s)) * 0.01, 1e-12) for s in signals]
    logs = [np.log(s.ravel().astype(np.float64) + f) for s, f in zip(signals, floor)]
    x = np.column_stack([np.ones(err.size)] + logs)
    # |error| of a good result is 0 at many voxels: the log needs a floor too.
    y = np.log(err.ravel().astype(np.float64) + max(float(np.median(err)) * 0.01, 1e-12))
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    score = _score(coef, floor, signals).ravel()
    order = np.argsort(score, kind="stable")
    parts = np.array_split(order, n_bins)
    med = [float(np.median(score[p])) for p in parts]
    bound = np.maximum.accumulate([conformal_quantile(err.ravel()[p], level) for p in parts])
    return tuple(float(c) for c in coef), tuple(floor), tuple(med), tuple(float(b) for b in bound)


def fit_calibration(signals: dict[str, np.ndarray], error: np.ndarray, imaging: ImagingModel, *,
                    level: float = LEVEL, n_bins: int = N_BINS) -> Calibration:
    """Calibrate signals against the true error on a block the network never trained on.

    Parameters
    ----------
    signals : dict of str to ndarray
        Signal arrays (:data:`SIGNALS`, any subset), same shape as ``error``.
    error : ndarray
        Prediction minus the registered HRES on the same voxels (grey values).
    imaging : ImagingModel
        The imaging model the consistency signal used (stored with the calibration).
    level : float
        Share of voxels the map should bound (0 to 1).
    n_bins : int
        Bins of the combined score.

    Returns
    -------
    Calibration
        Fitted on all voxels; ``coverage`` is that of the map fitted on the
        z-slabs of one half of the block, measured on the other half.

    Raises
    ------
    InputError
        For an unknown signal, arrays of different shapes, non-finite values or
        too few voxels (fewer than 50 per bin).
    """
    names = tuple(k for k in SIGNALS if k in signals)
    if not names or set(signals) - set(SIGNALS):
        raise InputError(f"Calibrate with signals among {', '.join(SIGNALS)}; got {', '.join(signals) or 'none'}.")
    err = np.abs(np.asarray(error, np.float64))
    arrays = [np.asarray(signals[k], np.float32) for k in names]
    if any(a.shape != err.shape for a in arrays):
        raise InputError("The signals and the error must cover the same voxels.")
    if not all(np.isfinite(a).all() for a in arrays + [err]):
        raise InputError("The signals or the error hold NaN or infinite values.")
    if not 0 < level < 1:
        raise InputError(f"The error-map level must lie between 0 and 1, got {level}.")
    if err.size < 100 * n_bins:
        raise InputError(
            f"An error map needs at least {100 * n_bins} validation voxels to calibrate; the block has {err.size}. "
            "Train on a larger region."
        )
    # Held-out coverage: fit on alternating slabs of 4 slices along z (or rows of a single slice), test on the rest.
    ax = 0 if err.shape[0] > 1 else 1
    idx = np.arange(err.shape[ax]) // 4 % 2 == 0
    if idx.all() or not idx.any():
        idx = np.arange(err.shape[ax]) % 2 == 0
    take = lambda a, keep: np.compress(keep, a, axis=ax)  # noqa: E731
    half = _fit([take(a, idx) for a in arrays], take(err, idx), level, n_bins)
    half_cal = Calibration(names, *half, level, 0.0, 0, asdict(imaging))
    rest = {k: take(a, ~idx) for k, a in zip(names, arrays)}
    coverage = float(np.mean(take(err, ~idx) <= half_cal(rest)))
    coef, floor, score, bound = _fit(arrays, err, level, n_bins)
    return Calibration(names, coef, floor, score, bound, float(level), coverage, int(err.size), asdict(imaging))


# ----------------------------------------------------------------------------- streaming


class ErrorMapStream:
    """Turns the finished slabs of a prediction (and their spread) into error-map slabs.

    The consistency signal needs the prediction a few slices beyond each slab
    (:func:`consistency_halo`), so a slab's map is written once the next slices
    are final; the buffer holds those slices only, and the map equals one
    computed on the whole volume at once.

    Parameters
    ----------
    lres3, lres_voxel_um : array-like, tuple of float
        The LRES (3D) and its voxel size (um).
    grid : Grid
        The prediction's grid (3D).
    imaging : ImagingModel
    calibration : Calibration or None
        Makes the map; None keeps the raw signals only.
    write : callable or None
        ``write(z0, z1, slab)`` for each finished map slab.
    keep : bool
        Also keep the raw signals of the whole grid (:attr:`signals`), for validation.
    """

    def __init__(self, lres3, lres_voxel_um, grid: Grid, imaging: ImagingModel, calibration, write, keep=False):
        self.lres, self.lv, self.grid, self.imaging = lres3, tuple(lres_voxel_um), grid, imaging
        self.calibration, self.write = calibration, write
        self.halo = consistency_halo(imaging, grid.voxel_um, self.lv)[0]
        self.buf_z0, self.next_z = 0, 0
        self.pred = np.zeros((0,) + tuple(grid.shape[1:]), np.float32)
        self.spread = None
        self.signals = {} if keep else None

    def push(self, z0: int, z1: int, pred: np.ndarray, spread: np.ndarray | None = None) -> None:
        """Hand over the finished prediction slices ``z0:z1`` (in order, without gaps)."""
        if z0 != self.buf_z0 + self.pred.shape[0]:
            raise ValueError(f"slab {z0}:{z1} does not follow {self.buf_z0 + self.pred.shape[0]}")
        self.pred = np.concatenate([self.pred, pred])
        if spread is not None:
            self.spread = spread if self.spread is None else np.concatenate([self.spread, spread])
        nz = self.grid.shape[0]
        ready = nz if z1 >= nz else z1 - self.halo
        if ready > self.next_z:
            self._emit(self.next_z, ready)

    def _emit(self, a: int, b: int) -> None:
        nz = self.grid.shape[0]
        lo, hi = max(0, a - self.halo), min(nz, b + self.halo)
        p = self.pred[lo - self.buf_z0 : hi - self.buf_z0]
        sub = self.grid.sub((slice(lo, hi), slice(0, self.grid.shape[1]), slice(0, self.grid.shape[2])))
        up = resample_lres(self.lres, self.lv, sub, order=LRES_ORDER, halo=2)
        faces = ((lo == 0, hi == nz), (True, True), (True, True))
        local = local_signals(p, up, self.grid.voxel_um, self.lv, self.imaging, faces)
        sig = {k: v[a - lo : b - lo] for k, v in local.items()}
        if self.spread is not None:
            sig["spread"] = self.spread[: b - a]  # the spread buffer starts at next_z (== a)
        if self.signals is not None:
            for k, v in sig.items():
                self.signals.setdefault(k, []).append(v)
        if self.write is not None and self.calibration is not None:
            self.write(a, b, self.calibration(sig))
        self.next_z = b
        # Keep what the next slab's consistency still needs.
        keep_from = max(0, b - self.halo)
        self.pred = self.pred[keep_from - self.buf_z0 :].copy()
        if self.spread is not None:
            self.spread = self.spread[b - a :].copy()
        self.buf_z0 = keep_from

    def result_signals(self) -> dict[str, np.ndarray] | None:
        """The kept raw signals of the whole grid (None unless ``keep``)."""
        if self.signals is None:
            return None
        return {k: np.concatenate(v) for k, v in self.signals.items()}


# ----------------------------------------------------------------------------- planning and calibrating


@dataclass(frozen=True)
class ErrorMapPlan:
    """What a prediction computes besides the result (made by :func:`plan_error_map`).

    Attributes
    ----------
    calibration : Calibration or None
        Turns the signals into the map; None while calibrating (raw signals only).
    imaging : ImagingModel
    variants : tuple
        Test-time augmentation variants (:func:`tta_variants`); empty without.
    path : Path or None
        Where the map is streamed to; None keeps it in memory.
    overwrite : bool
    keep_signals : bool
        Also return the raw signals (for calibration and validation).
    """

    calibration: Calibration | None
    imaging: ImagingModel
    variants: tuple
    path: Path | None
    overwrite: bool
    keep_signals: bool


def stored_calibration(ckpt, tta: bool) -> Calibration:
    """The model file's calibration for a prediction with or without test-time augmentation.

    Raises
    ------
    InputError
        If the model has none (trained on synthetic pairs, stopped before the end,
        or made by an earlier version).
    """
    record = (ckpt.extra or {}).get("error_map") or {}
    key = "tta" if tta else "plain"
    if key not in record:
        raise InputError(
            "This model has no error-map calibration"
            + (" for test-time augmentation" if record else "")
            + ": error maps are calibrated at the end of a training on a registered LRES/HRES pair, on its "
            "validation block. Train the model on a pair to the end (models trained on synthetic pairs, stopped "
            "early by hand or made by napari-resolve before error maps existed have none), or predict without "
            "{uncertainty_path}.",
            parameters=("uncertainty_path",),
        )
    return Calibration.from_dict(record[key])


def plan_error_map(ckpt, net, grid: Grid, *, tta: bool = False, samples: int = 1, path=None, overwrite: bool = False,
                   out_path=None, memory_budget: int | None = None, calibration: Calibration | None = None,
                   imaging: ImagingModel | None = None, keep_signals: bool = False) -> ErrorMapPlan:
    """Check an error map asked of a prediction (called by ``plan_predict``).

    Parameters
    ----------
    ckpt : Checkpoint
    net : torch.nn.Module
        The model's network (for its input grid and size multiple).
    grid : Grid
        The prediction's grid.
    tta : bool
        Add the spread of the in-plane flips and rotations (8x the network's cost); for a generative
        network, the spread of its ``samples`` instead.
    samples : int
        A generative network's samples per voxel.
    path : path-like, optional
        ``.tif`` or ``.zarr`` to stream the map to (same grid as the result).
    overwrite : bool
    out_path : Path, optional
        The result's own file, which the map may not be.
    memory_budget : int, optional
        Bytes an in-memory map may take.
    calibration, imaging : optional
        Given while calibrating (``imaging`` alone: raw signals); default the model's stored calibration.
    keep_signals : bool

    Raises
    ------
    InputError, FileFormatError, ResolveError
        No stored calibration, an output like the result's, or a map too large for memory.
    """
    from napari_resolve.learn.predict_checks import check_named_output

    if imaging is None:
        calibration = stored_calibration(ckpt, tta)
        imaging = ImagingModel(**calibration.imaging)
    upath = None if path is None else Path(path).expanduser()
    if upath is not None:
        if out_path is not None and os.path.abspath(upath) == os.path.abspath(out_path):
            raise InputError("The error map ({uncertainty_path}) and the result ({out_path}) must be different files.",
                             parameters=("uncertainty_path", "out_path"))
        check_named_output(upath, overwrite, "uncertainty_path")
    nbytes = int(np.prod(grid.shape)) * 4
    if upath is None and memory_budget is not None and nbytes > memory_budget:
        raise ResolveError(
            f"The error map would be {format_bytes(nbytes)}, more than the {format_bytes(memory_budget)} allowed in "
            "memory: write it to a file ({uncertainty_path}: .zarr or .tif), or choose a smaller {roi}.",
            parameters=("uncertainty_path", "roi"),
        )
    variants = ()
    if getattr(net, "generative", False):
        variants = tuple(range(samples)) if tta else ()
    elif tta:
        v = grid.voxel_um
        square = len(v) < 2 or abs(v[-1] - v[-2]) <= 1e-6 * max(v[-2:])
        mult = net.size_multiple
        variants = tta_variants(square and mult[1] == mult[2])
    return ErrorMapPlan(calibration, imaging, variants, upath, bool(overwrite), bool(keep_signals))


# ----------------------------------------------------------------------------- where to look

#: Bytes of an error map read to rank its regions; a larger map is read with a stride.
REGIONS_READ_BYTES = 64 * 2**20


def least_trusted_regions(error_map, origin_um, voxel_um, n: int = 5) -> list[dict]:
    """The ``n`` blocks of an error map with the highest mean bound, highest first.

    Like :func:`napari_resolve.measure.compare.lowest_regions` (the same blocks and
    record), with ``score`` the block's mean error bound (grey values). A map larger
    than :data:`REGIONS_READ_BYTES` (e.g. a zarr on disk) is read with an equal
    stride on every axis, which is enough to rank blocks of dozens of voxels.

    Parameters
    ----------
    error_map : array-like
        2D or 3D, in memory or lazily sliced.
    origin_um, voxel_um : sequence of float
        World position of the map's voxel 0 and its voxel size (um).
    n : int
        Blocks to return.
    """
    from napari_resolve.measure.compare import lowest_regions

    shape = tuple(int(s) for s in error_map.shape)
    step = max(1, int(np.ceil((np.prod(shape) * 4 / REGIONS_READ_BYTES) ** (1 / len(shape)))))
    sample = np.asarray(error_map[tuple(slice(None, None, step) for _ in shape)], np.float32)
    regions = lowest_regions(-sample, origin_um, tuple(v * step for v in voxel_um), n)
    for r in regions:
        r["score"] = -r["score"]
        r["box"] = tuple(slice(s.start * step, min(s.stop * step, m)) for s, m in zip(r["box"], shape))
    return regions
