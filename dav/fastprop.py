"""Fast PROPFIND: Depth 0/1 answered from one `lib.resolve` + one `lib.list`, rendered as text.

wsgidav builds a resource object per member and asks each for every property (and the property
manager for each member's dead properties): about 10x slower than rclone on a 10,000-photo folder.
This middleware sits behind authentication and answers the PROPFINDs clients actually send (allprop,
or named live and dead properties) with the same XML wsgidav would produce, and falls through to
wsgidav for anything else: propname, If headers, and folders where a lock is in force (so that
lockdiscovery is always wsgidav's). `tests/test_dav.py` checks that both agree.
"""

from __future__ import annotations

import io
from functools import lru_cache
from urllib.parse import quote
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET
from photovfs.catalog.models import DeadProperty
from photovfs.errors import NotFound, PhotoVFSError
from photovfs.node import Node
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

_DEAD = select(DeadProperty.path, DeadProperty.name, DeadProperty.value).order_by(
    DeadProperty.name)
_DEAD_ONE = _DEAD.where(DeadProperty.path == bindparam("key"))
_DEAD_ALL = _DEAD.where(DeadProperty.path.is_not(None))  # the root folder at depth 1
_DEAD_UNDER = _DEAD.where(or_(DeadProperty.path == bindparam("key"),
                              and_(DeadProperty.path >= bindparam("lo"),
                                   DeadProperty.path < bindparam("hi"))))


class FastPropfind(BaseMiddleware):
    def __init__(self, wsgidav_app, next_app, config):
        super().__init__(wsgidav_app, next_app, config)
        self.lib = config["photovfs"]["library"]
        self.wsgidav_app = wsgidav_app

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
        data = answer.encode("utf-8")
        start_response("207 Multi-Status", [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Date", util.get_rfc1123_time()),
            ("Content-Length", str(len(data))),
        ])
        return [data]

    # ---- request -----------------------------------------------------------------------------
    @staticmethod
    def _wanted(body: bytes) -> tuple[str, list[str]] | None:
        """('allprop', []) or ('named', [clark names]); None for anything else."""
        if not body.strip():
            return "allprop", []
        try:
            root = SafeET.fromstring(body)
        except Exception:
            return None
        if root.tag != "{DAV:}propfind" or len(root) != 1:
            return None
        child = root[0]
        if child.tag == "{DAV:}allprop":
            return "allprop", []
        if child.tag == "{DAV:}prop":
            names = [p.tag for p in child]
            if not names or any(not n.startswith("{") for n in names):
                return None
            return "named", names
        return None

    def _locks_in_force(self, folder_url: str) -> bool:
        lm = self.wsgidav_app.lock_manager
        if lm is None:
            return False
        if lm.storage.get_lock_list(folder_url, include_root=True, include_children=True,
                                    token_only=True):
            return True
        return bool(lm.get_indirect_url_lock_list(folder_url))

    def _answer(self, environ, depth: str, body: bytes) -> str | None:
        wanted = self._wanted(body)
        if wanted is None:
            return None
        mode, names = wanted
        path = environ["PATH_INFO"]
        try:
            node = self.lib.resolve(path.strip("/"))
        except NotFound:
            return None  # wsgidav answers 404 in its own format
        ref = quote(dav_path(node.path, node.is_dir))
        if self._locks_in_force(ref):
            return None
        nodes = [node]
        if depth == "1" and node.is_dir:
            nodes += self.lib.list(node.path, node)
        dead = self._dead(node, depth)
        mount = environ.get("SCRIPT_NAME", "").rstrip("/")
        out = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
        split = [(clark, *clark[1:].partition("}")[::2]) for clark in names]  # once, not per node
        for n in nodes:
            out.append(self._response(n, mode, split, dead.get(n.path, _NONE), mount))
        out.append("</D:multistatus>")
        return "".join(out)

    def _dead(self, node: Node, depth: str) -> dict[str, dict[str, str]]:
        """Dead properties of the node (and its members at depth 1): one query."""
        pm = self.wsgidav_app.prop_manager
        if pm is None:
            return {}
        key = _key(node.path)
        with self.lib.engine.connect() as c:
            if depth == "1" and key and c.dialect.name == "sqlite":
                # key and keys below it: an index range (SQLite compares bytes), not a LIKE scan
                rows = c.execute(_DEAD_UNDER, {"key": key, "lo": key + "/",
                                               "hi": key + "0"}).all()  # '0' follows '/'
            elif depth == "1" and key:  # other databases may collate by locale: LIKE is safe
                rows = c.execute(_DEAD.where(_under(key))).all()
            else:
                rows = c.execute(_DEAD_ALL if depth == "1" else _DEAD_ONE, {"key": key}).all()
        out: dict[str, dict[str, str]] = {}
        for p, name, value in rows:
            out.setdefault(p, {})[name] = value
        return out

    # ---- response ----------------------------------------------------------------------------
    def _response(self, n: Node, mode: str, names: list[tuple[str, str, str]],
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
        parts = [f"<D:response{decl}><D:href>{escape(href)}</D:href>"]
        if found:
            parts.append(f"<D:propstat><D:prop>{''.join(found)}</D:prop>"
                         "<D:status>HTTP/1.1 200 OK</D:status></D:propstat>")
        if missing:
            parts.append(f"<D:propstat><D:prop>{''.join(missing)}</D:prop>"
                         "<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>")
        parts.append("</D:response>")
        return "".join(parts)


@lru_cache(maxsize=4096)
def _rfc3339(t: int) -> str:
    return util.get_rfc3339_time(t)


@lru_cache(maxsize=4096)
def _rfc1123(t: int) -> str:
    return util.get_rfc1123_time(t)


def _resourcetype(n: Node) -> str:
    return "<D:resourcetype><D:collection/></D:resourcetype>" if n.is_dir else \
        "<D:resourcetype/>"


def _displayname(n: Node) -> str:
    return f"<D:displayname>{escape(n.name)}</D:displayname>"


def _creationdate(n: Node) -> str | None:
    return f"<D:creationdate>{_rfc3339(int(n.mtime))}</D:creationdate>" if n.mtime else None


def _getlastmodified(n: Node) -> str | None:
    return f"<D:getlastmodified>{_rfc1123(int(n.mtime))}</D:getlastmodified>" \
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
