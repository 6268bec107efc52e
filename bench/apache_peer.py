"""Apache httpd with mod_dav as a benchmark peer: a private instance on a loopback port.

The WebDAV issue names Apache mod_dav as one of the peers. Debian's `apache2` package ships the
binary and modules; this starts one server in the foreground with its own minimal config in a
temporary folder (no `/etc/apache2` site, no service), so the benchmark measures Apache serving
the same files as the other peers, and stops only what it started. Without `apache2` installed
the peer is skipped and the benchmark says so.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

MODULES = Path("/usr/lib/apache2/modules")
_LOAD = ("mpm_event", "authz_core", "mime", "dav", "dav_fs", "dir")  # unixd, log_config: built in


def available() -> bool:
    """Whether Debian's apache2 binary and mod_dav are on this machine."""
    return bool(shutil.which("apache2") or Path("/usr/sbin/apache2").exists()) and (
        MODULES / "mod_dav_fs.so").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(root: Path, work: Path, port: int) -> str:
    """A minimal httpd.conf: event MPM, mod_dav on `root`, logs and lock DB in `work`."""
    user = "www-data" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    loads = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in _LOAD)
    return f"""{loads}
ServerRoot "{work}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{work}/httpd.pid"
ErrorLog "{work}/error.log"
LogLevel warn
User {user}
Group {user if user != "www-data" else "www-data"}
TypesConfig /etc/mime.types
DAVLockDB "{work}/lock/DAVLock"
KeepAlive On
MaxKeepAliveRequests 0
EnableSendfile On
StartServers 2
ThreadsPerChild 25
DocumentRoot "{root}"
<Directory "{root}">
    Dav On
    AllowOverride None
    Require all granted
</Directory>
"""


def start(root: Path) -> tuple[str, Callable[[], None]] | None:
    """Start Apache serving `root` over WebDAV; return (base URL, stop) or None if not installed."""
    if not available():
        return None
    work = Path(tempfile.mkdtemp(prefix="bench-apache-"))
    (work / "lock").mkdir()
    if os.geteuid() == 0:  # the worker processes run as www-data and write the lock DB
        shutil.chown(work / "lock", "www-data", "www-data")
    port = _free_port()
    conf = work / "httpd.conf"
    conf.write_text(_config(root, work, port))
    binary = shutil.which("apache2") or "/usr/sbin/apache2"
    proc = subprocess.Popen([binary, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "APACHE_RUN_DIR": str(work)})
    base = f"http://127.0.0.1:{port}"
    if not _wait_up(base + "/", proc):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        _stop(proc, work)
        raise RuntimeError(f"apache2 did not start: {err.strip()[:400]}")

    def stop() -> None:
        _stop(proc, work)

    return base, stop


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 20) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return True
        except urllib.error.HTTPError:  # any HTTP answer means it listens
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen, work: Path) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: the parent stops its children
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    shutil.rmtree(work, ignore_errors=True)
