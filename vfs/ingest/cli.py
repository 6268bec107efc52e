"""`photovfs ingest LIBRARY FILE|DIR...`: the inbox pipeline from the command line."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import PhotoVFSError
from ..metadata import media_kind
from ..names import is_side_file
from .pipeline import ingest_path


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            for dirpath, _dirs, files in os.walk(p):
                out += [Path(dirpath) / f for f in sorted(files)]
        else:
            out.append(p)
    return out


def run_ingest(lib, paths: list[Path], *, json_out: bool = False) -> int:
    """Copy each file in (the source is never changed) and report ingested/duplicates/failed."""
    from tqdm import tqdm

    summary: dict[str, list[str]] = {"ingested": [], "duplicate": [], "failed": [], "skipped": []}
    files = _files(paths)
    for f in tqdm(files, disable=not sys.stderr.isatty() or json_out, unit=" files"):
        if is_side_file(f.name) or media_kind(f.name) is None or f.stat().st_size == 0:
            summary["skipped"].append(str(f))
            continue
        tmp_dir = Path(tempfile.mkdtemp(dir=lib.config.state_dir / "tmp"))
        try:
            tmp = tmp_dir / f.name
            shutil.copy2(f, tmp)
            result = ingest_path(lib, tmp, f.name)
            summary[result.status].append(f"{f} -> {result.path}")
        except PhotoVFSError as exc:
            summary["failed"].append(f"{f}: {exc.reason}")
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    lib.close()
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        print(", ".join(f"{len(v)} {k}" for k, v in summary.items()))
        for line in summary["failed"]:
            print(f"  failed: {line}")
    return 1 if summary["failed"] else 0
