"""Albums, people, trash and edits through the core API (both adapters reach these verbs)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from photovfs.errors import Exists, Forbidden, NotFound
from photovfs.library import Library
from photovfs.roles import Actor


def test_mkdir_and_copy_make_an_album_by_reference(library: Library, photo_dir: Path):
    files_before = sorted(p for p in photo_dir.rglob("*.jpg"))
    library.mkdir("by-album/Family")
    node = library.copy("by-date/2021/04/30/IMG_0002.jpg", "by-album/Family/IMG_0002.jpg")
    assert node.path == "by-album/Family/IMG_0002.jpg"
    assert [n.name for n in library.list("by-album/Family")] == ["IMG_0002.jpg"]
    assert sorted(p for p in photo_dir.rglob("*.jpg")) == files_before


def test_album_groups_nest_and_rename_moves_the_whole_group(library: Library):
    library.mkdir("by-album/Trips")
    library.mkdir("by-album/Trips/Italy")
    library.copy("by-date/2021/04/30/IMG_0002.jpg", "by-album/Trips/Italy/x.jpg")
    library.move("by-album/Trips", "by-album/Travel")
    assert [n.name for n in library.list("by-album/Travel")] == ["Italy"]
    assert [n.name for n in library.list("by-album/Travel/Italy")] == ["IMG_0002.jpg"]
    with pytest.raises(NotFound):
        library.resolve("by-album/Trips")


def test_removing_an_album_member_keeps_the_original_and_can_be_undone(library: Library):
    library.mkdir("by-album/A")
    library.copy("by-date/2021/04/30/IMG_0002.jpg", "by-album/A/IMG_0002.jpg")
    library.remove("by-album/A/IMG_0002.jpg")
    assert library.list("by-album/A") == []
    assert library.resolve("by-date/2021/04/30/IMG_0002.jpg").source.exists()
    (item,) = library.list("trash")
    library.move(item.path, "by-album/A/IMG_0002.jpg")
    assert [n.name for n in library.list("by-album/A")] == ["IMG_0002.jpg"]


def test_rm_r_of_an_album_goes_to_trash_and_restores_whole(library: Library):
    library.mkdir("by-album/A")
    library.mkdir("by-album/A/B")
    library.copy("by-date/2021/04/30/IMG_0002.jpg", "by-album/A/B/one.jpg")
    library.remove("by-album/A")
    assert library.list("by-album") == []
    (item,) = library.list("trash")
    assert [n.name for n in library.list(item.path)] == []  # A itself had no photos
    library.move(item.path, "by-album/A")
    assert [n.name for n in library.list("by-album/A/B")] == ["IMG_0002.jpg"]


def test_deleting_from_by_date_moves_the_original_to_trash_and_back(library: Library):
    node = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    original = node.source
    content = original.read_bytes()
    library.mkdir("by-album/Keep")
    library.copy(node.path, "by-album/Keep/IMG_0002.jpg")
    library.remove(node.path)
    assert not original.exists()
    with pytest.raises(NotFound):
        library.resolve(node.path)
    assert library.list("by-album/Keep") == []
    (item,) = library.list("trash")
    with library.open_read(item.path) as fh:
        assert fh.read() == content
    library.move(item.path, "by-date/anything")
    assert original.read_bytes() == content
    assert library.resolve(node.path).asset_id == node.asset_id
    assert [n.name for n in library.list("by-album/Keep")] == ["IMG_0002.jpg"]


def test_people_folders_name_merge_and_reject(library: Library):
    library.mkdir("by-person/Anna")
    library.copy("by-date/2021/04/30/IMG_0002.jpg", "by-person/Anna/IMG_0002.jpg")
    library.move("by-person/Anna", "by-person/Anna Maria")
    assert [n.name for n in library.list("by-person")] == ["Anna Maria"]
    library.remove("by-person/Anna Maria/IMG_0002.jpg")
    assert library.list("by-person/Anna Maria") == []
    with pytest.raises(Exists):
        library.mkdir("by-person/anna maria")


def test_an_edit_replaces_the_original_atomically_and_keeps_the_old_bytes(library: Library,
                                                                          tmp_path: Path):
    node = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    old = node.source.read_bytes()
    new = jpeg_with_date(tmp_path / "new.jpg", datetime(2021, 4, 30, 10, 0, 0), color=(0, 0, 0))
    with library.begin_write(node.path) as up:
        up.write(new.read_bytes())
        after = up.commit()
    assert after.asset_id == node.asset_id
    assert node.source.read_bytes() == new.read_bytes()
    versions = [n for n in library.list("trash") if "version" in n.name]
    assert len(versions) == 1
    with library.open_read(versions[0].path) as fh:
        assert fh.read() == old


def test_an_edit_that_does_not_decode_never_replaces_the_original(library: Library):
    node = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    old = node.source.read_bytes()
    from photovfs.errors import BadMedia

    with pytest.raises(BadMedia):
        with library.begin_write(node.path) as up:
            up.write(old[:200])
            up.commit()
    assert node.source.read_bytes() == old
    assert library.list("trash") == []


def test_viewers_write_nothing_and_uploaders_only_the_inbox(library: Library):
    viewer, uploader = Actor("tv", "viewer"), Actor("phone", "uploader")
    with pytest.raises(Forbidden):
        library.mkdir("by-album/X", viewer)
    with pytest.raises(Forbidden):
        library.mkdir("by-album/X", uploader)
    with pytest.raises(Forbidden):
        library.begin_write("inbox/a.jpg", viewer)
    library.begin_write("inbox/a.jpg", uploader).abort()


def test_desktop_side_files_live_in_scratch_even_in_computed_views(library: Library):
    with library.begin_write("by-date/2021/04/30/._IMG_0002.jpg") as up:
        up.write(b"\x00\x05\x16\x07appledouble")
        up.commit()
    with library.begin_write("by-date/2021/.DS_Store") as up:
        up.write(b"ds")
        up.commit()
    assert "._IMG_0002.jpg" in [n.name for n in library.list("by-date/2021/04/30")]
    assert library.resolve("by-date/2021/.DS_Store").kind == "scratch"
    library.remove("by-date/2021/.DS_Store")
    with pytest.raises(NotFound):
        library.resolve("by-date/2021/.DS_Store")


def test_editor_safe_save_via_temporary_and_rename_is_an_edit(library: Library, tmp_path: Path):
    node = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    new = jpeg_with_date(tmp_path / "n.jpg", datetime(2021, 4, 30, 10, 0, 0), color=(9, 9, 9))
    tmp_name = "by-date/2021/04/30/.goutputstream-ABC123"
    with library.begin_write(tmp_name) as up:
        up.write(new.read_bytes())
        up.commit()
    library.move(tmp_name, node.path, overwrite=True)
    assert node.source.read_bytes() == new.read_bytes()
    with pytest.raises(NotFound):
        library.resolve(tmp_name)


def test_expired_trash_items_are_purged_and_fresh_ones_kept(library: Library):
    from datetime import timedelta

    node = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    library.remove(node.path)
    assert library.purge_expired() == 0
    assert len(library.list("trash")) == 1
    later = datetime.now() + timedelta(days=library.config.trash.retention_days + 1)
    assert library.purge_expired(later) == 1
    assert library.list("trash") == []


def test_rm_r_that_unlinks_each_photo_first_restores_everything_at_once(library: Library):
    """FUSE's rm -r unlinks files and removes sub-folders before the folder itself."""
    library.mkdir("by-album/Trip")
    library.mkdir("by-album/Trip/Day 1")
    library.copy("by-date/2021/04/30/IMG_0002.jpg", "by-album/Trip/IMG_0002.jpg")
    library.copy("by-date/2021/04/30/IMG_0001.jpg", "by-album/Trip/Day 1/IMG_0001.jpg")
    library.remove("by-album/Trip/Day 1/IMG_0001.jpg")
    library.rmdir("by-album/Trip/Day 1")
    library.remove("by-album/Trip/IMG_0002.jpg")
    library.rmdir("by-album/Trip")
    (item,) = library.list("trash")
    library.move(item.path, "by-album/Trip")
    assert [n.name for n in library.list("by-album/Trip")] == ["Day 1", "IMG_0002.jpg"]
    assert [n.name for n in library.list("by-album/Trip/Day 1")] == ["IMG_0001.jpg"]
    assert library.list("trash") == []


