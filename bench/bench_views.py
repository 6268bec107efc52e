"""Writable views at scale: filling an album with 10,000 photos, and how fast an editor's save shows.

    python bench/bench_views.py [--n 10000] [--no-fuse]

Builds a catalog of N small real JPEGs (distinct bytes), serves it by WebDAV (in-thread) and FUSE
(a `photovfs mount` subprocess, when /dev/fuse is usable), then measures:
  * N GETs of small photos (the reference rate), N WebDAV COPYs into an album (the fast path,
    and wsgidav's own COPY on a second server with `fast_copy=False`), N os.link and N `cp`
    (shutil.copyfile) into albums over FUSE;
  * save -> served latency: FUSE safe-save (write NAME.tmp + rename over) and WebDAV PUT, until
    the new bytes are served from by-date, by-album and thumbnails (new rendition etag).
Prints a table; never asserts (target: COPY >= 0.5x the GET rate).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import requests  # noqa: E402
from PIL import Image  # noqa: E402


def small_jpeg(n: int, date_of: int | None = None, edit: int = 0) -> bytes:
    """Photo n (distinct bytes); `edit` > 0 gives new pixels with the capture date of `date_of`."""
    img = Image.new("RGB", (16, 16), (n % 256, n // 256 % 256, 77 + edit))
    n = n if date_of is None else date_of
    img.putpixel((n % 16, n // 16 % 16), (255, 255, 255))
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"
    exif.get_ifd(0x8769)[0x9003] = datetime(2020, 1 + n % 12, 1 + n % 28, 12, n % 60,
                                            n // 60 % 60).strftime("%Y:%m:%d %H:%M:%S")
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), quality=80, comment=f"bench-{n}".encode())
    return buf.getvalue()


def rate(n: int, secs: float) -> str:
    return f"{n / secs:8.0f}/s" if secs else "-"


def webdav_rounds(lib, dav, sess, paths, rounds: int) -> list[float]:
    """Seconds for GETs of every photo, COPYs of every photo into an album through the fast path,
    and the same through wsgidav's own COPY (a second server with `fast_copy=False`), measured in
    `rounds` interleaved slices so that load on a shared machine hits all three alike; then the
    seconds spent writing the XMP sidecars of each COPY slice's adds. The library's sidecar
    writer waits for a pause in the adds (at most 5 s): here it is drained after each slice, so
    its time is reported on its own (slices longer than 5 s see it run among their requests)."""
    from photovfs.dav.server import run_in_thread

    slow, slow_thread = run_in_thread(lib, "127.0.0.1", 0, fast_copy=False)
    slow_base = f"http://127.0.0.1:{slow.bind_addr[1]}/"
    lib.mkdir("by-album/DavCopy")
    lib.mkdir("by-album/DavCopyWsgidav")
    spent = [0.0, 0.0, 0.0, 0.0, 0.0]

    def copy(base: str, album: str, batch) -> None:
        for p, v in batch:
            r = sess.request("COPY", base + p, headers={
                "Destination": base + f"by-album/{album}/{v}", "Overwrite": "F"})
            assert r.status_code in (201, 204), r.status_code

    def timed(k: int, fn, *a) -> None:
        t = time.perf_counter()
        fn(*a)
        spent[k] += time.perf_counter() - t

    try:
        step = max(1, -(-len(paths) // rounds))
        for i in range(0, len(paths), step):
            batch = paths[i:i + step]
            lib.sidecars.flush()
            timed(0, lambda b: [sess.get(dav.url(p)).raise_for_status() for p, _ in b], batch)
            timed(1, copy, dav.base + "/", "DavCopy", batch)
            timed(3, lib.sidecars.flush)
            timed(2, copy, slow_base, "DavCopyWsgidav", batch)
            timed(4, lib.sidecars.flush)
    finally:
        slow.stop()
        slow_thread.join(5)
    return spent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--no-fuse", action="store_true", help="skip the FUSE rows (the slow part)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved GET/COPY slices")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    from dav_helpers import DavServer
    from fuse_helpers import Mount, fuse_skip_reason

    work = Path(tempfile.mkdtemp(prefix="bench-views-"))
    photos = work / "Photos"
    rows: list[tuple[str, str, str]] = []
    t = time.perf_counter()
    for i in range(args.n):
        d = photos / f"f{i // 1000:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"P{i:05d}.jpg").write_bytes(small_jpeg(i))
    rows.append((f"generate {args.n} JPEGs", f"{time.perf_counter() - t:.1f}s", ""))
    t = time.perf_counter()
    dav = DavServer(photos).start()  # scans
    rows.append((f"scan {args.n}", f"{time.perf_counter() - t:.1f}s", ""))
    lib = dav.lib
    mnt = None
    try:
        with lib.session() as s:
            from photovfs.catalog.models import Asset
            from sqlalchemy import select

            assets = s.execute(select(Asset.vname, Asset.year, Asset.month, Asset.day)).all()
        paths = [(f"by-date/{y:04d}/{m:02d}/{d:02d}/{v}", v) for v, y, m, d in assets]
        sess = requests.Session()
        get_s, copy_s, slow_s, side_s, side_slow_s = webdav_rounds(lib, dav, sess, paths,
                                                                    args.rounds)
        n = len(paths)
        rows.append((f"WebDAV GET x{n} (each photo once)", f"{get_s:.1f}s", rate(n, get_s)))
        rows.append((f"WebDAV COPY into album x{n} (fast path)", f"{copy_s:.1f}s",
                     f"{rate(n, copy_s)}  ({get_s / copy_s:.2f}x GET; target >= 0.5x)"))
        rows.append((f"WebDAV COPY, wsgidav's path x{n}", f"{slow_s:.1f}s",
                     f"{rate(n, slow_s)}  ({get_s / slow_s:.2f}x GET)"))
        rows.append((f"  XMP sidecars of the fast path's {n} adds, written after", f"{side_s:.1f}s",
                     f"{rate(n, side_s)}  (writer drained after each slice; not in the rows above)"))
        rows.append((f"  XMP sidecars of wsgidav's {n} adds, written after", f"{side_slow_s:.1f}s",
                     rate(n, side_slow_s)))
        both = copy_s + side_s
        rows.append((f"WebDAV COPY x{n} + their sidecars", f"{both:.1f}s",
                     f"{rate(n, both)}  ({get_s / both:.2f}x GET)"))

        reason = "--no-fuse" if args.no_fuse else fuse_skip_reason()
        if reason is None:
            mnt = Mount(photos, work / "mnt", work / "mount.log", "--no-scan")
            for how, fn in (("os.link", os.link), ("cp", shutil.copyfile)):
                album = f"by-album/Fuse-{how}"
                os.mkdir(mnt.path(album))
                t = time.perf_counter()
                for p, v in paths:
                    fn(mnt.path(p), mnt.path(f"{album}/{v}"))
                secs = time.perf_counter() - t
                rows.append((f"FUSE {how} into album x{len(paths)}", f"{secs:.1f}s",
                             f"{rate(len(paths), secs)}  ({get_s / secs:.2f}x GET)"))
        else:
            rows.append(("FUSE", "skipped", reason))

        # ---- save -> served latency -------------------------------------------------------
        lib.mkdir("by-album/Edits")
        for p, v in paths[:6]:
            lib.copy(p, f"by-album/Edits/{v}")
        thumbs = f"thumbnails/{paths[0][0]}"

        def served(p: str, v: str, data: bytes, before_thumb: str | None) -> dict[str, float]:
            t0 = time.perf_counter()
            seen: dict[str, float] = {}
            while len(seen) < 3 and time.perf_counter() - t0 < 30:
                if "by-date" not in seen and sess.get(dav.url(p)).content == data:
                    seen["by-date"] = time.perf_counter() - t0
                if "by-album" not in seen and \
                        sess.get(dav.url(f"by-album/Edits/{v}")).content == data:
                    seen["by-album"] = time.perf_counter() - t0
                if "thumbnails" not in seen:
                    r = sess.get(dav.url(f"thumbnails/{p}"))
                    if r.status_code == 200 and r.headers.get("ETag") != before_thumb:
                        seen["thumbnails"] = time.perf_counter() - t0
            return seen

        for k, how in enumerate(["FUSE safe-save", "WebDAV PUT"]):
            if how.startswith("FUSE") and mnt is None:
                continue
            p, v = paths[k]
            before = sess.get(dav.url(f"thumbnails/{p}")).headers.get("ETag")
            data = small_jpeg(int(v[1:6]), edit=k + 1)  # same capture date: same by-date path
            t = time.perf_counter()
            if mnt is not None and how.startswith("FUSE"):
                tmp = mnt.path(p + ".tmp")
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.rename(tmp, mnt.path(p))
            else:
                sess.put(dav.url(p), data=data).raise_for_status()
            save_s = time.perf_counter() - t
            seen = served(p, v, data, before)
            rows.append((f"{how}: save returned", f"{save_s * 1000:.0f}ms", ""))
            for view in ("by-date", "by-album", "thumbnails"):
                rows.append((f"  ... served from {view}",
                             f"{(save_s + seen[view]) * 1000:.0f}ms" if view in seen
                             else "not seen in 30s", "(from start of save)"))
        del thumbs
    finally:
        if mnt is not None:
            mnt.stop()
        dav.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at end: {os.getloadavg()}")
    w = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{w}}  {'time':>10}  rate / note")
    for name, val, note in rows:
        print(f"{name:<{w}}  {val:>10}  {note}")


if __name__ == "__main__":
    main()
