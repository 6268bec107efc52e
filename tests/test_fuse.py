"""The FUSE adapter through a real mount: `photovfs mount` in a subprocess, plain shell tools on it."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from conftest import jpeg_with_date
from fuse_helpers import PHOTOVFS, Mount, is_mounted, requires_fuse, sha256, wait_for
from photovfs.library import Library

pytestmark = requires_fuse

DAY = "by-date/2021/04/30"


@pytest.fixture
def mnt(library: Library, photo_dir: Path, tmp_path: Path):
    m = Mount(photo_dir, tmp_path / "mnt", tmp_path / "mount.log", "--no-scan")
    yield m
    m.stop()
    assert not is_mounted(m.mnt)


def _errno(fn, *args, **kwargs) -> int:
    try:
        fn(*args, **kwargs)
    except OSError as exc:
        return exc.errno
    raise AssertionError(f"{fn.__name__}{args} succeeded")


def _originals(photo_dir: Path) -> list[Path]:
    """The photo files of the library; XMP sidecars are written back half a second after an
    album or person change, so they are left out (their content is checked where it matters)."""
    return sorted(p for p in photo_dir.rglob("*") if p.is_file() and ".photovfs" not in p.parts
                  and p.suffix.lower() != ".xmp")


def _xmp(original: Path) -> Path:
    return original.with_name(original.name + ".xmp")


def _wait_for(cond, timeout: float = 10.0) -> None:
    """Wait for the delayed XMP write-back (half a second after a change) to show."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "the sidecar write-back did not happen"
        time.sleep(0.05)


def _big_jpeg(path: Path, taken: datetime, size=(1200, 900)) -> Path:
    """A JPEG of noise (hundreds of KB): several FUSE requests per read and write."""
    from PIL import Image

    rnd = random.Random(size[0])
    img = Image.frombytes("RGB", size, rnd.randbytes(size[0] * size[1] * 3))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    return path


# ---- reading -------------------------------------------------------------------------------------
def test_ls_R_shows_the_views_and_the_catalog(mnt: Mount, library: Library):
    out = subprocess.run(["ls", "-R", str(mnt.path("by-date"))], capture_output=True, text=True,
                         check=True).stdout
    for name in ("2021:", "IMG_0001.jpg", "IMG_0002.jpg", "1999"):
        assert name in out
    assert sorted(os.listdir(mnt.mnt)) == sorted(n.name for n in library.list(""))
    for dirpath, _dirs, files in os.walk(mnt.path("originals")):
        rel = os.path.relpath(dirpath, mnt.mnt)
        assert sorted(files) == sorted(n.name for n in library.list(rel) if not n.is_dir)


def test_stat_comes_from_the_catalog(mnt: Mount, library: Library):
    node = library.resolve(f"{DAY}/IMG_0001.jpg")
    st = os.stat(mnt.path(node.path))
    assert st.st_size == node.size
    assert abs(st.st_mtime - node.mtime) < 1e-3
    assert st.st_mode & 0o777 == 0o644 and st.st_uid == os.getuid()
    assert os.stat(mnt.path(DAY)).st_mode & 0o777 == 0o755
    # inode numbers are stable while mounted
    assert os.stat(mnt.path(node.path)).st_ino == st.st_ino
    assert os.stat(mnt.path("originals")).st_ino != st.st_ino


def test_cp_out_is_byte_identical(mnt: Mount, library: Library, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    for node in library.list(DAY):
        subprocess.run(["cp", str(mnt.path(node.path)), str(out)], check=True)
        assert sha256(out / node.name) == sha256(node.source)


def test_many_parallel_readers_get_the_right_bytes(mnt: Mount, library: Library, photo_dir):
    _big_jpeg(photo_dir / "big" / "noise.jpg", datetime(2020, 1, 1))
    library.scan()
    nodes = [n for d in ("by-date/2021/04/30", "by-date/2020/01/01") for n in library.list(d)]
    expected = {n.path: sha256(n.source) for n in nodes}

    def read(i: int) -> bool:
        node = nodes[i % len(nodes)]
        return sha256(mnt.path(node.path)) == expected[node.path]

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(read, range(96)))


