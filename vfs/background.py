"""Background work of `serve` and `mount`: renditions, faces, fixity and scheduled backups.

`serve` and `mount` call `start_background(lib, after=scan_thread)`: a `BackgroundProcess`, a child
process at nice 10 with its own Library that runs one `Background` and stops with the server (or
when the server dies: its pipe reads EOF). The work is Python holding the GIL for long stretches;
in the server's own process it starved the request loop. `Background(lib).start()` runs the same
jobs in threads of the calling process (tests, scripts). After the start-up scan and after every
ingest it runs:

* renditions -- every visible asset gets its `thumbnails.view_size` rendition in the disk cache
  before anyone asks for it. Decodes run in `thumbnails.workers` *worker processes at nice 19* (a
  nice value set in a thread would not reach libvips' own shared thread pool), and no new decode is
  handed out while a foreground request is rendering. Resumable by construction: the cache is the
  record, so what is cached is never redone; deterministic failures are remembered in the status
  file and not retried until `photovfs thumbs` is run again.
* faces -- `people.pipeline.run_faces` for photos not scanned yet, only when the `faces` extra
  (dlib) is importable; one worker by default, in a dedicated thread whose own nice value is 19
  (on Linux the nice value of a thread is per thread: `setpriority(PRIO_PROCESS, tid)`).
* fixity -- `backup.engine.check` with a byte budget of (catalogued bytes x interval / fixity_days),
  oldest-verified first, so every original is re-read at least once every `fixity_days` days.
* backups -- destinations registered with `photovfs backup add LIBRARY DEST --schedule ...` (kept in
  `STATE/backup-destinations.json`, next to what `backup` records) get a new generation on their
  schedule, and `after-ingest` ones also after an ingest (debounced).

Every job's progress and last result go to `STATE/background.json`; `photovfs status` prints them.
New assets are noticed two ways: `lib.on_inbox` (uploads over WebDAV/FUSE) is wrapped, and the
catalog is polled every `background.poll_seconds` (files the watcher ingests, outside changes).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from .catalog.models import Asset, is_visible

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from .config import Config
    from .library import Library

log = logging.getLogger("photovfs.background")

STATUS_FILE = "background.json"
DESTS_FILE = "backup-destinations.json"  # shared with photovfs.backup.engine
SCHEDULES = {"hourly": 3600.0, "daily": 86400.0, "after-ingest": 86400.0}
CACHE_FILL = 0.9
"""Pre-generation stops when the rendition cache reaches this share of its cap (no churn)."""


# ---- the status file -----------------------------------------------------------------------------
_status_lock = threading.Lock()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _load(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def _save(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True, default=str)
    os.replace(tmp, path)


def read_status(state_dir: Path) -> dict:
    return _load(Path(state_dir) / STATUS_FILE, {})


def update_status(state_dir: Path, section: str, **values: Any) -> dict:
    """Merge `values` into one section of STATE/background.json (atomic replace)."""
    path = Path(state_dir) / STATUS_FILE
    with _status_lock:
        data = _load(path, {})
        sec = data.setdefault(section, {})
        sec.update(values)
        sec["updated_at"] = _now()
        _save(path, data)
    return sec


# ---- renditions ----------------------------------------------------------------------------------
# The worker processes run thumbs.worker_init and thumbs.render_to: defined there, a spawned worker
# imports thumbs and pyvips only, not this module's catalog and SQLAlchemy imports.
def _cache(lib: Library):
    from .ops import _renditions

    return _renditions(lib)


def visible_assets(lib: Library) -> list[tuple[Path, str, str, str]]:
    """(original path, cache digest, media type, label) of every asset the views show."""
    with lib.session() as s:
        rows = s.execute(select(Asset.folder, Asset.filename, Asset.sha256, Asset.media_type)
                         .where(is_visible(Asset.status)).order_by(Asset.id.desc())).all()
    # the views' etag (sha256[:32]) is what thumbnails/ looks the cache up by
    return [(lib.original_path(r.folder, r.filename), r.sha256[:32], r.media_type or "image",
             f"{r.folder}/{r.filename}".lstrip("/")) for r in rows]


def missing_renditions(lib: Library, sizes: Iterable[int], *, skip: Iterable[str] = ()
                       ) -> tuple[list[tuple[Path, str, str, str, int]], int]:
    """(src, digest, media type, label, size) not in the cache yet; and how many are cached."""
    r = _cache(lib)
    skipped = set(skip)
    todo, cached = [], 0
    for src, digest, media, label in visible_assets(lib):
        for size in sizes:
            if r.cached(digest, size) is not None:
                cached += 1
            elif r.key(digest, size) not in skipped:
                todo.append((src, digest, media, label, size))
    return todo, cached


def _cache_bytes(cache_dir: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(cache_dir):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def pregenerate(lib: Library, sizes: Iterable[int], *, workers: int | None = None, nice: int = 19,
                stop: threading.Event | None = None, yield_to_foreground: bool = False,
                retry_failed: bool = True, on_total: Callable[[int], None] | None = None,
                progress: Callable[[str, str], None] | None = None,
                busy: Callable[[], bool] | None = None) -> dict:
    """Make every missing rendition of `sizes` on a pool of worker processes.

    Returns {"made", "cached", "failed": {label@size: reason}, "stopped", "bytes", "left"}.
    What is cached is never redone; `stop` ends it after the decodes running at that moment.
    `progress(outcome, label)` is called per item ("made" / "failed"). With `yield_to_foreground`
    no decode is handed out while `busy()` says a request is rendering (default: this process's
    own rendition cache has a decode in flight; a background child is told by its parent).
    """
    sizes = sorted({int(s) for s in sizes})
    r = _cache(lib)
    status = read_status(lib.config.state_dir).get("renditions", {})
    memo: dict[str, dict] = dict(status.get("failed", {}))
    todo, cached = missing_renditions(lib, sizes, skip=() if retry_failed else memo)
    report: dict = {"made": 0, "cached": cached, "failed": {}, "stopped": None, "bytes": 0,
                    "left": len(todo), "sizes": sizes}
    if on_total is not None:
        on_total(len(todo))
    if not todo:
        return report
    room = int(r.cap_bytes * CACHE_FILL) - _cache_bytes(r.cache_dir)
    max_pixels = lib.config.thumbnails.max_megapixels * 1_000_000
    workers = max(1, workers or lib.config.thumbnails.workers)
    from .thumbs import render_to, worker_init

    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=worker_init,
                               initargs=(nice, workers))
    running: dict[Future, tuple[str, str, int]] = {}
    items = iter(todo)
    if busy is None:
        busy = lambda: bool(getattr(r, "_inflight", None))  # noqa: E731

    def collect(done: Iterable[Future]) -> None:
        nonlocal room
        for fut in done:
            label, key, size = running.pop(fut)
            try:
                nbytes, reason = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died (out of memory, killed)
                nbytes, reason = 0, f"worker failed: {type(exc).__name__}"
            report["left"] -= 1
            if reason:
                report["failed"][f"{label}@{size}"] = reason
                memo[key] = {"path": label, "size": size, "reason": reason}
                outcome = "failed"
            else:
                report["made"] += 1
                report["bytes"] += nbytes
                room -= nbytes
                memo.pop(key, None)
                outcome = "made"
            if progress is not None:
                progress(outcome, label)

    try:
        exhausted = False
        while not exhausted or running:
            while not exhausted and len(running) < workers * 2:
                if stop is not None and stop.is_set():
                    report["stopped"] = "stopped"
                    exhausted = True
                    break
                if room <= 0:
                    report["stopped"] = (f"the rendition cache is at {CACHE_FILL:.0%} of "
                                         f"thumbnails.cache_cap_mb; the rest is made on request")
                    exhausted = True
                    break
                if yield_to_foreground:
                    while busy() and not (stop and stop.is_set()):
                        time.sleep(0.05)  # a listing or a GET is rendering: let it have the CPU
                item = next(items, None)
                if item is None:
                    exhausted = True
                    break
                src, digest, media, label, size = item
                if r.cached(digest, size) is not None:  # made meanwhile by a request
                    report["cached"] += 1
                    report["left"] -= 1
                    continue
                key = r.key(digest, size)
                fut = pool.submit(render_to, str(src), media, size, max_pixels,
                                  str(r._path(key)))
                running[fut] = (label, key, size)
            if running:
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                collect(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        collect([f for f in list(running) if f.done()])
        # keep failures of assets that still exist; forget the rest
        live = {r.key(d, s) for _src, d, _m, _l in visible_assets(lib) for s in sizes}
        memo = {k: v for k, v in memo.items() if k in live or int(v.get("size", 0)) not in sizes}
        update_status(lib.config.state_dir, "renditions", failed=memo)
        if report["made"]:
            with contextlib.suppress(OSError):
                r.evict()  # re-counts the cache (bytes made by the workers) and keeps the cap
    return report


# ---- the manager ---------------------------------------------------------------------------------
def faces_available() -> bool:
    try:
        import dlib  # noqa: F401
        import face_recognition_models  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a broken binary wheel
        return False
    return True


def _low_priority_thread() -> None:
    """Lower the calling thread only (Linux keeps a nice value per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class _Stopped(Exception):
    pass


class Background:
    """Renditions, faces, fixity and scheduled backups in background threads: start() / stop()."""

    def __init__(self, lib: Library, *, poll_seconds: float | None = None,
                 busy: Callable[[], bool] | None = None) -> None:
        self.lib = lib
        self.busy = busy  # "a request is rendering": see pregenerate
        self.cfg = lib.config.background
        self.state_dir = lib.config.state_dir
        self.poll = self.cfg.poll_seconds if poll_seconds is None else poll_seconds
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._kicks = {name: threading.Event() for name in ("renditions", "faces", "backup")}
        self._threads: list[threading.Thread] = []
        self._after: threading.Thread | None = None
        self._signature: tuple | None = None
        self._backup_due_at: float | None = None
        self._orig_on_inbox: Callable[..., None] | None = None
        self.faces = self.cfg.faces and faces_available()
        self.runs: dict[str, int] = {"renditions": 0, "faces": 0, "fixity": 0, "backup": 0}
        self.idle = {name: threading.Event() for name in self.runs}

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, after: threading.Thread | None = None) -> Background:
        """Start the jobs; with `after` (the start-up scan), they begin once it has finished."""
        self._after = after
        self._orig_on_inbox = _hook_inbox(self.lib, self.changed)
        jobs: list[tuple[Callable[[], None], str]] = [(self._poll_loop, "poll")]
        if self.cfg.renditions:
            jobs.append((self._renditions_loop, "renditions"))
        if self.faces:
            jobs.append((self._faces_loop, "faces"))
        if self.cfg.fixity:
            jobs.append((self._fixity_loop, "fixity"))
        jobs.append((self._backup_loop, "backup"))
        update_status(self.state_dir, "manager", running=True, pid=os.getpid(), started_at=_now(),
                      faces_available=self.faces)
        for target, name in jobs:
            t = threading.Thread(target=self._guard, args=(target, name),
                                 name=f"photovfs-bg-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every job (a running decode, face or hash finishes; a backup run finishes)."""
        self._stop.set()
        for ev in self._kicks.values():
            ev.set()
        if self._orig_on_inbox is not None:
            self.lib.on_inbox = self._orig_on_inbox
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        with contextlib.suppress(OSError):
            update_status(self.state_dir, "manager", running=False, stopped_at=_now())

    def __enter__(self) -> Background:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def changed(self, why: str = "change") -> None:
        """New or changed assets (an ingest, a scan): queue renditions, faces, after-ingest backups."""
        self._kicks["renditions"].set()
        self._kicks["faces"].set()
        self._backup_due_at = time.monotonic() + self.cfg.backup_debounce_seconds
        self._kicks["backup"].set()

    def wait_idle(self, name: str, timeout: float) -> bool:
        """Tests: until job `name` has finished a run with nothing queued."""
        return self.idle[name].wait(timeout)

    # ---- plumbing ----------------------------------------------------------------------------
    def _guard(self, target: Callable[[], None], name: str) -> None:
        if self._after is not None:
            while self._after.is_alive() and not self._stop.is_set():
                self._after.join(0.5)
        try:
            target()
        except Exception:  # noqa: BLE001 - the server keeps serving
            log.exception("background %s stopped", name)
            with contextlib.suppress(Exception):
                update_status(self.state_dir, name, state="crashed", error=_now())

    def _wait(self, name: str, timeout: float | None) -> None:
        ev = self._kicks[name]
        ev.wait(timeout)
        ev.clear()

    def _catalog_signature(self) -> tuple:
        with self.lib.session() as s:
            return tuple(s.execute(select(func.count(Asset.id), func.max(Asset.id),
                                          func.sum(Asset.size), func.max(Asset.mtime_ns))
                                   .where(is_visible(Asset.status))).one())

    def _poll_loop(self) -> None:
        self._signature = self._catalog_signature()
        while not self._stop.wait(self.poll):
            try:
                sig = self._catalog_signature()
            except Exception:  # noqa: BLE001 - a locked/busy catalog: next time
                continue
            if sig != self._signature:
                self._signature = sig
                self.changed("catalog")

    # ---- renditions --------------------------------------------------------------------------
    def _renditions_loop(self) -> None:
        size = self.lib.config.thumbnails.view_size
        self._kicks["renditions"].set()  # the first sweep: everything the start-up scan found
        while not self._stop.is_set():
            self._wait("renditions", None)
            if self._stop.is_set():
                break
            self.idle["renditions"].clear()
            update_status(self.state_dir, "renditions", state="running", started_at=_now(),
                          size=size)

            def progress(outcome: str, label: str) -> None:
                self._progress["made" if outcome == "made" else "failed"] += 1
                if time.monotonic() - self._progress["at"] > 5:
                    self._progress["at"] = time.monotonic()
                    update_status(self.state_dir, "renditions", progress=dict(self._progress))

            self._progress = {"made": 0, "failed": 0, "at": time.monotonic()}
            rep = pregenerate(self.lib, [size], stop=self._stop, yield_to_foreground=True,
                              retry_failed=False, progress=progress, busy=self.busy)
            self.runs["renditions"] += 1
            update_status(self.state_dir, "renditions", state="idle", finished_at=_now(),
                          pending=rep["left"], progress={},
                          last_run={k: rep[k] for k in ("made", "cached", "failed", "stopped",
                                                        "bytes")})
            if not self._kicks["renditions"].is_set():
                self.idle["renditions"].set()

    # ---- faces -------------------------------------------------------------------------------
    def _faces_loop(self) -> None:
        from .people.pipeline import pending, run_faces

        _low_priority_thread()
        self._kicks["faces"].set()
        while not self._stop.is_set():
            self._wait("faces", None)
            if self._stop.is_set():
                break
            self.idle["faces"].clear()
            todo, _done = pending(self.lib)
            if todo:
                update_status(self.state_dir, "faces", state="running", pending=len(todo),
                              started_at=_now())

                def progress(_n: int) -> None:
                    if self._stop.is_set():
                        raise _Stopped  # after a committed asset: resumable

                try:
                    rep = run_faces(self.lib, workers=max(1, self.cfg.face_workers),
                                    progress=progress)
                    last = {"assets": rep.assets, "faces": rep.faces, "errors": rep.errors[:20],
                            "people": len(rep.groups) if isinstance(rep.groups, dict) else None,
                            "seconds": round(rep.seconds, 2)}
                except _Stopped:
                    last = {"stopped": "stopped"}
                self.runs["faces"] += 1
                update_status(self.state_dir, "faces", state="idle", finished_at=_now(),
                              pending=len(pending(self.lib)[0]), last_run=last)
            else:
                update_status(self.state_dir, "faces", state="idle", pending=0)
            if not self._kicks["faces"].is_set():
                self.idle["faces"].set()

    # ---- fixity ------------------------------------------------------------------------------
    def fixity_budget(self) -> int:
        """Bytes to re-read per run so that every original is re-read within fixity_days."""
        with self.lib.session() as s:
            total = s.scalar(select(func.coalesce(func.sum(Asset.size), 0))
                             .where(is_visible(Asset.status))) or 0
        runs = max(1.0, self.cfg.fixity_days * 24.0 / max(self.cfg.fixity_interval_hours, 0.001))
        return max(1, math.ceil(total / runs * 1.1))  # 10% slack for a growing library

    def _fixity_loop(self) -> None:
        from .backup.engine import check

        interval = self.cfg.fixity_interval_hours * 3600.0
        while not self._stop.is_set():
            last = read_status(self.state_dir).get("fixity", {}).get("last_run_epoch", 0.0)
            due_in = last + interval - time.time()
            if due_in > 0:
                self._stop.wait(min(due_in, 3600.0))
                continue
            self.idle["fixity"].clear()
            budget = self.fixity_budget()
            update_status(self.state_dir, "fixity", state="running", budget_bytes=budget)
            try:
                rep = check(self.lib.config.library, budget=str(budget),
                            state_dir=self.state_dir)
                result = {"ok": rep.get("ok"), "hashed": rep.get("hashed"),
                          "not_hashed": rep.get("not_hashed"), "bytes_read": rep.get("bytes_read"),
                          "findings": rep.get("findings", [])[:50],
                          "findings_total": len(rep.get("findings", []))}
            except Exception as exc:  # noqa: BLE001
                log.exception("fixity check failed")
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.runs["fixity"] += 1
            update_status(self.state_dir, "fixity", state="idle", last_run=_now(),
                          last_run_epoch=time.time(), **result)
            self.idle["fixity"].set()

    # ---- backups -----------------------------------------------------------------------------
    def _due_backups(self, after_ingest: bool) -> list[str]:
        out = []
        for d in registered_destinations(self.state_dir):
            schedule = d.get("schedule")
            age = _age_seconds(d.get("at"))
            if age is None or age >= SCHEDULES.get(str(schedule), 86400.0):
                out.append(d["dest"])
            elif after_ingest and schedule == "after-ingest":
                out.append(d["dest"])
        return out

    def _backup_loop(self) -> None:
        from .backup.engine import backup

        self._kicks["backup"].set()  # a destination never backed up (or overdue) runs at once
        while not self._stop.is_set():
            self._wait("backup", 60.0)
            if self._stop.is_set():
                break
            due_at = self._backup_due_at
            after_ingest = due_at is not None and time.monotonic() >= due_at
            if due_at is not None and not after_ingest:
                self._stop.wait(min(5.0, max(0.05, due_at - time.monotonic())))
                self._kicks["backup"].set()
                continue
            if after_ingest:
                self._backup_due_at = None
            due = self._due_backups(after_ingest)
            if not due:
                self.idle["backup"].set()
                continue
            self.idle["backup"].clear()
            for url in due:
                if self._stop.is_set():
                    break
                _set_dest_result(self.state_dir, url, {"state": "running", "started_at": _now()})
                try:
                    rep = backup(self.lib.config.library, url,
                                 max_change=self.lib.config.backup.max_change,
                                 state_dir=self.state_dir, scan=False)
                    result = {"ok": rep.get("ok"), "generation": rep.get("generation"),
                              "copied": len(rep.get("copied", [])), "stopped": rep.get("stopped"),
                              "error": rep.get("error"),
                              "skipped": rep.get("skipped", [])[:20],
                              "corrupt": rep.get("corrupt", [])[:20]}
                except Exception as exc:  # noqa: BLE001
                    log.exception("scheduled backup to %s failed", url)
                    result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                    rep = {}
                if not rep.get("generation") or rep.get("stopped") or rep.get("error"):
                    # no new generation: do not retry at once, try again at the next schedule
                    _touch_attempt(self.state_dir, url)
                _set_dest_result(self.state_dir, url, {"state": "idle", "finished_at": _now(),
                                                       **result})
            self.runs["backup"] += 1
            if self._backup_due_at is None:
                self.idle["backup"].set()


# ---- the manager in a child process (serve, mount) -----------------------------------------------
BUSY_POLL = 0.1
"""Seconds between the parent's looks at its own in-flight renders (told to the child)."""
CHILD_NICE = 10
"""The child's CPU priority: requests (nice 0) win, yet a busy machine does not starve backups and
fixity the way nice 19 would (decode workers and the faces thread still lower themselves to 19)."""


def _child_main(config: Config, conn: Connection, busy: Any) -> None:
    """The child process: its own Library (catalog connections, rendition cache), one Background.

    Waits for "go" (the parent's start-up scan has finished), then works until the parent says
    "stop", until the parent dies (the pipe reads EOF: a killed daemon leaves no orphan working
    on), or until SIGTERM. Ctrl-C in the terminal reaches the whole process group: it is ignored
    here, the parent decides when to stop.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(_signum: int, _frame: object) -> None:
        raise _Stopped

    signal.signal(signal.SIGTERM, on_term)
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)  # every thread it starts inherits it; decodes and faces go to 19
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s photovfs %(levelname)s "
                            "%(message)s")
        logging.getLogger("pyvips").setLevel(logging.WARNING)
    from .library import Library

    lib: Library | None = None
    bg: Background | None = None
    try:
        if _receive(conn) != "go":
            return
        lib = Library(config)
        bg = Background(lib, busy=lambda: bool(busy.value)).start()
        update_status(lib.config.state_dir, "manager", parent_pid=os.getppid())
        while (msg := _receive(conn)) != "stop":
            bg.changed(msg)
    except _Stopped:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the stop short
        if bg is not None:
            bg.stop()
        if lib is not None:
            lib.close()


def _receive(conn: Connection) -> str:
    """The parent's next word; "stop" once the parent is gone."""
    try:
        return str(conn.recv())
    except EOFError:
        return "stop"


Waitable = threading.Thread | threading.Event
"""What the work waits for before it begins: the start-up scan (its thread, or an event it sets)."""


def _wait_for(after: Waitable | None, stop: threading.Event) -> None:
    while after is not None and not stop.is_set():
        if isinstance(after, threading.Event):
            if after.wait(0.5):
                return
        elif not after.is_alive():
            return
        else:
            after.join(0.5)


class BackgroundProcess:
    """The Background manager in a child process, for `serve` and `mount`: start() / stop().

    Why a process: the work (pregeneration bookkeeping, fixity hashing, dlib faces, backups) is
    Python code that holds the GIL for long stretches; in the server's own process it starved the
    request loop (`bench_fuse --background`: the first `ls -l` of 10,000 entries 2.6 s instead of
    0.7 s, a first read at 101 MB/s instead of 482). In a child at nice 10 it competes only for
    CPU, where the kernel gives the requests priority. The child owns its own Library (SQLite WAL:
    the catalog is shared safely between processes). The parent tells it when the start-up scan
    is done, about uploads (on_inbox) and whether a request is rendering a thumbnail (no new
    decode is handed out meanwhile).

    The child is spawned in start(), at once: `mount` starts it before it opens /dev/fuse, so no
    forked copy of the daemon ever holds the FUSE connection (a killed daemon's mount must answer
    ENOTCONN at once, not wait for a fork to reach its exec).
    """

    def __init__(self, lib: Library) -> None:
        self.lib = lib
        self.proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._busy: Any = None  # a shared byte: 1 while a request renders a thumbnail
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._orig_on_inbox: Callable[..., None] | None = None
        self._began = False  # "go" was sent: changes may follow

    def start(self, after: Waitable | None = None) -> BackgroundProcess:
        """Spawn the child now; its work begins once `after` (the start-up scan) is done."""
        self._spawn()
        self._orig_on_inbox = _hook_inbox(self.lib, self.changed)
        self._thread = threading.Thread(target=self._supervise, args=(after,),
                                        name="photovfs-bg-supervisor", daemon=True)
        self._thread.start()
        return self

    def _spawn(self) -> None:
        ctx = get_context("spawn")  # no fork of a process with threads, a FUSE fd, open sockets
        busy = ctx.Value("b", 0, lock=False)
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_child_main, args=(self.lib.config, child_end, busy),
                           name="photovfs-background", daemon=False)  # it has decode workers
        proc.start()
        child_end.close()  # the child's copy is its own: EOF reaches it when we are gone
        self.proc, self._conn, self._busy = proc, parent_end, busy
        # before multiprocessing's own exit hook, which would wait for the child forever
        atexit.register(self.stop)
        log.info("background work runs in process %s", proc.pid)

    def _send(self, word: str) -> None:
        with self._lock:
            if self._conn is None or (word not in ("go", "stop") and not self._began):
                return  # a change before the work began: its first sweep sees it anyway
            self._began = self._began or word == "go"
            try:
                self._conn.send(word)
            except (OSError, ValueError):  # the child is gone; the log says why
                pass

    def _supervise(self, after: Waitable | None) -> None:
        """Tell the child to begin after the scan, then keep its "a request is rendering" flag."""
        _wait_for(after, self._stop)
        if self._stop.is_set():
            return
        self._send("go")
        told = False
        while not self._stop.wait(BUSY_POLL):
            r = getattr(self.lib, "_renditions", None)
            rendering = bool(r is not None and getattr(r, "_inflight", None))
            if rendering != told:
                self._busy.value = told = rendering
            if self.proc is not None and not self.proc.is_alive():
                log.error("the background process ended (exit status %s); the server keeps "
                          "serving without it", self.proc.exitcode)
                return

    def changed(self, why: str = "change") -> None:
        """New or changed assets: the child queues renditions, faces, after-ingest backups."""
        if not self._stop.is_set():
            self._send(why)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the child (a running decode, face or hash finishes) and wait for it."""
        self._stop.set()
        if self._orig_on_inbox is not None:
            self.lib.on_inbox = self._orig_on_inbox
        self._send("stop")
        with self._lock:
            proc, conn = self.proc, self._conn
            self._conn = None
        if proc is not None:
            proc.join(timeout)
            if proc.is_alive():
                log.warning("background process %s did not stop in %.0f s; terminating",
                            proc.pid, timeout)
                proc.terminate()
                proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        if conn is not None:
            conn.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        atexit.unregister(self.stop)

    def __enter__(self) -> BackgroundProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_background(lib: Library, after: Waitable | None = None) -> BackgroundProcess | None:
    """For `serve` and `mount`: start the manager (in a child process) unless
    `[background] enabled = false`."""
    if not lib.config.background.enabled:
        return None
    try:
        return BackgroundProcess(lib).start(after=after)
    except Exception:  # noqa: BLE001 - never keep a server from serving
        log.exception("background work could not start")
        return None


# ---- backup destinations -------------------------------------------------------------------------
def _age_seconds(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - when).total_seconds())


def registered_destinations(state_dir: Path) -> list[dict]:
    """Destinations with a schedule (`backup add`); plain `backup` runs are only remembered."""
    return [d for d in _load(Path(state_dir) / DESTS_FILE, []) if d.get("schedule")]


def register_destination(state_dir: Path, dest: str, schedule: str) -> dict:
    """Add or update a destination in STATE/backup-destinations.json; returns its entry."""
    from .backup.dest import open_dest

    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
    url = open_dest(dest).url
    path = Path(state_dir) / DESTS_FILE
    with _status_lock:
        data = _load(path, [])
        entry = next((d for d in data if d.get("dest") == url), None)
        if entry is None:
            entry = {"dest": url}
            data.append(entry)
        entry["schedule"] = schedule
        entry["registered_at"] = _now()
        _save(path, data)
    return entry


def _touch_attempt(state_dir: Path, url: str) -> None:
    path = Path(state_dir) / DESTS_FILE
    with _status_lock:
        data = _load(path, [])
        for d in data:
            if d.get("dest") == url:
                d["attempted_at"] = _now()
        _save(path, data)


def _set_dest_result(state_dir: Path, url: str, result: dict) -> None:
    path = Path(state_dir) / STATUS_FILE
    with _status_lock:
        data = _load(path, {})
        dests = data.setdefault("backups", {})
        dests.setdefault(url, {}).update(result)
        _save(path, data)


# ---- `photovfs status` ---------------------------------------------------------------------------
def background_status(lib: Library) -> dict:
    """What `photovfs status` prints: renditions and faces pending, fixity, backup destinations."""
    st = read_status(lib.config.state_dir)
    size = lib.config.thumbnails.view_size
    ren = st.get("renditions", {})
    todo, cached = missing_renditions(lib, [size])
    failed = ren.get("failed", {})
    out: dict = {"manager": st.get("manager", {})}
    out["renditions"] = {"size": size, "cached": cached,
                         "pending": sum(1 for t in todo if _cache(lib).key(t[1], size)
                                        not in failed),
                         "failed": list(failed.values()), "state": ren.get("state"),
                         "last_run": ren.get("last_run"), "finished_at": ren.get("finished_at")}
    from .people.pipeline import pending

    faces = st.get("faces", {})
    out["faces"] = {"available": faces_available(), "pending": len(pending(lib)[0]),
                    "last_run": faces.get("last_run"), "finished_at": faces.get("finished_at")}
    fx = st.get("fixity", {})
    fixity_log = _load(lib.config.state_dir / "fixity.json", {})
    stamps = [v.get("verified_at", 0.0) for v in fixity_log.values() if isinstance(v, dict)]
    with lib.session() as s:
        n_assets = s.scalar(select(func.count(Asset.id)).where(is_visible(Asset.status))) or 0
    out["fixity"] = {"last_run": fx.get("last_run"), "ok": fx.get("ok"),
                     "hashed": fx.get("hashed"), "bytes_read": fx.get("bytes_read"),
                     "findings": fx.get("findings", []),
                     "findings_total": fx.get("findings_total", 0),
                     "never_verified": max(0, n_assets - len(stamps)),
                     "oldest_verification_days":
                         round((time.time() - min(stamps)) / 86400, 1) if stamps else None}
    results = st.get("backups", {})
    dests = []
    for d in _load(lib.config.state_dir / DESTS_FILE, []):
        age = _age_seconds(d.get("at"))
        dests.append({"dest": d["dest"], "schedule": d.get("schedule") or "manual",
                      "last_generation": d.get("last_generation"),
                      "age_hours": round(age / 3600, 1) if age is not None else None,
                      "last_result": results.get(d["dest"])})
    out["backups"] = dests
    return out


def print_background(bg: dict) -> None:
    r = bg["renditions"]
    last = r.get("last_run") or {}
    print(f"renditions ({r['size']} px): {r['cached']} cached, {r['pending']} pending, "
          f"{len(r['failed'])} failed" + (f"; last run {r['finished_at']}: {last.get('made', 0)} "
                                           f"made" if r.get("finished_at") else ""))
    for f in r["failed"][:20]:
        print(f"  failed       {f.get('path')}: {f.get('reason')}")
    f = bg["faces"]
    if f["available"]:
        print(f"faces: {f['pending']} photos pending" +
              (f"; last run {f['finished_at']}" if f.get("finished_at") else ""))
    else:
        print(f"faces: {f['pending']} photos pending (the `faces` extra is not installed)")
    x = bg["fixity"]
    if x.get("last_run"):
        print(f"fixity: last check {x['last_run']}: {x.get('hashed')} re-read "
              f"({x.get('bytes_read')} bytes), {x.get('findings_total', 0)} findings; "
              f"{x['never_verified']} never verified, oldest verification "
              f"{x['oldest_verification_days']} days ago")
    else:
        print(f"fixity: no check yet; {x['never_verified']} originals never verified")
    for item in x.get("findings", [])[:20]:
        print(f"  {item['kind']:<12} {item['path']}: {item['detail']}")
    if not bg["backups"]:
        print("backups: no destinations (photovfs backup add LIBRARY DEST --schedule daily)")
    else:
        print("backups:")
    for d in bg["backups"]:
        age = f"{d['age_hours']} h ago" if d["age_hours"] is not None else "never"
        line = f"  {d['dest']} ({d['schedule']}): last verified generation " \
               f"{d['last_generation'] or '-'}, {age}"
        res = d.get("last_result") or {}
        if res.get("error") or res.get("stopped"):
            line += f"; last run FAILED: {res.get('error') or res.get('stopped')}"
        elif res.get("ok") is False:
            line += "; last run not complete (skipped or corrupt files)"
        print(line)


# ---- `photovfs thumbs` and `photovfs backup add` -------------------------------------------------
def cmd_thumbs(lib: Library, sizes: list[int] | None, *, workers: int | None = None,
               json_out: bool = False) -> int:
    """Pre-generate renditions in parallel with a progress bar; print made / cached / failed."""
    import sys

    from tqdm import tqdm

    sizes = sizes or [lib.config.thumbnails.view_size]
    bar = tqdm(unit=" renditions", desc="renditions", disable=not sys.stderr.isatty() or json_out)
    t0 = time.monotonic()
    try:
        rep = pregenerate(lib, sizes, workers=workers, nice=0, on_total=lambda n: bar.reset(n),
                          progress=lambda _o, _l: bar.update(1))
    finally:
        bar.close()
        lib.close()
    rep["seconds"] = round(time.monotonic() - t0, 2)
    if json_out:
        print(json.dumps(rep, indent=2))
    else:
        print(f"renditions {','.join(map(str, rep['sizes']))} px: {rep['made']} made, "
              f"{rep['cached']} cached, {len(rep['failed'])} failed ({rep['seconds']} s)")
        for label, reason in sorted(rep["failed"].items()):
            print(f"  failed  {label}: {reason}")
        if rep["stopped"]:
            print(f"  stopped: {rep['stopped']}")
    return 1 if rep["failed"] else 0


def cmd_backup_add(state_dir: Path, dest: str, schedule: str) -> int:
    entry = register_destination(state_dir, dest, schedule)
    print(f"registered {entry['dest']} ({schedule}); `photovfs serve` and `photovfs mount` keep it "
          f"current")
    return 0


def _hook_inbox(lib, changed: Callable[[str], None]) -> Callable[..., None] | None:
    """Wrap the library's ingest hook so that every upload also says "ingest" to the background
    work (renditions, faces, backups); returns the original hook, for `stop()` to put back."""
    orig = lib.on_inbox
    if orig is not None:
        def on_inbox(path, actor):
            try:
                orig(path, actor)
            finally:
                changed("ingest")

        lib.on_inbox = on_inbox
    return orig
