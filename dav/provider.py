"""A wsgidav provider over `photovfs.library.Library`: it only translates.

Every path is resolved by the core (`lib.resolve`), every listing is one `lib.list` call, every write
is one core call with the request's `Actor`; the views decide what a write means and the roles who may
do it. Core errors become HTTP statuses through the one table in `dav/errors.py`.
"""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from photovfs.errors import NotFound, PhotoVFSError
from photovfs.names import split_path
from photovfs.node import Node
from photovfs.roles import Actor, check_write
from wsgidav.dav_error import HTTP_CREATED, HTTP_FORBIDDEN, DAVError
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider

from .errors import to_dav_error, translate

if TYPE_CHECKING:
    from photovfs.library import Library, Upload

#: who a request acts as when nothing authenticated it (the server refuses to start that way
#: except on loopback, see server.py)
NOBODY = Actor("anonymous", "viewer")

#: requests whose lookups may be memoised (see get_resource_inst)
MEMO_METHODS = ("GET", "HEAD", "COPY")

#: Windows' mini-redirector sets these after every PUT; on a folder or a view the user cannot
#: change they are accepted and dropped (refusing them makes Explorer report a failed copy).
WIN32_PROPS = (
    "{urn:schemas-microsoft-com:}Win32CreationTime",
    "{urn:schemas-microsoft-com:}Win32LastAccessTime",
    "{urn:schemas-microsoft-com:}Win32LastModifiedTime",
    "{urn:schemas-microsoft-com:}Win32FileAttributes",
)

#: the Win32 times that map onto the file's own times (Library.set_times: index 0 atime, 1 mtime)
WIN32_TIMES = {
    "{urn:schemas-microsoft-com:}Win32LastAccessTime": 0,
    "{urn:schemas-microsoft-com:}Win32LastModifiedTime": 1,
}


def win32_time_ns(value) -> int | None:
    """The nanoseconds of a Win32 time property (an RFC 1123 date), None when unreadable.

    Explorer sends the local file's times after a PUT; an unreadable one is kept as a dead
    property only, never an error (Explorer reports a failed copy for any PROPPATCH error)."""
    text = getattr(value, "text", value)
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        when = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000_000


def actor_of(environ: dict) -> Actor:
    return environ.get("photovfs.actor") or NOBODY


def vpath(path: str) -> str:
    """A wsgidav path ('/by-date/2021/') as a core virtual path ('by-date/2021')."""
    return path.strip("/")


def dav_path(node_path: str, is_dir: bool) -> str:
    if not node_path:
        return "/"
    return "/" + node_path + ("/" if is_dir else "")


class PhotoProvider(DAVProvider):
    """Resolves every URL through the core; one instance per server, shared by all threads."""

    def __init__(self, lib: Library) -> None:
        super().__init__()
        self.lib = lib

    def __repr__(self) -> str:
        return f"PhotoProvider({self.lib.config.library})"

    def is_readonly(self) -> bool:
        return False  # the core refuses per view and per role

    def get_resource_inst(self, path: str, environ: dict):
        self._count_get_resource_inst += 1
        method = environ.get("REQUEST_METHOD", "")
        # wsgidav asks twice per GET (authenticator/browser, then the handler) and six times per
        # COPY (source, destination, its parent...); those may reuse the first answer until the
        # request writes (`forget_nodes`); other writes always see the current state
        memo = environ.setdefault("photovfs.nodes", {}) if method in MEMO_METHODS else None
        key = vpath(path)
        if memo is not None and key in memo:
            node = memo[key]
            return None if node is None else make_resource(self, node, environ)
        try:
            node = self.lib.resolve(key)
        except NotFound:
            node = None
        except PhotoVFSError as exc:
            raise to_dav_error(exc, method) from exc
        if memo is not None:
            memo[key] = node  # None: known to be absent
        return None if node is None else make_resource(self, node, environ)

    def exists(self, path: str, environ: dict) -> bool:
        memo = environ.get("photovfs.nodes")
        if memo is not None and vpath(path) in memo:
            return memo[vpath(path)] is not None
        try:
            self.lib.resolve(vpath(path))
        except NotFound:
            return False
        except PhotoVFSError as exc:
            raise to_dav_error(exc) from exc
        return True


