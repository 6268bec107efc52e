"""A library on read-only media keeps its XMP sidecars in STATE/sidecars/: a generation holds them
and a restore puts them where the scan reads them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from photovfs.backup.dest import LocalDest
from photovfs.backup.engine import backup, read_manifest, restore
from photovfs.catalog.models import Asset
from photovfs.library import Library
from sqlalchemy import select
from test_backup import tag


@pytest.fixture
def read_only_library(photo_dir, tmp_path):
    """photo_dir bind-mounted read-only (a root test process may write anything a mode allows;
    a read-only mount it may not): (mount point, state folder)."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(photo_dir), str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount read-only here")
    try:
        yield mnt, tmp_path / "state"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_state_sidecars_of_read_only_originals_are_backed_up_and_restored(read_only_library, tmp_path):
    root, state = read_only_library
    lib = Library.open(root, state_dir=state)
    lib.scan()
    tag(lib, "Family", "Ben", [("phone", "IMG_0001.jpg")])
    assert lib.sidecars.export_all() == 1
    lib.close()
    side = state / "sidecars/phone/IMG_0001.jpg.xmp"
    assert side.is_file() and "Ben" in side.read_text() and not list(root.rglob("*.xmp"))

    dest = tmp_path / "dest"
    first = backup(root, str(dest), state_dir=state)
    assert first["ok"], first
    rel = ".photovfs/sidecars/phone/IMG_0001.jpg.xmp"
    assert rel in read_manifest(LocalDest(dest), first["generation"])
    assert (dest / "current" / rel).read_bytes() == side.read_bytes()

    # a new name in the sidecar: the next generation copies the sidecar, not the photo
    lib = Library.open(root, state_dir=state)
    tag(lib, "Family", "Anna", [("old", "scan.jpg")])
    with lib.session() as s:
        scan_id = s.scalar(select(Asset.id).where(Asset.folder == "old",
                                                  Asset.filename == "scan.jpg"))
    lib.sidecars.mark([scan_id])
    lib.close()
    second = backup(root, str(dest), state_dir=state)
    assert second["ok"] and second["copied"] == [".photovfs/sidecars/old/scan.jpg.xmp"], second

    # restore from the snapshot, then from the files alone: the sidecars are in TARGET's state
    # folder, and the scan of a restored library reads them there
    for name, from_files in (("snap", False), ("files", True)):
        target = tmp_path / name
        r = restore(str(dest), target, from_files=from_files)
        assert r["ok"], r
        got = target / ".photovfs" / rel[len(".photovfs/"):]
        assert got.read_bytes() == side.read_bytes()
        assert got.stat().st_mtime_ns == side.stat().st_mtime_ns
    shutil.rmtree(state)  # the state folder is lost, originals still read-only: from the files
    lib = Library.open(tmp_path / "files")
    try:
        with lib.session() as s:
            row = s.scalar(select(Asset).where(Asset.filename == "scan.jpg"))
            assert row.sidecar_mtime_ns is not None  # read from .photovfs/sidecars/
        assert {n.name for n in lib.list("by-person")} >= {"Anna", "Ben"}
    finally:
        lib.close()

    # a subset brings its photo's state sidecar too
    r = restore(str(dest), tmp_path / "one", only="originals/old/scan.jpg")
    assert r["ok"], r
    assert (tmp_path / "one/.photovfs/sidecars/old/scan.jpg.xmp").is_file()
