"""The endpoints' side of the Engine API: the route table the endpoint modules add to,
the `Call` each handler gets (its query, its body, hijacking the connection) and the
answers it returns (`Json`, `Raw`, `Streamed`, or an `ApiError`), and the checks of body
fields and label filters the endpoints share. The HTTP framing that turns them into
responses is api/server.py.

Each request gets its own Host and Store: the store's lock is re-entrant per Store, so
one shared between threads would let two requests into it at once.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from shellctr.core.host import Host
from shellctr.core.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.server
    import socket
    from typing import Protocol

    from shellctr.core.layout import Layout

    class Service(Protocol):
        """What a call reads of the server (api/server.py's Service) that accepted it."""

        layout: Layout
        trace: bool
        debug: bool

MAX_JSON_BODY = 16 << 20  # a create or connect body is a few KiB; a larger one is refused


class ApiError(Exception):
    """An answer other than success: Docker's status code and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def familiar(ref: str) -> str:
    """A reference as the store keeps Docker Hub's (`busybox:latest`): the docker CLI and
    docker-py send `docker.io/library/busybox`."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/",
                   "index.docker.io/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def expect_dict(value: Any, what: str) -> dict[str, Any]:
    """A body field that must be a JSON object (absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a JSON object")
    return value


def labels_of(value: Any, what: str = "Labels") -> dict[str, str]:
    labels = expect_dict(value, what)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise bad_request(f"{what} must map strings to strings")
    return labels


def label_filter(labels: dict[str, str], wanted: list[str]) -> bool:
    from shellctr.parts.filters import label_matches

    return all(label_matches(labels, item) for item in wanted)


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


class Call:
    """One request: what was asked, and the host and store to do it with."""

    def __init__(self, handler: http.server.BaseHTTPRequestHandler, method: str, path: str,
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
