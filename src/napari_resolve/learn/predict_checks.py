"""What a prediction checks before it plans tiles: the model fits the LRES, the grid, the output file.

:func:`napari_resolve.learn.inference.plan_predict` runs these on the caller's
thread; the Preview-and-upscale widget and the command line call them to refuse
bad input at once (they are re-exported from :mod:`napari_resolve.learn.inference`).
"""

from __future__ import annotations

from pathlib import Path

from napari_resolve._text import format_um
from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import FileFormatError, InputError, ResolveError, VoxelSizeError
from napari_resolve.geometry.grid import Grid, check_roi, upscale_grid
from napari_resolve.io import check_output

#: Files a prediction can be streamed to: OME-TIFF or zarr.
OUTPUT_SUFFIXES = (".tif", ".tiff", ".zarr")



def check_lres_voxels(ckpt, lres_voxel: tuple[float, ...]) -> None:
    """Refuse an LRES whose voxel size differs by more than 1 % from the model's training LRES.

    Raises
    ------
    VoxelSizeError
        Saying both sizes and what to do.
    """
    trained = tuple(ckpt.lres_voxel_um)[-len(lres_voxel):]
    if any(abs(a / b - 1) > 0.01 for a, b in zip(lres_voxel, trained)):
        raise VoxelSizeError(
            f"This LRES has {format_um(lres_voxel)} voxels but the model was trained on {format_um(trained)} "
            "LRES voxels; it learned that resolution step only. Use an LRES scanned at the training voxel size, "
            "train a model on a pair at this voxel size, or correct {lres_voxel_um} if it is wrong.",
            parameters=("lres_voxel_um",),
        )


def _checkpoint(model):
    """A Checkpoint, or one loaded from a model file (FileFormatError if unusable)."""
    from napari_resolve.models.checkpoint import Checkpoint, load_checkpoint

    return model if isinstance(model, Checkpoint) else load_checkpoint(model)


def check_model_fits(ckpt, lres_shape, lres_voxel_um) -> tuple[float, ...]:
    """Refuse a model that cannot run on an LRES of this shape and voxel size.

    Parameters
    ----------
    ckpt : Checkpoint
    lres_shape : sequence of int
        The LRES shape (2D or 3D).
    lres_voxel_um : float or sequence of float
        Its voxel size (um).

    Returns
    -------
    tuple of float
        The LRES voxel size, one value per axis.

    Raises
    ------
    InputError
        If the LRES is not 2D or 3D, or the model was trained on data of another dimensionality.
    VoxelSizeError
        If the voxel size is missing, invalid or not the model's training LRES voxel size.
    """
    shape = tuple(lres_shape) if lres_shape is not None else None
    if shape is None or len(shape) not in (2, 3):
        raise InputError(f"The LRES must be a 2D image or a 3D volume, got shape {shape}.")
    ndim, trained = len(shape), len(ckpt.hres_voxel_um)
    if trained != ndim:
        raise InputError(
            f"The model was trained on {trained}D data; this LRES is {ndim}D. "
            f"Choose a {trained}D LRES, or train a model on {ndim}D data."
        )
    lv = voxel_tuple(lres_voxel_um, ndim, "LRES voxel size")
    check_lres_voxels(ckpt, lv)
    return lv


def output_grid(model, lres_shape, lres_voxel_um, roi=None) -> Grid:
    """The grid a prediction of ``roi`` would have (cheap: no network is built, no data read).

    Parameters
    ----------
    model : Checkpoint or path-like
    lres_shape : sequence of int
    lres_voxel_um : float or sequence of float
    roi : sequence of slice, optional
        LRES voxels (default all).

    Returns
    -------
    Grid
        HRES voxel size, in phase with the model's training grid (LRES frame).

    Raises
    ------
    InputError
        As :func:`check_model_fits`, or for an ROI outside the LRES.
    """
    ckpt = _checkpoint(model)
    lv = check_model_fits(ckpt, lres_shape, lres_voxel_um)
    roi = check_roi(roi, lres_shape, "the LRES (LRES voxels)")
    return upscale_grid(roi, lv, ckpt.hres_voxel_um, ckpt.phase_origin_um)