def test_rm_r_of_a_person_restores_the_name_and_every_link(library: Library):
    library.mkdir("by-person/Eve")
    library.copy("by-date/2021/04/30/IMG_0002.jpg", "by-person/Eve/IMG_0002.jpg")
    library.remove("by-person/Eve/IMG_0002.jpg")
    library.rmdir("by-person/Eve")
    assert library.list("by-person") == []
    (item,) = library.list("trash")
    library.move(item.path, "by-person/Eve")
    assert [n.name for n in library.list("by-person/Eve")] == ["IMG_0002.jpg"]


def test_originals_can_be_reorganised_and_identities_follow(library: Library, photo_dir: Path):
    node = library.resolve("originals/old/scan.jpg")
    library.mkdir("by-album/Keep")
    library.copy(node.path, "by-album/Keep/scan.jpg")
    library.mkdir("originals/1999")
    library.move("originals/old/scan.jpg", "originals/1999/scan.jpg")
    assert (photo_dir / "1999" / "scan.jpg").exists()
    assert library.resolve("originals/1999/scan.jpg").asset_id == node.asset_id
    library.move("originals/1999", "originals/Scans 1999")
    moved = library.resolve("originals/Scans 1999/scan.jpg")
    assert moved.asset_id == node.asset_id and moved.source.exists()
    assert [n.asset_id for n in library.list("by-album/Keep")] == [node.asset_id]
    assert library.scan().moved == 0  # the catalog already knew


