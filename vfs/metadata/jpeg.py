"""Cheap structural checks on JPEG and PNG files that do not decode pixels.

`extract` must flag a truncated upload (ok=False) without paying for a full decode of every
photo, so it looks for the end markers instead. The checks use mmap so a large file is never
copied into memory.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}  # TEM, SOI, RST0-7 carry no length


def jpeg_problem(path: Path) -> str | None:
    """None for a structurally complete JPEG, else a short reason.

    Entropy-coded data cannot contain an 0xFFD9 pair (0xFF is stuffed as 0xFF00), so an EOI
    marker after the first start-of-scan means the scan was not cut off.
    """
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size < 4:
            return "not a JPEG (file too short)"
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _scan(data)


def _scan(data: mmap.mmap) -> str | None:
    """Walk the marker segments up to the first SOS, then look for EOI after it."""
    if data[:2] != b"\xff\xd8":
        return "not a JPEG (no start marker)"
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return "JPEG segment structure is damaged"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker in _STANDALONE:
            pos += 2
        elif marker == 0xD9:
            return "JPEG ends before any image data"
        else:
            (length,) = struct.unpack_from(">H", data, pos + 2)
            if marker == 0xDA:
                if data.find(b"\xff\xd9", pos + 2 + length) < 0:
                    return "truncated JPEG (image data is cut off)"
                return None
            pos += 2 + length
    return "truncated JPEG (no image data)"


def png_problem(path: Path) -> str | None:
    """None when the PNG has its IEND chunk near the end, else a short reason."""
    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return "not a PNG (bad signature)"
        fh.seek(0, 2)
        fh.seek(max(8, fh.tell() - 4096))
        tail = fh.read()
    return None if b"IEND" in tail else "truncated PNG (no end chunk)"