def forget_nodes(environ: dict) -> None:
    """The request changed the library: later lookups in it must resolve again."""
    environ.pop("photovfs.nodes", None)


def make_resource(provider: PhotoProvider, node: Node, environ: dict):
    cls = FolderResource if node.is_dir else FileResource
    return cls(provider, node, environ)


class _Common:
    """What files and folders share: times, names, native DELETE/MOVE, dead-property policy."""

    node: Node
    provider: PhotoProvider
    environ: dict
    path: str

    @property
    def lib(self) -> Library:
        return self.provider.lib

    @property
    def vpath(self) -> str:
        return vpath(self.path)

    def _method(self) -> str:
        return self.environ.get("REQUEST_METHOD", "")

    def get_display_name(self) -> str:
        return self.node.name if self.node is not None else self.path.rstrip("/").rsplit("/", 1)[-1]

    def get_creation_date(self):
        return self.node.mtime if self.node is not None and self.node.mtime else None

    def get_last_modified(self):
        return self.node.mtime if self.node is not None and self.node.mtime else None

    # ---- DELETE ------------------------------------------------------------------------------
    def handle_delete(self):
        """DELETE is one core call (`lib.remove`): the view decides what removal means."""
        self._check_locks(self, "infinity")
        with translate("DELETE"):
            self.lib.remove(self.vpath, actor_of(self.environ))
        self._forget(recursive=True)
        return True

    def delete(self):
        with translate("DELETE"):
            self.lib.remove(self.vpath, actor_of(self.environ))
        self._forget(recursive=True)

    def _forget(self, *, recursive: bool) -> None:
        """After a removal: its dead properties and locks go with it."""
        forget_nodes(self.environ)
        pm, lm = self.provider.prop_manager, self.provider.lock_manager
        if pm is not None:
            pm.remove_properties(self.get_ref_url(), self.environ, with_children=recursive)
        if lm is not None:
            lm.remove_all_locks_from_url(self.get_ref_url(), recursive=recursive)

    def _check_locks(self, res, depth: str) -> None:
        lm = self.provider.lock_manager
        if lm is None:
            return
        from wsgidav import util

        if "wsgidav.conditions.if" not in self.environ:
            util.parse_if_header_dict(self.environ)
        lm.check_write_permission(url=res.get_ref_url(), depth=depth,
                                  token_list=self.environ["wsgidav.ifLockTokenList"],
                                  principal=self.environ.get("wsgidav.user_name", ""))

    # ---- MOVE / COPY -------------------------------------------------------------------------
    def _overwrite(self) -> bool:
        return self.environ.get("HTTP_OVERWRITE", "T") == "T"

    def _clear_destination(self, dest_path: str) -> None:
        """RFC 4918 9.9.3: with Overwrite: T a folder at (or onto) the destination is deleted first."""
        dest = self.provider.get_resource_inst(dest_path, self.environ)
        if dest is None:
            return
        if dest.is_collection or self.is_collection:
            with translate(self._method()):
                self.lib.remove(vpath(dest_path), actor_of(self.environ))
            dest._forget(recursive=True)
        else:
            pm = self.provider.prop_manager
            if pm is not None:
                pm.remove_properties(dest.get_ref_url(), self.environ, with_children=False)

    def _done(self, dest_existed: bool):
        """What handle_copy/handle_move return: 204 over an existing target, 201 for a new one."""
        if dest_existed:
            return True
        return [(self.get_href(), DAVError(HTTP_CREATED))]

    def handle_move(self, dest_path: str):
        """MOVE is one core call (`lib.move`): rename, add to an album, restore from trash..."""
        existed = self.provider.exists(dest_path, self.environ)
        if self._overwrite():
            self._clear_destination(dest_path)
        with translate("MOVE"):
            node = self.lib.move(self.vpath, vpath(dest_path), actor_of(self.environ),
                                 overwrite=self._overwrite())
        pm, lm = self.provider.prop_manager, self.provider.lock_manager
        if pm is not None:
            dest_url = make_resource(self.provider, node, self.environ).get_ref_url() \
                if node is not None else dest_path
            pm.move_properties(self.get_ref_url(), dest_url, with_children=True,
                               environ=self.environ)
        if lm is not None:
            lm.remove_all_locks_from_url(self.get_ref_url(), recursive=True)
        return self._done(existed)

    def support_recursive_move(self, dest_path):
        return False

    def get_property_value(self, name):
        if name in ("{DAV:}quota-used-bytes", "{DAV:}quota-available-bytes"):
            raise DAVError(404)  # not offered (wsgidav would answer an empty 200)
        return super().get_property_value(name)

    # ---- dead properties ---------------------------------------------------------------------
    def set_property_value(self, name, value, *, dry_run=False):
        """Dead properties where the user may write; Win32 times elsewhere are dropped harmlessly."""
        if name.startswith("{DAV:}"):
            return super().set_property_value(name, value, dry_run=dry_run)
        parts = split_path(self.vpath)
        try:
            if not parts:
                raise PhotoVFSError("the top folder has no properties")
            check_write(actor_of(self.environ), parts[0])
            if not self.node.writable and self.node.kind == "folder":
                raise PhotoVFSError(f"{parts[0]}: this folder is computed from the catalog")
        except PhotoVFSError as exc:
            if name in WIN32_PROPS:
                return None
            raise DAVError(HTTP_FORBIDDEN, context_info=exc.reason) from exc
        if name in WIN32_TIMES and not dry_run:
            self._set_win32_time(WIN32_TIMES[name], value)
        return super().set_property_value(name, value, dry_run=dry_run)

    def _set_win32_time(self, which: int, value) -> None:
        """Explorer's times after a copy land on the file itself where the core lets times
        stick (inbox and side files: `Library.set_times`, the rule FUSE's setattr uses too);
        on photos the core ignores them, so the catalog's times stay."""
        ns = win32_time_ns(value)
        if ns is None or self.node is None or self.node.is_dir:
            return
        times: list[int | None] = [None, None]
        times[which] = ns
        with translate("PROPPATCH"):
            self.lib.set_times(self.vpath, times[0], times[1])


