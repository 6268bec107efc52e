"""Backups to an rclone remote: a `crypt` remote over a local folder, configured by env vars only."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from photovfs.backup.dest import RcloneDest, is_remote
from photovfs.backup.engine import backup, check, done_generations, repair, restore
from test_backup import flip_one_byte, rewrite

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed")


@pytest.fixture
def crypt_remote(tmp_path, monkeypatch) -> tuple[str, Path]:
    vault = tmp_path / "vault"
    vault.mkdir()
    obscured = subprocess.run(["rclone", "obscure", "correct horse battery staple"],
                              capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setenv("RCLONE_CONFIG_SECRET_TYPE", "crypt")
    monkeypatch.setenv("RCLONE_CONFIG_SECRET_REMOTE", str(vault))
    monkeypatch.setenv("RCLONE_CONFIG_SECRET_PASSWORD", obscured)
    monkeypatch.setenv("RCLONE_CONFIG", os.devnull)
    return "secret:photos", vault


def test_a_backup_to_an_encrypted_remote_hides_names_and_restores_byte_for_byte(photo_dir, tmp_path, crypt_remote):
    url, vault = crypt_remote
    assert is_remote(url)
    r = backup(photo_dir, url)
    assert r["ok"], r
    stored = [p for p in vault.rglob("*") if p.is_file()]
    assert stored and not any("IMG_0001" in p.name or p.name == "MANIFEST.tsv" for p in stored)
    rewrite(photo_dir / "phone/IMG_0001.jpg", (3, 3, 3))
    second = backup(photo_dir, url)
    assert second["ok"] and second["copied"] == ["phone/IMG_0001.jpg"]
    assert len(done_generations(RcloneDest(url))) == 2

    target = tmp_path / "restored"
    res = restore(url, target)
    assert res["ok"], res
    for rel in ("2021/Italy/IMG_0001.jpg", "phone/IMG_0001.jpg", "old/scan.jpg"):
        assert (target / rel).read_bytes() == (photo_dir / rel).read_bytes()


def test_a_flipped_bit_is_repaired_from_an_encrypted_remote(photo_dir, crypt_remote):
    url, _vault = crypt_remote
    assert backup(photo_dir, url)["ok"]
    good = (photo_dir / "old/scan.jpg").read_bytes()
    flip_one_byte(photo_dir / "old/scan.jpg")
    r = backup(photo_dir, url, verify_sources="all")  # re-hash every unchanged source
    assert not r["ok"] and [c["path"] for c in r["corrupt"]] == ["old/scan.jpg"]
    fixed = repair(photo_dir)
    assert fixed["ok"] and fixed["repaired"][0]["from"].startswith("secret:photos/")
    assert (photo_dir / "old/scan.jpg").read_bytes() == good
    assert check(photo_dir)["ok"]
