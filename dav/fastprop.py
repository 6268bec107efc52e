"""Fast PROPFIND: Depth 0/1 answered from one `lib.resolve` + one `lib.list`, rendered as text.

wsgidav builds a resource object per member and asks each for every property (and the property
manager for each member's dead properties): about 10x slower than rclone on a 10,000-photo folder.
This middleware sits behind authentication and answers the PROPFINDs clients actually send (allprop,
or named live and dead properties) with the same XML wsgidav would produce, and falls through to
wsgidav for anything else: propname, If headers, and folders where a lock is in force (so that
lockdiscovery is always wsgidav's). `tests/test_dav.py` checks that both agree.

A big folder's photos never become objects: the core hands them over as bare catalog rows
(`Library.photo_rows`), and each is rendered by one pre-built template for the request's property
set (`_RowTemplate`), with dates from a per-day cache. Rows the template does not cover (no
mtime, no etag, dead properties of their own) take the general per-node path. What is rendered
from the catalog is kept while the catalog is unchanged (`RenderedRows`, SQLite's data_version),
and a photo whose row did not change reuses its response after a change (`RowFragments`); the
folder itself, its side files and the lock check are done for every request.
`tests/test_dav_propfind.py` holds the template to the per-node path and the caches to changes.
The answer goes out as one chunk (as few as three for a big folder): cheroot sends each chunk
with a send of its own, and each wakes the client.
"""

from __future__ import annotations

import io
import math
import re
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from operator import itemgetter
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET
from photovfs.catalog.models import DeadProperty
from photovfs.errors import NotFound, PhotoVFSError
from photovfs.node import Node
from photovfs.views.base import prepared_rows
from sqlalchemy import and_, bindparam, or_, select
from wsgidav import util
from wsgidav.mw.base_mw import BaseMiddleware

from .props import _key, _under
from .provider import dav_path

_HREF_SAFE = "/!*'(),$-_|."

LIVE = ("resourcetype", "creationdate", "getcontentlength", "getcontenttype", "getlastmodified",
        "displayname", "getetag")
_ALLPROP_LOCK = ("lockdiscovery", "supportedlock")
_UNSUPPORTED_DAV = {"quota-used-bytes", "quota-available-bytes"}

SUPPORTEDLOCK = (
    "<D:supportedlock>"
    "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockentry>"
    "<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "</D:lockentry></D:supportedlock>"
)
_MAX_BODY = 1 << 16
#: answers up to this size go out as one chunk (cheroot writes each chunk with its own send)
_ONE_WRITE = 1 << 20
_TAIL = len(b"</D:multistatus>")

_DEAD = select(DeadProperty.path, DeadProperty.name, DeadProperty.value).order_by(
    DeadProperty.name)
_DEAD_ONE = _DEAD.where(DeadProperty.path == bindparam("key"))
_DEAD_ALL = _DEAD.where(DeadProperty.path.is_not(None))  # the root folder at depth 1
_DEAD_UNDER = _DEAD.where(or_(DeadProperty.path == bindparam("key"),
                              and_(DeadProperty.path >= bindparam("lo"),
                                   DeadProperty.path < bindparam("hi"))))



def _propstats(found: list[str], missing: list[str]) -> str:
    """The end of one <D:response>: a 200 propstat of the found properties, a 404 one of the
    missing ones (each only when not empty), as wsgidav writes them."""
    parts = []
    if found:
        parts.append(f"<D:propstat><D:prop>{''.join(found)}</D:prop>"
                     "<D:status>HTTP/1.1 200 OK</D:status></D:propstat>")
    if missing:
        parts.append(f"<D:propstat><D:prop>{''.join(missing)}</D:prop>"
                     "<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>")
    parts.append("</D:response>")
    return "".join(parts)

