"""photovfs.metadata against the shared real-world corpus and its MANIFEST.tsv.

Every manifest row is extracted; where the manifest states a value, the extracted fact must match
it exactly (dates) or within tolerance (GPS 1e-4, regions 0.02). Rows where the manifest itself
contradicts the file are marked xfail one by one, with the reason.
"""

from __future__ import annotations

import csv
import os
import re
import time
from datetime import datetime
from pathlib import Path

import photogen as pg
import pytest
from photovfs.errors import BadMedia, TooLarge
from photovfs.metadata import Facts, extract, verify
from photovfs.metadata.dates import parse_exif_datetime, parse_iso_datetime

CORPUS = Path(
    os.environ.get("PHOTOVFS_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus"
)
MANIFEST = CORPUS / "MANIFEST.tsv"
pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(
        not MANIFEST.is_file(), reason=f"corpus not found at {CORPUS} (set PHOTOVFS_CORPUS)"
    ),
]
#: a guard against a hang or a full decode of a hostile file (extraction reads headers only and
#: takes milliseconds); generous, because a shared CI machine can stall any process for a second.
#: Speed itself is measured in bench/bench_scan.py, not here.
TIME_LIMIT_S = 10.0


def _rows() -> list[dict[str, str]]:
    if not MANIFEST.is_file():
        return []
    with open(MANIFEST, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


ROWS = _rows()

# Rows where the manifest cannot be matched by a correct implementation, with the reason.
XFAIL: dict[tuple[str, str], str] = {
    ("date", "jpeg/no_exif.jpg"): (
        "manifest says 'no EXIF at all', but the file has an EXIF IFD0 written by Photoshop CC with "
        "DateTime 2014:09:22 10:56:35; the documented fallback order ranks EXIF DateTime above the "
        "XMP date 2013-09-23T10:09:46+02:00"
    ),
    ("gps", "jpeg/Nikon D5000.jpg"): (
        "manifest has_gps=no contradicts its own note ('GPS; no Orientation tag'): the file's GPS "
        "IFD holds a valid position (48.8887 N, 21.0433 E)"
    ),
}


def rows_where(predicate) -> list:  # type: ignore[no-untyped-def]
    """Manifest rows for which predicate(row) holds, as pytest params with readable ids."""
    return [pytest.param(r, id=r["relative_path"]) for r in ROWS if predicate(r)]


def xfail_if_listed(kind: str, row: dict[str, str]) -> None:
    reason = XFAIL.get((kind, row["relative_path"]))
    if reason:
        pytest.xfail(reason)


def xmp_date(row: dict[str, str]) -> tuple[datetime, int | None] | None:
    m = re.search(r"xmp date: (\S+)", row["xmp_features"])
    return parse_iso_datetime(m.group(1).rstrip(";")) if m else None


def is_image_row(row: dict[str, str]) -> bool:
    return not row["relative_path"].endswith(".xmp") and "/video/" not in row["relative_path"]


def cached_extract(row: dict[str, str], _cache: dict[str, Facts] = {}) -> Facts:  # noqa: B006
    """Each corpus file is extracted once per session; the tests only read the result."""
    key = row["relative_path"]
    if key not in _cache:
        _cache[key] = extract(CORPUS / key)
    return _cache[key]


# ---------------------------------------------------------------- every row


@pytest.mark.parametrize("row", rows_where(lambda r: True))
def test_every_corpus_file_extracts_in_time_without_raising(row: dict[str, str]) -> None:
    start = time.perf_counter()
    facts = extract(CORPUS / row["relative_path"])
    assert time.perf_counter() - start < TIME_LIMIT_S
    assert isinstance(facts, Facts)
    assert facts.taken_at is not None and facts.taken_source is not None
    assert facts.ok or facts.error


# ---------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "row", rows_where(lambda r: is_image_row(r) and parse_exif_datetime(r["datetime_original"]))
)
def test_capture_date_equals_the_manifest_exif_date(row: dict[str, str]) -> None:
    facts = cached_extract(row)
    assert facts.taken_at == parse_exif_datetime(row["datetime_original"])
    assert (facts.taken_source or "").startswith("exif:")


@pytest.mark.parametrize(
    "row",
    rows_where(
        lambda r: (
            r["datetime_original"].strip()
            and not parse_exif_datetime(r["datetime_original"])
            and is_image_row(r)
        )
    ),
)
def test_invalid_manifest_dates_are_never_used(row: dict[str, str]) -> None:
    facts = cached_extract(row)
    assert facts.taken_source != "exif:DateTimeOriginal"
    assert facts.taken_at is not None and facts.taken_at.year >= 1826


