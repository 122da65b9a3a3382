"""Calibrating a trained model's error maps on its pair (:mod:`napari_resolve.learn.uncertainty`).

At the end of a training on a registered pair, :func:`calibrate_model` fits the
LRES imaging model on the training ROI, predicts the validation block (which the
network never trained on) with the raw error-map signals, and fits the
conformal calibrations with and without test-time augmentation; the training
stores them in the model file.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from napari_resolve.geometry.grid import Grid, resample_lres
from napari_resolve.learn.uncertainty import LRES_ORDER, ImagingModel, fit_calibration

#: The signals each stored map combines, chosen by measurement (benchmarks/trust.py, docs/learning.md): on an
#: unseen foam the edge signal ranked the errors inside the sample the wrong way round (Spearman -0.25) and
#: pulled the combined map's ranking down from 0.50 to 0.27, so it is left out.
MAP_SIGNALS = {"plain": ("consistency",), "tta": ("consistency", "spread")}
#: A diffusion model's samples per voxel whose spread its "tta" map is calibrated with (the map bounds the
#: error of this many samples' mean; other counts change the spread's scale by about sqrt((N - 1) / N)).
CALIBRATION_SAMPLES = 4


def is_generative(ckpt) -> bool:
    """Whether a model's predictions are samples (its spread signal is then the samples' spread)."""
    from napari_resolve.models import MODELS

    return bool(getattr(MODELS.get(ckpt.architecture), "generative", False))


def _image_grid(grid3: Grid, ndim: int) -> Grid:
    return grid3 if ndim == 3 else Grid(grid3.shape[1:], grid3.voxel_um[1:], grid3.origin_um[1:])


def validation_block(pair) -> tuple[np.ndarray, Grid]:
    """A training pair's validation block: the HRES (grey values) and its grid, both of the image's dimensionality."""
    box = [slice(0, n) for n in pair.target.shape]
    box[pair.val_axis] = slice(pair.val_start, pair.target.shape[pair.val_axis])
    hres = pair.norm_out.invert(pair.target[tuple(box)])
    return (hres if pair.ndim == 3 else hres[0]), _image_grid(pair.grid.sub(tuple(box)), pair.ndim)


def fit_imaging(lres, lres_voxel_um, hres, grid: Grid) -> ImagingModel:
    """The LRES imaging model from the registered HRES on ``grid``: a Gaussian PSF, gain and offset."""
    import warnings

    from napari_resolve.errors import ResolveWarning
    from napari_resolve.measure.baselines import estimate_psf_sigma

    up = resample_lres(lres, lres_voxel_um, grid, order=LRES_ORDER, halo=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolveWarning)  # a PSF at the search limit is still the best fit
        fit = estimate_psf_sigma(up, hres, grid.voxel_um)
    return ImagingModel(float(fit.sigma_um), float(fit.gain), float(fit.offset))


def validation_signals(ckpt, lres, lres_voxel_um, hres, grid: Grid, imaging: ImagingModel, *, tta: bool,
                       device="cpu"):
    """The raw signals and the true error of a model's prediction on an HRES block (grid of the image's ndim).

    Returns
    -------
    signals : dict of str to ndarray
    error : ndarray
        Prediction minus ``hres`` (grey values).
    """
    from napari_resolve.learn.inference import run_predict

    # A diffusion model's spread is that of its samples, not of flipped inputs.
    sampling = {"samples": CALIBRATION_SAMPLES if tta else 1, "tta": False} if is_generative(ckpt) else {"tta": tta}
    res = run_predict(ckpt, lres, lres_voxel_um, grid=grid, device=device, uncertainty=True,
                      error_imaging=imaging, keep_signals=True, **sampling)
    shape = res.data.shape
    return {k: v.reshape(shape) for k, v in res.signals.items()}, res.data - hres


def roi_imaging_inputs(pair) -> tuple[np.ndarray, Grid]:
    """A training pair's whole HRES ROI (grey values) and its grid, of the image's dimensionality."""
    roi_hres = pair.norm_out.invert(pair.target)
    return (roi_hres if pair.ndim == 3 else roi_hres[0]), _image_grid(pair.grid, pair.ndim)


def calibrate_model(ckpt, lres, lres_voxel_um, pair, device="cpu", imaging: ImagingModel | None = None) -> dict:
    """Fit the error-map calibrations of a trained model on its pair's validation block.

    The PSF is fitted on the whole training ROI (the imaging does not depend on the
    network); the calibrations, with and without test-time augmentation, on the
    validation block only, which the network never trained on.

    Returns
    -------
    dict
        ``{"plain": ..., "tta": ...}`` :meth:`Calibration.to_dict` records, for ``ckpt.extra["error_map"]``.
    """
    if imaging is None:
        imaging = fit_imaging(lres, lres_voxel_um, *roi_imaging_inputs(pair))
    hres, grid = validation_block(pair)
    record, generative = {}, is_generative(ckpt)
    for key, tta in (("plain", False), ("tta", True)):
        signals, error = validation_signals(ckpt, lres, lres_voxel_um, hres, grid, imaging, tta=tta, device=device)
        used = {k: signals[k] for k in MAP_SIGNALS[key]}
        calibration = fit_calibration(used, error, imaging)
        if generative and tta:
            calibration = replace(calibration, samples=CALIBRATION_SAMPLES)
        record[key] = calibration.to_dict()
    return record
