"""EXIF from stills and RAW files, via Pillow (primary) and exifread (RAW and gaps).

Pillow parses EXIF lazily without decoding pixels and copes with most damaged files; exifread
understands more RAW containers. exifread has a history of endless loops and MemoryErrors on
malformed data, so it only ever sees a bounded prefix of the file in memory, with details=False
(no MakerNote parsing), and every call is wrapped: EXIF is optional, a crash here must never
cost the rest of the facts.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from PIL import ExifTags, Image

log = logging.getLogger(__name__)

EXIFREAD_MAX_BYTES = 256 * 1024
EXIFREAD_MAX_BYTES_TIFF = 1024 * 1024

_IFD0_MAKE, _IFD0_MODEL, _IFD0_ORIENTATION, _IFD0_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_DTO, _DTD, _OFFSET, _OFFSET_O, _OFFSET_D = 0x9003, 0x9004, 0x9010, 0x9011, 0x9012
_LENS_MODEL, _MAKERNOTE = 0xA434, 0x927C


@dataclass
class ExifInfo:
    """Raw-ish EXIF values (strings unparsed, numbers validated); None means absent."""

    datetime_original: str | None = None
    offset_original: str | None = None
    datetime_digitized: str | None = None
    offset_digitized: str | None = None
    datetime: str | None = None
    offset: str | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    orientation: int | None = None
    lat: float | None = None
    lon: float | None = None
    alt: float | None = None
    content_id: str | None = None
    gps_ifd: bool | None = None  # a GPS block was present (whether or not it held a position)

    def fill_from(self, other: ExifInfo) -> None:
        """Take every value this one lacks from `other`."""
        for f in fields(self):
            if getattr(self, f.name) is None:
                setattr(self, f.name, getattr(other, f.name))

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def clean_text(value: Any) -> str | None:
    """EXIF strings padded with NULs/spaces (or bytes) to a clean str; blanks become None."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (tuple, list)):
        value = value[0] if len(value) == 1 else None
    if not isinstance(value, str):
        return None
    # C strings: whatever follows the first NUL is padding or garbage
    value = value.strip("\x00 ").split("\x00", 1)[0].strip()
    return value or None


def to_float(value: Any) -> float | None:
    """A rational/number to float; 0/0, NaN and infinities are None."""
    try:
        if hasattr(value, "num") and hasattr(value, "den"):
            if value.den == 0:
                return None
            result = value.num / value.den
        else:
            result = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) else None


def valid_lat_lon(lat: float | None, lon: float | None) -> bool:
    """True for a real position: both present, in range, and not the 0,0 "null island"."""
    if lat is None or lon is None:
        return False
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return False
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return False
    return not (lat == 0 and lon == 0)


def _dms(value: Any, ref: Any) -> float | None:
    if not isinstance(value, (tuple, list)) or not value or len(value) > 3:
        return None
    parts = [to_float(v) for v in value]
    if any(p is None for p in parts):
        return None
    degrees = sum(p / 60**i for i, p in enumerate(parts))  # type: ignore[operator]
    ref_text = (clean_text(ref) or "").upper()
    return -degrees if ref_text[:1] in ("S", "W") else degrees


def _gps(lat: Any, lat_ref: Any, lon: Any, lon_ref: Any, alt: Any, alt_ref: Any) -> tuple:
    """(lat, lon, alt) or Nones when the GPS IFD holds no usable position."""
    la, lo = _dms(lat, lat_ref), _dms(lon, lon_ref)
    if not valid_lat_lon(la, lo):
        return None, None, None
    altitude = to_float(alt)
    if altitude is not None:
        ref = alt_ref[0] if isinstance(alt_ref, (bytes, tuple, list)) and alt_ref else alt_ref
        altitude = -altitude if ref in (1, b"\x01", "1") else altitude
    return la, lo, altitude


def valid_orientation(value: Any) -> int | None:
    """EXIF orientation 1..8; 0 and junk are None."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if 1 <= number <= 8 else None


def apple_content_id(makernote: Any) -> str | None:
    """Apple MakerNote tag 0x0011 (ContentIdentifier), which pairs Live Photo stills and videos."""
    if not isinstance(makernote, bytes) or not makernote.startswith(b"Apple iOS\x00"):
        return None
    try:
        order = "<" if makernote[12:14] == b"II" else ">"
        (count,) = struct.unpack_from(order + "H", makernote, 14)
        for i in range(min(count, 256)):
            tag, typ, n, value = struct.unpack_from(order + "HHII", makernote, 16 + 12 * i)
            if tag == 0x0011 and typ == 2:
                raw = makernote[16 + 12 * i + 8 : 16 + 12 * i + 8 + n] if n <= 4 else None
                raw = raw if raw is not None else makernote[value : value + n]
                return clean_text(raw)
    except struct.error:
        return None
    return None


def from_pillow(im: Image.Image) -> ExifInfo:
    """EXIF through Pillow's lazy parser (no pixel decoding, except for some PNGs)."""
    return from_exif(im.getexif())


