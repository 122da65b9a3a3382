"""npe2 contributions: reader, writer and sample data, headless and in a real viewer."""

import numpy as np
import pytest

from napari_resolve._reader import get_reader
from napari_resolve._sample_data import cross_modality_foam, foam_phantom, sem_section
from napari_resolve._writer import write_image
from napari_resolve.errors import ResolveWarning
from napari_resolve.io import read_volume, write_volume


def test_reader_puts_voxel_size_into_scale(tmp_path):
    path = write_volume(tmp_path / "v.tif", np.zeros((3, 4, 5), np.float32), (9.0, 3.0, 3.0), origin_um=(1, 2, 3))
    assert get_reader(str(tmp_path / "x.png")) is None
    (data, kwargs, kind), = get_reader(str(path))(str(path))
    assert kind == "image" and data.shape == (3, 4, 5)
    assert kwargs["scale"] == (9.0, 3.0, 3.0)
    assert kwargs["translate"] == (1.0, 2.0, 3.0)


def test_reader_warns_when_voxel_size_unknown(tmp_path):
    import tifffile

    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((3, 4, 5), np.uint8), photometric="minisblack")
    with pytest.warns(ResolveWarning, match="no voxel size"):
        (_, kwargs, _), = get_reader(str(path))(str(path))
    assert "scale" not in kwargs and kwargs["metadata"]["voxel_known"] is False


def test_writer_keeps_scale_and_translate(tmp_path):
    out = str(tmp_path / "layer.tif")
    write_image(out, np.ones((2, 3, 4), np.float32), {"scale": (2.0, 1.0, 1.0), "translate": (5.0, 0.0, -1.0)})
    back = read_volume(out)
    assert back.voxel_um == (2.0, 1.0, 1.0) and back.origin_um == (5.0, 0.0, -1.0)


def test_sample_data_hres_is_not_yet_registered():
    (lres, lk, _), (hres, hk, _) = foam_phantom()
    assert lk["scale"] == (3.0, 3.0, 3.0) and hk["scale"] == (1.0, 1.0, 1.0)
    assert "translate" not in hk  # at the origin, away from its true offset
    assert np.linalg.norm(hk["metadata"]["true_offset_um"]) > 10


def test_cross_modality_sample_has_an_sem_like_hres_of_the_same_foam():
    (lres, lk, _), (hres, hk, _) = cross_modality_foam()
    (ct_lres, _, _), _ = foam_phantom()
    np.testing.assert_array_equal(lres, ct_lres)  # the same CT scan of the same foam
    assert hk["metadata"]["phantom"]["params"]["hres_modality"] == "sem" and "translate" not in hk
    assert hk["scale"] == (1.0, 1.0, 1.0) and "CT to SEM" in hk["name"]


def test_sem_section_is_2d():
    (lres, lk, _), (hres, hk, _) = sem_section()
    assert lres.ndim == hres.ndim == 2
    assert lk["scale"] == (4.0, 4.0) and hk["scale"] == (1.0, 1.0)


def test_sample_and_reader_in_a_real_viewer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-resolve", "foam_phantom")
    assert [layer.name for layer in layers] == ["LRES foam 3um", "HRES foam 1um"]
    np.testing.assert_allclose(viewer.layers["LRES foam 3um"].scale, (3, 3, 3))
    path = write_volume(tmp_path / "scan.ome.tif", np.zeros((4, 5, 6), np.float32), (2.0, 0.5, 0.5))
    (opened,) = viewer.open(str(path), plugin="napari-resolve")
    np.testing.assert_allclose(opened.scale, (2.0, 0.5, 0.5))
    # A zarr volume is a directory; it opens lazily with its geometry.
    zpath = write_volume(tmp_path / "big.zarr", np.ones((8, 9, 10), np.float32), (3.0, 1.0, 1.0), origin_um=(6, 0, 0))
    (z,) = viewer.open(str(zpath), plugin="napari-resolve")
    np.testing.assert_allclose(z.scale, (3.0, 1.0, 1.0))
    np.testing.assert_allclose(z.translate, (6.0, 0.0, 0.0))
    assert not isinstance(z.data, np.ndarray)
    # The 2D sample opens as 2D layers.
    sem = viewer.open_sample("napari-resolve", "sem_section")
    assert all(layer.ndim == 2 for layer in sem)
