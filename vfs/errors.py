"""The only exceptions adapters see.

Every failure the core reports is one of these; dav/ maps them to HTTP status codes and fuse/ to errno,
each in one table. Messages are short and meant for a person ("by-date is computed from capture dates").
"""

from __future__ import annotations


class PhotoVFSError(Exception):
    """Base of every core error; `reason` is a short sentence for the user."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or self.__class__.__doc__ or self.__class__.__name__)
        self.reason = reason or (self.__class__.__doc__ or self.__class__.__name__).strip()


class NotFound(PhotoVFSError):
    """No such file or folder."""


class ReadOnly(PhotoVFSError):
    """This folder is computed from the catalog and cannot be changed this way."""


class Forbidden(PhotoVFSError):
    """Your role does not allow this."""


class Conflict(PhotoVFSError):
    """The operation conflicts with the current state (e.g. the parent folder is missing)."""


class Exists(PhotoVFSError):
    """Something already exists at that path."""


class NotEmpty(PhotoVFSError):
    """The folder is not empty."""


class IsAFolder(PhotoVFSError):
    """That path is a folder."""


class NotAFolder(PhotoVFSError):
    """That path is not a folder."""


class InvalidName(PhotoVFSError):
    """The name is not allowed (.., NUL, slash, too long or not valid text)."""


class BadMedia(PhotoVFSError):
    """The file is not a photo or video that photovfs can read, or it is damaged."""


class TooLarge(PhotoVFSError):
    """The image is too large to decode safely (decompression bomb guard)."""


class NoSpace(PhotoVFSError):
    """The disk is full; nothing was changed."""


class Locked(PhotoVFSError):
    """The resource is locked by another client."""


class Unsupported(PhotoVFSError):
    """This operation is not supported here."""
