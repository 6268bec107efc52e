"""Day folders: PROPFIND of a small folder, and the first listing of a `thumbnails/` day folder.

    .venv/bin/python bench/bench_day.py [--photos 40] [--thumbs 50] [--requests 300] [--keep DIR]
    .venv/bin/python bench/bench_day.py --day-only [--thumbs 0] [--keep DIR]

Two numbers the issues ask for that the big-folder benchmarks do not show:

1. PROPFIND Depth 1 of a day folder (< 50 entries), target <= 2 ms (WebDAV issue). Measured with
   one `http.client` keep-alive connection (the lightest client), median and p95 of many requests,
   next to `rclone serve webdav` and Apache mod_dav serving the same files as a plain folder.
2. The first PROPFIND of `thumbnails/by-date/Y/M/D/` for a 50-photo day whose renditions are not
   made yet (thumbnails issue: "measure and report"). photovfs makes the missing renditions first,
   in parallel, so that every size it reports is exact; the peer is the bare work: the same 50
   `pyvips.Image.thumbnail` + JPEG saves in a 2-process pool, in the same run.

photovfs is measured twice: repeated requests (it answers from the rendered listing it keeps
while the catalog is unchanged) and after a change (a PROPPATCH elsewhere before each request:
the folder is queried again). An "HTTP floor" row is cheroot with photovfs's server and gateway answering
a fixed body of the same size: what any app on this server pays. `--day-only` skips the
thumbnails part.

Every server runs in its own process. Nothing is asserted: it measures and prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import apache_peer  # noqa: E402

BODY = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
        b"<D:getlastmodified/><D:getcontentlength/><D:creationdate/><D:resourcetype/>"
        b"<D:getetag/></D:prop></D:propfind>")
DAY, THUMB_DAY = ("2021", "04", "30"), ("2021", "05", "01")


def log(msg: str) -> None:
    print(f"[bench_day] {msg}", file=sys.stderr, flush=True)


def _exif(date: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = date
    return exif.tobytes()


def _photo(path: Path, size: tuple[int, int], date: str, seed: int) -> None:
    """A camera-like JPEG: noise over a gradient (so it compresses like a photo, not a flat fill)."""
    if path.exists():
        return
    w, h = size
    base = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    noise = Image.effect_noise((w // 4, h // 4), 40 + seed % 20).resize((w, h)).convert("RGB")
    img = Image.blend(base, noise, 0.5)
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=_exif(date), quality=90)
    path.write_bytes(buf.getvalue())


def make_library(root: Path, photos: int, thumbs: int) -> None:
    day, tday = root / "day", root / "thumbday"
    day.mkdir(parents=True, exist_ok=True)
    tday.mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        _photo(day / f"IMG_{i:04d}.jpg", (640, 480), "2021:04:30 10:00:00", i)
    for i in range(thumbs):
        _photo(tday / f"DSC_{i:04d}.jpg", (4000, 3000), "2021:05:01 10:00:00", i)


# ---- servers -------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_photovfs(root: Path, port: int) -> None:
    """Child-process entry: photovfs's WebDAV app (no background work: renditions stay cold)."""
    from photovfs.dav.server import make_server
    from photovfs.library import Library

    server = make_server(Library.open(root), "127.0.0.1", port)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    thread.join()


