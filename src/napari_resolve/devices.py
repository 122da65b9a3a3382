"""Choosing the compute device: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

from napari_resolve.errors import InputError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | None = "auto"):
    """The torch device for ``device`` ("auto", "cpu", "cuda", "cuda:1" or "mps").

    Raises
    ------
    InputError
        If the device is unknown or not available on this machine.
    """
    import torch

    name = "auto" if device is None else str(device)
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"Unknown device {name!r}; use one of {', '.join(DEVICES)}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "The CUDA GPU that was asked for is not available here; set {device} to auto or cpu.",
            parameters=("device",),
        )
    if dev.type == "mps" and not has_mps:
        raise InputError(
            "Apple MPS was asked for but is not available here; set {device} to auto or cpu.", parameters=("device",)
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"Device {name!r} is not supported; use one of {', '.join(DEVICES)}.")
    return dev


def describe_device(device) -> str:
    """A short human description, e.g. ``"cuda (NVIDIA H100, 79 GiB)"`` or ``"cpu (2 threads)"``."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        return f"cuda ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if dev.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return dev.type


def autocast_dtype(device):
    """The mixed-precision dtype for ``device``: bfloat16 where the GPU has it,
    float16 otherwise; None (full precision) off CUDA."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the device (or host) running out of memory."""
    import torch

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