@pytest.mark.parametrize(
    "row",
    rows_where(
        lambda r: (
            xmp_date(r) is not None
            and ("no EXIF at all" in r["note"] or "dates in XMP only" in r["note"])
        )
    ),
)
def test_files_whose_dates_are_only_in_xmp_take_the_xmp_date(row: dict[str, str]) -> None:
    xfail_if_listed("date", row)
    facts = cached_extract(row)
    expected = xmp_date(row)
    assert expected is not None
    assert (facts.taken_source or "").startswith("xmp:")
    assert facts.taken_at == expected[0]


@pytest.mark.parametrize(
    "row",
    rows_where(
        lambda r: (
            is_image_row(r)
            and xmp_date(r) is not None
            and not parse_exif_datetime(r["datetime_original"])
        )
    ),
)
def test_files_without_exif_original_date_use_metadata_not_the_file_system(
    row: dict[str, str],
) -> None:
    facts = cached_extract(row)
    assert facts.taken_source in ("exif:DateTimeDigitized", "exif:DateTime") or (
        (facts.taken_source or "").startswith("xmp:") and facts.taken_at == xmp_date(row)[0]
    )


def test_utf16_lightroom_sidecar_supplies_its_date(tmp_path: Path) -> None:
    photo = pg.make_jpeg(tmp_path / "scan.jpg")
    facts = extract(photo, sidecar=CORPUS / "xmp" / "2000.xmp")
    assert (facts.taken_at, facts.tz_offset_min) == (datetime(2000, 9, 27, 14, 35, 33), 120)
    assert facts.taken_source == "xmp:xmp:CreateDate"


# ---------------------------------------------------------------- position, orientation, camera


@pytest.mark.parametrize("row", rows_where(lambda r: r["gps_lat_lon"].strip()))
def test_gps_matches_the_manifest(row: dict[str, str]) -> None:
    lat, lon = (float(v) for v in row["gps_lat_lon"].split(","))
    facts = cached_extract(row)
    assert facts.lat == pytest.approx(lat, abs=1e-4)
    assert facts.lon == pytest.approx(lon, abs=1e-4)


@pytest.mark.parametrize("row", rows_where(lambda r: is_image_row(r) and r["has_gps"] == "no"))
def test_files_without_gps_have_no_position(row: dict[str, str]) -> None:
    xfail_if_listed("gps", row)
    facts = cached_extract(row)
    assert (facts.lat, facts.lon) == (None, None)


@pytest.mark.parametrize(
    "row", rows_where(lambda r: is_image_row(r) and r["opens_with_pillow"] == "yes")
)
def test_orientation_matches_the_manifest(row: dict[str, str]) -> None:
    stated = row["orientation"].strip()
    expected = int(stated) if stated and 1 <= int(stated) <= 8 else None
    assert cached_extract(row).orientation == expected


@pytest.mark.parametrize("row", rows_where(lambda r: is_image_row(r) and r["dimensions"].strip()))
def test_dimensions_match_the_manifest(row: dict[str, str]) -> None:
    width, height = (int(v) for v in row["dimensions"].split("x"))
    facts = cached_extract(row)
    assert (facts.width, facts.height) == (width, height)


@pytest.mark.parametrize("row", rows_where(lambda r: is_image_row(r) and r["camera"].strip()))
def test_camera_make_and_model_match_the_manifest(row: dict[str, str]) -> None:
    facts = cached_extract(row)
    assert " ".join(v for v in (facts.make, facts.model) if v) == row["camera"].strip()


# ---------------------------------------------------------------- damaged files


@pytest.mark.parametrize(
    "row",
    rows_where(
        lambda r: r["relative_path"].startswith("bad/") and r["opens_with_pillow"].startswith("no")
    ),
)
def test_bad_files_pillow_cannot_open_are_not_ok_and_fail_verification(row: dict[str, str]) -> None:
    facts = cached_extract(row)
    assert facts.ok is False and facts.error
    assert facts.taken_at is not None  # still dated (EXIF when readable, else mtime)
    with pytest.raises(BadMedia):
        verify(CORPUS / row["relative_path"])


@pytest.mark.parametrize(
    "row",
    rows_where(
        lambda r: (
            not r["relative_path"].startswith("bad/")
            and r["opens_with_pillow"] == "yes"
            and is_image_row(r)
        )
    ),
)
def test_good_stills_pass_verification(row: dict[str, str]) -> None:
    verify(CORPUS / row["relative_path"])


def test_200_megapixel_heic_is_catalogued_but_verify_reports_too_large() -> None:
    facts = extract(CORPUS / "heic" / "200MP.heic")
    assert facts.ok and facts.taken_at == datetime(2025, 1, 19, 14, 53, 27)
    with pytest.raises(TooLarge):
        verify(CORPUS / "heic" / "200MP.heic")


