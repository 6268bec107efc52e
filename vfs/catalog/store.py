"""Writing facts into the catalog: asset rows, their stable virtual names, places, people, keywords.

Virtual names are assigned once, when an asset is first catalogued, and never change afterwards, so a
path such as `by-date/2021/04/30/IMG_0001 (2).jpg` keeps meaning the same photo across restarts and
rescans. They are unique across the catalog, case-insensitively (Windows and macOS clients are), which
also makes every view folder free of clashes without per-folder bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, insert, select, text
from sqlalchemy.orm import Session

from ..metadata.facts import Facts
from ..names import name_key, split_ext, with_suffix_number
from ..places import locate, locate_many
from .models import (
    Album,
    AlbumAsset,
    Asset,
    AssetKeyword,
    AssetPerson,
    Folder,
    Keyword,
    Person,
    Place,
)


def _taken_keys(session: Session, column, name: str) -> set[str]:
    """Keys in `column` that a clash suffix of `name` could collide with: `name` itself and
    every `stem (...`. A key range, not LIKE: SQLite's LIKE ignores case and so cannot use the
    index, which made every new file scan the whole index (a quadratic scan)."""
    prefix = name_key(split_ext(name)[0]) + " ("
    stmt = _TAKEN.get(column.key)
    if stmt is None:  # built once per column: a scan of 100,000 camera files (names wrap at
        # 9999) asks this 180,000 times, and building the statement cost 20x running it
        stmt = _TAKEN[column.key] = select(column).where(
            (column == bindparam("key")) | ((column >= bindparam("lo")) & (column < bindparam("hi"))))
    session.flush()  # what the ORM's autoflush did: names given to pending rows count too
    return set(session.connection().execute(
        stmt, {"key": name_key(name), "lo": prefix, "hi": prefix[:-1] + ")"}).scalars())


_TAKEN: dict[str, Select] = {}


def _free_name(session: Session, column, name: str) -> tuple[str, str]:
    """First of `name`, `name (2)`, `name (3)`... whose key is unused in `column`."""
    taken = _taken_keys(session, column, name)
    n = 1
    while True:
        candidate = with_suffix_number(name, n)
        if name_key(candidate) not in taken:
            return candidate, name_key(candidate)
        n += 1


def rendition_name(name: str) -> str:
    stem, ext = split_ext(name)
    return name if ext.lower() == ".jpg" else f"{stem}.jpg"


def new_asset(session: Session, folder: str, filename: str, sha256: str, size: int,
              mtime_ns: int, facts: Facts) -> Asset:
    """Insert a catalogued original with fresh, permanent virtual names."""
    vname, vkey = _free_name(session, Asset.vname_key, filename)
    tname, tkey = _free_name(session, Asset.tname_key, rendition_name(filename))
    asset = Asset(
        folder=folder, filename=filename, vname=vname, vname_key=vkey, tname=tname, tname_key=tkey,
        sha256=sha256, size=size, mtime_ns=mtime_ns, added_at=datetime.now(),
        media_type=facts.media_type, mime=facts.mime,
    )
    session.add(asset)
    apply_facts(session, asset, facts)
    session.flush()
    link_facts(session, asset, facts)
    ensure_folder(session, folder)
    return asset


def apply_facts(session: Session, asset: Asset, facts: Facts,
                where: tuple[str, str, str] | None | bool = False) -> None:
    """Copy the scalar facts onto the row (used for new and for changed files)."""
    asset.media_type, asset.mime = facts.media_type, facts.mime
    asset.status = "ok" if facts.ok else "corrupt"
    asset.error = facts.error
    asset.taken_at, asset.taken_source = facts.taken_at, facts.taken_source
    asset.tz_offset_min = facts.tz_offset_min
    when = facts.taken_at
    asset.year, asset.month, asset.day = (when.year, when.month, when.day) if when else (None,) * 3
    asset.lat, asset.lon, asset.alt = facts.lat, facts.lon, facts.alt
    asset.make, asset.model, asset.lens = facts.make, facts.model, facts.lens
    asset.width, asset.height = facts.width, facts.height
    asset.orientation, asset.duration = facts.orientation, facts.duration
    asset.content_id = facts.content_id
    asset.place_id = place_id(session, facts.lat, facts.lon) if where is False else \
        _place_row(session, where)  # type: ignore[arg-type]


def place_id(session: Session, lat: float | None, lon: float | None) -> int | None:
    return _place_row(session, locate(lat, lon))


def _place_row(session: Session, where: tuple[str, str, str] | None) -> int | None:
    """The id of a (country, region, city), creating the row on first use."""
    if where is None:
        return None
    country, region, city = where
    found = session.scalar(
        select(Place.id).where(Place.country == country, Place.region == region, Place.city == city)
    )
    if found is not None:
        return found
    place = Place(country=country, region=region, city=city)
    session.add(place)
    session.flush()
    return place.id


def person_by_name(session: Session, name: str, *, create: bool = True) -> Person | None:
    person = session.scalar(select(Person).where(Person.name_key == name_key(name)))
    if person is None and create:
        person = Person(name=name, name_key=name_key(name), created_at=datetime.now())
        session.add(person)
        session.flush()
    return person


def album_by_path(session: Session, path: str, *, create: bool = True) -> Album | None:
    """The album at 'A/B', creating it and its groups when asked."""
    album = session.scalar(select(Album).where(Album.path_key == name_key(path)))
    if album is None and create:
        parent = path.rpartition("/")[0]
        if parent:
            album_by_path(session, parent, create=True)
        album = Album(path=path, path_key=name_key(path), parent=parent, created_at=datetime.now())
        session.add(album)
        session.flush()
    return album


def link_facts(session: Session, asset: Asset, facts: Facts) -> None:
    """Replace the XMP-derived people and keywords of an asset; add XMP albums (never remove)."""
    _link(session, asset.id, facts, fresh=False)


def _link(session: Session, asset_id: int, facts: Facts, *, fresh: bool) -> None:
    """`link_facts` by id; `fresh` for a row inserted in this transaction (nothing to replace)."""
    # rejected links ("this is not P") are kept forever, whatever the XMP says
    rejected: set[int] = set()
    if not fresh:
        rejected = set(
            session.scalars(
                select(AssetPerson.person_id).where(
                    AssetPerson.asset_id == asset_id, AssetPerson.rejected.is_(True)
                )
            )
        )
        session.execute(
            delete(AssetPerson).where(AssetPerson.asset_id == asset_id,
                                      AssetPerson.source == "xmp",
                                      AssetPerson.rejected.is_(False))
        )
    regions = {r.name: r for r in facts.regions if r.name}
    for name in sorted(set(facts.people) | set(regions)):
        person = person_by_name(session, name)
        if person is None or person.id in rejected:
            continue
        r = regions.get(name)
        session.add(
            AssetPerson(asset_id=asset_id, person_id=person.id, source="xmp",
                        x=r.x if r else None, y=r.y if r else None,
                        w=r.w if r else None, h=r.h if r else None)
        )
    if not fresh:
        session.execute(delete(AssetKeyword).where(AssetKeyword.asset_id == asset_id))
    for word in sorted(set(facts.keywords)):
        kid = session.scalar(select(Keyword.id).where(Keyword.name == word))
        if kid is None:
            kw = Keyword(name=word)
            session.add(kw)
            session.flush()
            kid = kw.id
        session.add(AssetKeyword(asset_id=asset_id, keyword_id=kid))
    for path in facts.albums:
        album = album_by_path(session, path)
        assert album is not None
        exists = None if fresh else session.get(AlbumAsset, (album.id, asset_id))
        if exists is None:
            session.add(AlbumAsset(album_id=album.id, asset_id=asset_id, added_at=datetime.now()))


def ensure_folder(session: Session, folder: str) -> None:
    """Record a real folder (and its parents) under the originals."""
    while folder:
        if session.scalar(select(Folder.id).where(Folder.path == folder)) is not None:
            return
        parent, _, name = folder.rpartition("/")
        session.add(Folder(path=folder, parent=parent, name=name))
        session.flush()
        folder = parent


# ---- bulk insert (batch ingest) ------------------------------------------------------------------
def _free_names_bulk(session: Session, column, names: list[str]) -> list[tuple[str, str]]:
    """`_free_name` for many names at once, also free of each other (first come, first named).

    One query covers the common case (the name itself is unused); a clash falls back to the
    per-name query.
    """
    wanted = sorted({name_key(n) for n in names})
    taken: set[str] = set()
    for i in range(0, len(wanted), 500):
        taken |= set(session.scalars(select(column).where(column.in_(wanted[i:i + 500]))))
    mine: set[str] = set()
    out = []
    for name in names:
        key = name_key(name)
        if key not in taken and key not in mine:
            out.append((name, key))
            mine.add(key)
            continue
        used = _taken_keys(session, column, name) | mine
        n = 1
        while name_key(with_suffix_number(name, n)) in used:
            n += 1
        cand = with_suffix_number(name, n)
        out.append((cand, name_key(cand)))
        mine.add(name_key(cand))
    return out


def new_assets(session: Session,
               items: list[tuple[str, str, str, int, int, Facts]]) -> list[Asset]:
    """`new_asset` for many originals in one flush: (folder, filename, sha256, size, mtime_ns,
    facts) each; the same rows and permanent virtual names as calling `new_asset` in order."""
    if not items:
        return []
    vnames = _free_names_bulk(session, Asset.vname_key, [it[1] for it in items])
    tnames = _free_names_bulk(session, Asset.tname_key, [rendition_name(it[1]) for it in items])
    now = datetime.now()
    assets = []
    wheres = locate_many([(it[5].lat, it[5].lon) for it in items])
    for (folder, filename, sha256, size, mtime_ns, facts), (vname, vkey), (tname, tkey), where \
            in zip(items, vnames, tnames, wheres, strict=True):
        asset = Asset(
            folder=folder, filename=filename, vname=vname, vname_key=vkey, tname=tname,
            tname_key=tkey, sha256=sha256, size=size, mtime_ns=mtime_ns, added_at=now,
            media_type=facts.media_type, mime=facts.mime,
        )
        apply_facts(session, asset, facts, where)
        assets.append(asset)
    session.add_all(assets)
    session.flush()
    for asset, it in zip(assets, items, strict=True):
        facts = it[5]
        if facts.people or facts.regions or facts.keywords or facts.albums:
            link_facts(session, asset, facts)
    for folder in sorted({it[0] for it in items}):
        ensure_folder(session, folder)
    return assets


# ---- bulk insert (scan) --------------------------------------------------------------------------
@dataclass
class NewOriginal:
    """One file to catalogue for the first time (the scanner's unit of work)."""

    folder: str
    filename: str
    sha256: str
    size: int
    mtime_ns: int
    sidecar_mtime_ns: int | None
    facts: Facts


@dataclass
class WriteCache:
    """Lookups a long run of inserts would otherwise repeat per file: place ids (places are never
    deleted, so they are kept for a whole scan) and folders known to exist (kept per batch)."""

    places: dict[tuple[str, str, str], int] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)


