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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from ..catalog.models import STATUS_TRASHED, Asset
from ..catalog.store import apply_facts, link_facts, new_asset
from ..errors import BadMedia, Conflict, NoSpace, PhotoVFSError, TooLarge
from ..files import fsync_dir, fsync_file
from ..hashing import sha256_file
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


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # the filing section, within this process
        self.paths: dict[str, threading.Lock] = {}
        self.paths_lock = threading.Lock()
        self.recent = Recent()
        self.in_flight: set[Path] = set()
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
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(lib.config.inbox_dir))
    except ValueError:
        return None
    return tuple(fs_to_text(p) for p in rel.parts)


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
        digest = sha256_file(staged)
        xmp = next((Path(d["staged"]) for d in sides if d["name"].lower().endswith(".xmp")), None)
        facts = extract(staged, xmp)
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
        partners = list(late[2]) if folder is not None else []
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
