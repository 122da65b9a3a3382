"""Batch evaluation: a trained model against cubic interpolation on a folder of LRES/HRES pairs.

After ``pretrained-sr-on-sem-images.txt``: every LRES image of a pair is upscaled
with the model and with cubic interpolation onto its HRES grid, both are compared
with the HRES (PSNR, SSIM, MS-SSIM), one row per image; the rows are then
summarised per category (sub-folder) and overall, with the mean paired difference
(model - cubic) and paired significance tests.

Pairs
    In one folder, ``NAME_lres.tif`` + ``NAME_hres.tif`` (``_lres``/``_hres`` in
    any case; ``.tif``, ``.tiff``, ``.ome.tif`` or ``.zarr``, which may differ
    within a pair), or sub-folders ``lres/`` and ``hres/`` holding files with the
    same names. Pairs directly in the evaluated folder form the category ``"."``;
    each immediate sub-folder with pairs is a category of its own (deeper folders
    are not searched). Image files without a partner are skipped and listed in a
    :class:`~napari_resolve.errors.ResolveWarning`; other files (CSV, notes) are
    ignored, as are hidden ones.

Geometry
    A pair shows one field. Voxel sizes: the ``lres_voxel_um``/``hres_voxel_um``
    arguments if given, else the file's metadata, else the model's training voxel
    sizes. The LRES voxel must be the model's (it learned that step only) and the
    HRES voxel its output voxel, within 1 %. Where the HRES grid lies in the LRES
    frame (``align``):

    ``"edge"``
        both images start at the same corner of the field: HRES voxel 0 has its
        centre at ``(hres_voxel - lres_voxel) / 2`` from LRES voxel 0's, as
        detector binning or area downsampling (the paper's) gives;
    ``"centre"``
        the centres of voxel 0 coincide (LRES made by taking every n-th pixel);
    ``"origins"``
        the files' origins (OME plane positions, NGFF translations):
        ``hres.origin - lres.origin``;
    ``"auto"`` (default)
        ``"origins"`` when the two files record different origins, else
        ``"edge"`` (equal or missing origins say nothing about the placement).

    With ``"edge"`` and ``"centre"`` the two fields must agree to one LRES voxel
    (a remainder cropped by binning), which catches wrong voxel sizes.

Compared region
    The HRES voxels whose centres lie inside the LRES field shrunk by ``border``
    LRES voxels (default 1) on every side: at the field's edge interpolation and
    the network see replicated edge values, not the sample. The model and the
    cubic interpolation are computed on exactly these voxels.

Metrics
    PSNR, SSIM and MS-SSIM of :mod:`napari_resolve.measure.similarity`, with the data range
    of the compared HRES region (or ``data_range``), the same for both methods.
    MS-SSIM uses as many scales as the region allows (5 need more than 160
    voxels a side), the same number for both methods, recorded per row.

Statistics (per category and overall, over images)
    Both methods are measured on the same images, so the tests are paired, on the
    per-image difference ``model - cubic``:

    * the paired t-test (``scipy.stats.ttest_rel``; the source used Student's
      t-test): is the mean difference zero? Needs n >= 2; reliable for roughly
      normal differences or large n;
    * the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``): are the
      differences symmetric about zero? No normality needed, robust to a few
      outlying images; given for n >= 6 only, because with fewer images no
      outcome can reach p < 0.05 (two-sided, exact).

    Also: mean and standard deviation of each method, mean difference with its
    95 % t-interval, and on how many images the model was better. Differences
    within 1e-6 of the values are float32 rounding and count as ties (zero).
    Images with a non-finite value (infinite PSNR of identical images) are left
    out of that metric's statistics.
"""

from __future__ import annotations

import csv
import math
import os
import re
import time
import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import FileFormatError, InputError, ResolveWarning, VoxelSizeError
from napari_resolve.geometry.grid import Grid
from napari_resolve.jobs import Progress, drain

__all__ = [
    "ALIGNS",
    "METRICS",
    "CategorySummary",
    "EvalResult",
    "EvalRow",
    "MetricSummary",
    "Pair",
    "find_pairs",
    "iter_evaluate",
    "run_evaluate",
    "summarise_metric",
    "summary_csv_path",
    "write_csv",
]

