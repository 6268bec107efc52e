"""by-person/ with unnamed groups, without dlib: the folder rules on a hand-made catalog."""

from __future__ import annotations

from datetime import datetime

import pytest
from photovfs.catalog.models import Asset, AssetPerson, Person
from photovfs.errors import InvalidName, NotFound, ReadOnly
from sqlalchemy import select


def _group(lib, names: list[str]) -> int:
    with lib.write() as s:
        p = Person(name=None, name_key=None, trashed=False, created_at=datetime.now())
        s.add(p)
        s.flush()
        for vname in names:
            aid = s.scalar(select(Asset.id).where(Asset.vname == vname))
            s.add(AssetPerson(asset_id=aid, person_id=p.id, source="face",
                              x=0.1, y=0.1, w=0.2, h=0.2))
        return p.id


def test_unnamed_groups_have_stable_folders_shown_from_min_faces(library):
    with library.session() as s:
        names = sorted(s.scalars(select(Asset.vname)))
    small = _group(library, names[:2])
    big = _group(library, names[:4])
    listing = [n.name for n in library.list("by-person")]
    assert listing == [f"Unnamed {big:04d}", "_largest"]  # 2 photos < min_faces = 3
    with pytest.raises(NotFound):
        library.resolve(f"by-person/Unnamed {small:04d}")
    assert len(library.list(f"by-person/Unnamed {big:04d}")) == 4
    library.config.people.min_faces = 2
    assert [n.name for n in library.list("by-person/_largest")] == [
        f"001 Unnamed {big:04d}", f"002 Unnamed {small:04d}"]
    assert len(library.list(f"by-person/_largest/002 Unnamed {small:04d}")) == 2
    with pytest.raises(ReadOnly):
        library.move(f"by-person/_largest/001 Unnamed {big:04d}", "by-person/_largest/x")


def test_renaming_an_unnamed_folder_names_the_group(library):
    with library.session() as s:
        names = sorted(s.scalars(select(Asset.vname)))
    pid = _group(library, names[:3])
    library.move(f"by-person/Unnamed {pid:04d}", "by-person/Ada")
    assert [n.name for n in library.list("by-person")] == ["Ada"]
    assert len(library.list("by-person/Ada")) == 3
    with pytest.raises(InvalidName):
        library.move("by-person/Ada", "by-person/Unnamed 0099")
    with pytest.raises(InvalidName):
        library.mkdir("by-person/unnamed 7")


def test_deleting_from_an_unnamed_folder_rejects_the_photo(library):
    with library.session() as s:
        names = sorted(s.scalars(select(Asset.vname)))
    pid = _group(library, names[:4])
    library.remove(f"by-person/Unnamed {pid:04d}/{names[0]}")
    assert [n.name for n in library.list(f"by-person/Unnamed {pid:04d}")] == names[1:4]
    with library.session() as s:
        assert s.scalar(select(AssetPerson.rejected).where(
            AssetPerson.person_id == pid, AssetPerson.asset_id == select(Asset.id).where(
                Asset.vname == names[0]).scalar_subquery()))
