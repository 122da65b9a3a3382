"""Image quality against a reference: MSE, PSNR, SSIM and MS-SSIM, as scalars and maps,
and effective resolution in um (Gaussian fit and Fourier ring/shell correlation).

Every function takes a prediction ``pred`` and a reference ``ref`` of the same
shape, 2D (y, x) or 3D (z, y, x). A 3D array with a single slice, shape
(1, Y, X), is measured as the 2D image it holds (a single SEM image is a
1-slice volume) and maps come back with the input's shape.

Data range
    SSIM's constants and PSNR's peak depend on the range of the data.
    ``data_range=None`` uses the range of the *reference*,
    ``ref.max() - ref.min()``; pass it explicitly (for example the range of the
    training data) to compare numbers across volumes. :func:`compare` reports
    the value it used.

SSIM
    Wang et al. (2004) with a Gaussian window (sigma 1.5, 11 taps), K1 = 0.01,
    K2 = 0.03 and population covariances: the same numbers as
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=...)``. The map is
    filtered with half-sample symmetric padding (scipy's ``'reflect'``); the
    scalar is the mean of the map without its 5-voxel border, where padding
    would matter.

MS-SSIM scalar
    Wang et al. (2003) as in ``pytorch_msssim.ms_ssim``: unpadded Gaussian
    filtering, average pooling by 2 between scales (odd sizes zero-padded),
    mean contrast-structure ``cs`` (clipped at 0) at every scale but the last,
    where the full SSIM is used, combined as ``prod(value_s ** w_s)`` with
    weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333). Scale ``s`` (from 1)
    needs every side longer than ``10 * 2 ** (s - 1)`` voxels, so 5 scales need
    more than 160. For smaller inputs the largest number of scales that fits is
    used, with the first weights renormalised to sum 1, and a
    :class:`~napari_resolve.errors.ResolveWarning` says so.

MS-SSIM map
    A full-size map of where the prediction can be trusted, built from the
    same scales and weights as the scalar. At scale ``s`` the images are
    average-pooled ``s`` times by 2 (a short last window at odd sizes, so that
    pooled voxels stay centred on the voxels they average), the local ``cs``
    map (``l * cs`` at the coarsest scale) is computed with padded, same-size
    filtering, clipped to [0, 1], and upsampled to the input grid by
    (bi/tri)linear interpolation (``align_corners=False``). The map is the
    weighted geometric mean ``prod(map_s ** w_s)``: exactly 1 for identical
    inputs, within [0, 1], and low wherever structure differs at any scale. Its
    mean is close to, but not the same number as, the MS-SSIM scalar.

Computation uses torch on ``device`` (``None``: CUDA when available, else the
CPU) in float32, with the data shifted by the reference's mean so that
variances keep their precision.

Effective resolution
    :func:`gaussian_resolution` blurs the reference with wider and wider
    Gaussians and reports the sigma (and FWHM, um) that best reproduces the
    test image, as ``deepnet-resolution-recovery-xrm.txt`` (2.5.1) does;
    :func:`frc` computes the Fourier ring (2D) or shell (3D) correlation and
    the resolution at the 1/7 and half-bit thresholds. Both take the voxel
    size, work in physical units on every axis and need no torch. See their
    docstrings and ``docs/methods.md`` for what they do and do not measure.

Memory
    Volumes are sent to the device in tiles of at most ``MAX_TILE_VOXELS``
    voxels with a halo of ``RADIUS`` voxels, which is all the context SSIM
    statistics need, so results do not depend on the tiling. MS-SSIM maps are
    computed scale by scale on the pooled grids and combined block by block, so
    a 400^3 map needs about 0.5 GiB beyond its inputs and output. Running out
    of CPU or GPU memory anyway raises a ResolveError that says what to do.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from napari_resolve._validate import as_image, same_shape
from napari_resolve.errors import InputError, ResolveError, ResolveWarning

__all__ = [
    "FrcResult",
    "GaussianFit",
    "compare",
    "frc",
    "gaussian_resolution",
    "half_bit_threshold",
    "ms_ssim",
    "ms_ssim_map",
    "mse",
    "ms_ssim_scales",
    "psnr",
    "ssim",
    "ssim_map",
]

SIGMA = 1.5
RADIUS = 5  # int(3.5 * SIGMA + 0.5): skimage's truncate=3.5 gives Wang's 11-tap window
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


# ---------------------------------------------------------------- input checks


def _pair(pred, ref, min_size: int = 1) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Validate both arrays; return them (a 1-slice volume as 2D) and the input shape."""
    p = as_image(pred, "pred")
    r = as_image(ref, "ref")
    same_shape(p, r, ("pred", "ref"))
    shape = p.shape
    if p.ndim == 3 and shape[0] == 1:
        p, r = p[0], r[0]
    if min(p.shape) < min_size:
        raise InputError(
            f"pred and ref have shape {shape}, but SSIM's Gaussian window needs at "
            f"least {min_size} voxels along every axis (a (1, Y, X) volume counts as "
            "a 2D image). Choose a larger region, or measure thin stacks slice by slice."
        )
    return p, r, shape


def _data_range(ref: np.ndarray, data_range) -> float:
    if data_range is None:
        value = float(ref.max()) - float(ref.min())
        if not value > 0:
            raise InputError(
                "The reference is constant, so no data range can be taken from it. "
                "Pass data_range explicitly (e.g. the intensity range of the training data)."
            )
        return value
    try:
        value = float(data_range)
    except (TypeError, ValueError):
        raise InputError(f"data_range must be a positive number, got {data_range!r}.") from None
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"data_range must be a positive number, got {data_range!r}. Pass the "
            "intensity range of the data (max - min), or None to use the reference's."
        )
    return value


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"Unknown device {device!r}; use 'cpu', 'cuda' or None.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "device='cuda' was requested but no CUDA GPU is available; use 'cpu' or None."
        )
    return dev


def ms_ssim_scales(shape) -> int:
    """Most MS-SSIM scales (1 to 5) that fit an image of ``shape``.

    Each scale halves the image, and the 11-tap window must fit inside the smallest
    side at the coarsest scale: ``n`` scales need every side longer than
    ``2 * RADIUS * 2 ** (n - 1)`` voxels. A ``(1, Y, X)`` volume counts as a 2D image.
    This is the one home of the rule: the loss, the Quality step, the batch evaluation
    and :func:`ms_ssim` all ask here.

    Parameters
    ----------
    shape : sequence of int
        Shape of the image (2D) or volume (3D), in voxels.

    Returns
    -------
    int
        The number of scales, at least 1 (when not even one fits, :func:`ms_ssim`
        refuses the shape with a message).
    """
    dims = tuple(int(s) for s in shape)
    if len(dims) == 3 and dims[0] == 1:
        dims = dims[1:]
    side = min(dims)
    fitting = [n for n in range(1, len(MS_SSIM_WEIGHTS) + 1) if side > 2 * RADIUS * 2 ** (n - 1)]
    return max(fitting or [1])


