"""The common case fast: a well-formed JPEG's facts from bytes already in memory.

A scan reads every byte of a file anyway (to hash it), so the first megabytes are at hand. For a
JPEG whose header segments are all regular, this module reads the frame size, EXIF, XMP and IPTC
from those bytes with a few dozen `struct` calls instead of `Image.open` + `getexif` (which were
most of a scan's per-file cost). It mirrors what Pillow answers for the same bytes, field by field
(which tags Pillow keeps, how it decodes them, where it stops on damage), so both paths give the
same `Facts` (checked on the shared corpus, the benchmark's files and 19,500 mutated copies of
them, with `extract._extract(path, None, None)` as the reference: the general path).

Anything unusual raises `Unsupported`, and the caller takes the general Pillow path instead:
damaged or truncated headers, several SOF or EXIF segments, multi-picture (MPF) files, big-TIFF
EXIF, an EXIF pointer of an odd type, huge frames. Those are rare, and the general path already
knows how to report them.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from PIL import Image, IptcImagePlugin, JpegImagePlugin, TiffTags

from .exif import (
    _DTD,
    _DTO,
    _IFD0_DATETIME,
    _IFD0_MAKE,
    _IFD0_MODEL,
    _IFD0_ORIENTATION,
    _LENS_MODEL,
    _MAKERNOTE,
    _OFFSET,
    _OFFSET_D,
    _OFFSET_O,
    ExifInfo,
    _gps,
    apple_content_id,
    fill_texts,
    valid_orientation,
)


class Unsupported(Exception):
    """Not the simple, well-formed case: use the general path."""


_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
# markers Pillow's JPEG plugin knows and the fast path accepts before the first SOS
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_SKIPPED = frozenset({0xC4, 0xCC, 0xDD, 0xFE, *range(0xE0, 0xF0)})
_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(="|>)([0-9])')


@dataclass
class JpegHead:
    """What the segments before the first scan say; `scan_start` is where the image data starts."""

    width: int
    height: int
    scan_start: int
    exif: bytes | None = None  # APP1 "Exif\0\0" payload
    xmp: bytes | None = None  # the last XMP APP1, after its namespace (as Pillow keeps it)
    iptc: bytes | None = None  # Photoshop resource 0x0404 of APP13 (IPTC-IIM)


def parse_head(data: bytes) -> JpegHead:
    """Walk the marker segments of `data` (the start of a JPEG file) up to the first SOS.

    As strict as `jpeg.jpeg_problem` (every segment must follow the previous one) and refusing
    everything Pillow would refuse or treat specially.
    """
    if data[:3] != b"\xff\xd8\xff":
        raise Unsupported("no JPEG signature")
    size = len(data)
    pos = 2
    frame: tuple[int, int] | None = None
    exif = xmp = iptc = None
    icc_ok = True
    while True:
        if pos + 4 > size or data[pos] != 0xFF:
            raise Unsupported("segment structure")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        end = pos + 2 + length
        if length < 2 or end > size:
            raise Unsupported("segment length")
        if marker == 0xDA:
            if frame is None or not icc_ok:
                raise Unsupported("scan before frame")
            return JpegHead(frame[0], frame[1], end, exif, xmp, iptc)
        seg = data[pos + 4:end]
        if marker in _SOF:
            if frame is not None:
                raise Unsupported("several frames")
            if len(seg) < 6 or seg[0] != 8 or seg[5] not in (1, 3, 4):
                raise Unsupported("frame Pillow cannot open")
            frame = ((seg[3] << 8) | seg[4], (seg[1] << 8) | seg[2])
            if not (frame[0] and frame[1]):
                raise Unsupported("empty frame")
        elif marker == 0xDB:
            _check_dqt(seg)
        elif marker == 0xE1:
            if seg.startswith(b"Exif\x00\x00"):
                if exif is not None:
                    raise Unsupported("several EXIF segments")
                exif = seg
            elif seg.startswith(_XMP_ID):
                xmp = seg.split(b"\x00", 1)[1]
        elif marker == 0xE2:
            if seg.startswith(b"MPF\x00"):
                raise Unsupported("multi-picture file")
            if seg.startswith(b"ICC_PROFILE\x00") and len(seg) < 14:
                icc_ok = False
        elif marker == 0xED and seg.startswith(b"Photoshop 3.0\x00"):
            iptc = _photoshop_iptc(seg, iptc)
        elif marker == 0xE0 and seg.startswith(b"JFIF") and len(seg) < 7:
            raise Unsupported("short JFIF segment")
        elif marker == 0xEE and seg.startswith(b"Adobe") and len(seg) < 7:
            raise Unsupported("short Adobe segment")
        elif marker not in _SKIPPED:
            raise Unsupported(f"marker {marker:#x}")
        pos = end


def _check_dqt(seg: bytes) -> None:
    while seg:
        qt_length = 1 + (1 if seg[0] // 16 == 0 else 2) * 64
        if len(seg) < qt_length:
            raise Unsupported("bad quantization table")
        seg = seg[qt_length:]


def _photoshop_iptc(seg: bytes, current: bytes | None) -> bytes | None:
    """Resource 0x0404 of a Photoshop APP13, read the way Pillow's JPEG plugin reads it."""
    offset = 14
    try:
        while seg[offset:offset + 4] == b"8BIM":
            offset += 4
            (code,) = struct.unpack_from(">H", seg, offset)
            offset += 2
            if offset >= len(seg):
                raise Unsupported("Photoshop resource name")
            offset += 1 + seg[offset]
            offset += offset & 1
            (length,) = struct.unpack_from(">I", seg, offset)
            offset += 4
            block = seg[offset:offset + length]
            if code == 0x03ED and len(block) < 14:
                break  # Pillow stops at a short ResolutionInfo
            if code == 0x0404:
                current = block
            offset += length
            offset += offset & 1
    except struct.error:
        pass
    return current


