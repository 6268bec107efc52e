"""Awkward content in a generation and its restore: Live Photo and RAW+JPEG+XMP stacks, NFD and
long names, a zero-byte file, unreadable things, trash; and when a backup re-reads sources."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import unicodedata
from datetime import datetime
from pathlib import Path

from conftest import jpeg_with_date
from ingest_helpers import heic, mov, open_library, put, raw_dng, xmp
from photovfs.backup.dest import LocalDest
from photovfs.backup.engine import backup, check, read_manifest, restore
from photovfs.catalog.models import Asset, TrashItem
from photovfs.cli import main
from photovfs.ingest import ingest_inbox_file
from photovfs.library import Library
from sqlalchemy import select
from test_backup import flip_one_byte

WHEN = datetime(2021, 4, 30, 9, 42, 39)
NFD_DIR = unicodedata.normalize("NFD", "Café Zürich")
NFD_NAME = unicodedata.normalize("NFD", "été à Noël.jpg")
LONG_NAME = "Ü" * 110 + ".jpg"  # 224 bytes in UTF-8


def stacks(db: Path) -> dict[str, int | None]:
    with sqlite3.connect(db) as c:
        return {f"{f}/{n}".lstrip("/"): s for f, n, s in
                c.execute("SELECT folder, filename, stack_id FROM assets")}


def awkward_library(tmp_path: Path) -> tuple[Library, Path]:
    lib = open_library(tmp_path / "lib")
    root = lib.config.library
    # a Live Photo: the still, then its video (same stem): one stack
    put(lib, "inbox/IMG_0100.HEIC", heic(tmp_path / "src/IMG_0100.HEIC").read_bytes())
    put(lib, "inbox/IMG_0100.MOV", mov(tmp_path / "src/IMG_0100.MOV", WHEN).read_bytes())
    # RAW+JPEG+XMP arriving together: one stack, the sidecar filed beside them
    inbox = lib.config.inbox_dir
    raw_dng(inbox / "IMG_0007.dng")
    xmp(inbox / "IMG_0007.xmp", "sunset")
    jpeg_with_date(inbox / "IMG_0007.jpg", WHEN)
    for p in inbox.iterdir():
        if p.is_file():
            os.utime(p, (p.stat().st_atime, p.stat().st_mtime - 5))
    ingest_inbox_file(lib, inbox / "IMG_0007.jpg")
    # names: NFD (decomposed accents), and one longer than 200 bytes
    jpeg_with_date(root / NFD_DIR / NFD_NAME, datetime(2019, 7, 1), color=(1, 2, 3))
    jpeg_with_date(root / "long" / LONG_NAME, datetime(2019, 7, 2), color=(4, 5, 6))
    lib.scan()
    return lib, root


def test_awkward_content_is_named_stacks_stay_whole_and_come_back_from_files(tmp_path, capsys):
    lib, root = awkward_library(tmp_path)
    live = [a for a in stacks(lib.config.state_dir / "catalog.db") if "IMG_0100" in a]
    rawjpg = [a for a in stacks(lib.config.state_dir / "catalog.db") if "IMG_0007" in a]
    assert len(live) == 2 and len(rawjpg) == 2
    sidecar = next(root.rglob("IMG_0007.xmp")).relative_to(root).as_posix()
    lib.close()
    # a zero-byte file and things that cannot be read (root reads chmod 000 files, so: a FIFO and
    # a symlink to nowhere, both named like photos)
    (root / "misc").mkdir()
    (root / "misc/empty.jpg").write_bytes(b"")
    os.mkfifo(root / "misc/pipe.jpg")
    (root / "misc/gone.jpg").symlink_to(root / "misc/nowhere.jpg")

    dest = tmp_path / "dest"
    code = main(["backup", str(root), str(dest), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 1 and not r["ok"] and r["generation"], r
    skipped = {s["path"]: s["reason"] for s in r["skipped"]}
    assert set(skipped) == {"misc/pipe.jpg", "misc/gone.jpg"}, skipped
    assert "dangling" in skipped["misc/gone.jpg"] and "not a regular" in skipped["misc/pipe.jpg"]
    # the empty file is catalogued: it is copied as it is (a faithful restore) but named
    assert [(f["path"], f["reason"]) for f in r["flagged"]] == [("misc/empty.jpg", "zero-byte file")]
    done = json.loads((dest / "generations" / r["generation"] / "DONE").read_text())
    assert done["complete"] is False and len(done["skipped"]) == 2 and len(done["flagged"]) == 1

    manifest = read_manifest(LocalDest(dest), r["generation"])
    names = {unicodedata.normalize("NFC", p) for p in manifest}
    assert unicodedata.normalize("NFC", f"{NFD_DIR}/{NFD_NAME}") in names
    assert f"long/{LONG_NAME}" in manifest and len(LONG_NAME.encode()) > 200
    # stacks copied whole: both halves, and the sidecar, in one stack group
    assert manifest[live[0]].stack and manifest[live[0]].stack == manifest[live[1]].stack
    group = {manifest[p].stack for p in [*rawjpg, sidecar]}
    assert len(group) == 1 and group != {""}
    for rel in manifest:
        assert (dest / "current" / rel).read_bytes() == (root / rel).read_bytes(), rel

    # restore from the snapshot: every byte, every name, the stacks
    snap = restore(str(dest), tmp_path / "restored")
    assert not snap["problems"], snap
    # restored as it was: its check names the same empty photo as the library's own check, no more
    assert [(f["kind"], f["path"]) for f in snap["check"]["findings"]] == [("ZERO_SIZE",
                                                                          "misc/empty.jpg")]
    assert ("ZERO_SIZE", "misc/empty.jpg") in {(f["kind"], f["path"])
                                               for f in check(root)["findings"]}
    for rel in manifest:
        assert (tmp_path / "restored" / rel).read_bytes() == (root / rel).read_bytes(), rel
    st = stacks(tmp_path / "restored/.photovfs/catalog.db")
    assert st[live[0]] == st[live[1]] is not None and st[rawjpg[0]] == st[rawjpg[1]] is not None

    # the catalog is lost: --from-files rescans and puts the stacks back
    shutil.rmtree(root / ".photovfs")
    ff = restore(str(dest), tmp_path / "fromfiles", from_files=True)
    assert not ff["problems"] and [f["kind"] for f in ff["check"]["findings"]] == ["ZERO_SIZE"], ff
    assert ff["metadata"]["stacks"] == 2 and ff["metadata"]["unknown_paths"] == 0
    st = stacks(tmp_path / "fromfiles/.photovfs/catalog.db")
    assert st[live[0]] == st[live[1]] is not None
    assert st[rawjpg[0]] == st[rawjpg[1]] is not None and st[live[0]] != st[rawjpg[0]]
    assert (tmp_path / "fromfiles" / sidecar).read_text().count("sunset") == 1
    assert (tmp_path / "fromfiles/long" / LONG_NAME).exists()


def test_a_stack_member_that_cannot_be_read_keeps_its_replica_and_names_the_stack(tmp_path):
    lib, root = awkward_library(tmp_path)
    video = next(root.rglob("IMG_0100.MOV"))
    rel = video.relative_to(root).as_posix()
    lib.close()
    dest = tmp_path / "dest"
    assert backup(root, str(dest))["ok"]
    kept = (dest / "current" / rel).read_bytes()
    video.unlink()
    os.mkfifo(video)  # the video became unreadable; the catalog still lists it
    r = backup(root, str(dest), scan=False)
    assert not r["ok"] and [s["path"] for s in r["skipped"]] == [rel]
    assert len(r["broken_stacks"]) == 1 and r["broken_stacks"][0]["left_out"] == [rel]
    assert len(r["broken_stacks"][0]["members"]) == 2
    # the generation still holds the whole Live Photo: the video's last good replica
    manifest = read_manifest(LocalDest(dest), r["generation"])
    assert rel in manifest and (dest / "current" / rel).read_bytes() == kept


def test_trash_is_in_the_generation_and_comes_back_with_restore(photo_dir, tmp_path):
    dest = tmp_path / "dest"
    assert backup(photo_dir, str(dest))["ok"]
    original = (photo_dir / "old/scan.jpg").read_bytes()
    lib = Library.open(photo_dir)
    lib.remove("by-date/1999/12/31/scan.jpg")  # to trash: bytes now under .photovfs/trash/
    lib.close()
    r = backup(photo_dir, str(dest))
    assert r["ok"] and r["deleted"] == ["old/scan.jpg"], r
    manifest = read_manifest(LocalDest(dest), r["generation"])
    in_trash = [p for p in manifest if p.startswith(".photovfs/trash/")]
    assert len(in_trash) == 1 and in_trash[0].endswith("/scan.jpg")
    assert (dest / "current" / in_trash[0]).read_bytes() == original

    target = tmp_path / "restored"
    res = restore(str(dest), target)
    assert res["ok"] and res["trash_items"] == 1, res
    assert (target / in_trash[0]).read_bytes() == original
    lib = Library.open(target)
    try:
        assert [n.name for n in lib.list("trash")] == ["scan.jpg"]
        with lib.session() as s:
            item = s.scalars(select(TrashItem)).one()
            assert Path(item.file).is_relative_to(target)
        lib.restore(item.id, lib_actor(lib))
        assert (target / "old/scan.jpg").read_bytes() == original
        with lib.session() as s:
            assert s.scalar(select(Asset.status).where(Asset.filename == "scan.jpg")) == "ok"
    finally:
        lib.close()
    assert check(target)["ok"]


def lib_actor(lib: Library):
    from photovfs.roles import SYSTEM

    return SYSTEM


def test_an_unchanged_run_rereads_nothing_unless_a_check_found_rot_or_it_is_due(photo_dir, tmp_path):
    dest = tmp_path / "dest"
    first = backup(photo_dir, str(dest))
    assert first["ok"] and first["scanned"]  # nothing was catalogued yet
    again = backup(photo_dir, str(dest))
    assert again["ok"] and again["rehashed"] == 0 and again["unchanged"] == 5
    assert not again["scanned"]  # the disk walk found nothing new: no rescan
    flip_one_byte(photo_dir / "old/scan.jpg")
    assert not backup(photo_dir, str(dest))["corrupt"]  # verified minutes ago: not re-read now
    assert [f["path"] for f in check(photo_dir)["findings"]] == ["old/scan.jpg"]
    r = backup(photo_dir, str(dest))  # the check's finding makes it due again
    assert [c["path"] for c in r["corrupt"]] == ["old/scan.jpg"] and not r["ok"]
    assert (dest / "current/old/scan.jpg").read_bytes() != (photo_dir / "old/scan.jpg").read_bytes()
    allr = backup(photo_dir, str(dest), verify_sources="all")
    assert allr["rehashed"] == 4 + 1 and [c["path"] for c in allr["corrupt"]] == ["old/scan.jpg"]
    jpeg_with_date(photo_dir / "new/fresh.jpg", datetime(2023, 1, 1))
    r = backup(photo_dir, str(dest))
    assert r["scanned"] and "new/fresh.jpg" in r["copied"]
