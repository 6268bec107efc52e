"""Where a scan reads its changed files: reader threads at once, worker processes for big scans.

Hashing and reading release the GIL, but the metadata parsing does not, and the catalog writes
need the main thread: in one process the parsing and the writes take turns on one core. A scan
with many files to read therefore starts a few worker processes (in the background: the reader
threads go on meanwhile) and hands them the work once they are up.

The workers are plain `python -m photovfs.readers` children talking pickles over their pipes,
not `multiprocessing`: that would re-import the caller's main module in every worker (a script
without a `__main__` guard would run again), and forking a server's threads is unsafe. Any
failure to start them leaves the scan on threads. A worker that dies (a parser crashing on a
hostile file) never stops the scan: only the chunk it held fails, those files are read again
one by one, and a file that kills its worker again is catalogued as corrupt with that reason,
its hash taken without any parser.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from .metadata.extract import hash_and_extract, hash_unparsed
from .metadata.facts import Facts

log = logging.getLogger(__name__)

Item = tuple[str, str | None]  # (path, sidecar path): what a worker needs, pickled small
Result = tuple[str | None, Facts | None, str | None]  # (sha256, facts, error when unreadable)

CRASHED = "reading this file crashed the reader process"
THREAD_CHUNK = 8  # files per task on threads: a hand-off costs little
PROCESS_CHUNK = 32  # files per task in a process: each hand-off is two pickles and a round trip
#: tasks sent to a worker ahead of its answers: it starts the next chunk at once instead of
#: waiting for its parent's feeder thread, which shares the GIL with the catalog writes
DEPTH = 3
WORKER_ARGV = [sys.executable, "-m", "photovfs.readers"]
_HEADER = struct.Struct("<I")
Task = tuple[list[Item], Future[list[Result]]]


def read_one(path: str, sidecar: str | None) -> Result:
    """Hash and read the metadata of one file, reading it once; never raises for a bad file."""
    try:
        digest, facts = hash_and_extract(Path(path), Path(sidecar) if sidecar else None)
    except OSError as exc:
        return None, None, f"unreadable: {exc.strerror or exc}"
    except Exception as exc:  # a parser bug must not stop the scan: the file is reported
        log.exception("reading %s failed", path)
        return None, None, f"unreadable: {type(exc).__name__}: {exc}"[:200]
    return digest, facts, None


def read_chunk(items: list[Item]) -> list[Result]:
    """`read_one` for a few files: the unit of work handed to a thread or a process."""
    return [read_one(path, sidecar) for path, sidecar in items]


def process_count() -> int:
    """Worker processes for a big scan: one per core, at most 4 (the main process writes)."""
    return max(1, min(os.cpu_count() or 1, 4))


class ReaderDied(Exception):
    """A task's worker process is gone. `crashed`: it died holding this task (the files may be
    to blame); otherwise no worker could be started to take it."""

    def __init__(self, message: str, crashed: bool) -> None:
        super().__init__(message)
        self.crashed = crashed


# ---------------------------------------------------------------- the wire (both sides)
def _send(out: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _recv(inp: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream (the other side is gone)."""
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = inp.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def serve(inp: IO[bytes], out: IO[bytes], read: Callable[[list[Item]], list[Result]] = read_chunk,
          ) -> None:
    """The worker's loop: say ready, then answer each chunk of items until the input ends.

    A thread takes the requests off the input as they come: the parent sends a few ahead, and
    neither side may ever block writing into a full pipe while the other does the same."""
    inbox: queue.SimpleQueue[list[Item] | None] = queue.SimpleQueue()

    def take() -> None:
        try:
            while (items := _recv(inp)) is not None:
                inbox.put(items)
        finally:
            inbox.put(None)

    threading.Thread(target=take, name="reader-input", daemon=True).start()
    _send(out, ("ready", os.getpid()))
    while (items := inbox.get()) is not None:
        _send(out, read(items))


