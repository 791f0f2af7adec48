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
from shellctr.engine import registry, registry_auth
from shellctr.engine.registry_http import Registry


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

    monkeypatch.setattr(registry, "pull", pull)
    code, out, err = cli("run", "--platform", "linux/arm64", "nope:1", "true")
    assert (code, out) == (125, "")
    assert err == "Unable to find image 'nope:1' locally\nshellctr: stop here\n"
    assert pulled == [("nope:1", "linux/arm64")]
    code, _, err = cli("create", "--pull", "never", "nope:1")
    assert code == 125 and "unable to find image 'nope:1' locally" in err
    assert len(pulled) == 1
    code, _, _ = cli("create", "--pull", "always", "nope:2")
    assert code == 125 and pulled[-1] == ("nope:2", None)
