"""originals/: the real layout of the library on disk, listed from the catalog (no disk walk)."""

from __future__ import annotations

import builtins

from sqlalchemy import bindparam, select

from ..catalog.models import Asset, Folder
from ..errors import NotFound
from ..names import join
from ..node import Node
from .base import PhotoRows, View, visible_assets

#: built once: a GET or a FUSE lookup of an original runs both
_FOLDER = select(Folder.id).where(Folder.path == bindparam("path"))
_FILE = visible_assets().where(Asset.folder == bindparam("folder"),
                               Asset.filename == bindparam("filename"))


class Originals(View):
    name = "originals"
    readonly_reason = "originals"

    def _is_folder(self, folder: str) -> bool:
        return not folder or self.first(_FOLDER, {"path": folder}) is not None

    def _file_node(self, row, rest: tuple[str, ...]) -> Node:
        return self.asset_node(row, *rest[:-1], name=row.filename)

    def resolve(self, rest: tuple[str, ...]) -> Node:
        if self._is_folder(join(rest)):
            return self.folder(*rest, writable=True)
        row = self.first(_FILE, {"folder": join(rest[:-1]), "filename": rest[-1]})
        if row is None:
            raise NotFound()
        return self._file_node(row, rest)

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        folders, folder = self._listing(rest)
        return folders + self.assets(visible_assets().where(Asset.folder == folder), *rest,
                                     real_names=True)

    def photo_rows(self, rest: tuple[str, ...]) -> PhotoRows | None:
        """A folder's files as rows (real names) and its sub-folders as nodes (View.photo_rows)."""
        folders, folder = self._listing(rest)
        return self.rows(visible_assets().where(Asset.folder == folder), real_names=True), folders

    def _listing(self, rest: tuple[str, ...]) -> tuple[builtins.list[Node], str]:
        """A folder's sub-folders and its catalog path (NotFound for a file or nothing)."""
        node = self.resolve(rest)
        if not node.is_dir:
            raise NotFound()
        folder = join(rest)
        with self.lib.session() as s:
            subs = s.scalars(select(Folder.name).where(Folder.parent == folder)).all()
        return [self.folder(*rest, n, writable=True) for n in sorted(subs)], folder

    def remove(self, rest, node, actor) -> None:
        if node.is_dir:
            self.lib.remove_original_folder(join(rest), actor)
            return
        self.lib.trash_asset(node.asset_id, actor)

    def mkdir(self, rest, actor) -> Node:
        return self.lib.make_original_folder(join(rest), actor)

    def rename(self, rest, dst, node, actor) -> Node:
        self.lib.move_original(join(rest), join(dst), node.is_dir, actor)
        return self.resolve(dst)
