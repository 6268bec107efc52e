"""by-date/YYYY/MM/DD/: every visible asset once, in the folder of its capture date."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from ..catalog.models import Asset, is_visible
from ..catalog.queries import distinct_ints
from ..errors import NotFound
from ..names import name_key
from ..node import Node
from .base import PHOTO_ROW_COLUMNS, PhotoRows, View, prepared_rows, visible_assets

WIDTHS = (4, 2, 2)
COLUMNS = (Asset.year, Asset.month, Asset.day)

#: one photo by day and name, built once: building the statement per call cost 5x its execution,
#: and a GET resolves one of these per request
_ONE = visible_assets().where(*(c == bindparam(c.key) for c in COLUMNS),
                              Asset.vname_key == bindparam("vname_key"))
#: a day folder's photos, and an existence probe per depth (year, month, day): prepared once, as
#: every PROPFIND and FUSE lookup of a folder runs them
_DAY = visible_assets().where(*(c == bindparam(c.key) for c in COLUMNS)).order_by(Asset.vname)
#: the same photos as bare rows for a listing rendered without nodes (photo_rows)
_DAY_ROWS = _DAY.with_only_columns(*PHOTO_ROW_COLUMNS)
_PROBES = tuple(select(Asset.id).where(is_visible(Asset.status),
                                       *(c == bindparam(c.key) for c in COLUMNS[:depth]))
                .limit(1) for depth in (1, 2, 3))


def _parse(rest: tuple[str, ...]) -> tuple[int, ...]:
    values = []
    for part, width in zip(rest, WIDTHS, strict=False):
        if len(part) != width or not part.isdigit():
            raise NotFound()
        values.append(int(part))
    return tuple(values)


class ByDate(View):
    name = "by-date"
    readonly_reason = "by-date is computed from capture dates"

    def _where(self, values: tuple[int, ...]) -> list:
        return [col == v for col, v in zip(COLUMNS, values, strict=False)]

    def resolve(self, rest: tuple[str, ...]) -> Node:
        if len(rest) <= 3:
            values = _parse(rest)
            if values:  # one indexed existence probe, not a walk over sibling folders
                params = {c.key: v for c, v in zip(COLUMNS, values, strict=False)}
                if not prepared_rows(self.lib, _PROBES[len(values) - 1], params):
                    raise NotFound()
            return self.folder(*rest)
        if len(rest) == 4:
            year, month, day = _parse(rest[:3])
            with self.lib.engine.connect() as c:  # no ORM Session: a third of a GET's time
                row = c.execute(_ONE, {"year": year, "month": month, "day": day,
                                       "vname_key": name_key(rest[3])}).first()
            if row is None:
                raise NotFound()
            return self.asset_node(row, *rest[:3])
        raise NotFound()

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        values = _parse(rest)
        if len(values) == 3:
            nodes = self.assets(_DAY, *rest, params=dict(zip(("year", "month", "day"), values,
                                                             strict=True)))
            if not nodes:
                raise NotFound()
            return nodes
        self.resolve(rest)
        with self.lib.session() as s:
            found = distinct_ints(s, COLUMNS[len(values)], *self._where(values))
        width = WIDTHS[len(values)]
        return [self.folder(*rest, f"{v:0{width}d}") for v in found]

    def photo_rows(self, rest: tuple[str, ...]) -> PhotoRows | None:
        """A day folder's photos as rows (see View.photo_rows); other folders list nodes."""
        if len(rest) != 3:
            return None
        params = dict(zip(("year", "month", "day"), _parse(rest), strict=True))
        rows = prepared_rows(self.lib, _DAY_ROWS, params)
        if not rows:
            raise NotFound()
        return rows, []

    def remove(self, rest, node, actor) -> None:
        if node.is_dir:
            super().remove(rest, node, actor)
        self.lib.trash_asset(node.asset_id, actor)