def iptc_info(block: bytes) -> dict:
    """IPTC records of a 0x0404 resource, through Pillow's own IPTC parser."""
    im = JpegImagePlugin.JpegImageFile.__new__(JpegImagePlugin.JpegImageFile)
    im.info = {"photoshop": {0x0404: block}}
    return IptcImagePlugin.getiptcinfo(im) or {}


def frame_too_large(width: int, height: int) -> bool:
    """Pillow warns (and refuses at twice the size) above MAX_IMAGE_PIXELS: leave those to it."""
    limit = Image.MAX_IMAGE_PIXELS
    return limit is not None and width * height > limit


# ---------------------------------------------------------------- EXIF (TIFF structure)

# tag -> (unit size, struct code); 1/7 bytes, 2 text, 5/10 rationals, as Pillow registers them
_TYPES: dict[int, tuple[int, str]] = {
    1: (1, ""), 2: (1, ""), 3: (2, "H"), 4: (4, "L"), 5: (8, "L"), 6: (1, "b"), 7: (1, ""),
    8: (2, "h"), 9: (4, "l"), 10: (8, "l"), 11: (4, "f"), 12: (8, "d"), 13: (4, "L"), 16: (8, "Q"),
}
_WANTED: dict[int | None, tuple[int, ...]] = {
    None: (_IFD0_MAKE, _IFD0_MODEL, _IFD0_ORIENTATION, _IFD0_DATETIME, _DTO, _EXIF_IFD, _GPS_IFD),
    _EXIF_IFD: (_DTO, _DTD, _OFFSET, _OFFSET_O, _OFFSET_D, _LENS_MODEL, _MAKERNOTE),
    _GPS_IFD: (1, 2, 3, 4, 5, 6),
}
# tags whose TIFF spec says "one value": Pillow keeps only the first of several
_ONE_VALUE = {
    (group, tag) for group, tags in _WANTED.items() for tag in tags
    if TiffTags.lookup(tag, group).length == 1
}


class Rational:
    """An EXIF (signed) rational: what `exif.to_float` reads from Pillow's IFDRational."""

    __slots__ = ("num", "den")

    def __init__(self, num: int, den: int) -> None:
        self.num, self.den = num, den

    def __repr__(self) -> str:
        return f"{self.num}/{self.den}"


