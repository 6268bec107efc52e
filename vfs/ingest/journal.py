"""The ingest journal: one row per file in the `jobs` table, so a crash at any instant is repaired.

States of a job (kind "ingest"), in order; the file is safe in every one of them:

    claimed    the inbox file is hard-linked into the staging folder (inbox/.photovfs-ingest/ID/);
               the inbox copy is untouched                      -> recover: drop staging, job
    filing     a target name under the originals is chosen and the bytes are being linked/copied
               there; not catalogued yet                         -> recover: remove that target
    filed      catalogued (same transaction as the asset row); the inbox copy may still exist
                                                                 -> recover: remove the inbox copy
    dup        a byte-identical original exists; the inbox copy is being removed
                                                                 -> recover: remove the inbox copy
    done | duplicate | failed   terminal; kept a week as the "recent ingests" record

A job belongs to the process that wrote it (pid + process start time in the payload): recovery
never touches the jobs of a live process, so `photovfs ingest` and a running server can share an
inbox.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy import update as sa_update

from ..catalog.models import Asset, Job
from ..files import fsync_dir

if TYPE_CHECKING:
    from ..library import Library

KIND = "ingest"
CLAIMED, FILING, FILED, DUP = "claimed", "filing", "filed", "dup"
DONE, DUPLICATE, FAILED = "done", "duplicate", "failed"
ACTIVE = (CLAIMED, FILING, FILED, DUP)
TERMINAL = (DONE, DUPLICATE, FAILED)
KEEP_DAYS = 7


def _proc_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data.rsplit(b")", 1)[-1].split()[19].decode()


OWNER = {"pid": os.getpid(), "pstart": _proc_start(os.getpid())}


def _refresh_owner() -> None:
    """After fork the owner changes (tests run pipelines in subprocesses)."""
    if OWNER["pid"] != os.getpid():
        OWNER.update(pid=os.getpid(), pstart=_proc_start(os.getpid()))


def owner_alive(payload: dict[str, Any]) -> bool:
    pid = payload.get("pid")
    if not pid:
        return False
    if pid == os.getpid():
        return payload.get("pstart") == OWNER["pstart"]
    start = _proc_start(pid)
    return start is not None and start == payload.get("pstart")


def create(lib: Library, payload: dict[str, Any]) -> int:
    _refresh_owner()
    now = datetime.now()
    with lib.write() as s:
        job = Job(kind=KIND, state=CLAIMED, payload=json.dumps({**payload, **OWNER}),
                  created_at=now, updated_at=now)
        s.add(job)
        s.flush()
        return job.id


def update(lib: Library, job_id: int, state: str, s=None, **changes: Any) -> dict[str, Any]:
    """Move a job to `state`, merging `changes` into its payload (inside `s` when given)."""
    if s is None:
        with lib.write() as s2:
            return update(lib, job_id, state, s2, **changes)
    job = s.get(Job, job_id)
    data = json.loads(job.payload)
    data.update(changes)
    job.state, job.payload, job.updated_at = state, json.dumps(data), datetime.now()
    return data


def create_many(s, payloads: list[dict[str, Any]],
                make: Any = None) -> list[tuple[int, dict[str, Any]]]:
    """Batch claim: one `claimed` row per payload inside the caller's transaction `s`.

    `make(job_id, payload)` may add fields that depend on the id (the staging path) before the
    payload is stored; all rows commit together (or not at all) with `s`. Core statements, no ORM
    unit of work: a chunk's claim is one multi-row INSERT ... RETURNING and one executemany.
    """
    _refresh_owner()
    if not payloads:
        return []
    now = datetime.now()
    table = _JOBS
    ids = list(s.connection().execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True),
        [{"kind": KIND, "state": CLAIMED, "payload": "{}", "created_at": now, "updated_at": now}
         for _ in payloads]).scalars())
    out = []
    rows = []
    for job_id, payload in zip(ids, payloads, strict=True):
        data = {**payload, **OWNER}
        if make is not None:
            data.update(make(job_id, data))
        out.append((job_id, data))
        rows.append({"_id": job_id, "payload": json.dumps(data)})
    s.connection().execute(_BY_ID.values(payload=bindparam("payload")), rows)
    return out


_JOBS = cast(Table, Job.__table__)
_BY_ID = sa_update(_JOBS).where(_JOBS.c.id == bindparam("_id"))


def update_many(s, jobs: list[tuple[int, str, dict[str, Any]]]) -> None:
    """Batch transition inside `s`: (id, state, full payload) per job, one Core executemany."""
    if not jobs:
        return
    now = datetime.now()
    s.connection().execute(_BY_ID.values(state=bindparam("state"), payload=bindparam("payload"),
                            updated_at=bindparam("updated_at")),
              [{"_id": i, "state": st, "payload": json.dumps(d), "updated_at": now}
               for i, st, d in jobs])


def drop_many(lib: Library, job_ids: list[int]) -> None:
    if not job_ids:
        return
    with lib.write() as s:
        for i in range(0, len(job_ids), 500):
            s.execute(delete(Job).where(Job.id.in_(job_ids[i:i + 500])))


def drop(lib: Library, job_id: int) -> None:
    with lib.write() as s:
        s.execute(delete(Job).where(Job.id == job_id))


def same_file(path: Path | str | None, dev: int | None, ino: int | None) -> bool:
    if path is None or ino is None:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_ino == ino and st.st_dev == dev


def unlink_if_same(path: Path | str | None, dev: int | None, ino: int | None) -> bool:
    """Remove `path` only if it is still the very file (inode) that was ingested."""
    if path is not None and same_file(path, dev, ino):
        os.unlink(path)
        fsync_dir(Path(path).parent)
        return True
    return False


def recover(lib: Library) -> dict[str, int]:
    """Repair what a crash left half-done; returns counts by the state the jobs were found in."""
    from .pipeline import staging_roots

    counts: dict[str, int] = {}
    with lib.session() as s:
        jobs = [(j.id, j.state, json.loads(j.payload)) for j in s.scalars(
            select(Job).where(Job.kind == KIND, Job.state.in_(ACTIVE)))]
    live: set[int] = set()
    for job_id, state, data in jobs:
        if owner_alive(data):
            live.add(job_id)
            continue
        counts[state] = counts.get(state, 0) + 1
        _recover_one(lib, job_id, state, data)
    for root in staging_roots(lib):
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if entry.is_dir() and entry.name.isdigit() and int(entry.name) not in live:
                with lib.session() as s:
                    job = s.get(Job, int(entry.name))
                if job is None or job.state not in ACTIVE:
                    shutil.rmtree(entry, ignore_errors=True)
    cutoff = datetime.now() - timedelta(days=KEEP_DAYS)
    with lib.write() as s:
        s.execute(delete(Job).where(Job.kind == KIND, Job.state.in_(TERMINAL),
                                    Job.updated_at < cutoff))
    return counts


def _recover_one(lib: Library, job_id: int, state: str, data: dict[str, Any]) -> None:
    staged = data.get("staged")
    if state == FILING:
        target = data.get("target")
        catalogued = False
        if target:
            with lib.session() as s:
                row = s.scalar(select(Asset).where(Asset.folder == data["folder"],
                                                   Asset.filename == data["filename"]))
            catalogued = row is not None and row.sha256 == data.get("sha256")
            if catalogued:  # a scan catalogued the linked file first: it is filed
                assert row is not None
                update(lib, job_id, FILED, asset_id=row.id)
                _finish_filed(lib, job_id, data, DONE)
                return
            _remove_target(Path(target), data)
            for side in data.get("sidecars", []):
                if side.get("target"):
                    _remove_target(Path(side["target"]), side)
        for tmp in data.get("tmps", []):
            Path(tmp).unlink(missing_ok=True)
    if state in (FILED, DUP):
        _finish_filed(lib, job_id, data, DONE if state == FILED else DUPLICATE)
        return
    if staged:
        shutil.rmtree(Path(staged).parent, ignore_errors=True)
    drop(lib, job_id)


def _remove_target(target: Path, data: dict[str, Any]) -> None:
    """Remove a target this job created but never catalogued (same inode, or same bytes if copied)."""
    if not target.exists():
        return
    if same_file(target, data.get("staged_dev"), data.get("staged_ino")):
        target.unlink()
    elif data.get("sha256"):
        from ..hashing import sha256_file

        if sha256_file(target) == data["sha256"]:
            target.unlink()
    else:
        return
    fsync_dir(target.parent)


def _finish_filed(lib: Library, job_id: int, data: dict[str, Any], final: str) -> None:
    """The photo is catalogued (or a twin is): remove the inbox copy if it is still ours."""
    if data.get("consume", True):
        unlink_if_same(data.get("src"), data.get("src_dev"), data.get("src_ino"))
        for side in data.get("sidecars", []):
            if side.get("target") and final == DONE:
                unlink_if_same(side.get("src"), side.get("src_dev"), side.get("src_ino"))
    from .pipeline import crash_point

    crash_point("removed")
    staged = data.get("staged")
    if staged:
        shutil.rmtree(Path(staged).parent, ignore_errors=True)
    update(lib, job_id, final)


def recent(lib: Library, limit: int = 20) -> list[tuple[str, dict[str, Any], datetime]]:
    with lib.session() as s:
        rows = s.execute(select(Job.state, Job.payload, Job.updated_at).where(
            Job.kind == KIND, Job.state.in_(TERMINAL)).order_by(Job.id.desc()).limit(limit)).all()
    return [(r.state, json.loads(r.payload), r.updated_at) for r in rows]


def active(lib: Library) -> list[tuple[int, str, dict[str, Any]]]:
    with lib.session() as s:
        return [(j.id, j.state, json.loads(j.payload)) for j in s.scalars(
            select(Job).where(Job.kind == KIND, Job.state.in_(ACTIVE)))]
