"""cheroot, tuned for many small requests on few connections (a frame, a thumbnail grid, rclone).

Two changes to how cheroot moves a request, none to what it answers (HTTP parsing, headers, errors
and TLS stay cheroot's):

- `PhotoServer.put_conn`: cheroot hands every keep-alive connection back to its selector thread
  after each response; the next request then costs two thread hand-offs and two epoll changes.
  A client that sends its next request within `linger` seconds is served by the same worker at once.
  Nobody waits for it: the worker hands the connection back as soon as another connection is queued
  for a worker, when the server stops, or when the client stays quiet for `linger` (Apache's workers
  wait a whole KeepAliveTimeout).
- `PhotoConnection`: on a plain TCP socket, requests are read through the C-implemented
  `io.BufferedReader` and responses written with `socket.sendall`, instead of cheroot's pure-Python
  buffered files, which copy every response twice more and read headers a byte-loop at a time.
  TLS connections keep cheroot's own files.

bench/bench_dav.py measures both against the peers; tests/test_dav_httpserver.py checks keep-alive,
pipelining, request bodies, clients that go away, and a prompt stop.
"""

from __future__ import annotations

import io
import select
import socket

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile


class SocketReader(io.BufferedReader):
    """cheroot's `StreamReader` interface (`bytes_read`, `has_data`) over C buffering."""

    def __init__(self, sock: socket.socket, bufsize: int = io.DEFAULT_BUFFER_SIZE) -> None:
        super().__init__(socket.SocketIO(sock, "rb"), bufsize)
        self.sock = sock
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = super().readline(size)
        self.bytes_read += len(data)
        return data

    def has_data(self) -> bool:
        """Whether a request is already here: buffered, or readable without waiting. (The C
        buffer cannot be inspected; a non-blocking peek reads at most what already arrived.)"""
        timeout = self.sock.gettimeout()
        try:
            self.sock.settimeout(0)
            return bool(self.peek(1))
        except (OSError, ValueError):  # reset, closed: the selector path finds out and closes
            return False
        finally:
            try:
                self.sock.settimeout(timeout)
            except OSError:
                pass


class SocketWriter:
    """cheroot's `StreamWriter` interface (`write`, `flush`, `bytes_written`) without a buffer:
    cheroot flushes after every write anyway, so each write is one `sendall` of the caller's
    bytes (the socket's timeout and partial sends handled by the standard library)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.bytes_written = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("write to a closed connection")
        self.sock.sendall(data)
        self.bytes_written += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class PhotoConnection(cheroot_server.HTTPConnection):
    """A cheroot connection whose plain-TCP files are `SocketReader` and `SocketWriter`."""

    def __init__(self, server, sock, makefile=MakeFile) -> None:
        super().__init__(server, sock, makefile)
        if makefile is MakeFile and type(sock) is socket.socket:  # not TLS: cheroot's files stay
            self.rfile = SocketReader(sock, self.rbufsize)
            self.wfile = SocketWriter(sock)


class PhotoServer(wsgi.Server):
    """cheroot's WSGI server with `PhotoConnection` and keep-alive lingering (module doc)."""

    ConnectionClass = PhotoConnection
    #: seconds a worker waits for the next request on the connection it just answered
    linger = 0.002
    #: requests served on a kept connection without a hand-off (a statistic for tests)
    kept_requests = 0

    def put_conn(self, conn) -> None:
        """Called by a worker after a response that keeps the connection open."""
        poller = None
        while self.ready and self.requests.qsize == 0:
            if not conn.rfile.has_data():
                if poller is None:
                    poller = select.poll()
                    poller.register(conn.socket.fileno(), select.POLLIN)
                if not poller.poll(self.linger * 1000):
                    break
            PhotoServer.kept_requests += 1
            if not self._next_request(conn):
                return
        super().put_conn(conn)

    def _next_request(self, conn) -> bool:
        """Serve the request waiting on `conn`; False when the connection is done (closed)."""
        try:
            keep = conn.communicate()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # as cheroot's worker does: log it, drop the connection, go on
            self.error_log(f"error serving a kept connection: {exc!r}", traceback=True)
            keep = False
        if not keep:
            conn.close()
        return keep
