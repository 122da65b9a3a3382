"""Read and write volumes with their voxel size (um) and origin (um, LRES frame).

Formats
-------
* TIFF / OME-TIFF (tifffile): voxel size from OME ``PhysicalSize{X,Y,Z}`` (+ unit),
  or ImageJ ``spacing`` (z) and X/YResolution with the ImageJ ``unit``, or a
  resolution in centimetres. A resolution in inches (72 or 300 "dpi" written by
  image editors) says nothing about a microscope, so it is treated as unknown.
  The origin is read from the first OME ``Plane`` position when present.
* zarr (a directory ``*.zarr``): a bare array, or an OME-NGFF style group whose
  ``multiscales`` metadata gives ``scale`` and ``translation`` transforms. Data
  stay lazy (a ``zarr.Array``), so big volumes are not loaded by reading.

2D images are returned as 2D arrays with 2-element voxel sizes; the core
functions treat them as one-slice volumes. Writes go to a temporary name in the
target folder and are renamed when complete, so an interrupted write never
leaves a half-written file under the user's name, and an existing file is only
replaced when ``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from napari_resolve._validate import voxel_tuple
from napari_resolve.errors import FileFormatError, InputError, VoxelSizeError
from napari_resolve.outputs import ZARR_SUFFIXES, _looks_like_zarr, atomic_path, check_output
from napari_resolve.pyramid import create_pyramid, multiscales_attrs
from napari_resolve.tiff_checks import DAMAGE, TiffLog, check_tiff_complete, damage_text

__all__ = [  # check_output and atomic_path live in outputs.py; they are part of this module's API too
    "TIFF_SUFFIXES", "ZARR_SUFFIXES", "Volume", "atomic_path", "check_output", "create_zarr", "json_safe",
    "ome_metadata", "open_lazily", "read_volume", "unit_to_um", "write_json", "write_volume", "zarr_geometry_attrs",
]

TIFF_SUFFIXES = (".tif", ".tiff")

# Conversion factors to micrometres for the unit spellings found in OME,
# ImageJ and NGFF metadata.
_UNIT_TO_UM = {
    "m": 1e6, "meter": 1e6, "metre": 1e6,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "\\u00b5m": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "pm": 1e-6, "picometer": 1e-6,
    "å": 1e-4, "angstrom": 1e-4, "Å": 1e-4,
}


def unit_to_um(unit: str | None) -> float | None:
    """Factor that converts a length in ``unit`` to micrometres (None if unknown)."""
    if unit is None:
        return None
    return _UNIT_TO_UM.get(str(unit).strip().lower(), _UNIT_TO_UM.get(str(unit).strip()))


@dataclass
class Volume:
    """An image volume with its physical geometry.

    Attributes
    ----------
    data : array-like
        (z, y, x) or (y, x) voxels; a numpy array or a lazy ``zarr.Array``.
    voxel_um : tuple of float or None
        Voxel size in micrometres per axis; None when the file did not say.
    origin_um : tuple of float
        Position (um) of the centre of voxel 0, i.e. the napari ``translate``.
    name : str
        A short name (file stem by default).
    source : str or None
        The file it was read from.
    metadata : dict
        Anything else worth keeping (format, original unit...).
    """

    data: Any
    voxel_um: tuple[float, ...] | None = None
    origin_um: tuple[float, ...] | None = None
    name: str = ""
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.origin_um is None:
            self.origin_um = (0.0,) * self.ndim
        if self.voxel_um is not None:
            self.voxel_um = voxel_tuple(self.voxel_um, self.ndim, f"voxel size of {self.label}")

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def label(self) -> str:
        return self.name or self.source or "the volume"

    def require_voxel(self) -> tuple[float, ...]:
        """Return the voxel size, or raise a message telling the user to give it."""
        if self.voxel_um is None:
            raise VoxelSizeError(
                f"The voxel size of {self.label} is unknown: its file has no physical-size "
                "metadata. Give it ({voxel_um}) explicitly in micrometres, e.g. 3.",
                parameters=("voxel_um",),
            )
        return self.voxel_um

    def with_voxel(self, voxel_um) -> Volume:
        """A copy with the voxel size replaced (the data are shared, not copied)."""
        return replace(self, voxel_um=voxel_tuple(voxel_um, self.ndim, f"voxel size of {self.label}"))


# --------------------------------------------------------------------------- reading


def read_volume(path: str | os.PathLike, *, voxel_um=None) -> Volume:
    """Read a 2D/3D TIFF, OME-TIFF or zarr volume with its voxel size.

    Parameters
    ----------
    path : str or path-like
        A ``.tif``/``.tiff``/``.ome.tif`` file or a ``.zarr`` directory.
    voxel_um : float or sequence of float, optional
        Voxel size in um that overrides whatever the file says.

    Returns
    -------
    Volume
        TIFF data are loaded into memory; zarr data stay lazy.

    Raises
    ------
    FileFormatError
        If the file does not exist, is not a supported format or is corrupt.
    InputError
        If the image has channels or time points (more than 3 non-singleton axes).
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path} does not exist. Check the path.")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        vol = _read_tiff(path)
    elif suffix in ZARR_SUFFIXES or (path.is_dir() and _looks_like_zarr(path)):
        vol = _read_zarr(path)
    else:
        raise FileFormatError(
            f"{path.name}: unsupported file type {suffix!r}. napari-resolve reads "
            "TIFF/OME-TIFF (.tif, .tiff) and zarr (.zarr) volumes."
        )
    if voxel_um is not None:
        vol = vol.with_voxel(voxel_um)
    return vol