def fill_texts(info: ExifInfo, ifd0: Mapping[int, Any], sub: Mapping[int, Any]) -> None:
    """The dates, offsets, camera and lens from IFD0 and the Exif sub-IFD (Pillow's parser and
    the JPEG fast path both hand their tag maps here, so both read the same tags)."""
    info.datetime_original = clean_text(sub.get(_DTO) or ifd0.get(_DTO))
    info.datetime_digitized = clean_text(sub.get(_DTD))
    info.datetime = clean_text(ifd0.get(_IFD0_DATETIME))
    info.offset_original = clean_text(sub.get(_OFFSET_O))
    info.offset_digitized = clean_text(sub.get(_OFFSET_D))
    info.offset = clean_text(sub.get(_OFFSET))
    info.make = clean_text(ifd0.get(_IFD0_MAKE))
    info.model = clean_text(ifd0.get(_IFD0_MODEL))
    info.lens = clean_text(sub.get(_LENS_MODEL))


def from_exif(exif: Image.Exif) -> ExifInfo:
    """The values photovfs uses from a parsed EXIF structure."""
    info = ExifInfo()
    if not exif:
        return info
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    fill_texts(info, exif, sub)
    info.orientation = valid_orientation(exif.get(_IFD0_ORIENTATION))
    if gps:
        info.gps_ifd = True
        info.lat, info.lon, info.alt = _gps(
            gps.get(2), gps.get(1), gps.get(4), gps.get(3), gps.get(6), gps.get(5)
        )
    info.content_id = apple_content_id(sub.get(_MAKERNOTE))
    return info


def from_exif_bytes(blob: bytes) -> ExifInfo:
    """EXIF from a bare TIFF/"Exif\\0\\0" blob (HEIF items, RAF previews)."""
    exif = Image.Exif()
    exif.load(blob)
    return from_exif(exif)


def _values(tags: dict[str, Any], *names: str) -> Any:
    for name in names:
        tag = tags.get(name)
        if tag is not None:
            return getattr(tag, "values", tag)
    return None


def from_exifread(data: bytes) -> ExifInfo:
    """EXIF through exifread on an in-memory, size-bounded copy of the file's head."""
    import exifread

    info = ExifInfo()
    logging.getLogger("exifread").setLevel(logging.CRITICAL)
    tags = exifread.process_file(io.BytesIO(data), details=False, extract_thumbnail=False)
    if not tags:
        return info
    info.datetime_original = clean_text(
        _values(tags, "EXIF DateTimeOriginal", "Image DateTimeOriginal")
    )
    info.datetime_digitized = clean_text(_values(tags, "EXIF DateTimeDigitized"))
    info.datetime = clean_text(_values(tags, "Image DateTime"))
    info.offset_original = clean_text(_values(tags, "EXIF OffsetTimeOriginal"))
    info.offset_digitized = clean_text(_values(tags, "EXIF OffsetTimeDigitized"))
    info.offset = clean_text(_values(tags, "EXIF OffsetTime"))
    info.make = clean_text(_values(tags, "Image Make"))
    info.model = clean_text(_values(tags, "Image Model"))
    info.lens = clean_text(_values(tags, "EXIF LensModel"))
    info.orientation = valid_orientation(_values(tags, "Image Orientation"))
    info.lat, info.lon, info.alt = _gps(
        _values(tags, "GPS GPSLatitude"),
        _values(tags, "GPS GPSLatitudeRef"),
        _values(tags, "GPS GPSLongitude"),
        _values(tags, "GPS GPSLongitudeRef"),
        _values(tags, "GPS GPSAltitude"),
        _values(tags, "GPS GPSAltitudeRef"),
    )
    return info


def safe(fn: Any, *args: Any) -> ExifInfo:
    """Run one EXIF reader; any failure (malformed data, MemoryError, RecursionError) is "no EXIF"."""
    try:
        return fn(*args)
    except Exception as exc:  # MemoryError and RecursionError included: both are Exceptions
        log.debug("EXIF reader %s failed: %r", getattr(fn, "__name__", fn), exc)
        return ExifInfo()
