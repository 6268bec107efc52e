"""Backups, fixity checks, repair and restore on real files and a real SQLite catalog."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

from conftest import assert_restored, jpeg_with_date
from photovfs.backup.dest import LocalDest
from photovfs.backup.engine import backup, check, done_generations, read_manifest, repair, restore
from photovfs.catalog.models import AlbumAsset, Asset, AssetPerson
from photovfs.catalog.store import album_by_path, person_by_name
from photovfs.cli import main
from photovfs.library import Library
from sqlalchemy import select


def flip_one_byte(path: Path) -> None:
    """Bit rot: one byte changes, size and mtime stay what they were."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def rewrite(path: Path, color) -> None:
    jpeg_with_date(path, datetime(2022, 1, 1), color=color)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def tag(lib: Library, album: str, person: str, paths: list[tuple[str, str]]) -> None:
    with lib.write() as s:
        a = album_by_path(s, album)
        p = person_by_name(s, person)
        for folder, name in paths:
            aid = s.scalar(select(Asset.id).where(Asset.folder == folder, Asset.filename == name))
            s.add(AlbumAsset(album_id=a.id, asset_id=aid, added_at=datetime.now()))
            s.add(AssetPerson(asset_id=aid, person_id=p.id, source="manual"))


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_first_backup_copies_every_original_and_writes_a_verified_generation(photo_dir, tmp_path, capsys):
    dest = tmp_path / "dest"
    code, r = run(capsys, "backup", str(photo_dir), str(dest))
    assert code == 0 and r["ok"], r
    assert len(r["copied"]) == 5
    for rel in ("2021/Italy/IMG_0001.jpg", "phone/IMG_0001.jpg", "old/scan.jpg"):
        assert (dest / "current" / rel).read_bytes() == (photo_dir / rel).read_bytes()
    gen = dest / "generations" / r["generation"]
    assert sorted(p.name for p in gen.iterdir()) == ["DONE", "MANIFEST.tsv", "catalog.db",
                                                      "metadata.json"]
    with sqlite3.connect(gen / "catalog.db") as c:
        assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert c.execute("select count(*) from assets").fetchone() == (5,)
    lines = (gen / "MANIFEST.tsv").read_text().splitlines()
    assert lines[0].startswith("#") and len(lines) == 6
    assert all(len(line.split("\t")) == 5 for line in lines[1:])
    assert not list(dest.rglob("*.part"))


def test_a_second_backup_copies_only_what_changed_and_moves_the_old_version_aside(photo_dir, tmp_path):
    dest = tmp_path / "dest"
    first = backup(photo_dir, str(dest))
    old = (photo_dir / "phone/IMG_0001.jpg").read_bytes()
    rewrite(photo_dir / "phone/IMG_0001.jpg", (1, 2, 3))
    second = backup(photo_dir, str(dest))
    assert second["ok"], second
    assert second["copied"] == ["phone/IMG_0001.jpg"] and second["unchanged"] == 4
    assert (dest / "current/phone/IMG_0001.jpg").read_bytes() != old
    assert (dest / "versions" / second["generation"] / "phone/IMG_0001.jpg").read_bytes() == old
    assert done_generations(LocalDest(dest)) == [first["generation"], second["generation"]]


def test_a_deleted_original_moves_to_versions_and_is_never_deleted_at_the_destination(photo_dir, tmp_path):
    dest = tmp_path / "dest"
    backup(photo_dir, str(dest))
    kept = (photo_dir / "old/scan.jpg").read_bytes()
    (photo_dir / "old/scan.jpg").unlink()
    r = backup(photo_dir, str(dest))
    assert r["ok"] and r["deleted"] == ["old/scan.jpg"]
    assert not (dest / "current/old/scan.jpg").exists()
    assert (dest / "versions" / r["generation"] / "old/scan.jpg").read_bytes() == kept
    assert "old/scan.jpg" not in read_manifest(LocalDest(dest), r["generation"])


