"""Foundation: catalog, in-place indexing and the virtual tree, through the core API only."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from photovfs.catalog.models import Asset
from photovfs.config import ConfigError, load_config
from photovfs.errors import InvalidName, NotAFolder, NotFound, ReadOnly
from photovfs.library import Library
from sqlalchemy import inspect, select, text


def _fingerprint(root: Path) -> dict[str, tuple[str, int, int]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".photovfs"]
        for f in files:
            p = Path(dirpath) / f
            st = p.stat()
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns)
    return out


def test_scan_changes_not_a_single_byte_of_the_library(photo_dir: Path):
    before = _fingerprint(photo_dir)
    lib = Library.open(photo_dir)
    lib.scan()
    lib.scan()
    lib.close()
    assert _fingerprint(photo_dir) == before


def test_by_date_lists_years_months_days_and_photos(library: Library):
    assert [n.name for n in library.list("by-date")] == ["1999", "2019", "2021"]
    assert [n.name for n in library.list("by-date/2021")] == ["04"]
    assert [n.name for n in library.list("by-date/2021/04")] == ["30"]
    names = [n.name for n in library.list("by-date/2021/04/30")]
    assert names == ["IMG_0001 (2).jpg", "IMG_0001.jpg", "IMG_0002.jpg"]


def test_filename_date_is_used_when_exif_has_none(library: Library):
    node = library.resolve("by-date/2019/01/02/IMG_20190102_030405.jpg")
    with library.session() as s:
        asset = s.get(Asset, node.asset_id)
    assert asset.taken_source == "filename"
    assert asset.taken_at == datetime(2019, 1, 2, 3, 4, 5)


def test_a_photo_resolves_to_its_original_bytes(library: Library, photo_dir: Path):
    node = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    original = photo_dir / "2021" / "Italy" / "IMG_0002.jpg"
    assert node.size == original.stat().st_size
    with library.open_read(node.path) as fh:
        assert fh.read() == original.read_bytes()
    assert node.content_type == "image/jpeg"


def test_clashing_names_keep_meaning_the_same_photo_across_rescans_and_restarts(photo_dir):
    lib = Library.open(photo_dir)
    lib.scan()
    first = {n.name: n.asset_id for n in lib.list("by-date/2021/04/30")}
    lib.close()
    lib = Library.open(photo_dir)
    lib.scan()
    assert {n.name: n.asset_id for n in lib.list("by-date/2021/04/30")} == first
    # the unsuffixed photo disappears: the suffixed one keeps its name, nothing shifts
    plain = lib.resolve("by-date/2021/04/30/IMG_0001.jpg")
    suffixed = lib.resolve("by-date/2021/04/30/IMG_0001 (2).jpg")
    plain.source.unlink()
    lib.scan()
    assert lib.resolve("by-date/2021/04/30/IMG_0001 (2).jpg").asset_id == suffixed.asset_id
    with pytest.raises(NotFound):
        lib.resolve("by-date/2021/04/30/IMG_0001.jpg")
    lib.close()


def test_rescan_reads_only_changed_files(photo_dir: Path):
    lib = Library.open(photo_dir)
    assert lib.scan().added == 5
    report = lib.scan()
    assert (report.added, report.updated, report.unchanged) == (0, 0, 5)
    target = photo_dir / "old" / "scan.jpg"
    jpeg_with_date(target, datetime(2000, 1, 2, 3, 4, 5))
    report = lib.scan()
    assert (report.updated, report.unchanged) == (1, 4)
    assert [n.name for n in lib.list("by-date/2000/01/02")] == ["scan.jpg"]
    lib.close()


def test_moved_file_keeps_its_identity_and_albums(photo_dir: Path):
    lib = Library.open(photo_dir)
    lib.scan()
    node = lib.resolve("originals/old/scan.jpg")
    lib.mkdir("by-album/Best")
    lib.copy(node.path, "by-album/Best/scan.jpg")
    (photo_dir / "moved").mkdir()
    os.rename(photo_dir / "old" / "scan.jpg", photo_dir / "moved" / "renamed.jpg")
    report = lib.scan()
    assert report.moved == 1 and report.removed == 0
    moved = lib.resolve("originals/moved/renamed.jpg")
    assert moved.asset_id == node.asset_id
    assert [n.asset_id for n in lib.list("by-album/Best")] == [node.asset_id]
    assert [n.name for n in lib.list("by-date/1999/12/31")] == ["scan.jpg"]  # name is stable
    lib.close()


def test_deleted_file_leaves_the_catalog(photo_dir: Path):
    lib = Library.open(photo_dir)
    lib.scan()
    (photo_dir / "old" / "scan.jpg").unlink()
    assert lib.scan().removed == 1
    assert [n.name for n in lib.list("by-date")] == ["2019", "2021"]
    with pytest.raises(NotFound):
        lib.resolve("originals/old/scan.jpg")
    lib.close()


def test_corrupt_file_is_catalogued_with_a_reason_and_the_scan_goes_on(photo_dir: Path):
    good = (photo_dir / "old" / "scan.jpg").read_bytes()
    (photo_dir / "old" / "broken.jpg").write_bytes(good[: len(good) // 3])
    (photo_dir / "old" / "notes.txt").write_text("not a photo")
    lib = Library.open(photo_dir)
    report = lib.scan()
    assert report.added == 6
    assert any("broken.jpg" in c for c in report.corrupt)
    with lib.session() as s:
        row = s.scalar(select(Asset).where(Asset.filename == "broken.jpg"))
    assert row.status == "corrupt" and row.error
    lib.close()


def test_by_place_reverse_geocodes_offline(library: Library):
    countries = [n.name for n in library.list("by-place")]
    assert countries == ["France", "Italy"]
    region = library.list("by-place/Italy")[0].name
    city = library.list(f"by-place/Italy/{region}")[0].name
    assert city == "Florence"
    assert [n.name for n in library.list(f"by-place/Italy/{region}/{city}")] == ["IMG_0001.jpg"]


def test_originals_mirror_the_real_layout(library: Library):
    assert [n.name for n in library.list("originals")] == ["2021", "old", "phone"]
    assert [n.name for n in library.list("originals/phone")] == [
        "IMG_0001.jpg", "IMG_20190102_030405.jpg"]


def test_root_lists_every_view(library: Library):
    assert [n.name for n in library.list("")] == [
        "by-date", "by-person", "by-place", "by-album", "thumbnails", "originals", "inbox", "trash"]


@pytest.mark.parametrize("bad", ["by-date/../etc", "by-date/a\x00b", "by-date/" + "x" * 256,
                                 "by-date/.", "inbox/a\\b"])
def test_hostile_paths_are_refused_before_anything_is_looked_up(library: Library, bad: str):
    with pytest.raises(InvalidName):
        library.resolve(bad)


def test_nfd_and_nfc_names_resolve_to_the_same_photo(photo_dir: Path):
    jpeg_with_date(photo_dir / "été" / "Crème brûlée.jpg", datetime(2020, 7, 1, 12, 0, 0))
    lib = Library.open(photo_dir)
    lib.scan()
    nfc = "by-date/2020/07/01/Crème brûlée.jpg"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    assert lib.resolve(nfc).asset_id == lib.resolve(nfd).asset_id
    assert lib.resolve(unicodedata.normalize("NFD", "originals/été/Crème brûlée.jpg")).asset_id
    lib.close()


def test_non_utf8_file_names_are_catalogued_and_readable(photo_dir: Path):
    raw = os.fsencode(photo_dir / "phone") + b"/caf\xe9.jpg"
    jpeg_with_date(Path(os.fsdecode(raw)), datetime(2018, 5, 5, 5, 5, 5))
    lib = Library.open(photo_dir)
    lib.scan()
    (node,) = lib.list("by-date/2018/05/05")
    assert node.name.encode("utf-8")  # a name every client can carry
    with lib.open_read(node.path) as fh:
        assert fh.read() == Path(os.fsdecode(raw)).read_bytes()
    assert lib.resolve(f"originals/phone/{node.name}").asset_id == node.asset_id
    lib.close()


def test_read_only_views_refuse_writes_with_a_reason(library: Library):
    with pytest.raises(ReadOnly) as exc:
        library.mkdir("by-date/2021/new")
    assert "by-date" in exc.value.reason
    with pytest.raises(ReadOnly):
        library.begin_write("by-date/2021/04/30/new.jpg")


def test_listing_answers_from_the_catalog_without_the_disk(photo_dir: Path, tmp_path: Path):
    state = tmp_path / "state"
    lib = Library.open(photo_dir, state_dir=state)
    lib.scan()
    lib.close()
    hidden = tmp_path / "elsewhere"
    shutil.move(photo_dir, hidden)  # the disk is gone: listings still answer
    lib = Library.open(hidden, state_dir=state)
    assert [n.name for n in lib.list("by-date/2021/04/30")][-1] == "IMG_0002.jpg"
    with pytest.raises(NotAFolder):
        lib.list("by-date/2021/04/30/IMG_0002.jpg")
    lib.close()


def test_state_dir_elsewhere_leaves_a_read_only_library_untouched(photo_dir: Path, tmp_path):
    before = sorted(p.name for p in photo_dir.iterdir())
    lib = Library.open(photo_dir, state_dir=tmp_path / "state")
    lib.scan()
    lib.close()
    assert sorted(p.name for p in photo_dir.iterdir()) == before
    assert (tmp_path / "state" / "catalog.db").exists()


def test_config_file_overrides_defaults_and_rejects_typos(photo_dir: Path, tmp_path: Path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[thumbnails]\nview_size = 800\n[views]\nenabled = ["by-date", "inbox"]\n')
    cfg = load_config(photo_dir, config_file=cfg_file)
    assert cfg.thumbnails.view_size == 800 and cfg.thumbnails.grid_size == 256
    lib = Library(cfg)
    assert [n.name for n in lib.list("")] == ["by-date", "inbox"]
    lib.close()
    cfg_file.write_text("[thumbnails]\nview_sise = 800\n")
    with pytest.raises(ConfigError, match="view_sise"):
        load_config(photo_dir, config_file=cfg_file)


def test_catalog_is_sqlite_in_wal_mode_with_alembic_at_head(library: Library):
    with library.engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        from alembic.script import ScriptDirectory
        from photovfs.catalog.db import alembic_config

        head = ScriptDirectory.from_config(alembic_config(library.engine)).get_current_head()
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    assert "assets" in inspect(library.engine).get_table_names()


def test_cli_scan_and_ls_work_for_a_new_user(photo_dir: Path):
    exe = [sys.executable, "-m", "photovfs.cli"]
    out = subprocess.run([*exe, "scan", str(photo_dir)], capture_output=True, text=True,
                         check=True).stdout
    assert "5 added" in out
    out = subprocess.run([*exe, "ls", str(photo_dir), "by-date/2021/04/30"], capture_output=True,
                         text=True, check=True).stdout
    assert "IMG_0002.jpg" in out


def test_a_scan_of_several_batches_catalogues_everything(tmp_path: Path):
    from photovfs import scan as scan_mod

    root = tmp_path / "big"
    count = scan_mod.BATCH * 2 + 20  # read-ahead across batches, bulk inserts, bulk geocoding
    for i in range(count):
        jpeg_with_date(root / f"d{i % 7}" / f"IMG_{i:04d}.jpg", datetime(2015, 1 + i % 12, 1 + i % 28),
                       color=(i % 256, (i * 7) % 256, 99), size=(16, 12),
                       gps=(45.0 + i / 1000, 7.0) if i % 3 == 0 else None)
    lib = Library.open(root)
    report = lib.scan()
    assert report.added == count and not report.errors and not report.corrupt
    assert sum(len(lib.list(f"by-date/2015/{m:02d}")) for m in range(1, 13)) > 0
    assert lib.list("by-place")  # positions were geocoded in bulk
    lib.close()


def test_a_big_catalog_without_planner_statistics_opens_and_is_analysed(tmp_path):
    """An imported 20,000+ asset catalog with no sqlite_stat1 is analysed at open (this used to
    fail: the ANALYZE ran before the Library had its write lock)."""
    import hashlib
    from datetime import datetime as dt

    from photovfs.catalog.models import Asset
    from photovfs.library import Library
    from sqlalchemy import insert, text

    (tmp_path / "P").mkdir()
    lib = Library.open(tmp_path / "P")
    rows = [{"id": i + 1, "folder": "2020", "filename": f"IMG_{i:05d}.JPG",
             "vname": f"IMG_{i:05d}.JPG", "vname_key": f"img_{i:05d}.jpg",
             "tname": f"IMG_{i:05d}.JPG", "tname_key": f"img_{i:05d}.jpg",
             "sha256": hashlib.sha256(str(i).encode()).hexdigest(), "size": 1000,
             "mtime_ns": 0, "media_type": "image", "mime": "image/jpeg", "status": "ok",
             "taken_at": dt(2020, 1, 1), "taken_source": "mtime", "year": 2020, "month": 1,
             "day": 1, "added_at": dt(2020, 1, 1)} for i in range(20_000)]
    with lib.engine.begin() as c:
        c.execute(insert(Asset), rows)
        c.execute(text("DROP TABLE IF EXISTS sqlite_stat1"))
    lib.close()
    lib = Library.open(tmp_path / "P")
    try:
        with lib.engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM sqlite_stat1")).scalar_one() > 0
        assert len(lib.list("by-date/2020/01/01")) == 20_000
    finally:
        lib.close()
