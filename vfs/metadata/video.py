"""Pure-Python readers for ISO BMFF / QuickTime (MOV, MP4, HEIF structure) and AVI headers.

Only box headers and the small `moov`/`meta` boxes are read, never media data, so a multi-GB
video costs a handful of seeks. Every length is checked against the file size: a box that claims
to run past the end of the file stops the walk instead of triggering a huge read.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from .dates import make_datetime, parse_iso_datetime

MAX_MOOV_BYTES = 64 * 1024 * 1024
MAX_TOP_LEVEL_BOXES = 10_000
_QT_EPOCH = datetime(1904, 1, 1)


class BadContainer(ValueError):
    """The file's container structure is broken (message says how)."""


@dataclass
class VideoInfo:
    """What a QuickTime/MP4/AVI header says; None means "not in the file"."""

    brand: str | None = None
    has_moov: bool = False
    has_mvhd: bool = False
    created_utc: datetime | None = None  # mvhd creation time (UTC by the QuickTime spec)
    local_date: tuple[datetime, int | None] | None = None  # Apple creationdate or ©day
    duration: float | None = None
    lat: float | None = None
    lon: float | None = None
    alt: float | None = None
    width: int | None = None
    height: int | None = None
    make: str | None = None
    model: str | None = None
    content_id: str | None = None


# ---------------------------------------------------------------- boxes


