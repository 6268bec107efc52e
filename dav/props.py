"""Dead WebDAV properties in the catalog (`dav_properties`), keyed by virtual path.

A wsgidav property manager: same interface as `wsgidav.prop_man.property_manager.PropertyManager`,
but rows in the library's database, so properties survive restarts and follow MOVE and DELETE.
"""

from __future__ import annotations

from urllib.parse import unquote

from photovfs.catalog.models import DeadProperty
from sqlalchemy import and_, bindparam, delete, or_, select


def _key(ref_url: str) -> str:
    """'/by-album/Trip%20A/' -> 'by-album/Trip A' (the core's virtual path, NFC)."""
    import unicodedata

    return unicodedata.normalize("NFC", unquote(ref_url)).strip("/")


def _under(key: str):
    """Rows for `key` and everything below it."""
    if not key:
        return DeadProperty.path.is_not(None)
    like = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
    return or_(DeadProperty.path == key, DeadProperty.path.like(like, escape="\\"))


#: any row at or below one of three paths (see any_under); prepared once, a COPY runs it each time
_ANY_UNDER_3 = select(DeadProperty.path).where(or_(*(
    or_(DeadProperty.path == bindparam(f"k{i}"),
        and_(DeadProperty.path >= bindparam(f"lo{i}"), DeadProperty.path < bindparam(f"hi{i}")))
    for i in range(3)))).limit(1)


#: the same question in SQLite's SQL, for the plain connection of `any_under`
_ANY_UNDER_3_SQL = "SELECT path FROM dav_properties WHERE " + " OR ".join(
    f"path = :k{i} OR (path >= :lo{i} AND path < :hi{i})" for i in range(3)) + " LIMIT 1"


class CatalogPropertyManager:
    def __init__(self, lib) -> None:
        self.lib = lib

    def __repr__(self) -> str:
        return "CatalogPropertyManager(dav_properties)"

    # ---- reads -------------------------------------------------------------------------------
    def get_properties(self, norm_url, environ=None) -> list[str]:
        with self.lib.session() as s:
            return list(s.scalars(select(DeadProperty.name).where(
                DeadProperty.path == _key(norm_url)).order_by(DeadProperty.name)))

    def get_property(self, norm_url, name, environ=None) -> str | None:
        with self.lib.session() as s:
            return s.scalar(select(DeadProperty.value).where(
                DeadProperty.path == _key(norm_url), DeadProperty.name == name))

    def paths_with_properties(self, folder_url: str) -> set[str]:
        """Virtual paths directly in or at `folder_url` that have dead properties (fast PROPFIND)."""
        key = _key(folder_url)
        with self.lib.session() as s:
            return set(s.scalars(select(DeadProperty.path).distinct().where(_under(key))))

    def any_under(self, keys: list[str]) -> bool:
        """Whether any of these (at most 3) virtual paths, or a path below one, has dead
        properties: one read that lets a COPY or MOVE skip the write transactions that would move
        none. On SQLite a prepared statement of index ranges (it compares bytes: '0' follows '/');
        other databases may collate by locale, so they get the LIKE form."""
        keys = (list(keys) * 3)[:3]
        params = {}
        for i, k in enumerate(keys):
            params.update({f"k{i}": k, f"lo{i}": k + "/", f"hi{i}": k + "0"})
        if self.lib.probe.available:  # a plain connection: SQLAlchemy's execute costs 10x the query
            return self.lib.probe.first(_ANY_UNDER_3_SQL, params) is not None
        with self.lib.engine.connect() as c:
            if c.dialect.name == "sqlite":
                return c.execute(_ANY_UNDER_3, params).first() is not None
            return c.execute(select(DeadProperty.path).where(or_(*(_under(k) for k in keys)))
                             .limit(1)).first() is not None

    # ---- writes ------------------------------------------------------------------------------
    def write_property(self, norm_url, name, property_value, dry_run=False, environ=None):
        if dry_run:
            return
        if isinstance(property_value, bytes):
            property_value = property_value.decode("utf-8")
        key = _key(norm_url)
        with self.lib.write() as s:
            row = s.scalar(select(DeadProperty).where(DeadProperty.path == key,
                                                      DeadProperty.name == name))
            if row is None:
                s.add(DeadProperty(path=key, name=name, value=property_value))
            else:
                row.value = property_value

    def remove_property(self, norm_url, name, dry_run=False, environ=None):
        if dry_run:
            return
        with self.lib.write() as s:
            s.execute(delete(DeadProperty).where(DeadProperty.path == _key(norm_url),
                                                 DeadProperty.name == name))

    def remove_properties(self, norm_url, environ=None, *, with_children: bool = False):
        key = _key(norm_url)
        with self.lib.write() as s:
            s.execute(delete(DeadProperty).where(
                _under(key) if with_children else DeadProperty.path == key))

    def copy_properties(self, src_url, dest_url, environ=None):
        src, dst = _key(src_url), _key(dest_url)
        if src == dst:
            return
        with self.lib.write() as s:
            rows = s.execute(select(DeadProperty.name, DeadProperty.value).where(
                DeadProperty.path == src)).all()
            s.execute(delete(DeadProperty).where(DeadProperty.path == dst))
            for name, value in rows:
                s.add(DeadProperty(path=dst, name=name, value=value))

    def move_properties(self, src_url, dest_url, with_children, environ=None):
        src, dst = _key(src_url), _key(dest_url)
        if src == dst:
            return
        with self.lib.write() as s:
            rows = s.scalars(select(DeadProperty).where(
                _under(src) if with_children else DeadProperty.path == src)).all()
            s.execute(delete(DeadProperty).where(_under(dst)))
            for row in rows:
                row.path = dst + row.path[len(src):]
