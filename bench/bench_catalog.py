"""Catalog benchmark: do listings stay fast and memory small on a 1,000,000-photo catalog?

Run: python bench/bench_catalog.py [--rows 1000000] [--samples 200] [--budget 8] [--state DIR]

Builds a catalog directly (bulk SQLAlchemy Core `insert(Asset)`, executemany in batches of
10,000, one transaction; no photo files: the core never touches the disk to list), with rows
valid for every view: 20 years of capture dates (some days hold 1,000 photos), a folder per day
under originals/, ~300 places (one "home" city far bigger than the rest), ~300 people, ~1,000
albums in groups, 10 of them with 1,000 members. Then, in a fresh process with a fresh
`Library`, it times `lib.resolve` of random photos and `lib.list` of folders at every level, and
reports p50/p95/max latency and the process's peak RSS.

Targets: any folder of up to 1,000 entries lists in < 20 ms (p95 is judged); the serving
process stays < 300 MB. Never asserts. A listing that misses is diagnosed: the SQL it ran (count
and time, so SQL and Python costs separate), EXPLAIN QUERY PLAN of its slowest statement and a
cProfile of a few calls.

Each row takes up to --samples calls but stops once --budget seconds are spent (after at least
one call), so a pathological listing costs one slow call, not an hour. `--state DIR` keeps the catalog in DIR and
reuses it on the next run (same --rows).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import multiprocessing
import os
import pstats
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path

TARGET_MS = 20.0
TARGET_ENTRIES = 1000
TARGET_RSS_MB = 300.0
BATCH = 10_000
FIRST_DAY, LAST_DAY = date(2005, 1, 1), date(2024, 12, 31)

COUNTRIES = ["France", "Italy", "Spain", "Germany", "United Kingdom", "United States", "Japan",
             "Australia", "Brazil", "Canada", "Greece", "Portugal", "Norway", "Sweden", "Iceland",
             "Mexico", "Thailand", "Vietnam", "Morocco", "Egypt", "South Africa", "Chile",
             "Argentina", "New Zealand", "Switzerland", "Austria", "Croatia", "Ireland"]
FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas",
         "Karin", "Leo", "Maria", "Noah", "Olga", "Paul", "Rosa", "Sam", "Tara", "Ugo"]
LAST = ["Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
        "Kowalski", "Larsen", "Martin", "Novak", "Olsen", "Petit"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def name_key(name: str) -> str:
    from photovfs.names import name_key as key

    return key(name)


# ----------------------------------------------------------------------------- building


def day_counts(rows: int, rng: random.Random) -> tuple[list[tuple[date, int]], list[date]]:
    """Photos per day: most days a few dozen to a few hundred, a few 'big' days exactly 1,000."""
    days = [FIRST_DAY + timedelta(days=k) for k in range((LAST_DAY - FIRST_DAY).days + 1)]
    active = sorted(rng.sample(days, int(len(days) * 0.7)))
    n_big = max(1, min(40, rows // 5000))
    big = set(rng.sample(active, n_big))
    rest_days = [d for d in active if d not in big]
    remaining = rows - n_big * TARGET_ENTRIES
    weights = [rng.lognormvariate(0, 1.1) for _ in rest_days]
    total = sum(weights)
    cap = TARGET_ENTRIES - 100
    counts = [min(cap, int(remaining * w / total)) for w in weights]
    left = remaining - sum(counts)
    i = 0
    while left > 0:  # spread what rounding and the cap left over
        if counts[i % len(counts)] < cap:
            counts[i % len(counts)] += 1
            left -= 1
        i += 1
    per_day = {d: c for d, c in zip(rest_days, counts, strict=True) if c > 0}
    per_day.update({d: TARGET_ENTRIES for d in big})
    return sorted(per_day.items()), sorted(big)


def make_places(rng: random.Random) -> list[tuple[str, str, str]]:
    places = []
    for ci, country in enumerate(COUNTRIES):
        for r in range(rng.randint(1, 4)):
            region = f"{country} Region {r + 1}"
            for c in range(rng.randint(2, 5)):
                places.append((country, region, f"City {ci + 1}-{r + 1}-{c + 1}"))
    return places


def build(state: Path, rows: int, seed: int = 7) -> dict:
    """Create the catalog in `state` and return the plan (which paths to measure)."""
    from photovfs.catalog.models import (
        Album,
        AlbumAsset,
        Asset,
        AssetPerson,
        Folder,
        Person,
        Place,
    )
    from photovfs.library import Library
    from sqlalchemy import insert, text

    rng = random.Random(seed)
    t_start = time.perf_counter()
    lib_dir = state / "library"
    lib_dir.mkdir(parents=True, exist_ok=True)
    lib = Library.open(lib_dir, state_dir=state)  # runs the migrations: the real schema
    engine = lib.engine
    per_day, big_days = day_counts(rows, rng)
    places = make_places(rng)
    home = 0  # the first place is "home": ~4 % of all photos
    timings = {}

    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA cache_size=-256000")  # the builder only: 256 MB page cache
        conn.exec_driver_sql("PRAGMA synchronous=OFF")
        conn.commit()  # end SQLAlchemy's autobegun (empty) transaction: one real one follows
        trans = conn.begin()
        t0 = time.perf_counter()
        conn.execute(insert(Place), [
            {"id": i + 1, "country": c, "region": r, "city": ci} for i, (c, r, ci) in enumerate(places)
        ])
        # places per day: a quarter of the days have GPS; balanced across places, home is big
        place_count = [0] * len(places)
        day_place: dict[date, int | None] = {}
        for d, n in per_day:
            if rng.random() < 0.04:
                day_place[d] = home
            elif rng.random() < 0.22:
                pid = min(range(1, len(places)), key=lambda p: (place_count[p], p))
                day_place[d] = pid
            else:
                day_place[d] = None
            if day_place[d] is not None:
                place_count[day_place[d]] += n  # type: ignore[index]

        folders: dict[str, tuple[str, str]] = {}
        batch: list[dict] = []
        asset_id = 0
        day_ranges: dict[date, tuple[int, int]] = {}
        now = datetime(2025, 1, 1)
        for d, n in per_day:
            folder = f"{d.year}/{d:%Y-%m-%d}"
            folders.setdefault(str(d.year), ("", str(d.year)))
            folders[folder] = (str(d.year), f"{d:%Y-%m-%d}")
            pid = day_place[d]
            first = asset_id + 1
            for k in range(n):
                i = asset_id
                asset_id += 1
                c, r = i % 9999 + 1, i // 9999
                filename = f"IMG_{c:04d}.JPG"
                vname = filename if r == 0 else f"IMG_{c:04d} ({r + 1}).JPG"
                taken = datetime(d.year, d.month, d.day, 7) + timedelta(seconds=k * 50400 // n)
                batch.append({
                    "id": asset_id, "folder": folder, "filename": filename, "vname": vname,
                    "vname_key": vname.casefold(), "tname": vname, "tname_key": vname.casefold(),
                    "sha256": hashlib.sha256(i.to_bytes(8, "little")).hexdigest(),
                    "size": 2_000_000 + (i * 7919) % 6_000_000, "mtime_ns": int(taken.timestamp() * 1e9),
                    "sidecar_mtime_ns": None, "media_type": "image", "mime": "image/jpeg",
                    "status": "ok", "error": None, "taken_at": taken,
                    "taken_source": "exif:DateTimeOriginal", "tz_offset_min": 60,
                    "year": d.year, "month": d.month, "day": d.day,
                    "lat": 45.0 if pid is not None else None, "lon": 7.0 if pid is not None else None,
                    "alt": None, "place_id": pid + 1 if pid is not None else None,
                    "make": "Canon", "model": "Canon EOS 80D", "lens": None,
                    "width": 6000, "height": 4000, "orientation": 1, "duration": None,
                    "content_id": None, "stack_id": None, "added_at": now,
                })
                if len(batch) == BATCH:
                    conn.execute(insert(Asset), batch)
                    batch = []
            day_ranges[d] = (first, asset_id)
        if batch:
            conn.execute(insert(Asset), batch)
        timings["assets"] = time.perf_counter() - t0
        print(f"  {asset_id} assets inserted in {timings['assets']:.1f} s", flush=True)

        t0 = time.perf_counter()
        conn.execute(insert(Folder), [
            {"path": p, "parent": parent, "name": nm} for p, (parent, nm) in sorted(folders.items())
        ])
        # people: ~300, one with exactly 1,000 photos; links from XMP regions
        people = sorted({f"{f} {s}" for f in FIRST for s in LAST})
        conn.execute(insert(Person), [
            {"id": k + 1, "name": p, "name_key": name_key(p), "trashed": False, "created_at": now}
            for k, p in enumerate(people)
        ])
        links = []
        for k in range(len(people)):
            size = TARGET_ENTRIES if k == 0 else min(5000, int(rng.lognormvariate(5, 1)))
            for aid in rng.sample(range(1, asset_id + 1), min(size, asset_id)):
                links.append({"asset_id": aid, "person_id": k + 1, "source": "xmp",
                              "rejected": False, "x": 0.4, "y": 0.3, "w": 0.1, "h": 0.15})
        for s in range(0, len(links), BATCH):
            conn.execute(insert(AssetPerson), links[s:s + BATCH])
        # albums: 20 groups, ~980 albums (half inside a group), 10 with exactly 1,000 members
        groups = [f"Group {g + 1:02d}" for g in range(20)]
        albums: list[tuple[str, str]] = [(g, "") for g in groups]
        for a in range(980):
            parent = groups[(a // 2) % 20] if a % 2 else ""
            name = f"Album {a + 1:03d}"
            albums.append((f"{parent}/{name}" if parent else name, parent))
        conn.execute(insert(Album), [
            {"id": k + 1, "path": p, "path_key": name_key(p), "parent": parent, "trashed": False,
             "created_at": now} for k, (p, parent) in enumerate(albums)
        ])
        members = []
        big_albums = []
        for k in range(len(groups), len(albums)):
            big = k < len(groups) + 10
            size = TARGET_ENTRIES if big else rng.randint(20, 600)
            start = rng.randint(1, max(1, asset_id - 20 * size))  # a trip: a stretch of photos
            chosen = sorted(rng.sample(range(start, min(asset_id, start + 20 * size) + 1),
                                       min(size, asset_id)))
            members += [{"album_id": k + 1, "asset_id": aid, "added_at": now} for aid in chosen]
            if big:
                big_albums.append(albums[k][0])
        for s in range(0, len(members), BATCH):
            conn.execute(insert(AlbumAsset), members[s:s + BATCH])
        timings["links"] = time.perf_counter() - t0
        print(f"  {len(folders)} folders, {len(people)} people ({len(links)} links), "
              f"{len(albums)} albums ({len(members)} members) in {timings['links']:.1f} s",
              flush=True)
        t0 = time.perf_counter()
        trans.commit()
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.commit()
        timings["commit"] = time.perf_counter() - t0
        n_check = conn.execute(text("SELECT count(*) FROM assets")).scalar()
    lib.close()

    counts = sorted(per_day, key=lambda x: x[1])
    typical_day = counts[len(counts) // 2][0]
    home_place = places[home]
    city_places = [places[p] for p in range(1, len(places)) if place_count[p]]
    plan = {
        "rows": n_check,
        "build_seconds": time.perf_counter() - t_start,
        "build_rss": peak_rss_mb(),
        "db_mb": (state / "catalog.db").stat().st_size / 1e6,
        "big_days": [d.isoformat() for d in big_days],
        "typical_day": [typical_day.isoformat(), dict(per_day)[typical_day]],
        "big_albums": big_albums,
        "group": groups[0],
        "person": people[0],
        "home": list(home_place),
        "home_count": place_count[home],
        "cities": [list(p) for p in city_places],
        "city_counts": [place_count[p] for p in range(1, len(places)) if place_count[p]],
        "max_id": asset_id,
        "timings": timings,
    }
    (state / "bench-plan.json").write_text(json.dumps(plan, indent=1))
    return plan


# ----------------------------------------------------------------------------- measuring


class SqlLog:
    """Every statement a call runs, with its wall time (SQLAlchemy cursor events)."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.engine, self.entries, self.on = engine, [], False
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self.on:
            self.entries.append((time.perf_counter() - conn.info.pop("bench_t0", 0), statement,
                                 parameters))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def diagnose(lib, log: SqlLog, label: str, fn, arg) -> str:
    """SQL vs Python time, the plan of the slowest statement, and a short profile."""
    out = [f"--- why '{label}' is slow ---"]
    log.entries, log.on = [], True
    t0 = time.perf_counter()
    fn(arg)
    total = time.perf_counter() - t0
    log.on = False
    sql = sum(e[0] for e in log.entries)
    out.append(f"one call: {total * 1000:.1f} ms, {len(log.entries)} SQL statements taking "
               f"{sql * 1000:.1f} ms, the rest ({(total - sql) * 1000:.1f} ms) is Python")
    worst = sorted(log.entries, key=lambda e: -e[0])[:2]
    for dt, statement, params in worst:
        flat = " ".join(statement.split())
        out.append(f"slowest statement ({dt * 1000:.1f} ms): {flat[:400]}")
        out.append(f"  params: {params!r}"[:300])
        with lib.engine.connect() as conn:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, tuple(params)).all()
        out += [f"  plan: {row[-1]}" for row in plan]
    if sql > 0.7 * total:
        out.append("(the SQL explains it: no profile)")
        return "\n".join(out)
    calls = 5 if total < 0.5 else 1
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn(arg)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(8)
    text = buf.getvalue()
    start = text.find("   ncalls")
    out.append(f"cProfile of {calls} call(s), top 8 by own time:")
    out.append(text[start:].rstrip() if start >= 0 else text)
    return "\n".join(out)


