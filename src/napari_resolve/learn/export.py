"""A trained model for other tools: TorchScript, ONNX where its operators allow, and a JSON sidecar.

:func:`export_model` writes the network (without napari-resolve) as a TorchScript
file that ``torch.jit.load`` reads, optionally an ONNX file (``torch.onnx.export``,
when the ``onnx`` and ``onnxscript`` packages are installed), and beside the
TorchScript file a JSON sidecar (``MODEL.torchscript.json``) saying how to feed it:
the input form (shapes, the slices a 2.5D network consumes, the input grid), the
normalisations to apply before and after, the voxel sizes and grid phase of the
training, the receptive radius and size multiple a tiling needs. Before anything is
kept, the exported files are read back and run on an example input of the model's
own form; they must give the PyTorch model's output to :data:`TOLERANCE` (1e-5).

The two input forms (:mod:`napari_resolve.models.base`):

* ``input_grid = "hres"``: one tensor ``(batch, z, y, x)``, the LRES interpolated
  (cubic) onto the output grid and normalised; out come the central
  ``z - 2 * trim_z`` slices. The network is traced (``torch.jit.trace``).
* ``input_grid = "lres"`` (the default ``lres3d``): the normalised LRES block
  ``(batch, z, y, x)`` and the output voxels' positions along z, y and x (LRES
  voxels relative to the block's voxel 0, as the tiling computes them,
  :func:`napari_resolve.learn.lres_pairs.tile_block`). Its forward cuts its
  interpolations to the LRES voxels the positions read, sizes that tracing would
  freeze, so it is exported as an equivalent TorchScript program
  (:class:`Lres3dExport`: the same layers, interpolations by index gathers) that
  takes any block size and any positions.

Generative networks (diffusion: a sampling loop with noise drawn per output voxel)
and networks on the LRES grid other than ``lres3d`` are refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_resolve.errors import InputError, ResolveError, ResolveWarning
from napari_resolve.io import atomic_path, check_output
from napari_resolve.learn.predict_checks import _checkpoint
from napari_resolve.models.interpolate import KEYS_A

__all__ = ["ExportResult", "Lres3dExport", "export_model", "example_inputs", "sidecar_path"]

FORMAT = "napari-resolve-export"
VERSION = 1
#: Largest difference allowed between an exported file and the PyTorch model, normalised grey values: absolute
#: for outputs within +-1 (a trained model's), else relative to the largest output value (float32 sums of another
#: order differ by that share, as for a random network whose outputs reach 100).
TOLERANCE = 1e-5


def allowed(expected) -> float:
    """The difference :data:`TOLERANCE` allows from the model's output ``expected``."""
    return TOLERANCE * max(1.0, float(np.abs(np.asarray(expected, np.float64)).max()))
