"""Synthetic pore shapes shared by the pore tests: balls, non-touching balls, the image of a pore mask."""

from __future__ import annotations

import numpy as np


def ball(shape, centre_um, radius_um, voxel):
    """Boolean ball (ellipsoidal in index space for anisotropic voxels)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((g * v) - c) ** 2 for g, c, v in zip(grids, centre_um, voxel))
    return d2 <= radius_um**2


def separated_balls(shape=(96, 96, 96), radii=(3, 4, 5, 6, 7, 8, 3, 4, 5, 6), seed=0, gap=3):
    """Non-touching balls, none touching the border: (pore mask, centres, radii)."""
    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    for r in radii:
        for _ in range(10_000):
            c = np.array([rng.uniform(r + gap, n - 1 - r - gap) for n in shape])
            if all(np.linalg.norm(c - c2) > r + r2 + gap for c2, r2 in zip(centres, radii)):
                centres.append(c)
                break
        else:  # pragma: no cover - construction failure
            raise RuntimeError("could not place the balls")
    mask = np.zeros(shape, dtype=bool)
    for c, r in zip(centres, radii):
        mask |= ball(shape, c, r, (1.0,) * len(shape))
    return mask, centres, list(radii)


def image_of(pores: np.ndarray) -> np.ndarray:
    """Bright solid (1) with dark pores (0)."""
    return np.where(pores, 0.0, 1.0).astype(np.float32)
