"""The library's catalog change counter, which the adapters' caches are keyed on."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from conftest import jpeg_with_date
from photovfs.catalog.probe import CatalogProbe
from photovfs.library import Library
from sqlalchemy import create_engine


def test_the_version_moves_with_a_commit_from_this_process_or_another_library(tmp_path: Path):
    photos = tmp_path / "Photos"
    (photos / "a").mkdir(parents=True)
    jpeg_with_date(photos / "a" / "IMG_0001.jpg", datetime(2021, 4, 30, 9, 42, 39))
    lib = Library.open(photos, state_dir=tmp_path / "state")
    lib.scan()
    before = lib.probe.version()
    assert before is not None and lib.probe.version() == before  # reading changes nothing
    lib.mkdir("by-album/Trip")  # a commit on the library's own engine
    after = lib.probe.version()
    assert after is not None and after != before
    other = Library.open(photos, state_dir=tmp_path / "state")  # e.g. the FUSE daemon
    other.mkdir("by-album/Beach")
    other.close()
    assert lib.probe.version() != after
    assert lib.probe.first("SELECT count(*) FROM albums") == (2,)
    lib.close()
    assert lib.probe.version() is None  # closed: nothing may be kept


def test_without_an_sqlite_file_nothing_can_be_told():
    probe = CatalogProbe(create_engine("sqlite://"))
    assert not probe.available and probe.version() is None
