"""Reading and writing volumes with their geometry."""

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_resolve.errors import FileFormatError, InputError, VoxelSizeError
from napari_resolve.io import Volume, read_volume, unit_to_um, write_volume


@pytest.fixture
def vol():
    return np.random.default_rng(0).random((4, 5, 6), dtype=np.float32)


@pytest.mark.parametrize("name", ["out.tif", "out.ome.tif", "out.zarr"])
def test_round_trip_keeps_data_voxel_and_origin(tmp_path, vol, name):
    path = write_volume(tmp_path / name, vol, (2.0, 0.5, 0.25), origin_um=(1.0, -2.0, 3.5))
    back = read_volume(path)
    np.testing.assert_array_equal(np.asarray(back.data[:]), vol)
    assert back.voxel_um == pytest.approx((2.0, 0.5, 0.25))
    assert back.origin_um == pytest.approx((1.0, -2.0, 3.5))


def test_zarr_stays_lazy(tmp_path, vol):
    back = read_volume(write_volume(tmp_path / "v.zarr", vol, 1.0))
    assert not isinstance(back.data, np.ndarray)
    assert back.shape == vol.shape


def test_2d_round_trip(tmp_path, vol):
    back = read_volume(write_volume(tmp_path / "sem.tif", vol[0], 0.01))
    assert back.ndim == 2 and back.voxel_um == pytest.approx((0.01, 0.01))


def test_imagej_spacing_and_units_converted_to_um(tmp_path, vol):
    path = tmp_path / "ij.tif"
    # 2 pixels per mm in x/y and a 3 mm z spacing.
    tifffile.imwrite(path, vol, imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 3.0, "unit": "mm", "axes": "ZYX"})
    back = read_volume(path)
    assert back.voxel_um == pytest.approx((3000.0, 500.0, 500.0))


def test_ome_nanometres_converted(tmp_path, vol):
    path = tmp_path / "nm.ome.tif"
    md = {"axes": "ZYX", "PhysicalSizeX": 40, "PhysicalSizeXUnit": "nm",
          "PhysicalSizeY": 40, "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.1, "PhysicalSizeZUnit": "µm"}
    tifffile.imwrite(path, vol, ome=True, metadata=md)
    assert read_volume(path).voxel_um == pytest.approx((0.1, 0.04, 0.04))


def test_missing_metadata_means_unknown_and_override_works(tmp_path, vol):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, vol, photometric="minisblack")
    back = read_volume(path)
    assert back.voxel_um is None
    with pytest.raises(VoxelSizeError, match="unknown"):
        back.require_voxel()
    assert read_volume(path, voxel_um=9).voxel_um == (9.0, 9.0, 9.0)


def test_inch_resolution_is_not_trusted(tmp_path, vol):
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, vol, resolution=(72, 72), resolutionunit="INCH", photometric="minisblack")
    assert read_volume(path).voxel_um is None


def test_channels_are_refused_with_advice(tmp_path):
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, np.zeros((4, 3, 5, 6), "uint8"), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(InputError, match="channel"):
        read_volume(path)


def test_corrupt_missing_and_unsupported_files(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"garbage" * 10)
    with pytest.raises(FileFormatError, match="corrupt"):
        read_volume(bad)
    with pytest.raises(FileFormatError, match="does not exist"):
        read_volume(tmp_path / "nope.tif")
    other = tmp_path / "x.png"
    other.write_bytes(b"\x89PNG")
    with pytest.raises(FileFormatError, match="unsupported"):
        read_volume(other)


def test_existing_file_is_never_overwritten_without_consent(tmp_path, vol):
    path = tmp_path / "keep.tif"
    write_volume(path, vol, 1.0)
    before = path.read_bytes()
    with pytest.raises(FileFormatError, match="already exists"):
        write_volume(path, vol * 2, 1.0)
    assert path.read_bytes() == before
    write_volume(path, vol * 2, 1.0, overwrite=True)
    np.testing.assert_allclose(read_volume(path).data, vol * 2)


