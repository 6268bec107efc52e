"""Who may do what. Checked in the core so that WebDAV, FUSE and SMB enforce the same rules."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import Forbidden

ROLES = ("admin", "member", "viewer", "uploader")


@dataclass(frozen=True)
class Actor:
    """The user behind a request; FUSE and the CLI act as the local admin."""

    name: str
    role: str = "admin"


SYSTEM = Actor("local", "admin")


def check_write(actor: Actor, view: str, *, purge: bool = False) -> None:
    """Raise Forbidden unless `actor` may change something under `view`.

    `purge` marks permanent deletion (emptying trash): admins only.
    """
    if actor.role == "admin":
        return
    if actor.role == "viewer":
        raise Forbidden("viewers may not change anything")
    if actor.role == "uploader" and view != "inbox":
        raise Forbidden("uploaders may only write into inbox/")
    if purge:
        raise Forbidden("only an admin may delete from trash permanently")
