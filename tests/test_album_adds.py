"""Filling an album fast without losing anything: the one-statement album add, the batched and
deferred XMP sidecars it causes, and a byte-identical copy put into an album naming its twin."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from photogen import make_jpeg
from photovfs.catalog.models import AlbumAsset, Asset
from photovfs.ingest import journal
from photovfs.library import Library
from photovfs.metadata import extract
from photovfs.sidecars import BATCH, SidecarWriter
from sqlalchemy import func, select


def _library(tmp_path: Path, n: int) -> Library:
    root = tmp_path / "lib"
    for i in range(n):
        (root / f"f{i // 100}").mkdir(parents=True, exist_ok=True)
        make_jpeg(root / f"f{i // 100}" / f"IMG_{i:04d}.jpg", color=(i % 256, i // 256, 7),
                  taken=datetime(2021, 1 + i % 12, 1 + i % 28, 12, i % 60, 0))
    lib = Library.open(root)
    lib.scan()
    return lib


def _photos(lib: Library) -> list[tuple[int, str]]:
    """(asset id, by-date path) of every photo."""
    with lib.session() as s:
        rows = s.execute(select(Asset.id, Asset.year, Asset.month, Asset.day, Asset.vname)
                         .order_by(Asset.id)).all()
    return [(r.id, f"by-date/{r.year:04d}/{r.month:02d}/{r.day:02d}/{r.vname}") for r in rows]


def _members(lib: Library) -> int:
    with lib.session() as s:
        return s.scalar(select(func.count()).select_from(AlbumAsset)) or 0


def test_adding_a_photo_twice_leaves_one_membership(tmp_path: Path):
    lib = _library(tmp_path, 2)
    lib.mkdir("by-album/Trip")
    (aid, path), _ = _photos(lib)
    name = path.rsplit("/", 1)[1]
    lib.copy(path, f"by-album/Trip/{name}")
    album_id = lib.views["by-album"]._album(("Trip",)).id
    lib.add_to_album(album_id, aid)
    assert _members(lib) == 1
    assert [n.asset_id for n in lib.list("by-album/Trip")] == [aid]
    lib.close()


def test_a_flush_of_more_sidecars_than_a_batch_writes_each_with_its_own_albums(tmp_path: Path):
    lib = _library(tmp_path, BATCH + 44)
    lib.sidecars.delay = lib.sidecars.max_delay = 3600.0  # only the flush below writes
    lib.mkdir("by-album/All")
    lib.mkdir("by-album/Even")
    photos = _photos(lib)
    for i, (_aid, path) in enumerate(photos):
        name = path.rsplit("/", 1)[1]
        lib.copy(path, f"by-album/All/{name}")
        if i % 2 == 0:
            lib.copy(path, f"by-album/Even/{name}")
    assert lib.sidecars.flush() == len(photos)
    for i, (_aid, path) in enumerate(photos):
        original = lib.resolve(path).source
        sidecar = original.with_name(original.name + ".xmp")
        assert extract(original, sidecar).albums == (["All", "Even"] if i % 2 == 0 else ["All"])
    with lib.session() as s:  # our own writes are noted, so a rescan does not re-read them
        noted = dict(s.execute(select(Asset.id, Asset.sidecar_mtime_ns)).all())
    for aid, path in photos:
        original = lib.resolve(path).source
        assert noted[aid] == original.with_name(original.name + ".xmp").stat().st_mtime_ns
    lib.close()


def test_sidecars_wait_for_a_pause_in_the_changes_but_no_longer_than_max_delay(tmp_path: Path):
    lib = _library(tmp_path, 1)
    writer = SidecarWriter(lib, delay=30.0, max_delay=120.0)
    writer.mark([1])
    with writer._lock:
        assert writer._wait_left() > 20  # just marked: wait for the pause
        writer._last = time.monotonic() - 31  # the changes paused for longer than `delay`
        assert writer._wait_left() <= 0
        writer._last = time.monotonic()  # a burst that keeps going ...
        writer._first = time.monotonic() - 121  # ... since longer than `max_delay`
        assert writer._wait_left() <= 0
    writer.flush()
    lib.close()


def test_a_sidecar_is_written_by_itself_after_the_changes_pause(tmp_path: Path):
    lib = _library(tmp_path, 1)
    lib.sidecars.delay = 0.2
    lib.mkdir("by-album/Trip")
    (_aid, path), = _photos(lib)
    lib.copy(path, f"by-album/Trip/{path.rsplit('/', 1)[1]}")
    original = lib.resolve(path).source
    sidecar = original.with_name(original.name + ".xmp")
    deadline = time.monotonic() + 30
    while not sidecar.exists():  # no flush: the writer's own timer writes it
        assert time.monotonic() < deadline, "the sidecar was never written"
        time.sleep(0.05)
    assert extract(original, sidecar).albums == ["Trip"]
    lib.close()


def _put(lib: Library, path: str, data: bytes) -> None:
    """What a FUSE `cp` or a PUT does: the bytes to a temporary, then commit."""
    with lib.begin_write(path) as up:
        up.write(data)
        up.commit()


def test_a_byte_identical_copy_put_into_an_album_names_its_twin_and_files_nothing(tmp_path: Path):
    lib = _library(tmp_path, 2)
    lib.mkdir("by-album/Trip")
    (aid, path), _ = _photos(lib)
    originals = sorted(p for p in lib.config.library.rglob("*.jpg"))
    _put(lib, "by-album/Trip/copy.jpg", lib.resolve(path).source.read_bytes())
    assert [n.asset_id for n in lib.list("by-album/Trip")] == [aid]
    assert sorted(p for p in lib.config.library.rglob("*.jpg")) == originals
    with lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 2
    assert list((lib.config.state_dir / "tmp").glob("up-*")) == []  # the upload is gone
    assert journal.recent(lib) == []  # the pipeline (staging, decode, journal) was not needed
    lib.close()


def test_a_new_photo_put_into_an_album_is_still_filed_by_the_pipeline(tmp_path: Path):
    lib = _library(tmp_path, 1)
    lib.mkdir("by-album/Trip")
    new = tmp_path / "new.jpg"
    make_jpeg(new, taken=datetime(2022, 3, 4, 5, 6, 7), color=(1, 2, 250))
    _put(lib, "by-album/Trip/new.jpg", new.read_bytes())
    (member,) = lib.list("by-album/Trip")
    assert member.source is not None and member.source.read_bytes() == new.read_bytes()
    with lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 2
    lib.close()


def test_a_copy_of_a_trashed_photo_is_not_a_twin(tmp_path: Path):
    lib = _library(tmp_path, 1)
    lib.mkdir("by-album/Trip")
    ((aid, path),) = _photos(lib)
    data = lib.resolve(path).source.read_bytes()
    lib.remove(path)
    _put(lib, "by-album/Trip/again.jpg", data)
    (member,) = lib.list("by-album/Trip")
    assert member.source is not None and member.source.read_bytes() == data
    lib.close()
