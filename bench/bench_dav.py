"""WebDAV benchmark: photovfs vs wsgidav's FilesystemProvider vs `rclone serve webdav` (vs Apache).

    .venv/bin/python bench/bench_dav.py [--photos 10000] [--keep DIR] [--seconds 3] [--profile]
    .venv/bin/python bench/bench_dav.py --propfind-only [--propfind-rounds 3] [--keep DIR]

Builds a library with one 10,000-photo folder (tiny distinct JPEGs, for PROPFIND), 300 distinct
~40 KB JPEGs (for small GETs) and one 24 MP original, scans it, serves it, and prints a table. It
never asserts times: it measures. Every server runs in its own process (as rclone does), so the
client does not share a GIL with it.

Rows: photovfs with its fast paths (PROPFIND and GET), photovfs as plain wsgidav (`fast_*=False`),
wsgidav's FilesystemProvider, rclone, and a hello-world WSGI app on cheroot sending a 40 KB body:
the ceiling of any app on photovfs's HTTP server. Small GETs are measured with `requests` (what
the issue quoted) and with `http.client` keep-alive, a much lighter client, the same for every
server; "4 clients" are 4 client processes with http.client. The thumbnails column is GETs of
already-rendered renditions in `thumbnails/by-date/...`. `--profile` then serves photovfs under
cProfile (every server thread) during sequential small GETs and prints where the time goes.

The PROPFIND table (`propfind_rounds`, alone with `--propfind-only`) runs photovfs, Apache and
rclone at once in alternating rounds, with named properties and with allprop; photovfs's first
listing of the folder in a new server, its listing after a catalog change elsewhere, and a
repeated one are reported apart (see `propfind_rounds`).
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apache_peer  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PROPFIND_BODY = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
                 b"<D:getlastmodified/><D:getcontentlength/><D:creationdate/><D:resourcetype/>"
                 b"<D:getetag/></D:prop></D:propfind>")
SMALL = 300  # ~40 KB JPEGs taken 2020-01-02, for the small-GET columns
HELLO_SIZE = 40_000
PROFILE_ENV = "PHOTOVFS_BENCH_PROFILE"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exif(date: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = date
    return exif.tobytes()


def make_library(root: Path, n: int) -> None:
    """n tiny distinct JPEGs in one folder, all taken the same day; SMALL ~40 KB ones taken the
    next day; one 24 MP photo."""
    bulk = root / "bulk"
    bulk.mkdir(parents=True, exist_ok=True)
    exif_bytes = _exif("2020:01:01 12:00:00")
    for i in range(n):
        p = bulk / f"IMG_{i:05d}.jpg"
        if p.exists():
            continue
        img = Image.new("RGB", (16, 16), (i % 256, (i // 256) % 256, (i // 65536) % 256))
        img.save(p, "JPEG", exif=exif_bytes, quality=80)
    camera = root / "camera"
    camera.mkdir(parents=True, exist_ok=True)
    for i in range(SMALL):
        p = camera / f"DSC_{i:04d}.jpg"
        if not p.exists():
            noise = Image.merge("RGB", [Image.effect_noise((280, 200), 50) for _ in range(3)])
            noise.save(p, "JPEG", exif=_exif("2020:01:02 12:00:00"), quality=88)
    big = root / "big" / "IMG_24MP.jpg"
    if not big.exists():
        big.parent.mkdir(parents=True, exist_ok=True)
        noise = Image.effect_noise((6000, 4000), 60).convert("RGB")
        buf = io.BytesIO()
        noise.save(buf, "JPEG", exif=exif_bytes, quality=92)
        big.write_bytes(buf.getvalue())


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            requests.request("OPTIONS", url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def best_of(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def propfind_time(url: str, runs: int = 3, body: bytes = PROPFIND_BODY,
                  touch: str | None = None) -> tuple[float, int]:
    """Best of `runs` PROPFIND Depth 1 of `url`. With `touch` (a URL outside the folder), a
    PROPPATCH of it before each timed request: a catalog write by another connection, so
    photovfs's rendered listings are dropped and every timed answer is cold (the peers get the
    same PROPPATCH; they keep nothing)."""
    s = requests.Session()
    count = [0]

    def go():
        r = s.request("PROPFIND", url, data=body, headers={"Depth": "1"}, timeout=300)
        assert r.status_code == 207, (url, r.status_code)
        count[0] = r.content.count(b"<D:response") + r.content.count(b"<ns0:response") + \
            r.content.count(b"<d:response")

    go()  # warm
    if touch is None:
        return best_of(go, runs), count[0]
    times = []
    for _ in range(runs):
        # a new value each time: rewriting the same value commits no change
        r = s.request("PROPPATCH", touch, data=TOUCH_BODY % next(_TOUCHES), timeout=60)
        r.content  # noqa: B018 - a peer may refuse it; photovfs's answer is checked by the caller
        t = time.perf_counter()
        go()
        times.append(time.perf_counter() - t)
    return min(times), count[0]


_TOUCHES = itertools.count(int(time.time()))
ALLPROP_BODY = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/>'
                b"</D:propfind>")
TOUCH_BODY = (b'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
              b'xmlns:b="urn:photovfs-bench"><D:set><D:prop><b:touch>%d</b:touch></D:prop>'
              b"</D:set></D:propertyupdate>")


def get_mbps(url: str, runs: int = 3) -> float:
    s = requests.Session()
    size = [0]

    def go():
        r = s.get(url, stream=True, timeout=300)
        n = 0
        for chunk in r.iter_content(1 << 20):
            n += len(chunk)
        size[0] = n

    go()
    return size[0] / best_of(go, runs) / 1e6


# ---- small GETs ------------------------------------------------------------------------------
class Rate:
    """Requests per second, errors, and the client's own CPU per request (ms)."""

    def __init__(self, done: int, errors: int, seconds: float, cpu: float) -> None:
        self.per_s = done / seconds
        self.errors = errors
        self.cpu_ms = cpu / max(done, 1) * 1000


