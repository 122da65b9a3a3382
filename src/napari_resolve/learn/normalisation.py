"""Robust intensity normalisation by percentiles, recorded so it can be inverted.

Scans from different acquisitions have different grey-value scales; mapping the
``p_low`` and ``p_high`` percentiles to 0 and 1 puts them on a common scale while
a few hot pixels or a bright artefact (which would dominate a min/max scaling)
barely move it. The fitted values are kept in a :class:`Normalisation` that is
stored with a model, so predictions can be mapped back to the original units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from napari_resolve.errors import InputError

#: Fitting on more voxels than this uses an evenly strided subset: the
#: percentiles of a 1e9-voxel volume do not need every voxel.
MAX_FIT_VOXELS = 4_000_000


@dataclass(frozen=True)
class Normalisation:
    """Affine map ``(x - low) / (high - low)`` fitted from percentiles.

    Attributes
    ----------
    low, high : float
        Grey values (input units) mapped to 0 and 1.
    p_low, p_high : float
        The percentiles they were taken at.
    """

    low: float
    high: float
    p_low: float = 0.5
    p_high: float = 99.5

    def apply(self, data) -> np.ndarray:
        """Map input grey values to the normalised scale (float32)."""
        return ((np.asarray(data, dtype=np.float32) - self.low) / (self.high - self.low)).astype(
            np.float32, copy=False
        )

    def invert(self, data) -> np.ndarray:
        """Map normalised values back to input grey values (float32)."""
        return (np.asarray(data, dtype=np.float32) * (self.high - self.low) + self.low).astype(
            np.float32, copy=False
        )

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalisation:
        return cls(**{k: float(d[k]) for k in ("low", "high", "p_low", "p_high")})


def fit_normalisation(data, p_low: float = 0.5, p_high: float = 99.5, mask=None) -> Normalisation:
    """Fit a percentile normalisation to ``data``.

    Parameters
    ----------
    data : array-like
        Image or volume (numpy or lazy array).
    p_low, p_high : float
        Percentiles (0-100) mapped to 0 and 1.
    mask : array of bool, optional
        Only voxels where the mask is True are used (e.g. the sample, not the air).

    Returns
    -------
    Normalisation

    Raises
    ------
    InputError
        If the percentiles are not ordered, no voxels are selected, the data are
        not finite, or the data are constant (nothing to normalise).
    """
    if not 0 <= p_low < p_high <= 100:
        raise InputError(f"Percentiles must satisfy 0 <= low < high <= 100, got {p_low}, {p_high}.")
    shape = tuple(data.shape)
    step = max(1, int(np.ceil((np.prod(shape) / MAX_FIT_VOXELS) ** (1 / len(shape)))))
    sub = tuple(slice(None, None, step) for _ in shape)
    values = np.asarray(data[sub], dtype=np.float32)
    if mask is not None:
        values = values[np.asarray(mask)[sub]]
    if values.size == 0:
        raise InputError("No voxels to fit the normalisation on: the mask is empty.")
    if not np.isfinite(values).all():
        raise InputError("The volume has NaN or infinite values; replace them before normalising.")
    low, high = np.percentile(values, [p_low, p_high])
    if not high > low:
        raise InputError(
            f"The volume is constant between the {p_low} and {p_high} percentiles "
            f"(value {low:g}): there is no contrast to normalise. Check that the right "
            "file or region was chosen."
        )
    return Normalisation(float(low), float(high), float(p_low), float(p_high))