class RowFragments:
    """The per-photo responses of the last few listings, by folder and property set, each under
    its row: after a catalog change the folder is queried again, and a photo whose row is the
    same gets the same response without rendering it (a response is a function of the row, the
    folder's href and the template alone, so nothing here needs invalidating: a changed photo
    is a different row). Bounded by rows, oldest listing first out."""

    def __init__(self, max_rows: int = 40_000) -> None:
        self.max_rows = max_rows
        self._held = 0
        self._listings: OrderedDict[tuple, dict[tuple, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict[tuple, str] | None:
        with self._lock:
            return self._listings.get(key)

    def put(self, key: tuple, fragments: dict[tuple, str]) -> None:
        """Keep `fragments` as the listing's, in place of the previous ones."""
        with self._lock:
            old = self._listings.pop(key, None)
            self._held -= len(old) if old is not None else 0
            if len(fragments) > self.max_rows // 2:
                return
            self._listings[key] = fragments
            self._held += len(fragments)
            while self._held > self.max_rows:
                self._held -= len(self._listings.popitem(last=False)[1])


@lru_cache(maxsize=64)
def _wanted(body: bytes) -> tuple[str, tuple[tuple[str, str, str], ...]] | None:
    """('allprop', ()) or ('named', ((clark, namespace, local name), ...)); None for anything
    else. Remembered by body: a client sends the same few bodies again and again."""
    if not body.strip():
        return "allprop", ()
    try:
        root = SafeET.fromstring(body)
    except Exception:
        return None
    if root.tag != "{DAV:}propfind" or len(root) != 1:
        return None
    child = root[0]
    if child.tag == "{DAV:}allprop":
        return "allprop", ()
    if child.tag == "{DAV:}prop":
        names = [p.tag for p in child]
        if not names or any(not isinstance(n, str) or not n.startswith("{") for n in names):
            return None
        return "named", tuple((n, *n[1:].partition("}")[::2]) for n in names)
    return None


class RenderedRows:
    """Rendered member responses of folders, valid while the catalog is unchanged.

    What is kept comes from the catalog alone (photo rows, their dead properties, catalogued
    sub-folders); side files and the folder itself are rendered for every request, and a folder
    with a lock in force is never answered here. The library's change counter (`lib.probe`:
    SQLite's `PRAGMA data_version` on a connection that never writes) moves with every commit, in
    this process or another (a PROPPATCH, a scan, FUSE, a second server): the version is read before
    the catalog is, so an answer is never kept under a version newer than its data. Bounded by
    bytes, oldest first out. Without SQLite nothing is kept."""

    def __init__(self, lib, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._held = 0
        self._items: OrderedDict[tuple, tuple[int, object]] = OrderedDict()
        self._version: int | None = None
        self._lock = threading.Lock()
        self._probe = lib.probe  # the catalog's change counter (vfs/catalog/probe.py)

    def version(self) -> int | None:
        """The catalog's version now (None: nothing may be kept); drops older answers."""
        version = self._probe.version()
        if version is None:
            return None
        with self._lock:
            if version != self._version:
                self._items.clear()
                self._held = 0
                self._version = version
            return version

    def get(self, key: tuple, version: int | None) -> Any:
        if version is None:
            return None
        with self._lock:
            item = self._items.get(key) if version == self._version else None
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: tuple, version: int | None, value: object, size: int) -> None:
        """Keep `value` (about `size` bytes), made from the catalog as it was at `version` or
        later."""
        if version is None or size > self.max_bytes // 2:
            return
        with self._lock:
            if version != self._version:
                return
            old = self._items.pop(key, None)
            self._held += size - (old[0] if old is not None else 0)
            self._items[key] = (size, value)
            while self._held > self.max_bytes:
                self._held -= self._items.popitem(last=False)[1][0]


class FastPropfind(BaseMiddleware):
    def __init__(self, wsgidav_app, next_app, config):
        super().__init__(wsgidav_app, next_app, config)
        self.lib = config["photovfs"]["library"]
        self.wsgidav_app = wsgidav_app
        self.rendered = RenderedRows(self.lib)
        self.fragments = RowFragments()

    def is_disabled(self):
        return False

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "PROPFIND":
            return self.next_app(environ, start_response)
        depth = environ.get("HTTP_DEPTH", "").strip().lower()
        if depth not in ("0", "1") or any(h in environ for h in (
                "HTTP_IF", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
                "HTTP_IF_UNMODIFIED_SINCE")):
            return self.next_app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self.next_app(environ, start_response)
        if length > _MAX_BODY or environ.get("HTTP_TRANSFER_ENCODING"):
            return self.next_app(environ, start_response)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # wsgidav can read it again when we fall through
        try:
            answer = self._answer(environ, depth, body)
        except PhotoVFSError:
            answer = None
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(body)
            return self.next_app(environ, start_response)
        start_response("207 Multi-Status", [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Date", util.get_rfc1123_time()),
            ("Content-Length", str(sum(len(chunk) for chunk in answer))),
        ])
        return answer

    # ---- request -----------------------------------------------------------------------------
    def _locks_in_force(self, folder_url: str) -> bool:
        lm = self.wsgidav_app.lock_manager
        if lm is None:
            return False
        if lm.storage.get_lock_list(folder_url, include_root=True, include_children=True,
                                    token_only=True):
            return True
        return bool(lm.get_indirect_url_lock_list(folder_url))

    def _answer(self, environ, depth: str, body: bytes) -> list[bytes] | None:
        """The multistatus as a few large chunks (cheroot writes each in one go), or None."""
        wanted = _wanted(body)
        if wanted is None:
            return None
        mode, names = wanted
        path = environ["PATH_INFO"]
        mount = environ.get("SCRIPT_NAME", "").rstrip("/")
        key = (path, mount, mode, names)
        version = self.rendered.version() if depth == "1" else None
        kept = self.rendered.get(key, version)
        if kept is None:
            try:
                node = self.lib.resolve(path.strip("/"))
            except NotFound:
                return None  # wsgidav answers 404 in its own format
        else:
            node, dead, members = kept
        if self._locks_in_force(quote(dav_path(node.path, node.is_dir))):
            return None
        if kept is None:
            dead = self._dead(node, depth)
            members = None
            if depth == "1" and node.is_dir:
                members = self._members(node, mode, names, dead, mount)
                if members is not None:
                    self.rendered.put(key, version, (node, dead, members), len(members))
        nodes = [node]
        if depth == "1" and node.is_dir:
            nodes += self.lib.list(node.path, node) if members is None else \
                self.lib.side_files(node.path)
        out = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
        for n in nodes:
            out.append(self._response(n, mode, names, dead.get(n.path, _NONE), mount))
        out.append("</D:multistatus>")
        head = "".join(out).encode("utf-8")
        if members is None:
            return [head]
        if len(members) < _ONE_WRITE:  # one send, one wake-up of the client, not three
            return [head[:-_TAIL] + members + head[-_TAIL:]]
        return [head[:-_TAIL], members, head[-_TAIL:]]

    def _members(self, folder: Node, mode: str, names: tuple[tuple[str, str, str], ...],
                 dead: dict[str, dict[str, str]], mount: str) -> bytes | None:
        """The responses of the folder's catalogued members (`Library.photo_rows`: photos as
        rows, catalogued sub-folders as nodes); None where the view has no such listing."""
        found = self.lib.photo_rows(folder.path, folder)
        if found is None:
            return None
        rows, others = found
        out = [self._response(n, mode, names, dead.get(n.path, _NONE), mount) for n in others]
        self._rows(out, rows, folder, mode, names, dead, mount)
        return "".join(out).encode("utf-8")

    def _rows(self, out: list[str], rows: list, folder: Node, mode: str,
              names: tuple[tuple[str, str, str], ...], dead: dict[str, dict[str, str]],
              mount: str) -> None:
        """Append one response per photo row: the template where it applies (or the same
        response rendered for the same row by the previous listing of this folder), a node
        otherwise."""
        prefix = folder.path + "/"
        href_prefix = quote(mount + "/" + prefix, safe=_HREF_SAFE)
        template = _RowTemplate.of(mode, names)
        text, pick, dates, with_name = template.text, template.pick, template.dates, template.name
        listing_key = (prefix, href_prefix, mode, names)
        before = self.fragments.get(listing_key)
        kept: dict[tuple, str] = {}
        mimes: dict[str, str] = {}
        days: dict[int, tuple[str, str] | None] = {}
        hours, minutes_seconds, floor = _HOURS, _MINUTES_SECONDS, math.floor
        created = modified = shown = ""
        for name, size, mtime_ns, mime, etag in rows:
            if not mtime_ns or not etag or (dead and prefix + name in dead):
                n = Node(prefix + name, name, False, "asset", size, mtime_ns / 1e9, mime, etag)
                out.append(self._response(n, mode, names, dead.get(n.path, _NONE), mount))
                continue
            key = (name, size, mtime_ns, mime, etag)
            fragment = before.get(key) if before is not None else None
            if fragment is not None:
                out.append(fragment)
                kept[key] = fragment
                continue
            ct = mimes.get(mime)
            if ct is None:
                ct = mimes[mime] = escape(mime)
            if dates:  # _times, inline: 10,000 calls are a tenth of the whole rendering
                t = mtime_ns / 1e9
                secs = floor(t)
                day, rem = divmod(secs, 86400)
                parts = days.get(day, _NO_DAY)
                if parts is _NO_DAY:
                    parts = days[day] = _day(day)
                if parts is None or t - secs > _ROUNDS_UP:
                    created, modified = _times(mtime_ns)
                else:
                    hms = hours[rem // 3600] + minutes_seconds[rem % 3600]
                    created, modified = parts[0] + hms + "Z", parts[1] + hms + " GMT"
            if with_name:
                shown = _xml_text(name)
            fragment = text % pick((href_prefix + _href_name(name), shown, created, modified,
                                    size, ct, etag if etag.isalnum() else escape(etag)))
            out.append(fragment)
            kept[key] = fragment
        self.fragments.put(listing_key, kept)

    def _dead(self, node: Node, depth: str) -> dict[str, dict[str, str]]:
        """Dead properties of the node (and its members at depth 1): one query."""
        pm = self.wsgidav_app.prop_manager
        if pm is None:
            return {}
        key = _key(node.path)
        if depth == "1" and key and self.lib.engine.dialect.name == "sqlite":
            # key and keys below it: an index range (SQLite compares bytes), not a LIKE scan
            rows = prepared_rows(self.lib, _DEAD_UNDER, {"key": key, "lo": key + "/",
                                                         "hi": key + "0"})  # '0' follows '/'
        elif depth == "1" and key:  # other databases may collate by locale: LIKE is safe
            with self.lib.engine.connect() as c:
                rows = c.execute(_DEAD.where(_under(key))).all()
        else:
            rows = prepared_rows(self.lib, _DEAD_ALL if depth == "1" else _DEAD_ONE, {"key": key})
        out: dict[str, dict[str, str]] = {}
        for p, name, value in rows:
            out.setdefault(p, {})[name] = value
        return out

    # ---- response ----------------------------------------------------------------------------
    def _response(self, n: Node, mode: str, names: tuple[tuple[str, str, str], ...],
                  dead: dict[str, str], mount: str) -> str:
        href = quote(mount + dav_path(n.path, n.is_dir), safe=_HREF_SAFE)
        found: list[str] = []
        missing: list[str] = []
        ns: dict[str, str] = {}
        if mode == "allprop":
            for name in LIVE:
                value = _live(n, name)
                if value is not None:
                    found.append(value)
            found.append("<D:lockdiscovery/>")
            found.append(SUPPORTEDLOCK)
            for value in dead.values():
                found.append(_strip_decl(value))
        else:
            for clark, uri, local in names:
                if uri == "DAV:":
                    if local in LIVE:
                        value = _live(n, local)
                    elif local == "lockdiscovery":
                        value = "<D:lockdiscovery/>"
                    elif local == "supportedlock":
                        value = SUPPORTEDLOCK
                    else:
                        value = None
                    if value is None:
                        missing.append(f"<D:{local}/>")
                    else:
                        found.append(value)
                    continue
                if clark in dead:
                    found.append(_strip_decl(dead[clark]))
                else:
                    prefix = ns.setdefault(uri, f"NS{len(ns) + 1}")
                    missing.append(f"<{prefix}:{local}/>")
        decl = "".join(f' xmlns:{p}="{escape(u, {chr(34): "&quot;"})}"' for u, p in ns.items())
        return f"<D:response{decl}><D:href>{escape(href)}</D:href>" + _propstats(found, missing)


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=8192)
def _day(days: int) -> tuple[str, str] | None:
    """The date parts of both formats for a day since the epoch; None outside years 1000-9999
    (wsgidav's strftime and formatdate pad those differently: they take the slow path)."""
    tm = time.gmtime(days * 86400)
    if not 1000 <= tm.tm_year <= 9999:
        return None
    return (f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T",
            f"{_WEEKDAYS[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTHS[tm.tm_mon - 1]} {tm.tm_year:04d} ")


_NO_DAY = ("", "")  # not looked up yet (None is a day wsgidav formats itself)
_HOURS = tuple(f"{h:02d}:" for h in range(24))
_MINUTES_SECONDS = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))


