"""`photovfs faces`: detect faces in every photo not yet scanned, then group them into people.

Resumable: an asset's faces and its FaceScan row are written in one transaction, so after a kill -9
the assets already done are skipped and none gets its faces twice. Workers (processes) only decode
and detect; the parent alone writes the catalog.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from ..catalog.models import STATUS_OK, Asset, AssetPerson
from .models import Face, FaceScan

if TYPE_CHECKING:
    from ..library import Library


@dataclass
class FaceReport:
    assets: int = 0  # assets scanned in this run
    skipped: int = 0  # already scanned before (resume)
    faces: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    groups: dict = field(default_factory=dict)


def pending(lib: Library) -> tuple[list[tuple[int, str, str, str]], int]:
    """(asset id, path, media type, sha256) of visible photos whose faces are unknown; and #done."""
    with lib.session() as s:
        rows = s.execute(
            select(Asset.id, Asset.folder, Asset.filename, Asset.media_type, Asset.sha256,
                   FaceScan.sha256)
            .outerjoin(FaceScan, FaceScan.asset_id == Asset.id)
            .where(Asset.status == STATUS_OK, Asset.media_type == "image")
            .order_by(Asset.id)).all()
    todo = [(r[0], str(lib.original_path(r[1], r[2])), r[3], r[4]) for r in rows if r[5] != r[4]]
    return todo, len(rows) - len(todo)


# ---- worker side ---------------------------------------------------------------------------------
_DETECTOR = None


def _init_worker() -> None:
    global _DETECTOR
    from .detect import Detector

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _DETECTOR = Detector()


def _detect(task: tuple[int, str, str, str, int]):
    asset_id, path, media_type, sha, max_pixels = task
    if _DETECTOR is None:
        _init_worker()
    assert _DETECTOR is not None
    try:
        faces = _DETECTOR.faces_in_file(Path(path), media_type, max_pixels=max_pixels)
        return asset_id, sha, [(f.x, f.y, f.w, f.h, f.score, f.descriptor) for f in faces], None
    except Exception as exc:  # BadMedia, TooLarge, NotFound: recorded, never fatal
        return asset_id, sha, [], getattr(exc, "reason", None) or str(exc) or type(exc).__name__


def _results(tasks: list, workers: int) -> Iterator:
    if workers <= 1:
        for t in tasks:
            yield _detect(t)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_init_worker) as pool:
        yield from pool.map(_detect, tasks, chunksize=1)


# ---- parent side ---------------------------------------------------------------------------------
def store_faces(lib: Library, asset_id: int, sha: str, faces: list, error: str | None) -> None:
    """Replace an asset's faces and mark it scanned, in one transaction."""
    with lib.write() as s:
        if s.get(Asset, asset_id) is None:
            return  # removed meanwhile
        s.execute(delete(Face).where(Face.asset_id == asset_id))
        s.execute(delete(AssetPerson).where(AssetPerson.asset_id == asset_id,
                                            AssetPerson.source == "face",
                                            AssetPerson.rejected.is_(False)))
        for x, y, w, h, score, desc in faces:
            s.add(Face(asset_id=asset_id, x=x, y=y, w=w, h=h, score=score, descriptor=desc))
        scan = s.get(FaceScan, asset_id)
        if scan is None:
            scan = FaceScan(asset_id=asset_id)
            s.add(scan)
        scan.sha256, scan.faces, scan.error, scan.scanned_at = sha, len(faces), error, datetime.now()


def run_faces(lib: Library, *, workers: int = 1, threshold: float | None = None,
              progress: Callable[[int], None] | None = None,
              on_total: Callable[[int], None] | None = None) -> FaceReport:
    from .group import DEFAULT_THRESHOLD, group

    start = time.monotonic()
    todo, done = pending(lib)
    if on_total is not None:
        on_total(len(todo))
    report = FaceReport(skipped=done)
    max_pixels = lib.config.thumbnails.max_megapixels * 1_000_000
    tasks = [(aid, path, mt, sha, max_pixels) for aid, path, mt, sha in todo]
    for asset_id, sha, faces, error in _results(tasks, workers):
        store_faces(lib, asset_id, sha, faces, error)
        report.assets += 1
        report.faces += len(faces)
        if error:
            report.errors.append(f"{asset_id}: {error}")
        if progress is not None:
            progress(1)
    report.groups = group(lib, threshold=threshold or DEFAULT_THRESHOLD)
    report.seconds = time.monotonic() - start
    return report
