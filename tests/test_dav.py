"""The WebDAV adapter against a real server on 127.0.0.1, with real HTTP requests (no mocks)."""

from __future__ import annotations

import hashlib
import time
import unicodedata
from urllib.parse import quote

import pytest
from dav_helpers import (
    FINDER_PROPFIND,
    LOCK_BODY,
    WIN32_PROPPATCH,
    DavServer,
    make_photos,
    new_photo,
    sha256,
)

DAV = "{DAV:}"


@pytest.fixture(scope="module")
def dav(tmp_path_factory):
    photos = make_photos(tmp_path_factory.mktemp("dav") / "Photos")
    srv = DavServer(photos).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh(tmp_path):
    """A server of its own, for tests that restart it or change a lot."""
    srv = DavServer(make_photos(tmp_path / "Photos")).start()
    yield srv
    srv.stop()


def first_photo(dav) -> str:
    return "by-date/2021/04/30/IMG_0001.jpg"


# ---- reads -----------------------------------------------------------------------------------
def test_options_announces_dav_class_1_and_2(dav):
    r = dav.request("OPTIONS", "inbox/")
    assert r.status_code == 200
    assert [c.strip() for c in r.headers["DAV"].split(",")][:2] == ["1", "2"]


@pytest.mark.parametrize("view", ["", "by-date", "by-date/2021/04/30", "by-album", "by-place",
                                  "by-person", "originals", "originals/2021/Italy", "inbox",
                                  "trash", "thumbnails", "thumbnails/by-date/2021/04/30"])
def test_propfind_depth_0_and_1_answer_for_every_view(dav, view):
    path = view + "/" if view else "/"
    zero = dav.propfind(path, "0")
    assert len(zero) == 1
    [(href, props)] = zero.items()
    assert props[DAV + "resourcetype"] == "collection"
    one = dav.propfind(path, "1")
    assert href in one
    for child_href, props in one.items():
        assert child_href.startswith(href)
        assert child_href == href or props[DAV + "displayname"]


def test_propfind_lists_the_photos_of_a_day_with_sizes_types_and_etags(dav):
    listing = dav.propfind("by-date/2021/04/30/", "1")
    files = {h.rsplit("/", 1)[1]: p for h, p in listing.items() if not h.endswith("/")}
    assert set(files) == {"IMG_0001.jpg", "IMG_0002.jpg"}
    src = dav.photos / "2021" / "Italy" / "IMG_0001.jpg"
    assert files["IMG_0001.jpg"][DAV + "getcontentlength"] == str(src.stat().st_size)
    assert files["IMG_0001.jpg"][DAV + "getcontenttype"] == "image/jpeg"
    assert files["IMG_0001.jpg"][DAV + "getetag"]


@pytest.mark.parametrize("depth", ["infinity", None])
def test_propfind_with_infinite_depth_is_refused_with_the_finite_depth_condition(dav, depth):
    headers = {"Depth": depth} if depth else {}
    r = dav.session.request("PROPFIND", dav.url("by-date/"), headers=headers)
    assert r.status_code == 403
    assert b"propfind-finite-depth" in r.content


def test_get_returns_the_original_bytes_with_type_etag_and_last_modified(dav):
    src = dav.photos / "2021" / "Italy" / "IMG_0001.jpg"
    r = dav.request("GET", first_photo(dav))
    assert r.status_code == 200
    assert sha256(r.content) == sha256(src.read_bytes())
    assert r.headers["Content-Type"] == "image/jpeg"
    assert r.headers["ETag"].strip('"')
    assert r.headers["Last-Modified"]
    assert r.headers["Accept-Ranges"] == "bytes"


