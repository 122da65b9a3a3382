"""What a TIFF must show before its pixels are trusted: damage that tifffile reads as less data.

tifffile recovers from a broken file by reading what it can: a truncated stack comes
back as its first slices, a header or next-slice offset that points to the wrong place
drops the slices before or after it, a slice whose size changed becomes a series of its
own. :func:`check_tiff_complete` compares what was parsed with what the file's
structure and metadata promise and raises :class:`~napari_resolve.errors.FileFormatError`
("N of M slices readable") instead of returning a shorter volume.

The IFD walk here (:func:`_walk`) reads only the TIFF structure (header, IFDs, their
out-of-line values and the byte ranges of their strips or tiles), never pixels, so it
costs a few reads per slice.
"""

from __future__ import annotations

import logging
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from napari_resolve._text import format_bytes
from napari_resolve.errors import FileFormatError

__all__ = ["DAMAGE", "TiffLog", "check_tiff_complete", "damage_text"]

#: What tifffile logs when a file's structure points past its end or is broken.
DAMAGE = ("invalid page offset", "invalid value offset", "raised", "truncat", "corrupt", "invalid tag",
          "incorrect", "does not match", "out of bounds", "invalid offset", "circular")
#: Largest decoded size accepted per byte of a compressed file before decoding (a
#: damaged header can promise terabytes); well above any real compression ratio.
_MAX_INFLATION = 2000
#: Bytes per item of each TIFF data type (TIFF 6 and BigTIFF).
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
#: Most IFDs followed per file, and most tags per IFD taken as a real IFD.
_MAX_IFDS, _MAX_TAGS = 1_000_000, 1000


class TiffLog(logging.Handler):
    """Collects what tifffile logs while a file is parsed.

    tifffile recovers from a broken structure (an IFD or tag value past the end of
    the file) by logging and reading less: a truncated 3D file comes back as its
    first slice. What it logs is the only sign, so it is turned into an error here.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def damage_text(logged: str, size: int) -> str:
    """tifffile's log line about a broken structure, in words."""
    m = re.search(r"invalid (page|value) offset (\d+)", logged)
    if m:
        what = "the entry of the next slice" if m[1] == "page" else "its metadata"
        return f"{what}, at byte {int(m[2]):,}, runs past the end of the file ({size:,} bytes)"
    return logged


def _promised_planes(tif) -> int | None:
    """How many image planes the file's OME or ImageJ metadata says it holds (None: it does not say)."""
    try:
        if tif.is_ome and tif.ome_metadata:
            root = ET.fromstring(tif.ome_metadata)
            pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
            if pixels is not None:
                # Colour samples of one pixel (RGB) share a plane; other channels have their own.
                channels = int(pixels.get("SizeC", 1)) if tif.pages[0].samplesperpixel == 1 else 1
                n = int(pixels.get("SizeZ", 1)) * int(pixels.get("SizeT", 1)) * channels
                return n
        if tif.is_imagej and tif.imagej_metadata:
            return int(tif.imagej_metadata.get("images", 1))
    except (ET.ParseError, ValueError, TypeError, AttributeError):
        return None
    return None


# --------------------------------------------------------------------------- the IFD structure


class _Format:
    """Byte order and field sizes of a classic TIFF or a BigTIFF, from its header."""

    def __init__(self, head: bytes) -> None:
        self.bo = "<" if head[:2] == b"II" else ">"
        self.big = struct.unpack(self.bo + "H", head[2:4])[0] == 43
        self.off, self.no, self.entry = ("Q", 8, 20) if self.big else ("I", 2, 12)
        self.count = "Q" if self.big else "I"
        self.first = struct.unpack(self.bo + self.off, head[8:16] if self.big else head[4:8])[0]


class _Ifd:
    """One parsed IFD: its tags (code -> (type, count, value position)), next offset, byte span."""

    def __init__(self, offset: int, tags: dict, next_offset: int, end: int) -> None:
        self.offset, self.tags, self.next, self.end = offset, tags, next_offset, end