#: Metrics of every row, in column order.
METRICS = ("psnr", "ssim", "ms_ssim")
#: How the HRES grid is placed in the LRES frame (see the module docstring).
ALIGNS = ("auto", "edge", "centre", "origins")
#: Category of the pairs directly in the evaluated folder, and of all images together.
TOP_CATEGORY = "."
ALL_CATEGORY = "(all)"
#: The Wilcoxon signed-rank test is reported from this many images on: with 5, the
#: smallest two-sided exact p-value is 2 / 2**5 = 0.0625.
MIN_WILCOXON = 6
#: Paired differences within this fraction of the values count as ties (zero).
TIE_TOLERANCE = 1e-6
#: Voxel sizes may differ from the model's by this fraction (as in inference).
VOXEL_TOLERANCE = 0.01
#: A pair's HRES grid more than this far (HRES voxels) off the training grid's phase is noted.
PHASE_TOLERANCE = 0.25

_IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr")
_ROLE = re.compile(r"^(?P<name>.+)_(?P<role>lres|hres)$", re.IGNORECASE)
_NAMING = (
    "Name each pair NAME_lres.tif and NAME_hres.tif (also .tiff or .zarr) in one folder, or put files with the "
    "same names in sub-folders lres/ and hres/; category sub-folders may hold either layout."
)


# ----------------------------------------------------------------------------- finding pairs


@dataclass(frozen=True)
class Pair:
    """One LRES/HRES pair found in the evaluated folder.

    Attributes
    ----------
    category : str
        Its sub-folder (``"."`` for the evaluated folder itself).
    name : str
        The pair's name (file name without ``_lres``/``_hres`` and suffix).
    lres, hres : Path
        The two files.
    """

    category: str
    name: str
    lres: Path
    hres: Path

    @property
    def label(self) -> str:
        """``category/name`` (just the name in the top category)."""
        return self.name if self.category == TOP_CATEGORY else f"{self.category}/{self.name}"


def _image_stem(path: Path) -> str | None:
    """The name without its image suffix, or None if ``path`` is not an image."""
    low = path.name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            if suffix.endswith("zarr") != path.is_dir():
                return None  # a folder called x.tif, a file called x.zarr
            return path.name[: -len(suffix)]
    return None


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _scan(folder: Path, category: str) -> tuple[list[Pair], list[Path]]:
    """Pairs and unpaired image files of one category folder."""
    found: dict[str, dict[str, Path]] = {}  # name -> role -> file
    unpaired: list[Path] = []

    def add(name: str, role: str, path: Path) -> None:
        roles = found.setdefault(name, {})
        if role in roles:
            raise InputError(
                f"Two {role.upper()} files for the pair {name!r} in {folder}: {roles[role].name} and "
                f"{path.relative_to(folder)}. Keep one of them."
            )
        roles[role] = path

    for entry in _visible(folder):
        stem = _image_stem(entry)
        if stem is None:
            continue
        m = _ROLE.match(stem)
        if m:
            add(m["name"], m["role"].lower(), entry)
        else:
            unpaired.append(entry)
    subs = {p.name.lower(): p for p in _visible(folder) if p.is_dir() and _image_stem(p) is None}
    for role in ("lres", "hres"):
        if role in subs:
            for entry in _visible(subs[role]):
                stem = _image_stem(entry)
                if stem is not None:
                    add(stem, role, entry)
    pairs = []
    for name, roles in sorted(found.items()):
        if len(roles) == 2:
            pairs.append(Pair(category, name, roles["lres"], roles["hres"]))
        else:
            unpaired.extend(roles.values())
    return pairs, unpaired


