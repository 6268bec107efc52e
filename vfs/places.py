"""Offline reverse geocoding: GPS -> (country, region, city) with the GeoNames data that
`reverse_geocode` ships. No network, ever."""

from __future__ import annotations

import threading
from functools import lru_cache

_lock = threading.Lock()
UNKNOWN_REGION = "Unknown region"


def _clean(text: str | None, fallback: str) -> str:
    text = (text or "").strip().replace("/", "-").replace("\\", "-").replace("\x00", "")
    return text if text and text not in (".", "..") else fallback


@lru_cache(maxsize=65536)
def _lookup(lat: float, lon: float) -> tuple[str, str, str]:
    import reverse_geocode  # loads its city table on first use (~1 s), so import lazily

    with _lock:
        hit = reverse_geocode.get((lat, lon))
    country = _clean(hit.get("country"), "Unknown country")
    region = _clean(hit.get("state"), UNKNOWN_REGION)
    city = _clean(hit.get("city"), "Unknown place")
    return country, region, city


def locate(lat: float | None, lon: float | None) -> tuple[str, str, str] | None:
    """The nearest known city for a position, or None when there is no valid position."""
    if lat is None or lon is None:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    # rounding to ~100 m keeps the cache effective for photo series taken at one spot
    return _lookup(round(lat, 3), round(lon, 3))


def _valid(lat: float | None, lon: float | None) -> bool:
    return lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180 \
        and not (lat == 0 and lon == 0)


def locate_many(points: list[tuple[float | None, float | None]]) -> list[tuple[str, str, str] | None]:
    """`locate` for many positions with one nearest-neighbour query (a scan of thousands of
    photos would otherwise spend most of its catalog time in single lookups)."""
    keys = [(round(lat, 3), round(lon, 3)) if _valid(lat, lon) else None  # type: ignore[arg-type]
            for lat, lon in points]
    todo = sorted({k for k in keys if k is not None})
    if not todo:
        return [None] * len(keys)  # no import: reverse_geocode loads scipy and its data (~1.7 s)
    import reverse_geocode

    with _lock:
        hits = reverse_geocode.search(todo)
    found = {
        k: (_clean(h.get("country"), "Unknown country"), _clean(h.get("state"), UNKNOWN_REGION),
            _clean(h.get("city"), "Unknown place"))
        for k, h in zip(todo, hits, strict=True)
    }
    return [found[k] if k is not None else None for k in keys]
