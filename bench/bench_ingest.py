"""Ingest throughput and latency on camera-sized JPEGs. Prints a table; never asserts times.

    python bench/bench_ingest.py [--count N] [--kb SIZE] [--workers W] [--threads] [--latency K] [--profile F]

Default: 1,000 files of ~200 KB (about 200 MB; finishes in well under 2 minutes on a laptop SSD).
`--count 10000` is the full-size run the issue describes (~2 GB of disk, several minutes).

Rows:
  copy+sha256       a plain copy of every file plus a sha256 pass: the floor any ingest pays
  bare verify       `metadata.verify` (the decode ingest must do: every JPEG block entropy-decoded)
                    of every file in the same pool, nothing else: the realistic ceiling for ingest
  inbox ingest      the same files dropped into the on-disk inbox and ingested by the batch
                    pipeline `ingest_batch` (what `photovfs ingest` runs): verify = full decode,
                    sha256, metadata in worker processes; filing, catalog, journal in this one
  ingest (threads)  with --threads: the same pipeline with its CPU work in threads (the pipeline
                    before worker processes), on its own copy of the files, in the same run
  per-file ingest   `ingest_inbox_file` per file in the same pool (the path a single PUT and the
                    watcher take), on the first --per-file files (default 200)
  PUT -> by-date    latency from a finished PUT (core begin_write/commit, what WebDAV calls) to
                    the photo resolving under by-date/ (ingest is synchronous in the PUT thread)
  on-disk -> by-date  latency for a file written straight into the inbox with the Watcher running
                    (dominated by ingest.quiet_seconds, set to 1 s here)

After the table: the load average, CPU milliseconds per file of each ingest row (this process and
its worker processes: the cost that does not depend on the machine's load), the batch pipeline's
time per stage (`ingest_batch(timings=...)`), and with
`--profile F` a cProfile of every thread of the inbox ingest (also saved to F for pstats).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from photovfs.library import Library
from PIL import Image


def base_jpeg(kb: int) -> bytes:
    """A noisy 'camera' JPEG of about `kb` KB with an EXIF capture date."""
    import io

    side = int((kb * 1024 / 1.1) ** 0.5)
    img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "BenchCam", "B-1"  # Make, Model: every camera writes them
    exif.get_ifd(0x8769)[0x9003] = "2021:04:30 09:42:39"
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75, exif=exif.tobytes())
    return buf.getvalue()


def variant(base: bytes, i: int) -> bytes:
    """Distinct bytes, same image: a COM segment right after SOI."""
    text = f"bench {i}".encode()
    return base[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + base[2:]


def open_lib(root: Path, quiet: float = 1.0) -> Library:
    (root / ".photovfs").mkdir(parents=True, exist_ok=True)
    (root / ".photovfs" / "config.toml").write_text(f"[ingest]\nquiet_seconds = {quiet}\n")
    return Library.open(root)


def _start_profile() -> list:
    """cProfile every thread (the pool workers too): one Profile per thread, merged at the end."""
    import cProfile
    import threading

    profs: list = []

    def per_thread(*_a) -> None:
        pr = cProfile.Profile()
        profs.append(pr)
        sys.setprofile(None)
        pr.enable()

    main_pr = cProfile.Profile()
    profs.append(main_pr)
    threading.setprofile(per_thread)
    main_pr.enable()
    return profs


def _stop_profile(profs: list, out: Path) -> None:
    import pstats
    import threading

    threading.setprofile(None)  # type: ignore[arg-type]
    for pr in profs:
        pr.disable()
    stats = pstats.Stats(*profs)
    stats.dump_stats(out)
    stats.sort_stats("tottime").print_stats(25)


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its finished children (the ingest worker processes)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _cpu_since(before: tuple[float, float]) -> tuple[float, float]:
    now = _cpu()
    return now[0] - before[0], now[1] - before[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--kb", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--latency", type=int, default=20, help="PUTs timed for latency")
    ap.add_argument("--per-file", type=int, default=200, help="files for the per-file row (0: skip)")
    ap.add_argument("--dir", type=Path, default=None, help="where to work (default: a temp dir)")
    ap.add_argument("--threads", action="store_true",
                    help="also run the batch pipeline with its CPU work in threads (same run)")
    ap.add_argument("--profile", type=Path, default=None,
                    help="also write a cProfile of the inbox ingest (every thread) to this file")
    args = ap.parse_args()
    from photovfs.ingest import ingest_batch, ingest_inbox_file
    from photovfs.ingest.pipeline import inbox_candidates
    from photovfs.metadata import verify

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.dir))
    rows = []
    cpu_rows: list[tuple[str, tuple[float, float]]] = []
    load = [os.getloadavg()[0]]
    try:
        base = base_jpeg(args.kb)
        src = work / "src"
        src.mkdir()
        for i in range(args.count):
            (src / f"IMG_{i:05d}.jpg").write_bytes(variant(base, i))
        total_mb = sum(p.stat().st_size for p in src.iterdir()) / 1e6
        files = sorted(src.iterdir())

        # plain copy + sha256
        dst = work / "copy"
        dst.mkdir()
        t = time.perf_counter()

        def copy_hash(p: Path) -> str:
            q = dst / p.name
            shutil.copyfile(p, q)
            return hashlib.sha256(q.read_bytes()).hexdigest()

        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(copy_hash, files))
        dt = time.perf_counter() - t
        rows.append(("copy+sha256", args.count, dt, f"{args.count / dt:,.0f} files/s",
                     f"{total_mb / dt:,.0f} MB/s"))
        shutil.rmtree(dst)
        copy_rate = args.count / dt

        # bare parallel verify (full decode): the ceiling
        t = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(verify, files))
        dt = time.perf_counter() - t
        verify_rate = args.count / dt
        rows.append(("bare verify", args.count, dt, f"{verify_rate:,.0f} files/s",
                     f"{verify_rate / copy_rate:.2f}x copy"))

        def ratios(rate: float) -> str:
            return f"{rate / copy_rate:.2f}x copy, {rate / verify_rate:.2f}x verify"

        # the batch pipeline with its CPU work in threads (what ran before worker processes)
        if args.threads:
            lib0 = open_lib(work / "lib0")
            for p in files:
                shutil.copyfile(p, lib0.config.inbox_dir / p.name)
            os.sync()  # both runs start with clean page-cache pages
            t, c = time.perf_counter(), _cpu()
            ingest_batch(lib0, list(inbox_candidates(lib0)), quiet=0.0, workers=args.workers,
                         processes=False)
            dt, c = time.perf_counter() - t, _cpu_since(c)
            left = len(list(inbox_candidates(lib0)))
            rows.append(("ingest (threads)", args.count - left, dt,
                         f"{args.count / dt:,.0f} files/s", ratios(args.count / dt)))
            cpu_rows.append(("ingest (threads)", c))
            lib0.close()
            shutil.rmtree(work / "lib0")

        # ingest from the on-disk inbox (batch pipeline)
        lib = open_lib(work / "lib")
        inbox = lib.config.inbox_dir
        for p in files:
            shutil.copyfile(p, inbox / p.name)
        os.sync()
        stages: dict[str, float] = {}
        prof = _start_profile() if args.profile else None
        t, c = time.perf_counter(), _cpu()
        ingest_batch(lib, list(inbox_candidates(lib)), quiet=0.0, workers=args.workers,
                     timings=stages)
        dt, c = time.perf_counter() - t, _cpu_since(c)
        if prof is not None:
            _stop_profile(prof, args.profile)
        left = len(list(inbox_candidates(lib)))
        rows.append(("inbox ingest", args.count - left, dt, f"{args.count / dt:,.0f} files/s",
                     ratios(args.count / dt)))
        cpu_rows.append(("inbox ingest", c))

        # per-file path (single PUTs, the watcher) on a subset, in a second library
        if args.per_file:
            lib2 = open_lib(work / "lib2")
            sub = files[:args.per_file]
            for p in sub:
                shutil.copyfile(p, lib2.config.inbox_dir / p.name)
            t = time.perf_counter()
            with ThreadPoolExecutor(args.workers) as pool:
                list(pool.map(lambda p: ingest_inbox_file(lib2, p, quiet=0.0),
                              list(inbox_candidates(lib2))))
            dt = time.perf_counter() - t
            left = len(list(inbox_candidates(lib2)))
            rows.append(("per-file ingest", len(sub) - left, dt,
                         f"{len(sub) / dt:,.0f} files/s", ratios(len(sub) / dt)))
            lib2.close()

        # PUT -> by-date latency
        lat = []
        for i in range(args.latency):
            data = variant(base, 10_000_000 + i)
            t = time.perf_counter()
            with lib.begin_write(f"inbox/LAT_{i:03d}.jpg") as up:
                up.write(data)
                up.commit()
            lib.resolve(f"by-date/2021/04/30/LAT_{i:03d}.jpg")
            lat.append(time.perf_counter() - t)
        rows.append(("PUT -> by-date", len(lat), sum(lat),
                     f"median {statistics.median(lat) * 1000:,.0f} ms",
                     f"max {max(lat) * 1000:,.0f} ms"))

        # on-disk -> by-date latency with the watcher
        from photovfs.watch import Watcher

        lat = []
        with Watcher(lib, tick=0.05, watch_library=False):
            for i in range(min(5, args.latency)):
                name = f"DISK_{i:03d}.jpg"
                t = time.perf_counter()
                (inbox / name).write_bytes(variant(base, 20_000_000 + i))
                while True:
                    try:
                        lib.resolve(f"by-date/2021/04/30/{name}")
                        break
                    except Exception:  # noqa: BLE001
                        time.sleep(0.02)
                lat.append(time.perf_counter() - t)
        rows.append(("on-disk -> by-date", len(lat), sum(lat),
                     f"median {statistics.median(lat) * 1000:,.0f} ms",
                     f"(quiet {lib.config.ingest.quiet_seconds:g} s)"))
        lib.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.count} JPEGs of ~{args.kb} KB ({total_mb:,.0f} MB), {args.workers} workers, "
          f"python {sys.version.split()[0]}")
    print(f"{'measure':<20}{'files':>8}{'seconds':>10}  {'rate / latency':<22}{'':<16}")
    for name, n, dt, a, b in rows:
        print(f"{name:<20}{n:>8}{dt:>10.2f}  {a:<22}{b}")
    load.append(os.getloadavg()[0])
    print(f"load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end")
    for name, (parent, children) in cpu_rows:
        print(f"{name}: CPU {(parent + children) * 1000 / args.count:.2f} ms per file "
              f"(this process {parent * 1000 / args.count:.2f}, "
              f"worker processes {children * 1000 / args.count:.2f})")
    print("\ninbox ingest by stage (ms per file; worker stages summed over threads/processes):")
    for stage, sec in stages.items():
        print(f"  {stage:<32}{sec * 1000 / args.count:8.2f}")
    if args.profile:
        print(f"profile: {args.profile} (python -m pstats {args.profile})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
