"""The one table from core errors to HTTP status codes.

The core raises `photovfs.errors.*` with a short reason for a person; WebDAV clients get the status
below and the reason in the response body. A core error never becomes a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from photovfs import errors as e
from wsgidav.dav_error import DAVError

#: core error -> HTTP status. `Exists` depends on the request: MKCOL on an existing URL is 405
#: (RFC 4918 9.3.1); COPY/MOVE onto an existing target without Overwrite is 412 (9.8.5); see
#: `EXISTS_BY_METHOD`.
STATUS: dict[type[e.PhotoVFSError], int] = {
    e.NotFound: 404,
    e.ReadOnly: 403,
    e.Forbidden: 403,
    e.Conflict: 409,
    e.Exists: 405,
    e.NotEmpty: 409,
    e.IsAFolder: 405,
    e.NotAFolder: 409,
    e.InvalidName: 400,
    e.BadMedia: 415,
    e.TooLarge: 413,
    e.NoSpace: 507,
    e.Locked: 423,
    e.Unsupported: 501,
}

EXISTS_BY_METHOD = {"MKCOL": 405, "COPY": 412, "MOVE": 412, "PUT": 409, "LOCK": 409}


def status_for(exc: e.PhotoVFSError, method: str = "") -> int:
    if isinstance(exc, e.Exists) and method in EXISTS_BY_METHOD:
        return EXISTS_BY_METHOD[method]
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 403


def to_dav_error(exc: BaseException, method: str = "") -> DAVError:
    """A DAVError for a core error (reason in the body) or an OSError (never a bare 500)."""
    if isinstance(exc, DAVError):
        return exc
    if isinstance(exc, e.PhotoVFSError):
        return DAVError(status_for(exc, method), context_info=exc.reason)
    if isinstance(exc, OSError):
        import errno

        if exc.errno == errno.ENOSPC:
            return DAVError(507, context_info="the disk is full; nothing was changed")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return DAVError(404, context_info="no such file or folder")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return DAVError(403, context_info="the server may not write there")
        if exc.errno == errno.ENAMETOOLONG:
            return DAVError(400, context_info="name too long")
    raise exc


@contextmanager
def translate(method: str = "") -> Iterator[None]:
    """Run core calls; re-raise core errors as DAVError with the status from the table."""
    try:
        yield
    except (e.PhotoVFSError, OSError) as exc:
        raise to_dav_error(exc, method) from exc
