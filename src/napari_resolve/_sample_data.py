"""npe2 sample data: the foam phantom as an LRES layer and a not-yet-registered HRES layer."""

from __future__ import annotations

from napari_resolve.phantom import make_phantom


def foam_phantom():
    """LRES (3 um voxels) and HRES (1 um voxels) scans of a synthetic foam.

    The HRES layer is deliberately left at the origin, not at its true position,
    so the first step is to register it. Its true offset (um) is kept in the
    layer metadata under ``"true_offset_um"`` for checking.
    """
    ph = make_phantom(64, 3, seed=0)
    common = {"colormap": "gray", "contrast_limits": (-0.1, 1.2)}
    return [
        (ph.lres, {"name": "LRES foam 3um", "scale": ph.lres_voxel_um, **common}, "image"),
        (
            ph.hres,
            {
                "name": "HRES foam 1um",
                "scale": ph.hres_voxel_um,
                "metadata": {"true_offset_um": ph.hres_offset_um, "phantom": ph.meta()},
                **common,
            },
            "image",
        ),
    ]
