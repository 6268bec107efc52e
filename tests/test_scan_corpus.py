"""The real corpus (../shared/corpus) scanned as a library: everything catalogued, nothing crashes."""

from __future__ import annotations

import csv
import shutil
from datetime import datetime

import pytest
from conftest import CORPUS
from photovfs.catalog.models import Asset
from photovfs.library import Library
from photovfs.metadata import media_kind
from sqlalchemy import select

pytestmark = pytest.mark.skipif(not (CORPUS / "MANIFEST.tsv").exists(),
                                reason=f"corpus not present at {CORPUS}")


@pytest.fixture(scope="module")
def corpus_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "lib"
    shutil.copytree(CORPUS, root)
    lib = Library.open(root)
    report = lib.scan()
    yield lib, report
    lib.close()


def _manifest() -> list[dict[str, str]]:
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _row(lib: Library, rel: str) -> Asset | None:
    folder, _, name = rel.rpartition("/")
    with lib.session() as s:
        return s.scalar(select(Asset).where(Asset.folder == folder, Asset.filename == name))


def test_every_media_file_of_the_corpus_is_catalogued(corpus_library):
    lib, report = corpus_library
    missing = [r["relative_path"] for r in _manifest()
               if media_kind(r["relative_path"]) and _row(lib, r["relative_path"]) is None]
    assert missing == []
    assert not report.errors


def test_manifest_capture_dates_place_photos_in_by_date(corpus_library):
    lib, _ = corpus_library
    wrong = []
    for r in _manifest():
        raw = r["datetime_original"].strip()
        if not raw[:4].isdigit() or raw.startswith("0000") or "T" in raw:
            continue
        asset = _row(lib, r["relative_path"])
        if asset is None or not (asset.taken_source or "").startswith("exif"):
            continue
        expected = datetime.strptime(raw, "%Y:%m:%d %H:%M:%S")
        if asset.taken_at != expected:
            wrong.append((r["relative_path"], asset.taken_at, expected))
            continue
        folder = f"by-date/{expected:%Y/%m/%d}"
        assert asset.vname in [n.name for n in lib.list(folder)]
    assert wrong == []


def test_manifest_gps_positions_are_catalogued(corpus_library):
    lib, _ = corpus_library
    for r in _manifest():
        if not r["gps_lat_lon"].strip():
            continue
        asset = _row(lib, r["relative_path"])
        lat, lon = (float(v) for v in r["gps_lat_lon"].split(","))
        assert asset is not None and asset.lat is not None, r["relative_path"]
        assert abs(asset.lat - lat) < 1e-3 and abs(asset.lon - lon) < 1e-3, r["relative_path"]
        assert asset.place_id is not None


def test_files_pillow_cannot_open_in_bad_are_reported_corrupt(corpus_library):
    lib, report = corpus_library
    for r in _manifest():
        if not r["relative_path"].startswith("bad/") or r["opens_with_pillow"].startswith("yes"):
            continue
        asset = _row(lib, r["relative_path"])
        assert asset is not None and asset.status == "corrupt" and asset.error, r["relative_path"]
        assert any(r["relative_path"].split("/")[-1] in c for c in report.corrupt)


def test_a_rescan_of_the_corpus_reads_nothing_again(corpus_library):
    lib, _ = corpus_library
    again = lib.scan()
    assert (again.added, again.updated, again.removed) == (0, 0, 0)
