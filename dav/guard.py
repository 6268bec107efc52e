"""The outermost WSGI layer: refuses hostile request paths and infinite-depth PROPFIND.

It runs before wsgidav touches the path, because wsgidav quietly collapses `a/../b` and would let a
client address something other than what it named. Names are then validated once more by the core
(`names.split_path`), so the same rules hold for FUSE.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlsplit

from photovfs.names import MAX_NAME_BYTES, MAX_PATH_BYTES

_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)

FINITE_DEPTH_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n'
)


def check_raw_path(raw: str) -> str | None:
    """Why a raw (still percent-encoded) request path is refused, or None when it is acceptable."""
    if _ENCODED_SEPARATOR.search(raw):
        return "encoded '/', '\\' or NUL in a path"
    data = unquote_to_bytes(raw)
    if b"\x00" in data:
        return "NUL in a path"
    if len(data) > MAX_PATH_BYTES:
        return "path too long"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "the path is not UTF-8"
    for part in text.split("/"):
        if part in (".", ".."):
            return "'.' and '..' are not allowed in paths"
        if "\\" in part:
            return "'\\' is not allowed in names"
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            return f"a name is longer than {MAX_NAME_BYTES} bytes"
        if any(ord(c) < 0x20 for c in part):
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
    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        reason = check_raw_path(_raw_path(environ))
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
