"""The Engine API service as the tests start it: `system service` on a socket in the
worker's scratch dir, the real `docker` CLI pointed at it, and raw HTTP on the socket."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .support import DEFAULT_TIMEOUT, Ctr, Result, Running, wait_for

DOCKER = Path("/usr/local/bin/docker")


class UnixConnection(http.client.HTTPConnection):
    """http.client on a unix socket."""

    def __init__(self, path: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(os.fspath(self.socket_path))
        self.sock = sock


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Api:
    """A running service and the clients that talk to it."""

    ctr: Ctr
    sock: Path
    service: Running
    extra: list[Running] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "SHELLCTR_"))}
        env.update(DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(self.sock.parent /
                                                                         "docker-config"))
        return env

    def docker(self, *args: str, input: str | bytes | None = None,
               timeout: float = DEFAULT_TIMEOUT, env: dict[str, str] | None = None) -> Result:
        """The real docker CLI against the service; never raises on a non-zero exit."""
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run([str(DOCKER), *args], input=data,
                              stdin=None if data is not None else subprocess.DEVNULL,
                              capture_output=True, env={**self.env, **(env or {})},
                              timeout=timeout, check=False)
        return Result([str(DOCKER), *args], proc.returncode,
                      proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                      proc.stdout)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> Answer:
        """One raw HTTP request on the socket."""
        conn = UnixConnection(self.sock)
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={
                **({"Content-Type": "application/json"} if data is not None else {}),
                **(headers or {})})
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                          response.read())
        finally:
            conn.close()


def start_service(ctr: Ctr, sock: Path, *flags: str) -> Running:
    """`system service --time 0 unix://SOCK`, once it answers `_ping`."""
    running = ctr.popen("system", "service", *flags, f"unix://{sock}", trace=False)

    def answers() -> bool:
        if running.process.poll() is not None:
            pytest.fail(f"the service exited: {running.output_so_far()}")
        if not sock.exists():
            return False
        try:
            conn = UnixConnection(sock, timeout=5)
            conn.request("GET", "/_ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    wait_for(answers, "the API service to answer")
    return running


def stop_service(running: Running, sock: Path) -> None:
    """SIGTERM: the service ends and takes its socket with it."""
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=DEFAULT_TIMEOUT)
    assert not sock.exists(), f"the service left its socket {sock}"


def api_fixture(ctr: Ctr) -> Iterator[Api]:
    sock = ctr.scratch / f"api-{uuid.uuid4().hex[:8]}.sock"
    running = start_service(ctr, sock, "--time", "0")
    api = Api(ctr, sock, running)
    try:
        yield api
    finally:
        for other in api.extra:
            other.kill()
        stop_service(running, sock)
