"""Units and per-axis values: the one home of formatting and parsing (no Qt)."""

import pytest

from napari_resolve._text import (
    MICRO,
    format_bytes,
    format_duration,
    format_rate,
    format_shape,
    format_um,
    format_values,
    parse_per_axis,
    parse_point,
)
from napari_resolve._validate import per_axis, voxel_tuple
from napari_resolve.errors import InputError, VoxelSizeError


def test_lengths_shapes_and_compact_isotropic_values():
    assert format_um((3.0, 1.5, 1.5)) == "3 x 1.5 x 1.5 um"
    assert format_um((3, 3, 3), compact=True) == "3 um"
    assert format_um((1, 2), ", ", unit="") == "1, 2"
    assert format_um((0.123456, 2), digits=2, unit=MICRO) == "0.12 x 2.00 µm"
    assert format_values((3, 3, 3), "×", compact=True, spec=".3g") == "3"
    assert format_values((1, 2.5, 2.5), "×", compact=True) == "1×2.5×2.5"
    assert format_shape((48, 48, 48)) == "48 x 48 x 48"


@pytest.mark.parametrize(("seconds", "text"), [(12.4, "12 s"), (65, "1 min 05 s"), (3700, "1 h 01 min"), (-3, "0 s")])
def test_durations(seconds, text):
    assert format_duration(seconds) == text


def test_sizes_and_rates():
    assert format_bytes(3 * 2**30) == "3.00 GiB" and format_bytes(5 * 2**20) == "5.0 MiB"
    assert format_rate(2.5e6) == "2.50 M voxels/s" and format_rate(5e4) == "50.0 k voxels/s"


def test_typed_per_axis_values():
    assert parse_per_axis("3", 3, "voxel size") == (3.0, 3.0, 3.0)
    assert parse_per_axis("3; 1,1 µm", 3, "voxel size") == (3.0, 1.0, 1.0)
    for bad in ("", "abc", "1 2", "0", "-1, 1, 1", "nan"):
        with pytest.raises(InputError, match="voxel size must be one positive number"):
            parse_per_axis(bad, 3, "voxel size")
    assert parse_point("  ", 3, "offset") is None
    assert parse_point("1, -2, 3 um", 3, "offset") == (1.0, -2.0, 3.0)
    with pytest.raises(InputError, match="3 numbers"):
        parse_point("1, 2", 3, "offset")


def test_numeric_per_axis_values_and_voxel_sizes():
    assert per_axis(2, 3, "The radius") == (2.0, 2.0, 2.0)
    assert per_axis([-1, 0, 1], 3, "The offset", minimum="any") == (-1.0, 0.0, 1.0)
    with pytest.raises(InputError, match="The radius must be finite and non-negative"):
        per_axis([-1, 0, 1], 3, "The radius", minimum="non-negative")
    with pytest.raises(InputError, match="2 values"):
        per_axis([1, 2], 3, "The radius")
    with pytest.raises(VoxelSizeError, match="positive"):
        voxel_tuple([1, 0, 1], 3, "LRES voxel size")
    with pytest.raises(VoxelSizeError) as missing:
        voxel_tuple(None, 3, "LRES voxel size")
    # The message names the parameter; the command line shows it as a flag, a widget as a label.
    assert "lres_voxel_um" in str(missing.value)
    assert "--lres-voxel" in missing.value.render(lambda p: "--" + p.removesuffix("_um").replace("_", "-"))
