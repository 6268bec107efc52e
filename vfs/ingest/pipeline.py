"""The ingest stages for one complete file. Each stage is a small function, testable alone."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..catalog.models import STATUS_TRASHED, Asset
from ..catalog.store import new_asset
from ..errors import BadMedia
from ..files import durable_move, free_name
from ..hashing import sha256_file
from ..metadata import extract, verify
from ..names import check_name, fs_to_text

if TYPE_CHECKING:
    from ..library import Library


@dataclass
class IngestResult:
    asset_id: int
    status: str  # "ingested" | "duplicate"
    path: str  # the original's path relative to the library


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
                                            Asset.status != STATUS_TRASHED))


def ingest_path(lib: Library, src: Path, name: str) -> IngestResult:
    """Ingest one complete file (consumed on success; left in place on failure)."""
    name = check_name(name)
    if src.stat().st_size == 0:
        raise BadMedia("empty file")
    stage_dir = Path(tempfile.mkdtemp(dir=lib.config.state_dir / "tmp", prefix="ingest-"))
    try:
        staged = stage_dir / name
        shutil.copyfile(src, staged) if src.stat().st_nlink > 1 else src.rename(staged)
        try:
            verify(staged)
            digest = sha256_file(staged)
            dup = find_duplicate(lib, digest)
            if dup is not None:
                staged.unlink()
                return IngestResult(dup.id, "duplicate", f"{dup.folder}/{dup.filename}")
            facts = extract(staged)
            folder = target_folder(lib.config.ingest.template, facts.taken_at, name)
            dest_dir = lib.original_path(folder, "")
            dest_dir.mkdir(parents=True, exist_ok=True)
            target = free_name(dest_dir, name)
            durable_move(staged, target)
            st = target.stat()
            with lib.write() as s:
                asset = new_asset(s, folder, fs_to_text(target.name), digest, st.st_size,
                                  st.st_mtime_ns, facts)
                asset_id = asset.id
            return IngestResult(asset_id, "ingested", f"{folder}/{target.name}")
        except BaseException:
            if staged.exists() and not src.exists():
                staged.rename(src)  # failure: the upload goes back where it was
            raise
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
