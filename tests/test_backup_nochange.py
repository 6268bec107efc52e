"""A backup run that finds nothing changed: proven from the last run's record (quick.py), shared
files hard-linked, and every kind of change still seen. Real files, a real SQLite catalog."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from conftest import assert_restored, jpeg_with_date
from photovfs.backup import quick
from photovfs.backup.dest import LocalDest
from photovfs.backup.engine import (
    FIXITY_FILE,
    backup,
    check,
    disk_problems,
    disk_problems_py,
    read_manifest,
    restore,
)
from photovfs.catalog.models import AlbumAsset, Asset
from photovfs.catalog.store import album_by_path
from photovfs.config import load_config
from photovfs.library import Library
from sqlalchemy import select


def same_inode(a: Path, b: Path) -> bool:
    return a.stat().st_ino == b.stat().st_ino and a.stat().st_dev == b.stat().st_dev


def test_a_no_change_run_takes_the_quick_path_links_its_files_and_restores_identically(backed_up, tmp_path):
    photo_dir, dest, first = backed_up
    same = backup(photo_dir, str(dest))
    assert same["ok"] and same["unchanged_fast"] and same["copied"] == [], same
    assert same["unchanged"] == first["files"] == same["files"] == 5
    g1, g2 = (dest / "generations" / g for g in (first["generation"], same["generation"]))
    assert same_inode(g1 / "MANIFEST.tsv", g2 / "MANIFEST.tsv")
    assert same_inode(g1 / "catalog.db", g2 / "catalog.db")
    done = json.loads((g2 / "DONE").read_text())
    assert done["complete"] and done["files"] == 5
    assert done["catalog_sha256"] == json.loads((g1 / "DONE").read_text())["catalog_sha256"]
    meta = json.loads((g2 / "metadata.json").read_text())
    assert meta["generation"] == same["generation"]
    # an old generation deleted by hand: the newer one keeps its (linked) files whole
    shutil.rmtree(g1)
    target = tmp_path / "restored"
    r = restore(str(dest), target, generation=same["generation"])
    assert r["ok"] and r["restored"] == 5, r
    assert_restored(photo_dir, target)
    replicas = check(photo_dir, replicas=True, download=5, record=False)
    assert replicas["ok"], replicas


def test_an_album_edit_after_a_no_change_run_is_a_new_snapshot_whose_restore_has_it(backed_up, tmp_path):
    photo_dir, dest, _first = backed_up
    same = backup(photo_dir, str(dest))
    assert same["unchanged_fast"], same
    lib = Library.open(photo_dir)
    with lib.write() as s:  # changes only the catalog
        album = album_by_path(s, "Holidays")
        aid = s.scalar(select(Asset.id).where(Asset.filename == "scan.jpg"))
        s.add(AlbumAsset(album_id=album.id, asset_id=aid, added_at=datetime.now()))
    lib.close()
    edited = backup(photo_dir, str(dest))
    assert edited["ok"] and not edited["unchanged_fast"] and edited["copied"] == [], edited
    g2, g3 = (dest / "generations" / g for g in (same["generation"], edited["generation"]))
    assert same_inode(g2 / "MANIFEST.tsv", g3 / "MANIFEST.tsv")  # the files did not change
    assert not same_inode(g2 / "catalog.db", g3 / "catalog.db")
    with sqlite3.connect(g3 / "catalog.db") as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    target = tmp_path / "restored"
    assert restore(str(dest), target, generation=edited["generation"])["ok"]
    lib = Library.open(target)
    try:
        assert len(lib.list("by-album/Holidays")) == 1
    finally:
        lib.close()
    assert backup(photo_dir, str(dest))["unchanged_fast"]  # and quick again after that


def test_a_file_rewritten_with_the_same_size_and_a_new_mtime_is_copied_again(backed_up):
    photo_dir, dest, _first = backed_up
    path = photo_dir / "phone/IMG_0001.jpg"
    old = path.read_bytes()
    data = bytearray(old)
    data[len(data) // 2] ^= 0xFF  # same size, other bytes, and (below) a new mtime
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    r = backup(photo_dir, str(dest))
    assert r["ok"] and not r["unchanged_fast"] and r["scanned"], r
    assert r["copied"] == ["phone/IMG_0001.jpg"], r
    assert (dest / "current/phone/IMG_0001.jpg").read_bytes() == bytes(data)
    assert (dest / "versions" / r["generation"] / "phone/IMG_0001.jpg").read_bytes() == old
    assert read_manifest(LocalDest(dest), r["generation"])["phone/IMG_0001.jpg"].mtime_ns == \
        path.stat().st_mtime_ns


def test_a_touched_file_with_the_same_bytes_gets_its_new_mtime_in_the_manifest(backed_up):
    photo_dir, dest, _first = backed_up
    path = photo_dir / "old/scan.jpg"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    r = backup(photo_dir, str(dest))
    assert r["ok"] and not r["unchanged_fast"] and r["copied"] == [], r
    assert read_manifest(LocalDest(dest), r["generation"])["old/scan.jpg"].mtime_ns == \
        path.stat().st_mtime_ns


def test_a_bit_flip_with_the_same_size_and_mtime_is_not_copied_over_the_replica(backed_up):
    photo_dir, dest, _first = backed_up
    path = photo_dir / "2021/Italy/IMG_0002.jpg"
    good = path.read_bytes()
    st = path.stat()
    data = bytearray(good)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    quick_run = backup(photo_dir, str(dest))  # not due for a re-read: nothing looks changed
    assert quick_run["unchanged_fast"] and (dest / "current/2021/Italy/IMG_0002.jpg").read_bytes() == good
    r = backup(photo_dir, str(dest), verify_sources="all")  # re-reading finds it
    assert not r["ok"] and not r["unchanged_fast"]
    assert [c["path"] for c in r["corrupt"]] == ["2021/Italy/IMG_0002.jpg"]
    assert (dest / "current/2021/Italy/IMG_0002.jpg").read_bytes() == good


def test_new_deleted_and_sidecar_changes_and_a_lost_replica_all_leave_the_quick_path(backed_up):
    photo_dir, dest, _first = backed_up

    def changed() -> dict:
        r = backup(photo_dir, str(dest))
        assert r["ok"] and not r["unchanged_fast"], r
        assert backup(photo_dir, str(dest))["unchanged_fast"]  # settled again
        return r

    jpeg_with_date(photo_dir / "new/IMG_9.jpg", datetime(2020, 1, 1), color=(5, 6, 7))
    assert changed()["copied"] == ["new/IMG_9.jpg"]
    (photo_dir / "new/IMG_9.jpg").unlink()
    assert changed()["deleted"] == ["new/IMG_9.jpg"]
    (photo_dir / "old/scan.jpg.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    assert changed()["copied"] == ["old/scan.jpg.xmp"]
    time.sleep(0.01)
    (photo_dir / "old/scan.jpg.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'> </x:xmpmeta>")
    assert changed()["copied"] == ["old/scan.jpg.xmp"]
    (dest / "current/phone/IMG_0001.jpg").unlink()  # a replica lost at the destination
    assert changed()["recopied"] == ["phone/IMG_0001.jpg"]
    with open(dest / "current/old/scan.jpg", "r+b") as fh:  # one truncated
        fh.truncate(10)
    assert changed()["recopied"] == ["old/scan.jpg"]


def test_a_damaged_or_missing_record_only_makes_the_run_slower(backed_up):
    photo_dir, dest, _first = backed_up
    cfg = load_config(photo_dir)
    record = quick.cache_file(cfg.state_dir, str(LocalDest(dest).url))
    data = bytearray(record.read_bytes())
    data[-5] ^= 0x55
    record.write_bytes(bytes(data))
    r = backup(photo_dir, str(dest))
    assert r["ok"] and not r["unchanged_fast"] and r["unchanged"] == 5, r
    record.unlink()
    r = backup(photo_dir, str(dest))
    assert r["ok"] and not r["unchanged_fast"], r
    assert backup(photo_dir, str(dest))["unchanged_fast"]


def test_a_source_due_for_its_fixity_reread_leaves_the_quick_path(backed_up):
    photo_dir, dest, _first = backed_up
    cfg = load_config(photo_dir)
    fixity_file = cfg.state_dir / FIXITY_FILE
    fixity = json.loads(fixity_file.read_text())
    fixity["phone/IMG_0001.jpg"]["verified_at"] = time.time() - 90 * 86400
    fixity_file.write_text(json.dumps(fixity))
    r = backup(photo_dir, str(dest))
    assert r["ok"] and not r["unchanged_fast"] and r["rehashed"] == 1, r
    r = backup(photo_dir, str(dest), verify_sources=False)
    assert r["ok"] and r["unchanged_fast"] and r["rehashed"] == 0, r


def awkward_tree(root: Path, state: Path) -> None:
    """Everything a walk has to tell apart."""
    jpeg_with_date(root / "a/IMG_1.jpg", datetime(2021, 1, 1))
    jpeg_with_date(root / "a b/IMG 2.JPG", datetime(2021, 1, 2))
    jpeg_with_date(root / "nfd/Cafe\u0301.jpg", datetime(2021, 1, 3))
    (root / "a/empty.heic").write_bytes(b"")
    (root / "a/IMG_1.jpg.xmp").write_text("<x/>")
    (root / "a/._IMG_1.jpg").write_bytes(b"apple double")
    (root / "a/._IMG_1.xmp").write_text("side file")
    (root / "a/notes.txt").write_text("not a photo")
    (root / "a/new\nline.jpg").write_bytes((root / "a/IMG_1.jpg").read_bytes())
    (root / os.fsdecode(b"a/bad-\xff-name.jpg")).write_bytes((root / "a/IMG_1.jpg").read_bytes())
    (root / "folder.jpg").mkdir()
    jpeg_with_date(root / "folder.jpg/inside.jpg", datetime(2021, 1, 4))
    jpeg_with_date(root / ".hidden/IMG_3.jpg", datetime(2021, 1, 5))
    jpeg_with_date(root / "@eaDir/IMG_4.jpg", datetime(2021, 1, 6))
    jpeg_with_date(state / "trash/IMG_5.jpg", datetime(2021, 1, 7))
    os.symlink(root / "a/IMG_1.jpg", root / "a/link.jpg")
    os.symlink(root / "nowhere.jpg", root / "a/dangling.jpg")
    os.symlink(root / "a", root / "dirlink.jpg")
    os.mkfifo(root / "a/fifo.jpg")


def test_the_find_walk_and_the_python_walk_give_the_same_answers(tmp_path):
    root = tmp_path / "lib"
    state = root / "state-inside"
    awkward_tree(root, state)
    cfg = load_config(root, state_dir=state)
    side_a: list[str] = []
    stats_a: dict = {}
    side_b: list[str] = []
    stats_b: dict = {}
    from photovfs.backup import walk

    assert walk.library(str(root), str(state), set(), frozenset({".jpg"}), lambda n: False,
                        None, None) is not None  # (GNU find is there: both walks are compared)
    got = disk_problems(cfg, side_a, stats_a)
    want = disk_problems_py(cfg, side_b, stats_b)
    assert got == want and side_a == side_b and stats_a == stats_b
    problems, regular = got
    assert problems["a/empty.heic"][0] == "ZERO_SIZE" and "a/empty.heic" in regular
    assert "dangling" in problems["a/dangling.jpg"][1]
    assert problems["a/fifo.jpg"][1] == "not a regular file"
    assert problems["folder.jpg"][1] == "a folder named like a photo"
    assert {"a/link.jpg", "a/new\nline.jpg", "a b/IMG 2.JPG", os.fsdecode(b"a/bad-\xff-name.jpg"),
            "folder.jpg/inside.jpg"} <= regular
    assert not any(r.startswith((".hidden", "@eaDir", "state-inside")) for r in regular)
    assert side_a == ["a/IMG_1.jpg.xmp"]
    d = LocalDest(root)
    assert walk.sizes(str(root)) is not None
    python = {}
    for dirpath, dirs, files in os.walk(root):
        for n in files + [x for x in dirs if os.path.islink(os.path.join(dirpath, x))]:
            p = os.path.join(dirpath, n)
            python[os.path.relpath(p, root)] = os.lstat(p).st_size
    assert d.list_files("") == python
    # a library reached through a symlink is walked, not taken for an empty folder
    os.symlink(root, tmp_path / "via-link")
    linked = load_config(tmp_path / "via-link", state_dir=state)
    assert disk_problems(linked)[1] == regular
    assert LocalDest(tmp_path / "via-link").list_files("a") == d.list_files("a")
    assert walk.sizes(str(tmp_path / "via-link")) == python
