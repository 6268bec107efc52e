"""`photovfs check LIBRARY --replicas [--download N]` and the backup part of `photovfs status`:
each destination's newest generation against the catalog, real bytes re-hashed, nothing changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from photovfs.backup.engine import backup
from photovfs.cli import main
from photovfs.library import Library
from test_backup import rewrite
from test_backup_rclone import crypt_remote  # noqa: F401 - the fixture


def run(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file below root: (sha256, mtime_ns), to show that nothing changed."""
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                             p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def kinds(r: dict) -> set[tuple[str, str]]:
    return {(f["kind"], f["path"]) for f in r["findings"]}


def flip_byte_keep_time(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_faithful_folder_replica_checks_clean_and_every_kind_of_drift_is_named(photo_dir, tmp_path, capsys):
    dest = tmp_path / "dest"
    assert backup(photo_dir, str(dest))["ok"]
    code, r = run(capsys, "check", str(photo_dir), "--replicas", "--download", "100")
    assert code == 0 and r["ok"], r
    rep = r["replicas"][0]
    assert rep["dest"] == str(dest) and rep["downloaded"] == 5 and rep["age_hours"] < 1

    # the replica drifts: a file removed there, one rotted there (same size), an interrupted
    # later run; the library gains a photo and edits another since the generation
    (dest / "current/old/scan.jpg").unlink()
    flip_byte_keep_time(dest / "current/2021/Italy/IMG_0002.jpg")
    (dest / "generations/29990101T000000.000000Z").mkdir()
    jpeg_with_date(photo_dir / "new/fresh.jpg", datetime(2023, 1, 1))
    rewrite(photo_dir / "phone/IMG_0001.jpg", (9, 9, 9))
    (photo_dir / "2021/Italy/IMG_0001.jpg").unlink()
    lib = Library.open(photo_dir)
    lib.scan()
    lib.close()
    before_dest, before_lib = tree(dest), tree(photo_dir)

    code, r = run(capsys, "check", str(photo_dir), "--replicas")
    assert code == 1
    found = kinds(r)
    assert {("REPLICA_MISSING", "old/scan.jpg"), ("REPLICA_MISSING", "new/fresh.jpg"),
            ("REPLICA_DIFFERS", "phone/IMG_0001.jpg"), ("REPLICA_EXTRA", "2021/Italy/IMG_0001.jpg"),
            ("UNFINISHED", "generations/29990101T000000.000000Z")} == found, found
    # the rot at the destination shows only in its real bytes
    code, r = run(capsys, "check", str(photo_dir), "--replicas", "--download", "100")
    assert code == 1 and ("REPLICA_CORRUPT", "2021/Italy/IMG_0002.jpg") in kinds(r)
    assert r["replicas"][0]["downloaded"] == 4  # the generation's files still there
    assert tree(dest) == before_dest  # nothing changed at the destination...
    lib_now = tree(photo_dir)
    assert {k: v for k, v in lib_now.items() if ".photovfs" not in k} == \
        {k: v for k, v in before_lib.items() if ".photovfs" not in k}  # ...nor in the library

    # status: the generation's age and the last check's findings, human and --json
    code, st = run(capsys, "status", str(photo_dir))
    assert code == 0
    (entry,) = st["backup"]
    assert entry["dest"] == str(dest) and entry["age_hours"] is not None and entry["age_hours"] < 1
    assert entry["last_check"]["findings_total"] == 6 and entry["last_check"]["downloaded"] == 4
    assert main(["status", str(photo_dir)]) == 0
    out = capsys.readouterr().out
    assert "newest verified generation" in out and "REPLICA_CORRUPT" in out


def test_a_library_without_destinations_says_so(photo_dir, capsys):
    Library.open(photo_dir).scan()
    code, r = run(capsys, "check", str(photo_dir), "--replicas")
    assert code == 1 and [f["kind"] for f in r["findings"]] == ["NO_DESTINATION"]
    code, st = run(capsys, "status", str(photo_dir))
    assert code == 0 and st["backup"] == []


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed")
def test_an_encrypted_remote_is_checked_by_downloading_and_decrypting_real_bytes(photo_dir, tmp_path, capsys, crypt_remote):  # noqa: F811
    url, vault = crypt_remote
    r = backup(photo_dir, url)
    assert r["ok"], r
    code, r = run(capsys, "check", str(photo_dir), "--replicas", "--download", "5")
    assert code == 0 and r["replicas"][0]["downloaded"] == 5, r
    # damage the ciphertext of one photo in the vault (its name is encrypted: ask rclone)
    enc = subprocess.run(["rclone", "cryptdecode", "--reverse", "secret:",
                          "photos/current/old/scan.jpg"], capture_output=True, text=True,
                         check=True).stdout.split()[-1]
    stored = vault / enc
    assert stored.is_file()
    flip_byte_keep_time(stored)
    before = tree(vault)
    code, r = run(capsys, "check", str(photo_dir), "--replicas", "--download", "5")
    assert code == 1
    bad = [(f["kind"], f["path"]) for f in r["findings"]]
    assert bad in ([("REPLICA_CORRUPT", "old/scan.jpg")], [("REPLICA_UNREADABLE", "old/scan.jpg")])
    assert r["findings"][0]["dest"] == url and tree(vault) == before
