"""`verify`: decide whether a file is media photovfs can actually read, before accepting it.

Unlike `extract`, which must be cheap enough to run on every file of a library, `verify` decodes
stills fully: the inbox calls it once per upload, and a damaged upload is far cheaper to refuse
at the door than to discover when a thumbnail fails months later.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, cast

from PIL import Image

from ..errors import BadMedia, TooLarge
from . import exif as exif_mod
from .extract import _raf_preview, raw_problem, short_reason
from .jpeg import _scan as jpeg_scan
from .jpeg import jpeg_problem
from .kinds import HEIF_EXTS, QUICKTIME_EXTS, RAW_EXTS, ext_of, media_kind
from .video import BadContainer, check_heif, read_avi, read_quicktime

IN_MEMORY_BYTES = 64 << 20  # stills up to this size are read once into memory


def verify(path: Path) -> None:
    """Return quietly for readable media; raise BadMedia (or TooLarge for bombs) otherwise."""
    path = Path(path)
    kind = media_kind(path.name)
    if kind is None:
        raise BadMedia("not a photo or video file type")
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise BadMedia(f"cannot read the file ({exc.strerror or exc})") from exc
    if size == 0:
        raise BadMedia("empty file")
    ext = ext_of(path.name)
    try:
        if ext in RAW_EXTS:
            _verify_raw(path, ext)
        elif kind[0] == "video":
            _verify_video(path, ext, size)
        else:
            _verify_still(path, ext, size)
    except (BadMedia, TooLarge):
        raise
    except BadContainer as exc:
        raise BadMedia(str(exc)) from exc
    except Exception as exc:
        raise BadMedia(f"damaged file ({short_reason(exc)})") from exc


def _check_pixels(width: int, height: int) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise TooLarge(f"{width}x{height} pixels is more than the {limit} allowed")


def _decode(fh, label: str = "image") -> Image.Image:  # type: ignore[no-untyped-def]
    """Open and decode every pixel block with the bomb guard turned into TooLarge."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(fh)
        except Image.DecompressionBombError as exc:
            raise TooLarge(short_reason(exc)) from exc
        except Exception as exc:
            raise BadMedia(f"not a readable {label} ({short_reason(exc)})") from exc
        _check_pixels(*im.size)
        if im.format in ("JPEG", "MPO"):
            # libjpeg still entropy-decodes every block at 1/8 scale (truncation and damaged
            # data are caught the same way) but skips most of the IDCT: 3-6x faster
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        try:
            im.load()
        except Exception as exc:
            raise BadMedia(f"{label} data is damaged ({short_reason(exc)})") from exc
    return im


def _verify_still(path: Path, ext: str, size: int) -> None:
    if ext == "jxl":
        with open(path, "rb") as fh:
            try:
                Image.open(fh)
            except Exception as exc:
                raise BadMedia("no JPEG XL decoder available") from exc
    if ext in HEIF_EXTS:
        with open(path, "rb") as fh:
            check_heif(fh, size)
    if size > IN_MEMORY_BYTES:
        with open(path, "rb") as fh:
            im = _decode(fh)
        problem = jpeg_problem(path) if im.format in ("JPEG", "MPO") else None
    else:
        # one read serves the decode and the structure check (no second open, no mmap)
        with open(path, "rb") as fh:
            data = fh.read()
        im = _decode(io.BytesIO(data))
        # jpeg_problem's own walk (indexing, find, unpack_from: bytes serve as well as mmap)
        problem = jpeg_scan(cast(Any, data)) if im.format in ("JPEG", "MPO") else None
    if problem:  # also catches truncation if LOAD_TRUNCATED_IMAGES is on
        raise BadMedia(problem)


def _verify_raw(path: Path, ext: str) -> None:
    """RAW: a valid TIFF structure with camera data, a recognised container, or a decodable preview."""
    with open(path, "rb") as fh:
        head = fh.read(exif_mod.EXIFREAD_MAX_BYTES_TIFF)
    problem = raw_problem(ext, head)
    if problem:
        raise BadMedia(problem)
    if ext == "raf":
        preview = _raf_preview(path, head)
        if preview is None:
            raise BadMedia("RAF file has no embedded preview")
        import io

        _decode(io.BytesIO(preview), "RAF preview")
        return
    if ext in ("cr3", "crw"):
        return
    info = exif_mod.safe(exif_mod.from_exifread, head)
    if info.make or info.model or info.datetime_original or info.datetime:
        return
    with open(path, "rb") as fh:
        _decode(fh, "RAW preview")


def _verify_video(path: Path, ext: str, size: int) -> None:
    with open(path, "rb") as fh:
        if ext in QUICKTIME_EXTS:
            info = read_quicktime(fh, size)
            if not info.has_moov or not info.has_mvhd:
                raise BadMedia("no movie header (moov/mvhd) found")
        elif ext == "avi":
            read_avi(fh)
        elif ext in ("mkv", "webm"):
            if fh.read(4) != b"\x1a\x45\xdf\xa3":
                raise BadMedia("not a Matroska/WebM file")
        elif ext in ("mts", "m2ts"):
            head = fh.read(192 * 4)
            if not any(
                all(
                    len(head) > i * stride + off and head[i * stride + off] == 0x47
                    for i in range(3)
                )
                for stride, off in ((192, 4), (188, 0))
            ):
                raise BadMedia("not an MPEG transport stream")