def _place_ids(session: Session, wheres: list[tuple[str, str, str] | None],
               cache: WriteCache) -> list[int | None]:
    """Place ids for a batch: one query for the known ones, one insert for the new ones (a
    first scan meets hundreds of places; a flush per place was most of its geocoding time)."""
    missing = sorted({w for w in wheres if w is not None and w not in cache.places})
    if missing:
        _known_places(session, missing, cache)
        new = [w for w in missing if w not in cache.places]
        if new:
            session.execute(insert(Place), [{"country": c, "region": r, "city": t}
                                            for c, r, t in new])
            _known_places(session, new, cache)
    return [cache.places[w] if w is not None else None for w in wheres]


def _known_places(session: Session, wheres: list[tuple[str, str, str]],
                  cache: WriteCache) -> None:
    """Fill the cache with the ids of those of `wheres` that have a row: one query by country
    (the unique index's first column), filtered exactly here."""
    wanted = set(wheres)
    countries = sorted({w[0] for w in wheres})
    for i in range(0, len(countries), 500):
        for pid, country, region, city in session.execute(
                select(Place.id, Place.country, Place.region, Place.city)
                .where(Place.country.in_(countries[i:i + 500]))):
            if (country, region, city) in wanted:
                cache.places[(country, region, city)] = pid