def _squeeze_axes(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Drop singleton axes; refuse real channel, time and colour axes.

    tifffile names unlabelled stack axes with letters such as Q, I or S, so the
    remaining 2 or 3 axes are taken as (z,) y, x by position.
    """
    _refuse_empty(data.shape, axes, path)
    keep = [i for i, n in enumerate(data.shape) if n > 1]
    if len(keep) < 2:  # a 1-pixel-wide image: keep the last two axes anyway
        keep = list(range(data.ndim))[-2:]
    named = {"C": "channel", "T": "time"}
    bad = [named[axes[i]] for i in keep if axes[i] in named]
    if axes and axes[-1] == "S" and data.shape[-1] in (3, 4):
        bad.append("colour (RGB)")
    if bad or len(keep) > 3:
        what = ", ".join(bad) if bad else f"{len(keep)} non-singleton"
        raise InputError(
            f"{path.name} has axes {axes} with shape {data.shape}: {what} axes cannot be "
            "upscaled as one volume. Save a single grey-value channel and time point "
            "as its own file first."
        )
    squeeze = tuple(i for i in range(data.ndim) if i not in keep)
    data = data.squeeze(axis=squeeze) if squeeze else data
    if data.ndim < 2:
        raise InputError(
            f"{path.name} is a 1D array of {data.shape[0]} values; napari-resolve needs a 2D image or a 3D "
            "volume. Save the profile as an image, or open the image it came from."
        )
    return data


def _refuse_empty(shape: tuple[int, ...], axes: str, path: Path) -> None:
    """Refuse an image with an axis of size 0: it holds no pixels, whatever its other axes say."""
    if 0 in shape or not shape:
        empty = [axes[i] if len(axes) == len(shape) else str(i) for i, n in enumerate(shape) if n == 0]
        raise FileFormatError(
            f"{path.name} holds no pixels: its shape is {tuple(shape)}"
            + (f", axis {', '.join(empty)} of size 0" if empty else "")
            + ". The file is empty or damaged; copy or export it again."
        )


def _read_tiff(path: Path) -> Volume:
    import tifffile

    size = path.stat().st_size
    log = TiffLog()
    tlog = logging.getLogger("tifffile")
    tlog.addHandler(log)
    propagate, tlog.propagate = tlog.propagate, False  # its lines become our one message
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            _refuse_empty(series.shape, series.axes, path)
            check_tiff_complete(path, tif, series, size, log.messages)
            data = series.asarray()
            axes = series.axes
            voxel, origin, meta = _tiff_geometry(tif, axes)
        damage = [m for m in log.messages if any(k in m.lower() for k in DAMAGE)]
        if damage:
            raise FileFormatError(f"{path.name} is truncated or damaged: {damage_text(damage[0], size)}. "
                                  "Copy or export it again.")
        data = _squeeze_axes(data, axes, path)
    except (FileFormatError, InputError):
        raise
    except MemoryError:
        raise FileFormatError(
            f"{path.name}: its header describes an image too large for memory; the file is probably damaged. "
            "Re-export or copy it again."
        ) from None
    except Exception as exc:  # tifffile raises many types (TypeError, IndexError...) on a damaged file
        raise FileFormatError(
            f"{path.name} could not be read as a TIFF ({type(exc).__name__}: {exc}). The file may be corrupt "
            "or truncated; re-export it from the acquisition software."
        ) from exc
    finally:
        tlog.removeHandler(log)
        tlog.propagate = propagate
    # Geometry was gathered per spatial axis letter; the kept axes are (z,) y, x.
    spatial = "ZYX"[-data.ndim :]
    vox = None
    if voxel is not None and all(voxel.get(a) for a in spatial):
        vox = tuple(voxel[a] for a in spatial)
    elif voxel is not None:
        meta["voxel_warning"] = f"the file gives a voxel size for {sorted(voxel)} only"
    org = tuple(origin.get(a, 0.0) for a in spatial) if origin else None
    name = path.name.split(".")[0]
    return Volume(data=data, voxel_um=vox, origin_um=org, name=name, source=str(path), metadata=meta)


def _tiff_geometry(tif, axes: str) -> tuple[dict | None, dict | None, dict]:
    """Voxel size and origin (um) per axis letter from OME, ImageJ or TIFF tags."""
    meta: dict[str, Any] = {"format": "tiff"}
    if tif.is_ome and tif.ome_metadata:
        meta["format"] = "ome-tiff"
        try:
            return (*_ome_geometry(tif.ome_metadata), meta)
        except ET.ParseError:
            meta["ome_warning"] = "OME-XML could not be parsed"
    page = tif.pages[0]
    ij = tif.imagej_metadata or {}
    unit = ij.get("unit")
    factor = unit_to_um(unit)
    res_unit = page.tags.get("ResolutionUnit")
    res_unit = int(res_unit.value) if res_unit is not None else 1
    if factor is None and res_unit == 3:  # RESUNIT.CENTIMETER
        factor = 1e4
    if factor is None:
        return None, None, meta
    voxel = {}
    for ax, tag in (("X", "XResolution"), ("Y", "YResolution")):
        t = page.tags.get(tag)
        if t is not None:
            num, den = t.value
            if num > 0:
                voxel[ax] = den / num * factor
    if "spacing" in ij:
        voxel["Z"] = float(ij["spacing"]) * factor
    meta["unit"] = unit
    return voxel or None, None, meta


def _ome_geometry(xml: str) -> tuple[dict | None, dict | None]:
    root = ET.fromstring(xml)
    ns = {"ome": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
    pixels = root.find(".//ome:Pixels", ns) if ns else root.find(".//Pixels")
    if pixels is None:
        return None, None
    voxel = {}
    for ax in "XYZ":
        value = pixels.get(f"PhysicalSize{ax}")
        if value is not None:
            factor = unit_to_um(pixels.get(f"PhysicalSize{ax}Unit", "µm"))
            if factor is not None:
                voxel[ax] = float(value) * factor
    origin = {}
    plane = pixels.find("ome:Plane", ns) if ns else pixels.find("Plane")
    if plane is not None:
        for ax in "XYZ":
            value = plane.get(f"Position{ax}")
            factor = unit_to_um(plane.get(f"Position{ax}Unit", "µm"))
            if value is not None and factor is not None:
                origin[ax] = float(value) * factor
    return voxel or None, origin or None


def _ngff_level0(group, multiscales):
    """Full-resolution array, voxel size and origin (um) of an OME-NGFF group."""
    dataset = multiscales[0]["datasets"][0]
    array = group[dataset["path"]]
    # Axis units convert each transform to um; a missing unit means unknown.
    factors = [unit_to_um(ax.get("unit")) for ax in multiscales[0].get("axes", [])]
    known = bool(factors) and all(factors)
    voxel = origin = None
    for t in dataset.get("coordinateTransformations", []):
        if t["type"] == "scale" and known:
            voxel = [v * f for v, f in zip(t["scale"], factors)]
        elif t["type"] == "translation" and known:
            origin = [v * f for v, f in zip(t["translation"], factors)]
    return array, voxel, origin


def _read_zarr(path: Path) -> Volume:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises many types for a broken store
        raise FileFormatError(
            f"{path.name} could not be opened as zarr ({exc}). Check that it is a complete "
            "zarr array or OME-Zarr group."
        ) from exc
    voxel = origin = None
    meta: dict[str, Any] = {"format": "zarr"}
    attrs = dict(node.attrs)
    if isinstance(node, zarr.Array):
        array = node
        if "voxel_um" in attrs:
            voxel = tuple(attrs["voxel_um"])
            origin = tuple(attrs.get("origin_um", (0.0,) * array.ndim))
    elif not (ms := attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")):
        names = [name for name, _ in node.arrays()]
        if not names:
            raise FileFormatError(f"{path.name} is a zarr group without arrays.")
        array = node[names[0]]
    else:
        try:
            array, voxel, origin = _ngff_level0(node, ms)
            # The coarser levels of a pyramid, for a viewer that shows them lazily (napari's multiscale).
            meta["levels"] = [d["path"] for d in ms[0]["datasets"]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise FileFormatError(
                f"{path.name}: its OME-Zarr 'multiscales' metadata is incomplete ({exc!r}). "
                "Re-export it, or save the volume as a plain zarr array or OME-TIFF."
            ) from exc
    if array.ndim not in (2, 3):
        raise InputError(f"{path.name}: expected a 2D or 3D array, got shape {array.shape}.")
    _refuse_empty(tuple(array.shape), "ZYX"[-array.ndim :], path)
    return Volume(
        data=array,
        voxel_um=tuple(voxel[-array.ndim :]) if voxel else None,
        origin_um=tuple(origin[-array.ndim :]) if origin else None,
        name=path.name.split(".")[0],
        source=str(path),
        metadata=meta,
    )


def open_lazily(path: str | os.PathLike):
    """Open a volume written by the core without loading it: a zarr array (for .zarr and OME-TIFF alike).

    :func:`read_volume` loads TIFFs into memory; this reads only the chunks (or
    TIFF strips) that are sliced, for a viewer or a worker that needs one block.

    Parameters
    ----------
    path : path-like
        A ``.zarr`` folder or a ``.tif``/``.tiff`` file with contiguous or tiled pixel data.

    Returns
    -------
    zarr.Array
        Level 0 (full resolution) of a pyramid.

    Raises
    ------
    FileFormatError
        When the file cannot be opened.
    """
    path = Path(path)
    if path.suffix.lower() in ZARR_SUFFIXES:
        return read_volume(path).data
    import tifffile
    import zarr

    try:
        node = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    except Exception as exc:  # tifffile/zarr raise many types for a broken file
        raise FileFormatError(f"{path.name} could not be opened ({exc}).") from exc
    if not isinstance(node, zarr.Array):  # a pyramid: level 0 is the full resolution
        node = node["0"]
    return node


# --------------------------------------------------------------------------- writing


def write_volume(
    path: str | os.PathLike,
    data,
    voxel_um,
    *,
    origin_um=None,
    overwrite: bool = False,
    chunks: int | tuple[int, ...] | None = None,
) -> Path:
    """Write a 2D/3D array as OME-TIFF (``.tif``) or zarr (``.zarr``) with geometry.

    Parameters
    ----------
    path : str or path-like
        Target file; ``.tif``/``.tiff``/``.ome.tif`` or ``.zarr``.
    data : array-like
        (z, y, x) or (y, x) voxels. Any numeric dtype is kept.
    voxel_um : float or sequence of float
        Voxel size in micrometres.
    origin_um : sequence of float, optional
        Position (um) of the centre of voxel 0; default zeros.
    overwrite : bool
        Replace an existing file. Without it an existing file raises.
    chunks : int or tuple of int, optional
        zarr chunk shape (default 64 voxels a side).

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    data = data if hasattr(data, "shape") else np.asarray(data)
    ndim = len(data.shape)
    if ndim not in (2, 3):
        raise InputError(f"Only 2D or 3D images can be written, got shape {data.shape}.")
    voxel = voxel_tuple(voxel_um, ndim, "voxel size")
    origin = tuple(float(o) for o in origin_um) if origin_um is not None else (0.0,) * ndim
    suffix = path.suffix.lower()
    with atomic_path(path, overwrite=overwrite) as tmp:
        if suffix in TIFF_SUFFIXES:
            _write_ome_tiff(tmp, np.asarray(data), voxel, origin, path.name)
        elif suffix in ZARR_SUFFIXES:
            _write_zarr(tmp, data, voxel, origin, chunks)
        else:
            raise FileFormatError(
                f"{path.name}: cannot write {suffix!r}; use .tif (OME-TIFF) or .zarr."
            )
    return path


def ome_metadata(shape, voxel, origin, name: str) -> dict[str, Any]:
    """tifffile OME metadata: axes, physical voxel size and plane positions (um)."""
    ndim = len(shape)
    axes = "ZYX"[-ndim:]
    md: dict[str, Any] = {"axes": axes, "Name": name.split(".")[0]}
    for ax, v in zip(axes, voxel):
        md[f"PhysicalSize{ax}"] = float(v)
        md[f"PhysicalSize{ax}Unit"] = "µm"
    n_planes = shape[0] if ndim == 3 else 1
    z0 = origin[0] if ndim == 3 else 0.0
    dz = voxel[0] if ndim == 3 else 0.0
    md["Plane"] = {
        "PositionX": [origin[-1]] * n_planes,
        "PositionY": [origin[-2]] * n_planes,
        "PositionZ": [z0 + i * dz for i in range(n_planes)],
        "PositionXUnit": ["µm"] * n_planes,
        "PositionYUnit": ["µm"] * n_planes,
        "PositionZUnit": ["µm"] * n_planes,
    }
    return md


def _write_ome_tiff(path: Path, data: np.ndarray, voxel, origin, name: str) -> None:
    import tifffile

    md = ome_metadata(data.shape, voxel, origin, name)
    # BigTIFF above ~2 GB keeps large outputs readable.
    big = data.nbytes > 2**31 - 2**25
    tifffile.imwrite(path, data, ome=True, metadata=md, bigtiff=big, photometric="minisblack")


def zarr_geometry_attrs(ndim: int, voxel, origin) -> dict[str, Any]:
    """OME-NGFF ``multiscales`` attributes for one level (:func:`~napari_resolve.pyramid.multiscales_attrs`)."""
    return multiscales_attrs(ndim, voxel, origin)


def create_zarr(path: str | os.PathLike, shape, dtype, voxel_um, origin_um=None, chunks=None):
    """Create an empty zarr group with one array ``"0"`` and NGFF geometry.

    Used to stream outputs larger than memory slab by slab. Returns the array.
    """
    ndim = len(shape)
    voxel = voxel_tuple(voxel_um, ndim, "voxel size")
    origin = tuple(origin_um) if origin_um is not None else (0.0,) * ndim
    if chunks is None:
        chunks = 64
    if np.isscalar(chunks):
        chunks = tuple(min(int(chunks), s) for s in shape)
    return create_pyramid(path, tuple(shape), voxel, origin, chunks=chunks, levels=1, dtype=dtype)["0"]


def _write_zarr(path: Path, data, voxel, origin, chunks) -> None:
    array = create_zarr(path, data.shape, data.dtype, voxel, origin, chunks)
    # Copy slab by slab so a lazy source never has to fit in memory at once.
    step = array.chunks[0]
    for z in range(0, data.shape[0], step):
        array[z : z + step] = np.asarray(data[z : z + step])


def json_safe(value):
    """``value`` made JSON-ready: numpy values and paths made plain, non-finite floats ``None``.

    ``Infinity`` and ``NaN`` are not JSON; strict parsers reject them.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, payload: dict, *, overwrite: bool = True) -> Path:
    """Write strict JSON atomically (``overwrite`` defaults to True for reports)."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n")
    return path
