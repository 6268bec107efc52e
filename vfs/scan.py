"""Indexing in place: walk the originals, read what changed, update the catalog.

Never modifies, moves or renames a file. Incremental: a file whose size and mtime (and its sidecar's
mtime) are unchanged is not read again. A file that disappeared from one place and appears with the
same content elsewhere keeps its identity (row id, virtual names, albums, people). Work is committed in
batches so that views fill while a scan runs.
"""

from __future__ import annotations

import copy
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .catalog.models import STATUS_TRASHED, Asset, Folder
from .catalog.store import (
    NewOriginal,
    WriteCache,
    apply_facts,
    ensure_folder,
    insert_originals,
    link_facts,
)
from .metadata import media_kind
from .metadata.facts import Facts
from .names import fs_to_text, is_side_file, text_to_fs
from .readers import Item, Readers, read_one
from .readers import Result as _Result
from .sidecars import state_sidecar

SKIP_DIRS = {"@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "System Volume Information",
             "lost+found", ".Trashes", ".Spotlight-V100", ".fseventsd"}
BATCH = 200  # files per catalog transaction (views fill while a scan runs)
AHEAD = 10 * BATCH  # files read ahead of the writer at most (their facts, ~1 KB each)
#: files handed to the reader threads at most while worker processes start: what the threads
#: hold when the workers are up is read under the GIL of the writer, as slowly as before
STARTING_AHEAD = 64
#: files to read from which a scan starts worker processes (fewer: threads only, no start-up)
PROCESS_MIN = 1000


@dataclass
class ScanReport:
    seen: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    corrupt: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class _Found:
    folder: str
    filename: str
    path: str
    size: int
    mtime_ns: int
    sidecar: Path | None
    sidecar_mtime_ns: int | None
    asset_id: int | None  # the row to update when the file changed


def _sidecar(dirpath: str, name: str, names: set[str] | dict[str, os.DirEntry]) -> str | None:
    stem = name.rpartition(".")[0]
    for cand in (name + ".xmp", name + ".XMP", stem + ".xmp", stem + ".XMP"):
        if cand in names:
            return cand
    return None


def _walk(root: Path, skip: set[Path]) -> Iterator[tuple[str, Path, dict[str, os.DirEntry]]]:
    """(relative folder as catalog text, its path, {name: entry} of everything but folders) for
    every folder, in a stable order: `os.walk` top-down with sorted folders (symlinked folders
    are not followed), but keeping the directory entries so that no file is looked up twice."""
    todo = [root]
    while todo:
        here = todo.pop()
        files: dict[str, os.DirEntry] = {}
        dirs: list[str] = []
        try:
            with os.scandir(here) as it:
                for entry in it:
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    if not is_dir:
                        files[entry.name] = entry
                    elif not entry.is_symlink():
                        dirs.append(entry.name)
        except OSError:
            continue
        rel = os.path.relpath(here, root)
        yield ("" if rel == "." else fs_to_text(rel.replace(os.sep, "/"))), here, files
        subdirs = sorted(
            d for d in dirs
            if not d.startswith(".") and d not in SKIP_DIRS and (here / d) not in skip
        )
        todo.extend(here / d for d in reversed(subdirs))


Read = tuple[_Found, str | None, Facts | None, str | None]
def read_file(found: _Found) -> Read:
    """Hash and read the metadata of one file, reading it once."""
    return (found, *read_one(*_item(found)))


def _item(found: _Found) -> Item:
    return found.path, str(found.sidecar) if found.sidecar is not None else None


class _ReadQueue:
    """The changed files handed to the readers in order, at most AHEAD of them in flight: filled
    during the walk (once worker processes are up), drained by the writer after it. A chunk whose
    reader died is recovered file by file, never an exception that stops the scan."""

    def __init__(self, changed: list[_Found]) -> None:
        self.changed = changed
        self.pending: deque[tuple[list[_Found], Future[list[_Result]]]] = deque()
        self.next = self.in_flight = 0

    def fill(self, readers: Readers) -> None:
        ahead = STARTING_AHEAD if readers.starting else AHEAD
        while self.next < len(self.changed) and self.in_flight < ahead:
            chunk = self.changed[self.next:self.next + readers.chunk]
            self.next += len(chunk)
            self.pending.append((chunk, readers.submit([_item(f) for f in chunk])))
            self.in_flight += len(chunk)

    def drain(self, readers: Readers) -> Iterator[Read]:
        """Every file's read, in order (files not yet handed out are handed out meanwhile)."""
        while True:
            self.fill(readers)
            if not self.pending:
                return
            chunk, future = self.pending.popleft()
            self.in_flight -= len(chunk)
            try:
                results = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker process died under this chunk
                results = readers.recover([_item(f) for f in chunk], exc)
            for found, result in zip(chunk, results, strict=True):
                yield (found, *result)


