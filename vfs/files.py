"""Durable file operations: nothing acknowledged is lost on a power cut, nothing half-written is seen."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .errors import NoSpace


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path, *, data_only: bool = False) -> None:
    """Make a file's bytes durable; `data_only` (fdatasync) skips metadata such as times."""
    fd = os.open(path, os.O_RDONLY)
    try:
        (os.fdatasync if data_only else os.fsync)(fd)
    finally:
        os.close(fd)


def durable_move(src: Path, dst: Path) -> None:
    """Move src to dst (which must not exist): rename on one filesystem, else copy+fsync+rename.

    The destination appears complete or not at all; the source is removed only afterwards.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # fails if dst exists: never overwrites silently
        os.unlink(src)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise _translate(exc) from exc
        tmp = dst.with_name(f".{dst.name}.photovfs-tmp")
        try:
            shutil.copyfile(src, tmp)
            shutil.copystat(src, tmp)
            fsync_file(tmp)
            if dst.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(dst)) from None
            os.rename(tmp, dst)
        except OSError as exc2:
            tmp.unlink(missing_ok=True)
            raise _translate(exc2) from exc2
        fsync_dir(dst.parent)
        os.unlink(src)
        fsync_dir(src.parent)
        return
    fsync_dir(dst.parent)
    fsync_dir(src.parent)


def _translate(exc: OSError) -> OSError | NoSpace:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"disk full while writing {exc.filename or ''}".strip())
    return exc


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `name (2)`, `name (3)`... when taken: a clash never overwrites."""
    from .names import with_suffix_number

    n = 1
    while True:
        cand = folder / with_suffix_number(name, n)
        if not os.path.lexists(cand):
            return cand
        n += 1


def write_atomic(path: Path, data: bytes, *, prefix: str = ".tmp-", fsync_folder: bool = False
                 ) -> None:
    """Publish `data` at `path` all at once: temp file in the same folder, fsync, rename.

    A killed process leaves at most a stray temp file (named with `prefix`), never a half file.
    ENOSPC/EDQUOT become NoSpace; other OSErrors propagate. The temp file never outlives a failure.
    """
    import contextlib
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _translate(exc) from exc
    if fsync_folder:
        fsync_dir(path.parent)