def worker_pipes() -> tuple[IO[bytes], IO[bytes]]:
    """(input, output) of a worker; anything a library prints goes to stderr, never into the
    results pipe. Ctrl-C is the parent's to handle: a worker ends when its input closes (also
    when the parent is killed), never with a file half answered."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return sys.stdin.buffer, out


# ---------------------------------------------------------------- the parent side
class _Worker:
    """One worker process and the thread that feeds it tasks from the pool's queue."""

    def __init__(self, pool: ProcessReaders, index: int) -> None:
        self.pool = pool
        self.proc: subprocess.Popen[bytes] | None = None
        self._closing = False  # the pool's end-of-work marker was taken
        self.thread = threading.Thread(target=self._run, name=f"scan-worker-{index}", daemon=True)
        self.thread.start()

    def _start(self) -> bool:
        """Start the process and wait for its hello; False when it cannot run here."""
        try:
            self.proc = subprocess.Popen(self.pool.argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, close_fds=True)
        except OSError:
            log.warning("scan: cannot start a reader process", exc_info=True)
            return False
        assert self.proc.stdout is not None
        try:
            hello = _recv(self.proc.stdout)
        except Exception:  # noqa: BLE001 - garbage instead of a hello: not a reader
            hello = None
        if not (isinstance(hello, tuple) and hello[:1] == ("ready",)):
            code = self._stop()
            log.warning("scan: a reader process did not start (exit status %s): reading on "
                        "threads", code)
            return False
        return True

    def _run(self) -> None:
        if not self._start():
            self.pool._lost(self)
            return
        self.pool._up()
        sent: deque[Task] = deque()  # answered in order: the first one is the worker's
        again: deque[Task] = deque()  # sent to a worker that died before it began them
        closing = False
        while True:
            while len(sent) < DEPTH and (again or not closing):
                task = again.popleft() if again else self._next(block=not sent)
                if task is None:
                    closing = self._closing
                    break
                sent.append(task)
                if not self._post(task[0]):
                    break  # the process is gone: its answer below says so
            if not sent:
                break
            items, future = sent.popleft()
            result = self._answer(len(items))
            if result is not None:
                future.set_result(result)
                continue
            code = self._stop()
            future.set_exception(ReaderDied(f"reader process exited ({code})", crashed=True))
            again.extend(sent)
            sent.clear()
            if not self._start():  # a fresh worker for the next tasks
                for _items, waiting in again:
                    waiting.set_exception(ReaderDied("reader process gone", crashed=False))
                self.pool._lost(self)
                return
        self._stop()

    def _next(self, block: bool) -> Task | None:
        """The next task of the pool's queue (None: none waiting, or the pool is closing)."""
        while True:
            try:
                task = self.pool._tasks.get() if block else self.pool._tasks.get_nowait()
            except queue.Empty:
                return None
            if task is None:
                self._closing = True
                return None
            if task[1].set_running_or_notify_cancel():
                return task

    def _post(self, items: list[Item]) -> bool:
        """Send a task without waiting for its answer; False when the process is gone."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        try:
            _send(proc.stdin, items)
        except OSError:
            return False
        return True

    def _answer(self, count: int) -> list[Result] | None:
        """The answer to the oldest task sent, or None when the process died first."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        try:
            result = _recv(proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None
        return result if isinstance(result, list) and len(result) == count else None

    def _stop(self) -> int | None:
        """Close the pipes and reap the process (killed when it does not go on its own)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        for pipe in (proc.stdin, proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


class ProcessReaders:
    """A few worker processes fed from one queue; `submit` returns a Future of the results."""

    def __init__(self, count: int, argv: list[str] | None = None) -> None:
        self.argv = argv or WORKER_ARGV
        self._tasks: queue.SimpleQueue[tuple[list[Item], Future[list[Result]]] | None] = \
            queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._alive = count
        self._workers = [_Worker(self, i) for i in range(count)]

    @property
    def ready(self) -> bool:
        """At least one worker is up (and none of the start-up cost is left to pay)."""
        return self._ready.is_set() and self.alive

    @property
    def alive(self) -> bool:
        with self._lock:
            return self._alive > 0

    def submit(self, items: list[Item]) -> Future[list[Result]]:
        future: Future[list[Result]] = Future()
        self._tasks.put((items, future))
        if not self.alive:  # the last worker may have left before this task was queued
            self._drain()
        return future

    def _up(self) -> None:
        self._ready.set()

    def _lost(self, worker: _Worker) -> None:
        """A worker that cannot (re)start; when it was the last, nobody takes the queued tasks."""
        with self._lock:
            self._alive -= 1
            last = self._alive == 0
        if last:
            self._ready.set()  # nobody waits for a start that will not come
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return
            if task is not None and task[1].set_running_or_notify_cancel():
                task[1].set_exception(ReaderDied("no reader process could start", crashed=False))

    def close(self) -> None:
        """Stop every worker (tasks still queued are cancelled: after a finished scan there are
        none, after a failed one nobody wants them); nothing is left running."""
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task[1].cancel()
        for _ in self._workers:
            self._tasks.put(None)
        for worker in self._workers:
            worker.thread.join()
        self._drain()


class Readers:
    """Reads chunks of files on threads, then in worker processes once `start_processes` has
    them up. `recover` turns a chunk whose process died into results, never an exception."""

    def __init__(self, threads: int = 2, processes: int | None = None,
                 argv: list[str] | None = None) -> None:
        self._threads_n = threads
        self._processes_n = process_count() if processes is None else processes
        self._argv = argv
        self._threads: ThreadPoolExecutor | None = None
        self._procs: ProcessReaders | None = None

    @property
    def in_processes(self) -> bool:
        return self._procs is not None and self._procs.ready

    @property
    def starting(self) -> bool:
        """Worker processes are on their way up (and none has failed to come for good)."""
        return self._procs is not None and not self._procs._ready.is_set()

    @property
    def chunk(self) -> int:
        """Files per task for the executor the next submit will use."""
        return PROCESS_CHUNK if self.in_processes else THREAD_CHUNK

    def start_processes(self) -> None:
        """Start the worker processes (once); threads read until the first one is up."""
        if self._procs is None and self._processes_n > 0:
            self._procs = ProcessReaders(self._processes_n, self._argv)

    def wait_for_processes(self, timeout: float | None = None) -> bool:
        """True once a worker is up (for tests and benchmarks; a scan never waits)."""
        return self._procs is not None and self._procs._ready.wait(timeout) and self._procs.alive

    def submit(self, items: list[Item]) -> Future[list[Result]]:
        if self._procs is not None and self._procs.ready:
            return self._procs.submit(items)
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self._threads_n, thread_name_prefix="scan-read")
        return self._threads.submit(read_chunk, items)

    def recover(self, items: list[Item], exc: BaseException) -> list[Result]:
        """Results for a chunk whose task failed because its worker process is gone."""
        if not isinstance(exc, ReaderDied):
            raise exc  # a thread's task failed outside read_one's guard: a real bug
        if exc.crashed:
            log.warning("scan: a reader process died (%s); reading %d files one by one",
                        exc, len(items))
        return [self._isolated(item) if exc.crashed else read_one(*item) for item in items]

    def _isolated(self, item: Item) -> Result:
        """One file alone in a worker: when it kills that one too, it is the culprit and is
        catalogued as corrupt (hashed here, parsed by nobody)."""
        if self._procs is None or not self._procs.alive:
            return read_one(*item)
        try:
            return self._procs.submit([item]).result()[0]
        except ReaderDied as exc:
            if not exc.crashed:
                return read_one(*item)
        log.warning("scan: %s crashed a reader process twice: catalogued as corrupt", item[0])
        try:
            digest, facts = hash_unparsed(Path(item[0]), CRASHED)
        except OSError as err:
            return None, None, f"unreadable: {err.strerror or err}"
        return digest, facts, None

    def close(self) -> None:
        """Stop the workers and threads: nothing is left running."""
        procs, self._procs = self._procs, None
        if procs is not None:
            procs.close()
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None

    def __enter__(self) -> Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":  # a worker: python -m photovfs.readers
    serve(*worker_pipes())
