"""A big scan reads in worker processes: the same facts, and a crashing reader never stops it.

Run as a script, this file is a reader process whose parser dies (SIGSEGV) on any file named
*CRASH*: the tests hand it to the scanner as its worker command.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from photovfs import readers
from photovfs.catalog.models import Asset
from photovfs.library import Library
from photovfs.scan import Scanner
from sqlalchemy import select

CRASHING_READER = [sys.executable, str(Path(__file__).resolve())]
FAILING_START = [sys.executable, "-c", "import sys; sys.exit(3)"]


def _crashing_read(items: list[readers.Item]) -> list[readers.Result]:
    for path, _side in items:
        if "CRASH" in os.path.basename(path):
            os.kill(os.getpid(), signal.SIGSEGV)
    return readers.read_chunk(items)


if __name__ == "__main__":
    readers.serve(*readers.worker_pipes(), read=_crashing_read)
    sys.exit(0)

import pytest  # noqa: E402  (not needed by the reader process above)
from conftest import jpeg_with_date  # noqa: E402


def _library(root: Path, count: int) -> Path:
    for i in range(count):
        jpeg_with_date(root / f"{2010 + i % 5}" / f"IMG_{i:04d}.jpg",
                       datetime(2010 + i % 5, 1 + i % 12, 1 + i % 28, 12, 0, i % 60),
                       color=(i % 256, 40, 90), size=(16, 12),
                       gps=(45.0 + i / 100, 7.0 + i / 100) if i % 2 else None)
    (root / "2010").mkdir(parents=True, exist_ok=True)
    (root / "2010" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


class _InProcesses(Scanner):
    """A scanner whose reads all go to worker processes (`argv`), waiting for them to start."""

    argv: list[str] | None = None
    started = 0

    def _reader_pool(self, to_read: int) -> readers.Readers:
        if self._readers is None:
            self._readers = readers.Readers(self.workers, processes=2, argv=self.argv)
            self._readers.start_processes()
            type(self).started += self._readers.wait_for_processes(60)
        return self._readers


def _facts(lib: Library) -> dict[str, tuple]:
    cols = [c for c in Asset.__table__.columns if c.name not in ("id", "added_at")]
    with lib.session() as s:
        return {f"{r.folder}/{r.filename}": tuple(r) for r in s.execute(
            select(Asset.folder, Asset.filename, *cols))}


def test_reads_in_worker_processes_catalogue_the_same_facts_as_threads(tmp_path: Path):
    root = _library(tmp_path / "P", 60)
    threads = Library.open(root, state_dir=tmp_path / "s1")
    report = threads.scan()
    assert report.added == 61 and len(report.corrupt) == 1
    _InProcesses.argv, _InProcesses.started = None, 0
    procs = Library.open(root, state_dir=tmp_path / "s2")
    report = _InProcesses(procs).run()
    assert _InProcesses.started == 1
    assert report.added == 61 and len(report.corrupt) == 1 and not report.errors
    assert _facts(procs) == _facts(threads)
    threads.close()
    procs.close()


def test_a_file_that_crashes_its_reader_process_is_catalogued_corrupt_and_the_scan_goes_on(
        tmp_path: Path):
    root = _library(tmp_path / "P", 40)
    victim = jpeg_with_date(root / "2012" / "IMG_CRASH.jpg", datetime(2012, 5, 6, 7, 8, 9))
    _InProcesses.argv, _InProcesses.started = CRASHING_READER, 0
    lib = Library.open(root, state_dir=tmp_path / "s")
    report = _InProcesses(lib).run()
    assert _InProcesses.started == 1
    assert report.added == 42 and not report.errors
    assert sorted(c.split(":")[0] for c in report.corrupt) == ["2010/broken.jpg",
                                                              "2012/IMG_CRASH.jpg"]
    with lib.session() as s:
        rows = {r.filename: r for r in s.scalars(select(Asset).where(Asset.folder == "2012"))}
    crashed = rows.pop("IMG_CRASH.jpg")
    assert crashed.status == "corrupt" and crashed.error == readers.CRASHED
    assert crashed.sha256 == hashlib.sha256(victim.read_bytes()).hexdigest()
    assert crashed.taken_source == "mtime"  # dated like any corrupt file, parsed by nobody
    # the files that shared a chunk with it were read again, alone, and are fine
    assert rows and all(r.status == "ok" and r.taken_source == "exif:DateTimeOriginal"
                        for r in rows.values())
    lib.close()


def test_when_no_reader_process_can_start_the_scan_reads_on_threads(tmp_path: Path):
    root = _library(tmp_path / "P", 30)
    for argv in (FAILING_START, [str(tmp_path / "no-such-python")]):
        _InProcesses.argv, _InProcesses.started = argv, 0
        lib = Library.open(root, state_dir=tmp_path / f"s{len(argv)}")
        report = _InProcesses(lib).run()
        assert _InProcesses.started == 0
        assert report.added == 31 and len(report.corrupt) == 1 and not report.errors
        lib.close()


def test_a_small_rescan_starts_no_reader_process(tmp_path: Path, monkeypatch):
    import photovfs.scan as scan_mod

    started: list[int] = []

    class Counting(readers.Readers):
        def start_processes(self) -> None:
            started.append(1)
            super().start_processes()

    monkeypatch.setattr(scan_mod, "PROCESS_MIN", 20)
    monkeypatch.setattr(scan_mod, "Readers", Counting)
    root = _library(tmp_path / "P", 30)
    lib = Library.open(root)
    assert lib.scan().added == 31 and started  # 31 files to read: workers were started
    started.clear()
    jpeg_with_date(root / "2011" / "IMG_0001.jpg", datetime(2011, 2, 2), color=(1, 2, 3))
    report = lib.scan()
    assert report.updated == 1 and report.unchanged == 30 and not started
    assert lib.scan().unchanged == 31 and not started
    lib.close()


@pytest.mark.parametrize("count", [0, 1, readers.PROCESS_CHUNK + 1])
def test_readers_in_processes_answer_like_read_chunk(tmp_path: Path, count: int):
    root = _library(tmp_path / "P", count)
    items = [(str(p), None) for p in sorted(root.rglob("*.jpg"))]
    with readers.Readers(processes=1) as pool:
        pool.start_processes()
        assert pool.wait_for_processes(60) and pool.in_processes
        assert pool.submit(items).result() == readers.read_chunk(items)


def test_chunks_sent_ahead_of_a_crash_are_answered_by_the_next_worker(tmp_path: Path):
    """A worker holds up to DEPTH chunks at once; when it dies on one, only that one fails (for
    `recover` to isolate), the chunks queued behind it go to its replacement."""
    root = _library(tmp_path / "P", 20)
    jpeg_with_date(root / "2012" / "IMG_CRASH.jpg", datetime(2012, 5, 6, 7, 8, 9))
    items = [(str(p), None) for p in sorted(root.rglob("*.jpg"))]
    chunks = [items[i:i + 2] for i in range(0, len(items), 2)]
    bad = next(i for i, c in enumerate(chunks) if any("CRASH" in p for p, _ in c))
    assert 0 < bad < len(chunks) - readers.DEPTH  # chunks both before and behind it
    with readers.Readers(processes=1, argv=CRASHING_READER) as pool:
        pool.start_processes()
        assert pool.wait_for_processes(60)
        futures = [pool.submit(c) for c in chunks]
        for i, (chunk, future) in enumerate(zip(chunks, futures, strict=True)):
            if i == bad:
                exc = future.exception(60)
                assert isinstance(exc, readers.ReaderDied) and exc.crashed
            else:
                assert future.result(60) == readers.read_chunk(chunk)
