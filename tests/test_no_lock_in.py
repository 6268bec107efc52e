"""No lock-in: names, regions, albums and keywords live in XMP sidecars other tools read, and a
library whose state folder is lost gets all of them back from a rescan."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from photogen import make_jpeg, write_sidecar, xmp_face_regions
from photovfs.catalog.models import AssetPerson
from photovfs.config import load_config
from photovfs.library import Library
from photovfs.metadata import extract
from sqlalchemy import select


def _lib(tmp_path: Path) -> tuple[Path, Library]:
    root = tmp_path / "lib"
    root.mkdir()
    make_jpeg(root / "a.jpg", taken=datetime(2020, 5, 1, 10, 0, 0), orientation=6,
              xmp=xmp_face_regions(["Marie"], areas=[(0.3, 0.4, 0.2, 0.3)]))
    make_jpeg(root / "b.jpg", taken=datetime(2020, 5, 1, 11, 0, 0), color=(1, 2, 3))
    lib = Library.open(root)
    lib.scan()
    return root, lib


def _regions(lib: Library) -> list[tuple]:
    with lib.session() as s:
        rows = s.scalars(select(AssetPerson).where(AssetPerson.x.is_not(None))).all()
    return sorted((round(r.x, 3), round(r.y, 3), round(r.w, 3), round(r.h, 3)) for r in rows)


def test_albums_and_people_made_in_folders_are_written_to_sidecars(tmp_path: Path):
    root, lib = _lib(tmp_path)
    lib.mkdir("by-album/Trips")
    lib.mkdir("by-album/Trips/Italy")
    lib.copy("by-date/2020/05/01/b.jpg", "by-album/Trips/Italy/b.jpg")
    lib.mkdir("by-person/Pierre")
    lib.copy("by-date/2020/05/01/b.jpg", "by-person/Pierre/b.jpg")
    lib.sidecars.flush()
    facts = extract(root / "b.jpg", root / "b.jpg.xmp")
    assert facts.albums == ["Trips/Italy"] and facts.people == ["Pierre"]
    lib.close()


def test_deleting_the_state_folder_and_rescanning_brings_everything_back(tmp_path: Path):
    root, lib = _lib(tmp_path)
    regions_before = _regions(lib)
    lib.mkdir("by-album/Family")
    lib.copy("by-date/2020/05/01/a.jpg", "by-album/Family/a.jpg")
    lib.copy("by-date/2020/05/01/b.jpg", "by-album/Family/b.jpg")
    lib.mkdir("by-person/Pierre")
    lib.copy("by-date/2020/05/01/b.jpg", "by-person/Pierre/b.jpg")
    lib.move("by-person/Marie", "by-person/Marie Curie")
    lib.close()
    shutil.rmtree(root / ".photovfs")
    lib = Library.open(root)
    lib.scan()
    assert [n.name for n in lib.list("by-album/Family")] == ["a.jpg", "b.jpg"]
    assert [n.name for n in lib.list("by-person")] == ["Marie Curie", "Pierre"]
    assert [n.name for n in lib.list("by-person/Marie Curie")] == ["a.jpg"]
    assert _regions(lib) == regions_before  # regions survive orientation 6 round trip
    lib.close()


def test_removing_from_an_album_is_written_too_so_a_rescan_does_not_bring_it_back(tmp_path):
    root, lib = _lib(tmp_path)
    lib.mkdir("by-album/A")
    lib.copy("by-date/2020/05/01/b.jpg", "by-album/A/b.jpg")
    lib.sidecars.flush()
    lib.remove("by-album/A/b.jpg")
    lib.sidecars.flush()
    (root / "b.jpg").touch()
    lib.scan()
    assert lib.list("by-album/A") == []
    lib.close()


def test_a_foreign_sidecar_keeps_what_photovfs_does_not_manage(tmp_path: Path):
    root = tmp_path / "lib"
    root.mkdir()
    make_jpeg(root / "c.jpg", taken=datetime(2021, 1, 1, 9, 0, 0))
    write_sidecar(root / "c.jpg.xmp", (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmp:Rating="4">'
        "<dc:subject><rdf:Bag><rdf:li>sunset</rdf:li></rdf:Bag></dc:subject>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"))
    lib = Library.open(root)
    lib.scan()
    lib.mkdir("by-album/Best")
    lib.copy("by-date/2021/01/01/c.jpg", "by-album/Best/c.jpg")
    lib.sidecars.flush()
    text = (root / "c.jpg.xmp").read_text()
    assert 'Rating="4"' in text
    facts = extract(root / "c.jpg", root / "c.jpg.xmp")
    assert facts.albums == ["Best"] and facts.keywords == ["sunset"]
    lib.close()


def test_sidecars_can_be_turned_off(tmp_path: Path):
    root = tmp_path / "lib"
    root.mkdir()
    make_jpeg(root / "d.jpg", taken=datetime(2021, 1, 1, 9, 0, 0))
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("[xmp]\nwrite_sidecars = false\n")
    lib = Library(load_config(root, config_file=cfg_file))
    lib.scan()
    lib.mkdir("by-album/X")
    lib.copy("by-date/2021/01/01/d.jpg", "by-album/X/d.jpg")
    lib.close()
    assert not (root / "d.jpg.xmp").exists()


def test_a_trashed_photo_takes_its_sidecar_along_and_brings_it_back(tmp_path: Path):
    root, lib = _lib(tmp_path)
    lib.mkdir("by-album/A")
    lib.copy("by-date/2020/05/01/b.jpg", "by-album/A/b.jpg")
    lib.sidecars.flush()
    lib.remove("by-date/2020/05/01/b.jpg")
    assert not (root / "b.jpg.xmp").exists()
    (item,) = lib.list("trash")
    lib.move(item.path, "originals/b.jpg")
    assert (root / "b.jpg.xmp").exists()
    lib.close()


def test_export_metadata_writes_every_sidecar_at_once(tmp_path: Path):
    import subprocess
    import sys

    root, lib = _lib(tmp_path)
    lib.close()
    (root / "a.jpg.xmp").unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-m", "photovfs.cli", "export-metadata", str(root)],
                         capture_output=True, text=True, check=True).stdout
    assert "wrote 1 sidecars" in out  # b.jpg has nothing to say
    assert extract(root / "a.jpg", root / "a.jpg.xmp").people == ["Marie"]
