"""Fast COPY/MOVE into albums (dav/fastcopy.py): the same answers and the same library as wsgidav's.

Two twin libraries (the same photos, scanned alike) are served by two real servers: one with the
fast path, one without (`fast_copy=False`). Every request goes to both, with the Destination naming
each server's own host, and the status, the headers in order (except Date), the body and then the
album's members and the dead properties must agree. A probe on the provider checks that the fast
server answered the common cases without wsgidav's resource machinery, so the comparisons cannot
pass by both paths being wsgidav.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from dav_helpers import LOCK_BODY, Answer, make_photos, send
from photovfs.dav.provider import PhotoProvider
from photovfs.dav.server import close_lock_storage, run_in_thread
from photovfs.library import Library
from photovfs.users import Users

P1 = "/by-date/2021/04/30/IMG_0001.jpg"
P2 = "/by-date/2021/04/30/IMG_0002.jpg"
CAFE = "/by-date/2021/05/01/Caf%C3%A9.jpg"
P100 = "/by-date/2022/07/14/IMG_0100.jpg"
_STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+")  # wsgidav error pages carry the time
DEAD_PROP = b"""<?xml version="1.0" encoding="utf-8" ?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:example:"><D:set><D:prop>
<Z:colour>teal</Z:colour></D:prop></D:set></D:propertyupdate>"""
COLOUR = b"""<?xml version="1.0" encoding="utf-8" ?>
<D:propfind xmlns:D="DAV:" xmlns:Z="urn:example:"><D:prop><Z:colour/></D:prop></D:propfind>"""


def _comparable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in headers if k.lower() != "date"]


@dataclass
class Server:
    lib: Library
    server: object
    thread: object

    @property
    def port(self) -> int:
        return self.server.bind_addr[1]

    @property
    def resource_lookups(self) -> int:
        provider: PhotoProvider = self.server.wsgi_app.app.provider_map["/"]
        return provider._count_get_resource_inst

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(5)
        close_lock_storage(self.lib)
        self.lib.close()


def start(root: Path, users: Users | None = None, twin_of: Server | None = None, **kw) -> Server:
    """A served library; `twin_of`: the same photos, times included (so Last-Modified agrees)."""
    if twin_of is None:
        photos = make_photos(root / "Photos")
    else:
        photos = root / "Photos"
        shutil.copytree(twin_of.lib.config.library, photos,
                        ignore=shutil.ignore_patterns(".photovfs"))
    lib = Library.open(photos)
    lib.scan()
    if users is not None:
        kw["users"] = users
    server, thread = run_in_thread(lib, "127.0.0.1", 0, **kw)
    return Server(lib, server, thread)


@dataclass
class Twins:
    fast: Server
    slow: Server
    auth: tuple[str, str] | None = None

    def both(self, method: str, path: str, dest: str | None = None, headers: dict | None = None,
             body: bytes | None = None, auth: tuple[str, str] | None = None,
             dest_host: str | None = None) -> tuple[Answer, Answer]:
        out = []
        for srv in (self.fast, self.slow):
            hdrs = dict(headers or {})
            if dest is not None:
                host = dest_host or f"127.0.0.1:{srv.port}"
                hdrs["Destination"] = dest if "://" in dest else f"http://{host}{dest}"
            out.append(send(srv.port, method, path, hdrs, body, auth or self.auth))
        return out[0], out[1]

    def same(self, method: str, path: str, dest: str | None = None, headers: dict | None = None,
             **kw) -> Answer:
        """Ask both servers; assert the answers and the resulting albums agree."""
        fast, slow = self.both(method, path, dest, headers, **kw)
        case = (method, path, dest, headers)
        assert fast.status == slow.status, (case, fast.status, slow.status, slow.body[:300])
        assert _comparable(fast.headers) == _comparable(slow.headers), case
        assert _STAMP.sub(b"", fast.body) == _STAMP.sub(b"", slow.body), case
        assert self.albums(self.fast) == self.albums(self.slow), case
        return fast

    def albums(self, srv: Server) -> dict[str, list[str]]:
        """Every album's members and placeholders, by album path."""
        out = {}
        todo = ["by-album"]
        while todo:
            folder = todo.pop()
            children = srv.lib.list(folder)
            out[folder] = sorted(f"{c.name}:{c.kind}" for c in children)
            todo += [c.path for c in children if c.is_dir]
        return out

    def colour(self, srv: Server, path: str) -> bytes:
        return send(srv.port, "PROPFIND", path, {"Depth": "0"}, COLOUR, self.auth).body

    def fast_answered(self, fn) -> Answer:
        """Run `fn` (a `same` call) and check the fast server built no wsgidav resource for it."""
        before = self.fast.resource_lookups
        answer = fn()
        assert self.fast.resource_lookups == before, "the fast path did not answer"
        return answer

    def mkcol(self, album: str) -> None:
        for srv in (self.fast, self.slow):
            assert send(srv.port, "MKCOL", album, auth=self.auth).status == 201


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    fast = start(tmp_path_factory.mktemp("fastcopy"))
    slow = start(tmp_path_factory.mktemp("slowcopy"), twin_of=fast, fast_copy=False)
    yield Twins(fast, slow)
    fast.stop()
    slow.stop()


