"""The CPU half of a batch ingest, run in worker processes: verify, hash, read facts.

A batch's decode (`verify`), sha256 and metadata parsing are pure CPU and mostly Python, so in
threads they share one core through the GIL. Here they run in a small pool of worker processes
while the parent keeps everything that needs the journal, the catalog, the filing lock or the
disk's metadata (staging links, fsyncs: a worker never waits for the filesystem journal). A worker
only reads the staged files it is given; it changes nothing on disk or in the catalog, so a
worker killed at any instant leaves nothing to repair.

Workers are fresh interpreters (forking a process with threads and open SQLite connections is
unsafe) and die with their parent (PR_SET_PDEATHSIG), so a `kill -9` of the ingest never leaves
a worker creating staging links behind recovery's back.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import Conflict

log = logging.getLogger("photovfs.ingest")

PR_SET_PDEATHSIG = 1
TASK_FILES = 16  # files per task: amortises the pickling round trip, keeps both workers busy
ATTEMPTS = 2  # a file whose analysis kills its worker this often stays in the inbox
READY = "photovfs-ingest-worker-ready"
Task = tuple[str, int, int]  # a staged file: path, size and mtime_ns when it was staged


@dataclass
class Outcome:
    """What the parent needs back for one staged file (or the error that stops it)."""

    digest: str = ""
    facts: Any = None
    error: BaseException | None = None
    spent: dict[str, float] = field(default_factory=dict)


def analyse(p: Path) -> tuple[str, Any, dict[str, float]]:
    """verify (full decode), then sha256 and facts from one read: (digest, facts, seconds)."""
    from ..metadata.extract import hash_and_extract
    from .media import verify

    t0 = time.perf_counter()
    verify(p)
    t1 = time.perf_counter()
    digest, facts = hash_and_extract(p)
    t2 = time.perf_counter()
    return digest, facts, {"verify": t1 - t0, "sha256 + extract": t2 - t1}


def check_unchanged(p: Path, before: os.stat_result) -> None:
    """Conflict when the staged inode changed while it was read (written in place meanwhile)."""
    now = os.stat(p)
    if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise Conflict("the file changed while it was being ingested; it will be retried")


def analyse_many(tasks: list[tuple[str, int, int]]) -> list[Outcome]:
    """In a worker process: (staged path, size, mtime_ns when staged) -> Outcome, per file."""
    out = []
    for staged_text, size, mtime_ns in tasks:
        staged = Path(staged_text)
        res = Outcome()
        try:
            _test_crash(staged.name)
            res.digest, res.facts, res.spent = analyse(staged)
            now = os.stat(staged)
            if (now.st_size, now.st_mtime_ns) != (size, mtime_ns):
                raise Conflict("the file changed while it was being ingested; it will be retried")
        except Exception as exc:  # noqa: BLE001 - reported per file by the parent
            res.error = exc if _picklable(exc) else Conflict(f"ingest failed: {exc!r}")
        out.append(res)
    return out


def _picklable(exc: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
        return True
    except Exception:  # noqa: BLE001
        return False


def _test_crash(name: str) -> None:
    """Tests: `PHOTOVFS_INGEST_CRASH_AT=worker:NAME` kills the worker analysing NAME."""
    if os.environ.get("PHOTOVFS_INGEST_CRASH_AT", "") == f"worker:{name}":
        os.kill(os.getpid(), signal.SIGKILL)


class WorkerDied(Exception):
    """A worker process ended without answering (killed, crashed, or never started)."""

    def __init__(self, reason: str, *, at_start: bool = False) -> None:
        super().__init__(reason)
        self.at_start = at_start


class _Process:
    """One worker process: a pickled task in through one pipe, its answer out through another.

    Started with `python -c` rather than multiprocessing's spawn, which would re-import the
    caller's `__main__` (a script without a main guard would run again in every worker).
    """

    def __init__(self) -> None:
        to_child, from_parent = os.pipe()[::-1]
        from_child, to_parent = os.pipe()
        code = ("from photovfs.ingest.workers import serve; "
                f"serve({from_parent}, {to_parent}, {os.getpid()})")
        try:  # -P: the caller's working directory must not shadow a module
            self.popen = subprocess.Popen([sys.executable, "-P", "-c", code],
                                          stdin=subprocess.DEVNULL, pass_fds=(from_parent, to_parent))
        except (OSError, ValueError) as exc:
            os.close(to_child)
            os.close(from_child)
            raise WorkerDied(f"cannot start a worker process ({exc!r})", at_start=True) from exc
        finally:
            os.close(from_parent)
            os.close(to_parent)
        self.tx = os.fdopen(to_child, "wb")
        self.rx = os.fdopen(from_child, "rb")
        try:
            if pickle.load(self.rx) != READY:
                raise WorkerDied("the worker process did not start", at_start=True)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self.kill()
            raise WorkerDied(f"the worker process did not start ({exc!r})", at_start=True) from exc

    def call(self, tasks: list[Task]) -> list[Outcome]:
        try:
            pickle.dump(tasks, self.tx, pickle.HIGHEST_PROTOCOL)
            self.tx.flush()
            return cast(list[Outcome], pickle.load(self.rx))
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self.kill()
            raise WorkerDied(f"the worker process died ({exc!r})") from exc

    def close(self) -> None:
        """End of input: the worker exits after its current task."""
        try:
            self.tx.close()
            self.popen.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.popen.kill()
            self.popen.wait()
        self.rx.close()

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()
        for fh in (self.tx, self.rx):
            try:
                fh.close()
            except OSError:
                pass


def serve(from_parent: int, to_parent: int, parent: int) -> None:
    """A worker process's main loop: answer tasks until the parent closes the pipe."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from ..metadata import extract, verify  # noqa: F401 - imported before saying ready

    rx, tx = os.fdopen(from_parent, "rb"), os.fdopen(to_parent, "wb")
    pickle.dump(READY, tx)
    tx.flush()
    while True:
        try:
            tasks = pickle.load(rx)
        except EOFError:
            return
        pickle.dump(analyse_many(tasks), tx, pickle.HIGHEST_PROTOCOL)
        tx.flush()