#: a fraction of a second above which wsgidav's two formats may disagree on the second (RFC 1123
#: goes through datetime, which rounds to microseconds first; RFC 3339 through gmtime, which
#: floors): such rare mtimes are formatted by wsgidav itself
_ROUNDS_UP = 0.9999994


def _times(mtime_ns: int) -> tuple[str, str]:
    """(creationdate, getlastmodified) text of a catalog mtime, exactly as wsgidav writes the
    node's float mtime. Photos of one folder share a few days, so a photo costs two table
    lookups, not a strftime and a datetime."""
    t = mtime_ns / 1e9
    secs = math.floor(t)
    days, rem = divmod(secs, 86400)
    parts = _day(days)
    if parts is None or t - secs > _ROUNDS_UP:
        return util.get_rfc3339_time(t), util.get_rfc1123_time(t)
    hms = _HOURS[rem // 3600] + _MINUTES_SECONDS[rem % 3600]
    return parts[0] + hms + "Z", parts[1] + hms + " GMT"


def _resourcetype(n: Node) -> str:
    return "<D:resourcetype><D:collection/></D:resourcetype>" if n.is_dir else \
        "<D:resourcetype/>"


def _displayname(n: Node) -> str:
    return f"<D:displayname>{escape(n.name)}</D:displayname>"


def _creationdate(n: Node) -> str | None:
    return f"<D:creationdate>{util.get_rfc3339_time(n.mtime)}</D:creationdate>" \
        if n.mtime else None


def _getlastmodified(n: Node) -> str | None:
    return f"<D:getlastmodified>{util.get_rfc1123_time(n.mtime)}</D:getlastmodified>" \
        if n.mtime else None


def _getcontentlength(n: Node) -> str | None:
    return None if n.is_dir else f"<D:getcontentlength>{n.size}</D:getcontentlength>"


def _getcontenttype(n: Node) -> str | None:
    return None if n.is_dir else \
        f"<D:getcontenttype>{escape(n.content_type)}</D:getcontenttype>"


def _getetag(n: Node) -> str | None:
    return f"<D:getetag>{escape(n.etag)}</D:getetag>" if n.etag and not n.is_dir else None


#: one function per live property: a PROPFIND of a folder asks each for every member
_LIVE = {"resourcetype": _resourcetype, "displayname": _displayname,
         "creationdate": _creationdate, "getlastmodified": _getlastmodified,
         "getcontentlength": _getcontentlength, "getcontenttype": _getcontenttype,
         "getetag": _getetag}
_NONE: dict[str, str] = {}


def _live(n: Node, name: str) -> str | None:
    fn = _LIVE.get(name)
    return fn(n) if fn else None


def _strip_decl(xml: str) -> str:
    if xml.startswith("<?xml"):
        return xml[xml.index("?>") + 2:].lstrip()
    return xml


#: names that need no percent-encoding in an href (the common camera name: IMG_0001.JPG)
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]+")
_XML_SPECIAL = re.compile(r"[&<>]")
_quoted: dict[str, str] = {}


