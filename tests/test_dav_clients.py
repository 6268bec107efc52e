"""Real clients against a real server: scripted Finder and Windows sequences, litmus, rclone,
cadaver."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from dav_helpers import (
    FINDER_PROPFIND,
    LOCK_BODY,
    WIN32_PROPPATCH,
    WINDOWS_PROPFIND,
    DavServer,
    have,
    make_photos,
    new_photo,
    sha256,
)
from photovfs.catalog.models import Asset
from sqlalchemy import func, select


@pytest.fixture(scope="module")
def dav(tmp_path_factory):
    photos = make_photos(tmp_path_factory.mktemp("clients") / "Photos")
    srv = DavServer(photos).start()
    srv.request("MKCOL", "by-album/A/")
    yield srv
    srv.stop()


def asset_count(lib) -> int:
    with lib.session() as s:
        return s.scalar(select(func.count(Asset.id)))


# ---- Finder ----------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", ["by-date/2021/04/30", "inbox", "by-album/A"])
def test_the_finder_sequence_works_in_every_kind_of_folder(dav, folder):
    s = dav
    assert s.request("OPTIONS", folder + "/").status_code == 200
    assert s.request("PROPFIND", folder + "/", data=FINDER_PROPFIND,
                     headers={"Depth": "0"}).status_code == 207
    assert s.request("PROPFIND", folder + "/", data=FINDER_PROPFIND,
                     headers={"Depth": "1"}).status_code == 207
    before = asset_count(s.lib)
    # Finder probes, then writes AppleDouble and .DS_Store files beside the photos
    assert s.request("PROPFIND", f"{folder}/._IMG_0001.jpg", data=FINDER_PROPFIND,
                     headers={"Depth": "0"}).status_code == 404
    for name, data in (("._IMG_0001.jpg", b"\x00\x05\x16\x07apple double"),
                       (".DS_Store", b"\x00\x00\x00\x01Bud1")):
        r = s.request("PUT", f"{folder}/{name}", data=b"")
        assert r.status_code in (201, 204), (name, r.status_code, r.text)
        r = s.request("LOCK", f"{folder}/{name}", data=LOCK_BODY,
                      headers={"Depth": "0", "Timeout": "Second-600"})
        assert r.status_code == 200, (name, r.status_code, r.text)
        token = r.headers["Lock-Token"]
        r = s.request("PUT", f"{folder}/{name}", data=data, headers={"If": f"({token})"})
        assert r.status_code in (201, 204)
        assert s.request("UNLOCK", f"{folder}/{name}",
                         headers={"Lock-Token": token}).status_code == 204
        assert s.request("GET", f"{folder}/{name}").content == data
    assert asset_count(s.lib) == before  # side files never become photos


# ---- Windows mini-redirector ------------------------------------------------------------------
@pytest.mark.parametrize("folder", ["inbox", "by-album/A"])
def test_the_windows_sequence_never_takes_the_empty_put_as_a_photo(dav, folder, tmp_path):
    s = dav
    name = f"win-{folder.replace('/', '-')}.jpg"
    data = new_photo(tmp_path / name, 11 if folder == "inbox" else 12).read_bytes()
    headers = {"User-Agent": "Microsoft-WebDAV-MiniRedir/10.0.19045"}
    assert s.request("PROPFIND", folder + "/", data=WINDOWS_PROPFIND,
                     headers={"Depth": "1", **headers}).status_code == 207
    assert s.request("PROPFIND", f"{folder}/{name}", data=WINDOWS_PROPFIND,
                     headers={"Depth": "0", **headers}).status_code == 404
    before = asset_count(s.lib)
    r = s.request("PUT", f"{folder}/{name}", data=b"", headers=headers)
    assert r.status_code == 201, r.text
    assert asset_count(s.lib) == before
    r = s.request("LOCK", f"{folder}/{name}", data=LOCK_BODY,
                  headers={"Depth": "0", "Timeout": "Second-3600", **headers})
    assert r.status_code == 200, r.text
    token = r.headers["Lock-Token"]
    r = s.request("PUT", f"{folder}/{name}", data=data, headers={"If": f"({token})", **headers})
    assert r.status_code in (201, 204), r.text
    r = s.request("PROPPATCH", f"{folder}/{name}", data=WIN32_PROPPATCH,
                  headers={"If": f"({token})", **headers})
    assert r.status_code == 207 and "500" not in r.text
    assert s.request("UNLOCK", f"{folder}/{name}",
                     headers={"Lock-Token": token, **headers}).status_code == 204
    got = s.request("GET", f"{folder}/{name}")
    assert got.status_code == 200
    assert sha256(got.content) == sha256(data)
    listing = s.propfind(folder + "/", "1")
    sizes = {h.rsplit("/", 1)[1]: p.get("{DAV:}getcontentlength") for h, p in listing.items()}
    assert sizes[name] == str(len(data))
    if folder.startswith("by-album"):
        assert asset_count(s.lib) == before + 1


# ---- litmus ----------------------------------------------------------------------------------
_SUMMARY = re.compile(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")
_FAIL = re.compile(r"(\d+)\. (\w+)\.+ FAIL \((.*)")
SUITES = ("basic", "copymove", "props", "locks", "http")


def run_litmus(url: str, cwd) -> tuple[dict[str, tuple[int, int]], list[tuple[str, str]], str]:
    out = subprocess.run(["litmus", "-k", url], capture_output=True, cwd=cwd, timeout=900,
                         env={**os.environ, "TESTS": " ".join(SUITES)})
    text = out.stdout.decode("utf-8", "replace")
    summary = {m[1]: (int(m[3]), int(m[4])) for m in _SUMMARY.finditer(text)}
    fails = [(m[2], m[3]) for m in _FAIL.finditer(text)]
    return summary, fails, text


@pytest.mark.slow
@pytest.mark.skipif(not have("litmus"), reason="litmus is not installed")
def test_litmus_passes_every_suite_against_inbox(dav, tmp_path):
    summary, fails, text = run_litmus(dav.url("inbox/"), tmp_path)
    assert set(summary) == set(SUITES), text[-2000:]
    assert not fails, fails
    assert all(failed == 0 for _, failed in summary.values()), summary


#: litmus stores text files; an album holds photos, so these PUTs are refused with 415 (by design:
#: see docs/webdav.md) and the tests that need the file fail or are skipped after them.
ALBUM_FAILS_BY_DESIGN = {
    "put_get", "put_get_utf8_segment", "copy_init", "copy_coll", "copy_shallow", "move",
    "move_coll", "propinit", "propmanyns", "put", "owner_modify", "cond_put",
    "cond_put_with_not", "complex_cond_put", "lock_collection", "indirect_refresh",
}


@pytest.mark.slow
@pytest.mark.skipif(not have("litmus"), reason="litmus is not installed")
def test_litmus_against_an_album_fails_only_where_it_stores_non_photos(dav, tmp_path):
    summary, fails, text = run_litmus(dav.url("by-album/"), tmp_path)
    assert set(summary) == set(SUITES), text[-2000:]
    assert " 500 " not in text
    assert {name for name, _ in fails} <= ALBUM_FAILS_BY_DESIGN, fails
    assert any("415" in why for _, why in fails)
    assert summary["http"][1] == 0


@pytest.mark.slow
@pytest.mark.skipif(not have("litmus"), reason="litmus is not installed")
@pytest.mark.parametrize("view", ["by-date/", "by-place/", "thumbnails/"])
def test_litmus_against_a_read_only_view_only_meets_correct_refusals(dav, tmp_path, view):
    summary, fails, text = run_litmus(dav.url(view), tmp_path)
    assert " 500 " not in text
    assert fails
    for name, why in fails:
        assert "403" in why or "405" in why, (name, why)


# ---- rclone ----------------------------------------------------------------------------------
def rclone(srv, *args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "RCLONE_CONFIG_PV_TYPE": "webdav", "RCLONE_CONFIG_PV_URL": srv.base + "/",
           "RCLONE_CONFIG_PV_VENDOR": "other"}
    out = subprocess.run(["rclone", "--config", "/dev/null", *args], capture_output=True, text=True,
                         env=env, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.mark.slow
@pytest.mark.skipif(not have("rclone"), reason="rclone is not installed")
def test_rclone_lists_a_view_recursively(dav):
    out = rclone(dav, "lsjson", "-R", "pv:by-date")
    entries = {e["Path"]: e for e in json.loads(out.stdout)}
    assert entries["2021/04/30/IMG_0001.jpg"]["Size"] == \
        (dav.photos / "2021" / "Italy" / "IMG_0001.jpg").stat().st_size
    assert entries["2021"]["IsDir"]


@pytest.mark.slow
@pytest.mark.skipif(not have("rclone"), reason="rclone is not installed")
def test_rclone_check_finds_the_originals_identical_to_the_source_folder(tmp_path):
    photos = make_photos(tmp_path / "Photos")
    srv = DavServer(photos).start()
    try:
        rclone(srv, "check", "--download", "--one-way", "--exclude", ".photovfs/**",
               str(photos), "pv:originals")
    finally:
        srv.stop()


@pytest.mark.slow
@pytest.mark.skipif(not have("rclone"), reason="rclone is not installed")
def test_rclone_copies_a_local_folder_into_inbox(dav, tmp_path):
    local = tmp_path / "card"
    sums = {}
    for i in range(5):
        p = new_photo(local / f"DSC_{i:04d}.jpg", 40 + i)
        sums[p.name] = sha256(p.read_bytes())
    rclone(dav, "copy", str(local), "pv:inbox/card")
    for name, digest in sums.items():
        r = dav.request("GET", f"inbox/card/{name}")
        assert r.status_code == 200, name
        assert sha256(r.content) == digest


# ---- cadaver ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not have("cadaver"), reason="cadaver is not installed")
def test_cadaver_lists_gets_and_puts(dav, tmp_path):
    upload = new_photo(tmp_path / "cad.jpg", 60)
    script = (f"ls\ncd by-date/2021/04/30\nls\nget IMG_0001.jpg\ncd /inbox\n"
              f"put {upload} cad.jpg\nls\nquit\n")
    out = subprocess.run(["cadaver", dav.base + "/"], input=script, capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert "IMG_0002.jpg" in out.stdout
    assert "succeeded" in out.stdout and "failed" not in out.stdout.replace("0 failed", "")
    assert (tmp_path / "IMG_0001.jpg").read_bytes() == \
        (dav.photos / "2021" / "Italy" / "IMG_0001.jpg").read_bytes()
    assert sha256(dav.request("GET", "inbox/cad.jpg").content) == sha256(upload.read_bytes())
