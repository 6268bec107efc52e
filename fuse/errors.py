"""Core errors -> errno: the one table the FUSE adapter uses (dav/ has its own, to HTTP statuses).

Read-only views answer EACCES ("Permission denied"), as WebDAV answers 403: EROFS would tell users
(and Samba, which maps it to "media write protected") that the whole mount is read-only, which it is
not: inbox/, by-album/ and edits of existing photos are writable.
"""

from __future__ import annotations

import errno
import logging

import pyfuse3
from photovfs.errors import (
    BadMedia,
    Conflict,
    Exists,
    Forbidden,
    InvalidName,
    IsAFolder,
    Locked,
    NoSpace,
    NotAFolder,
    NotEmpty,
    NotFound,
    PhotoVFSError,
    ReadOnly,
    TooLarge,
    Unsupported,
)

log = logging.getLogger("photovfs.fuse")

ERRNO: dict[type[PhotoVFSError], int] = {
    NotFound: errno.ENOENT,
    ReadOnly: errno.EACCES,
    Forbidden: errno.EACCES,
    Exists: errno.EEXIST,
    NotEmpty: errno.ENOTEMPTY,
    IsAFolder: errno.EISDIR,
    NotAFolder: errno.ENOTDIR,
    InvalidName: errno.EINVAL,  # ENAMETOOLONG for names over 255 bytes, see errno_for
    BadMedia: errno.EIO,  # reaches an editor at close(): "Input/output error", nothing replaced
    TooLarge: errno.EFBIG,
    NoSpace: errno.ENOSPC,
    Conflict: errno.EBUSY,
    Locked: errno.EBUSY,
    Unsupported: errno.EOPNOTSUPP,
}


def errno_for(exc: BaseException) -> int:
    """The errno a failed request answers; anything unexpected is logged and becomes EIO."""
    if isinstance(exc, pyfuse3.FUSEError):
        return exc.errno
    if isinstance(exc, PhotoVFSError):
        if isinstance(exc, InvalidName) and ("longer" in exc.reason or "too long" in exc.reason):
            return errno.ENAMETOOLONG
        for cls in type(exc).__mro__:
            if cls in ERRNO:
                return ERRNO[cls]
        return errno.EIO
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    log.exception("unexpected error in a FUSE request", exc_info=exc)
    return errno.EIO


def fuse_error(exc: BaseException) -> pyfuse3.FUSEError:
    code = errno_for(exc)
    if isinstance(exc, PhotoVFSError) and code not in (errno.ENOENT,):
        log.info("refused (%s): %s", errno.errorcode.get(code, code), exc.reason)
    return pyfuse3.FUSEError(code)