def test_get_with_a_matching_if_none_match_answers_304(dav):
    etag = dav.request("HEAD", first_photo(dav)).headers["ETag"]
    r = dav.request("GET", first_photo(dav), headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""


def test_get_with_a_range_answers_206_with_exactly_that_slice(dav):
    data = (dav.photos / "2021" / "Italy" / "IMG_0001.jpg").read_bytes()
    r = dav.request("GET", first_photo(dav), headers={"Range": "bytes=10-99"})
    assert r.status_code == 206
    assert r.content == data[10:100]
    assert r.headers["Content-Range"] == f"bytes 10-99/{len(data)}"


def test_head_answers_the_headers_without_a_body(dav):
    size = (dav.photos / "2021" / "Italy" / "IMG_0001.jpg").stat().st_size
    r = dav.request("HEAD", first_photo(dav))
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(size)
    assert r.content == b""


def test_every_original_downloads_byte_for_byte(dav):
    listing = dav.propfind("originals/2021/Italy/", "1")
    names = [h.rsplit("/", 1)[1] for h in listing if not h.endswith("/")]
    assert "Café.jpg" in names
    for name in names:
        r = dav.request("GET", f"originals/2021/Italy/{name}")
        assert sha256(r.content) == sha256((dav.photos / "2021" / "Italy" / name).read_bytes())


# ---- writes ----------------------------------------------------------------------------------
def test_put_into_inbox_lands_in_the_on_disk_inbox(dav, tmp_path):
    data = new_photo(tmp_path / "up.jpg", 1).read_bytes()
    r = dav.request("PUT", "inbox/upload-1.jpg", data=data)
    assert r.status_code == 201
    on_disk = dav.lib.config.inbox_dir / "upload-1.jpg"
    filed = dav.lib.resolve("inbox/upload-1.jpg")  # still resolves while/after ingest files it
    assert on_disk.exists() or filed.asset_id is not None
    assert sha256(dav.request("GET", "inbox/upload-1.jpg").content) == sha256(data)


@pytest.mark.parametrize("method,path", [
    ("PUT", "by-date/2021/04/30/new.jpg"),
    ("PUT", "by-date/2021/04/30/IMG_0001.jpg"),
    ("DELETE", "by-date/2021/04/30/"),
    ("MKCOL", "by-date/2021/04/30/sub/"),
    ("MKCOL", "by-place/Somewhere/"),
    ("PUT", "thumbnails/by-date/2021/04/30/x.jpg"),
    ("MKCOL", "new-top-folder/"),
])
def test_writes_on_read_only_views_are_refused_with_a_reason(dav, method, path, tmp_path):
    data = new_photo(tmp_path / "x.jpg", 2).read_bytes() if method == "PUT" else None
    if path.endswith("IMG_0001.jpg"):
        data = b"not a photo"
    r = dav.request(method, path, data=data)
    assert r.status_code in (403, 405, 409, 415), (r.status_code, r.text)
    assert r.status_code != 500
    if r.status_code == 403:
        reasons = ("computed", "inbox", "top folder", "thumbnails", "album")
        assert any(word in r.text for word in reasons), r.text


def test_mkcol_in_by_album_creates_an_album(dav):
    assert dav.request("MKCOL", "by-album/Trip/").status_code == 201
    assert "/by-album/Trip/" in dav.propfind("by-album/", "1")
    assert dav.request("MKCOL", "by-album/Trip/").status_code == 405


def test_copy_from_by_date_into_an_album_adds_a_member_without_copying_bytes(dav):
    dav.request("MKCOL", "by-album/Copies/")
    before = sorted(p.name for p in dav.photos.rglob("*.jpg"))
    r = dav.request("COPY", first_photo(dav),
                    headers={"Destination": dav.url("by-album/Copies/IMG_0001.jpg")})
    assert r.status_code == 201, r.text
    listing = dav.propfind("by-album/Copies/", "1")
    assert "/by-album/Copies/IMG_0001.jpg" in listing
    assert sorted(p.name for p in dav.photos.rglob("*.jpg")) == before
    got = dav.request("GET", "by-album/Copies/IMG_0001.jpg").content
    assert got == (dav.photos / "2021" / "Italy" / "IMG_0001.jpg").read_bytes()


def test_deleting_an_album_member_leaves_the_original(dav):
    dav.request("MKCOL", "by-album/Short/")
    dav.request("COPY", "by-date/2021/04/30/IMG_0002.jpg",
                headers={"Destination": dav.url("by-album/Short/IMG_0002.jpg")})
    assert dav.request("DELETE", "by-album/Short/IMG_0002.jpg").status_code == 204
    assert dav.request("GET", "by-album/Short/IMG_0002.jpg").status_code == 404
    assert dav.request("GET", "by-date/2021/04/30/IMG_0002.jpg").status_code == 200
    assert (dav.photos / "2021" / "Italy" / "IMG_0002.jpg").exists()


def test_deleting_an_album_sends_it_to_trash_and_a_new_one_may_take_its_name(dav):
    assert dav.request("MKCOL", "by-album/Gone/").status_code == 201
    assert dav.request("DELETE", "by-album/Gone/").status_code == 204
    assert dav.request("PROPFIND", "by-album/Gone/", headers={"Depth": "0"}).status_code == 404
    assert any("Gone" in h for h in dav.propfind("trash/", "1"))
    assert dav.request("MKCOL", "by-album/Gone/").status_code == 201


def test_delete_in_by_date_moves_the_original_to_trash_and_move_out_restores_it(fresh):
    path = "by-date/2022/07/14/IMG_0100.jpg"
    original = fresh.photos / "phone" / "IMG_0100.jpg"
    data = original.read_bytes()
    assert fresh.request("DELETE", path).status_code == 204
    assert not original.exists()
    assert fresh.request("GET", path).status_code == 404
    trash = fresh.propfind("trash/", "1")
    [item] = [h for h in trash if h.endswith("IMG_0100.jpg")]
    assert sha256(fresh.request("GET", item).content) == sha256(data)
    r = fresh.request("MOVE", item, headers={"Destination": fresh.url("originals/phone/IMG_0100.jpg")})
    assert r.status_code in (201, 204), r.text
    assert original.read_bytes() == data
    assert fresh.request("GET", path).status_code == 200


def test_proppatch_of_win32_times_on_a_read_only_view_never_answers_500(dav):
    for path in ("by-date/2021/04/30/", first_photo(dav), "by-place/", "thumbnails/"):
        r = dav.request("PROPPATCH", path, data=WIN32_PROPPATCH,
                        headers={"Content-Type": "text/xml"})
        assert r.status_code == 207, (path, r.status_code, r.text[:300])
        assert "500" not in r.text


def test_windows_times_after_a_put_land_on_the_inbox_file_and_not_on_photos(dav):
    """Explorer copies a file, then PROPPATCHes its Win32 times: an inbox file keeps them on
    disk (as `touch` over FUSE does); a photo keeps the catalog's time."""
    assert dav.request("PUT", "inbox/times.txt", data=b"not a photo").status_code in (201, 204)
    r = dav.request("PROPPATCH", "inbox/times.txt", data=WIN32_PROPPATCH,
                    headers={"Content-Type": "text/xml"})
    assert r.status_code == 207 and "200 OK" in r.text, r.text[:300]
    on_disk = dav.lib.config.inbox_dir / "times.txt"
    assert int(on_disk.stat().st_mtime) == 1619775759  # Fri, 30 Apr 2021 09:42:39 GMT
    props = dav.propfind("inbox/times.txt", "0")["/inbox/times.txt"]
    assert props[DAV + "getlastmodified"] == "Fri, 30 Apr 2021 09:42:39 GMT"
    photo = first_photo(dav)
    before = dav.propfind(photo, "0")["/" + photo][DAV + "getlastmodified"]
    r = dav.request("PROPPATCH", photo, data=WIN32_PROPPATCH, headers={"Content-Type": "text/xml"})
    assert r.status_code == 207
    assert dav.propfind(photo, "0")["/" + photo][DAV + "getlastmodified"] == before


def test_proppatch_of_other_properties_on_a_computed_folder_is_refused_per_property(dav):
    body = b"""<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x">
    <D:set><D:prop><x:color>red</x:color></D:prop></D:set></D:propertyupdate>"""
    r = dav.request("PROPPATCH", "by-date/2021/", data=body)
    assert r.status_code == 207
    assert "403" in r.text


def test_dead_properties_and_locks_survive_a_server_restart(fresh, tmp_path):
    fresh.request("PUT", "inbox/keep.txt", data=b"hello")
    body = b"""<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:photovfs-test">
    <D:set><D:prop><x:rating>5</x:rating></D:prop></D:set></D:propertyupdate>"""
    assert fresh.request("PROPPATCH", "inbox/keep.txt", data=body).status_code == 207
    r = fresh.request("LOCK", "inbox/keep.txt", data=LOCK_BODY,
                      headers={"Timeout": "Second-3600", "Depth": "0"})
    assert r.status_code == 200
    token = r.headers["Lock-Token"]
    fresh.restart()
    props = fresh.propfind("inbox/keep.txt", "0", b"""<?xml version="1.0"?>
        <D:propfind xmlns:D="DAV:" xmlns:x="urn:photovfs-test"><D:prop><x:rating/>
        <D:lockdiscovery/></D:prop></D:propfind>""")
    [(_, p)] = props.items()
    assert p["{urn:photovfs-test}rating"] == "5"
    assert token.strip("<>") in (p[DAV + "lockdiscovery"] or "")
    assert fresh.request("PUT", "inbox/keep.txt", data=b"other writer").status_code == 423
    assert fresh.request("DELETE", "inbox/keep.txt").status_code == 423
    assert fresh.request("UNLOCK", "inbox/keep.txt",
                         headers={"Lock-Token": token}).status_code == 204
    assert fresh.request("PUT", "inbox/keep.txt", data=b"now").status_code == 204


def test_moving_and_deleting_a_resource_moves_and_deletes_its_properties(fresh):
    fresh.request("PUT", "inbox/a.txt", data=b"a")
    body = b"""<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:t">
    <D:set><D:prop><x:p>v</x:p></D:prop></D:set></D:propertyupdate>"""
    fresh.request("PROPPATCH", "inbox/a.txt", data=body)
    r = fresh.request("MOVE", "inbox/a.txt", headers={"Destination": fresh.url("inbox/b.txt")})
    assert r.status_code == 201
    ask = b"""<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:x="urn:t"><D:prop><x:p/>
    </D:prop></D:propfind>"""
    [(_, p)] = fresh.propfind("inbox/b.txt", "0", ask).items()
    assert p["{urn:t}p"] == "v"
    fresh.request("DELETE", "inbox/b.txt")
    fresh.request("PUT", "inbox/b.txt", data=b"new")
    [(_, p)] = fresh.propfind("inbox/b.txt", "0", ask).items()
    assert p["{urn:t}p"] is None


# ---- names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    "/inbox/../../etc/passwd",
    "/by-date/../inbox/",
    "/by-date/%2e%2e/inbox/",
    "/inbox/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/inbox/a%2Fb.jpg",
    "/inbox/a%00.jpg",
    "/inbox/" + "x" * 300 + ".jpg",
    "/inbox/%ff%fe.jpg",
])
@pytest.mark.parametrize("method", ["GET", "PUT", "PROPFIND", "DELETE", "MKCOL"])
def test_hostile_paths_are_refused_and_never_reach_the_disk(dav, raw, method):
    before = set(p.name for p in dav.lib.config.inbox_dir.iterdir())
    status = dav.raw(method, raw, {"Depth": "1"} if method == "PROPFIND" else None)
    assert status in (400, 404), (method, raw, status)
    assert set(p.name for p in dav.lib.config.inbox_dir.iterdir()) == before


