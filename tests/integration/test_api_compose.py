"""docker-compose (Debian's 1.29, on docker-py) and testcontainers against
`shellctr system service`: a three-service project up, reached, logged, listed and
brought down leaving nothing; a testcontainers container started, reached, stopped."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .api_support import Api, api_fixture
from .support import DEFAULT_TIMEOUT, Ctr, Result, wait_for

COMPOSE = shutil.which("docker-compose")

PROJECT = """\
version: "3.8"
services:
  cache:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo PONG > /www/index.html &&
              httpd -f -p 6379 -h /www"]
    networks: [backend]
  worker:
    image: busybox
    depends_on: [cache]
    command: ["sh", "-c", "echo worker up; echo kept > /data/mark; sleep 1000"]
    volumes: [data:/data]
    networks: [backend]
  web:
    image: busybox
    depends_on: [cache]
    ports: ["127.0.0.1:{port}:80"]
    command: ["sh", "-c", "mkdir -p /www && echo web-ok > /www/index.html &&
              httpd -f -p 80 -h /www"]
    networks: [backend]
volumes:
  data:
networks:
  backend:
"""


@pytest.fixture
def api(ctr: Ctr) -> Iterator[Api]:
    yield from api_fixture(ctr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return str(response.read().decode())


def reachable(url: str) -> str | None:
    try:
        return fetch(url)
    except OSError:
        return None


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed")
def test_compose_up_reach_logs_ps_and_down_leaves_nothing(api: Api, ctr: Ctr,
                                                          tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "docker-compose.yml").write_text(PROJECT.replace("{port}", str(port)))
    name = f"p{uuid.uuid4().hex[:6]}"

    def compose(*args: str) -> Result:
        argv = [str(COMPOSE), "-p", name, *args]
        proc = subprocess.run(argv, cwd=tmp_path, env=api.env, capture_output=True,
                              timeout=DEFAULT_TIMEOUT * 2, check=False)
        return Result(argv, proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"))

    try:
        compose("up", "-d").ok()
        names = sorted(ctr("ps", "--format", "{{.Names}}").ok().out.split())
        assert names == [f"{name}_cache_1", f"{name}_web_1", f"{name}_worker_1"]
        # the worker reaches the cache by its service name on the project's network
        assert compose("exec", "-T", "worker", "wget", "-q", "-O", "-",
                       "http://cache:6379/").ok().out == "PONG\n"
        # the published port, from the host
        assert wait_for(lambda: reachable(f"http://127.0.0.1:{port}/"),
                        "the web service's port") == "web-ok\n"
        wait_for(lambda: "worker up" in compose("logs", "worker").out, "the worker's log")
        listed = compose("ps").ok().out
        assert listed.count(f"{name}_") == 3, listed
        assert f"127.0.0.1:{port}->80/tcp" in listed
        assert f"{name}_data" in ctr("volume", "ls", "-q").ok().out.split()
    finally:
        compose("down", "-v").ok()
    assert ctr.container_ids() == []
    assert ctr("volume", "ls", "-q").ok().out == ""
    assert f"{name}_backend" not in ctr("network", "ls").ok().out


def test_testcontainers_starts_reaches_and_stops_a_container(api: Api, ctr: Ctr,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    for key, value in api.env.items():
        if key.startswith("DOCKER_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    core = pytest.importorskip("testcontainers.core.container")
    from testcontainers.core.config import testcontainers_config

    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    container = core.DockerContainer("busybox").with_command(
        ["sh", "-c", "mkdir /w && echo tc-ok > /w/index.html && httpd -f -p 80 -h /w"]
    ).with_exposed_ports(80)
    container.start()
    try:
        host_port = container.get_exposed_port(80)
        assert wait_for(lambda: reachable(f"http://127.0.0.1:{host_port}/"),
                        "the testcontainers container's port") == "tc-ok\n"
        assert len(ctr.container_ids()) == 1
    finally:
        container.stop()
    assert ctr.container_ids() == []