def _ifd(tiff: bytes, offset: int, order: str, group: int | None) -> tuple[dict[int, Any], int]:
    """(wanted tag -> value, number of tags Pillow would keep) of the IFD at `offset`.

    Pillow's loader keeps the first of repeated tags, skips entries of unknown type or no data
    and, once the out-of-line data adds up to more than the whole block, every further
    out-of-line entry; it stops at the first entry (wanted or not) whose data lies beyond the
    end. So does this.
    """
    wanted = _WANTED[group]
    size = len(tiff)
    raw: dict[int, tuple[int, int, bytes]] = {}
    kept: set[int] = set()
    if offset + 2 > size:
        return {}, 0
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    pos = offset + 2
    total = 0
    for _ in range(count):
        if pos + 12 > size:
            break
        tag, typ, n = struct.unpack_from(order + "HHL", tiff, pos)
        field = pos + 8
        pos += 12
        unit = _TYPES.get(typ)
        if unit is None or tag in kept:
            continue
        length = n * unit[0]
        if length > 4:
            (where,) = struct.unpack_from(order + "L", tiff, field)
            total += length
            if total > size:
                continue
            if where + length > size:
                break
            data = tiff[where:where + length]
        else:
            data = tiff[field:field + length]
        if not data:
            continue
        kept.add(tag)
        if tag in wanted:
            raw[tag] = (typ, n, data)
    return {tag: _decode(order, group, tag, *v) for tag, v in raw.items()}, len(kept)


def _decode(order: str, group: int | None, tag: int, typ: int, n: int, data: bytes) -> Any:
    if typ == 2:
        return (data[:-1] if data.endswith(b"\x00") else data).decode("latin-1", "replace")
    if typ in (1, 7):
        return data
    code = _TYPES[typ][1]
    if typ in (5, 10):
        ints = struct.unpack(f"{order}{len(data) // 4}{code}", data)
        values: tuple = tuple(Rational(a, b) for a, b in zip(ints[::2], ints[1::2], strict=True))
    else:
        values = struct.unpack(f"{order}{n}{code}", data)
    if len(values) == 1 or (group, tag) in _ONE_VALUE:
        return values[0]
    return values


def exif_info(exif: bytes | None, xmp: bytes | None) -> ExifInfo:
    """`exif.from_pillow` for a JPEG whose APP1 payload is `exif` and XMP is `xmp`."""
    ifd0: dict[int, Any] = {}
    sub: dict[int, Any] = {}
    gps: dict[int, Any] = {}
    gps_kept = 0
    if exif is not None:
        tiff = exif[6:]
        if tiff.startswith(b"Exif\x00\x00"):
            tiff = tiff[6:]
        head = tiff[:4]
        if head in (b"MM\x00\x2a", b"MM\x2a\x00"):
            order = ">"
        elif head in (b"II\x2a\x00", b"II\x00\x2a"):
            order = "<"
        else:
            raise Unsupported("EXIF header")
        if len(tiff) < 8:
            raise Unsupported("EXIF header")
        (first,) = struct.unpack_from(order + "L", tiff, 4)
        ifd0, _ = _ifd(tiff, first, order, None)
        for tag in (_EXIF_IFD, _GPS_IFD):
            pointer = ifd0.get(tag)
            if pointer is not None and (not isinstance(pointer, int) or pointer < 0):
                raise Unsupported("EXIF pointer type")
        if ifd0.get(_EXIF_IFD) is not None:
            sub, _ = _ifd(tiff, ifd0[_EXIF_IFD], order, _EXIF_IFD)
        if ifd0.get(_GPS_IFD) is not None:
            gps, gps_kept = _ifd(tiff, ifd0[_GPS_IFD], order, _GPS_IFD)
    info = ExifInfo()
    orientation = ifd0.get(_IFD0_ORIENTATION)
    if _IFD0_ORIENTATION not in ifd0 and xmp:  # Pillow's getexif falls back to tiff:Orientation
        match = _XMP_ORIENTATION.search(xmp)
        if match:
            orientation = int(match[2])
    fill_texts(info, ifd0, sub)
    info.orientation = valid_orientation(orientation)
    if gps_kept:
        info.gps_ifd = True
        info.lat, info.lon, info.alt = _gps(
            gps.get(2), gps.get(1), gps.get(4), gps.get(3), gps.get(6), gps.get(5)
        )
    info.content_id = apple_content_id(sub.get(_MAKERNOTE))
    return info
