"""by-place/COUNTRY/REGION/CITY/: assets with a valid GPS position, reverse-geocoded offline."""

from __future__ import annotations

from sqlalchemy import exists, select

from ..catalog.models import Asset, Place, is_visible
from ..errors import NotFound
from ..node import Node
from .base import PhotoRows, View, visible_assets

LEVELS = (Place.country, Place.region, Place.city)


class ByPlace(View):
    name = "by-place"
    readonly_reason = "by-place is computed from GPS positions"

    def _children(self, rest: tuple[str, ...]) -> list[str]:
        col = LEVELS[len(rest)]
        used = exists().where(Asset.place_id == Place.id, is_visible(Asset.status))
        q = select(col).distinct().where(used, *[c == v for c, v in zip(LEVELS, rest, strict=False)])
        with self.lib.session() as s:
            return sorted(s.scalars(q))

    def _place_ids(self, rest: tuple[str, ...]) -> list[int]:
        q = select(Place.id).where(*[c == v for c, v in zip(LEVELS, rest, strict=True)])
        with self.lib.session() as s:
            return list(s.scalars(q))

    def resolve(self, rest: tuple[str, ...]) -> Node:
        if len(rest) <= 3:
            if rest and rest[-1] not in self._children(rest[:-1]):
                raise NotFound()
            return self.folder(*rest)
        if len(rest) == 4:
            ids = self._place_ids(rest[:3])
            return self.asset_by_vname(visible_assets().where(Asset.place_id.in_(ids)), rest[3],
                                       *rest[:3])
        raise NotFound()

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        self.resolve(rest)
        if len(rest) == 3:
            ids = self._place_ids(rest)
            return self.assets(visible_assets().where(Asset.place_id.in_(ids)), *rest)
        return [self.folder(*rest, name) for name in self._children(rest)]

    def photo_rows(self, rest: tuple[str, ...]) -> PhotoRows | None:
        """A city's photos as rows (see View.photo_rows): a PROPFIND of a city of thousands of
        photos renders them without a Node each, as a day folder does."""
        if len(rest) != 3:
            return None
        self.resolve(rest)
        ids = self._place_ids(rest)
        return self.rows(visible_assets().where(Asset.place_id.in_(ids))), []

    def remove(self, rest, node, actor) -> None:
        if node.is_dir:
            super().remove(rest, node, actor)
        self.lib.trash_asset(node.asset_id, actor)
