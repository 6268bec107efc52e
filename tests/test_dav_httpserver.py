"""The tuned cheroot server (dav/httpserver.py): a worker keeps serving a keep-alive connection
while its client sends the next request at once, and reads and writes it through C buffering.

Everything here runs against a real server on 127.0.0.1 with raw sockets or http.client, so the
bytes on the wire are what is checked: keep-alive, pipelined requests, request bodies (plain and
chunked), a client that goes away, more idle connections than workers, and a prompt stop.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
from dav_helpers import DavServer, make_photos
from photovfs.dav.httpserver import PhotoConnection, PhotoServer, SocketReader, SocketWriter
from photovfs.dav.server import run_in_thread

P1 = "/by-date/2021/04/30/IMG_0001.jpg"
P2 = "/by-date/2021/04/30/IMG_0002.jpg"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = DavServer(make_photos(tmp_path_factory.mktemp("httpserver") / "Photos")).start()
    yield server
    server.stop()


def _files(srv) -> dict[str, bytes]:
    return {P1: (srv.photos / "2021/Italy/IMG_0001.jpg").read_bytes(),
            P2: (srv.photos / "2021/Italy/IMG_0002.jpg").read_bytes()}


def _read_response(f, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length (no body after a HEAD) from a socket file."""
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, b"" if head else f.read(int(headers.get("content-length", 0)))


def test_the_server_uses_the_tuned_connection(srv):
    assert isinstance(srv.server, PhotoServer)
    assert srv.server.ConnectionClass is PhotoConnection


def test_many_requests_on_one_connection_are_served_by_the_lingering_worker(srv):
    files = _files(srv)
    before = PhotoServer.kept_requests
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    ports = set()
    for i in range(60):
        path = (P1, P2)[i % 2]
        conn.request("GET" if i % 3 else "HEAD", path)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200
        assert body == (files[path] if i % 3 else b"")
        ports.add(conn.sock.getsockname()[1])
    conn.close()
    assert len(ports) == 1  # one connection throughout: keep-alive held
    assert PhotoServer.kept_requests > before  # and requests were taken without a hand-off


def test_pipelined_requests_are_all_answered_in_order(srv):
    files = _files(srv)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in (P1, P2, P1)))
        f = s.makefile("rb")
        for path in (P1, P2, P1):
            status, headers, body = _read_response(f)
            assert status == 200
            assert body == files[path]


def test_request_bodies_plain_and_chunked_then_more_requests_on_the_same_connection(srv):
    data = b"not a photo, a note\n" * 500
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        f = s.makefile("rb")
        s.sendall(f"PUT /inbox/plain.txt HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n"
                  .encode() + data)
        assert _read_response(f)[0] in (201, 204)
        chunks = [data[:1000], data[1000:]]
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        s.sendall(b"PUT /inbox/chunked.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + body)
        assert _read_response(f)[0] in (201, 204)
        for name in ("plain.txt", "chunked.txt"):
            s.sendall(f"GET /inbox/{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _headers, got = _read_response(f)
            assert status == 200 and got == data


def test_a_big_body_by_sendfile_then_a_small_one_on_the_same_connection(srv):
    big = srv.lib.config.inbox_dir / "big.bin"
    big.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: sendfile
    files = _files(srv)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    for _ in range(3):
        conn.request("GET", "/inbox/big.bin")
        assert conn.getresponse().read() == big.read_bytes()
        conn.request("GET", P1)
        assert conn.getresponse().read() == files[P1]
    conn.close()


def test_clients_that_go_away_leave_every_worker_free(tmp_path):
    from photovfs.library import Library

    lib = Library.open(make_photos(tmp_path / "Photos"))
    lib.scan()
    server, thread = run_in_thread(lib, "127.0.0.1", 0, numthreads=2)
    port = server.bind_addr[1]
    try:
        for _ in range(10):  # five times as many connections as workers, each closed at once
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(f"GET {P1} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert _read_response(s.makefile("rb"))[0] == 200
        # and more idle keep-alive connections than workers: nobody waits for them
        idle = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(f"HEAD {P1} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert _read_response(s.makefile("rb"), head=True)[0] == 200
            idle.append(s)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a hang guard
        conn.request("GET", P2)
        assert conn.getresponse().status == 200
        conn.close()
        for s in idle:
            s.close()
    finally:
        server.stop()
        thread.join(5)
        lib.close()


def test_stop_is_prompt_while_a_client_keeps_its_connection_busy(tmp_path):
    from photovfs.library import Library

    lib = Library.open(make_photos(tmp_path / "Photos"))
    lib.scan()
    server, thread = run_in_thread(lib, "127.0.0.1", 0)
    port = server.bind_addr[1]
    stop = threading.Event()
    errors: list[BaseException] = []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while not stop.is_set():
                conn.request("HEAD", P1)
                conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass  # the server went away: expected
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    thread.join(10)
    stopped_in = time.monotonic() - started
    stop.set()
    t.join(10)
    lib.close()
    assert not thread.is_alive()
    assert stopped_in < 8  # cheroot's own shutdown_timeout is 2 s; a hang guard, not a speed test
    assert errors == []


def test_reader_and_writer_keep_cheroots_counters():
    a, b = socket.socketpair()
    try:
        a.settimeout(5)
        reader, writer = SocketReader(a), SocketWriter(b)
        assert reader.has_data() is False  # nothing sent yet, and it did not wait
        assert a.gettimeout() == 5  # the timeout is back
        writer.write(b"GET / HTTP/1.1\r\n\r\nrest")
        assert writer.bytes_written == 22
        deadline = time.monotonic() + 5
        while not reader.has_data():  # a hang guard
            assert time.monotonic() < deadline
        assert reader.readline() == b"GET / HTTP/1.1\r\n"
        assert reader.read(2) == b"\r\n"
        assert reader.has_data() is True  # "rest" is buffered
        assert reader.read(4) == b"rest"
        assert reader.bytes_read == 22
        writer.close()
        with pytest.raises(ValueError):
            writer.write(b"x")
    finally:
        a.close()
        b.close()
