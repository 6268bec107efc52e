"""Fast GET/HEAD (dav/fastget.py): the same answers as wsgidav's own GET, header by header.

Two real servers serve one library: one with the fast path, one without (`fast_get=False`). Each
request goes to both with http.client, which sends the path exactly as written, and the status,
the headers in order (except Date) and the bytes must agree. A probe on the provider checks that
the fast server really answered without wsgidav's resource machinery, so the comparisons cannot
pass by both paths being wsgidav.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import time
from dataclasses import dataclass
from email.utils import formatdate

import pytest
import requests
from dav_helpers import Answer, DavServer, make_photos, send
from ingest_helpers import heic
from photovfs.dav.provider import PhotoProvider
from photovfs.dav.server import run_in_thread
from photovfs.users import Users

P1 = "/by-date/2021/04/30/IMG_0001.jpg"
CAFE = "/by-date/2021/05/01/Caf%C3%A9.jpg"
HEIC = "/originals/phone/IMG_0200.HEIC"
THUMB = "/thumbnails/by-date/2021/04/30/IMG_0001.jpg"
BIG = "/inbox/big.bin"
EMPTY = "/inbox/empty.bin"
BIG_SIZE = 3 * (1 << 20) + 12345  # several 1 MiB blocks and a short last one
_STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+")  # wsgidav error pages carry the time


def fetch(port: int, method: str, path: str, headers: dict | None = None,
          auth: tuple[str, str] | None = None) -> Answer:
    return send(port, method, path, headers, auth=auth)


@dataclass
class Pair:
    srv: DavServer
    slow_server: object
    slow_thread: object

    @property
    def fast(self) -> int:
        return self.srv.port

    @property
    def slow(self) -> int:
        return self.slow_server.bind_addr[1]

    def provider(self, server) -> PhotoProvider:
        return server.wsgi_app.app.provider_map["/"]

    def both(self, method: str, path: str, headers: dict | None = None) -> tuple[Answer, Answer]:
        return fetch(self.fast, method, path, headers), fetch(self.slow, method, path, headers)

    def same(self, method: str, path: str, headers: dict | None = None) -> Answer:
        """Ask both servers; assert they agree; return the fast server's answer."""
        fast, slow = self.both(method, path, headers)
        assert fast.status == slow.status, (method, path, headers, fast.status, slow.status)
        assert _comparable(fast.headers) == _comparable(slow.headers), (method, path, headers)
        assert _STAMP.sub(b"", fast.body) == _STAMP.sub(b"", slow.body), (method, path, headers)
        return fast


def _comparable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in headers if k.lower() != "date"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastget")
    photos = make_photos(root / "Photos")
    heic(photos / "phone" / "IMG_0200.HEIC")
    srv = DavServer(photos).start()
    inbox = srv.lib.config.inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (inbox / "empty.bin").write_bytes(b"")
    (inbox / "notes.txt").write_text("not a photo\n")
    srv.request("MKCOL", "by-album/Trip/")
    srv.request("COPY", "by-date/2021/04/30/IMG_0002.jpg",
                headers={"Destination": srv.url("by-album/Trip/IMG_0002.jpg")})
    assert srv.request("DELETE", "by-date/1999/12/31/scan.jpg").status_code == 204
    slow_server, slow_thread = run_in_thread(srv.lib, "127.0.0.1", 0, fast_get=False)
    yield Pair(srv, slow_server, slow_thread)
    slow_server.stop()
    slow_thread.join(5)
    srv.stop()


def trash_item(pair: Pair) -> str:
    [item] = [n for n in pair.srv.lib.list("trash") if n.name.endswith("scan.jpg")]
    return "/" + requests.utils.quote(item.path)


# ---- the fast path answers, and answers like wsgidav ------------------------------------------
def test_the_fast_server_answers_file_gets_without_wsgidav_resources(pair):
    fast, slow = pair.provider(pair.srv.server), pair.provider(pair.slow_server)
    before_fast, before_slow = fast._count_get_resource_inst, slow._count_get_resource_inst
    for method in ("GET", "HEAD"):
        pair.same(method, P1)
        pair.same(method, P1, {"Range": "bytes=0-9"})
    assert fast._count_get_resource_inst == before_fast
    assert slow._count_get_resource_inst > before_slow


