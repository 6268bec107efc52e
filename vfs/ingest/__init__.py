"""Inbox ingest: complete -> verify -> deduplicate -> file under the originals -> catalog."""

from .pipeline import IngestResult, ingest_path

__all__ = ["IngestResult", "ingest_path"]
