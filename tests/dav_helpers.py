"""Helpers for the WebDAV tests: a real server on 127.0.0.1 over a real library, and small clients."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote

import requests
from conftest import jpeg_with_date
from photovfs.dav.server import close_lock_storage, run_in_thread
from photovfs.library import Library

DAV = "{DAV:}"

FINDER_PROPFIND = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop>
<D:getlastmodified/><D:getcontentlength/><D:creationdate/><D:resourcetype/>
<D:getetag/><D:quota-available-bytes/><D:quota-used-bytes/>
</D:prop></D:propfind>"""

WINDOWS_PROPFIND = b"""<?xml version="1.0" encoding="utf-8" ?>
<D:propfind xmlns:D="DAV:"><D:prop xmlns:Z="urn:schemas-microsoft-com:">
<D:name/><D:parentname/><D:href/><D:ishidden/><D:isreadonly/><D:getcontenttype/>
<D:contentclass/><D:getcontentlanguage/><D:creationdate/><D:lastaccessed/><D:getlastmodified/>
<D:getcontentlength/><D:iscollection/><D:isstructureddocument/><D:defaultdocument/>
<D:displayname/><D:isroot/><D:resourcetype/><Z:Win32CreationTime/><Z:Win32LastAccessTime/>
<Z:Win32LastModifiedTime/><Z:Win32FileAttributes/>
</D:prop></D:propfind>"""

WIN32_PROPPATCH = b"""<?xml version="1.0" encoding="utf-8" ?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>
<Z:Win32CreationTime>Fri, 30 Apr 2021 09:42:39 GMT</Z:Win32CreationTime>
<Z:Win32LastAccessTime>Fri, 30 Apr 2021 09:42:39 GMT</Z:Win32LastAccessTime>
<Z:Win32LastModifiedTime>Fri, 30 Apr 2021 09:42:39 GMT</Z:Win32LastModifiedTime>
<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>
</D:prop></D:set></D:propertyupdate>"""

LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8" ?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner><D:href>tester</D:href></D:owner></D:lockinfo>"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_photos(root: Path) -> Path:
    """A small library: two days, a name with an accent, one undated photo."""
    jpeg_with_date(root / "2021" / "Italy" / "IMG_0001.jpg", datetime(2021, 4, 30, 9, 42, 39),
                   gps=(43.7696, 11.2558))
    jpeg_with_date(root / "2021" / "Italy" / "IMG_0002.jpg", datetime(2021, 4, 30, 10, 0, 0),
                   color=(30, 200, 30))
    jpeg_with_date(root / "2021" / "Italy" / "Café.jpg", datetime(2021, 5, 1, 12, 0, 0),
                   color=(200, 200, 30))
    jpeg_with_date(root / "phone" / "IMG_0100.jpg", datetime(2022, 7, 14, 18, 0, 0),
                   color=(30, 30, 200))
    jpeg_with_date(root / "old" / "scan.jpg", datetime(1999, 12, 31, 23, 59, 0),
                   color=(10, 120, 160))
    return root


def new_photo(path: Path, n: int) -> Path:
    """A distinct JPEG (distinct bytes = distinct asset)."""
    return jpeg_with_date(path, datetime(2020, 1, 1 + n % 27, 12, n % 60, 0),
                          color=(n * 7 % 256, n * 13 % 256, n * 29 % 256))


@dataclass
class DavServer:
    """A running photovfs WebDAV server; `restart()` stops it and opens the library afresh."""

    photos: Path
    state: Path | None = None
    users: object = None
    lib: Library = None  # type: ignore[assignment]
    server: object = None
    thread: object = None
    session: requests.Session = field(default_factory=requests.Session)

    def start(self) -> DavServer:
        self.lib = Library.open(self.photos, state_dir=self.state)
        if not self.lib.views["by-date"].list(()):
            self.lib.scan()
        kw = {"users": self.users} if self.users is not None else {}
        self.server, self.thread = run_in_thread(self.lib, "127.0.0.1", 0, **kw)
        return self

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(5)
        close_lock_storage(self.lib)
        self.lib.close()

    def restart(self) -> None:
        self.stop()
        self.session = requests.Session()
        self.start()

    @property
    def port(self) -> int:
        return self.server.bind_addr[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + "/" + quote(path.lstrip("/"))

    def request(self, method: str, path: str, **kw) -> requests.Response:
        return self.session.request(method, self.url(path), timeout=60, **kw)

    def raw(self, method: str, raw_path: str, headers: dict | None = None) -> int:
        """Send a request with a path exactly as given (requests would normalise it)."""
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", "-X", method,
             *sum((["-H", f"{k}: {v}"] for k, v in (headers or {}).items()), []),
             self.base + raw_path], capture_output=True, text=True, timeout=60)
        return int(out.stdout or 0)

    def propfind(self, path: str, depth: str = "1", body: bytes | None = None,
                 **kw) -> dict[str, dict[str, str | None]]:
        r = self.request("PROPFIND", path, data=body, headers={"Depth": depth, **kw.pop(
            "headers", {})}, **kw)
        assert r.status_code == 207, (r.status_code, r.text[:500])
        return parse_multistatus(r.content)


def parse_multistatus(data: bytes) -> dict[str, dict[str, str | None]]:
    """{unquoted href: {clark name: text (200) or None (other status)}}."""
    out: dict[str, dict[str, str | None]] = {}
    for resp in ET.fromstring(data).iter(DAV + "response"):
        href = unquote(resp.findtext(DAV + "href"))
        props: dict[str, str | None] = {}
        for ps in resp.iter(DAV + "propstat"):
            ok = " 200 " in (ps.findtext(DAV + "status") or "")
            for p in ps.find(DAV + "prop"):
                if not ok:
                    props[p.tag] = None
                elif p.tag == DAV + "resourcetype":
                    props[p.tag] = "collection" if p.find(DAV + "collection") is not None else ""
                elif len(p):
                    props[p.tag] = ET.tostring(p, encoding="unicode")
                else:
                    props[p.tag] = p.text or ""
        out[href] = props
    return out


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


# ---- raw requests (the fast paths' tests compare answers header by header) -------------------
@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def comparable(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers (lower-case names, no Date) and body: what two paths must agree on."""
        return self.status, [(k.lower(), v) for k, v in self.headers if k.lower() != "date"], \
            self.body


def send(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
         auth: tuple[str, str] | None = None, tls: bool = False) -> Answer:
    """One request on a new connection, with the path sent byte for byte as given (requests
    would normalise it); `tls` trusts any certificate (the tests make their own)."""
    import base64
    import http.client
    import ssl

    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=60, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    hdrs = dict(headers or {})
    if auth:
        hdrs["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Answer(r.status, r.getheaders(), r.read())
    finally:
        conn.close()