def iter_boxes(
    data: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload_start, payload_end) for each box in data[start:end]; stops at damage."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _top_level(fh: BinaryIO, file_size: int) -> Iterator[tuple[bytes, int, int]]:
    """Top-level boxes of a file, read by seeking (mdat is skipped, never read)."""
    pos = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if pos + 8 > file_size:
            return
        fh.seek(pos)
        head = fh.read(16)
        size, kind = struct.unpack_from(">I4s", head, 0)
        header = 8
        if size == 1 and len(head) == 16:
            (size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        elif size == 0:
            size = file_size - pos
        if size < header:
            raise BadContainer(f"box {kind!r} has an invalid size")
        if pos + size > file_size:
            raise BadContainer(f"box {kind.decode('latin-1')!r} runs past the end of the file")
        yield kind, pos + header, pos + size
        pos += size


def _read(fh: BinaryIO, start: int, end: int) -> bytes:
    if end - start > MAX_MOOV_BYTES:
        raise BadContainer("metadata box is implausibly large")
    fh.seek(start)
    return fh.read(end - start)


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in iter_boxes(data, start, end):
        if k == kind:
            return s, e
    return None


# ---------------------------------------------------------------- QuickTime / MP4

_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")


def _iso6709_part(text: str, degree_digits: int) -> float:
    """One ISO 6709 component; the integer-part length tells degrees / DDMM / DDMMSS apart."""
    sign = -1.0 if text[0] == "-" else 1.0
    body = text[1:]
    int_len = len(body.split(".")[0])
    value = float(body)
    if int_len <= degree_digits:
        return sign * value
    if int_len <= degree_digits + 2:
        return sign * (int(value // 100) + (value % 100) / 60)
    return sign * (int(value // 10000) + int(value // 100 % 100) / 60 + (value % 100) / 3600)


def parse_iso6709(text: str) -> tuple[float, float, float | None] | None:
    """ "+32.0929+034.8620+040.000/" -> (lat, lon, alt); None when unparseable or out of range."""
    m = _ISO6709.match(text.strip())
    if not m:
        return None
    lat, lon = _iso6709_part(m.group(1), 2), _iso6709_part(m.group(2), 3)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon, float(m.group(3)) if m.group(3) else None


def _mvhd(data: bytes, s: int, e: int, info: VideoInfo) -> None:
    if e - s < 20:
        return
    info.has_mvhd = True
    if data[s] == 1 and e - s >= 32:
        created, timescale, duration = struct.unpack_from(">Q8xIQ", data, s + 4)
    else:
        created, timescale, duration = struct.unpack_from(">I4xII", data, s + 4)
    if created:
        dt = _QT_EPOCH + timedelta(seconds=created)
        info.created_utc = make_datetime(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)
    if timescale and duration and duration not in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        info.duration = duration / timescale


def _udta_string(data: bytes, s: int, e: int) -> str:
    """A QuickTime user-data text atom: 16-bit length, 16-bit language, text."""
    if e - s < 4:
        return ""
    (length,) = struct.unpack_from(">H", data, s)
    return data[s + 4 : min(e, s + 4 + length)].decode("utf-8", "replace").strip("\x00 ")


def _udta(data: bytes, s: int, e: int, info: VideoInfo) -> None:
    for kind, cs, ce in iter_boxes(data, s, e):
        if kind == b"\xa9xyz" and info.lat is None:
            _location(_udta_string(data, cs, ce), info)
        elif kind == b"\xa9day" and info.local_date is None:
            info.local_date = parse_iso_datetime(_udta_string(data, cs, ce).replace("+0000", "Z"))
        elif kind == b"\xa9mak" and info.make is None:
            info.make = _udta_string(data, cs, ce) or None
        elif kind == b"\xa9mod" and info.model is None:
            info.model = _udta_string(data, cs, ce) or None
        elif kind == b"meta":
            _meta(data, cs, ce, info)


def _location(text: str, info: VideoInfo) -> None:
    parsed = parse_iso6709(text)
    if parsed:
        info.lat, info.lon, info.alt = parsed


def _meta(data: bytes, s: int, e: int, info: VideoInfo) -> None:
    """QuickTime `meta` with `keys` + `ilst` (Apple's com.apple.quicktime.* entries)."""
    if data[s + 4 : s + 8] != b"hdlr" and data[s + 8 : s + 12] == b"hdlr":
        s += 4  # ISO-style full box (version + flags) rather than QuickTime's plain box
    keys: dict[int, str] = {}
    values: dict[int, bytes] = {}
    for kind, cs, ce in iter_boxes(data, s, e):
        if kind == b"keys" and ce - cs >= 8:
            (count,) = struct.unpack_from(">I", data, cs + 4)
            pos = cs + 8
            for index in range(1, min(count, 1024) + 1):
                if pos + 8 > ce:
                    break
                (size,) = struct.unpack_from(">I", data, pos)
                if size < 8:
                    break
                keys[index] = data[pos + 8 : pos + size].decode("utf-8", "replace")
                pos += size
        elif kind == b"ilst":
            for item, is_, ie in iter_boxes(data, cs, ce):
                found = _child(data, is_, ie, b"data")
                if found and found[1] - found[0] >= 8:
                    values[int.from_bytes(item, "big")] = data[found[0] + 8 : found[1]]
    for index, raw in values.items():
        _apple_key(keys.get(index, ""), raw.decode("utf-8", "replace").strip("\x00 "), info)


def _apple_key(key: str, text: str, info: VideoInfo) -> None:
    if key == "com.apple.quicktime.location.ISO6709":
        _location(text, info)
    elif key == "com.apple.quicktime.creationdate":
        info.local_date = parse_iso_datetime(text) or info.local_date
    elif key == "com.apple.quicktime.content.identifier":
        info.content_id = text or None
    elif key == "com.apple.quicktime.make":
        info.make = text or None
    elif key == "com.apple.quicktime.model":
        info.model = text or None


def _trak(data: bytes, s: int, e: int, info: VideoInfo) -> None:
    mdia = _child(data, s, e, b"mdia")
    hdlr = _child(data, *mdia, b"hdlr") if mdia else None
    if not hdlr or data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide" or info.width:
        return
    tkhd = _child(data, s, e, b"tkhd")
    if not tkhd:
        return
    offset = 88 if data[tkhd[0]] == 1 else 76
    if tkhd[1] - tkhd[0] >= offset + 8:
        width, height = struct.unpack_from(">II", data, tkhd[0] + offset)
        info.width, info.height = (width >> 16) or None, (height >> 16) or None


def _moov(data: bytes, info: VideoInfo) -> None:
    info.has_moov = True
    for kind, s, e in iter_boxes(data):
        if kind == b"mvhd":
            _mvhd(data, s, e, info)
        elif kind == b"udta":
            _udta(data, s, e, info)
        elif kind == b"meta":
            _meta(data, s, e, info)
        elif kind == b"trak":
            _trak(data, s, e, info)


def read_quicktime(fh: BinaryIO, file_size: int) -> VideoInfo:
    """Parse an MP4/MOV/3GP header. Raises BadContainer when the structure is broken."""
    info = VideoInfo()
    for kind, s, e in _top_level(fh, file_size):
        if kind == b"ftyp":
            info.brand = _read(fh, s, min(e, s + 4)).decode("latin-1").strip()
        elif kind == b"moov":
            _moov(_read(fh, s, e), info)
    return info


# ---------------------------------------------------------------- HEIF structure


def _iloc_extents(data: bytes, s: int, e: int) -> list[tuple[int, int, int]]:
    """(construction_method, offset, length) of every item extent in an `iloc` box.

    The box must be consumed exactly: a parse that ends early or late means the field sizes in
    its header are wrong, which is how fuzzed/damaged files usually look.
    """
    version = data[s]
    pos = s + 4
    off_size, len_size = data[pos] >> 4, data[pos] & 15
    base_size, index_size = data[pos + 1] >> 4, data[pos + 1] & 15
    pos += 2

    def number(size: int) -> int:
        nonlocal pos
        if pos + size > e:
            raise BadContainer("HEIF item locations are truncated")
        value = int.from_bytes(data[pos : pos + size], "big") if size else 0
        pos += size
        return value

    extents = []
    for _ in range(number(2 if version < 2 else 4)):
        number(2 if version < 2 else 4)  # item id
        method = number(2) & 15 if version in (1, 2) else 0
        number(2)  # data reference index
        base = number(base_size)
        for _ in range(number(2)):
            if version in (1, 2):
                number(index_size)
            offset, length = number(off_size), number(len_size)
            extents.append((method, base + offset, length))
    if pos != e:
        raise BadContainer("HEIF item locations are damaged")
    return extents


def check_heif(fh: BinaryIO, file_size: int) -> None:
    """Raise BadContainer unless every stored HEIF item lies inside the file."""
    meta = None
    for kind, s, e in _top_level(fh, file_size):
        if kind == b"meta":
            meta = _read(fh, s, e)
    if meta is None:
        raise BadContainer("HEIF file has no meta box")
    iloc = _child(meta, 4, len(meta), b"iloc")
    if iloc is None:
        raise BadContainer("HEIF file has no item locations")
    try:
        extents = _iloc_extents(meta, *iloc)
    except IndexError as exc:
        raise BadContainer("HEIF item locations are damaged") from exc
    for method, offset, length in extents:
        if method == 0 and offset + length > file_size:
            raise BadContainer("HEIF image data is cut off (truncated file)")


# ---------------------------------------------------------------- AVI


def read_avi(fh: BinaryIO) -> VideoInfo:
    """Frame size and duration from the RIFF `avih` header. Raises BadContainer if not AVI."""
    head = fh.read(64 * 1024)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        raise BadContainer("not a RIFF AVI file")
    pos = head.find(b"avih", 12)
    if pos < 0 or pos + 8 + 40 > len(head):
        raise BadContainer("AVI header (avih) missing")
    us_per_frame, _, _, _, frames, _, _, _, width, height = struct.unpack_from(
        "<10I", head, pos + 8
    )
    info = VideoInfo(brand="AVI", width=width or None, height=height or None)
    if us_per_frame and frames:
        info.duration = frames * us_per_frame / 1_000_000
    return info
