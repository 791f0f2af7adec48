"""The Engine API's pure parts: the create body into a RunRequest, URIs, the route
table, request bodies, error statuses."""

from __future__ import annotations

import io
from email.message import Message
from pathlib import Path

import pytest

from shellctr.api.create import run_request
from shellctr.api.routes import ApiError, BodyReader, Routes, familiar
from shellctr.api.server import status_of
from shellctr.cli.service import parse_uri
from shellctr.core.errors import Conflict, ExecError, HostCommandError, NotFound, ShellctrError


def headers(**values: str) -> Message:
    message = Message()
    for key, value in values.items():
        message[key.replace("_", "-")] = value
    return message


# -- the create body ----------------------------------------------------------------------
def test_a_create_body_becomes_the_flags_the_cli_would_have_been_given() -> None:
    request = run_request({
        "Image": "docker.io/library/busybox:latest", "Cmd": ["sleep", "10"],
        "Env": ["A=1", "FROM_CALLER"], "Tty": True, "OpenStdin": True, "User": "1000",
        "WorkingDir": "/tmp", "Hostname": "box", "Labels": {"tier": "web"},
        "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/anon": {}},
        "HostConfig": {
            "Binds": ["/srv:/data:ro"], "AutoRemove": True, "Memory": 268435456,
            "NanoCpus": 1500000000, "PidsLimit": 0, "NetworkMode": "appnet",
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                             "53/udp": [{"HostPort": ""}]},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "Mounts": [{"Type": "tmpfs", "Target": "/run", "TmpfsOptions":
                        {"SizeBytes": 1048576}}],
            "Tmpfs": {"/cache": "size=1m"}, "ExtraHosts": ["db:10.0.0.5"], "Dns": ["1.1.1.1"],
        },
        "NetworkingConfig": {"EndpointsConfig": {"appnet": {
            "IPAMConfig": {"IPv4Address": "10.9.0.7"}, "Aliases": ["web"]}}},
    }, "web")
    assert request.image == "busybox:latest" and request.name == "web"
    assert request.command == ["sleep", "10"] and request.entrypoint is None
    assert request.env == ["A=1"]  # NAME alone would read the service's environment
    assert (request.tty, request.interactive, request.rm) == (True, True, True)
    assert (request.user, request.workdir, request.hostname) == ("1000", "/tmp", "box")
    assert request.label == ["tier=web"] and request.expose == ["80/tcp"]
    assert request.volume == ["/srv:/data:ro", "/anon"]
    assert (request.memory, request.cpus, request.pids_limit) == ("268435456", "1.5", None)
    assert request.publish == ["127.0.0.1:8080:80/tcp", "53/udp"]
    assert request.restart == "on-failure:3"
    assert request.mount == ["type=tmpfs,target=/run,tmpfs-size=1048576"]
    assert request.tmpfs == ["/cache:size=1m"]
    assert (request.network, request.ip, request.aliases) == ("appnet", "10.9.0.7", ["web"])
    assert request.add_host == ["db:10.0.0.5"] and request.dns == ["1.1.1.1"]


def test_a_long_entrypoint_runs_before_cmd_and_an_empty_one_clears_the_images() -> None:
    long = run_request({"Image": "i", "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"]},
                       None)
    assert (long.entrypoint, long.command) == ("/bin/sh", ["-c", "echo hi"])
    cleared = run_request({"Image": "i", "Entrypoint": [], "Cmd": ["true"]}, None)
    assert (cleared.entrypoint, cleared.command) == ("", ["true"])
    one = run_request({"Image": "i", "Entrypoint": "top", "Cmd": None}, None)
    assert (one.entrypoint, one.command) == ("top", [])


@pytest.mark.parametrize("body", [
    [], {"Cmd": ["true"]}, {"Image": 3}, {"Image": "i", "Env": "A=1"},
    {"Image": "i", "Tty": "yes"}, {"Image": "i", "HostConfig": []},
    {"Image": "i", "HostConfig": {"Memory": "1g"}}, {"Image": "i", "Labels": {"a": 1}},
    {"Image": "i", "HostConfig": {"Mounts": [{"Type": "bind"}]}},
])
def test_a_malformed_create_body_is_a_400(body: object) -> None:
    with pytest.raises(ApiError) as refused:
        run_request(body, None)
    assert refused.value.status == 400 and refused.value.message


# -- URIs ---------------------------------------------------------------------------------
def test_uris_default_to_the_runroots_socket_and_tcp_stays_on_loopback() -> None:
    run = Path("/run/shellctr")
    assert parse_uri("", run, False) == ("unix", run / "docker.sock")
    assert parse_uri("unix:///tmp/x.sock", run, False) == ("unix", Path("/tmp/x.sock"))
    assert parse_uri("tcp://127.0.0.1:2375", run, False) == ("tcp", ("127.0.0.1", 2375))
    assert parse_uri("tcp://0.0.0.0:2375", run, True) == ("tcp", ("0.0.0.0", 2375))
    for bad in ("tcp://0.0.0.0:2375", "unix://relative", "tcp://127.0.0.1:x", "http://a:1",
                "/plain/path"):
        with pytest.raises(ShellctrError):
            parse_uri(bad, run, False)