def test_a_flipped_bit_is_found_by_check_kept_out_of_the_backup_and_repaired(photo_dir, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert backup(photo_dir, str(dest))["ok"]
    good = (photo_dir / "2021/Italy/IMG_0002.jpg").read_bytes()
    flip_one_byte(photo_dir / "2021/Italy/IMG_0002.jpg")

    code, r = run(capsys, "check", str(photo_dir))
    assert code == 1
    assert [(f["kind"], f["path"]) for f in r["findings"]] == [("CORRUPT", "2021/Italy/IMG_0002.jpg")]

    code, r = run(capsys, "backup", str(photo_dir), str(dest))
    assert code == 1 and not r["ok"]
    assert [c["path"] for c in r["corrupt"]] == ["2021/Italy/IMG_0002.jpg"]
    assert (dest / "current/2021/Italy/IMG_0002.jpg").read_bytes() == good
    assert not (dest / "versions").exists() or not list((dest / "versions").rglob("*.jpg"))

    code, r = run(capsys, "repair", str(photo_dir))
    assert code == 0, r
    assert [x["path"] for x in r["repaired"]] == ["2021/Italy/IMG_0002.jpg"]
    assert (photo_dir / "2021/Italy/IMG_0002.jpg").read_bytes() == good

    code, r = run(capsys, "check", str(photo_dir))
    assert code == 0 and r["findings"] == []


def test_repair_without_a_good_copy_says_so_changes_nothing_and_fails(photo_dir, tmp_path, capsys):
    Library.open(photo_dir).scan()
    flip_one_byte(photo_dir / "phone/IMG_0001.jpg")
    damaged = (photo_dir / "phone/IMG_0001.jpg").read_bytes()
    code, r = run(capsys, "repair", str(photo_dir))
    assert code == 1
    assert r["unrepaired"][0]["path"] == "phone/IMG_0001.jpg"
    assert (photo_dir / "phone/IMG_0001.jpg").read_bytes() == damaged


def test_repair_brings_back_a_missing_original_with_its_catalogued_mtime(photo_dir, tmp_path):
    dest = tmp_path / "dest"
    backup(photo_dir, str(dest))
    st = (photo_dir / "old/scan.jpg").stat()
    (photo_dir / "old/scan.jpg").unlink()
    r = repair(photo_dir)
    assert r["ok"] and r["repaired"][0]["kind"] == "MISSING"
    assert (photo_dir / "old/scan.jpg").stat().st_mtime_ns == st.st_mtime_ns
    assert check(photo_dir)["ok"]


def test_a_lost_catalog_is_rebuilt_from_files_with_albums_and_people(photo_dir, tmp_path, capsys):
    lib = Library.open(photo_dir)
    lib.scan()
    tag(lib, "Trips/Italy 2021", "Anna", [("2021/Italy", "IMG_0001.jpg"), ("2021/Italy", "IMG_0002.jpg")])
    lib.close()
    dest = tmp_path / "dest"
    assert backup(photo_dir, str(dest))["ok"]
    shutil.rmtree(photo_dir / ".photovfs")  # the catalog is lost

    target = tmp_path / "restored"
    code, r = run(capsys, "restore", str(dest), str(target), "--from-files")
    assert code == 0, r
    assert r["restored"] == 5 and r["check"]["ok"]
    lib = Library.open(target)
    try:
        names = {n.name for n in lib.list("by-album/Trips/Italy 2021")}
        assert len(names) == 2
        assert len(lib.list("by-person/Anna")) == 2
    finally:
        lib.close()


def test_restore_from_the_catalog_snapshot_gives_a_clean_servable_library(photo_dir, tmp_path):
    lib = Library.open(photo_dir)
    lib.scan()
    tag(lib, "Family", "Ben", [("phone", "IMG_0001.jpg")])
    lib.close()
    dest = tmp_path / "dest"
    backup(photo_dir, str(dest))
    target = tmp_path / "restored"
    dry = restore(str(dest), target, dry_run=True)
    assert dry["ok"] and len(dry["would_restore"]) == 5 and not target.exists()
    r = restore(str(dest), target)
    assert r["ok"], r
    assert (target / ".photovfs/catalog.db").exists()
    lib = Library.open(target)
    try:
        assert len(lib.list("by-album/Family")) == 1
        assert len(lib.list("by-person/Ben")) == 1
    finally:
        lib.close()


def test_restore_refuses_a_folder_that_is_not_empty(photo_dir, tmp_path):
    dest = tmp_path / "dest"
    backup(photo_dir, str(dest))
    target = tmp_path / "busy"
    target.mkdir()
    (target / "x.txt").write_text("mine")
    r = restore(str(dest), target)
    assert not r["ok"] and "not empty" in r["problems"][0]
    assert (target / "x.txt").read_text() == "mine"


def test_rewriting_thirty_percent_of_originals_stops_at_the_guard_and_the_earlier_generation_restores(tmp_path, capsys):
    root = tmp_path / "lib"
    for i in range(10):
        jpeg_with_date(root / "roll" / f"P{i:03}.jpg", datetime(2020, 1, 1 + i), color=(i * 20, 0, 0))
    dest = tmp_path / "dest"
    first = backup(root, str(dest))
    assert first["ok"]
    originals = {i: (root / "roll" / f"P{i:03}.jpg").read_bytes() for i in range(10)}
    for i in range(3):  # ransomware-like: 30% rewritten
        rewrite(root / "roll" / f"P{i:03}.jpg", (0, 0, 255))
    code, r = run(capsys, "backup", str(root), str(dest))
    assert code == 3 and "mass-change guard" in r["stopped"] and r["change_ratio"] == 0.3
    assert done_generations(LocalDest(dest)) == [first["generation"]]
    assert (dest / "current/roll/P000.jpg").read_bytes() == originals[0]

    target = tmp_path / "back"
    r = restore(str(dest), target, generation=first["generation"])
    assert r["ok"], r
    assert all((target / "roll" / f"P{i:03}.jpg").read_bytes() == originals[i] for i in range(10))

    forced = backup(root, str(dest), force=True)
    assert forced["ok"] and len(forced["copied"]) == 3


def test_a_zero_byte_file_a_dangling_symlink_and_a_fifo_are_named_and_the_run_is_not_green(photo_dir, tmp_path, capsys):
    (photo_dir / "phone/empty.jpg").write_bytes(b"")
    (photo_dir / "phone/broken.jpg").symlink_to(photo_dir / "nowhere.jpg")
    os.mkfifo(photo_dir / "phone/pipe.jpg")
    (photo_dir / "phone/folder.jpg").mkdir()
    code, r = run(capsys, "backup", str(photo_dir), str(tmp_path / "dest"))
    assert code == 1 and not r["ok"]
    skipped = {s["path"] for s in r["skipped"]}
    assert {"phone/broken.jpg", "phone/pipe.jpg", "phone/folder.jpg"} <= skipped
    # the catalogued empty file is copied as it is (a faithful restore), and named
    assert [f["path"] for f in r["flagged"]] == ["phone/empty.jpg"]
    done = json.loads((tmp_path / "dest/generations" / r["generation"] / "DONE").read_text())
    assert done["complete"] is False

    code, r = run(capsys, "check", str(photo_dir))
    kinds = {f["path"]: f["kind"] for f in r["findings"]}
    assert code == 1
    assert kinds["phone/empty.jpg"] == "ZERO_SIZE"
    assert kinds["phone/broken.jpg"] == kinds["phone/pipe.jpg"] == kinds["phone/folder.jpg"] == "UNREADABLE"


def test_nfd_and_long_names_round_trip(tmp_path):
    root = tmp_path / "lib"
    nfd = "Cafe\u0301 Ｎacht"  # NFD accent and a full-width letter
    long = "L" * 240 + ".jpg"
    jpeg_with_date(root / nfd / "e\u0301te\u0301.jpg", datetime(2020, 7, 1))
    jpeg_with_date(root / "long" / long, datetime(2020, 7, 2))
    dest = tmp_path / "dest"
    assert backup(root, str(dest))["ok"]
    target = tmp_path / "restored"
    r = restore(str(dest), target)
    assert r["ok"], r
    assert (target / nfd / "e\u0301te\u0301.jpg").read_bytes() == (root / nfd / "e\u0301te\u0301.jpg").read_bytes()
    assert (target / "long" / long).exists()
    assert not (target / "Café Ｎacht").exists() or os.path.samefile(target / "Café Ｎacht", target / nfd)


def test_check_reports_missing_untracked_and_edited_files_and_changes_nothing(photo_dir, tmp_path):
    Library.open(photo_dir).scan()
    (photo_dir / "old/scan.jpg").unlink()
    jpeg_with_date(photo_dir / "new/fresh.jpg", datetime(2023, 1, 1))
    rewrite(photo_dir / "phone/IMG_0001.jpg", (5, 5, 5))
    db = photo_dir / ".photovfs/catalog.db"
    before = sqlite3.connect(db).execute("select folder, filename, sha256 from assets").fetchall()
    r = check(photo_dir)
    kinds = {(f["kind"], f["path"]) for f in r["findings"]}
    assert kinds == {("MISSING", "old/scan.jpg"), ("UNTRACKED", "new/fresh.jpg"),
                     ("EDITED", "phone/IMG_0001.jpg")}
    assert sqlite3.connect(db).execute("select folder, filename, sha256 from assets").fetchall() == before


def test_check_with_a_budget_reads_the_oldest_verified_files_first(tmp_path):
    root = tmp_path / "lib"
    for i in range(10):
        jpeg_with_date(root / f"P{i}.jpg", datetime(2020, 1, 1 + i), color=(i * 20, 9, 9))
    Library.open(root).scan()
    seen: set[str] = set()
    for _ in range(4):
        r = check(root, budget="30%")
        assert r["ok"] and 1 <= r["hashed"] <= 3
        fix = json.loads((root / ".photovfs/fixity.json").read_text())
        seen |= set(fix)
    assert len(seen) == 10  # four passes of 30% covered everything, oldest first


def test_a_damaged_catalog_fails_check(photo_dir):
    lib = Library.open(photo_dir)
    lib.scan()
    lib.close()
    db = photo_dir / ".photovfs/catalog.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = c.execute("PRAGMA page_count").fetchone()[0]
    data = bytearray(db.read_bytes())
    size = len(data) // pages
    for off in range(size * 2, size * 3):  # scribble over an inner page
        data[off] = 0x5A
    db.write_bytes(bytes(data))
    r = check(photo_dir)
    assert not r["ok"] and r["findings"][0]["kind"] == "CATALOG"


def test_a_replica_removed_at_the_destination_is_copied_again_without_tripping_the_guard(photo_dir, tmp_path):
    dest = tmp_path / "dest"
    backup(photo_dir, str(dest))
    (dest / "current/phone/IMG_0001.jpg").unlink()
    (dest / "current/old/scan.jpg").write_bytes(b"tampered")
    r = backup(photo_dir, str(dest))
    assert r["ok"], r
    assert r["recopied"] == ["old/scan.jpg", "phone/IMG_0001.jpg"]
    assert (dest / "current/old/scan.jpg").read_bytes() == (photo_dir / "old/scan.jpg").read_bytes()
    assert (dest / "versions" / r["generation"] / "old/scan.jpg").read_bytes() == b"tampered"


def test_a_file_that_rots_before_its_first_backup_is_never_copied(photo_dir, tmp_path):
    Library.open(photo_dir).scan()
    flip_one_byte(photo_dir / "old/scan.jpg")
    r = backup(photo_dir, str(tmp_path / "dest"))
    assert not r["ok"] and [c["path"] for c in r["corrupt"]] == ["old/scan.jpg"]
    assert not (tmp_path / "dest/current/old/scan.jpg").exists()
    assert "old/scan.jpg" not in r["copied"]


def test_an_older_generation_restores_the_versions_a_later_one_displaced(photo_dir, tmp_path):
    dest = tmp_path / "dest"
    first = backup(photo_dir, str(dest))
    before = (photo_dir / "phone/IMG_0001.jpg").read_bytes()
    rewrite(photo_dir / "phone/IMG_0001.jpg", (7, 7, 7))
    (photo_dir / "2021/Italy/IMG_0002.jpg").unlink()  # 2 of 5 changed: 40%, hence --force
    assert backup(photo_dir, str(dest), force=True)["ok"]
    r = restore(str(dest), tmp_path / "old", generation=first["generation"])
    assert r["ok"], r
    assert (tmp_path / "old/phone/IMG_0001.jpg").read_bytes() == before
    assert (tmp_path / "old/2021/Italy/IMG_0002.jpg").exists()
    newest = restore(str(dest), tmp_path / "new")
    assert newest["ok"] and not (tmp_path / "new/2021/Italy/IMG_0002.jpg").exists()


def test_the_plain_sqlite_catalog_read_equals_the_orm_read(photo_dir, tmp_path):
    """The backup reads its snapshot with plain sqlite3 (speed); it must describe exactly what the
    ORM read does: assets, trash files with their expected hashes, people, albums, places, stacks."""
    from photovfs.backup.engine import _read_catalog, _sqlite_catalog, snapshot_catalog, sqlite_path
    from photovfs.catalog.models import Person
    from sqlalchemy import create_engine, update
    from sqlalchemy.orm import Session

    lib = Library.open(photo_dir)
    lib.scan()
    tag(lib, "Trips/Italy 2021", "Anna", [("2021/Italy", "IMG_0001.jpg"), ("phone", "IMG_0001.jpg")])
    tag(lib, "Family", "Ben", [("old", "scan.jpg")])
    with lib.write() as s:
        s.execute(update(Asset).where(Asset.folder == "2021/Italy").values(stack_id=7))
        s.execute(update(Person).where(Person.name == "Ben").values(trashed=True))
    lib.remove("by-date/1999/12/31/scan.jpg")  # a trash item with a file
    snap = tmp_path / "snap.db"
    snapshot_catalog(sqlite_path(lib.config), snap)
    lib.close()
    engine = create_engine(f"sqlite:///{snap}")
    try:
        with Session(engine) as s:
            expected = _read_catalog(s)
    finally:
        engine.dispose()
    got = _sqlite_catalog(snap)
    assert got == expected
    assert got[1] and got[2]["stacks"] and got[2]["people"] and got[2]["places"]


def test_a_no_change_run_restores_identically_and_an_album_edit_after_it_is_in_the_next(backed_up,
                                                                                      tmp_path):
    photo_dir, dest, first = backed_up
    same = backup(photo_dir, str(dest))
    assert same["ok"] and same["copied"] == [] and same["unchanged"] == 5, same
    gdir = dest / "generations"
    assert (gdir / same["generation"] / "MANIFEST.tsv").read_bytes() == \
        (gdir / first["generation"] / "MANIFEST.tsv").read_bytes()
    target = tmp_path / "restored"
    r = restore(str(dest), target, generation=same["generation"])
    assert r["ok"] and r["restored"] == 5, r
    assert_restored(photo_dir, target)

    lib = Library.open(photo_dir)
    tag(lib, "Family", "Ben", [("phone", "IMG_0001.jpg")])  # changes only the catalog
    lib.close()
    edited = backup(photo_dir, str(dest))
    assert edited["ok"] and edited["copied"] == [], edited
    target2 = tmp_path / "restored2"
    assert restore(str(dest), target2, generation=edited["generation"])["ok"]
    lib = Library.open(target2)
    try:
        assert len(lib.list("by-album/Family")) == 1
        assert len(lib.list("by-person/Ben")) == 1
    finally:
        lib.close()
    meta = json.loads((gdir / edited["generation"] / "metadata.json").read_text())
    assert [a["members"] for a in meta["albums"] if a["path"] == "Family"] == [["phone/IMG_0001.jpg"]]
