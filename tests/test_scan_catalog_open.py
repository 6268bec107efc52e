"""Opening the catalog before a scan: a current one without Alembic, a new one from a template
that Alembic made, an old one upgraded by Alembic as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from photovfs.catalog import db, template
from photovfs.library import Library


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PHOTOVFS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _schema(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    finally:
        conn.close()


def _by_alembic(path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{path}")
    db._upgrade(engine)
    engine.dispose()


def test_a_new_catalog_from_the_template_has_alembics_schema_in_wal_mode(tmp_path, cache):
    _by_alembic(tmp_path / "reference.db")
    for name in ("first.db", "second.db"):  # the first makes the template, the second copies it
        engine = db.make_engine(f"sqlite:///{tmp_path / name}")
        db.migrate(engine)
        with engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert db.at_head(engine)
        engine.dispose()
        assert _schema(tmp_path / name) == _schema(tmp_path / "reference.db")
    assert len(list(cache.glob("catalog-*.sqlite"))) == 1


def test_a_current_catalog_opens_without_alembic(tmp_path, cache, monkeypatch):
    (tmp_path / "P").mkdir()
    Library.open(tmp_path / "P").close()

    def no_alembic(engine):
        raise AssertionError("a catalog at the newest revision must not run Alembic")

    monkeypatch.setattr(db, "_upgrade", no_alembic)
    Library.open(tmp_path / "P").close()


def test_an_older_catalog_is_still_upgraded_by_alembic(tmp_path, cache):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(db.alembic_config(engine), "0001")
    assert not db.at_head(engine)
    db.migrate(engine)
    assert db.at_head(engine)
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM faces").scalar() == 0
    engine.dispose()


def test_a_damaged_template_is_made_again(tmp_path, cache):
    _by_alembic(tmp_path / "reference.db")
    db.migrate(db.make_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    (tpl,) = cache.glob("catalog-*.sqlite")
    tpl.write_bytes(b"SQLite format 3\0" + b"\xff" * 5000)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    db.migrate(engine)
    assert db.at_head(engine) and _schema(tmp_path / "b.db") == _schema(tmp_path / "reference.db")


def test_the_template_never_replaces_an_existing_file(tmp_path, cache):
    target = tmp_path / "c.db"
    engine = db.make_engine(f"sqlite:///{target}")
    db.migrate(engine)  # makes the template and copies it
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE mine (x)")
    engine.dispose()
    assert not template.create_from_template(engine, db.MIGRATIONS, db.head_revision(),
                                             db._make_template)
    assert ("table", "mine", "mine", "CREATE TABLE mine (x)") in _schema(target)
