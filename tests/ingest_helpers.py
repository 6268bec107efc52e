"""Helpers shared by the ingest tests: real media files and a library with a short quiet period."""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime
from pathlib import Path

from photovfs.library import Library
from PIL import Image


def open_library(root: Path, *, state: Path | None = None, quiet: float = 0.3,
                 extra: str = "") -> Library:
    root.mkdir(parents=True, exist_ok=True)
    state = state or root / ".photovfs"
    state.mkdir(parents=True, exist_ok=True)
    (state / "config.toml").write_text(f"[ingest]\nquiet_seconds = {quiet}\n{extra}")
    return Library.open(root, state_dir=state)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def heic(path: Path, color=(10, 200, 90), size=(64, 48)) -> Path:
    import pillow_heif

    pillow_heif.register_heif_opener()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="HEIF")
    return path


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mov(path: Path, created: datetime = datetime(2021, 4, 30, 12, 0, 0), seconds: int = 2,
        tag: bytes = b"") -> Path:
    """A minimal QuickTime file: ftyp + moov/mvhd + mdat (parses as a container)."""
    qt = int((created - datetime(1904, 1, 1)).total_seconds())
    mvhd = struct.pack(">B3xIIII", 0, qt, qt, 600, 600 * seconds) + struct.pack(">IH10x", 0x10000,
                                                                                 0x100)
    mvhd += struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000) + b"\0" * 24
    mvhd += struct.pack(">I", 2)
    data = _box(b"ftyp", b"qt  \0\0\0\0qt  ") + _box(b"moov", _box(b"mvhd", mvhd)) + \
        _box(b"mdat", b"\0" * 64 + tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def raw_dng(path: Path, color=(120, 60, 30)) -> Path:
    """A TIFF-structured file named .dng (the RAW half of a RAW+JPEG pair)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), color).save(path, format="TIFF")
    return path


def xmp(path: Path, subject: str = "holiday") -> Path:
    path.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Description rdf:about="">'
        f'<dc:subject><rdf:Bag><rdf:li>{subject}</rdf:li></rdf:Bag></dc:subject>'
        '</rdf:Description></rdf:RDF></x:xmpmeta>')
    return path


def put(lib: Library, vpath: str, data: bytes):
    """A complete upload through the core entry point WebDAV PUT and FUSE close use."""
    with lib.begin_write(vpath) as up:
        up.write(data)
        return up.commit()
