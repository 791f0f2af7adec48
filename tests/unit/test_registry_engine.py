"""The registry engine without a network: credentials from Docker's and Podman's files
and helpers, login's file and trace, run's --pull hook."""

from __future__ import annotations

import base64
import io
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from shellctr.core.errors import NotFound
from shellctr.core.host import Host
from shellctr.engine import pull as engine_pull
from shellctr.engine import push as engine_push
from shellctr.engine import registry_auth
from shellctr.engine.registry_http import Registry
from shellctr.engine.registry_progress import Progress


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    return tmp_path


def auth(user: str, secret: str) -> str:
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_credentials_come_from_docker_then_podman(homes: Path) -> None:
    (homes / "auth.json").write_text(json.dumps({"auths": {"r:5000": {"auth": auth("p", "q")}}}))
    assert registry_auth.credentials_for(Host(), "r:5000") == ("p", "q")
    (homes / "docker").mkdir()
    (homes / "docker" / "config.json").write_text(
        json.dumps({"auths": {"r:5000": {"auth": auth("d", "e")}}}))
    assert registry_auth.credentials_for(Host(), "r:5000") == ("d", "e")
    assert registry_auth.credentials_for(Host(), "elsewhere") is None


def test_a_credential_helper_is_asked_with_docker_s_protocol(
        homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (homes / "docker").mkdir()
    (homes / "docker" / "config.json").write_text(json.dumps({"credHelpers": {"r": "pass"}}))
    asked: list[tuple[list[str], str | None]] = []

    def probe(self: Host, argv: list[str], input: str | None = None) -> tuple[int, str, str]:
        asked.append((argv, input))
        return 0, json.dumps({"ServerURL": "r", "Username": "u", "Secret": "s"}), ""

    monkeypatch.setattr(Host, "probe", probe)
    assert registry_auth.credentials_for(Host(), "r") == ("u", "s")
    assert asked == [(["docker-credential-pass", "get"], "r")]


def test_login_writes_docker_s_file_0600_and_the_trace_hides_the_secret(
        homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Registry, "request", lambda self, *args, **kwargs: None)
    trace = io.StringIO()
    registry_auth.login(Host(trace=True, err=trace), "r:5000", "alice", "hunter22")
    path = homes / "docker" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"auths": {"r:5000": {"auth": auth("alice",
                                                                             "hunter22")}}}
    shown = trace.getvalue()
    assert f"cat > {path}" in shown and '"auth": "***"' in shown
    assert "hunter22" not in shown and auth("alice", "hunter22") not in shown
    assert registry_auth.logout(Host(), "r:5000")
    assert json.loads(path.read_text()) == {"auths": {}}
    assert not registry_auth.logout(Host(), "r:5000")


