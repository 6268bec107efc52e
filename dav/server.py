"""`photovfs serve`: the WebDAV server (wsgidav on cheroot) over one Library.

`make_app(lib)` builds the WSGI application (tests use it), `run_in_thread` starts a real server on
a port for tests and benchmarks, `serve` is the command: it answers from the first second while an
incremental scan fills the views in the background.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from cheroot import wsgi
from photovfs.users import Users, users_for
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.lock_man.lock_storage import LockStorageShelve
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from .auth import PhotoDomainController
from .fastcopy import FastCopy
from .fastget import FastGet, FileResponder
from .fastprop import FastPropfind
from .guard import Guard
from .httpserver import PhotoServer
from .props import CatalogPropertyManager
from .provider import PhotoProvider
from .sendfile import SendfileGateway

#: GET streams originals in blocks of this size (wsgidav's default is 8 KiB; see bench/bench_dav.py)
BLOCK_SIZE = 1 << 20

# one lock store per file per process: shelve must not be opened twice
_lock_stores: dict[Path, LockStorageShelve] = {}
_lock_stores_guard = threading.Lock()


def lock_storage_for(lib) -> LockStorageShelve:
    path = (lib.config.state_dir / "locks").resolve()
    with _lock_stores_guard:
        store = _lock_stores.get(path)
        if store is None:
            store = _lock_stores[path] = LockStorageShelve(str(path))
        return store


def close_lock_storage(lib) -> None:
    path = (lib.config.state_dir / "locks").resolve()
    with _lock_stores_guard:
        store = _lock_stores.pop(path, None)
    if store is not None:
        store.close()


def make_app(lib, *, users: Users | None = None, fast_propfind: bool = True, fast_get: bool = True,
             fast_copy: bool = True, verbose: int = 1):
    """The WSGI application: Guard -> wsgidav (errors, auth, fast PROPFIND, GET and COPY/MOVE into
    albums, browser, provider). The fast paths answer after authentication; the Guard answers a
    GET of a file served moments ago itself, authenticated the same way (fastget.FileResponder).
    `fast_*=False` is wsgidav alone, which tests and benchmarks compare them with."""
    users = users if users is not None else users_for(lib.config.users_file)
    anonymous_ok = not users  # fixed at start: removing the last user locks the door, never opens it
    files = FileResponder(lib, users=users, anonymous_ok=anonymous_ok, block_size=BLOCK_SIZE,
                          verbose=verbose) if fast_get else None
    stack = [ErrorPrinter, HTTPAuthenticator]
    if fast_propfind:
        stack.append(FastPropfind)
    if fast_get:
        stack.append(FastGet)
    if fast_copy:
        stack.append(FastCopy)
    stack += [WsgiDavDirBrowser, RequestResolver]
    config = {
        "provider_mapping": {"/": PhotoProvider(lib)},
        "lock_storage": lock_storage_for(lib),
        "property_manager": CatalogPropertyManager(lib),
        "http_authenticator": {
            "domain_controller": PhotoDomainController,
            "accept_basic": True,
            "accept_digest": False,  # passwords are stored as argon2 hashes only
            "default_to_digest": False,
            "trusted_auth_header": None,
        },
        "photovfs": {"users": users, "library": lib, "files": files, "anonymous_ok": anonymous_ok},
        "middleware_stack": stack,
        "block_size": BLOCK_SIZE,
        "verbose": verbose,
        "logging": {"enable": verbose >= 3},
        "suppress_version_info": True,
        "add_header_MS_Author_Via": True,
        "hotfixes": {"emulate_win32_lastmod": False, "re_encode_path_info": True,
                     "unquote_path_info": False},
        "dir_browser": {"enable": True, "response_trailer": "photovfs", "davmount": True,
                        "ms_sharepoint_support": False, "libre_office_support": False},
    }
    return Guard(WsgiDAVApp(config), hot=files)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback
                       for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


class RefusedToServe(RuntimeError):
    """Serving this way would expose the library (no users on a non-loopback address)."""


def check_exposure(users: Users, host: str) -> str:
    """'anonymous' (loopback, no users) or 'users'; raise RefusedToServe otherwise."""
    if users:
        return "users"
    if is_loopback(host):
        return "anonymous"
    raise RefusedToServe(
        f"refusing to serve {host} without users: anyone on the network could change the library.\n"
        f"Add one with `photovfs user add LIBRARY NAME --role admin`, or serve on 127.0.0.1.")


def make_server(lib, host: str, port: int, *, cert: Path | None = None, key: Path | None = None,
                users: Users | None = None, numthreads: int = 20, **app_kw) -> wsgi.Server:
    users = users if users is not None else users_for(lib.config.users_file)
    check_exposure(users, host)
    server = PhotoServer((host, port), make_app(lib, users=users, **app_kw), numthreads=numthreads,
                         server_name="photovfs", shutdown_timeout=2, timeout=60)
    server.gateway = SendfileGateway  # large GET bodies by sendfile on plain TCP (sendfile.py)
    if cert or key:
        if not (cert and key):
            raise RefusedToServe("TLS needs both --cert and --key")
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        server.ssl_adapter = BuiltinSSLAdapter(str(cert), str(key))
    return server


def run_in_thread(lib, host: str = "127.0.0.1", port: int = 0, **kw):
    """Start a real server in a daemon thread; returns (server, thread). `server.stop()` ends it.
    The bound port is `server.bind_addr[1]`."""
    server = make_server(lib, host, port, **kw)
    server.prepare()
    thread = threading.Thread(target=server.serve, name="photovfs-dav", daemon=True)
    thread.start()
    return server, thread


def start_watcher(lib):
    """Watch the inbox (quiet period) and the originals (changes by other programs)."""
    from photovfs.watch import Watcher

    return Watcher(lib).start()


def _scan_in_background(lib) -> threading.Thread:
    def run():
        try:
            report = lib.scan()
            print(f"photovfs: scan done: {report.added} added, {report.updated} updated, "
                  f"{report.removed} removed", file=sys.stderr)
        except Exception as exc:  # the server keeps answering from the catalog
            print(f"photovfs: scan failed: {exc}", file=sys.stderr)

    t = threading.Thread(target=run, name="photovfs-scan", daemon=True)
    t.start()
    return t


def serve(lib, host: str | None = None, port: int | None = None, cert: Path | None = None,
          key: Path | None = None, scan: bool = True) -> int:
    """Run the WebDAV server until SIGINT/SIGTERM; returns the exit status."""
    host = host or lib.config.server.host
    port = lib.config.server.port if port is None else port
    users = users_for(lib.config.users_file)
    try:
        mode = check_exposure(users, host)
        server = make_server(lib, host, port, cert=cert, key=key, users=users)
        server.prepare()
    except RefusedToServe as exc:
        print(f"photovfs: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"photovfs: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    bound = server.bind_addr[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"photovfs: serving {lib.config.library} at "
          f"{'https' if cert else 'http'}://{shown}:{bound}/", flush=True)
    if mode == "anonymous":
        print("photovfs: no users configured: anyone on this machine has full access "
              "(loopback only). Add users with `photovfs user add`.", flush=True)
    scanner = _scan_in_background(lib) if scan else None
    watcher = start_watcher(lib)
    from photovfs.background import start_background

    background = start_background(lib, after=scanner)  # renditions, faces, fixity, backups

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve, name="photovfs-dav", daemon=True)
    thread.start()
    try:
        housekeeping = 0.0
        while not stop.wait(0.5):
            if not thread.is_alive():
                break
            if time.monotonic() - housekeeping > 3600:  # expired trash is purged by the server
                housekeeping = time.monotonic()
                lib.purge_expired()
    finally:
        print("photovfs: stopping", file=sys.stderr, flush=True)
        server.stop()
        thread.join(5)
        if watcher is not None and hasattr(watcher, "stop"):
            watcher.stop()
        if background is not None:
            background.stop()
        for s, h in old.items():
            signal.signal(s, h)
        close_lock_storage(lib)
        lib.close()
    return 0
