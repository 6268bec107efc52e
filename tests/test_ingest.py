"""Inbox ingest on real files and a real SQLite catalog: what each kind of arrival becomes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from ingest_helpers import heic, mov, open_library, put, raw_dng, sha, xmp
from photovfs.catalog.models import Asset, Job
from photovfs.errors import NotFound
from photovfs.ingest import ingest_inbox_file
from photovfs.ingest.cli import inbox_status
from photovfs.ingest.pipeline import state
from sqlalchemy import select

WHEN = datetime(2021, 4, 30, 9, 42, 39)


@pytest.fixture
def lib(tmp_path):
    lib = open_library(tmp_path / "lib")
    yield lib
    lib.close()


def jpeg_bytes(tmp_path: Path, name="src.jpg", when=WHEN, color=(200, 30, 30)) -> bytes:
    return jpeg_with_date(tmp_path / "src" / name, when, color=color).read_bytes()


def assets(lib):
    with lib.session() as s:
        return s.scalars(select(Asset).order_by(Asset.id)).all()


def inbox_files(lib):
    root = lib.config.inbox_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and ".photovfs-ingest" not in p.parts)


# ---- 0. durability --------------------------------------------------------------------------------
def test_a_put_answers_only_after_the_file_and_the_inbox_folder_are_fsynced(lib, tmp_path,
                                                                            monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    seen_at_arrival: list[list[str]] = []
    hook = lib.on_inbox
    lib.on_inbox = lambda path, actor: (seen_at_arrival.append(list(synced)), hook(path, actor))
    put(lib, "inbox/IMG_0001.jpg", jpeg_bytes(tmp_path))
    before = seen_at_arrival[0]
    assert any(p.startswith(str(lib.config.state_dir / "tmp" / "up-")) for p in before)
    assert str(lib.config.inbox_dir) in before  # the folder entry is durable too


# ---- 1. complete files only -------------------------------------------------------------------------
def test_a_put_jpeg_is_filed_by_date_and_shows_in_every_view_at_once(lib, tmp_path):
    data = jpeg_bytes(tmp_path)
    put(lib, "inbox/IMG_0001.jpg", data)
    original = lib.config.library / "2021/04/30/IMG_0001.jpg"
    assert original.read_bytes() == data
    assert [n.name for n in lib.list("by-date/2021/04/30")] == ["IMG_0001.jpg"]
    assert lib.resolve("originals/2021/04/30/IMG_0001.jpg").size == len(data)
    assert not (lib.config.inbox_dir / "IMG_0001.jpg").exists()


def test_an_empty_file_is_never_ingested(lib):
    put(lib, "inbox/empty.jpg", b"")
    assert assets(lib) == []
    assert (lib.config.inbox_dir / "empty.jpg").exists()
    assert inbox_status(lib)["empty"] == ["empty.jpg"]


@pytest.mark.parametrize("temp", [".syncthing.IMG_0002.jpg.tmp", ".IMG_0002.jpg.Ab12Cd",
                                  "IMG_0002.jpg.part", "IMG_0002.jpg.crdownload",
                                  "IMG_0002.jpg.tacitpart", "~$IMG_0002.jpg", "._IMG_0002.jpg"])
def test_temporary_names_are_never_ingested_but_the_final_name_is(lib, tmp_path, temp):
    data = jpeg_bytes(tmp_path)
    put(lib, f"inbox/{temp}", data)
    assert assets(lib) == [] and (lib.config.inbox_dir / temp).exists()
    lib.move(f"inbox/{temp}", "inbox/IMG_0002.jpg")
    [a] = assets(lib)
    assert (a.folder, a.filename) == ("2021/04/30", "IMG_0002.jpg")
    assert inbox_files(lib) == []


# ---- 2. verify --------------------------------------------------------------------------------------
def test_a_truncated_jpeg_goes_to_failed_with_a_note_saying_why(lib, tmp_path):
    data = jpeg_bytes(tmp_path)
    put(lib, "inbox/broken.jpg", data[: len(data) // 2])
    failed = lib.config.inbox_dir / "_failed"
    assert (failed / "broken.jpg").read_bytes() == data[: len(data) // 2]
    note = (failed / "broken.jpg.txt").read_text()
    assert note.startswith("broken.jpg: ") and len(note.splitlines()[0]) > len("broken.jpg: ")
    assert assets(lib) == []
    assert inbox_status(lib)["failed"][0]["name"] == "broken.jpg"
    assert lib.resolve("inbox/_failed/broken.jpg").size == len(data) // 2


def test_a_file_that_is_not_media_stays_untouched_and_is_listed_in_status(lib):
    put(lib, "inbox/notes.pdf", b"%PDF-1.4 not a photo")
    path = lib.config.inbox_dir / "notes.pdf"
    assert path.read_bytes() == b"%PDF-1.4 not a photo"
    assert inbox_status(lib)["not_media"] == ["notes.pdf"]
    assert assets(lib) == []


# ---- 3. dedupe --------------------------------------------------------------------------------------
def test_a_byte_identical_copy_is_recorded_as_a_duplicate_and_removed_from_the_inbox(lib, tmp_path):
    data = jpeg_bytes(tmp_path)
    put(lib, "inbox/IMG_0001.jpg", data)
    put(lib, "inbox/copy of IMG_0001.jpg", data)
    assert len(assets(lib)) == 1
    assert inbox_files(lib) == []
    recent = inbox_status(lib)["recent"]
    assert recent[0]["result"] == "duplicate" and recent[0]["name"] == "copy of IMG_0001.jpg"


# ---- 4. filing --------------------------------------------------------------------------------------
def test_a_name_clash_gets_a_suffix_and_both_keep_their_bytes(lib, tmp_path):
    a = jpeg_bytes(tmp_path, "a.jpg", color=(1, 2, 3))
    b = jpeg_bytes(tmp_path, "b.jpg", color=(200, 100, 3))
    put(lib, "inbox/IMG_0001.jpg", a)
    put(lib, "inbox/IMG_0001.jpg", b)
    day = lib.config.library / "2021/04/30"
    assert (day / "IMG_0001.jpg").read_bytes() == a
    assert (day / "IMG_0001 (2).jpg").read_bytes() == b


def test_the_template_decides_the_folder(tmp_path):
    lib = open_library(tmp_path / "lib", extra='template = "{year}/{year}-{month}/{name}"\n')
    try:
        put(lib, "inbox/x.jpg", jpeg_bytes(tmp_path))
        assert (lib.config.library / "2021/2021-04/x.jpg").exists()
    finally:
        lib.close()


def test_a_file_in_an_inbox_subfolder_is_ingested_too(lib, tmp_path):
    lib.mkdir("inbox/Camera")
    put(lib, "inbox/Camera/DSC_1.jpg", jpeg_bytes(tmp_path))
    assert [a.filename for a in assets(lib)] == ["DSC_1.jpg"]


# ---- 5. companions ----------------------------------------------------------------------------------
def test_raw_jpeg_and_xmp_that_arrive_together_are_filed_together_as_one_stack(lib, tmp_path):
    inbox = lib.config.inbox_dir
    raw_dng(inbox / "IMG_0007.dng")
    xmp(inbox / "IMG_0007.xmp")
    jpeg_with_date(inbox / "IMG_0007.jpg", WHEN)
    for p in inbox.iterdir():
        if p.is_file():
            os.utime(p, (p.stat().st_atime, p.stat().st_mtime - 5))  # complete (quiet)
    results = ingest_inbox_file(lib, inbox / "IMG_0007.jpg")
    assert len(results) == 2
    rows = assets(lib)
    assert {r.filename for r in rows} == {"IMG_0007.jpg", "IMG_0007.dng"}
    assert {r.folder for r in rows} == {"2021/04/30"}
    assert {r.stack_id for r in rows} == {min(r.id for r in rows)}
    assert (lib.config.library / "2021/04/30/IMG_0007.xmp").exists()
    assert inbox_files(lib) == []


def test_a_live_photo_heic_and_mov_uploaded_one_after_the_other_are_stacked(lib, tmp_path):
    still = heic(tmp_path / "src" / "IMG_0100.HEIC").read_bytes()
    video = mov(tmp_path / "src" / "IMG_0100.MOV", datetime(2020, 1, 2, 3, 4, 5)).read_bytes()
    put(lib, "inbox/IMG_0100.HEIC", still)
    put(lib, "inbox/IMG_0100.MOV", video)
    rows = assets(lib)
    assert len(rows) == 2
    assert rows[0].folder == rows[1].folder  # the video follows the still, whatever its date
    assert rows[0].stack_id == rows[1].stack_id == rows[0].id


def test_a_sidecar_arriving_after_its_photo_is_filed_beside_it(lib, tmp_path):
    put(lib, "inbox/IMG_0001.jpg", jpeg_bytes(tmp_path))
    put(lib, "inbox/IMG_0001.jpg", jpeg_bytes(tmp_path, "b.jpg", color=(1, 1, 1)))  # (2)
    xmp(tmp_path / "IMG_0001.jpg.xmp")
    put(lib, "inbox/IMG_0001.jpg.xmp", (tmp_path / "IMG_0001.jpg.xmp").read_bytes())
    assert (lib.config.library / "2021/04/30/IMG_0001 (2).jpg.xmp").exists()
    assert inbox_files(lib) == []


# ---- races ------------------------------------------------------------------------------------------
def test_two_uploads_of_the_same_file_at_once_are_filed_once(lib, tmp_path):
    data = jpeg_bytes(tmp_path)
    barrier = threading.Barrier(2)
    errors = []

    def upload(name):
        try:
            with lib.begin_write(f"inbox/{name}") as up:
                up.write(data)
                barrier.wait()
                up.commit()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(n,)) for n in ("a.jpg", "b.jpg")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(assets(lib)) == 1
    assert inbox_files(lib) == []
    assert sorted(r["result"] for r in inbox_status(lib)["recent"]) == ["done", "duplicate"]


def test_an_upload_with_the_same_name_as_a_pending_file_replaces_it_like_any_folder(lib, tmp_path):
    """A file that is still pending (on disk, quiet period not over) is replaced: last writer wins."""
    pending = jpeg_bytes(tmp_path, "p.jpg", color=(5, 5, 5))
    (lib.config.inbox_dir / "IMG_0001.jpg").write_bytes(pending)
    newer = jpeg_bytes(tmp_path, "n.jpg", color=(250, 5, 5))
    put(lib, "inbox/IMG_0001.jpg", newer)
    [a] = assets(lib)
    assert a.sha256 == sha(tmp_path / "src" / "n.jpg")


def test_an_upload_with_the_same_name_as_one_being_ingested_keeps_both(lib, tmp_path):
    """The file being ingested was already claimed: it is filed, and the new one after it."""
    first = jpeg_bytes(tmp_path, "1.jpg", color=(5, 5, 5))
    second = jpeg_bytes(tmp_path, "2.jpg", color=(250, 5, 5))
    threads = []

    def during(src, staged):  # the second PUT arrives while the first is being verified
        state(lib).after_claim = None
        t = threading.Thread(target=put, args=(lib, "inbox/IMG_0001.jpg", second))
        t.start()
        threads.append(t)
        while src.read_bytes() != second:
            time.sleep(0.01)

    state(lib).after_claim = during
    put(lib, "inbox/IMG_0001.jpg", first)
    threads[0].join(30)
    assert sorted(a.sha256 for a in assets(lib)) == sorted(
        [sha(tmp_path / "src" / "1.jpg"), sha(tmp_path / "src" / "2.jpg")])
    assert inbox_files(lib) == []


def test_a_file_replaced_in_the_inbox_while_ingested_files_the_old_bytes_and_keeps_the_new(
        lib, tmp_path):
    inbox = lib.config.inbox_dir
    old = jpeg_with_date(inbox / "IMG_0001.jpg", WHEN, color=(9, 9, 9))
    old_sha = sha(old)
    new = jpeg_bytes(tmp_path, "new.jpg", color=(99, 199, 9))

    def replace(src, staged):
        tmp = inbox / ".IMG_0001.jpg.xY12ab"
        tmp.write_bytes(new)
        os.replace(tmp, src)  # what rsync/Syncthing do

    state(lib).after_claim = replace
    ingest_inbox_file(lib, inbox / "IMG_0001.jpg", quiet=0)
    state(lib).after_claim = None
    [a] = assets(lib)
    assert a.sha256 == old_sha
    assert (inbox / "IMG_0001.jpg").read_bytes() == new  # still pending, ingested next
    ingest_inbox_file(lib, inbox / "IMG_0001.jpg", quiet=0)
    assert len(assets(lib)) == 2 and inbox_files(lib) == []


# ---- grace period ----------------------------------------------------------------------------------
def test_the_name_written_into_the_inbox_keeps_resolving_to_the_filed_photo(lib, tmp_path):
    data = jpeg_bytes(tmp_path)
    node = put(lib, "inbox/IMG_0001.jpg", data)
    assert node.path == "inbox/IMG_0001.jpg" and node.size == len(data)
    again = lib.resolve("inbox/IMG_0001.jpg")
    assert again.asset_id == assets(lib)[0].id and again.source.read_bytes() == data
    assert [n.name for n in lib.list("inbox")] == ["IMG_0001.jpg"]
    lib.remove("inbox/IMG_0001.jpg")  # forgets the name, never touches the photo
    with pytest.raises(NotFound):
        lib.resolve("inbox/IMG_0001.jpg")
    assert (lib.config.library / "2021/04/30/IMG_0001.jpg").exists()


# ---- journal recovery -------------------------------------------------------------------------------
CHILD = """
import sys
from pathlib import Path
from photovfs.library import Library
from photovfs.ingest import ingest_inbox_file
lib = Library.open(Path(sys.argv[1]))
ingest_inbox_file(lib, lib.config.inbox_dir / "IMG_0001.jpg", quiet=0)
"""


@pytest.mark.parametrize("point", ["claimed", "filing", "linked", "filed", "removed"])
def test_a_crash_at_each_step_leaves_the_file_in_the_inbox_or_filed_once(tmp_path, point):
    root = tmp_path / "lib"
    lib = open_library(root)
    src = jpeg_with_date(lib.config.inbox_dir / "IMG_0001.jpg", WHEN)
    digest = sha(src)
    lib.close()
    env = {**os.environ, "PHOTOVFS_INGEST_CRASH_AT": point}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root)], env=env)
    assert proc.returncode == -9
    lib = open_library(root)  # recovery runs here
    try:
        rows = assets(lib)
        in_inbox = (lib.config.inbox_dir / "IMG_0001.jpg").exists()
        filed = [r for r in rows if r.sha256 == digest and
                 sha(lib.original_path(r.folder, r.filename)) == digest]
        assert in_inbox != bool(filed) and len(filed) <= 1
        assert in_inbox == (point in ("claimed", "filing", "linked"))
        originals = [p for p in (root / "2021").rglob("*") if p.is_file()] \
            if (root / "2021").exists() else []
        assert len(originals) == len(filed)
        with lib.session() as s:
            states = [j.state for j in s.scalars(select(Job))]
        assert not set(states) & {"claimed", "filing", "filed", "dup"}
        assert not any((lib.config.inbox_dir / ".photovfs-ingest").glob("[0-9]*"))
    finally:
        lib.close()


# ---- command line -----------------------------------------------------------------------------------
def test_photovfs_ingest_files_a_folder_and_prints_a_summary(tmp_path):
    root = tmp_path / "lib"
    open_library(root).close()
    src = tmp_path / "card"
    jpeg_with_date(src / "DCIM" / "a.jpg", WHEN, color=(1, 2, 3))
    jpeg_with_date(src / "DCIM" / "b.jpg", WHEN, color=(3, 2, 1))
    (src / "DCIM" / "c.jpg").write_bytes((src / "DCIM" / "a.jpg").read_bytes())
    (src / "DCIM" / "broken.jpg").write_bytes((src / "DCIM" / "b.jpg").read_bytes()[:300])
    (src / "DCIM" / "readme.txt").write_text("hi")
    out = subprocess.run([sys.executable, "-m", "photovfs.cli", "ingest", str(root), str(src),
                          "--json", "--workers", "1"], capture_output=True, text=True)
    summary = json.loads(out.stdout)
    assert len(summary["ingested"]) == 2 and len(summary["duplicate"]) == 1
    assert len(summary["failed"]) == 1 and len(summary["skipped"]) == 1
    assert out.returncode == 1  # something failed
    assert (src / "DCIM" / "a.jpg").exists()  # sources are never changed
    status = subprocess.run([sys.executable, "-m", "photovfs.cli", "status", str(root)],
                            capture_output=True, text=True).stdout
    assert "1 failed" in status and "broken.jpg" in status and "recent:" in status