def find_pairs(pairs_dir: str | os.PathLike) -> tuple[list[Pair], list[Path]]:
    """Find the LRES/HRES pairs of a folder and its category sub-folders.

    Parameters
    ----------
    pairs_dir : path-like
        The folder (see the module docstring for the layouts).

    Returns
    -------
    pairs : list of Pair
        Sorted by category (``"."`` first) and name.
    unpaired : list of Path
        Image files without a partner.

    Raises
    ------
    FileFormatError
        If ``pairs_dir`` is not a folder.
    InputError
        If no pair is found (the message gives the naming), or a pair has two
        files of one kind.
    """
    root = Path(pairs_dir)
    if not root.is_dir():
        raise FileFormatError(f"{root} is not a folder. Give the folder that holds the LRES/HRES pairs.")
    pairs, unpaired = _scan(root, TOP_CATEGORY)
    for sub in _visible(root):
        if sub.is_dir() and _image_stem(sub) is None and sub.name.lower() not in ("lres", "hres"):
            p, u = _scan(sub, sub.name)
            pairs += p
            unpaired += u
    if not pairs:
        what = f" ({len(unpaired)} image file(s) without a partner)" if unpaired else ""
        raise InputError(f"No LRES/HRES pairs were found in {root}{what}. {_NAMING}")
    return pairs, sorted(unpaired)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class EvalRow:
    """The scores of one image.

    Attributes
    ----------
    category, name : str
        Where the pair was found.
    lres_file, hres_file : str
        The files, relative to the evaluated folder.
    shape : tuple of int
        The compared region (HRES voxels).
    hres_voxel_um : tuple of float
        Its voxel size (um).
    data_range : float
        Intensity range used by PSNR and SSIM.
    ms_ssim_scales : int
        Scales MS-SSIM used (5 for regions over 160 voxels a side).
    model, cubic : dict
        ``psnr`` (dB), ``ssim`` and ``ms_ssim`` of each method against the HRES.
    seconds : float
        Time spent on this pair.
    """

    category: str
    name: str
    lres_file: str
    hres_file: str
    shape: tuple[int, ...]
    hres_voxel_um: tuple[float, ...]
    data_range: float
    ms_ssim_scales: int
    model: dict[str, float]
    cubic: dict[str, float]
    seconds: float

    def diff(self, metric: str) -> float:
        """``model - cubic`` for one metric (positive: the model is closer to the HRES)."""
        return self.model[metric] - self.cubic[metric]

    def to_dict(self) -> dict:
        """One CSV row (flat)."""
        out: dict = {"category": self.category, "name": self.name, "shape": "x".join(map(str, self.shape))}
        for m in METRICS:
            out[f"model_{m}"] = self.model[m]
            out[f"cubic_{m}"] = self.cubic[m]
            out[f"diff_{m}"] = self.diff(m)
        out |= {
            "data_range": self.data_range,
            "ms_ssim_scales": self.ms_ssim_scales,
            "hres_voxel_um": " ".join(f"{v:g}" for v in self.hres_voxel_um),
            "lres_file": self.lres_file,
            "hres_file": self.hres_file,
            "seconds": round(self.seconds, 3),
        }
        return out


@dataclass(frozen=True)
class MetricSummary:
    """Paired statistics of one metric over a set of images.

    Attributes
    ----------
    n : int
        Images with finite values of both methods.
    model_mean, model_sd, cubic_mean, cubic_sd : float
        Mean and sample standard deviation of each method (sd: NaN for n < 2).
    diff_mean, diff_sd : float
        Of the per-image difference ``model - cubic`` (ties, within
        :data:`TIE_TOLERANCE` of the values, counted as zero).
    diff_ci95 : (float, float)
        95 % t-interval of the mean difference (NaN for n < 2).
    p_ttest : float
        Two-sided paired t-test; NaN when not applicable (n < 2, or all
        differences equal but not zero), 1 when every difference is zero.
    p_wilcoxon : float
        Two-sided Wilcoxon signed-rank test; NaN for n < :data:`MIN_WILCOXON`,
        1 when every difference is zero.
    model_better : int
        Images on which the model scored higher.
    """

    n: int
    model_mean: float
    model_sd: float
    cubic_mean: float
    cubic_sd: float
    diff_mean: float
    diff_sd: float
    diff_ci95: tuple[float, float]
    p_ttest: float
    p_wilcoxon: float
    model_better: int

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["diff_ci95"] = list(self.diff_ci95)
        return d


