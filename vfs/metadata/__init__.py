"""Metadata extraction: pure functions from a media file (and its sidecar) to `Facts`.

`extract` is cheap and total (it never raises for a bad file: it answers ok=False with a
reason); `verify` is thorough and strict (full decode, raises `BadMedia`/`TooLarge`) and is
what the inbox calls before accepting an upload.
"""

from __future__ import annotations

from pathlib import Path

from .extract import extract
from .facts import Facts, Region
from .kinds import MEDIA_EXTS, SIDECAR_EXTS, media_kind
from .verify import verify

__all__ = [
    "MEDIA_EXTS",
    "SIDECAR_EXTS",
    "Facts",
    "Region",
    "extract",
    "find_sidecar",
    "media_kind",
    "verify",
]


def find_sidecar(path: Path) -> Path | None:
    """The XMP sidecar next to a media file: `IMG.jpg.xmp` (digiKam, darktable) is preferred
    over `IMG.xmp` (Lightroom); the extension case is ignored."""
    path = Path(path)
    try:
        siblings = {p.name.lower(): p for p in path.parent.iterdir() if p.is_file()}
    except OSError:
        return None
    for candidate in (f"{path.name}.xmp", f"{path.stem}.xmp"):
        if candidate.lower() in siblings:
            return siblings[candidate.lower()]
    return None
