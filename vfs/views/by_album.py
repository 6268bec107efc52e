"""by-album/: albums and album groups, the folders a user makes with mkdir and fills with cp.

Membership is by reference: adding a photo copies no bytes, removing one never touches the original.
Removing an album sends its membership to trash, restorable whole.
"""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import Select, bindparam, or_, select

from ..catalog.models import Album, AlbumAsset, Asset
from ..catalog.store import album_by_path
from ..errors import Exists, InvalidName, NotFound
from ..names import is_side_file, join, name_key
from ..node import Node
from ..roles import Actor
from .base import PhotoRows, View, visible_assets

VNAME_VIEWS = ("by-date", "by-place", "by-album", "by-person")  # views naming assets by vname


#: built once: these run several times per request (resolve, copy, PUT into an album)
_ALBUM = select(Album.id, Album.path, Album.created_at).where(
    Album.path_key == bindparam("path_key"), Album.trashed.is_(False))
#: what a name in an album is: an album of that path, or a member of the parent album. One query
#: (every GET, COPY and PUT in an album resolves a name): a row per live album among the two paths,
#: with the columns of the photo of that name in it (ASSET_COLUMNS, None where there is none)
_NAMED = visible_assets().add_columns(AlbumAsset.album_id.label("member_of")).join(
    AlbumAsset, AlbumAsset.asset_id == Asset.id).where(
    Asset.vname_key == bindparam("vname_key")).subquery()
_ALBUM_OR_MEMBER = select(
    Album.id.label("album_id"), Album.path.label("album_path"),
    Album.created_at.label("album_created_at"), Album.path_key.label("album_key"), *_NAMED.c,
).select_from(Album).outerjoin(_NAMED, _NAMED.c.member_of == Album.id).where(
    or_(Album.path_key == bindparam("path_key"), Album.path_key == bindparam("parent_key")),
    Album.trashed.is_(False))


class ByAlbum(View):
    name = "by-album"
    readonly_reason = "by-album"

    def _album(self, rest: tuple[str, ...]):  # -> Row(id, path, created_at) | None
        """The live album at `rest` (a Core row: this runs several times per request)."""
        if not rest:
            return None
        return self.first(_ALBUM, {"path_key": name_key(join(rest))})

    def _named(self, rest: tuple[str, ...]) -> Node | None:
        """The album at `rest`, or the photo named rest[-1] in the album at rest[:-1], from one
        query; None when neither exists."""
        key = name_key(join(rest))
        if len(rest) < 2:
            album = self._album(rest)
            return None if album is None else self._album_node(album.path, album.created_at)
        parent_key = name_key(join(rest[:-1]))
        with self.lib.engine.connect() as c:
            rows = c.execute(_ALBUM_OR_MEMBER, {"path_key": key, "parent_key": parent_key,
                                                "vname_key": name_key(rest[-1])}).all()
        for r in rows:
            if r.album_key == key:
                return self._album_node(r.album_path, r.album_created_at)
        for r in rows:
            if r.album_key == parent_key and r.id is not None:
                return self.asset_node(r, *r.album_path.split("/"))
        return None

    def _album_node(self, path: str, created_at: datetime) -> Node:
        return self.folder(*path.split("/"), mtime=created_at.timestamp(), writable=True)

    def _members(self, album_id: int):
        return visible_assets().join(AlbumAsset, AlbumAsset.asset_id == Asset.id).where(
            AlbumAsset.album_id == album_id)

    def resolve(self, rest: tuple[str, ...]) -> Node:
        if not rest:
            return self.folder(writable=True)
        node = self._named(rest)
        if node is None:
            raise NotFound()
        return node

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        folders, members, parts = self._listing(rest)
        return folders if members is None else folders + self.assets(members, *parts)

    def photo_rows(self, rest: tuple[str, ...]) -> PhotoRows | None:
        """An album's photos as rows and its sub-albums as nodes (see View.photo_rows)."""
        folders, members, _parts = self._listing(rest)
        return ([] if members is None else self.rows(members)), folders

    def _listing(self, rest: tuple[str, ...]) -> tuple[builtins.list[Node], Select | None,
                                                        tuple[str, ...]]:
        """A folder's sub-albums, the statement of its photos (None at the top) and its path."""
        node = self.resolve(rest)
        if not node.is_dir:
            raise NotFound()
        parts = tuple(node.path.split("/")[1:])
        with self.lib.session() as s:
            children = s.scalars(select(Album).where(Album.parent == join(parts),
                                                     Album.trashed.is_(False))).all()
        folders = [self.folder(*a.path.split("/"), mtime=a.created_at.timestamp(), writable=True)
                   for a in sorted(children, key=lambda a: a.path)]
        if not parts:
            return folders, None, parts
        album = self._album(parts)
        assert album is not None
        return folders, self._members(album.id), parts

    # ---- writes ------------------------------------------------------------------------------
    def mkdir(self, rest: tuple[str, ...], actor: Actor) -> Node:
        if not rest:
            raise Exists()
        if is_side_file(rest[-1]):
            raise InvalidName("that name is reserved for temporary files")
        if self._album(rest) is not None:
            raise Exists("that album exists")
        if len(rest) > 1 and self._album(rest[:-1]) is None:
            raise NotFound("the album group does not exist")
        with self.lib.write() as s:
            album_by_path(s, join(rest))
        return self.resolve(rest)

    def add(self, rest: tuple[str, ...], src: Node, actor: Actor) -> Node:
        album = self._album(rest[:-1])
        if album is None:
            raise NotFound("no such album")
        self.lib.add_to_album(album.id, src.asset_id)
        if src.kind == "asset" and src.path.split("/", 1)[0] in VNAME_VIEWS:
            # the member is the same asset, under the same virtual name, in the album's folder
            return Node(path=self.vpath(*album.path.split("/"), src.name), name=src.name,
                        is_dir=False, kind="asset", size=src.size, mtime=src.mtime,
                        content_type=src.content_type, etag=src.etag, asset_id=src.asset_id,
                        source=src.source_str, writable=True)
        return self.asset_by_vname(self._members(album.id), self.lib.vname(src.asset_id),
                                   *album.path.split("/"))

    def accept(self, rest, tmp, actor) -> Node:
        existing = self._existing(rest)
        if existing is not None and existing.asset_id is not None:
            return self.lib.edit(existing.asset_id, tmp, actor)
        album = self._album(rest[:-1])
        if album is None:
            raise NotFound("no such album")
        asset_id = self.lib.ingest_file(tmp, rest[-1], actor)
        self.lib.add_to_album(album.id, asset_id)
        return self.asset_by_vname(self._members(album.id), self.lib.vname(asset_id),
                                   *album.path.split("/"))

    def remove(self, rest, node, actor) -> None:
        if not rest:
            raise NotFound()
        if node.is_dir:
            self.lib.trash_album(join(rest), actor)
            return
        album = self._album(rest[:-1])
        assert album is not None and node.asset_id is not None
        self.lib.remove_from_album(album.id, node.asset_id, actor)

    def rename(self, rest, dst, node, actor) -> Node:
        if not node.is_dir or not rest:
            raise InvalidName("move a photo into an album to add it; rename albums, not photos")
        if not dst:
            raise InvalidName("by-album itself cannot be renamed")
        self.lib.rename_album(join(rest), join(dst), actor)
        return self.resolve(dst)


def now() -> datetime:
    return datetime.now()