@pytest.mark.parametrize("path", [
    P1, CAFE, "/by-date/2021/05/01/Cafe%CC%81.jpg", "/by-date/2022/07/14/IMG_0100.jpg",
    "/originals/2021/Italy/IMG_0001.jpg", "/originals/old/scan.jpg", "/by-album/Trip/IMG_0002.jpg",
    HEIC, THUMB, "/thumbnails/originals/phone/IMG_0200.jpg", "/thumbnails/by-album/Trip/IMG_0002.jpg",
    "/inbox/notes.txt", EMPTY, BIG, "/by-place/",
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_agree_with_wsgidav(pair, method, path):
    answer = pair.same(method, path)
    if path != "/by-place/" and path != "/originals/old/scan.jpg":
        assert answer.status == 200
        assert answer.header("Accept-Ranges") == "bytes"
        assert answer.header("ETag").startswith('"')
    if method == "HEAD":
        assert answer.body == b""


def test_bodies_are_the_files(pair):
    assert fetch(pair.fast, "GET", P1).body == (pair.srv.photos / "2021/Italy/IMG_0001.jpg").read_bytes()
    assert fetch(pair.fast, "GET", BIG).body == (pair.srv.lib.config.inbox_dir / "big.bin").read_bytes()
    heic_answer = fetch(pair.fast, "GET", HEIC)
    assert heic_answer.body == (pair.srv.photos / "phone/IMG_0200.HEIC").read_bytes()
    assert heic_answer.header("Content-Type") == "image/heic"
    thumb = fetch(pair.fast, "GET", THUMB)
    assert thumb.header("Content-Type") == "image/jpeg" and thumb.body[:2] == b"\xff\xd8"
    assert fetch(pair.fast, "GET", EMPTY).body == b""


def test_trash_items_agree(pair):
    item = trash_item(pair)
    for method in ("GET", "HEAD"):
        assert pair.same(method, item).status == 200
    assert pair.same("GET", item, {"Range": "bytes=-10"}).status == 206


# ---- ranges ------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,status", [
    ("bytes=0-99", 206), ("bytes=-100", 206), ("bytes=100-", 206), ("bytes=0-0", 206),
    ("bytes=5-999999999", 206), ("bytes=-999999999", 206), ("bytes=999999999-", 416),
    ("bytes=0-9,20-29", 206), ("bytes=abc", 416), ("items=0-9", 206),
    ("bytes=9-2", 206),  # wsgidav reads the "-2" in it as a suffix range; the fast path agrees
])
def test_ranges_agree_with_wsgidav(pair, spec, status):
    for path in (P1, BIG):
        for method in ("GET", "HEAD"):
            answer = pair.same(method, path, {"Range": spec})
            assert answer.status == status, (path, spec)


def test_range_bytes_are_the_right_bytes(pair):
    data = (pair.srv.lib.config.inbox_dir / "big.bin").read_bytes()
    a = fetch(pair.fast, "GET", BIG, {"Range": "bytes=1048570-2097160"})
    assert a.status == 206 and a.body == data[1048570:2097161]
    assert a.header("Content-Range") == f"bytes 1048570-2097160/{BIG_SIZE}"
    assert fetch(pair.fast, "GET", BIG, {"Range": "bytes=-7"}).body == data[-7:]
    assert fetch(pair.fast, "GET", BIG, {"Range": f"bytes={BIG_SIZE - 3}-"}).body == data[-3:]


def test_a_range_on_an_empty_file_is_ignored_as_wsgidav_does(pair):
    answer = pair.same("GET", EMPTY, {"Range": "bytes=0-9"})
    assert answer.status == 200 and answer.header("Content-Length") == "0"


