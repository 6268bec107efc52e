"""Watching the on-disk inbox and the originals, for `serve` and `mount`: `Watcher(lib).start()`.

Inbox: files written straight into the inbox folder (Syncthing, rclone, a card reader, cp) become
candidates once their size and mtime have been stable for `ingest.quiet_seconds`; a file renamed from
a temporary name (`.syncthing.X.tmp`, rsync's `.X.abc123`, `X.part`...) to its final name is complete
by that protocol and is ingested at once. inotify (watchdog) gives the events; a periodic rescan of the
whole inbox is the safety net for missed events (overflowed queues, network filesystems).

Originals: files added, changed or removed by other programs trigger an incremental rescan of just the
affected folders (debounced); folder creations, moves and deletions trigger a debounced full scan.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .names import fs_to_text, is_side_file, text_to_fs

if TYPE_CHECKING:
    from watchdog.events import FileSystemEventHandler as _HandlerBase
    from watchdog.observers.api import BaseObserver

    from .library import Library
else:
    _HandlerBase = object  # duck-typed at runtime: watchdog only calls dispatch()

log = logging.getLogger("photovfs.watch")


class Watcher:
    """Inbox and library watching in background threads; `start()` / `stop()`."""

    def __init__(self, lib: Library, *, quiet_seconds: float | None = None,
                 rescan_seconds: float = 60.0, debounce_seconds: float = 2.0,
                 tick: float = 0.25, watch_library: bool = True) -> None:
        self.lib = lib
        self.quiet = lib.config.ingest.quiet_seconds if quiet_seconds is None else quiet_seconds
        self.rescan_seconds = rescan_seconds
        self.debounce = debounce_seconds
        self.tick = tick
        self.watch_library = watch_library
        self.inbox = lib.config.inbox_dir
        self._lock = threading.Lock()
        self._pending: dict[Path, tuple[int, int, float]] = {}  # path -> size, mtime, since
        self._now: set[Path] = set()  # complete by protocol (renamed from a temporary name)
        self._folders: set[str] = set()
        self._full_scan = False
        self._lib_changed_at = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._observer: BaseObserver | None = None
        self.ingested = 0  # counters for tests and status
        self.rescans = 0

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Watcher:
        from watchdog.observers import Observer

        from .ingest import recover

        recover(self.lib)
        self._observer = Observer()
        self._observer.schedule(_Handler(self._inbox_event), str(self.inbox), recursive=True)
        if self.watch_library:
            self._observer.schedule(_Handler(self._library_event), str(self.lib.config.library),
                                    recursive=True)
        self._observer.daemon = True
        self._observer.start()
        self.rescan_inbox()
        for target, name in ((self._inbox_loop, "inbox"), (self._library_loop, "library")):
            t = threading.Thread(target=target, name=f"photovfs-watch-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
        for t in self._threads:
            t.join(30)
        self._threads.clear()

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- inbox -------------------------------------------------------------------------------
    def _inbox_event(self, kind: str, src: str, dest: str | None, is_dir: bool) -> None:
        if is_dir:
            if kind in ("created", "moved"):
                self._full_inbox_walk(Path(dest or src))
            return
        if kind == "moved" and dest is not None:
            path = Path(dest)
            if is_side_file(Path(src).name) and not is_side_file(path.name) \
                    and Path(src).parent == path.parent:
                with self._lock:  # a temporary renamed to its final name: complete now
                    self._now.add(path)
                    self._pending.pop(path, None)
                return
            self._note(path)
        elif kind in ("created", "modified", "closed"):
            self._note(Path(src))

    def _full_inbox_walk(self, root: Path) -> None:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                self._note(Path(dirpath) / f)

    def _note(self, path: Path) -> None:
        from .ingest.pipeline import skip_reason

        reason = skip_reason(self.lib, path)
        if reason not in (None, "sidecar", "empty"):
            return
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        with self._lock:
            old = self._pending.get(path)
            if old is None or (old[0], old[1]) != (st.st_size, st.st_mtime_ns):
                self._pending[path] = (st.st_size, st.st_mtime_ns, time.monotonic())

    def rescan_inbox(self) -> None:
        """The safety net: every candidate in the inbox is (re)considered."""
        from .ingest.pipeline import FAILED_DIR, STAGING

        self.rescans += 1
        for dirpath, dirnames, files in os.walk(self.inbox):
            if Path(dirpath) == self.inbox:
                dirnames[:] = [d for d in dirnames if d not in (FAILED_DIR, STAGING)]
            for f in files:
                self._note(Path(dirpath) / f)

    def ready(self) -> list[Path]:
        """Pending files whose size and mtime have not changed for the quiet period."""
        now = time.monotonic()
        out = []
        with self._lock:
            out += sorted(self._now)
            self._now.clear()
            items = list(self._pending.items())
        for path, (size, mtime, since) in items:
            try:
                st = path.stat()
            except FileNotFoundError:
                with self._lock:
                    self._pending.pop(path, None)
                continue
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                with self._lock:
                    self._pending[path] = (st.st_size, st.st_mtime_ns, now)
                continue
            if now - since >= self.quiet:
                out.append(path)
                with self._lock:
                    self._pending.pop(path, None)
        return out

    def _inbox_loop(self) -> None:
        from .ingest import IngestResult
        from .ingest.pipeline import ingest_batch

        last_rescan = time.monotonic()
        while not self._stop.is_set():
            ready = self.ready()
            if ready:  # a camera card's worth of files is filed in batches, not one by one
                try:
                    for _p, res in ingest_batch(self.lib, ready, quiet=self.quiet,
                                                stop=self._stop):
                        if isinstance(res, IngestResult):
                            self.ingested += 1
                except Exception:  # noqa: BLE001 - keep watching; the rescan retries
                    log.exception("inbox: ingest of %d files failed", len(ready))
            if time.monotonic() - last_rescan >= self.rescan_seconds:
                last_rescan = time.monotonic()
                try:
                    self.rescan_inbox()
                except Exception:  # noqa: BLE001
                    log.exception("inbox: rescan failed")
            self._stop.wait(self.tick)

    def pending(self) -> list[Path]:
        with self._lock:
            return sorted(set(self._pending) | self._now)

    # ---- library -----------------------------------------------------------------------------
    def _library_event(self, kind: str, src: str, dest: str | None, is_dir: bool) -> None:
        from .ingest.pipeline import state

        if kind == "closed" or (kind == "modified" and is_dir):
            return
        root = self.lib.config.library
        for p in (src, dest):
            if p is None:
                continue
            path = Path(p)
            if self._ignored(path):
                continue
            if path in state(self.lib).in_flight:
                continue  # ingest is filing this file right now; it catalogues it itself
            if is_dir:
                with self._lock:
                    self._full_scan = True
                    self._lib_changed_at = time.monotonic()
                continue
            rel = os.path.relpath(path.parent, root)
            folder = "" if rel == "." else fs_to_text(rel.replace(os.sep, "/"))
            with self._lock:
                self._folders.add(folder)
                self._lib_changed_at = time.monotonic()

    def _ignored(self, path: Path) -> bool:
        from .metadata.kinds import ext_of

        root = self.lib.config.library
        for special in (self.lib.config.state_dir, self.inbox):
            try:
                path.relative_to(special)
                return True
            except ValueError:
                pass
        try:
            rel = path.relative_to(root)
        except ValueError:
            return True
        if any(part.startswith(".") for part in rel.parts[:-1]):
            return True
        name = path.name
        if name.endswith(".photovfs-tmp") or name.endswith(".photovfs-new"):
            return True
        if not rel.parts:
            return True
        from .metadata.kinds import media_kind

        return not (media_kind(name) is not None or ext_of(name) in ("xmp",) or "." not in name)

    def _library_loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.tick)
            with self._lock:
                due = (self._folders or self._full_scan) and \
                    time.monotonic() - self._lib_changed_at >= self.debounce
                if not due:
                    continue
                folders, full = set(self._folders), self._full_scan
                self._folders.clear()
                self._full_scan = False
            try:
                if full:
                    self.lib.scan()
                else:
                    rescan_folders(self.lib, folders)
            except Exception:  # noqa: BLE001
                log.exception("library: rescan failed")


def rescan_folders(lib: Library, folders: set[str]):
    """Incremental rescan of some folders of the originals (not their subfolders)."""
    from .scan import Scanner

    class _FolderScanner(Scanner):
        def run(self):  # type: ignore[override]
            root = self.lib.config.library
            changed: list = []
            missing: dict[int, str] = {}
            for folder in sorted(folders):
                base = root / text_to_fs(folder) if folder else root
                try:
                    names = sorted(e.name for e in os.scandir(base) if e.is_file())
                except (FileNotFoundError, NotADirectoryError):
                    names = []
                self._compare_folder(root, folder, names, changed, missing)
            self._process(changed, missing)
            self._remove(missing)
            return self.report

    return _FolderScanner(lib).run()


class _Handler(_HandlerBase):
    """A watchdog handler calling `fn(kind, src, dest, is_dir)`."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def dispatch(self, event) -> None:
        kind = event.event_type
        if kind not in ("created", "modified", "moved", "deleted", "closed"):
            return
        try:
            self.fn(kind, os.fsdecode(event.src_path),
                    os.fsdecode(event.dest_path) if getattr(event, "dest_path", "") else None,
                    event.is_directory)
        except Exception:  # noqa: BLE001 - never kill the observer thread
            log.exception("watch: event handling failed")
