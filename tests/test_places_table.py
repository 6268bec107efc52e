"""The geocoder's compact table answers exactly what reverse_geocode's k-d tree answers."""

from __future__ import annotations

import csv
import random

import pytest
from conftest import CORPUS
from photovfs import geotable, places


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder and no table loaded in this process yet."""
    monkeypatch.setenv("PHOTOVFS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(geotable, "_loaded", {})
    monkeypatch.setattr(places, "_known", {})
    return tmp_path / "cache"


def _grid() -> list[tuple[float, float]]:
    """Every other degree where people live (-60..75), half degrees over Europe, and points a
    few km around big cities, rounded as places rounds them."""
    rng = random.Random(7)
    points = [(float(lat), float(lon)) for lat in range(-60, 76, 2) for lon in range(-180, 181, 2)]
    points += [(lat / 2, lon / 2) for lat in range(70, 140) for lon in range(-20, 80)]
    cities = [(48.8566, 2.3522), (40.7128, -74.006), (35.6762, 139.6503), (-33.8688, 151.2093),
              (-22.9068, -43.1729), (28.6139, 77.209), (30.0444, 31.2357), (64.1466, -21.9426)]
    points += [(round(a + rng.uniform(-0.3, 0.3), 3), round(b + rng.uniform(-0.3, 0.3), 3))
               for a, b in cities for _ in range(300)]
    return sorted({p for p in points if places._valid(*p)})


def test_the_table_gives_the_same_places_as_the_kd_tree_on_a_grid(cache):
    points = _grid()
    assert places._search(points) == places._reference(points)


def test_corpus_gps_photos_get_the_same_places_as_with_the_kd_tree(cache):
    if not (CORPUS / "MANIFEST.tsv").exists():
        pytest.skip(f"corpus not present at {CORPUS}")
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["gps_lat_lon"].strip()]
    assert rows
    points = [places._key(*(float(v) for v in r["gps_lat_lon"].split(","))) for r in rows]
    assert places._search(points) == places._reference(points)


def test_the_table_is_built_once_then_loaded_from_the_cache(cache, monkeypatch):
    first = geotable.load()
    assert first is not None and list(cache.glob("geotable-*.pickle"))
    monkeypatch.setattr(geotable, "_loaded", {})

    def no_build():
        raise AssertionError("the cached table should have been read")

    monkeypatch.setattr(geotable, "build", no_build)
    again = geotable.load()
    assert again is not None and again.nearest(48.857, 2.352) == first.nearest(48.857, 2.352)


def test_a_damaged_cache_file_is_rebuilt(cache, monkeypatch):
    geotable.load()
    (path,) = cache.glob("geotable-*.pickle")
    path.write_bytes(b"\x80\x05garbage")
    monkeypatch.setattr(geotable, "_loaded", {})
    assert places.locate_many([(48.857, 2.352)]) == [("France", "Île-de-France", "Paris")]
    assert geotable._read(path) is not None  # written again


def test_an_unwritable_cache_folder_still_answers(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PHOTOVFS_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(geotable, "_loaded", {})
    monkeypatch.setattr(places, "_known", {})
    assert places.locate(48.857, 2.352) == ("France", "Île-de-France", "Paris")


def test_equally_near_cities_are_left_to_the_kd_tree():
    table = geotable.from_cities([(0.5, 0.5, ("A", "a", "x")), (0.5, 1.5, ("B", "b", "y"))])
    assert table.nearest(0.5, 1.0) is None  # exactly between: the caller asks the k-d tree
    assert table.nearest(0.5, 0.9) == ("A", "a", "x")
    assert table.nearest(0.5, 1.1) == ("B", "b", "y")


def test_a_position_far_from_any_city_is_left_to_the_kd_tree(cache):
    table = geotable.from_cities([(10.0, 10.0, ("C", "c", "z")), (-40.0, 100.0, ("D", "d", "w"))])
    assert table.nearest(9.0, 9.0) == ("C", "c", "z")
    assert table.nearest(30.0, 60.0) is None  # beyond the searched cells
    south_atlantic = (-55.0, -20.0)
    assert places.locate_many([south_atlantic]) == places._reference([south_atlantic])


def test_no_position_loads_nothing(cache):
    assert places.locate_many([(None, None), (0.0, 0.0), (91.0, 0.0)]) == [None, None, None]
    assert geotable._loaded == {}