def summarise_metric(model_values: Sequence[float], cubic_values: Sequence[float]) -> MetricSummary:
    """Means, paired differences and paired tests of one metric (see the module docstring).

    Parameters
    ----------
    model_values, cubic_values : sequence of float
        The metric per image for each method, in the same image order.

    Returns
    -------
    MetricSummary
    """
    from scipy import stats

    a = np.asarray(model_values, dtype=np.float64)
    b = np.asarray(cubic_values, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b
    # Differences at the level of float32 rounding are ties, not effects: an untrained
    # model that reproduces the interpolation differs from it by ~1e-8 dB, systematically
    # enough for a t-test on hundreds of images to call that "significant".
    d[np.abs(d) <= TIE_TOLERANCE * np.maximum(np.abs(a), np.abs(b))] = 0.0
    n = int(d.size)
    nan = math.nan

    def mean(x):
        return float(x.mean()) if n else nan

    def sd(x):
        return float(x.std(ddof=1)) if n >= 2 else nan

    ci = (nan, nan)
    if n >= 2:
        half = float(stats.t.ppf(0.975, n - 1)) * sd(d) / math.sqrt(n)
        ci = (mean(d) - half, mean(d) + half)
    all_zero = n > 0 and not np.any(d)
    if n < 2:
        p_t = nan
    elif all_zero:
        p_t = 1.0
    elif np.ptp(d) == 0:
        p_t = nan  # equal differences: the t statistic is infinite, the test says nothing
    else:
        p_t = float(stats.ttest_rel(a, b).pvalue)
    if n < MIN_WILCOXON:
        p_w = nan
    elif all_zero:
        p_w = 1.0
    else:
        # zero_method="wilcox" drops exact ties between the methods, as the test is defined.
        p_w = float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return MetricSummary(
        n=n,
        model_mean=mean(a),
        model_sd=sd(a),
        cubic_mean=mean(b),
        cubic_sd=sd(b),
        diff_mean=mean(d),
        diff_sd=sd(d),
        diff_ci95=ci,
        p_ttest=p_t,
        p_wilcoxon=p_w,
        model_better=int(np.sum(d > 0)),
    )


@dataclass(frozen=True)
class CategorySummary:
    """The statistics of one category (or of all images, :data:`ALL_CATEGORY`).

    Attributes
    ----------
    category : str
    n : int
        Images in it.
    metrics : dict of str to MetricSummary
        One per metric of :data:`METRICS`.
    """

    category: str
    n: int
    metrics: dict[str, MetricSummary]

    def to_dict(self) -> dict:
        """One row of the summary CSV (flat: ``psnr_diff_mean``, ``ssim_p_wilcoxon``...)."""
        out: dict = {"category": self.category, "n": self.n}
        for m in METRICS:
            for key, value in self.metrics[m].to_dict().items():
                if key == "diff_ci95":
                    out[f"{m}_diff_ci95_low"], out[f"{m}_diff_ci95_high"] = value
                elif key != "n":
                    out[f"{m}_{key}"] = value
        return out


def _summaries(rows: list[EvalRow]) -> list[CategorySummary]:
    groups: dict[str, list[EvalRow]] = {}
    for r in rows:
        groups.setdefault(r.category, []).append(r)
    groups[ALL_CATEGORY] = list(rows)
    return [
        CategorySummary(
            cat,
            len(rs),
            {m: summarise_metric([r.model[m] for r in rs], [r.cubic[m] for r in rs]) for m in METRICS},
        )
        for cat, rs in groups.items()
    ]


@dataclass
class EvalResult:
    """The outcome of :func:`iter_evaluate`.

    Attributes
    ----------
    rows : list of EvalRow
        One per image, in the order of :func:`find_pairs`.
    summaries : list of CategorySummary
        One per category, then :data:`ALL_CATEGORY` for all images.
    unpaired : list of str
        Image files skipped for want of a partner (relative to the folder).
    pairs_dir : str
    model : str
        The model file, or a description of an in-memory model.
    align : str
        The alignment asked for.
    border_lres_voxels : float
    seconds : float
        Wall time.
    device : str
        Where the network ran.
    notes : list of str
        What the user should know (grids off the training phase, fewer MS-SSIM scales).
    """

    rows: list[EvalRow]
    summaries: list[CategorySummary]
    unpaired: list[str]
    pairs_dir: str
    model: str
    align: str
    border_lres_voxels: float
    seconds: float
    device: str
    notes: list[str] = field(default_factory=list)

    def category(self, name: str) -> CategorySummary:
        """The summary of one category (``"(all)"`` for all images)."""
        for s in self.summaries:
            if s.category == name:
                return s
        raise KeyError(name)

    def summary(self) -> dict:
        """What ``napari-resolve evaluate`` prints: per-category statistics and the run's facts."""
        return {
            "model": self.model,
            "pairs_dir": self.pairs_dir,
            "images": len(self.rows),
            "categories": [s.category for s in self.summaries if s.category != ALL_CATEGORY],
            "summary": {
                s.category: {"n": s.n} | {m: _rounded(s.metrics[m].to_dict(), s.n) for m in METRICS}
                for s in self.summaries
            },
            "unpaired": list(self.unpaired),
            "align": self.align,
            "border_lres_voxels": self.border_lres_voxels,
            "seconds": round(self.seconds, 2),
            "device": self.device,
            "notes": list(self.notes),
        }


def _rounded(d: dict, n: int) -> dict:
    """Five significant digits for the terminal (the CSV keeps every digit); ``n`` only where it differs."""
    def r(v):
        if isinstance(v, list):
            return [r(x) for x in v]
        if isinstance(v, float) and math.isfinite(v) and v != 0:
            return float(f"{v:.5g}")
        return v

    return {k: r(v) for k, v in d.items() if k != "n" or v != n}


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Geometry:
    lres_voxel: tuple[float, ...]
    grid: Grid  # the compared HRES voxels, LRES frame
    box: tuple[slice, ...]  # the same voxels as indices of the HRES array
    phase_off: float  # largest distance (HRES voxels) from the training grid's phase


def _pair_geometry(pair: Pair, lres, hres, ckpt, lres_voxel, hres_voxel, align: str, border: float) -> _Geometry:
    """Voxel sizes, placement and compared region of one pair (raises with the file's name)."""
    from napari_resolve.learn.inference import check_lres_voxels

    ndim = lres.ndim
    trained_nd = len(ckpt.hres_voxel_um)
    if hres.ndim != ndim:
        raise InputError(
            f"{pair.label}: the LRES {pair.lres.name} is {ndim}D but the HRES {pair.hres.name} is {hres.ndim}D; "
            "a pair must be two images or two volumes."
        )
    if ndim != trained_nd:
        raise InputError(
            f"{pair.label}: the images are {ndim}D but the model was trained on {trained_nd}D data. "
            f"Evaluate it on {trained_nd}D pairs."
        )
    if lres_voxel is not None:
        lv = voxel_tuple(lres_voxel, ndim, "LRES voxel size")
    else:
        lv = lres.voxel_um or tuple(ckpt.lres_voxel_um)
    if hres_voxel is not None:
        hv = voxel_tuple(hres_voxel, ndim, "HRES voxel size")
    else:
        hv = hres.voxel_um or tuple(ckpt.hres_voxel_um)
    try:
        check_lres_voxels(ckpt, lv)
    except VoxelSizeError as exc:
        raise VoxelSizeError(f"{pair.lres}: {exc} If the file's metadata is wrong, give --lres-voxel.") from None
    if any(abs(a / b - 1) > VOXEL_TOLERANCE for a, b in zip(hv, ckpt.hres_voxel_um)):
        raise VoxelSizeError(
            f"{pair.hres}: this HRES has {_um(hv)} voxels but the model upscales to {_um(ckpt.hres_voxel_um)} "
            "voxels; it can only be compared with an HRES at its output voxel size. Give --hres-voxel if the "
            "file's metadata is wrong."
        )
    lv_a, hv_a = np.array(lv), np.array(hv)
    n_l, n_h = np.array(lres.shape), np.array(hres.shape)
    mode = align
    if mode == "auto":
        mode = "edge" if np.allclose(lres.origin_um, hres.origin_um, atol=1e-6) else "origins"
    if mode == "edge":
        origin = (hv_a - lv_a) / 2
    elif mode == "centre":
        origin = np.zeros(ndim)
    else:
        origin = np.array(hres.origin_um, float) - np.array(lres.origin_um, float)
    if mode in ("edge", "centre"):
        ext_l, ext_h = n_l * lv_a, n_h * hv_a
        if np.any(np.abs(ext_l - ext_h) > lv_a * (1 + VOXEL_TOLERANCE)):
            raise InputError(
                f"{pair.label}: the LRES covers {_um(ext_l)} ({_shape(n_l)} voxels of {_um(lv)}) but the HRES "
                f"{_um(ext_h)} ({_shape(n_h)} voxels of {_um(hv)}); a pair must show the same field. Check the "
                "voxel sizes (--lres-voxel, --hres-voxel), or place the images by their origins (--align origins)."
            )
    # HRES voxels whose centres lie in the LRES field shrunk by the border.
    lo = (-0.5 + border) * lv_a
    hi = (n_l - 0.5 - border) * lv_a
    i0 = np.maximum(np.ceil((lo - origin) / hv_a - 1e-6), 0).astype(int)
    i1 = np.minimum(np.floor((hi - origin) / hv_a + 1e-6), n_h - 1).astype(int) + 1
    size = i1 - i0
    from napari_resolve.measure.similarity import RADIUS

    if np.any(size < 2 * RADIUS + 1):
        raise InputError(
            f"{pair.label}: only {_shape(np.maximum(size, 0))} HRES voxels lie inside the LRES field less a border "
            f"of {border:g} LRES voxel(s); SSIM needs at least {2 * RADIUS + 1} along every axis. Check the "
            "alignment (--align) and voxel sizes, or lower --border."
        )
    box = tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))
    grid = Grid(tuple(int(s) for s in size), tuple(float(v) for v in hv),
                tuple(float(o + a * v) for o, a, v in zip(origin, i0, hv)))
    phase_off = 0.0
    if ckpt.phase_origin_um is not None:
        frac = (np.array(grid.origin_um) - np.array(ckpt.phase_origin_um[-ndim:])) / hv_a
        phase_off = float(np.max(np.abs(frac - np.round(frac))))
    return _Geometry(tuple(float(v) for v in lv), grid, box, phase_off)