# ---- conditional requests ----------------------------------------------------------------------
def test_conditional_requests_agree_with_wsgidav(pair):
    first = fetch(pair.fast, "GET", P1)
    etag, modified = first.header("ETag"), first.header("Last-Modified")
    later = formatdate(time.time() + 86400, usegmt=True)
    cases = [
        ({"If-None-Match": etag}, 304), ({"If-None-Match": '"other"'}, 200),
        ({"If-None-Match": "*"}, 304), ({"If-None-Match": f'"x", {etag}'}, 304),
        # wsgidav answers 304 only for a date *after* Last-Modified (its `>`): the same here
        ({"If-Modified-Since": modified}, 200), ({"If-Modified-Since": later}, 304),
        ({"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
        ({"If-None-Match": '"other"', "If-Modified-Since": modified}, 200),
        ({"If-Match": etag}, 200), ({"If-Match": '"other"'}, 412),
        ({"If-Unmodified-Since": modified}, 200),
        ({"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, 412),
        ({"If-Range": etag, "Range": "bytes=0-9"}, 206),
        ({"If-Range": '"other"', "Range": "bytes=0-9"}, 200),
        ({"If": f"([{etag}])"}, 200), ({"If": '(["nope"])'}, 412),
        ({"If-None-Match": etag, "Range": "bytes=0-9"}, 304),
    ]
    for headers, status in cases:
        for method in ("GET", "HEAD"):
            assert pair.same(method, P1, headers).status == status, headers


# ---- what falls through -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/by-date/2021/04/30/", "/by-date/2021/04/30", "/", "/thumbnails/"])
def test_folders_still_get_the_dir_browser(pair, path):
    for method in ("GET", "HEAD"):
        fast, slow = pair.both(method, path)
        assert fast.status == slow.status
        assert fast.header("Content-Type") == slow.header("Content-Type")
    page = fetch(pair.fast, "GET", "/by-date/2021/04/30/")
    assert page.status == 200 and b"IMG_0001.jpg" in page.body
    mount = fetch(pair.fast, "GET", "/by-date/2021/04/30/?davmount")  # the URL names the port
    assert mount.status == 200 and mount.header("Content-Type") == "application/davmount+xml"


@pytest.mark.parametrize("path", [
    "/by-date/2021/04/30/NOPE.jpg", "/nope", "/by-date/2021/04/30/IMG_0001.jpg/x",
    "/thumbnails/by-date/2021/04/30/NOPE.jpg", "/inbox/nope.bin", "/trash/nope.jpg",
])
def test_missing_files_get_wsgidav_404(pair, path):
    for method in ("GET", "HEAD"):
        assert pair.same(method, path).status == 404


@pytest.mark.parametrize("path", [
    "/by-date/2021/04/30/../30/IMG_0001.jpg", "/by-date/2021/04/30/./IMG_0001.jpg",
    "/by-date%2F2021/04/30/IMG_0001.jpg", "/by-date/2021/04/30/IMG_0001.jpg%00",
    "/by-date/2021/04/30/%FF.jpg", "/by-date/2021/04/30/IMG_0001.jpg/",
    "//by-date//2021/04/30//IMG_0001.jpg", "/by-date/2021/04/30/img_0001.JPG",
    "/by-date/2021/04/30/%2e%2e/30/IMG_0001.jpg", "/by-date/2021/04/30/a%5Cb.jpg",
    "/by-date/2021/04/30/" + "x" * 300 + ".jpg", "/by-date/2021/04/30/IMG_0001.jpg?x=1",
    "/:dir_browser/favicon.ico", "/by-date/2021/04/30/%E2%80%AE.jpg",
])
def test_hostile_and_odd_paths_get_the_same_answer(pair, path):
    for method in ("GET", "HEAD"):
        pair.same(method, path)


def test_a_request_body_or_depth_falls_through_to_wsgidav(pair):
    for headers in ({"Depth": "1"}, {"Depth": "infinity"}, {"Depth": "0"}):
        pair.same("GET", P1, headers)
    conn_answers = []
    for port in (pair.fast, pair.slow):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", P1, body=b"abc", headers={"Content-Length": "3"})
        r = conn.getresponse()
        conn_answers.append((r.status, r.getheader("Content-Type")))
        conn.close()
    assert conn_answers[0] == conn_answers[1] and conn_answers[0][0] == 415


# ---- streaming ----------------------------------------------------------------------------------
def _open_fds_on(path: str) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                n += 1
        except OSError:
            pass
    return n


def test_head_sends_no_body_on_the_wire(pair):
    with socket.create_connection(("127.0.0.1", pair.fast), timeout=30) as s:
        s.sendall(f"HEAD {BIG} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {BIG_SIZE}".encode() in head
    assert rest == b""


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="counts open files in /proc")
def test_files_are_closed_also_when_the_client_goes_away(pair):
    big = str(pair.srv.lib.config.inbox_dir / "big.bin")
    for _ in range(5):
        fetch(pair.fast, "GET", BIG)
        fetch(pair.fast, "GET", BIG, {"Range": "bytes=10-2000000"})
    for _ in range(5):  # read a little and hang up mid-body
        with socket.create_connection(("127.0.0.1", pair.fast), timeout=30) as s:
            s.sendall(f"GET {BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.recv(4096)
    deadline = time.time() + 15
    while _open_fds_on(big) and time.time() < deadline:
        time.sleep(0.1)
    assert _open_fds_on(big) == 0


def test_big_files_stream_in_blocks(pair):
    """The body comes in 1 MiB blocks (never the whole file in memory)."""
    from photovfs.dav import fastget

    chunks = list(fastget._body(open(str(pair.srv.lib.config.inbox_dir / "big.bin"), "rb",
                                     buffering=0), 0, BIG_SIZE, 1 << 20))
    assert [len(c) for c in chunks] == [1 << 20] * 3 + [12345]


# ---- authentication ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    photos = make_photos(tmp_path_factory.mktemp("fastget-auth") / "Photos")
    users = Users(photos / ".photovfs" / "users.toml")
    users.add("vic", "viewer", "vic-pw")
    srv = DavServer(photos, users=users).start()
    yield srv
    srv.stop()


def test_authentication_is_still_enforced(secured):
    for method in ("GET", "HEAD"):
        for headers in ({}, {"Range": "bytes=0-9"}, {"If-None-Match": "*"}):
            assert fetch(secured.port, method, P1, headers).status == 401
            assert fetch(secured.port, method, P1, headers, auth=("vic", "nope")).status == 401
            assert fetch(secured.port, method, P1, headers, auth=("eve", "vic-pw")).status == 401
    ok = fetch(secured.port, "GET", P1, auth=("vic", "vic-pw"))
    assert ok.status == 200
    assert ok.body == (secured.photos / "2021/Italy/IMG_0001.jpg").read_bytes()
    assert fetch(secured.port, "GET", P1, {"Range": "bytes=0-9"},
                 auth=("vic", "vic-pw")).status == 206


# ---- the core's one-file rendition lookup (vfs/views/thumbnails.py) -----------------------------
def test_one_rendition_is_found_without_rendering_its_whole_folder(tmp_path):
    from photovfs.errors import NotFound
    from photovfs.library import Library

    lib = Library.open(make_photos(tmp_path / "Photos"))
    try:
        lib.scan()
        node = lib.resolve("thumbnails/by-date/2021/04/30/img_0001.JPG")  # any case, as before
        assert node.name == "IMG_0001.jpg" and node.kind == "rendition"
        sibling = lib.resolve("by-date/2021/04/30/IMG_0002.jpg")
        size = lib.config.thumbnails.view_size
        assert lib._renditions.cached(sibling.etag, size) is None  # only the asked one was made
        assert node == next(n for n in lib.list("thumbnails/by-date/2021/04/30")
                            if n.name == "IMG_0001.jpg")
        with pytest.raises(NotFound):
            lib.resolve("thumbnails/by-date/2021/05/01/IMG_0001.jpg")  # a rendition elsewhere
    finally:
        lib.close()