# ---- the common case: answered by the fast path, as wsgidav answers it -------------------------
def test_copy_into_an_album_is_201_then_204_with_overwrite(twins):
    twins.mkcol("/by-album/Trip/")
    new = twins.fast_answered(lambda: twins.same("COPY", P1, "/by-album/Trip/IMG_0001.jpg"))
    assert new.status == 201
    again = twins.fast_answered(lambda: twins.same("COPY", P1, "/by-album/Trip/IMG_0001.jpg",
                                                   {"Overwrite": "T"}))
    assert again.status == 204
    assert twins.fast_answered(lambda: twins.same("COPY", P1, "/by-album/Trip/IMG_0001.jpg")
                               ).status == 204  # Overwrite defaults to T
    assert twins.albums(twins.fast)["by-album/Trip"] == ["IMG_0001.jpg:asset"]
    assert send(twins.fast.port, "GET", "/by-album/Trip/IMG_0001.jpg").body == \
        (twins.fast.lib.config.library / "2021/Italy/IMG_0001.jpg").read_bytes()


def test_overwrite_f_onto_a_member_is_412_and_changes_nothing(twins):
    twins.mkcol("/by-album/Keep/")
    twins.same("COPY", P2, "/by-album/Keep/IMG_0002.jpg")
    assert twins.same("COPY", P2, "/by-album/Keep/IMG_0002.jpg",
                      {"Overwrite": "F"}).status == 412
    assert twins.same("COPY", P2, "/by-album/Keep/IMG_0002.jpg",
                      {"Overwrite": "f"}).status == 412
    assert twins.same("COPY", P2, "/by-album/Keep/x.jpg", {"Overwrite": "maybe"}).status == 400


@pytest.mark.parametrize("depth", [None, "0", "infinity", "Infinity", "1"])
def test_every_depth_agrees(twins, depth):
    album = f"/by-album/Depth-{depth}-{depth and depth[0].isupper()}/"  # album names ignore case
    twins.mkcol(album)
    headers = {"Depth": depth} if depth else {}
    answer = twins.same("COPY", CAFE, album + "Caf%C3%A9.jpg", headers)
    assert answer.status == (400 if depth == "1" else 201)


def test_move_into_an_album_adds_by_reference_and_keeps_the_source(twins):
    twins.mkcol("/by-album/Moved/")
    assert twins.fast_answered(lambda: twins.same("MOVE", P100, "/by-album/Moved/IMG_0100.jpg")
                               ).status == 201
    assert twins.same("GET", P100).status == 200  # the photo stays where it was
    assert twins.fast_answered(lambda: twins.same("MOVE", P100, "/by-album/Moved/IMG_0100.jpg")
                               ).status == 204
    assert twins.same("MOVE", P100, "/by-album/Moved/IMG_0100.jpg",
                      {"Overwrite": "F"}).status == 412


