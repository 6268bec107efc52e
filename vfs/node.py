"""What lives at a virtual path: the one value type adapters translate into HTTP or stat()."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DIR_MIME = "httpd/unix-directory"


@dataclass(frozen=True, slots=True)
class Node:
    """A file or folder at a virtual path.

    `source` is the real file to read (an original, a rendition, a scratch or inbox file); `kind` says
    what the node is ("asset", "rendition", "scratch", "inbox", "trash", "folder") so adapters can pick
    caching policies without knowing the views. `writable` is a hint for adapters (e.g. FUSE modes):
    the core still decides every write.
    """

    path: str
    name: str
    is_dir: bool
    kind: str = "folder"
    size: int = 0
    mtime: float = 0.0
    content_type: str = DIR_MIME
    etag: str | None = None
    asset_id: int | None = None
    source: Path | None = None
    writable: bool = False