def test_heic_orientation_is_the_original_even_though_pillow_heif_reports_one() -> None:
    facts = extract(CORPUS / "heic" / "iphone_13_pro_max.HEIC")
    assert facts.orientation == 6


# ---------------------------------------------------------------- people and keywords


@pytest.mark.parametrize("row", rows_where(lambda r: "names: " in r["xmp_features"]))
def test_people_match_the_manifest_names(row: dict[str, str]) -> None:
    names = row["xmp_features"].split("names: ", 1)[1].split(";")[0]
    expected = sorted(n.strip() for n in names.split(","))
    assert cached_extract(row).people == expected


@pytest.mark.parametrize(
    "row",
    rows_where(
        lambda r: "IPTC keywords" in r["xmp_features"] and "dc:subject" not in r["xmp_features"]
    ),
)
def test_iptc_keywords_are_read_when_there_is_no_xmp_subject(row: dict[str, str]) -> None:
    words = row["xmp_features"].split("IPTC keywords: ", 1)[1].split(";")[0]
    assert set(cached_extract(row).keywords) >= {w.strip() for w in words.split(",")}


def test_xmp_keywords_win_over_stale_iptc_keywords() -> None:
    facts = extract(CORPUS / "xmp" / "exiftool-MWG.jpg")
    assert facts.keywords and not any(k.startswith("WRONG") for k in facts.keywords)


def region_boxes(facts: Facts) -> dict[str | None, tuple[float, float, float, float]]:
    return {r.name: (r.x, r.y, r.w, r.h) for r in facts.regions}


def assert_same_regions(actual: Facts, expected: Facts, tol: float = 0.02) -> None:
    got, want = region_boxes(actual), region_boxes(expected)
    assert got.keys() == want.keys()
    for name, box in want.items():
        assert got[name] == pytest.approx(box, abs=tol), name


def test_portrait_names_two_people_with_two_regions() -> None:
    facts = extract(CORPUS / "xmp" / "portrait.jpg")
    assert facts.people == ["Marie Curie", "Pierre Curie"]
    assert len(facts.regions) == 2
    marie = region_boxes(facts)["Marie Curie"]
    assert marie == pytest.approx((0.3119, 0.2086, 0.1131, 0.1986), abs=1e-3)


def test_rotated_portrait_gives_the_same_displayed_regions() -> None:
    upright = extract(CORPUS / "xmp" / "portrait.jpg")
    rotated = extract(CORPUS / "xmp" / "portrait-orientation-6.jpg")
    assert rotated.orientation == 6 and rotated.people == upright.people
    assert_same_regions(rotated, upright)


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("storage", ["embedded", "embedded_sidecar", "sidecar"])
def test_skatsubo_matrix_gives_upright_regions_for_every_orientation_and_storage(
    orientation: int, storage: str
) -> None:
    upright = extract(CORPUS / "xmp" / "portrait.jpg")
    photo = CORPUS / "xmp" / "skatsubo" / f"photo.{orientation}.{storage}.jpg"
    sidecar = photo.with_name(photo.name + ".xmp") if storage != "embedded" else None
    facts = extract(photo, sidecar=sidecar)
    assert facts.orientation == orientation
    assert facts.people == ["Marie Curie", "Pierre Curie"]
    assert_same_regions(facts, upright)


# ---------------------------------------------------------------- videos


def test_iphone_mov_gives_its_quicktime_date_and_location() -> None:
    facts = extract(CORPUS / "other" / "video" / "with-gps.mov")
    assert (facts.taken_at, facts.tz_offset_min, facts.taken_source) == (
        datetime(2019, 7, 24, 11, 25, 40),
        180,
        "quicktime",
    )
    assert (facts.lat, facts.lon) == (
        pytest.approx(32.0929, abs=1e-4),
        pytest.approx(34.862, abs=1e-4),
    )
    assert facts.media_type == "video" and facts.duration == pytest.approx(4.0, abs=0.01)
    verify(CORPUS / "other" / "video" / "with-gps.mov")


def test_android_mp4_gives_its_location_and_avi_its_type() -> None:
    mp4 = extract(CORPUS / "other" / "video" / "with-gps.mp4")
    assert (mp4.lat, mp4.lon) == (
        pytest.approx(51.4169, abs=1e-4),
        pytest.approx(-0.0806, abs=1e-4),
    )
    avi = extract(CORPUS / "other" / "video" / "MVI_4823.AVI")
    assert (avi.ok, avi.media_type, avi.mime) == (True, "video", "video/x-msvideo")
    verify(CORPUS / "other" / "video" / "MVI_4823.AVI")
