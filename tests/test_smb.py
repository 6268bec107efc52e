"""Samba re-exporting a real FUSE mount: `photovfs samba-config` output in a private smbd."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import free_port, jpeg_with_date
from fuse_helpers import PHOTOVFS, Mount, requires_fuse, sha256, wait_for
from photovfs.library import Library

pytestmark = [
    requires_fuse,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("smbd") is None or shutil.which("smbclient") is None,
                       reason="samba/smbclient are not installed"),
]

DAY = "by-date/2021/04/30"


@pytest.fixture
def smb(library: Library, photo_dir: Path, tmp_path: Path):
    mnt = Mount(photo_dir, tmp_path / "mnt", tmp_path / "mount.log", "--no-scan")
    port = free_port()
    state = tmp_path / "samba"
    dirs = {k: state / k for k in ("private", "lock", "state", "pid", "cache", "ncalrpc")}
    for d in dirs.values():
        d.mkdir(parents=True)
    share = subprocess.run([str(PHOTOVFS), "samba-config", str(photo_dir), str(mnt.mnt),
                            "--guest", "--user", "root"], capture_output=True, text=True,
                           check=True).stdout
    conf = state / "smb.conf"
    conf.write_text(f"""[global]
   workgroup = WORKGROUP
   server role = standalone server
   smb ports = {port}
   interfaces = 127.0.0.1
   bind interfaces only = yes
   disable netbios = yes
   private dir = {dirs['private']}
   lock directory = {dirs['lock']}
   state directory = {dirs['state']}
   pid directory = {dirs['pid']}
   cache directory = {dirs['cache']}
   ncalrpc dir = {dirs['ncalrpc']}
   log file = {state}/log.%m
   map to guest = Bad User
   guest account = root
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   server min protocol = SMB2

{share}""")
    log = open(tmp_path / "smbd.log", "wb")
    proc = subprocess.Popen(["smbd", "--foreground", "--no-process-group", "--debug-stdout",
                             "-s", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # smbd signals its whole process group

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        if not wait_for(listening, 20):
            raise RuntimeError((tmp_path / "smbd.log").read_text())
        yield port, conf, mnt
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        mnt.stop()


def smbclient(port: int, conf: Path, cmd: str, cwd: Path | None = None):
    return subprocess.run(["smbclient", "//127.0.0.1/photos", "-p", str(port), "-N",
                           "-s", str(conf), "-m", "SMB3", "-c", cmd],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def test_samba_lists_gets_and_puts_through_the_fuse_mount(smb, library: Library,
                                                          tmp_path: Path):
    port, conf, mnt = smb
    res = smbclient(port, conf, "ls by-date/*")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2021" in res.stdout and "1999" in res.stdout
    res = smbclient(port, conf, f"ls {DAY}/*")
    assert "IMG_0001.jpg" in res.stdout and "IMG_0002.jpg" in res.stdout

    out = tmp_path / "got.jpg"
    res = smbclient(port, conf, f"get {DAY}/IMG_0001.jpg {out}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert sha256(out) == sha256(library.resolve(f"{DAY}/IMG_0001.jpg").source)

    new = jpeg_with_date(tmp_path / "upload.jpg", datetime(2023, 5, 6, 7, 8, 9), color=(9, 9, 9))
    res = smbclient(port, conf, f"put {new} inbox/upload.jpg")
    assert res.returncode == 0, res.stdout + res.stderr
    digest = sha256(new)

    def arrived() -> bool:
        p = library.config.inbox_dir / "upload.jpg"
        if p.exists() and sha256(p) == digest:
            return True
        return any(sha256(f) == digest for f in library.config.library.rglob("*.jpg")
                   if ".photovfs" not in f.parts)

    assert wait_for(arrived, 15)


def test_samba_refuses_writes_to_computed_views(smb, tmp_path: Path):
    port, conf, _mnt = smb
    new = jpeg_with_date(tmp_path / "x.jpg", datetime(2023, 1, 1))
    res = smbclient(port, conf, f"put {new} {DAY}/x.jpg")
    assert "NT_STATUS_ACCESS_DENIED" in res.stdout + res.stderr
    res = smbclient(port, conf, "mkdir by-date/2030")
    assert "NT_STATUS_ACCESS_DENIED" in res.stdout + res.stderr


def test_samba_albums_and_side_files(smb, library: Library, photo_dir: Path, tmp_path: Path):
    port, conf, mnt = smb
    res = smbclient(port, conf, "mkdir by-album/Trip")
    assert res.returncode == 0, res.stdout + res.stderr
    assert os.path.isdir(mnt.path("by-album/Trip"))
    # a Finder-style side file written over SMB lands in scratch, never among the photos
    side = tmp_path / "._IMG_0001.jpg"
    side.write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    before = sorted(p for p in photo_dir.rglob("*") if ".photovfs" not in p.parts)
    res = smbclient(port, conf, f"put {side} {DAY}/._IMG_0001.jpg")
    assert res.returncode == 0, res.stdout + res.stderr
    time.sleep(0.2)
    assert sorted(p for p in photo_dir.rglob("*") if ".photovfs" not in p.parts) == before
