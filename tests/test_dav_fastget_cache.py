"""The fast GET path's node cache (dav/fastget.py `NodeCache`): repeated GETs of photos and
renditions skip the catalog, and still answer exactly what wsgidav answers, however the library
changed in between (a DELETE over WebDAV, a write by another process's connection, a rendition
evicted from disk).

Two real servers over one library: the fast one (cache on) and wsgidav alone. The SQL statements the
fast server runs are counted on the library's engine, so "from the cache" is a fact, not a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from dav_helpers import Answer, DavServer, make_photos, send
from photovfs.dav.server import run_in_thread
from photovfs.library import Library
from sqlalchemy import event

P1 = "/by-date/2021/04/30/IMG_0001.jpg"
P2 = "/by-date/2021/04/30/IMG_0002.jpg"
THUMB = "/thumbnails/by-date/2021/04/30/IMG_0001.jpg"
THUMB2 = "/thumbnails/originals/2021/Italy/IMG_0002.jpg"
_STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+")


def fetch(port: int, method: str, path: str, headers: dict | None = None) -> Answer:
    return send(port, method, path, headers)


@dataclass
class Pair:
    srv: DavServer
    slow_server: object
    slow_thread: object
    statements: list[str]

    @property
    def fast(self) -> int:
        return self.srv.port

    @property
    def slow(self) -> int:
        return self.slow_server.bind_addr[1]

    def same(self, method: str, path: str, headers: dict | None = None) -> Answer:
        fast, slow = fetch(self.fast, method, path, headers), fetch(self.slow, method, path, headers)
        assert fast.status == slow.status, (method, path, fast.status, slow.status)
        comparable = [[(k.lower(), v) for k, v in a.headers if k.lower() != "date"]
                      for a in (fast, slow)]
        assert comparable[0] == comparable[1], (method, path)
        assert _STAMP.sub(b"", fast.body) == _STAMP.sub(b"", slow.body), (method, path)
        return fast

    def fast_sql(self, method: str, path: str, headers: dict | None = None) -> tuple[Answer, int]:
        """The fast server's answer and how many SQL statements the library ran for it."""
        before = len(self.statements)
        answer = fetch(self.fast, method, path, headers)
        return answer, len(self.statements) - before


@pytest.fixture
def pair(tmp_path):
    srv = DavServer(make_photos(tmp_path / "Photos")).start()
    statements: list[str] = []
    event.listen(srv.lib.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_a: statements.append(statement))
    slow_server, slow_thread = run_in_thread(srv.lib, "127.0.0.1", 0, fast_get=False)
    yield Pair(srv, slow_server, slow_thread, statements)
    slow_server.stop()
    slow_thread.join(5)
    srv.stop()


def test_a_repeated_get_runs_no_sql_and_answers_like_wsgidav(pair):
    for path in (P1, THUMB, THUMB2):
        first = pair.same("GET", path)
        assert first.status == 200
        again, sql = pair.fast_sql("GET", path)
        assert sql == 0, path
        assert (again.status, again.headers[:1], again.body) == \
            (200, first.headers[:1], first.body)
        for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-9"}),
                                ("GET", {"If-None-Match": first.header("ETag")})):
            pair.same(method, path, headers)  # from the cache now, still wsgidav's answer


def test_cached_renditions_carry_wsgidav_headers(pair):
    pair.same("GET", THUMB)
    cached = pair.same("GET", THUMB)
    assert cached.header("Content-Type") == "image/jpeg"
    assert cached.header("ETag").startswith('"') and cached.header("Last-Modified")
    assert int(cached.header("Content-Length")) == len(cached.body) > 0
    assert cached.body[:2] == b"\xff\xd8"


def test_a_photo_deleted_over_webdav_is_gone_at_once(pair):
    assert fetch(pair.fast, "GET", P2).status == 200
    assert fetch(pair.fast, "GET", P2).status == 200  # cached
    assert pair.srv.request("DELETE", P2.lstrip("/")).status_code == 204
    assert pair.same("GET", P2).status == 404
    assert pair.same("GET", "/thumbnails" + P2).status == 404


def test_a_change_by_another_process_connection_is_seen(pair):
    pair.srv.request("MKCOL", "by-album/Trip/")
    pair.srv.request("COPY", P1.lstrip("/"),
                     headers={"Destination": pair.srv.url("by-album/Trip/IMG_0001.jpg")})
    member = "/by-album/Trip/IMG_0001.jpg"
    assert fetch(pair.fast, "GET", member).status == 200
    assert fetch(pair.fast, "GET", member).status == 200  # cached
    other = Library.open(pair.srv.photos)  # like a FUSE mount: its own engine and connections
    try:
        other.remove(member.lstrip("/"))
    finally:
        other.close()
    assert pair.same("GET", member).status == 404


