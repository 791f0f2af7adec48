"""docker-py (the `docker` package, 7.x) against `shellctr system service`: the client
IDEs, CI runners and docker-compose are built on."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .api_support import Api, api_fixture
from .support import Ctr, inspect, wait_for

docker = pytest.importorskip("docker")


@pytest.fixture
def api(ctr: Ctr) -> Iterator[Api]:
    yield from api_fixture(ctr)


@pytest.fixture
def client(api: Api) -> Iterator[Any]:
    client = docker.DockerClient(base_url=f"unix://{api.sock}", timeout=60)
    yield client
    client.close()


def test_from_env_finds_the_service_through_docker_host(api: Api,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{api.sock}")
    client = docker.from_env()
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"] == "1.44"
    finally:
        client.close()


def test_run_detached_then_logs_stream_wait_and_remove(client: Any, ctr: Ctr) -> None:
    container = client.containers.run("busybox", ["sh", "-c",
                                                  "for i in 1 2 3; do echo n$i; sleep 0.1; done"],
                                      detach=True, name="counter")
    try:
        assert container.name == "counter"
        lines = b"".join(container.logs(stream=True, follow=True)).decode()
        assert lines == "n1\nn2\nn3\n"
        assert container.wait(timeout=30)["StatusCode"] == 0
        container.reload()
        assert container.status == "exited"
        assert inspect(ctr, "counter")["State"]["ExitCode"] == 0
    finally:
        container.remove(force=True)
    assert ctr.container_ids() == []


def test_run_in_the_foreground_returns_the_output(client: Any, ctr: Ctr) -> None:
    out = client.containers.run("busybox", ["echo", "hello from py"], remove=True)
    assert out == b"hello from py\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 5"], remove=True)
    assert failed.value.exit_status == 5
    assert ctr.container_ids() == [] or all(
        not inspect(ctr, cid)["HostConfig"]["AutoRemove"] for cid in ctr.container_ids())


def test_exec_run_gives_the_exit_code_and_output(client: Any, ctr: Ctr) -> None:
    container = client.containers.run("busybox", ["sleep", "1000"], detach=True)
    try:
        code, output = container.exec_run(["sh", "-c", "echo $((6*7)); exit 2"])
        assert (code, output) == (2, b"42\n")
        code, (out, err) = container.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        assert (code, out, err) == (0, b"o\n", b"e\n")
    finally:
        container.remove(force=True)


def test_put_archive_then_get_archive_round_trips_files(client: Any) -> None:
    container = client.containers.run("busybox", ["sleep", "1000"], detach=True)
    try:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            data = b"payload\n"
            info = tarfile.TarInfo("dir/file.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        assert container.put_archive("/tmp", buffer.getvalue()) is True
        assert container.exec_run(["cat", "/tmp/dir/file.txt"]).output == b"payload\n"
        stream, stat = container.get_archive("/tmp/dir")
        assert stat["name"] == "dir"
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile("dir/file.txt")
            assert member is not None and member.read() == b"payload\n"
        with pytest.raises(docker.errors.NotFound):
            container.get_archive("/no/such")
    finally:
        container.remove(force=True)


def test_images_networks_and_volumes(client: Any, ctr: Ctr) -> None:
    image = client.images.get("busybox")
    assert "busybox:latest" in image.tags
    assert image.id in [i.id for i in client.images.list()]
    network = client.networks.create("pynet")
    volume = client.volumes.create("pyvol", labels={"made": "by-py"})
    try:
        assert "pynet" in ctr("network", "ls").ok().out
        assert client.volumes.get("pyvol").attrs["Labels"] == {"made": "by-py"}
        container = client.containers.run("busybox", ["sleep", "1000"], detach=True,
                                          network="pynet", volumes={"pyvol": {"bind": "/v",
                                                                              "mode": "rw"}})
        try:
            network.reload()
            assert [c.id for c in network.containers] == [container.id]
            assert inspect(ctr, container.id)["Mounts"][0]["Name"] == "pyvol"
        finally:
            container.remove(force=True)
    finally:
        network.remove()
        volume.remove()
    assert "pynet" not in ctr("network", "ls").ok().out
    assert ctr("volume", "ls", "-q").ok().out == ""


def test_a_tmpfs_volume_made_with_driver_opts_is_shared_then_unmounted(
        client: Any, ctr: Ctr) -> None:
    volume = client.volumes.create("shm", driver_opts={"type": "tmpfs", "device": "tmpfs",
                                                       "o": "size=1m"})
    data = Path(volume.attrs["Mountpoint"])
    assert volume.attrs["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    try:
        holder = client.containers.run("busybox", ["sh", "-c", "echo hi > /v/f; sleep 1000"],
                                       detach=True, network_mode="none",
                                       volumes={"shm": {"bind": "/v", "mode": "rw"}})
        wait_for(lambda: (data / "f").exists(), "the holder's file on the shared mount")
        read = client.containers.run("busybox", ["cat", "/v/f"], remove=True,
                                     network_mode="none", volumes=["shm:/v"])
        assert read == b"hi\n"
        holder.remove(force=True)
        wait_for(lambda: not os.path.ismount(data), "the tmpfs unmounted after its last user")
    finally:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        volume.remove(force=True)
    with pytest.raises(docker.errors.APIError) as refused:
        client.volumes.create("bad", driver_opts={"type": "tmpfs", "device": "tmpfs",
                                                  "o": "size=lots"})
    assert refused.value.status_code == 400
    assert "invalid tmpfs option 'size=lots'" in str(refused.value)
    assert ctr("volume", "ls", "-q").ok().out == ""


def test_parallel_creates_each_get_their_own_name_and_all_are_removed(client: Any,
                                                                     ctr: Ctr) -> None:
    made: list[str] = []
    errors: list[BaseException] = []

    def create(index: int) -> None:
        try:
            container = client.containers.create("busybox", ["true"], name=f"par{index}")
            made.append(container.id)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert sorted(ctr("ps", "-a", "--format", "{{.Names}}").ok().out.split()) == \
            [f"par{i}" for i in range(6)]
        # the same name twice at once: exactly one wins
        results: list[object] = []

        def same() -> None:
            try:
                results.append(client.containers.create("busybox", ["true"], name="twin").id)
            except docker.errors.APIError as err:
                results.append(err.status_code)

        twins = [threading.Thread(target=same) for _ in range(3)]
        for thread in twins:
            thread.start()
        for thread in twins:
            thread.join(timeout=60)
        assert sorted(str(r) for r in results).count("409") == 2, results
    finally:
        for cid in ctr.container_ids(full=True):
            client.containers.get(cid).remove(force=True)
    assert ctr.container_ids() == []


def test_a_client_gone_mid_stream_leaves_the_service_serving(client: Any, api: Api,
                                                             ctr: Ctr) -> None:
    container = client.containers.run("busybox", ["sh", "-c", "while true; do echo y; "
                                                  "sleep 0.05; done"], detach=True)
    try:
        stream = container.logs(stream=True, follow=True)
        assert next(stream).strip() == b"y"
        stream.close()  # the client hangs up while the service is still streaming
        assert client.ping() is True
        assert api.docker("ps", "-q").ok().out.split() == [container.id[:12]]
    finally:
        container.remove(force=True)
    assert ctr.container_ids() == []


def test_images_build_push_and_pull(client: Any, ctr: Ctr, tmp_path: Any) -> None:
    import uuid
    from pathlib import Path

    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo py > /made\n")
    image, logs = client.images.build(path=str(tmp_path), tag="pybuilt:1", rm=True)
    try:
        assert "pybuilt:1" in image.tags
        assert any("Successfully built" in item.get("stream", "") for item in logs)
        assert client.containers.run("pybuilt:1", ["cat", "/made"], remove=True) == b"py\n"
        if not Path("/usr/bin/docker-registry").exists():
            return
        from .registries import running

        with running(tmp_path / "registry") as registry:
            repository = f"{registry.name}/t{uuid.uuid4().hex[:8]}/py"
            assert image.tag(repository, "2") is True
            lines = list(client.images.push(repository, tag="2", stream=True, decode=True))
            assert not [line for line in lines if "error" in line], lines
            client.images.remove(f"{repository}:2")
            pulled = client.images.pull(repository, tag="2")
            assert pulled.id == image.id
            client.images.remove(f"{repository}:2")
    finally:
        client.images.remove("pybuilt:1", force=True)
    assert ctr.container_ids() == []


@pytest.mark.skipif(not Path("/usr/bin/docker-registry").exists(),
                    reason="needs docker-registry (make deps)")
def test_registry_credentials_are_the_clients_auth_config_and_login_checks_them(
        client: Any, ctr: Ctr, tmp_path: Path) -> None:
    import uuid

    from .registries import PASSWORD, USER, running

    with running(tmp_path / "basic", "basic") as basic:
        repository = f"{basic.name}/t{uuid.uuid4().hex[:8]}/private"
        ctr("tag", "busybox", f"{repository}:1").ok()
        try:
            # the service has no credentials of its own for this registry
            refused = list(client.images.push(repository, tag="1", stream=True, decode=True))
            assert any("unauthorized" in line.get("error", "") for line in refused), refused
            auth = {"username": USER, "password": PASSWORD}
            pushed = list(client.images.push(repository, tag="1", stream=True, decode=True,
                                             auth_config=auth))
            assert not [line for line in pushed if "error" in line], pushed
            ctr("rmi", f"{repository}:1").ok()
            with pytest.raises(docker.errors.APIError):
                client.images.pull(repository, tag="1")
            assert client.images.pull(repository, tag="1", auth_config=auth).id
            ctr("rmi", f"{repository}:1").ok()

            with pytest.raises(docker.errors.APIError) as wrong:
                client.login(USER, "wrong", registry=basic.name, reauth=True)
            assert wrong.value.status_code == 401
            assert "wrong" not in str(wrong.value)
            answer = client.login(USER, PASSWORD, registry=f"http://{basic.name}/v2/")
            assert answer["Status"] == "Login Succeeded"
            # docker-py keeps what /auth accepted and sends it with the next pull
            assert client.images.pull(repository, tag="1").id
        finally:
            ctr("rmi", f"{repository}:1")


def read_until(sock: Any, wanted: bytes) -> bytes:
    """What a hijacked socket gives until `wanted` is in it (or it ends)."""
    seen = b""
    sock.settimeout(30)
    while wanted not in seen:
        data = sock.recv(4096)
        if not data:
            break
        seen += data
    return seen


def test_attach_detach_keys_end_the_attach_and_leave_the_container_running(
        client: Any, ctr: Ctr) -> None:
    container = client.containers.run("busybox", ["sh"], detach=True, stdin_open=True,
                                      tty=True)
    try:
        for params, keys in (({}, b"\x10\x11"), ({"detachKeys": "ctrl-x,z"}, b"\x18z")):
            attached = client.api.attach_socket(
                container.id, params={"stdin": 1, "stdout": 1, "stream": 1, **params})
            sock = attached._sock
            sock.sendall(b"echo $((20+2))\n")
            assert b"22" in read_until(sock, b"22")
            sock.sendall(keys[:1])  # the start of the keys is held back, then detaches
            sock.sendall(keys[1:])
            read_until(sock, b"never printed")  # the service ends the stream
            sock.close()
            container.reload()
            assert container.status == "running"
        assert container.exec_run(["true"]).exit_code == 0
        with pytest.raises(docker.errors.APIError) as bad:
            client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1,
                                                           "detachKeys": "ctrl-"})
        assert bad.value.status_code == 400
    finally:
        container.remove(force=True)
    assert ctr.container_ids() == []


def test_exec_detach_keys_end_the_stream_and_leave_the_command_running(
        client: Any, ctr: Ctr) -> None:
    container = client.containers.run("busybox", ["sleep", "1000"], detach=True)
    try:
        for keys_text, keys in (("", b"\x10\x11"), ("ctrl-x,z", b"\x18z")):
            created = client.api.exec_create(container.id, ["sh"], stdin=True, tty=True,
                                             detach_keys=keys_text or None)
            assert client.api.exec_inspect(created["Id"])["DetachKeys"] == keys_text
            sock = client.api.exec_start(created["Id"], tty=True, socket=True)._sock
            sock.sendall(b"echo $((20+2))\n")
            assert b"22" in read_until(sock, b"22")
            sock.sendall(keys[:1])  # the start of the keys is held back, then detaches
            sock.sendall(keys[1:])
            read_until(sock, b"never printed")  # the service ends the stream
            sock.close()
            assert client.api.exec_inspect(created["Id"])["Running"]  # the shell runs on
        with pytest.raises(docker.errors.APIError) as bad:
            client.api.exec_create(container.id, ["true"], detach_keys="ctrl-")
        assert bad.value.status_code == 400 and "invalid detach keys" in str(bad.value)
    finally:
        container.remove(force=True)
    assert ctr.container_ids() == []


def test_exec_resize_gives_the_execs_terminal_its_size(client: Any, ctr: Ctr) -> None:
    container = client.containers.run("busybox", ["sleep", "1000"], detach=True)
    try:
        created = client.api.exec_create(container.id, ["sh"], stdin=True, tty=True)
        started = client.api.exec_start(created["Id"], tty=True, socket=True)
        sock = started._sock
        client.api.exec_resize(created["Id"], height=33, width=101)
        sock.sendall(b"stty size\n")
        assert b"33 101" in read_until(sock, b"33 101")
        client.api.exec_resize(created["Id"], height=40, width=120)
        sock.sendall(b"stty size\n")
        assert b"40 120" in read_until(sock, b"40 120")
        sock.sendall(b"exit\n")
        read_until(sock, b"never printed")
        sock.close()
        with pytest.raises(docker.errors.APIError) as bad:
            client.api.exec_resize(created["Id"], height=-1, width=80)
        assert bad.value.status_code == 400
    finally:
        container.remove(force=True)
    assert ctr.container_ids() == []


def test_build_streams_a_runs_output_while_the_step_runs(client: Any, ctr: Ctr,
                                                         tmp_path: Path) -> None:
    # the step waits for /go, which the test makes only once it has read "first"
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN echo first; until [ -e /go ]; do sleep 0.05; done; echo second\n")
    seen: list[str] = []
    built = ""
    try:
        # a bounded read: a build whose output comes only at its end never gets to it
        for line in client.api.build(path=str(tmp_path), rm=True, decode=True, timeout=60):
            seen.append(line.get("stream", "") + line.get("error", ""))
            built = line.get("aux", {}).get("ID") or built
            if line.get("stream") == "first\n":
                running = ctr("ps", "-q").ok().out.split()
                assert len(running) == 1, running  # the step's container, still at work
                ctr("exec", running[0], "touch", "/go").ok()
        text = "".join(seen)
        assert "first\nsecond\n" in text and "Successfully built" in text, seen
    finally:
        for cid in ctr("ps", "-q").ok().out.split():
            ctr("rm", "-f", cid)
        if built:
            client.images.remove(built)
    assert ctr.container_ids() == []
