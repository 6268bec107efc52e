"""photovfs.background: renditions, faces, fixity and scheduled backups without any request.

Real files throughout: Pillow JPEGs, a real SQLite catalog, real worker processes, a real local
backup destination.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from photovfs.background import Background, read_status
from photovfs.cli import main
from photovfs.config import load_config
from photovfs.library import Library
from photovfs.roles import SYSTEM
from PIL import Image

CONFIG = """
[thumbnails]
view_size = {size}
workers = {workers}
[background]
faces = {faces}
fixity = {fixity}
poll_seconds = 0.2
backup_debounce_seconds = 0.3
"""


def _lib(root: Path, tmp_path: Path, *, size: int = 64, workers: int = 2, faces: bool = False,
         fixity: bool = False) -> Library:
    state = root / ".photovfs"
    state.mkdir(parents=True, exist_ok=True)
    (state / "config.toml").write_text(CONFIG.format(
        size=size, workers=workers, faces=str(faces).lower(), fixity=str(fixity).lower()))
    return Library(load_config(root))


def _photo(path: Path, day: int = 1, size=(640, 480), color=(20, 90, 200)) -> Path:
    return jpeg_with_date(path, datetime(2022, 6, day, 12, 0, 0), size=size, color=color)


def _renditions(lib: Library) -> dict[str, tuple[int, int]]:
    """{file name: (inode, mtime_ns)} of every finished rendition in the cache."""
    out = {}
    for p in (lib.config.state_dir / "renditions").rglob("*.jpg"):
        if not p.name.startswith(".tmp-"):
            st = p.stat()
            out[p.name] = (st.st_ino, st.st_mtime_ns)
    return out


def _all_cached(lib: Library) -> bool:
    from photovfs.background import missing_renditions

    return not missing_renditions(lib, [lib.config.thumbnails.view_size])[0]


def _wait(cond, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_after_a_scan_every_asset_gets_its_rendition_without_a_request(photo_dir, tmp_path):
    lib = _lib(photo_dir, tmp_path)
    lib.scan()
    assert not _all_cached(lib)
    bg = Background(lib).start()
    try:
        assert _wait(lambda: _all_cached(lib) and bg.runs["renditions"] >= 1)
    finally:
        bg.stop()
    from photovfs.ops import _renditions

    r = _renditions(lib)
    before = r.renders
    for folder in ("thumbnails/by-date/2021/04/30", "thumbnails/originals/old"):
        for node in lib.list(folder):
            if not node.is_dir:
                assert node.size == node.source.stat().st_size
    assert r.renders == before  # the listing found everything made: no decode in the request
    status = read_status(lib.config.state_dir)["renditions"]
    assert status["state"] == "idle" and status["pending"] == 0
    lib.close()


def test_a_new_ingest_gets_its_rendition_and_its_faces(tmp_path):
    faces = True
    try:
        import dlib  # noqa: F401
    except ImportError:
        faces = False
    root = tmp_path / "lib"
    _photo(root / "a.jpg")
    lib = _lib(root, tmp_path, faces=faces)
    lib.scan()
    bg = Background(lib).start()
    try:
        assert _wait(lambda: _all_cached(lib))
        new = lib.config.inbox_dir / "new.jpg"
        _photo(new, day=2, color=(200, 200, 10))
        lib.inbox_arrived(new, SYSTEM)  # what a finished PUT / FUSE close does
        assert not new.exists()
        assert _wait(lambda: len(_renditions(lib)) == 2)
        if faces:
            from photovfs.people.pipeline import pending

            assert _wait(lambda: not pending(lib)[0])
            # the status file is written by the loop after the work: it may lag a moment
            assert _wait(lambda: read_status(lib.config.state_dir)["faces"]["pending"] == 0)
    finally:
        bg.stop()
    lib.close()
    if not faces:
        pytest.skip("rendition checked; the `faces` extra (dlib) is not importable")


def test_a_registered_destination_gets_a_generation_after_ingest(tmp_path):
    from photovfs.backup.dest import open_dest
    from photovfs.backup.engine import done_generations, read_manifest

    root = tmp_path / "lib"
    _photo(root / "a.jpg")
    dest = tmp_path / "backup"
    assert main(["backup", "add", str(root), str(dest), "--schedule", "after-ingest"]) == 0
    lib = _lib(root, tmp_path)
    lib.scan()
    bg = Background(lib).start()
    try:
        # never backed up: due at once
        assert _wait(lambda: len(done_generations(open_dest(str(dest)))) == 1)
        new = lib.config.inbox_dir / "b.jpg"
        _photo(new, day=3, color=(10, 200, 10))
        lib.inbox_arrived(new, SYSTEM)
        assert _wait(lambda: len(done_generations(open_dest(str(dest)))) == 2)
    finally:
        bg.stop()
    d = open_dest(str(dest))
    manifest = read_manifest(d, done_generations(d)[-1])
    assert any(p.endswith("b.jpg") for p in manifest)
    entry = [x for x in __import__("json").loads(
        (lib.config.state_dir / "backup-destinations.json").read_text())][0]
    assert entry["schedule"] == "after-ingest" and entry["last_generation"] == done_generations(d)[-1]
    lib.close()


def test_status_prints_the_background_sections(photo_dir, tmp_path, capsys):
    lib = _lib(photo_dir, tmp_path, fixity=True)
    lib.scan()
    main(["backup", "add", str(photo_dir), str(tmp_path / "dest"), "--schedule", "daily"])
    bg = Background(lib).start()
    try:
        assert _wait(lambda: bg.runs["fixity"] >= 1 and bg.runs["renditions"] >= 1
                     and bg.runs["backup"] >= 1)
    finally:
        bg.stop()
    lib.close()
    capsys.readouterr()
    assert main(["status", str(photo_dir)]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "renditions (64 px): " in out and "0 pending" in out
    assert "faces: " in out and "photos pending" in out
    assert "fixity: last check" in out and "never verified" in out
    assert "backups:" in out and "(daily): last verified generation 2" in out
    assert " h ago" in out


def test_stopping_mid_way_and_restarting_redoes_nothing(tmp_path):
    root = tmp_path / "lib"
    for i in range(16):
        _photo(root / f"p{i:02}.jpg", day=1 + i % 20, size=(2400, 1600), color=(i * 12, 50, 90))
    lib = _lib(root, tmp_path, size=1024, workers=1)
    lib.scan()
    bg = Background(lib).start()
    assert _wait(lambda: len(_renditions(lib)) >= 3)
    bg.stop()
    first = _renditions(lib)
    assert 3 <= len(first) < 16
    bg = Background(lib).start()
    try:
        assert _wait(lambda: _all_cached(lib) and bg.runs["renditions"] >= 1)
    finally:
        bg.stop()
    after = _renditions(lib)
    assert len(after) == 16
    assert {k: after[k] for k in first} == first  # same inode and mtime: not made again
    last = read_status(lib.config.state_dir)["renditions"]["last_run"]
    assert last["made"] == 16 - len(first)
    lib.close()


def test_kill_9_mid_way_then_restart_resumes(tmp_path):
    root = tmp_path / "lib"
    for i in range(16):
        _photo(root / f"p{i:02}.jpg", size=(2400, 1600), color=(i * 12, 90, 50))
    lib = _lib(root, tmp_path, size=1024, workers=1)
    lib.scan()
    lib.close()
    script = textwrap.dedent(f"""
        import time
        from photovfs.library import Library
        from photovfs.background import Background
        lib = Library.open({str(root)!r})
        Background(lib).start()
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    lib = Library.open(root)
    try:
        assert _wait(lambda: len(_renditions(lib)) >= 3, 120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)
    first = _renditions(lib)
    assert len(first) < 16
    bg = Background(lib).start()
    try:
        assert _wait(lambda: _all_cached(lib) and bg.runs["renditions"] >= 1)
    finally:
        bg.stop()
    after = _renditions(lib)
    assert {k: after[k] for k in first} == first
    assert read_status(lib.config.state_dir)["renditions"]["last_run"]["made"] == 16 - len(first)
    for p in (lib.config.state_dir / "renditions").rglob("*.jpg"):
        with Image.open(p) as im:
            im.load()  # no half-written JPEG was published
    lib.close()


