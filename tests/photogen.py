"""Generators for small media files with exactly the metadata a test needs.

Other test modules import these: every helper writes into a path the caller owns (normally under
`tmp_path`) and returns that path. Values are written the way cameras write them (EXIF strings,
DMS rationals, XMP packets), so the tests exercise the same parsing paths as real photos.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pillow_heif
from PIL import Image, PngImagePlugin, TiffImagePlugin

pillow_heif.register_heif_opener()

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, ORIENTATION, DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
DATETIME_ORIGINAL, DATETIME_DIGITIZED, OFFSET_TIME_ORIGINAL = 0x9003, 0x9004, 0x9011


def _rational(value: float) -> TiffImagePlugin.IFDRational:
    if math.isnan(value):
        return TiffImagePlugin.IFDRational(0, 0)
    return TiffImagePlugin.IFDRational(round(value * 1_000_000), 1_000_000)


def _dms(value: float) -> tuple:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = (value - degrees - minutes / 60) * 3600
    return (_rational(degrees), _rational(minutes), _rational(seconds))


def exif_block(
    *,
    taken: datetime | str | None = None,
    offset: str | None = None,
    digitized: datetime | str | None = None,
    modified: datetime | str | None = None,
    gps: Sequence[float] | dict | None = None,
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
) -> Image.Exif:
    """An EXIF structure. `gps` is (lat, lon[, alt]) in signed degrees, or a raw GPS IFD dict."""
    exif = Image.Exif()

    def text(value: datetime | str) -> str:
        return value.strftime("%Y:%m:%d %H:%M:%S") if isinstance(value, datetime) else value

    if make is not None:
        exif[MAKE] = make
    if model is not None:
        exif[MODEL] = model
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if modified is not None:
        exif[DATETIME] = text(modified)
    sub = {}
    if taken is not None:
        sub[DATETIME_ORIGINAL] = text(taken)
    if digitized is not None:
        sub[DATETIME_DIGITIZED] = text(digitized)
    if offset is not None:
        sub[OFFSET_TIME_ORIGINAL] = offset
    if sub:
        exif[EXIF_IFD] = sub
    if isinstance(gps, dict):
        exif[GPS_IFD] = gps
    elif gps is not None:
        lat, lon = gps[0], gps[1]
        ifd = {1: "N" if lat >= 0 else "S", 2: _dms(lat), 3: "E" if lon >= 0 else "W", 4: _dms(lon)}
        if len(gps) > 2:
            ifd[5] = b"\x01" if gps[2] < 0 else b"\x00"
            ifd[6] = _rational(abs(gps[2]))
        exif[GPS_IFD] = ifd
    return exif


def make_jpeg(
    path: Path,
    *,
    taken: datetime | str | None = None,
    offset: str | None = None,
    gps: Sequence[float] | dict | None = None,
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    size: tuple[int, int] = (64, 48),
    color: tuple[int, int, int] = (200, 80, 40),
    xmp: str | None = None,
    digitized: datetime | str | None = None,
    modified: datetime | str | None = None,
) -> Path:
    """A small JPEG with the given EXIF and (optionally) an embedded XMP packet."""
    exif = exif_block(
        taken=taken,
        offset=offset,
        digitized=digitized,
        modified=modified,
        gps=gps,
        orientation=orientation,
        make=make,
        model=model,
    )
    kwargs: dict = {"exif": exif.tobytes()} if len(exif) else {}
    if xmp is not None:
        kwargs["xmp"] = xmp.encode("utf-8")
    Image.new("RGB", size, color).save(path, "JPEG", quality=80, **kwargs)
    return path


def make_heic(
    path: Path,
    *,
    taken: datetime | str | None = None,
    offset: str | None = None,
    gps: Sequence[float] | None = None,
    make: str | None = None,
    model: str | None = None,
    size: tuple[int, int] = (64, 48),
    color: tuple[int, int, int] = (40, 80, 200),
    xmp: str | None = None,
) -> Path:
    """A small HEIC through pillow-heif, with EXIF and optional XMP."""
    exif = exif_block(taken=taken, offset=offset, gps=gps, make=make, model=model)
    kwargs: dict = {"exif": exif.tobytes()} if len(exif) else {}
    if xmp is not None:
        kwargs["xmp"] = xmp.encode("utf-8")
    Image.new("RGB", size, color).save(path, "HEIF", quality=60, **kwargs)
    return path


def make_png(
    path: Path,
    *,
    size: tuple[int, int] = (32, 24),
    color: tuple[int, int, int] = (10, 160, 90),
    xmp: str | None = None,
) -> Path:
    """A PNG, optionally with XMP in an iTXt `XML:com.adobe.xmp` chunk (as Photoshop writes it)."""
    info = PngImagePlugin.PngInfo()
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", xmp)
    Image.new("RGB", size, color).save(path, "PNG", pnginfo=info)
    return path


def xmp_packet(*descriptions: str) -> str:
    """Wrap rdf:Description bodies (already serialised) into a complete XMP packet."""
    body = "\n".join(descriptions)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'{body}\n</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>'
    )


def description(namespaces: dict[str, str], inner: str, attrs: str = "") -> str:
    """One rdf:Description declaring `namespaces` (prefix -> URI)."""
    decls = " ".join(f'xmlns:{p}="{u}"' for p, u in namespaces.items())
    return f'<rdf:Description rdf:about="" {decls} {attrs}>{inner}</rdf:Description>'


MWG_NS = {
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
}


def xmp_face_regions(
    names: list[str | None],
    *,
    areas: list[tuple[float, float, float, float]] | None = None,
    applied_to: tuple[int, int] = (64, 48),
    orientation: int | None = None,
    region_type: str = "Face",
) -> str:
    """An MWG XMP packet with one Face region per name (None = unnamed).

    `areas` are MWG centre-based (cx, cy, w, h) in the stored frame; by default the faces are
    spread along a row. `orientation` adds tiff:Orientation, as sidecars written by exiftool do.
    """
    areas = areas or [(0.2 + 0.25 * i, 0.3, 0.1, 0.2) for i in range(len(names))]
    items = []
    for name, (cx, cy, w, h) in zip(names, areas, strict=True):
        name_xml = f"<mwg-rs:Name>{name}</mwg-rs:Name>" if name else ""
        items.append(
            '<rdf:li rdf:parseType="Resource">'
            f'<mwg-rs:Area stArea:x="{cx}" stArea:y="{cy}" stArea:w="{w}" stArea:h="{h}"'
            ' stArea:unit="normalized"/>'
            f"{name_xml}<mwg-rs:Type>{region_type}</mwg-rs:Type></rdf:li>"
        )
    regions = (
        '<mwg-rs:Regions rdf:parseType="Resource">'
        f'<mwg-rs:AppliedToDimensions stDim:w="{applied_to[0]}" stDim:h="{applied_to[1]}"'
        ' stDim:unit="pixel"/>'
        f"<mwg-rs:RegionList><rdf:Bag>{''.join(items)}</rdf:Bag></mwg-rs:RegionList>"
        "</mwg-rs:Regions>"
    )
    descriptions = [description(MWG_NS, regions)]
    if orientation is not None:
        descriptions.append(
            description(
                {"tiff": "http://ns.adobe.com/tiff/1.0/"},
                f"<tiff:Orientation>{orientation}</tiff:Orientation>",
            )
        )
    return xmp_packet(*descriptions)


def write_sidecar(path: Path, content: str, *, encoding: str = "utf-8", bom: bool = False) -> Path:
    """Write an .xmp sidecar; `encoding="utf-16-le"` + `bom=True` mimics Lightroom on Windows."""
    data = content.encode(encoding)
    if bom:
        data = "\ufeff".encode(encoding) + data
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- QuickTime


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def make_mp4(
    path: Path,
    *,
    created_utc: datetime | None = None,
    duration_s: float = 2.0,
    xyz: str | None = None,
    apple: dict[str, str] | None = None,
    brand: bytes = b"qt  ",
    with_moov: bool = True,
) -> Path:
    """A header-only MP4/MOV: ftyp + moov(mvhd, udta ©xyz, meta keys/ilst) + empty mdat."""
    created = int((created_utc - datetime(1904, 1, 1)).total_seconds()) if created_utc else 0
    mvhd = struct.pack(">B3xIIII", 0, created, created, 600, int(duration_s * 600)) + bytes(80)
    children = [_box(b"mvhd", mvhd)]
    if xyz is not None:
        text = xyz.encode()
        children.append(
            _box(b"udta", _box(b"\xa9xyz", struct.pack(">HH", len(text), 0x15C7) + text))
        )
    if apple:
        keys = b"".join(_box(b"mdta", k.encode()) for k in apple)
        ilst = b"".join(
            _box((i + 1).to_bytes(4, "big"), _box(b"data", struct.pack(">II", 1, 0) + v.encode()))
            for i, v in enumerate(apple.values())
        )
        hdlr = _box(b"hdlr", bytes(8) + b"mdta" + bytes(13))
        keys_box = _box(b"keys", struct.pack(">II", 0, len(apple)) + keys)
        children.append(_box(b"meta", hdlr + keys_box + _box(b"ilst", ilst)))
    data = _box(b"ftyp", brand + b"\x00\x00\x02\x00" + brand)
    if with_moov:
        data += _box(b"moov", b"".join(children))
    data += _box(b"mdat", b"\x00" * 16)
    path.write_bytes(data)
    return path
