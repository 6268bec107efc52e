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