def requests_gets(urls: list[str], seconds: float) -> Rate:
    """Sequential GETs with `requests` (one keep-alive session)."""
    s = requests.Session()
    done = errors = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        r = s.get(urls[done % len(urls)], timeout=60)
        errors += r.status_code != 200
        done += 1
    return Rate(done, errors, time.perf_counter() - t0, time.process_time() - c0)


def httpclient_gets(urls: list[str], seconds: float, offset: int = 0) -> Rate:
    """Sequential GETs with http.client on one keep-alive connection: little client cost."""
    host = urlsplit(urls[0])
    paths = [urlsplit(u).path for u in urls]
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    done = errors = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        try:
            conn.request("GET", paths[(done + offset) % len(paths)])
            r = conn.getresponse()
            r.read()
            errors += r.status != 200
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        done += 1
    conn.close()
    return Rate(done, errors, time.perf_counter() - t0, time.process_time() - c0)


def _client_process(args: tuple[list[str], float, int]) -> tuple[int, int, float]:
    urls, seconds, k = args
    rate = httpclient_gets(urls, seconds, offset=k * 37)
    return round(rate.per_s * seconds), rate.errors, seconds


def parallel_gets(urls: list[str], seconds: float, clients: int = 4) -> Rate:
    """`clients` processes, each one http.client keep-alive connection, at the same time."""
    with ProcessPoolExecutor(clients) as pool:
        list(pool.map(abs, range(clients)))  # start the processes outside the timing
        results = list(pool.map(_client_process, [(urls, seconds, k) for k in range(clients)]))
    return Rate(sum(r[0] for r in results), sum(r[1] for r in results), seconds, 0.0)


# ---- servers ---------------------------------------------------------------------------------
class Peer:
    def __init__(self, name: str, base: str, stop, *, folder: str | None, big: str | None,
                 small: str, thumbs: str | None = None, touch: str | None = None) -> None:
        self.name, self.base, self.stop = name, base, stop
        self.folder, self.big, self.small, self.thumbs = folder, big, small, thumbs
        self.touch = touch  # a folder outside `folder` for the cold PROPFINDs' PROPPATCH

    def urls(self, prefix: str) -> list[str]:
        return [f"{self.base}{prefix}DSC_{i:04d}.jpg" for i in range(SMALL)]


def hello_app(environ, start_response):
    """The ceiling: a WSGI app that does nothing but send a 40 KB body."""
    start_response("200 OK", [("Content-Type", "image/jpeg"), ("Content-Length", str(HELLO_SIZE)),
                              ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))])
    return [HELLO_BODY]