# -- routes, bodies, statuses -------------------------------------------------------------
def test_routes_match_segments_and_image_names_with_slashes() -> None:
    routes = Routes()
    routes.add("GET", "/containers/{id}/json")(lambda call: "container")
    routes.add("GET", "/images/{name*}/json")(lambda call: "image")
    handler, params = routes.find("GET", "/images/reg.example:5000/team/app:1/json")
    assert handler(None) == "image" and params == {"name": "reg.example:5000/team/app:1"}
    _, params = routes.find("GET", "/containers/abc/json")
    assert params == {"id": "abc"}
    with pytest.raises(ApiError) as wrong_method:
        routes.find("POST", "/containers/abc/json")
    assert wrong_method.value.status == 405
    with pytest.raises(ApiError) as missing:
        routes.find("GET", "/containers/abc/def/json")
    assert missing.value.status == 404


def test_a_chunked_body_reads_as_its_bytes() -> None:
    raw = io.BytesIO(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT")
    body = BodyReader(raw, headers(Transfer_Encoding="chunked"))
    assert body.read(3) == b"hel"
    assert body.read() == b"lo world"
    assert raw.read() == b"NEXT"  # the next request on the connection is untouched


def test_a_sized_body_stops_at_its_length_and_a_short_one_is_a_400() -> None:
    raw = io.BytesIO(b"{}NEXT")
    assert BodyReader(raw, headers(Content_Length="2")).read() == b"{}"
    with pytest.raises(ApiError):
        BodyReader(io.BytesIO(b"ab"), headers(Content_Length="5")).read()
    with pytest.raises(ApiError):
        BodyReader(io.BytesIO(b"zz\r\n"), headers(Transfer_Encoding="chunked")).read()


def test_engine_errors_get_dockers_statuses() -> None:
    assert status_of(NotFound("x")) == 404
    assert status_of(Conflict("x")) == 409
    assert status_of(HostCommandError("x")) == 500
    assert status_of(ExecError("x", 127)) == 400
    assert status_of(ShellctrError("x")) == 400


def test_hub_references_are_kept_as_the_store_names_them() -> None:
    assert familiar("docker.io/library/busybox:latest") == "busybox:latest"
    assert familiar("docker.io/team/app") == "team/app"
    assert familiar("localhost:5000/app:1") == "localhost:5000/app:1"


def test_the_door_listens_on_a_unix_socket_with_its_mode_and_replaces_a_stale_one(
        tmp_path: Path) -> None:
    import socket

    from shellctr.core.host import Host, Rollback

    err = io.StringIO()
    host = Host(trace=True, err=err)
    path = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a killed service's: nothing listens on it
    stale.close()
    with Rollback(host) as rollback:
        sock = host.listen_unix(path, mode=0o660, group="no-such-group-here",
                                rollback=rollback)
        try:
            assert oct(path.stat().st_mode & 0o777) == "0o660"
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(path))
            client.close()
        finally:
            sock.close()
        rollback.unwind()
    assert not path.exists()
    assert err.getvalue().splitlines()[0] == f"+ chmod 660 {path}"  # no chgrp: no such group
    assert "chgrp" not in err.getvalue()


def test_a_service_cannot_listen_under_dry_run(tmp_path: Path) -> None:
    from shellctr.core.host import Host

    with pytest.raises(HostCommandError):
        Host(dry_run=True, out=io.StringIO()).listen_unix(tmp_path / "x.sock")
    assert not (tmp_path / "x.sock").exists()


# -- credentials ------------------------------------------------------------------------------
def test_an_auth_config_gives_its_user_and_password_from_auth_or_as_given() -> None:
    import base64

    from shellctr.api.images import auth_config

    encoded = base64.b64encode(b"alice:s3:cret").decode()
    assert auth_config({"auth": encoded, "serveraddress": "r:5000"}, "x") == {
        "auth": encoded, "serveraddress": "r:5000", "username": "alice",
        "password": "s3:cret"}
    assert auth_config({"username": "bob", "password": "pw", "auth": "junk"}, "x")[
        "username"] == "bob"
    for bad in ([], {"auth": "bm8tY29sb24="}, {"auth": "%%%"}):
        with pytest.raises(ApiError) as refused:
            auth_config(bad, "auth body")
        assert refused.value.status == 400 and "auth body" in refused.value.message


# -- watching a container's state ----------------------------------------------------------------
def test_a_state_watch_reads_again_only_when_the_record_or_exit_file_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from shellctr.api import watch as watching
    from shellctr.core.layout import Layout
    from shellctr.engine import lifecycle

    layout = Layout(tmp_path / "root", tmp_path / "run")
    cid = "c" * 64
    state = layout.container_state(cid)
    state.parent.mkdir(parents=True)
    state.write_text("{}")
    reads: list[int] = []

    def reconcile(store: object, wanted: str) -> dict[str, int]:
        assert wanted == cid
        if not state.exists():
            raise FileNotFoundError(state)
        reads.append(1)
        return {"n": len(reads)}

    monkeypatch.setattr(lifecycle, "reconcile", reconcile)
    store = type("Store", (), {"layout": layout})()
    watch = watching.StateWatch(store, cid)  # type: ignore[arg-type]
    assert watch.state() == {"n": 1} and watch.changed
    assert watch.state() == {"n": 1} and not watch.changed  # nothing changed: no read
    layout.container_exit_file(cid).write_text("{}")  # the monitor recorded the end
    assert watch.state() == {"n": 2} and watch.changed
    replaced = state.with_suffix(".tmp")
    replaced.write_text("{} ")
    os.replace(replaced, state)  # a new record, as the store writes one
    assert watch.state() == {"n": 3}
    monkeypatch.setattr(watching, "RECHECK", 0.0)  # after RECHECK: read anyway
    assert watch.state() == {"n": 4}
    state.unlink()
    assert watch.state() is None  # removed
