"""The HTTP side of the Engine API: a threaded server on a unix (or loopback TCP) socket,
the route table, one `Call` per request (its query, its body, how it is answered), and
the one place errors become Docker's status codes and `{"message": ...}` bodies.

Each request gets its own Host and Store: the store's lock is re-entrant per Store, so
one shared between threads would let two requests into it at once.
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
from collections.abc import Callable, Iterator
from typing import Any

from shellctr.core.errors import Conflict, ExecError, HostCommandError, NotFound, ShellctrError
from shellctr.core.host import Host
from shellctr.core.layout import Layout
from shellctr.core.store import Store

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")
MAX_JSON_BODY = 16 << 20  # a create or connect body is a few KiB; a larger one is refused


class ApiError(Exception):
    """An answer other than success: Docker's status code and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


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


def familiar(ref: str) -> str:
    """A reference as the store keeps Docker Hub's (`busybox:latest`): the docker CLI and
    docker-py send `docker.io/library/busybox`."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/",
                   "index.docker.io/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


Handler = Callable[["Call"], Any]


class Route:
    def __init__(self, method: str, pattern: str, handler: Handler) -> None:
        # {name} matches one path segment; {path*} the rest (image names have slashes)
        regex = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", pattern)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self.method, self.regex, self.handler = method, re.compile(f"^{regex}$"), handler


class Routes:
    """The route table: the modules of this folder each add theirs."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, handler))
            return handler
        return register

    def find(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for route in self.routes:
            match = route.regex.match(path)
            if match:
                if route.method == method:
                    return route.handler, match.groupdict()
                allowed = True
        if allowed:
            raise ApiError(405, f"method {method} is not allowed on {path}")
        raise ApiError(404, f"page not found: {path}")


ROUTES = Routes()


class Json:
    """A JSON answer with its status."""

    def __init__(self, body: Any, status: int = 200) -> None:
        self.body, self.status = body, status


class Raw:
    """A whole answer of bytes (archives, exports) with its headers."""

    def __init__(self, data: bytes, content_type: str, status: int = 200,
                 headers: dict[str, str] | None = None) -> None:
        self.data, self.content_type, self.status = data, content_type, status
        self.headers = headers or {}


class Streamed:
    """An answer whose body is written as it comes (chunked): logs, stats, waits; from
    `chunks`, or by `writer`, which writes to a file whose writes become chunks."""

    def __init__(self, chunks: Iterator[bytes] | None = None,
                 content_type: str = "application/json",
                 headers: dict[str, str] | None = None,
                 writer: Callable[[Any], None] | None = None) -> None:
        self.chunks, self.content_type, self.headers = chunks, content_type, headers or {}
        self.writer = writer


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


class Call:
    """One request: what was asked, and the host and store to do it with."""

    def __init__(self, handler: RequestHandler, method: str, path: str,
                 query: dict[str, list[str]], params: dict[str, str]) -> None:
        self.handler, self.method, self.path = handler, method, path
        self.query, self.params = query, params
        service: Service = handler.server  # type: ignore[assignment]
        self.service = service
        self.host = Host(trace=service.trace, lean=True, out=sys.stderr)
        self.store = Store(service.layout, self.host)
        self.hijacked = False
        self._body_read = False

    # -- the query -------------------------------------------------------------------
    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean parameter: 1/true/yes (any case) or 0/false/no; absent: `default`."""
        value = self.arg(name)
        if value is None or value == "":
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "t"):
            return True
        if lowered in ("0", "false", "no", "f"):
            return False
        raise bad_request(f"invalid boolean value {value!r} for parameter {name}")

    def number(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise bad_request(f"invalid number {value!r} for parameter {name}") from None

    def json_arg(self, name: str) -> Any:
        """A JSON-encoded parameter (`filters`); None when absent."""
        value = self.arg(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"invalid JSON in parameter {name}") from None

    def filters(self) -> dict[str, list[str]]:
        """Docker's `filters`: {"key": ["v"]} or the older {"key": {"v": true}}."""
        raw = self.json_arg("filters") or {}
        if not isinstance(raw, dict):
            raise bad_request("filters must be a JSON object")
        out: dict[str, list[str]] = {}
        for key, values in raw.items():
            if isinstance(values, dict):
                values = [value for value, on in values.items() if on]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise bad_request(f"invalid filter {key!r}")
            out[str(key)] = values
        return out

    # -- the body --------------------------------------------------------------------
    def body(self) -> BodyReader:
        """The request body as a stream (chunked or sized; nothing: empty)."""
        self._body_read = True
        return BodyReader(self.handler.rfile, self.handler.headers)

    def json_body(self, required: bool = True) -> Any:
        data = self.body().read(MAX_JSON_BODY + 1)
        if len(data) > MAX_JSON_BODY:
            raise ApiError(413, "request body too large")
        if not data.strip():
            if required:
                raise bad_request("a JSON body is required")
            return {}
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            raise bad_request(f"malformed JSON body: {err}") from None

    def drain_body(self) -> None:
        """Read what is left of the body, so the connection can serve the next request."""
        if not self._body_read:
            reader = self.body()
            while reader.read(65536):
                pass

    # -- hijacking -------------------------------------------------------------------
    def hijack(self, content_type: str = "application/vnd.docker.raw-stream") -> socket.socket:
        """Take the connection over for a raw stream: `101 UPGRADED` when the client
        asked to upgrade (the docker CLI, docker-py), else 200; the caller then owns it."""
        self.drain_body()
        self.hijacked = True
        handler = self.handler
        handler.close_connection = True
        upgrade = "upgrade" in handler.headers.get("Connection", "").lower()
        if upgrade:
            head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\n"
                    "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n"
        handler.wfile.write(head.encode())
        handler.wfile.flush()
        return handler.connection  # type: ignore[no-any-return]


class BodyReader(io.RawIOBase):
    """A request body, sized (Content-Length) or chunked, read as a file."""

    def __init__(self, rfile: Any, headers: Any) -> None:
        super().__init__()
        self.rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length = headers.get("Content-Length")
        try:
            self.left = int(length) if length else 0
        except ValueError:
            raise bad_request("invalid Content-Length") from None
        self.done = not self.chunked and self.left <= 0

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        out = bytearray()
        while not self.done and (size < 0 or len(out) < size):
            if self.chunked and self.left == 0:
                line = self.rfile.readline(1024).strip()
                try:
                    self.left = int(line.split(b";")[0], 16)
                except ValueError:
                    raise bad_request("malformed chunked body") from None
                if self.left == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    self.done = True
                    break
            want = self.left if size < 0 else min(self.left, size - len(out))
            data = self.rfile.read(want)
            if not data:
                raise bad_request("the request body ended early")
            out += data
            self.left -= len(data)
            if self.left == 0:
                if self.chunked:
                    self.rfile.readline(16)  # the CRLF after each chunk
                else:
                    self.done = True
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


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

