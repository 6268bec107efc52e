"""The fast PROPFIND's photo rows and its rendered-listing cache, against a real server.

A day folder's photos are rendered from bare catalog rows by one template per property set and
kept while the catalog is unchanged (`dav/fastprop.py`). These tests hold the template to the
per-node rendering (and so to wsgidav, which test_dav compares it with), and show that every
change a client could see afterwards drops what was kept: a write by another process, a
PROPPATCH, a lock, a side file.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import pytest
from dav_helpers import LOCK_BODY, WIN32_PROPPATCH, DavServer, make_photos, parse_multistatus
from photovfs.dav import fastprop
from photovfs.dav.fastprop import FastPropfind, _times
from photovfs.node import Node
from wsgidav import util

DAV = "{DAV:}"
DAY = "by-date/2021/04/30/"
ALLPROP = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
NAMED = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:x="urn:x%&amp;q"><D:prop>'
         b"<D:getetag/><D:displayname/><x:rating/><D:getcontenttype/><D:quota-used-bytes/>"
         b"<D:getlastmodified/><D:lockdiscovery/><D:creationdate/><D:supportedlock/>"
         b"<D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>")
FINDER = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getlastmodified/>'
          b"<D:getcontentlength/><D:creationdate/><D:resourcetype/></D:prop></D:propfind>")
RATING = (b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x"><D:set>'
          b"<D:prop><x:rating>%d</x:rating></D:prop></D:set></D:propertyupdate>")


@pytest.fixture
def fresh(tmp_path):
    srv = DavServer(make_photos(tmp_path / "Photos")).start()
    yield srv
    srv.stop()


def middleware(srv: DavServer) -> FastPropfind:
    app = srv.server.wsgi_app.app.application  # Guard -> WsgiDAVApp -> the middleware chain
    while not isinstance(app, FastPropfind):
        app = app.next_app
    return app


def kept(srv: DavServer) -> int:
    return len(middleware(srv).rendered._items)


def listing(srv: DavServer, body: bytes | None = None, path: str = DAY) -> dict:
    r = srv.request("PROPFIND", path, data=body, headers={"Depth": "1"})
    assert r.status_code == 207, r.text[:300]
    return parse_multistatus(r.content)


def slow_listing(srv: DavServer, body: bytes | None = None, path: str = DAY) -> dict:
    """wsgidav's own answer: an If header that always holds sends the request past the fast path."""
    r = srv.request("PROPFIND", path, data=body,
                    headers={"Depth": "1", "If": "(Not <urn:x-never>)"})
    assert r.status_code == 207
    return parse_multistatus(r.content)


# ---- the template against the per-node rendering ---------------------------------------------
NAMES = ["IMG_0001.JPG", "Café au lait.jpg", "a&b<c>.jpg", "100%{x}.jpg", "semi;colon 'q'.heic",
         "日本.jpg", "~tilde_-.jpg"]
ROWS = [(name, size, mtime_ns, mime, etag)
        for name in NAMES
        for size, mtime_ns, mime, etag in [
            (12345, 1_619_775_759_000_000_000, "image/jpeg", "0123456789abcdef0123456789abcdef"),
            (0, 1_619_775_759_999_999_999, "image/heic", "a&b"),
            (7, 0, "image/x-weird&type", "ffff"),  # no mtime: the node path
            (7, -86_400_500_000_000, "image/jpeg", "ffff"),  # before 1970
            (7, 1_700_000_000_000_000_000, "image/jpeg", ""),  # no etag: the node path
            (7, -46_000_000_000 * 10**9, "image/jpeg", "ffff"),  # year 512: wsgidav formats it
        ]]
BODIES = [b"", ALLPROP, NAMED, NAMED.replace(b"%&amp;q", b""), FINDER,
          b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop>'
          b"</D:propfind>"]


@pytest.mark.parametrize("body", BODIES)
def test_a_photo_row_renders_exactly_as_its_node_does(body):
    mode, names = fastprop._wanted(body)
    mw = FastPropfind.__new__(FastPropfind)
    mw.fragments = fastprop.RowFragments()
    folder = Node("by-date/2021/04/30", "30", True)
    dead = {"by-date/2021/04/30/IMG_0001.JPG": {"{urn:x}rating": "<x:rating xmlns:x=\"urn:x\">5"
                                                                 "</x:rating>"}}
    for mount in ("", "/dav"):
        for row in ROWS:
            out: list[str] = []
            mw._rows(out, [row], folder, mode, names, dead, mount)
            node = _node_of(folder, row)
            expected = mw._response(node, mode, names, dead.get(node.path, {}), mount)
            assert out == [expected], row