def _ensure_folders(session: Session, folders: set[str], cache: WriteCache) -> None:
    """`ensure_folder` for many folders: one query for those that exist, inserts for the rest."""
    wanted: set[str] = set()
    for folder in folders:
        while folder and folder not in wanted:
            wanted.add(folder)
            folder = folder.rpartition("/")[0]
    wanted -= cache.folders
    if not wanted:
        return
    ordered = sorted(wanted)
    for i in range(0, len(ordered), 500):
        cache.folders |= set(session.scalars(
            select(Folder.path).where(Folder.path.in_(ordered[i:i + 500]))))
    rows = []
    for folder in ordered:  # parents sort before their children
        if folder not in cache.folders:
            parent, _, name = folder.rpartition("/")
            rows.append({"path": folder, "parent": parent, "name": name})
            cache.folders.add(folder)
    if rows:
        session.execute(insert(Folder), rows)


def _fact_columns(facts: Facts) -> dict[str, Any]:
    """The columns `apply_facts` sets, except place_id."""
    when = facts.taken_at
    return {
        "media_type": facts.media_type, "mime": facts.mime,
        "status": "ok" if facts.ok else "corrupt", "error": facts.error,
        "taken_at": when, "taken_source": facts.taken_source,
        "tz_offset_min": facts.tz_offset_min,
        "year": when.year if when else None, "month": when.month if when else None,
        "day": when.day if when else None,
        "lat": facts.lat, "lon": facts.lon, "alt": facts.alt,
        "make": facts.make, "model": facts.model, "lens": facts.lens,
        "width": facts.width, "height": facts.height,
        "orientation": facts.orientation, "duration": facts.duration,
        "content_id": facts.content_id,
    }


