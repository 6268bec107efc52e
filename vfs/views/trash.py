"""trash/: everything removed, restorable by moving it out (or `photovfs trash restore`).

Deleted originals appear as files, removed albums and people as folders of their photos. Names are
unique in the trash (a suffix is added at removal time).
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from ..catalog.models import AlbumAsset, Asset, AssetPerson, TrashItem
from ..errors import NotFound
from ..names import name_key
from ..node import Node
from .base import ASSET_COLUMNS, View


class Trash(View):
    name = "trash"
    readonly_reason = "move items out of trash to restore them"

    def _item(self, name: str) -> TrashItem:
        with self.lib.session() as s:
            items = s.scalars(select(TrashItem)).all()
        for item in items:
            if name_key(item.name) == name_key(name):
                return item
        raise NotFound()

    def _item_node(self, item: TrashItem) -> Node:
        if item.kind in ("asset", "version") and item.file:
            path = Path(item.file)
            try:
                st = path.stat()
            except OSError:
                st = None
            mime = json.loads(item.payload or "{}").get("mime", "application/octet-stream")
            return Node(path=self.vpath(item.name), name=item.name, is_dir=False, kind="trash",
                        size=st.st_size if st else 0, mtime=item.deleted_at.timestamp(),
                        content_type=mime, etag=f"trash-{item.id}", source=path)
        return self.folder(item.name, mtime=item.deleted_at.timestamp())

    def _members(self, item: TrashItem):
        data = json.loads(item.payload or "{}")
        q = select(*ASSET_COLUMNS)
        if item.kind == "album":
            linked = select(AlbumAsset.asset_id).where(AlbumAsset.album_id == data["album_id"])
            return q.where(Asset.id.in_(linked))
        if item.kind == "person":
            return q.where(Asset.id.in_(data.get("asset_ids", [])))
        return q.where(Asset.id.in_(
            select(AssetPerson.asset_id).where(AssetPerson.id == -1)))

    def resolve(self, rest: tuple[str, ...]) -> Node:
        if not rest:
            return self.folder()
        item = self._item(rest[0])
        if len(rest) == 1:
            return self._item_node(item)
        if len(rest) == 2 and item.kind in ("album", "person"):
            return self.asset_by_vname(self._members(item), rest[1], item.name)
        raise NotFound()

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        if not rest:
            with self.lib.session() as s:
                items = s.scalars(select(TrashItem).order_by(TrashItem.name)).all()
            return [self._item_node(i) for i in items]
        item = self._item(rest[0])
        if len(rest) != 1 or item.kind not in ("album", "person"):
            raise NotFound()
        return self.assets(self._members(item), item.name)

    def remove(self, rest, node, actor) -> None:
        if len(rest) != 1:
            raise NotFound()
        self.lib.purge(self._item(rest[0]).id, actor)

    def rename(self, rest, dst, node, actor) -> Node:
        """Moving an item anywhere restores it to where it was."""
        if len(rest) != 1:
            raise NotFound()
        return self.lib.restore(self._item(rest[0]).id, actor)
