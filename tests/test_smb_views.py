"""Writable views over Samba (a private smbd re-exporting a real FUSE mount), with smbclient."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from conftest import jpeg_with_date
from fuse_helpers import sha256, wait_for
from photovfs.library import Library
from test_smb import DAY, pytestmark, smb, smbclient  # noqa: F401 - the fixture and marks


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_mkdir_an_album_and_put_a_photo_into_it(smb, library: Library, tmp_path: Path):  # noqa: F811
    port, conf, mnt = smb
    res = smbclient(port, conf, "mkdir by-album/Trip")
    assert res.returncode == 0, res.stdout + res.stderr
    new = jpeg_with_date(tmp_path / "beach.jpg", datetime(2023, 8, 1, 10), color=(5, 99, 7))
    res = smbclient(port, conf, f"put {new} by-album/Trip/beach.jpg")
    assert res.returncode == 0, res.stdout + res.stderr
    digest = sha256(new)

    def filed() -> bool:  # ingested as an original and a member of the album
        return [n.name for n in library.list("by-album/Trip")] == ["beach.jpg"]

    assert wait_for(filed, 15)
    node = library.resolve("by-album/Trip/beach.jpg")
    assert sha256(node.source) == digest
    assert ".photovfs" not in Path(node.source).parts  # a real original in the library
    res = smbclient(port, conf, "ls by-album/Trip/*")
    assert "beach.jpg" in res.stdout


def test_deleting_an_album_member_leaves_the_original(smb, library: Library):  # noqa: F811
    port, conf, _mnt = smb
    library.mkdir("by-album/Keep")
    library.copy(f"{DAY}/IMG_0002.jpg", "by-album/Keep/IMG_0002.jpg")
    original = library.resolve(f"{DAY}/IMG_0002.jpg").source
    before = sha256(original)
    res = smbclient(port, conf, "del by-album/Keep/IMG_0002.jpg")
    assert res.returncode == 0, res.stdout + res.stderr
    assert library.list("by-album/Keep") == []
    assert sha256(original) == before
    assert library.resolve(f"{DAY}/IMG_0002.jpg").source == original


def test_overwriting_a_photo_in_by_date_is_an_edit(smb, library: Library, tmp_path: Path):  # noqa: F811
    port, conf, _mnt = smb
    node = library.resolve(f"{DAY}/IMG_0001.jpg")
    old = sha256(node.source)
    new = jpeg_with_date(tmp_path / "edited.jpg", datetime(2021, 4, 30, 9, 42, 39),
                         color=(1, 2, 3))
    res = smbclient(port, conf, f"put {new} {DAY}/IMG_0001.jpg")
    assert res.returncode == 0, res.stdout + res.stderr
    assert wait_for(lambda: sha256(node.source) == sha256(new), 15)
    after = library.resolve(f"{DAY}/IMG_0001.jpg")
    assert after.asset_id == node.asset_id  # the same photo, new content
    versions = [n for n in library.list("trash") if "version" in n.name]
    assert versions
    assert any(sha256(library.resolve(v.path).source) == old for v in versions)