def _read_ifd(fh, fmt: _Format, offset: int, size: int) -> _Ifd | None:
    """The IFD at ``offset``, or None when the bytes there are not a plausible IFD."""
    if offset < 8 or offset + fmt.no > size:
        return None
    fh.seek(offset)
    n = struct.unpack(fmt.bo + ("Q" if fmt.big else "H"), fh.read(fmt.no))[0]
    end = offset + fmt.no + n * fmt.entry + (8 if fmt.big else 4)
    if not 0 < n <= _MAX_TAGS or end > size:
        return None
    raw = fh.read(end - offset - fmt.no)
    inline = 8 if fmt.big else 4
    tags, last = {}, -1
    for k in range(n):
        e = raw[k * fmt.entry : (k + 1) * fmt.entry]
        code, dtype = struct.unpack(fmt.bo + "HH", e[:4])
        count = struct.unpack(fmt.bo + fmt.count, e[4 : 4 + inline])[0]
        if dtype not in _TYPE_SIZE or code <= last:  # tags are sorted by code in every real IFD
            return None
        last = code
        nbytes = count * _TYPE_SIZE[dtype]
        at = offset + fmt.no + k * fmt.entry + 4 + inline
        if nbytes > inline:
            at = struct.unpack(fmt.bo + fmt.off, e[4 + inline :])[0]
        tags[code] = (dtype, count, at, nbytes)
    return _Ifd(offset, tags, struct.unpack(fmt.bo + fmt.off, raw[-inline:])[0], end)


def _values(fh, fmt: _Format, tag, size: int) -> np.ndarray:
    """The integer values of a tag (strip offsets, byte counts, SubIFD offsets)."""
    dtype, count, at, nbytes = tag
    kinds = {3: "u2", 4: "u4", 13: "u4", 16: "u8", 17: "u8", 18: "u8", 8: "u2", 9: "u4", 1: "u1"}
    if dtype not in kinds or at + nbytes > size or count > 50_000_000:
        return np.zeros(0, np.int64)
    fh.seek(at)
    return np.frombuffer(fh.read(nbytes), dtype=fmt.bo + kinds[dtype]).astype(np.int64)


def _spans(fh, fmt: _Format, ifd: _Ifd, size: int) -> list[tuple[int, int]]:
    """The byte ranges an IFD uses: itself, its out-of-line values and its strips or tiles."""
    spans = [(ifd.offset, ifd.end)]
    inline = 8 if fmt.big else 4
    spans += [(at, at + nb) for _, _, at, nb in ifd.tags.values() if nb > inline and at + nb <= size]
    for offsets, counts in ((273, 279), (324, 325)):
        if offsets in ifd.tags and counts in ifd.tags:
            o, c = _values(fh, fmt, ifd.tags[offsets], size), _values(fh, fmt, ifd.tags[counts], size)
            m = min(len(o), len(c))
            spans += [(int(a), int(a + b)) for a, b in zip(o[:m], c[:m]) if b > 0 and a + b <= size]
    return spans


def _is_image(fh, fmt: _Format, ifd: _Ifd | None, size: int) -> bool:
    """An IFD of a full-resolution image (width, length, and not a reduced image or mask)."""
    if ifd is None or 256 not in ifd.tags or 257 not in ifd.tags:
        return False
    subtype = _values(fh, fmt, ifd.tags[254], size) if 254 in ifd.tags else np.zeros(1, np.int64)
    return not (len(subtype) and int(subtype[0]) & 5)


