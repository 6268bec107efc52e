"""Fast GET/HEAD of files: one `lib.resolve`, the headers wsgidav would send, the bytes streamed.

wsgidav answers a GET through its request resolver, a request server, a resource object (built
twice: once for the dir browser, once for the handler) and a dozen property calls: most of the
time of a small GET. This middleware sits behind authentication (so the actor is settled) and in
front of the dir browser, and answers plain GETs and HEADs of files with exactly wsgidav's
status, headers and bytes (`_send_resource` in wsgidav's request_server.py). It falls through to
wsgidav for everything else, so that error pages stay wsgidav's own: folders (dir browser),
missing paths, core errors, request bodies, `Depth` other than 0, `If:` and `If-Range` headers,
multi-range and unsatisfiable ranges, failed preconditions other than 304, unreadable files.
`tests/test_dav_fastget.py` compares both paths header by header and byte by byte. A large body
is handed to the server's `wsgi.file_wrapper` when it is photovfs's own (`sendfile.py`): on plain
TCP the kernel then sends it with sendfile, as Apache does.

Photos and renditions that were just served are remembered (`NodeCache`) for as long as the
catalog has not changed (`lib.probe`: SQLite's `PRAGMA data_version` on a never-writing connection moves with every
commit by any other connection, in this process or another (scanner, FUSE, a second server). A
repeated GET then skips the path parsing, the catalog query and, for a rendition, the cache lookup
and stat: the small GETs a slideshow or a grid of thumbnails makes.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import BinaryIO, Literal

from photovfs.errors import PhotoVFSError
from photovfs.node import Node
from wsgidav import util
from wsgidav.dav_error import HTTP_NOT_MODIFIED, DAVError
from wsgidav.mw.base_mw import BaseMiddleware

from .auth import request_actor
from .guard import RAW_PATH_KEY
from .provider import PhotoProvider, vpath
from .sendfile import WrapperFactory

_NO_BODY = (None, "", "0")  # CONTENT_LENGTH of a request the fast paths may answer
_DEFAULT_BLOCK = 8192  # wsgidav's DEFAULT_BLOCK_SIZE

StartResponse = Callable[..., object]


class FastGet(BaseMiddleware):
    """wsgidav middleware: GET/HEAD of a file answered from the core node (see module doc)."""

    def __init__(self, wsgidav_app, next_app, config) -> None:
        super().__init__(wsgidav_app, next_app, config)
        shared = config["photovfs"].get("files")
        self.files: FileResponder = shared if shared is not None else FileResponder(
            config["photovfs"]["library"], block_size=config.get("block_size") or _DEFAULT_BLOCK,
            extra_headers=config.get("response_headers") or ())
        self.lib = self.files.lib
        self.nodes = self.files.nodes

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "HEAD") or not _plain(environ):
            return self.next_app(environ, start_response)
        path = environ["PATH_INFO"]
        key = environ.get(RAW_PATH_KEY) or path
        node, version = self.nodes.get(key)
        if node is not None:
            answer = self.files.answer(environ, start_response, node, method == "HEAD", cached=True)
            if answer is not None:
                return answer
            self.nodes.forget(key)  # changed on disk since: look it up again
        try:
            node = self.lib.resolve(vpath(path))
        except PhotoVFSError:  # 404 and every other error: wsgidav's own page
            return self.next_app(environ, start_response)
        if node.is_dir or node.source_str is None:
            # the dir browser (or the 404) needs the node again: the provider memoises by path
            environ.setdefault("photovfs.nodes", {})[vpath(path)] = node
            return self.next_app(environ, start_response)
        answer = self.files.answer(environ, start_response, node, method == "HEAD")
        if answer is not None and version is not None:
            self.nodes.put(key, node, version)
        if answer is None:
            environ.setdefault("photovfs.nodes", {})[vpath(path)] = node
            return self.next_app(environ, start_response)
        return answer


class FileResponder:
    """Answers a GET or HEAD of a file node with wsgidav's status, headers and bytes; shared by
    `FastGet` (inside wsgidav, after authentication) and `Guard` (`hot`: before wsgidav, for a
    file served moments ago)."""

    def __init__(self, lib, *, users=None, anonymous_ok: bool = False,
                 block_size: int = _DEFAULT_BLOCK, extra_headers: Iterable[tuple[str, str]] = (),
                 verbose: int = 1) -> None:
        self.lib = lib
        self.users = users
        self.anonymous_ok = anonymous_ok
        self.block_size = block_size
        self.extra_headers: list[tuple[str, str]] = list(extra_headers)
        self.nodes = NodeCache(lib)
        self.hot_enabled = verbose < 3  # wsgidav logs every request at verbose >= 3

    def hot(self, environ: dict, start_response: StartResponse,
            key: str) -> Iterable[bytes] | None:
        """The answer to a plain GET/HEAD of a file in the node cache, authenticated as wsgidav
        would (`auth.request_actor`); None for anything else: wsgidav's whole stack then runs.

        A slideshow or a grid of thumbnails asks for the same few files again and again; this
        skips wsgidav's path re-encoding, middleware calls and provider lookup for them."""
        if not self.hot_enabled or environ.get("QUERY_STRING") or not _bodyless(environ):
            return None  # the rarer requests: wsgidav's stack and FastGet sort them out
        node, _version = self.nodes.get(key)
        if node is None or request_actor(self.users, environ, self.anonymous_ok) is None:
            return None
        answer = self.answer(environ, start_response, node, environ["REQUEST_METHOD"] == "HEAD",
                             cached=True)
        if answer is None:
            self.nodes.forget(key)  # changed on disk since: wsgidav's path looks it up again
        return answer

    def answer(self, environ: dict, start_response: StartResponse, node: Node,
               head: bool, cached: bool = False) -> Iterable[bytes] | None:
        """The response, or None to let wsgidav answer (it then produces the same status).
        A `cached` node is first checked against its file (None when the size changed)."""
        st = _stat(node) if cached else None
        if cached and (st is None or st.st_size != node.size):
            return None  # changed on disk since it was remembered: look it up again
        etag = _etag(node)
        if etag is False:
            return None
        if "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ \
                or "HTTP_IF_MATCH" in environ or "HTTP_IF_UNMODIFIED_SINCE" in environ:
            verdict = _conditions(environ, node, etag)
            if verdict is None:
                return None
            if verdict == HTTP_NOT_MODIFIED:  # what wsgidav's ErrorPrinter sends for a 304
                start_response("304 Not Modified", [("Content-Length", "0"),
                                                    ("Date", _now())])
                return [b""]
        span = _range(environ, node.size)
        if span is False:
            return None
        fh = data = None
        if not head and st is not None and node.size <= SMALL_FILE:
            data = self.nodes.content(node.source_str, st)  # type: ignore[arg-type]
        if not head and data is None:
            try:
                fh = open(node.source_str, "rb", buffering=0)  # noqa: SIM115 - closed by _body
            except OSError:
                return None  # wsgidav maps the error (404, 403...) to its page
            if st is not None and node.size <= SMALL_FILE:
                data = self.nodes.read_content(fh, node.source_str, st)  # type: ignore[arg-type]
                fh = None
        start, length = span if span else (0, node.size)
        headers = self._headers(node, etag, length)
        if span:
            headers.append(("Content-Range", f"bytes {start}-{start + length - 1}/{node.size}"))
        start_response("206 Partial Content" if span else "200 OK", headers)
        if data is not None:
            return [data[start:start + length]] if length else []
        if fh is None:
            return [b""]
        return _body(fh, start, length, self.block_size, environ.get("wsgi.file_wrapper"))

    def _headers(self, node: Node, etag: str | None, length: int) -> list[tuple[str, str]]:
        """wsgidav's headers in wsgidav's order (request_server._send_resource)."""
        before, after = _header_parts(length, node.mtime, node.content_type, etag)
        return [*before, ("Date", _now()), *after, *self.extra_headers]


