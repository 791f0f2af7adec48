"""Talking to a registry: HTTP(S) with the standard library, authentication, and every
request shown as its `curl` line.

Why the standard library (http.client + ssl) and not a third-party client: it streams
bodies, keeps HTTP/1.1 connections alive (one per host and thread here), verifies TLS with
the system's CAs (plus Docker's `certs.d/HOST/ca.crt`), tunnels through `HTTPS_PROXY`
(honouring `NO_PROXY`), and costs no import on any verb but the registry ones. A pull
needs nothing more, and nothing new on the machine.

Which scheme: HTTPS, verified. Plain HTTP only for a registry the user marks insecure
(`--tls-verify=false`, or `insecure-registries` in the registries file) or one on
loopback, as Docker allows it; those still speak HTTPS first when the server does
(loopback's certificate is verified; an insecure one's is not).

Authentication: a 401's `WWW-Authenticate` says how. `Bearer realm=,service=,scope=`: a
token from the realm (anonymous, or with the user's credentials as basic auth), cached per
scope and fetched again on the next 401; `Basic`: the credentials on every request.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import ssl
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from shellctr.core.cmd import Cmd
from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.host import Host
from shellctr.parts.reference import DOCKER_HUB, DOCKER_HUB_API
from shellctr.parts.registry import (
    basic_auth,
    curl_argv,
    error_code,
    error_detail,
    parse_challenge,
)

TIMEOUT = 60.0  # seconds without a byte before a connection counts as dead
REGISTRIES_FILE = "/etc/shellctr/registries.json"  # {"insecure-registries": ["host:port"]}
CERTS_DIRS = ("/etc/docker/certs.d", "/etc/containers/certs.d")
USER_AGENT = "shellctr/0.1"
BLOCK = 1 << 20  # bytes per send of an uploaded file (http.client's default is 8 kB)


class Unauthorized(ShellctrError):
    """401/403 from a registry."""


class Unreachable(ShellctrError):
    """The registry did not answer (connection refused, DNS, timeout, cut)."""


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def insecure_registries() -> list[str]:
    """What the registries file marks insecure (SHELLCTR_REGISTRIES_CONF overrides
    its path)."""
    path = Path(os.environ.get("SHELLCTR_REGISTRIES_CONF") or REGISTRIES_FILE)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise ShellctrError(f"cannot read {path}: {err}",
                            'it holds {"insecure-registries": ["HOST:PORT"]}') from err
    listed = document.get("insecure-registries") if isinstance(document, dict) else None
    return [str(item) for item in listed or []]


def tls_context(host: str, verify: bool) -> ssl.SSLContext:
    """The system's CAs, plus `ca.crt` (and a client `*.cert`/`*.key` pair) from Docker's
    and Podman's certs.d for this registry (SHELLCTR_CERTS_D: one more such directory)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    extra = os.environ.get("SHELLCTR_CERTS_D")
    for top in ((extra,) if extra else ()) + CERTS_DIRS:
        directory = Path(top) / host
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.suffix == ".crt":
                context.load_verify_locations(cafile=str(entry))
            elif entry.suffix == ".cert" and entry.with_suffix(".key").is_file():
                context.load_cert_chain(str(entry), str(entry.with_suffix(".key")))
    return context


def proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """The proxy (host, port) from HTTPS_PROXY/HTTP_PROXY for `host`, unless NO_PROXY
    or loopback says not to."""
    if is_loopback(host):
        return None
    import urllib.request  # ~7 ms: not for a registry on loopback

    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 (untyped)
    if not url or bypass(host.rsplit(":", 1)[0], proxies):
        return None
    parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    return parsed.hostname or "", parsed.port or 80


def speaks_tls(address: str) -> bool:
    """Whether the server at `address` (HOST[:PORT]) completes a TLS handshake; nothing
    is sent over it (the requests go over a connection whose certificate is checked).
    Not reachable: True, for the request to say so."""
    parsed = urllib.parse.urlsplit(f"//{address}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 443),
                                      timeout=TIMEOUT) as sock:
            context.wrap_socket(sock).close()
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return False
    except (OSError, ValueError):
        return True
    return True


