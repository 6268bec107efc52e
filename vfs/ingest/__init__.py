"""Inbox ingest: complete -> verify -> deduplicate -> file under the originals -> catalog.

`attach(lib)` (called by `Library.__init__`) replays the journal of an interrupted ingest and makes
arrivals announced by the core (`lib.inbox_arrived`: a finished PUT, the last close of a FUSE
handle, a rename from a temporary name) ingest synchronously in the caller's thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..library import Library
    from ..roles import Actor
    from .journal import recover
    from .pipeline import IngestResult, ingest_batch, ingest_inbox_file, ingest_path

_LAZY = {"recover": "journal", "IngestResult": "pipeline", "ingest_batch": "pipeline",
         "ingest_inbox_file": "pipeline", "ingest_path": "pipeline"}


def __getattr__(name: str) -> object:
    """Imported on first use: an ingest worker process (workers.py) needs none of the catalog."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

log = logging.getLogger("photovfs.ingest")


def on_arrival(lib: Library, path: Path, actor: Actor | None = None) -> None:
    """The `lib.on_inbox` hook: ingest now; never fail the write that delivered the bytes.

    The bytes are already durable in the inbox when this runs. Whatever happens here (damaged file,
    disk full) is recorded (inbox/_failed/, `photovfs status`) and the upload itself succeeds.
    """
    from .pipeline import IngestResult, ingest_inbox_file

    try:
        for p, res in ingest_inbox_file(lib, Path(path)):
            if not isinstance(res, IngestResult):
                log.warning("inbox: %s: %s", p.name, getattr(res, "reason", res))
    except Exception:  # noqa: BLE001 - the file stays in the inbox; the watcher retries it
        log.exception("inbox: ingest of %s failed", path)


def attach(lib: Library) -> None:
    """Recover an interrupted ingest, then ingest every inbox arrival the core announces."""
    from .journal import recover

    try:
        counts = recover(lib)
        if counts:
            log.info("inbox: recovered interrupted ingest jobs %s", counts)
    except Exception:  # noqa: BLE001 - a read-only catalog must still open
        log.exception("inbox: journal recovery failed")
    lib.on_inbox = lambda path, actor: on_arrival(lib, path, actor)


__all__ = ["IngestResult", "attach", "ingest_batch", "ingest_inbox_file", "ingest_path", "on_arrival", "recover"]
