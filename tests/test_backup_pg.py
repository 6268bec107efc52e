"""A PostgreSQL catalog gets a pg_dump snapshot in each generation (a private cluster, as in
test_postgres.py; skipped when the server binaries are absent)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from photovfs.backup.engine import backup, pg_tool, restore
from photovfs.catalog.models import AlbumAsset, Asset
from photovfs.catalog.store import album_by_path
from photovfs.config import load_config
from photovfs.library import Library
from sqlalchemy import select
from test_postgres import empty_database, pg_url  # noqa: F401 - pg_url: the server fixture


@pytest.fixture
def pg_lib(photo_dir: Path, pg_url: str, tmp_path: Path):  # noqa: F811
    cfg_file = tmp_path / "pg.toml"
    cfg_file.write_text(f'database_url = "{pg_url}"\n')
    lib = Library(load_config(photo_dir, config_file=cfg_file))
    lib.scan()
    with lib.write() as s:
        album = album_by_path(s, "Trips/Italy")
        for aid in s.scalars(select(Asset.id).where(Asset.folder == "2021/Italy")):
            s.add(AlbumAsset(album_id=album.id, asset_id=aid, added_at=datetime.now()))
    yield lib, cfg_file
    lib.close()
    empty_database(pg_url)


def test_a_postgres_catalog_is_dumped_into_the_generation_and_the_library_restores(pg_lib, photo_dir,
                                                                                   tmp_path):
    lib, cfg_file = pg_lib
    dest = tmp_path / "dest"
    r = backup(photo_dir, str(dest), config_file=cfg_file)
    assert r["ok"], r
    gen = dest / "generations" / r["generation"]
    assert json.loads((gen / "DONE").read_text())["catalog"] == "catalog.pgdump"
    assert not (gen / "catalog.db").exists()
    listing = subprocess.run([pg_tool("pg_restore") or "pg_restore", "--list",
                              str(gen / "catalog.pgdump")], capture_output=True, text=True,
                             check=True).stdout
    assert "TABLE DATA public assets" in listing and "TABLE DATA public album_assets" in listing
    # the dump is the catalog at the moment the file list was taken: 5 rows, like the manifest
    sql = subprocess.run([pg_tool("pg_restore") or "pg_restore", "--data-only", "--table=assets",
                          "-f", "-", str(gen / "catalog.pgdump")], capture_output=True, text=True,
                         check=True).stdout
    rows = sql.split("FROM stdin;\n", 1)[1].split("\n\\.", 1)[0].strip().splitlines()
    assert len(rows) == 5

    # a photo added after: the next generation's dump has it too
    jpeg_with_date(photo_dir / "new/later.jpg", datetime(2022, 2, 2))
    second = backup(photo_dir, str(dest), config_file=cfg_file)
    assert second["ok"] and second["copied"] == ["new/later.jpg"], second

    # restore without PostgreSQL: the files, the dump kept beside, albums re-applied from files
    target = tmp_path / "restored"
    res = restore(str(dest), target)
    assert res["ok"], res
    assert (target / ".photovfs/catalog.pgdump").exists() and res["notes"]
    rl = Library.open(target)
    try:
        assert len(rl.list("by-album/Trips/Italy")) == 2
        assert (target / "new/later.jpg").exists()
    finally:
        rl.close()
