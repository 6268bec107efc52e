"""The catalog on PostgreSQL, the scale-out path: a real server in a private cluster."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import free_port
from photovfs.config import load_config
from photovfs.library import Library

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


@pytest.fixture(scope="module")
def pg_url():
    if not PG_BIN or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian package postgresql)")
    bindir = PG_BIN[-1]
    # not under pytest's tmp dir: that is private to root and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="photovfs-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    owner = "postgres" if os.geteuid() == 0 else None
    if owner:
        shutil.chown(base, owner)
        shutil.chown(sock, owner)

    def run(*cmd: str) -> None:
        full = ["runuser", "-u", owner, "--", *cmd] if owner else list(cmd)
        subprocess.run(full, check=True, capture_output=True)

    port = free_port()
    run(f"{bindir}/initdb", "-D", str(data), "--auth=trust", "-U", "photovfs", "-E", "UTF8")
    run(f"{bindir}/pg_ctl", "-D", str(data), "-l", str(base / "log"), "-w", "start", "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1")
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "photovfs", "photos")
        yield f"postgresql+psycopg2://photovfs@127.0.0.1:{port}/photos"
    finally:
        run(f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_library(photo_dir: Path, pg_url: str, tmp_path: Path):
    cfg_file = tmp_path / "pg.toml"
    cfg_file.write_text(f'database_url = "{pg_url}"\n')
    lib = Library(load_config(photo_dir, config_file=cfg_file))
    lib.scan()
    yield lib
    lib.close()
    empty_database(pg_url)


def empty_database(url: str) -> None:
    """Drop every table of the test server's database: the next test starts from nothing."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def test_postgres_catalog_serves_the_same_views(pg_library: Library):
    lib = pg_library
    assert lib.engine.dialect.name == "postgresql"
    assert [n.name for n in lib.list("by-date")] == ["1999", "2019", "2021"]
    assert [n.name for n in lib.list("by-date/2021/04/30")] == [
        "IMG_0001 (2).jpg", "IMG_0001.jpg", "IMG_0002.jpg"]
    assert [n.name for n in lib.list("by-place")] == ["France", "Italy"]


def test_postgres_catalog_keeps_albums_trash_and_rescans(pg_library: Library):
    lib = pg_library
    lib.mkdir("by-album/Trip")
    lib.copy("by-date/2021/04/30/IMG_0002.jpg", "by-album/Trip/IMG_0002.jpg")
    lib.remove("by-album/Trip")
    lib.mkdir("by-album/Trip")  # the name is free while the old one is in trash
    lib.remove("by-album/Trip")
    lib.remove("by-date/1999/12/31/scan.jpg")
    assert len(lib.list("trash")) == 3
    report = lib.scan()
    assert (report.added, report.removed) == (0, 0)
