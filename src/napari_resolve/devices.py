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
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'' if threads == 1 else 's'})"
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


class DeviceMemory:
    """The memory counters of a CUDA device that tile sizing reads
    (:func:`napari_resolve.learn.tiling.fit_tile_to_memory`)."""

    def __init__(self, device):
        self.device = device

    def reset_peak(self) -> int:
        """Reset the peak counter; returns the bytes allocated now."""
        import torch

        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return int(torch.cuda.memory_allocated(self.device))

    def peak(self) -> int:
        """Most bytes allocated since :meth:`reset_peak`."""
        import torch

        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device))

    def available(self) -> int:
        """Bytes a tile can use: free on the device plus what torch's cache holds unused."""
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        return int(free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device))


def device_memory(device) -> DeviceMemory | None:
    """The memory counters of ``device`` when it is a CUDA GPU (None elsewhere: the CPU's tile
    stays the default, which its benchmarks chose)."""
    import torch

    dev = torch.device(device)
    return DeviceMemory(dev) if dev.type == "cuda" else None
