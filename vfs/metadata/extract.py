"""`extract`: one media file (plus optional sidecar) -> `Facts`, never raising.

Reading happens in two phases. First every source is collected independently and defensively
(EXIF, embedded XMP, sidecar XMP, QuickTime header, IPTC): one broken block must not hide the
others. Then `_resolve` applies the documented precedence rules in one place, so the fallback
order for dates, positions and people can be read top to bottom.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

import pillow_heif
from PIL import Image, ImageFile, IptcImagePlugin, UnidentifiedImageError

from . import exif as exif_mod
from . import fastjpeg
from .dates import filename_datetime, parse_exif_datetime, parse_offset
from .exif import ExifInfo, valid_orientation
from .facts import Facts, Region
from .jpeg import jpeg_problem, png_problem
from .kinds import HEIF_EXTS, JPEG_EXTS, QUICKTIME_EXTS, RAW_EXTS, ext_of, media_kind
from .regions import to_displayed
from .video import BadContainer, VideoInfo, check_heif, read_avi, read_quicktime
from .xmp import XmpData, find_packets, parse_packets, parse_sidecar

log = logging.getLogger(__name__)
pillow_heif.register_heif_opener()

XMP_HEAD_BYTES = 4 * 1024 * 1024
XMP_TAIL_BYTES = 1024 * 1024
RAW_HEAD_BYTES = exif_mod.EXIFREAD_MAX_BYTES_TIFF
HEAD_BYTES = XMP_HEAD_BYTES  # what is kept in memory of each file: every parser's window
CHUNK = 1024 * 1024


@dataclass
class Preread:
    """One file read once: its first HEAD_BYTES and, when longer and read to the end, its tail.

    `jpeg` is the parsed header of a well-formed JPEG (the fast path), `jpeg_complete` whether
    an end-of-image marker follows its first scan (the truncation check).
    """

    size: int
    mtime: float
    head: bytes
    tail: bytes | None = None  # bytes from max(HEAD_BYTES, size - XMP_TAIL_BYTES) to the end
    jpeg: fastjpeg.JpegHead | None = None
    jpeg_complete: bool = False

    def first(self, limit: int) -> bytes:
        return self.head[:limit]


def read_once(path: Path, hasher: hashlib._Hash | None = None) -> Preread:
    """Read a file for `extract`, feeding every byte to `hasher` when given (OSError when the file
    cannot be read). Without a hasher only what the parsers need is read; memory stays bounded
    (HEAD_BYTES + 2 * CHUNK) whatever the file's size."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        # ask for what is there (+1 to see the end): a 4 MB request costs a 4 MB allocation
        want = HEAD_BYTES if st.st_size >= HEAD_BYTES else st.st_size + 1
        head = fh.read(want)
        if len(head) == want < HEAD_BYTES:  # the file grew since fstat
            head += fh.read(HEAD_BYTES - want)
        if hasher is not None:
            hasher.update(head)
        pre = Preread(st.st_size, st.st_mtime, head)
        if ext_of(path.name) in JPEG_EXTS and head[:3] == b"\xff\xd8\xff":
            try:
                pre.jpeg = fastjpeg.parse_head(head)
            except fastjpeg.Unsupported:
                pre.jpeg = None
            else:
                # from the end: that is where the marker of a complete file is
                pre.jpeg_complete = head.rfind(b"\xff\xd9", pre.jpeg.scan_start) >= 0
        if len(head) < HEAD_BYTES:
            return pre
        seek_eoi = pre.jpeg is not None and not pre.jpeg_complete
        if hasher is None and not seek_eoi:
            return pre
        prev = cur = b""
        last = head[-1:]
        total = len(head)
        while chunk := fh.read(CHUNK):
            if hasher is not None:
                hasher.update(chunk)
            if seek_eoi:
                if chunk.rfind(b"\xff\xd9") >= 0 or (last == b"\xff" and chunk[:1] == b"\xd9"):
                    pre.jpeg_complete, seek_eoi = True, False
                    if hasher is None:
                        return pre
                last = chunk[-1:]
            prev, cur = cur, chunk
            total += len(chunk)
        if total > HEAD_BYTES:
            pre.tail = (prev + cur)[-min(XMP_TAIL_BYTES, total - HEAD_BYTES):]
        return pre


@dataclass
class _Sources:
    """Everything read from the file before precedence rules are applied."""

    exif: ExifInfo = field(default_factory=ExifInfo)
    orientation: int | None = None
    embedded: XmpData | None = None
    sidecar: XmpData | None = None
    video: VideoInfo | None = None
    iptc_keywords: set[str] = field(default_factory=set)
    extra_packets: list[bytes] = field(default_factory=list)


