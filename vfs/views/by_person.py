"""by-person/NAME/: people named in XMP, by hand, or (later) found by face detection.

Renaming a folder names the person (onto an existing name: merge); deleting a photo from a person's
folder records "this is not P" so automatic grouping never puts it back.
"""

from __future__ import annotations

from sqlalchemy import select

from ..catalog.models import Asset, AssetPerson, Person
from ..catalog.store import person_by_name
from ..errors import Exists, InvalidName, NotFound
from ..names import is_side_file, name_key
from ..node import Node
from ..roles import Actor
from .base import View, visible_assets


class ByPerson(View):
    name = "by-person"
    readonly_reason = "by-person"

    def _person(self, name: str) -> Person | None:
        with self.lib.session() as s:
            return s.scalar(select(Person).where(Person.name_key == name_key(name),
                                                 Person.trashed.is_(False)))

    def _members(self, person_id: int):
        linked = select(AssetPerson.asset_id).where(
            AssetPerson.person_id == person_id, AssetPerson.rejected.is_(False))
        return visible_assets().where(Asset.id.in_(linked))

    def resolve(self, rest: tuple[str, ...]) -> Node:
        if not rest:
            return self.folder(writable=True)
        person = self._person(rest[0])
        if person is None or person.name is None:
            raise NotFound()
        if len(rest) == 1:
            return self.folder(person.name, mtime=person.created_at.timestamp(), writable=True)
        if len(rest) == 2:
            return self.asset_by_vname(self._members(person.id), rest[1], person.name)
        raise NotFound()

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        node = self.resolve(rest)
        if not node.is_dir:
            raise NotFound()
        if not rest:
            with self.lib.session() as s:
                people = s.scalars(select(Person).where(Person.name.is_not(None),
                                                        Person.trashed.is_(False))).all()
            return [self.folder(p.name, mtime=p.created_at.timestamp(), writable=True)
                    for p in sorted(people, key=lambda p: p.name_key or "")]
        person = self._person(rest[0])
        assert person is not None
        return self.assets(self._members(person.id), person.name)

    def mkdir(self, rest: tuple[str, ...], actor: Actor) -> Node:
        if len(rest) != 1:
            raise InvalidName("people folders hold photos, not other folders")
        if is_side_file(rest[0]):
            raise InvalidName("that name is reserved for temporary files")
        if self._person(rest[0]) is not None:
            raise Exists("that person exists")
        with self.lib.write() as s:
            person_by_name(s, rest[0])
        return self.resolve(rest)

    def add(self, rest, src, actor) -> Node:
        if len(rest) != 2:
            raise InvalidName("copy photos into a person's folder")
        person = self._person(rest[0])
        if person is None:
            raise NotFound("no such person")
        self.lib.tag_person(person.id, src.asset_id)
        return self.asset_by_vname(self._members(person.id), self.lib.vname(src.asset_id),
                                   person.name)

    def remove(self, rest, node, actor) -> None:
        if not rest:
            raise NotFound()
        person = self._person(rest[0])
        assert person is not None
        if node.is_dir:
            self.lib.trash_person(person.id, actor)
        else:
            self.lib.untag_person(person.id, node.asset_id, actor)

    def rename(self, rest, dst, node, actor) -> Node:
        if len(rest) != 1 or len(dst) != 1:
            raise InvalidName("rename a person's folder to name them")
        person = self._person(rest[0])
        assert person is not None
        self.lib.rename_person(person.id, dst[0], actor)
        return self.resolve(dst)
