"""File-name extension -> (media_type, mime).

The extension is the only thing photovfs trusts before a file has been parsed: it decides which
parser runs and what MIME type WebDAV clients see, so the table is explicit rather than delegated
to `mimetypes` (whose answers vary by platform and miss most RAW formats).
"""

from __future__ import annotations

_IMAGE_MIMES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "png": "image/png",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "hif": "image/heif",
    "avif": "image/avif",
    "jxl": "image/jxl",
}

RAW_EXTS: frozenset[str] = frozenset(
    {"dng", "cr2", "cr3", "crw", "nef", "nrw", "arw", "raf", "rw2", "orf", "pef", "srw", "kdc"}
)

_VIDEO_MIMES: dict[str, str] = {
    "mov": "video/quicktime",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "avi": "video/x-msvideo",
    "3gp": "video/3gpp",
    "mkv": "video/x-matroska",
    "mts": "video/mp2t",
    "m2ts": "video/mp2t",
    "webm": "video/webm",
}

HEIF_EXTS: frozenset[str] = frozenset({"heic", "heif", "hif", "avif"})
JPEG_EXTS: frozenset[str] = frozenset({"jpg", "jpeg", "jpe"})
QUICKTIME_EXTS: frozenset[str] = frozenset({"mov", "mp4", "m4v", "3gp"})

#: Dotted, lower-case extensions of every media file photovfs catalogues (compare with
#: ``path.suffix.lower()``).
MEDIA_EXTS: frozenset[str] = frozenset("." + e for e in (*_IMAGE_MIMES, *RAW_EXTS, *_VIDEO_MIMES))
#: Dotted, lower-case extensions of metadata sidecars.
SIDECAR_EXTS: frozenset[str] = frozenset({".xmp"})


def ext_of(name: str) -> str:
    """Lower-case extension without the dot ("" when there is none)."""
    base = name.rsplit("/", 1)[-1]
    if "." not in base.lstrip("."):
        return ""
    return base.rsplit(".", 1)[-1].lower()


def raw_mime(ext: str) -> str:
    """RAW MIME types follow the de-facto `image/x-<ext>` convention, DNG has a registered name."""
    return "image/x-adobe-dng" if ext == "dng" else f"image/x-{ext}"


def media_kind(name: str) -> tuple[str, str] | None:
    """(media_type, mime) for a file name, from its extension; None for non-media files."""
    ext = ext_of(name)
    if ext in _IMAGE_MIMES:
        return "image", _IMAGE_MIMES[ext]
    if ext in RAW_EXTS:
        return "image", raw_mime(ext)
    if ext in _VIDEO_MIMES:
        return "video", _VIDEO_MIMES[ext]
    return None