def test_a_copy_whose_destination_is_hostile_is_refused(dav):
    status = dav.raw("COPY", "/" + quote(first_photo(dav)),
                     {"Destination": dav.base + "/inbox/../../x.jpg"})
    assert status == 400


def test_nfd_and_nfc_names_resolve_to_the_same_photo(dav):
    nfc = unicodedata.normalize("NFC", "originals/2021/Italy/Café.jpg")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    a = dav.session.get(dav.base + "/" + quote(nfc))
    b = dav.session.get(dav.base + "/" + quote(nfd))
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    assert a.headers["ETag"] == b.headers["ETag"]


# ---- locks -----------------------------------------------------------------------------------
def test_a_locked_resource_refuses_other_writers_with_423(dav):
    dav.request("PUT", "inbox/locked.txt", data=b"x")
    r = dav.request("LOCK", "inbox/locked.txt", data=LOCK_BODY, headers={"Depth": "0"})
    assert r.status_code == 200
    token = r.headers["Lock-Token"]
    assert dav.request("PUT", "inbox/locked.txt", data=b"y").status_code == 423
    assert dav.request("MOVE", "inbox/locked.txt",
                       headers={"Destination": dav.url("inbox/moved.txt")}).status_code == 423
    r = dav.request("PUT", "inbox/locked.txt", data=b"mine", headers={"If": f"({token})"})
    assert r.status_code == 204
    assert dav.request("UNLOCK", "inbox/locked.txt", headers={"Lock-Token": token}).status_code == 204


