"""Read queries shared by the views: built so that a listing never scans the catalog."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Asset, is_visible


def distinct_ints(session: Session, column: Any, *where: Any) -> list[int]:
    """DISTINCT values of an indexed column as a loose index scan: one index seek per value.

    `SELECT DISTINCT year FROM assets` would read every row (a million on a big library); this asks
    for MIN(column) greater than the last value found, which both SQLite and PostgreSQL answer
    from the (year, month, day) index.
    """
    values: list[int] = []
    last = None
    while True:
        q = select(func.min(column)).where(column.is_not(None), is_visible(Asset.status), *where)
        if last is not None:
            q = q.where(column > last)
        value = session.scalar(q)
        if value is None:
            return values
        values.append(value)
        last = value