def insert_originals(session: Session, items: list[NewOriginal],
                     cache: WriteCache | None = None) -> int:
    """Catalogue many new originals with one executemany (no ORM unit of work): the same rows,
    permanent names, places, folders and XMP links as `new_assets`. Returns how many."""
    if not items:
        return 0
    cache = cache if cache is not None else WriteCache()
    cache.folders.clear()  # folders may have been removed since the last batch
    vnames = free_names_batch(session, Asset.vname_key, [it.filename for it in items])
    tnames = free_names_batch(session, Asset.tname_key,
                              [rendition_name(it.filename) for it in items])
    places = _place_ids(session, locate_many([(it.facts.lat, it.facts.lon) for it in items]),
                        cache)
    now = datetime.now()
    rows = []
    for it, (vname, vkey), (tname, tkey), place in zip(items, vnames, tnames, places,
                                                       strict=True):
        row = _fact_columns(it.facts)
        row.update(folder=it.folder, filename=it.filename, vname=vname, vname_key=vkey,
                   tname=tname, tname_key=tkey, sha256=it.sha256, size=it.size,
                   mtime_ns=it.mtime_ns, sidecar_mtime_ns=it.sidecar_mtime_ns, added_at=now,
                   place_id=place, stack_id=None)
        rows.append(row)
    session.flush()  # moves in this transaction free their old paths first
    _insert_assets(session, rows)
    linked = [(it, row["vname_key"]) for it, row in zip(items, rows, strict=True)
              if it.facts.people or it.facts.regions or it.facts.keywords or it.facts.albums]
    if linked:
        keys = [key for _, key in linked]
        ids: dict[str, int] = {}
        for i in range(0, len(keys), 500):
            ids.update((k, i_) for i_, k in session.execute(
                select(Asset.id, Asset.vname_key).where(Asset.vname_key.in_(keys[i:i + 500]))))
        for it, key in linked:
            _link(session, ids[key], it.facts, fresh=True)
    _ensure_folders(session, {it.folder for it in items}, cache)
    return len(rows)


# ---- virtual names for a whole batch (scan) ------------------------------------------------------
_TAKEN_BATCH: dict[tuple[str, int, bool], Any] = {}
_TAKEN_CHUNK = 250  # names per statement: 3 parameters each, under SQLite's old 999 limit
_TAKEN_STEP = 50  # statement sizes are rounded up to this (the last key repeated): few shapes