def _candidates(fh, fmt: _Format, gaps: list[tuple[int, int]]):
    """Positions in ``gaps`` where an IFD could start: a tag count of 1-1000, then tag 254, 255 or 256.

    A lost slice's IFD starts a gap (pages written one after the other) or lies near
    the file's end (pages written as one block of pixels, then their IFDs), so the
    first 64 KiB and the last 1 MiB of each gap are searched, at most 4096 positions in all.
    """
    found = 0
    for a, b in gaps:
        for lo, hi in sorted({(a, min(b, a + 2**16)), (max(a, b - 2**20), b)}):
            fh.seek(lo)
            raw = np.frombuffer(fh.read(hi - lo), np.uint8).astype(np.int64)
            n = len(raw) - fmt.no - 2  # positions with room for a count and a tag code
            if n <= 0:
                continue
            byte = [raw[k : n + k] for k in range(fmt.no + 2)]
            if fmt.bo == ">":
                byte = byte[fmt.no - 2 : fmt.no][::-1] + byte[fmt.no :][::-1] + byte[: fmt.no - 2]
            else:
                byte = byte[:2] + byte[fmt.no : fmt.no + 2] + byte[2 : fmt.no]
            # byte: count's low and high byte, the code's low and high byte, the count's other bytes
            count, code = byte[0] | byte[1] << 8, byte[2] | byte[3] << 8
            if fmt.big:  # a 64-bit count: its six high bytes are zero
                count = np.where(sum(byte[4:]) == 0, count, 0)
            for k in np.flatnonzero((count > 0) & (count <= _MAX_TAGS) & (code >= 254) & (code <= 256)):
                if found == 4096:
                    return
                found += 1
                yield lo + int(k)


def _walk(fh, size: int, reached: list[int]) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """Follow the file's IFDs: (image IFDs reached, image IFDs no offset leads to, (width, length) per IFD).

    ``reached`` are the IFDs tifffile found (its pages); the walk starts from them and the header.
    An image IFD in a byte range no reached structure uses is a slice whose link (the
    header's first offset or the previous slice's next offset) was broken: the file
    holds it, the chain no longer reaches it. "Image" means full resolution: reduced
    levels and masks are not counted.
    """
    fh.seek(0)
    fmt = _Format(fh.read(16))
    spans: list[tuple[int, int]] = [(0, 16 if fmt.big else 8)]
    dims: dict[int, tuple[int, int]] = {}
    seen: set[int] = set()
    slices: set[int] = set()  # full-resolution image IFDs

    def follow(offset: int) -> None:
        queue = [offset]
        while queue and len(seen) < _MAX_IFDS:
            at = queue.pop()
            ifd = None if at in seen else _read_ifd(fh, fmt, at, size)
            if ifd is None:
                continue
            seen.add(at)
            if _is_image(fh, fmt, ifd, size):
                slices.add(at)
            spans.extend(_spans(fh, fmt, ifd, size))
            if 256 in ifd.tags and 257 in ifd.tags:
                w, h = (_values(fh, fmt, ifd.tags[c], size) for c in (256, 257))
                dims[at] = (int(w[0]) if len(w) else -1, int(h[0]) if len(h) else -1)
            if 330 in ifd.tags:  # SubIFDs (reduced-resolution levels): used, not slices
                queue.extend(int(v) for v in _values(fh, fmt, ifd.tags[330], size))
            if ifd.next:
                queue.append(ifd.next)

    for offset in (fmt.first, *reached):
        follow(offset)
    found = len(slices)
    # Gaps in the used bytes: an image IFD in one is a slice whose link was broken.
    gaps, end = [], 0
    for a, b in sorted(spans):
        if a > end:
            gaps.append((end, a))
        end = max(end, b)
    if end < size:
        gaps.append((end, size))
    for at in _candidates(fh, fmt, gaps):
        if at not in seen and _is_image(fh, fmt, _read_ifd(fh, fmt, at, size), size):
            follow(at)
    return found, len(slices) - found, dims


# --------------------------------------------------------------------------- the check