def test_a_different_destination_name_still_adds_the_photo_under_its_own_name(twins):
    twins.mkcol("/by-album/Renamed/")
    assert twins.same("COPY", P1, "/by-album/Renamed/holiday.jpg").status == 201
    assert twins.albums(twins.fast)["by-album/Renamed"] == ["IMG_0001.jpg:asset"]
    assert twins.same("COPY", P2, "/by-album/renamed/IMG_0002.jpg").status == 201  # any case


def test_copies_from_other_views_agree(twins):
    twins.mkcol("/by-album/Views/")
    for src in ("/originals/2021/Italy/IMG_0002.jpg", "/thumbnails/by-date/2022/07/14/IMG_0100.jpg",
                "/by-album/Trip/IMG_0001.jpg", "/inbox/", "/by-date/2021/04/30/"):
        name = src.rstrip("/").rsplit("/", 1)[-1]
        twins.same("COPY", src, f"/by-album/Views/{name}")


# ---- what falls through: wsgidav's answers ---------------------------------------------------------
def test_a_missing_album_is_409_and_a_missing_source_404(twins):
    assert twins.same("COPY", P1, "/by-album/Nope/IMG_0001.jpg").status == 409
    assert twins.same("COPY", P1, "/by-album/Nope/Deeper/IMG_0001.jpg").status == 409
    assert twins.same("MOVE", P1, "/by-album/Nope/IMG_0001.jpg").status == 409
    twins.mkcol("/by-album/Missing/")
    assert twins.same("COPY", "/by-date/2021/04/30/NOPE.jpg",
                      "/by-album/Missing/NOPE.jpg").status == 404
    assert twins.same("MOVE", "/by-date/2021/04/30/NOPE.jpg",
                      "/by-album/Missing/NOPE.jpg").status == 404


@pytest.mark.parametrize("dest", [
    "http://elsewhere.example:80/by-album/Hostile/IMG_0001.jpg",  # another host: 502
    "https://127.0.0.1/by-album/Hostile/IMG_0001.jpg",  # another scheme
    "/by-album/Hostile/../Hostile/IMG_0001.jpg", "/by-album/Hostile/%2e%2e/IMG_0001.jpg",
    "/by-album/Hostile%2FIMG_0001.jpg", "/by-album/Hostile/IMG_0001.jpg%00",
    "/by-album/Hostile/a%5Cb.jpg", "/by-album/Hostile/IMG_0001.jpg?x=1",
    "/by-album/Hostile/IMG_0001.jpg#frag", "/by-album/Hostile/IMG_0001.jpg/",
    "/by-album/Hostile/", "/by-album/Hostile", "/by-album/x.jpg", "/by-album/",
    "/by-date/2021/04/30/IMG_0009.jpg", "/inbox/IMG_0001.jpg", "/", "",
    "//by-album//Hostile//IMG_0001.jpg", "/by-album/Hostile/" + "x" * 300 + ".jpg",
    "/by-album/Hostile/%E2%80%AE.jpg",
])
def test_hostile_and_odd_destinations_get_the_same_answer(twins, dest):
    if not hasattr(twins, "hostile"):
        twins.mkcol("/by-album/Hostile/")
        twins.hostile = True
    for method in ("COPY", "MOVE"):
        twins.same(method, P2, dest)


def test_copy_onto_itself_or_an_album_folder_agrees(twins):
    twins.mkcol("/by-album/Self/")
    twins.same("COPY", P1, "/by-album/Self/IMG_0001.jpg")
    assert twins.same("COPY", "/by-album/Self/IMG_0001.jpg",
                      "/by-album/Self/IMG_0001.jpg").status == 403
    twins.mkcol("/by-album/Self/Sub/")
    twins.same("COPY", P1, "/by-album/Self/Sub", {"Overwrite": "F"})


