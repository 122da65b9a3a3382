"""The npe2 manifest is found from the editable install and from a built wheel."""

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "napari-resolve.get_reader",
    "napari-resolve.write_image",
    "napari-resolve.foam_phantom",
    "napari-resolve.sem_section",
    "napari-resolve.workflow_widget",
    "napari-resolve.registration_widget",
    "napari-resolve.training_widget",
    "napari-resolve.upscale_widget",
    "napari-resolve.quality_widget",
    "napari-resolve.pores_widget",
}


def _manifest_commands(python: str) -> set[str]:
    code = (
        "from npe2 import PluginManifest\n"
        "m = PluginManifest.from_distribution('napari-resolve')\n"
        "print(*[c.id for c in m.contributions.commands])\n"
        "import napari_resolve; print(napari_resolve.__file__)\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    ids, where = out.strip().splitlines()
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
    env = tmp_path / "venv"
    venv.create(env, system_site_packages=True, with_pip=True)
    python = str(env / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    ids, where = _manifest_commands(python)
    assert ids == EXPECTED
    # It really is the wheel's copy that was found, not the source tree's.
    assert str(env) in where
