"""Users and roles for the network adapters (WebDAV today), kept in one TOML file.

The file (`config.users_file`, default STATE/users.toml) holds argon2 hashes, never passwords::

    [users.alice]
    role = "member"
    password = "$argon2id$v=19$m=65536,t=3,p=4$..."

Roles are those of `photovfs.roles` (admin, member, viewer, uploader); the core enforces them on every
write through the `Actor` an adapter builds from the verified user.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import re
import tempfile
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import Exists, InvalidName, NotFound
from .roles import ROLES

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class User:
    name: str
    role: str


class Users:
    """The users file of one library. Safe to share between threads; re-reads the file on change."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._path = str(self.path)  # os.stat of a str: every WebDAV request checks the file
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._data: dict[str, dict[str, str]] = {}
        # verified (name, sha256(password)) -> role: argon2 costs ~50 ms, a WebDAV client sends
        # credentials with every request. Cleared whenever the file changes.
        self._verified: dict[tuple[str, str], str] = {}

    # ---- reading -----------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, str]]:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            self._stamp, self._data, self._verified = None, {}, {}
            return self._data
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            with open(self.path, "rb") as fh:
                data = tomllib.load(fh)
            users = data.get("users", {})
            if not isinstance(users, dict):
                raise ValueError(f"{self.path}: [users] must be a table")
            self._data = {str(k): dict(v) for k, v in users.items()}
            self._stamp = stamp
            self._verified = {}
        return self._data

    def list(self) -> builtins.list[User]:
        with self._lock:
            return [User(n, d.get("role", "viewer")) for n, d in sorted(self._load().items())]

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._load())

    def verify(self, name: str, password: str) -> str | None:
        """The user's role when the password is right, else None."""
        key = (name, hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest())
        with self._lock:
            data = self._load()
            if key in self._verified:
                return self._verified[key]
            entry = data.get(name)
        if entry is None:
            _hasher.hash("timing: do the same work for unknown users")
            return None
        try:
            _hasher.verify(entry.get("password", ""), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        role = entry.get("role", "viewer")
        if role not in ROLES:
            return None
        with self._lock:
            self._verified[key] = role
        return role

    # ---- writing -----------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, *, replace: bool = False) -> User:
        if not _NAME.match(name):
            raise InvalidName("user names are 1-64 letters, digits, '.', '_', '@' or '-'")
        if role not in ROLES:
            raise InvalidName(f"role must be one of {', '.join(ROLES)}")
        if not password:
            raise InvalidName("the password may not be empty")
        with self._lock:
            data = dict(self._load())
            if name in data and not replace:
                raise Exists(f"user {name} exists")
            data[name] = {"role": role, "password": _hasher.hash(password)}
            self._save(data)
        return User(name, role)

    def remove(self, name: str) -> None:
        with self._lock:
            data = dict(self._load())
            if name not in data:
                raise NotFound(f"no user {name}")
            del data[name]
            self._save(data)

    def _save(self, data: dict[str, dict[str, str]]) -> None:
        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = ["# photovfs users: edit with `photovfs user add|remove|list`", ""]
        for name in sorted(data):
            lines.append(f"[users.{q(name)}]")
            for key in ("role", "password"):
                lines.append(f"{key} = {q(str(data[name][key]))}")
            lines.append("")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-", suffix=".toml")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._stamp = None
        self._load()


_open: dict[Path, Users] = {}
_open_lock = threading.Lock()


def users_for(path: Path) -> Users:
    """One shared `Users` per file in this process."""
    path = Path(path).resolve()
    with _open_lock:
        if path not in _open:
            _open[path] = Users(path)
        return _open[path]


def add(lib_or_path, name: str, role: str, password: str) -> User:
    return users_for(_path(lib_or_path)).add(name, role, password)


def remove(lib_or_path, name: str) -> None:
    users_for(_path(lib_or_path)).remove(name)


def list_users(lib_or_path) -> builtins.list[User]:
    return users_for(_path(lib_or_path)).list()


def verify(lib_or_path, name: str, password: str) -> str | None:
    return users_for(_path(lib_or_path)).verify(name, password)


def _path(lib_or_path) -> Path:
    if isinstance(lib_or_path, (str, Path)):
        return Path(lib_or_path)
    config = getattr(lib_or_path, "config", lib_or_path)
    return config.users_file


list = list_users  # noqa: A001  (the brief's name: users.list(lib))


def cmd_user(args) -> int:
    """`photovfs user add|remove|list LIBRARY [NAME] [--role R] [--password-stdin]`."""
    import getpass
    import sys

    from .config import load_config

    if not args.library.is_dir():
        raise SystemExit(f"photovfs: {args.library} is not a folder")
    cfg = load_config(args.library, config_file=args.config, state_dir=args.state)
    users = users_for(cfg.users_file)
    if args.action == "list":
        for u in users.list():
            print(f"{u.name}\t{u.role}")
        return 0
    if not args.name:
        raise SystemExit(f"photovfs: user {args.action} needs a NAME")
    if args.action == "remove":
        users.remove(args.name)
        print(f"removed {args.name}")
        return 0
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("photovfs: the passwords differ")
    u = users.add(args.name, args.role, password, replace=args.replace)
    print(f"{'updated' if args.replace else 'added'} {u.name} ({u.role}) in {cfg.users_file}")
    return 0
