"""Renditions: upright, display-sized sRGB JPEGs derived from originals (stills, HEIC, RAW, video).

TVs and photo frames read these over WebDAV, and davfs2/the kernel trust the size a directory listing
reports, so a rendition is always *made first* and its byte size taken from the finished file. Hence a
disk cache keyed by content (sha256 + size + RENDER_VERSION): an unchanged original is never rebuilt,
an edited one (new sha256) gets a new file, and old ones age out under a byte cap.

Decoders, chosen by sniffing the file's first bytes (extensions lie, media_type may be coarse):

* ordinary stills (JPEG, PNG, WebP, TIFF, GIF, AVIF): libvips ``thumbnail`` -- shrink-on-load,
  EXIF autorotation, ICC import -> sRGB. Only an allow-list of libvips loaders is accepted, so a
  crafted file cannot reach svgload/matrixload/vipsload.
* HEIC/HEIF: pillow-heif (the pyvips wheel has no HEVC decoder). libheif applies irot/imir itself.
  An embedded thumbnail at least as large as the asked size is decoded instead of the full image
  (~10 ms instead of ~400 ms for 12 MP).
* RAW: the largest embedded baseline/progressive JPEG preview, turned by the RAW's own orientation;
  TIFF-based RAWs without one fall back to libvips' first IFD (usually an RGB thumbnail).
* video: one poster frame from ffmpeg (which applies rotation metadata), then like a still.

Decompression bombs: width*height is read from the header only and checked against ``max_pixels``
before any pixel is decoded (-> TooLarge). Decision for HEIC: if the primary image is over the limit
but an embedded thumbnail covers the asked size, the thumbnail is rendered (it is small and bounded,
and it is what the camera meant for small displays) -- so the 200 MP Samsung HEIC has a 256/512 grid
rendition but a 1920 display rendition raises TooLarge.

Every decoder failure is reported as BadMedia (or TooLarge / NotFound); no pyvips, PIL or libheif
exception escapes ``render``.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import re
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import cachetools
import pyvips

from .errors import BadMedia, NoSpace, NotFound, PhotoVFSError, TooLarge

RENDER_VERSION = 1
"""Bump whenever what `render` shows changes (pixels, size, metadata); part of every cache key.

