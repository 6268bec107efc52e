"""The small set of verbs every root folder answers; each view says what a verb means there.

A view gets the path components below its root folder (`rest`) and builds nodes whose `path` is the
full virtual path. Writes default to ReadOnly with a short reason, so a computed view refuses what it
does not give a meaning to, and WebDAV and FUSE refuse it identically.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select

from ..catalog.models import Asset, is_visible
from ..errors import NotFound, ReadOnly
from ..names import join, text_to_fs
from ..node import Node
from ..roles import Actor

if TYPE_CHECKING:
    from ..library import Library

ASSET_COLUMNS = (Asset.id, Asset.vname, Asset.folder, Asset.filename, Asset.size, Asset.mtime_ns,
                 Asset.mime, Asset.sha256)
#: what a listing rendered without nodes needs of each photo (View.photo_rows): name, size,
#: mtime_ns, mime type and etag (the nodes' etag: the first 32 hex digits of the sha256)
PHOTO_ROW_COLUMNS = (Asset.vname, Asset.size, Asset.mtime_ns, Asset.mime,
                     func.substr(Asset.sha256, 1, 32))
#: a folder's photos as rows of PHOTO_ROW_COLUMNS, and its other members as nodes
PhotoRows = tuple[Sequence[Any], list[Node]]


class View:
    """A root folder family (by-date, by-album, ...)."""

    name = ""
    readonly_reason = "this folder is computed from the catalog"

    def __init__(self, lib: Library) -> None:
        self.lib = lib

    # ---- reads -------------------------------------------------------------------------------
    def resolve(self, rest: tuple[str, ...]) -> Node:
        raise NotFound()

    def list(self, rest: tuple[str, ...]) -> list[Node]:
        raise NotFound()

    def photo_rows(self, rest: tuple[str, ...]) -> PhotoRows | None:
        """The folder's photos as bare rows (PHOTO_ROW_COLUMNS, ordered by name) and its other
        members as nodes, or None where the view lists only nodes (`list`). For an adapter that
        renders a big folder without building a Node per photo (a PROPFIND of 10,000 photos:
        the nodes cost more than the query). The same members as `list`, and NotFound alike."""
        return None

    # ---- writes (refused unless a view gives them a meaning) --------------------------------
    def accept(self, rest: tuple[str, ...], tmp: Path, actor: Actor) -> Node:
        """A complete file arrives at `rest` (PUT, FUSE close, rename of a temporary over it)."""
        node = self._existing(rest)
        if node is not None and node.asset_id is not None:
            return self.lib.edit(node.asset_id, tmp, actor)
        raise ReadOnly(f"{self.name}: {self.readonly_reason}; upload into inbox/ instead")

    def mkdir(self, rest: tuple[str, ...], actor: Actor) -> Node:
        raise ReadOnly(f"{self.name}: {self.readonly_reason}")

    def remove(self, rest: tuple[str, ...], node: Node, actor: Actor) -> None:
        """DELETE / unlink of a file, or DELETE / rm -r of a folder."""
        raise ReadOnly(f"{self.name}: {self.readonly_reason}")

    def add(self, rest: tuple[str, ...], src: Node, actor: Actor) -> Node:
        """COPY/MOVE/link of an existing asset to `rest` (by reference)."""
        raise ReadOnly(f"{self.name}: {self.readonly_reason}")

    def rename(self, rest: tuple[str, ...], dst: tuple[str, ...], node: Node,
               actor: Actor) -> Node:
        """MOVE / rename within this view."""
        raise ReadOnly(f"{self.name}: {self.readonly_reason}")

    # ---- helpers -----------------------------------------------------------------------------
    def _existing(self, rest: tuple[str, ...]) -> Node | None:
        try:
            return self.resolve(rest)
        except NotFound:
            return None

    def vpath(self, *parts: str) -> str:
        return join((self.name, *parts))

    def folder(self, *parts: str, mtime: float = 0.0, writable: bool = False) -> Node:
        return Node(path=self.vpath(*parts), name=parts[-1] if parts else self.name, is_dir=True,
                    mtime=mtime, writable=writable)

    def asset_node(self, row, *parts: str, name: str | None = None) -> Node:
        """A node for an asset row selected with ASSET_COLUMNS."""
        name = name or row.vname
        return Node(
            path=self.vpath(*parts, name), name=name, is_dir=False, kind="asset",
            size=row.size, mtime=row.mtime_ns / 1e9, content_type=row.mime,
            etag=f"{row.sha256[:32]}", asset_id=row.id,
            source=self.lib.original_path_str(row.folder, row.filename), writable=True,
        )

    def assets(self, query: Select, *parts: str, real_names: bool = False,
               params: dict | None = None) -> builtins.list[Node]:
        """Nodes for every asset the query selects, named by virtual name (or the real file name
        in `originals/`). The hot path of every listing: one query, then one Node per row built
        with local names only (no per-row path joins or method calls). With `params` the query
        is a prepared statement with bind parameters, already ordered (built once per process:
        building and hashing a statement costs more than running it on a day folder)."""
        if params is None:
            query = query.order_by(Asset.filename if real_names else Asset.vname)
        with self.lib.engine.connect() as c:  # Core rows: no ORM Session on hot listings
            driver = _driver_sql(query, c.dialect) if params is not None else None
            raw = c.connection.driver_connection
            if driver is not None and params is not None and raw is not None:
                sql, names, fixed = driver
                values = tuple(params[n] if n in params else fixed[n] for n in names)
                rows = raw.execute(sql, values).fetchall()
            else:
                rows = c.execute(query, params or {}).all()
        prefix = self.vpath(*parts) + "/"
        root = self.lib.original_path_str("", "")
        out = []
        # rows unpacked by position (ASSET_COLUMNS first): a Row's attribute access costs ~0.5 us
        # each, 8 per photo, which was two thirds of listing 10,000 photos
        for id_, vname, folder, filename, size, mtime_ns, mime, sha256, *_ in rows:
            name = filename if real_names else vname
            rel = f"{folder}/{filename}" if folder else filename
            out.append(Node(prefix + name, name, False, "asset", size, mtime_ns / 1e9,
                            mime, sha256[:32], id_, f"{root}/{text_to_fs(rel)}", True))
        return out

    def rows(self, query: Select, real_names: bool = False) -> Sequence[Any]:
        """What `assets` lists for `query`, as bare rows of PHOTO_ROW_COLUMNS (the real file
        name first in `originals/`), ordered the same way: see `photo_rows`."""
        name = Asset.filename if real_names else Asset.vname
        query = query.with_only_columns(name, *PHOTO_ROW_COLUMNS[1:]).order_by(name)
        with self.lib.engine.connect() as c:
            return c.execute(query).all()

    def asset_by_vname(self, query: Select, name: str, *parts: str) -> Node:
        from ..names import name_key

        row = self.first(query.where(Asset.vname_key == name_key(name)))
        if row is None:
            raise NotFound()
        return self.asset_node(row, *parts)

    def first(self, statement, params: dict | None = None):  # -> Row | None
        """One Core row on a plain connection: resolves run per request (every GET, every FUSE
        lookup), and an ORM Session costs several times the query itself."""
        with self.lib.engine.connect() as c:
            return c.execute(statement, params or {}).first()


#: prepared listing statements as (SQL, parameter names in order, fixed values), per statement
_Prepared = tuple[str, tuple[str, ...], Mapping[str, Any]]
_DRIVER: dict[int, tuple[Select, _Prepared | None]] = {}


def prepared_rows(lib, query: Select, params: Mapping[str, Any]) -> Sequence[Any]:
    """The rows of a statement built once per process (module level, bind parameters): on the
    library's probe connection with SQLite's own driver when it can run there (no pool checkout,
    no SQLAlchemy result rows: half the cost of a day folder's queries), else through SQLAlchemy.
    Rows are read by position. Never pass a statement built per call: each is compiled and kept."""
    probe = lib.probe
    driver = _driver_sql(query, lib.engine.dialect) if probe.available else None
    if driver is not None:
        sql, names, fixed = driver
        return probe.rows(sql, tuple(params[n] if n in params else fixed[n] for n in names))
    with lib.engine.connect() as c:
        return c.execute(query, params).all()


def _driver_sql(query: Select, dialect) -> _Prepared | None:
    """A prepared listing statement as SQL for SQLite's own driver, compiled once per process,
    or None (another database, or a column or parameter whose type converts values). A person
    or an album of 1,000 photos lists in half the time: SQLAlchemy's result rows and parameter
    handling cost as much as SQLite's query."""
    if dialect.name != "sqlite":
        return None
    known = _DRIVER.get(id(query))
    if known is not None and known[0] is query:
        return known[1]
    compiled = query.compile(dialect=dialect)
    plain = all(b.type.dialect_impl(dialect).bind_processor(dialect) is None
                for b in compiled.binds.values()) and all(
        col.type.dialect_impl(dialect).result_processor(dialect, None) is None
        for col in query.selected_columns)
    sql, names = str(compiled), tuple(compiled.positiontup or ())
    fixed = {n: compiled.binds[n].value for n in names if compiled.binds[n].value is not None}
    prepared = (sql, names, fixed) \
        if plain and compiled.positiontup is not None and "POSTCOMPILE" not in sql else None
    _DRIVER[id(query)] = (query, prepared)  # keeps `query` alive: its id stays its own
    return prepared


def visible_assets() -> Select:
    return select(*ASSET_COLUMNS).where(is_visible(Asset.status))


def original_path_str(root: str, folder: str, filename: str) -> str:
    rel = f"{folder}/{filename}" if folder else filename
    return f"{root}/{text_to_fs(rel)}" if rel else root


def original_path(root: Path, folder: str, filename: str) -> Path:
    # one Path() parse of a joined string: `root / rel` parses twice, and listings of 10,000
    # photos build 10,000 of these
    rel = f"{folder}/{filename}" if folder else filename
    return Path(f"{root}/{text_to_fs(rel)}") if rel else root
