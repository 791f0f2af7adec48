"""Real registries for the pull/push tests: Debian's `docker-registry` (the distribution
project's) on 127.0.0.1 and a free port in this worker's network namespace, with its
storage and config in a temporary directory, in four setups: plain HTTP, TLS with a CA
the test makes with openssl, htpasswd basic auth, and token auth with a small token
server of our own (RS256 JWTs signed by `openssl dgst`, the key's libtrust id as `kid`).
Plus small servers that misbehave on purpose: one that answers 429, and a proxy that cuts
a blob's body half-way once.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

USER, PASSWORD = "alice", "s3cret-Pa55"
SERVICE = "shellctr-test-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openssl(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=True,
                          timeout=60).stdout


def make_cert(directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for 127.0.0.1 and localhost."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
            str(cert), "-days", "2", "-subj", f"/CN={name}",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    return key, cert


def libtrust_kid(key: Path) -> str:
    """The key id distribution expects in a token's `kid`: libtrust's base32 of the
    first 240 bits of the sha256 of the public key's DER, in groups of four."""
    der = openssl("pkey", "-in", str(key), "-pubout", "-outform", "DER")
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i:i + 4] for i in range(0, len(text), 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Registry:
    """A running docker-registry; `name` is HOST:PORT, `storage` its files."""

    def __init__(self, base: Path, setup: str = "plain") -> None:
        self.base, self.setup = base, setup
        self.port = free_port()
        self.name = f"127.0.0.1:{self.port}"
        self.storage = base / "storage"
        self.certs_d = base / "certs.d"  # SHELLCTR_CERTS_D for a TLS registry
        self.token_server: TokenServer | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.storage}",
                 "  delete:", "    enabled: true", "http:", f"  addr: {self.name}"]
        if self.setup == "tls":
            key, cert = make_cert(self.base)
            lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
            (self.certs_d / self.name).mkdir(parents=True)
            shutil.copy(cert, self.certs_d / self.name / "ca.crt")
        if self.setup == "basic":
            htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                      capture_output=True, timeout=60).stdout
            (self.base / "htpasswd").write_bytes(htpasswd)
            lines += ["auth:", "  htpasswd:", "    realm: basic-realm",
                      f"    path: {self.base / 'htpasswd'}"]
        if self.setup == "token":
            key, cert = make_cert(self.base, "token-signer")
            self.token_server = TokenServer(key)
            lines += ["auth:", "  token:", f"    realm: {self.token_server.url}",
                      f"    service: {SERVICE}", "    issuer: shellctr-test-issuer",
                      f"    rootcertbundle: {cert}"]
        return "\n".join(lines) + "\n"

    def start(self) -> Registry:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "config.yml").write_text(self.config())
        log = open(self.base / "registry.log", "wb")  # noqa: SIM115 (kept while it runs)
        self.process = subprocess.Popen(["docker-registry", "serve",
                                         str(self.base / "config.yml")],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("docker-registry did not start: " +
                                       (self.base / "registry.log").read_text()) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        if self.token_server is not None:
            self.token_server.stop()

    def blob_file(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest /
                "data")

    def skopeo_tls(self) -> list[str]:
        return ["--dest-tls-verify=false"] if self.setup != "tls" else [
            f"--dest-cert-dir={self.certs_d / self.name}"]


class TokenServer:
    """Docker's token protocol: GET realm?service=&scope=repository:NAME:ACTIONS, with
    basic auth or none; anonymous gets pull, alice (right password) pull and push; a
    wrong password gets 401. `issued` counts the tokens given."""

    def __init__(self, key: Path) -> None:
        self.key, self.kid = key, libtrust_kid(key)
        self.issued = 0
        self.lifetime = 300
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                header = self.headers.get("Authorization", "")
                account = ""
                if header:
                    user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode() \
                        .partition(":")
                    if (user, password) != (USER, PASSWORD):
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    account = user
                access = []
                for scope in query.get("scope", []):
                    kind, name, actions = scope.split(":")
                    allowed = [a for a in actions.split(",") if a == "pull" or account]
                    access.append({"type": kind, "name": name, "actions": allowed})
                body = json.dumps({"token": server.token(account, access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, account: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": "shellctr-test-issuer", "sub": account, "aud": SERVICE,
                  "exp": now + self.lifetime, "nbf": now - 10, "iat": now,
                  "jti": os.urandom(8).hex(), "access": access}
        signing = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = openssl("dgst", "-sha256", "-sign", str(self.key), input=signing.encode())
        self.issued += 1
        return f"{signing}.{b64url(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def running(base: Path, setup: str = "plain") -> Iterator[Registry]:
    registry = Registry(base, setup).start()
    try:
        yield registry
    finally:
        registry.stop()


class Misbehaving:
    """A small server in front of a registry: `mode` "429" answers every request with
    429 and Retry-After; "cut" forwards, but cuts the first blob body half-way (once)."""

    def __init__(self, upstream: str, mode: str) -> None:
        self.upstream, self.mode = upstream, mode
        self.cuts = 0
        self.ranges: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                if outer.mode == "429":
                    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
                    self.send_response(429)
                    self.send_header("Retry-After", "42")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                request = urllib.request.Request(f"http://{outer.upstream}{self.path}",
                                                 method=self.command, headers={
                                                     k: v for k, v in self.headers.items()
                                                     if k.lower() not in ("host",)})
                try:
                    answer = urllib.request.urlopen(request, timeout=30)
                except urllib.error.HTTPError as err:
                    answer = err
                data = answer.read()
                if self.headers.get("Range"):
                    outer.ranges.append(self.headers["Range"])
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    if name.lower() not in ("transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.end_headers()
                if "/blobs/" in self.path and outer.cuts == 0 and len(data) > 4096 \
                        and self.command == "GET":
                    outer.cuts += 1
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if self.command == "GET":
                    self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.name = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