HELLO_BODY = b"\xff" * HELLO_SIZE


def serve_here(kind: str, root: Path, port: int) -> None:
    """Child-process entry: serve `root` until killed (servers get their own process and GIL,
    as rclone has, so the benchmark client does not compete with them)."""
    if kind.startswith("photovfs"):
        from photovfs.dav.server import make_server
        from photovfs.library import Library

        fast = kind in ("photovfs", "photovfs-profile")
        server = make_server(Library.open(root), "127.0.0.1", port, fast_propfind=fast,
                             fast_get=fast)
    else:
        from cheroot import wsgi

        if kind == "hello":
            app = hello_app
        else:
            from wsgidav.wsgidav_app import WsgiDAVApp

            app = WsgiDAVApp({"provider_mapping": {"/": str(root)}, "verbose": 1,
                              "logging": {"enable": False},
                              "http_authenticator": {"domain_controller": None},
                              "simple_dc": {"user_mapping": {"*": True}}})
        server = wsgi.Server(("127.0.0.1", port), app, numthreads=20)
    if kind == "photovfs-profile":
        profile_server(server, os.environ[PROFILE_ENV])
        return
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    thread.join()


def profile_server(server, out: str) -> None:
    """Serve with every cheroot thread under cProfile; on SIGTERM stop and dump the stats."""
    import cProfile
    import pstats

    from cheroot.workers import threadpool

    profiles: list[cProfile.Profile] = []
    run = threadpool.WorkerThread.run

    def profiled(self) -> None:
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.runcall(run, self)

    threadpool.WorkerThread.run = profiled
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.prepare()
    main = cProfile.Profile()
    profiles.append(main)
    thread = threading.Thread(target=main.runcall, args=(server.serve,), daemon=True)
    thread.start()
    stop.wait()
    server.stop()
    thread.join(10)
    pstats.Stats(*profiles).dump_stats(out)


def start_child(kind: str, root: Path, env: dict | None = None):
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(root), str(port)],
                            env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/", 120)

    def stop():
        proc.terminate()
        proc.wait(30)

    return base, stop


def start_photovfs(root: Path, *, fast: bool) -> Peer:
    base, stop = start_child("photovfs" if fast else "photovfs-nofast", root)
    return Peer("photovfs" + ("" if fast else " (no fast paths)"), base, stop,
                folder="/by-date/2020/01/01/", big="/originals/big/IMG_24MP.jpg",
                small="/by-date/2020/01/02/", thumbs="/thumbnails/by-date/2020/01/02/",
                touch="/inbox/")


def start_wsgidav_fs(root: Path) -> Peer:
    base, stop = start_child("wsgidav", root)
    return Peer("wsgidav FilesystemProvider", base, stop, folder="/bulk/",
                big="/big/IMG_24MP.jpg", small="/camera/")


def start_hello(root: Path) -> Peer:
    base, stop = start_child("hello", root)
    return Peer("cheroot hello-world (ceiling)", base, stop, folder=None, big=None,
                small="/camera/")


