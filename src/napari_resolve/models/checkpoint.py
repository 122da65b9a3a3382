"""Model files: everything needed to use a trained model without its training data.

A checkpoint is a ``torch.save`` of plain Python values and tensors (so it loads
with ``weights_only=True``, which cannot execute code from a file someone sent):

``format``/``version``, ``architecture`` and ``config`` (rebuild the network),
``state_dict``, the input and target :class:`~napari_resolve.normalisation.Normalisation`,
LRES and HRES voxel sizes, the registration (phase of the HRES grid), the
training settings and history, the iteration and validation score it was taken
at, and (for resuming) the optimiser and schedule state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_resolve.errors import FileFormatError, InputError
from napari_resolve.learn.normalisation import Normalisation

FORMAT = "napari-resolve-model"
VERSION = 1


@dataclass
class Checkpoint:
    """A trained model and its context.

    Attributes
    ----------
    architecture : str
        Registry name of the network.
    config : dict
        Its settings (see :func:`napari_resolve.models.build_model`).
    state_dict : dict
        Network weights (CPU tensors).
    norm_in, norm_out : Normalisation
        Normalisation of the upsampled LRES input and of the HRES target; the
        prediction is mapped back to HRES grey values with ``norm_out``.
    lres_voxel_um, hres_voxel_um : tuple of float
        Voxel sizes the model was trained for (um).
    registration : dict or None
        The registration of the training pair (:meth:`Registration.to_dict`);
        its ``offset_um`` fixes the phase of the HRES grid.
    train_config : dict
        The training settings.
    history : list of dict
        Training records (iteration, loss, validation scores, seconds).
    iteration : int
        Training iterations done when these weights were taken.
    val_psnr : float or None
        Validation PSNR (dB, normalised target units) of these weights.
    optimizer_state, scheduler_state : dict or None
        For resuming training.
    extra : dict
        Anything else worth keeping (e.g. the ROI, the data files).
    """

    architecture: str
    config: dict[str, Any]
    state_dict: dict[str, Any]
    norm_in: Normalisation
    norm_out: Normalisation
    lres_voxel_um: tuple[float, ...]
    hres_voxel_um: tuple[float, ...]
    registration: dict | None = None
    train_config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    iteration: int = 0
    val_psnr: float | None = None
    optimizer_state: dict | None = None
    scheduler_state: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> tuple[float, ...]:
        """LRES / HRES voxel size per axis."""
        return tuple(lv / hv for lv, hv in zip(self.lres_voxel_um, self.hres_voxel_um))

    @property
    def phase_origin_um(self) -> tuple[float, ...] | None:
        """A voxel centre of the training HRES grid (LRES frame), or None."""
        reg = self.registration
        return tuple(reg["offset_um"]) if reg else None

    def build(self):
        """The network with these weights, in eval mode on the CPU.

        Raises
        ------
        FileFormatError
            If the weights do not fit the architecture (a damaged or edited file).
        """
        from napari_resolve.models import build_model

        try:
            model = build_model(self.architecture, **self.config)
        except InputError as exc:
            raise FileFormatError(f"The model file's architecture cannot be rebuilt: {exc}") from exc
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2])
            raise FileFormatError(
                f"The weights in the model file do not fit a {self.architecture} network ({first}). "
                "The file is damaged or was edited; train the model again."
            ) from exc
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        """The plain dict written to disk."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "architecture": self.architecture,
            "config": dict(self.config),
            "state_dict": self.state_dict,
            "norm_in": self.norm_in.to_dict(),
            "norm_out": self.norm_out.to_dict(),
            "lres_voxel_um": list(self.lres_voxel_um),
            "hres_voxel_um": list(self.hres_voxel_um),
            "registration": self.registration,
            "train_config": dict(self.train_config),
            "history": list(self.history),
            "iteration": int(self.iteration),
            "val_psnr": None if self.val_psnr is None else float(self.val_psnr),
            "optimizer_state": self.optimizer_state,
            "scheduler_state": self.scheduler_state,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Any, source: str = "the model file") -> Checkpoint:
        """Rebuild from :meth:`to_dict` output, checking it is one."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise FileFormatError(
                f"{source} is not a napari-resolve model (no {FORMAT!r} record). "
                "Give a .pt file written by napari-resolve train."
            )
        if int(d.get("version", 0)) > VERSION:
            raise FileFormatError(
                f"{source} was written by a newer napari-resolve (model format {d.get('version')}); "
                "upgrade napari-resolve to read it."
            )
        try:
            return cls(
                architecture=str(d["architecture"]),
                config=dict(d["config"]),
                state_dict=d["state_dict"],
                norm_in=Normalisation.from_dict(d["norm_in"]),
                norm_out=Normalisation.from_dict(d["norm_out"]),
                lres_voxel_um=tuple(float(v) for v in d["lres_voxel_um"]),
                hres_voxel_um=tuple(float(v) for v in d["hres_voxel_um"]),
                registration=d.get("registration"),
                train_config=dict(d.get("train_config") or {}),
                history=list(d.get("history") or []),
                iteration=int(d.get("iteration", 0)),
                val_psnr=d.get("val_psnr"),
                optimizer_state=d.get("optimizer_state"),
                scheduler_state=d.get("scheduler_state"),
                extra=dict(d.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(f"{source} is damaged: its record lacks or garbles {exc}. Train the model again.") from exc


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a checkpoint atomically (a temporary name, renamed when complete).

    Raises
    ------
    FileFormatError
        If ``path`` exists and ``overwrite`` is False, or cannot be written.
    """
    import torch

    from napari_resolve.io import atomic_path

    path = Path(path)
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            torch.save(ckpt.to_dict(), tmp)
    except OSError as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise FileFormatError(f"Cannot write the model to {path}: {exc}.") from exc
    return path


def load_checkpoint(path: str | os.PathLike, *, architecture: str | None = None) -> Checkpoint:
    """Read a model file.

    Parameters
    ----------
    path : path-like
        A ``.pt`` file written by :func:`save_checkpoint`.
    architecture : str, optional
        Require this architecture (e.g. when resuming a training of that model).

    Raises
    ------
    FileFormatError
        If the file is missing, not a napari-resolve model, damaged, or of
        another architecture than required.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"Model file {path} does not exist. Check the path, or train a model first.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load on junk raises almost anything (KeyError, EOFError...)
        first = (str(exc).splitlines() or ["no details"])[0][:160]
        raise FileFormatError(
            f"{path} cannot be read as a model file ({type(exc).__name__}: {first}). "
            "It is damaged, truncated or not a napari-resolve model; train the model again."
        ) from exc
    ckpt = Checkpoint.from_dict(data, source=str(path))
    if architecture is not None and ckpt.architecture != architecture:
        raise FileFormatError(
            f"{path} holds a {ckpt.architecture!r} model, not {architecture!r}. Choose the matching "
            f"--model ({ckpt.architecture}) or start a new training without --resume."
        )
    ckpt.build()  # fail now, with a clear message, if the weights do not fit
    return ckpt
