"""Writing facts into the catalog: asset rows, their stable virtual names, places, people, keywords.

Virtual names are assigned once, when an asset is first catalogued, and never change afterwards, so a
path such as `by-date/2021/04/30/IMG_0001 (2).jpg` keeps meaning the same photo across restarts and
rescans. They are unique across the catalog, case-insensitively (Windows and macOS clients are), which
also makes every view folder free of clashes without per-folder bookkeeping.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
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
    return set(session.scalars(select(column).where(
        (column == name_key(name)) | ((column >= prefix) & (column < prefix[:-1] + ")")))))


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
    # rejected links ("this is not P") are kept forever, whatever the XMP says
    rejected = set(
        session.scalars(
            select(AssetPerson.person_id).where(
                AssetPerson.asset_id == asset.id, AssetPerson.rejected.is_(True)
            )
        )
    )
    session.execute(
        delete(AssetPerson).where(AssetPerson.asset_id == asset.id, AssetPerson.source == "xmp",
                                  AssetPerson.rejected.is_(False))
    )
    regions = {r.name: r for r in facts.regions if r.name}
    for name in sorted(set(facts.people) | set(regions)):
        person = person_by_name(session, name)
        if person is None or person.id in rejected:
            continue
        r = regions.get(name)
        session.add(
            AssetPerson(asset_id=asset.id, person_id=person.id, source="xmp",
                        x=r.x if r else None, y=r.y if r else None,
                        w=r.w if r else None, h=r.h if r else None)
        )
    session.execute(delete(AssetKeyword).where(AssetKeyword.asset_id == asset.id))
    for word in sorted(set(facts.keywords)):
        kid = session.scalar(select(Keyword.id).where(Keyword.name == word))
        if kid is None:
            kw = Keyword(name=word)
            session.add(kw)
            session.flush()
            kid = kw.id
        session.add(AssetKeyword(asset_id=asset.id, keyword_id=kid))
    for path in facts.albums:
        album = album_by_path(session, path)
        assert album is not None
        exists = session.get(AlbumAsset, (album.id, asset.id))
        if exists is None:
            session.add(AlbumAsset(album_id=album.id, asset_id=asset.id, added_at=datetime.now()))


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