def test_a_body_and_conditional_headers_fall_through(twins):
    twins.mkcol("/by-album/Cond/")
    etag = send(twins.fast.port, "HEAD", P1).header("ETag")
    twins.same("COPY", P1, "/by-album/Cond/IMG_0001.jpg", {"If-Match": '"nope"'})
    twins.same("COPY", P1, "/by-album/Cond/IMG_0001.jpg", {"If-Match": etag})
    twins.same("COPY", P2, "/by-album/Cond/IMG_0002.jpg", {"If": '(["nope"])'})
    twins.same("COPY", P2, "/by-album/Cond/IMG_0002.jpg", {"Content-Type": "text/xml"},
               body=b"<x/>")


def test_a_placeholder_at_the_destination_falls_through(twins):
    twins.mkcol("/by-album/Windows/")
    for srv in (twins.fast, twins.slow):  # Explorer's empty PUT before the content
        assert send(srv.port, "PUT", "/by-album/Windows/IMG_0001.jpg", body=b"").status in (201, 204)
    twins.same("COPY", P1, "/by-album/Windows/IMG_0001.jpg", {"Overwrite": "F"})
    twins.same("COPY", P1, "/by-album/Windows/IMG_0001.jpg")


# ---- locks ---------------------------------------------------------------------------------------
def _lock(twins: Twins, path: str, depth: str) -> list[str]:
    tokens = []
    for srv in (twins.fast, twins.slow):
        r = send(srv.port, "LOCK", path, {"Depth": depth, "Content-Type": "text/xml"}, LOCK_BODY,
                 twins.auth)
        assert r.status in (200, 201), (path, r.status, r.body[:300])
        tokens.append(r.header("Lock-Token"))
    return tokens


def _unlock(twins: Twins, path: str, tokens: list[str]) -> None:
    for srv, token in zip((twins.fast, twins.slow), tokens, strict=True):
        assert send(srv.port, "UNLOCK", path, {"Lock-Token": token}, auth=twins.auth).status == 204


def test_a_locked_album_refuses_with_423_unless_the_token_is_sent(twins):
    twins.mkcol("/by-album/Locked/")
    tokens = _lock(twins, "/by-album/Locked/", "infinity")
    assert twins.same("COPY", P1, "/by-album/Locked/IMG_0001.jpg").status == 423
    assert twins.same("COPY", P1, "/by-album/locked/IMG_0001.jpg").status == 423  # other spelling
    assert twins.same("MOVE", P1, "/by-album/Locked/IMG_0001.jpg").status == 423
    fast, slow = twins.both("COPY", P1, "/by-album/Locked/IMG_0001.jpg")
    assert fast.status == slow.status == 423
    for srv, token in zip((twins.fast, twins.slow), tokens, strict=True):
        album = f"http://127.0.0.1:{srv.port}/by-album/Locked/"
        r = send(srv.port, "COPY", P1, {"Destination": album + "IMG_0001.jpg",
                                        "If": f"<{album}> ({token})"})
        assert r.status == 201, r.body
    assert twins.albums(twins.fast) == twins.albums(twins.slow)
    _unlock(twins, "/by-album/Locked/", tokens)
    assert twins.fast_answered(lambda: twins.same("COPY", P2, "/by-album/Locked/IMG_0002.jpg")
                               ).status == 201


def test_a_depth_0_lock_on_the_album_and_a_locked_member_refuse_too(twins):
    twins.mkcol("/by-album/Shallow/")
    twins.same("COPY", P1, "/by-album/Shallow/IMG_0001.jpg")
    tokens = _lock(twins, "/by-album/Shallow/", "0")
    assert twins.same("COPY", P2, "/by-album/Shallow/IMG_0002.jpg").status == 423
    twins.same("COPY", P1, "/by-album/Shallow/IMG_0001.jpg")  # an existing member: wsgidav's call
    _unlock(twins, "/by-album/Shallow/", tokens)
    tokens = _lock(twins, "/by-album/Shallow/IMG_0001.jpg", "0")
    assert twins.same("COPY", P1, "/by-album/Shallow/IMG_0001.jpg").status == 423
    assert twins.same("COPY", P2, "/by-album/Shallow/IMG_0002.jpg").status == 201
    _unlock(twins, "/by-album/Shallow/IMG_0001.jpg", tokens)


