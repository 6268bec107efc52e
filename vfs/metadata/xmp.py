"""XMP packets, embedded in media files or stored as `.xmp` sidecars, reduced to what photovfs uses.

The RDF is walked generically (attributes, `rdf:parseType="Resource"`, nested `rdf:Description`,
Bag/Seq/Alt) because every writer picks a different serialisation for the same data: exiftool
uses elements, Exiv2/digiKam attributes, Lightroom a mix. Packets with a DOCTYPE are refused
outright: XMP never needs one, and refusing it rules out entity-expansion bombs without a
third-party parser.
"""

from __future__ import annotations

import codecs
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from .dates import parse_iso_datetime
from .regions import from_center

log = logging.getLogger(__name__)

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML = "http://www.w3.org/XML/1998/namespace"
NS = {
    "exif": "http://ns.adobe.com/exif/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
}

#: XMP date properties in the order they are trusted as capture time.
DATE_TAGS: tuple[tuple[str, str], ...] = (
    ("exif", "DateTimeOriginal"),
    ("photoshop", "DateCreated"),
    ("xmp", "CreateDate"),
)
PEOPLE_ROOTS = frozenset({"people", "persons", "person"})
ALBUM_PREFIX = ("photovfs", "Albums")  # photovfs writes albums as photovfs|Albums|NAME

MAX_SIDECAR_BYTES = 16 * 1024 * 1024
_START = re.compile(rb"<x:x[am]pmeta[\s>]|<rdf:RDF[\s>]")
_END = {b"<x:xmpmeta": b"</x:xmpmeta>", b"<x:xapmeta": b"</x:xapmeta>", b"<rdf:RDF": b"</rdf:RDF>"}


def q(prefix: str, name: str) -> str:
    """Clark-notation key ("{uri}name") for a property."""
    return f"{{{NS[prefix]}}}{name}"


@dataclass
class RawRegion:
    """A region as written in the file: top-left based, normalised, in `frame` ("stored" or
    "displayed"); `photovfs.metadata` maps it to the displayed frame once orientation is known."""

    name: str | None
    x: float
    y: float
    w: float
    h: float
    source: str
    frame: str


@dataclass
class XmpData:
    """The facts one XMP packet (or sidecar) carries; empty fields mean "not said"."""

    dates: list[tuple[str, datetime, int | None]] = field(default_factory=list)
    orientation: int | None = None
    make: str | None = None
    model: str | None = None
    lat: float | None = None
    lon: float | None = None
    alt: float | None = None
    people: set[str] = field(default_factory=set)
    mwg_regions: list[RawRegion] = field(default_factory=list)
    mp_regions: list[RawRegion] = field(default_factory=list)
    keywords: set[str] = field(default_factory=set)
    albums: set[str] = field(default_factory=set)

    @property
    def regions(self) -> list[RawRegion]:
        """MWG regions when present: MP regions in the same file almost always repeat them."""
        return self.mwg_regions or self.mp_regions


# ---------------------------------------------------------------- finding and decoding packets


def find_packets(data: bytes, limit: int = 8) -> list[bytes]:
    """Raw XMP packets found by scanning bytes (works for JPEG, PNG, TIFF, WebP, GIF, HEIF, MP4)."""
    found: list[bytes] = []
    pos = 0
    while len(found) < limit:
        m = _START.search(data, pos)
        if not m:
            break
        start_tag = m.group(0)[:-1]
        end_tag = _END.get(start_tag, b"</x:xmpmeta>")
        end = data.find(end_tag, m.end())
        if end < 0:
            break
        found.append(data[m.start() : end + len(end_tag)])
        pos = end + len(end_tag)
    return found


def decode_text(raw: bytes) -> str:
    """Decode a packet or sidecar, honouring UTF-8/16/32 byte-order marks."""
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if raw.startswith(bom):
            return raw[len(bom) :].decode(enc, "replace")
    if len(raw) >= 2 and raw[0] == 0 and raw[1] != 0:
        return raw.decode("utf-16-be", "replace")
    if len(raw) >= 2 and raw[0] != 0 and raw[1] == 0:
        return raw.decode("utf-16-le", "replace")
    return raw.decode("utf-8", "replace")


