"""FUSE mount benchmark: one command, prints a table, never asserts.

    python bench/bench_fuse.py [--tree 100000] [--flat 10000] [--reps 5] [--keep DIR] [--background]

1. sequential read of a 24 MP original (~14 MB JPEG) through the mount vs directly from disk, first
   read (page cache of the real file, and of the mount's copy, evicted with posix_fadvise
   DONTNEED; the first row says how much of the file was still cached after it), warm, and a
   first read through the mount of an original that is in the page cache (re-opening a photo
   the kernel dropped from the mount's cache, vs the warm disk read); --reps reads each,
   alternating disk and mount, the median reported. Both sides are read the same way: 1 MiB
   read() calls from Python, and `cat` (128 KiB reads, what a user's cat/cp does). The daemon's CPU time per MiB of first reads (all its threads, from
   /proc) is printed too: unlike MB/s it hardly moves with the load of a shared machine; and the
   reader's own CPU per MiB on both sides: when other work keeps both cores busy, throughput
   follows the ratio of all CPU spent (daemon + reader) to the disk read's;
2. `ls -l` of a 10,000-entry folder (an album and the originals folder) vs the plain folder on disk;
3. `find` over a tree of --tree assets (originals/ and by-date/) vs `find` on the plain tree.
The default run (100,000 assets) takes about 2 minutes on 2 cores; `--tree 10000` for a quick look.

Every row names its peer, measured in the same run, and the ratio: for reads throughput / peer's
(>= 0.5x is the target of the first read), for listings time / peer's time.

The mount runs with `[background] enabled = false` by default, so that the numbers measure the
request path alone; --background leaves it on (renditions, faces and fixity of the 110,000 new
assets, in the daemon's child process) to see what that costs the requests.

The big catalogues are written straight into SQLite (rows via the catalog models, files as hard links
to one tiny JPEG: they share a hash, which does not matter for listings; virtual names are unique).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

PHOTOVFS = Path(sys.executable).with_name("photovfs")


def make_big_jpeg(path: Path) -> None:
    from PIL import Image

    rnd = random.Random(24)
    small = Image.frombytes("RGB", (1500, 1000), rnd.randbytes(1500 * 1000 * 3))
    img = small.resize((6000, 4000), Image.BICUBIC)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2020:06:01 12:00:00"
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=93, exif=exif.tobytes())


def tiny_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def populate(lib_dir: Path, flat: int, tree: int) -> dict[str, float]:
    """Files as hard links + catalog rows inserted in bulk. Returns build timings."""
    from photovfs.catalog.models import Album, AlbumAsset, Asset, Folder
    from photovfs.catalog.store import rendition_name
    from photovfs.library import Library
    from sqlalchemy import insert, text

    timings = {}
    t0 = time.perf_counter()
    seed = lib_dir / ".seed.jpg"
    seed.write_bytes(tiny_jpeg())
    size = seed.stat().st_size
    make_big_jpeg(lib_dir / "big" / "big.jpg")
    lib = Library.open(lib_dir)
    lib.scan()  # the big photo, catalogued the normal way
    now = datetime.now()
    mtime_ns = seed.stat().st_mtime_ns
    rows, folders = [], set()

    def add(folder: str, name: str, when: datetime) -> None:
        d = lib_dir / folder
        if folder not in folders:
            d.mkdir(parents=True, exist_ok=True)
            folders.add(folder)
        if len(rows) % 50_000 == 0:  # a file has at most ~65,000 links (ext4)
            shutil.copyfile(seed, lib_dir / f".seed-{len(rows)}.jpg")
        os.link(lib_dir / f".seed-{len(rows) // 50_000 * 50_000}.jpg", d / name)
        tname = rendition_name(name)
        rows.append(dict(folder=folder, filename=name, vname=name, vname_key=name.casefold(),
                         tname=tname, tname_key=tname.casefold(), sha256="0" * 64, size=size,
                         mtime_ns=mtime_ns, media_type="image", mime="image/jpeg", status="ok",
                         taken_at=when, year=when.year, month=when.month, day=when.day,
                         added_at=now))

    base = datetime(2000, 1, 1, 12)
    for i in range(flat):
        add("flat", f"f{i:05d}.jpg", base)
    for i in range(tree):
        when = base + timedelta(days=i // 40)  # 40 photos a day: ~2,500 day folders per 100k
        add(f"tree/{when:%Y}/{when:%m}/{when:%d}", f"t{i:06d}.jpg", when)
    timings["files"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    all_folders = set()
    for f in folders:
        parts = f.split("/")
        all_folders |= {"/".join(parts[:n]) for n in range(1, len(parts) + 1)}
    with lib.write() as s:
        for chunk in range(0, len(rows), 5000):
            s.execute(insert(Asset), rows[chunk:chunk + 5000])
        s.execute(insert(Folder), [dict(path=f, parent=f.rpartition("/")[0],
                                         name=f.rpartition("/")[2]) for f in sorted(all_folders)])
        album = Album(path="Flat", path_key="flat", parent="", trashed=False, created_at=now)
        s.add(album)
        s.flush()
        ids = [r[0] for r in s.execute(Asset.__table__.select().with_only_columns(Asset.id)
                                       .where(Asset.folder == "flat"))]
        s.execute(insert(AlbumAsset), [dict(album_id=album.id, asset_id=i, added_at=now)
                                       for i in ids])
        s.execute(text("ANALYZE"))  # planner statistics, as Library.open gives a big catalog
    lib.close()
    timings["catalog"] = time.perf_counter() - t1
    return timings


class Mounted:
    def __init__(self, lib_dir: Path, mnt: Path, background: bool = False) -> None:
        self.mnt = mnt
        mnt.mkdir(exist_ok=True)
        self.log = open(mnt.parent / "mount.log", "wb")
        cmd = [str(PHOTOVFS), "mount", str(lib_dir), str(mnt), "--no-scan"]
        if not background:
            config = mnt.parent / "bench-config.toml"
            config.write_text("[background]\nenabled = false\n")
            cmd += ["--config", str(config)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.ismount(mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((mnt.parent / "mount.log").read_text())
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)])
        self.log.close()


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache (through the mount: the kernel's FUSE copy)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_mib(path: Path) -> tuple[int, int]:
    """(MiB of a file wholly in the page cache, MiB in all): proof an eviction took. mincore(2)
    on a private mapping (writable, so ctypes can tell its address; nothing is written)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if not size:
            return 0, 0
        m = mmap.mmap(fh.fileno(), size, flags=mmap.MAP_PRIVATE,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
        anchor = ctypes.c_char.from_buffer(m)
        try:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = ctypes.create_string_buffer(pages)
            if libc.mincore(ctypes.addressof(anchor), size, vec):
                return -1, -1
            per = (1 << 20) // mmap.PAGESIZE
            flags = vec.raw[:pages]
            chunks = range(0, pages, per)
            return sum(b"\0" not in flags[i:i + per] for i in chunks), len(chunks)
        finally:
            del anchor
            m.close()


def own_cpu() -> float:
    """This process's CPU time (the reader's side of a read: page cache, copies, FUSE waits)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def read_all(path: Path, bufsize: int = 1 << 20) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(bufsize):
            n += len(chunk)
    return time.perf_counter() - t, n


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def fuse_read_ahead_kb(mnt: Path) -> str:
    """The mount's read-ahead as the kernel has it (raised by the daemon when it runs as root)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == str(mnt):
            with contextlib.suppress(OSError):
                return Path(f"/sys/class/bdi/{fields[2]}/read_ahead_kb").read_text().strip()
    return "?"


def timed_quiet(cmd: list[str]) -> float:
    """A command's wall time, its output to /dev/null."""
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def timed(cmd: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout
    return time.perf_counter() - t, out.count(b"\n")


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flat", type=int, default=10_000, help="entries of the big folder")
    ap.add_argument("--tree", type=int, default=100_000, help="assets of the find tree")
    ap.add_argument("--reps", type=int, default=5, help="reads of the big original per row")
    ap.add_argument("--keep", type=Path, default=None, help="build here and keep it")
    ap.add_argument("--background", action="store_true",
                    help="leave the daemon's background work (renditions, fixity) on")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-fuse-"))
    lib_dir, mnt = work / "lib", work / "mnt"
    rows: list[tuple[str, str, str, str]] = []
    try:
        if not (lib_dir / ".photovfs").exists():
            lib_dir.mkdir(parents=True, exist_ok=True)
            t = populate(lib_dir, args.flat, args.tree)
            print(f"built: files {t['files']:.1f}s, catalog {t['catalog']:.1f}s "
                  f"({args.flat} flat + {args.tree} tree assets)", file=sys.stderr)
        m = Mounted(lib_dir, mnt, background=args.background)
        try:
            time.sleep(1.5)  # the read-ahead is raised a second after the mount appears
            big = lib_dir / "big" / "big.jpg"
            mb = big.stat().st_size / 1e6
            via = mnt / "originals" / "big" / "big.jpg"
            first_disk, warm_disk, first_mnt, warm_mnt = [], [], [], []
            cat_disk, cat_mnt, orig_warm_mnt = [], [], []
            cpu, reader_disk, reader_mnt = 0.0, 0.0, 0.0
            mib = args.reps * big.stat().st_size / 2**20
            evicted = []
            for _ in range(args.reps):
                evict(big)
                evicted.append(cached_mib(big)[0])
                u = own_cpu()
                first_disk.append(read_all(big)[0])
                reader_disk += own_cpu() - u
                warm_disk.append(read_all(big)[0])
                evict(big)
                evict(via)
                c0, u = cpu_seconds(m.proc.pid), own_cpu()
                first_mnt.append(read_all(via)[0])
                cpu += cpu_seconds(m.proc.pid) - c0
                reader_mnt += own_cpu() - u
                warm_mnt.append(read_all(via)[0])
                evict(via)  # the original stays cached: what re-opening a photo meets
                orig_warm_mnt.append(read_all(via)[0])
                evict(big)
                cat_disk.append(timed_quiet(["cat", str(big)]))
                evict(big)
                evict(via)
                cat_mnt.append(timed_quiet(["cat", str(via)]))
            fd, wd, fm, wm = (median(x) for x in (first_disk, warm_disk, first_mnt, warm_mnt))
            cd, cm, om = median(cat_disk), median(cat_mnt), median(orig_warm_mnt)
            rows.append((f"read 24MP original ({mb:.1f} MB), disk, first", f"{fd * 1000:.1f} ms",
                         f"{mb / fd:.0f} MB/s", f"(peer; {max(evicted)} MiB cached after evict)"))
            rows.append(("read 24MP original, mount, first", f"{fm * 1000:.1f} ms",
                         f"{mb / fm:.0f} MB/s", f"{fd / fm:.2f}x disk first (target >= 0.5x)"))
            rows.append(("  daemon CPU per MiB of those first reads", f"{cpu / mib * 1e6:.0f} us",
                         f"ra {fuse_read_ahead_kb(mnt)} KiB", "(load-independent-ish)"))
            rows.append(("  reader's CPU per MiB, disk / mount first",
                         f"{reader_disk / mib * 1e6:.0f} us", f"{reader_mnt / mib * 1e6:.0f} us",
                         f"all CPU {(cpu + reader_mnt) / reader_disk:.1f}x the disk read's"))
            rows.append(("cat original > /dev/null, disk, first", f"{cd * 1000:.1f} ms",
                         f"{mb / cd:.0f} MB/s", "(peer; includes cat's start)"))
            rows.append(("cat original > /dev/null, mount, first", f"{cm * 1000:.1f} ms",
                         f"{mb / cm:.0f} MB/s", f"{cd / cm:.2f}x disk cat first"))
            rows.append(("read 24MP original, disk, warm", f"{wd * 1000:.1f} ms",
                         f"{mb / wd:.0f} MB/s", "(peer)"))
            rows.append(("read 24MP original, mount, warm (keep_cache)", f"{wm * 1000:.1f} ms",
                         f"{mb / wm:.0f} MB/s", f"{wd / wm:.2f}x disk warm"))
            rows.append(("read 24MP original, mount, first, original cached", f"{om * 1000:.1f} ms",
                         f"{mb / om:.0f} MB/s", f"{wd / om:.2f}x disk warm"))
            d, n = read_all(mnt / "by-date" / "2020" / "06" / "01" / "big.jpg", 128 * 1024)
            rows.append(("read via by-date (new inode), 128 KiB reads", f"{d * 1000:.1f} ms",
                         f"{mb / d:.0f} MB/s", ""))

            plain, _ = timed(["ls", "-l", str(lib_dir / "flat")])
            rows.append((f"ls -l plain folder on disk ({args.flat})", f"{plain * 1000:.0f} ms",
                         f"{args.flat} entries", "(peer)"))
            for label, path in ((f"ls -l by-album/Flat ({args.flat}), first", mnt / "by-album" / "Flat"),
                                ("ls -l by-album/Flat, again", mnt / "by-album" / "Flat"),
                                ("ls -l originals/flat, first", mnt / "originals" / "flat"),
                                ("ls -l originals/flat, again", mnt / "originals" / "flat")):
                d, n = timed(["ls", "-l", str(path)])
                rows.append((label, f"{d * 1000:.0f} ms", f"{n - 1} entries",
                             f"{d / plain:.1f}x plain's time"))

            plain, n = timed(["find", str(lib_dir / "tree")])
            rows.append(("find plain tree on disk", f"{plain:.2f} s", f"{n} paths", "(peer)"))
            for label, path in ((f"find originals/tree ({args.tree} assets)", mnt / "originals" / "tree"),
                                ("find originals/tree, again", mnt / "originals" / "tree"),
                                ("find by-date (all assets)", mnt / "by-date")):
                d, n = timed(["find", str(path)])
                rows.append((label, f"{d:.2f} s", f"{n} paths", f"{d / plain:.0f}x plain's time"))
        finally:
            m.close()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    w = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{w}}  {'time':>10}  {'result':<15}  vs peer (same run)")
    print("-" * (w + 60))
    for a, b, c, r in rows:
        print(f"{a:<{w}}  {b:>10}  {c:<15}  {r}")
    print(f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on "
          f"{os.cpu_count()} cores; background work {'on' if args.background else 'off'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