def test_failed_write_leaves_nothing_behind(tmp_path, vol, monkeypatch):
    import napari_resolve.io as io

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io, "_write_ome_tiff", boom)
    with pytest.raises(RuntimeError):
        write_volume(tmp_path / "half.tif", vol, 1.0)
    assert list(tmp_path.iterdir()) == []


def test_zarr_overwrite_replaces_directory(tmp_path, vol):
    path = tmp_path / "v.zarr"
    write_volume(path, vol, 1.0)
    write_volume(path, vol[:2], 2.0, overwrite=True)
    back = read_volume(path)
    assert back.shape == (2, 5, 6) and back.voxel_um == (2.0, 2.0, 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zarr"]


def test_volume_validates_voxel_size(vol):
    with pytest.raises(VoxelSizeError):
        Volume(vol, voxel_um=(1.0, 2.0))
    with pytest.raises(VoxelSizeError):
        Volume(vol, voxel_um=-1)
    assert Volume(vol, voxel_um=2).voxel_um == (2.0, 2.0, 2.0)


def test_units():
    assert unit_to_um("micron") == 1.0
    assert unit_to_um("nm") == pytest.approx(1e-3)
    assert unit_to_um("mm") == 1e3
    assert unit_to_um("furlong") is None


def test_ngff_group_from_another_tool_in_nanometres(tmp_path, vol):
    import zarr

    group = zarr.open_group(str(tmp_path / "em.zarr"), mode="w")
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": [40.0, 8.0, 8.0]}, {"type": "translation", "translation": [400.0, 0.0, 80.0]}]}],
    }]
    group.create_array("s0", shape=vol.shape, dtype=vol.dtype)[:] = vol
    back = read_volume(tmp_path / "em.zarr")
    assert back.voxel_um == pytest.approx((0.04, 0.008, 0.008))
    assert back.origin_um == pytest.approx((0.4, 0.0, 0.08))


def test_broken_ngff_metadata_is_a_clear_error(tmp_path, vol):
    import zarr

    group = zarr.open_group(str(tmp_path / "broken.zarr"), mode="w")
    group.attrs["multiscales"] = [{"version": "0.4", "datasets": []}]
    with pytest.raises(FileFormatError, match="multiscales"):
        read_volume(tmp_path / "broken.zarr")


# ----------------------------------------------------------------------------- damaged files (issue 13)


@pytest.fixture
def stack_tif(tmp_path):
    """A 12-slice OME-TIFF as napari-resolve writes it, and its data."""
    data = (np.random.default_rng(1).random((12, 16, 16)) * 1000).astype(np.uint16)
    path = tmp_path / "stack.tif"
    write_volume(path, data, (3.0, 1.0, 1.0))
    return path, data


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_a_truncated_tiff_is_refused_not_read_as_its_first_slice(stack_tif, tmp_path, fraction):
    path, _ = stack_tif
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    with pytest.raises(FileFormatError, match="cut.tif is truncated or damaged") as info:
        read_volume(cut)
    if fraction < 0.9:
        assert "slice(s) readable" in str(info.value) and "past the end of the file" in str(info.value)


def test_imagej_stack_with_fewer_pages_than_it_promises_is_refused(tmp_path):
    data = np.arange(8 * 6 * 5, dtype=np.uint16).reshape(8, 6, 5)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, data, imagej=True)
    raw = path.read_bytes()
    # Re-write the description so it promises 10 images: the file holds 8.
    doctored = raw.replace(b"images=8", b"images=9", 1)
    assert doctored != raw
    path.write_bytes(doctored)
    with pytest.raises(FileFormatError, match=r"truncated or damaged: 8 of 9 slices readable"):
        read_volume(path)


def test_a_1d_tiff_is_refused_like_a_4d_one(tmp_path):
    from napari_resolve._reader import read_layer

    path = tmp_path / "profile.tif"
    tifffile.imwrite(path, np.arange(100, dtype=np.uint16))
    with pytest.raises(InputError, match="1D array of 100 values.*2D image or a 3D volume"):
        read_volume(path)
    with pytest.raises(InputError, match="1D"):
        read_layer(str(path))  # the napari reader says the same, instead of a shape-(100,) layer


