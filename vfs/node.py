"""What lives at a virtual path: the one value type adapters translate into HTTP or stat()."""

from __future__ import annotations

from pathlib import Path

DIR_MIME = "httpd/unix-directory"

_FIELDS = ("path", "name", "is_dir", "kind", "size", "mtime", "content_type", "etag", "asset_id",
           "source", "writable")


class Node:
    """A file or folder at a virtual path.

    `source` is the real file to read (an original, a rendition, a scratch or inbox file); `kind` says
    what the node is ("asset", "rendition", "scratch", "inbox", "trash", "folder") so adapters can pick
    caching policies without knowing the views. `writable` is a hint for adapters (e.g. FUSE modes):
    the core still decides every write.

    A plain slotted class rather than a dataclass: listings build thousands of nodes, and `source`
    may be given as a string and is turned into a Path only when someone reads it (building a Path
    costs more than the rest of a node). Treat nodes as read-only.
    """

    __slots__ = ("path", "name", "is_dir", "kind", "size", "mtime", "content_type", "etag",
                 "asset_id", "_source", "writable")

    def __init__(self, path: str, name: str, is_dir: bool, kind: str = "folder", size: int = 0,
                 mtime: float = 0.0, content_type: str = DIR_MIME, etag: str | None = None,
                 asset_id: int | None = None, source: Path | str | None = None,
                 writable: bool = False) -> None:
        self.path, self.name, self.is_dir, self.kind = path, name, is_dir, kind
        self.size, self.mtime, self.content_type, self.etag = size, mtime, content_type, etag
        self.asset_id, self._source, self.writable = asset_id, source, writable

    @property
    def source(self) -> Path | None:
        src = self._source
        if isinstance(src, str):
            src = self._source = Path(src)
        return src

    @property
    def source_str(self) -> str | None:
        """The real file as a string, without building a Path (hot paths: open, stat)."""
        return None if self._source is None else str(self._source)

    def _key(self) -> tuple:
        return tuple(getattr(self, f) for f in _FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS)
        return f"Node({inner})"