def test_thumbs_cli_makes_sizes_in_parallel_and_is_idempotent(photo_dir, capsys):
    (photo_dir / "old" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Library.open(photo_dir).close()
    assert main(["scan", str(photo_dir)]) == 0
    capsys.readouterr()
    code = main(["thumbs", str(photo_dir), "--sizes", "32,64"])
    out = capsys.readouterr().out
    lib = Library.open(photo_dir)
    visible = len(__import__("photovfs.background", fromlist=["x"]).visible_assets(lib))
    lib.close()
    good = visible - 1
    assert code == 1  # the broken file is reported
    assert f"renditions 32,64 px: {2 * good} made, 0 cached, 2 failed" in out
    assert "failed  old/broken.jpg@32: BadMedia" in out
    code = main(["thumbs", str(photo_dir), "--sizes", "32,64"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"renditions 32,64 px: 0 made, {2 * good} cached, 2 failed" in out
    for p in (photo_dir / ".photovfs" / "renditions").rglob("*.jpg"):
        with Image.open(p) as im:
            assert max(im.size) in (32, 64)


def test_first_listing_of_a_50_photo_day_with_nothing_cached(tmp_path):
    """The number quoted in docs/thumbnails.md (run with -s to see it)."""
    root = tmp_path / "lib"
    import random

    rnd = random.Random(5)
    for i in range(50):
        img = Image.effect_noise((3000, 2000), 40).convert("RGB")
        img = Image.merge("RGB", [b.point(lambda v, k=k: (v + k) % 256)
                                  for k, b in zip((rnd.randrange(256), 80, 160), img.split(),
                                                  strict=True)])
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = f"2023:07:14 10:{i:02}:00"
        root.mkdir(exist_ok=True)
        img.save(root / f"IMG_{i:04}.jpg", "JPEG", quality=90, exif=exif.tobytes())
    lib = Library.open(root)  # defaults: view_size 1920, 2 workers
    lib.scan()
    t0 = time.monotonic()
    nodes = lib.list("thumbnails/by-date/2023/07/14")
    cold = time.monotonic() - t0
    t0 = time.monotonic()
    again = lib.list("thumbnails/by-date/2023/07/14")
    warm = time.monotonic() - t0
    assert len(nodes) == len(again) == 50
    print(f"\nfirst listing of 50 photos 3000x2000 under thumbnails/, nothing cached: {cold:.2f} s "
          f"({os.cpu_count()} CPUs, thumbnails.workers=2); second listing: {warm * 1000:.0f} ms")
    lib.close()


def _running(pid: int) -> bool:
    """Alive (a zombie waiting for its reaper counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_serve_runs_the_work_in_a_child_process_that_stops_with_it(photo_dir, tmp_path):
    """The work holds the GIL for long stretches (faces, bookkeeping): out of the server's way."""
    from conftest import free_port

    lib = _lib(photo_dir, tmp_path)
    lib.close()
    proc = subprocess.Popen([sys.executable, "-m", "photovfs.cli", "serve", str(photo_dir),
                             "--port", str(free_port())], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert _wait(lambda: read_status(photo_dir / ".photovfs").get("manager", {})
                     .get("parent_pid") == proc.pid)
        child = read_status(photo_dir / ".photovfs")["manager"]["pid"]
        assert child != proc.pid and _running(child)
        lib = Library.open(photo_dir)
        try:
            assert _wait(lambda: _all_cached(lib))  # the work itself still gets done
        finally:
            lib.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _wait(lambda: not _running(child), 10), "the background process outlived the server"
    assert read_status(photo_dir / ".photovfs")["manager"]["running"] is False