def _ifd_offsets(raw: bytes) -> list[int]:
    """The IFD offsets of a little-endian classic TIFF, following its chain from the header."""
    out, off = [], struct.unpack_from("<I", raw, 4)[0]
    while 8 <= off < len(raw) - 2 and off not in out and len(out) < 100:
        out.append(off)
        end = off + 2 + 12 * struct.unpack_from("<H", raw, off)[0]
        if end + 4 > len(raw):
            break
        off = struct.unpack_from("<I", raw, end)[0]
    return out


def _tag_entry(raw: bytes, ifd: int, code: int) -> int:
    """Where the entry of tag ``code`` of the IFD at ``ifd`` starts."""
    n = struct.unpack_from("<H", raw, ifd)[0]
    return next(e for e in range(ifd + 2, ifd + 2 + 12 * n, 12) if struct.unpack_from("<H", raw, e)[0] == code)


def _mutate(raw: bytes, rng, kind: int) -> bytes:
    """One seeded damage of a TIFF: bytes, a cut, the header, an IFD offset, a dimension, a tag entry."""
    b = bytearray(raw)
    chain = _ifd_offsets(raw)
    if kind == 0:  # a few bytes anywhere
        for _ in range(int(rng.integers(1, 6))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
    elif kind == 1:  # cut short
        b = b[: int(rng.integers(8, len(b)))]
    elif kind == 2:  # one byte in the header and first IFD
        b[int(rng.integers(0, min(len(b), 400)))] = int(rng.integers(256))
    elif kind == 3:  # the header's first-IFD offset or a next-IFD offset moved: to another IFD, near one, anywhere
        i = int(rng.integers(len(chain) + 1))
        at = 4 if i == len(chain) else chain[i] + 2 + 12 * struct.unpack_from("<H", b, chain[i])[0]
        choice = int(rng.integers(3))
        value = (int(rng.choice(chain)) if choice == 0 else int(rng.choice(chain)) + int(rng.integers(-16, 17))
                 if choice == 1 else int(rng.integers(0, len(b) + 64)))
        struct.pack_into("<I", b, at, max(0, value))
    elif kind == 4:  # a zero (or odd) width, length, samples, bits or rows per strip in one IFD
        e = _tag_entry(raw, int(rng.choice(chain)), int(rng.choice([256, 257, 257, 258, 277, 278])))
        value = 0 if rng.random() < 0.6 else int(rng.integers(0, 70000))
        if struct.unpack_from("<H", b, e + 2)[0] == 3:
            struct.pack_into("<H", b, e + 8, value & 0xFFFF)
        else:
            struct.pack_into("<I", b, e + 8, value)
    else:  # one IFD entry's type, count or value
        ifd = int(rng.choice(chain))
        e = ifd + 2 + 12 * int(rng.integers(struct.unpack_from("<H", b, ifd)[0]))
        field = int(rng.integers(3))
        value = int(rng.integers(0, 2 ** int(rng.integers(1, 33))))
        if field == 0:
            struct.pack_into("<H", b, e + 2, value % 20)
        else:
            struct.pack_into("<I", b, e + 4 * field, value)
    return bytes(b)


def test_fuzzed_tiffs_give_the_file_or_a_clear_error(tmp_path, stack_tif):
    """Seeded damage of small TIFFs (bytes, cuts, header and IFD offsets, zero dimensions, tag
    entries): a volume of the written shape, or a project error; never another exception, never
    a shorter volume. The sources are read whole first, so each is really fuzzed."""
    from napari_resolve.errors import ResolveError

    path, data = stack_tif
    made = {
        "ij": dict(imagej=True, resolution=(1.0, 1.0), metadata={"spacing": 3.0, "unit": "um", "axes": "ZYX"}),
        "ij8": dict(imagej=True, metadata={"axes": "ZYX"}),
        "zlib": dict(compression="zlib"),
        "generic": dict(metadata=None),
    }
    sources = [(path.read_bytes(), data.shape)]
    for name, kwargs in made.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", (data // 8).astype(np.uint8) if name == "ij8" else data, **kwargs)
        sources.append(((tmp_path / f"{name}.tif").read_bytes(), data.shape))
    tifffile.imwrite(tmp_path / "plane.tif", data[0])
    sources.append(((tmp_path / "plane.tif").read_bytes(), data.shape[1:]))
    for name in (*made, "plane"):
        assert read_volume(tmp_path / f"{name}.tif").shape == (data.shape[1:] if name == "plane" else data.shape)
    outcomes = {"volume": 0, "error": 0}
    for seed in range(480):
        rng = np.random.default_rng(seed)
        raw, shape = sources[seed % len(sources)]
        mutated = tmp_path / f"m{seed}.tif"
        mutated.write_bytes(_mutate(raw, rng, (seed // len(sources)) % 6))
        try:
            got = read_volume(mutated)
        except ResolveError:
            outcomes["error"] += 1
        else:
            assert got.shape == shape, f"seed {seed}: read {got.shape}, the file holds {shape}"
            outcomes["volume"] += 1
        mutated.unlink()
    # Both outcomes occur: pixel-data mutations still read, structural ones are refused.
    assert outcomes["volume"] > 60 and outcomes["error"] > 200


def _imagej_u8(path):
    """A 10-slice ImageJ stack (uint8, ZYX), as in the audit's fuzz; its bytes."""
    data = (np.random.default_rng(5).random((10, 12, 14)) * 255).astype(np.uint8)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"})
    return bytearray(path.read_bytes())


@pytest.mark.parametrize("how", ["tag lost", "zero"])
def test_a_zero_height_page_is_refused_as_holding_no_pixels(tmp_path, how):
    path = tmp_path / "zero.tif"
    raw = _imagej_u8(path)
    e = _tag_entry(raw, 8, 257)  # ImageLength of the first page
    if how == "tag lost":  # the audit's file: its code's high byte changed, tifffile reads shape (10, 0, 14)
        raw[e + 1] = 229
    else:
        struct.pack_into("<H", raw, e + 8, 0)
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=r"zero.tif holds no pixels: its shape is \(10, 0, 14\), axis Y of"):
        read_volume(path)


def test_a_zarr_with_an_empty_axis_is_refused(tmp_path):
    import zarr

    zarr.open_array(str(tmp_path / "e.zarr"), mode="w", shape=(4, 0, 5), dtype="u2")
    with pytest.raises(FileFormatError, match=r"holds no pixels.*axis Y of size 0"):
        read_volume(tmp_path / "e.zarr")


def test_a_header_that_skips_the_first_slice_is_refused_not_read_short(tmp_path):
    """The audit's file: only header byte 4 changed (first IFD 8 -> 176); 10 pages, 9 were read."""
    path = tmp_path / "short.tif"
    raw = _imagej_u8(path)
    raw[4] = 176
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="short.tif is truncated or damaged: 9 of 10 slices readable"):
        read_volume(path)


@pytest.mark.parametrize("layout", ["ome", "imagej", "generic", "bigtiff", "big-endian", "tiled"])
@pytest.mark.parametrize("target", [1, 4, "cut"])
def test_slices_a_broken_link_no_longer_reaches_are_counted(tmp_path, layout, target):
    """The header pointing at a later slice, or a slice's next-IFD offset set to 0: the file
    still holds every slice, the chain reaches fewer, tifffile reads fewer without a word."""
    data = (np.random.default_rng(2).random((6, 16, 18)) * 1000).astype(np.uint16)
    path = tmp_path / f"{layout}.tif"
    kwargs = {"ome": dict(ome=True, metadata={"axes": "ZYX"}), "imagej": dict(imagej=True, metadata={"axes": "ZYX"}),
              "generic": dict(metadata=None), "bigtiff": dict(bigtiff=True), "big-endian": dict(byteorder=">"),
              "tiled": dict(tile=(16, 16), metadata=None)}[layout]
    tifffile.imwrite(path, data, **kwargs)
    with tifffile.TiffFile(path) as tif:
        offsets, fmt = [p.offset for p in tif.pages], tif.tiff
    raw = bytearray(path.read_bytes())
    if target == "cut":  # the third slice's next-IFD offset
        with tifffile.TiffFile(path) as tif:
            at = tif.pages[2].offset + fmt.tagnosize + len(tif.pages[2].tags) * fmt.tagsize
        struct.pack_into(fmt.byteorder + fmt.offsetformat[-1], raw, at, 0)
        readable = 3
    else:
        struct.pack_into(fmt.byteorder + fmt.offsetformat[-1], raw, 8 if fmt.is_bigtiff else 4, offsets[target])
        readable = 6 - target
    path.write_bytes(bytes(raw))
    if target == "cut" and layout in ("bigtiff", "big-endian"):  # shaped, one block of pixels: still whole
        np.testing.assert_array_equal(read_volume(path).data, data)
        return
    with pytest.raises(FileFormatError, match=f"{readable} of 6 slices readable"):
        read_volume(path)


def _legitimate_layouts(folder, data):
    """Files tifffile writes that hold more than one series, reduced levels or a thumbnail."""
    with tifffile.TiffWriter(folder / "ome2.ome.tif", ome=True) as w:  # two OME images
        w.write(data, metadata={"axes": "ZYX"})
        w.write(data[:2, :8, :8], metadata={"axes": "ZYX"})
    with tifffile.TiffWriter(folder / "shaped2.tif") as w:  # two shaped series
        w.write(data)
        w.write(data[:2, :8, :8])
    with tifffile.TiffWriter(folder / "pyramid.tif") as w:  # a reduced-resolution SubIFD pyramid
        w.write(data, subifds=2, tile=(16, 16))
        w.write(data[:, ::2, ::2], subfiletype=1, tile=(16, 16))
        w.write(data[:, ::4, ::4], subfiletype=1, tile=(16, 16))
    with tifffile.TiffWriter(folder / "omepyr.ome.tif", ome=True) as w:  # the same in OME
        w.write(data, subifds=1, metadata={"axes": "ZYX"})
        w.write(data[:, ::2, ::2], subfiletype=1)
    with tifffile.TiffWriter(folder / "thumb.tif") as w:  # a thumbnail page after the stack
        w.write(data, photometric="minisblack")
        w.write(data[0, ::4, ::4], subfiletype=1)
    tifffile.imwrite(folder / "ij_tzyx.tif", data[None], imagej=True, metadata={"axes": "TZYX"})
    # An ImageJ "virtual" stack (as ImageJ saves files over 4 GB): one IFD, then every slice's pixels.
    tifffile.imwrite(folder / "ij_virtual.tif", data, imagej=True, metadata={"axes": "ZYX"})
    with tifffile.TiffFile(folder / "ij_virtual.tif") as tif:
        first, fmt = tif.pages[0], tif.tiff
        link, end = first.offset + fmt.tagnosize + len(first.tags) * fmt.tagsize, first.dataoffsets[0] + data.nbytes
    raw = bytearray((folder / "ij_virtual.tif").read_bytes())
    struct.pack_into("<I", raw, link, 0)
    (folder / "ij_virtual.tif").write_bytes(bytes(raw[:end]))
    tifffile.imwrite(folder / "big_ome.tif", data, ome=True, bigtiff=True, tile=(16, 16), compression="zlib",
                     metadata={"axes": "ZYX"})
    with tifffile.TiffWriter(folder / "pages.tif") as w:  # pages appended one by one
        for plane in data:
            w.write(plane, contiguous=False, metadata=None)
    return sorted(folder.glob("*.tif"))


def test_legitimate_multi_series_pyramid_and_thumbnail_files_are_read(tmp_path):
    data = (np.random.default_rng(3).random((6, 32, 36)) * 1000).astype(np.uint16)
    for path in _legitimate_layouts(tmp_path, data):
        np.testing.assert_array_equal(read_volume(path).data, data, err_msg=path.name)
    # An ImageJ hyperstack with channels is refused for its channels, not as damaged.
    tifffile.imwrite(tmp_path / "zcyx.tif", np.stack([data, data], 1), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(InputError, match="channel"):
        read_volume(tmp_path / "zcyx.tif")


# ----------------------------------------------------------------------------- outputs (issue 13)


def test_overwrite_replaces_only_a_zarr_store_not_any_folder_named_zarr(tmp_path, vol):
    folder = tmp_path / "notes.zarr"
    folder.mkdir()
    (folder / "thesis.docx").write_bytes(b"years of work")
    with pytest.raises(FileFormatError, match="not a zarr store.*left untouched"):
        write_volume(folder, vol, 1.0, overwrite=True)
    assert (folder / "thesis.docx").read_bytes() == b"years of work"
    # A folder where a TIFF should go is not replaced either.
    (tmp_path / "out.tif").mkdir()
    with pytest.raises(FileFormatError, match="is a folder, not a file"):
        write_volume(tmp_path / "out.tif", vol, 1.0, overwrite=True)


@pytest.mark.parametrize("name", ["race.tif", "race.zarr"])
def test_an_output_that_appears_while_a_job_runs_is_not_replaced(tmp_path, vol, name):
    import shutil

    from napari_resolve.io import atomic_path

    ours = tmp_path / "work" / name
    ours.parent.mkdir()
    write_volume(ours, vol, 1.0)  # this job's result, as its writer would put it at the temporary path
    path = tmp_path / name
    with pytest.raises(FileFormatError, match="appeared while this job ran.*saved as race-2"):
        with atomic_path(path) as tmp:
            (shutil.copytree if ours.is_dir() else shutil.copy)(ours, tmp)
            write_volume(path, vol * 0, 2.0)  # another job finishes first
    assert read_volume(path).voxel_um[0] == 2.0  # the other result stands
    kept = tmp_path / name.replace("race", "race-2")
    np.testing.assert_allclose(np.asarray(read_volume(kept).data), vol)  # and this one is not lost
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_output_under_a_regular_file_says_the_file_is_no_folder(tmp_path, vol):
    from napari_resolve.io import check_output

    (tmp_path / "afile").write_text("notes")
    for out in (tmp_path / "afile" / "o.tif", tmp_path / "afile" / "sub" / "o.tif"):
        with pytest.raises(FileFormatError, match=r"afile is a file, not a folder, so o.tif cannot be written in it.*"
                                                  r"Choose another out_path") as err:
            check_output(out, parameter="out_path")
        assert err.value.parameters == ("out_path",)
    with pytest.raises(FileFormatError, match="folder .*missing does not exist"):
        write_volume(tmp_path / "missing" / "o.tif", vol, 1.0)
    assert (tmp_path / "afile").read_text() == "notes"


def test_a_folder_that_accepts_no_new_file_is_refused_before_any_work(tmp_path, monkeypatch):
    """A read-only file system (EROFS; as root permission bits stop nothing) and /proc: a clear
    message naming the parameter, where writing the temporary output would fail with a raw errno."""
    import errno
    import tempfile

    from napari_resolve.io import check_output

    if Path("/proc/self").is_dir():  # a real folder that takes no new file
        with pytest.raises(FileFormatError, match=r"The folder /proc does not accept new files \(.*\), so m.pt"):
            check_output("/proc/m.pt")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(FileFormatError, match=r"does not accept new files \(Read-only file system\).*another "
                                              r"labels") as err:
        check_output(tmp_path / "o.tif", parameter="labels")
    assert err.value.parameters == ("labels",) and list(tmp_path.iterdir()) == []


def test_the_output_check_leaves_no_probe_behind(tmp_path):
    from napari_resolve.io import check_output

    check_output(tmp_path / "o.tif")
    assert list(tmp_path.iterdir()) == []


def test_the_file_size_limit_is_read_from_the_process(tmp_path):
    """RLIMIT_FSIZE as ``ulimit -f 100`` sets it, in a child process."""
    import subprocess
    import sys

    code = ("import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (102400, resource.RLIM_INFINITY)); "
            "from napari_resolve.outputs import check_room, file_size_limit; print(file_size_limit()); "
            "check_room('m.pt', 2**20)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[0] == "102400"
    assert "FileFormatError: m.pt (output) will be about 1.0 MiB" in proc.stderr and "is 0.1 MiB" in proc.stderr
