"""The Docker Engine API (`shellctr system service`) driven by the real `docker` CLI and
by raw HTTP, each result compared with what the shellctr CLI shows for the same object."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .api_support import DOCKER, Api, api_fixture, start_service, stop_service
from .support import FULL_ID, Ctr, inspect, remove_all, wait_for, wait_settled

pytestmark = pytest.mark.skipif(not DOCKER.is_file(), reason="no docker CLI at " + str(DOCKER))


@pytest.fixture
def api(ctr: Ctr) -> Iterator[Api]:
    yield from api_fixture(ctr)


# -- system --------------------------------------------------------------------------------
def test_ping_advertises_api_1_44_and_the_classic_builder(api: Api) -> None:
    answer = api.request("GET", "/_ping")
    assert (answer.status, answer.body) == (200, b"OK")
    assert answer.headers["api-version"] == "1.44"
    assert answer.headers["ostype"] == "linux"
    assert answer.headers["builder-version"] == "1"
    assert api.request("HEAD", "/_ping").status == 200


def test_version_names_the_api_range_and_versioned_paths_are_accepted(api: Api) -> None:
    for path in ("/version", "/v1.44/version", "/v1.24/version"):
        version = api.request("GET", path).json()
        assert (version["ApiVersion"], version["MinAPIVersion"]) == ("1.44", "1.24"), path
    result = api.docker("version", "--format", "{{.Server.APIVersion}}").ok()
    assert result.out.strip() == "1.44"


def test_info_counts_the_containers_and_images_of_the_store(api: Api, ctr: Ctr) -> None:
    cid = ctr("create", "busybox", "true").ok().out.strip()
    try:
        info = api.request("GET", "/info").json()
        assert info["Containers"] == 1 and info["ContainersStopped"] == 1
        assert info["Images"] == len(ctr.image_ids())
        assert info["OSType"] == "linux" and info["Driver"] == "overlay"
    finally:
        ctr("rm", cid).ok()


def test_an_unknown_path_is_404_with_a_message(api: Api) -> None:
    answer = api.request("GET", "/v1.44/nothing/here")
    assert answer.status == 404
    assert "message" in answer.json()


def test_docker_build_with_the_classic_builder(api: Api, ctr: Ctr, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nARG WHO=nobody\nCOPY hello.txt /hello.txt\n'
        'RUN echo "$WHO" > /who\nCMD ["cat", "/hello.txt", "/who"]\n')
    (tmp_path / "hello.txt").write_text("built through the API\n")
    try:
        built = api.docker("build", "-t", "apibuilt:1", "--build-arg", "WHO=docker",
                           "--label", "via=api", str(tmp_path), env={"DOCKER_BUILDKIT": "0"})
        assert built.code == 0, str(built)
        assert "Step 1/6 : FROM busybox" in built.out and "Successfully tagged apibuilt:1" \
            in built.out, str(built)
        assert ctr("run", "--rm", "apibuilt:1").ok().out == "built through the API\ndocker\n"
        assert inspect(ctr, "apibuilt:1")["Config"]["Labels"] == {"via": "api"}
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
        # --force-rm: the failed step's container goes too (without it, as Docker, it stays)
        failed = api.docker("build", "--force-rm", str(broken), env={"DOCKER_BUILDKIT": "0"})
        assert failed.code != 0 and "exit" in failed.err.lower(), str(failed)
        assert ctr.container_ids() == []
    finally:
        remove_all(ctr)
        ctr("rmi", "apibuilt:1")


@pytest.mark.skipif(not Path("/usr/bin/docker-registry").exists(),
                    reason="needs docker-registry (make deps)")
def test_docker_push_and_pull_through_the_api_against_a_loopback_registry(
        api: Api, ctr: Ctr, tmp_path: Path) -> None:
    import uuid

    from .registries import running

    with running(tmp_path / "registry") as registry:
        ref = f"{registry.name}/t{uuid.uuid4().hex[:8]}/box:1"
        api.docker("tag", "busybox", ref).ok()
        pushed = api.docker("push", ref)
        assert pushed.code == 0, str(pushed)
        assert "1: digest: sha256:" in pushed.out, str(pushed)
        api.docker("rmi", ref).ok()
        assert ref not in ctr("images", "--format", "{{.Repository}}:{{.Tag}}").ok().out
        pulled = api.docker("pull", ref)
        assert pulled.code == 0, str(pulled)
        assert "Status: " in pulled.out and "sha256:" in pulled.out, str(pulled)
        shown = ctr("images", "--format", "{{.Repository}}:{{.Tag}}").ok().out.split()
        assert ref in shown, shown
        missing = api.docker("pull", f"{registry.name}/nothing/here:1")
        assert missing.code != 0 and "nothing/here" in missing.err, str(missing)
        ctr("rmi", ref).ok()


@pytest.mark.skipif(not Path("/usr/bin/docker-registry").exists(),
                    reason="needs docker-registry (make deps)")
def test_docker_login_is_checked_and_push_and_pull_send_the_clients_credentials(
        api: Api, ctr: Ctr, tmp_path: Path) -> None:
    import uuid

    from .registries import PASSWORD, USER, running

    with running(tmp_path / "basic", "basic") as basic:
        ref = f"{basic.name}/t{uuid.uuid4().hex[:8]}/box:1"
        api.docker("tag", "busybox", ref).ok()
        try:
            denied = api.docker("push", ref)
            assert denied.code != 0 and "unauthorized" in denied.err, str(denied)
            wrong = api.docker("login", "-u", USER, "--password-stdin", basic.name,
                               input="wrong\n")
            assert wrong.code != 0 and "unauthorized" in wrong.err, str(wrong)
            assert "wrong" not in wrong.err
            login = api.docker("login", "-u", USER, "--password-stdin", basic.name,
                               input=PASSWORD + "\n")
            assert login.code == 0 and "Login Succeeded" in login.out, str(login)
            pushed = api.docker("push", ref)
            assert pushed.code == 0 and "1: digest: sha256:" in pushed.out, str(pushed)
            api.docker("rmi", ref).ok()
            pulled = api.docker("pull", ref)
            assert pulled.code == 0, str(pulled)
            assert ref in ctr("images", "--format", "{{.Repository}}:{{.Tag}}").ok().out
        finally:
            ctr("rmi", ref)


def test_a_malformed_registry_auth_header_is_a_400_before_any_pull(api: Api) -> None:
    answer = api.request("POST", "/images/create?fromImage=127.0.0.1:9/none/here&tag=1",
                         headers={"X-Registry-Auth": "%%%not-base64"})
    assert answer.status == 400, answer
    assert "X-Registry-Auth" in answer.json()["message"]
    bad_auth = api.request("POST", "/auth", {"auth": "bm90LWEtcGFpcg=="})
    assert bad_auth.status == 400 and "USER:PASSWORD" in bad_auth.json()["message"]


def connections(sock: Path) -> int:
    """Connections the service has accepted on `sock` (/proc/net/unix: state 03)."""
    found = 0
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[-1] == str(sock) and fields[5] == "03":
            found += 1
    return found


def test_docker_events_shows_a_verb_run_meanwhile(api: Api, ctr: Ctr) -> None:
    import subprocess

    watcher = subprocess.Popen([str(DOCKER), "events", "--format", "{{.Type}} {{.Action}} "
                                "{{.Actor.Attributes.name}}", "--filter", "container=seen"],
                               env=api.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: connections(api.sock) > 0, "the events request to reach the service")
        ctr("run", "--rm", "--name", "seen", "busybox", "true").ok()
        assert watcher.stdout is not None
        import select
        seen = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"destroy" not in seen:
            ready, _, _ = select.select([watcher.stdout], [], [], 1)
            if ready:
                seen += os.read(watcher.stdout.fileno(), 4096)
        lines = seen.decode().splitlines()
        actions = [line.split()[1] for line in lines if line.strip()]
        assert "start" in actions and "die" in actions and "destroy" in actions, lines
        assert all(line.split()[2] == "seen" for line in lines if line.strip())
    finally:
        watcher.kill()
        watcher.wait(timeout=30)


# -- containers through the docker CLI --------------------------------------------------------
def test_docker_run_rm_prints_the_output_and_leaves_no_container(api: Api, ctr: Ctr) -> None:
    result = api.docker("run", "--rm", "busybox", "echo", "hi").ok()
    assert result.out == "hi\n"
    assert ctr.container_ids() == []


def test_docker_run_keeps_stdout_and_stderr_apart_and_returns_the_exit_code(api: Api,
                                                                            ctr: Ctr) -> None:
    result = api.docker("run", "--rm", "busybox", "sh", "-c",
                        "echo to-out; echo to-err >&2; exit 3")
    assert result.code == 3, str(result)
    assert result.out == "to-out\n"
    assert result.err == "to-err\n"
    assert ctr.container_ids() == []


def test_docker_run_of_a_missing_command_exits_127(api: Api, ctr: Ctr) -> None:
    result = api.docker("run", "--rm", "busybox", "no-such-command")
    assert result.code == 127, str(result)
    assert "no-such-command" in result.err
    wait_for(lambda: ctr.container_ids() == [], "the --rm container to go")


def test_stdin_piped_into_docker_run_i_reaches_the_container_and_ends(api: Api,
                                                                      ctr: Ctr) -> None:
    result = api.docker("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done",
                        input="line one\nline two\n").ok()
    assert result.out == "line one\nline two\ndone\n"


def test_docker_run_detached_shows_in_shellctr_ps_and_the_other_way(api: Api,
                                                                   ctr: Ctr) -> None:
    cid = api.docker("run", "-d", "--name", "web", "--label", "tier=front", "busybox",
                     "sleep", "1000").ok().out.strip()
    assert FULL_ID.match(cid)
    other = ctr("run", "-d", "--name", "worker", "busybox", "sleep", "1000").ok().out.strip()
    try:
        shown = ctr("ps", "--format", "{{.Names}} {{.Status}}").ok().out.split("\n")
        assert any(line.startswith("web Up") for line in shown), shown
        listed = api.docker("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}")
        assert sorted(listed.ok().out.split("\n")[:-1]) == sorted(
            [f"{cid} web running", f"{other} worker running"])
        labelled = api.docker("ps", "-q", "--no-trunc", "--filter", "label=tier=front").ok()
        assert labelled.out.split() == [cid]
        record = inspect(ctr, "web")
        assert record["Config"]["Labels"] == {"tier": "front"}
    finally:
        api.docker("rm", "-f", "web", "worker").ok()
    assert ctr.container_ids() == []


def test_docker_ps_all_and_inspect_format_match_shellctr(api: Api, ctr: Ctr) -> None:
    cid = ctr("create", "--name", "made", "-e", "A=1", "busybox", "true").ok().out.strip()
    try:
        assert api.docker("ps", "-q").ok().out == ""
        assert api.docker("ps", "-aq", "--no-trunc").ok().out.split() == [cid]
        template = "{{.Id}} {{.Name}} {{.State.Status}} {{index .Config.Env 0}}"
        ours = ctr("inspect", "-f", template, "made").ok().out
        theirs = api.docker("inspect", "-f", template, "made").ok().out
        assert ours == theirs
        assert json.loads(api.docker("inspect", "made").ok().out)[0] == inspect(ctr, "made")
    finally:
        ctr("rm", cid).ok()


def test_docker_logs_follow_streams_until_the_container_ends(api: Api, ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "talker", "busybox", "sh", "-c",
        "for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.2; done").ok()
    try:
        result = api.docker("logs", "-f", "talker").ok()
        assert result.out == "line1\nline2\nline3\n"
        assert result.err == "err1\nerr2\nerr3\n"
        last = api.docker("logs", "--tail", "1", "talker").ok()  # the last line of both
        assert (last.out, last.err) == ("", "err3\n")
        ours = ctr("logs", "--tail", "1", "talker", trace=False).ok()
        assert (ours.out, ours.err) == (last.out, last.err)
        stamped = api.docker("logs", "-t", "talker").ok().out.splitlines()
        assert [line.split(" ", 1)[1] for line in stamped] == ["line1", "line2", "line3"]
        assert ctr("logs", "talker").ok().out == result.out
    finally:
        ctr("rm", "-f", "talker").ok()


def test_docker_exec_returns_the_commands_output_and_exit_code(api: Api, ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "box", "busybox", "sleep", "1000").ok()
    try:
        result = api.docker("exec", "box", "sh", "-c", "echo in-box; echo oops >&2; exit 4")
        assert (result.code, result.out, result.err) == (4, "in-box\n", "oops\n"), str(result)
        piped = api.docker("exec", "-i", "box", "cat", input="through stdin\n").ok()
        assert piped.out == "through stdin\n"
        env = api.docker("exec", "-e", "GREETING=hey", "-w", "/tmp", "box", "sh", "-c",
                         "echo $GREETING; pwd").ok()
        assert env.out == "hey\n/tmp\n"
        assert api.docker("exec", "box", "no-such-command").code == 127
    finally:
        ctr("rm", "-f", "box").ok()


def on_a_terminal(api: Api, argv: list[str], typed: bytes) -> tuple[int, str]:
    """Run the docker CLI on a new pseudo-terminal, type `typed`: (exit code, output)."""
    import pty
    import select

    pid, master = pty.fork()
    if pid == 0:  # the child: docker on the new terminal
        os.execve(str(DOCKER), [str(DOCKER), *argv], api.env)
    os.write(master, typed)
    output = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child has gone
                break
            if not data:
                break
            output += data
    else:  # it hangs: end it, and say so
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_docker_exec_it_runs_in_a_terminal(api: Api, ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "tty", "busybox", "sleep", "1000").ok()
    try:
        code, text = on_a_terminal(api, ["exec", "-it", "tty", "sh", "-c",
                                         "tty; echo typed:$(head -n1)"], b"hello\n")
        assert code == 0, text
        assert "/dev/pts/" in text, text
        assert "typed:hello" in text, text
    finally:
        ctr("rm", "-f", "tty").ok()


def test_docker_run_it_gives_the_container_a_terminal(api: Api, ctr: Ctr) -> None:
    code, text = on_a_terminal(api, ["run", "--rm", "-it", "busybox", "sh", "-c",
                                     "tty; read line; echo got:$line; exit 3"], b"abc\n")
    assert code == 3, text
    assert "/dev/pts/0" in text and "got:abc" in text, text
    wait_for(lambda: ctr.container_ids() == [], "the --rm container to go")


def test_docker_start_attach_and_attach_show_the_output(api: Api, ctr: Ctr) -> None:
    ctr("create", "--name", "later", "busybox", "sh", "-c", "echo first; sleep 0.3; "
        "echo second >&2").ok()
    try:
        result = api.docker("start", "-a", "later").ok()
        assert (result.out, result.err) == ("first\n", "second\n")
        ctr("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
            "sleep 0.5; echo late; exit 6").ok()
        attached = api.docker("attach", "ticker")
        assert (attached.code, attached.out) == (6, "late\n"), str(attached)
    finally:
        ctr("rm", "-f", "later", "ticker").ok()


def test_docker_stop_kill_restart_and_rm_force(api: Api, ctr: Ctr) -> None:
    cid = ctr("run", "-d", "--name", "life", "busybox", "sleep", "1000").ok().out.strip()
    try:
        api.docker("stop", "-t", "1", "life").ok()
        assert inspect(ctr, "life")["State"]["Status"] == "exited"
        api.docker("start", "life").ok()
        assert inspect(ctr, "life")["State"]["Running"]
        api.docker("kill", "life").ok()
        assert inspect(ctr, "life")["State"]["ExitCode"] == 137
        api.docker("restart", "-t", "1", "life").ok()
        assert inspect(ctr, "life")["State"]["Running"]
        api.docker("pause", "life").ok()
        assert inspect(ctr, "life")["State"]["Paused"]
        api.docker("unpause", "life").ok()
        api.docker("rm", "-f", "life").ok()
    finally:
        ctr("rm", "-f", cid)
    wait_settled(cid)
    assert ctr.container_ids() == []


def test_docker_cp_copies_both_ways(api: Api, ctr: Ctr, tmp_path: Path) -> None:
    ctr("run", "-d", "--name", "files", "busybox", "sleep", "1000").ok()
    try:
        source = tmp_path / "in"
        source.mkdir()
        (source / "a.txt").write_text("alpha\n")
        (source / "sub").mkdir()
        (source / "sub" / "b.txt").write_text("beta\n")
        api.docker("cp", str(source), "files:/tmp/").ok()
        assert ctr("exec", "files", "cat", "/tmp/in/a.txt", "/tmp/in/sub/b.txt").ok().out == \
            "alpha\nbeta\n"
        back = tmp_path / "back"
        api.docker("cp", "files:/tmp/in", str(back)).ok()
        assert (back / "sub" / "b.txt").read_text() == "beta\n"
        missing = api.docker("cp", "files:/no/such/file", str(tmp_path / "x"))
        assert missing.code != 0 and "no/such/file" in missing.err, str(missing)
    finally:
        ctr("rm", "-f", "files").ok()


def test_docker_stats_no_stream_reads_the_containers_counters(api: Api, ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "busy", "busybox", "sleep", "1000").ok()
    try:
        result = api.docker("stats", "--no-stream", "--format",
                            "{{.Name}} {{.PIDs}} {{.MemUsage}}", "busy").ok()
        name, pids, memory = result.out.split(" ", 2)
        assert (name, pids) == ("busy", "1")
        assert memory.split(" / ")[0] != "0B"
    finally:
        ctr("rm", "-f", "busy").ok()


def test_docker_top_lists_the_containers_processes(api: Api, ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "topped", "busybox", "sleep", "1000").ok()
    try:
        result = api.docker("top", "topped").ok()
        assert "sleep 1000" in result.out
        assert len(result.out.strip().splitlines()) == 2, result.out
    finally:
        ctr("rm", "-f", "topped").ok()


# -- images, networks, volumes -------------------------------------------------------------------
def test_docker_images_tag_and_rmi_match_shellctr(api: Api, ctr: Ctr) -> None:
    assert api.docker("images", "-q").ok().out.split() == ctr.image_ids()
    api.docker("tag", "busybox", "mybox:1").ok()
    try:
        listed = api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").ok().out.split()
        assert "mybox:1" in listed and "busybox:latest" in listed
        image = json.loads(api.docker("image", "inspect", "mybox:1").ok().out)[0]
        assert image == json.loads(ctr("image", "inspect", "mybox:1").ok().out)[0]
    finally:
        api.docker("rmi", "mybox:1").ok()
    assert "mybox" not in ctr("images").ok().out


def test_docker_network_create_connect_and_volume_create_show_in_shellctr(api: Api,
                                                                         ctr: Ctr) -> None:
    api.docker("network", "create", "appnet").ok()
    api.docker("volume", "create", "--label", "k=v", "data").ok()
    try:
        assert "appnet" in ctr("network", "ls").ok().out
        assert ctr("volume", "ls", "-q").ok().out.split() == ["data"]
        ctr("run", "-d", "--name", "svc", "busybox", "sleep", "1000").ok()
        api.docker("network", "connect", "appnet", "svc").ok()
        networks = inspect(ctr, "svc")["NetworkSettings"]["Networks"]
        assert "appnet" in networks, networks
        theirs = json.loads(api.docker("network", "inspect", "appnet").ok().out)
        ours = json.loads(ctr("network", "inspect", "appnet").ok().out)
        assert theirs == ours
        assert json.loads(api.docker("volume", "inspect", "data").ok().out) == \
            json.loads(ctr("volume", "inspect", "data").ok().out)
        api.docker("run", "--rm", "-v", "data:/data", "--network", "appnet", "busybox",
                   "sh", "-c", "echo kept > /data/f").ok()
        assert ctr("run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f").ok().out \
            == "kept\n"
    finally:
        remove_all(ctr)
        api.docker("network", "rm", "appnet").ok()
        api.docker("volume", "rm", "data").ok()
    assert "appnet" not in ctr("network", "ls").ok().out


# -- bad requests --------------------------------------------------------------------------------
def test_a_malformed_create_is_400_and_creates_nothing(api: Api, ctr: Ctr) -> None:
    for body in (b"{not json", b"[]", json.dumps({"Image": "busybox", "Env": "A=1"}).encode(),
                 json.dumps({"Image": "busybox", "HostConfig": {"Memory": "lots"}}).encode(),
                 json.dumps({"Image": "busybox", "Cmd": ["true"],
                             "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}).encode(),
                 json.dumps({"Cmd": ["true"]}).encode()):
        answer = api.request("POST", "/v1.44/containers/create", body=body)
        assert answer.status == 400, (body, answer)
        message = answer.json()["message"]
        assert message and "Traceback" not in message
    assert ctr.container_ids() == []


def test_objects_that_are_not_there_are_404_and_conflicts_409(api: Api, ctr: Ctr) -> None:
    assert api.request("GET", "/containers/nothing/json").status == 404
    assert api.request("GET", "/images/nothing:1/json").status == 404
    assert api.request("GET", "/networks/nothing").status == 404
    assert api.request("GET", "/volumes/nothing").status == 404
    ctr("run", "-d", "--name", "busy", "busybox", "sleep", "1000").ok()
    try:
        answer = api.request("POST", "/containers/create?name=busy",
                             body={"Image": "busybox", "Cmd": ["true"]})
        assert answer.status == 409, answer
        assert api.request("DELETE", "/containers/busy").status == 409
    finally:
        ctr("rm", "-f", "busy").ok()


# -- the service itself ----------------------------------------------------------------------------
def test_the_socket_is_mode_0660_and_goes_with_the_service(ctr: Ctr) -> None:
    sock = ctr.scratch / "mode.sock"
    running = start_service(ctr, sock, "--time", "0")
    try:
        assert oct(sock.stat().st_mode & 0o777) == "0o660"
    finally:
        stop_service(running, sock)


def test_an_idle_service_exits_by_itself(ctr: Ctr) -> None:
    sock = ctr.scratch / "idle.sock"
    running = start_service(ctr, sock, "--time", "1")
    result = running.wait(timeout=30)
    assert result.code == 0, str(result)
    assert not sock.exists()


def test_tcp_on_another_address_needs_tcp_any(ctr: Ctr) -> None:
    result = ctr("system", "service", "tcp://0.0.0.0:2375")
    assert result.code == 1  # an engine error, as shellctr's other verbs (cli.common.exit_code)
    assert "no authentication" in result.err


def test_a_service_killed_mid_run_loses_nothing_the_cli_can_not_clean(ctr: Ctr) -> None:
    sock = ctr.scratch / "killed.sock"
    running = start_service(ctr, sock, "--time", "0")
    api = Api(ctr, sock, running)
    client = api.docker  # a docker run attached to a long container, then the service dies
    import subprocess
    proc = subprocess.Popen([str(DOCKER), "run", "--name", "orphan", "busybox", "sleep", "1000"],
                            env=api.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "orphan" in ctr("ps", "--format", "{{.Names}}").out,
                 "the container to run")
        running.process.send_signal(signal.SIGKILL)
        running.process.wait(timeout=30)
        proc.wait(timeout=30)
        # the container runs on, and the CLI sees it and removes it
        assert inspect(ctr, "orphan")["State"]["Running"]
        ctr("rm", "-f", "orphan").ok()
        # a new service on the same socket path (the stale file is replaced)
        again = start_service(ctr, sock, "--time", "0")
        try:
            assert Api(ctr, sock, again).docker("ps", "-aq").ok().out == ""
        finally:
            stop_service(again, sock)
    finally:
        del client
        if proc.poll() is None:
            proc.kill()
        ctr("rm", "-f", "orphan")


# -- the rest of the container and image verbs ----------------------------------------------
def test_wait_conditions_and_a_bad_one(api: Api, ctr: Ctr) -> None:
    cid = ctr("create", "--name", "waited", "busybox", "sh", "-c", "exit 9").ok().out.strip()
    try:
        assert api.request("POST", f"/containers/{cid}/wait?condition=sometime").status == 400
        # not-running: a created container is not running: at once, its code so far
        assert api.request("POST", f"/containers/{cid}/wait").json()["StatusCode"] == 0
        ctr("start", cid).ok()
        answer = api.request("POST", f"/containers/{cid}/wait?condition=not-running")
        assert answer.json() == {"StatusCode": 9}
    finally:
        ctr("rm", "-f", cid).ok()


def test_docker_rename_update_diff_and_export(api: Api, ctr: Ctr, tmp_path: Path) -> None:
    ctr("run", "-d", "--name", "old", "busybox", "sh", "-c", "touch /made; sleep 1000").ok()
    try:
        api.docker("rename", "old", "new").ok()
        assert inspect(ctr, "new")["Name"] == "/new"
        api.docker("update", "--memory", "64m", "--memory-swap", "128m", "new").ok()
        assert inspect(ctr, "new")["HostConfig"]["Memory"] == 64 << 20
        wait_for(lambda: "A /made" in api.docker("diff", "new").out, "the file to be made")
        assert api.docker("diff", "new").ok().out == ctr("diff", "new").ok().out
        exported = tmp_path / "fs.tar"
        api.docker("export", "-o", str(exported), "new").ok()
        import tarfile
        with tarfile.open(exported) as archive:
            assert "made" in [name.lstrip("./") for name in archive.getnames()]
    finally:
        ctr("rm", "-f", "new").ok()


def test_docker_save_then_load_round_trips_an_image(api: Api, ctr: Ctr, tmp_path: Path) -> None:
    archive = tmp_path / "box.tar"
    api.docker("tag", "busybox", "roundtrip:1").ok()
    try:
        api.docker("save", "-o", str(archive), "roundtrip:1").ok()
        api.docker("rmi", "roundtrip:1").ok()
        assert "roundtrip" not in ctr("images").ok().out
        loaded = api.docker("load", "-i", str(archive)).ok()
        assert "roundtrip:1" in loaded.out, str(loaded)
        assert "roundtrip" in ctr("images").ok().out
    finally:
        ctr("rmi", "roundtrip:1")


def test_docker_rm_of_a_running_container_is_refused_without_force(api: Api, ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "keep", "busybox", "sleep", "1000").ok()
    try:
        refused = api.docker("rm", "keep")
        assert refused.code != 0 and "keep" in refused.err and "running" in refused.err, \
            str(refused)
        assert inspect(ctr, "keep")["State"]["Running"]
    finally:
        ctr("rm", "-f", "keep").ok()
