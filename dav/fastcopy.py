"""Fast COPY/MOVE of one photo into an album: one core call, the status wsgidav would send.

Filling an album over WebDAV is one COPY per photo. wsgidav answers each through its request
resolver, six resource lookups (source, its parent, destination, its parent, existence, again after
the write), If-header and lock evaluation, and three property-manager transactions: ~8 ms, seven
times a small GET. This middleware sits behind authentication (so the actor and its role are
settled) and answers the common case itself: COPY or MOVE of one catalogued photo, `Depth` 0 (or
absent, or infinity, which wsgidav treats alike for a file), no body, no `If`/`If-*` header, onto
`/by-album/...` of this server, with no lock anywhere on the way. The core does the work in one
`Library.copy` / `Library.move` (with the two nodes this module resolved, so it does not resolve
them again), the dead properties follow as wsgidav moves them, and the answer is wsgidav's: 201 for
a new member, 204 over an existing one.

Everything else falls through to wsgidav before anything changed, so its error answers stay its
own: a missing source (404), a missing album (409), `Overwrite: F` onto a member (412), a refused
role (403), locks (423), other hosts (502), folders, placeholders, `If:` headers, and any core error
(the core refuses before it writes). `tests/test_dav_fastcopy.py` compares both paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import unquote, urlparse

from photovfs.errors import NotFound, PhotoVFSError
from photovfs.names import name_key
from photovfs.node import Node
from wsgidav import util
from wsgidav.dav_error import HTTP_CREATED, HTTP_NO_CONTENT, DAVError
from wsgidav.mw.base_mw import BaseMiddleware

from .props import _key
from .provider import PhotoProvider, actor_of, dav_path, vpath

#: requests carrying any of these are left to wsgidav (their evaluation is intricate)
_DELEGATED = ("HTTP_IF", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
              "HTTP_IF_UNMODIFIED_SINCE", "HTTP_TRANSFER_ENCODING")
_ALBUMS = "/by-album/"
#: views a MOVE may come from on this path: an add by reference that leaves the source in place
#: (a MOVE out of trash restores, within by-album it renames: both stay wsgidav's)
_NOT_FROM = ("trash", "by-album", "by-person", "inbox")

StartResponse = Callable[..., object]


class FastCopy(BaseMiddleware):
    """wsgidav middleware: COPY/MOVE of a photo into an album (see module doc)."""

    def __init__(self, wsgidav_app, next_app, config) -> None:
        super().__init__(wsgidav_app, next_app, config)
        self.lib = config["photovfs"]["library"]
        self.wsgidav_app = wsgidav_app

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method not in ("COPY", "MOVE"):
            return self.next_app(environ, start_response)
        try:
            answer = self._answer(environ, start_response, method == "MOVE")
        except PhotoVFSError:  # the core refused before it wrote: wsgidav says how
            answer = None
        if answer is None:
            return self.next_app(environ, start_response)
        return answer

    def _answer(self, environ: dict, start_response: StartResponse,
                is_move: bool) -> Iterable[bytes] | None:
        """The response, or None to let wsgidav answer (nothing was changed then)."""
        overwrite = environ.get("HTTP_OVERWRITE", "T").upper()
        if overwrite not in ("T", "F") or not _plain(environ):
            return None
        src_path, dest_path = environ["PATH_INFO"], _destination(environ)
        if dest_path is None or src_path.endswith("/") or \
                util.is_equal_or_child_uri(src_path, dest_path):
            return None
        src_key, dest_key = vpath(src_path), vpath(dest_path)
        if is_move and src_key.split("/", 1)[0] in _NOT_FROM:
            return None
        if _locked(self.wsgidav_app.lock_manager, dest_key, src_key if is_move else None):
            return None
        src = self.lib.resolve(src_key)
        if src.is_dir or src.asset_id is None or src.kind not in ("asset", "rendition"):
            return None  # folders walk the tree; inbox, scratch and trash files mean more
        existing = _maybe(self.lib, dest_key)
        if existing is not None and (existing.kind != "asset" or overwrite != "T"):
            return None  # 412, a placeholder or a folder at the destination: wsgidav's rules
        actor = actor_of(environ)
        if is_move:
            node = self.lib.move(src_key, dest_key, actor, overwrite=overwrite == "T",
                                 resolved=(src, existing))
        else:
            node = self.lib.copy(src_key, dest_key, actor, overwrite=overwrite == "T",
                                 resolved=(src, existing))
        self._properties(src, existing, node, is_move)
        if existing is not None:
            return util.send_status_response(environ, start_response, HTTP_NO_CONTENT)
        return util.send_status_response(environ, start_response, DAVError(HTTP_CREATED))

    def _properties(self, src: Node, existing: Node | None, node: Node, is_move: bool) -> None:
        """Dead properties go where wsgidav's COPY/MOVE puts them (provider.handle_copy /
        handle_move); one read first, because nearly always there are none to move."""
        pm = self.wsgidav_app.prop_manager
        if pm is None:
            return
        urls = [_ref_url(n) for n in (src, existing, node) if n is not None]
        if not pm.any_under([_key(u) for u in urls]):
            return
        src_url, new_url = urls[0], urls[-1]
        if existing is not None:  # Overwrite: T clears the old target's properties first
            pm.remove_properties(_ref_url(existing), with_children=False)
        if is_move:
            pm.move_properties(src_url, new_url, with_children=True)
        else:
            pm.remove_properties(new_url, with_children=False)
            pm.copy_properties(src_url, new_url)


def _plain(environ: dict) -> bool:
    """Our provider, no body, no conditional headers, a Depth that means 'this file'."""
    if not isinstance(environ.get("wsgidav.provider"), PhotoProvider):
        return False
    if util.get_content_length(environ) != 0 or any(h in environ for h in _DELEGATED):
        return False
    depth = environ.get("HTTP_DEPTH")
    return depth is None or depth.lower() in ("0", "infinity")


def _destination(environ: dict) -> str | None:
    """The Destination as wsgidav reads it (request_server._copy_or_move), when it names a file
    in an album of this server; None for everything wsgidav refuses or we leave to it."""
    raw = environ.get("HTTP_DESTINATION")
    host = environ.get("HTTP_HOST")
    if not raw or not host:
        return None
    scheme, netloc, path, _params, _query, _frag = urlparse(unquote(raw), allow_fragments=False)
    scheme, netloc = scheme.lower(), netloc.lower()
    if scheme and scheme not in (environ["wsgi.url_scheme"].lower(),
                                 environ.get("HTTP_X_FORWARDED_PROTO", "").lower()):
        return None  # 502 from wsgidav
    if netloc and netloc not in (host.lower(), environ.get("HTTP_X_FORWARDED_HOST", "").lower()):
        return None  # 502 from wsgidav
    try:
        path = util.normalize_path(path)
    except DAVError:
        return None
    if not path.startswith(_ALBUMS) or path.endswith("/") or path.count("/") < 3:
        return None
    return path


def _locked(lock_manager, dest_key: str, src_key: str | None) -> bool:
    """Whether any lock could concern this request: one on the destination, on the source of a
    MOVE, on a folder above either or below either. Compared by name key (case and Unicode form
    folded), so a lock taken on another spelling of the same album still sends the request to
    wsgidav, which then answers 423 unless the request carries the token."""
    if lock_manager is None:
        return False
    locks = lock_manager.storage.get_lock_list("/", include_root=True, include_children=True,
                                               token_only=False)
    if not locks:
        return False
    paths = [name_key(k) for k in (dest_key, src_key) if k is not None]
    for lock in locks:
        root = name_key(unquote(lock["root"]).strip("/"))
        if not root:
            return True
        for p in paths:
            if p == root or p.startswith(root + "/") or root.startswith(p + "/"):
                return True
    return False


def _maybe(lib, path: str) -> Node | None:
    try:
        return lib.resolve(path)
    except NotFound:
        return None


def _ref_url(node: Node) -> str:
    """wsgidav's key for a resource's locks and properties (DAVResource.get_ref_url)."""
    from urllib.parse import quote

    return quote(dav_path(node.path, node.is_dir))
