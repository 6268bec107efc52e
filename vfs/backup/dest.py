"""Where backups go: a local folder, or an rclone remote (`remote:path`) driven by the rclone binary.

Paths handed to a destination are relative POSIX strings in os form (surrogateescape for undecodable
bytes). Every file is written under a temporary name, verified by sha256 and only then renamed into
place; a file already at the final name is first moved aside (never overwritten, never deleted).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from ..files import fsync_dir
from ..files import fsync_file as fsync_file_path

BLOCK = 1 << 20
COPY_BLOCK = 4 << 20  # copy buffer: the bytes hashed are the very bytes written
WRITEBACK_MIN = 1 << 20  # below this, one sync_file_range call costs more than it saves
TMP_RE = re.compile(r"\.pvb-[0-9a-f]{12}\.part")  # what an interrupted put leaves behind


class VerifyError(Exception):
    """Bytes written (or read) do not have the expected sha256."""


class SourceChanged(VerifyError):
    """The source's bytes do not match the catalogued sha256 (bit rot, or changed while copying)."""


def _tmp_name() -> str:
    return f".pvb-{secrets.token_hex(6)}.part"  # short: long names must still fit in 255 bytes


def is_tmp_name(rel: str) -> bool:
    return bool(TMP_RE.fullmatch(rel.rpartition("/")[2]))