def test_a_locked_source_blocks_a_move_but_not_a_copy(twins):
    twins.mkcol("/by-album/Source/")
    tokens = _lock(twins, P2, "0")
    assert twins.same("MOVE", P2, "/by-album/Source/IMG_0002.jpg").status == 423
    assert twins.same("COPY", P2, "/by-album/Source/IMG_0002.jpg").status == 201
    _unlock(twins, P2, tokens)
    tokens = _lock(twins, "/by-album/", "infinity")  # a lock above every album
    assert twins.same("COPY", P1, "/by-album/Source/IMG_0001.jpg").status == 423
    _unlock(twins, "/by-album/", tokens)


# ---- dead properties follow as with wsgidav ---------------------------------------------------------
def test_dead_properties_are_copied_and_moved_like_wsgidav(twins):
    twins.mkcol("/by-album/Props/")
    for srv in (twins.fast, twins.slow):
        assert send(srv.port, "PROPPATCH", CAFE, {"Content-Type": "text/xml"}, DEAD_PROP).status == 207
    twins.same("COPY", CAFE, "/by-album/Props/Caf%C3%A9.jpg")
    member = "/by-album/Props/Caf%C3%A9.jpg"
    for srv in (twins.fast, twins.slow):
        assert b"teal" in twins.colour(srv, member)
        assert b"teal" in twins.colour(srv, CAFE)
    twins.mkcol("/by-album/Props2/")
    twins.same("MOVE", CAFE, "/by-album/Props2/Caf%C3%A9.jpg")
    answers = [(twins.colour(s, CAFE), twins.colour(s, "/by-album/Props2/Caf%C3%A9.jpg"))
               for s in (twins.fast, twins.slow)]
    assert answers[0] == answers[1]
    assert b"teal" in answers[0][1] and b"teal" not in answers[0][0]  # MOVE took them along


# ---- roles ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    def users(root: Path) -> Users:
        u = Users(root / "users.toml")
        u.add("vic", "viewer", "vic-pw")
        u.add("upa", "uploader", "upa-pw")
        u.add("mem", "member", "mem-pw")
        return u

    a, b = tmp_path_factory.mktemp("fastcopy-auth"), tmp_path_factory.mktemp("slowcopy-auth")
    fast = start(a, users(a))
    slow = start(b, users(b), twin_of=fast, fast_copy=False)
    twins = Twins(fast, slow, auth=("mem", "mem-pw"))
    twins.mkcol("/by-album/Family/")
    yield twins
    fast.stop()
    slow.stop()


@pytest.mark.parametrize("who,status", [
    (("vic", "vic-pw"), 403), (("upa", "upa-pw"), 403), (("mem", "nope"), 401), (None, 401),
])
def test_roles_that_may_not_add_are_refused(secured, who, status):
    for method in ("COPY", "MOVE"):
        fast, slow = (send(s.port, method, P1, {"Destination": f"http://127.0.0.1:{s.port}"
                                                "/by-album/Family/IMG_0001.jpg"}, auth=who)
                      for s in (secured.fast, secured.slow))
        assert fast.status == slow.status == status
        assert _comparable(fast.headers) == _comparable(slow.headers)
    assert secured.albums(secured.fast)["by-album/Family"] == []


def test_a_member_may_add(secured):
    assert secured.fast_answered(lambda: secured.same("COPY", P1, "/by-album/Family/IMG_0001.jpg")
                                 ).status == 201
    assert secured.albums(secured.fast)["by-album/Family"] == ["IMG_0001.jpg:asset"]
