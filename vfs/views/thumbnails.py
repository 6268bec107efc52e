"""thumbnails/: a mirror of the other views holding an upright JPEG rendition of every asset.

Sizes are exact wherever they are reported, so a listing first makes the renditions that are missing
(in parallel) and only then answers with their real byte sizes.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import bindparam, select

from ..catalog.models import Asset
from ..errors import NotFound
from ..names import name_key
from ..node import Node
from .base import View

MIRRORED = ("by-date", "by-person", "by-place", "by-album", "originals")

#: the asset a rendition name belongs to (tname_key is unique); built once, a GET runs it per request
_BY_TNAME = select(Asset.id, Asset.vname, Asset.filename, Asset.tname) \
    .where(Asset.tname_key == bindparam("tname_key"))


class Thumbnails(View):
    name = "thumbnails"
    readonly_reason = "thumbnails are made from the originals"

    def _mirrored(self) -> list[str]:
        return [v for v in MIRRORED if v in self.lib.views]

    def _rendition(self, src: Node, parts: tuple[str, ...], tname: str) -> Node | None:
        return self.lib.rendition_node(src, self.vpath(*parts, tname))

    def _tnames(self, ids: list[int]) -> dict[int, tuple[str, str]]:
        with self.lib.session() as s:
            rows = s.execute(select(Asset.id, Asset.tname, Asset.media_type)
                             .where(Asset.id.in_(ids))).all()
        return {r.id: (r.tname, r.media_type) for r in rows}

    def resolve(self, rest: tuple[str, ...]) -> Node:
        if not rest:
            return self.folder()
        if rest[0] not in self._mirrored():
            raise NotFound()
        view = self.lib.views[rest[0]]
        node: Node | None
        try:
            node = view.resolve(rest[1:])
        except NotFound:
            node = None
        if node is not None and node.is_dir:
            return self.folder(*rest)
        found = self._by_tname(view, rest, node)
        if found is not None:
            return found
        # a file name in the mirror is the rendition name: find it among the folder's assets
        for child in self.list(rest[:-1]):
            if child.name == rest[-1] or child.name.casefold() == rest[-1].casefold():
                return child
        raise NotFound()

    def _by_tname(self, view: View, rest: tuple[str, ...], node: Node | None) -> Node | None:
        """The rendition at `rest` found by its (unique) rendition name: one query and one resolve
        in the mirrored view, instead of listing, and rendering, the whole folder for one file.
        None when the asset is not in that folder under its usual name (the listing decides)."""
        with self.lib.engine.connect() as c:
            row = c.execute(_BY_TNAME, {"tname_key": name_key(rest[-1])}).first()
        if row is None:
            return None
        if node is None or node.asset_id != row.id:
            node = None
            for name in dict.fromkeys((row.vname, row.filename)):
                try:
                    node = view.resolve((*rest[1:-1], name))
                except NotFound:
                    continue
                if not node.is_dir and node.asset_id == row.id:
                    break
                node = None
        return None if node is None else self._rendition(node, rest[:-1], row.tname)

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        if not rest:
            return [self.folder(v) for v in self._mirrored()]
        if rest[0] not in self._mirrored():
            raise NotFound()
        children = self.lib.views[rest[0]].list(rest[1:])
        files = [c for c in children if not c.is_dir and c.asset_id is not None]
        names = self._tnames(cast("list[int]", [c.asset_id for c in files]))  # None filtered above
        self.lib.prepare_renditions([c for c in files if c.asset_id in names])
        out = [self.folder(*rest, c.name) for c in children if c.is_dir]
        for c in files:
            if c.asset_id in names:
                node = self._rendition(c, rest, names[c.asset_id][0])
                if node is not None:
                    out.append(node)
        return out