def _um(v) -> str:
    return " x ".join(f"{float(x):g}" for x in v) + " um"


def _shape(v) -> str:
    return " x ".join(str(int(x)) for x in v)


# ----------------------------------------------------------------------------- the job


def _scores(pred: np.ndarray, ref: np.ndarray, data_range: float, scales: int, device) -> dict[str, float]:
    from napari_resolve.measure.similarity import ms_ssim, psnr, ssim

    return {
        "psnr": psnr(pred, ref, data_range),
        "ssim": ssim(pred, ref, data_range, device=device),
        "ms_ssim": ms_ssim(pred, ref, data_range, scales=scales, device=device),
    }


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def iter_evaluate(
    model,
    pairs_dir: str | os.PathLike,
    *,
    lres_voxel_um=None,
    hres_voxel_um=None,
    align: str = "auto",
    border: float = 1.0,
    data_range: float | None = None,
    device: str = "auto",
    tile: int | None = None,
) -> Generator[Progress, None, EvalResult]:
    """Evaluate a model against cubic interpolation on every pair of a folder.

    The folder is searched and the arguments checked when this is called; then
    the generator first checks every pair (files readable, voxel sizes, fields)
    so that a bad file stops the job before any upscaling, and then upscales and
    scores the pairs one by one.

    Parameters
    ----------
    model : Checkpoint or path-like
        A trained model (``.pt``).
    pairs_dir : path-like
        The folder of pairs (see the module docstring for the layouts).
    lres_voxel_um, hres_voxel_um : float or sequence of float, optional
        Voxel sizes (um) for every pair, overriding the files' metadata. Without
        them and without metadata, the model's training voxel sizes are used.
    align : {"auto", "edge", "centre", "origins"}
        Where the HRES grid lies relative to the LRES (module docstring).
    border : float
        LRES voxels left out of the comparison along every edge of the field.
    data_range : float, optional
        Intensity range for PSNR and SSIM (e.g. 255 for 8-bit images); default
        the range of each compared HRES region.
    device : str
        "auto", "cpu", "cuda" or "mps" for the network (metrics run on CUDA
        when it is used, else on the CPU).
    tile : int, optional
        In-plane tile of tiled prediction (output voxels; default 128).

    Yields
    ------
    Progress
        ``step`` 0 while checking pairs, then ``step`` = pairs done, with tile
        records in between (stopping takes effect at the next tile).

    Returns
    -------
    EvalResult

    Raises
    ------
    InputError, VoxelSizeError, FileFormatError
        For a folder without pairs, bad arguments, or (while checking) a pair
        whose files cannot be read, whose voxel sizes do not fit the model, or
        whose images do not show the same field; the message names the file.
    """
    from napari_resolve.models.checkpoint import Checkpoint, load_checkpoint

    if align not in ALIGNS:
        raise InputError(f"Unknown alignment {align!r}; choose one of {', '.join(ALIGNS)}.")
    try:
        border = float(border)
    except (TypeError, ValueError):
        raise InputError(f"border must be a number of LRES voxels, got {border!r}.") from None
    if not (math.isfinite(border) and border >= 0):
        raise InputError(f"border must be a number of LRES voxels >= 0, got {border!r}.")
    if data_range is not None and not (math.isfinite(float(data_range)) and float(data_range) > 0):
        raise InputError(f"data_range must be a positive intensity range, got {data_range!r}.")
    root = Path(pairs_dir)
    pairs, unpaired = find_pairs(root)
    ckpt = model if isinstance(model, Checkpoint) else load_checkpoint(model)
    model_name = f"in-memory {ckpt.architecture} model" if isinstance(model, Checkpoint) else str(model)
    if unpaired:
        shown = ", ".join(_rel(p, root) for p in unpaired[:10])
        more = f" and {len(unpaired) - 10} more" if len(unpaired) > 10 else ""
        warnings.warn(
            f"{len(unpaired)} image file(s) in {root} have no partner and were skipped: {shown}{more}. {_NAMING}",
            ResolveWarning,
            stacklevel=2,
        )
    return _evaluate(ckpt, model_name, root, pairs, [_rel(p, root) for p in unpaired], lres_voxel_um,
                     hres_voxel_um, align, border, data_range, device, tile)