@pytest.mark.parametrize("body", [ALLPROP, FINDER])
def test_a_listing_after_a_change_reuses_only_the_responses_of_unchanged_photos(body):
    mode, names = fastprop._wanted(body)
    mw = FastPropfind.__new__(FastPropfind)
    mw.fragments = fastprop.RowFragments()
    folder = Node("by-date/2021/04/30", "30", True)
    rows = [(f"IMG_{i:04d}.jpg", 1000 + i, (1_619_775_759 + i) * 10**9, "image/jpeg", f"{i:032x}")
            for i in range(50)]
    changed = [(n, size + (i % 2), mtime + (i % 3) * 10**9, mime, etag if i % 5 else "e" * 32)
               for i, (n, size, mtime, mime, etag) in enumerate(rows)]
    for listed in (rows, changed, rows):
        out: list[str] = []
        mw._rows(out, listed, folder, mode, names, {}, "")
        assert out == [mw._response(_node_of(folder, r), mode, names, {}, "") for r in listed]


def _node_of(folder: Node, row: tuple) -> Node:
    name, size, mtime_ns, mime, etag = row
    return Node(f"{folder.path}/{name}", name, False, "asset", size, mtime_ns / 1e9, mime, etag)


def test_dates_are_formatted_exactly_as_wsgidav_formats_them():
    rng = random.Random(3)
    samples = [0, 1, -1, 86_399_999_999_999, 951_782_400 * 10**9, 4_107_542_399 * 10**9,
               -2_208_988_800 * 10**9] + [rng.randrange(-10**18, 4 * 10**18) for _ in range(5000)]
    for ns in samples:
        secs = ns / 1e9
        assert _times(ns) == (util.get_rfc3339_time(secs), util.get_rfc1123_time(secs)), ns


# ---- the listing against wsgidav, and what is kept -------------------------------------------
@pytest.mark.parametrize("body", [None, ALLPROP, NAMED, FINDER])
def test_a_repeated_day_listing_is_kept_and_still_answers_what_wsgidav_answers(fresh, body):
    first = listing(fresh, body)
    assert kept(fresh) == 1
    again = listing(fresh, body)
    assert first == again == slow_listing(fresh, body)
    assert "/by-date/2021/04/30/IMG_0001.jpg" in again


