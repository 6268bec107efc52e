"""inbox/: a real folder (the on-disk inbox) where uploads land before they are ingested.

Everything written here is first made durable on disk; complete, non-empty files with a final name are
then handed to the ingest pipeline. Files that fail verification stay visible under `_failed/`.
"""

from __future__ import annotations

import builtins
import os
import shutil
from pathlib import Path

from ..errors import Exists, IsAFolder, NotEmpty, NotFound
from ..files import durable_move, fsync_dir
from ..names import fs_to_text, name_key, text_to_fs
from ..node import Node
from ..roles import Actor
from .base import ASSET_COLUMNS, View


class Inbox(View):
    name = "inbox"

    @property
    def root(self) -> Path:
        return self.lib.config.inbox_dir

    def _real(self, rest: tuple[str, ...]) -> Path:
        return self.root.joinpath(*(text_to_fs(p) for p in rest))

    def _node(self, rest: tuple[str, ...], path: Path, st: os.stat_result) -> Node:
        import stat as statmod

        from ..metadata import media_kind

        if statmod.S_ISDIR(st.st_mode):
            return self.folder(*rest, mtime=st.st_mtime, writable=True)
        kind = media_kind(rest[-1]) if rest else None
        return Node(path=self.vpath(*rest), name=rest[-1], is_dir=False, kind="inbox",
                    size=st.st_size, mtime=st.st_mtime,
                    content_type=kind[1] if kind else "application/octet-stream",
                    etag=f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}", source=path,
                    writable=True)

    def resolve(self, rest: tuple[str, ...]) -> Node:
        path = self._real(rest)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            node = self._recent(rest)
            if node is None:
                raise NotFound() from None
            return node
        return self._node(rest, path, st)

    def _recent(self, rest: tuple[str, ...]) -> Node | None:
        """A name filed by ingest in the last minutes still resolves (to the filed photo, or to
        its copy in _failed/), so a client that stats what it just wrote sees no error."""
        from ..ingest.pipeline import recently_filed

        rec = recently_filed(self.lib, rest) if rest else None
        if rec is None:
            return None
        asset_id, failed = rec
        if failed is not None:
            try:
                return self._node(rest, failed, failed.stat())
            except FileNotFoundError:
                return None
        from sqlalchemy import select

        from ..catalog.models import Asset

        with self.lib.session() as s:
            row = s.execute(select(*ASSET_COLUMNS).where(Asset.id == asset_id)).first()
        if row is None:
            return None
        return self.asset_node(row, *rest[:-1], name=rest[-1])

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        path = self._real(rest)
        if not path.is_dir():
            raise NotFound()
        out = []
        with os.scandir(path) as it:
            for entry in it:
                if entry.name.startswith(".photovfs-"):
                    continue
                name = fs_to_text(entry.name)
                out.append(self._node((*rest, name), Path(entry.path), entry.stat()))
        out += self._recent_list(rest, {name_key(n.name) for n in out})
        return sorted(out, key=lambda n: n.name)

    def _recent_list(self, rest: tuple[str, ...], present: set[str]) -> builtins.list[Node]:
        from ..ingest.pipeline import recent_names

        out = []
        for written in recent_names(self.lib, rest):
            if name_key(written[-1]) not in present:
                node = self._recent((*rest, written[-1]))
                if node is not None:
                    out.append(node)
        return out

    def accept(self, rest, tmp: Path, actor: Actor) -> Node:
        if not rest:
            raise IsAFolder()
        dest = self._real(rest)
        if not dest.parent.is_dir():
            raise NotFound("the folder does not exist")
        if dest.is_dir():
            raise IsAFolder()
        # replace an earlier upload of the same name (Windows: empty PUT, then the content)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
        self.lib.inbox_arrived(dest, actor)
        return self._existing(rest) or self.resolve(rest)

    def mkdir(self, rest, actor) -> Node:
        if not rest:
            raise Exists()
        path = self._real(rest)
        if not path.parent.is_dir():
            raise NotFound("the parent folder does not exist")
        try:
            path.mkdir()
        except FileExistsError:
            raise Exists() from None
        return self.resolve(rest)

    def remove(self, rest, node, actor) -> None:
        if not rest:
            raise NotFound()
        path = self._real(rest)
        if node.is_dir:
            shutil.rmtree(path)
        elif node.kind != "inbox" or node.source != path:
            from ..ingest.pipeline import forget_recent

            forget_recent(self.lib, rest)  # a filed name in its grace period: just forget it
        else:
            path.unlink()

    def rmdir_empty(self, rest) -> None:
        try:
            self._real(rest).rmdir()
        except OSError as exc:
            raise NotEmpty() from exc

    def rename(self, rest, dst, node, actor) -> Node:
        if not rest or not dst:
            raise NotFound()
        src, target = self._real(rest), self._real(dst)
        if not target.parent.is_dir():
            raise NotFound("the target folder does not exist")
        if node.is_dir:
            os.rename(src, target)
            return self.resolve(dst)
        if target.exists():
            target.unlink()
        durable_move(src, target)
        self.lib.inbox_arrived(target, actor)
        return self._existing(dst) or self.resolve(dst)
