"""Rendition benchmark: how much do the photovfs layers cost over bare libvips?

Run: python bench/bench_thumbs.py [--photos 40] [--size 256]
Prints a table; never asserts (timings depend on the machine). Everything is generated in a temp dir:
a 24 MP JPEG (6000x4000), 12 MP HEICs with and without an embedded thumbnail, and 40 hard links to
the JPEG (distinct paths and cache keys, one file's worth of disk and page cache).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pillow_heif
import pyvips
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from photovfs.thumbs import Renditions, render  # noqa: E402

MAX_PIXELS = 120_000_000


def photo_like(width: int, height: int) -> Image.Image:
    """Smooth gradients plus blurred noise: compresses like a photo, not like noise or a flat fill."""
    small = (width // 8, height // 8)
    noise = [Image.effect_noise(small, 60).filter(ImageFilter.GaussianBlur(2)) for _ in range(3)]
    ramp = Image.linear_gradient("L").resize(small)
    bands = [Image.blend(n, ramp.rotate(120 * i), 0.5) for i, n in enumerate(noise)]
    return Image.merge("RGB", bands).resize((width, height), Image.Resampling.BICUBIC)


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time in ms."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak RSS of this process since the last `reset_peak` (VmHWM), else since start (getrusage)."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rss_mb() -> float:
    return _status_mb("VmRSS") or 0.0


def reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM, so each phase reports its own peak.

    (getrusage's ru_maxrss cannot be reset, and a spawned child inherits its parent's at fork.)
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    global PHASE_START_MB
    PHASE_START_MB = rss_mb()


PHASE_START_MB = 0.0


def peak_note() -> str:
    return f"peak RSS {peak_rss_mb():.0f} MB (phase started at {PHASE_START_MB:.0f} MB)"


def bare_thumbnail(path: str, size: int) -> int:
    """What a minimal server would do: libvips thumbnail + JPEG encode, nothing else."""
    return len(pyvips.Image.thumbnail(path, size, height=size).jpegsave_buffer(Q=85))


def worker_peak(_i: int) -> float:
    """A pool child's own peak RSS (VmHWM belongs to the exec'd process, unlike ru_maxrss)."""
    time.sleep(0.2)  # so that each of the two workers answers once
    return _status_mb("VmHWM") or 0.0


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, what: str, ms: float, note: str = "") -> None:
        shown = f"{ms:10.3f}" if ms else " " * 10
        self.rows.append((what, shown, note))
        print(f"  {what:<58} {shown} ms  {note}", flush=True)

    def show(self) -> None:
        print()
        print(f"{'measurement':<60} {'ms':>10}  note")
        print("-" * 100)
        for what, ms, note in self.rows:
            print(f"{what:<60} {ms}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    size: int = args.size
    table = Table()
    print(f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, "
          f"pillow-heif {pillow_heif.__version__}, {os.cpu_count()} CPUs", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-thumbs-") as tmp_name:
        tmp = Path(tmp_name)
        big = tmp / "big.jpg"
        photo_like(6000, 4000).save(big, quality=90)
        print(f"generated {big.name}: 6000x4000, {big.stat().st_size / 1e6:.1f} MB", flush=True)
        sha = "0" * 64

        # 1. a single 24 MP JPEG
        reset_peak()
        for target in (size, 1920):
            table.add(f"24MP JPEG -> {target}: bare pyvips thumbnail+jpegsave",
                      timed(lambda t=target: bare_thumbnail(str(big), t)))
            table.add(f"24MP JPEG -> {target}: render() (cold, no cache)",
                      timed(lambda t=target: render(big, "image", t, max_pixels=MAX_PIXELS)))
        with Renditions(tmp / "cache1") as rend:
            cold = timed(lambda: rend.get_bytes(big, sha, "image", size), repeat=1)
            table.add(f"24MP JPEG -> {size}: Renditions.get_bytes cold (render+write)", cold)
            table.add(f"24MP JPEG -> {size}: get_bytes cached (memory LRU)",
                      timed(lambda: rend.get_bytes(big, sha, "image", size), repeat=200))
            rend.get(big, sha, "image", 1920)
            table.add("24MP JPEG -> 1920: get_bytes cached (disk file)",
                      timed(lambda: rend.get_bytes(big, sha, "image", 1920), repeat=200))
            table.add("cached(): stat only", timed(lambda: rend.cached(sha, 1920), repeat=200))
        table.add("24MP JPEG phase", 0.0, peak_note())

        # 2. HEIC, with and without an embedded thumbnail
        heic_img = photo_like(4000, 3000)
        with_thumb, without = tmp / "with_thumb.heic", tmp / "no_thumb.heic"
        pillow_heif.from_pillow(heic_img).save(with_thumb, quality=80, thumbnails=[512])
        pillow_heif.from_pillow(heic_img).save(without, quality=80, thumbnails=[])
        del heic_img
        reset_peak()
        for path, label in ((with_thumb, "with 512px thumbnail"), (without, "no thumbnail")):
            table.add(f"12MP HEIC ({label}) -> {size}: render()",
                      timed(lambda p=path: render(p, "image", size, max_pixels=MAX_PIXELS)))
        table.add("12MP HEIC -> 1920: render() (full decode)",
                  timed(lambda: render(with_thumb, "image", 1920, max_pixels=MAX_PIXELS)))
        table.add("HEIC phase", 0.0, peak_note())

        # 3. many photos: 2 threads through Renditions vs a bare 2-process pyvips pool
        links = []
        for i in range(args.photos):
            link = tmp / f"photo_{i:03d}.jpg"
            os.link(big, link)
            links.append(link)
        items = [(p, f"{i + 1:064x}", "image") for i, p in enumerate(links)]
        reset_peak()
        with Renditions(tmp / "cache2", workers=2) as rend:
            start = time.perf_counter()
            result = rend.ensure_many(items, size)
            many_ms = (time.perf_counter() - start) * 1000
            errors = sum(isinstance(v, Exception) for v in result.values())
        table.add(f"ensure_many: {args.photos} x 24MP -> {size}, 2 worker threads", many_ms,
                  f"{many_ms / args.photos:.0f} ms/photo, {errors} errors, {peak_note()}")
        spawn = multiprocessing.get_context("spawn")  # fork after libvips started threads is unsafe
        with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
            list(pool.map(noop_twice, range(2)))  # start the workers outside the timing
            start = time.perf_counter()
            list(pool.map(bare_thumbnail, [str(p) for p in links], [size] * len(links)))
            pool_ms = (time.perf_counter() - start) * 1000
            peaks = list(pool.map(worker_peak, range(2)))
        table.add(f"bare pool: {args.photos} x 24MP -> {size}, 2 processes", pool_ms,
                  f"{pool_ms / args.photos:.0f} ms/photo, peak RSS per child "
                  + ", ".join(f"{p:.0f}" for p in peaks) + " MB")

        # 4. over WebDAV: a cold rendition per request, then the cached one again and again
        webdav_phase(table, big, tmp, min(8, args.photos))

    table.show()


def variant(big: bytes, i: int) -> bytes:
    """The same 24 MP JPEG with a distinct comment segment: a new hash, so a new rendition."""
    comment = f"variant {i}".encode()
    return big[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + big[2:]


def webdav_phase(table: Table, big: Path, tmp: Path, n: int) -> None:
    """Issue target: a cold rendition GET over WebDAV <= 1.2x bare pyvips; cached >= 1,000/s."""
    import http.client

    from photovfs.dav.server import run_in_thread
    from photovfs.library import Library

    root = tmp / "Library"
    root.mkdir()
    data = big.read_bytes()
    for i in range(n):
        (root / f"v{i:02d}.jpg").write_bytes(variant(data, i))
    lib = Library.open(root, state_dir=tmp / "state")
    lib.scan()
    size = lib.config.thumbnails.view_size
    server, _ = run_in_thread(lib, "127.0.0.1", 0)
    conn = http.client.HTTPConnection("127.0.0.1", server.bind_addr[1], timeout=120)

    def get(url: str) -> bytes:
        conn.request("GET", url)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, (url, resp.status)
        return body

    try:
        bare, cold = [], []
        for i in range(n):  # interleaved, so that load on a shared machine hits both alike
            bare.append(timed(lambda i=i: bare_thumbnail(str(root / f"v{i:02d}.jpg"), size), 1))
            cold.append(timed(lambda i=i: get(f"/thumbnails/originals/v{i:02d}.jpg"), 1))
        b, c = statistics.median(bare), statistics.median(cold)
        table.add(f"24MP JPEG -> {size}: bare pyvips thumbnail+jpegsave (median of {n})", b)
        table.add(f"24MP JPEG -> {size}: cold GET /thumbnails/... over WebDAV", c,
                  f"{c / b:.2f}x bare (target <= 1.2x)")
        url, count, stop = "/thumbnails/originals/v00.jpg", 0, time.perf_counter() + 3
        while time.perf_counter() < stop:
            get(url)
            count += 1
        table.add("cached rendition GET over WebDAV, 1 client (http.client)", 3000 / count,
                  f"{count / 3:.0f} requests/s (target >= 1,000/s)")
    finally:
        conn.close()
        server.stop()
        lib.close()


def noop_twice(_i: int) -> None:
    """Warm-up task: imports pyvips in the child before the clock starts."""
    pyvips.version(0)


if __name__ == "__main__":
    main()
