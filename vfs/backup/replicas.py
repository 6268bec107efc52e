"""`photovfs check --replicas [--download N]`: is each destination's newest generation still a copy
of this library?

The manifest of a destination's newest finished generation is compared with the library's catalog
(missing, different, extra), the destination's `current/` listing with that manifest (a replica
deleted or truncated there since), and, with `--download N`, the real bytes of N files, fetched
from the destination (through rclone for remotes, so a crypt remote is decrypted) and re-hashed.
Nothing at the destination or in the library changes; the findings are kept in
STATE/replica-check.json for `photovfs status`.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from ..hashing import sha256_file
from ..names import fs_to_text
from .dest import open_dest

CHECK_FILE = "replica-check.json"


def generation_age_hours(gen: str | None) -> float | None:
    """Hours since a generation id (a UTC timestamp such as 20261123T115300.123456Z) was made."""
    if not gen:
        return None
    try:
        made = datetime.strptime(gen, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return round((datetime.now(UTC) - made).total_seconds() / 3600, 2)


def check_destination(url: str, catalog: dict[str, tuple[str, int]], download: int,
                      rng: random.Random) -> dict:
    """Findings for one destination: {"dest", "generation", "findings", "downloaded", ...}."""
    from .engine import done_generations, is_original, read_manifest

    out: dict = {"dest": url, "generation": None, "findings": [], "downloaded": 0,
                 "checked_at": datetime.now(UTC).isoformat()}

    def find(kind: str, path: str, detail: str) -> None:
        out["findings"].append({"kind": kind, "dest": url, "path": path, "detail": detail})

    try:
        dest = open_dest(url)
        out["dest"] = url = dest.url
        gens = dest.list_dirs("generations")
        done = done_generations(dest)
    except OSError as exc:
        find("REPLICA_UNREACHABLE", "", f"cannot list the destination: {exc}")
        return out
    if not done:
        find("NO_GENERATION", "generations/", "no finished generation at this destination")
        return out
    newest = done[-1]
    out["generation"], out["age_hours"] = newest, generation_age_hours(newest)
    for g in gens:
        if g > newest:
            find("UNFINISHED", f"generations/{g}", "a later generation has no DONE marker (an "
                 f"interrupted or failed backup); the newest finished one is {newest}")
    manifest = read_manifest(dest, newest)
    present = dest.list_files("current")
    for rel, e in sorted(manifest.items()):
        if present.get(rel) != e.size:
            what = "absent" if rel not in present else f"{present[rel]} bytes, not {e.size}"
            find("REPLICA_MISSING", fs_to_text(rel),
                 f"listed in generation {newest} but {what} at current/: run backup")
    for rel, (sha, _size) in sorted(catalog.items()):
        held = manifest.get(rel)
        if held is None:
            find("REPLICA_MISSING", fs_to_text(rel), f"catalogued, not in generation {newest} "
                 "(new since? run backup)")
        elif held.sha256 != sha:
            find("REPLICA_DIFFERS", fs_to_text(rel), f"generation {newest} holds other bytes "
                 f"(sha256 {held.sha256[:12]}, catalogued {sha[:12]}): edited since? run backup")
    for rel in sorted(r for r in manifest if is_original(r) and r not in catalog):
        find("REPLICA_EXTRA", fs_to_text(rel), f"in generation {newest}, not in the catalog "
             "(deleted since? the next backup moves it to versions/)")
    sample = [r for r in manifest if present.get(r) == manifest[r].size]
    out["downloaded"] = _download(dest, manifest, rng.sample(sample, min(download, len(sample))),
                                  find)
    return out


def _download(dest, manifest: dict, rels: list[str], find) -> int:
    """Fetch each file's real bytes from the destination and re-hash them; return how many."""
    with tempfile.TemporaryDirectory(prefix="photovfs-replica-") as td:
        local = Path(td) / "copy"
        for rel in rels:
            if not dest.get(f"current/{rel}", local):
                find("REPLICA_UNREADABLE", fs_to_text(rel), "listed, but could not be downloaded")
                continue
            got = sha256_file(local)
            local.unlink()
            if got != manifest[rel].sha256:
                find("REPLICA_CORRUPT", fs_to_text(rel), f"downloaded bytes hash to {got[:12]}, "
                     f"the manifest says {manifest[rel].sha256[:12]}: the replica is damaged "
                     "(the next backup copies it again)")
    return len(rels)


def check_replicas(cfg, catalog: dict[str, tuple[str, int]], *, download: int = 0,
                   dests: list[str] | None = None, record: bool = True) -> list[dict]:
    """check_destination for each destination the library knows (or `dests`); the results are
    recorded for `photovfs status` unless `record` is False."""
    from .engine import _load_json, _save_json, known_destinations

    rng = random.Random(time.time_ns())
    results = [check_destination(url, catalog, download, rng)
               for url in (dests or known_destinations(cfg))]
    if record and results:
        path = cfg.state_dir / CHECK_FILE
        data = _load_json(path, {})
        for r in results:
            data[r["dest"]] = {k: r.get(k) for k in ("checked_at", "generation", "downloaded")} | {
                "findings": r["findings"][:50], "findings_total": len(r["findings"])}
        _save_json(path, data)
    return results
