"""The scan's bulk insert hands SQLite prepared tuples: the rows must be the ORM's, byte for byte."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from photovfs.catalog.models import Asset
from photovfs.catalog.store import NewOriginal, insert_originals, new_assets
from photovfs.library import Library
from photovfs.metadata.facts import Facts
from sqlalchemy import text

FACTS = [
    Facts("image", "image/jpeg", taken_at=datetime(2021, 4, 30, 9, 42, 39, 120000),
          taken_source="exif:DateTimeOriginal", tz_offset_min=120, lat=45.4642, lon=9.19,
          alt=120.5, make="Canon", model="EOS", lens="50mm", width=640, height=480,
          orientation=6, content_id="ABC"),
    Facts("image", "image/jpeg", ok=False, error="truncated", taken_at=None),
    Facts("video", "video/mp4", taken_at=datetime(1999, 12, 31, 23, 59, 59), duration=3.25,
          taken_source="quicktime"),
    Facts("image", "image/heic", taken_at=datetime(2010, 1, 1), taken_source="filename"),
]


def _raw_rows(lib: Library) -> list[tuple]:
    """Every stored value as SQLite holds it (type and text), but the id and the insert time."""
    with lib.engine.connect() as conn:
        cols = [r[1] for r in conn.exec_driver_sql("PRAGMA table_info(assets)")
                if r[1] not in ("id", "added_at")]
        sql = ", ".join(f"typeof({c}), {c}" for c in cols)
        return [tuple(r) for r in conn.execute(text(f"SELECT {sql} FROM assets ORDER BY id"))]


def test_bulk_inserted_rows_are_stored_exactly_as_the_orm_stores_them(tmp_path: Path):
    libs = []
    for name in ("bulk", "orm"):
        (tmp_path / name).mkdir()
        libs.append(Library.open(tmp_path / name))
    bulk, orm = libs
    items = [(f"DCIM/{i}", f"IMG_{i}.JPG" if i % 2 else "IMG_1.JPG", f"{i:064x}", 1000 + i,
              10**18 + i, facts) for i, facts in enumerate(FACTS)]
    with bulk.write() as s:
        insert_originals(s, [NewOriginal(f, n, h, size, m, None, facts)
                             for f, n, h, size, m, facts in items])
    with orm.write() as s:
        new_assets(s, items)
    assert _raw_rows(bulk) == _raw_rows(orm)
    with bulk.session() as s:
        first = s.get(Asset, 1)
        assert first is not None and first.taken_at == FACTS[0].taken_at
        assert isinstance(first.added_at, datetime)
    for lib in libs:
        lib.close()