def measure(state: str, plan: dict, samples: int, budget: float) -> dict:
    """In a fresh process: open a Library over the catalog and time resolves and listings."""
    from photovfs.library import Library

    rss_before = peak_rss_mb()
    load = os.getloadavg()
    t0 = time.perf_counter()
    lib = Library.open(Path(state) / "library", state_dir=Path(state))
    t_open = time.perf_counter() - t0
    log = SqlLog(lib.engine)
    rng = random.Random(3)

    # random photos to resolve, by their paths in three views
    from photovfs.catalog.models import Album, AlbumAsset, Asset
    from sqlalchemy import select

    ids = rng.sample(range(1, plan["max_id"] + 1), min(samples, plan["max_id"]))
    with lib.session() as s:
        rows = s.execute(select(Asset.id, Asset.folder, Asset.filename, Asset.vname, Asset.year,
                                Asset.month, Asset.day).where(Asset.id.in_(ids))).all()
        album_rows = s.execute(
            select(Album.path, Asset.vname).join(AlbumAsset, AlbumAsset.album_id == Album.id)
            .join(Asset, Asset.id == AlbumAsset.asset_id)
            .where(AlbumAsset.asset_id.in_(ids[: samples // 2]))).all()
    date_paths = [f"by-date/{r.year:04d}/{r.month:02d}/{r.day:02d}/{r.vname}" for r in rows]
    orig_paths = [f"originals/{r.folder}/{r.filename}" for r in rows]
    album_paths = [f"by-album/{p}/{v}" for p, v in album_rows] or ["by-album"]
    rng.shuffle(date_paths)
    rng.shuffle(orig_paths)

    def d(iso: str) -> str:
        y, m, dd = iso.split("-")
        return f"by-date/{y}/{m}/{dd}"

    big_days = [d(x) for x in plan["big_days"]]
    big_folders = [f"originals/{x[:4]}/{x}" for x in plan["big_days"]]
    year = plan["big_days"][0][:4]
    month = plan["big_days"][0][5:7]
    cities = plan["cities"]
    c_1000 = [c for c, n in zip(cities, plan["city_counts"], strict=True) if n <= TARGET_ENTRIES]
    c_1000 = c_1000 or cities
    home = plan["home"]
    by_place_city = [f"by-place/{c}/{r}/{ci}" for c, r, ci in c_1000]
    targets = [
        ("resolve by-date/Y/M/D/photo", lib.resolve, date_paths),
        ("resolve originals/F/photo", lib.resolve, orig_paths),
        ("resolve by-album/A/photo", lib.resolve, album_paths),
        ("list /", lib.list, [""]),
        ("list by-date", lib.list, ["by-date"]),
        ("list by-date/YYYY", lib.list, [f"by-date/{year}"]),
        ("list by-date/YYYY/MM", lib.list, [f"by-date/{year}/{month}"]),
        ("list by-date day (typical)", lib.list, [d(plan["typical_day"][0])]),
        ("list by-date day (1,000)", lib.list, big_days),
        ("list by-album", lib.list, ["by-album"]),
        ("list by-album/GROUP", lib.list, [f"by-album/{plan['group']}"]),
        ("list by-album album (1,000)", lib.list, [f"by-album/{a}" for a in plan["big_albums"]]),
        ("list by-person", lib.list, ["by-person"]),
        ("list by-person/NAME (1,000)", lib.list, [f"by-person/{plan['person']}"]),
        ("list by-place", lib.list, ["by-place"]),
        ("list by-place/COUNTRY", lib.list, [f"by-place/{c[0]}" for c in c_1000[:20]]),
        ("list by-place/C/REGION", lib.list, [f"by-place/{c[0]}/{c[1]}" for c in c_1000[:20]]),
        ("list by-place/C/R/CITY", lib.list, by_place_city),
        ("list originals", lib.list, ["originals"]),
        ("list originals/YYYY", lib.list, [f"originals/{year}"]),
        ("list originals/FOLDER (1,000)", lib.list, big_folders),
        (f"list by-place home city ({plan['home_count']:,})", lib.list,
         [f"by-place/{home[0]}/{home[1]}/{home[2]}"]),
    ]
    results = []
    for label, fn, args in targets:
        n_samples = samples if "home city" not in label else max(5, samples // 20)
        times = []
        entries = 0
        started = time.perf_counter()
        for k in range(n_samples):
            arg = args[k % len(args)]
            t = time.perf_counter()
            out = fn(arg)
            times.append((time.perf_counter() - t) * 1000)
            if isinstance(out, list):
                entries = max(entries, len(out))
            if time.perf_counter() - started > budget:
                break  # a pathological listing: the calls so far show it
        print(f"  {label:<40} {len(times):4d} calls, p50 {statistics.median(times):9.2f} ms",
              flush=True)
        results.append({"label": label, "p50": statistics.median(times),
                        "p95": percentile(times, 0.95), "max": max(times), "n": len(times),
                        "entries": entries if fn.__name__ == "list" else None, "fn": fn.__name__,
                        "arg": args[0]})
    rss = peak_rss_mb()
    notes = []
    for r in results:
        fits = r["entries"] is None or r["entries"] <= TARGET_ENTRIES
        if r["p95"] >= TARGET_MS and (r["entries"] or 0) <= TARGET_ENTRIES:
            fn = lib.list if r["fn"] == "list" else lib.resolve
            label = r["label"] + ("" if fits else " (beyond the target's size)")
            notes.append(diagnose(lib, log, label, fn, r["arg"]))
    lib.close()
    return {"results": results, "rss": rss, "rss_start": rss_before, "open": t_open,
            "notes": notes, "load": load}


def in_child(fn, *args):
    """Run in a fresh interpreter so the measured process's peak RSS is its own."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="assets in the catalog")
    parser.add_argument("--samples", type=int, default=200, help="timed calls per measurement")
    parser.add_argument("--budget", type=float, default=8.0,
                        help="seconds per measurement row: no new call starts after that")
    parser.add_argument("--state", type=Path,
                        help="build the catalog here and keep it; reused when it has --rows rows")
    args = parser.parse_args()
    if args.rows < 5000:
        parser.error("--rows must be at least 5000")

    print(f"bench_catalog: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"{datetime.now():%Y-%m-%d %H:%M}, load average {os.getloadavg()[0]:.1f}", flush=True)
    state = args.state or Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    plan_file = state / "bench-plan.json"
    try:
        plan = json.loads(plan_file.read_text()) if plan_file.exists() else None
        if plan is not None and plan["rows"] == args.rows:
            print(f"reusing the catalog in {state} ({plan['rows']} rows)", flush=True)
        else:
            if args.state and args.state.exists():
                for sub in ("catalog.db", "catalog.db-wal", "catalog.db-shm", "bench-plan.json"):
                    (state / sub).unlink(missing_ok=True)
            print(f"building a {args.rows:,}-asset catalog in {state} ...", flush=True)
            plan = in_child(build, state, args.rows)
            print(f"built in {plan['build_seconds']:.1f} s "
                  f"(catalog {plan['db_mb']:.0f} MB, builder peak RSS {plan['build_rss']:.0f} MB)",
                  flush=True)
        print("measuring with a fresh Library in a fresh process ...", flush=True)
        m = in_child(measure, str(state), plan, args.samples, args.budget)
    finally:
        if args.state is None:
            shutil.rmtree(state, ignore_errors=True)

    print()
    print(f"catalog: {plan['rows']:,} assets; Library.open {m['open'] * 1000:.0f} ms; up to "
          f"{args.samples} calls per row (fewer for the home city and for rows that hit the "
          f"{args.budget:.0f} s budget: see 'calls')")
    head = (f"{'measurement':<40} {'entries':>8} {'calls':>5} {'p50 ms':>9} {'p95 ms':>9} "
            f"{'max ms':>9}  target")
    print(head)
    print("-" * (len(head) + 8))
    for r in m["results"]:
        entries = "" if r["entries"] is None else f"{r['entries']:,}"
        if r["entries"] is None:
            verdict = ""
        elif r["entries"] > TARGET_ENTRIES:
            verdict = "(over 1,000 entries: no target)"
        else:
            verdict = "ok" if r["p95"] < TARGET_MS else "MISSED"
        print(f"{r['label']:<40} {entries:>8} {r['n']:5d} {r['p50']:9.2f} {r['p95']:9.2f} "
              f"{r['max']:9.2f}  {verdict}")
    verdict = "ok" if m["rss"] < TARGET_RSS_MB else "MISSED"
    print(f"{'peak RSS of the serving process':<40} {'':>8} {'':>5} {m['rss']:9.0f} MB "
          f"(after imports {m['rss_start']:.0f} MB)  target < {TARGET_RSS_MB:.0f} MB: {verdict}")
    print(f"\ntargets: a folder of up to {TARGET_ENTRIES:,} entries lists in < {TARGET_MS:.0f} ms "
          f"(p95); peak RSS < {TARGET_RSS_MB:.0f} MB")
    print(f"load average while measuring: {m['load'][0]:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)")
    for note in m["notes"]:
        print()
        print(note)


if __name__ == "__main__":
    main()
