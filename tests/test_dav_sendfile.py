"""Large GET bodies by sendfile (dav/sendfile.py): the same bytes and headers as wsgidav's GET.

Real servers on 127.0.0.1 serve one library: the fast path on plain TCP (sendfile), wsgidav alone
(`fast_get=False`) and the fast path over TLS (the body iterated, never sendfile). The gateway's
`sendfile_bodies` statistic shows which way a body went, so a comparison cannot pass by the fast
server quietly falling back to iteration.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

import pytest
from dav_helpers import Answer, DavServer, make_photos, send
from photovfs.dav.sendfile import SendfileGateway
from photovfs.dav.server import run_in_thread

BIG = "/inbox/big.bin"
BIG_SIZE = 16 * (1 << 20) + 12345  # far more than a loopback socket buffers
RANGES = ["bytes=0-99", "bytes=0-1048575", "bytes=3000000-5000000", "bytes=-2000000",
          f"bytes={BIG_SIZE - 70000}-", f"bytes=1000-{BIG_SIZE + 50}"]


def fetch(port: int, method: str = "GET", path: str = BIG, headers: dict | None = None,
          tls: bool = False) -> Answer:
    return send(port, method, path, headers, tls=tls)


@dataclass
class Servers:
    srv: DavServer
    slow: object
    tls: object | None
    data: bytes

    @property
    def fast_port(self) -> int:
        return self.srv.port

    @property
    def slow_port(self) -> int:
        return self.slow.bind_addr[1]  # type: ignore[attr-defined]


def _self_signed(folder) -> tuple[str, str] | None:
    if shutil.which("openssl") is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("sendfile")
    srv = DavServer(make_photos(root / "Photos")).start()
    inbox = srv.lib.config.inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    data = os.urandom(BIG_SIZE)
    (inbox / "big.bin").write_bytes(data)
    slow, slow_thread = run_in_thread(srv.lib, "127.0.0.1", 0, fast_get=False)
    pem = _self_signed(root)
    tls = tls_thread = None
    if pem is not None:
        tls, tls_thread = run_in_thread(srv.lib, "127.0.0.1", 0, cert=pem[0], key=pem[1])
    yield Servers(srv, slow, tls, data)
    for server, thread in ((slow, slow_thread), (tls, tls_thread)):
        if server is not None:
            server.stop()
            thread.join(5)
    srv.stop()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_whole_big_file_is_sent_by_sendfile_byte_for_byte(servers):
    before = SendfileGateway.sendfile_bodies
    answer = fetch(servers.fast_port)
    assert answer.status == 200
    assert _sha(answer.body) == _sha(servers.data)
    assert SendfileGateway.sendfile_bodies == before + 1


def test_a_whole_big_file_has_wsgidavs_headers(servers):
    fast, slow = fetch(servers.fast_port), fetch(servers.slow_port)
    assert fast.comparable() == slow.comparable()


@pytest.mark.parametrize("spec", RANGES)
def test_ranges_agree_with_wsgidav(servers, spec):
    fast = fetch(servers.fast_port, headers={"Range": spec})
    slow = fetch(servers.slow_port, headers={"Range": spec})
    assert fast.status == 206
    assert fast.comparable() == slow.comparable()


def test_a_middle_range_is_sent_by_sendfile(servers):
    before = SendfileGateway.sendfile_bodies
    answer = fetch(servers.fast_port, headers={"Range": "bytes=3000000-5000000"})
    assert answer.body == servers.data[3000000:5000001]
    assert SendfileGateway.sendfile_bodies == before + 1


def test_head_sends_no_body_on_the_wire(servers):
    before = SendfileGateway.sendfile_bodies
    with socket.create_connection(("127.0.0.1", servers.fast_port), timeout=30) as s:
        s.sendall(f"HEAD {BIG} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {BIG_SIZE}".encode() in head
    assert rest == b""
    assert SendfileGateway.sendfile_bodies == before


def test_keep_alive_requests_after_a_sendfile_body_are_answered(servers):
    """The connection stays usable: nothing of the body is left in cheroot's buffer."""
    conn = http.client.HTTPConnection("127.0.0.1", servers.fast_port, timeout=60)
    try:
        for spec in ("bytes=100-999999", "bytes=0-99", None, "bytes=-300000"):
            conn.request("GET", BIG, headers={"Range": spec} if spec else {})
            r = conn.getresponse()
            body = r.read()
            start, _, end = (spec or "bytes=0-").removeprefix("bytes=").partition("-")
            want = servers.data[-int(end):] if not start else \
                servers.data[int(start):int(end) + 1 if end else None]
            assert body == want, spec
    finally:
        conn.close()


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _hang_up_mid_body(port: int) -> None:
    """Read a little of the body, then reset the connection (the server is mid-sendfile)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    s.recv(4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="counts open files in /proc")
def test_a_client_gone_mid_download_leaves_the_server_serving_and_no_open_files(servers):
    fetch(servers.fast_port)  # warm: the server's threads and caches exist before counting
    before = _fd_count()
    for _ in range(8):
        _hang_up_mid_body(servers.fast_port)
    answer = fetch(servers.fast_port)
    assert answer.status == 200 and _sha(answer.body) == _sha(servers.data)
    deadline = time.time() + 15
    while _fd_count() > before and time.time() < deadline:
        time.sleep(0.1)
    assert _fd_count() <= before
    big = str(servers.srv.lib.config.inbox_dir / "big.bin")
    assert not [fd for fd in os.listdir("/proc/self/fd") if _points_to(fd, big)]


def _points_to(fd: str, path: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == path
    except OSError:
        return False


def test_tls_serves_the_same_bytes_without_sendfile(servers):
    if servers.tls is None:
        pytest.skip("openssl is not installed: no certificate for the TLS server")
    port = servers.tls.bind_addr[1]
    before = SendfileGateway.sendfile_bodies
    answer = fetch(port, tls=True)
    assert answer.status == 200 and _sha(answer.body) == _sha(servers.data)
    ranged = fetch(port, headers={"Range": "bytes=3000000-5000000"}, tls=True)
    assert ranged.comparable() == fetch(servers.slow_port,
                                        headers={"Range": "bytes=3000000-5000000"}).comparable()
    assert SendfileGateway.sendfile_bodies == before


def test_tls_keeps_cheroots_files_and_serves_many_requests_on_one_connection(servers):
    """TLS connections keep cheroot's own buffered files (dav/httpserver.py changes plain TCP
    only) and still take the next request on a kept connection."""
    import http.client
    import ssl

    if servers.tls is None:
        pytest.skip("openssl is not installed: no certificate for the TLS server")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", servers.tls.bind_addr[1], timeout=30,
                                       context=ctx)
    small = (servers.srv.photos / "2021/Italy/IMG_0001.jpg").read_bytes()
    ports = set()
    for i in range(20):
        conn.request("GET" if i % 2 else "HEAD", "/by-date/2021/04/30/IMG_0001.jpg")
        r = conn.getresponse()
        assert r.status == 200 and r.read() == (small if i % 2 else b"")
        ports.add(conn.sock.getsockname()[1])
    conn.request("GET", BIG)
    assert _sha(conn.getresponse().read()) == _sha(servers.data)
    conn.close()
    assert len(ports) == 1
