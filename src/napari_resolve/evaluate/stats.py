"""Paired statistics of a model against cubic interpolation, per category and overall.

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

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ALL_CATEGORY", "METRICS", "CategorySummary", "MetricSummary", "summarise_metric", "category_summaries"]

#: Metrics of every row, in column order.
METRICS = ("psnr", "ssim", "ms_ssim")
#: Category of all images together.
ALL_CATEGORY = "(all)"
#: The Wilcoxon signed-rank test is reported from this many images on: with 5, the
#: smallest two-sided exact p-value is 2 / 2**5 = 0.0625.
MIN_WILCOXON = 6
#: Paired differences within this fraction of the values count as ties (zero).
TIE_TOLERANCE = 1e-6


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


def category_summaries(rows) -> list[CategorySummary]:
    """One :class:`CategorySummary` per category of ``rows`` (``EvalRow``), then one of all of them."""
    groups: dict[str, list] = {}
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
