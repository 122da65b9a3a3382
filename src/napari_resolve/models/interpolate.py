"""Separable interpolation from the LRES grid to arbitrary output positions, in torch.

Networks that compute on the LRES grid (:class:`~napari_resolve.models.lres3d.LRES3D`)
bring their features and the LRES itself onto the output (HRES) grid with these
functions. Output voxel positions are given per axis, in LRES voxel units
relative to the first voxel of the block (``p = 0`` is the centre of the block's
voxel 0): the output grid is axis-aligned in the LRES frame, so 3D interpolation
is three 1D passes, each a product with an interpolation matrix of 2 (linear)
or 4 (cubic) neighbours per row. Positions beyond the block take the edge value
(indices are clamped), like ``scipy.ndimage``'s ``mode="nearest"``.

Why not ``torch.nn.functional.interpolate`` or ``grid_sample``: ``interpolate``
only knows integer phases of a scale factor, not the registered sub-voxel phase
of the HRES grid, and ``grid_sample`` is not separable (a dense 3D grid of
coordinates per output voxel, 8 or 64 taps each).

Positions are either one 1D tensor per axis (shared by the batch) or ``(batch,
n)`` tensors (one set per sample, as training patches have).
"""

from __future__ import annotations

import torch

#: Keys' cubic convolution parameter (Catmull-Rom); interpolates (weights 1 at 0, 0 at the other integers).
KEYS_A = -0.5


def cubic_weights(t: torch.Tensor, a: float = KEYS_A) -> list[torch.Tensor]:
    """Keys' cubic convolution weights of the neighbours at offsets -1, 0, 1, 2 for fractions ``t`` in [0, 1).

    References
    ----------
    Keys, R. (1981). Cubic convolution interpolation for digital image processing.
    IEEE Trans. Acoust., Speech, Signal Process. 29(6), 1153-1160.
    """
    t2, t3 = t * t, t * t * t
    return [
        a * (t3 - 2 * t2 + t),
        (a + 2) * t3 - (a + 3) * t2 + 1,
        -(a + 2) * t3 + (2 * a + 3) * t2 - a * t,
        -a * (t3 - t2),
    ]


def axis_matrix(pos: torch.Tensor, n: int, mode: str = "linear", dtype=torch.float32) -> torch.Tensor:
    """The matrix of linear or cubic interpolation at ``pos`` along an axis of ``n`` voxels.

    ``axis_matrix(pos, n) @ v`` interpolates ``v`` (``n`` rows) at ``pos``, edge-clamped;
    ``(len(pos), n)``, or per sample ``(batch, len, n)``. Dense, so for a short axis
    (a chunk of :func:`matrix_axis`).
    """
    f = torch.floor(pos)
    t = (pos - f).to(dtype)
    i0 = f.long()[..., None]
    taps = zip((0, 1), (1 - t, t)) if mode == "linear" else zip((-1, 0, 1, 2), cubic_weights(t))
    m = torch.zeros((*pos.shape, n), dtype=dtype, device=pos.device)
    for k, w in taps:  # add, not set: neighbours clamped at the edge share the edge voxel
        m.scatter_add_(-1, (i0 + k).clamp(0, n - 1), w[..., None])
    return m


#: Output positions per matrix product in :func:`matrix_axis`: each chunk reads only the input
#: voxels its positions reach, so the dense matrices stay small (band-limited) on long axes.
MATRIX_CHUNK = 48


def matrix_axis(x: torch.Tensor, dim: int, pos: torch.Tensor, mode: str = "linear") -> torch.Tensor:
    """Linear or cubic (Keys) interpolation of ``x`` along ``dim`` at positions ``pos`` (voxel units, edge-clamped).

    Parameters
    ----------
    x : Tensor
        Any shape; axis 0 is the batch when ``pos`` is per sample.
    dim : int
        The axis to interpolate (at least 1 when ``pos`` is per sample).
    pos : Tensor, (n,) or (batch, n)
        Positions along ``dim``.
    mode : {"linear", "cubic"}

    Returns
    -------
    Tensor
        ``x`` with ``dim`` replaced by the ``n`` positions.

    Notes
    -----
    The positions go in chunks of :data:`MATRIX_CHUNK`, each a product with its
    interpolation matrix (:func:`axis_matrix`) over only the input voxels it
    reads, so the work per output value stays ``2 x (chunk / ratio + 4)``
    multiply-adds however long the axis. On the CPU this writes every output
    once, where gathers write each neighbour and then blend them: 1.5-2x faster
    for the upsampler of :class:`~napari_resolve.models.lres3d.LRES3D`.
    """
    n = x.shape[dim]
    lead, trail = x.shape[:dim], x.shape[dim + 1:]
    # The chunks' bands from one host copy of the positions: one device sync per call, not two per chunk.
    floor = torch.floor(pos.detach()).cpu()
    outs = []
    for a in range(0, pos.shape[-1], MATRIX_CHUNK):
        p, f = pos[..., a : a + MATRIX_CHUNK], floor[..., a : a + MATRIX_CHUNK]
        lo = min(max(int(f.min()) - 1, 0), n - 1)
        hi = max(min(int(f.max()) + 3, n), lo + 1)
        m = axis_matrix(p - lo, hi - lo, mode, x.dtype)
        if m.ndim == 3:  # per sample: broadcast over the axes between the batch and ``dim``
            m = m.reshape(m.shape[0], *([1] * (dim - 1)), *m.shape[1:])
        outs.append(torch.matmul(m, x.narrow(dim, lo, hi - lo).reshape(*lead, hi - lo, -1)))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=dim)
    return out.reshape(*lead, pos.shape[-1], *trail)


def interpolate(x: torch.Tensor, positions, mode: str = "linear") -> torch.Tensor:
    """Interpolate the last three axes of ``x`` at the positions of an axis-aligned grid.

    Parameters
    ----------
    x : Tensor, (batch, channels, z, y, x)
    positions : three Tensors
        z, y and x positions (voxel units of ``x``), each ``(n,)`` or ``(batch, n)``.
    mode : {"linear", "cubic"}

    Returns
    -------
    Tensor, (batch, channels, nz, ny, nx)
    """
    for dim, pos in zip((2, 3, 4), positions):
        x = matrix_axis(x, dim, pos, mode)
    return x