def check_tiff_complete(path: Path, tif, series, size: int, logged: list[str]) -> None:
    """Refuse a file whose pages, metadata or structure promise more than ``series`` holds.

    Parameters
    ----------
    path : Path
        The file (for the message).
    tif : tifffile.TiffFile
        The open file.
    series : tifffile.TiffPageSeries
        The series that will be read (the first).
    size : int
        The file's size in bytes.
    logged : list of str
        What tifffile logged while parsing.

    Raises
    ------
    FileFormatError
        "N of M slices readable" when slices are missing, or when the header describes far
        more pixels than the file could hold.
    """
    pages, ended = [], False
    try:
        pages.extend(series.pages or [])
    except IndexError:  # an ImageJ series longer than the IFD chain: the slices past its end are lost
        pages.append(None)
        ended = True
    readable = 0
    for page in pages:
        if page is None:
            break
        offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
        if any(o + c > size for o, c in zip(offsets, counts)) or (offsets and not any(counts)):
            break
        readable += 1
    planes = max(1, int(np.prod(series.shape[: -2 if series.axes[-1:] != "S" else -3] or [1])))
    promised = _promised_planes(tif)
    total = max(planes, promised or 0, len(pages))
    chain = [m for m in logged if "invalid page offset" in m.lower()]
    if readable < len(pages) or (promised and promised > planes) or chain:
        what = f"{readable} of {total} slices readable" if total > readable else f"only {readable} slice(s) readable"
        if chain:
            what += f"; {damage_text(chain[0], size)}"
        elif ended:
            what += f"; the chain of slice entries ends after slice {readable}"
        elif readable < len(pages):
            what += f"; the image data run past its end ({size:,} bytes)"
        raise FileFormatError(f"{path.name} is truncated or damaged: {what}. Copy or export it again.")
    _check_structure(path, tif, series, pages, size, planes)
    nbytes = int(np.prod(series.shape, dtype=np.float64)) * series.dtype.itemsize
    if nbytes > max(size, 1) * _MAX_INFLATION:
        raise FileFormatError(
            f"{path.name}: its header describes {format_bytes(nbytes)} of image data in a file of "
            f"{format_bytes(size)}; the file is damaged. Copy or export it again."
        )


def _check_structure(path: Path, tif, series, pages: list, size: int, planes: int) -> None:
    """Slices the file holds outside the series read (``pages``), or whose size differs from the series'."""
    damaged = f"{path.name} is truncated or damaged"
    # A generic stack split in two because one slice's size changed.
    split = [s for s in tif.series[1:] if s.kind == "generic" and not (s.keyframe.subfiletype & 5)]
    if series.kind == "generic" and split:
        other = ", ".join(f"{len(s.pages)} of {s.keyframe.shape}" for s in split)
        raise FileFormatError(
            f"{damaged}: its slices do not share one size ({len(pages)} of {series.keyframe.shape} and {other} "
            "pixels), so they are not one volume. Copy or export it again, or save each image as its own file."
        )
    # Slices no series holds: a page the chain reaches that tifffile could not place.
    held = {p.offset for p in pages if p is not None}
    held |= {p.offset for s in tif.series[1:] for p in s.pages if p is not None}
    listed = tif.pages[:]  # not iter(tif.pages): it loops forever on a circular chain
    stray = [p for p in listed if p.offset not in held and not (getattr(p, "subfiletype", 0) or 0) & 5]
    found, lost, dims = (0, 0, {}) if tif.tiff.is_ndpi else _walk(tif.filehandle, size, [p.offset for p in listed])
    # The slices the file holds for this series; a series read from one block of pixels (a
    # shaped or ImageJ file) can still be whole when its later slices' entries are unlinked.
    others = sum(len(s.pages) for s in tif.series[1:] if not s.keyframe.subfiletype & 5)
    virtual = planes - sum(p is not None for p in pages)  # slices read from the block, not from a page
    missing = max(found + lost - others - planes if lost else 0, len(stray) - max(virtual, 0))
    if missing > 0:
        link = ("; the header or a slice's link to the next one no longer reaches "
                f"{lost} slice(s) the file holds" if lost else "; some slices' entries are broken")
        raise FileFormatError(f"{damaged}: {planes} of {planes + missing} slices readable{link}. "
                              "Copy or export it again.")
    want = (series.keyframe.imagewidth, series.keyframe.imagelength)
    odd = [(i, dims[p.offset]) for i, p in enumerate(pages) if p is not None and dims.get(p.offset, want) != want]
    if odd:
        (i, (w, h)), n = odd[0], len(odd)
        raise FileFormatError(
            f"{damaged}: slice {i} says it is {w} x {h} pixels, the series {want[0]} x {want[1]} "
            f"({n} slice(s) differ). Copy or export it again."
        )