def _n_scales(shape: tuple[int, ...], scales) -> int:
    """Number of MS-SSIM scales for ``shape``; warns when fewer than 5 had to be used."""
    side = min(shape)
    fits = ms_ssim_scales(shape)
    if scales is None:
        if fits < len(MS_SSIM_WEIGHTS):
            warnings.warn(
                f"MS-SSIM used {fits} of 5 scales: the smallest side is {side} voxels and "
                f"5 scales need more than {2 * RADIUS * 16}. The first {fits} standard "
                "weights were renormalised to sum 1; values are not comparable with "
                "5-scale MS-SSIM.",
                ResolveWarning,
                stacklevel=4,  # _n_scales <- public function <- _memory_errors <- caller
            )
        return fits
    is_int = isinstance(scales, (int, np.integer)) and not isinstance(scales, bool)
    if not (is_int and 1 <= scales <= len(MS_SSIM_WEIGHTS)):
        raise InputError(f"scales must be an integer from 1 to 5 (or None), got {scales!r}.")
    if scales > fits:
        raise InputError(
            f"MS-SSIM with {scales} scales needs every side longer than "
            f"{2 * RADIUS * 2 ** (scales - 1)} voxels, but the smallest side is {side}. "
            f"Use scales={fits} or fewer, or scales=None to choose automatically."
        )
    return int(scales)


def _weights(n: int) -> list[float]:
    # The published 5 weights are used as they are (they sum to 1.0001), as pytorch_msssim does.
    w = MS_SSIM_WEIGHTS[:n]
    return list(w) if n == len(MS_SSIM_WEIGHTS) else [v / sum(w) for v in w]


# ---------------------------------------------------------------- torch kernels


def _tensor(a: np.ndarray, dev: torch.device) -> torch.Tensor:
    # torch warns about read-only arrays (napari layers, memory maps); nothing here
    # writes to its inputs, but a copy is the thread-safe way to stay quiet.
    a = np.ascontiguousarray(a) if a.flags.writeable else np.array(a, order="C")
    return torch.from_numpy(a).to(dev)[None, None]


def _window() -> list[float]:
    x = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / SIGMA) ** 2)
    return (g / g.sum()).tolist()


_WIN = _window()


def _reflect_index(n: int, dev: torch.device) -> torch.Tensor:
    """Indices of an axis of length n extended by RADIUS with half-sample symmetry.

    That is scipy's ``'reflect'`` (d c b a | a b c d | d c b a), as skimage uses;
    torch's ``'reflect'`` padding is scipy's ``'mirror'`` and would not match.
    """
    i = torch.arange(-RADIUS, n + RADIUS, device=dev) % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def _blur(t: torch.Tensor, padded: bool) -> torch.Tensor:
    """Separable Gaussian filter over the spatial axes of a (1, 1, ...) tensor.

    ``padded=False`` returns the valid part (each side shorter by 2 * RADIUS).
    Each 1D pass is a sum of shifted, weighted views: on CPU this is ~30x
    faster than conv3d with a 1-channel (11, 1, 1) kernel.
    """
    for axis in range(2, t.ndim):
        if padded:
            t = t.index_select(axis, _reflect_index(t.shape[axis], t.device))
        n = t.shape[axis] - 2 * RADIUS
        out = t.narrow(axis, 0, n) * _WIN[0]
        for k in range(1, 2 * RADIUS + 1):
            out.add_(t.narrow(axis, k, n), alpha=_WIN[k])
        t = out
    return t


