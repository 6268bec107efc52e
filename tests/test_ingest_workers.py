"""Batch ingest with its CPU work in worker processes: same results, and a dead worker loses nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from ingest_helpers import open_library, sha
from photovfs.catalog.models import Asset, Job
from photovfs.errors import BadMedia, Conflict
from photovfs.ingest import IngestResult, ingest_batch
from photovfs.ingest.pipeline import inbox_candidates
from sqlalchemy import select
from test_ingest_crash import check_batch, check_exactly_once

WHEN = datetime(2021, 4, 30, 9, 42, 39)


def fill_inbox(lib, count: int) -> set[str]:
    digests = set()
    for i in range(count):
        p = jpeg_with_date(lib.config.inbox_dir / f"d{i % 2}" / f"IMG_{i:04d}.jpg", WHEN,
                           make=f"Cam{i}", size=(48, 32))
        digests.add(sha(p))
    return digests


def no_leftovers(lib) -> None:
    with lib.session() as s:
        states = {j.state for j in s.scalars(select(Job))}
    assert not states & {"claimed", "filing", "filed", "dup"}
    assert not any((lib.config.inbox_dir / ".photovfs-ingest").glob("[0-9]*"))


def test_worker_processes_file_duplicates_and_failures_like_the_threaded_batch(tmp_path):
    lib = open_library(tmp_path / "lib")
    try:
        digests = fill_inbox(lib, 20)
        inbox = lib.config.inbox_dir
        shutil.copyfile(inbox / "d0" / "IMG_0000.jpg", inbox / "d1" / "TWIN.jpg")
        cut = inbox / "d0" / "CUT.jpg"
        cut.write_bytes((inbox / "d0" / "IMG_0002.jpg").read_bytes()[:-300])
        out = dict(ingest_batch(lib, list(inbox_candidates(lib)), quiet=0, workers=2, batch=8,
                                processes=True))
        assert isinstance(out[inbox / "d1" / "TWIN.jpg"], IngestResult)
        assert out[inbox / "d1" / "TWIN.jpg"].status == "duplicate"
        assert isinstance(out[cut], BadMedia)
        assert (inbox / "_failed" / "CUT.jpg").exists()
        with lib.session() as s:
            rows = s.execute(select(Asset.sha256, Asset.folder, Asset.make)).all()
        assert {r.sha256 for r in rows} == digests and len(rows) == 20
        assert {r.folder for r in rows} == {"2021/04/30"}
        assert {r.make for r in rows} == {f"Cam{i}" for i in range(20)}  # facts came back
        assert list(inbox_candidates(lib)) == []
        no_leftovers(lib)
    finally:
        lib.close()


def test_a_worker_process_that_dies_mid_batch_loses_nothing(tmp_path, monkeypatch):
    """The worker analysing IMG_0005 is killed (every time): that file stays in the inbox,
    the other files of its task are analysed again and filed, nothing is filed twice."""
    root = tmp_path / "lib"
    lib = open_library(root)
    try:
        digests = fill_inbox(lib, 20)
        victim = lib.config.inbox_dir / "d1" / "IMG_0005.jpg"
        monkeypatch.setenv("PHOTOVFS_INGEST_CRASH_AT", "worker:IMG_0005.jpg")
        out = dict(ingest_batch(lib, list(inbox_candidates(lib)), quiet=0, workers=2, batch=8,
                                processes=True))
        assert isinstance(out[victim], Conflict)
        assert sum(isinstance(r, IngestResult) for r in out.values()) == 19
        assert victim.exists()
        no_leftovers(lib)
    finally:
        lib.close()
    assert check_exactly_once(root, None, digests) == (1, 19)
    monkeypatch.delenv("PHOTOVFS_INGEST_CRASH_AT")
    lib = open_library(root)
    try:
        ingest_batch(lib, list(inbox_candidates(lib)), quiet=0, workers=2, processes=True)
    finally:
        lib.close()
    assert check_exactly_once(root, None, digests) == (0, 20)


BATCH_CHILD = """
import sys
from pathlib import Path
from photovfs.library import Library
from photovfs.ingest import ingest_batch
from photovfs.ingest.pipeline import inbox_candidates
lib = Library.open(Path(sys.argv[1]))
ingest_batch(lib, list(inbox_candidates(lib)), quiet=0, workers=2, batch=8, processes=True)
"""


def workers_of(pid: int) -> list[int]:
    """Live ingest worker processes started by `pid` (their command line names the parent)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if b"photovfs.ingest.workers" in cmd and cmd.rstrip(b"\0").endswith(f", {pid})".encode()) \
                and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("point", ["claimed", "filing", "linked", "filed", "removed"])
def test_a_crash_at_each_step_of_a_batch_in_worker_processes_leaves_every_file_once(
        tmp_path, point):
    """kill -9 of the parent at each step: the journal repairs it and no worker outlives it."""
    root = tmp_path / "lib"
    lib = open_library(root)
    digests = fill_inbox(lib, 20)
    inbox = lib.config.inbox_dir
    shutil.copyfile(inbox / "d0" / "IMG_0000.jpg", inbox / "d1" / "TWIN.jpg")
    lib.close()
    env = {**os.environ, "PHOTOVFS_INGEST_CRASH_AT": point}
    proc = subprocess.Popen([sys.executable, "-c", BATCH_CHILD, str(root)], env=env)
    assert proc.wait() == -9
    deadline = time.monotonic() + 10
    while workers_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers_of(proc.pid) == [], "a worker process outlived its parent"
    check_batch(root, digests, twin=inbox / "d1" / "TWIN.jpg")
    proc2 = subprocess.run([sys.executable, "-c", BATCH_CHILD, str(root)])
    assert proc2.returncode == 0
    assert check_batch(root, digests, twin=inbox / "d1" / "TWIN.jpg") == (0, 20)


@pytest.mark.parametrize("python", ["/nonexistent/python3", "/bin/false"])
def test_when_no_worker_process_can_start_the_batch_is_analysed_in_threads(tmp_path, monkeypatch,
                                                                           python):
    lib = open_library(tmp_path / "lib")
    try:
        digests = fill_inbox(lib, 12)
        monkeypatch.setattr(sys, "executable", python)
        out = ingest_batch(lib, list(inbox_candidates(lib)), quiet=0, workers=2, batch=8,
                           processes=True)
        assert all(isinstance(r, IngestResult) for _, r in out) and len(out) == 12
        with lib.session() as s:
            assert set(s.scalars(select(Asset.sha256))) == digests
        no_leftovers(lib)
    finally:
        lib.close()