def short_reason(exc: BaseException) -> str:
    """One line for Facts.error: exception text without file names, bounded in length."""
    if isinstance(exc, UnidentifiedImageError):
        return "unknown or damaged image format"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).split("\n", 1)[0].strip() or type(exc).__name__
    return text[:120]


# ---------------------------------------------------------------- public entry point


def extract(path: Path, sidecar: Path | None = None) -> Facts:
    """Read what a media file says about itself; a damaged file gives ok=False, never an exception.

    `sidecar` is an `.xmp` file whose people, keywords and albums override the embedded ones.
    The file is only ever opened read-only.
    """
    path = Path(path)
    try:
        pre: Preread | None = read_once(path)
    except Exception:  # unreadable: the general path below says why
        pre = None
    return _extract(path, sidecar, pre)


def hash_and_extract(path: Path, sidecar: Path | None = None) -> tuple[str, Facts]:
    """(sha256 hex digest, facts) of a file read once: the scanner's per-file work.

    Raises OSError when the file cannot be read (the facts alone never raise)."""
    path = Path(path)
    hasher = hashlib.sha256()
    pre = read_once(path, hasher)
    return hasher.hexdigest(), _extract(path, sidecar, pre)


def hash_unparsed(path: Path, reason: str) -> tuple[str, Facts]:
    """(sha256, facts of a corrupt file) without running any parser: for a file whose reading
    crashed a reader process, so that it is still catalogued (with `reason`) and dated from its
    name or mtime like any other corrupt file. Raises OSError when the file cannot be read."""
    path = Path(path)
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        mtime = os.fstat(fh.fileno()).st_mtime
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    media_type, mime = media_kind(path.name) or ("other", "application/octet-stream")
    facts = Facts(media_type=media_type, mime=mime, ok=False, error=reason)
    _resolve(facts, _Sources(), path, mtime)
    return hasher.hexdigest(), facts


def _extract(path: Path, sidecar: Path | None, pre: Preread | None) -> Facts:
    media_type, mime = media_kind(path.name) or ("other", "application/octet-stream")
    facts = Facts(media_type=media_type, mime=mime)
    src = _Sources()
    mtime: float | None = None
    try:
        if pre is None:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime
        else:
            size, mtime = pre.size, pre.mtime
        if pre is None or pre.jpeg is None or not _read_jpeg_fast(pre, pre.jpeg, facts, src):
            _read_media(path, size, facts, src, pre)
    except Exception as exc:  # the contract: extraction never raises for a bad file
        facts.ok, facts.error = False, short_reason(exc)
    src.embedded = _safe_embedded_xmp(path, src.extra_packets, pre)
    if sidecar is not None:
        src.sidecar = _safe(parse_sidecar, sidecar)
    try:
        _resolve(facts, src, path, mtime)
    except Exception as exc:  # pragma: no cover - defensive: resolution is pure Python on dicts
        log.exception("resolving facts for %s failed", path)
        facts.ok, facts.error = False, short_reason(exc)
    return facts