class FileResource(_Common, DAVNonCollection):
    """A photo, rendition, inbox or scratch file; or (node None) the target of a PUT."""

    def __init__(self, provider: PhotoProvider, node: Node | None, environ: dict,
                 path: str | None = None) -> None:
        DAVNonCollection.__init__(self, path or dav_path(node.path, False), environ)
        self.provider = provider
        self.node = node
        self._upload: Upload | None = None

    def get_content_length(self):
        return self.node.size if self.node is not None else 0

    def get_content_type(self):
        return self.node.content_type if self.node is not None else "application/octet-stream"

    def get_etag(self):
        return self.node.etag if self.node is not None else None

    def support_etag(self):
        return self.node is not None and self.node.etag is not None

    def support_ranges(self):
        return True

    def get_content(self):
        if self.node is None or self.node.source is None:
            raise DAVError(404)
        with translate("GET"):
            return open(self.node.source, "rb", buffering=0)

    # ---- PUT: wsgidav's begin_write/end_write onto the core's Upload -------------------------
    def begin_write(self, *, content_type=None):
        with translate("PUT"):
            self._upload = self.lib.begin_write(self.vpath, actor_of(self.environ))
        return _UploadStream(self._upload)

    def end_write(self, *, with_errors):
        """Commit only a PUT that completed; nothing changes at the path otherwise."""
        upload, self._upload = self._upload, None
        if upload is None:
            return
        if with_errors:
            upload.abort()
            return
        with translate("PUT"):
            self.node = upload.commit()

    # ---- COPY --------------------------------------------------------------------------------
    def handle_copy(self, dest_path, *, depth_infinity):
        """COPY is one core call: by reference into albums and people, bytes elsewhere."""
        existed = self.provider.exists(dest_path, self.environ)
        if self._overwrite():
            self._clear_destination(dest_path)
        try:
            with translate("COPY"):
                node = self.lib.copy(self.vpath, vpath(dest_path), actor_of(self.environ),
                                     overwrite=self._overwrite())
        finally:
            forget_nodes(self.environ)
        pm = self.provider.prop_manager
        if pm is not None and node is not None:
            dest = make_resource(self.provider, node, self.environ)
            pm.remove_properties(dest.get_ref_url(), self.environ, with_children=False)
            pm.copy_properties(self.get_ref_url(), dest.get_ref_url(), self.environ)
        return self._done(existed)

    def copy_move_single(self, dest_path, *, is_move):
        if is_move:
            raise DAVError(HTTP_FORBIDDEN)
        self.handle_copy(dest_path, depth_infinity=False)


