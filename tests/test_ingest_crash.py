"""Crash safety and disk full, for real: kill -9 of a running `photovfs ingest`, a 2 MB tmpfs."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from ingest_helpers import open_library, sha
from photovfs.catalog.models import Asset
from PIL import Image
from sqlalchemy import select

WHEN = datetime(2021, 4, 30, 9, 42, 39)


def check_exactly_once(root: Path, state: Path | None, digests: set[str]) -> tuple[int, int]:
    """Every uploaded file is in the inbox XOR filed and catalogued exactly once (by hash)."""
    lib = open_library(root, state=state)  # opening replays the journal
    try:
        inbox = lib.config.inbox_dir
        in_inbox: dict[str, int] = {}
        for p in inbox.rglob("*"):
            if p.is_file() and ".photovfs-ingest" not in p.parts and p.suffix == ".jpg":
                in_inbox[sha(p)] = in_inbox.get(sha(p), 0) + 1
        with lib.session() as s:
            rows = s.execute(select(Asset.sha256, Asset.folder, Asset.filename)).all()
        filed: dict[str, int] = {}
        for r in rows:
            path = lib.original_path(r.folder, r.filename)
            assert path.exists() and sha(path) == r.sha256, f"catalogued but missing: {path}"
            filed[r.sha256] = filed.get(r.sha256, 0) + 1
        on_disk = [p for p in lib.config.library.rglob("*.jpg")
                   if lib.config.state_dir not in p.parents]
        assert len(on_disk) == len(rows), "a file in the originals that the catalog lacks"
        for d in digests:
            assert filed.get(d, 0) <= 1, "filed twice"
            assert (in_inbox.get(d, 0) == 1) != (filed.get(d, 0) == 1), \
                f"{d[:12]}: inbox={in_inbox.get(d, 0)} filed={filed.get(d, 0)}"
        return len(in_inbox), len(rows)
    finally:
        lib.close()


@pytest.mark.slow
def test_kill_9_at_random_points_never_loses_or_doubles_a_file(tmp_path):
    root = tmp_path / "lib"
    lib = open_library(root)
    inbox = lib.config.inbox_dir
    digests = set()
    for i in range(300):
        p = jpeg_with_date(inbox / f"batch{i % 3}" / f"IMG_{i:04d}.jpg", WHEN,
                           make=f"Cam{i}", size=(48, 32))
        digests.add(sha(p))
    lib.close()
    assert len(digests) == 300
    rng = random.Random(1234)
    cmd = [sys.executable, "-m", "photovfs.cli", "ingest", str(root), "--workers", "3"]
    kills, longest, added = 0, 1.6, 0
    for _ in range(30):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, longest))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        left, filed = check_exactly_once(root, None, digests)
        if kills >= 5:
            break
        if left == 0:  # finished before enough kills (a fast machine): more files, kill sooner
            longest = max(0.2, longest / 2)
            for i in range(added, added + 100):
                p = jpeg_with_date(inbox / "more" / f"IMG_M{i:04d}.jpg", WHEN,
                                   make=f"More{i}", size=(48, 32))
                digests.add(sha(p))
            added += 100
    assert kills >= 5, "the ingest always finished before it could be killed"
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    left, filed = check_exactly_once(root, None, digests)
    assert (left, filed) == (0, len(digests))


def big_jpeg(path: Path, seed: int) -> Path:
    rnd = random.Random(seed)
    img = Image.frombytes("RGB", (520, 520), rnd.randbytes(520 * 520 * 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=95)
    return path


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_a_full_disk_stops_ingest_with_a_clear_error_and_keeps_the_file_in_the_inbox(
        tmp_path, tmpfs):
    state = tmp_path / "state"  # the catalog and inbox elsewhere; the originals on a 2 MB disk
    lib = open_library(tmpfs, state=state)
    files = [big_jpeg(lib.config.inbox_dir / f"IMG_{i}.jpg", i) for i in range(8)]
    assert sum(f.stat().st_size for f in files) > 2 << 20
    digests = {sha(f) for f in files}
    lib.close()
    out = subprocess.run([sys.executable, "-m", "photovfs.cli", "ingest", str(tmpfs), "--state",
                          str(state), "--workers", "1"], capture_output=True, text=True)
    assert out.returncode == 1
    assert "disk full" in out.stderr
    left, filed = check_exactly_once(tmpfs, state, digests)
    assert left >= 1 and filed >= 1 and left + filed == 8
    assert not [p for p in tmpfs.rglob("*") if p.name.endswith(".photovfs-tmp")]
    empty_dirs = [d for d in tmpfs.rglob("*") if d.is_dir() and not any(d.iterdir())
                  and d.name != "lost+found"]
    assert empty_dirs == []


BATCH_CHILD = """
import sys
from pathlib import Path
from photovfs.library import Library
from photovfs.ingest import ingest_batch
from photovfs.ingest.pipeline import inbox_candidates
lib = Library.open(Path(sys.argv[1]))
ingest_batch(lib, list(inbox_candidates(lib)), quiet=0, workers=2, batch=8)
"""


@pytest.mark.parametrize("point", ["claimed", "filing", "linked", "filed", "removed"])
def test_a_crash_at_each_step_of_a_batch_leaves_every_file_in_the_inbox_or_filed_once(
        tmp_path, point):
    """The batched path (one transaction per stage for many files): kill -9 at each step."""
    import os
    import shutil

    root = tmp_path / "lib"
    lib = open_library(root)
    inbox = lib.config.inbox_dir
    digests = set()
    for i in range(20):
        p = jpeg_with_date(inbox / f"d{i % 2}" / f"IMG_{i:04d}.jpg", WHEN, make=f"Cam{i}",
                           size=(48, 32))
        digests.add(sha(p))
    shutil.copyfile(inbox / "d0" / "IMG_0000.jpg", inbox / "d1" / "TWIN.jpg")  # in-batch twin
    lib.close()
    env = {**os.environ, "PHOTOVFS_INGEST_CRASH_AT": point}
    proc = subprocess.run([sys.executable, "-c", BATCH_CHILD, str(root)], env=env)
    assert proc.returncode == -9
    check_batch(root, digests, twin=inbox / "d1" / "TWIN.jpg")
    # a clean run afterwards files everything exactly once
    proc = subprocess.run([sys.executable, "-c", BATCH_CHILD, str(root)])
    assert proc.returncode == 0
    left, filed = check_batch(root, digests, twin=inbox / "d1" / "TWIN.jpg")
    assert (left, filed) == (0, 20)


def check_batch(root: Path, digests: set[str], twin: Path) -> tuple[int, int]:
    import os

    from photovfs.catalog.models import Job

    open_library(root).close()  # recovery runs here (and finishes the twin's `dup` job, if any)
    aside = root.parent / "twin-aside.jpg"
    pending = twin.exists()
    if pending:  # judge the 20 distinct files; the twin is pending or a recorded duplicate
        os.rename(twin, aside)
    try:
        left, filed = check_exactly_once(root, None, digests)
    finally:
        if pending:
            os.rename(aside, twin)
    lib = open_library(root)
    try:
        with lib.session() as s:
            states = [j.state for j in s.scalars(select(Job))]
        assert not set(states) & {"claimed", "filing", "filed", "dup"}
        assert not any((lib.config.inbox_dir / ".photovfs-ingest").glob("[0-9]*"))
        assert not [p for p in root.rglob("*") if p.name.endswith(".photovfs-tmp")]
    finally:
        lib.close()
    return left, filed
