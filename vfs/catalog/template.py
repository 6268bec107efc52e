"""A new SQLite catalog as a copy of an empty one that Alembic made, instead of Alembic again.

Creating the schema runs every migration through Alembic's and SQLAlchemy's DDL machinery, about
0.1-0.3 s (and seconds on a busy machine): a large share of a first scan of a few thousand photos.
So the first catalog a machine creates for a given set of migrations is also kept, empty, in the
user's cache folder, and later new catalogs start as a copy of it. The schema is still Alembic's,
byte for byte; existing catalogs are upgraded by Alembic as before.

The template's SQL statements (exactly as Alembic had SQLite store them, in their order) and its
rows (the Alembic revision) are replayed into the new catalog in one SQLite transaction, only
while it is still empty: crash-safe like any SQLite write, never over an existing catalog.
Anything unusual (an unwritable cache, a damaged template) means Alembic as before.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import sqlalchemy
from sqlalchemy import Engine

from ..geotable import cache_dir

log = logging.getLogger(__name__)


def sqlite_file(engine: Engine) -> Path | None:
    """The catalog's file for a SQLite engine on a file, else None."""
    if engine.dialect.name != "sqlite":
        return None
    name = engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def _read_only(path: Path) -> str:
    """A read-only SQLite URI for a file (any character in its name)."""
    return "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"


def _key(migrations: Path) -> str:
    """Changes with any migration script, Alembic, SQLAlchemy or SQLite."""
    h = hashlib.sha256()
    for script in sorted([migrations / "env.py", *(migrations / "versions").glob("*.py")]):
        h.update(script.name.encode() + b"\0" + script.read_bytes() + b"\0")
    alembic = importlib.util.find_spec("alembic")  # found, not imported (that costs 0.1 s+)
    if alembic is None or alembic.origin is None:
        raise OSError("alembic is not installed")
    st = os.stat(Path(alembic.origin).parent / "__init__.py")
    h.update(f"{sqlalchemy.__version__}\0{st.st_size}-{st.st_mtime_ns}\0".encode())
    h.update(sqlite3.sqlite_version.encode())
    return h.hexdigest()[:16]


def _is_empty_catalog_at(path: Path, head: str) -> bool:
    """An intact SQLite file whose Alembic revision is `head` and that holds no asset."""
    try:
        conn = sqlite3.connect(_read_only(path), uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            revs = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
            empty = conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return ok and revs == [head] and empty


def _template(migrations: Path, head: str, make: Callable[[Path], None]) -> Path | None:
    """The cached empty catalog for these migrations, made (by `make(engine)`) when missing."""
    try:
        path = cache_dir() / f"catalog-{head}-{_key(migrations)}.sqlite"
    except OSError:
        return None
    if path.exists() and _is_empty_catalog_at(path, head):
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        make(tmp)
        if not _is_empty_catalog_at(tmp, head):
            return None
        os.replace(tmp, path)
    except Exception:  # noqa: BLE001 - no template: the caller runs Alembic on the catalog itself
        log.debug("no catalog template at %s", path, exc_info=True)
        return None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
    return path


def create_from_template(engine: Engine, migrations: Path, head: str | None,
                         make: Callable[[Path], None]) -> bool:
    """Give the engine's new SQLite catalog the template's schema (and rows: the Alembic
    revision); False, with nothing changed, when the catalog has a schema already or there is
    no template. One transaction through SQLite itself: a crash leaves a valid empty catalog or
    none, never a half-copied file, and no fsync is needed beyond SQLite's own."""
    target = sqlite_file(engine)
    if target is None or head is None:
        return False
    if target.exists() and target.stat().st_size > 0 and _has_schema(target):
        return False  # the common case, decided without the template: at_head or Alembic
    template = _template(migrations, head, make)
    if template is None:
        return False
    try:
        conn = sqlite3.connect(target, isolation_level=None, timeout=30)
    except sqlite3.Error:
        return False
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("ATTACH DATABASE ? AS tpl", (str(template),))
        return _copy_schema(conn)
    except sqlite3.Error:
        log.debug("catalog template not applied to %s", target, exc_info=True)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return False
    finally:
        conn.close()


def _has_schema(path: Path) -> bool:
    try:
        conn = sqlite3.connect(_read_only(path), uri=True)
        try:
            return bool(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return True  # unreadable as SQLite: not ours to fill; Alembic will say what is wrong


def _copy_schema(conn: sqlite3.Connection) -> bool:
    """The attached template's tables, indexes, triggers and views (their exact SQL, in their
    order) and rows into main, if main is still empty once the write lock is held."""
    conn.execute("BEGIN IMMEDIATE")
    if conn.execute("SELECT count(*) FROM main.sqlite_master").fetchone()[0]:
        conn.execute("ROLLBACK")  # another process made it meanwhile
        return False
    entries = conn.execute(
        "SELECT type, name, sql FROM tpl.sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid").fetchall()
    for _type, _name, sql in entries:
        conn.execute(sql)
    for kind, name, _sql in entries:
        if kind == "table":
            quoted = '"' + name.replace('"', '""') + '"'
            conn.execute(f"INSERT INTO main.{quoted} SELECT * FROM tpl.{quoted}")
    conn.execute("COMMIT")
    return True
