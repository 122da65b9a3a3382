"""Viewers with the phantom sample data, registered or not, and a small trained model.

Every widget test starts from what a user has after File > Open Sample:
an LRES layer and an HRES layer (not yet in place).
"""

import os

import numpy as np
import pytest

# Two torch jobs on two cores slow each other down many times; tests stay single-threaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _add_sample(viewer, layer_data):
    layers = []
    for data, kwargs, kind in layer_data:
        layers.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return layers


@pytest.fixture
def phantom_viewer(make_napari_viewer):
    """A viewer with the 3D foam sample: (viewer, lres_layer, hres_layer); HRES not yet registered."""
    from napari_resolve._sample_data import foam_phantom

    viewer = make_napari_viewer()
    lres, hres = _add_sample(viewer, foam_phantom())
    return viewer, lres, hres


@pytest.fixture
def section_viewer(make_napari_viewer):
    """A viewer with the 2D SEM-like sample: (viewer, lres_layer, hres_layer), HRES not yet registered."""
    from napari_resolve._sample_data import sem_section

    viewer = make_napari_viewer()
    lres, hres = _add_sample(viewer, sem_section())
    return viewer, lres, hres


def _register(lres, hres):
    from napari_resolve._qt._session import place_registered
    from napari_resolve.registration import register

    reg = register(np.asarray(lres.data), np.asarray(hres.data), tuple(lres.scale), tuple(hres.scale))
    assert reg.ok, reg.message
    place_registered(hres, reg)
    return reg


@pytest.fixture
def registered_viewer(phantom_viewer):
    """``phantom_viewer`` with the HRES registered in place (as the registration step leaves it)."""
    viewer, lres, hres = phantom_viewer
    _register(lres, hres)
    return viewer, lres, hres


@pytest.fixture
def registered_section(section_viewer):
    """``section_viewer`` with the 2D HRES registered in place."""
    viewer, lres, hres = section_viewer
    _register(lres, hres)
    return viewer, lres, hres


@pytest.fixture(scope="session")
def small_model():
    """A small U-Net trained briefly on the 3D foam sample (a Checkpoint); shared by the tests."""
    from napari_resolve._sample_data import foam_phantom
    from napari_resolve.registration import register
    from napari_resolve.training import TrainConfig, run_train

    (lres, lk, _), (hres, hk, _) = foam_phantom()
    reg = register(lres, hres, lk["scale"], hk["scale"])
    cfg = TrainConfig(
        model="unet25d", model_config={"width": 8}, iterations=40, batch_size=2, patch_size=32, device="cpu"
    )
    return run_train(lres, hres, lk["scale"], reg, cfg).checkpoint