def _wait(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("OPTIONS", "/")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not come up")


def start(cmd: list[str]) -> tuple[int, subprocess.Popen]:
    port = _free_port()
    proc = subprocess.Popen([*cmd, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(port, proc)
    return port, proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


# ---- measuring -----------------------------------------------------------------------------
def propfind(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("PROPFIND", path, body=BODY, headers={"Depth": "1",
                                                        "Content-Type": "application/xml"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 207:
        raise RuntimeError(f"PROPFIND {path}: {resp.status}")
    return data


def _entries(multistatus: bytes) -> int:
    """Members listed (responses minus the folder itself), whatever the namespace prefix."""
    return len(re.findall(rb"</(?:[A-Za-z0-9]+:)?response>", multistatus)) - 1


TOUCH = (b'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
         b'xmlns:b="urn:photovfs-bench"><D:set><D:prop><b:touch>%d</b:touch></D:prop>'
         b"</D:set></D:propertyupdate>")


def day_latency(port: int, path: str, n: int,
                touch: str | None = None) -> tuple[float, float, int]:
    """Median and p95 milliseconds of n PROPFINDs over one keep-alive connection. With `touch`
    (a folder elsewhere), a PROPPATCH of it with a new value before each request, not timed: a
    catalog change, so photovfs must query and render the folder again."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    entries = _entries(propfind(conn, path))
    for _ in range(20):
        propfind(conn, path)
    times = []
    stamp = int(time.time() * 1000)
    for i in range(n):
        if touch is not None:
            conn.request("PROPPATCH", touch, body=TOUCH % (stamp + i))
            resp = conn.getresponse()
            resp.read()
            if resp.status != 207:
                raise RuntimeError(f"PROPPATCH {touch}: {resp.status}")
        t = time.perf_counter()
        propfind(conn, path)
        times.append((time.perf_counter() - t) * 1000)
    conn.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], entries


def serve_hello(size: int, port: int) -> None:
    """Child-process entry: the floor of photovfs's HTTP server. cheroot (with photovfs's
    server class and gateway) and a WSGI app that reads the request body and answers a fixed 207 multistatus
    of `size` bytes: everything but the WebDAV work."""
    from photovfs.dav.httpserver import PhotoServer
    from photovfs.dav.sendfile import SendfileGateway

    body = b"<?xml version=\"1.0\"?>" + b" " * max(size - 21, 0)

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        start_response("207 Multi-Status", [("Content-Type", "application/xml; charset=utf-8"),
                                            ("Content-Length", str(len(body)))])
        return [body]

    server = PhotoServer(("127.0.0.1", port), app, numthreads=20, server_name="photovfs")
    server.gateway = SendfileGateway
    server.prepare()
    server.serve()


def _bare_thumb(args: tuple[str, str, int]) -> int:
    import pyvips

    src, out, size = args
    img = pyvips.Image.thumbnail(src, size, height=size, size="down")
    img.jpegsave(out, Q=85, strip=True)
    return os.path.getsize(out)


def bare_pool(files: list[Path], size: int, workers: int = 2) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-day-bare-"))
    try:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(abs, range(workers)))  # start the workers outside the timing
            t = time.perf_counter()
            list(pool.map(_bare_thumb, [(str(f), str(out / f"{i}.jpg"), size)
                                        for i, f in enumerate(files)]))
            return time.perf_counter() - t
    finally:
        shutil.rmtree(out, ignore_errors=True)


def first_thumbs_listing(root: Path) -> tuple[float, int]:
    """Seconds of the first PROPFIND of the cold thumbnails day folder, in a fresh server (the
    rendition cache of a kept library is emptied first, so the listing is really cold)."""
    shutil.rmtree(root / ".photovfs" / "renditions", ignore_errors=True)
    port, proc = start([sys.executable, __file__, "--serve", str(root)])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        path = "/thumbnails/by-date/{}/{}/{}/".format(*THUMB_DAY)
        t = time.perf_counter()
        data = propfind(conn, path)
        return time.perf_counter() - t, _entries(data)
    finally:
        stop(proc)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve_photovfs(Path(sys.argv[2]), int(sys.argv[3]))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "--hello":
        serve_hello(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=int, default=40, help="photos in the day folder (< 50)")
    ap.add_argument("--thumbs", type=int, default=50, help="12 MP photos in the thumbnails day")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--day-only", action="store_true",
                    help="only the day-folder PROPFIND rows (no cold thumbnails listing)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-day-")) / "Photos"
    if args.keep is None:
        root.parent.chmod(0o755)  # Apache's workers run as www-data
    t = time.perf_counter()
    make_library(root, args.photos, args.thumbs)
    log(f"library in {root} ({time.perf_counter() - t:.1f}s); load {os.getloadavg()[0]:.2f}")
    from photovfs.library import Library

    lib = Library.open(root)
    lib.scan()
    size = lib.config.thumbnails.view_size
    lib.close()
    rows = day_rows(root, args.requests)
    if args.day_only:
        print_day(rows)
        return 0
    thumbs = first_thumbs_listing(root)
    bare = bare_pool(sorted((root / "thumbday").glob("*.jpg")), size)
    print_table(rows, thumbs, bare, size, args.thumbs)
    if args.keep is None:
        shutil.rmtree(root.parent, ignore_errors=True)
    return 0


def day_rows(root: Path, n: int) -> list[tuple[str, float, float, int]]:
    rows = []
    day = "/by-date/{}/{}/{}/".format(*DAY)
    port, proc = start([sys.executable, __file__, "--serve", str(root)])
    try:
        rows.append(("photovfs, repeated", *day_latency(port, day, n)))
        rows.append(("photovfs, after a change", *day_latency(port, day, n, touch="/inbox/")))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        size = len(propfind(conn, day))
        conn.close()
    finally:
        stop(proc)
    port, proc = start([sys.executable, __file__, "--hello", str(size)])
    try:
        rows.append(("HTTP floor (cheroot, fixed 207)", *day_latency(port, day, n)))
    finally:
        stop(proc)
    if shutil.which("rclone"):
        port, proc = _rclone(root)
        try:
            rows.append(("rclone serve webdav", *day_latency(port, "/day/", n)))
        finally:
            stop(proc)
    else:
        log("rclone not installed: not measured")
    apache = apache_peer.start(root)
    if apache:
        base, halt = apache
        try:
            rows.append(("Apache mod_dav", *day_latency(int(base.rsplit(":", 1)[1]), "/day/", n)))
        finally:
            halt()
    else:
        log("apache2 not installed: Apache mod_dav not measured")
    return rows


def _rclone(root: Path) -> tuple[int, subprocess.Popen]:
    port = _free_port()
    proc = subprocess.Popen(["rclone", "--config", "/dev/null", "serve", "webdav", str(root),
                             "--addr", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(port, proc)
    return port, proc


def print_day(rows) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"\n{'PROPFIND Depth 1, day folder':<32} {'entries':>7} {'median ms':>9} {'p95 ms':>7}")
    for name, med, p95, entries in rows:
        print(f"{name:<32} {entries:>7} {med:>9.2f} {p95:>7.2f}")
    print("target: photovfs <= 2 ms (the HTTP floor is cheroot answering a fixed body of the "
          "same size; the floor row has no entries)")


def print_table(rows, thumbs, bare: float, size: int, count: int) -> None:
    print_day(rows)
    secs, entries = thumbs
    print(f"\nfirst PROPFIND of a cold thumbnails day folder ({count} x 12 MP, {size} px): "
          f"{secs:.2f} s for {entries} entries")
    print(f"bare pyvips thumbnail+jpegsave of the same files, 2 processes: {bare:.2f} s "
          f"-> photovfs / bare = {secs / bare:.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
