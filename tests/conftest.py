"""Session-wide test data shared by every test folder: one phantom, its registration, one small model.

Made once per test session (the phantom and the model take seconds each) and
never modified by a test: tests that write put their outputs under their own
``tmp_path``. Built through the command line, as a user would, so that these
fixtures also exercise ``phantom``, ``register`` and ``train``.
"""

import os

import pytest

# Two torch jobs on two cores slow each other down many times; tests stay single-threaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")

#: The shared phantom: 40 LRES voxels of 3 um a side, an HRES of 1 um inside it.
FOAM_ARGS = ("--size", "40", "--ratio", "3", "--seed", "4")


@pytest.fixture(scope="session")
def foam_dir(tmp_path_factory):
    """A folder with the phantom's lres.tif, hres.tif, truth.tif, truth_labels.tif and meta.json."""
    from napari_resolve.cli import main

    out = tmp_path_factory.mktemp("foam")
    assert main(["phantom", str(out), *FOAM_ARGS]) == 0
    return out


@pytest.fixture(scope="session")
def foam_registration(foam_dir, tmp_path_factory):
    """The phantom's registration JSON, written by ``napari-resolve register``."""
    from napari_resolve.cli import main

    reg = tmp_path_factory.mktemp("registration") / "reg.json"
    assert main(["register", str(foam_dir / "lres.tif"), str(foam_dir / "hres.tif"), "-o", str(reg)]) == 0
    return reg


@pytest.fixture(scope="session")
def tiny_model(foam_dir, foam_registration, tmp_path_factory):
    """The default network (lres3d) of width 4 trained for 6 iterations on the phantom pair (valid, not good)."""
    from napari_resolve.cli import main

    model = tmp_path_factory.mktemp("model") / "m.pt"
    argv = ["train", str(foam_dir / "lres.tif"), str(foam_dir / "hres.tif"), "--registration",
            str(foam_registration), "--iterations", "6", "--batch-size", "2", "--patch-size", "32",
            "--model-option", "width=4", "--device", "cpu", "-o", str(model)]
    assert main(argv) == 0
    return model
