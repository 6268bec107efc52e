"""Virtual path parsing and the name rules every adapter shares.

Paths arrive from WebDAV (percent-decoded UTF-8, NFC or NFD: macOS sends NFD) and FUSE (bytes).
They are normalised here once, so that both adapters refuse the same hostile names the same way.
"""

from __future__ import annotations

import fnmatch
import os
import re
import unicodedata

from .errors import InvalidName

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096

# Undecodable bytes in on-disk names (surrogateescape U+DC80..U+DCFF) are shown as private-use
# characters U+F780..U+F7FF: valid UTF-8 for XML and SMB, and mapped back to the same bytes on disk.
_SURROGATE_BASE = 0xDC00
_PUA_BASE = 0xF700


def fs_to_text(name: str | bytes) -> str:
    """An on-disk name as catalog/virtual text (reversible with `text_to_fs`)."""
    text = os.fsdecode(name) if isinstance(name, bytes) else name
    if text.isascii() or not any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        return text
    return "".join(
        chr(ord(c) - _SURROGATE_BASE + _PUA_BASE) if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text
    )


def text_to_fs(text: str) -> str:
    """Catalog text back to an os-level str (surrogateescape form) naming the real file."""
    if text.isascii() or not any(0xF780 <= ord(c) <= 0xF7FF for c in text):
        return text
    return "".join(
        chr(ord(c) - _PUA_BASE + _SURROGATE_BASE) if 0xF780 <= ord(c) <= 0xF7FF else c for c in text
    )


def check_name(name: str) -> str:
    """Validate one path component and return it NFC-normalised; raise InvalidName otherwise."""
    if not name or name in (".", ".."):
        raise InvalidName(f"invalid name {name!r}")
    if "\x00" in name or "/" in name or "\\" in name:
        raise InvalidName("names may not contain NUL, '/' or '\\'")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise InvalidName("name is not valid Unicode text")
    if any(ord(c) < 0x20 for c in name):
        raise InvalidName("names may not contain control characters")
    name = unicodedata.normalize("NFC", name)
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidName(f"name longer than {MAX_NAME_BYTES} bytes")
    return name


def split_path(path: str) -> tuple[str, ...]:
    """Split a virtual path into validated, NFC-normalised components ('' or '/' is the root)."""
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidName("path too long")
    parts = [p for p in path.split("/") if p]
    return tuple(check_name(p) for p in parts)


def join(parts: tuple[str, ...] | list[str]) -> str:
    return "/".join(parts)


def name_key(name: str) -> str:
    """Case- and normalisation-insensitive key: two names with one key would clash on Windows/macOS."""
    return unicodedata.normalize("NFC", name).casefold()


def split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + ext


_SUFFIX_RE = re.compile(r"^(?P<stem>.*) \((?P<n>\d+)\)$")


def with_suffix_number(name: str, n: int) -> str:
    """`IMG_0001.jpg`, 2 -> `IMG_0001 (2).jpg`: the deterministic clash suffix."""
    if n <= 1:
        return name
    stem, ext = split_ext(name)
    return f"{stem} ({n}){ext}"


# Files that desktops and editors write beside the photos. They live in a per-folder scratch area,
# are never catalogued and never ingested. (Finder, Windows Explorer, editors' safe-save temporaries.)
SIDE_FILE_PATTERNS = (
    "._*", ".DS_Store", ".localized", "desktop.ini", "Desktop.ini", "Thumbs.db", "ehthumbs.db",
    ".directory", ".hidden", ".Trash*", ".fuse_hidden*", ".nfs*", "$RECYCLE.BIN",
    "~$*", "*~", "*.tmp", "*.TMP", "*.temp", "*.swp", "*.part", "*.crdownload", "*.tacitpart",
    ".goutputstream-*", ".syncthing.*.tmp", "*.sb-*", ".*.sb-*", "*.kra~", "*.xcf~",
    "*.psb.tmp", "*.~*", "*.darktable_tmp", ".~lock.*",
)
# rsync writes `.NAME.XXXXXX` and renames it to NAME when complete.
_RSYNC_TEMP = re.compile(r"^\..+\.[A-Za-z0-9]{6}$")


#: every pattern in one regex: this runs on each path a request resolves (a GET, a FUSE lookup)
_SIDE_FILE = re.compile("|".join(fnmatch.translate(p) for p in SIDE_FILE_PATTERNS)
                        + "|" + _RSYNC_TEMP.pattern)


def is_side_file(name: str) -> bool:
    """True for desktop side files and temporary names that must never become photos."""
    return _SIDE_FILE.match(name) is not None
