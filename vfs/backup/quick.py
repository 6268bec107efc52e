"""Proving cheaply that a backup run has nothing to do.

A backup decides what to copy from five inputs: the catalog (read from its snapshot), the
library's walk (size and mtime of every original, the sidecars, anything that cannot be backed
up), the size and mtime of the other files it keeps (sidecars, trash), the destination's listing
(name and size of every replica) and the previous generation's manifest; plus which sources are
due for a fixity re-read. After a complete run the engine records those inputs here, as they
stood when the run ended, in `STATE/backup-cache/<destination>.marshal`. The next run still
takes the snapshot and walks both trees (every original and every replica is stat()ed, as rsync
does), but when each input equals the recorded one -- the snapshot's sha256, the walks compared
as whole dicts, the manifest's bytes by sha256 -- the general comparison would copy, move and
re-read nothing and write the same manifest, so the run skips it: no catalog rows read, no
manifest parsed, no per-photo loop. Any difference, or a missing or damaged record, means the
general path runs, so the record can only make a run faster, never let it miss a change.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import sys
from pathlib import Path

VERSION = 1
CACHE_DIR = "backup-cache"


def cache_file(state_dir: Path, dest_url: str) -> Path:
    return state_dir / CACHE_DIR / (hashlib.sha256(dest_url.encode()).hexdigest()[:24] + ".marshal")


def load(state_dir: Path, dest_url: str) -> dict | None:
    """The record of the last complete run to dest_url, or None (none yet, damaged, another
    Python's marshal format, another destination)."""
    try:
        data = cache_file(state_dir, dest_url).read_bytes()
    except OSError:
        return None
    digest, body = data[:32], data[32:]
    if hashlib.sha256(body).digest() != digest:
        return None
    try:
        rec = marshal.loads(body)
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(rec, dict) or rec.get("v") != (VERSION, sys.version_info[:2]) \
            or rec.get("dest") != dest_url:
        return None
    return rec


def save(state_dir: Path, dest_url: str, rec: dict) -> None:
    """Write the record atomically (not fsynced: a lost record costs one slower run)."""
    rec = dict(rec, v=(VERSION, sys.version_info[:2]), dest=dest_url)
    body = marshal.dumps(rec)
    path = cache_file(state_dir, dest_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(hashlib.sha256(body).digest() + body)
    os.replace(tmp, path)


def drop(state_dir: Path, dest_url: str) -> None:
    cache_file(state_dir, dest_url).unlink(missing_ok=True)


def extras_unchanged(extras: dict[str, tuple[str, int, int]]) -> bool:
    """Every sidecar and trash file still has the recorded size and mtime (and is a file)."""
    for source, size, mtime_ns in extras.values():
        try:
            st = os.stat(source)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != size or st.st_mtime_ns != mtime_ns:
            return False
    return True


def nothing_due(labels: list[str], fixity: dict, now: float, days: float) -> bool:
    """No original is due for a fixity re-read (verified within `days` and found good)."""
    cutoff = now - days * 86400
    fresh = {k for k, v in fixity.items() if v.get("ok", True) and v.get("verified_at", 0.0) >= cutoff}
    return fresh.issuperset(labels)


def unchanged(rec: dict | None, *, prev_done: dict, snapshot_sha256: str | None,
              library_digest: str | None, problems: dict | None, stats: dict,
              sidecars: list[str], state_sidecars: list[str],
              present: dict, prev_raw: bytes | None, fixity: dict | None, now: float,
              days: float) -> bool:
    """True when every input of the run equals the record: then it has nothing to do. The
    library's walk is the same when find's listing has the recorded fingerprint (`problems` is
    then None: the listing was not read), or when its results are equal. `fixity` None: sources
    are not re-read in this run (--quick), so none can be due."""
    same_walk = (library_digest is not None and rec is not None
                 and rec.get("library_digest") == library_digest) or (
        problems is not None and not problems and rec is not None
        and rec["sidecars"] == sidecars and rec["stats"] == stats)
    return (rec is not None and snapshot_sha256 is not None and prev_raw is not None
            and prev_done.get("complete") is True
            and prev_done.get("catalog_sha256") == snapshot_sha256
            and rec["catalog_sha256"] == snapshot_sha256
            and same_walk and rec["state_sidecars"] == state_sidecars
            and rec["present"] == present
            and rec["manifest_sha256"] == hashlib.sha256(prev_raw).hexdigest()
            and extras_unchanged(rec["extras"])
            and (fixity is None or nothing_due(rec["labels"], fixity, now, days)))
