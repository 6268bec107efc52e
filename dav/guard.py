"""The outermost WSGI layer: refuses hostile request paths and infinite-depth PROPFIND.

It runs before wsgidav touches the path, because wsgidav quietly collapses `a/../b` and would let a
client address something other than what it named. Names are then validated once more by the core
(`names.split_path`), so the same rules hold for FUSE.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlsplit

from photovfs.names import MAX_NAME_BYTES, MAX_PATH_BYTES

#: where the raw (still percent-encoded) path is left for the layers below: the key of the GET
#: node cache, the same string before and after wsgidav (which re-encodes and normalises PATH_INFO)
RAW_PATH_KEY = "photovfs.raw_path"

_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)
_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")
_CONTROL = re.compile(r"[\x00-\x1f]")

FINITE_DEPTH_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n'
)


def check_raw_path(raw: str) -> str | None:
    """Why a raw (still percent-encoded) request path is refused, or None when it is acceptable.

    Every request passes here, so the name rules run as regular expressions over the whole path;
    names are measured one by one only when the whole path is longer than a name may be."""
    if _ENCODED_SEPARATOR.search(raw):
        return "encoded '/', '\\' or NUL in a path"
    data = unquote_to_bytes(raw) if "%" in raw else raw.encode("utf-8", "surrogateescape")
    if b"\x00" in data:
        return "NUL in a path"
    if len(data) > MAX_PATH_BYTES:
        return "path too long"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "the path is not UTF-8"
    if _DOT_SEGMENT.search(text):
        return "'.' and '..' are not allowed in paths"
    if "\\" in text:
        return "'\\' is not allowed in names"
    if len(data) > MAX_NAME_BYTES and any(len(part.encode("utf-8")) > MAX_NAME_BYTES
                                          for part in text.split("/")):
        return f"a name is longer than {MAX_NAME_BYTES} bytes"
    if _CONTROL.search(text):
        return "control characters are not allowed in names"
    return None


def _raw_path(environ: dict) -> str:
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        if "://" in raw.split("?", 1)[0]:
            raw = urlsplit(raw).path
        return raw.split("?", 1)[0]
    # no raw URI from the server: rebuild it from the (decoded) PATH_INFO
    from urllib.parse import quote

    return quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))


class Guard:
    """Refuses what must never reach wsgidav; answers a GET of a file served moments ago from
    `hot` (dav/fastget.py `FileResponder`) without it."""

    def __init__(self, app, hot=None) -> None:
        self.app = app
        self.hot = hot

    def __call__(self, environ, start_response):
        raw = environ[RAW_PATH_KEY] = _raw_path(environ)
        if self.hot is not None and environ.get("REQUEST_METHOD") in ("GET", "HEAD") \
                and "HTTP_DESTINATION" not in environ:
            # answers only paths whose files it served before: paths this guard let through
            answer = self.hot.hot(environ, start_response, raw)
            if answer is not None:
                return answer
        reason = check_raw_path(raw)
        if reason is None and environ.get("HTTP_DESTINATION"):
            reason = check_raw_path(urlsplit(environ["HTTP_DESTINATION"]).path)
        if reason is not None:
            body = f"400 Bad Request: {reason}\n".encode()
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        if environ.get("REQUEST_METHOD") == "PROPFIND" and \
                environ.get("HTTP_DEPTH", "infinity").strip().lower() == "infinity":
            # RFC 4918 9.1: a server may refuse Depth: infinity; a missing Depth means infinity.
            _drain(environ)
            start_response("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8"),
                                             ("Content-Length", str(len(FINITE_DEPTH_BODY)))])
            return [FINITE_DEPTH_BODY]
        return self.app(environ, start_response)


def _drain(environ: dict) -> None:
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    while n > 0:
        chunk = environ["wsgi.input"].read(min(n, 1 << 16))
        if not chunk:
            break
        n -= len(chunk)
