"""The records of a batch evaluation and their CSV tables.

:class:`EvalRow` holds one image's scores, :class:`EvalResult` the whole run
(rows, per-category statistics of :mod:`~napari_resolve.evaluate.stats`, the
run's facts); :func:`write_csv` writes the per-image and summary tables.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from napari_resolve.errors import FileFormatError, InputError
from napari_resolve.evaluate.stats import ALL_CATEGORY, METRICS, CategorySummary

__all__ = ["EvalResult", "EvalRow", "check_csv_outputs", "summary_csv_path", "write_csv"]


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


def check_csv_outputs(path: str | os.PathLike, *, overwrite: bool = False, inputs=(),
                      parameter: str = "output") -> tuple[Path, Path]:
    """Check the two tables :func:`write_csv` will write, before any work.

    Returns
    -------
    (Path, Path)
        The per-image table and its summary (:func:`summary_csv_path`).

    Raises
    ------
    FileFormatError
        If ``path`` is not a ``.csv``, or either file fails :func:`napari_resolve.io.check_output`.
    """
    from napari_resolve.io import check_output

    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise FileFormatError(f"{path.name}: the evaluation table ({{{parameter}}}) must be a .csv file.",
                              parameters=(parameter,))
    summary_path = summary_csv_path(path)
    for p in (path, summary_path):
        check_output(p, inputs=inputs, overwrite=overwrite, parameter=parameter)
    return path, summary_path


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
        As :func:`check_csv_outputs`.
    """
    path, summary_path = check_csv_outputs(path, overwrite=overwrite)
    if not result.rows:
        raise InputError("The evaluation has no rows to write.")
    _write_table(path, [r.to_dict() for r in result.rows], overwrite)
    _write_table(summary_path, [s.to_dict() for s in result.summaries], overwrite)
    return path, summary_path
