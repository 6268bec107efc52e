"""A backup over SFTP: `rclone serve sftp` on loopback, started and stopped by the test itself."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import free_port
from photovfs.backup.dest import RcloneDest, is_remote
from photovfs.backup.engine import backup, check, done_generations, read_manifest, repair, restore
from test_backup import flip_one_byte, rewrite

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed")


@pytest.fixture
def sftp_remote(tmp_path, monkeypatch):
    """An SFTP server on 127.0.0.1 with a one-time user and password, serving tmp_path/served."""
    served = tmp_path / "served"
    served.mkdir()
    port, user, password = free_port(), "backup", secrets.token_hex(12)  # never "-..." (a flag)
    cache = tmp_path / "rclone-cache"  # the server's generated host key goes here
    server = subprocess.Popen(
        ["rclone", "--config", os.devnull, "--cache-dir", str(cache), "serve", "sftp",
         str(served), "--addr", f"127.0.0.1:{port}", "--user", user, "--pass", password],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode() if server.stderr else ""
                pytest.fail(f"rclone serve sftp did not start: {err[-500:]}")
            time.sleep(0.1)
        obscured = subprocess.run(["rclone", "obscure", password], capture_output=True, text=True,
                                  check=True).stdout.strip()
        monkeypatch.setenv("RCLONE_CONFIG", os.devnull)
        monkeypatch.setenv("RCLONE_CONFIG_NAS_TYPE", "sftp")
        monkeypatch.setenv("RCLONE_CONFIG_NAS_HOST", "127.0.0.1")
        monkeypatch.setenv("RCLONE_CONFIG_NAS_PORT", str(port))
        monkeypatch.setenv("RCLONE_CONFIG_NAS_USER", user)
        monkeypatch.setenv("RCLONE_CONFIG_NAS_PASS", obscured)
        yield "nas:photos", served
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_a_generation_over_sftp_is_checked_restored_and_repairs_from_it(photo_dir, tmp_path,
                                                                          sftp_remote):
    url, served = sftp_remote
    assert is_remote(url)
    first = backup(photo_dir, url)
    assert first["ok"], first
    # the bytes really went over SFTP into the served folder, as plain files in the library layout
    for rel in ("2021/Italy/IMG_0001.jpg", "phone/IMG_0001.jpg", "old/scan.jpg"):
        assert (served / "photos/current" / rel).read_bytes() == (photo_dir / rel).read_bytes()
    assert (served / "photos/generations" / first["generation"] / "DONE").exists()
    assert not [p for p in served.rglob("*.part")]

    rewrite(photo_dir / "phone/IMG_0001.jpg", (4, 4, 4))
    second = backup(photo_dir, url)
    assert second["ok"] and second["copied"] == ["phone/IMG_0001.jpg"], second
    dest = RcloneDest(url)
    assert done_generations(dest) == [first["generation"], second["generation"]]
    manifest = read_manifest(dest, second["generation"])
    assert len(manifest) == 5

    # check of the library is clean; a flipped bit is repaired from the SFTP copy
    assert check(photo_dir)["ok"]
    good = (photo_dir / "old/scan.jpg").read_bytes()
    flip_one_byte(photo_dir / "old/scan.jpg")
    assert [f["kind"] for f in check(photo_dir)["findings"]] == ["CORRUPT"]
    fixed = repair(photo_dir)
    assert fixed["ok"] and fixed["repaired"][0]["from"].startswith("nas:photos/"), fixed
    assert (photo_dir / "old/scan.jpg").read_bytes() == good

    # restore the newest generation and the first one, byte for byte
    target = tmp_path / "restored"
    res = restore(url, target)
    assert res["ok"], res
    for rel in manifest:
        assert (target / rel).read_bytes() == (photo_dir / rel).read_bytes(), rel
    old = restore(url, tmp_path / "first", generation=first["generation"])
    assert old["ok"], old
    assert (tmp_path / "first/phone/IMG_0001.jpg").read_bytes() != \
        (photo_dir / "phone/IMG_0001.jpg").read_bytes()
    assert (tmp_path / "first/phone/IMG_0001.jpg").stat().st_size == \
        (served / "photos/versions" / second["generation"] / "phone/IMG_0001.jpg").stat().st_size


def test_a_backup_to_an_sftp_server_that_is_down_fails_and_says_so(photo_dir, sftp_remote,
                                                                    monkeypatch):
    monkeypatch.setenv("RCLONE_CONFIG_NAS_PORT", str(free_port()))  # nobody listens there
    monkeypatch.setenv("RCLONE_CONTIMEOUT", "2s")
    monkeypatch.setenv("RCLONE_RETRIES", "1")
    monkeypatch.setenv("RCLONE_LOW_LEVEL_RETRIES", "1")
    r = backup(photo_dir, "nas:photos")
    assert not r["ok"] and r.get("error"), r
    assert not list(Path(sftp_remote[1]).rglob("DONE"))
