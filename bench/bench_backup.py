"""Backup benchmark: `photovfs backup`, `check` and `restore` next to rsync, rclone and sha256sum.

Run: python bench/bench_backup.py [--count 10000] [--min-mb 0.2] [--max-mb 3]

Generates a library of N distinct real JPEGs (a small EXIF-dated image followed by bytes from a
random pool, so each file is unique and between --min-mb and --max-mb, log-uniform: most photos
are small, a few are large), scans it, then times on the same tree, in this order:

  backup first      `photovfs backup LIB DEST` into an empty folder (copy + verify + manifest +
                    snapshot; durable with one syncfs before DONE)
  backup no change  the same again with nothing changed (sources verified at the first run are not
                    re-read: the default `due` fixity mode)
  backup 5%         5% of the files rewritten
  rsync -a          first and second run of `rsync -a LIB/ DEST/`, and the first + `sync`
                    (a generation is durable before it counts; rsync's copy is not), and
                    `rsync -a --fsync` (rsync >= 3.2.4: every file fsynced, the durable peer)
  rclone copy       first and second run of `rclone copy LIB DEST` (local to local)
  check             `photovfs check LIB` (full fixity: re-hash everything)
  sha256sum         `find LIB -type f | xargs sha256sum`: the floor for hashing
  restore           `photovfs restore DEST TARGET` (copy + verify every file + check of TARGET)

Every copy of the tree is deleted once it is measured (a 10,000-photo library is ~10 GB). `sync`
runs before each timed copy, so no phase pays for the previous one's writeback. Prints the load
average with the table and the ratios against the targets; never asserts: numbers depend on the
machine.
"""

from __future__ import annotations

import argparse
import io
import math
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

POOL = 8 << 20  # random bytes that pad each JPEG to its size (slices at random offsets)


