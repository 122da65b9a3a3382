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
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_resolve._validate import voxel_ratio, voxel_tuple
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

        The network is first laid out on torch's ``meta`` device (no memory), so a
        file whose settings describe a network its weights do not fill (say a
        width of a million channels in a small file) is refused before anything
        is allocated.

        Raises
        ------
        FileFormatError
            If the weights do not fit the architecture (a damaged or edited file),
            or hold NaN or infinite values.
        """
        import torch

        from napari_resolve.models import build_model

        try:
            with torch.device("meta"):
                skeleton = build_model(self.architecture, **self.config)
        except (InputError, TypeError, ValueError) as exc:
            raise FileFormatError(f"The model file's architecture cannot be rebuilt: {exc}") from exc
        self._check_weights(skeleton.state_dict())
        model = build_model(self.architecture, **self.config)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise self._misfit(" ".join(line.strip() for line in str(exc).strip().splitlines()[:2])) from exc
        return model.eval()

    def _check_weights(self, expected: dict[str, Any]) -> None:
        """Refuse weights that do not match the laid-out network, or are not finite."""
        import torch

        weights = self.state_dict
        if not isinstance(weights, dict):
            raise self._misfit(f"the weights are a {type(weights).__name__}, not a table of tensors")
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        if missing or unexpected:
            parts = [f"missing {', '.join(missing[:3])}" if missing else "",
                     f"unexpected {', '.join(unexpected[:3])}" if unexpected else ""]
            raise self._misfit("; ".join(p for p in parts if p))
        for key, ref in expected.items():
            value = weights[key]
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(ref.shape):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise self._misfit(f"{key} is {shape}, the network needs {tuple(ref.shape)}")
        bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise FileFormatError(
                f"The model file's weights hold NaN or infinite values ({', '.join(bad[:3])}"
                f"{' ...' if len(bad) > 3 else ''}): the training diverged or the file was damaged, and "
                "every prediction would be NaN. Train the model again (a lower learning rate helps "
                "when training diverges)."
            )

    def _misfit(self, detail: str) -> FileFormatError:
        return FileFormatError(
            f"The weights in the model file do not fit a {self.architecture} network ({detail}). "
            "The file is damaged or was edited; train the model again."
        )

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
            ckpt = cls(
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
            raise FileFormatError(
                f"{source} is damaged: its record lacks or garbles {exc}. Train the model again."
            ) from exc
        ckpt._check_voxels(source)
        return ckpt

    def _check_voxels(self, source: str) -> None:
        """Refuse voxel sizes a prediction could not use (zero, negative, swapped, of different lengths)."""
        lv, hv = self.lres_voxel_um, self.hres_voxel_um
        try:
            if len(lv) != len(hv) or len(lv) not in (2, 3):
                raise InputError(f"it gives {len(lv)} LRES and {len(hv)} HRES voxel sizes")
            voxel_ratio(voxel_tuple(lv, len(lv), "LRES voxel size"), voxel_tuple(hv, len(hv), "HRES voxel size"))
        except InputError as exc:
            raise FileFormatError(
                f"{source} records voxel sizes a model cannot have ({exc.render()}). The file is damaged "
                "or was edited; train the model again."
            ) from exc


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike, *, overwrite: bool = False,
                    parameter: str = "out_path") -> Path:
    """Write a checkpoint atomically (a temporary name, renamed when complete).

    Parameters
    ----------
    ckpt : Checkpoint
        The model.
    path : path-like
        The model file.
    overwrite : bool
        Replace an existing file.
    parameter : str
        The caller's name of the output parameter, named in the messages.

    Raises
    ------
    FileFormatError
        If ``path`` exists and ``overwrite`` is False, or cannot be written (the
        reason, e.g. the disk is full or the file-size limit was reached; nothing
        is left under ``path``).
    """
    import torch

    from napari_resolve.io import atomic_path

    path = Path(path)
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            torch.save(ckpt.to_dict(), tmp)
    except FileFormatError:
        raise
    except (OSError, RuntimeError) as exc:  # torch reports a failed write as a RuntimeError
        raise FileFormatError(
            f"The model could not be written to {path}: {_write_failure(exc)}. Nothing was saved under that "
            f"name; free space or raise the limit, or choose another {{{parameter}}}.",
            parameters=(parameter,),
        ) from None
    return path


def _write_failure(exc: BaseException) -> str:
    """Why a write failed, in words: the system's reason, or what torch's 'unexpected pos' means."""
    import re

    from napari_resolve._text import format_bytes
    from napari_resolve.outputs import file_size_limit

    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if m := re.search(r"strerror: ([^\n]+)", str(exc)):
        return m[1].strip().rstrip(".")
    limit = file_size_limit()
    if limit is not None:
        return (f"the write stopped part way, at this process's file-size limit (ulimit -f: "
                f"{format_bytes(limit)}) or on a full disk")
    return "the write stopped part way (is the disk full?)"


def estimated_size(net) -> int:
    """About how many bytes a training's model file of ``net`` takes: its weights and Adam's two
    moments of every trained parameter, plus 64 KiB of settings and history."""
    weights = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    moments = 2 * sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad)
    return weights + moments + 2**16


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
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # junk bytes fail the same unpickler ("Unsupported operand")
            raise FileFormatError(
                f"{path} cannot be read as a model file (its bytes are not a saved PyTorch record). It is "
                "damaged, truncated or not a napari-resolve model; train the model again."
            ) from exc
        # weights_only refuses anything but tensors and plain values: the file names Python objects or
        # functions (a pickle "global"), which could run code if loaded. A safety refusal, not damage.
        raise FileFormatError(
            f"{path} holds Python objects or code besides tensors and plain values, which napari-resolve "
            "refuses to load for safety (loading them could run code on this computer). A trusted model "
            "file is one written by napari-resolve itself (train, or save_checkpoint); if you made this "
            "file, save it again with save_checkpoint."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - torch.load on junk raises almost anything (KeyError, EOFError...)
        raise FileFormatError(
            f"{path} cannot be read as a model file ({type(exc).__name__}: {_first_sentence(exc)}). "
            "It is damaged, truncated or not a napari-resolve model; train the model again."
        ) from exc
    ckpt = Checkpoint.from_dict(data, source=str(path))
    if architecture is not None and ckpt.architecture != architecture:
        raise FileFormatError(
            f"{path} holds a {ckpt.architecture!r} model, not {architecture!r}. Choose the matching "
            f"{{model}} ({ckpt.architecture}), or start a new training instead of resuming ({{resume}}).",
            parameters=("model", "resume"),
        )
    ckpt.build()  # fail now, with a clear message, if the weights do not fit
    return ckpt


def _first_sentence(exc: BaseException, limit: int = 200) -> str:
    """The first sentence of an exception's message, cut at a word, never mid-sentence without saying so."""
    text = " ".join(str(exc).split()) or "no details"
    end = text.find(". ")
    text = text if end < 0 else text[:end]
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return text.rstrip(".")