@lru_cache(maxsize=8192)
def _header_parts(length: int, mtime: float | None, content_type: str,
                  etag: str | None) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """The headers before and after Date, made once per file version (a grid of thumbnails asks
    for the same files again and again)."""
    before = [("Content-Length", str(length))]
    if mtime:
        before.append(("Last-Modified", util.get_rfc1123_time(mtime)))
    before.append(("Content-Type", content_type))
    after = [("ETag", f'"{etag}"')] if etag is not None else []
    after.append(("Accept-Ranges", "bytes"))
    return tuple(before), tuple(after)


#: remembered files up to this size are also kept in memory (thumbnails, small photos) ...
SMALL_FILE = 256 << 10
#: ... up to this many bytes in all
CONTENT_BUDGET = 32 << 20
#: bodies longer than this go through the server's file wrapper (sendfile); shorter ones are one
#: read and one write, cheaper than the wrapper's extra round through the middlewares
SENDFILE_MIN = 64 << 10


class NodeCache:
    """Nodes of files served lately, by request path, valid while the catalog is unchanged; and
    the bytes of the small ones, by real file, valid while the file's size, mtime and inode are.

    Only catalogued photos and renditions are kept (their answer comes from the catalog alone);
    inbox, scratch and trash files are looked up every time. Without SQLite, nothing is kept."""

    KINDS = ("asset", "rendition")

    def __init__(self, lib, size: int = 4096) -> None:
        self.size = size
        self._nodes: OrderedDict[str, Node] = OrderedDict()
        self._content: OrderedDict[str, tuple[tuple[int, int, int], bytes]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self._version = -1
        self._probe = lib.probe  # the catalog's change counter (vfs/catalog/probe.py)

    def get(self, path: str) -> tuple[Node | None, int | None]:
        """(the node, or None) and the catalog version a node found now may be kept under."""
        version = self._probe.version()
        if version is None:
            return None, None
        with self._lock:
            if version != self._version:
                self._nodes.clear()
                self._version = version
                return None, version
            node = self._nodes.get(path)
            if node is not None:
                self._nodes.move_to_end(path)
            return node, version

    def put(self, path: str, node: Node, version: int) -> None:
        """Keep `node` unless the catalog moved on since `get` (it may be older than that)."""
        if node.kind not in self.KINDS:
            return
        with self._lock:
            if version != self._version:
                return
            self._nodes[path] = node
            if len(self._nodes) > self.size:
                self._nodes.popitem(last=False)

    def forget(self, path: str) -> None:
        with self._lock:
            self._nodes.pop(path, None)

    def content(self, source: str, st: os.stat_result) -> bytes | None:
        """The bytes of `source` read earlier, if the file is still the one they were read from."""
        with self._lock:
            hit = self._content.get(source)
            if hit is None or hit[0] != _stamp(st):
                return None
            self._content.move_to_end(source)
            return hit[1]

    def read_content(self, fh: BinaryIO, source: str, st: os.stat_result) -> bytes:
        """Read a small file whole (and close it); keep its bytes when the open file is the one
        `st` describes, so a replacement between stat and open is never remembered."""
        try:
            data = fh.read(st.st_size + 1)
            same = _stamp(os.fstat(fh.fileno())) == _stamp(st) and len(data) == st.st_size
        finally:
            fh.close()
        if same:
            with self._lock:
                old = self._content.pop(source, None)
                self._held += len(data) - (len(old[1]) if old else 0)
                self._content[source] = (_stamp(st), data)
                while self._held > CONTENT_BUDGET:
                    _key, (_st, dropped) = self._content.popitem(last=False)
                    self._held -= len(dropped)
        return data


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _stat(node: Node) -> os.stat_result | None:
    """The file of a remembered node (a rendition may have been evicted and made again, an
    original replaced behind the catalog's back): one stat, against a wrong Content-Length."""
    try:
        return os.stat(node.source_str)  # type: ignore[arg-type]
    except OSError:
        return None


def _plain(environ: dict) -> bool:
    """A request the fast path may answer: our provider, no body, Depth 0, no rare headers."""
    if not isinstance(environ.get("wsgidav.provider"), PhotoProvider):
        return False  # e.g. the dir browser's own assets under /:dir_browser/
    return _bodyless(environ)


def _bodyless(environ: dict) -> bool:
    """No request body, Depth 0 (or none), none of the rare headers left to wsgidav. Plain
    lookups: it runs first on every GET (an odd Content-Length such as "00" goes to wsgidav)."""
    return environ.get("CONTENT_LENGTH") in _NO_BODY and "HTTP_IF" not in environ \
        and "HTTP_IF_RANGE" not in environ and "HTTP_TRANSFER_ENCODING" not in environ \
        and environ.get("HTTP_DEPTH", "0").lower() == "0"


def _etag(node: Node) -> str | None | Literal[False]:
    """The unquoted ETag as wsgidav checks it; False when wsgidav would refuse it (500 there)."""
    return None if node.etag is None else _checked_etag(node.etag)


@lru_cache(maxsize=8192)
def _checked_etag(etag: str) -> str | Literal[False]:
    try:
        return util.checked_etag(etag)
    except ValueError:
        return False


class _Conditional:
    """The two questions `util.evaluate_http_conditionals` asks a resource."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def support_etag(self) -> bool:
        return self.node.etag is not None

    def support_modified(self) -> bool:
        return bool(self.node.mtime)


def _conditions(environ: dict, node: Node, etag: str | None) -> int | None:
    """0 to send the file, 304, or None for any other outcome (wsgidav answers those).

    wsgidav's own evaluation runs, so If-Match/If-None-Match/If-(Un)Modified-Since mean exactly
    what they mean on the slow path."""
    last_modified = int(node.mtime) if node.mtime else -1
    try:
        util.evaluate_http_conditionals(_Conditional(node), last_modified,
                                        "[]" if etag is None else etag, environ)
    except DAVError as exc:
        return HTTP_NOT_MODIFIED if exc.value == HTTP_NOT_MODIFIED else None
    return 0


def _range(environ: dict, size: int) -> tuple[int, int] | None | Literal[False]:
    """(start, length) of a single satisfiable `Range`, None for the whole file, False to
    delegate (multi-range, unsatisfiable: wsgidav's 416 page)."""
    spec = environ.get("HTTP_RANGE")
    if spec is None or size == 0:
        return None  # wsgidav ignores Range on an empty file
    if "," in spec:
        return False
    try:
        ranges, _total = util.obtain_content_ranges(spec, size)
    except DAVError:
        return False
    if not ranges:
        return False
    start, _end, length = ranges[0]
    return start, length


def _body(fh: BinaryIO, start: int, length: int, block: int,
          file_wrapper: object = None) -> Iterable[bytes]:
    """The bytes: one read for a small file (closed at once); else our server's file wrapper
    (sendfile on plain TCP, see sendfile.py), or a generator that closes the file when done, when
    the client goes away (GeneratorExit) or when it is collected."""
    if length > SENDFILE_MIN and isinstance(file_wrapper, WrapperFactory):
        return file_wrapper(fh, block, offset=start, length=length)
    if length <= block:
        try:
            if start:
                fh.seek(start)
            return [fh.read(length)] if length else []
        finally:
            fh.close()
    return _stream(fh, start, length, block)


def _stream(fh: BinaryIO, start: int, length: int, block: int) -> Iterator[bytes]:
    """`length` bytes from `start` in `block`-sized reads; stops early if the file shrank (the
    client then sees a short body, as with wsgidav)."""
    try:
        if start:
            fh.seek(start)
        while length > 0:
            data = fh.read(min(block, length))
            if not data:
                break
            length -= len(data)
            yield data
    finally:
        fh.close()


_clock: tuple[int, str] = (0, "")


def _now() -> str:
    """The Date header, formatted once per second (formatdate costs more than the rest)."""
    global _clock
    now = int(time.time())
    if _clock[0] != now:
        _clock = (now, util.get_rfc1123_time(now))
    return _clock[1]
