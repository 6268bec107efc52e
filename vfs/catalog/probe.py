"""`CatalogProbe`: a cheap way to ask an SQLite catalog "has anything changed?" and small reads.

Adapters keep answers (resolved nodes, rendered listings) while the catalog is unchanged. SQLite's
`PRAGMA data_version` on a connection that never writes moves exactly when another connection
commits, in this process or another (a PROPPATCH, a scan, the FUSE daemon, a second server), so
one such connection per library serves every cache: each compares the number with the one it
kept. The same connection answers hot one-row questions where SQLAlchemy's execute costs ten
times the query. Other databases have no such counter: `version()` is then None (keep nothing).
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from sqlalchemy.engine import Engine


class CatalogProbe:
    """A plain, autocommit, never-writing SQLite connection shared by a library's threads."""

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            self._conn = sqlite3.connect(url.database, check_same_thread=False,
                                         isolation_level=None)

    @property
    def available(self) -> bool:
        return self._conn is not None

    def version(self) -> int | None:
        """The catalog's change counter now, or None when it cannot be told (not SQLite, an
        error): a caller then keeps nothing."""
        if self._conn is None:
            return None
        with self._lock:
            try:
                return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                return None

    def first(self, sql: str, params: dict[str, Any] | tuple = ()) -> tuple | None:
        """The first row of a read in SQLite's own SQL (callers check `available` first)."""
        assert self._conn is not None
        with self._lock:
            return self._conn.execute(sql, params).fetchone()

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Every row of a read in SQLite's own SQL (callers check `available` first)."""
        assert self._conn is not None
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