def _evict(path: Path) -> None:
    """Drop a file's pages from the page cache (through the mount: the kernel's FUSE copy)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_reads_from_disk_and_from_the_page_cache_give_the_same_bytes(
        mnt: Mount, library: Library, photo_dir: Path):
    """Reads are answered inline from the page cache when it has the bytes, else from disk in a
    thread: both, and a mix of them (half the file cached), at any offset and size, up to EOF."""
    src = _big_jpeg(photo_dir / "big" / "noise.jpg", datetime(2020, 1, 1), size=(2400, 1800))
    library.scan()
    want = src.read_bytes()
    assert len(want) > 3 << 20  # several 1 MiB requests
    via = mnt.path("originals/big/noise.jpg")
    for cached in ("none", "half", "all"):
        _evict(via)
        _evict(src)
        if cached == "half":
            with open(src, "rb") as fh:
                fh.seek(len(want) // 3)
                fh.read(len(want) // 3)
        elif cached == "all":
            src.read_bytes()
        assert via.read_bytes() == want, cached
    rnd = random.Random(7)
    fd = os.open(via, os.O_RDONLY)
    try:
        for _ in range(200):
            if rnd.random() < 0.1:
                _evict(via)
                _evict(src)
            off = rnd.randrange(len(want) + 10)
            size = rnd.choice((1, 4095, 4096, 65536, 131072, 1 << 20, 3 << 20))
            assert os.pread(fd, size, off) == want[off:off + size], (off, size)
    finally:
        os.close(fd)


def test_a_photo_cut_short_by_another_program_while_open_keeps_the_daemon_serving(
        mnt: Mount, library: Library, photo_dir: Path):
    """A program truncating an open original in place (not what the core does, but people's
    tools might) must cost the reader its bytes, never the daemon. The
    reader sees the old bytes, an error, or zeros (the kernel fills a short reply with them)."""
    src = _big_jpeg(photo_dir / "big" / "noise.jpg", datetime(2020, 1, 1), size=(2400, 1800))
    library.scan()
    want = src.read_bytes()  # the original now in the page cache: replies from the mapping
    via = mnt.path("originals/big/noise.jpg")
    fd = os.open(via, os.O_RDONLY)
    try:
        assert os.pread(fd, 1 << 20, 0) == want[:1 << 20]
        _evict(via)  # the next reads reach the daemon again
        os.truncate(src, 4096)
        for off in (1 << 20, 2 << 20, 0):
            try:
                got = os.pread(fd, 1 << 20, off)
            except OSError as exc:
                assert exc.errno == errno.EIO
            else:
                assert got in (want[off:off + len(got)], bytes(len(got))), off
    finally:
        os.close(fd)
    day = library.list(DAY)[0]
    assert sha256(mnt.path(day.path)) == sha256(day.source)


def test_other_xattr_namespaces_say_not_supported_and_user_ones_still_work(mnt: Mount):
    """`ls -l` asks security.selinux and system.posix_acl_access of every entry until it hears
    ENOTSUP; the answer must not switch off user.* attributes (as ENOSYS would, mount-wide)."""
    p = mnt.path(f"{DAY}/IMG_0001.jpg")
    for name in ("security.selinux", "system.posix_acl_access", "trusted.x"):
        assert _errno(os.getxattr, p, name) in (errno.ENOTSUP, errno.ENODATA)
    assert _errno(os.getxattr, p, "security.selinux") == errno.ENOTSUP
    assert _errno(os.getxattr, p, "user.nothing") == errno.ENODATA
    os.setxattr(p, "user.comment", b"kept")
    assert os.getxattr(p, "user.comment") == b"kept"
    assert os.listxattr(p) == ["user.comment"]
    out = subprocess.run(["ls", "-l", str(mnt.path(DAY))], capture_output=True, text=True,
                         check=True).stdout
    assert "IMG_0001.jpg" in out
    assert os.getxattr(p, "user.comment") == b"kept"


def test_thumbnails_are_readable_jpegs(mnt: Mount):
    names = os.listdir(mnt.path("thumbnails/" + DAY))
    assert names
    data = mnt.path(f"thumbnails/{DAY}/{names[0]}").read_bytes()
    assert data[:2] == b"\xff\xd8"
    assert len(data) == os.stat(mnt.path(f"thumbnails/{DAY}/{names[0]}")).st_size


def test_statfs_reports_the_library_disk(mnt: Mount, photo_dir: Path):
    a, b = os.statvfs(mnt.mnt), os.statvfs(photo_dir)
    assert a.f_namemax == 255
    assert abs(a.f_bavail * a.f_frsize - b.f_bavail * b.f_frsize) < 256 << 20


def test_readdir_offsets_survive_concurrent_change(mnt: Mount, library: Library):
    inbox = library.config.inbox_dir
    names = {f"file-{i:04d}-{'x' * 40}.bin" for i in range(600)}
    for n in names:
        (inbox / n).write_bytes(b"x")
    seen = []
    with os.scandir(mnt.path("inbox")) as it:
        seen.append(next(it).name)
        for n in sorted(names)[::2]:  # half disappear while the listing is read
            (inbox / n).unlink()
        (inbox / "late-arrival.bin").write_bytes(b"y")
        seen += [e.name for e in it]
    assert len(seen) == len(set(seen)) == len(names)
    assert set(seen) == names


# ---- writing into inbox --------------------------------------------------------------------------
def _arrived(library: Library, digest: str, name: str) -> bool:
    """Complete in the on-disk inbox, or (when ingest hooks run on arrival) filed in by-date."""
    p = library.config.inbox_dir / name
    if p.exists() and sha256(p) == digest:
        return True
    for dirpath, _d, files in os.walk(library.config.library):
        if ".photovfs" in dirpath:
            continue
        for f in files:
            if sha256(Path(dirpath) / f) == digest:
                return True
    return False


def test_cp_into_inbox_arrives_complete(mnt: Mount, library: Library, tmp_path: Path):
    src = _big_jpeg(tmp_path / "new.jpg", datetime(2022, 2, 2, 12))
    subprocess.run(["cp", str(src), str(mnt.path("inbox/"))], check=True)
    assert wait_for(lambda: _arrived(library, sha256(src), "new.jpg"))
    leftovers = list((library.config.state_dir / "tmp").iterdir())
    assert not [p for p in leftovers if p.name.startswith("up-")]


def test_rsync_into_inbox_never_shows_a_partial_file(mnt: Mount, library: Library,
                                                       tmp_path: Path):
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed")
    src = _big_jpeg(tmp_path / "r.jpg", datetime(2022, 3, 3), size=(1600, 1200))
    final = library.config.inbox_dir / "r.jpg"
    size = src.stat().st_size
    partial: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                st = final.stat()
            except FileNotFoundError:
                continue
            if st.st_size != size:
                partial.append(st.st_size)

    t = threading.Thread(target=watch)
    t.start()
    try:
        subprocess.run(["rsync", "-t", "--bwlimit=2000", str(src), str(mnt.path("inbox/"))],
                       check=True, capture_output=True)
    finally:
        stop.set()
        t.join()
    assert not partial
    assert _arrived(library, sha256(src), "r.jpg")
    assert not [n for n in os.listdir(library.config.inbox_dir) if n.startswith(".r.jpg.")]
    # rsync -t: the time it set is kept on a file that is really in the inbox
    if final.exists():
        assert abs(final.stat().st_mtime - src.stat().st_mtime) < 1


def test_a_file_being_written_is_not_in_the_inbox_until_closed(mnt: Mount, library: Library):
    target = str(mnt.path("inbox/half.jpg"))
    code = (f"import os,time;fd=os.open({target!r},os.O_WRONLY|os.O_CREAT);os.write(fd,b'x'*65536);"
            "time.sleep(30)")
    p = subprocess.Popen([sys.executable, "-c", code])
    try:
        # stat shows the upload in progress (waiting: the writer creates the file, then writes)
        assert wait_for(lambda: os.path.exists(target) and os.stat(target).st_size == 65536)
        assert not (library.config.inbox_dir / "half.jpg").exists()
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    # the kernel closes the file of a killed writer: what was written arrives whole, at once
    # (rejecting a truncated photo is ingest's job); never a file that is still growing
    on_disk = library.config.inbox_dir / "half.jpg"
    wait_for(on_disk.exists, 5)
    assert not on_disk.exists() or on_disk.stat().st_size == 65536


# ---- names ---------------------------------------------------------------------------------------
def test_hostile_names(mnt: Mount, library: Library):
    inbox = mnt.path("inbox")
    assert _errno(open, inbox / ("a" * 256 + ".jpg"), "wb") == errno.ENAMETOOLONG
    assert _errno(os.mkdir, mnt.path("by-album/" + "b" * 256)) == errno.ENAMETOOLONG
    assert _errno(open, inbox / "back\\slash.jpg", "wb") == errno.EINVAL
    assert _errno(open, inbox / "ctl\x01.jpg", "wb") == errno.EINVAL
    assert _errno(os.mkdir, mnt.path("by-album/tab\tname")) == errno.EINVAL
    # ".." is resolved by the kernel inside the mount: it never reaches outside the library
    assert sorted(os.listdir(mnt.path("inbox/.."))) == sorted(os.listdir(mnt.mnt))
    assert sorted(os.listdir(mnt.path("by-date/2021/../.."))) == sorted(os.listdir(mnt.mnt))
    assert _errno(os.stat, mnt.path("inbox/..%2f..%2fetc")) == errno.ENOENT
    # NUL cannot even be passed to the kernel
    with pytest.raises(ValueError):
        open(str(inbox) + "/nul\x00.jpg", "wb")


def test_nfd_and_nfc_names_are_one_file(mnt: Mount, library: Library):
    nfd = unicodedata.normalize("NFD", "café.txt")
    nfc = unicodedata.normalize("NFC", "café.txt")
    assert nfd != nfc
    (mnt.path("inbox") / nfd).write_bytes(b"hello")
    assert (mnt.path("inbox") / nfc).read_bytes() == b"hello"
    assert os.stat(mnt.path("inbox") / nfc).st_ino == os.stat(mnt.path("inbox") / nfd).st_ino
    assert [n for n in os.listdir(mnt.path("inbox")) if n.startswith("caf")] == [nfc]
    assert wait_for(lambda: (library.config.inbox_dir / nfc).exists() or
                    not (library.config.inbox_dir / nfd).exists())


# ---- read-only views -----------------------------------------------------------------------------
def test_read_only_views_refuse_writes(mnt: Mount, library: Library):
    refused = (errno.EACCES, errno.EROFS)
    assert _errno(open, mnt.path(f"{DAY}/new.jpg"), "wb") in refused
    assert _errno(os.mkdir, mnt.path("by-date/2030")) in refused
    assert _errno(os.mkdir, mnt.path("newview")) in refused
    assert _errno(open, mnt.path("toplevel.txt"), "wb") in refused
    assert _errno(os.rmdir, mnt.path("by-place")) in (*refused, errno.ENOTEMPTY)
    assert _errno(os.rmdir, mnt.path("by-person")) in (*refused, errno.ENOTEMPTY)
    assert _errno(os.rename, mnt.path("by-date"), mnt.path("dates")) in refused
    thumb = mnt.path(f"thumbnails/{DAY}")
    name = os.listdir(thumb)[0]
    assert _errno(open, thumb / name, "r+b") in refused
    assert os.stat(thumb / name).st_mode & 0o222 == 0
    # a file removed in by-date goes to trash; the trash copy is read-only
    os.unlink(mnt.path(f"{DAY}/IMG_0002.jpg"))
    (item,) = [n for n in os.listdir(mnt.path("trash")) if n.startswith("IMG_0002")]
    assert _errno(open, mnt.path("trash") / item, "r+b") in refused


def test_failed_edit_reports_the_error_at_close_and_changes_nothing(mnt: Mount, library: Library):
    node = library.resolve(f"{DAY}/IMG_0002.jpg")
    before = sha256(node.source)
    fh = open(mnt.path(node.path), "r+b")
    fh.write(b"this is not a jpeg")
    with pytest.raises(OSError) as exc:
        fh.close()
    assert exc.value.errno == errno.EIO
    assert sha256(node.source) == before
    assert mnt.path(node.path).read_bytes()[:2] == b"\xff\xd8"


# ---- albums --------------------------------------------------------------------------------------
def test_mkdir_in_by_album_and_cp_adds_by_reference(mnt: Mount, library: Library, photo_dir: Path):
    before = _originals(photo_dir)
    os.mkdir(mnt.path("by-album/Trip"))
    assert os.path.isdir(mnt.path("by-album/Trip"))
    subprocess.run(["cp", str(mnt.path(f"{DAY}/IMG_0002.jpg")), str(mnt.path("by-album/Trip/"))],
                   check=True)
    subprocess.run(["ln", str(mnt.path("by-date/1999/12/31/scan.jpg")),
                    str(mnt.path("by-album/Trip/scan.jpg"))], check=True)
    assert sorted(n.name for n in library.list("by-album/Trip")) == ["IMG_0002.jpg", "scan.jpg"]
    assert sorted(os.listdir(mnt.path("by-album/Trip"))) == ["IMG_0002.jpg", "scan.jpg"]
    assert _originals(photo_dir) == before
    assert sha256(mnt.path("by-album/Trip/IMG_0002.jpg")) == sha256(
        library.resolve(f"{DAY}/IMG_0002.jpg").source)


def test_cp_into_a_person_folder_tags_that_person_without_a_second_copy(
        mnt: Mount, library: Library, photo_dir: Path):
    before = _originals(photo_dir)
    os.mkdir(mnt.path("by-person/Ada"))
    subprocess.run(["cp", str(mnt.path(f"{DAY}/IMG_0002.jpg")), str(mnt.path("by-person/Ada/"))],
                   check=True)
    assert os.listdir(mnt.path("by-person/Ada")) == ["IMG_0002.jpg"]
    assert [n.asset_id for n in library.list("by-person/Ada")] == [
        library.resolve(f"{DAY}/IMG_0002.jpg").asset_id]
    assert _originals(photo_dir) == before
    # a person that does not exist is not made by a file
    assert _errno(shutil.copyfile, mnt.path(f"{DAY}/IMG_0002.jpg"),
                  mnt.path("by-person/Nobody/IMG_0002.jpg")) == errno.ENOENT


def test_rm_in_by_album_removes_membership_only(mnt: Mount, library: Library, photo_dir: Path):
    os.mkdir(mnt.path("by-album/Trip"))
    os.link(mnt.path(f"{DAY}/IMG_0002.jpg"), mnt.path("by-album/Trip/IMG_0002.jpg"))
    sidecar = _xmp(library.resolve(f"{DAY}/IMG_0002.jpg").source)
    _wait_for(lambda: sidecar.exists() and "Albums/Trip" in sidecar.read_text())
    before = _originals(photo_dir)
    os.unlink(mnt.path("by-album/Trip/IMG_0002.jpg"))
    assert os.listdir(mnt.path("by-album/Trip")) == []
    assert os.path.exists(mnt.path(f"{DAY}/IMG_0002.jpg"))
    assert _originals(photo_dir) == before
    _wait_for(lambda: "Albums/Trip" not in sidecar.read_text())  # the sidecar forgets the album
    os.rmdir(mnt.path("by-album/Trip"))
    assert not os.path.exists(mnt.path("by-album/Trip"))


def test_album_rename_keeps_its_photos(mnt: Mount, library: Library):
    os.mkdir(mnt.path("by-album/A"))
    os.link(mnt.path(f"{DAY}/IMG_0002.jpg"), mnt.path("by-album/A/x.jpg"))
    ino = os.stat(mnt.path("by-album/A")).st_ino
    os.rename(mnt.path("by-album/A"), mnt.path("by-album/B"))
    assert os.listdir(mnt.path("by-album/B")) == ["IMG_0002.jpg"]
    assert os.stat(mnt.path("by-album/B")).st_ino == ino
    assert not os.path.exists(mnt.path("by-album/A"))
    os.mkdir(mnt.path("by-album/C"))
    assert _errno(os.rename, mnt.path("by-album/C"), mnt.path("by-album/B/C/D")) == errno.ENOENT


# ---- edits ---------------------------------------------------------------------------------------
def test_editor_safe_save_over_a_photo_is_an_edit(mnt: Mount, library: Library, tmp_path: Path):
    node = library.resolve(f"{DAY}/IMG_0001.jpg")
    old = sha256(node.source)
    new = jpeg_with_date(tmp_path / "edited.jpg", datetime(2021, 4, 30, 9, 42, 39),
                         color=(250, 250, 0))
    tmp = mnt.path(f"{DAY}/.goutputstream-ABC123")
    shutil.copyfile(new, tmp)
    os.rename(tmp, mnt.path(node.path))
    assert sha256(mnt.path(node.path)) == sha256(new)
    assert sha256(node.source) == sha256(new)
    versions = [n for n in os.listdir(mnt.path("trash")) if "version" in n]
    assert len(versions) == 1
    assert sha256(mnt.path("trash") / versions[0]) == old
    assert not os.path.exists(tmp)


def test_cp_over_a_photo_rewrites_it_in_place(mnt: Mount, library: Library, tmp_path: Path):
    node = library.resolve(f"{DAY}/IMG_0002.jpg")
    new = jpeg_with_date(tmp_path / "edited.jpg", datetime(2021, 4, 30, 10), color=(0, 0, 0))
    subprocess.run(["cp", str(new), str(mnt.path(node.path))], check=True)  # O_TRUNC
    assert sha256(node.source) == sha256(new)
    assert wait_for(lambda: sha256(mnt.path(node.path)) == sha256(new), 5)
    subprocess.run(["touch", "-d", "2001-01-01", str(mnt.path(node.path))], check=True)
    subprocess.run(["cp", "-p", str(new), str(tmp_path / "copy.jpg")], check=True)


def test_side_files_work_in_computed_views(mnt: Mount, photo_dir: Path):
    before = _originals(photo_dir)
    p = mnt.path(f"{DAY}/.DS_Store")
    p.write_bytes(b"finder")
    assert p.read_bytes() == b"finder"
    assert ".DS_Store" in os.listdir(mnt.path(DAY))
    os.unlink(p)
    assert _originals(photo_dir) == before


def test_user_xattrs_are_kept_by_path(mnt: Mount):
    p = mnt.path(f"{DAY}/IMG_0001.jpg")
    os.setxattr(p, "user.DOSATTRIB", b"\x00\x01")
    assert os.getxattr(p, "user.DOSATTRIB") == b"\x00\x01"
    assert "user.DOSATTRIB" in os.listxattr(p)
    assert _errno(os.setxattr, p, "trusted.x", b"1") in (errno.ENOTSUP, errno.EPERM)
    os.removexattr(p, "user.DOSATTRIB")
    assert _errno(os.getxattr, p, "user.DOSATTRIB") == errno.ENODATA


# ---- the daemon's life ---------------------------------------------------------------------------
def test_sigterm_unmounts_cleanly(library: Library, photo_dir: Path, tmp_path: Path):
    m = Mount(photo_dir, tmp_path / "m", tmp_path / "log")
    try:
        assert os.listdir(m.mnt)
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(15) == 0
        assert not is_mounted(m.mnt)
        assert os.listdir(m.mnt) == []
    finally:
        m.stop()


def test_kill_9_then_photovfs_unmount_recovers_the_mountpoint(library: Library, photo_dir: Path,
                                                              tmp_path: Path):
    m = Mount(photo_dir, tmp_path / "m", tmp_path / "log", "--no-scan")
    try:
        m.proc.kill()
        m.proc.wait(5)
        assert _errno(os.listdir, m.mnt) == errno.ENOTCONN
        res = subprocess.run([str(PHOTOVFS), "unmount", str(m.mnt)], capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stderr
        assert os.listdir(m.mnt) == []
        again = Mount(photo_dir, m.mnt, tmp_path / "log2", "--no-scan")
        try:
            assert "by-date" in os.listdir(again.mnt)
        finally:
            again.stop()
    finally:
        m.stop()
    res = subprocess.run([str(PHOTOVFS), "unmount", str(m.mnt)], capture_output=True, text=True)
    assert res.returncode == 1 and "not mounted" in res.stderr


def test_a_change_by_another_process_is_read_whole_at_the_next_open(
        mnt: Mount, library: Library, tmp_path: Path):
    """The WebDAV server (another process) edits a photo the kernel has just stat'ed: the next
    open through the mount must read the new bytes whole, not the old size's worth of them
    (a stale size made `cp` copy a cut-off JPEG, which the core then refused with EIO)."""
    vpath = f"{DAY}/IMG_0002.jpg"
    old_size = os.stat(mnt.path(vpath)).st_size  # the kernel now caches this size for a while
    assert sha256(mnt.path(vpath)) == sha256(library.resolve(vpath).source)
    bigger = _big_jpeg(tmp_path / "bigger.jpg", datetime(2021, 4, 30, 10, 0, 0))
    assert bigger.stat().st_size > 4 * old_size
    with library.begin_write(vpath) as up:  # what a WebDAV PUT does, in this test process
        up.write(bigger.read_bytes())
        up.commit()
    got = mnt.path(vpath).read_bytes()
    want = bigger.read_bytes()
    assert (len(got), got[:64] == want[:64]) == (len(want), True)
    assert got == want
    assert os.stat(mnt.path(vpath)).st_size == bigger.stat().st_size
    shutil.copyfile(mnt.path(vpath), mnt.path("inbox/copy.jpg"))  # what `cp` does: no EIO
    assert sha256(mnt.path("inbox/copy.jpg")) == sha256(bigger)


def test_reads_during_a_change_by_another_process_are_old_or_new_never_a_mix(
        mnt: Mount, library: Library, tmp_path: Path):
    vpath = f"{DAY}/IMG_0002.jpg"
    old = sha256(mnt.path(vpath))  # read whole: pages and attributes cached by the kernel
    bigger = _big_jpeg(tmp_path / "bigger.jpg", datetime(2021, 4, 30, 10, 0, 0))
    with library.begin_write(vpath) as up:
        up.write(bigger.read_bytes())
        up.commit()
    new = sha256(bigger)
    seen = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        seen.append(sha256(mnt.path(vpath)))
        time.sleep(0.05)
    assert set(seen) <= {old, new}, "a read mixed old and new bytes"
    assert seen[-1] == new