Not bumped for entropy coding alone (standard Huffman tables since the fourth session): an older
file shows the same pixels, and a bump would re-render every cache."""

JPEG_QUALITY = 85
SMALL_MAX = 512
"""Renditions up to this size are also kept in the memory LRU by `get_bytes` (grid thumbnails)."""
MAX_SIZE = 8192
FFMPEG = "ffmpeg"
FFMPEG_TIMEOUT = 60.0
TEMP_PREFIX = ".tmp-"
STALE_TEMP_SECONDS = 3600.0
ATIME_REFRESH_SECONDS = 3600.0

RAW_SUFFIXES = frozenset(
    ".dng .cr2 .cr3 .crw .nef .nrw .arw .srf .sr2 .raf .rw2 .raw .orf .kdc .dcr .k25 .pef .ptx "
    ".srw .x3f .3fr .fff .iiq .mos .mef .mrw .erf .rwl".split()
)
VIDEO_SUFFIXES = frozenset(
    ".mov .mp4 .m4v .avi .mkv .webm .mts .m2ts .ts .3gp .3g2 .mpg .mpeg .wmv .flv .ogv".split()
)
_HEIF_BRANDS = frozenset(
    b"heic heix hevc hevx heim heis hevm hevs mif1 msf1 mif2 miaf".split()
)
_AVIF_BRANDS = frozenset([b"avif", b"avis"])
_CR3_BRANDS = frozenset([b"crx "])
_STILL_LOADERS = frozenset(
    ["jpegload_source", "pngload_source", "webpload_source", "tiffload_source", "gifload_source",
     "heifload_source"]
)
_EXIF_DATE = re.compile(r"\d{4}:\d\d:\d\d \d\d:\d\d:\d\d")

# Each original is read once per rendition, so libvips' operation cache only holds file handles and
# memory -- and, keyed by filename, it could serve stale pixels after an in-place edit.
pyvips.cache_set_max(0)


def thumb_name(name: str) -> str:
    """The rendition's file name: the original's stem + ".jpg" (`IMG_1.HEIC` -> `IMG_1.jpg`).

    Names already ending in `.jpg` are kept exactly; a name without a suffix just gains `.jpg`.
    """
    if name.endswith(".jpg"):
        return name
    stem, dot, _suffix = name.rpartition(".")
    return (stem if dot and stem else name) + ".jpg"


# ---------------------------------------------------------------------------------------------
# the pure function
# ---------------------------------------------------------------------------------------------


def render(
    src: Path, media_type: str, size: int, *, max_pixels: int, taken: datetime | None = None
) -> bytes:
    """An upright sRGB JPEG of `src` whose longest side is `size` (or the original's, if smaller).

    `media_type` ("image", "video", or a MIME type) is only a hint: the file's magic bytes decide.
    The output carries no metadata except a minimal EXIF DateTimeOriginal -- `taken` if given, else
    the original's own -- because photo frames sort and caption by it.
    Raises BadMedia, TooLarge or NotFound; never a decoder's own exception.
    """
    if not 0 < size <= MAX_SIZE:
        raise ValueError(f"rendition size must be 1..{MAX_SIZE}, not {size}")
    src = Path(src)
    try:
        kind = _sniff(src, media_type)
        decode = _DECODERS[kind]
        image, own_date = decode(src, size, max_pixels)
        data = _encode(image)
    except PhotoVFSError:
        raise
    except FileNotFoundError as exc:
        raise NotFound("the original is gone") from exc
    except MemoryError as exc:
        raise TooLarge("out of memory while decoding") from exc
    except Exception as exc:  # pyvips.Error, PIL, libheif, OSError...: all mean "can't read it"
        raise BadMedia(_short_reason(exc, src)) from exc
    stamp = taken.strftime("%Y:%m:%d %H:%M:%S") if taken is not None else own_date
    return _with_exif_date(data, stamp) if stamp else data


def _short_reason(exc: BaseException, src: Path) -> str:
    """First line of a decoder message, trimmed and without the path (it may reach an HTTP reason)."""
    text = str(exc).replace(str(src), "file").strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"cannot decode: {first[:160]}"


def _sniff(src: Path, media_type: str) -> str:
    """Which decoder to use, from magic bytes first, then the extension, then `media_type`."""
    with open(src, "rb") as fh:
        head = fh.read(32)
    if not head:
        raise BadMedia("empty file")
    suffix = src.suffix.lower()
    if head.startswith(b"\xff\xd8\xff"):
        return "still"
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(len(head), 32), 4)}
        if head[8:12] in _AVIF_BRANDS:
            return "still"  # libvips' heifload has the AV1 decoder; pillow-heif here has not
        if brands & _CR3_BRANDS:
            return "raw"
        if brands & _HEIF_BRANDS:
            return "heif"
        return "video"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video"
    if head.startswith((b"FUJIFILMCCD-RAW", b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")) or head[
        6:14
    ] == b"HEAPCCDR":
        return "raw"
    if suffix in RAW_SUFFIXES:
        return "raw"
    if suffix in VIDEO_SUFFIXES or media_type == "video" or media_type.startswith("video/"):
        return "video"
    return "still"


# ---------------------------------------------------------------------------------------------
# decoders: each returns (a pyvips image already at most `size`, upright) and the EXIF date
# ---------------------------------------------------------------------------------------------

Decoded = tuple[pyvips.Image, str | None]


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    """The bomb guard: refuse by header dimensions, before any pixel is decoded."""
    if width <= 0 or height <= 0:
        raise BadMedia("image has no pixels")
    if width * height > max_pixels:
        raise TooLarge(f"{width}x{height} is over the {max_pixels // 1_000_000} MP decode limit")


def _decode_still(src: Path, size: int, max_pixels: int) -> Decoded:
    """libvips shrink-on-load thumbnail (EXIF autorotation, ICC -> sRGB); Pillow when libvips fails.

    The small result is materialised here (`copy_memory`) so that a damaged file fails now, while
    Pillow -- which tolerates some corrupt entropy data libjpeg-turbo rejects -- can still try.
    """
    try:
        header = pyvips.Image.new_from_source(
            pyvips.Source.new_from_file(str(src)), "", access="sequential"
        )
    except pyvips.Error:
        return _decode_pillow(src, size, max_pixels)  # BMP, ICO, PSD...: formats libvips lacks
    loader = header.get("vips-loader") if header.get_typeof("vips-loader") else ""
    if loader not in _STILL_LOADERS:
        raise BadMedia(f"not a supported image format ({loader or 'unknown'})")
    _check_pixels(header.width, header.height, max_pixels)
    try:
        image = pyvips.Image.thumbnail_source(
            pyvips.Source.new_from_file(str(src)), size, height=size, size=pyvips.Size.DOWN,
            **_colour_options(header),
        ).copy_memory()
    except pyvips.Error:
        return _decode_pillow(src, size, max_pixels)
    return image, _vips_exif_date(header)


def _decode_pillow(src: Path, size: int, max_pixels: int) -> Decoded:
    """Fallback still decoder: header size check, JPEG draft (DCT scaling), exif_transpose, ICC."""
    from PIL import Image, ImageOps

    with Image.open(src) as pil:
        _check_pixels(pil.width, pil.height, max_pixels)
        pil.draft("RGB", (size, size))
        icc = pil.info.get("icc_profile")
        date = _pil_exif_date(pil.getexif().tobytes()) if pil.getexif() else None
        upright = ImageOps.exif_transpose(pil)
        return _pil_to_vips(upright, size, icc), date


def _colour_options(header: pyvips.Image) -> dict[str, str]:
    """Ask `thumbnail` for an ICC transform only when there is something to transform.

    With output_profile set, libvips runs lcms even for untagged sRGB (measured: 24 MP -> 1920 goes
    from 130 ms to 580 ms), so untagged RGB is left alone; tagged or CMYK images are converted.
    """
    if header.get_typeof("icc-profile-data") or header.interpretation == "cmyk":
        return {"output_profile": "srgb"}
    return {}


def _vips_exif_date(image: pyvips.Image) -> str | None:
    """DateTimeOriginal as libvips decoded it ("2008:05:30 15:56:01 (2008:05:30 ..., ASCII...)")."""
    for field in ("exif-ifd2-DateTimeOriginal", "exif-ifd0-DateTime"):
        if image.get_typeof(field):
            match = _EXIF_DATE.match(str(image.get(field)))
            if match and not match.group().startswith("0000"):
                return match.group()
    return None


def _decode_heif(src: Path, size: int, max_pixels: int) -> Decoded:
    """pillow-heif decode, preferring an embedded thumbnail that already covers `size`.

    libheif applies irot/imir (the HEIF orientation) itself, for the primary and the thumbnails.
    """
    import pillow_heif

    heif = pillow_heif.open_heif(src, convert_hdr_to_8bit=True)
    primary = heif[heif.primary_index]
    width, height = primary.size
    icc = primary.info.get("icc_profile")
    date = _pil_exif_date(primary.info.get("exif"))
    thumb = _heif_thumbnail(primary, width, height, size, max_pixels)
    if thumb is not None:
        with contextlib.suppress(Exception):  # a broken thumbnail (cat.hif): decode the primary
            return _heif_to_vips(thumb, size, icc or thumb.info.get("icc_profile")), date
    _check_pixels(width, height, max_pixels)
    return _heif_to_vips(primary, size, icc), date


def _heif_thumbnail(primary: Any, width: int, height: int, size: int, max_pixels: int) -> Any:
    """The smallest embedded thumbnail whose longest side is >= `size` and whose shape matches.

    Returns None when the asked size is at least the original's (then the original is the answer)
    or no thumbnail fits. The aspect check rejects letter-boxed thumbnails; the pixel check means a
    crafted "thumbnail" is no way around the bomb guard.
    """
    if size >= max(width, height):
        return None
    best = None
    for index, longest in enumerate(primary.info.get("thumbnails") or []):
        if not longest or longest < size or (best and longest >= best[0]):
            continue
        best = (longest, index)
    if best is None:
        return None
    try:
        thumb = primary.get_thumbnail(best[1])
    except Exception:
        return None
    tw, th = thumb.size
    if not tw or not th or tw * th > max_pixels:
        return None
    if abs(tw / th - width / height) > 0.02 * (width / height):
        return None
    return thumb


def _heif_to_vips(heif_image: Any, size: int, icc: bytes | None) -> pyvips.Image:
    """Wrap libheif's decoded buffer in a libvips image without copying it, then shrink and sRGB."""
    heif_image.load()
    width, height = heif_image.size
    mode = heif_image.mode
    if mode not in ("RGB", "RGBA") or heif_image.stride != width * len(mode):
        return _pil_to_vips(heif_image.to_pillow(), size, icc)  # 16-bit or padded rows: rare
    image = pyvips.Image.new_from_memory(heif_image.data, width, height, len(mode), "uchar")
    image = image.copy(interpretation="srgb").thumbnail_image(
        size, height=size, size=pyvips.Size.DOWN
    )
    return _to_srgb(image, icc).copy_memory()  # copy_memory: done with libheif's buffer


def _pil_to_vips(pil: Any, size: int, icc: bytes | None) -> pyvips.Image:
    """Hand a decoded Pillow image to libvips (8-bit RGB/RGBA), shrink to `size`, ICC -> sRGB."""
    if pil.mode not in ("RGB", "RGBA"):
        pil = pil.convert("RGBA" if "A" in pil.mode else "RGB")
    if max(pil.size) > size:
        pil.thumbnail((size, size), reducing_gap=3.0)  # Pillow's reduce() first: fast for 12 MP
    image = pyvips.Image.new_from_memory(pil.tobytes(), pil.width, pil.height, len(pil.mode), "uchar")
    return _to_srgb(image.copy(interpretation="srgb"), icc)


def _to_srgb(image: pyvips.Image, icc: bytes | None) -> pyvips.Image:
    """Convert from the embedded ICC profile to sRGB; a broken profile means "assume sRGB"."""
    if not icc:
        return image
    tagged = image.copy()
    tagged.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    try:
        return tagged.icc_transform("srgb", embedded=True, intent="perceptual").copy_memory()
    except pyvips.Error:
        return image  # e.g. empty_icc.heic


def _pil_exif_date(exif: bytes | None) -> str | None:
    """DateTimeOriginal from raw EXIF bytes (HEIC), tolerant of junk."""
    if not exif:
        return None
    try:
        from PIL import Image

        parsed = Image.Exif()
        parsed.load(exif)
        value = parsed.get_ifd(0x8769).get(0x9003) or parsed.get(0x0132)
    except Exception:
        return None
    match = _EXIF_DATE.match(str(value or ""))
    return match.group() if match and not match.group().startswith("0000") else None


def _decode_raw(src: Path, size: int, max_pixels: int) -> Decoded:
    """The largest embedded JPEG preview, turned by the RAW's orientation (not the preview's)."""
    orientation, date = _raw_tags(src)
    with open(src, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise BadMedia("empty file")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            streams = sorted(_jpeg_streams(mm), key=lambda s: s[2] * s[3], reverse=True)
            for start, end, width, height in streams:
                if width * height > max_pixels:
                    continue
                try:
                    jpeg = mm[start:end]
                    header = pyvips.Image.new_from_buffer(jpeg, "", access="sequential")
                    image = pyvips.Image.thumbnail_buffer(
                        jpeg, size, height=size, size=pyvips.Size.DOWN, no_rotate=True,
                        **_colour_options(header),
                    )
                    own = image.get("orientation") if image.get_typeof("orientation") else 1
                    image = _orient(image, orientation or own)
                    image = image.copy_memory()  # decode now, while the mmap is still open
                    return image, date
                except pyvips.Error:
                    continue
    if streams and all(w * h > max_pixels for _s, _e, w, h in streams):
        raise TooLarge("the RAW's preview is over the decode limit")
    with open(src, "rb") as fh:
        is_tiff = fh.read(4) in (b"II*\x00", b"MM\x00*")
    if is_tiff:  # e.g. Kodak KDC, tiny DNGs: IFD0 is an ordinary RGB image
        try:
            return _decode_still(src, size, max_pixels)
        except pyvips.Error:
            pass
    raise BadMedia("RAW file without a usable embedded preview")


def _raw_tags(src: Path) -> tuple[int | None, str | None]:
    """(orientation 1..8, DateTimeOriginal) of a RAW via exifread; (None, None) when unreadable."""
    try:
        import exifread

        with open(src, "rb") as fh:
            tags = exifread.process_file(fh, details=False)
    except Exception:
        return None, None
    orientation = None
    tag = tags.get("Image Orientation")
    if tag is not None:
        with contextlib.suppress(Exception):
            value = int(tag.values[0])
            orientation = value if 1 <= value <= 8 else None
    date = None
    for name in ("EXIF DateTimeOriginal", "Image DateTime"):
        match = _EXIF_DATE.match(str(tags.get(name, "")))
        if match and not match.group().startswith("0000"):
            date = match.group()
            break
    return orientation, date


def _orient(image: pyvips.Image, orientation: int) -> pyvips.Image:
    """Apply an EXIF orientation (1..8) to pixels that were loaded without autorotation."""
    if orientation in (None, 1) or not 1 <= orientation <= 8:
        return image
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", int(orientation))
    return image.autorot()


_SOF_LOSSY = frozenset([0xC0, 0xC1, 0xC2])
_SOF_OTHER = frozenset([0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF])


def _jpeg_streams(buf: Any) -> list[tuple[int, int, int, int]]:
    """Every complete lossy JPEG (start, end, width, height) found by walking SOI..EOI markers.

    Walking segments (not just searching FFD9) gives exact extents, skips the EXIF thumbnail nested in
    a preview's APP1, and drops the lossless-JPEG tiles RAWs use for sensor data (SOF3).
    """
    found: list[tuple[int, int, int, int]] = []
    pos = buf.find(b"\xff\xd8\xff")
    while pos != -1:
        parsed = _walk_jpeg(buf, pos)
        if parsed is not None:
            found.append((pos, *parsed))
            pos = buf.find(b"\xff\xd8\xff", parsed[0])
        else:
            pos = buf.find(b"\xff\xd8\xff", pos + 3)
    return found


def _walk_jpeg(buf: Any, start: int) -> tuple[int, int, int] | None:
    """(end, width, height) of the JPEG starting at `start`, or None if it is not a whole lossy one."""
    size = len(buf)
    i = start + 2
    width = height = 0
    while i + 4 <= size:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0xD9:
            return (i + 2, width, height) if width and height else None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        length = int.from_bytes(buf[i + 2 : i + 4], "big")
        if length < 2:
            return None
        if marker in _SOF_OTHER:
            return None
        if marker in _SOF_LOSSY and i + 9 <= size:
            height = int.from_bytes(buf[i + 5 : i + 7], "big")
            width = int.from_bytes(buf[i + 7 : i + 9], "big")
        i += 2 + length
        if marker == 0xDA:
            i = _skip_entropy(buf, i)
            if i < 0:
                return None
    return None


def _skip_entropy(buf: Any, i: int) -> int:
    """Index of the next real marker after entropy-coded data (FF00 and RSTn are data), or -1."""
    size = len(buf)
    while True:
        j = buf.find(b"\xff", i)
        if j == -1 or j + 1 >= size:
            return -1
        nxt = buf[j + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
            i = j + 1 if nxt == 0xFF else j + 2
            continue
        return j


def _decode_video(src: Path, size: int, max_pixels: int) -> Decoded:
    """A poster frame 1 s in (0 s for shorter clips), via ffmpeg, shrunk like a still."""
    frame = _ffmpeg_frame(src, 1.0, max_pixels) or _ffmpeg_frame(src, 0.0, max_pixels)
    if not frame:
        raise BadMedia("no video frame could be decoded")
    header = pyvips.Image.new_from_buffer(frame, "", access="sequential")
    _check_pixels(header.width, header.height, max_pixels)
    image = pyvips.Image.thumbnail_buffer(frame, size, height=size, size=pyvips.Size.DOWN,
                                          **_colour_options(header))
    return image, None


def _ffmpeg_frame(src: Path, seek: float, max_pixels: int) -> bytes:
    """One MJPEG frame on stdout. `file:` stops names like `concat:...` being read as protocols."""
    cmd = [
        FFMPEG, "-nostdin", "-v", "error", "-max_pixels", str(max_pixels), "-ss", f"{seek:g}",
        "-i", f"file:{os.path.abspath(src)}", "-frames:v", "1", "-an", "-sn", "-dn",
        "-f", "image2pipe", "-vcodec", "mjpeg", "-q:v", "2", "-",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
    except FileNotFoundError as exc:
        raise BadMedia("ffmpeg is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise BadMedia("ffmpeg took too long") from exc
    return done.stdout if done.returncode == 0 and done.stdout.startswith(b"\xff\xd8") else b""


_DECODERS: dict[str, Callable[[Path, int, int], Decoded]] = {
    "still": _decode_still,
    "heif": _decode_heif,
    "raw": _decode_raw,
    "video": _decode_video,
}


# ---------------------------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------------------------


def _encode(image: pyvips.Image) -> bytes:
    """Baseline 8-bit sRGB JPEG, metadata stripped (GPS must not leak to a TV), alpha on white."""
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.interpretation != "srgb" or image.format != "uchar" or image.bands != 3:
        image = image.colourspace("srgb")
    if image.bands > 3:
        image = image.extract_band(0, n=3)
    if image.format != "uchar":
        image = image.cast("uchar")
    # Standard Huffman tables: optimize_coding's extra pass cost 6-10 % of a 1920 px rendition
    # (11 ms of ~170) to save ~10 % of its bytes, which a TV on a LAN does not notice.
    return image.jpegsave_buffer(Q=JPEG_QUALITY, keep=pyvips.ForeignKeep.NONE, interlace=False)


def _exif_date_payload(stamp: str) -> bytes:
    """The APP1 payload PIL's `Exif.tobytes()` gives for DateTimeOriginal alone, byte for byte.

    Built by hand: big-endian TIFF, IFD0 holding only the ExifIFD pointer, ExifIFD holding only
    0x9003 (ASCII, NUL-terminated). Importing Pillow for this cost a worker ~10 MB and the import.
    """
    value = stamp.encode("ascii", "replace") + b"\x00"
    exif_ifd = 8 + 2 + 12 + 4  # TIFF header, IFD0 (one entry, next-IFD offset)
    data_at = exif_ifd + 2 + 12 + 4
    inline = len(value) <= 4
    field = value.ljust(4, b"\x00") if inline else struct.pack(">I", data_at)
    tiff = (b"MM\x00\x2a" + struct.pack(">I", 8)
            + struct.pack(">HHHII", 1, 0x8769, 4, 1, exif_ifd) + struct.pack(">I", 0)
            + struct.pack(">HHHI", 1, 0x9003, 2, len(value)) + field + struct.pack(">I", 0)
            + (b"" if inline else value + b"\x00" * (len(value) % 2)))  # TIFF word alignment
    return b"Exif\x00\x00" + tiff


def _with_exif_date(jpeg: bytes, stamp: str) -> bytes:
    """Insert a minimal APP1 EXIF (DateTimeOriginal only) after SOI / the JFIF APP0."""
    payload = _exif_date_payload(stamp)
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    at = 2
    if jpeg[2:4] == b"\xff\xe0":
        at = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:at] + segment + jpeg[at:]


# ---------------------------------------------------------------------------------------------
# the cache
# ---------------------------------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-f]{8,128}")
_FAILED = (BadMedia, TooLarge)


class Renditions:
    """Disk cache + memory LRU + bounded worker pool around `render`.

    Concurrency: at most `workers` decodes run at once (a semaphore shared by `get` callers and the
    `ensure_many` pool), and N concurrent requests for one key share a single decode (in-flight
    futures under a lock). Deterministic failures (BadMedia/TooLarge) are remembered per key so a
    corrupt file is not re-decoded on every directory listing.

    `render_fn` and `renders` are the test/benchmark hook: the function called for each decode and
    how many decodes actually ran.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        memory_bytes: int = 64 << 20,
        cap_bytes: int = 2 << 30,
        workers: int = 2,
        max_pixels: int = 120_000_000,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.cap_bytes = cap_bytes
        self.max_pixels = max_pixels
        self.render_fn: Callable[..., bytes] = render
        self.renders = 0
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[Path]] = {}
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rendition")
        self._memory: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(
            maxsize=max(1, memory_bytes), getsizeof=len
        )
        self._memory_lock = threading.Lock()
        self._failures: cachetools.LRUCache[str, PhotoVFSError] = cachetools.LRUCache(maxsize=10_000)
        self._disk_bytes: int | None = None  # lazily scanned; an estimate between evictions
        self._evict_lock = threading.Lock()

    # -- naming ---------------------------------------------------------------------------

    def key(self, sha256: str, size: int, *, taken: datetime | None = None) -> str:
        """Content hash + size + RENDER_VERSION (+ the overriding capture date, when given)."""
        digest = sha256.lower()
        if not _HEX.fullmatch(digest):
            raise ValueError("sha256 must be a hex digest")
        if not 0 < size <= MAX_SIZE:
            raise ValueError(f"rendition size must be 1..{MAX_SIZE}, not {size}")
        key = f"{digest}-{size}-v{RENDER_VERSION}"
        return key + (taken.strftime("-t%Y%m%d%H%M%S") if taken is not None else "")

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.jpg"

    def cached(self, sha256: str, size: int, *, taken: datetime | None = None) -> Path | None:
        """The finished JPEG's path if it exists; never renders. Marks it recently used.

        A file that is not a whole JPEG (cut short by a power cut: renditions are not fsynced)
        counts as missing, so it is made again and the rename replaces it.
        """
        path = self._path(self.key(sha256, size, taken=taken))
        st = whole_jpeg(path)
        if st is None:
            return None
        now = time.time()
        if now - max(st.st_atime, st.st_mtime) > ATIME_REFRESH_SECONDS:
            with contextlib.suppress(OSError):  # relatime/noatime mounts: keep LRU order honest
                os.utime(path, (now, st.st_mtime))
        return path

    # -- making ---------------------------------------------------------------------------

    def get(
        self, src: Path, sha256: str, media_type: str, size: int, *, taken: datetime | None = None
    ) -> Path:
        """Path of the rendition, rendering it first if missing. Concurrent callers share one decode."""
        key = self.key(sha256, size, taken=taken)
        path = self.cached(sha256, size, taken=taken)
        if path is not None:
            return path
        with self._lock:
            failure = self._failures.get(key)
            if failure is not None:
                raise type(failure)(failure.reason)
            future = self._inflight.get(key)
            owner = future is None
            if owner:
                future = Future()
                self._inflight[key] = future
        assert future is not None
        if not owner:
            return future.result()
        try:
            path = self._make(key, Path(src), media_type, size, taken)
        except BaseException as exc:
            if isinstance(exc, _FAILED):
                with self._lock:
                    self._failures[key] = exc
            future.set_exception(exc)
            raise
        else:
            future.set_result(path)
            return path
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _make(self, key: str, src: Path, media_type: str, size: int, taken: datetime | None) -> Path:
        """Render under a worker slot and publish atomically (re-checking: another process may win)."""
        path = self._path(key)
        if whole_jpeg(path) is not None:
            return path
        with self._slots:
            with self._lock:
                self.renders += 1
            data = self.render_fn(src, media_type, size, max_pixels=self.max_pixels, taken=taken)
        write_rendition(path, data)
        if size <= SMALL_MAX:
            self._remember(key, data)
        self._account(len(data), path)
        return path

    def get_bytes(
        self, src: Path, sha256: str, media_type: str, size: int, *, taken: datetime | None = None
    ) -> bytes:
        """The rendition's bytes; sizes <= SMALL_MAX are served from the memory LRU when possible."""
        key = self.key(sha256, size, taken=taken)
        if size <= SMALL_MAX:
            with self._memory_lock:
                hit = self._memory.get(key)
            if hit is not None:
                return hit
        for _attempt in range(2):  # the file may be evicted between get() and the read
            path = self.get(src, sha256, media_type, size, taken=taken)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if size <= SMALL_MAX:
                self._remember(key, data)
            return data
        raise NotFound("the rendition vanished while being read")

    def _remember(self, key: str, data: bytes) -> None:
        if len(data) <= self._memory.maxsize:
            with self._memory_lock:
                self._memory[key] = data

    def ensure_many(
        self, items: Iterable[tuple[Path, str, str]], size: int
    ) -> dict[str, Path | Exception]:
        """Make all missing renditions on the bounded pool; {sha256: path or the error}, never raises."""
        futures: dict[str, Future[Path]] = {}
        for src, sha256, media_type in items:
            if sha256 not in futures:
                futures[sha256] = self._pool.submit(self.get, src, sha256, media_type, size)
        results: dict[str, Path | Exception] = {}
        for sha256, future in futures.items():
            try:
                results[sha256] = future.result()
            except Exception as exc:
                results[sha256] = exc
        return results

    # -- space ----------------------------------------------------------------------------

    def _account(self, added: int, fresh: Path) -> None:
        """Keep a running total; evict once it crosses the cap (evict() rescans the disk).

        The file just written is spared: its path is about to be handed to the caller.
        """
        with self._lock:
            if self._disk_bytes is not None:
                self._disk_bytes += added
            over = self._disk_bytes is None or self._disk_bytes > self.cap_bytes
        if over:
            self._evict(spare=str(fresh))

    def evict(self) -> int:
        """Delete least-recently-used renditions until the cache is within cap_bytes; bytes freed.

        Last use is max(atime, mtime): `cached` refreshes atime itself because relatime/noatime
        mounts do not. Stale temp files of killed writers are removed too.
        """
        return self._evict(spare=None)

    def _evict(self, spare: str | None) -> int:
        with self._evict_lock:
            entries: list[tuple[float, int, str]] = []
            freed = 0
            now = time.time()
            for dirpath, _dirs, files in os.walk(self.cache_dir):
                for name in files:
                    full = os.path.join(dirpath, name)
                    try:
                        st = os.stat(full)
                    except FileNotFoundError:
                        continue
                    if name.startswith(TEMP_PREFIX):
                        if now - st.st_mtime > STALE_TEMP_SECONDS:
                            freed += _unlink(full, st.st_size)
                        continue
                    if name.endswith(".jpg"):
                        entries.append((max(st.st_atime, st.st_mtime), st.st_size, full))
            total = sum(size for _t, size, _p in entries)
            entries.sort()
            for _used, size, full in entries:
                if total <= self.cap_bytes:
                    break
                if full == spare:
                    continue
                gone = _unlink(full, size)
                freed += gone
                total -= gone
            with self._lock:
                self._disk_bytes = total
            return freed

    def close(self) -> None:
        """Stop the pool (queued work is cancelled, running decodes finish) and drop the memory LRU."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._memory_lock:
            self._memory.clear()

    def __enter__(self) -> Renditions:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def write_rendition(path: Path, data: bytes) -> None:
    """Publish a rendition: temp file in the same folder + os.replace, without fsync.

    A killed process leaves at most a stray temp file, never half a JPEG under the real name (the
    kernel still holds the written pages). Only a power cut can leave the renamed file short or
    empty; renditions are derived data, so instead of an fsync per file (1.5 ms idle, far more
    while a backup or an ingest is writing) every reader checks `whole_jpeg` and re-renders.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise NoSpace("the rendition cache disk is full") from exc
        raise


def whole_jpeg(path: Path) -> os.stat_result | None:
    """The file's stat if it starts with SOI and ends with EOI; None if missing, empty or cut short.

    What a power cut can leave of an un-fsynced file is an empty or truncated one (ext4 and XFS
    delayed allocation), so the two ends are enough. Costs an open and two 2-byte reads on top
    of the stat it replaces (~2.5x a stat: ~30 us against 13 us at load 8).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        st = os.fstat(fd)
        if st.st_size < 4:
            return None
        if os.pread(fd, 2, 0) != b"\xff\xd8" or os.pread(fd, 2, st.st_size - 2) != b"\xff\xd9":
            return None
        return st
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# worker processes (pre-generation)
# ---------------------------------------------------------------------------------------------


def worker_init(nice: int, workers: int = 0) -> None:
    """Initializer of a pre-generation worker process: lower priority, libvips threads = its share
    of the cores (one each for 2 workers on 2 cores).

    The pool already runs `workers` decodes at once; libvips' own default of one thread per core
    in every worker made 2 processes x 2 threads fight for 2 cores (measured: 20-50 % more
    renditions per second with one libvips thread each). Lives here, not in background.py, so
    that a spawned worker imports this module and pyvips only (not the catalog and SQLAlchemy:
    ~0.6 s and ~20 MB per worker).
    """
    if nice:
        with contextlib.suppress(OSError, AttributeError):
            os.nice(nice)
    pyvips.concurrency_set(max(1, (os.cpu_count() or 1) // workers) if workers > 0 else 1)


def render_to(src: str, media_type: str, size: int, max_pixels: int, dest: str) -> tuple[int, str]:
    """Worker process: render and publish `dest`; (bytes, "") or (0, reason). Never raises."""
    try:
        data = render(Path(src), media_type, size, max_pixels=max_pixels)
    except PhotoVFSError as exc:
        return 0, f"{type(exc).__name__}: {exc.reason}"
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        return 0, f"{type(exc).__name__}: {exc}"
    try:
        write_rendition(Path(dest), data)
    except (OSError, PhotoVFSError) as exc:
        return 0, f"cannot write the rendition: {getattr(exc, 'reason', None) or exc}"
    return len(data), ""


def _unlink(path: str, size: int) -> int:
    """Remove a file; the bytes freed (0 if someone else got there first)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return size
