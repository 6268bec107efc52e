"""by-person/: people named in XMP or by hand, and people found by face detection.

    by-person/Marie Curie/          a named person
    by-person/Unnamed 0042/         a group of faces nobody has named yet; 0042 is the person's
                                    catalog id, so the folder keeps its name across restarts, rescans
                                    and as it grows. Shown once it holds `[people] min_faces` photos.
    by-person/_largest/             the unnamed groups again, biggest first: "001 Unnamed 0042";
                                    the rank prefix changes as groups grow (read-only index).

Renaming a folder names the person (onto an existing name: merge) -- renaming "Unnamed 0042" to
"Ada" names that group; deleting a photo from a person's folder records "this is not P" so automatic
grouping never puts it back.
"""

from __future__ import annotations

import re

from sqlalchemy import bindparam, func, select

from ..catalog.models import Asset, AssetPerson, Person, is_visible
from ..catalog.store import person_by_name
from ..errors import Exists, InvalidName, NotFound, ReadOnly
from ..names import is_side_file, name_key
from ..node import Node
from ..roles import Actor
from .base import View, visible_assets

LARGEST = "_largest"
_UNNAMED = re.compile(r"^unnamed (\d+)$", re.IGNORECASE)
_RANKED = re.compile(r"^\d+ (unnamed \d+)$", re.IGNORECASE)


def unnamed_folder(person_id: int) -> str:
    return f"Unnamed {person_id:04d}"


def reserved(name: str) -> bool:
    """Names a person cannot take: they would clash with the unnamed groups' folders."""
    return bool(_UNNAMED.match(name.strip())) or name_key(name) == name_key(LARGEST)


