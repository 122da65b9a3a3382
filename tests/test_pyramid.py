"""OME-NGFF pyramids: block means, level geometry, chunk-wise writing equal to slab-wise, napari multiscale."""

import numpy as np
import pytest
import zarr

from napari_resolve import pyramid as P
from napari_resolve.io import read_volume


def test_halve_is_the_block_mean_and_a_cut_block_averages_what_it_holds():
    a = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)
    h = P.halve(a)
    assert h.shape == (3, 2, 2)
    assert h[0, 0, 0] == pytest.approx(a[:2, :2, :2].mean())
    assert h[2, 1, 1] == pytest.approx(a[4:, 2:, 2:].mean())  # one z slice, one x column
    assert P.halve(np.ones((7, 9))).tolist() == np.ones((4, 5)).tolist()


def test_level_geometry_puts_a_block_mean_at_the_centre_of_its_block():
    voxel, origin = P.level_geometry((1.0, 0.5, 0.5), (10.0, 0.0, 2.0), 2)
    assert voxel == (4.0, 2.0, 2.0)
    # Level-2 voxel 0 averages level-0 voxels 0..3: its centre is 1.5 voxels after voxel 0.
    assert origin == (11.5, 0.75, 2.75)
    assert P.level_shape((130, 64, 7), 2) == (33, 16, 2)


def test_level_count_stops_near_the_top_side_and_at_what_chunks_allow():
    assert P.level_count((120, 120, 120)) == 1
    assert P.level_count((1024, 512, 512)) == 5  # 1024 / 16 = 64
    assert P.level_count((1024, 512, 512), chunk=(24, 24, 24)) == 4  # 24 is a multiple of 8, not of 16
    assert P.level_count((30, 1024, 1024), chunk=(30, 64, 64)) == 5  # a chunk as long as its axis never cuts blocks


def test_chunkwise_levels_equal_slabwise_levels(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((40, 36, 52), np.float32)
    chunks = (16, 16, 16)
    a = P.create_pyramid(tmp_path / "a.zarr", data.shape, (1, 1, 1), (0, 0, 0), chunks=chunks, levels=3)
    b = P.create_pyramid(tmp_path / "b.zarr", data.shape, (1, 1, 1), (0, 0, 0), chunks=chunks, levels=3)
    for z in range(0, 40, 16):
        for y in range(0, 36, 16):
            for x in range(0, 52, 16):
                box = ((z, min(z + 16, 40)), (y, min(y + 16, 36)), (x, min(x + 16, 52)))
                P.write_levels(a, box, data[tuple(slice(*s) for s in box)], 3)
    b["0"][:] = data
    P.build_levels(b, 3, 16)
    for level in range(3):
        np.testing.assert_allclose(a[str(level)][:], b[str(level)][:], rtol=1e-6)
    assert a["2"].shape == (10, 9, 13)
    assert a["2"][0, 0, 0] == pytest.approx(data[:4, :4, :4].mean())
    with pytest.raises(ValueError, match="multiples"):
        P.create_pyramid(tmp_path / "c.zarr", data.shape, (1, 1, 1), (0, 0, 0), chunks=(12, 12, 12), levels=4)


def test_a_pyramid_opens_as_a_multiscale_layer_at_its_place(tmp_path):
    from napari_resolve._reader import read_layer

    data = np.random.default_rng(1).random((8, 260, 140), np.float32)
    group = P.create_pyramid(tmp_path / "p.zarr", data.shape, (2.0, 0.5, 0.5), (4.0, 1.0, 1.0), chunks=(8, 64, 64),
                             levels=3)
    P.write_levels(group, ((0, 8), (0, 260), (0, 140)), data, 3)
    vol = read_volume(tmp_path / "p.zarr")
    assert vol.voxel_um == (2.0, 0.5, 0.5) and vol.origin_um == (4.0, 1.0, 1.0) and vol.shape == data.shape
    [(layer_data, kwargs, kind)] = read_layer(str(tmp_path / "p.zarr"))
    assert kind == "image" and kwargs["multiscale"] and [d.shape for d in layer_data] == [
        (8, 260, 140), (4, 130, 70), (2, 65, 35)]
    assert kwargs["scale"] == (2.0, 0.5, 0.5) and kwargs["translate"] == (4.0, 1.0, 1.0)
    attrs = dict(zarr.open_group(str(tmp_path / "p.zarr"), mode="r").attrs)["multiscales"][0]
    assert attrs["datasets"][2]["coordinateTransformations"][0]["scale"] == [8.0, 2.0, 2.0]


def test_a_streamed_zarr_prediction_is_a_pyramid(tmp_path):
    from napari_resolve.geometry.grid import Grid
    from napari_resolve.learn.sinks import SlabSink

    grid = Grid((20, 300, 200), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    out = tmp_path / "o.zarr"
    sink = SlabSink(grid, 3, out, out)
    data = np.random.default_rng(2).random(grid.shape, np.float32)
    for z in range(0, 20, 7):
        sink.write(z, min(z + 7, 20), data[z : z + 7])
    sink.finish()
    group = zarr.open_group(str(out), mode="r")
    assert sink.levels == 3 and group["2"].shape == (5, 75, 50)
    assert group["1"][3, 10, 10] == pytest.approx(data[6:8, 20:22, 20:22].mean())