def test_run_pulls_a_missing_image_first_and_never_does_not(
        cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pulled: list[tuple[str, Any]] = []

    def pull(host: Host, store: Any, ref: str, **options: Any) -> None:
        pulled.append((ref, options.get("platform")))
        raise NotFound("stop here")

    monkeypatch.setattr(engine_pull, "pull", pull)
    code, out, err = cli("run", "--platform", "linux/arm64", "nope:1", "true")
    assert (code, out) == (125, "")
    assert err == "Unable to find image 'nope:1' locally\nshellctr: stop here\n"
    assert pulled == [("nope:1", "linux/arm64")]
    code, _, err = cli("create", "--pull", "never", "nope:1")
    assert code == 125 and "unable to find image 'nope:1' locally" in err
    assert len(pulled) == 1
    code, _, _ = cli("create", "--pull", "always", "nope:2")
    assert code == 125 and pulled[-1] == ("nope:2", None)


def test_image_pull_and_image_push_are_the_same_verbs(cli: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []

    def pull(host: Host, store: Any, ref: str, **options: Any) -> None:
        called.append(f"pull {ref}")

    def push(host: Host, store: Any, ref: str, **options: Any) -> str:
        called.append(f"push {ref}")
        return "sha256:" + "0" * 64

    monkeypatch.setattr(engine_pull, "pull", pull)
    monkeypatch.setattr(engine_push, "push", push)
    assert cli("image", "pull", "-q", "a/b:1") == (0, "docker.io/a/b:1\n", "")
    assert cli("pull", "-q", "localhost:5000/c") == (0, "localhost:5000/c:latest\n", "")
    assert cli("image", "push", "-q", "a/b:1") == (0, "sha256:" + "0" * 64 + "\n", "")
    assert called == ["pull a/b:1", "pull localhost:5000/c", "push a/b:1"]
    code, _, err = cli("pull", "--tls-verify=maybe", "x")
    assert code == 125 and err == ("shellctr: invalid --tls-verify value 'maybe' (use true "
                                   "or false)\n")


def test_plain_http_only_for_loopback_insecure_or_tls_verify_false(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "registries.json"
    conf.write_text(json.dumps({"insecure-registries": ["lab.example:5000"]}))
    monkeypatch.setenv("SHELLCTR_REGISTRIES_CONF", str(conf))
    rules = {name: (client.plain_allowed, client.verify) for name, client in (
        (name, Registry(Host(), name, None, flag)) for name, flag in (
            ("127.0.0.1:5000", None), ("localhost:5000", None), ("[::1]:5000", None),
            ("lab.example:5000", None), ("quay.io", None), ("quay.io:443", False)))}
    assert rules == {"127.0.0.1:5000": (True, True), "localhost:5000": (True, True),
                     "[::1]:5000": (True, True), "lab.example:5000": (True, False),
                     "quay.io": (False, True), "quay.io:443": (True, False)}
    assert Registry(Host(), "docker.io", None).address == "registry-1.docker.io"


def test_proxies_come_from_the_environment_except_no_proxy_and_loopback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from shellctr.engine.registry_http import proxy_for

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert proxy_for("https", "quay.io") == ("proxy.example", 3128)
    assert proxy_for("https", "internal.example:5000") is None
    assert proxy_for("https", "127.0.0.1:5000") is None
    assert proxy_for("http", "quay.io") is None  # no HTTP_PROXY


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_each_layer_s_line_in_place() -> None:
    screen = Terminal()
    progress = Progress(screen)
    progress.line("1: Pulling from team/app")
    progress.layer("sha256:" + "a" * 64, "Pulling fs layer")
    progress.layer("sha256:" + "b" * 64, "Pulling fs layer")
    progress.bytes("sha256:" + "a" * 64, 12_300_000, 40_100_000)
    assert screen.getvalue().splitlines()[:3] == [
        "1: Pulling from team/app", "aaaaaaaaaaaa: Pulling fs layer",
        "bbbbbbbbbbbb: Pulling fs layer"]
    assert screen.getvalue().endswith(  # two lines up, rewritten, two lines down
        "\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: Downloading [==============>" + " " * 35 +
        "] 12.3MB/40.1MB\x1b[2B\r")
    plain = io.StringIO()
    progress = Progress(plain)
    progress.layer("sha256:" + "a" * 64, "Pulling fs layer")
    progress.bytes("sha256:" + "a" * 64, 1, 2)  # no bar when it is no terminal
    progress.layer("sha256:" + "a" * 64, "Pull complete")
    assert plain.getvalue() == "aaaaaaaaaaaa: Pulling fs layer\naaaaaaaaaaaa: Pull complete\n"
    quiet = io.StringIO()
    Progress(quiet, quiet=True).line("x")
    assert quiet.getvalue() == ""


def test_in_parallel_does_every_item_then_raises_the_first_failure() -> None:
    import threading

    from shellctr.engine.parallel import in_parallel

    done: list[int] = []
    threads: set[int] = set()
    lock = threading.Lock()

    def work(item: int) -> None:
        with lock:
            done.append(item)
            threads.add(threading.get_ident())
        if item in (3, 5):
            raise ValueError(f"item {item}")

    with pytest.raises(ValueError, match="item 3"):
        in_parallel(work, range(8), 3)
    assert sorted(done) == list(range(8))
    assert 1 <= len(threads) <= 3
    in_parallel(work, [], 3)  # nothing to do: no thread, no error


def test_a_plain_http_server_on_loopback_is_found_without_tls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import threading

    from shellctr.engine import registry_http

    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:  # as docker-registry answers a TLS hello: 400, then close
        for _ in range(2):
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        assert registry_http.speaks_tls(address) is False
        loaded: list[str] = []
        monkeypatch.setattr(registry_http, "tls_context",
                            lambda host, verify: loaded.append(host))
        registry = Registry(Host(), address, None)
        registry.connect()
        assert registry.scheme == "http" and loaded == []  # no CA store loaded
    finally:
        thread.join(timeout=30)
        listener.close()