def _evaluate(ckpt, model_name, root, pairs, unpaired, lres_voxel, hres_voxel, align, border, data_range, device,
              tile) -> Generator[Progress, None, EvalResult]:
    from napari_resolve.io import read_volume
    from napari_resolve.learn.inference import iter_predict
    from napari_resolve.measure.baselines import interpolate

    t0 = time.perf_counter()
    n = len(pairs)
    # Metrics on CUDA when the network runs there; MPS lacks float64 sums, so the CPU there.
    q_device = "cuda" if device == "cuda" else ("cpu" if device in ("cpu", "mps") else None)

    # 1. Check every pair before any upscaling: a bad file late in a long batch
    #    would otherwise cost all the work before it.
    for i, pair in enumerate(pairs):
        yield Progress(0, n, f"checking {i + 1}/{n}: {pair.label}")
        _pair_geometry(pair, read_volume(pair.lres), read_volume(pair.hres), ckpt, lres_voxel, hres_voxel, align,
                       border)

    # 2. Upscale and score.
    rows: list[EvalRow] = []
    off_phase: list[str] = []
    dev_name = ""
    for i, pair in enumerate(pairs):
        t_pair = time.perf_counter()
        lres, hres = read_volume(pair.lres), read_volume(pair.hres)
        geo = _pair_geometry(pair, lres, hres, ckpt, lres_voxel, hres_voxel, align, border)
        if geo.phase_off > PHASE_TOLERANCE:
            off_phase.append(pair.label)
        job = iter_predict(ckpt, lres.data, geo.lres_voxel, grid=geo.grid, device=device, tile=tile)
        while True:
            try:
                rec = next(job)
            except StopIteration as stop:
                predicted = stop.value
                break
            yield Progress(i, n, f"{pair.label}: tile {rec.step}/{rec.total}")
        dev_name = predicted.device
        cubic = interpolate(lres.data, geo.lres_voxel, geo.grid, "cubic")
        ref = np.asarray(hres.data[geo.box], dtype=np.float32)
        dr = float(data_range) if data_range is not None else float(ref.max()) - float(ref.min())
        if not dr > 0:
            raise InputError(
                f"{pair.hres}: the compared HRES region is constant, so it has no intensity range for PSNR/SSIM. "
                "Remove this pair, or give --data-range."
            )
        from napari_resolve.measure.similarity import ms_ssim_scales

        scales = ms_ssim_scales(ref.shape)
        row = EvalRow(
            category=pair.category,
            name=pair.name,
            lres_file=_rel(pair.lres, root),
            hres_file=_rel(pair.hres, root),
            shape=tuple(int(s) for s in ref.shape),
            hres_voxel_um=geo.grid.voxel_um,
            data_range=dr,
            ms_ssim_scales=scales,
            model=_scores(predicted.data, ref, dr, scales, q_device),
            cubic=_scores(cubic, ref, dr, scales, q_device),
            seconds=time.perf_counter() - t_pair,
        )
        rows.append(row)
        yield Progress(i + 1, n, f"{pair.label}: PSNR {row.model['psnr']:.2f} dB (cubic {row.cubic['psnr']:.2f}), "
                                 f"SSIM {row.model['ssim']:.3f} (cubic {row.cubic['ssim']:.3f})")

    notes = []
    if off_phase:
        notes.append(
            f"{len(off_phase)} pair(s) ({', '.join(off_phase[:5])}{' ...' if len(off_phase) > 5 else ''}) have "
            f"HRES grids more than {PHASE_TOLERANCE:g} HRES voxel off the phase the model was trained at; it sees "
            "their LRES at other sub-voxel positions and may score lower than on in-phase data. Check --align."
        )
    few = sorted({r.ms_ssim_scales for r in rows if r.ms_ssim_scales < 5})
    if few:
        notes.append(
            f"MS-SSIM used {'/'.join(map(str, few))} of 5 scales on some images (5 need more than 160 voxels a "
            "side in the compared region); those values are not comparable with 5-scale MS-SSIM."
        )
    for note in notes:
        warnings.warn(note, ResolveWarning, stacklevel=2)
    return EvalResult(
        rows=rows,
        summaries=_summaries(rows),
        unpaired=unpaired,
        pairs_dir=str(root),
        model=model_name,
        align=align,
        border_lres_voxels=border,
        seconds=time.perf_counter() - t0,
        device=dev_name,
        notes=notes,
    )


