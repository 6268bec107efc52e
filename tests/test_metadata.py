"""Behaviour of photovfs.metadata on generated files: dates, GPS, orientation, people, robustness."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from datetime import datetime
from pathlib import Path

import photogen as pg
import pytest
from photovfs.errors import BadMedia, TooLarge
from photovfs.metadata import (
    MEDIA_EXTS,
    SIDECAR_EXTS,
    extract,
    find_sidecar,
    media_kind,
    verify,
)
from photovfs.metadata.dates import filename_datetime, parse_iso_datetime
from PIL import Image

WHEN = datetime(2021, 4, 30, 9, 42, 39)
DIGIKAM = {"digiKam": "http://www.digikam.org/ns/1.0/"}
LR = {"lr": "http://ns.adobe.com/lightroom/1.0/"}
DC = {"dc": "http://purl.org/dc/elements/1.1/"}
PS = {"photoshop": "http://ns.adobe.com/photoshop/1.0/"}
MP_NS = {
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
}
IPTC_EXT = {"Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"}


def bag(prefix_tag: str, items: list[str]) -> str:
    lis = "".join(f"<rdf:li>{i}</rdf:li>" for i in items)
    return f"<{prefix_tag}><rdf:Bag>{lis}</rdf:Bag></{prefix_tag}>"


def approx_region(region, expected: tuple[float, float, float, float], tol: float = 1e-6) -> bool:
    return all(
        abs(a - b) <= tol
        for a, b in zip((region.x, region.y, region.w, region.h), expected, strict=True)
    )


# ---------------------------------------------------------------- media kinds


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.JPG", ("image", "image/jpeg")),
        ("a.jpe", ("image", "image/jpeg")),
        ("a.heic", ("image", "image/heic")),
        ("a.HIF", ("image", "image/heif")),
        ("a.heif", ("image", "image/heif")),
        ("a.avif", ("image", "image/avif")),
        ("a.jxl", ("image", "image/jxl")),
        ("a.dng", ("image", "image/x-adobe-dng")),
        ("a.NEF", ("image", "image/x-nef")),
        ("a.cr3", ("image", "image/x-cr3")),
        ("a.mov", ("video", "video/quicktime")),
        ("a.m4v", ("video", "video/mp4")),
        ("a.AVI", ("video", "video/x-msvideo")),
        ("a.mts", ("video", "video/mp2t")),
        ("a.webm", ("video", "video/webm")),
    ],
)
def test_media_kind_maps_extensions_to_type_and_mime(name: str, kind: tuple[str, str]) -> None:
    assert media_kind(name) == kind


@pytest.mark.parametrize("name", ["notes.txt", "IMG.xmp", "noext", ".jpg", "archive.jpg.zip"])
def test_media_kind_is_none_for_non_media(name: str) -> None:
    assert media_kind(name) is None


def test_extension_sets_are_dotted_lower_case() -> None:
    assert {".jpg", ".heic", ".mov", ".dng"} <= MEDIA_EXTS
    assert SIDECAR_EXTS == {".xmp"}


# ---------------------------------------------------------------- capture date fallbacks


def test_date_taken_comes_from_datetimeoriginal_with_its_offset(tmp_path: Path) -> None:
    path = pg.make_jpeg(
        tmp_path / "a.jpg", taken=WHEN, offset="+02:00", digitized=datetime(2022, 1, 1, 1, 1, 1)
    )
    facts = extract(path)
    assert (facts.taken_at, facts.taken_source, facts.tz_offset_min) == (
        WHEN,
        "exif:DateTimeOriginal",
        120,
    )


def test_datetimedigitized_is_used_when_original_is_missing(tmp_path: Path) -> None:
    path = pg.make_jpeg(tmp_path / "a.jpg", digitized=WHEN, modified=datetime(2022, 1, 1))
    facts = extract(path)
    assert (facts.taken_at, facts.taken_source) == (WHEN, "exif:DateTimeDigitized")


def test_exif_datetime_is_used_when_only_it_is_present(tmp_path: Path) -> None:
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", modified=WHEN))
    assert (facts.taken_at, facts.taken_source) == (WHEN, "exif:DateTime")


def test_xmp_date_is_used_when_exif_has_none(tmp_path: Path) -> None:
    xmp = pg.xmp_packet(
        pg.description(
            PS, "<photoshop:DateCreated>2021-04-30T09:42:39-05:00</photoshop:DateCreated>"
        )
    )
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", make="X", xmp=xmp))
    assert (facts.taken_at, facts.taken_source, facts.tz_offset_min) == (
        WHEN,
        "xmp:photoshop:DateCreated",
        -300,
    )


def test_exif_date_without_offset_borrows_offset_from_matching_xmp_date(tmp_path: Path) -> None:
    xmp = pg.xmp_packet(
        pg.description(
            PS, "<photoshop:DateCreated>2021-04-30T09:42:39+09:00</photoshop:DateCreated>"
        )
    )
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", taken=WHEN, xmp=xmp))
    assert (facts.taken_source, facts.tz_offset_min) == ("exif:DateTimeOriginal", 540)


def test_quicktime_creationdate_with_offset_dates_a_video(tmp_path: Path) -> None:
    path = pg.make_mp4(
        tmp_path / "clip.mov",
        created_utc=datetime(2019, 7, 24, 8, 25, 57),
        apple={"com.apple.quicktime.creationdate": "2019-07-24T11:25:40+0300"},
    )
    facts = extract(path)
    assert (facts.taken_at, facts.taken_source, facts.tz_offset_min) == (
        datetime(2019, 7, 24, 11, 25, 40),
        "quicktime",
        180,
    )


def test_mvhd_creation_time_is_utc_when_no_local_date_exists(tmp_path: Path) -> None:
    facts = extract(pg.make_mp4(tmp_path / "clip.mp4", created_utc=WHEN, brand=b"mp42"))
    assert (facts.taken_at, facts.taken_source, facts.tz_offset_min) == (WHEN, "quicktime", 0)
    assert facts.media_type == "video" and facts.duration == pytest.approx(2.0)


def test_file_name_date_is_used_when_metadata_has_none(tmp_path: Path) -> None:
    facts = extract(pg.make_jpeg(tmp_path / "IMG_20210430_094239.jpg"))
    assert (facts.taken_at, facts.taken_source) == (WHEN, "filename")


def test_mtime_is_the_last_resort(tmp_path: Path) -> None:
    path = pg.make_jpeg(tmp_path / "holiday.jpg")
    os.utime(path, (WHEN.timestamp(), WHEN.timestamp()))
    facts = extract(path)
    assert (facts.taken_at, facts.taken_source) == (WHEN, "mtime")


@pytest.mark.parametrize(
    "bad",
    ["0000:00:00 00:00:00", "    :  :     :  :", "", "1800:01:01 00:00:00", "2021:02:30 10:00:00"],
)
def test_invalid_exif_dates_are_treated_as_absent(tmp_path: Path, bad: str) -> None:
    path = pg.make_jpeg(tmp_path / "IMG_20210430_094239.jpg", taken=bad, digitized=bad)
    facts = extract(path)
    assert (facts.taken_at, facts.taken_source) == (WHEN, "filename")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_20210430_094239.jpg", WHEN),
        ("VID_20210430_094239.mp4", WHEN),
        ("PXL_20210430_094239123.jpg", WHEN),
        ("20210430_094239.jpg", WHEN),
        ("Screenshot_2021-04-30-09-42-39.png", WHEN),
        ("Screenshot_20210430-094239_Chrome.png", WHEN),
        ("2021-04-30 09.42.39.jpg", WHEN),
        ("IMG-20210430-WA0001.jpg", datetime(2021, 4, 30)),
        ("IMG_20211332_094239.jpg", None),
        ("IMG_20210430_256161.jpg", datetime(2021, 4, 30)),
        ("DSCN0010.JPG", None),
        ("P1010001.JPG", None),
        ("IMG_1234.HEIC", None),
    ],
)
def test_filename_dates_are_recognised_and_impossible_ones_rejected(
    name: str, expected: datetime | None
) -> None:
    assert filename_datetime(name) == expected


def test_iso_dates_with_gmt_prefix_and_fractions_parse() -> None:
    assert parse_iso_datetime("2024-04-22T14:38:09.526GMT+02:00") == (
        datetime(2024, 4, 22, 14, 38, 9),
        120,
    )
    assert parse_iso_datetime("2002-02-02T02:02:02Z") == (datetime(2002, 2, 2, 2, 2, 2), 0)
    assert parse_iso_datetime("2002") is None


# ---------------------------------------------------------------- orientation and regions

STORED_RECT = (0.1, 0.2, 0.3, 0.1)  # top-left x, y, w, h in the stored frame
DISPLAYED = {
    1: (0.1, 0.2, 0.3, 0.1),
    2: (0.6, 0.2, 0.3, 0.1),
    3: (0.6, 0.7, 0.3, 0.1),
    4: (0.1, 0.7, 0.3, 0.1),
    5: (0.2, 0.1, 0.1, 0.3),
    6: (0.7, 0.1, 0.1, 0.3),
    7: (0.7, 0.6, 0.1, 0.3),
    8: (0.2, 0.6, 0.1, 0.3),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_recorded_and_mwg_regions_follow_it_to_the_displayed_frame(
    tmp_path: Path, orientation: int
) -> None:
    x, y, w, h = STORED_RECT
    xmp = pg.xmp_face_regions(["Ada"], areas=[(x + w / 2, y + h / 2, w, h)])
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", orientation=orientation, xmp=xmp))
    assert facts.orientation == orientation
    assert (facts.width, facts.height) == (64, 48)  # as stored, not rotated
    assert len(facts.regions) == 1
    assert approx_region(facts.regions[0], DISPLAYED[orientation])


def test_orientation_zero_is_treated_as_absent(tmp_path: Path) -> None:
    assert extract(pg.make_jpeg(tmp_path / "a.jpg", orientation=0)).orientation is None


# ---------------------------------------------------------------- GPS


@pytest.mark.parametrize(
    "position", [(48.8584, 2.2945), (-33.8568, 151.2153), (40.6892, -74.0445), (-22.9519, -43.2105)]
)
def test_gps_hemispheres_give_signed_coordinates(
    tmp_path: Path, position: tuple[float, float]
) -> None:
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", gps=position))
    assert facts.lat == pytest.approx(position[0], abs=1e-5)
    assert facts.lon == pytest.approx(position[1], abs=1e-5)


def test_gps_altitude_below_sea_level_is_negative(tmp_path: Path) -> None:
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", gps=(31.5, 35.5, -430.0)))
    assert facts.alt == pytest.approx(-430.0)


NAN3 = tuple(pg._rational(float("nan")) for _ in range(3))
ZERO3 = tuple(pg._rational(0.0) for _ in range(3))


@pytest.mark.parametrize(
    "gps",
    [
        {1: "N", 2: NAN3, 3: "E", 4: NAN3},  # 0/0 rationals, as the Leica T writes
        {1: "", 2: NAN3, 3: "", 4: NAN3},  # empty refs too
        {0: b"\x02\x02\x00\x00", 9: "V"},  # GPS IFD without coordinates
        {1: "N", 2: ZERO3, 3: "E", 4: ZERO3},  # exactly 0,0
        {1: "N", 2: (pg._rational(95), pg._rational(0), pg._rational(0)), 3: "E", 4: ZERO3},
    ],
    ids=["nan", "nan-empty-refs", "no-coordinates", "null-island", "latitude-out-of-range"],
)
def test_invalid_gps_is_treated_as_absent(tmp_path: Path, gps: dict) -> None:
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", gps=gps, taken=WHEN))
    assert (facts.lat, facts.lon, facts.alt) == (None, None, None)
    assert facts.ok and facts.taken_at == WHEN


def test_camera_strings_lose_padding_and_nuls(tmp_path: Path) -> None:
    facts = extract(
        pg.make_jpeg(tmp_path / "a.jpg", make="  Canon\x00\x00", model="EOS 5D \x00junk")
    )
    assert (facts.make, facts.model) == ("Canon", "EOS 5D")


# ---------------------------------------------------------------- people, keywords, albums


def test_mwg_face_regions_name_people_and_keep_unnamed_regions(tmp_path: Path) -> None:
    xmp = pg.xmp_face_regions(["Marie Curie", None, "Pierre Curie"])
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", xmp=xmp))
    assert facts.people == ["Marie Curie", "Pierre Curie"]
    assert [r.name for r in facts.regions] == ["Marie Curie", None, "Pierre Curie"]
    assert {r.source for r in facts.regions} == {"mwg"}
    first = facts.regions[0]
    assert approx_region(first, (0.15, 0.2, 0.1, 0.2))  # centre (0.2, 0.3) -> top-left


def test_mwg_regions_that_are_not_faces_are_ignored(tmp_path: Path) -> None:
    xmp = pg.xmp_face_regions(["Rex"], region_type="Pet")
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", xmp=xmp))
    assert facts.people == [] and facts.regions == []


def test_microsoft_photo_regions_give_people_and_top_left_rectangles(tmp_path: Path) -> None:
    regions = (
        '<MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>'
        '<rdf:li MPReg:PersonDisplayName="Bill Murray" MPReg:Rectangle="0.25, 0.1, 0.2, 0.3"/>'
        "</rdf:Bag></MPRI:Regions></MP:RegionInfo>"
    )
    xmp = pg.xmp_packet(pg.description(MP_NS, regions))
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", xmp=xmp))
    assert facts.people == ["Bill Murray"]
    assert len(facts.regions) == 1 and facts.regions[0].source == "mp"
    assert approx_region(facts.regions[0], (0.25, 0.1, 0.2, 0.3))


def test_digikam_and_lightroom_tags_split_into_people_keywords_and_albums(tmp_path: Path) -> None:
    xmp = pg.xmp_packet(
        pg.description(
            DIGIKAM,
            bag(
                "digiKam:TagsList",
                ["People/Family/Ada", "Places/Paris", "photovfs/Albums/Trip 2021"],
            ),
        ),
        pg.description(
            LR, bag("lr:hierarchicalSubject", ["People|Bob", "photovfs|Albums|Best of", "Sea"])
        ),
        pg.description(IPTC_EXT, bag("Iptc4xmpExt:PersonInImage", ["Carol"])),
        pg.description(DC, bag("dc:subject", ["Ada", "sunset"])),
    )
    facts = extract(pg.make_jpeg(tmp_path / "a.jpg", xmp=xmp))
    assert facts.people == ["Ada", "Bob", "Carol"]
    assert facts.albums == ["Best of", "Trip 2021"]
    assert facts.keywords == ["Paris", "Sea", "sunset"]
    assert facts.regions == []


def test_png_with_xmp_in_itxt_is_read(tmp_path: Path) -> None:
    facts = extract(pg.make_png(tmp_path / "scan.png", xmp=pg.xmp_face_regions(["Ada"])))
    assert facts.people == ["Ada"] and facts.ok


# ---------------------------------------------------------------- sidecars


def test_sidecar_wins_for_people_keywords_and_albums(tmp_path: Path) -> None:
    embedded = pg.xmp_packet(
        pg.description(DIGIKAM, bag("digiKam:TagsList", ["People/Old", "photovfs/Albums/A", "k1"]))
    )
    path = pg.make_jpeg(tmp_path / "a.jpg", taken=WHEN, xmp=embedded)
    sidecar = pg.write_sidecar(
        tmp_path / "a.jpg.xmp",
        pg.xmp_packet(
            pg.description(
                DIGIKAM, bag("digiKam:TagsList", ["People/New", "photovfs/Albums/B", "k2"])
            ),
            pg.description(
                PS, "<photoshop:DateCreated>1999-01-01T00:00:00</photoshop:DateCreated>"
            ),
        ),
    )
    assert extract(path).people == ["Old"]
    facts = extract(path, sidecar=sidecar)
    assert (facts.people, facts.albums, facts.keywords) == (["New"], ["B"], ["k2"])
    assert (facts.taken_at, facts.taken_source) == (WHEN, "exif:DateTimeOriginal")  # EXIF first


def test_sidecar_xmp_date_beats_embedded_xmp_date(tmp_path: Path) -> None:
    def ps_date(value: str) -> str:
        return pg.xmp_packet(
            pg.description(PS, f"<photoshop:DateCreated>{value}</photoshop:DateCreated>")
        )

    path = pg.make_jpeg(tmp_path / "a.jpg", xmp=ps_date("2001-01-01T00:00:00"))
    sidecar = pg.write_sidecar(tmp_path / "a.xmp", ps_date("2021-04-30T09:42:39"))
    facts = extract(path, sidecar=sidecar)
    assert (facts.taken_at, facts.taken_source) == (WHEN, "xmp:photoshop:DateCreated")


def test_sidecar_orientation_rotates_regions_when_the_file_has_none(tmp_path: Path) -> None:
    x, y, w, h = STORED_RECT
    path = pg.make_jpeg(tmp_path / "a.jpg")
    sidecar = pg.write_sidecar(
        tmp_path / "a.jpg.xmp",
        pg.xmp_face_regions(["Ada"], areas=[(x + w / 2, y + h / 2, w, h)], orientation=6),
    )
    facts = extract(path, sidecar=sidecar)
    assert facts.orientation == 6
    assert approx_region(facts.regions[0], DISPLAYED[6])


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-8"])
def test_sidecars_with_byte_order_marks_are_decoded(tmp_path: Path, encoding: str) -> None:
    path = pg.make_jpeg(tmp_path / "a.jpg")
    sidecar = pg.write_sidecar(
        tmp_path / "a.xmp",
        '<?xml version="1.0" encoding="UTF-16"?>\n' + pg.xmp_face_regions(["Zoë"]),
        encoding=encoding,
        bom=True,
    )
    assert extract(path, sidecar=sidecar).people == ["Zoë"]


def test_sidecar_with_a_doctype_is_refused(tmp_path: Path) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' + pg.xmp_face_regions(["&b;"])
    )
    path = pg.make_jpeg(tmp_path / "a.jpg", taken=WHEN)
    facts = extract(path, sidecar=pg.write_sidecar(tmp_path / "a.xmp", bomb))
    assert facts.people == [] and facts.ok


def test_missing_or_garbage_sidecar_is_ignored(tmp_path: Path) -> None:
    path = pg.make_jpeg(tmp_path / "a.jpg", xmp=pg.xmp_face_regions(["Ada"]))
    assert extract(path, sidecar=tmp_path / "nope.xmp").people == ["Ada"]
    junk = tmp_path / "junk.xmp"
    junk.write_bytes(b"\x00\xff not xml <x:xmpmeta>")
    assert extract(path, sidecar=junk).people == ["Ada"]


def test_find_sidecar_prefers_full_name_over_stem(tmp_path: Path) -> None:
    photo = pg.make_jpeg(tmp_path / "IMG_1.jpg")
    assert find_sidecar(photo) is None
    (tmp_path / "IMG_1.XMP").write_text("x")
    assert find_sidecar(photo) == tmp_path / "IMG_1.XMP"
    (tmp_path / "IMG_1.jpg.xmp").write_text("x")
    assert find_sidecar(photo) == tmp_path / "IMG_1.jpg.xmp"


# ---------------------------------------------------------------- HEIC and video


def test_heic_exif_date_gps_and_camera_are_read(tmp_path: Path) -> None:
    path = pg.make_heic(
        tmp_path / "IMG_0001.HEIC", taken=WHEN, offset="-04:00", gps=(40.0, -73.5), make="Apple"
    )
    facts = extract(path)
    assert facts.ok and facts.mime == "image/heic"
    assert (facts.taken_at, facts.tz_offset_min, facts.make) == (WHEN, -240, "Apple")
    assert (facts.lat, facts.lon) == (pytest.approx(40.0, abs=1e-5), pytest.approx(-73.5, abs=1e-5))
    verify(path)


def test_quicktime_location_and_live_photo_identifier_are_read(tmp_path: Path) -> None:
    path = pg.make_mp4(
        tmp_path / "IMG_0001.MOV",
        xyz="+48.8584+002.2945+035.000/",
        apple={"com.apple.quicktime.content.identifier": "6F1A-UUID"},
    )
    facts = extract(path)
    assert (facts.lat, facts.lon, facts.alt) == (48.8584, 2.2945, 35.0)
    assert facts.content_id == "6F1A-UUID"


def test_quicktime_iso6709_degree_minute_form_and_null_island(tmp_path: Path) -> None:
    from photovfs.metadata.video import parse_iso6709

    assert parse_iso6709("+4851.504+00217.67/") == pytest.approx((48.8584, 2.29450, None), abs=1e-4)
    assert parse_iso6709("+00.0000+000.0000/") is None


# ---------------------------------------------------------------- damaged and odd files


def test_truncated_jpeg_is_not_ok_and_says_why(tmp_path: Path) -> None:
    good = pg.make_jpeg(tmp_path / "good.jpg", taken=WHEN, size=(256, 256))
    cut = tmp_path / "IMG_20210430_094239.jpg"
    cut.write_bytes(good.read_bytes()[:-300])
    facts = extract(cut)
    assert facts.ok is False and "truncated" in (facts.error or "")
    assert (facts.media_type, facts.mime, facts.taken_at) == ("image", "image/jpeg", WHEN)
    with pytest.raises(BadMedia):
        verify(cut)


def test_zero_byte_file_is_not_ok_but_keeps_type_and_mtime_date(tmp_path: Path) -> None:
    empty = tmp_path / "empty.heic"
    empty.touch()
    facts = extract(empty)
    assert (facts.ok, facts.error, facts.mime, facts.taken_source) == (
        False,
        "empty file",
        "image/heic",
        "mtime",
    )
    with pytest.raises(BadMedia):
        verify(empty)


def test_text_file_named_jpg_is_not_ok(tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_text("hello, I am not a photo\n" * 10)
    facts = extract(fake)
    assert facts.ok is False and facts.error
    assert str(tmp_path) not in facts.error  # short reason, no file name
    with pytest.raises(BadMedia):
        verify(fake)


def test_non_utf8_file_name_is_handled(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/IMG_20210430_094239_\xff\xfe.jpg"
    pg.make_jpeg(tmp_path / "src.jpg")
    with open(raw, "wb") as out:
        out.write((tmp_path / "src.jpg").read_bytes())
    facts = extract(Path(os.fsdecode(raw)))
    assert facts.ok and (facts.taken_at, facts.taken_source) == (WHEN, "filename")


def test_nfd_file_name_is_handled(tmp_path: Path) -> None:
    name = unicodedata.normalize("NFD", "Café_20210430_094239.JPG")
    facts = extract(pg.make_jpeg(tmp_path / name))
    assert facts.ok and facts.mime == "image/jpeg" and facts.taken_source == "filename"


def test_missing_file_is_not_ok(tmp_path: Path) -> None:
    facts = extract(tmp_path / "IMG_20210430_094239.jpg")
    assert facts.ok is False and facts.taken_source == "filename"


def test_extract_never_modifies_the_file(tmp_path: Path) -> None:
    path = pg.make_jpeg(tmp_path / "a.jpg", taken=WHEN, xmp=pg.xmp_face_regions(["Ada"]))
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    extract(path, sidecar=None)
    verify(path)
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before


# ---------------------------------------------------------------- verify


def test_verify_accepts_good_stills_and_videos(tmp_path: Path) -> None:
    verify(pg.make_jpeg(tmp_path / "a.jpg"))
    verify(pg.make_png(tmp_path / "a.png"))
    verify(pg.make_mp4(tmp_path / "a.mp4", created_utc=WHEN))


def test_verify_rejects_decompression_bombs_as_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pg.make_jpeg(tmp_path / "big.jpg", size=(200, 200))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(TooLarge):
        verify(path)
    assert extract(path).ok  # extract does not decode pixels, so it still catalogues the file


def test_verify_rejects_video_without_movie_header(tmp_path: Path) -> None:
    with pytest.raises(BadMedia):
        verify(pg.make_mp4(tmp_path / "a.mp4", with_moov=False))
    assert extract(tmp_path / "a.mp4").ok is False


def test_verify_rejects_raw_without_structure_and_non_media(tmp_path: Path) -> None:
    raw = tmp_path / "a.nef"
    raw.write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(BadMedia):
        verify(raw)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(BadMedia):
        verify(other)


def test_verify_accepts_a_riff_avi_header_and_rejects_a_fake(tmp_path: Path) -> None:
    import struct

    avih = struct.pack("<10I", 33333, 0, 0, 0, 30, 0, 1, 0, 320, 240) + bytes(16)
    hdrl = b"hdrl" + b"avih" + struct.pack("<I", len(avih)) + avih
    body = b"AVI " + b"LIST" + struct.pack("<I", len(hdrl)) + hdrl
    good = tmp_path / "a.avi"
    good.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    verify(good)
    facts = extract(good)
    assert (facts.width, facts.height) == (320, 240)
    assert facts.duration == pytest.approx(1.0, abs=1e-3)
    fake = tmp_path / "b.avi"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    with pytest.raises(BadMedia):
        verify(fake)