def start_rclone(root: Path) -> Peer | None:
    if not shutil.which("rclone"):
        return None
    port = free_port()
    proc = subprocess.Popen(["rclone", "--config", "/dev/null", "serve", "webdav", str(root),
                             "--addr", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/")

    def stop():
        proc.terminate()
        proc.wait(10)

    return Peer("rclone serve webdav", base, stop, folder="/bulk/", big="/big/IMG_24MP.jpg",
                small="/camera/", touch="/camera/")


def start_apache(root: Path) -> Peer | None:
    """Apache httpd + mod_dav (bench/apache_peer.py), if Debian's apache2 is installed."""
    started = apache_peer.start(root)
    if started is None:
        return None
    base, stop = started
    return Peer("Apache mod_dav", base, stop, folder="/bulk/", big="/big/IMG_24MP.jpg",
                small="/camera/", touch="/camera/")


# ---- measuring -------------------------------------------------------------------------------
class Row:
    def __init__(self, name: str) -> None:
        self.name = name
        self.propfind: float | None = None
        self.entries: int | None = None
        self.mbps: float | None = None
        self.seq_requests: Rate | None = None
        self.seq_http: Rate | None = None
        self.par: Rate | None = None
        self.thumbs: Rate | None = None


def measure(peer: Peer, seconds: float) -> Row:
    row = Row(peer.name)
    if peer.folder:
        row.propfind, row.entries = propfind_time(peer.base + peer.folder)
        log(f"{peer.name}: PROPFIND {row.propfind:.3f}s ({row.entries} entries)")
    if peer.big:
        row.mbps = get_mbps(peer.base + peer.big)
        log(f"{peer.name}: GET 24 MP {row.mbps:.0f} MB/s")
    urls = peer.urls(peer.small)
    httpclient_gets(urls, 0.5)  # warm the page cache and the server
    row.seq_requests = requests_gets(urls, seconds)
    row.seq_http = httpclient_gets(urls, seconds)
    row.par = parallel_gets(urls, seconds)
    log(f"{peer.name}: small GETs {row.seq_requests.per_s:.0f}/s (requests), "
        f"{row.seq_http.per_s:.0f}/s (http.client), 4 clients {row.par.per_s:.0f}/s, "
        f"{row.par.errors} errors")
    if peer.thumbs:
        thumbs = peer.urls(peer.thumbs)
        for u in thumbs:  # render them all once: the column measures cached renditions
            requests.get(u, timeout=300).raise_for_status()
        row.thumbs = httpclient_gets(thumbs, seconds)
        log(f"{peer.name}: cached rendition GETs {row.thumbs.per_s:.0f}/s")
    return row


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def print_table(rows: list[Row]) -> None:
    print()
    print(f"{'server':<30} {'PROPFIND d1 s':>13} {'entries':>7} {'24MP MB/s':>9} "
          f"{'small GET/s':>11} {'small GET/s':>11} {'4 clients':>9} {'errors':>6} "
          f"{'thumb GET/s':>11}")
    print(f"{'':<30} {'':>13} {'':>7} {'':>9} {'(requests)':>11} {'(http.clnt)':>11} "
          f"{'GET/s':>9} {'':>6} {'(cached)':>11}")
    for r in rows:
        print(f"{r.name:<30} {_f(r.propfind, '.3f'):>13} {_f(r.entries, 'd'):>7} "
              f"{_f(r.mbps, '.0f'):>9} {_f(r.seq_requests.per_s, '.0f'):>11} "
              f"{_f(r.seq_http.per_s, '.0f'):>11} {_f(r.par.per_s, '.0f'):>9} "
              f"{r.par.errors + r.seq_http.errors + r.seq_requests.errors:>6d} "
              f"{_f(r.thumbs.per_s if r.thumbs else None, '.0f'):>11}")


def print_ratios(rows: list[Row]) -> None:
    ref = {r.name: r for r in rows}
    pv, rc = ref.get("photovfs"), ref.get("rclone serve webdav")
    hello = ref.get("cheroot hello-world (ceiling)")
    print()
    ap = ref.get("Apache mod_dav")
    if pv and (rc or ap):
        fastest_pf = min((r for r in (rc, ap) if r and r.propfind), key=lambda r: r.propfind)
        print(f"PROPFIND (repeated: warm for photovfs) photovfs / faster of rclone and Apache "
              f"({fastest_pf.name}) = {pv.propfind / fastest_pf.propfind:.2f}x (target <= 0.7x; "
              f"cold in the PROPFIND table)")
    if pv and ap:
        print(f"24 MP GET photovfs / Apache = {pv.mbps / ap.mbps:.2f}x (target >= 0.9x)")
    if pv and rc:
        print(f"small GETs photovfs / rclone = {pv.seq_requests.per_s / rc.seq_requests.per_s:.2f}x"
              f" (requests), {pv.seq_http.per_s / rc.seq_http.per_s:.2f}x (http.client) "
              f"(target >= 1.0x)")
        print(f"4 clients photovfs / rclone = {pv.par.per_s / rc.par.per_s:.2f}x")
    if pv:
        fastest = max((r for r in rows if r.mbps and not r.name.startswith("photovfs")),
                      key=lambda r: r.mbps, default=None)
        if fastest:
            print(f"24 MP GET photovfs / fastest peer ({fastest.name}) = "
                  f"{pv.mbps / fastest.mbps:.2f}x (target >= 0.9x)")
        if pv.thumbs:
            print(f"cached rendition GETs: {pv.thumbs.per_s:.0f}/s (target >= 1,000/s)")
    if hello and pv:
        print(f"cheroot hello-world ceiling: {hello.seq_http.per_s:.0f}/s (http.client), "
              f"{hello.seq_requests.per_s:.0f}/s (requests); photovfs reaches "
              f"{pv.seq_http.per_s / hello.seq_http.per_s:.2f}x of it")
    for r in rows:
        if r.name in ("rclone serve webdav", "photovfs") and r.seq_requests:
            print(f"client CPU per request against {r.name}: requests "
                  f"{r.seq_requests.cpu_ms:.2f} ms, http.client {r.seq_http.cpu_ms:.2f} ms")


# ---- PROPFIND: cold and warm, named properties and allprop, all servers up at once ----------
PROPFIND_KINDS = (("named", PROPFIND_BODY), ("allprop", ALLPROP_BODY))


TEMPS = ("first", "changed", "repeat")


def _first_propfind(root: Path, body: bytes) -> float:
    """Seconds of the first PROPFIND of the big folder in a new photovfs server, after one of
    another folder (so that the process, its imports and its catalog connection are warm):
    nothing of this folder is kept yet."""
    peer = start_photovfs(root, fast=True)
    try:
        s = requests.Session()
        s.request("PROPFIND", peer.base + peer.small, data=body, headers={"Depth": "1"},
                  timeout=300).raise_for_status()
        t = time.perf_counter()
        r = s.request("PROPFIND", peer.base + peer.folder, data=body, headers={"Depth": "1"},
                      timeout=300)
        r.content  # noqa: B018 - the whole body is part of the time
        secs = time.perf_counter() - t
        assert r.status_code == 207
        return secs
    finally:
        peer.stop()


def propfind_rounds(root: Path, rounds: int, runs: int = 3, baseline: Path | None = None) -> None:
    """PROPFIND Depth 1 of the 10,000-photo folder on photovfs, Apache and rclone, in alternating
    rounds (the load of a shared machine changes from second to second), with named properties
    (the body Finder-like clients send) and allprop (the issue's wording). photovfs three ways:
    `first`, the first listing of the folder in a new server (nothing kept: query and render);
    `changed`, after a catalog write elsewhere (a PROPPATCH of inbox/: the folder is queried
    again, and photos whose rows did not change reuse their rendered responses); `repeat`, the
    same request again (the rendered listing, kept while the catalog is unchanged). The peers
    keep nothing: every column is the same request for them (they get the same PROPPATCH).
    With `baseline`, photovfs from that source tree is measured too, like a peer."""
    peers = [p for p in (start_photovfs(root, fast=True), start_apache(root), start_rclone(root))
             if p is not None]
    if baseline is not None:
        base = start_baseline(root, baseline)
        base.folder, base.touch = "/by-date/2020/01/01/", "/inbox/"
        peers.append(base)
    best: dict[tuple[str, str, str], float] = {}
    entries: dict[str, int] = {}

    def keep(key: tuple[str, str, str], secs: float) -> None:
        best[key] = min(best.get(key, secs), secs)

    try:
        check = requests.request("PROPPATCH", peers[0].base + (peers[0].touch or "/"),
                                 data=TOUCH_BODY % next(_TOUCHES), timeout=60)
        if check.status_code != 207:
            log(f"PROPPATCH on photovfs answered {check.status_code}: 'changed' is not measured")
        for _ in range(rounds):
            for peer in peers:
                for kind, body in PROPFIND_KINDS:
                    url = peer.base + peer.folder
                    secs, entries[peer.name] = propfind_time(url, runs, body,
                                                             touch=peer.base + peer.touch)
                    keep((peer.name, kind, "changed"), secs)
                    secs, _ = propfind_time(url, runs, body)
                    keep((peer.name, kind, "repeat"), secs)
                    if peer is not peers[0]:
                        keep((peer.name, kind, "first"), min(best[(peer.name, kind, t)]
                                                             for t in TEMPS[1:]))
            for kind, body in PROPFIND_KINDS:
                keep((peers[0].name, kind, "first"), _first_propfind(root, body))
    finally:
        for peer in peers:
            peer.stop()
    names = [p.name for p in peers]
    print(f"\nPROPFIND Depth 1, {entries.get(names[0], 0) - 1} photos, best of {rounds} rounds "
          f"(seconds; load average {os.getloadavg()[0]:.1f}; the peers keep nothing: their "
          f"columns are one measurement):")
    print(f"{'server':<28} " + " ".join(f"{k + ' ' + t:>15}" for k, _ in PROPFIND_KINDS
                                       for t in TEMPS))
    for name in names:
        print(f"{name:<28} " + " ".join(f"{best[(name, k, t)]:>15.3f}" for k, _ in PROPFIND_KINDS
                                       for t in TEMPS))
    pv, peers_only = names[0], [n for n in names[1:] if not n.startswith("photovfs")]
    for kind, _ in PROPFIND_KINDS:
        if not peers_only:
            break
        faster = min(peers_only, key=lambda n, k=kind: best[(n, k, "first")])
        ref = best[(faster, kind, "first")]  # a peer's best of all its measurements
        print(f"{kind}: photovfs / faster peer ({faster}, {ref:.3f} s) = "
              + ", ".join(f"{best[(pv, kind, t)] / ref:.2f}x {t}" for t in TEMPS)
              + " (target <= 0.7x)")


# ---- interleaved: the same load for every server ---------------------------------------------
def start_baseline(root: Path, tree: Path) -> Peer:
    """photovfs from another source tree (a package folder `photovfs/` with `dav/` inside, e.g.
    an export of the last commit): before/after in the same run."""
    base, stop = start_child("photovfs", root, {"PYTHONPATH": str(tree)})
    return Peer("photovfs (baseline)", base, stop, folder=None, big=None,
                small="/by-date/2020/01/02/", thumbs="/thumbnails/by-date/2020/01/02/")


def interleaved(root: Path, seconds: float, rounds: int, baseline: Path | None = None) -> None:
    """Small GETs and cached rendition GETs with all servers up at once, in short alternating
    slices: on a shared machine the load changes from second to second, and servers measured one
    after the other (the table above) can differ by 2x for that alone."""
    peers = [start_photovfs(root, fast=True), start_rclone(root), start_apache(root),
             start_hello(root)]
    if baseline is not None:
        peers.insert(1, start_baseline(root, baseline))
    peers = [p for p in peers if p is not None]
    targets: list[tuple[str, list[str]]] = []
    for peer in peers:
        targets.append((f"{peer.name}: small GETs", peer.urls(peer.small)))
        if peer.thumbs:
            thumbs = peer.urls(peer.thumbs)
            for u in thumbs:  # render them once: the row measures cached renditions
                requests.get(u, timeout=300).raise_for_status()
            targets.append((f"{peer.name}: cached rendition GETs", thumbs))
    done = {name: [0, 0, 0.0] for name, _ in targets}
    try:
        for _name, urls in targets:
            httpclient_gets(urls, 0.3)  # warm
        for _ in range(rounds):
            for name, urls in targets:
                r = httpclient_gets(urls, seconds / rounds)
                done[name][0] += round(r.per_s * seconds / rounds)
                done[name][1] += r.errors
                done[name][2] += seconds / rounds
    finally:
        for peer in peers:
            peer.stop()
    rates = {name: n / secs for name, (n, _e, secs) in done.items()}
    rclone = rates.get("rclone serve webdav: small GETs")
    hello = rates.get("cheroot hello-world (ceiling): small GETs")
    print(f"\ninterleaved ({rounds} rounds, http.client, sequential keep-alive; load average "
          f"{os.getloadavg()[0]:.1f}):")
    for name, per_s in rates.items():
        notes = [f"{per_s / rclone:.2f}x rclone" if rclone else "",
                 f"{per_s / hello:.2f}x hello-world" if hello else ""]
        print(f"  {name:<50} {per_s:7.0f}/s  {done[name][1]} errors  "
              + ", ".join(n for n in notes if n))


# ---- profile ---------------------------------------------------------------------------------
AREAS = (("cheroot/", "cheroot (HTTP parsing, sockets, threads)"), ("wsgidav/", "wsgidav"),
         ("/dav/", "photovfs dav adapter"), ("/vfs/", "photovfs core"),
         ("photovfs/", "photovfs core"), ("sqlalchemy/", "sqlalchemy"))
IDLE = ("acquire", "select", "poll", "wait", "sleep", "accept")


def _area(func: tuple[str, int, str]) -> str | None:
    """Which layer a profiled function belongs to; None for a thread waiting for work."""
    filename, _, name = func
    if filename == "~":
        if any(w in name for w in IDLE):
            return None
        if "sqlite3" in name:
            return "sqlite3"
        if any(w in name for w in ("recv", "send", "socket", "readinto")):
            return "socket I/O (builtins)"
        return "other builtins"
    for needle, area in AREAS:
        if needle in filename:
            return area
    return "stdlib / other Python"


def profile_photovfs(root: Path, seconds: float) -> None:
    import pstats

    out = tempfile.mktemp(suffix=".prof")
    base, stop = start_child("photovfs-profile", root, {PROFILE_ENV: out})
    peer = Peer("photovfs", base, stop, folder=None, big=None, small="/by-date/2020/01/02/")
    rate = httpclient_gets(peer.urls(peer.small), seconds)
    stop()
    stats = pstats.Stats(out)
    os.unlink(out)
    busy: dict[str, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        area = _area(func)
        if area is not None:
            busy[area] = busy.get(area, 0.0) + tt
    total = sum(busy.values())
    done = rate.per_s * seconds
    print(f"\nprofile: photovfs serving {done:.0f} sequential small GETs ({rate.per_s:.0f}/s under "
          f"cProfile), server CPU by layer (own time, idle waits excluded):")
    for area, tt in sorted(busy.items(), key=lambda kv: -kv[1]):
        print(f"  {area:<42} {tt / done * 1e6:8.0f} us/request  {tt / total:5.1%}")
    stats.sort_stats("tottime").print_stats(20)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve_here(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=int, default=10000)
    ap.add_argument("--keep", type=Path, default=None, help="reuse/keep the library in this folder")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each GET run")
    ap.add_argument("--profile", action="store_true", help="then profile photovfs's small GETs")
    ap.add_argument("--rounds", type=int, default=6,
                    help="slices of the interleaved small-GET comparison (0: skip it)")
    ap.add_argument("--propfind-only", action="store_true",
                    help="only the PROPFIND comparison (cold and warm, named and allprop)")
    ap.add_argument("--propfind-rounds", type=int, default=3,
                    help="rounds of the PROPFIND comparison (0: skip it)")
    ap.add_argument("--only-interleaved", action="store_true",
                    help="skip the table: only the interleaved small-GET comparison")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="also serve photovfs from this source tree in the interleaved and PROPFIND "
                         "comparisons "
                         "(a folder holding photovfs/, with dav/ inside: e.g. the last commit)")
    args = ap.parse_args()
    log(f"load average at start: {os.getloadavg()}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-dav-")) / "Photos"
    if args.keep is None:
        root.parent.chmod(0o755)  # Apache's workers run as www-data
    t = time.perf_counter()
    make_library(root, args.photos)
    log(f"library: {args.photos} photos + {SMALL} ~40 KB photos + one 24 MP original in {root} "
        f"({time.perf_counter() - t:.1f}s)")
    from photovfs.library import Library

    lib = Library.open(root)
    t = time.perf_counter()
    lib.scan()
    lib.close()
    log(f"scan: {time.perf_counter() - t:.1f}s")

    rows = []
    if args.propfind_only:
        propfind_rounds(root, max(args.propfind_rounds, 1), baseline=args.baseline)
        return 0
    if args.only_interleaved:
        interleaved(root, args.seconds * 3, max(args.rounds, 1), args.baseline)
        return 0
    for start in (lambda: start_photovfs(root, fast=True), lambda: start_photovfs(root, fast=False),
                  lambda: start_wsgidav_fs(root), lambda: start_rclone(root),
                  lambda: start_apache(root), lambda: start_hello(root)):
        peer = start()
        if peer is None:
            continue
        try:
            rows.append(measure(peer, args.seconds))
        finally:
            peer.stop()
    if not apache_peer.available():
        log("note: apache2 is not installed (apt install apache2): Apache mod_dav not measured")
    print_table(rows)
    print_ratios(rows)
    if args.propfind_rounds:
        propfind_rounds(root, args.propfind_rounds, baseline=args.baseline)
    if args.rounds:
        interleaved(root, args.seconds * 3, args.rounds, args.baseline)
    if args.profile:
        profile_photovfs(root, args.seconds)
    if args.keep is None:
        shutil.rmtree(root.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