def _href_name(name: str) -> str:
    """A member name percent-encoded for an href; remembered, since virtual names never change
    and a folder is listed again and again (bounded: forgotten all at once past 200,000)."""
    href = _quoted.get(name)
    if href is None:
        href = name if _PLAIN.fullmatch(name) else quote(name, safe=_HREF_SAFE)
        if len(_quoted) > 200_000:
            _quoted.clear()
        _quoted[name] = href
    return href


def _xml_text(text: str) -> str:
    """`escape(text)`, without the three replaces for the usual text that needs none."""
    return escape(text) if _XML_SPECIAL.search(text) else text


#: the values a photo row gives the template, in this order (`_RowTemplate.pick` takes some)
_ROW_VALUES = ("href", "name", "created", "modified", "size", "type", "etag")

#: what a photo row gives each live property in the template
_ROW_FIELDS = {
    "resourcetype": ("<D:resourcetype/>", None),
    "displayname": ("<D:displayname>%s</D:displayname>", "name"),
    "creationdate": ("<D:creationdate>%s</D:creationdate>", "created"),
    "getlastmodified": ("<D:getlastmodified>%s</D:getlastmodified>", "modified"),
    "getcontentlength": ("<D:getcontentlength>%s</D:getcontentlength>", "size"),
    "getcontenttype": ("<D:getcontenttype>%s</D:getcontenttype>", "type"),
    "getetag": ("<D:getetag>%s</D:getetag>", "etag"),
}


