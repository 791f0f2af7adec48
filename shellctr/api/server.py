"""The HTTP side of the Engine API: a threaded server on a unix (or loopback TCP) socket,
one handler per connection that finds each request's route (api/routes.py), writes its
answer (JSON, bytes, or chunked as it comes), and is the one place errors become
Docker's status codes and `{"message": ...}` bodies.
"""

from __future__ import annotations

import http.server
import io
import json
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from shellctr.api.routes import ROUTES, ApiError, Call, Json, Raw, Streamed
from shellctr.core.errors import Conflict, ExecError, HostCommandError, NotFound, ShellctrError
from shellctr.core.layout import Layout

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")


def status_of(err: ShellctrError) -> int:
    """Docker's status for an engine error: 404 no such object, 409 conflict, 500 the
    host failed; anything else the engine refuses is a bad parameter (400)."""
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, Conflict):
        return 409
    if isinstance(err, HostCommandError):
        return 500
    if isinstance(err, ExecError):
        return 400  # the command cannot run: the CLI maps the message to 126/127
    return 400


class ChunkWriter(io.RawIOBase):
    """A writable file whose every write is one chunk of a chunked response."""

    def __init__(self, wfile: Any) -> None:
        super().__init__()
        self.wfile = wfile

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        return len(data)


class RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "shellctr"
    streaming = False
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        service: Service = self.server  # type: ignore[assignment]
        if service.debug:
            sys.stderr.write("api: " + (format % args) + "\n")

    def address_string(self) -> str:  # a unix socket's peer has no address
        return "unix"

    def handle_one_request(self) -> None:
        service: Service = self.server  # type: ignore[assignment]
        with service.busy():
            super().handle_one_request()

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_HEAD(self) -> None:
        self.dispatch("HEAD")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        from urllib.parse import parse_qs, unquote, urlsplit

        service: Service = self.server  # type: ignore[assignment]
        call: Call | None = None
        self.streaming = False
        try:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            versioned = VERSIONED.match(path)
            if versioned:
                path = versioned.group(2)
            query = parse_qs(parts.query, keep_blank_values=True)
            handler, params = ROUTES.find("GET" if method == "HEAD" and path == "/_ping"
                                          else method, path)
            call = Call(self, method, path, query, params)
            answer = handler(call)
            if call.hijacked:
                return
            call.drain_body()
            self.answer(answer, head=method == "HEAD")
        except ApiError as err:
            self.fail(call, err.status, err.message)
        except ShellctrError as err:
            self.fail(call, status_of(err), str(err))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # the funnel: never a traceback to the client
            if service.debug:
                traceback.print_exc()
            self.fail(call, 500, f"unexpected error: {err!r}")

    def fail(self, call: Call | None, status: int, message: str) -> None:
        if (call is not None and call.hijacked) or self.streaming:
            self.close_connection = True
            return  # the stream is the client's now: nothing more can be said on it
        if call is None or call._body_read is False:
            self.close_connection = True  # the body was not read: the stream is not at a request
        try:
            self.answer(Json({"message": message}, status))
        except OSError:
            self.close_connection = True

    def answer(self, answer: Any, head: bool = False) -> None:
        if answer is None:
            self.send_response(204)
            self.common_headers()
            self.end_headers()
            return
        if isinstance(answer, Streamed):
            self.streaming = True  # from here on, an error can only end the stream
            self.send_response(200)
            self.send_header("Content-Type", answer.content_type)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.common_headers()
            self.end_headers()
            self.wfile.flush()
            try:
                if answer.writer is not None:
                    answer.writer(ChunkWriter(self.wfile))
                for chunk in answer.chunks or ():
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except Exception:
                self.close_connection = True  # the stream broke off: no answer can follow
                raise
            finally:
                close = getattr(answer.chunks, "close", None)
                if close is not None:
                    close()  # a client gone mid-stream: the generator's cleanup runs now
            return
        if isinstance(answer, Raw):
            data, content_type, status, headers = (answer.data, answer.content_type,
                                                   answer.status, answer.headers)
        else:
            if not isinstance(answer, Json):
                answer = Json(answer)
            status, headers = answer.status, {}
            if isinstance(answer.body, str | bytes):
                data = answer.body if isinstance(answer.body, bytes) else answer.body.encode()
                content_type = "text/plain; charset=utf-8"
            else:
                data = json.dumps(answer.body).encode() + b"\n"
                content_type = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.common_headers()
        self.end_headers()
        if not head:
            self.wfile.write(data)
        self.wfile.flush()

    def common_headers(self) -> None:
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        self.send_header("Server", f"shellctr (API {API_VERSION})")
        if self.close_connection:
            self.send_header("Connection", "close")


class Service(socketserver.ThreadingMixIn, socketserver.BaseServer):
    """The API on a listening socket (unix, or loopback TCP); each connection on its own
    thread. The socket is made by the caller (the door makes a unix one, with its mode)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, layout: Layout, *, trace: bool = False,
                 debug: bool = False) -> None:
        self.layout, self.trace, self.debug = layout, trace, debug
        self._active = 0
        self._guard = threading.Lock()
        self.last_active = time.monotonic()
        super().__init__(sock.getsockname(), RequestHandler)
        self.socket = sock

    def fileno(self) -> int:
        return self.socket.fileno()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (a client gone) is no error of ours; anything else
        is shown with --debug only (the client got its 500 already)."""
        error = sys.exc_info()[1]
        if self.debug and not isinstance(error, ConnectionError):
            traceback.print_exc()

    def get_request(self) -> tuple[socket.socket, Any]:
        return self.socket.accept()

    def shutdown_request(self, request: Any) -> None:
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        request.close()

    def server_close(self) -> None:
        self.socket.close()

    def busy(self) -> Any:
        import contextlib

        @contextlib.contextmanager
        def busy() -> Iterator[None]:
            with self._guard:
                self._active += 1
            try:
                yield
            finally:
                with self._guard:
                    self._active -= 1
                    self.last_active = time.monotonic()
        return busy()

    def idle_for(self) -> float:
        """Seconds since the last request ended; 0 while one is being served."""
        with self._guard:
            return 0.0 if self._active else time.monotonic() - self.last_active

    def serve_until_idle(self, idle: float) -> None:
        """Serve; with `idle` > 0, stop after that many seconds without a request."""
        if idle <= 0:
            self.serve_forever()
            return
        watcher = threading.Thread(target=self._watch, args=(idle,), daemon=True)
        watcher.start()
        self.serve_forever(poll_interval=0.2)

    def _watch(self, idle: float) -> None:
        while True:
            time.sleep(min(idle, 0.5))
            if self.idle_for() >= idle:
                self.shutdown()
                return