def _taken_keys_batch(session: Session, column, names: list[str]) -> set[str]:
    """`_taken_keys` for many names in one statement per 250 names: each name's own key and
    its `stem (...` key range, OR-ed (SQLite answers it with one index search per term). A
    100,000-file scan of wrapping camera names asked the one-name query 180,000 times."""
    by_key = {name_key(n): n for n in names}
    keys = sorted(by_key)
    conn = session.connection()
    qmark = conn.dialect.name == "sqlite"  # straight to the driver: no per-call parameter work
    taken: set[str] = set()
    for i in range(0, len(keys), _TAKEN_CHUNK):
        chunk = keys[i:i + _TAKEN_CHUNK]
        size = -(-len(chunk) // _TAKEN_STEP) * _TAKEN_STEP
        chunk += chunk[-1:] * (size - len(chunk))
        flat: list[str] = []
        for key in chunk:
            prefix = name_key(split_ext(by_key[key])[0]) + " ("
            flat += (key, prefix, prefix[:-1] + ")")
        stmt = _taken_statement(column, size, qmark)
        if qmark:
            taken.update(row[0] for row in conn.exec_driver_sql(stmt, tuple(flat)))
        else:
            taken.update(conn.execute(stmt, {f"p{j}": v for j, v in enumerate(flat)}).scalars())
    return taken


def _taken_statement(column, size: int, qmark: bool) -> Any:
    """The statement of `_taken_keys_batch` for `size` names: SQL text with `?` for SQLite's
    driver, a `text()` with named parameters p0, p1... for any other database."""
    stmt = _TAKEN_BATCH.get((column.key, size, qmark))
    if stmt is None:
        col = f"{column.table.name}.{column.name}"
        mark = (lambda j: "?") if qmark else (lambda j: f":p{j}")
        terms = " OR ".join(
            f"{col} = {mark(3 * j)} OR ({col} >= {mark(3 * j + 1)} AND {col} < {mark(3 * j + 2)})"
            for j in range(size))
        sql = f"SELECT {col} FROM {column.table.name} WHERE {terms}"
        stmt = _TAKEN_BATCH[(column.key, size, qmark)] = sql if qmark else text(sql)
    return stmt


def free_names_batch(session: Session, column, names: list[str]) -> list[tuple[str, str]]:
    """`_free_names_bulk` with every lookup in one query per 250 names: the same names (first
    of `name`, `name (2)`... unused in the catalog and by earlier names of the batch)."""
    session.flush()  # names of rows pending in this session count, as in `_taken_keys`
    taken = _taken_keys_batch(session, column, names)
    out = []
    for name in names:
        key = name_key(name)
        if key in taken:
            name, key = _first_free_suffix(name, taken)
        taken.add(key)
        out.append((name, key))
    return out


def _first_free_suffix(name: str, taken: set[str]) -> tuple[str, str]:
    """The first of `name (2)`, `name (3)`... whose key is not in `taken`. For an ASCII name
    the key of `stem (n).ext` is built from the parts (casefold of ASCII is lower(), NFC leaves
    it alone): a wrapped camera counter tries ~10 of them per file."""
    n = 2
    if name.isascii():
        stem, ext = split_ext(name)
        head, tail = stem.lower() + " (", ")" + ext.lower()
        while f"{head}{n}{tail}" in taken:
            n += 1
        return with_suffix_number(name, n), f"{head}{n}{tail}"
    while name_key(with_suffix_number(name, n)) in taken:
        n += 1
    cand = with_suffix_number(name, n)
    return cand, name_key(cand)


_INSERT_SQLITE: dict[tuple[str, ...], tuple[str, list[Any]]] = {}


def _insert_assets(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert asset rows (every column but the id in each) in one executemany. On SQLite the
    statement and the columns' own bind processors are prepared once and the rows go to the
    driver as tuples: SQLAlchemy's per-row parameter building cost as much as SQLite's insert."""
    conn = session.connection()
    table = cast(Table, Asset.__table__)
    if conn.dialect.name != "sqlite" or not rows:
        conn.execute(insert(table), rows)
        return
    keys = tuple(rows[0])
    prepared = _INSERT_SQLITE.get(keys)
    if prepared is None:
        cols = [table.c[k] for k in keys]
        if {c.key for c in table.c if not c.primary_key} - set(keys):
            conn.execute(insert(table), rows)  # a column left to its default: SQLAlchemy's
            return
        sql = (f"INSERT INTO {table.name} ({', '.join(c.name for c in cols)}) "
               f"VALUES ({', '.join('?' for _ in cols)})")
        procs = [c.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for c in cols]
        prepared = _INSERT_SQLITE[keys] = (sql, procs)
    sql, procs = prepared
    values = itemgetter(*keys)
    conn.exec_driver_sql(sql, [
        tuple(v if p is None or v is None else p(v) for v, p in zip(values(row), procs, strict=True))
        for row in rows])
