"""The mount's background work (renditions, faces) runs beside the request loop, never in its way.

A real `photovfs mount` with `[background]` on and many renditions pending: listings over the mount
keep answering, the work still completes in a child process of the mount, and that child ends with
the mount -- also when the daemon is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from fuse_helpers import Mount, is_mounted, requires_fuse, wait_for
from photovfs.background import faces_available, missing_renditions, read_status
from photovfs.library import Library
from PIL import Image

pytestmark = requires_fuse

HANG_GUARD = 10.0  # seconds: a listing that takes this long is starved, not slow
FLAT = 2000  # entries of the folder listed while the work runs
BIG = 24  # photos whose renditions are pending at mount time

CONFIG = """
[thumbnails]
view_size = 1024
workers = 1
[background]
faces = {faces}
fixity = false
poll_seconds = 0.5
"""


def _noise_jpeg(path: Path, i: int) -> None:
    """A 2400x1600 photo of noise: a real decode (hundreds of ms) for its rendition."""
    img = Image.effect_noise((2400, 1600), 60 + i).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = f"2022:05:{1 + i % 28:02} 12:00:00"
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90, exif=exif.tobytes())


@pytest.fixture(scope="module")
def busy_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scanned, nothing rendered: BIG big photos and a FLAT-entry folder of small ones."""
    root = tmp_path_factory.mktemp("bg") / "Photos"
    for i in range(BIG):
        _noise_jpeg(root / "big" / f"IMG_{i:04}.jpg", i)
    for i in range(FLAT):
        jpeg_with_date(root / "flat" / f"f{i:05}.jpg", datetime(2020, 1, 1, 12, 0, i % 60),
                       size=(16, 12))
    state = root / ".photovfs"
    state.mkdir(parents=True)
    # faces too when dlib is there: its detector holds the GIL for long stretches
    (state / "config.toml").write_text(CONFIG.format(faces=str(faces_available()).lower()))
    lib = Library.open(root)
    lib.scan()
    lib.close()
    return root


def _pending(root: Path) -> int:
    lib = Library.open(root)
    try:
        return len(missing_renditions(lib, [lib.config.thumbnails.view_size])[0])
    finally:
        lib.close()


def _manager(root: Path) -> dict:
    return read_status(root / ".photovfs").get("manager", {})


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _ls_l(folder: Path) -> int:
    """`ls -l` of a folder within the hang guard; the number of entries it printed."""
    out = subprocess.run(["ls", "-l", str(folder)], capture_output=True, text=True, check=True,
                         timeout=HANG_GUARD).stdout
    return len(out.splitlines()) - 1  # "total N"


def _child_of(mount: Mount, root: Path) -> int:
    """The pid of the mount's background process (its status entry names its parent)."""
    assert wait_for(lambda: _manager(root).get("parent_pid") == mount.proc.pid, 60), \
        f"no background process of the mount: {_manager(root)}"
    pid = _manager(root)["pid"]
    assert pid != mount.proc.pid
    return pid


def test_listings_answer_while_renditions_are_made_and_the_work_completes(busy_library: Path,
                                                                           tmp_path: Path):
    root = busy_library
    assert _pending(root) == BIG + FLAT
    mount = Mount(root, tmp_path / "mnt", tmp_path / "mount.log", "--no-scan")
    try:
        child = _child_of(mount, root)
        assert wait_for(lambda: _pending(root) < BIG + FLAT, 60, 0.5), "no rendition was made"
        listed = 0
        while _pending(root) > 0 and listed < 5:  # while the work is under way
            assert _ls_l(mount.path("originals/flat")) == FLAT
            assert _ls_l(mount.path("by-date/2020/01/01")) == FLAT
            listed += 1
        assert listed >= 1, "the work finished before anything was listed: make it bigger"
        assert wait_for(lambda: _pending(root) == 0, 300, 0.5), "the renditions never completed"
        assert wait_for(lambda: read_status(root / ".photovfs").get("renditions", {})
                        .get("state") == "idle", 30)
        assert _alive(child)
    finally:
        assert mount.stop() == 0, (tmp_path / "mount.log").read_text()
    assert not is_mounted(mount.mnt)
    assert wait_for(lambda: not _alive(child), 5), "the background process outlived the mount"
    assert _manager(root)["running"] is False


def test_a_killed_daemon_leaves_no_background_process_behind(busy_library: Path, tmp_path: Path):
    mount = Mount(busy_library, tmp_path / "mnt", tmp_path / "mount.log", "--no-scan")
    try:
        child = _child_of(mount, busy_library)
        os.kill(mount.proc.pid, signal.SIGKILL)
        mount.proc.wait(10)
        # the pipe to the dead parent reads EOF: the child stops its work and exits
        assert wait_for(lambda: not _alive(child), 60), "an orphan kept working"
        assert _manager(busy_library)["running"] is False
    finally:
        mount.stop()
    assert not is_mounted(mount.mnt)


def test_background_off_starts_no_process(busy_library: Path, tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text("[background]\nenabled = false\n")
    before = _manager(busy_library).get("started_at")
    mount = Mount(busy_library, tmp_path / "mnt", tmp_path / "mount.log", "--no-scan",
                  "--config", str(config))
    try:
        assert _ls_l(mount.path("originals/flat")) == FLAT
        time.sleep(1.0)
        assert _manager(busy_library).get("started_at") == before
    finally:
        mount.stop()
