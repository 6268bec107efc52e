"""A scan names a whole batch of new files at once: the same permanent names as one by one.

Virtual names are unique across the catalog, case-insensitively, and a clash gets the first free
`name (n)`. The scanner looks up the taken names of a whole batch in one query; these tests hold it
to the names the one-name lookup gives, for files of one batch clashing with each other and with
names already in the catalog.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from conftest import jpeg_with_date
from photovfs.catalog import store
from photovfs.catalog.models import Asset
from photovfs.catalog.store import NewOriginal, free_names_batch, insert_originals
from photovfs.config import load_config
from photovfs.library import Library
from photovfs.metadata.facts import Facts
from sqlalchemy import select
from test_postgres import empty_database, pg_url  # noqa: F401 - pg_url: the server fixture

ALREADY = ["IMG_0001.JPG", "img_0001 (2).jpg", "IMG_0002.JPG", "IMG_0003 (3).JPG", "Café.jpg",
           "noext", "IMG_0004 (2).JPG"]
BATCH = ["IMG_0001.JPG", "IMG_0001.JPG", "img_0001.jpg", "IMG_0002.jpg", "IMG_0003.JPG",
         "IMG_0003.JPG", "IMG_0003.JPG", "Cafe\u0301.JPG", "noext", "NOEXT", "IMG_0004.JPG",
         "IMG_0004 (2).JPG", "IMG_0005.PNG", "IMG_0005.JPG", "new.jpg", ".hidden.jpg", "a.b.c",
         "Straße.jpg", "STRASSE.JPG", "strasse.jpg"]


def _original(name: str, i: int) -> NewOriginal:
    return NewOriginal("f", f"{i}-{name}", f"{i:064x}", 1, 1, None, Facts("image", "image/jpeg"))


def _catalog(tmp_path: Path, names: list[str], lib: Library | None = None) -> Library:
    """A library whose catalog already holds `names` as virtual names (in that order)."""
    if lib is None:
        (tmp_path / "lib").mkdir()
        lib = Library.open(tmp_path / "lib")
    with lib.write() as s:
        insert_originals(s, [_original(n, i) for i, n in enumerate(names)])
        # give the rows exactly these virtual names (a suffixed name taken as a plain one, too)
        for i, n in enumerate(names):
            row = s.scalar(select(Asset).where(Asset.filename == f"{i}-{n}"))
            row.vname, row.vname_key = n, store.name_key(n)
            row.tname, row.tname_key = n, store.name_key(n)
    return lib


def test_a_batch_gets_the_names_the_one_by_one_lookup_gives(tmp_path: Path):
    lib = _catalog(tmp_path, ALREADY)
    with lib.write() as s:
        for column in (Asset.vname_key, Asset.tname_key):
            assert free_names_batch(s, column, BATCH) == store._free_names_bulk(s, column, BATCH)
    lib.close()


def test_a_batch_gets_the_same_names_on_postgresql(pg_url: str, tmp_path: Path):  # noqa: F811
    cfg = tmp_path / "pg.toml"
    cfg.write_text(f'database_url = "{pg_url}"\n')
    (tmp_path / "lib").mkdir()
    lib = _catalog(tmp_path, ALREADY, Library(load_config(tmp_path / "lib", config_file=cfg)))
    try:
        with lib.write() as s:
            for column in (Asset.vname_key, Asset.tname_key):
                got = free_names_batch(s, column, BATCH)
                assert got == store._free_names_bulk(s, column, BATCH)
        assert got[0] == ("IMG_0001 (3).JPG", "img_0001 (3).jpg")
    finally:
        lib.close()
        empty_database(pg_url)


def test_files_of_one_batch_clash_with_each_other_and_with_the_catalog(tmp_path: Path):
    lib = _catalog(tmp_path, ALREADY)
    with lib.write() as s:
        names = [n for n, _key in free_names_batch(s, Asset.vname_key, BATCH)]
    assert names == [
        "IMG_0001 (3).JPG", "IMG_0001 (4).JPG", "img_0001 (5).jpg",  # catalog has 1 and (2)
        "IMG_0002 (2).jpg",  # case-insensitive clash with the catalog
        "IMG_0003.JPG", "IMG_0003 (2).JPG", "IMG_0003 (4).JPG",  # (3) is taken in the catalog
        "Cafe\u0301 (2).JPG",  # NFD vs NFC: the same name
        "noext (2)", "NOEXT (3)",
        "IMG_0004.JPG", "IMG_0004 (2) (2).JPG",  # a literal "(2)" name is a name of its own
        "IMG_0005.PNG", "IMG_0005.JPG", "new.jpg", ".hidden.jpg", "a.b.c",
        "Straße.jpg", "STRASSE (2).JPG", "strasse (3).jpg",  # casefold: ß is ss
    ]
    lib.close()


def test_more_names_than_one_statement_holds_are_all_looked_up(tmp_path: Path):
    already = [f"IMG_{i:04d}.JPG" for i in range(600)]
    lib = _catalog(tmp_path, already)
    batch = [f"img_{i:04d}.jpg" for i in range(0, 600, 2)] + [f"IMG_{i:04d}.JPG" for i in range(600)]
    with lib.write() as s:
        got = free_names_batch(s, Asset.vname_key, batch)
        assert got == store._free_names_bulk(s, Asset.vname_key, batch)
    assert got[0] == ("img_0000 (2).jpg", "img_0000 (2).jpg")
    assert got[300] == ("IMG_0000 (3).JPG", "img_0000 (3).jpg")
    assert got[301] == ("IMG_0001 (2).JPG", "img_0001 (2).jpg")
    lib.close()


def test_a_scan_names_clashing_camera_files_in_walk_order_and_keeps_them(tmp_path: Path,
                                                                          monkeypatch):
    root = tmp_path / "lib"
    when = datetime(2021, 4, 30, 9, 0, 0)
    for folder in ("a", "b", "c"):
        for n in (1, 2):
            jpeg_with_date(root / "DCIM" / folder / f"IMG_{n:04d}.JPG", when)
    monkeypatch.setattr("photovfs.scan.BATCH", 4)  # batches end mid-folder, clashes span them
    lib = Library.open(root)
    assert lib.scan().added == 6
    names = sorted((n.name, n.asset_id) for n in lib.list("by-date/2021/04/30"))
    assert [n for n, _ in names] == ["IMG_0001 (2).JPG", "IMG_0001 (3).JPG", "IMG_0001.JPG",
                                     "IMG_0002 (2).JPG", "IMG_0002 (3).JPG", "IMG_0002.JPG"]
    for folder, suffix in (("a", ""), ("b", " (2)"), ("c", " (3)")):
        node = lib.resolve(f"by-date/2021/04/30/IMG_0001{suffix}.JPG")
        assert node.source == root / "DCIM" / folder / "IMG_0001.JPG"
    # a new file clashing with the catalog and with another new file of the same batch
    jpeg_with_date(root / "DCIM" / "d" / "IMG_0001.JPG", when)
    jpeg_with_date(root / "DCIM" / "d" / "img_0001.jpg", when)
    assert lib.scan().added == 2
    lib.close()
    lib = Library.open(root)
    assert lib.scan().unchanged == 8
    again = {n.name: n.asset_id for n in lib.list("by-date/2021/04/30")}
    assert {n: again[n] for n, _ in names} == dict(names)
    assert lib.resolve("by-date/2021/04/30/IMG_0001 (4).JPG").source.parent.name == "d"
    assert lib.resolve("by-date/2021/04/30/img_0001 (5).jpg").source.parent.name == "d"
    lib.close()
