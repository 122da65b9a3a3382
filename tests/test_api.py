"""The package's public surface and what importing it costs."""

import subprocess
import sys

import napari_resolve


def test_every_public_name_resolves():
    for name in napari_resolve.__all__:
        assert getattr(napari_resolve, name) is not None, name


def test_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        napari_resolve.no_such_thing  # noqa: B018


def test_import_loads_no_qt_napari_or_torch():
    code = (
        "import sys, napari_resolve, napari_resolve.io, napari_resolve.phantom, napari_resolve.cli\n"
        "heavy = [m for m in ('torch', 'napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
