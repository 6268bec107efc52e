"""A real `photovfs mount` in a subprocess, as users run it; shared by the FUSE and Samba tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PHOTOVFS = Path(sys.executable).with_name("photovfs")


def fuse_skip_reason() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent (run the container with --device /dev/fuse)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    try:
        import pyfuse3  # noqa: F401
        import trio  # noqa: F401
    except ImportError:
        return "pyfuse3/trio are not installed (pip install photovfs[fuse])"
    return None


requires_fuse = pytest.mark.skipif(fuse_skip_reason() is not None,
                                   reason=fuse_skip_reason() or "")


def sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_mounted(mnt: Path) -> bool:
    target = os.path.realpath(mnt)
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1] == target for line in fh)


class Mount:
    def __init__(self, library: Path, mnt: Path, log: Path, *args: str) -> None:
        self.library, self.mnt, self.log = library, mnt, log
        mnt.mkdir(parents=True, exist_ok=True)
        self._logfh = open(log, "ab")
        self.proc = subprocess.Popen([str(PHOTOVFS), "mount", str(library), str(mnt), *args],
                                     stdout=self._logfh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not is_mounted(mnt):
            if self.proc.poll() is not None:
                raise RuntimeError(f"photovfs mount exited: {log.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mount did not appear: {log.read_text()}")
            time.sleep(0.05)

    def path(self, vpath: str) -> Path:
        return self.mnt / vpath

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(5)
        else:
            rc = self.proc.returncode
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        self._logfh.close()
        return rc


def wait_for(cond, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
