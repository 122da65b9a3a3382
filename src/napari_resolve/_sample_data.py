"""npe2 sample data: the foam phantom as an LRES layer and a not-yet-registered HRES layer."""

from __future__ import annotations

from napari_resolve.phantom import make_phantom


def _layers(ph, suffix: str):
    """An LRES layer and an HRES layer left at the origin (not yet registered)."""
    common = {"colormap": "gray", "contrast_limits": (-0.1, 1.2)}
    lres_um, hres_um = ph.lres_voxel_um[-1], ph.hres_voxel_um[-1]
    return [
        (ph.lres, {"name": f"LRES {suffix} {lres_um:g}um", "scale": ph.lres_voxel_um, **common}, "image"),
        (
            ph.hres,
            {
                "name": f"HRES {suffix} {hres_um:g}um",
                "scale": ph.hres_voxel_um,
                "metadata": {"true_offset_um": ph.hres_offset_um, "phantom": ph.meta()},
                **common,
            },
            "image",
        ),
    ]


def foam_phantom():
    """LRES (3 um voxels) and HRES (1 um voxels) scans of a synthetic foam.

    The HRES layer is deliberately left at the origin, not at its true position,
    so the first step is to register it. Its true offset (um) is kept in the
    layer metadata under ``"true_offset_um"`` for checking.
    """
    return _layers(make_phantom(64, 3, seed=0), "foam")


def cross_modality_foam():
    """A CT-like LRES (3 um voxels) and an SEM-like HRES (1 um voxels) of the same foam, unregistered.

    The HRES comes from another instrument: other grey levels per phase, a grain
    texture in the solid that the LRES cannot resolve, bright pore edges and
    scan-line noise (:func:`napari_resolve.phantom.sem_contrast`).
    """
    return _layers(make_phantom(64, 3, seed=0, hres_modality="sem"), "CT to SEM")


def sem_section():
    """A 2D SEM-like section: LRES (4 um pixels) and HRES (1 um pixels), unregistered."""
    return _layers(make_phantom(160, 4, ndim=2, seed=0), "section")
