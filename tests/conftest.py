"""Shared fixtures: real photo files made with Pillow, a real SQLite catalog in tmp_path."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path

import pytest
from photovfs.library import Library
from PIL import Image

CORPUS = Path(os.environ.get("PHOTOVFS_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))


def jpeg_with_date(path: Path, taken: datetime | None, *, color=(200, 30, 30), size=(64, 48),
                   gps: tuple[float, float] | None = None, make: str = "TestCam",
                   orientation: int | None = None) -> Path:
    """A small real JPEG with EXIF DateTimeOriginal (and GPS when given)."""
    img = Image.new("RGB", size, color)
    # a non-symmetric mark so that rotations are visible
    for x in range(size[0] // 4):
        for y in range(size[1] // 4):
            img.putpixel((x, y), (255, 255, 255))
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = "Model 1"
    if orientation:
        exif[0x0112] = orientation
    if taken is not None:
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    if gps is not None:
        lat, lon = gps
        g = exif.get_ifd(0x8825)

        from fractions import Fraction

        def dms(v: float):
            v = abs(v)
            d = int(v)
            m = int((v - d) * 60)
            s = round(((v - d) * 60 - m) * 60 * 100)
            return (Fraction(d, 1), Fraction(m, 1), Fraction(s, 100))

        g[1] = "N" if lat >= 0 else "S"
        g[2] = dms(lat)
        g[3] = "E" if lon >= 0 else "W"
        g[4] = dms(lon)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", exif=exif.tobytes(), quality=90)
    return path


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A small library laid out the way people keep photos (not the photovfs template)."""
    root = tmp_path / "Photos"
    jpeg_with_date(root / "2021" / "Italy" / "IMG_0001.jpg", datetime(2021, 4, 30, 9, 42, 39),
                   gps=(43.7696, 11.2558))
    jpeg_with_date(root / "2021" / "Italy" / "IMG_0002.jpg", datetime(2021, 4, 30, 10, 0, 0),
                   color=(30, 200, 30))
    jpeg_with_date(root / "phone" / "IMG_0001.jpg", datetime(2021, 4, 30, 18, 0, 0),
                   color=(30, 30, 200))
    jpeg_with_date(root / "phone" / "IMG_20190102_030405.jpg", None, color=(90, 90, 90))
    jpeg_with_date(root / "old" / "scan.jpg", datetime(1999, 12, 31, 23, 59, 0),
                   color=(10, 120, 160), gps=(48.8566, 2.3522))
    return root


@pytest.fixture
def library(photo_dir: Path):
    """A scanned Library over `photo_dir` with its state in the default place."""
    lib = Library.open(photo_dir)
    lib.scan()
    yield lib
    lib.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_restored(library: Path, target: Path, pattern: str = "*.jpg") -> None:
    """Every photo of `library` is in `target` at the same place, same bytes, same mtime."""
    for p in library.rglob(pattern):
        rel = p.relative_to(library)
        assert (target / rel).read_bytes() == p.read_bytes(), rel
        assert (target / rel).stat().st_mtime_ns == p.stat().st_mtime_ns, rel


@pytest.fixture
def backed_up(photo_dir: Path, tmp_path: Path) -> tuple[Path, Path, dict]:
    """photo_dir scanned and backed up once (the run that leaves a record)."""
    from photovfs.backup.engine import backup

    lib = Library.open(photo_dir)
    lib.scan()
    lib.close()
    dest = tmp_path / "dest"
    first = backup(photo_dir, str(dest))
    assert first["ok"], first
    return photo_dir, dest, first