def test_an_evicted_rendition_is_made_again_with_its_true_size(pair):
    first = pair.same("GET", THUMB)
    node = pair.srv.lib.resolve(THUMB.lstrip("/"))
    node.source.write_bytes(first.body + b"\0" * 100)  # changed behind the cache's back
    answer = fetch(pair.fast, "GET", THUMB)
    assert int(answer.header("Content-Length")) == len(answer.body)
    assert answer.status == 200
    node.source.unlink()  # evicted
    again = pair.same("GET", THUMB)
    assert again.status == 200 and int(again.header("Content-Length")) == len(again.body)


def test_remembered_bytes_follow_the_file_on_disk(pair):
    """Small files are kept in memory after a repeated GET; a file rewritten in place (same
    size, new mtime) or replaced by another file (same size and mtime, new inode) is read again."""
    import os

    original = pair.srv.photos / "2021/Italy/IMG_0001.jpg"
    for _ in range(3):
        assert fetch(pair.fast, "GET", P1).body == original.read_bytes()  # now from memory
    st = os.stat(original)
    flipped = bytearray(original.read_bytes())
    flipped[-3] ^= 0xFF  # same size, other bytes
    original.write_bytes(bytes(flipped))
    os.utime(original, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert fetch(pair.fast, "GET", P1).body == bytes(flipped)
    assert fetch(pair.fast, "GET", P1).body == bytes(flipped)
    st = os.stat(original)
    restored = original.with_suffix(".tmp")
    flipped[-3] ^= 0xFF
    restored.write_bytes(bytes(flipped))
    os.utime(restored, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime, new inode
    os.replace(restored, original)
    assert fetch(pair.fast, "GET", P1).body == bytes(flipped)
    ranged = fetch(pair.fast, "GET", P1, {"Range": "bytes=2-9"})
    assert ranged.status == 206 and ranged.body == bytes(flipped)[2:10]


# ---- the Guard's hot path: a file served moments ago is answered before wsgidav ----------------
class _Counting:
    """Wraps the application under the Guard (wsgidav) and counts the requests that reach it."""

    def __init__(self, app) -> None:
        self.app, self.calls = app, 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.app(environ, start_response)


def test_a_repeated_get_is_answered_before_wsgidav_with_wsgidavs_answer(pair):
    guard = pair.srv.server.wsgi_app
    counting = guard.app = _Counting(guard.app)
    try:
        pair.same("GET", P1)  # found, and remembered
        reached = counting.calls
        for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=2-9"}),
                                ("GET", {"If-None-Match": fetch(pair.fast, "HEAD", P1)
                                         .header("ETag")})):
            pair.same(method, P1, headers)
        assert counting.calls == reached  # none of them went through wsgidav
        for method, headers in (("GET", {"Depth": "1"}), ("PROPFIND", {"Depth": "0"}),
                                ("GET", {"If-Range": '"x"'})):
            fetch(pair.fast, method, P1, headers)
        fetch(pair.fast, "GET", P1 + "?davmount")
        assert counting.calls == reached + 4  # the rarer requests still do
    finally:
        guard.app = counting.app


def test_the_hot_path_still_asks_for_credentials(tmp_path):
    from photovfs.users import Users

    photos = make_photos(tmp_path / "Photos")
    users = Users(photos / ".photovfs" / "users.toml")
    users.add("vic", "viewer", "vic-pw")
    srv = DavServer(photos, users=users).start()
    try:
        ok = send(srv.port, "GET", P1, auth=("vic", "vic-pw"))
        assert ok.status == 200
        assert send(srv.port, "GET", P1, auth=("vic", "vic-pw")).body == ok.body  # remembered
        for auth in (None, ("vic", "nope"), ("eve", "vic-pw")):
            for method in ("GET", "HEAD"):
                assert send(srv.port, method, P1, auth=auth).status == 401, (method, auth)
        assert send(srv.port, "GET", P1, {"Authorization": "Basic !!notbase64"}).status in \
            (400, 401, 500)  # wsgidav's answer to a broken header: never the photo
        users.remove("vic")
        assert send(srv.port, "GET", P1, auth=("vic", "vic-pw")).status == 401
    finally:
        srv.stop()