class Scanner:
    """One scan of a library; `run()` returns a report. Thread-safe against concurrent readers."""

    def __init__(self, lib, progress: Callable[[int], None] | None = None, workers: int = 2):
        self.lib = lib
        self.progress = progress or (lambda n: None)
        self.workers = workers
        self.report = ScanReport()
        self._cache = WriteCache()
        self._readers: Readers | None = None

    def run(self) -> ScanReport:
        root = self.lib.config.library
        skip = {self.lib.config.state_dir}
        changed: list[_Found] = []
        missing: dict[int, str] = {}  # asset id -> sha256 of rows whose file is gone
        visited: set[str] = set()
        reads = _ReadQueue(changed)
        try:
            for folder, _path, entries in _walk(root, skip):
                visited.add(folder)
                self._compare_folder(root, folder, sorted(entries), changed, missing, entries)
                if len(changed) >= PROCESS_MIN:  # start the workers while the walk goes on
                    readers = self._reader_pool(len(changed))
                    if readers.in_processes:  # and give them work: writes wait for the walk
                        reads.fill(readers)
            self._missing_folders(visited, missing)
            self._process(changed, missing, reads)
        finally:
            self._close_readers()
        self._remove(missing)
        if self.report.added + self.report.updated + self.report.removed > 1000:
            self._analyze()
        return self.report

    def _analyze(self) -> None:
        """Refresh the planner's statistics after a big change, so listings keep their indexes."""
        from sqlalchemy import text

        with self.lib.write() as s:
            s.execute(text("ANALYZE"))

    def _kept_sidecars(self, folder: str) -> set[str]:
        """Names in the state folder's sidecar copy of `folder` (sidecars of read-only originals):
        one listing per folder instead of one lookup per file."""
        where = state_sidecar(self.lib, folder, "x").parent
        try:
            return set(os.listdir(where))
        except OSError:
            return set()

    def _compare_folder(self, root: Path, folder: str, filenames: list[str],
                        changed: list[_Found], missing: dict[int, str],
                        entries: dict[str, os.DirEntry] | None = None) -> None:
        names = entries if entries is not None else set(filenames)
        with self.lib.session() as s:
            rows = {
                r.filename: r for r in s.execute(
                    select(Asset.id, Asset.filename, Asset.size, Asset.mtime_ns,
                           Asset.sidecar_mtime_ns, Asset.sha256, Asset.status)
                    .where(Asset.folder == folder)
                )
            }
        base = root / text_to_fs(folder) if folder else root
        base_s = os.fspath(base)  # paths as text: a Path per file cost more than its stat
        kept: set[str] | None = None
        for raw in filenames:
            if media_kind(raw) is None or is_side_file(raw):
                continue
            name = fs_to_text(raw)
            path = os.path.join(base_s, raw)
            try:
                st = entries[raw].stat() if entries is not None else os.stat(path)
            except OSError as exc:
                self.report.errors.append(f"{folder}/{name}: {exc.strerror}")
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            self.report.seen += 1
            side = _sidecar(base_s, raw, names)
            side_path = base / side if side else None
            if side_path is None:  # sidecars of read-only originals live in the state folder
                if kept is None:
                    kept = self._kept_sidecars(folder)
                if name + ".xmp" in kept:
                    side_path = state_sidecar(self.lib, folder, name)
            side_mtime = None
            if side_path is not None:
                try:
                    side_mtime = side_path.stat().st_mtime_ns
                except OSError:
                    side_path = None
            row = rows.pop(name, None)
            if row is not None and row.status != STATUS_TRASHED and (
                row.size == st.st_size and row.mtime_ns == st.st_mtime_ns
                and row.sidecar_mtime_ns == side_mtime
            ):
                self.report.unchanged += 1
                continue
            changed.append(_Found(folder, name, path, st.st_size, st.st_mtime_ns, side_path,
                                  side_mtime, row.id if row is not None else None))
        for row in rows.values():
            if row.status != STATUS_TRASHED:
                missing[row.id] = row.sha256

    def _missing_folders(self, visited: set[str], missing: dict[int, str]) -> None:
        """Assets in folders the walk never reached (the folder was deleted or renamed)."""
        with self.lib.session() as s:
            folders = set(s.scalars(select(Asset.folder).distinct()))
            for folder in folders - visited:
                for aid, sha in s.execute(
                    select(Asset.id, Asset.sha256).where(
                        Asset.folder == folder, Asset.status != STATUS_TRASHED)
                ):
                    missing[aid] = sha
            gone = set(s.scalars(select(Folder.path))) - visited
        if gone:
            with self.lib.write() as s:
                s.execute(delete(Folder).where(Folder.path.in_(gone)))

    def _read(self, found: _Found) -> Read:
        return read_file(found)

    def _reader_pool(self, to_read: int) -> Readers:
        """The readers of this scan; worker processes only when there is much to read, so that a
        small rescan pays no start-up. Processes and not just threads: the parsing holds the GIL,
        which the catalog writes on the main thread need too."""
        if self._readers is None:
            self._readers = Readers(self.workers)
        if to_read >= PROCESS_MIN:
            self._readers.start_processes()
        return self._readers

    def _close_readers(self) -> None:
        if self._readers is not None:
            self._readers.close()
            self._readers = None

    def _process(self, changed: list[_Found], missing: dict[int, str],
                 reads: _ReadQueue | None = None) -> None:
        by_hash: dict[str, list[int]] = {}
        for aid, sha in missing.items():
            by_hash.setdefault(sha, []).append(aid)
        if not changed:
            return
        try:
            readers = self._reader_pool(len(changed))
            batch: list[Read] = []
            for read in (reads or _ReadQueue(changed)).drain(readers):
                batch.append(read)
                if len(batch) >= BATCH:
                    self._write(batch, by_hash, missing)
                    batch = []
            if batch:
                self._write(batch, by_hash, missing)
        finally:
            self._close_readers()

    def _write(self, batch: list[Read], by_hash: dict[str, list[int]],
               missing: dict[int, str]) -> None:
        """One transaction per batch: changed and moved files through the ORM, new ones in bulk.

        Another process may catalogue a file between this scan's walk and its insert (an
        ingest filing it, a second scan): the batch then fails on the catalog's unique path and
        is rolled back whole; it is written once more without the files that are catalogued now
        (they are that writer's), with the move bookkeeping and the report as they were."""
        saved = ({k: list(v) for k, v in by_hash.items()}, dict(missing), copy.deepcopy(self.report))
        try:
            self._write_once(batch, by_hash, missing)
        except IntegrityError:
            by_hash.clear()
            by_hash.update(saved[0])
            missing.clear()
            missing.update(saved[1])
            self.report = saved[2]
            self._write_once(self._not_catalogued(batch), by_hash, missing)
        self.progress(len(batch))

    def _write_once(self, batch: list[Read], by_hash: dict[str, list[int]],
                    missing: dict[int, str]) -> None:
        with self.lib.write() as s:
            fresh = [r for r in batch if not self._store(s, *r, by_hash, missing)]
            self._insert(s, fresh)

    def _not_catalogued(self, batch: list[Read]) -> list[Read]:
        """The batch without the new files another writer has catalogued since the walk."""
        new = {(r[0].folder, r[0].filename) for r in batch if not r[0].asset_id}
        with self.lib.session() as s:
            taken = {(f, n) for f, n in s.execute(
                select(Asset.folder, Asset.filename).where(
                    Asset.filename.in_({n for _, n in new}))) if (f, n) in new}
        return [r for r in batch if r[0].asset_id or (r[0].folder, r[0].filename) not in taken]

    def _insert(self, s, fresh: list) -> None:
        """New originals of one batch in one executemany (permanent names assigned in order)."""
        self.report.added += insert_originals(s, [
            NewOriginal(f.folder, f.filename, digest, f.size, f.mtime_ns, f.sidecar_mtime_ns,
                        facts)
            for f, digest, facts, _err in fresh
        ], self._cache)

    def _store(self, s, found: _Found, digest: str | None, facts: Facts | None,
               err: str | None, by_hash: dict[str, list[int]], missing: dict[int, str]) -> bool:
        """Apply a changed or moved file; False when it is new (inserted in bulk by the caller)."""
        label = f"{found.folder}/{found.filename}".lstrip("/")
        if digest is None or facts is None:
            self.report.errors.append(f"{label}: {err}")
            return True
        if not facts.ok:
            self.report.corrupt.append(f"{label}: {facts.error}")
        asset = s.get(Asset, found.asset_id) if found.asset_id else None
        if asset is None and by_hash.get(digest):
            aid = by_hash[digest].pop(0)
            missing.pop(aid, None)
            asset = s.get(Asset, aid)
            asset.folder, asset.filename = found.folder, found.filename
            ensure_folder(s, found.folder)
            self.report.moved += 1
        elif asset is None:
            return False
        else:
            self.report.updated += 1
        asset.sha256, asset.size, asset.mtime_ns = digest, found.size, found.mtime_ns
        asset.sidecar_mtime_ns = found.sidecar_mtime_ns
        apply_facts(s, asset, facts)
        link_facts(s, asset, facts)
        return True

    def _remove(self, missing: dict[int, str]) -> None:
        if not missing:
            return
        ids = list(missing)
        with self.lib.write() as s:
            for start in range(0, len(ids), 500):
                s.execute(delete(Asset).where(Asset.id.in_(ids[start:start + 500])))
        self.report.removed += len(ids)
