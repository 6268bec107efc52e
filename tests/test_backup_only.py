"""`photovfs restore DEST TARGET --only VIRTUAL/PATH`: just the photos a virtual path shows, whole
(stack companions and sidecars), with their catalog rows, albums and people; nothing for a path that
names nothing or leaves the target."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from photovfs.backup.engine import backup, restore
from photovfs.catalog.models import Asset
from photovfs.cli import main
from photovfs.library import Library
from sqlalchemy import select
from test_backup import tag
from test_backup_content import awkward_library


def shown(lib: Library, vpath: str) -> set[str]:
    """Real paths of the photos a virtual folder shows (recursively), as the views list them."""
    out: set[str] = set()
    for node in lib.list(vpath):
        if node.is_dir:
            out |= shown(lib, node.path)
        elif node.asset_id is not None:
            with lib.session() as s:
                a = s.get(Asset, node.asset_id)
                out.add(f"{a.folder}/{a.filename}".lstrip("/"))
    return out


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and ".photovfs" not in p.relative_to(root).parts}


@pytest.fixture
def backed_up(tmp_path):
    """A library with a RAW+JPEG+XMP stack, a Live Photo, plain photos, two albums and a person,
    backed up once: (library root, destination, real path of the RAW's JPEG)."""
    lib, root = awkward_library(tmp_path)
    for i in range(3):
        jpeg_with_date(root / "2019" / f"P{i}.jpg", datetime(2019, 8, 1 + i), color=(i * 60, 9, 9))
    lib.scan()
    with lib.session() as s:
        jpg = next(f"{a.folder}/{a.filename}" for a in s.scalars(select(Asset))
                   if a.filename == "IMG_0007.jpg")
    folder, name = jpg.rsplit("/", 1)
    tag(lib, "Trips/Italy", "Anna", [(folder, name), ("2019", "P0.jpg")])
    tag(lib, "Other", "Ben", [("2019", "P2.jpg")])
    lib.close()
    dest = tmp_path / "dest"
    assert backup(root, str(dest))["ok"]
    return root, dest, jpg


def test_only_an_album_restores_its_photos_whole_with_their_rows_albums_and_people(backed_up, tmp_path):
    root, dest, jpg = backed_up
    target = tmp_path / "trip"
    r = restore(str(dest), target, only="by-album/Trips")
    assert r["ok"], r
    stem = jpg[: -len(".jpg")]
    # the album's two photos, the RAW of the JPEG's stack and the stack's sidecar; nothing else
    assert files_under(target) == {jpg, f"{stem}.dng", f"{stem}.xmp", "2019/P0.jpg"}
    for rel in files_under(target):
        assert (target / rel).read_bytes() == (root / rel).read_bytes()
    lib = Library.open(target)
    try:
        assert len(lib.list("by-album/Trips/Italy")) == 2
        assert {n.name for n in lib.list("by-album")} == {"Trips"}  # "Other" is not in the subset
        assert {n.name for n in lib.list("by-person")} == {"Anna"}
        with lib.session() as s:
            assert s.scalar(select(Asset.stack_id).where(Asset.filename == "IMG_0007.jpg")) == \
                s.scalar(select(Asset.stack_id).where(Asset.filename == "IMG_0007.dng")) is not None
    finally:
        lib.close()
    assert r["check"]["ok"] and r["catalog"]["assets"] == 3


def test_only_a_day_a_folder_or_one_file_restores_what_the_view_shows(backed_up, tmp_path):
    root, dest, jpg = backed_up
    lib = Library.open(root)
    try:
        day = shown(lib, "by-date/2019/08/02")
        april = shown(lib, "by-date/2021/04")
    finally:
        lib.close()
    # a stack shows once (its cover): the RAW+JPEG's JPEG and the Live Photo's dated video
    assert day == {"2019/P1.jpg"} and jpg in april and any(p.endswith(".MOV") for p in april)
    r = restore(str(dest), tmp_path / "day", only="by-date/2019/08/02")
    assert r["ok"] and files_under(tmp_path / "day") == day, r
    r = restore(str(dest), tmp_path / "april", only="by-date/2021/04")
    stem = jpg[: -len(".jpg")]
    live = {p[: -len(".MOV")] + ".HEIC" for p in april if p.endswith(".MOV")}
    assert r["ok"], r  # ...and restored whole: the RAW, the sidecar and the Live Photo's still
    assert files_under(tmp_path / "april") == april | {f"{stem}.dng", f"{stem}.xmp"} | live
    r = restore(str(dest), tmp_path / "folder", only="originals/2019")
    assert r["ok"] and files_under(tmp_path / "folder") == {f"2019/P{i}.jpg" for i in range(3)}
    r = restore(str(dest), tmp_path / "one", only="originals/2019/P2.jpg")
    assert r["ok"] and files_under(tmp_path / "one") == {"2019/P2.jpg"}
    lib = Library.open(tmp_path / "one")
    try:
        assert [n.name for n in lib.list("by-album/Other")] and lib.list("by-person/Ben")
    finally:
        lib.close()


def test_a_dry_run_lists_the_subset_and_writes_nothing(backed_up, tmp_path, capsys):
    _root, dest, _jpg = backed_up
    code = main(["restore", str(dest), str(tmp_path / "t"), "--only", "by-album/Other",
                 "--dry-run", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and [w["path"] for w in r["would_restore"]] == ["2019/P2.jpg"]
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("only", ["by-album/Nobody", "by-date/1990", "originals/2019/P9.jpg",
                                  "by-person/Carol", "by-album/Other/not-there.jpg"])
def test_a_path_that_names_nothing_fails_and_writes_nothing(backed_up, tmp_path, capsys, only):
    _root, dest, _jpg = backed_up
    code = main(["restore", str(dest), str(tmp_path / "t"), "--only", only, "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 1 and not r["ok"] and "--only" in r["problems"][0], r
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("only", ["../../etc", "/etc/passwd", "by-album/../../x", "by-date/./2019",
                                  "thumbnails/2019", "inbox", "trash", "C:/Windows", "~root",
                                  "by-album/a\\..\\b"])
def test_hostile_or_non_photo_paths_are_refused(backed_up, tmp_path, only):
    _root, dest, _jpg = backed_up
    for from_files in (False, True):
        r = restore(str(dest), tmp_path / "t", only=only, from_files=from_files)
        assert not r["ok"] and "--only" in r["problems"][0], r
        assert not (tmp_path / "t").exists() and not (tmp_path / "etc").exists()


def test_only_from_files_rebuilds_the_subset_without_the_catalog(backed_up, tmp_path):
    root, dest, jpg = backed_up
    shutil.rmtree(root / ".photovfs")  # the catalog is lost: only the manifest and metadata.json
    stem = jpg[: -len(".jpg")]
    r = restore(str(dest), tmp_path / "trip", only="by-album/Trips/Italy", from_files=True)
    assert r["ok"], r
    assert files_under(tmp_path / "trip") == {jpg, f"{stem}.dng", f"{stem}.xmp", "2019/P0.jpg"}
    assert r["metadata"]["albums"] == 1 and r["metadata"]["people"] == 1
    assert r["metadata"]["stacks"] == 1 and r["metadata"]["unknown_paths"] == 0
    lib = Library.open(tmp_path / "trip")
    try:
        assert len(lib.list("by-album/Trips/Italy")) == 2 and len(lib.list("by-person/Anna")) == 2
        assert {n.name for n in lib.list("by-person")} == {"Anna"}
    finally:
        lib.close()
    r = restore(str(dest), tmp_path / "p", only="by-person/Ben", from_files=True)
    assert r["ok"] and files_under(tmp_path / "p") == {"2019/P2.jpg"}
    # the capture date is not in the manifest: a clear refusal, nothing written
    r = restore(str(dest), tmp_path / "d", only="by-date/2019", from_files=True)
    assert not r["ok"] and "catalog snapshot" in r["problems"][0] and not (tmp_path / "d").exists()
