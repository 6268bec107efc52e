"""`kill -9` of `photovfs backup` (the real CLI, in a subprocess) at seeded random moments while
photos are ingested and albums edited in this process: the next run completes, and a restore of the
newest finished generation is a consistent library that lists what its manifest says."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from ingest_helpers import open_library, put
from photovfs.backup.dest import LocalDest
from photovfs.backup.engine import done_generations, is_original, read_manifest, restore
from photovfs.catalog.models import Asset
from photovfs.library import Library
from sqlalchemy import select

CLI = [str(Path(sys.executable).with_name("photovfs"))] \
    if Path(sys.executable).with_name("photovfs").exists() else [sys.executable, "-m", "photovfs.cli"]


def padded_jpeg(path: Path, when: datetime, color, pad: int) -> Path:
    jpeg_with_date(path, when, color=color)
    with open(path, "ab") as fh:  # bytes after the end marker: a bigger file, still a valid JPEG
        fh.write(os.urandom(pad))
    return path


def run_backup(lib_dir: Path, dest: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "backup", str(lib_dir), str(dest), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def walk_files(lib: Library, path: str) -> list:
    out = []
    for n in lib.list(path):
        if n.is_dir:
            out += walk_files(lib, f"{path}/{n.name}")
        else:
            out.append(n)
    return out


class Activity:
    """Ingest through the inbox and album edits, in threads, until stopped."""

    def __init__(self, lib: Library, tmp: Path, seed: int) -> None:
        self.lib, self.tmp, self.rng = lib, tmp, random.Random(seed)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.ingested = self.album_ops = 0
        self.threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                        for f in (self._ingest, self._albums)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _guard(self, fn) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def _ingest(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            src = padded_jpeg(self.tmp / "src" / f"NEW_{i:04}.jpg",
                              datetime(2023, 5, 1) + timedelta(hours=i), (i % 250, 40, 90), 20_000)
            put(self.lib, f"inbox/NEW_{i:04}.jpg", src.read_bytes())
            self.ingested += 1
            self.stop.wait(0.02)

    def _albums(self) -> None:
        lib, k = self.lib, 0
        while not self.stop.is_set():
            k += 1
            album = f"by-album/Kill {k % 4}"
            try:
                lib.mkdir(album)
            except Exception:  # noqa: BLE001 - exists already
                pass
            photos = walk_files(lib, "by-date/2020")
            for n in self.rng.sample(photos, min(4, len(photos))):
                try:
                    lib.copy(n.path, f"{album}/{n.name}")
                except Exception:  # noqa: BLE001 - already in the album
                    pass
            members = lib.list(album)
            for n in self.rng.sample(members, min(2, len(members))):
                lib.remove(f"{album}/{n.name}")
            self.album_ops += 1
            self.stop.wait(0.03)


def assert_consistent_restore(dest: Path, gen: str, target: Path) -> dict:
    res = restore(str(dest), target, generation=gen)
    assert res["ok"], res  # includes `check` of the target: no MISSING, UNTRACKED, CORRUPT
    manifest = read_manifest(LocalDest(dest), gen)
    meta = json.loads((dest / "generations" / gen / "metadata.json").read_text())
    # no orphan rows
    with sqlite3.connect(target / ".photovfs/catalog.db") as c:
        q = lambda sql: c.execute(sql).fetchone()[0]  # noqa: E731
        assert q("SELECT count(*) FROM album_assets WHERE asset_id NOT IN (SELECT id FROM assets)"
                 " OR album_id NOT IN (SELECT id FROM albums)") == 0
        assert q("SELECT count(*) FROM asset_people WHERE asset_id NOT IN (SELECT id FROM assets)"
                 " OR person_id NOT IN (SELECT id FROM people)") == 0
        assert q("SELECT count(*) FROM asset_keywords WHERE asset_id NOT IN "
                 "(SELECT id FROM assets)") == 0
        rows = c.execute("SELECT folder, filename FROM assets WHERE status != 'trashed'").fetchall()
    on_disk = {p.relative_to(target).as_posix() for p in target.rglob("*")
               if p.is_file() and ".photovfs" not in p.relative_to(target).parts}
    catalogued = {f"{f}/{n}".lstrip("/") for f, n in rows}
    originals = {p for p in manifest if is_original(p)}
    assert catalogued == originals  # every row has its file, every original its row
    assert on_disk == set(manifest) - {p for p in manifest if p.startswith(".photovfs/")}
    # the folders a client sees agree with the manifest and metadata.json
    lib = Library.open(target)
    try:
        with lib.session() as s:
            path_of = {a.id: f"{a.folder}/{a.filename}".lstrip("/")
                       for a in s.scalars(select(Asset))}
        by_date = [path_of[n.asset_id] for n in walk_files(lib, "by-date")]
        assert sorted(by_date) == sorted(originals)
        for album in meta["albums"]:
            if album["trashed"]:
                continue
            listed = sorted(path_of[n.asset_id] for n in lib.list(f"by-album/{album['path']}")
                            if not n.is_dir)
            assert listed == album["members"], album["path"]
    finally:
        lib.close()
    return {"files": len(manifest), "albums": len(meta["albums"])}


@pytest.mark.slow
def test_kill_9_of_backup_at_random_moments_during_ingest_and_album_edits(tmp_path):
    lib_dir = tmp_path / "lib"
    for i in range(120):
        padded_jpeg(lib_dir / "2020" / f"roll{i % 6}" / f"IMG_{i:04}.jpg",
                    datetime(2020, 3, 1) + timedelta(hours=5 * i), (i * 2, 100, 50), 150_000)
    lib = open_library(lib_dir)
    lib.scan()
    dest = tmp_path / "dest"
    # how long one uninterrupted run takes here (into another folder), to spread the kills over it
    t = time.monotonic()
    probe = run_backup(lib_dir, tmp_path / "probe")
    probe.communicate(timeout=120)
    assert probe.returncode == 0
    duration = time.monotonic() - t
    rng = random.Random(20261123)
    kills = []
    with Activity(lib, tmp_path, seed=7) as act:
        for _ in range(6):
            proc = run_backup(lib_dir, dest)
            at = rng.uniform(0.1, 1.1) * duration
            try:
                proc.communicate(timeout=at)
                kills.append((round(at, 2), "finished first"))
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL: no cleanup of any kind
                proc.communicate()
                kills.append((round(at, 2), "killed"))
        assert any(k == "killed" for _, k in kills), kills
        # the next run completes, with ingest and album edits still going on
        proc = run_backup(lib_dir, dest)
        out, err = proc.communicate(timeout=180)
        assert out, (proc.returncode, err[-3000:])  # a report, not a crash
        report = json.loads(out)
        assert report["generation"] and not report.get("error"), (report, err[-2000:])
        assert not report["corrupt"], report
    assert not act.errors, act.errors
    assert act.ingested > 0 and act.album_ops > 0
    gens = done_generations(LocalDest(dest))
    assert report["generation"] == gens[-1]
    assert not [p for p in (dest / "current").rglob("*.part")]  # a killed run's leftovers are gone
    summary = assert_consistent_restore(dest, gens[-1], tmp_path / "restored")
    assert summary["files"] >= 120
    # with everything quiet, a run is green and the newest generation restores as well
    final = subprocess.run([*CLI, "backup", str(lib_dir), str(dest), "--json"],
                           capture_output=True, timeout=180)
    assert final.returncode == 0, final.stdout[-3000:]
    last = json.loads(final.stdout)["generation"]
    assert_consistent_restore(dest, last, tmp_path / "restored-last")
    lib.close()
