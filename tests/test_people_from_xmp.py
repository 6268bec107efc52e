"""People and keywords that other tools wrote into XMP appear in by-person/ after a scan."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from photogen import make_jpeg, write_sidecar, xmp_face_regions
from photovfs.catalog.models import AssetPerson
from photovfs.library import Library
from sqlalchemy import select


def test_named_xmp_face_regions_fill_by_person(tmp_path: Path):
    root = tmp_path / "lib"
    root.mkdir()
    make_jpeg(root / "curie.jpg", taken=datetime(1903, 6, 1, 12, 0, 0),
              xmp=xmp_face_regions(["Marie Curie", "Pierre Curie", None]))
    lib = Library.open(root)
    lib.scan()
    assert [n.name for n in lib.list("by-person")] == ["Marie Curie", "Pierre Curie"]
    assert [n.name for n in lib.list("by-person/Marie Curie")] == ["curie.jpg"]
    with lib.session() as s:
        regions = s.scalars(select(AssetPerson).where(AssetPerson.source == "xmp")).all()
    assert all(r.w and r.h for r in regions) and len(regions) == 2
    lib.close()


def test_a_sidecar_written_later_is_picked_up_by_the_next_scan(tmp_path: Path):
    root = tmp_path / "lib"
    root.mkdir()
    photo = make_jpeg(root / "IMG_1.jpg", taken=datetime(2020, 1, 1, 10, 0, 0))
    lib = Library.open(root)
    lib.scan()
    assert lib.list("by-person") == []
    write_sidecar(root / "IMG_1.jpg.xmp", xmp_face_regions(["Ada"]))
    report = lib.scan()
    assert report.updated == 1
    assert [n.name for n in lib.list("by-person/Ada")] == [photo.name]
    lib.close()


def test_rejected_person_links_survive_a_rescan(tmp_path: Path):
    root = tmp_path / "lib"
    root.mkdir()
    photo = make_jpeg(root / "IMG_2.jpg", taken=datetime(2020, 1, 1, 10, 0, 0),
                      xmp=xmp_face_regions(["Bob"]))
    lib = Library.open(root)
    lib.scan()
    lib.remove("by-person/Bob/IMG_2.jpg")  # "this is not Bob"
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))
    assert lib.scan().updated == 1
    assert lib.list("by-person/Bob") == []
    lib.close()