def _safe(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except Exception as exc:
        log.debug("%s failed: %r", getattr(fn, "__name__", fn), exc)
        return None


# ---------------------------------------------------------------- reading


def _read_jpeg_fast(pre: Preread, jpeg: fastjpeg.JpegHead, facts: Facts, src: _Sources) -> bool:
    """What `_read_still` finds in a well-formed JPEG, from the bytes already read; False sends
    the file down the general path (`fastjpeg` declined it)."""
    if fastjpeg.frame_too_large(jpeg.width, jpeg.height):
        return False
    try:
        info = fastjpeg.exif_info(jpeg.exif, jpeg.xmp)
    except Exception as exc:  # Unsupported, or a surprise: the general path decides
        log.debug("JPEG fast path declined: %r", exc)
        return False
    facts.width, facts.height = jpeg.width, jpeg.height
    src.exif = info
    src.orientation = info.orientation
    if jpeg.xmp:
        src.extra_packets.append(jpeg.xmp)
    if jpeg.iptc is not None:
        src.iptc_keywords = _safe(_iptc_block_keywords, jpeg.iptc) or set()
    if not pre.jpeg_complete:
        facts.ok, facts.error = False, "truncated JPEG (image data is cut off)"
    if _exif_gaps(src.exif):
        src.exif.fill_from(
            exif_mod.safe(exif_mod.from_exifread, pre.first(exif_mod.EXIFREAD_MAX_BYTES))
        )
    return True


def _read_media(path: Path, size: int, facts: Facts, src: _Sources,
                pre: Preread | None = None) -> None:
    if size == 0:
        facts.ok, facts.error = False, "empty file"
        return
    ext = ext_of(path.name)
    if ext in RAW_EXTS:
        _read_raw(path, ext, facts, src, pre)
    elif facts.media_type == "image":
        _read_still(path, ext, size, facts, src, pre)
    elif ext in QUICKTIME_EXTS:
        with open(path, "rb") as fh:
            src.video = read_quicktime(fh, size)
        if not src.video.has_moov:
            facts.ok, facts.error = False, "no movie header (moov) found"
    elif ext == "avi":
        with open(path, "rb") as fh:
            src.video = read_avi(fh)


def _open_image(fh: io.BufferedReader | io.BytesIO) -> Image.Image:
    """Image.open without the decompression-bomb warning: extract never decodes pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(fh)


def _read_still(path: Path, ext: str, size: int, facts: Facts, src: _Sources,
                pre: Preread | None = None) -> None:
    with open(path, "rb") as fh:
        try:
            im = _open_image(fh)
        except Image.DecompressionBombError:
            # Valid but huge: verify() reports TooLarge. Metadata is still wanted.
            if ext in HEIF_EXTS:
                _read_heif_direct(path, facts, src)
        except Exception as exc:
            facts.ok = False
            facts.error = (
                "no JPEG XL decoder available"
                if ext == "jxl"
                else f"not a readable image ({short_reason(exc)})"
            )
            return
        else:
            _from_pillow_image(im, facts, src)
            problem = _structure_problem(path, im.format, size)
            if problem:
                facts.ok, facts.error = False, problem
    if ext not in HEIF_EXTS and ext not in ("png", "gif", "webp") and _exif_gaps(src.exif):
        src.exif.fill_from(
            exif_mod.safe(exif_mod.from_exifread, _head(path, exif_mod.EXIFREAD_MAX_BYTES, pre))
        )


def _read_heif_direct(path: Path, facts: Facts, src: _Sources) -> None:
    """HEIF metadata straight from pillow-heif, bypassing Pillow's decompression-bomb check.

    The raw EXIF here still carries the original orientation (the Pillow plugin resets it to 1).
    """
    heif = pillow_heif.open_heif(path)
    facts.width, facts.height = heif.size
    blob = heif.info.get("exif")
    if isinstance(blob, bytes):
        src.exif = exif_mod.safe(exif_mod.from_exif_bytes, blob)
        src.orientation = src.exif.orientation
    xmp = heif.info.get("xmp")
    if isinstance(xmp, bytes):
        src.extra_packets.append(xmp)


def _exif_gaps(info: ExifInfo) -> bool:
    """exifread only runs when Pillow left the basic fields empty: it is slower and less robust."""
    # a photo without a GPS block is the common case: only a block Pillow could not read sends
    # the file through exifread again (that second parse cost ~60% of files a second read)
    return info.datetime_original is None or info.make is None or (
        bool(info.gps_ifd) and info.lat is None)


def _from_pillow_image(im: Image.Image, facts: Facts, src: _Sources) -> None:
    """Size, EXIF, XMP and IPTC from an opened (not decoded) image.

    HEIF/AVIF: pillow-heif applies the container's rotation itself, so its decoded pixels (and
    `im.size`) are already upright and it rewrites EXIF Orientation to 1. The orientation recorded
    here is the original one (`info["original_orientation"]`), which is what region metadata
    refers to; consumers must not rotate pillow-heif output a second time.
    """
    facts.width, facts.height = im.size
    src.exif = exif_mod.safe(exif_mod.from_pillow, im)
    original = valid_orientation(im.info.get("original_orientation"))
    src.orientation = original or src.exif.orientation
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, bytes):
        src.extra_packets.append(xmp)
    if im.format in ("JPEG", "MPO", "TIFF"):
        src.iptc_keywords = _safe(_iptc_keywords, im) or set()


def _structure_problem(path: Path, fmt: str | None, size: int) -> str | None:
    if fmt in ("JPEG", "MPO"):
        return jpeg_problem(path)
    if fmt == "PNG":
        return png_problem(path)
    if fmt in ("HEIF", "AVIF"):
        try:
            with open(path, "rb") as fh:
                check_heif(fh, size)
        except BadContainer as exc:
            return str(exc)
    return None


def _iptc_keywords(im: Image.Image) -> set[str]:
    """IPTC-IIM keywords (2:25), as written by Picasa and older tools."""
    # only called for images opened from a JPEG/MPO/TIFF file, i.e. ImageFile instances
    return _iptc_words(IptcImagePlugin.getiptcinfo(cast(ImageFile.ImageFile, im)) or {})


def _iptc_block_keywords(block: bytes) -> set[str]:
    return _iptc_words(fastjpeg.iptc_info(block))


def _iptc_words(info: dict) -> set[str]:
    raw = info.get((2, 25))
    values = raw if isinstance(raw, list) else [raw] if raw else []
    words = set()
    for value in values:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        if text.strip("\x00 "):
            words.add(text.strip("\x00 "))
    return words


def _head(path: Path, limit: int, pre: Preread | None = None) -> bytes:
    if pre is not None and limit <= HEAD_BYTES:
        return pre.first(limit)
    with open(path, "rb") as fh:
        return fh.read(limit)


def _read_raw(path: Path, ext: str, facts: Facts, src: _Sources,
              pre: Preread | None = None) -> None:
    """RAW: a recognised container, or a TIFF structure that exifread can read, counts as ok."""
    head = _head(path, RAW_HEAD_BYTES, pre)
    problem = raw_problem(ext, head)
    if ext == "raf" and problem is None:
        preview = _raf_preview(path, head)
        if preview:
            with _open_image(io.BytesIO(preview)) as im:
                src.exif = exif_mod.safe(exif_mod.from_pillow, im)
    elif ext not in ("cr3", "crw", "raf"):
        src.exif = exif_mod.safe(exif_mod.from_exifread, head)
        try:
            with open(path, "rb") as fh, _open_image(fh) as im:
                facts.width, facts.height = im.size
                src.exif.fill_from(exif_mod.safe(exif_mod.from_pillow, im))
                problem = None
        except Exception:
            if src.exif.make or src.exif.model or src.exif.datetime_original or src.exif.datetime:
                problem = None
            else:
                problem = problem or "not a readable RAW file (no TIFF structure)"
    src.orientation = src.exif.orientation
    if problem:
        facts.ok, facts.error = False, problem


def raw_problem(ext: str, head: bytes) -> str | None:
    """Signature check for RAW containers that are not TIFF-based."""
    if ext == "cr3":
        return None if head[4:12] == b"ftypcrx " else "not a Canon CR3 file"
    if ext == "crw":
        return None if head[6:14] == b"HEAPCCDR" else "not a Canon CRW file"
    if ext == "raf":
        return None if head.startswith(b"FUJIFILMCCD-RAW") else "not a Fujifilm RAF file"
    if (
        head[:4] in (b"II*\x00", b"MM\x00*", b"IIRO", b"IIU\x00", b"MMOR")
        or head[:2] == b"\xff\xd8"
    ):
        return None
    return "not a readable RAW file (unknown signature)"


def _raf_preview(path: Path, head: bytes) -> bytes | None:
    """The JPEG preview a RAF carries (offset/length at bytes 84/88), which holds its EXIF."""
    if len(head) < 92:
        return None
    offset, length = int.from_bytes(head[84:88], "big"), int.from_bytes(head[88:92], "big")
    if not offset or not length:
        return None
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(min(length, 64 * 1024 * 1024))
    return data if data.startswith(b"\xff\xd8") else None


def _safe_embedded_xmp(path: Path, extra: list[bytes],
                       pre: Preread | None = None) -> XmpData | None:
    """Embedded XMP: Pillow's copy first, else a scan of the file's head and tail."""
    try:
        packets = [p for blob in extra for p in find_packets(blob)]
        if not packets and pre is not None:
            packets = find_packets(pre.head)
            if not packets and pre.size > HEAD_BYTES:
                tail = pre.tail
                if tail is None:
                    with open(path, "rb") as fh:
                        fh.seek(max(HEAD_BYTES, pre.size - XMP_TAIL_BYTES))
                        tail = fh.read()
                packets = find_packets(tail)
        elif not packets:
            with open(path, "rb") as fh:
                head = fh.read(XMP_HEAD_BYTES)
                packets = find_packets(head)
                fh.seek(0, 2)
                end = fh.tell()
                if not packets and end > XMP_HEAD_BYTES:
                    fh.seek(max(XMP_HEAD_BYTES, end - XMP_TAIL_BYTES))
                    packets = find_packets(fh.read())
        return parse_packets(packets)
    except Exception as exc:
        log.debug("embedded XMP of %s unreadable: %r", path, exc)
        return None


# ---------------------------------------------------------------- precedence rules


def _resolve(facts: Facts, src: _Sources, path: Path, mtime: float | None) -> None:
    xmps = [x for x in (src.sidecar, src.embedded) if x is not None]  # sidecar first
    ex, video = src.exif, src.video
    facts.make = ex.make or _first(x.make for x in xmps) or (video.make if video else None)
    facts.model = ex.model or _first(x.model for x in xmps) or (video.model if video else None)
    facts.lens = ex.lens
    facts.orientation = src.orientation or _first(x.orientation for x in reversed(xmps))
    facts.content_id = ex.content_id or (video.content_id if video else None)
    if video:
        facts.duration = video.duration
        facts.width, facts.height = video.width or facts.width, video.height or facts.height
    _resolve_position(facts, ex, xmps, video)
    _resolve_date(facts, ex, xmps, video, path, mtime)
    _resolve_people(facts, src)


def _first(values):  # type: ignore[no-untyped-def]
    return next((v for v in values if v is not None), None)


def _resolve_position(
    facts: Facts, ex: ExifInfo, xmps: list[XmpData], video: VideoInfo | None
) -> None:
    sources = [(ex.lat, ex.lon, ex.alt)]
    sources += [(x.lat, x.lon, x.alt) for x in xmps]
    if video:
        sources.append((video.lat, video.lon, video.alt))
    for lat, lon, alt in sources:
        if exif_mod.valid_lat_lon(lat, lon):
            facts.lat, facts.lon, facts.alt = lat, lon, alt
            return


def _resolve_date(
    facts: Facts,
    ex: ExifInfo,
    xmps: list[XmpData],
    video: VideoInfo | None,
    path: Path,
    mtime: float | None,
) -> None:
    """EXIF (original, digitized, modified), XMP, QuickTime, file name, mtime - first valid wins."""
    for source, value, offset in (
        ("exif:DateTimeOriginal", ex.datetime_original, ex.offset_original),
        ("exif:DateTimeDigitized", ex.datetime_digitized, ex.offset_digitized),
        ("exif:DateTime", ex.datetime, ex.offset),
    ):
        taken = parse_exif_datetime(value)
        if taken:
            facts.taken_at, facts.taken_source = taken, source
            facts.tz_offset_min = parse_offset(offset) if offset else _offset_from_xmp(taken, xmps)
            return
    for x in xmps:
        if x.dates:
            tag, x_when, x_off = x.dates[0]
            facts.taken_at, facts.taken_source, facts.tz_offset_min = x_when, f"xmp:{tag}", x_off
            return
    if video and (video.local_date or video.created_utc):
        if video.local_date:
            facts.taken_at, facts.tz_offset_min = video.local_date
        else:
            facts.taken_at, facts.tz_offset_min = video.created_utc, 0  # mvhd is UTC
        facts.taken_source = "quicktime"
        return
    taken = filename_datetime(path.name)
    if taken:
        facts.taken_at, facts.taken_source = taken, "filename"
    elif mtime is not None:
        facts.taken_at, facts.taken_source = datetime.fromtimestamp(int(mtime)), "mtime"


def _offset_from_xmp(taken: datetime, xmps: list[XmpData]) -> int | None:
    """Older cameras write no OffsetTime*, but Lightroom/Photoshop copy the same instant into XMP
    with an offset: borrow it when the wall-clock times agree to the second."""
    for x in xmps:
        for _, dt, offset in x.dates:
            if offset is not None and dt.replace(microsecond=0) == taken:
                return offset
    return None


def _resolve_people(facts: Facts, src: _Sources) -> None:
    """Sidecar wins for people, regions, keywords and albums whenever it says anything about them."""
    side, emb = src.sidecar or XmpData(), src.embedded or XmpData()
    people = side.people or emb.people
    raw_regions = side.regions or emb.regions
    albums = side.albums or emb.albums
    keywords = side.keywords or emb.keywords or src.iptc_keywords  # MWG: XMP wins over IPTC
    facts.people = sorted(people)
    facts.albums = sorted(albums)
    facts.keywords = sorted(keywords - people - albums)
    facts.regions = []
    for r in raw_regions:
        orientation = facts.orientation if r.frame == "stored" else 1
        x, y, w, h = to_displayed(r.x, r.y, r.w, r.h, orientation)
        facts.regions.append(Region(name=r.name, x=x, y=y, w=w, h=h, source=r.source))