class FolderResource(_Common, DAVCollection):
    def __init__(self, provider: PhotoProvider, node: Node, environ: dict) -> None:
        DAVCollection.__init__(self, dav_path(node.path, True), environ)
        self.provider = provider
        self.node = node

    def get_etag(self):
        return None

    def support_etag(self):
        return False

    def _list(self) -> list[Node]:
        with translate("PROPFIND"):
            return self.lib.list(self.vpath)

    def get_member_names(self):
        return [n.name for n in self._list()]

    def get_member_list(self):
        return [make_resource(self.provider, n, self.environ) for n in self._list()]

    def get_member(self, name):
        return self.provider.get_resource_inst(self.path.rstrip("/") + "/" + name, self.environ)

    def create_collection(self, name):
        with translate("MKCOL"):
            self.lib.mkdir(self._child(name), actor_of(self.environ))

    def create_empty_resource(self, name):
        """PUT: the upload target (nothing exists before the commit). LOCK on an unmapped URL:
        an empty file, as RFC 4918 7.3 asks; the views never take an empty file as a photo."""
        path = "/" + self._child(name)
        res = FileResource(self.provider, None, self.environ, path=path)
        if self._method() == "LOCK":
            res.begin_write()
            res.end_write(with_errors=False)
            if res.node is not None and res.node.path != vpath(path):
                return make_resource(self.provider, res.node, self.environ)
        return res

    def _child(self, name: str) -> str:
        return f"{self.vpath}/{name}" if self.vpath else name

    def support_recursive_delete(self):
        return True

    def handle_copy(self, dest_path, *, depth_infinity):
        return False  # wsgidav walks the tree: folders with mkdir, files with lib.copy

    def copy_move_single(self, dest_path, *, is_move):
        if is_move:
            raise DAVError(HTTP_FORBIDDEN)
        try:
            with translate("MKCOL"):
                self.lib.mkdir(vpath(dest_path), actor_of(self.environ))
        except DAVError:
            if not self.provider.exists(dest_path, self.environ):
                raise
        finally:
            forget_nodes(self.environ)
        pm = self.provider.prop_manager
        if pm is not None:
            dest = self.provider.get_resource_inst(dest_path, self.environ)
            if dest is not None:
                pm.copy_properties(self.get_ref_url(), dest.get_ref_url(), self.environ)


class _UploadStream:
    """The file wsgidav writes a PUT body into; close() does not commit (end_write does)."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload

    def write(self, data: bytes) -> int:
        try:
            return self.upload.write(data)
        except OSError as exc:
            raise to_dav_error(exc, "PUT") from exc

    def close(self) -> None:
        pass


__all__ = ["PhotoProvider", "FileResource", "FolderResource"]