#: The ONNX operator set written.
ONNX_OPSET = 18


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a TorchScript file: ``MODEL.torchscript.pt`` -> ``MODEL.torchscript.json``."""
    return Path(path).with_suffix(".json")


@dataclass
class ExportResult:
    """What :func:`export_model` wrote and measured.

    Attributes
    ----------
    torchscript, sidecar : Path
        The TorchScript file and its JSON sidecar.
    onnx : Path or None
        The ONNX file, when asked for and possible.
    max_abs_diff : dict
        Per format (``"torchscript"``, ``"onnx"``), the largest difference from the PyTorch model on the
        example input (normalised grey values); ONNX only when onnxruntime could run it.
    notes : list of str
        What was skipped and why (also warned).
    record : dict
        The sidecar's content.
    """

    torchscript: Path
    sidecar: Path
    onnx: Path | None
    max_abs_diff: dict
    notes: list[str] = field(default_factory=list)
    record: dict = field(default_factory=dict, repr=False)

    def summary(self) -> dict:
        """What ``napari-resolve export`` prints."""
        return {
            "torchscript": str(self.torchscript),
            "sidecar": str(self.sidecar),
            "onnx": None if self.onnx is None else str(self.onnx),
            "architecture": self.record.get("architecture"),
            "input_grid": self.record.get("input_grid"),
            "max_abs_diff": {k: float(v) for k, v in self.max_abs_diff.items()},
            "dynamic_shapes": self.record.get("dynamic_shapes"),
            "onnx_dynamic_shapes": self.record.get("onnx_dynamic_shapes"),
            **({"notes": self.notes} if self.notes else {}),
        }


# ----------------------------------------------------------------------------- lres3d as a TorchScript program


def _gather_axis(x: torch.Tensor, dim: int, pos: torch.Tensor, cubic: bool, a: float = KEYS_A) -> torch.Tensor:
    """Linear or cubic (Keys) interpolation of ``x`` along ``dim`` at ``pos`` (edge-clamped), by index gathers.

    The same values as :func:`napari_resolve.models.interpolate.matrix_axis` (which sums the same
    clamped neighbours through a band matrix), with no size taken from the positions' values. ``a``: Keys'
    parameter (an argument, as TorchScript reads no module constants).
    """
    n = x.size(dim)
    f = torch.floor(pos)
    t = (pos - f).to(x.dtype)
    i0 = f.to(torch.long)
    shape = [1] * x.dim()
    shape[dim] = pos.size(0)
    if cubic:
        t2 = t * t
        t3 = t2 * t
        weights = [a * (t3 - 2 * t2 + t), (a + 2) * t3 - (a + 3) * t2 + 1,
                   -(a + 2) * t3 + (2 * a + 3) * t2 - a * t, -a * (t3 - t2)]
        offsets = [-1, 0, 1, 2]
    else:
        weights = [1 - t, t]
        offsets = [0, 1]
    out = x.index_select(dim, (i0 + offsets[0]).clamp(0, n - 1)) * weights[0].reshape(shape)
    for k in range(1, len(offsets)):
        out = out + x.index_select(dim, (i0 + offsets[k]).clamp(0, n - 1)) * weights[k].reshape(shape)
    return out


def _extend(pos: torch.Tensor, k: int) -> torch.Tensor:
    """Positions continued by ``k`` steps of their own spacing on both sides (as lres3d's refinement reads)."""
    if pos.size(0) > 1:
        step = pos[1:2] - pos[:1]
    else:
        step = torch.ones_like(pos[:1])
    ramp = torch.arange(1, k + 1, dtype=pos.dtype, device=pos.device)
    return torch.cat([pos[:1] - step * ramp.flip(0), pos, pos[-1:] + step * ramp])


def _encoding(weights: torch.Tensor, pos: torch.Tensor, axis: int) -> torch.Tensor:
    """The learned sub-voxel position term of one axis, shaped to broadcast along it (channels last)."""
    angle = 2 * math.pi * pos
    enc = torch.stack([torch.sin(angle), torch.cos(angle)], -1) @ weights
    shape = [1, 1, 1, 1, enc.size(-1)]
    shape[1 + axis] = enc.size(0)
    return enc.reshape(shape)


class Lres3dExport(nn.Module):
    """:class:`~napari_resolve.models.lres3d.LRES3D`'s forward as a TorchScript-able program, sharing its layers.

    ``forward(block, pz, py, px)``: a normalised LRES block ``(batch, z, y, x)`` and the output positions
    per axis (``(n,)`` each, LRES voxels relative to the block's voxel 0) -> ``(batch, nz, ny, nx)``.
    """

    def __init__(self, net):
        super().__init__()
        self.inp, self.body, self.mid, self.project = net.inp, net.body, net.mid, net.project
        self.position, self.base_weight = net.position, net.base_weight
        self.hidden1, self.out = net.hidden1, net.out
        self.reach = int(net.refine_reach)
        self.keys_a = float(KEYS_A)
        self.refine_a = net.refine_a if self.reach else nn.Identity()
        self.refine_b = net.refine_b if self.reach else nn.Identity()

    def forward(self, block: torch.Tensor, pz: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
        x = block[:, None]
        f0 = self.inp(x)
        f = self.mid(self.body(f0)) + f0
        g = self.project(F.leaky_relu(f, 0.1)) + x * self.base_weight.view(1, -1, 1, 1, 1)
        k = self.reach
        ey, ex = py, px
        if k > 0:
            ey, ex = _extend(py, k), _extend(px, k)
        h = g.permute(0, 2, 3, 4, 1)
        h = _gather_axis(h, 3, ex, False) + _encoding(self.position[2], ex, 2)
        h = _gather_axis(h, 2, ey, False) + _encoding(self.position[1], ey, 1)
        h = F.leaky_relu(_gather_axis(h, 1, pz, False) + _encoding(self.position[0], pz, 0), 0.1)
        c = h.size(-1)
        flat = F.leaky_relu(F.linear(h, self.hidden1.weight.view(c, c), self.hidden1.bias), 0.1)
        residual = F.linear(flat, self.out.weight.view(1, c), self.out.bias)[..., 0]
        if k > 0:
            refined = self.refine_b(F.leaky_relu(self.refine_a(flat.permute(0, 4, 1, 2, 3)), 0.1))
            residual = residual[:, :, k:-k, k:-k] + refined[:, 0]
        a = self.keys_a
        base = _gather_axis(_gather_axis(_gather_axis(block, 3, px, True, a), 2, py, True, a), 1, pz, True, a)
        return base + residual


# ----------------------------------------------------------------------------- example inputs


def example_inputs(ckpt, net, *, larger: bool = False, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """An input of the model's own form (normalised values in [0, 1)): what the exported file is checked on.

    ``larger``: another size (and other positions), to check that the export is not tied to one shape.
    """
    g = torch.Generator().manual_seed(seed + int(larger))
    ndim = len(ckpt.hres_voxel_um)
    if net.input_grid == "lres":
        from napari_resolve.geometry.grid import upscale_grid
        from napari_resolve.learn.lres_pairs import positions

        n = 12 if larger else 10
        shape = (n,) * ndim
        roi = tuple(slice(3, n - 3 + int(larger)) for _ in shape)
        grid = upscale_grid(roi, ckpt.lres_voxel_um, ckpt.hres_voxel_um, ckpt.phase_origin_um)
        pos = [torch.from_numpy(positions(o, v, k, lv, 0).astype(np.float32))
               for o, v, k, lv in zip(grid.origin_um, grid.voxel_um, grid.shape, ckpt.lres_voxel_um)]
        if ndim == 2:  # a 2D image is a one-slice volume
            shape, pos = (1, *shape), [torch.zeros(1), *pos]
        return (torch.rand((1, *shape), generator=g), *pos)
    mz, my, mx = net.size_multiple
    yx = [-(-(40 if larger else 32) // m) * m for m in (my, mx)]
    if ndim == 2:
        z = 1 + 2 * net.trim_z
    elif net.volumetric:
        z = 2 * net.trim_z + -(-(10 if larger else 8) // mz) * mz
    else:
        z = 2 * net.trim_z + (3 if larger else 2)
    return (torch.rand((1, z, *yx), generator=g),)


def _reference(net, args) -> torch.Tensor:
    """The PyTorch model's output for an example input."""
    with torch.inference_mode():
        if net.input_grid == "lres":
            return net(args[0], tuple(args[1:])).float()
        return net(*args).float()


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    return float(np.abs(a - b).max())


# ----------------------------------------------------------------------------- export


def _exportable(ckpt, net) -> nn.Module:
    """The module to export, or a refusal naming why."""
    from napari_resolve.models.lres3d import LRES3D

    if getattr(net, "generative", False):
        raise InputError(
            f"A {ckpt.architecture} model cannot be exported: it samples its output in a loop of many network "
            "steps with noise drawn per output voxel, which TorchScript and ONNX do not describe. Export a model "
            "that predicts its output in one pass.")
    if net.input_grid == "lres":
        if not isinstance(net, LRES3D):
            raise InputError(
                f"A {ckpt.architecture} model cannot be exported: it works on the LRES grid with output positions, "
                "and only lres3d has an export program for that form.")
        return Lres3dExport(net).eval()
    return net


def _to_torchscript(module: nn.Module, net, args) -> torch.jit.ScriptModule:
    """Script the lres3d program; trace the others on the example input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, and tracing is chatty
        try:
            if isinstance(module, Lres3dExport):
                return torch.jit.script(module)
            with torch.no_grad():
                return torch.jit.trace(module, args, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - tracing fails with almost any error type
            raise InputError(
                f"This {net.name} model cannot be exported to TorchScript: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}.") from exc


def _onnx(module, args, names, path: Path, dynamic: bool) -> str | None:
    """Write ONNX to ``path`` (every axis of every input free with ``dynamic``); returns why it could not."""
    from torch.export import Dim

    shapes = tuple({i: Dim.AUTO for i in range(a.ndim)} for a in args) if dynamic else None
    try:
        # The exporter reports its steps on stdout, which is the command line's JSON result.
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), input_names=list(names), output_names=["output"],
                              opset_version=ONNX_OPSET, dynamo=True, external_data=False, verbose=False,
                              dynamic_shapes=shapes)
    except Exception as exc:  # noqa: BLE001 - the exporter reports unsupported operators with many error types
        return (f"ONNX was skipped: the exporter could not express this network ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]}); the TorchScript file was written.")
    return None


def _run_onnx(path: Path, names, args) -> np.ndarray | None:
    """The ONNX file's output for ``args`` (None without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {n: a.numpy() for n, a in zip(names, args)})[0]


def _onnx_checked(module, names, checks, path: Path, overwrite: bool, stack: ExitStack, diffs: dict):
    """Write the ONNX file (kept with the others when ``stack`` closes) if it can be and reproduces the model.

    ``checks``: (input, the model's output) pairs, the example first. The file is exported with free input
    shapes where the exporter manages it and onnxruntime confirms it on every check, else with the example's.

    Returns
    -------
    why : str or None
        Why it was skipped (None: written).
    dynamic : bool or None
        Whether it takes other input shapes (None: not checked, no onnxruntime).
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return ("ONNX was skipped: the onnx and onnxscript packages are not installed (pip install onnx onnxscript "
                "onnxruntime); the TorchScript file was written."), None
    private = path.with_name(f".{path.name}.export-{os.getpid()}")
    args = checks[0][0]
    try:
        why = None
        for dynamic in (True, False):
            why = _onnx(module, args, names, private, dynamic)
            if why is not None:
                continue
            results = [_run_onnx(private, names, a) for a, _ in (checks if dynamic else checks[:1])]
            if results[0] is None:  # no onnxruntime: keep the static file, unchecked
                if dynamic:
                    continue
                break
            worst = max(_max_diff(r, e) for r, (_, e) in zip(results, checks))
            if all(_max_diff(r, e) <= allowed(e) for r, (_, e) in zip(results, checks)):
                diffs["onnx"] = _max_diff(results[0], checks[0][1])
                break
            why = (f"ONNX was skipped: the exported file differs from the model by {worst:.2g} (more than "
                   f"{allowed(checks[0][1]):.2g}); the TorchScript file was written.")
        if why is not None:
            return why, None
        os.replace(private, stack.enter_context(atomic_path(path, overwrite=overwrite)))
        return None, (dynamic if "onnx" in diffs else None)
    except Exception as exc:  # noqa: BLE001 - onnxruntime refuses a file it cannot run with many error types
        return (f"ONNX was skipped: onnxruntime could not run the exported file ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]}); the TorchScript file was written."), None
    finally:
        private.unlink(missing_ok=True)


def _record(ckpt, net, names, args, dynamic: bool, diffs: dict, files: dict) -> dict:
    """The sidecar: everything a tool needs to feed the exported network and read its output."""
    from napari_resolve.learn.tiling import round_up

    lres_grid = net.input_grid == "lres"
    nin, nout = ckpt.norm_in, ckpt.norm_out
    if lres_grid:
        from napari_resolve.learn.lres_pairs import lres_halo

        inputs = [{"name": "block", "shape": ["batch", "z", "y", "x"], "dtype": "float32",
                   "description": "the LRES block itself (not interpolated), normalised with normalisation.input; "
                                  "z = 1 for a 2D image"}]
        inputs += [{"name": n, "shape": [f"n{n[1]}"], "dtype": "float32",
                    "description": f"the output voxels' positions along {n[1]} in LRES voxels: (output voxel "
                                   "centre - centre of the block's voxel 0) / LRES voxel size; [0] for a 2D image's z"}
                   for n in names[1:]]
        output = {"name": "output", "shape": ["batch", "nz", "ny", "nx"], "dtype": "float32",
                  "description": "the HRES at those positions, normalised: map back with normalisation.output"}
        halo = [lres_halo(net)] * 3
        halo_note = ("LRES voxels a block needs around the footprint of its output positions for a result that "
                     "does not depend on where the block was cut")
        radius_units = "LRES voxels"
    else:
        rz, ry, rx = net.receptive_radius
        mz, my, mx = net.size_multiple
        inputs = [{"name": "input", "shape": ["batch", "z", "y", "x"], "dtype": "float32",
                   "description": "the LRES interpolated (cubic) onto the output (HRES) grid, normalised with "
                                  "normalisation.input; y and x multiples of size_multiple; z at least 1 + 2 * trim_z "
                                  "(a 2D image: its slice repeated)"}]
        output = {"name": "output", "shape": ["batch", "z - 2 * trim_z", "y", "x"], "dtype": "float32",
                  "description": "the HRES of the central slices, normalised: map back with normalisation.output"}
        halo = [net.trim_z + rz, round_up(ry, my), round_up(rx, mx)]
        halo_note = ("output voxels of input to add around a tile (and discard from its output) for a result that "
                     "does not depend on the tiling; tiles start on multiples of size_multiple")
        radius_units = "output voxels"
    return {
        "format": FORMAT,
        "version": VERSION,
        "architecture": ckpt.architecture,
        "config": dict(ckpt.config),
        "files": files,
        "input_grid": net.input_grid,
        "ndim": len(ckpt.hres_voxel_um),
        "inputs": inputs,
        "output": output,
        "volumetric": bool(net.volumetric),
        "trim_z": int(net.trim_z),
        "slices": ckpt.config.get("slices"),
        "normalisation": {
            "input": {**nin.to_dict(), "apply": "(x - low) / (high - low)"},
            "output": {**nout.to_dict(), "invert": "y * (high - low) + low"},
        },
        "lres_voxel_um": list(ckpt.lres_voxel_um),
        "hres_voxel_um": list(ckpt.hres_voxel_um),
        "phase_origin_um": None if ckpt.phase_origin_um is None else list(ckpt.phase_origin_um),
        "phase_note": "a voxel centre of the training HRES grid in the LRES frame (origin: the centre of LRES voxel "
                      "0); output grids in phase with it are the ones the model was trained on",
        "receptive_radius": [int(r) for r in net.receptive_radius],
        "receptive_radius_units": radius_units,
        "size_multiple": [int(m) for m in net.size_multiple],
        "halo": [int(h) for h in halo],
        "halo_note": halo_note,
        "example_input_shapes": [list(a.shape) for a in args],
        "dynamic_shapes": bool(dynamic),
        "max_abs_diff": {k: float(v) for k, v in diffs.items()},
        "tolerance": TOLERANCE,
        "tolerance_note": "absolute for outputs within +-1, else relative to the example's largest output value",
        "torch_version": torch.__version__,
        "iteration": int(ckpt.iteration),
    }


def export_model(model, out_path, *, onnx_path=None, overwrite: bool = False) -> ExportResult:
    """Export a trained model to TorchScript (and ONNX), with a JSON sidecar, checked against the model.

    Parameters
    ----------
    model : Checkpoint or path-like
        The model file (or loaded checkpoint).
    out_path : path-like
        The TorchScript file (e.g. ``MODEL.torchscript.pt``); the sidecar goes beside it with the suffix
        ``.json``.
    onnx_path : path-like, optional
        Also write ONNX here (skipped, with a warning, where the packages or the network's operators do not
        allow it).
    overwrite : bool
        Replace existing outputs.

    Returns
    -------
    ExportResult

    Raises
    ------
    FileFormatError
        An unreadable model, an output that exists (without ``overwrite``), is an input, or whose folder is missing.
    InputError
        A model that cannot be exported (generative, or not traceable), or outputs that clash.
    ResolveError
        An exported file that does not reproduce the model to :data:`TOLERANCE` (nothing is kept).
    """
    ckpt = _checkpoint(model)
    inputs = [model] if isinstance(model, (str, os.PathLike)) else []
    out = Path(out_path).expanduser()
    side = sidecar_path(out)
    onnx_out = None if onnx_path is None else Path(onnx_path).expanduser()
    paths = [p for p in (out, side, onnx_out) if p is not None]
    if out.suffix.lower() == ".json" or len({p.resolve() for p in paths}) < len(paths):
        raise InputError(
            "The TorchScript file ({out_path}), its .json sidecar and the ONNX file ({onnx_path}) must be three "
            "different files; give the TorchScript file a suffix such as .pt.", parameters=("out_path", "onnx_path"))
    check_output(out, inputs=inputs, overwrite=overwrite, parameter="out_path")
    check_output(side, inputs=inputs, overwrite=overwrite, parameter="out_path")
    if onnx_out is not None:
        check_output(onnx_out, inputs=inputs, overwrite=overwrite, parameter="onnx_path")

    net = ckpt.build()
    module = _exportable(ckpt, net)
    names = ("block", "pz", "py", "px") if net.input_grid == "lres" else ("input",)
    args = example_inputs(ckpt, net)
    expected = _reference(net, args)
    scripted = _to_torchscript(module, net, args)
    other = example_inputs(ckpt, net, larger=True)
    expected_other = _reference(net, other)
    notes, diffs, onnx_dynamic = [], {}, None
    shapes = ", ".join(str(tuple(a.shape)) for a in args)
    with ExitStack() as stack:
        ts_tmp = stack.enter_context(atomic_path(out, overwrite=overwrite))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's, in favour of torch.export
            torch.jit.save(scripted, str(ts_tmp))
            loaded = torch.jit.load(str(ts_tmp), map_location="cpu")
        with torch.inference_mode():
            diffs["torchscript"] = _max_diff(loaded(*args), expected)
            if diffs["torchscript"] > allowed(expected):
                raise ResolveError(
                    f"The TorchScript export of this {ckpt.architecture} model differs from the model by "
                    f"{diffs['torchscript']:.2g} (more than {allowed(expected):.2g}) on an example input; nothing "
                    "was written.")
            try:
                dynamic = _max_diff(loaded(*other), expected_other) <= allowed(expected_other)
            except Exception:  # noqa: BLE001 - a trace tied to the example's shape fails in many ways on another
                dynamic = False
        if not dynamic:
            notes.append(f"The TorchScript file reproduces the model on inputs of the example's shapes only "
                         f"({shapes}): tile to those shapes.")
        onnx_written = None
        if onnx_out is not None:
            why, onnx_dynamic = _onnx_checked(module, names, [(args, expected), (other, expected_other)], onnx_out,
                                              overwrite, stack, diffs)
            if why is None:
                onnx_written = onnx_out
                if onnx_dynamic is None:
                    notes.append(f"The ONNX file takes inputs of the example's shapes ({shapes}); it was not "
                                 "checked: onnxruntime is not installed.")
                elif not onnx_dynamic:
                    notes.append(f"The ONNX file takes inputs of the example's shapes ({shapes}) only.")
            else:
                notes.append(why)
        files = {"model": None if not inputs else str(Path(model).name), "torchscript": out.name,
                 "onnx": None if onnx_written is None else onnx_written.name}
        record = _record(ckpt, net, names, args, dynamic, diffs, files)
        record["example_output_max_abs"] = float(expected.abs().max())
        record["onnx_dynamic_shapes"] = onnx_dynamic
        record["notes"] = notes
        side_tmp = stack.enter_context(atomic_path(side, overwrite=overwrite))
        side_tmp.write_text(json.dumps(record, indent=2) + "\n")
    for note in notes:
        warnings.warn(note, ResolveWarning, stacklevel=2)
    return ExportResult(out, side, onnx_written, diffs, notes, record)
