"""Users, roles and exposure rules of the WebDAV server (real server, real argon2 hashes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from conftest import free_port
from dav_helpers import DavServer, make_photos, new_photo
from photovfs.dav.server import RefusedToServe, make_server
from photovfs.library import Library
from photovfs.users import Users


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    photos = make_photos(tmp_path_factory.mktemp("auth") / "Photos")
    users = Users(photos / ".photovfs" / "users.toml")
    users.add("ada", "admin", "ada-pw")
    users.add("vic", "viewer", "vic-pw")
    users.add("uma", "uploader", "uma-pw")
    users.add("mel", "member", "mel-pw")
    srv = DavServer(photos, users=users).start()
    yield srv
    srv.stop()


def as_user(srv, name, password, method, path, **kw):
    return requests.request(method, srv.url(path), auth=(name, password), timeout=60, **kw)


def test_requests_without_credentials_are_asked_to_authenticate_with_basic(secured):
    r = requests.get(secured.url("by-date/"), timeout=30)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")


def test_a_wrong_password_is_refused_with_401(secured):
    assert as_user(secured, "vic", "nope", "GET", "by-date/").status_code == 401
    assert as_user(secured, "nobody", "vic-pw", "GET", "by-date/").status_code == 401


def test_a_viewer_can_read_but_not_write(secured, tmp_path):
    assert as_user(secured, "vic", "vic-pw", "GET",
                   "by-date/2021/04/30/IMG_0001.jpg").status_code == 200
    data = new_photo(tmp_path / "v.jpg", 3).read_bytes()
    r = as_user(secured, "vic", "vic-pw", "PUT", "inbox/viewer.jpg", data=data)
    assert r.status_code == 403
    assert "viewers may not change anything" in r.text
    assert as_user(secured, "vic", "vic-pw", "MKCOL", "by-album/V/").status_code == 403


def test_an_uploader_can_put_into_inbox_only(secured, tmp_path):
    data = new_photo(tmp_path / "u.jpg", 4).read_bytes()
    assert as_user(secured, "uma", "uma-pw", "PUT", "inbox/uploader.jpg",
                   data=data).status_code == 201
    assert as_user(secured, "ada", "ada-pw", "MKCOL", "by-album/U/").status_code == 201
    r = as_user(secured, "uma", "uma-pw", "PUT", "by-album/U/uploader.jpg", data=data)
    assert r.status_code == 403
    assert "inbox" in r.text
    assert as_user(secured, "uma", "uma-pw", "MKCOL", "by-album/U2/").status_code == 403


def test_a_member_can_make_albums_and_add_photos(secured):
    assert as_user(secured, "mel", "mel-pw", "MKCOL", "by-album/M/").status_code == 201
    r = as_user(secured, "mel", "mel-pw", "COPY", "by-date/2021/04/30/IMG_0001.jpg",
                headers={"Destination": secured.url("by-album/M/IMG_0001.jpg")})
    assert r.status_code == 201


def test_serving_a_non_loopback_address_without_users_is_refused(tmp_path):
    lib = Library.open(make_photos(tmp_path / "Photos"))
    try:
        with pytest.raises(RefusedToServe, match="without users"):
            make_server(lib, "0.0.0.0", free_port())
        server = make_server(lib, "127.0.0.1", free_port())  # loopback is fine
        assert server is not None
    finally:
        lib.close()


def test_the_user_command_adds_lists_and_removes_users(tmp_path):
    lib = tmp_path / "L"
    lib.mkdir()
    run = [sys.executable, "-m", "photovfs.cli"]
    out = subprocess.run([*run, "user", "add", str(lib), "zoe", "--role", "uploader",
                          "--password-stdin"], input="zoe-pw\n", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    listed = subprocess.run([*run, "user", "list", str(lib)], capture_output=True, text=True)
    assert "zoe\tuploader" in listed.stdout
    text = (lib / ".photovfs" / "users.toml").read_text()
    assert "zoe-pw" not in text and "$argon2id$" in text
    assert Users(lib / ".photovfs" / "users.toml").verify("zoe", "zoe-pw") == "uploader"
    subprocess.run([*run, "user", "remove", str(lib), "zoe"], check=True, capture_output=True)
    assert Users(lib / ".photovfs" / "users.toml").verify("zoe", "zoe-pw") is None


@pytest.mark.slow
def test_serve_prints_its_url_answers_at_once_and_stops_cleanly_on_sigterm(tmp_path):
    photos = make_photos(tmp_path / "Photos")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "photovfs.cli", "serve", str(photos), "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        assert "loopback only" in proc.stdout.readline()
        deadline = time.time() + 60
        while True:
            r = requests.request("PROPFIND", f"http://127.0.0.1:{port}/by-date/",
                                 headers={"Depth": "1"}, timeout=30)
            if r.status_code == 207 and b"2021" in r.content or time.time() > deadline:
                break
            time.sleep(0.2)
        assert b"2021" in r.content  # the background scan filled the views
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
