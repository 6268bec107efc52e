"""Engine, sessions and migrations for the catalog.

SQLite runs in WAL mode (readers never block the one writer) with a busy timeout; any SQLAlchemy URL
is accepted, PostgreSQL being the scale-out path. The schema is created and upgraded by Alembic only (a new
SQLite catalog may be a copy of an empty one that Alembic made: see template.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(['\"])([^'\"]*)\2", re.M)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create the engine; for SQLite also create the folder and set the pragmas on every connection."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8,
            max_overflow=16,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16)


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creates it on a new catalog).

    A catalog already at the newest revision is recognised with one SELECT: Alembic's import
    and its loading of every migration script cost more than opening the catalog itself. A new
    SQLite catalog starts as a copy of an empty one the migrations made before (template.py)."""
    from .template import create_from_template

    if create_from_template(engine, MIGRATIONS, head_revision(), _make_template) or \
            at_head(engine):
        return
    _upgrade(engine)


def _upgrade(engine: Engine) -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def _make_template(path: Path) -> None:
    """An empty catalog at `path`, made by the migrations (see template.py)."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        _upgrade(engine)
    finally:
        engine.dispose()
    import sqlite3

    conn = sqlite3.connect(path)  # one self-contained file (copies switch to WAL when opened)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


def head_revision() -> str | None:
    """The newest revision, read from the migration scripts' `revision = "..."` lines without
    importing them; None when that is not one clear answer (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = {kind: value for kind, _q, value in _REVISION.findall(script.read_text("utf-8"))}
        if "revision" in found:
            revisions.add(found["revision"])
            if found.get("down_revision"):
                parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    """Whether the catalog's stored revision is the newest one (False for a new catalog)."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            stored = [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
    except SQLAlchemyError:  # no alembic_version table: a new (or foreign) database
        return False
    return stored == [head]


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