class ByPerson(View):
    name = "by-person"
    readonly_reason = "by-person"

    def _min_faces(self) -> int:
        return max(1, self.lib.config.people.min_faces)

    def _unnamed_sizes(self) -> dict[int, int]:
        """Unnamed, untrashed people -> number of visible photos (only those big enough)."""
        with self.lib.session() as s:
            rows = s.execute(
                select(Person.id, func.count(func.distinct(AssetPerson.asset_id)))
                .join(AssetPerson, AssetPerson.person_id == Person.id)
                .join(Asset, Asset.id == AssetPerson.asset_id)
                .where(Person.name.is_(None), Person.trashed.is_(False),
                       AssetPerson.rejected.is_(False), is_visible(Asset.status))
                .group_by(Person.id)).all()
        return {pid: n for pid, n in rows if n >= self._min_faces()}

    def _person(self, name: str) -> Person | None:
        m = _UNNAMED.match(name)
        with self.lib.session() as s:
            if m:
                person = s.get(Person, int(m.group(1)))
                if person is None or person.name is not None or person.trashed:
                    return None
                return person if person.id in self._unnamed_sizes() else None
            return s.scalar(select(Person).where(Person.name_key == name_key(name),
                                                 Person.trashed.is_(False)))

    @staticmethod
    def _label(person: Person) -> str:
        return person.name if person.name is not None else unnamed_folder(person.id)

    def _members(self, person_id: int):
        linked = select(AssetPerson.asset_id).where(
            AssetPerson.person_id == person_id, AssetPerson.rejected.is_(False))
        return visible_assets().where(Asset.id.in_(linked))

    def _list_members(self, person: Person, *parts: str) -> list[Node]:
        """A person's photos, by one statement built once per process (building and hashing a
        statement costs about as much as running it; a person can hold thousands)."""
        return self.assets(_MEMBERS, *parts, params={"person_id": person.id})

    def _ranked(self) -> list[tuple[str, int]]:
        sizes = self._unnamed_sizes()
        order = sorted(sizes, key=lambda pid: (-sizes[pid], pid))
        width = max(3, len(str(len(order))))
        return [(f"{i:0{width}d} {unnamed_folder(pid)}", pid) for i, pid in enumerate(order, 1)]

    def resolve(self, rest: tuple[str, ...]) -> Node:
        if not rest:
            return self.folder(writable=True)
        if name_key(rest[0]) == name_key(LARGEST):
            return self._resolve_largest(rest[1:])
        person = self._person(rest[0])
        if person is None:
            raise NotFound()
        label = self._label(person)
        if len(rest) == 1:
            return self.folder(label, mtime=person.created_at.timestamp(), writable=True)
        if len(rest) == 2:
            return self.asset_by_vname(self._members(person.id), rest[1], label)
        raise NotFound()

    def _resolve_largest(self, rest: tuple[str, ...]) -> Node:
        if not rest:
            return self.folder(LARGEST)
        m = _RANKED.match(rest[0])
        person = self._person(m.group(1)) if m else None
        if person is None or person.name is not None:
            raise NotFound()
        if len(rest) == 1:
            return self.folder(LARGEST, rest[0], mtime=person.created_at.timestamp())
        if len(rest) == 2:
            return self.asset_by_vname(self._members(person.id), rest[1], LARGEST, rest[0])
        raise NotFound()

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        if len(rest) == 1 and name_key(rest[0]) != name_key(LARGEST):
            person = self._person(rest[0])  # a person's folder: one lookup, not resolve's too
            if person is None:
                raise NotFound()
            return self._list_members(person, self._label(person))
        node = self.resolve(rest)
        if not node.is_dir:
            raise NotFound()
        if not rest:
            with self.lib.session() as s:
                people = s.scalars(select(Person).where(Person.name.is_not(None),
                                                        Person.trashed.is_(False))).all()
                unnamed = self._unnamed_sizes()
                groups = s.scalars(select(Person).where(Person.id.in_(list(unnamed)))).all()
            named = [self.folder(p.name or "", mtime=p.created_at.timestamp(), writable=True)
                     for p in sorted(people, key=lambda p: p.name_key or "")]
            anon = [self.folder(unnamed_folder(p.id), mtime=p.created_at.timestamp(),
                                writable=True) for p in sorted(groups, key=lambda p: p.id)]
            return named + anon + ([self.folder(LARGEST)] if anon else [])
        if name_key(rest[0]) == name_key(LARGEST):
            if len(rest) == 1:
                with self.lib.session() as s:
                    created = {p.id: p.created_at for p in s.scalars(select(Person).where(
                        Person.name.is_(None)))}
                return [self.folder(LARGEST, label, mtime=created[pid].timestamp())
                        for label, pid in self._ranked()]
            m = _RANKED.match(rest[1])
            person = self._person(m.group(1)) if m else None
            assert person is not None
            return self._list_members(person, LARGEST, rest[1])
        person = self._person(rest[0])
        assert person is not None
        return self._list_members(person, self._label(person))

    def mkdir(self, rest: tuple[str, ...], actor: Actor) -> Node:
        if len(rest) != 1:
            raise InvalidName("people folders hold photos, not other folders")
        if is_side_file(rest[0]):
            raise InvalidName("that name is reserved for temporary files")
        if reserved(rest[0]):
            raise InvalidName("names like 'Unnamed 0042' are kept for unnamed groups")
        if self._person(rest[0]) is not None:
            raise Exists("that person exists")
        with self.lib.write() as s:
            person_by_name(s, rest[0])
        return self.resolve(rest)

    def _writable_person(self, rest: tuple[str, ...]) -> Person:
        if not rest or name_key(rest[0]) == name_key(LARGEST):
            raise ReadOnly("by-person/_largest is an index; use the Unnamed folders themselves")
        person = self._person(rest[0])
        if person is None:
            raise NotFound("no such person")
        return person

    def add(self, rest, src, actor) -> Node:
        if rest and name_key(rest[0]) == name_key(LARGEST):
            self._writable_person(rest)
        if len(rest) != 2:
            raise InvalidName("copy photos into a person's folder")
        person = self._writable_person(rest)
        self.lib.tag_person(person.id, src.asset_id)
        return self.asset_by_vname(self._members(person.id), self.lib.vname(src.asset_id),
                                   self._label(person))

    def accept(self, rest, tmp, actor) -> Node:
        """`cp photo.jpg by-person/Ada/`: the bytes are ingested (or found again by hash) and
        the photo is tagged with Ada; a write over an existing member edits that photo."""
        existing = self._existing(rest)
        if existing is not None and existing.asset_id is not None:
            return self.lib.edit(existing.asset_id, tmp, actor)
        if len(rest) != 2:
            raise InvalidName("copy photos into a person's folder")
        person = self._writable_person(rest)
        asset_id = self.lib.ingest_file(tmp, rest[-1], actor)
        self.lib.tag_person(person.id, asset_id)
        return self.asset_by_vname(self._members(person.id), self.lib.vname(asset_id),
                                   self._label(person))

    def remove(self, rest, node, actor) -> None:
        person = self._writable_person(rest)
        if node.is_dir:
            self.lib.trash_person(person.id, actor)
        else:
            self.lib.untag_person(person.id, node.asset_id, actor)

    def rename(self, rest, dst, node, actor) -> Node:
        if rest and name_key(rest[0]) == name_key(LARGEST):
            self._writable_person(rest)
        if len(rest) != 1 or len(dst) != 1:
            raise InvalidName("rename a person's folder to name them")
        person = self._writable_person(rest)
        if reserved(dst[0]):
            raise InvalidName("names like 'Unnamed 0042' are kept for unnamed groups")
        self.lib.rename_person(person.id, dst[0], actor)
        return self.resolve(dst)


#: a person's visible photos by virtual name (`_list_members`)
_MEMBERS = visible_assets().where(Asset.id.in_(
    select(AssetPerson.asset_id).where(AssetPerson.person_id == bindparam("person_id"),
                                       AssetPerson.rejected.is_(False)))).order_by(Asset.vname)
