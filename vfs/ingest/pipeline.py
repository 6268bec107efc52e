"""The ingest stages for complete files: claim -> verify -> deduplicate -> file -> catalog.

Every step is journalled in the `jobs` table (see journal.py), so that a crash at any instant leaves
each file either still in the inbox or filed and catalogued exactly once.

Concurrency: verify, hash and metadata extraction run in parallel (any thread, any process). The
short "deduplicate, file, catalog, remove from inbox" section runs under one lock per inbox — a
thread lock plus `flock` on `inbox/.photovfs-ingest/lock` — so two copies of the same bytes arriving
at once (two PUTs, a PUT and the watcher, a server and `photovfs ingest`) are filed once.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import or_, select, update

from ..catalog.models import STATUS_TRASHED, Asset
from ..catalog.store import apply_facts, link_facts, new_asset
from ..errors import BadMedia, Conflict, NoSpace, PhotoVFSError, TooLarge
from ..files import fsync_dir, fsync_file
from ..metadata.extract import hash_and_extract
from ..names import (
    check_name,
    fs_to_text,
    is_side_file,
    name_key,
    split_ext,
    text_to_fs,
    with_suffix_number,
)
from . import journal
from .media import extract, is_sidecar, media_kind, verify
from .workers import TASK_FILES, Outcome, Workers, analyse, check_unchanged

if TYPE_CHECKING:
    from ..library import Library

log = logging.getLogger("photovfs.ingest")

STAGING = ".photovfs-ingest"
FAILED_DIR = "_failed"
GRACE_SECONDS = 600.0  # inbox/NAME keeps resolving this long after it was filed
COMPANION_SECONDS = 24 * 3600.0  # a late companion (RAW, MOV, XMP) joins its partner this long


@dataclass
class IngestResult:
    asset_id: int
    status: str  # "ingested" | "duplicate"
    path: str  # the original's path relative to the library
    name: str = ""
    sidecars: list[str] = field(default_factory=list)


@dataclass
class Recent:
    """In-memory records of this process's ingests (grace period and late companions)."""

    names: dict[tuple[str, ...], tuple[float, int | None, Path | None, tuple[str, ...]]] = \
        field(default_factory=dict)
    stems: dict[tuple[str, str], tuple[float, str, list[int], str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    swept: float = 0.0  # when expired records were last dropped (lookups check expiry anyway)


SWEEP_SECONDS = 30.0  # expired records are dropped at most this often (a sweep is O(records))


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # the filing section, within this process
        self.paths: dict[str, threading.Lock] = {}
        self.paths_lock = threading.Lock()
        self.recent = Recent()
        self.in_flight: set[Path] = set()
        self.inbox_root: str | None = None  # abspath of the inbox (inbox_rel runs per file)
        # test hook: called with (src, staged) after the claim, before verification
        self.after_claim: Callable[[Path, Path], None] | None = None


def state(lib: Library) -> _State:
    st = getattr(lib, "_ingest_state", None)
    if st is None:
        st = lib._ingest_state = _State()  # type: ignore[attr-defined]
    return st


_CRASH_AT = os.environ.get("PHOTOVFS_INGEST_CRASH_AT", "")


def crash_point(name: str) -> None:
    """Tests: `PHOTOVFS_INGEST_CRASH_AT=name` kills the process (SIGKILL) at that step."""
    if _CRASH_AT == name:
        os.kill(os.getpid(), 9)


# ---- small stages ---------------------------------------------------------------------------------
def target_folder(template: str, when: datetime | None, name: str) -> str:
    """Where the template files a photo: `{year}/{month}/{day}/{name}` -> `2021/04/30`."""
    when = when or datetime.now()
    rel = template.format(year=f"{when.year:04d}", month=f"{when.month:02d}",
                          day=f"{when.day:02d}", name=name)
    folder = rel.rpartition("/")[0]
    for part in folder.split("/"):
        if part:
            check_name(part)
    return folder


def find_duplicate(lib: Library, digest: str) -> Asset | None:
    with lib.session() as s:
        return s.scalar(select(Asset).where(Asset.sha256 == digest,
                                            Asset.status != STATUS_TRASHED).order_by(Asset.id))


def staging_roots(lib: Library) -> list[Path]:
    return [lib.config.inbox_dir / STAGING, lib.config.state_dir / "tmp" / STAGING]


def _staging_root(lib: Library, src: Path) -> Path:
    inbox = lib.config.inbox_dir
    root = inbox / STAGING if _inside(src, inbox) else lib.config.state_dir / "tmp" / STAGING
    root.mkdir(parents=True, exist_ok=True)
    return root


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def inbox_rel(lib: Library, path: Path) -> tuple[str, ...] | None:
    """The inbox-relative parts of a path (catalog text), or None when outside the inbox."""
    st = state(lib)
    if st.inbox_root is None:
        st.inbox_root = os.path.abspath(lib.config.inbox_dir)
    root = st.inbox_root
    full = os.path.abspath(path)  # string work: pathlib's relative_to costs ~0.1 ms a call
    if full == root:
        return ()
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not full.startswith(prefix):
        return None
    return tuple(fs_to_text(p) for p in full[len(prefix):].split(os.sep))


def _nospace(exc: OSError) -> PhotoVFSError | OSError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"disk full while writing {exc.filename or ''}".strip())
    return exc


@contextmanager
def filing_lock(lib: Library) -> Iterator[None]:
    """One filer at a time per inbox: across threads (lock) and processes (flock)."""
    st = state(lib)
    root = lib.config.inbox_dir / STAGING
    root.mkdir(parents=True, exist_ok=True)
    with st.lock:
        fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


@contextmanager
def path_lock(lib: Library, key: str) -> Iterator[None]:
    st = state(lib)
    with st.paths_lock:
        lk = st.paths.setdefault(key, threading.Lock())
    with lk:
        yield


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Put src's bytes at dst (which must not exist): a hard link, else a durable copy.

    Returns True when the bytes were copied. A copy goes to a hidden temporary first and is
    fsynced, so dst appears complete or not at all; ENOSPC becomes NoSpace with nothing left.
    """
    try:
        os.link(src, dst)
        return False
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                             errno.EMLINK):
            raise _nospace(exc) from exc
    tmp = dst.with_name(f".{dst.name}.photovfs-tmp")
    try:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)
        fsync_file(tmp)
        os.link(tmp, dst)  # never overwrites
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _nospace(exc) from exc
    tmp.unlink()
    return True


def _makedirs(path: Path) -> list[Path]:
    """mkdir -p that reports what it created (to undo on failure) and fsyncs each parent."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise _nospace(exc) from exc
        created.append(d)
        fsync_dir(d.parent)
    return created


def _undo_dirs(created: list[Path]) -> None:
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            pass


def _free_target(lib: Library, folder: str, name: str, taken: set[str]) -> str:
    """The first free `name`, `name (2)`... in the folder: free on disk and in the catalog."""
    dest_dir = lib.original_path(folder, "")
    with lib.session() as s:
        used = {name_key(n) for n in s.scalars(select(Asset.filename).where(
            Asset.folder == folder))}
    n = 1
    while True:
        cand = with_suffix_number(name, n)
        if name_key(cand) not in used and name_key(cand) not in taken and \
                not os.path.lexists(dest_dir / text_to_fs(cand)):
            return cand
        n += 1


def _sidecar_name(side: str, member: str, filed: str) -> str:
    """`IMG_0001.jpg.xmp` -> `IMG_0001 (2).jpg.xmp`; `IMG_0001.xmp` -> `IMG_0001 (2).xmp`."""
    if name_key(side).startswith(name_key(member) + "."):
        return filed + side[len(member):]
    stem, _ = split_ext(member)
    fstem, _ = split_ext(filed)
    return fstem + side[len(stem):]


# ---- the pipeline for one file ------------------------------------------------------------------
def ingest_path(lib: Library, src: Path, name: str, *, folder: str | None = None,
                partners: list[int] | None = None, sidecars: list[Path] | None = None,
                rel: tuple[str, ...] | None = None) -> IngestResult:
    """Ingest one complete file; the source is removed once filed (or found to be a duplicate).

    On failure the source stays where it was and the error is raised (BadMedia, TooLarge, NoSpace,
    Conflict when the file changed while being read). `folder` overrides the template (companions
    follow their partner); `partners` are asset ids to stack with; `sidecars` travel along.
    """
    st = state(lib)
    name = check_name(name)
    src = Path(src)
    sidecars = list(sidecars or [])
    try:
        s0 = os.stat(src)
    except FileNotFoundError:
        raise Conflict("the file is gone") from None
    if s0.st_size == 0:
        raise BadMedia("empty file")
    job_id = journal.create(lib, {"src": os.fsdecode(src), "name": name, "rel": list(rel or ()),
                                  "consume": True})
    root = _staging_root(lib, src)
    sdir = root / str(job_id)
    try:
        sdir.mkdir()
        staged = sdir / text_to_fs(name)
        copied = _link_or_copy(src, staged)
        sst = os.stat(staged)
        ident = s0 if copied else sst  # the inbox file that holds exactly these bytes
        sides: list[dict[str, Any]] = []
        for i, side in enumerate(sidecars):
            sd = sdir / f"side{i}"
            sd.mkdir()
            sp = sd / side.name
            try:
                side0 = os.stat(side)
                side_copied = _link_or_copy(side, sp)
            except FileNotFoundError:
                continue
            sps = os.stat(sp)
            sid = side0 if side_copied else sps
            sides.append({"src": os.fsdecode(side), "staged": os.fsdecode(sp),
                          "name": fs_to_text(side.name), "staged_dev": sps.st_dev,
                          "staged_ino": sps.st_ino, "src_dev": sid.st_dev,
                          "src_ino": sid.st_ino})
        data = journal.update(lib, job_id, journal.CLAIMED, staged=os.fsdecode(staged),
                              staged_dev=sst.st_dev, staged_ino=sst.st_ino, sidecars=sides,
                              src_dev=ident.st_dev, src_ino=ident.st_ino,
                              size=sst.st_size, mtime_ns=sst.st_mtime_ns, claim_copied=copied)
    except BaseException:
        shutil.rmtree(sdir, ignore_errors=True)
        journal.drop(lib, job_id)
        raise
    crash_point("claimed")
    try:
        if st.after_claim is not None:
            st.after_claim(src, staged)
        verify(staged)
        xmp = next((Path(d["staged"]) for d in sides if d["name"].lower().endswith(".xmp")), None)
        digest, facts = hash_and_extract(staged, xmp)  # one read: the hash and the facts
        now = os.stat(staged)
        if (now.st_size, now.st_mtime_ns) != (sst.st_size, sst.st_mtime_ns):
            raise Conflict("the file changed while it was being ingested; it will be retried")
    except BaseException:
        shutil.rmtree(sdir, ignore_errors=True)
        journal.drop(lib, job_id)
        raise
    with filing_lock(lib):
        return _file(lib, job_id, data, src, staged, name, digest, facts, folder,
                     partners or [], sides, rel)


def _file(lib: Library, job_id: int, data: dict[str, Any], src: Path, staged: Path, name: str,
          digest: str, facts, folder: str | None, partners: list[int],
          sides: list[dict[str, Any]], rel: tuple[str, ...] | None) -> IngestResult:
    dup = find_duplicate(lib, digest)
    if dup is not None:
        data = journal.update(lib, job_id, journal.DUP, sha256=digest, asset_id=dup.id,
                              folder=dup.folder, filename=dup.filename)
        if partners:
            with lib.write() as s:
                _stack(s, [dup.id, *partners])
        journal._finish_filed(lib, job_id, data, journal.DUPLICATE)
        result = IngestResult(dup.id, "duplicate", _rel(dup.folder, dup.filename), name)
        _remember(lib, rel, dup.id, None, dup.folder, dup.filename, [*partners, dup.id])
        return result
    if folder is None:
        folder = target_folder(lib.config.ingest.template, facts.taken_at, name)
    dest_dir = lib.original_path(folder, "")
    created: list[Path] = []
    made: list[Path] = []
    st = state(lib)
    try:
        created = _makedirs(dest_dir)
        taken: set[str] = set()
        while True:
            filename = _free_target(lib, folder, name, taken)
            target = dest_dir / text_to_fs(filename)
            side_targets = []
            for d in sides:
                sname = _sidecar_name(d["name"], name, filename)
                side_targets.append(dest_dir / text_to_fs(sname))
            if any(os.path.lexists(t) for t in side_targets):
                taken.add(name_key(filename))
                continue
            for d, t in zip(sides, side_targets, strict=True):
                d["target"] = os.fsdecode(t)
            data = journal.update(lib, job_id, journal.FILING, target=os.fsdecode(target),
                                  folder=folder, filename=filename, sha256=digest,
                                  sidecars=sides, copied=None,
                                  tmps=[os.fsdecode(t.with_name(f".{t.name}.photovfs-tmp"))
                                        for t in (target, *side_targets)])
            st.in_flight.add(target)
            crash_point("filing")
            try:
                copied = _link_or_copy(staged, target)
            except FileExistsError:
                st.in_flight.discard(target)
                taken.add(name_key(filename))
                continue
            made.append(target)
            break
        for d, t in zip(sides, side_targets, strict=True):
            _link_or_copy(Path(d["staged"]), t)
            made.append(t)
        for t in made:
            fsync_file(t)
        fsync_dir(dest_dir)
        crash_point("linked")
        tst = os.stat(target)
        side_mtime = None
        xmp_target = next((t for d, t in zip(sides, side_targets, strict=True)
                           if d["name"].lower().endswith(".xmp")), None)
        if xmp_target is not None:
            side_mtime = os.stat(xmp_target).st_mtime_ns
        with lib.write() as s:
            row = s.scalar(select(Asset).where(Asset.folder == folder,
                                               Asset.filename == filename))
            if row is not None and row.sha256 == digest:
                asset = row  # a rescan of the folder got there first: adopt its row
            else:
                asset = new_asset(s, folder, filename, digest, tst.st_size, tst.st_mtime_ns,
                                  facts)
            asset.sidecar_mtime_ns = side_mtime
            ids = list(partners)
            if facts.content_id:
                ids += s.scalars(select(Asset.id).where(Asset.content_id == facts.content_id,
                                                        Asset.id != asset.id))
            if ids:
                _stack(s, [asset.id, *ids])
            asset_id = asset.id
            data = journal.update(lib, job_id, journal.FILED, s, asset_id=asset_id,
                                  copied=copied)
    except BaseException:
        for t in made:
            t.unlink(missing_ok=True)
        for t in data.get("tmps", []):
            Path(t).unlink(missing_ok=True)
        _undo_dirs(created)
        shutil.rmtree(staged.parent, ignore_errors=True)
        journal.drop(lib, job_id)
        raise
    finally:
        st.in_flight.discard(dest_dir / text_to_fs(data.get("filename", name)))
    crash_point("filed")
    journal._finish_filed(lib, job_id, data, journal.DONE)
    _remember(lib, rel, asset_id, None, folder, filename, partners + [asset_id])
    return IngestResult(asset_id, "ingested", _rel(folder, filename), name,
                        [os.fsdecode(t) for t in made[1:]])


def _rel(folder: str, filename: str) -> str:
    return f"{folder}/{filename}" if folder else filename


def _stack(s, ids: list[int]) -> None:
    """Link assets as one stack: stack_id = the lowest asset id of the whole group."""
    ids = [i for i in ids if i is not None]
    existing = {x for x in s.scalars(select(Asset.stack_id).where(Asset.id.in_(ids))) if x}
    group = set(ids) | existing
    if existing:
        group |= set(s.scalars(select(Asset.id).where(Asset.stack_id.in_(existing))))
    top = min(group)
    s.execute(update(Asset).where(or_(Asset.id.in_(group), Asset.stack_id.in_(existing or {-1})))
              .values(stack_id=top))


def _remember(lib: Library, rel: tuple[str, ...] | None, asset_id: int | None,
              failed: Path | None, folder: str | None, filename: str | None,
              stack: list[int]) -> None:
    if not rel:
        return
    rec = state(lib).recent
    now = time.monotonic()
    with rec.lock:
        rec.names[tuple(name_key(p) for p in rel)] = (now + GRACE_SECONDS, asset_id, failed,
                                                      tuple(rel))
        if folder is not None and filename is not None:
            stem = name_key(split_ext(rel[-1])[0])
            key = ("/".join(name_key(p) for p in rel[:-1]), stem)
            old = rec.stems.get(key)
            ids = sorted(set(stack) | set(old[2] if old else []))
            rec.stems[key] = (now + COMPANION_SECONDS, folder, ids,
                              split_ext(filename)[0])
        if now - rec.swept >= SWEEP_SECONDS:  # not per call: a batch of 10,000 was O(n^2)
            rec.swept = now
            for k in [k for k, v in rec.names.items() if v[0] < now]:
                del rec.names[k]
            for k in [k for k, v in rec.stems.items() if v[0] < now]:
                del rec.stems[k]


def recently_filed(lib: Library, rest: tuple[str, ...]) -> tuple[int | None, Path | None] | None:
    """(asset id, failed file) for an inbox name ingested within the grace period, else None."""
    st = getattr(lib, "_ingest_state", None)
    if st is None or not rest:
        return None
    with st.recent.lock:
        rec = st.recent.names.get(tuple(name_key(p) for p in rest))
    if rec is None or rec[0] < time.monotonic():
        return None
    return rec[1], rec[2]


def forget_recent(lib: Library, rest: tuple[str, ...]) -> None:
    st = getattr(lib, "_ingest_state", None)
    if st is not None:
        with st.recent.lock:
            st.recent.names.pop(tuple(name_key(p) for p in rest), None)


def recent_names(lib: Library, folder: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Inbox paths (as written) of grace-period names directly inside an inbox folder."""
    st = getattr(lib, "_ingest_state", None)
    if st is None:
        return []
    fk = tuple(name_key(p) for p in folder)
    now = time.monotonic()
    with st.recent.lock:
        return [v[3] for k, v in st.recent.names.items()
                if len(k) == len(fk) + 1 and k[:-1] == fk and v[0] >= now]


# ---- inbox files: companions, failures ----------------------------------------------------------
_RANK = {"image": 0, "raw": 1, "video": 2}


def _rank(name: str) -> int:
    from ..metadata.kinds import RAW_EXTS, ext_of

    kind = media_kind(name)
    if kind is None:
        return 9
    if ext_of(name) in RAW_EXTS:
        return _RANK["raw"]
    return _RANK[kind[0]]


def skip_reason(lib: Library, path: Path) -> str | None:
    """Why an inbox path is not an ingest candidate (None when it is one)."""
    rel = inbox_rel(lib, path)
    if rel is None:
        return "outside the inbox"
    if not rel or rel[0] in (FAILED_DIR, STAGING) or any(p.startswith(".photovfs-") for p in rel):
        return "internal"
    name = rel[-1]
    if is_side_file(name):
        return "temporary name"
    if is_sidecar(name):
        return "sidecar"
    if media_kind(name) is None:
        return "not media"
    try:
        if os.stat(path).st_size == 0:
            return "empty"
    except FileNotFoundError:
        return "gone"
    return None


def companions(lib: Library, path: Path, quiet: float) -> tuple[list[Path], list[Path]]:
    """Media files and sidecars beside `path` with the same stem, complete (quiet) ones only."""
    stem = name_key(split_ext(fs_to_text(path.name))[0])
    media, sides = [], []
    now = time.time()
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return [], []
    prefix = fs_to_text(path.name)[:len(stem)].casefold()
    for e in entries:
        if not e.name.casefold().startswith(prefix[:1]) or \
                not name_key(fs_to_text(e.name)).startswith(stem):
            continue  # cheap filter first: a big inbox folder is scanned once per group
        if not e.is_file(follow_symlinks=False) or is_side_file(e.name):
            continue
        text = fs_to_text(e.name)
        p = Path(e.path)
        # `IMG_0001.jpg.xmp` belongs to IMG_0001.jpg, `IMG_0001.xmp` to every IMG_0001.*
        base = split_ext(text)[0]
        if is_sidecar(text):
            if name_key(base) == stem or name_key(split_ext(base)[0]) == stem:
                sides.append(p)
            continue
        if name_key(base) != stem or media_kind(text) is None or p == path:
            continue
        try:
            st = e.stat()
        except FileNotFoundError:
            continue
        if st.st_size > 0 and now - st.st_mtime >= quiet:
            media.append(p)
    return media, sides


def ingest_inbox_file(lib: Library, path: Path, *, quiet: float | None = None
                      ) -> list[tuple[Path, IngestResult | PhotoVFSError]]:
    """Ingest a complete inbox file with its companions; failures go to `_failed/`.

    Returns (path, result or error) for each file handled. A file that is not media, a temporary
    name, an empty file or a sidecar without its photo is left where it is (empty list).
    """
    path = Path(path)
    reason = skip_reason(lib, path)
    if reason == "sidecar":
        return _sidecar_arrived(lib, path)
    if reason is not None:
        return []
    quiet = lib.config.ingest.quiet_seconds if quiet is None else quiet
    key = os.fsdecode(path.parent) + "\0" + name_key(split_ext(fs_to_text(path.name))[0])
    with path_lock(lib, key):
        if skip_reason(lib, path) is not None:
            return []
        others, sides = companions(lib, path, quiet)
        members = sorted([path, *others], key=lambda p: (_rank(p.name), p.name))
        rel_dir = inbox_rel(lib, path.parent) or ()
        rec = state(lib).recent
        with rec.lock:
            late = rec.stems.get(("/".join(name_key(p) for p in rel_dir),
                                  name_key(split_ext(fs_to_text(path.name))[0])))
        folder = late[1] if late and late[0] >= time.monotonic() else None
        partners = list(late[2]) if late is not None and folder is not None else []
        out: list[tuple[Path, IngestResult | PhotoVFSError]] = []
        carried = _assign_sidecars(members, sides)
        for m in members:
            rel = inbox_rel(lib, m)
            try:
                res = ingest_path(lib, m, fs_to_text(m.name), folder=folder, partners=partners,
                                  sidecars=carried.get(m, []), rel=rel)
            except (BadMedia, TooLarge) as exc:
                _move_failed(lib, m, exc.reason, rel)
                out.append((m, exc))
                continue
            except PhotoVFSError as exc:
                out.append((m, exc))
                if isinstance(exc, NoSpace):
                    break
                continue
            out.append((m, res))
            if folder is None:
                folder = res.path.rpartition("/")[0] if "/" in res.path else ""
            partners.append(res.asset_id)
        return out


def _assign_sidecars(members: list[Path], sides: list[Path]) -> dict[Path, list[Path]]:
    """Which member carries each sidecar: `X.ext.xmp` its X.ext, else a RAW, else the primary."""
    out: dict[Path, list[Path]] = {}
    if not members:
        return out
    raws = [m for m in members if _rank(m.name) == _RANK["raw"]]
    for side in sides:
        text = fs_to_text(side.name)
        owner = next((m for m in members
                      if name_key(text).startswith(name_key(fs_to_text(m.name)) + ".")), None)
        if owner is None:
            owner = raws[0] if raws and text.lower().endswith(".xmp") else members[0]
        out.setdefault(owner, []).append(side)
    return out


def _sidecar_arrived(lib: Library, path: Path) -> list[tuple[Path, IngestResult | PhotoVFSError]]:
    """A sidecar whose photo was filed recently joins it; otherwise it waits in the inbox."""
    rel = inbox_rel(lib, path) or ()
    text = fs_to_text(path.name)
    base = split_ext(text)[0]  # IMG_0001 (of IMG_0001.xmp) or IMG_0001.jpg (of IMG_0001.jpg.xmp)
    rec = state(lib).recent
    folder_key = "/".join(name_key(p) for p in rel[:-1])
    now = time.monotonic()
    with rec.lock:
        stem_part, late = base, rec.stems.get((folder_key, name_key(base)))
        if late is None:
            stem_part = split_ext(base)[0]
            late = rec.stems.get((folder_key, name_key(stem_part)))
    if late is None or late[0] < now or not late[2]:
        return []
    _, folder, ids, filed_stem = late
    from ..files import durable_move

    with filing_lock(lib):
        with lib.session() as s:
            asset = s.scalar(select(Asset).where(Asset.id.in_(ids)).order_by(
                Asset.media_type, Asset.id).limit(1))
        if asset is None:
            return []
        dest = lib.original_path(folder, "") / text_to_fs(filed_stem + text[len(stem_part):])
        if os.path.lexists(dest):
            return []
        durable_move(path, dest)
        if text.lower().endswith(".xmp"):
            facts = extract(lib.original_path(asset.folder, asset.filename), dest)
            with lib.write() as s:
                a = s.get(Asset, asset.id)
                assert a is not None
                apply_facts(s, a, facts)
                link_facts(s, a, facts)
                a.sidecar_mtime_ns = os.stat(dest).st_mtime_ns
    _remember(lib, rel, None, dest, None, None, [])
    return [(path, IngestResult(asset.id, "sidecar", _rel(folder, fs_to_text(dest.name)), text))]


def _move_failed(lib: Library, path: Path, reason: str, rel: tuple[str, ...] | None) -> None:
    """A damaged upload goes to inbox/_failed/NAME with NAME.txt saying why."""
    from ..files import durable_move, free_name

    failed = lib.config.inbox_dir / FAILED_DIR
    failed.mkdir(exist_ok=True)
    try:
        with filing_lock(lib):
            dest = free_name(failed, path.name)
            durable_move(path, dest)
            note = dest.with_name(dest.name + ".txt")
            with open(note, "w", encoding="utf-8") as fh:
                fh.write(f"{fs_to_text(path.name)}: {reason}\n"
                         f"failed at {datetime.now():%Y-%m-%d %H:%M:%S}\n")
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(failed)
    except FileNotFoundError:
        return
    job_id = journal.create(lib, {"src": os.fsdecode(path), "name": fs_to_text(path.name),
                                  "rel": list(rel or ()), "reason": reason,
                                  "failed": os.fsdecode(dest)})
    journal.update(lib, job_id, journal.FAILED)
    _remember(lib, rel, None, dest, None, None, [])
    log.warning("inbox: %s failed: %s", fs_to_text(path.name), reason)


def inbox_candidates(lib: Library) -> Iterator[Path]:
    """Every ingest candidate in the on-disk inbox (recursive; _failed and staging excluded)."""
    root = lib.config.inbox_dir
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in (FAILED_DIR, STAGING)]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".photovfs-"))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if skip_reason(lib, p) is None:
                yield p


# ---- batch ingest: many independent files, one lock and one transaction per stage per batch -------
BATCH = 128  # files filed per lock hold / catalog transaction
PROCESS_MIN = 256  # batches this large are analysed in worker processes (startup ~0.3 s each)
SYNC_THREADS = 8  # concurrent fdatasyncs: the filesystem folds them into shared journal commits


class Timings:
    """Seconds spent per stage, summed over threads (`ingest_batch(timings=dict)`; bench/profile).

    Worker stages (verify, sha256, extract...) add up the time of every worker thread; the filer's
    stages (claim, file: ..., done) run in the calling thread and are wall time.
    """

    def __init__(self, out: dict[str, float] | None) -> None:
        self.out = out
        self.lock = threading.Lock()

    def add(self, spent: dict[str, float]) -> None:
        if self.out is not None:
            with self.lock:
                for stage, sec in spent.items():
                    self.out[stage] = self.out.get(stage, 0.0) + sec

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.out is None:
            yield
            return
        t = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            with self.lock:
                self.out[stage] = self.out.get(stage, 0.0) + dt


@dataclass
class _Item:
    src: Path
    name: str
    rel: tuple[str, ...] | None
    s0: os.stat_result
    lock: threading.Lock
    job_id: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    staged: Path | None = None
    digest: str = ""
    facts: Any = None
    error: BaseException | None = None
    sync: Future[None] | None = None  # the staged inode's fdatasync (SYNC_THREADS pool)
    dup_of: Any = None  # an existing asset row, or an earlier _Item of the same batch
    target: Path | None = None
    folder: str = ""
    filename: str = ""
    used: set[str] = field(default_factory=set)  # the target folder's taken name keys
    made: bool = False
    copied: bool = False
    asset_id: int | None = None
    result: IngestResult | PhotoVFSError | None = None


def _dir_stems(parent: Path, cache: dict[Path, dict[str, int]]) -> dict[str, int]:
    """How many entries of a folder share each stem key (one scandir per folder per batch)."""
    found = cache.get(parent)
    if found is None:
        found = {}
        try:
            entries = list(os.scandir(parent))
        except FileNotFoundError:
            entries = []
        for e in entries:
            if is_side_file(e.name):
                continue
            text = fs_to_text(e.name)
            base = split_ext(text)[0]
            keys = {name_key(base)}
            if is_sidecar(text):
                keys.add(name_key(split_ext(base)[0]))
            for k in keys:
                found[k] = found.get(k, 0) + 1
        cache[parent] = found
    return found


def _is_single(lib: Library, path: Path, cache: dict[Path, dict[str, int]]) -> bool:
    """A media file with no companion, no sidecar and no recently filed partner: batchable."""
    stem = name_key(split_ext(fs_to_text(path.name))[0])
    if _dir_stems(path.parent, cache).get(stem, 0) != 1:
        return False
    rel_dir = inbox_rel(lib, path.parent) or ()
    rec = state(lib).recent
    with rec.lock:
        late = rec.stems.get(("/".join(name_key(p) for p in rel_dir), stem))
    return late is None or late[0] < time.monotonic()


def ingest_batch(lib: Library, paths: list[Path], *, quiet: float | None = None, workers: int = 2,
                 batch: int = BATCH, stop: threading.Event | None = None,
                 report: Callable[[Path, IngestResult | PhotoVFSError], None] | None = None,
                 timings: dict[str, float] | None = None, processes: bool | None = None
                 ) -> list[tuple[Path, IngestResult | PhotoVFSError]]:
    """Ingest many inbox files: the same journal states and guarantees as `ingest_inbox_file`.

    Files without companions are claimed `batch` at a time (one transaction), verified, hashed
    and read in a pool of `workers` threads (Pillow and hashlib release the GIL); each staged
    inode is fdatasync'ed by a separate pool of SYNC_THREADS threads (concurrent syncs share the
    filesystem's journal commits, and a worker never waits for the disk). A chunk is filed once
    all its syncs are done, under one hold of the filing lock: one journal transaction for
    `filing`, one fsync per touched folder, one catalog transaction (assets + `filed`), the inbox
    copies removed (one fsync per inbox folder); then, outside the lock, one transaction for
    `done` and the staging links removed. Companion groups, sidecars and late partners go through
    `ingest_inbox_file` afterwards. A NoSpace stops everything (`stop`). `timings`, when given,
    receives seconds per stage (see `Timings`).

    `processes` (default: when there are at least PROCESS_MIN files) moves verify, sha256 and
    facts into `workers` worker processes (workers.py): that work holds the GIL too much to share
    one core; a smaller batch does not repay starting the processes. Staging (mkdir + hard link:
    waits on the filesystem journal) then runs in threads of the parent, one per task in flight.
    """
    from concurrent.futures import ThreadPoolExecutor

    stop = stop or threading.Event()
    clock = Timings(timings)
    out: list[tuple[Path, IngestResult | PhotoVFSError]] = []
    out_lock = threading.Lock()

    def emit(p: Path, res: IngestResult | PhotoVFSError) -> None:
        with out_lock:
            out.append((p, res))
        if isinstance(res, NoSpace):
            stop.set()
        if report is not None:
            report(p, res)

    if processes is None:  # decided now: the workers' interpreters start during the partition
        processes = len(paths) >= PROCESS_MIN and state(lib).after_claim is None
    procs = Workers(workers) if processes else None
    singles: list[Path] = []
    others: list[Path] = []
    cache: dict[Path, dict[str, int]] = {}
    try:
        with clock("partition"):
            for p in paths:
                p = Path(p)
                if skip_reason(lib, p) is None and _is_single(lib, p, cache):
                    singles.append(p)
                else:
                    others.append(p)
    except BaseException:
        if procs is not None:
            procs.close()
        raise
    stage_threads = 2 * batch // TASK_FILES + 1 if procs is not None else 1  # a task in flight each
    with ThreadPoolExecutor(max(1, workers)) as pool, ThreadPoolExecutor(SYNC_THREADS) as syncs, \
            ThreadPoolExecutor(1) as cleanup, ThreadPoolExecutor(stage_threads) as stagers, \
            _closing(procs):
        if singles:
            cleanup.submit(_warm_up)
        chunks = [singles[i:i + batch] for i in range(0, len(singles), batch)]
        inflight: list[tuple[list[_Item], list[Any]]] = []  # claimed, being prepared
        try:
            for chunk in [*chunks, None]:
                if chunk is not None and not stop.is_set():
                    with clock("claim"):
                        items = _claim_many(lib, chunk)  # chunk k+1 is prepared while k is filed
                    if procs is None:
                        futs = [pool.submit(_prepare, lib, it, syncs, clock) for it in items]
                    else:
                        futs = _prepare_in_processes(lib, items, procs, stagers, syncs, clock)
                    inflight.append((items, futs))
                if len(inflight) < (2 if chunk is not None else 1):
                    continue
                items, futs = inflight.pop(0)
                try:
                    with clock("wait: workers"):
                        for f in futs:
                            f.result()
                    with clock("wait: fdatasync"):
                        _await_syncs(items)
                    if stop.is_set():
                        _abandon(lib, items)
                    else:
                        for p, res in _file_many(lib, items, clock, cleanup):
                            emit(p, res)
                finally:
                    for it in items:
                        it.lock.release()
        except BaseException:
            for items, futs in inflight:  # claimed but never filed: roll back now
                for f in futs:
                    f.exception()
                for it in items:
                    if it.sync is not None:
                        it.sync.exception()
                try:
                    _abandon(lib, items)
                finally:
                    for it in items:
                        it.lock.release()
            raise
        if others and not stop.is_set():
            def one(p: Path) -> None:
                if stop.is_set():
                    return
                for q, res in ingest_inbox_file(lib, p, quiet=quiet):
                    emit(q, res)
            with clock("per-file (companions)"):
                list(pool.map(one, others))
    return out


@contextmanager
def _closing(procs: Workers | None) -> Iterator[None]:
    try:
        yield
    finally:
        if procs is not None:
            procs.close()


def _prepare_in_processes(lib: Library, items: list[_Item], procs: Workers, stagers: Any,
                          syncs: Any, clock: Timings) -> list[Future[None]]:
    """Stage a claimed chunk in `stagers` threads (disk metadata: never a worker's wait) and have
    the worker processes analyse it, TASK_FILES files a task; each answer queues fdatasyncs."""
    return [stagers.submit(_stage_and_analyse, items[i:i + TASK_FILES], procs, syncs, clock)
            for i in range(0, len(items), TASK_FILES)]


def _stage_and_analyse(items: list[_Item], procs: Workers, syncs: Any, clock: Timings) -> None:
    staged: list[tuple[_Item, os.stat_result]] = []
    for it in items:
        try:
            staged.append((it, _stage(it, clock)))
        except BaseException as exc:  # noqa: BLE001 - reported per file by _file_many
            it.error = exc
            _drop_staging(it)
    if not staged:
        return
    try:
        outs = procs.run([(os.fsdecode(cast(Path, it.staged)), sst.st_size, sst.st_mtime_ns)
                          for it, sst in staged])
    except BaseException as exc:  # noqa: BLE001 - no answer: every file of the task stays put
        outs = [Outcome(error=Conflict(f"ingest failed: {exc!r}")) for _ in staged]
    for (it, _), res in zip(staged, outs, strict=True):
        clock.add(res.spent)
        if res.error is not None:
            it.error = res.error
            _drop_staging(it)
            continue
        it.digest, it.facts = res.digest, res.facts
        it.sync = syncs.submit(_timed_sync, it.staged, clock)


def _drop_staging(it: _Item) -> None:
    if it.staged is not None:
        shutil.rmtree(it.staged.parent, ignore_errors=True)


def _warm_up() -> None:
    """Load the reverse geocoder's table (milliseconds once cached, a second or two the first
    time on a machine) while the first chunk is being verified, instead of inside the first
    catalog transaction under the filing lock."""
    from .. import geotable

    try:
        geotable.load()
    except Exception:  # noqa: BLE001 - places.py loads it again and reports problems
        pass


def _claim_many(lib: Library, paths: list[Path]) -> list[_Item]:
    """Journal `claimed` rows for a chunk in one transaction (the hard links come in _prepare)."""
    items = []
    st = state(lib)
    for p in paths:
        key = os.fsdecode(p.parent) + "\0" + name_key(split_ext(fs_to_text(p.name))[0])
        with st.paths_lock:
            lk = st.paths.setdefault(key, threading.Lock())
        if not lk.acquire(blocking=False):
            continue  # another thread of this process is ingesting it right now
        try:
            s0 = os.stat(p)  # the name was checked by ingest_batch: only gone/empty can change
            if s0.st_size == 0 or not os.path.isfile(p):
                raise FileNotFoundError
            items.append(_Item(p, check_name(fs_to_text(p.name)), inbox_rel(lib, p), s0, lk))
        except (OSError, PhotoVFSError):
            lk.release()
    if not items:
        return items
    roots: dict[Path, Path] = {}
    for it in items:
        parent = it.src.parent
        if parent not in roots:
            roots[parent] = _staging_root(lib, it.src)

    order = iter(items)
    with lib.write() as s:
        made = journal.create_many(
            s, [{"src": os.fsdecode(it.src), "name": it.name, "rel": list(it.rel or ()),
                 "consume": True} for it in items],
            lambda job_id, d: _staging_for(roots, next(order), job_id))
    for it, (job_id, data) in zip(items, made, strict=True):
        it.job_id, it.data = job_id, data
        it.staged = Path(data["staged"])
    return items


def _staging_for(roots: dict[Path, Path], it: _Item, job_id: int) -> dict[str, Any]:
    return {"staged": os.fsdecode(roots[it.src.parent] / str(job_id) / text_to_fs(it.name))}


def _prepare(lib: Library, it: _Item, syncs: Any, clock: Timings) -> None:
    """In the pool: hard-link into staging, verify, hash, read facts; queue the fdatasync.

    The staged inode is the very inode the original will be (a hard link), so its fdatasync
    (awaited by the filer before anything is linked or catalogued) makes the bytes durable.
    """
    st = state(lib)
    assert it.staged is not None
    try:
        sst = _stage(it, clock)
        if st.after_claim is not None:
            st.after_claim(it.src, it.staged)
        it.digest, it.facts, spent = analyse(it.staged)
        clock.add(spent)
        check_unchanged(it.staged, sst)
        it.sync = syncs.submit(_timed_sync, it.staged, clock)
    except BaseException as exc:  # noqa: BLE001 - reported per file by _file_many
        it.error = exc
        shutil.rmtree(it.staged.parent, ignore_errors=True)


def _stage(it: _Item, clock: Timings) -> os.stat_result:
    """Hard-link (else copy) the claimed inbox file into its staging folder; journal its inode."""
    assert it.staged is not None
    with clock("stage (mkdir+link)"):
        it.staged.parent.mkdir()
        copied = _link_or_copy(it.src, it.staged)
        sst = os.stat(it.staged)
    ident = it.s0 if copied else sst
    it.data.update(staged_dev=sst.st_dev, staged_ino=sst.st_ino, sidecars=[],
                   src_dev=ident.st_dev, src_ino=ident.st_ino, size=sst.st_size,
                   mtime_ns=sst.st_mtime_ns, claim_copied=copied)
    crash_point("claimed")
    return sst


def _timed_sync(path: Path, clock: Timings) -> None:
    with clock("fdatasync (sync pool)"):
        fsync_file(path, data_only=True)


def _await_syncs(items: list[_Item]) -> None:
    """Wait for the chunk's fdatasyncs; a file whose bytes could not be made durable is not filed."""
    for it in items:
        if it.sync is None or it.error is not None:
            continue
        exc = it.sync.exception()
        if exc is not None:
            it.error = _nospace(exc) if isinstance(exc, OSError) else exc
            assert it.staged is not None
            shutil.rmtree(it.staged.parent, ignore_errors=True)


def _drop_all_staging(staged: list[Path | None], clock: Timings) -> None:
    """Remove finished jobs' staging folders (one hard link each): two syscalls, not an rmtree.

    Off the filer's path (a background thread): a leftover is harmless, recovery sweeps it.
    """
    with clock("staging cleanup (background)"):
        for path in staged:
            if path is None:
                continue
            try:
                os.unlink(path)
                os.rmdir(path.parent)
            except OSError:
                shutil.rmtree(path.parent, ignore_errors=True)


def _abandon(lib: Library, items: list[_Item]) -> None:
    """Roll a prepared chunk back (stopped): staging removed, jobs dropped, inbox untouched."""
    for it in items:
        if it.staged is not None:
            shutil.rmtree(it.staged.parent, ignore_errors=True)
    journal.drop_many(lib, [it.job_id for it in items])


def _file_many(lib: Library, items: list[_Item], clock: Timings | None = None,
               cleanup: Any = None) -> list[tuple[Path, IngestResult | PhotoVFSError]]:
    clock = clock or Timings(None)
    out: list[tuple[Path, IngestResult | PhotoVFSError]] = []
    bad = [it for it in items if it.error is not None]
    good = [it for it in items if it.error is None]
    if bad:
        journal.drop_many(lib, [it.job_id for it in bad])
        for it in bad:
            exc = it.error
            assert exc is not None
            if isinstance(exc, (BadMedia, TooLarge)):
                _move_failed(lib, it.src, exc.reason, it.rel)
                out.append((it.src, exc))
            elif isinstance(exc, PhotoVFSError):
                out.append((it.src, exc))
            elif isinstance(exc, Exception):
                log.error("inbox: ingest of %s failed: %r", it.src, exc)
                out.append((it.src, Conflict(f"ingest failed: {exc}")))
            else:
                raise exc  # KeyboardInterrupt and the like
    if not good:
        return out
    with clock("file (lock held, incl. wait)"), filing_lock(lib):
        results, done = _file_locked(lib, good, clock)
        out += results
    # outside the lock: the journal's terminal states and the staging links (a crash here leaves
    # `filed`/`dup` jobs, which recovery rolls forward, or stray staging folders it removes)
    with clock("done (journal)"), lib.write() as s:
        journal.update_many(s, [(it.job_id, journal.DONE if it.made else journal.DUPLICATE,
                                 it.data) for it in done])
    staged = [it.staged for it in done]
    if cleanup is None:
        _drop_all_staging(staged, clock)
    else:
        cleanup.submit(_drop_all_staging, staged, clock)
    for it in good:
        if isinstance(it.result, IngestResult):
            res = it.result
            if res.status == "duplicate":
                folder, filename = res.path.rpartition("/")[::2]
                _remember(lib, it.rel, res.asset_id, None, folder, filename, [res.asset_id])
            else:
                _remember(lib, it.rel, res.asset_id, None, it.folder, it.filename, [res.asset_id])
    return out


def _file_locked(lib: Library, items: list[_Item], clock: Timings
                 ) -> tuple[list[tuple[Path, IngestResult | PhotoVFSError]], list[_Item]]:
    """Dedupe, file, catalog and remove the inbox copies of a prepared chunk (filing lock held).

    Returns the results and the items whose jobs are now `filed`/`dup` (the caller moves them to
    `done`/`duplicate` and removes their staging links, outside the lock).
    """
    st = state(lib)
    with clock("file: dedupe + names"):
        # deduplicate: against the catalog (one query per 500) and within the batch
        digests = sorted({it.digest for it in items})
        existing: dict[str, Any] = {}
        with lib.session() as s:
            for i in range(0, len(digests), 500):
                for row in s.execute(select(Asset.id, Asset.sha256, Asset.folder, Asset.filename)
                                     .where(Asset.sha256.in_(digests[i:i + 500]),
                                            Asset.status != STATUS_TRASHED).order_by(Asset.id)):
                    existing.setdefault(row.sha256, row)
            first: dict[str, _Item] = {}
            to_file: list[_Item] = []
            for it in items:
                if it.digest in existing:
                    it.dup_of = existing[it.digest]
                elif it.digest in first:
                    it.dup_of = first[it.digest]
                else:
                    first[it.digest] = it
                    to_file.append(it)
            # choose targets: the catalog's names per folder once (same session), then the disk
            used: dict[str, set[str]] = {}
            for it in to_file:
                it.folder = target_folder(lib.config.ingest.template, it.facts.taken_at, it.name)
                if it.folder not in used:  # catalogued names + what is on disk: one listing
                    used[it.folder] = {name_key(n) for n in s.scalars(
                        select(Asset.filename).where(Asset.folder == it.folder))}
                    used[it.folder] |= _disk_names(lib.original_path(it.folder, ""))
                it.used = used[it.folder]
                it.filename = _pick_name(lib, it.folder, it.name, it.used, check_disk=False)
                it.target = lib.original_path(it.folder, "") / text_to_fs(it.filename)
    created: list[Path] = []
    try:
        with clock("file: journal filing"), lib.write() as s:
            rows = []
            for it in items:
                if isinstance(it.dup_of, _Item):
                    continue  # journalled as dup once its twin is catalogued
                if it.dup_of is not None:
                    d = it.dup_of
                    it.data.update(sha256=it.digest, asset_id=d.id, folder=d.folder,
                                   filename=d.filename)
                    rows.append((it.job_id, journal.DUP, it.data))
                else:
                    _journal_target(it)
                    rows.append((it.job_id, journal.FILING, it.data))
            journal.update_many(s, rows)
        crash_point("filing")
        for it in to_file:
            assert it.target is not None
            st.in_flight.add(it.target)
        with clock("file: link + fsync folders"):
            for d in sorted({cast(Path, it.target).parent for it in to_file}):  # targets set
                try:
                    created += _makedirs(d)
                except OSError as exc:  # NoSpace: every file of this batch stays in the inbox
                    for it in to_file:
                        it.result = exc if isinstance(exc, PhotoVFSError) else Conflict(str(exc))
                    break
            stopped = False
            for it in to_file:
                if it.result is not None:
                    continue
                if stopped:
                    continue  # not attempted: stays in the inbox, reported by nobody (skipped)
                try:
                    it.copied = _link_target(lib, it)
                    it.made = True
                except PhotoVFSError as exc:
                    it.result = exc
                    stopped = isinstance(exc, NoSpace)
                except OSError as exc:
                    it.result = Conflict(f"cannot file it: {exc.strerror or exc}")
            filed = [it for it in to_file if it.made]
            for d in sorted({cast(Path, it.target).parent for it in filed}):
                fsync_dir(d)  # the new names; the bytes were fdatasync'ed (or copied + fsync'ed)
        crash_point("linked")
        with clock("file: catalog"), lib.write() as s:
            rows = []
            _catalog_many(lib, s, filed)
            for it in filed:
                it.data.update(asset_id=it.asset_id, copied=it.copied)
                rows.append((it.job_id, journal.FILED, it.data))
            for it in items:
                twin = it.dup_of
                if isinstance(twin, _Item) and twin.made:
                    it.data.update(sha256=it.digest, asset_id=twin.asset_id, folder=twin.folder,
                                   filename=twin.filename)
                    rows.append((it.job_id, journal.DUP, it.data))
            journal.update_many(s, rows)
    except BaseException:
        for it in to_file:
            if it.made and it.target is not None:
                it.target.unlink(missing_ok=True)
            for t in it.data.get("tmps", []):
                Path(t).unlink(missing_ok=True)
        _undo_dirs(created)
        for it in items:
            if it.staged is not None:
                shutil.rmtree(it.staged.parent, ignore_errors=True)
        journal.drop_many(lib, [it.job_id for it in items])
        raise
    finally:
        for it in to_file:
            st.in_flight.discard(it.target)
    crash_point("filed")
    # roll back the files that could not be filed (their inbox copy was never touched)
    failed = [it for it in items if not it.made and (
        it.dup_of is None or (isinstance(it.dup_of, _Item) and not it.dup_of.made))]
    for it in failed:
        for t in it.data.get("tmps", []):
            Path(t).unlink(missing_ok=True)
        assert it.staged is not None
        shutil.rmtree(it.staged.parent, ignore_errors=True)
    _undo_dirs(created)  # only the ones left empty go
    journal.drop_many(lib, [it.job_id for it in failed])
    # the inbox copies: removed (if still the same inode), one fsync per inbox folder
    failed_ids = {id(it) for it in failed}
    done = [it for it in items if id(it) not in failed_ids]
    with clock("file: remove inbox copies"):
        dirs: set[Path] = set()
        for it in done:
            if journal.same_file(it.data.get("src"), it.data.get("src_dev"),
                                 it.data.get("src_ino")):
                os.unlink(it.data["src"])
                dirs.add(Path(it.data["src"]).parent)
        for d in sorted(dirs):
            fsync_dir(d)
    crash_point("removed")
    for it in done:
        if it.made:
            assert it.asset_id is not None
            it.result = IngestResult(it.asset_id, "ingested", _rel(it.folder, it.filename), it.name)
        else:
            d = it.dup_of
            folder, filename, aid = (d.folder, d.filename, d.asset_id if isinstance(d, _Item)
                                     else d.id)
            assert aid is not None
            it.result = IngestResult(aid, "duplicate", _rel(folder, filename), it.name)
    return [(it.src, it.result) for it in items if it.result is not None], done


def _disk_names(folder: Path) -> set[str]:
    """Name keys of a folder's entries (empty when it does not exist yet)."""
    try:
        return {name_key(fs_to_text(n)) for n in os.listdir(folder)}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _pick_name(lib: Library, folder: str, name: str, used: set[str], *,
               check_disk: bool = True) -> str:
    """The first free `name`, `name (2)`... among the folder's catalogued names and on disk.

    `check_disk=False` when `used` already holds the folder's listing (a batch lists each target
    folder once); a name taken on disk since then makes the link fail and `_link_target` retry.
    """
    dest_dir = lib.original_path(folder, "")
    n = 1
    while True:
        cand = with_suffix_number(name, n)
        if name_key(cand) not in used and not (
                check_disk and os.path.lexists(dest_dir / text_to_fs(cand))):
            used.add(name_key(cand))
            return cand
        n += 1


def _journal_target(it: _Item) -> None:
    assert it.target is not None
    it.data.update(target=os.fsdecode(it.target), folder=it.folder, filename=it.filename,
                   sha256=it.digest, copied=None,
                   tmps=[os.fsdecode(it.target.with_name(f".{it.target.name}.photovfs-tmp"))])


def _link_target(lib: Library, it: _Item) -> bool:
    """Link (or copy) the staged bytes to the journalled target; a name taken meanwhile (by another
    program) moves the target to the next free name, journalled before the link as always."""
    assert it.target is not None and it.staged is not None
    while True:
        try:
            return _link_or_copy(it.staged, it.target)
        except FileExistsError:
            it.filename = _pick_name(lib, it.folder, it.name, it.used)
            state(lib).in_flight.discard(it.target)
            it.target = lib.original_path(it.folder, "") / text_to_fs(it.filename)
            state(lib).in_flight.add(it.target)
            _journal_target(it)
            journal.update(lib, it.job_id, journal.FILING, **it.data)


def _catalog_many(lib: Library, s, items: list[_Item]) -> None:
    """Asset rows for filed items (adopting rows a concurrent scan created), stacks by content_id.

    The rows go in with `insert_originals` (one Core executemany, as the scanner does): the ORM's
    unit of work cost more per file than everything else the filer does.
    """
    from ..catalog.store import NewOriginal, insert_originals

    found = _rows_at(s, items)
    fresh = []
    for it in items:
        row = found.get((it.folder, it.filename))
        if row is not None and row.sha256 == it.digest:
            it.asset_id = row.id  # a rescan of the folder got there first: adopt its row
        else:
            fresh.append(it)
    rows = []
    for it in fresh:
        tst = os.stat(cast(Path, it.target))  # targets set by now
        rows.append(NewOriginal(it.folder, it.filename, it.digest, tst.st_size, tst.st_mtime_ns,
                                None, it.facts))
    insert_originals(s, rows)
    found = _rows_at(s, fresh)
    for it in fresh:
        it.asset_id = found[(it.folder, it.filename)].id
    for it in items:
        if it.facts.content_id:
            ids = list(s.scalars(select(Asset.id).where(Asset.content_id == it.facts.content_id,
                                                        Asset.id != it.asset_id)))
            if ids:
                assert it.asset_id is not None
                _stack(s, [it.asset_id, *ids])


def _rows_at(s, items: list[_Item]) -> dict[tuple[str, str], Any]:
    """(id, sha256) of the catalogued assets at the items' target paths, one query per folder."""
    by_folder: dict[str, list[str]] = {}
    for it in items:
        by_folder.setdefault(it.folder, []).append(it.filename)
    out: dict[tuple[str, str], Any] = {}
    for folder, names in by_folder.items():
        for i in range(0, len(names), 500):
            for row in s.execute(select(Asset.id, Asset.filename, Asset.sha256).where(
                    Asset.folder == folder, Asset.filename.in_(names[i:i + 500]))):
                out[(folder, row.filename)] = row
    return out