# ---- fast PROPFIND -------------------------------------------------------------------------
def _slow_and_fast(dav, path, body):
    from dav_helpers import parse_multistatus

    fast = dav.request("PROPFIND", path, data=body, headers={"Depth": "1"})
    # an If header sends the request down wsgidav's own path
    slow = dav.request("PROPFIND", path, data=body,
                       headers={"Depth": "1", "If": "(Not <urn:x-never>)"})
    return parse_multistatus(fast.content), parse_multistatus(slow.content)


@pytest.mark.parametrize("body", [None, FINDER_PROPFIND,
                                  b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/>'
                                  b'</D:propfind>'])
@pytest.mark.parametrize("path", ["by-date/2021/04/30/", "originals/2021/Italy/", "by-album/",
                                  "/"])
def test_the_fast_propfind_answers_exactly_what_wsgidav_answers(dav, path, body):
    fast, slow = _slow_and_fast(dav, path, body)
    assert fast == slow


def test_the_fast_propfind_includes_dead_properties(dav):
    dav.request("PUT", "inbox/withprop.txt", data=b"p")
    dav.request("PROPPATCH", "inbox/withprop.txt", data=WIN32_PROPPATCH)
    fast, slow = _slow_and_fast(dav, "inbox/", None)
    assert fast == slow
    assert fast["/inbox/withprop.txt"]["{urn:schemas-microsoft-com:}Win32FileAttributes"] == \
        "00000020"


