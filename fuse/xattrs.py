"""Extended attributes for the FUSE mount, kept by virtual path in a small SQLite file.

Only the `user.` namespace is stored: it is what Samba's `streams_xattr` (macOS Finder info and
resource forks through `vfs_fruit`, Windows alternate data streams) and `user.DOSATTRIB` use. Keys are
virtual paths, so the attributes survive remounts (inode numbers do not) and follow renames.
Photos themselves are never touched: this is adapter state, like the scratch area.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

MAX_VALUE = 1 << 16  # the Linux limit for one attribute value


class XattrStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS xattr (path TEXT NOT NULL, name BLOB NOT NULL,"
                         " value BLOB NOT NULL, PRIMARY KEY (path, name))")
        self._lock = threading.Lock()
        # the paths that have any attribute: listxattr/getxattr of every other file (ls -l asks
        # for each one) answer from memory
        self._paths = {r[0] for r in self._db.execute("SELECT DISTINCT path FROM xattr")}

    def has_any(self, path: str) -> bool:
        return path in self._paths

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, path: str, name: bytes) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM xattr WHERE path=? AND name=?",
                                   (path, name)).fetchone()
        return None if row is None else bytes(row[0])

    def names(self, path: str) -> list[bytes]:
        with self._lock:
            rows = self._db.execute("SELECT name FROM xattr WHERE path=? ORDER BY name",
                                    (path,)).fetchall()
        return [bytes(r[0]) for r in rows]

    def put(self, path: str, name: bytes, value: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO xattr (path, name, value) VALUES (?, ?, ?)",
                             (path, name, value))
            self._paths.add(path)

    def remove(self, path: str, name: bytes) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM xattr WHERE path=? AND name=?", (path, name))
            if not self._db.execute("SELECT 1 FROM xattr WHERE path=?", (path,)).fetchone():
                self._paths.discard(path)
        return cur.rowcount > 0

    def _below(self, path: str) -> set[str]:
        return {p for p in self._paths if p == path or p.startswith(path + "/")}

    def drop(self, path: str) -> None:
        """Forget a removed file or folder (and everything below a folder)."""
        if not self._below(path):
            return
        with self._lock:
            self._paths -= self._below(path)
            self._db.execute("DELETE FROM xattr WHERE path=? OR substr(path, 1, ?) = ?",
                             (path, len(path) + 1, path + "/"))

    def rename(self, src: str, dst: str) -> None:
        moved, replaced = self._below(src), self._below(dst)
        if not moved and not replaced:
            return
        with self._lock, self._db:
            self._paths -= moved | replaced
            self._paths |= {dst + p[len(src):] for p in moved}
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM xattr WHERE path=? OR substr(path, 1, ?) = ?",
                             (dst, len(dst) + 1, dst + "/"))
            self._db.execute("UPDATE xattr SET path = ? || substr(path, ?) "
                             "WHERE path=? OR substr(path, 1, ?) = ?",
                             (dst, len(src) + 1, src, len(src) + 1, src + "/"))
