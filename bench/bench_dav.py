"""WebDAV benchmark: photovfs vs wsgidav's FilesystemProvider vs `rclone serve webdav` (vs Apache).

    .venv/bin/python bench/bench_dav.py [--photos 10000] [--keep DIR]

Builds a library with one 10,000-photo folder (tiny distinct JPEGs) and one 24 MP original, scans
it, serves it, and prints a table. It never asserts times: it measures.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PROPFIND_BODY = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
                 b"<D:getlastmodified/><D:getcontentlength/><D:creationdate/><D:resourcetype/>"
                 b"<D:getetag/></D:prop></D:propfind>")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_library(root: Path, n: int) -> None:
    """n tiny distinct JPEGs in one folder, all taken the same day, plus one 24 MP photo."""
    bulk = root / "bulk"
    bulk.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = "2020:01:01 12:00:00"
    exif_bytes = exif.tobytes()
    for i in range(n):
        p = bulk / f"IMG_{i:05d}.jpg"
        if p.exists():
            continue
        img = Image.new("RGB", (16, 16), (i % 256, (i // 256) % 256, (i // 65536) % 256))
        img.save(p, "JPEG", exif=exif_bytes, quality=80)
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


def propfind_time(url: str, runs: int = 3) -> tuple[float, int]:
    s = requests.Session()
    count = [0]

    def go():
        r = s.request("PROPFIND", url, data=PROPFIND_BODY, headers={"Depth": "1"}, timeout=300)
        assert r.status_code == 207, (url, r.status_code)
        count[0] = r.content.count(b"<D:response") + r.content.count(b"<ns0:response") + \
            r.content.count(b"<d:response")

    go()  # warm
    return best_of(go, runs), count[0]


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


def small_gets(urls: list[str], clients: int, seconds: float = 3.0) -> float:
    stop = time.time() + seconds
    done = [0] * clients

    def worker(k: int) -> None:
        s = requests.Session()
        i = k
        while time.time() < stop:
            r = s.get(urls[i % len(urls)], timeout=60)
            assert r.status_code == 200
            i += clients
            done[k] += 1

    with ThreadPoolExecutor(clients) as ex:
        list(ex.map(worker, range(clients)))
    return sum(done) / seconds


class Peer:
    def __init__(self, name: str, base: str, folder: str, big: str, stop) -> None:
        self.name, self.base, self.folder, self.big, self.stop = name, base, folder, big, stop


def serve_here(kind: str, root: Path, port: int) -> None:
    """Child-process entry: serve `root` until killed (servers get their own process and GIL,
    as rclone has, so the benchmark client does not compete with them)."""
    if kind.startswith("photovfs"):
        from photovfs.dav.server import run_in_thread
        from photovfs.library import Library

        lib = Library.open(root)
        _, thread = run_in_thread(lib, "127.0.0.1", port, fast_propfind=kind == "photovfs")
    else:
        from cheroot import wsgi
        from wsgidav.wsgidav_app import WsgiDAVApp

        app = WsgiDAVApp({"provider_mapping": {"/": str(root)}, "verbose": 1,
                          "logging": {"enable": False},
                          "http_authenticator": {"domain_controller": None},
                          "simple_dc": {"user_mapping": {"*": True}}})
        server = wsgi.Server(("127.0.0.1", port), app, numthreads=20)
        server.prepare()
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
    thread.join()


def start_child(kind: str, name: str, root: Path, folder: str, big: str) -> Peer:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(root), str(port)])
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/", 120)

    def stop():
        proc.terminate()
        proc.wait(10)

    return Peer(name, base, folder, big, stop)


def start_photovfs(root: Path, *, fast: bool) -> Peer:
    return start_child("photovfs" if fast else "photovfs-nofast",
                       "photovfs" + ("" if fast else " (no fast path)"), root,
                       "/by-date/2020/01/01/", "/originals/big/IMG_24MP.jpg")


def start_wsgidav_fs(root: Path) -> Peer:
    return start_child("wsgidav", "wsgidav FilesystemProvider", root, "/bulk/",
                       "/big/IMG_24MP.jpg")


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

    return Peer("rclone serve webdav", base, "/bulk/", "/big/IMG_24MP.jpg", stop)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve_here(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=int, default=10000)
    ap.add_argument("--keep", type=Path, default=None, help="reuse/keep the library in this folder")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-dav-")) / "Photos"
    t = time.perf_counter()
    make_library(root, args.photos)
    print(f"library: {args.photos} photos + one 24 MP original in {root} "
          f"({time.perf_counter() - t:.1f}s)", file=sys.stderr)
    from photovfs.library import Library

    lib = Library.open(root)
    t = time.perf_counter()
    lib.scan()
    lib.close()
    print(f"scan: {time.perf_counter() - t:.1f}s", file=sys.stderr)

    peers = []
    rows = []
    for start in (lambda: start_photovfs(root, fast=True), lambda: start_photovfs(root, fast=False),
                  lambda: start_wsgidav_fs(root), lambda: start_rclone(root)):
        peer = start()
        if peer is None:
            continue
        peers.append(peer.name)
        try:
            wait_up(peer.base + "/")
            pf, n = propfind_time(peer.base + peer.folder)
            log(f"{peer.name}: PROPFIND {pf:.3f}s ({n} entries)")
            mbps = get_mbps(peer.base + peer.big)
            log(f"{peer.name}: GET {mbps:.0f} MB/s")
            listing = [f"{peer.base}{peer.folder}IMG_{i:05d}.jpg" for i in range(0, 2000, 7)]
            seq = small_gets(listing, 1)
            par = small_gets(listing, 4)
            log(f"{peer.name}: small GETs {seq:.0f}/s, 4 clients {par:.0f}/s")
            rows.append((peer.name, pf, n, mbps, seq, par))
        finally:
            peer.stop()
    if not shutil.which("apache2"):
        print("note: apache2 is not installed: Apache mod_dav not measured", file=sys.stderr)

    print()
    print(f"{'server':<32} {'PROPFIND d1 (s)':>16} {'entries':>8} {'GET 24MP MB/s':>14} "
          f"{'small GET/s':>12} {'4 clients GET/s':>16}")
    for name, pf, n, mbps, seq, par in rows:
        print(f"{name:<32} {pf:>16.3f} {n:>8} {mbps:>14.0f} {seq:>12.0f} {par:>16.0f}")
    ref = {r[0]: r for r in rows}
    if "photovfs" in ref and "rclone serve webdav" in ref:
        ratio = ref["photovfs"][1] / ref["rclone serve webdav"][1]
        print(f"\nPROPFIND photovfs / rclone = {ratio:.2f}x (target <= 0.7x)")
    if args.keep is None:
        shutil.rmtree(root.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