def test_the_fast_propfind_takes_dead_properties_of_that_folder_only(dav):
    """Sibling folders whose names extend the listed one ('sub', 'sub b', 'sub0') keep theirs."""
    for folder in ("sub", "sub b", "sub0"):
        dav.request("MKCOL", f"inbox/{folder}/")
        dav.request("PUT", f"inbox/{folder}/f.txt", data=b"p")
    dav.request("PROPPATCH", "inbox/sub/f.txt", data=WIN32_PROPPATCH)
    assert dav.request("PROPPATCH", "inbox/sub b/", data=WIN32_PROPPATCH).status_code == 207
    dav.request("PROPPATCH", "inbox/sub0/f.txt", data=WIN32_PROPPATCH)
    fast, slow = _slow_and_fast(dav, "inbox/sub/", None)
    assert fast == slow
    attr = "{urn:schemas-microsoft-com:}Win32FileAttributes"
    assert fast["/inbox/sub/f.txt"][attr] == "00000020"
    assert attr not in fast["/inbox/sub/"]
    fast, slow = _slow_and_fast(dav, "inbox/", None)
    assert fast == slow
    assert fast["/inbox/sub b/"][attr] == "00000020"
    assert attr not in fast["/inbox/sub0/"]


def test_a_folder_with_a_lock_is_listed_by_wsgidav_with_its_lockdiscovery(dav):
    dav.request("MKCOL", "inbox/lockdir/")
    dav.request("PUT", "inbox/lockdir/f.txt", data=b"f")
    r = dav.request("LOCK", "inbox/lockdir/f.txt", data=LOCK_BODY, headers={"Depth": "0"})
    token = r.headers["Lock-Token"]
    listing = dav.propfind("inbox/lockdir/", "1")
    assert token.strip("<>") in listing["/inbox/lockdir/f.txt"][DAV + "lockdiscovery"]
    dav.request("UNLOCK", "inbox/lockdir/f.txt", headers={"Lock-Token": token})


def test_get_streams_a_large_file_intact(dav, tmp_path):
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 7)
    assert dav.request("PUT", "inbox/big.bin", data=data).status_code == 201
    t = time.time()
    got = dav.request("GET", "inbox/big.bin").content
    assert time.time() - t < 30
    assert sha256(got) == sha256(data)