class Response:
    """A response whose body is read as a stream (or all at once)."""

    def __init__(self, status: int, headers: http.client.HTTPMessage,
                 raw: http.client.HTTPResponse, url: str) -> None:
        self.status, self.headers, self.raw, self.url = status, headers, raw, url

    def read(self, limit: int = 16 << 20) -> bytes:
        data = self.raw.read(limit + 1)
        if len(data) > limit:
            raise ShellctrError(f"the registry's answer to {self.url} is too large")
        return data

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""


class Connections:
    """One kept-alive connection per (scheme, host) and thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, scheme: str, host: str, context: ssl.SSLContext | None
            ) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "pool", {})
        connection = pool.get((scheme, host))
        if connection is None:
            proxy = proxy_for(scheme, host)
            target = proxy if proxy else None
            if scheme == "https":
                connection = (http.client.HTTPSConnection(target[0], target[1], context=context,
                                                          timeout=TIMEOUT, blocksize=BLOCK)
                              if target else
                              http.client.HTTPSConnection(host, context=context,
                                                          timeout=TIMEOUT, blocksize=BLOCK))
            else:
                connection = (http.client.HTTPConnection(target[0], target[1], timeout=TIMEOUT,
                                                         blocksize=BLOCK)
                              if target else http.client.HTTPConnection(host, timeout=TIMEOUT,
                                                                        blocksize=BLOCK))
            if target:
                connection.set_tunnel(host if ":" in host else f"{host}:443")
            pool[(scheme, host)] = connection
        return connection

    def drop(self, scheme: str, host: str) -> None:
        pool = self._local.__dict__.get("pool", {})
        connection = pool.pop((scheme, host), None)
        if connection is not None:
            connection.close()


class Registry:
    """One registry as one user reaches it: scheme, TLS, credentials, tokens."""

    def __init__(self, host: Host, registry: str, credentials: tuple[str, str] | None,
                 tls_verify: bool | None = None) -> None:
        self.host = host
        self.name = registry
        self.address = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self.credentials = credentials
        insecure = tls_verify is False or registry in insecure_registries()
        self.plain_allowed = insecure or is_loopback(self.address)
        self.verify = not insecure
        self.scheme = ""  # found by the first request
        self.context: ssl.SSLContext | None = None
        self.connections = Connections()
        self.tokens: dict[str, str] = {}  # scope -> bearer token
        self.challenge: tuple[str, dict[str, str]] | None = None
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.address}"

    def secrets(self) -> tuple[str, ...]:
        words = [token for token in self.tokens.values()]
        if self.credentials:
            words += [self.credentials[1], basic_auth(*self.credentials)]
        return tuple(word for word in words if word)

    # -- the scheme ---------------------------------------------------------------
    def connect(self) -> None:
        """Find the scheme: HTTPS, or (allowed and the server speaks no TLS) HTTP."""
        if self.scheme:
            return
        if is_loopback(self.address) and not speaks_tls(self.address):
            self.scheme = "http"  # the system's CAs (~25 ms to load) are not needed
            return
        self.context = tls_context(self.address, self.verify)
        try:
            self.scheme = "https"
            self._send("GET", "/v2/", {}, None, show=False).read()
        except ssl.SSLCertVerificationError as err:
            self.scheme = ""
            raise ShellctrError(
                f"TLS failure talking to {self.address}: {err.verify_message}",
                f"put its CA in /etc/docker/certs.d/{self.address}/ca.crt, or use "
                "--tls-verify=false if you trust the network") from err
        except (ssl.SSLError, ConnectionResetError, http.client.BadStatusLine,
                http.client.RemoteDisconnected) as err:
            self.connections.drop("https", self.address)
            if not self.plain_allowed:
                self.scheme = ""
                raise ShellctrError(
                    f"TLS failure talking to {self.address}: {err}",
                    "a registry without TLS needs --tls-verify=false or an "
                    "insecure-registries entry") from err
            self.scheme = "http"

    # -- requests -----------------------------------------------------------------
    def _send(self, method: str, target: str, headers: dict[str, str],
              body: Any, *, show: bool = True, output: str | None = None,
              upload: str | None = None) -> Response:
        """One request on this thread's connection (a dead kept-alive one is reopened
        once); `target` is a path on the registry or a full URL (a realm, a Location)."""
        url = target if "://" in target else self.base + target
        parsed = urllib.parse.urlsplit(url)
        address = parsed.netloc
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        headers = {"User-Agent": USER_AGENT, **headers}
        if show:
            self.show(method, url, headers, output=output, upload=upload)
        context = self.context if address == self.address else tls_context(address, True)
        for attempt in (1, 2):
            connection = self.connections.get(parsed.scheme, address, context)
            try:
                connection.request(method, path or "/", body=body, headers=headers)
                raw = connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as err:
                self.connections.drop(parsed.scheme, address)
                if attempt == 2 or (body is not None and not isinstance(body, bytes)):
                    raise Unreachable(f"{address} closed the connection: {err}") from err
                continue
            except ssl.SSLError:
                self.connections.drop(parsed.scheme, address)
                raise
            except OSError as err:
                self.connections.drop(parsed.scheme, address)
                if isinstance(err, ssl.SSLError):
                    raise
                raise Unreachable(f"cannot reach the registry {address}: "
                                  f"{err.strerror or err}",
                                  "check the name and port, and that it is running") from err
            if raw.getheader("Connection", "").lower() == "close":
                self.connections.drop(parsed.scheme, address)
            return Response(raw.status, raw.headers, raw, url)
        raise AssertionError("unreachable")

    def show(self, method: str, url: str, headers: dict[str, str], *,
             output: str | None = None, upload: str | None = None) -> None:
        """The request as its `curl` line: traced; in a --dry-run script, a comment
        (the script's own steps are the blobs' downloads)."""
        self.host.show_request(Cmd(curl_argv(method, url, headers, output=output,
                                             upload=upload), secrets=self.secrets()))

    def request(self, method: str, path: str, scope: str, headers: dict[str, str] | None = None,
                body: Any = None, *, expect: tuple[int, ...] = (200,), what: str = "",
                show: bool = True, upload: str | None = None) -> Response:
        """A request with authentication: on a 401, the challenge is answered (a token
        for `scope`, or basic auth) and the request made once more. Statuses other
        than `expect` become one clear error line."""
        self.connect()
        headers = dict(headers or {})
        start = body.tell() if hasattr(body, "seek") else 0
        for attempt in (1, 2, 3):
            # credentials and tokens go to this registry only, never to a host that
            # an answer (an upload's Location) names
            elsewhere = "://" in path and urllib.parse.urlsplit(path).netloc != self.address
            authorization = "" if elsewhere else self.authorization(scope)
            sent = {**headers, **({"Authorization": authorization} if authorization else {})}
            response = self._send(method, path, sent, body, show=show, upload=upload)
            # a 401: answer the challenge; a token refused (expired, too narrow): a fresh
            # one, once; basic credentials refused: no point in sending them again
            again = attempt == 1 or (attempt == 2 and self.challenge is not None and
                                     self.challenge[0] == "bearer")
            if response.status == 401 and again and not elsewhere and (
                    not hasattr(body, "read") or hasattr(body, "seek")):
                response.read()
                self.answer(response.header("WWW-Authenticate"), scope)
                if hasattr(body, "seek"):
                    body.seek(start)  # the file is sent again from where it began
                continue
            if response.status in expect:
                return response
            raise self.failure(response, what or path)
        raise AssertionError("unreachable")

    def failure(self, response: Response, what: str) -> ShellctrError:
        """A response's status as one line: not found, unauthorized, denied, rate
        limited (with the reset time), or the registry's own first message."""
        body = response.read() if response.raw.length is None or response.raw.length < 65536 \
            else b""
        detail = error_detail(body)
        code = error_code(body)
        status = response.status
        if status == 404 or code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"):
            return NotFound(f"{what}: not found on {self.name}" +
                            (f" ({detail})" if detail else ""),
                            "check the repository name and tag")
        if status == 401:
            return Unauthorized(f"unauthorized: authentication required for {what} on "
                                f"{self.name}",
                                f"log in first: shellctr login {self.name}"
                                if not self.credentials else
                                "check the user name and password (shellctr login)")
        if status == 403:
            return Unauthorized(f"denied: requested access to {what} on {self.name} is "
                                "denied", "check that the account may access it")
        if status == 429:
            reset = response.header("Retry-After") or response.header("RateLimit-Reset")
            return ShellctrError(f"toomanyrequests: {self.name} rate-limits this client" +
                                 (f"; retry after {reset}s" if reset else ""),
                                 "wait, or log in for a higher limit")
        reason = "".join(ch for ch in str(response.raw.reason) if ch.isprintable())[:60]
        return ShellctrError(f"{self.name} answered {status} {reason} to "
                             f"{what}" + (f": {detail}" if detail else ""))

    def authorization(self, scope: str) -> str:
        if self.challenge is None:
            return ""
        scheme, _ = self.challenge
        if scheme == "basic" and self.credentials:
            return f"Basic {basic_auth(*self.credentials)}"
        token = self.tokens.get(scope)
        return f"Bearer {token}" if token else ""

    def answer(self, header: str, scope: str) -> None:
        """Take in a 401's challenge: a fresh token for `scope`, or basic auth."""
        scheme, params = parse_challenge(header) if header else ("", {})
        self.challenge = (scheme, params)
        if scheme == "basic":
            if not self.credentials:
                raise Unauthorized(f"unauthorized: {self.name} needs a user name and "
                                   "password", f"log in first: shellctr login {self.name}")
            return
        if scheme != "bearer" or not params.get("realm"):
            raise Unauthorized(f"unauthorized: {self.name} asks for an unsupported "
                               f"authentication ({header[:60]!r})")
        query = {"service": params["service"]} if params.get("service") else {}
        realm = params["realm"]
        scopes = [s for s in dict.fromkeys([scope, params.get("scope", "")]) if s]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(
            [*query.items(), *(("scope", s) for s in scopes)])
        if self.credentials:
            url += "&account=" + urllib.parse.quote(self.credentials[0])
        headers = {"Authorization": f"Basic {basic_auth(*self.credentials)}"} \
            if self.credentials else {}
        if urllib.parse.urlsplit(realm).scheme not in ("https", "http"):
            raise Unauthorized(f"unauthorized: {self.name}'s token realm {realm!r} is no URL")
        if urllib.parse.urlsplit(realm).scheme == "http" and not is_loopback(
                urllib.parse.urlsplit(realm).netloc) and self.credentials and self.verify:
            raise Unauthorized(f"refusing to send credentials to {realm} over plain HTTP")
        response = self._send("GET", url, headers, None)
        if response.status in (401, 403):
            response.read()
            raise Unauthorized(f"unauthorized: {self.name} refused the credentials"
                               if self.credentials else
                               f"unauthorized: {self.name} gives no anonymous access",
                               "check the user name and password (shellctr login)"
                               if self.credentials else f"log in: shellctr login {self.name}")
        if response.status != 200:
            raise self.failure(response, "a token")
        try:
            document = json.loads(response.read(1 << 20))
            token = str(document.get("token") or document.get("access_token") or "")
        except (ValueError, AttributeError) as err:
            raise Unauthorized(f"{self.name}'s token server gave no token") from err
        if not token:
            raise Unauthorized(f"{self.name}'s token server gave no token")
        self.tokens[scope] = token

    # -- blobs ----------------------------------------------------------------------
    def stream_blob(self, repository: str, digest: str, offset: int = 0,
                    output: str | None = None) -> Response:
        """A blob's body from `offset` on (a Range request), redirects followed (the
        Authorization header goes only to the registry itself)."""
        scope = f"repository:{repository}:pull"
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        path = f"/v2/{repository}/blobs/{digest}"
        response = self.request("GET", path, scope, headers, expect=(200, 206, 307, 302,
                                                                     301, 303), what=digest,
                                show=output is None)
        for _ in range(5):
            if response.status not in (301, 302, 303, 307):
                break
            location = urllib.parse.urljoin(response.url, response.header("Location"))
            response.read()
            response = self._send("GET", location, headers, None, show=False)
        if response.status not in (200, 206):
            raise self.failure(response, digest)
        return response


# what a cut or stalled connection raises while a body streams
SOCKET_ERRORS = (OSError, http.client.IncompleteRead, http.client.HTTPException, socket.timeout)
