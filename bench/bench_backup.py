"""Backup benchmark: `photovfs backup` and `check` next to rsync, rclone and sha256sum.

Run: python bench/bench_backup.py [--count 200] [--mb 1.0]

Generates a library of N distinct real JPEGs (a small EXIF-dated image padded with random bytes after
its end marker, so each is ~MB large and unique), scans it, then times on the same tree:

  backup first      `photovfs backup LIB DEST` into an empty folder (copy + verify + manifest + snapshot)
  backup incr       the same again with nothing changed (re-hashes every source: bit-rot guard)
  backup incr 5%    5% of the files rewritten
  backup --quick    nothing changed, sources not re-hashed (catalog size/mtime trusted)
  rsync -a          first and second run of `rsync -a LIB/ DEST/` (and the first + `sync`: photovfs
                    makes a generation durable before it writes DONE, rsync does not)
  rclone copy       first and second run of `rclone copy LIB DEST` (local to local)
  check             `photovfs check LIB` (full fixity: re-hash everything)
  sha256sum         `find LIB -type f | xargs sha256sum`: the floor for hashing

Prints a table (seconds, MB/s of library size). Never asserts: numbers depend on the machine. Files
are written just before they are measured, so reads come from the page cache.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image


def make_library(root: Path, count: int, mb: float) -> int:
    rng = random.Random(7)
    total = 0
    base = datetime(2015, 1, 1)
    for i in range(count):
        img = Image.new("RGB", (64, 48), (rng.randrange(256), rng.randrange(256), 90))
        exif = Image.Exif()
        exif.get_ifd(0x8769)[0x9003] = (base + timedelta(hours=7 * i)).strftime("%Y:%m:%d %H:%M:%S")
        buf = io.BytesIO()
        img.save(buf, "JPEG", exif=exif.tobytes())
        path = root / f"{2015 + i % 8}" / f"roll{i % 17:02}" / f"IMG_{i:05}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = buf.getvalue() + os.urandom(int(mb * 1e6))
        path.write_bytes(data)
        total += len(data)
    return total


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--mb", type=float, default=1.0, help="approximate size of each file in MB")
    args = ap.parse_args()

    from photovfs.backup.engine import backup, check
    from photovfs.library import Library

    tmp = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    try:
        lib_dir = tmp / "lib"
        size = make_library(lib_dir, args.count, args.mb)
        state = tmp / "state"  # outside the tree so that rsync/rclone copy the same bytes
        lib = Library.open(lib_dir, state_dir=state)
        t_scan = timed(lib.scan)
        lib.close()
        rows: list[tuple[str, float, float | None]] = []
        mbytes = size / 1e6

        def row(name: str, secs: float, mb: float | None = mbytes) -> None:
            rows.append((name, secs, (mb / secs) if mb is not None and secs > 0 else None))

        row("scan (setup)", t_scan)
        dest = tmp / "dest"
        subprocess.run(["sync"], check=False)
        row("backup first", timed(lambda: backup(lib_dir, str(dest), state_dir=state)))
        row("backup incr (no change)", timed(lambda: backup(lib_dir, str(dest), state_dir=state)))
        row("backup --quick (no change)", timed(
            lambda: backup(lib_dir, str(dest), state_dir=state, verify_sources=False)))
        files = sorted(p for p in lib_dir.rglob("*.jpg"))
        changed = files[: max(1, len(files) // 20)]
        for p in changed:
            p.write_bytes(p.read_bytes() + b"edit")
        row("backup incr (5% rewritten)", timed(
            lambda: backup(lib_dir, str(dest), state_dir=state)),
            sum(p.stat().st_size for p in changed) / 1e6)
        if shutil.which("rsync"):
            rd = tmp / "rsync"
            sh("sync")
            row("rsync -a first", timed(lambda: sh("rsync", "-a", f"{lib_dir}/", f"{rd}/")))
            row("rsync -a second", timed(lambda: sh("rsync", "-a", f"{lib_dir}/", f"{rd}/")))
            rd2 = tmp / "rsync2"
            sh("sync")
            row("rsync -a first + sync", timed(lambda: (sh("rsync", "-a", f"{lib_dir}/", f"{rd2}/"),
                                                       sh("sync"))))
        if shutil.which("rclone"):
            cd = tmp / "rclone"
            env_cfg = ["--config", os.devnull]
            row("rclone copy first", timed(lambda: sh("rclone", *env_cfg, "copy", str(lib_dir), str(cd))))
            row("rclone copy second", timed(lambda: sh("rclone", *env_cfg, "copy", str(lib_dir), str(cd))))
        lib = Library.open(lib_dir, state_dir=state)
        lib.scan()
        lib.close()
        row("check (full fixity)", timed(lambda: check(lib_dir, state_dir=state)))
        row("check --budget 10%", timed(lambda: check(lib_dir, state_dir=state, budget="10%")),
            mbytes * 0.1)
        row("sha256sum", timed(lambda: subprocess.run(
            f"find '{lib_dir}' -type f -print0 | xargs -0 sha256sum > /dev/null", shell=True,
            check=True)))
        print(f"\nlibrary: {args.count} files, {mbytes:.1f} MB in {lib_dir}  (python {sys.version.split()[0]})\n")
        print(f"{'phase':<30} {'seconds':>9} {'MB/s':>9}")
        for name, secs, rate in rows:
            print(f"{name:<30} {secs:>9.3f} {rate:>9.1f}" if rate else f"{name:<30} {secs:>9.3f} {'-':>9}")
        t = {name: secs for name, secs, _ in rows}
        if "rsync -a first" in t:
            print(f"\nfirst backup vs rsync -a: {t['rsync -a first'] / t['backup first']:.2f}x its MB/s "
                  f"(target >= 0.8); vs rsync -a + sync: "
                  f"{t['rsync -a first + sync'] / t['backup first']:.2f}x")
            print(f"no-change backup vs rsync -a second: "
                  f"{t['backup incr (no change)'] / t['rsync -a second']:.1f}x its time (target <= 2)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