def run_evaluate(model, pairs_dir, **kwargs) -> EvalResult:
    """:func:`iter_evaluate` run to the end (for scripts and tests)."""
    return drain(iter_evaluate(model, pairs_dir, **kwargs))


# ----------------------------------------------------------------------------- CSV


def summary_csv_path(path: str | os.PathLike) -> Path:
    """Where :func:`write_csv` puts the summary: ``<stem>_summary.csv`` beside ``path``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_summary.csv")


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)  # empty: NA for spreadsheets and pandas
    return value


def _write_table(path: Path, records: list[dict], overwrite: bool) -> None:
    from napari_resolve.io import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(records[0]))
            writer.writeheader()
            for rec in records:
                writer.writerow({k: _cell(v) for k, v in rec.items()})


def write_csv(result: EvalResult, path: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the per-image CSV and the per-category summary CSV.

    Parameters
    ----------
    result : EvalResult
    path : path-like
        The per-image table (``.csv``); the summary goes to
        :func:`summary_csv_path` (``<stem>_summary.csv``).
    overwrite : bool
        Replace existing files. Without it, nothing is written if either exists.

    Returns
    -------
    (Path, Path)
        The two files. Each is written to a temporary name and renamed when
        complete. Missing values (a test that does not apply) are empty cells;
        an infinite PSNR (identical images) is ``inf``.

    Raises
    ------
    FileFormatError
        If a file exists and ``overwrite`` is False, or the folder is missing.
    """
    path = Path(path)
    summary_path = summary_csv_path(path)
    if path.suffix.lower() != ".csv":
        raise FileFormatError(f"{path.name}: the evaluation table must be a .csv file.")
    for p in (path, summary_path):
        if p.exists() and not overwrite:
            raise FileFormatError(
                f"{p} already exists and was left untouched; choose another name or allow overwriting "
                "(--overwrite on the command line)."
            )
    if not result.rows:
        raise InputError("The evaluation has no rows to write.")
    _write_table(path, [r.to_dict() for r in result.rows], overwrite)
    _write_table(summary_path, [s.to_dict() for s in result.summaries], overwrite)
    return path, summary_path
