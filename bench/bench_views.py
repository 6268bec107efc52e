"""Writable views at scale: filling an album with 10,000 photos, and how fast an editor's save shows.

    python bench/bench_views.py [--n 10000]

Builds a catalog of N small real JPEGs (distinct bytes), serves it by WebDAV (in-thread) and FUSE
(a `photovfs mount` subprocess, when /dev/fuse is usable), then measures:
  * N GETs of small photos (the reference rate), N WebDAV COPYs into an album, N os.link and
    N `cp` (shutil.copyfile) into albums over FUSE;
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
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

        t = time.perf_counter()
        for p, _ in paths:
            sess.get(dav.url(p)).raise_for_status()
        get_s = time.perf_counter() - t
        rows.append((f"WebDAV GET x{len(paths)}", f"{get_s:.1f}s", rate(len(paths), get_s)))

        lib.mkdir("by-album/DavCopy")
        t = time.perf_counter()
        for p, v in paths:
            r = sess.request("COPY", dav.url(p), headers={
                "Destination": dav.url(f"by-album/DavCopy/{v}"), "Overwrite": "F"})
            assert r.status_code in (201, 204), r.status_code
        copy_s = time.perf_counter() - t
        rows.append((f"WebDAV COPY into album x{len(paths)}", f"{copy_s:.1f}s",
                     f"{rate(len(paths), copy_s)}  ({get_s / copy_s:.2f}x GET)"))

        reason = fuse_skip_reason()
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
    w = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{w}}  {'time':>10}  rate / note")
    for name, val, note in rows:
        print(f"{name:<{w}}  {val:>10}  {note}")


if __name__ == "__main__":
    main()