def test_computed_folders_refuse_mkdir_rmdir_and_move(library: Library):
    from photovfs.errors import ReadOnly

    for op in (lambda: library.mkdir("by-date/2021/05"),
               lambda: library.move("by-date/2021", "by-date/2022"),
               lambda: library.remove("by-date/2021"),
               lambda: library.move("by-place/Italy", "by-place/Italia")):
        with pytest.raises(ReadOnly):
            op()


def test_a_new_file_put_into_an_album_is_ingested_and_added(library: Library, tmp_path: Path):
    library.mkdir("by-album/Party")
    new = jpeg_with_date(tmp_path / "n.jpg", datetime(2022, 2, 2, 20, 0, 0), color=(7, 7, 7))
    with library.begin_write("by-album/Party/party.jpg") as up:
        up.write(new.read_bytes())
        up.commit()
    assert [n.name for n in library.list("by-album/Party")] == ["party.jpg"]
    assert [n.name for n in library.list("by-date/2022/02/02")] == ["party.jpg"]
    # a byte-identical copy of an existing photo only adds the reference
    existing = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    with library.begin_write("by-album/Party/again.jpg") as up:
        up.write(existing.source.read_bytes())
        up.commit()
    assert sorted(n.asset_id for n in library.list("by-album/Party")) == sorted(
        [library.resolve("by-album/Party/party.jpg").asset_id, existing.asset_id])
    assert len(list(library.config.library.rglob("IMG_0002.jpg"))) == 1


def test_two_edits_without_locks_last_complete_wins_and_both_old_versions_are_kept(
        library: Library, tmp_path: Path):
    node = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    first = jpeg_with_date(tmp_path / "1.jpg", datetime(2021, 4, 30, 10), color=(1, 1, 1))
    second = jpeg_with_date(tmp_path / "2.jpg", datetime(2021, 4, 30, 10), color=(2, 2, 2))
    a, b = library.begin_write(node.path), library.begin_write(node.path)
    a.write(first.read_bytes())
    b.write(second.read_bytes())
    a.commit()
    b.commit()
    assert node.source.read_bytes() == second.read_bytes()
    versions = [n for n in library.list("trash") if "version" in n.name]
    assert len(versions) == 2


def test_a_file_copied_into_a_person_folder_is_ingested_or_found_and_tagged(library: Library,
                                                                          tmp_path: Path):
    """`cp` into by-person/NAME/ (FUSE, SMB, a WebDAV PUT) tags that person, as `ln` does."""
    library.mkdir("by-person/Ada")
    existing = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    with library.begin_write("by-person/Ada/IMG_0002.jpg") as up:
        up.write(existing.source.read_bytes())
        up.commit()
    assert [n.asset_id for n in library.list("by-person/Ada")] == [existing.asset_id]
    assert len(list(library.config.library.rglob("IMG_0002.jpg"))) == 1  # no second copy
    new = jpeg_with_date(tmp_path / "n.jpg", datetime(2022, 3, 3, 10, 0, 0), color=(9, 1, 9))
    with library.begin_write("by-person/Ada/new.jpg") as up:
        up.write(new.read_bytes())
        up.commit()
    assert sorted(n.name for n in library.list("by-person/Ada")) == ["IMG_0002.jpg", "new.jpg"]
    assert [n.name for n in library.list("by-date/2022/03/03")] == ["new.jpg"]
    # an unknown person is not created by a file, and _largest stays an index
    with pytest.raises(NotFound):
        with library.begin_write("by-person/Nobody/x.jpg") as up:
            up.write(new.read_bytes())
            up.commit()
    assert [n.name for n in library.list("by-person")] == ["Ada"]


def test_new_times_stick_on_the_users_own_files_and_not_on_photos(library: Library):
    """One rule for every adapter: inbox and scratch files take `touch`/`cp -p` times; a photo keeps
    the catalog's (the call is accepted and changes nothing)."""
    photo = library.resolve("by-date/2021/04/30/IMG_0002.jpg")
    before = photo.source.stat().st_mtime_ns
    assert library.set_times(photo.path, None, 1_000_000_000_000_000_000) is False
    assert photo.source.stat().st_mtime_ns == before
    with library.begin_write("inbox/notes.xmp") as up:
        up.write(b"<x/>")
        up.set_times(None, 978_307_200 * 10**9)  # while uploading: the upload's own file
        node = up.commit()
    assert node.source.stat().st_mtime_ns == 978_307_200 * 10**9
    with library.begin_write("by-date/2021/04/30/.DS_Store") as up:
        up.write(b"\0")
        up.commit()
    assert library.set_times("by-date/2021/04/30/.DS_Store", 5 * 10**9, 7 * 10**9) is True
    st = library.resolve("by-date/2021/04/30/.DS_Store").source.stat()
    assert (st.st_atime_ns, st.st_mtime_ns) == (5 * 10**9, 7 * 10**9)