_LIBC = ctypes.CDLL(None, use_errno=True)
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int) -> None:
    """Ask the kernel to start writing a file's dirty pages (sync_file_range, asynchronous)."""
    fn = getattr(_LIBC, "sync_file_range", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
        fn(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


_RENAME_NOREPLACE = 1


def _rename_noreplace(src: str, dst: str) -> bool:
    """Rename src to dst unless dst exists (renameat2 RENAME_NOREPLACE: one atomic call, so a
    replica that appears meanwhile is never overwritten); False when dst exists."""
    fn = getattr(_LIBC, "renameat2", None)
    if fn is None:  # old libc: check, then rename (the caller displaces what it finds)
        if os.path.lexists(dst):
            return False
        os.rename(src, dst)
        return True
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(-100, os.fsencode(src), -100, os.fsencode(dst), _RENAME_NOREPLACE) == 0:  # AT_FDCWD
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        return False
    if err in (errno.EINVAL, errno.ENOSYS):  # a filesystem without the flag
        if os.path.lexists(dst):
            return False
        os.rename(src, dst)
        return True
    raise OSError(err, os.strerror(err), dst)


def _syncfs(path: Path) -> None:
    """Flush every dirty page of the filesystem holding path (one call instead of an fsync per
    file and folder); os.sync() where syncfs(2) is not available."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fn = getattr(_LIBC, "syncfs", None)
        if fn is None:
            os.sync()
        elif fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs failed: {os.strerror(err)}", str(path))
    finally:
        os.close(fd)


def is_remote(url: str) -> bool:
    return bool(re.match(r"^[A-Za-z0-9_.\- ]+:", url)) and not os.path.exists(url) \
        and not re.match(r"^[A-Za-z]:[\\/]", url)


def open_dest(url: str) -> LocalDest | RcloneDest:
    return RcloneDest(url) if is_remote(url) else LocalDest(Path(url))


def sha256_stream(chunks) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


class LocalDest:
    """A folder. With `batch = True` single files and folders are not fsynced one by one: the
    caller makes everything durable with one `sync()` before it writes anything that refers to
    them (a generation's DONE marker)."""

    parallel = True  # puts of different files may run in threads
    FEW = 64  # sync() of up to this many files fsyncs each; more: one syncfs of the filesystem

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.url = str(self.root)
        self.batch = False
        self._lock = threading.Lock()
        self._made: set[str] = set()  # folders known to exist (one mkdir per folder per run)
        self._unsynced: list[str] = []  # files written in batch mode, not yet durable
        self._dirs: set[str] = set()  # folders whose entries changed in batch mode
        self._local = threading.local()  # one copy buffer per thread, reused for every file

    def _fsync_dir(self, path: Path | str) -> None:
        if not self.batch:
            fsync_dir(Path(path))
        else:
            with self._lock:
                self._dirs.add(os.fspath(path))

    def sync(self) -> None:
        """Make every file and folder written in batch mode durable. A few: fsync each (a
        shared disk's other writers are not waited for); many: one syncfs."""
        with self._lock:
            files, self._unsynced = self._unsynced, []
            dirs, self._dirs = self._dirs, set()
        if not self.root.exists():
            return
        if len(files) + len(dirs) > self.FEW:
            _syncfs(self.root)
            return
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for d in sorted(dirs, key=len, reverse=True):  # deepest first, then their parents
            fsync_dir(Path(d))

    def delete_tmp(self, rel: str) -> None:
        """Remove a temporary file an interrupted run left (only ever a .pvb-*.part name)."""
        if is_tmp_name(rel):
            self._p(rel).unlink(missing_ok=True)

    def _p(self, rel: str) -> Path:
        return self.root / rel

    def _mkdirs(self, folder: str) -> None:
        """Create folder and its parents (each new one is a changed entry of its parent)."""
        if folder in self._made:
            return
        missing = []
        d = folder
        while not os.path.isdir(d) and d != os.path.dirname(d):
            missing.append(d)
            d = os.path.dirname(d)
        for m in reversed(missing):
            try:
                os.mkdir(m)
            except FileExistsError:
                pass
            self._fsync_dir(os.path.dirname(m))
        with self._lock:
            self._made.add(folder)

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self._p(rel))

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self._p(rel).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write, read back, rename into place. In batch mode the file and its folders become
        durable at the next sync() (a generation's manifest and metadata: one sync with the
        rest, before DONE), else at once."""
        final = self._p(rel)
        self._mkdirs(str(final.parent))  # new folders are changed entries of their parents
        tmp = final.parent / _tmp_name()
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            if not self.batch:
                os.fsync(fh.fileno())
        if hashlib.sha256(tmp.read_bytes()).digest() != hashlib.sha256(data).digest():
            tmp.unlink()
            raise VerifyError(f"{rel}: written bytes differ")
        os.replace(tmp, final)
        if self.batch:
            with self._lock:
                self._unsynced.append(str(final))
        self._fsync_dir(final.parent)

    def _buffer(self) -> memoryview:
        buf = getattr(self._local, "buf", None)
        if buf is None:  # a fresh 4 MiB buffer per file costs more than copying a small photo
            buf = self._local.buf = memoryview(bytearray(COPY_BLOCK))
        return buf

    def put(self, src: Path | str, rel: str, sha256: str | None, *,
            displace_to: str | None = None,
            mtime_ns: int | None = None) -> tuple[str, int]:
        """Copy src to rel and return its (sha256, size). The source is hashed while it is copied (the
        buffer hashed is the buffer written); when `sha256` is given and the source does not hash
        to it, raise SourceChanged and leave nothing behind. What was at rel moves to displace_to
        first."""
        final = f"{self.url}/{rel}"
        folder = os.path.dirname(final)
        self._mkdirs(folder)
        tmp = f"{folder}/{_tmp_name()}"
        h = hashlib.sha256()
        view = self._buffer()
        placed = False
        try:
            with open(src, "rb", buffering=0) as fin, open(tmp, "xb", buffering=0) as fout:
                written = _copy_hashing(fin, fout, view, h)
                fd = fout.fileno()
                if os.fstat(fd).st_size != written:
                    raise VerifyError(f"{rel}: short copy")
                got = h.hexdigest()
                if sha256 is not None and got != sha256:
                    raise SourceChanged(f"source sha256 {got[:12]} != catalogued {sha256[:12]}")
                if mtime_ns is not None:
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
                if not self.batch:
                    os.fsync(fd)
                elif written >= WRITEBACK_MIN:  # start writing back now: the final sync() then
                    _start_writeback(fd)  # has little left (small files: the kernel's own pace)
            while not _rename_noreplace(tmp, final):  # never over an existing replica
                self.move(rel, displace_to or f"{rel}.displaced-{secrets.token_hex(3)}")
            placed = True
            if self.batch:
                with self._lock:
                    self._unsynced.append(final)
            self._fsync_dir(folder)
            return got, written
        finally:
            if not placed:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass

    def get(self, rel: str, local: Path) -> bool:
        try:
            shutil.copyfile(self._p(rel), local)
            return True
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False

    def get_hashed(self, rel: str, local: Path) -> str | None:
        """Copy rel to local and return the sha256 of the very bytes written (one read, not a
        copy and then a second read to verify it); None when rel is not there."""
        h = hashlib.sha256()
        view = self._buffer()
        try:
            fin = open(self._p(rel), "rb", buffering=0)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        with fin, open(local, "wb", buffering=0) as fout:
            _copy_hashing(fin, fout, view, h)
        return h.hexdigest()

    def sha256(self, rel: str) -> str | None:
        try:
            return file_sha256(self._p(rel))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def move(self, rel: str, rel2: str) -> None:
        """Move rel to rel2, or to rel2.2, rel2.3, ... when that exists (never over anything)."""
        src, dst, n = f"{self.url}/{rel}", f"{self.url}/{rel2}", 1
        self._mkdirs(os.path.dirname(dst))
        while not _rename_noreplace(src, dst):
            n += 1
            dst = f"{self.url}/{rel2}.{n}"
        self._fsync_dir(os.path.dirname(dst))
        self._fsync_dir(os.path.dirname(src))

    def link(self, rel: str, rel2: str, size: int) -> bool:
        """Hard-link the finished file rel (of `size` bytes) as the new name rel2; False when
        that is not possible (a filesystem without hard links, rel gone or of another size): the
        caller then writes rel2. The link becomes durable at the next sync()."""
        src, dst = f"{self.url}/{rel}", f"{self.url}/{rel2}"
        self._mkdirs(os.path.dirname(dst))
        try:
            if os.stat(src).st_size != size:
                return False
            os.link(src, dst)
        except OSError:
            return False
        if self.batch:
            with self._lock:
                self._unsynced.append(dst)  # (its link count changed: cheap, nothing else dirty)
        else:
            fsync_file_path(Path(dst))
        self._fsync_dir(os.path.dirname(dst))
        return True

    def list_dirs(self, rel: str) -> list[str]:
        p = self._p(rel)
        return sorted(d.name for d in p.iterdir() if d.is_dir()) if p.is_dir() else []

    def list_files(self, rel: str) -> dict[str, int]:
        """{path relative to rel: size} for every file below rel (lstat: a symlink's own)."""
        from .walk import sizes

        found = sizes(os.fspath(self._p(rel)))  # GNU find, in C and beside us, when it is there
        if found is not None:
            return found
        out: dict[str, int] = {}

        def walk(folder: str, prefix: str) -> None:
            try:
                it = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):
                return
            with it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        walk(e.path, f"{prefix}{e.name}/")
                    else:
                        out[prefix + e.name] = e.stat(follow_symlinks=False).st_size

        walk(os.fspath(self._p(rel)), "")
        return out


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(BLOCK):
            h.update(chunk)
    return h.hexdigest()


class RcloneDest:
    """An rclone remote (any backend, crypt included); all I/O through the `rclone` binary."""

    parallel = False
    batch = False

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.exe = os.environ.get("PHOTOVFS_RCLONE", "rclone")
        self._files: set[str] | None = None  # one recursive listing per run, kept up to date

    def _index(self) -> set[str]:
        if self._files is None:
            self._files = {e["Path"] for e in self._lsjson("", "-R", "--files-only")}
        return self._files

    def _r(self, rel: str) -> str:
        return f"{self.url}/{rel}" if rel else self.url

    def _run(self, *args: str, check: bool = True, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.exe, *args], stdout=stdout, stderr=subprocess.PIPE)
        if check and proc.returncode != 0:
            raise OSError(f"rclone {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc

    def _lsjson(self, rel: str, *extra: str) -> list[dict]:
        proc = self._run("lsjson", *extra, self._r(rel), check=False)
        if proc.returncode != 0:
            return []
        return json.loads(proc.stdout or b"[]")

    def exists(self, rel: str) -> bool:
        files = self._index()
        return rel in files or any(f.startswith(rel + "/") for f in files)

    def read_bytes(self, rel: str) -> bytes | None:
        proc = self._run("cat", self._r(rel), check=False)
        return proc.stdout if proc.returncode == 0 and self.exists(rel) else None

    def sha256(self, rel: str) -> str | None:
        data = self._run("cat", self._r(rel), check=False)
        if data.returncode != 0 or not self.exists(rel):
            return None
        return hashlib.sha256(data.stdout).hexdigest()

    def _verify_remote(self, rel: str, sha256: str) -> None:
        proc = subprocess.Popen([self.exe, "cat", self._r(rel)], stdout=subprocess.PIPE)
        out = proc.stdout
        assert out is not None
        got = sha256_stream(iter(lambda: out.read(BLOCK), b""))
        proc.wait()
        if proc.returncode != 0 or got != sha256:
            raise VerifyError(f"{rel}: the remote copy does not verify")

    def write_bytes(self, rel: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as fh:
            fh.write(data)
        try:
            self.put(Path(fh.name), rel, hashlib.sha256(data).hexdigest())
        finally:
            os.unlink(fh.name)

    def sync(self) -> None:
        """Nothing to do: every put is read back from the remote before it is renamed into place."""

    def delete_tmp(self, rel: str) -> None:
        if is_tmp_name(rel):
            self._run("deletefile", self._r(rel), check=False)
            self._index().discard(rel)

    def put(self, src: Path | str, rel: str, sha256: str | None, *,
            displace_to: str | None = None,
            mtime_ns: int | None = None) -> tuple[str, int]:
        # hash the source first: damaged bytes never leave the machine
        got = file_sha256(src)
        size = os.stat(src).st_size
        if sha256 is not None and got != sha256:
            raise SourceChanged(f"source does not match catalogued sha256 {sha256[:12]}")
        sha256 = got
        parent = rel.rpartition("/")[0]
        tmp = f"{parent}/{_tmp_name()}" if parent else _tmp_name()
        self._run("copyto", str(src), self._r(tmp))
        try:
            self._verify_remote(tmp, sha256)
            if self.exists(rel):
                self.move(rel, displace_to or f"{rel}.displaced-{secrets.token_hex(3)}")
            self._run("moveto", self._r(tmp), self._r(rel))
            self._index().add(rel)
        except BaseException:
            self._run("deletefile", self._r(tmp), check=False)
            raise
        return sha256, size

    def get(self, rel: str, local: Path) -> bool:
        if not self.exists(rel):
            return False
        return self._run("copyto", self._r(rel), str(local), check=False).returncode == 0

    def get_hashed(self, rel: str, local: Path) -> str | None:
        """Download rel to local and return the sha256 of what arrived; None when it is not there."""
        return file_sha256(local) if self.get(rel, local) else None

    def move(self, rel: str, rel2: str) -> None:
        dst, n = rel2, 1
        while self.exists(dst):
            n += 1
            dst = f"{rel2}.{n}"
        self._run("moveto", self._r(rel), self._r(dst))
        self._index().discard(rel)
        self._index().add(dst)

    def link(self, rel: str, rel2: str, size: int) -> bool:
        """No hard links on a remote: the caller uploads rel2 (verified as every upload is)."""
        return False

    def list_dirs(self, rel: str) -> list[str]:
        return sorted(e["Name"] for e in self._lsjson(rel, "--dirs-only"))

    def list_files(self, rel: str) -> dict[str, int]:
        out = {e["Path"]: e["Size"] for e in self._lsjson(rel, "-R", "--files-only")}
        self._index().update(f"{rel}/{p}" for p in out)
        return out


def _copy_hashing(fin, fout, view: memoryview, h) -> int:
    """Copy fin to fout through the reused buffer `view`, hashing the very bytes written (one
    read, not a copy and then a second read to verify it); returns the byte count."""
    written = 0
    while n := fin.readinto(view):
        chunk = view[:n]
        h.update(chunk)
        done = 0
        while done < n:
            done += fout.write(chunk[done:])
        written += n
    return written
