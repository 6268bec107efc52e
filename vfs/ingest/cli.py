"""`photovfs ingest LIBRARY [FILE|DIR...]` and `photovfs status LIBRARY`: the inbox from a terminal.

Files outside the inbox are first copied into it (under `inbox/import-YYYYmmdd-HHMMSS/`, through a
`.part` name so nothing half-copied is ever a candidate; the sources are never changed), then the
very same pipeline as for uploads runs on them. With no paths, the whole inbox is processed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path

from ..errors import NoSpace
from ..files import fsync_dir, fsync_file
from ..names import fs_to_text, is_side_file
from .media import is_sidecar, media_kind
from .pipeline import (
    FAILED_DIR,
    STAGING,
    IngestResult,
    _inside,
    _nospace,
    inbox_candidates,
    ingest_batch,
    skip_reason,
)


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            for dirpath, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d not in (FAILED_DIR, STAGING)
                                 and not d.startswith(".photovfs-"))
                out += [Path(dirpath) / f for f in sorted(files)]
        elif p.exists():
            out.append(p)
    return out


def _import(lib, files: list[Path], base: Path | None) -> list[Path]:
    """Copy outside files into a fresh inbox folder (durably, via `.part` names)."""
    dest_root = lib.config.inbox_dir / f"import-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    out = []
    for f in files:
        rel = f.name if base is None else os.path.relpath(f, base)
        dest = dest_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        try:
            shutil.copyfile(f, part)
            shutil.copystat(f, part)
            fsync_file(part)
            os.rename(part, dest)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise _nospace(exc) from exc
        out.append(dest)
    for d in {p.parent for p in out}:
        fsync_dir(d)
    return out


def run_ingest(lib, paths: list[Path], *, json_out: bool = False, workers: int = 2,
               watch: bool = False) -> int:
    """Ingest files (or the inbox) and print ingested / duplicates / failed / skipped."""
    from tqdm import tqdm

    summary: dict[str, list[str]] = {"ingested": [], "duplicate": [], "failed": [], "skipped": []}
    error: str | None = None
    try:
        inbox = lib.config.inbox_dir
        todo: list[Path] = []
        if not paths:
            todo = list(inbox_candidates(lib))
        for p in paths:
            p = p.resolve()
            found = _files([p])
            if _inside(p, inbox):
                todo += found
                continue
            wanted = [f for f in found if not is_side_file(f.name) and f.stat().st_size > 0
                      and (media_kind(f.name) is not None or is_sidecar(f.name))]
            summary["skipped"] += [f"{f}: not media, temporary or empty" for f in found
                                   if f not in set(wanted)]
            todo += _import(lib, wanted, p if p.is_dir() else None)
        stop = threading.Event()
        seen: set[Path] = set()
        lock = threading.Lock()
        bar = tqdm(total=len(todo), disable=not sys.stderr.isatty() or json_out, unit=" files")

        def report(p: Path, res) -> None:
            nonlocal error
            with lock:
                if p in seen:
                    return
                seen.add(p)
                bar.update(1)
                if isinstance(res, IngestResult):
                    key = "duplicate" if res.status == "duplicate" else "ingested"
                    summary[key].append(f"{fs_to_text(p.name)} -> {res.path}")
                else:
                    summary["failed"].append(f"{fs_to_text(p.name)}: {res.reason}")
                    if isinstance(res, NoSpace):
                        error = res.reason
                        stop.set()

        # batches: a pool verifies/hashes, one lock hold and one transaction per stage files them
        ingest_batch(lib, todo, quiet=0.0, workers=max(1, workers), stop=stop, report=report)
        for p in todo:
            if p not in seen and p.exists():
                reason = skip_reason(lib, p) or ("stopped" if stop.is_set() else "left")
                summary["skipped"].append(f"{fs_to_text(p.name)}: {reason}")
                bar.update(1)
        bar.close()
        for d in sorted({p.parent for p in todo}, key=lambda x: -len(str(x))):
            if d.name.startswith("import-") or (d != inbox and _inside(d, inbox)
                                                and any(a.name.startswith("import-")
                                                        for a in d.parents)):
                try:
                    d.rmdir()
                except OSError:
                    pass
        if watch and error is None:
            return _watch(lib, json_out)
    except NoSpace as exc:
        error = exc.reason
    finally:
        if not watch:
            lib.close()
    if json_out:
        print(json.dumps({**summary, "error": error}, indent=2))
    else:
        print(", ".join(f"{len(v)} {k if k != 'duplicate' else 'duplicates'}"
                        for k, v in summary.items()))
        for line in summary["failed"]:
            print(f"  failed: {line}")
    if error:
        print(f"photovfs: {error}", file=sys.stderr)
    return 1 if summary["failed"] or error else 0


def _watch(lib, json_out: bool) -> int:
    from ..watch import Watcher

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    w = Watcher(lib).start()
    print("watching the inbox; Ctrl-C to stop", file=sys.stderr)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    w.stop()
    lib.close()
    return 0


# ---- status ---------------------------------------------------------------------------------------
def inbox_status(lib) -> dict:
    """The inbox queue: pending, failed (with reasons), not media, waiting sidecars, recent."""
    from . import journal

    inbox = lib.config.inbox_dir
    out: dict = {"pending": [], "in_progress": [], "failed": [], "not_media": [], "sidecars": [],
                 "empty": [], "temporary": [], "recent": []}
    for dirpath, dirs, files in os.walk(inbox):
        here = Path(dirpath)
        if here == inbox:
            dirs[:] = [d for d in dirs if d not in (FAILED_DIR, STAGING)]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".photovfs-"))
        for f in sorted(files):
            p = here / f
            rel = fs_to_text(os.path.relpath(p, inbox))
            reason = skip_reason(lib, p)
            key = {None: "pending", "not media": "not_media", "sidecar": "sidecars",
                   "empty": "empty", "temporary name": "temporary"}.get(reason)
            if key:
                out[key].append(rel)
    failed = inbox / FAILED_DIR
    if failed.is_dir():
        for p in sorted(failed.iterdir()):
            if p.name.endswith(".txt") and p.with_name(p.name[:-4]).exists():
                continue
            note = p.with_name(p.name + ".txt")
            why = note.read_text("utf-8", "replace").splitlines()[0] if note.exists() else ""
            why = why.split(": ", 1)[-1] if why else "(no reason recorded)"
            out["failed"].append({"name": fs_to_text(p.name), "reason": why})
    for _id, state, data in journal.active(lib):
        out["in_progress"].append({"name": data.get("name"), "state": state})
    for state, data, when in journal.recent(lib):
        out["recent"].append({"name": data.get("name"), "result": state,
                              "path": "/".join(x for x in (data.get("folder"),
                                                          data.get("filename")) if x)
                              or data.get("failed"),
                              "at": when.strftime("%Y-%m-%d %H:%M:%S")})
    return out


def print_status(lib, json_out: bool = False, extra: dict | None = None) -> int:
    """The inbox queue and background work; `extra` adds sections to the JSON (backups)."""
    from ..background import background_status, print_background

    st = inbox_status(lib)
    try:
        bg = background_status(lib)  # renditions, faces, fixity, backup destinations
    except Exception as exc:  # noqa: BLE001 - the inbox part must still print
        bg = {"error": f"{type(exc).__name__}: {exc}"}
    lib.close()
    if json_out:
        print(json.dumps({**st, "background": bg, **(extra or {})}, indent=2, default=str))
        return 0
    print(f"inbox: {len(st['pending'])} pending, {len(st['in_progress'])} in progress, "
          f"{len(st['failed'])} failed, {len(st['not_media'])} not media")
    for name in st["pending"]:
        print(f"  pending      {name}")
    for j in st["in_progress"]:
        print(f"  in progress  {j['name']} ({j['state']})")
    for f in st["failed"]:
        print(f"  failed       {f['name']}: {f['reason']}")
    for name in st["not_media"]:
        print(f"  not media    {name}")
    for name in st["sidecars"]:
        print(f"  sidecar      {name} (waiting for its photo)")
    for name in st["empty"]:
        print(f"  empty        {name}")
    if st["recent"]:
        print("recent:")
        for r in st["recent"]:
            print(f"  {r['at']}  {r['result']:<9}  {r['name']} -> {r['path']}")
    if "error" in bg:
        print(f"background: status unavailable: {bg['error']}")
    else:
        print_background(bg)
    return 0