def _die_with(parent: int) -> None:
    """PR_SET_PDEATHSIG: an orphan must not go on staging files after its parent's kill -9."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closed pipe still ends the loop
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class Workers:
    """`processes` worker processes, each fed one task at a time by its own thread.

    A worker that dies (killed, out of memory, a decoder crash) fails only the task it had; those
    files are analysed again one at a time, and a file that kills its worker `ATTEMPTS` times is
    reported as a Conflict and stays in the inbox. When worker processes cannot start at all, the
    tasks run in the caller's thread instead.
    """

    def __init__(self, processes: int) -> None:
        self.queue: queue.Queue[tuple[list[Task], Future[list[Outcome]]] | None] = \
            queue.Queue()
        self.threads = [threading.Thread(target=self._feed, name=f"ingest-worker-{i}",
                                         daemon=True) for i in range(max(1, processes))]
        for t in self.threads:
            t.start()

    def _feed(self) -> None:
        proc: _Process | None = None
        try:
            try:  # at once: the interpreter starts while the parent claims the first chunk
                proc = _Process()
            except Exception:  # noqa: BLE001 - the first task tries again (then uses threads)
                proc = None
            while (job := self.queue.get()) is not None:
                tasks, fut = job
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    if proc is None:
                        proc = _Process()
                    fut.set_result(proc.call(tasks))
                except WorkerDied as exc:
                    proc = None
                    fut.set_exception(exc)
                except BaseException as exc:  # noqa: BLE001 - the waiter decides; keep feeding
                    if proc is not None:
                        proc.kill()  # its pipe may be mid-message: never reuse it
                    proc = None
                    fut.set_exception(exc)
        finally:
            if proc is not None:
                proc.close()

    def _submit(self, tasks: list[Task]) -> Future[list[Outcome]]:
        fut: Future[list[Outcome]] = Future()
        self.queue.put((tasks, fut))
        return fut

    def run(self, tasks: list[Task]) -> list[Outcome]:
        """Analyse a task in a worker and wait (the files of a dead worker are retried alone)."""
        try:
            return self._submit(tasks).result()
        except WorkerDied as exc:
            if exc.at_start:
                log.warning("inbox: %s; analysing in threads", exc)
                return analyse_many(tasks)
            log.warning("inbox: %s; retrying its %d files one by one", exc, len(tasks))
            return [self._alone(task) for task in tasks]

    def _alone(self, task: Task) -> Outcome:
        for _ in range(ATTEMPTS):
            try:
                return self._submit([task]).result()[0]
            except WorkerDied as exc:
                if exc.at_start:
                    return analyse_many([task])[0]
        return Outcome(error=Conflict("the file crashed the verifier; it stays in the inbox"))

    def close(self) -> None:
        """Cancel what has not started, let each worker finish its task, end the processes."""
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[1].cancel()
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join()


__all__ = ["Outcome", "Task", "WorkerDied", "Workers", "analyse", "analyse_many", "serve"]
