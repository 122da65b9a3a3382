"""The npe2 manifest is found from the editable install and from a built wheel."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "napari-resolve.get_reader",
    "napari-resolve.write_image",
    "napari-resolve.foam_phantom",
    "napari-resolve.cross_modality_foam",
    "napari-resolve.sem_section",
    "napari-resolve.workflow_widget",
    "napari-resolve.registration_widget",
    "napari-resolve.training_widget",
    "napari-resolve.upscale_widget",
    "napari-resolve.quality_widget",
    "napari-resolve.pores_widget",
}


def _manifest_commands(python: str, env: dict | None = None) -> tuple[set[str], str]:
    code = (
        "from npe2 import PluginManifest\n"
        "m = PluginManifest.from_distribution('napari-resolve')\n"
        "print(*[c.id for c in m.contributions.commands])\n"
        "import napari_resolve; print(napari_resolve.__file__)\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    ids, where = out.stdout.strip().splitlines()
    return set(ids.split()), where


def test_manifest_from_current_install_is_valid():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-resolve")
    manifest.validate_imports()
    assert {c.id for c in manifest.contributions.commands} == EXPECTED


def test_npe2_validate_passes():
    npe2 = Path(sys.executable).with_name("npe2")
    cmd = [str(npe2)] if npe2.exists() else [sys.executable, "-m", "npe2"]
    out = subprocess.run([*cmd, "validate", "napari-resolve"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_manifest_from_built_wheel(tmp_path):
    pytest.importorskip("build")
    pytest.importorskip("hatchling")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("*.whl"))
    # The wheel goes into a folder of its own that leads sys.path of *this* interpreter,
    # so npe2 and the other dependencies come from the environment the tests run in
    # (a virtualenv or the system one alike). A venv with system site packages would
    # not do: inside a virtualenv those are the base interpreter's, where npe2 is absent.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}
    ids, where = _manifest_commands(sys.executable, env)
    assert ids == EXPECTED
    # It really is the wheel's copy that was found, not the source tree's.
    assert Path(where).is_relative_to(target), where