def _ssim_parts(x, y, dr: float, off: float, padded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Luminance map ``l`` and contrast-structure map ``cs`` (SSIM = l * cs)."""
    c1, c2 = (K1 * dr) ** 2, (K2 * dr) ** 2
    # Variances are shift invariant: removing a common offset first keeps float32
    # precise for data far from zero. The means get the offset back for ``l``.
    # ``off`` is one number for the whole reference (see _offset), so every scale
    # and every tile does the same arithmetic on the same voxel.
    x, y = x - off, y - off
    mx, my = _blur(x, padded), _blur(y, padded)
    # num and den are built the same way so that identical inputs give exactly 1.
    den = _blur(x * x, padded).sub_(mx * mx)
    den.add_(_blur(y * y, padded).sub_(my * my)).add_(c2)
    cs = _blur(x * y, padded).sub_(mx * my).mul_(2).add_(c2).div_(den)
    del den
    mx.add_(off)
    my.add_(off)
    lum = (2 * mx * my + c1).div_(mx * mx + my * my + c1)
    return lum, cs


def _local(x, y, dr: float, off: float, *, full: bool, padded: bool) -> torch.Tensor:
    """Local SSIM (``full``) or contrast-structure map; same size if ``padded``, else valid."""
    lum, cs = _ssim_parts(x, y, dr, off, padded=padded)
    return lum.mul_(cs) if full else cs


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t[0, 0].to("cpu", torch.float32).numpy()


# ---------------------------------------------------------------- tiles
#
# Every computation below works on numpy arrays and sends one tile at a time to
# the device, so CPU and GPU memory stay bounded whatever the volume size, and
# small volumes are simply one tile. SSIM statistics reach RADIUS voxels, so a
# tile computed with a RADIUS-voxel halo is exact; MS-SSIM works scale by scale
# on pooled grids (each again with a RADIUS halo at its own resolution) and
# combines the scales block by block at full size.

#: Most voxels (a tile with its halo) sent to the device at once. SSIM needs
#: about 70 bytes a voxel at its peak, so this is about 2.3 GiB.
MAX_TILE_VOXELS = 2**25


def _tiles(shape: tuple[int, ...], halo: int, align: int = 1):
    """Cut ``shape`` into tiles; each tile's core, computed with ``halo`` voxels of context, is exact.

    Tile sizes are multiples of ``align``, so tiles start on multiples of every
    pooling factor up to ``align``. The largest tile axis is halved until a
    tile with its halo holds at most :data:`MAX_TILE_VOXELS` voxels.

    Yields
    ------
    core, ext, inner : tuple of slice
        The tile in array coordinates, the region computed (tile plus halo,
        clipped to the array) and the tile's position inside that region.
    """
    tile = list(shape)
    while math.prod(min(t + 2 * halo, n) for t, n in zip(tile, shape)) > MAX_TILE_VOXELS:
        a = int(np.argmax(tile))
        smaller = max(align, tile[a] // 2 // align * align)
        if smaller >= tile[a]:
            break
        tile[a] = smaller
    for starts in itertools.product(*(range(0, n, t) for n, t in zip(shape, tile))):
        core = tuple(slice(st, min(st + t, n)) for st, t, n in zip(starts, tile, shape))
        ext = tuple(slice(max(c.start - halo, 0), min(c.stop + halo, n)) for c, n in zip(core, shape))
        inner = tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(core, ext))
        yield core, ext, inner


@torch.inference_mode()
def _map_by_tiles(p: np.ndarray, r: np.ndarray, dr: float, off: float, full: bool, dev) -> np.ndarray:
    """Same-size local SSIM (``full``) or cs map of numpy arrays, tile by tile."""
    out = np.empty(p.shape, np.float32)
    for core, ext, inner in _tiles(p.shape, RADIUS):
        m = _local(_tensor(p[ext], dev), _tensor(r[ext], dev), dr, off, full=full, padded=True)
        out[core] = _to_numpy(m)[inner]
    return out


@torch.inference_mode()
def _valid_mean(p: np.ndarray, r: np.ndarray, dr: float, off: float, full: bool, dev) -> float:
    """Mean of the local SSIM (``full``) or cs over voxels at least RADIUS from every edge.

    That is the unpadded (valid) filtering of skimage's SSIM and pytorch_msssim.
    Each tile is filtered unpadded with its halo, which gives exactly its
    core's valid voxels.
    """
    total, count = 0.0, 0
    for core, ext, _ in _tiles(p.shape, RADIUS):
        m = _local(_tensor(p[ext], dev), _tensor(r[ext], dev), dr, off, full=full, padded=False)
        # Valid output index = position - (ext.start + RADIUS).
        part = m[(0, 0) + tuple(
            slice(max(c.start, RADIUS) - e.start - RADIUS, max(min(c.stop, n - RADIUS) - e.start - RADIUS, 0))
            for c, e, n in zip(core, ext, p.shape)
        )]
        total += float(part.sum(dtype=torch.float64))
        count += part.numel()
    return total / count


@torch.inference_mode()
def _pool(a: np.ndarray, dev, *, ceil: bool) -> np.ndarray:
    """2x average pooling of a whole array (4 bytes a voxel, so never tiled).

    ``ceil=False`` zero-pads odd sides as pytorch_msssim does (for the scalar);
    ``ceil=True`` gives a short last window instead, which keeps pooled voxels
    centred on the voxels they average (for the map).
    """
    pool = F.avg_pool2d if a.ndim == 2 else F.avg_pool3d
    t = _tensor(a, dev)
    t = pool(t, 2, ceil_mode=True) if ceil else pool(t, 2, padding=[d % 2 for d in a.shape])
    return _to_numpy(t)


def _ssim_scalar(p, r, dr: float, off: float, dev) -> float:
    return _valid_mean(p, r, dr, off, True, dev)


def _ms_ssim_scalar(p, r, dr: float, off: float, n: int, dev) -> float:
    result = 1.0
    for s, w in enumerate(_weights(n)):
        last = s == n - 1
        value = _valid_mean(p, r, dr, off, last, dev)
        result *= max(value, 0.0) ** w
        if not last:
            p, r = _pool(p, dev, ceil=False), _pool(r, dev, ceil=False)
    return result


@torch.inference_mode()
def _ms_ssim_map(p, r, dr: float, off: float, n: int, dev) -> np.ndarray:
    weights = _weights(n)
    out = None
    coarse = []  # clamped maps of scales 1.. on their pooled grids
    for s in range(n):
        last = s == n - 1
        m = _map_by_tiles(p, r, dr, off, last, dev)
        np.clip(m, 0.0, 1.0, out=m)
        if s == 0:
            out = m  # the full-size result is built in place of scale 0's map
        else:
            coarse.append(m)
        if not last:
            p, r = _pool(p, dev, ceil=True), _pool(r, dev, ceil=True)
    mode = "bilinear" if out.ndim == 2 else "trilinear"
    for block, _, _ in _tiles(out.shape, 0, align=2 ** (n - 1)):
        acc = torch.from_numpy(np.ascontiguousarray(out[block])).to(dev).pow_(weights[0])
        for s, (m, w) in enumerate(zip(coarse, weights[1:]), start=1):
            k = 2**s
            # The pooled voxels this block needs, with one of margin for the
            # interpolation; block starts are multiples of k.
            lo = [max(b.start // k - 1, 0) for b in block]
            hi = [min(-(-b.stop // k) + 1, n_s) for b, n_s in zip(block, m.shape)]
            part = _tensor(m[tuple(slice(a, b) for a, b in zip(lo, hi))], dev)
            # The scale factor (not a target size) sets the sampling positions, so
            # pooled voxel j maps back to the centre of the k voxels it averages.
            up = F.interpolate(part, scale_factor=k, mode=mode, align_corners=False)[0, 0]
            crop = tuple(slice(b.start - a * k, b.stop - a * k) for b, a in zip(block, lo))
            acc.mul_(up[crop].pow_(w))
        out[block] = acc.to("cpu", torch.float32).numpy()
    return out


def _memory_errors(fn):
    """Turn running out of CPU or GPU memory into a ResolveError that says what to do."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (MemoryError, torch.cuda.OutOfMemoryError, RuntimeError) as exc:
            text = str(exc).lower()
            if not isinstance(exc, MemoryError) and "out of memory" not in text and "allocate" not in text:
                raise
            where = "GPU" if isinstance(exc, torch.cuda.OutOfMemoryError) or "cuda" in text else "CPU"
            raise ResolveError(
                f"Not enough {where} memory to compute {fn.__name__} on this volume. "
                f"Lower napari_resolve.quality.MAX_TILE_VOXELS (now {MAX_TILE_VOXELS}) to work in "
                "smaller tiles, measure a smaller region"
                + (", or use device='cpu'." if where == "GPU" else ".")
            ) from exc

    return wrapper


def _offset(r: np.ndarray) -> float:
    """The grey value subtracted before forming variances: the reference's mean."""
    return float(np.mean(r, dtype=np.float64))


def _mse(p: np.ndarray, r: np.ndarray) -> float:
    return float(np.mean((p.astype(np.float64) - r) ** 2))


def _psnr(err: float, dr: float) -> float:
    return math.inf if err == 0 else 10.0 * math.log10(dr**2 / err)


# ---------------------------------------------------------------- public API


def mse(pred, ref) -> float:
    """Mean squared error between ``pred`` and ``ref``.

    Parameters
    ----------
    pred, ref : array-like
        2D (y, x) or 3D (z, y, x) arrays of the same shape, finite values.

    Returns
    -------
    float
        Mean of ``(pred - ref) ** 2``, in squared intensity units (computed in
        float64 from the float32 inputs).

    Raises
    ------
    InputError
        If the arrays are not 2D/3D, differ in shape or hold NaN/inf.
    """
    p, r, _ = _pair(pred, ref)
    return _mse(p, r)


def psnr(pred, ref, data_range=None) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range**2 / mse)``, in dB.

    Parameters
    ----------
    pred, ref : array-like
        2D (y, x) or 3D (z, y, x) arrays of the same shape.
    data_range : float, optional
        Peak-to-peak intensity range. ``None`` uses ``ref.max() - ref.min()``.

    Returns
    -------
    float
        PSNR in decibels; ``inf`` for identical inputs.

    Raises
    ------
    InputError
        On unusable arrays, or a ``data_range`` that is not positive (also a
        constant reference with ``data_range=None``).
    """
    p, r, _ = _pair(pred, ref)
    return _psnr(_mse(p, r), _data_range(r, data_range))


@_memory_errors
def ssim(pred, ref, data_range=None, *, device=None) -> float:
    """Mean structural similarity (Wang et al. 2004, Gaussian window, sigma 1.5).

    Agrees with ``skimage.metrics.structural_similarity(pred, ref,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=data_range)``: the mean of :func:`ssim_map` without a 5-voxel
    border.

    Parameters
    ----------
    pred, ref : array-like
        2D (y, x) or 3D (z, y, x) arrays of the same shape, at least 11 voxels
        along every axis; a (1, Y, X) volume is treated as a 2D image.
    data_range : float, optional
        Intensity range used for SSIM's constants. ``None`` uses
        ``ref.max() - ref.min()``.
    device : str or torch.device, optional
        Where to compute; ``None`` means CUDA if available, else CPU.

    Returns
    -------
    float
        SSIM, 1 for identical inputs (dimensionless, at most 1).

    Raises
    ------
    InputError
        On unusable arrays or a non-positive ``data_range``.
    """
    p, r, _ = _pair(pred, ref, min_size=2 * RADIUS + 1)
    dr, dev = _data_range(r, data_range), _device(device)
    return _ssim_scalar(p, r, dr, _offset(r), dev)


@_memory_errors
def ssim_map(pred, ref, data_range=None, *, device=None) -> np.ndarray:
    """Local SSIM at every voxel (same numbers as skimage's ``full=True`` map).

    Parameters are as for :func:`ssim`. Borders use half-sample symmetric
    padding.

    Returns
    -------
    numpy.ndarray
        float32 map with the shape of the input; 1 where the inputs agree,
        can be negative where they are anti-correlated.
    """
    p, r, shape = _pair(pred, ref, min_size=2 * RADIUS + 1)
    dr, dev = _data_range(r, data_range), _device(device)
    return _map_by_tiles(p, r, dr, _offset(r), True, dev).reshape(shape)


@_memory_errors
def ms_ssim(pred, ref, data_range=None, *, scales=None, device=None) -> float:
    """Multi-scale SSIM (Wang et al. 2003), as computed by ``pytorch_msssim.ms_ssim``.

    Parameters
    ----------
    pred, ref : array-like
        2D (y, x) or 3D (z, y, x) arrays of the same shape, at least 11 voxels
        along every axis; a (1, Y, X) volume is treated as a 2D image.
    data_range : float, optional
        Intensity range used for SSIM's constants. ``None`` uses
        ``ref.max() - ref.min()``.
    scales : int, optional
        Number of scales, 1 to 5. ``None`` uses 5 when every side is longer
        than 160 voxels, otherwise the most that fit (with a
        :class:`~napari_resolve.errors.ResolveWarning`).
    device : str or torch.device, optional
        Where to compute; ``None`` means CUDA if available, else CPU.

    Returns
    -------
    float
        MS-SSIM in [0, 1], 1 for identical inputs.

    Raises
    ------
    InputError
        On unusable arrays, a non-positive ``data_range``, or ``scales`` that
        do not fit the array.
    """
    p, r, _ = _pair(pred, ref, min_size=2 * RADIUS + 1)
    dr, dev = _data_range(r, data_range), _device(device)
    n = _n_scales(p.shape, scales)
    return _ms_ssim_scalar(p, r, dr, _offset(r), n, dev)


@_memory_errors
def ms_ssim_map(pred, ref, data_range=None, *, scales=None, device=None) -> np.ndarray:
    """Full-size MS-SSIM map: the weighted geometric mean of per-scale maps.

    See the module docstring for the definition. Parameters, scale choice and
    errors are as for :func:`ms_ssim`.

    Returns
    -------
    numpy.ndarray
        float32 map in [0, 1] with the shape of the input; exactly 1 where the
        inputs are identical, low where structure differs at any scale.
    """
    p, r, shape = _pair(pred, ref, min_size=2 * RADIUS + 1)
    dr, dev = _data_range(r, data_range), _device(device)
    n = _n_scales(p.shape, scales)
    return _ms_ssim_map(p, r, dr, _offset(r), n, dev).reshape(shape)


@_memory_errors
def compare(pred, ref, data_range=None, *, device=None) -> dict:
    """All scalar metrics of ``pred`` against ``ref`` at once.

    Parameters are as for :func:`ms_ssim` (with automatic scales).

    Returns
    -------
    dict
        ``mse``, ``psnr`` (dB), ``ssim``, ``ms_ssim``, ``data_range`` (the
        value used, from ``ref`` when not given) and ``ms_ssim_scales`` (the
        number of MS-SSIM scales used).
    """
    p, r, _ = _pair(pred, ref, min_size=2 * RADIUS + 1)
    dr, dev = _data_range(r, data_range), _device(device)
    n = _n_scales(p.shape, None)
    err, off = _mse(p, r), _offset(r)
    return {
        "mse": err,
        "psnr": _psnr(err, dr),
        "ssim": _ssim_scalar(p, r, dr, off, dev),
        "ms_ssim": _ms_ssim_scalar(p, r, dr, off, n, dev),
        "data_range": dr,
        "ms_ssim_scales": n,
    }


# ---------------------------------------------------------------- effective resolution
#
# Two measures of how sharp a result is against a reference, both in um:
#
# * the Gaussian fit of deepnet-resolution-recovery-xrm.txt (section 2.5.1): blur
#   the reference with wider and wider Gaussians and find the one that best
#   reproduces the result; its FWHM is how much blurrier the result is;
# * Fourier ring / shell correlation (FRC in 2D, FSC in 3D, as in
#   mdcnn-multiscale-inverse-problems.txt, eq. 4): the normalised correlation of
#   the two images ring by ring in Fourier space, and the spatial frequency at
#   which it drops below a threshold (1/7, or van Heel & Schatz's half-bit curve).
#
# Neither needs torch; they live here because they are quality measures.

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Fewest voxels per axis (axes of one voxel aside) for the Gaussian fit and FRC.
MIN_RESOLUTION_SIZE = 16

#: The FRC/FSC works on a central crop of at most this many voxels: resolution is
#: decided by the highest frequencies, which any large block samples well, and
#: the FFTs of a whole 1000^3 volume would need many GiB.
FRC_MAX_VOXELS = 256**3

#: Share of each axis tapered at each end by the FRC's default Tukey window (1/8
#: of the field on each side, as Nieuwenhuizen et al. 2013): enough to remove the
#: spectral cross that the image borders leave, while keeping most of the data.
TUKEY_ALPHA = 0.25

#: Names of the FRC thresholds, in the order they are reported.
FRC_THRESHOLDS = ("1/7", "half-bit")


def half_bit_threshold(n) -> np.ndarray:
    """Van Heel & Schatz (2005) half-bit threshold for rings/shells of ``n`` Fourier voxels.

    ``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))``: the
    correlation at which the two images share half a bit of information per
    Fourier voxel; it tends to 0.1716 for large rings and rises towards 1 for
    rings of a few voxels, where chance correlations are large.
    """
    root = np.sqrt(np.maximum(np.asarray(n, dtype=np.float64), 1.0))
    return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)


def _two_images(test, reference, voxel_um, names: tuple[str, str]):
    """Validated float32 arrays (a (1, Y, X) volume as 2D), the voxel size per axis and the input shape."""
    from napari_resolve._validate import voxel_tuple

    t = as_image(test, names[0])
    r = as_image(reference, names[1])
    same_shape(t, r, names)
    shape = t.shape
    voxel = voxel_tuple(voxel_um, t.ndim, "voxel size")
    if t.ndim == 3 and shape[0] == 1:
        t, r, voxel = t[0], r[0], voxel[1:]
    if min(t.shape) < MIN_RESOLUTION_SIZE:
        raise InputError(
            f"{names[0]} and {names[1]} have shape {shape}, but measuring resolution needs at least "
            f"{MIN_RESOLUTION_SIZE} voxels along every axis (a (1, Y, X) volume counts as a 2D "
            "image). Choose a larger region, or measure a thin stack slice by slice."
        )
    return t, r, np.array(voxel, dtype=float), shape


# ---------------------------------------------------------------- Gaussian fit


def _discrete_gaussian(src: np.ndarray, sigma_vox, out: np.ndarray) -> None:
    """Blur ``src`` into ``out`` with Lindeberg's discrete Gaussian (``mode="nearest"``).

    The kernel ``exp(-t) I_n(t)`` (``t = sigma**2``, ``I_n`` the modified Bessel
    function) has variance exactly ``sigma**2`` voxels^2 for every sigma and
    tends smoothly to the identity as sigma goes to 0. scipy's sampled Gaussian
    does neither below about half a voxel (at sigma 0.3 its variance is under a tenth
    of sigma**2, at 0.2 its off-centre taps are 4e-6), so the fit could not tell 0 from 0.2 voxel and the
    MSE curve would have a flat foot.
    """
    from scipy import ndimage, special

    sigma_vox = np.broadcast_to(np.asarray(sigma_vox, dtype=float), (src.ndim,))
    current = src
    for axis, s in enumerate(sigma_vox):
        if s <= 0 or src.shape[axis] == 1:
            continue
        radius = math.ceil(4.0 * s + 1.0)
        kernel = special.ive(np.arange(-radius, radius + 1), s * s)
        # Filtering ``out`` into itself is safe: scipy filters each line through a buffer.
        ndimage.correlate1d(current, kernel / kernel.sum(), axis=axis, output=out, mode="nearest")
        current = out
    if current is src:
        out[...] = src


@dataclass(frozen=True)
class GaussianFit:
    """Gaussian-fit effective resolution of a test image against a reference.

    Attributes
    ----------
    sigma_um : float
        Standard deviation (um) of the isotropic Gaussian that, applied to the
        reference, best reproduces the test image: how much blurrier the test
        is than the reference. 0 means at least as sharp as the reference.
    fwhm_um : float
        Its full width at half maximum, ``2.3548 * sigma_um`` (um): the paper's
        measure of the resolution difference.
    sigmas_um : tuple of float
        The sigmas tried (um), ascending: the grid plus the refined optimum.
    mse : tuple of float
        Mean squared difference at each sigma (squared grey values of the test
        image; after the gain/offset fit when ``fit_contrast``).
    gain, offset : float
        The contrast map ``test ~ gain * blurred + offset`` at the optimum
        (1 and 0 when ``fit_contrast`` is False).
    fit_contrast : bool
        Whether gain and offset were fitted at every sigma.
    at_limit : bool
        The optimum is the widest sigma searched: the blur may be wider.
    sigma_axes_um, fwhm_axes_um : tuple of float or None
        With ``per_axis=True``: a separate sigma (and FWHM) per axis, (z, y, x).
    """

    sigma_um: float
    fwhm_um: float
    sigmas_um: tuple[float, ...]
    mse: tuple[float, ...]
    gain: float
    offset: float
    fit_contrast: bool
    at_limit: bool
    sigma_axes_um: tuple[float, ...] | None = None
    fwhm_axes_um: tuple[float, ...] | None = None

    def to_dict(self, curves: bool = True) -> dict:
        """JSON-friendly copy; ``curves=False`` leaves out the MSE curve."""
        out = {
            "sigma_um": self.sigma_um,
            "fwhm_um": self.fwhm_um,
            "gain": self.gain,
            "offset": self.offset,
            "fit_contrast": self.fit_contrast,
            "at_limit": self.at_limit,
            "sigma_axes_um": None if self.sigma_axes_um is None else list(self.sigma_axes_um),
            "fwhm_axes_um": None if self.fwhm_axes_um is None else list(self.fwhm_axes_um),
        }
        if curves:
            out["curve"] = {"sigma_um": list(self.sigmas_um), "mse": list(self.mse)}
        return out

    def plot(self, ax, *, color="tab:blue", label=None) -> None:
        """Draw the MSE curve on matplotlib axes ``ax``, with a dropline at the optimum."""
        ax.plot(self.sigmas_um, self.mse, "-o", color=color, markersize=3, label=label)
        best = float(min(self.mse))
        ax.axvline(self.sigma_um, color=color, linestyle=":", linewidth=1)
        ax.plot([self.sigma_um], [best], "o", color=color, markersize=6)
        ax.set_xlabel("Gaussian sigma applied to the reference (µm)")
        ax.set_ylabel("MSE" + (" (gain/offset fitted)" if self.fit_contrast else ""))
        ax.set_title(f"Gaussian fit: FWHM {self.fwhm_um:.2f} µm (sigma {self.sigma_um:.2f} µm)", fontsize=9)


def gaussian_resolution(
    test, reference, voxel_um, *, sigmas_um=None, fit_contrast: bool = True, per_axis: bool = False
) -> GaussianFit:
    """Effective resolution by the Gaussian fit of ``deepnet-resolution-recovery-xrm.txt`` (2.5.1).

    The reference is blurred with isotropic (in um) Gaussians of increasing
    sigma; the sigma whose blurred reference is closest to ``test`` in the
    least-squares sense measures how much blurrier ``test`` is than the
    reference. The paper reports its FWHM.

    Parameters
    ----------
    test : array-like
        The image to judge (e.g. an upscaled volume), 2D (y, x) or 3D (z, y, x).
    reference : array-like
        The sharp reference on the same voxels (e.g. the registered HRES, or the
        truth of a phantom). It should be less noisy than ``test``: blurring a
        noisy reference also removes its noise, which lowers the MSE and pulls
        the fit towards wider sigmas.
    voxel_um : float or sequence of float
        Voxel size (um), one number or one per axis; the blur has
        ``sigma_um / voxel_um[axis]`` voxels on each axis.
    sigmas_um : sequence of float, optional
        The grid of sigmas (um) to evaluate, at least 3, ascending, >= 0. Default:
        17 values from 0 to 8 voxels of the largest voxel size (at most a quarter
        of the smallest extent). The best grid point is then refined by a
        bounded scalar minimisation between its neighbours.
    fit_contrast : bool
        True (default): at every sigma, fit ``test ~ gain * blurred + offset`` by
        least squares and use the residual, so a contrast or brightness
        difference between the two images does not bias the sigma. False: the
        plain MSE of the paper, for images on the same grey scale.
    per_axis : bool
        Also fit one sigma per axis (Powell's method, bounded by the grid),
        starting from the isotropic optimum: for scans whose resolution differs
        along z (FIB-SEM slicing, anisotropic CT).

    Returns
    -------
    GaussianFit

    Raises
    ------
    InputError
        If the arrays are unusable (not 2D/3D, NaN), differ in shape, are
        smaller than 16 voxels on an axis, are constant, or ``sigmas_um`` is
        not an ascending list of at least 3 lengths >= 0.
    VoxelSizeError
        If the voxel size is missing or invalid.

    Warns
    -----
    ResolveWarning
        If the best sigma is the widest searched.

    Notes
    -----
    The blur is Lindeberg's discrete Gaussian (exact variance at any sigma,
    including below a voxel) with ``"nearest"`` edges, and the MSE is taken on
    a central block away from the edges (at most 64^3 voxels, the block of
    :func:`napari_resolve.baselines.estimate_psf_sigma`, which shares this code
    and answers the same question with scipy's sampled Gaussian).
    """
    from napari_resolve.measure.baselines import _BlurFit, _default_max_sigma

    t, r, voxel, _ = _two_images(test, reference, voxel_um, ("the test image", "the reference"))
    if sigmas_um is None:
        sigmas = np.linspace(0.0, _default_max_sigma(t.shape, voxel), 17)
    else:
        try:
            sigmas = np.asarray(sigmas_um, dtype=float).ravel()
        except (TypeError, ValueError):
            raise InputError(f"sigmas_um must be a list of lengths in um, got {sigmas_um!r}.") from None
        if (
            sigmas.size < 3
            or not np.all(np.isfinite(sigmas))
            or sigmas.min() < 0
            or np.any(np.diff(sigmas) <= 0)
        ):
            raise InputError(
                f"sigmas_um must be at least 3 ascending lengths >= 0 (um), got {sigmas_um!r}; "
                "e.g. numpy.linspace(0, 8, 17)."
            )
    fitter = _BlurFit(
        t,
        r,
        voxel,
        float(sigmas[-1]),
        fit_contrast=bool(fit_contrast),
        blur=_discrete_gaussian,
        test_constant="The test image is constant over the fitted region: there is no structure to "
        "measure a resolution from. Choose another region.",
        ref_constant="The reference is constant over the fitted region: there is no structure to "
        "measure a resolution from. Choose another region, or check the registration.",
    )
    scan = fitter.scan(sigmas)
    if scan.at_limit:
        warnings.warn(
            f"The best Gaussian sigma is the widest searched ({sigmas[-1]:.3g} um): the test image is "
            "blurrier than that, or it does not show the same structures as the reference (check the "
            "registration). Search wider sigmas.",
            ResolveWarning,
            stacklevel=2,
        )
    axes = fwhm_axes = None
    if per_axis:
        from scipy import optimize

        free = [n > 1 for n in t.shape]
        start = np.full(t.ndim, max(scan.sigma_um, 0.05 * float(voxel.min())))

        def cost(x):
            full = np.zeros(t.ndim)
            full[free] = x
            return fitter(full)[0]

        res = optimize.minimize(
            cost,
            start[free],
            method="Powell",
            bounds=[(0.0, float(sigmas[-1]))] * int(sum(free)),
            options={"xtol": 1e-3, "ftol": 1e-6},
        )
        full = np.zeros(t.ndim)
        full[free] = res.x
        axes = tuple(float(v) for v in full)
        fwhm_axes = tuple(FWHM_PER_SIGMA * v for v in axes)
    return GaussianFit(
        sigma_um=scan.sigma_um,
        fwhm_um=FWHM_PER_SIGMA * scan.sigma_um,
        sigmas_um=scan.curve_sigma_um,
        mse=scan.curve_mse,
        gain=scan.gain,
        offset=scan.offset,
        fit_contrast=bool(fit_contrast),
        at_limit=bool(scan.at_limit),
        sigma_axes_um=axes,
        fwhm_axes_um=fwhm_axes,
    )


# ---------------------------------------------------------------- FRC / FSC


@dataclass(frozen=True, eq=False)
class FrcResult:
    """Fourier ring (2D) or shell (3D) correlation of two images.

    Attributes
    ----------
    frequencies_per_um : ndarray
        Centre of each ring/shell, spatial frequency in cycles per um, from the
        first ring above zero up to the Nyquist frequency of the coarsest axis.
    correlation : ndarray
        The FRC/FSC of each ring: 1 where the images agree, about 0 where they
        are unrelated.
    n_voxels : ndarray of int
        Fourier voxels in each ring (both half-spaces).
    thresholds : dict of str to ndarray
        ``"1/7"`` (constant 0.1429) and ``"half-bit"`` (van Heel & Schatz 2005,
        from ``n_voxels``), per ring.
    resolution_um : dict of str to float or None
        For each threshold, ``1 / f`` (um) at the first frequency ``f`` where
        the correlation falls below it (linear interpolation between rings).
        ``None``: never below, the resolution is finer than the finest period
        measured (``1 / frequencies_per_um[-1]``); ``inf``: already below at the
        first ring, no agreement at any scale.
    ndim : int
        2 (rings) or 3 (shells).
    shape : tuple of int
        The block measured (a central crop of large volumes).
    window : str or None
        The apodisation window used.
    """

    frequencies_per_um: np.ndarray
    correlation: np.ndarray
    n_voxels: np.ndarray
    thresholds: dict
    resolution_um: dict
    ndim: int
    shape: tuple[int, ...]
    window: str | None

    @property
    def finest_um(self) -> float:
        """The finest period measured, ``1 / frequencies_per_um[-1]`` (um)."""
        return 1.0 / float(self.frequencies_per_um[-1])

    def status(self, name: str) -> str:
        """``"crossed"``, ``"not reached"`` (resolution finer than :attr:`finest_um`) or
        ``"below at every frequency"`` for threshold ``name``."""
        value = self.resolution_um[name]
        if value is None:
            return "not reached"
        return "below at every frequency" if math.isinf(value) else "crossed"

    def to_dict(self, curves: bool = True) -> dict:
        """JSON-friendly copy; ``curves=False`` leaves out the per-ring curves.

        An infinite resolution becomes ``null`` in strict JSON; ``status`` tells
        it apart from a threshold never reached.
        """
        out = {
            "kind": "FRC (rings)" if self.ndim == 2 else "FSC (shells)",
            "resolution_um": dict(self.resolution_um),
            "status": {k: self.status(k) for k in self.resolution_um},
            "finest_um": self.finest_um,
            "shape": list(self.shape),
            "window": self.window,
        }
        if curves:
            out["curve"] = {
                "frequency_per_um": self.frequencies_per_um.tolist(),
                "correlation": self.correlation.tolist(),
                "n_voxels": self.n_voxels.tolist(),
                **{k: v.tolist() for k, v in self.thresholds.items()},
            }
        return out

    def plot(self, ax, *, color="tab:blue", label=None) -> None:
        """Draw the curve, both thresholds and the crossings on matplotlib axes ``ax``."""
        f = self.frequencies_per_um
        ax.plot(f, self.correlation, "-", color=color, label=label or ("FRC" if self.ndim == 2 else "FSC"))
        styles = {"1/7": ("tab:orange", "--"), "half-bit": ("tab:green", ":")}
        for name, thr in self.thresholds.items():
            c, ls = styles.get(name, ("gray", "--"))
            res = self.resolution_um[name]
            text = "not reached" if res is None else ("never above" if math.isinf(res) else f"{res:.2f} µm")
            ax.plot(f, thr, ls, color=c, linewidth=1, label=f"{name}: {text}")
            if res is not None and not math.isinf(res):
                ax.axvline(1.0 / res, color=c, linestyle=ls, linewidth=0.8)
        ax.set_xlim(0, float(f[-1]))
        ax.set_ylim(min(-0.1, float(self.correlation.min()) - 0.05), 1.05)
        ax.set_xlabel("spatial frequency (1/µm)")
        kind = "FRC" if self.ndim == 2 else "FSC"
        ax.set_ylabel(kind)
        res = self.resolution_um["1/7"]
        text = f"finer than {self.finest_um:.2f} µm" if res is None else (
            "no agreement" if math.isinf(res) else f"{res:.2f} µm"
        )
        ax.set_title(f"{kind} resolution (1/7): {text}", fontsize=9)


def _window(shape: tuple[int, ...], kind: str | None) -> np.ndarray | None:
    """Separable apodisation window (float32, broadcast over the array), or None."""
    if kind is None:
        return None
    from scipy.signal import windows

    w = np.ones((), np.float32)
    for axis, n in enumerate(shape):
        line = windows.tukey(n, TUKEY_ALPHA) if kind == "tukey" else windows.hann(n)
        w = w[..., None] * line.astype(np.float32) if axis else line.astype(np.float32)
    return w


def _crop_center(a: np.ndarray, b: np.ndarray, max_voxels: int):
    """Central crops of ``a`` and ``b`` with at most ``max_voxels`` voxels (the longest axes cut first)."""
    lengths = list(a.shape)
    while math.prod(lengths) > max_voxels:
        ax = int(np.argmax(lengths))
        lengths[ax] = max(MIN_RESOLUTION_SIZE, int(lengths[ax] * 0.9))
    box = tuple(slice((n - L) // 2, (n - L) // 2 + L) for n, L in zip(a.shape, lengths))
    return a[box], b[box]


def frc(a, b, voxel_um, *, bins=None, window="tukey") -> FrcResult:
    """Fourier ring (2D) or shell (3D) correlation between two images, with resolution in um.

    ``FRC(r) = Re sum F_a F_b* / sqrt(sum |F_a|^2 sum |F_b|^2)`` over the
    Fourier voxels of ring/shell ``r`` (Saxton & Baumeister 1982; the MDCNN
    paper's eq. 4 writes the denominator as one sum of products, a misprint).

    FRC is usually taken between two *independent* measurements of the same
    object (two half data sets, two scans): then it measures up to which
    spatial frequency signal rises above noise, and the 1/7 and half-bit
    thresholds have their textbook meaning. Between a result and a reference
    (an upscaled volume and the HRES) it measures up to which frequency the two
    agree, whatever limits that: noise of either, blur together with noise, or
    hallucinated detail. A pure blur without noise does not lower it in theory
    (the correlation is normalised ring by ring); in practice it drops where the
    blur has left almost no power, below the window's leakage. With a reference
    of white spectrum and independent white noise of signal-to-noise ratio
    ``snr`` (variance ratio) on a test image blurred by a Gaussian of ``sigma``
    um, the curve is ``1 / sqrt(1 + exp(4 pi^2 sigma^2 f^2) / snr)``
    and crosses a threshold ``T`` at ``f = sqrt(ln(snr (1 - T^2) / T^2)) / (2 pi sigma)``.

    Parameters
    ----------
    a, b : array-like
        Two images of the same shape, 2D (y, x) or 3D (z, y, x), at least 16
        voxels along every axis; a (1, Y, X) volume is measured as 2D.
        Volumes larger than :data:`FRC_MAX_VOXELS` are measured on a central
        crop of that size.
    voxel_um : float or sequence of float
        Voxel size (um), one number or one per axis. Frequencies are physical
        (cycles per um) on every axis, so rings/shells of anisotropic voxels are
        round in um, not in voxels; they stop at the Nyquist frequency of the
        coarsest axis, the highest one measured in every direction.
    bins : int, optional
        Number of rings/shells from 0 to that frequency. Default (and largest
        allowed): one per Fourier sample along the most coarsely sampled axis
        (``1 / (n * voxel)``), so every ring holds voxels.
    window : {"tukey", "hann", None}
        Apodisation applied to both images (after removing their means) so that
        the image borders do not add a correlated cross to both spectra.
        ``"tukey"`` (default) tapers 1/8 of each axis at each end; ``"hann"``
        tapers everything (more robust, fewer effective voxels); None or False:
        none. True means ``"tukey"``.

    Returns
    -------
    FrcResult

    Raises
    ------
    InputError
        If the arrays are unusable or differ in shape, are smaller than 16
        voxels on an axis, either is constant, ``bins`` is not a whole number
        from 2 to the default, or ``window`` is unknown.
    VoxelSizeError
        If the voxel size is missing or invalid.

    Notes
    -----
    The half-bit threshold uses the number of Fourier voxels per ring; an
    apodisation window lowers the effective number somewhat, which this
    ignores (as is usual).
    """
    from scipy import fft

    if window is True:
        window = "tukey"
    elif window is False:
        window = None
    if window not in ("tukey", "hann", None):
        raise InputError(f"window must be 'tukey', 'hann' or None, got {window!r}.")
    x, y, voxel, _ = _two_images(a, b, voxel_um, ("the first image", "the second image"))
    x, y = _crop_center(x, y, FRC_MAX_VOXELS)
    shape = x.shape
    f_max = float(np.min(0.5 / voxel))  # Nyquist of the coarsest axis
    step = float(np.max(1.0 / (np.array(shape) * voxel)))  # coarsest Fourier sampling
    n_default = int(math.floor(f_max / step + 1e-9))
    if bins is None:
        n_bins = n_default
    else:
        whole = isinstance(bins, (int, np.integer)) and not isinstance(bins, (bool, np.bool_))
        if not whole or not 2 <= bins <= n_default:
            raise InputError(
                f"bins must be a whole number from 2 to {n_default} for this shape and voxel size "
                f"(finer rings would be empty), got {bins!r}."
            )
        n_bins = int(bins)
    width = f_max / n_bins

    w = _window(shape, window)
    spectra = []
    for img, name in ((x, "first"), (y, "second")):
        centred = img.astype(np.float32) - np.float32(np.mean(img, dtype=np.float64))
        if not np.any(centred):
            raise InputError(f"The {name} image is constant: it has no structure to correlate.")
        if w is not None:
            centred *= w
        spectra.append(fft.rfftn(centred))
    fa, fb = spectra

    # Ring index of every Fourier voxel, from its physical frequency. The last
    # axis is a half-space (rfft): voxels with a conjugate twin count twice, so
    # the sums and counts equal those of the full spectrum.
    freqs = [fft.fftfreq(n, d) for n, d in zip(shape[:-1], voxel[:-1])]
    freqs.append(fft.rfftfreq(shape[-1], voxel[-1]))
    twice = np.full(len(freqs[-1]), 2.0)
    twice[0] = 1.0
    if shape[-1] % 2 == 0:
        twice[-1] = 1.0
    f2_rest = np.zeros((1,) * (len(shape) - 1))
    for axis, f in enumerate(freqs[:-1]):
        f2_rest = f2_rest + (f**2).reshape([-1 if i == axis else 1 for i in range(len(shape) - 1)])
    sums = np.zeros((3, n_bins + 2))
    counts = np.zeros(n_bins + 2)
    # One slab of the first axis at a time keeps the temporaries small.
    lead = f2_rest.reshape(shape[0], -1) if len(shape) == 3 else f2_rest.reshape(shape[0], 1)
    for i in range(shape[0]):
        f2 = lead[i][..., None] + freqs[-1] ** 2 if len(shape) == 3 else lead[i] + freqs[-1] ** 2
        ring = np.rint(np.sqrt(f2) / width).astype(np.int64)
        np.minimum(ring, n_bins + 1, out=ring)  # beyond the last ring: discarded
        weight = np.broadcast_to(twice, ring.shape)
        pa, pb = fa[i], fb[i]
        cross = (pa.real * pb.real + pa.imag * pb.imag) * weight
        ring = ring.ravel()
        sums[0] += np.bincount(ring, cross.ravel(), n_bins + 2)
        sums[1] += np.bincount(ring, (np.abs(pa) ** 2 * weight).ravel(), n_bins + 2)
        sums[2] += np.bincount(ring, (np.abs(pb) ** 2 * weight).ravel(), n_bins + 2)
        counts += np.bincount(ring, weight.ravel(), n_bins + 2)
    sel = slice(1, n_bins + 1)  # ring 0 is the (removed) mean
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = sums[0, sel] / np.sqrt(sums[1, sel] * sums[2, sel])
    corr = np.nan_to_num(corr, nan=0.0)
    freq = np.arange(1, n_bins + 1) * width
    n_vox = np.rint(counts[sel]).astype(np.int64)
    thresholds = {"1/7": np.full(n_bins, 1.0 / 7.0), "half-bit": half_bit_threshold(n_vox)}
    resolution = {name: _crossing(freq, corr, thresholds[name]) for name in FRC_THRESHOLDS}
    return FrcResult(
        frequencies_per_um=freq,
        correlation=corr,
        n_voxels=n_vox,
        thresholds=thresholds,
        resolution_um=resolution,
        ndim=len(shape),
        shape=tuple(int(n) for n in shape),
        window=window,
    )


def _crossing(freq: np.ndarray, corr: np.ndarray, thr: np.ndarray) -> float | None:
    """``1 / f`` at the first downward crossing of ``thr`` (None: never below; inf: below from the start)."""
    d = corr - thr
    below = np.flatnonzero(d < 0)
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return math.inf
    f = freq[i - 1] + (freq[i] - freq[i - 1]) * d[i - 1] / (d[i - 1] - d[i])
    return float(1.0 / f)