def _check_output(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise FileFormatError(
            f"{path.name}: the output ({{out_path}}) must be .tif (OME-TIFF) or .zarr.", parameters=("out_path",)
        )
    check_output(path, overwrite=overwrite, parameter="out_path")


def check_result_output(grid: Grid, out_path, overwrite: bool, memory_budget: int) -> Path | None:
    """The result's file (None: kept in memory, which must fit ``memory_budget`` bytes), checked before any work."""
    import numpy as np

    from napari_resolve._text import format_bytes, format_shape

    nbytes = int(np.prod(grid.shape)) * 4
    path = Path(out_path).expanduser() if out_path is not None else None
    if path is None and nbytes > memory_budget:
        raise ResolveError(
            f"The upscaled region would be {format_bytes(nbytes)} ({format_shape(grid.shape)} voxels), more than "
            f"the {format_bytes(memory_budget)} allowed in memory. Write it to a file ({{out_path}}: .zarr or "
            ".tif), which streams it slab by slab, or choose a smaller {roi}.",
            parameters=("out_path", "roi"),
        )
    if path is not None:
        _check_output(path, overwrite)
    return path


#: Samples a generative model may draw per voxel in one prediction.
MAX_SAMPLES = 64


def check_sampling(net, samples, steps, tta: bool) -> int:
    """Check a generative model's sampling settings and set its sampler steps; returns the samples (1 default).

    Raises
    ------
    InputError
        Samples or steps out of range, either given for a network that does not sample, or test-time
        augmentation asked of one that does (its samples give the spread instead).
    """
    from napari_resolve.learn.config import MAX_STEPS

    if not getattr(net, "generative", False):
        if samples not in (None, 1) or steps is not None:
            raise InputError(
                f"{{samples}} and {{steps}} apply to generative models (diffusion); this model is {net.name}, "
                "which predicts one result. Leave them unset.", parameters=("samples", "steps"))
        return 1
    if tta:
        raise InputError(
            "Test-time augmentation ({tta}) does not apply to a diffusion model: the spread of the error map "
            "comes from its samples. Set {samples} to 2 or more instead.", parameters=("tta", "samples"))
    n = 1 if samples is None else samples
    if not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise InputError(f"The {{samples}} must be a whole number from 1 to {MAX_SAMPLES}, got {samples!r}.",
                         parameters=("samples",))
    if steps is not None:
        if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise InputError(f"The sampler {{steps}} must be a whole number from 1 to {MAX_STEPS}, got {steps!r}.",
                             parameters=("steps",))
        net.steps = steps
    return n


def check_finite(pred, start, amp, device: str, inputs=()):
    """Refuse a tile's prediction with NaN or infinite voxels (``start``: its first output voxel, z y x).

    ``load_checkpoint`` refuses non-finite weights, so the cause is the tile's input
    (an LRES with NaN or infinite voxels, which a streamed prediction reads tile by
    tile), an overflow (float16 autocast on a GPU) or a diverged model; the message
    says which, and suggests the CPU only where the prediction did not run there.
    Never written silently.

    Parameters
    ----------
    pred : ndarray
        The tile's prediction.
    start : tuple of int
        Its first output voxel (z, y, x).
    amp : dtype or None
        The autocast dtype it ran with (None: full precision).
    device : str
        Where it ran, as :func:`~napari_resolve.devices.describe_device` says it.
    inputs : sequence of arrays or tensors
        The tile's network input (the LRES block, as the network takes it).

    Raises
    ------
    InputError
        When the tile's input held NaN or infinite values.
    ResolveError
        When the model made them from a finite input.
    """
    import numpy as np

    if np.isfinite(pred).all():
        return pred
    bad = int((~np.isfinite(pred)).sum())
    where = f"the tile at output voxels {tuple(int(v) for v in start)}"
    held = sum(_non_finite(x) for x in inputs)
    if held:
        raise InputError(
            f"The LRES holds NaN or infinite voxels: the input of {where} has {held} such value"
            f"{'' if held == 1 else 's'}, so the "
            f"prediction there has {bad}; nothing was written. Replace them in the LRES (e.g. by their "
            "neighbours' mean grey value) and run again."
        )
    if amp is None and str(device).startswith("cpu"):
        raise ResolveError(
            f"The model predicted {bad} NaN or infinite voxels in {where} from a finite LRES, on {device} at "
            "full precision; nothing was written. The model itself is broken (a diverged training, or an output "
            "range beyond float32): train it again.")
    precision = f"{str(amp).removeprefix('torch.')} mixed precision on " if amp is not None else ""
    raise ResolveError(
        f"The model predicted {bad} NaN or infinite voxels in {where} from a finite LRES "
        f"({precision}{device}); nothing was written. Run on the CPU (set {{device}} to cpu), or train the "
        "model again if it does the same there.",
        parameters=("device",),
    )


def _non_finite(x) -> int:
    """How many NaN or infinite values an array or tensor of floats holds (0 for integers)."""
    import numpy as np

    a = np.asarray(x.detach().float().cpu() if hasattr(x, "detach") and x.is_floating_point() else x)
    return int((~np.isfinite(a)).sum()) if np.issubdtype(a.dtype, np.floating) else 0


def check_std_output(path, samples: int, overwrite: bool, others) -> Path | None:
    """Check where a diffusion model's per-voxel sample standard deviation goes (None: nowhere).

    Raises
    ------
    InputError
        Fewer than 2 samples, or the same file as another output.
    FileFormatError
        Like any output (:func:`_check_output`).
    """
    if path is None:
        return None
    if samples < 2:
        raise InputError(
            "The samples' standard deviation ({std_path}) needs 2 or more {samples} of a diffusion model.",
            parameters=("std_path", "samples"))
    out = Path(path).expanduser()
    if any(o is not None and Path(o).expanduser().resolve() == out.resolve() for o in others):
        raise InputError("The samples' standard deviation ({std_path}) must be a file of its own.",
                         parameters=("std_path",))
    check_named_output(out, overwrite, "std_path")
    return out


def check_named_output(path: Path, overwrite: bool, parameter: str) -> None:
    """:func:`_check_output` for an output beside the result, its messages naming ``parameter``."""
    try:
        _check_output(path, overwrite)
    except ResolveError as exc:
        names = tuple(parameter if p == "out_path" else p for p in exc.parameters)
        raise type(exc)(exc.template.replace("{out_path}", "{" + parameter + "}"), parameters=names) from None
