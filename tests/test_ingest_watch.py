"""The watcher: files written straight into the on-disk inbox, and changes made in the originals."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime

import pytest
from conftest import jpeg_with_date
from ingest_helpers import open_library
from photovfs.catalog.models import Asset
from photovfs.watch import Watcher
from sqlalchemy import select

WHEN = datetime(2021, 4, 30, 9, 42, 39)


@pytest.fixture
def lib(tmp_path):
    lib = open_library(tmp_path / "lib", quiet=0.5)
    yield lib
    lib.close()


def wait_for(cond, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def filenames(lib):
    with lib.session() as s:
        return sorted(s.scalars(select(Asset.filename)))


def test_a_file_copied_into_the_inbox_is_ingested_once_quiet(lib, tmp_path):
    src = jpeg_with_date(tmp_path / "IMG_0001.jpg", WHEN)
    with Watcher(lib, debounce_seconds=0.2):
        dest = lib.config.inbox_dir / "IMG_0001.jpg"
        with open(dest, "wb") as fh:  # a slow writer: half now, the rest later
            data = src.read_bytes()
            fh.write(data[:200])
            fh.flush()
            time.sleep(0.3)
            assert filenames(lib) == []
            fh.write(data[200:])
        assert wait_for(lambda: filenames(lib) == ["IMG_0001.jpg"])
        # the journal commits the catalog row first and removes the inbox copy just after
        assert wait_for(lambda: not dest.exists())


def test_a_syncthing_temporary_renamed_to_its_final_name_is_ingested(lib, tmp_path):
    src = jpeg_with_date(tmp_path / "IMG_0002.jpg", WHEN)
    with Watcher(lib, quiet_seconds=30, debounce_seconds=0.2):
        tmp = lib.config.inbox_dir / ".syncthing.IMG_0002.jpg.tmp"
        shutil.copyfile(src, tmp)
        time.sleep(0.5)
        assert filenames(lib) == []
        os.rename(tmp, lib.config.inbox_dir / "IMG_0002.jpg")  # complete by protocol: no wait
        assert wait_for(lambda: filenames(lib) == ["IMG_0002.jpg"], timeout=5)


def test_the_periodic_rescan_finds_files_that_were_there_before_the_watcher(lib, tmp_path):
    jpeg_with_date(lib.config.inbox_dir / "old.jpg", WHEN)
    with Watcher(lib, debounce_seconds=0.2):
        assert wait_for(lambda: filenames(lib) == ["old.jpg"])


def test_files_added_changed_and_removed_in_the_originals_are_picked_up(lib, tmp_path):
    with Watcher(lib, debounce_seconds=0.3):
        p = jpeg_with_date(lib.config.library / "Trips" / "a.jpg", WHEN)
        assert wait_for(lambda: filenames(lib) == ["a.jpg"])
        p.unlink()
        assert wait_for(lambda: filenames(lib) == [])
