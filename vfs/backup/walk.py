"""The two walks of a backup run, done by GNU find when it is there.

A no-change run is mostly two walks: the library (size and mtime of every original) and the
destination's current/ (size of every replica). In Python each entry costs a DirEntry, a stat()
call and a few string operations under the GIL, about as much as the system call itself; `find
-printf` does the same readdir()/lstat() in C, in its own process, so both walks run beside the
catalog snapshot on another core. Each function returns None whenever find is missing, is not
GNU find, reports any error (an unreadable folder, a file vanishing mid-walk) or prints something
unexpected: the caller then walks in Python, which names such problems itself. Both give the
same answers (tests/test_backup_walk.py holds them to it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess

FIND_ENV = {"LC_ALL": "C", "PATH": os.defpath}


def _find(args: list[str]) -> bytes | None:
    """stdout of `find args` when it succeeded without a word on stderr, else None. (Callers
    pass -H: a root that is a symlink is followed, as os.scandir does, and nothing below it.)"""
    exe = shutil.which("find")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, *args], capture_output=True, env=FIND_ENV)
    except OSError:
        return None
    if proc.returncode != 0 or proc.stderr:
        return None
    return proc.stdout


def _glob_escape(path: str) -> str:
    """A literal path for find's -path (whose argument is a glob)."""
    return "".join(f"\\{c}" if c in "[]*?\\" else c for c in path)


def _mtime_ns(text: bytes) -> int | None:
    """find's %T@ (`1795464304.8989415140`: seconds, then the nanoseconds and one more digit)."""
    sec, dot, frac = text.partition(b".")
    if not sec.isdigit() or (dot and not frac.isdigit()):
        return None  # (before 1970, or a format this code does not know: stat() it instead)
    return int(sec) * 1_000_000_000 + (int(frac[:9].ljust(9, b"0")) if dot else 0)


def sizes(root: str) -> dict[str, int] | None:
    """{path relative to root: lstat size} of everything below root that is not a folder (what
    LocalDest.list_files returns), or None (walk in Python)."""
    if not os.path.isdir(root):
        return None
    out = _find(["-H", root, "-mindepth", "1", "!", "-type", "d", "-printf", "%s %P\\0"])
    if out is None:
        return None
    result: dict[str, int] = {}
    fsdecode = os.fsdecode
    for item in out.split(b"\0")[:-1]:
        size, _, path = item.partition(b" ")
        result[fsdecode(path)] = int(size)
    return result


def library_listing(root: str, state: str, skip_dirs: set[str]) -> bytes | None:
    """find's listing of the library: type, size, mtime and path of every entry below root
    but in the folders a walk skips (hidden ones, skip_dirs, the state folder)."""
    prune = ["-name", ".*"]
    for name in sorted(skip_dirs):
        prune += ["-o", "-name", _glob_escape(name)]
    prune += ["-o", "-path", _glob_escape(state)]
    return _find(["-H", root, "-mindepth", "1", "(", "-type", "d", "(", *prune, ")", "-prune", ")",
                  "-o", "-printf", "%y %s %T@ %P\\0"])


_NOT_FILE_OR_FOLDER = re.compile(rb"\0[^fd]")  # (a record starts with its type: f, d, l, ...)


def listing_digest(listing: bytes, *context: str) -> str | None:
    """A fingerprint of a listing (and of what it was read with): equal fingerprints, equal walk
    results. None when the listing holds anything but files and folders: the size and mtime of
    a symlink's target can change while the listing (lstat) does not."""
    if listing[:1] not in (b"f", b"d", b"") or _NOT_FILE_OR_FOLDER.search(listing):
        return None
    h = hashlib.sha256("\0".join(context).encode("utf-8", "surrogateescape") + b"\0\0")
    h.update(listing)
    return h.hexdigest()


def library(root: str, state: str, skip_dirs: set[str], media_exts: frozenset[str],
            is_side_file, sidecars: list[str] | None, stats: dict[str, tuple[int, int]] | None
            ) -> tuple[dict[str, tuple[str, str]], set[str]] | None:
    """What engine.disk_problems returns for the library at root (see there), or None."""
    out = library_listing(root, state, skip_dirs)
    if out is None:
        return None
    return parse_library(out, root, media_exts, is_side_file, sidecars, stats)


def parse_library(out: bytes, root: str, media_exts: frozenset[str], is_side_file,
                  sidecars: list[str] | None, stats: dict[str, tuple[int, int]] | None
                  ) -> tuple[dict[str, tuple[str, str]], set[str]] | None:
    """library_listing's output read as disk_problems' answer (None: walk in Python)."""
    problems: dict[str, tuple[str, str]] = {}
    regular: set[str] = set()
    found_sidecars: list[str] = []
    found: dict[str, tuple[int, int]] = {}  # (into `stats` only once the whole walk is good)
    fsdecode = os.fsdecode
    checked = False
    for item in out.split(b"\0")[:-1]:
        parts = item.split(b" ", 3)
        if len(parts) != 4 or len(parts[0]) != 1:
            return None
        kind, size_b, mtime_b, path = parts
        rel = fsdecode(path)
        name = rel.rpartition("/")[2]
        low = name.lower()
        dot = low.rfind(".")
        media = dot > 0 and low[dot:] in media_exts and (
            name[0] != "." or bool(name[:dot].strip(".")))
        if kind == b"d":
            if media:
                problems[rel] = ("UNREADABLE", "a folder named like a photo")
            continue
        if low.endswith(".xmp"):
            if not is_side_file(name):
                found_sidecars.append(rel)
            continue
        if not media or is_side_file(name):
            continue
        if kind == b"f":
            size, mtime_ns = int(size_b), _mtime_ns(mtime_b)
            if mtime_ns is None or not checked:  # (and once per walk: find says what stat says)
                try:
                    st = os.stat(os.path.join(root, rel))
                except OSError:
                    return None
                if mtime_ns is not None and (st.st_mtime_ns, st.st_size) != (mtime_ns, size):
                    return None
                size, mtime_ns, checked = st.st_size, st.st_mtime_ns, True
        else:  # a symlink (followed, as a copy would) or something that is not a file
            try:
                st = os.stat(os.path.join(root, rel))
            except OSError as exc:
                what = "dangling symlink" if kind == b"l" else exc.strerror
                problems[rel] = ("UNREADABLE", f"unreadable: {what}")
                continue
            if not stat.S_ISREG(st.st_mode):
                problems[rel] = ("UNREADABLE", "not a regular file")
                continue
            size, mtime_ns = st.st_size, st.st_mtime_ns
        if size == 0:
            problems[rel] = ("ZERO_SIZE", "zero-byte file")
        regular.add(rel)
        found[rel] = (size, mtime_ns)
    if stats is not None:
        stats.update(found)
    if sidecars is not None:
        sidecars.extend(sorted(found_sidecars))
    return problems, regular