def parse_sidecar(path: Path) -> XmpData | None:
    """Parse an `.xmp` sidecar; None when unreadable or not XMP."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SIDECAR_BYTES)
    except OSError as exc:
        log.debug("cannot read sidecar %s: %s", path, exc)
        return None
    text = decode_text(raw)
    packets = find_packets(text.encode("utf-8"), limit=1)
    return parse_packet(packets[0] if packets else text.encode("utf-8"))


def parse_packets(packets: list[bytes]) -> XmpData | None:
    """Parse embedded packets; the first that parses wins (later ones are thumbnails/previews)."""
    for packet in packets:
        data = parse_packet(packet)
        if data is not None:
            return data
    return None


# ---------------------------------------------------------------- RDF to plain Python values


def _is_meta_attr(key: str) -> bool:
    return key.startswith(f"{{{RDF}}}") or key.startswith(f"{{{_XML}}}") or not key.startswith("{")


def _attr_props(el: ET.Element) -> dict[str, Any]:
    return {k: v.strip() for k, v in el.attrib.items() if not _is_meta_attr(k)}


def _struct(desc: ET.Element) -> dict[str, Any]:
    """Properties of an rdf:Description (attributes and child elements)."""
    props = _attr_props(desc)
    for child in desc:
        props.setdefault(child.tag, _value(child))
    return props


def _value(el: ET.Element) -> Any:
    """A property element as str, list (Bag/Seq/Alt) or dict (structure)."""
    resource = el.get(f"{{{RDF}}}resource")
    if resource is not None:
        return resource
    children = list(el)
    for child in children:
        if child.tag in (f"{{{RDF}}}Bag", f"{{{RDF}}}Seq", f"{{{RDF}}}Alt"):
            return [_value(li) for li in child if li.tag == f"{{{RDF}}}li"]
    props = _attr_props(el)
    for child in children:
        if child.tag == f"{{{RDF}}}Description":
            props.update(_struct(child))
        else:
            props.setdefault(child.tag, _value(child))
    if props:
        return props
    return (el.text or "").strip()


def _first_text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str):
        return value.strip() or None
    return None


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def _float(value: Any) -> float | None:
    text = _first_text(value)
    if text is None:
        return None
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        return None


# ---------------------------------------------------------------- packet -> XmpData


def parse_packet(packet: bytes) -> XmpData | None:
    """Parse one XMP packet; None when it is not well-formed RDF or carries a DOCTYPE."""
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        log.debug("refusing XMP packet with a DOCTYPE")
        return None
    try:
        root = ET.fromstring(packet)
    except ET.ParseError as exc:
        log.debug("bad XMP packet: %s", exc)
        return None
    rdf = root if root.tag == f"{{{RDF}}}RDF" else root.find(f".//{{{RDF}}}RDF")
    if rdf is None:
        return None
    props: dict[str, Any] = {}
    for desc in rdf.iter(f"{{{RDF}}}Description"):
        if desc in rdf:  # only top-level descriptions carry properties of the file
            for key, value in _struct(desc).items():
                props.setdefault(key, value)
    return _interpret(props)


def _interpret(props: dict[str, Any]) -> XmpData:
    data = XmpData()
    for prefix, name in DATE_TAGS:
        parsed = parse_iso_datetime(_first_text(props.get(q(prefix, name))))
        if parsed:
            data.dates.append((f"{prefix}:{name}", parsed[0], parsed[1]))
    orientation = _float(props.get(q("tiff", "Orientation")))
    if orientation is not None and orientation in range(1, 9):
        data.orientation = int(orientation)
    data.make = _first_text(props.get(q("tiff", "Make")))
    data.model = _first_text(props.get(q("tiff", "Model")))
    _gps(props, data)
    _mwg_regions(props.get(q("mwg-rs", "Regions")), data)
    _mp_regions(props.get(q("MP", "RegionInfo")), data)
    data.people.update(_texts(props.get(q("Iptc4xmpExt", "PersonInImage"))))
    data.keywords.update(_texts(props.get(q("dc", "subject"))))
    _hierarchical(_texts(props.get(q("digiKam", "TagsList"))), "/", data)
    _hierarchical(_texts(props.get(q("lr", "hierarchicalSubject"))), "|", data)
    data.keywords -= data.people | data.albums
    return data


_XMP_GPS = re.compile(
    r"^\s*(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?(?:,(\d+(?:\.\d+)?))?\s*([NSEW])\s*$"
)


def parse_xmp_coordinate(value: str | None) -> float | None:
    """XMP GPS coordinate "DDD,MM,SSk" or "DDD,MM.mmk" (k = N/S/E/W) to signed degrees."""
    if not value:
        return None
    m = _XMP_GPS.match(value.upper())
    if not m:
        return None
    deg = float(m.group(1)) + float(m.group(2) or 0) / 60 + float(m.group(3) or 0) / 3600
    return -deg if m.group(4) in "SW" else deg


def _gps(props: dict[str, Any], data: XmpData) -> None:
    from .exif import valid_lat_lon  # late import: exif imports nothing from here

    lat = parse_xmp_coordinate(_first_text(props.get(q("exif", "GPSLatitude"))))
    lon = parse_xmp_coordinate(_first_text(props.get(q("exif", "GPSLongitude"))))
    if valid_lat_lon(lat, lon):
        data.lat, data.lon = lat, lon
        alt = _float(props.get(q("exif", "GPSAltitude")))
        if alt is not None and alt == alt:
            ref = _first_text(props.get(q("exif", "GPSAltitudeRef")))
            data.alt = -alt if ref == "1" else alt


def _unit_scale(unit: str | None, dims: Any) -> tuple[float, float] | None:
    """Divisors turning an area into normalised units; pixel areas need AppliedToDimensions."""
    if unit in (None, "", "normalized"):
        return 1.0, 1.0
    if unit == "pixel" and isinstance(dims, dict):
        w, h = _float(dims.get(q("stDim", "w"))), _float(dims.get(q("stDim", "h")))
        if w and h:
            return w, h
    return None


def _mwg_regions(info: Any, data: XmpData) -> None:
    """MWG regions: centre-based areas in the *stored* frame (MWG guidelines 5.9).

    `AppliedToDimensions` is used only to normalise pixel-unit areas. It is deliberately not used
    to guess whether the regions were already rotated: exiftool's rotate_regions (used for the
    skatsubo test matrix) rotates the areas but keeps the pre-rotation dimensions.
    """
    if not isinstance(info, dict):
        return
    dims = info.get(q("mwg-rs", "AppliedToDimensions"))
    for item in info.get(q("mwg-rs", "RegionList")) or []:
        if not isinstance(item, dict):
            continue
        kind = _first_text(item.get(q("mwg-rs", "Type")))
        if kind not in (None, "Face"):
            continue
        name = _first_text(item.get(q("mwg-rs", "Name")))
        area = item.get(q("mwg-rs", "Area"))
        if not isinstance(area, dict):
            continue
        scale = _unit_scale(_first_text(area.get(q("stArea", "unit"))), dims)
        parts = [_float(area.get(q("stArea", k))) for k in "xywh"]
        if scale is None or any(p is None or p != p for p in parts):
            continue
        cx, cy, w, h = cast("list[float]", parts)  # None/NaN filtered out just above
        x, y, w, h = from_center(cx / scale[0], cy / scale[1], w / scale[0], h / scale[1])
        data.mwg_regions.append(RawRegion(name, x, y, w, h, "mwg", "stored"))
        if name:
            data.people.add(name)


def _mp_regions(info: Any, data: XmpData) -> None:
    """Microsoft Photo regions: "x, y, w, h" top-left based.

    Treated as already in the displayed frame: Windows Photo Gallery draws them on the rotated
    image, and the corpus file `xmp/portrait-orientation-6.jpg` carries MP rectangles identical to
    the unrotated original next to rotated MWG areas.
    """
    if not isinstance(info, dict):
        return
    for item in info.get(q("MPRI", "Regions")) or []:
        if not isinstance(item, dict):
            continue
        name = _first_text(item.get(q("MPReg", "PersonDisplayName")))
        rect = _first_text(item.get(q("MPReg", "Rectangle")))
        if name:
            data.people.add(name)
        if not rect:
            continue
        try:
            x, y, w, h = (float(p) for p in rect.split(","))
        except ValueError:
            continue
        if all(v == v for v in (x, y, w, h)):
            data.mp_regions.append(RawRegion(name, x, y, w, h, "mp", "displayed"))


def _hierarchical(entries: list[str], sep: str, data: XmpData) -> None:
    """Split digiKam ("A/B") and Lightroom ("A|B") tag paths into people, albums and keywords."""
    for entry in entries:
        parts = [p.strip() for p in entry.split(sep) if p.strip()]
        if not parts:
            continue
        if len(parts) > 2 and tuple(parts[:2]) == ALBUM_PREFIX:
            data.albums.add("/".join(parts[2:]))
        elif parts[0].lower() in PEOPLE_ROOTS:
            if len(parts) > 1:
                data.people.add(parts[-1])
        elif tuple(parts[:2]) != ALBUM_PREFIX[: len(parts[:2])]:
            data.keywords.add(parts[-1])
