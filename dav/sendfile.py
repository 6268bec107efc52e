"""Large GET bodies sent by the kernel: a `wsgi.file_wrapper` and the cheroot Gateway that honours it.

cheroot writes a body through a pure-Python buffered writer that copies every block once more
(`bytes(bytearray)`), so a 24 MP original left the server at half of Apache's rate (issue #3).
`SendfileGateway` puts a `WrapperFactory` in the environ (PEP 3333's `wsgi.file_wrapper`, with an
optional byte span); the fast GET path returns its `FileWrapper` for a file body, and the bytes go
from the page cache to the socket with `socket.sendfile` (os.sendfile, EAGAIN, partial sends and
the socket timeout handled by the standard library).

wsgidav's middlewares (ErrorPrinter, WsgiDAVApp) iterate the body rather than return it, and
ErrorPrinter only calls the server's `start_response` with the first chunk. So the wrapper cannot be
recognised by identity at the top: it yields one empty chunk (which starts the response through
every layer) and then asks its gateway to send the rest. The gateway does so only on a plain TCP
socket, for a body whose length is the Content-Length, when the response is not chunked and not a
HEAD; otherwise the wrapper iterates its file in large blocks as before. A client that goes away
mid-transfer is not reported inside the application (ErrorPrinter would turn it into a second
start_response): the gateway keeps the error and raises it after the application is done, where
cheroot drops the connection quietly, as it does for a write of its own.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from typing import BinaryIO

from cheroot import wsgi

#: blocks read when the body cannot be sent by the kernel (TLS, chunked, no file descriptor)
DEFAULT_BLOCK = 1 << 20


class FileWrapper:
    """A body of `length` bytes of `filelike` from `offset`; the file is closed when the body has
    been sent, when the server closes the response, or when the client is gone."""

    def __init__(self, filelike: BinaryIO, block_size: int = DEFAULT_BLOCK, *, offset: int = 0,
                 length: int | None = None, gateway: SendfileGateway | None = None) -> None:
        self.filelike = filelike
        self.block_size = block_size
        self.offset = offset
        self.length = length
        self.gateway = gateway

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()

    def close(self) -> None:
        """PEP 3333: the server calls this when it is done with the body, sent or not."""
        self.filelike.close()

    def fileno(self) -> int | None:
        """The file's descriptor, or None when it has none (a BytesIO, a wrapped stream)."""
        try:
            return self.filelike.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None

    def _chunks(self) -> Iterator[bytes]:
        try:
            if self.gateway is not None:
                yield b""  # lets every middleware start the response (see module doc)
                if self.gateway.send_file(self):
                    return
            yield from self._blocks()
        finally:
            self.close()

    def _blocks(self) -> Iterator[bytes]:
        """The span read in blocks; stops early if the file shrank (the client sees a short body)."""
        if self.offset:
            self.filelike.seek(self.offset)
        left = self.length
        while left is None or left > 0:
            data = self.filelike.read(self.block_size if left is None else min(self.block_size, left))
            if not data:
                break
            if left is not None:
                left -= len(data)
            yield data


class WrapperFactory:
    """`environ["wsgi.file_wrapper"]` of a `SendfileGateway`: PEP 3333's call, plus a byte span.

    Code that wants the span checks `isinstance(factory, WrapperFactory)`: another server's
    file_wrapper takes only (filelike, block_size)."""

    def __init__(self, gateway: SendfileGateway) -> None:
        self.gateway = gateway

    def __call__(self, filelike: BinaryIO, block_size: int = DEFAULT_BLOCK, *, offset: int = 0,
                 length: int | None = None) -> FileWrapper:
        return FileWrapper(filelike, block_size, offset=offset, length=length,
                           gateway=self.gateway)


class SendfileGateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway, which sends a `FileWrapper` body with sendfile when it can."""

    #: bodies sent with sendfile by this process (a statistic: tests check the path was taken)
    sendfile_bodies = 0

    def __init__(self, req) -> None:
        self.send_error: OSError | None = None
        super().__init__(req)

    def get_environ(self) -> dict:  # type: ignore[override]  # cheroot's base says None
        env = super().get_environ()
        env["wsgi.file_wrapper"] = WrapperFactory(self)
        return env

    def respond(self) -> None:
        super().respond()
        if self.send_error is not None:  # the client went away during sendfile: see module doc
            error, self.send_error = self.send_error, None
            raise error

    def send_file(self, body: FileWrapper) -> bool:
        """Send the whole body with sendfile; False (nothing sent yet) to let it be iterated."""
        fd = body.fileno()
        if fd is None or not body.length or not self._plain_socket() \
                or self.req.method == b"HEAD" or not self.started_response \
                or self.remaining_bytes_out != body.length:
            return False
        req = self.req
        req.ensure_headers_sent()
        if req.chunked_write:
            return False  # cannot happen with a Content-Length; iterated (chunked) if it does
        wfile = req.conn.wfile
        try:
            wfile.flush()
            sent = req.conn.socket.sendfile(body.filelike, body.offset, body.length)
        except OSError as exc:  # BrokenPipe, ConnectionReset, timeout: raised by respond()
            req.close_connection = True
            self.send_error = exc
            return True
        SendfileGateway.sendfile_bodies += 1
        if hasattr(wfile, "bytes_written"):
            wfile.bytes_written += sent  # cheroot's statistics
        self.remaining_bytes_out = body.length - sent
        if sent < body.length:
            req.close_connection = True  # the file shrank: the client must not wait for the rest
        return True

    def _plain_socket(self) -> bool:
        """A TCP socket the kernel can write to directly (not TLS, not a wrapped connection)."""
        sock = self.req.conn.socket
        return (self.req.server.ssl_adapter is None and hasattr(os, "sendfile")
                and type(sock) is socket.socket)