def _jpeg(rng: random.Random, taken: datetime) -> bytes:
    img = Image.new("RGB", (64, 48), (rng.randrange(256), rng.randrange(256), 90))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def make_library(root: Path, count: int, min_mb: float, max_mb: float) -> int:
    """N unique photos in year/month folders (~100 per folder); return the total size in bytes."""
    rng = random.Random(7)
    pool = os.urandom(POOL)
    lo, hi = math.log(min_mb * 1e6), math.log(max_mb * 1e6)
    total = 0
    base = datetime(2012, 1, 1)
    for i in range(count):
        taken = base + timedelta(hours=3 * i)
        head = _jpeg(rng, taken)
        size = int(math.exp(rng.uniform(lo, hi)))
        pad = max(0, size - len(head))
        off = rng.randrange(0, POOL - min(pad, POOL - 1))
        body = pool[off:off + pad]
        if len(body) < pad:  # larger than the pool: repeat it (still unique: the head differs)
            body = (pool * (pad // POOL + 1))[:pad]
        path = root / f"{taken:%Y}" / f"{taken:%m}-{i // 100 % 4}" / f"IMG_{i:05}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(head)
            fh.write(body)
        total += len(head) + pad
    return total


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ok(report: dict) -> dict:
    if not report.get("ok"):
        raise SystemExit(f"benchmark run not green: {str(report)[:2000]}")
    return report


def _stages(report: dict) -> str:
    return ", ".join(f"{k} {v * 1000:.0f}" for k, v in report.get("stages", {}).items())


def _profile_no_change(lib_dir: Path, dest: Path, state: Path, rd: Path, n: int) -> None:
    """No-change backups alternating with `rsync -a` second runs (same tree, same moment): the
    wall and CPU time of each (CPU: this process, or rsync's children; find's children too for
    photovfs), the ratio of the medians, and the stages of the last backup (ms)."""
    import resource
    import statistics

    from photovfs.backup.engine import backup

    sh("rsync", "-a", f"{lib_dir}/", f"{rd}/")

    def children() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    ours, theirs, report = [], [], {}
    for _ in range(n):
        c0, k0, t0 = time.process_time(), children(), time.perf_counter()
        report = _ok(backup(lib_dir, str(dest), state_dir=state))
        ours.append((time.perf_counter() - t0, time.process_time() - c0 + children() - k0,
                     report.get("unchanged_fast")))
        k0, t0 = children(), time.perf_counter()
        sh("rsync", "-a", f"{lib_dir}/", f"{rd}/")
        theirs.append((time.perf_counter() - t0, children() - k0))
    shutil.rmtree(rd)
    for (w, c, fast), (rw, rc) in zip(ours, theirs, strict=True):
        print(f"  no change {w:.3f} s (cpu {c:.3f}, quick {fast})   rsync -a second {rw:.3f} s "
              f"(cpu {rc:.3f})   {w / rw:.2f}x   (load {load()})", file=sys.stderr)
    mo, mt = statistics.median(w for w, _, _ in ours), statistics.median(w for w, _ in theirs)
    print(f"  median: no change {mo:.3f} s, rsync -a second {mt:.3f} s: {mo / mt:.2f}x "
          f"(target <= 2)\n  stages: {_stages(report)}", file=sys.stderr, flush=True)


def _rsync_has_fsync() -> bool:
    """Whether this rsync has --fsync (3.2.4 and later)."""
    out = subprocess.run(["rsync", "--help"], capture_output=True, text=True, check=False)
    return "--fsync" in out.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--min-mb", type=float, default=0.2)
    ap.add_argument("--max-mb", type=float, default=3.0)
    ap.add_argument("--no-peers", action="store_true", help="photovfs only (for profiling)")
    ap.add_argument("--tmp", default=None, help="where to build the library (default: $TMPDIR)")
    ap.add_argument("--profile", action="store_true",
                    help="print each backup's stages (report['stages']) and repeat the no-change "
                    "run next to rsync -a's second run --repeat times")
    ap.add_argument("--repeat", type=int, default=5, help="no-change pairs with --profile")
    args = ap.parse_args()

    from photovfs.backup.engine import backup, check, restore
    from photovfs.library import Library

    tmp = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=args.tmp))
    rows: list[tuple[str, float, float | None]] = []
    loads = [load()]
    try:
        lib_dir = tmp / "lib"
        t0 = time.perf_counter()
        size = make_library(lib_dir, args.count, args.min_mb, args.max_mb)
        t_gen = time.perf_counter() - t0
        mbytes = size / 1e6

        def row(name: str, secs: float, mb: float | None = mbytes) -> None:
            rows.append((name, secs, (mb / secs) if mb is not None and secs > 0 else None))
            print(f"  {name:<30} {secs:>9.3f} s   (load {load()})", file=sys.stderr, flush=True)

        row("generate (setup)", t_gen)
        state = tmp / "state"  # outside the tree so that rsync/rclone copy the same bytes
        lib = Library.open(lib_dir, state_dir=state)
        row("scan (setup)", timed(lib.scan))
        lib.close()
        dest = tmp / "dest"
        sh("sync")
        reports: list[dict] = []
        row("backup first", timed(lambda: reports.append(
            _ok(backup(lib_dir, str(dest), state_dir=state)))))
        if args.profile:
            print(f"  stages: {_stages(reports[-1])}", file=sys.stderr)
        sh("sync")
        row("backup no change", timed(lambda: _ok(backup(lib_dir, str(dest), state_dir=state))))
        if args.profile:
            _profile_no_change(lib_dir, dest, state, tmp / "rsync-profile", args.repeat)
        if not args.no_peers and shutil.which("rsync"):
            rd = tmp / "rsync"
            sh("sync")
            row("rsync -a first", timed(lambda: sh("rsync", "-a", f"{lib_dir}/", f"{rd}/")))
            row("rsync -a second", timed(lambda: sh("rsync", "-a", f"{lib_dir}/", f"{rd}/")))
            shutil.rmtree(rd)
            sh("sync")
            row("rsync -a first + sync", timed(lambda: (sh("rsync", "-a", f"{lib_dir}/", f"{rd}/"),
                                                       sh("sync"))))
            shutil.rmtree(rd)
            if _rsync_has_fsync():  # the durable peer: rsync >= 3.2.4 fsyncs every file it wrote
                sh("sync")
                row("rsync -a --fsync first", timed(lambda: sh("rsync", "-a", "--fsync",
                                                               f"{lib_dir}/", f"{rd}/")))
                shutil.rmtree(rd)
        if not args.no_peers and shutil.which("rclone"):
            cd = tmp / "rclone"
            env_cfg = ["--config", os.devnull]
            sh("sync")
            row("rclone copy first", timed(lambda: sh("rclone", *env_cfg, "copy", str(lib_dir), str(cd))))
            row("rclone copy second", timed(lambda: sh("rclone", *env_cfg, "copy", str(lib_dir), str(cd))))
            shutil.rmtree(cd)
        row("check (full fixity)", timed(lambda: _ok(check(lib_dir, state_dir=state))))
        if not args.no_peers:
            row("sha256sum", timed(lambda: subprocess.run(
                f"find '{lib_dir}' -type f -print0 | xargs -0 sha256sum > /dev/null", shell=True,
                check=True)))
        target = tmp / "restored"
        sh("sync")
        row("restore", timed(lambda: _ok(restore(str(dest), target))))
        shutil.rmtree(target)
        files = sorted(lib_dir.rglob("*.jpg"))
        changed = files[: max(1, len(files) // 20)]
        for p in changed:
            with open(p, "ab") as fh:
                fh.write(b"edit")
        sh("sync")
        row("backup 5% rewritten", timed(lambda: _ok(backup(lib_dir, str(dest), state_dir=state))),
            sum(p.stat().st_size for p in changed) / 1e6)
        loads.append(load())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nlibrary: {args.count} files, {mbytes:.1f} MB ({args.min_mb}-{args.max_mb} MB each, "
          f"log-uniform); python {sys.version.split()[0]}; load average before {loads[0]}, "
          f"after {loads[-1]}\n")
    print(f"{'phase':<30} {'seconds':>9} {'MB/s':>9}")
    for name, secs, rate in rows:
        print(f"{name:<30} {secs:>9.3f} {rate:>9.1f}" if rate else f"{name:<30} {secs:>9.3f} {'-':>9}")
    t = {name: secs for name, secs, _ in rows}
    if "rsync -a first" in t:
        print(f"\nfirst backup vs rsync -a: {t['rsync -a first'] / t['backup first']:.2f}x its MB/s "
              f"(target >= 0.8); vs rsync -a + sync: "
              f"{t['rsync -a first + sync'] / t['backup first']:.2f}x")
        if "rsync -a --fsync first" in t:
            print(f"first backup vs rsync -a --fsync (durable, like a generation): "
                  f"{t['rsync -a --fsync first'] / t['backup first']:.2f}x its MB/s")
        print(f"no-change backup vs rsync -a second: "
              f"{t['backup no change'] / t['rsync -a second']:.2f}x its time (target <= 2)")
    if "sha256sum" in t:
        print(f"check vs sha256sum: {t['sha256sum'] / t['check (full fixity)']:.2f}x its MB/s "
              f"(target >= 0.8)")
    if "rclone copy first" in t:
        print(f"first backup vs rclone copy: {t['rclone copy first'] / t['backup first']:.2f}x its "
              f"MB/s; no change vs rclone second: "
              f"{t['backup no change'] / t['rclone copy second']:.2f}x its time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