def _literal(text: str) -> str:
    return text.replace("%", "%%")


class _RowTemplate:
    """One `<D:response>` of a photo (a file with an mtime, an etag and no dead properties) for
    one requested property set, as a %-template and the values it takes: `_response` decides the
    same things once per request instead of once per photo (test_dav_propfind checks that both
    agree)."""

    def __init__(self, mode: str, names: tuple[tuple[str, str, str], ...]) -> None:
        found: list[str] = []
        missing: list[str] = []
        ns: dict[str, str] = {}
        fields = ["href"]

        def live(local: str) -> None:
            text, field = _ROW_FIELDS[local]
            found.append(text)
            if field:
                fields.append(field)

        if mode == "allprop":
            for local in LIVE:
                live(local)
            found += ["<D:lockdiscovery/>", _literal(SUPPORTEDLOCK)]
        for _clark, uri, local in names:
            if uri == "DAV:" and local in _ROW_FIELDS:
                live(local)
            elif uri == "DAV:" and local == "lockdiscovery":
                found.append("<D:lockdiscovery/>")
            elif uri == "DAV:" and local == "supportedlock":
                found.append(_literal(SUPPORTEDLOCK))
            elif uri == "DAV:":
                missing.append(_literal(f"<D:{local}/>"))
            else:  # a dead property the photo does not have (it would take the node path)
                prefix = ns.setdefault(uri, f"NS{len(ns) + 1}")
                missing.append(_literal(f"<{prefix}:{local}/>"))
        decl = "".join(f' xmlns:{p}="{escape(u, {chr(34): "&quot;"})}"' for u, p in ns.items())
        self.text = _literal(f"<D:response{decl}><D:href>") + "%s</D:href>" \
            + _propstats(found, missing)
        # a tuple for any number of fields (itemgetter of one index returns the bare value)
        index = [_ROW_VALUES.index(f) for f in fields]
        getter = itemgetter(*index)
        self.pick = getter if len(index) > 1 else (lambda values: (getter(values),))
        self.dates = "created" in fields or "modified" in fields
        self.name = "name" in fields

    @staticmethod
    @lru_cache(maxsize=64)
    def of(mode: str, names: tuple[tuple[str, str, str], ...]) -> _RowTemplate:
        return _RowTemplate(mode, names)
