"""The one core API adapters use: resolve a virtual path to a node and perform operations on it.

WebDAV and FUSE only translate: every rule (what a write means in each view, who may do it, which names
are side files) lives here or in the views, once.
"""

from __future__ import annotations

import builtins
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from . import ops
from .catalog.db import make_engine, migrate, session_factory
from .catalog.models import Asset
from .catalog.probe import CatalogProbe
from .config import Config, load_config
from .errors import (
    Exists,
    InvalidName,
    IsAFolder,
    NotAFolder,
    NotEmpty,
    NotFound,
    ReadOnly,
)
from .names import is_side_file, join, split_path
from .node import Node
from .roles import SYSTEM, Actor, check_write
from .scratch import Scratch
from .views import VIEW_CLASSES
from .views.base import PhotoRows, View, original_path, original_path_str

if TYPE_CHECKING:
    from .thumbs import Renditions

#: views where an empty upload waits as a placeholder for its content (see commit_file)
PLACEHOLDER_VIEWS = ("by-album", "by-person")
#: views where a new file name may be written (elsewhere only existing photos can be edited)
NEW_FILE_VIEWS = ("inbox", *PLACEHOLDER_VIEWS)


class Library:
    """A photo library: its configuration, catalog and views. Build one per process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._root_str = str(config.library)
        for sub in ("", "tmp", "trash", "scratch"):
            (config.state_dir / sub).mkdir(parents=True, exist_ok=True)
        config.inbox_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(config.database_url)
        migrate(self.engine)
        self._sessions = session_factory(self.engine)
        self._write_lock = threading.RLock()
        self.probe = CatalogProbe(self.engine)  # "has the catalog changed?" for adapters' caches
        self._ensure_statistics()  # writes: needs the sessions and the lock above
        self.scratch = Scratch(config.state_dir / "scratch")
        self.views: dict[str, View] = {
            name: VIEW_CLASSES[name](self) for name in config.views.enabled if name in VIEW_CLASSES
        }
        self._renditions: Renditions | None = None
        from .sidecars import SidecarWriter

        self.sidecars = SidecarWriter(self)
        self.on_inbox: Callable[[Path, Actor], None] | None = None
        from .ingest import attach  # replays the ingest journal, sets on_inbox

        attach(self)

    def _ensure_statistics(self) -> None:
        """A big SQLite catalog without planner statistics (imported, or from before the first
        large scan) is analysed once: without them SQLite may walk a million rows for a listing
        that the right index answers in a millisecond."""
        if self.engine.dialect.name != "sqlite":
            return  # PostgreSQL's autovacuum keeps its statistics
        from sqlalchemy import text

        with self.engine.connect() as c:
            if c.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
                return
            if c.execute(text("SELECT count(*) FROM assets")).scalar_one() < 20_000:
                return
        with self.write() as s:
            s.execute(text("ANALYZE"))

    @classmethod
    def open(cls, library: Path | str, *, config_file: Path | None = None,
             state_dir: Path | None = None) -> Library:
        return cls(load_config(Path(library), config_file=config_file, state_dir=state_dir))

    def close(self) -> None:
        self.sidecars.flush()
        if self._renditions is not None:
            self._renditions.close()
        self.probe.close()
        self.engine.dispose()

    # ---- catalog sessions --------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session (WAL: never blocked by the writer)."""
        with self._sessions() as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction; one writer at a time in this process, committed on success."""
        with self._write_lock, self._sessions() as s, s.begin():
            yield s

    @contextmanager
    def write_core(self) -> Iterator[Connection]:
        """`write()` on a plain Core connection: for hot writes of a statement or two (an album
        add per COPY), where the ORM Session costs several times the statements themselves."""
        with self._write_lock, self.engine.begin() as c:
            yield c

    # ---- reads -------------------------------------------------------------------------------
    def _view(self, parts: tuple[str, ...]) -> View:
        view = self.views.get(parts[0]) if parts else None
        if view is None:
            raise NotFound()
        return view

    def _scratch_folder(self, parts: tuple[str, ...]) -> bool:
        """Side-file names live in the scratch area everywhere but in inbox/ (a real folder)."""
        return len(parts) >= 2 and parts[0] != "inbox" and is_side_file(parts[-1])

    def resolve(self, path: str) -> Node:
        """The node at a virtual path, or NotFound. Never walks the disk or loads the catalog."""
        parts = split_path(path)
        if not parts:
            return Node(path="", name="", is_dir=True)
        if self._scratch_folder(parts):
            return self.scratch.node(join(parts[:-1]), parts[-1])
        try:
            return self._view(parts).resolve(parts[1:])
        except NotFound:
            if len(parts) >= 2 and parts[0] in PLACEHOLDER_VIEWS:
                return self.scratch.node(join(parts[:-1]), parts[-1])  # an empty placeholder
            raise

    def list(self, path: str, node: Node | None = None) -> list[Node]:
        """The children of a folder (NotAFolder for a file). `node`: the folder as the caller
        just resolved it (a PROPFIND resolves, then lists: one catalog probe fewer)."""
        parts = split_path(path)
        if not parts:
            return [Node(path=name, name=name, is_dir=True, writable=name in NEW_FILE_VIEWS)
                    for name in self.views]
        if node is None or node.path != join(parts):
            node = self._view(parts).resolve(parts[1:])
        if not node.is_dir:
            raise NotAFolder()
        return self._view(parts).list(parts[1:]) + self.side_files(path)

    def photo_rows(self, path: str, node: Node) -> PhotoRows | None:
        """The members of the folder `node` (just resolved at `path`) as `list` gives them, but
        its photos as bare catalog rows (`View.photo_rows`) and its other members as nodes;
        None where the view has no such listing (call `list`). Side files are not included
        (`side_files`): the rest comes from the catalog alone, so an adapter may keep it while
        the catalog is unchanged. For adapters rendering 10,000 photos at once."""
        parts = split_path(path)
        if not parts or not node.is_dir or node.path != join(parts):
            return None
        return self._view(parts).photo_rows(parts[1:])

    def side_files(self, path: str) -> builtins.list[Node]:
        """The side files (`._*`, `.DS_Store`, `Thumbs.db`) of a folder's scratch area, which
        `list` adds to the view's members everywhere but in inbox/ (a real folder)."""
        parts = split_path(path)
        return self.scratch.list(join(parts)) if parts and parts[0] != "inbox" else []

    def open_read(self, path: str) -> BinaryIO:
        """A binary file object for reading (callers close it)."""
        node = self.resolve(path)
        if node.is_dir:
            raise IsAFolder()
        if node.source is None:
            raise NotFound()
        return open(node.source, "rb")

    def original_path(self, folder: str, filename: str) -> Path:
        return original_path(self.config.library, folder, filename)

    def original_path_str(self, folder: str, filename: str) -> str:
        return original_path_str(self._root_str, folder, filename)

    def vname(self, asset_id: int | None) -> str:
        with self.session() as s:
            name = s.scalar(select(Asset.vname).where(Asset.id == asset_id))
        if name is None:
            raise NotFound()
        return name

    # ---- writes ------------------------------------------------------------------------------
    def _parent_dir(self, parts: tuple[str, ...]) -> Node:
        if len(parts) < 2:
            raise ReadOnly("the top folder holds only the views")
        parent = self.resolve(join(parts[:-1]))
        if not parent.is_dir:
            raise NotAFolder()
        return parent

    def begin_write(self, path: str, actor: Actor = SYSTEM, *, truncate: bool = True) -> Upload:
        """Start writing a file at `path`; bytes go to a private temporary file until `commit()`.

        Nothing at `path` changes before the commit, so an interrupted upload or a failed editor
        save never replaces anything. With `truncate=False` the upload starts from the current
        content (a FUSE open for read-write).
        """
        parts = split_path(path)
        self._parent_dir(parts)
        if not self._scratch_folder(parts):
            check_write(actor, parts[0])
            if parts[0] not in NEW_FILE_VIEWS and self._maybe(path) is None:
                raise ReadOnly(f"{parts[0]}: new files go into inbox/, an album or a person")
        initial = None
        if not truncate:
            try:
                initial = self.resolve(path).source
            except NotFound:
                initial = None
        return Upload(self, parts, actor, initial)

    def commit_file(self, parts: tuple[str, ...], tmp: Path, actor: Actor) -> Node:
        """A complete, durable file arrives at `parts`: the view decides what that means."""
        if self._scratch_folder(parts):
            return self.scratch.put(join(parts[:-1]), parts[-1], tmp)
        check_write(actor, parts[0])
        self._parent_dir(parts)
        folder = join(parts[:-1])
        if parts[0] in PLACEHOLDER_VIEWS and tmp.stat().st_size == 0:
            # Windows (and LOCK on a new URL) create an empty file before writing the content:
            # it waits in the scratch area as a placeholder and never becomes a photo.
            if self._view(parts)._existing(parts[1:]) is None:
                return self.scratch.put(folder, parts[-1], tmp)
        node = self._view(parts).accept(parts[1:], tmp, actor)
        if parts[0] in PLACEHOLDER_VIEWS:
            try:
                self.scratch.remove(folder, parts[-1])  # the content arrived
            except NotFound:
                pass
        return node

    def mkdir(self, path: str, actor: Actor = SYSTEM) -> Node:
        parts = split_path(path)
        if len(parts) < 2:
            raise Exists() if parts and parts[0] in self.views else ReadOnly("top folder")
        if is_side_file(parts[-1]) and parts[0] != "inbox":
            raise InvalidName("that name is reserved for temporary files")
        try:
            self.resolve(path)
            raise Exists()
        except NotFound:
            pass
        check_write(actor, parts[0])
        return self._view(parts).mkdir(parts[1:], actor)

    def remove(self, path: str, actor: Actor = SYSTEM) -> None:
        """DELETE / unlink / rm -r: what is removed goes to trash wherever it means data."""
        parts = split_path(path)
        if len(parts) < 2:
            raise ReadOnly("the views themselves cannot be removed")
        if self._scratch_folder(parts):
            self.scratch.remove(join(parts[:-1]), parts[-1])
            return
        node = self.resolve(path)
        check_write(actor, parts[0], purge=parts[0] == "trash")
        if node.kind == "scratch":  # an empty placeholder
            self.scratch.remove(join(parts[:-1]), parts[-1])
            return
        self._view(parts).remove(parts[1:], node, actor)

    def rmdir(self, path: str, actor: Actor = SYSTEM) -> None:
        """POSIX rmdir: only an empty folder (side files do not count and go with it)."""
        node = self.resolve(path)
        if not node.is_dir:
            raise NotAFolder()
        if any(not c.kind == "scratch" for c in self.list(path)):
            raise NotEmpty()
        for c in self.scratch.list(node.path):
            self.scratch.remove(node.path, c.name)
        self.remove(path, actor)

    def set_times(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> bool:
        """utimensat / `touch` / `cp -p` / `rsync -t`: times stick on files that are really the
        user's (inbox files, scratch side files); photos keep the catalog's times and the call is
        accepted and ignored. None keeps that time. Returns whether anything changed."""
        node = self.resolve(path)
        if node.kind not in ("inbox", "scratch") or node.source is None:
            return False
        set_file_times(node.source, atime_ns, mtime_ns)
        return True

    def copy(self, src: str, dst: str, actor: Actor = SYSTEM, *, overwrite: bool = False,
             resolved: tuple[Node, Node | None] | None = None) -> Node:
        """COPY / cp / ln: into albums and people by reference; elsewhere the bytes as an upload.

        `resolved`: (the node at `src`, the node at `dst` or None) when the caller has just
        resolved both (WebDAV's fast COPY into albums must know them before it writes): the
        core does not look them up a second time."""
        node, existing = resolved if resolved is not None else (self.resolve(src), self._maybe(dst))
        dparts = split_path(dst)
        if existing is not None and not overwrite:
            raise Exists()
        if node.is_dir:
            raise ReadOnly("copy photos, not folders")
        if node.asset_id is not None and dparts[0] in ("by-album", "by-person") \
                and not self._scratch_folder(dparts):
            check_write(actor, dparts[0])
            return self._view(dparts).add(dparts[1:], node, actor)
        with self.begin_write(dst, actor) as up:
            with open(node.source, "rb") as fh:  # type: ignore[arg-type]
                shutil.copyfileobj(fh, up, 1 << 20)
            return up.commit()

    def move(self, src: str, dst: str, actor: Actor = SYSTEM, *, overwrite: bool = False,
             resolved: tuple[Node, Node | None] | None = None) -> Node:
        """MOVE / rename. Within a view the view decides; across views it is an add by reference
        (albums, people), a restore (out of trash) or an upload (into inbox). `resolved` as for
        `copy`."""
        sparts, dparts = split_path(src), split_path(dst)
        if len(sparts) < 2 or len(dparts) < 2:
            raise ReadOnly("the views themselves cannot be moved")
        node, existing = resolved if resolved is not None else (self.resolve(src), self._maybe(dst))
        if existing is not None and not overwrite and not sparts[0] == "trash":
            raise Exists()
        if self._scratch_folder(sparts) or node.kind == "scratch":
            if self._scratch_folder(dparts):
                return self.scratch.rename(join(sparts[:-1]), sparts[-1], join(dparts[:-1]),
                                           dparts[-1])
            # an editor's safe-save or a finished temporary: its content arrives at dst
            check_write(actor, dparts[0])
            tmp = self._claim_tmp(node.source, Path(dparts[-1]).suffix)
            return self.commit_file(dparts, tmp, actor)
        if sparts[0] == "trash":
            check_write(actor, "trash")
            return self._view(sparts).rename(sparts[1:], dparts, node, actor)
        check_write(actor, dparts[0])
        if sparts[0] == dparts[0]:
            return self._view(sparts).rename(sparts[1:], dparts[1:], node, actor)
        if node.asset_id is not None and dparts[0] in ("by-album", "by-person"):
            return self._view(dparts).add(dparts[1:], node, actor)
        if sparts[0] == "inbox" and not node.is_dir:
            raise ReadOnly("files in inbox/ are filed automatically once complete")
        raise ReadOnly(f"cannot move from {sparts[0]} to {dparts[0]}")

    def _maybe(self, path: str) -> Node | None:
        try:
            return self.resolve(path)
        except NotFound:
            return None

    def _claim_tmp(self, source: Path | None, suffix: str = "") -> Path:
        """Take a file over as an upload temporary (it is renamed, not copied)."""
        assert source is not None
        tmp = Path(tempfile.mkstemp(dir=self.config.state_dir / "tmp", suffix=suffix)[1])
        os.replace(source, tmp)
        return tmp

    # ---- operations views call (defined in ops.py to keep this module about dispatch) ---------
    add_to_album = ops.add_to_album
    edit = ops.edit
    inbox_arrived = ops.inbox_arrived
    ingest_file = ops.ingest_file
    make_original_folder = ops.make_original_folder
    move_original = ops.move_original
    prepare_renditions = ops.prepare_renditions
    purge = ops.purge
    purge_expired = ops.purge_expired
    remove_from_album = ops.remove_from_album
    remove_original_folder = ops.remove_original_folder
    rename_album = ops.rename_album
    rename_person = ops.rename_person
    rendition_node = ops.rendition_node
    restore = ops.restore
    tag_person = ops.tag_person
    trash_album = ops.trash_album
    trash_asset = ops.trash_asset
    trash_person = ops.trash_person
    untag_person = ops.untag_person

    def scan(self, progress: Callable[[int], None] | None = None):
        from .scan import Scanner

        return Scanner(self, progress).run()


def set_file_times(path: Path, atime_ns: int | None, mtime_ns: int | None) -> None:
    if atime_ns is None or mtime_ns is None:
        st = os.stat(path)
        atime_ns = st.st_atime_ns if atime_ns is None else atime_ns
        mtime_ns = st.st_mtime_ns if mtime_ns is None else mtime_ns
    os.utime(path, ns=(atime_ns, mtime_ns))


class Upload:
    """Bytes on their way to a virtual path: a temporary file until `commit()` or `abort()`."""

    def __init__(self, lib: Library, parts: tuple[str, ...], actor: Actor,
                 initial: Path | None) -> None:
        self.lib, self.parts, self.actor = lib, parts, actor
        suffix = Path(parts[-1]).suffix if parts else ""
        fd, name = tempfile.mkstemp(dir=lib.config.state_dir / "tmp", prefix="up-", suffix=suffix)
        self.tmp = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "w+b")
        if initial is not None:
            with open(initial, "rb") as src:
                shutil.copyfileobj(src, self.file, 1 << 20)
            self.file.seek(0)
        self.done = False

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def set_times(self, atime_ns: int | None, mtime_ns: int | None) -> None:
        """`touch`/`cp -p` while writing: the upload is the user's own file until it is filed."""
        self.file.flush()  # bytes written later would move the time again
        set_file_times(self.tmp, atime_ns, mtime_ns)

    def commit(self) -> Node:
        """Make the bytes durable, then hand them to the view; the temporary is consumed."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.done = True
        try:
            return self.lib.commit_file(self.parts, self.tmp, self.actor)
        finally:
            self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.done = True
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.done:
            self.abort()