def test_a_photo_removed_by_another_process_leaves_the_next_listing(fresh):
    before = listing(fresh, FINDER)
    listing(fresh, FINDER)
    assert kept(fresh) == 1 and "/by-date/2021/04/30/IMG_0002.jpg" in before
    script = textwrap.dedent(f"""
        from photovfs.library import Library
        lib = Library.open({str(fresh.photos)!r})
        lib.remove("by-date/2021/04/30/IMG_0002.jpg")
        lib.close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    after = listing(fresh, FINDER)
    assert "/by-date/2021/04/30/IMG_0002.jpg" not in after
    assert after == slow_listing(fresh, FINDER)


def test_a_proppatch_of_a_photo_shows_in_the_next_listing(fresh):
    photo = DAY + "IMG_0001.jpg"
    listing(fresh)
    assert kept(fresh) == 1
    for value in (4, 5):
        assert fresh.request("PROPPATCH", photo, data=RATING % value).status_code == 207
        props = listing(fresh)["/" + photo]
        assert props["{urn:x}rating"] == str(value)
    assert listing(fresh) == slow_listing(fresh)
    assert fresh.request("PROPPATCH", photo, data=WIN32_PROPPATCH).status_code == 207
    assert listing(fresh)["/" + photo]["{urn:schemas-microsoft-com:}Win32FileAttributes"] == \
        "00000020"


def test_a_lock_taken_after_a_listing_shows_in_the_next_one_and_goes_with_unlock(fresh):
    photo = DAY + "IMG_0001.jpg"
    listing(fresh, ALLPROP)
    assert kept(fresh) == 1
    r = fresh.request("LOCK", photo, data=LOCK_BODY, headers={"Depth": "0"})
    assert r.status_code == 200
    token = r.headers["Lock-Token"]
    locked = listing(fresh, ALLPROP)
    assert token.strip("<>") in locked["/" + photo][DAV + "lockdiscovery"]
    assert fresh.request("UNLOCK", photo, headers={"Lock-Token": token}).status_code == 204
    unlocked = listing(fresh, ALLPROP)
    assert unlocked["/" + photo][DAV + "lockdiscovery"] == ""
    assert unlocked == slow_listing(fresh, ALLPROP)


def test_a_side_file_written_after_a_listing_shows_in_the_next_one(fresh):
    listing(fresh, FINDER)
    assert kept(fresh) == 1
    assert fresh.request("PUT", DAY + "._IMG_0001.jpg", data=b"\x00\x05\x16\x07").status_code \
        in (201, 204)
    after = listing(fresh, FINDER)
    assert after["/" + DAY + "._IMG_0001.jpg"][DAV + "getcontentlength"] == "4"
    assert after == slow_listing(fresh, FINDER)
    assert fresh.request("DELETE", DAY + "._IMG_0001.jpg").status_code == 204
    assert "/" + DAY + "._IMG_0001.jpg" not in listing(fresh, FINDER)


def test_what_is_kept_is_bounded():
    from types import SimpleNamespace

    from photovfs.catalog.probe import CatalogProbe
    from sqlalchemy import create_engine

    lib = SimpleNamespace(probe=CatalogProbe(create_engine("sqlite://")))  # what the cache reads
    fragments = fastprop.RowFragments(max_rows=100)
    for i in range(10):
        fragments.put(("listing", i), {(str(j),): "r" for j in range(30)})
    assert fragments._held <= 100 and fragments.get(("listing", 9)) is not None
    assert fragments.get(("listing", 0)) is None
    cache = fastprop.RenderedRows(lib, max_bytes=100)
    cache._version = 1
    for i in range(10):
        cache.put(("k", i), 1, ("v", i), 30)
    assert cache._held <= 100 and cache.get(("k", 9), 1) == ("v", 9)
    assert cache.get(("k", 0), 1) is None


# ---- albums and originals folders list their photos as rows too ----------------------------
def test_an_album_listing_is_kept_and_shows_a_photo_added_after_it(fresh):
    assert fresh.request("MKCOL", "by-album/Trip/").status_code == 201
    assert fresh.request("MKCOL", "by-album/Trip/Day one/").status_code == 201
    copy = {"Destination": fresh.url("by-album/Trip/IMG_0001.jpg")}
    assert fresh.request("COPY", DAY + "IMG_0001.jpg", headers=copy).status_code == 201
    first = listing(fresh, FINDER, "by-album/Trip/")
    assert set(first) == {"/by-album/Trip/", "/by-album/Trip/Day one/",
                          "/by-album/Trip/IMG_0001.jpg"}
    assert listing(fresh, FINDER, "by-album/Trip/") == first
    assert kept(fresh) == 1
    copy = {"Destination": fresh.url("by-album/Trip/IMG_0002.jpg")}
    assert fresh.request("COPY", DAY + "IMG_0002.jpg", headers=copy).status_code == 201
    after = listing(fresh, FINDER, "by-album/Trip/")
    assert "/by-album/Trip/IMG_0002.jpg" in after
    for body in (None, FINDER, NAMED):
        assert listing(fresh, body, "by-album/Trip/") == slow_listing(fresh, body, "by-album/Trip/")
        assert listing(fresh, body, "by-album/") == slow_listing(fresh, body, "by-album/")


@pytest.mark.parametrize("path", ["originals/", "originals/2021/", "originals/2021/Italy/"])
def test_an_originals_folder_lists_its_files_by_real_name_as_wsgidav_does(fresh, path):
    for body in (None, FINDER, NAMED):
        assert listing(fresh, body, path) == listing(fresh, body, path) == \
            slow_listing(fresh, body, path)
    assert kept(fresh) >= 1
    if path.endswith("Italy/"):
        assert "/originals/2021/Italy/Café.jpg" in listing(fresh, FINDER, path)


def test_a_city_folder_lists_from_rows_as_wsgidav_does(fresh):
    [country] = listing(fresh, FINDER, "by-place/").keys() - {"/by-place/"}
    [region] = listing(fresh, FINDER, country.lstrip("/")).keys() - {country}
    [city] = listing(fresh, FINDER, region.lstrip("/")).keys() - {region}
    path = city.lstrip("/")
    assert fresh.lib.views["by-place"].photo_rows(tuple(path.strip("/").split("/")[1:])) \
        is not None  # rendered from rows, not nodes
    for body in (None, FINDER, NAMED):
        fast = listing(fresh, body, path)
        assert fast == listing(fresh, body, path) == slow_listing(fresh, body, path)
        assert any(href.endswith(".jpg") for href in fast)
    assert kept(fresh) >= 1
