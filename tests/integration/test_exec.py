"""`exec`: a command in a running container, confined exactly as its PID 1: its
namespaces, cgroup, environment, capabilities and no_new_privs."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    DEFAULT_TIMEOUT,
    Ctr,
    inspect,
    one_line_error,
    remove_all,
    run_detached,
    wait_for,
)
from .test_io import Terminal

PID1 = ("sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait")


@pytest.fixture
def box(ctr: Ctr) -> Iterator[str]:
    """A running container named `box` (host name `boxhost`, FROM_RUN=1 in its env)."""
    cid = run_detached(ctr, "--name", "box", "-h", "boxhost", "-e", "FROM_RUN=1",
                       "busybox", *PID1)
    yield cid
    remove_all(ctr)


def env_of(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_exec_sees_the_containers_environment_and_host_name(ctr: Ctr, box: str,
                                                            tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=2\n# a comment\n")
    result = ctr("exec", "-e", "FROM_EXEC=3", "--env-file", str(env_file), "box",
                 "env").ok()
    env = env_of(result.out)
    assert env["FROM_RUN"] == "1", str(result)
    assert env["FROM_FILE"] == "2" and env["FROM_EXEC"] == "3", str(result)
    assert env["HOSTNAME"] == "boxhost" and env["PATH"].startswith("/usr/local/sbin"), env
    assert ctr("exec", "box", "hostname").ok().out == "boxhost\n"
    # -e wins over the container's own value, as in Docker
    assert ctr("exec", "-e", "FROM_RUN=9", "box", "sh", "-c",
               "echo $FROM_RUN").ok().out == "9\n"


def test_exec_is_in_the_containers_pid_namespace(ctr: Ctr, box: str) -> None:
    pid = ctr("exec", "box", "sh", "-c", "echo $$").ok().out.strip()
    assert pid.isdigit() and pid != "1", pid
    cmdline = ctr("exec", "box", "cat", "/proc/1/cmdline").ok().out
    assert cmdline == "\0".join(PID1) + "\0", repr(cmdline)
    # the container's PID 1, seen from the host, is the same process
    host_pid = inspect(ctr, "box")["State"]["Pid"]
    assert Path(f"/proc/{host_pid}/cmdline").read_text() == cmdline


def test_exec_is_in_the_containers_cgroup(ctr: Ctr, box: str) -> None:
    result = ctr("exec", "box", "sh", "-c",
                 "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup").ok()
    own, _, pid1 = result.out.partition("---\n")
    assert own == pid1, str(result)
    assert "shellctr/" + box in own, str(result)


def status_fields(text: str) -> dict[str, str]:
    return {key: value.strip() for key, _, value in
            (line.partition(":") for line in text.splitlines()) if key}


CONFINEMENT = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
               "Uid", "Gid", "Groups")


def test_exec_has_exactly_the_confinement_of_pid1(ctr: Ctr, box: str) -> None:
    result = ctr("exec", "box", "sh", "-c",
                 "cat /proc/self/status; echo ---; cat /proc/1/status").ok()
    own, _, pid1 = (status_fields(part) for part in result.out.partition("---\n"))
    assert {key: own[key] for key in CONFINEMENT} == {key: pid1[key] for key in CONFINEMENT}
    assert own["CapBnd"] == "00000000a80425fb" and own["NoNewPrivs"] == "1", own


def test_exec_exit_status_is_the_commands(ctr: Ctr, box: str) -> None:
    assert ctr("exec", "box", "sh", "-c", "exit 7").code == 7
    assert ctr("exec", "box", "true").code == 0
    missing = ctr("exec", "box", "no-such-command", trace=False)
    assert missing.code == 127, str(missing)
    assert len(missing.err_lines) == 1 and "no-such-command" in missing.err, str(missing)
    not_runnable = ctr("exec", "box", "/etc/passwd", trace=False)
    assert not_runnable.code == 126, str(not_runnable)
    assert len(not_runnable.err_lines) == 1, str(not_runnable)
    killed = ctr("exec", "box", "sh", "-c", "kill -9 $$")
    assert killed.code == 137, str(killed)


def test_exec_as_another_user_in_another_directory(ctr: Ctr, box: str) -> None:
    result = ctr("exec", "-u", "nobody", "box", "sh", "-c", "id -u; id -g").ok()
    assert result.out == "65534\n65534\n", str(result)
    status = status_fields(ctr("exec", "-u", "nobody", "box", "cat",
                               "/proc/self/status").ok().out)
    assert status["CapEff"] == "0000000000000000" and status["NoNewPrivs"] == "1", status
    assert ctr("exec", "-w", "/x/y", "box", "pwd").ok().out == "/x/y\n"
    assert ctr("exec", "box", "sh", "-c", "test -d /x/y && pwd").ok().out == "/\n"
    unknown = ctr("exec", "-u", "no-such-user", "box", "true", trace=False)
    assert unknown.code != 0 and len(unknown.err_lines) == 1, str(unknown)


def test_exec_interactive_reads_stdin(ctr: Ctr, box: str) -> None:
    result = ctr("exec", "-i", "box", "cat", input="to the container\n")
    assert result.code == 0 and result.out == "to the container\n", str(result)
    closed = ctr("exec", "box", "cat", input="must not arrive\n")  # without -i: /dev/null
    assert closed.code == 0 and closed.out == "", str(closed)


def test_exec_detached_returns_and_the_process_runs(ctr: Ctr, box: str) -> None:
    result = ctr("exec", "-d", "box", "sh", "-c",
                 "while [ ! -e /go ]; do sleep 0.05; done; echo done > /flag")
    assert result.code == 0 and result.out == "", str(result)
    # the command is still waiting for /go: `exec -d` did not wait for it
    ps = ctr("exec", "box", "ps", "-o", "args").ok().out
    assert "while [ ! -e /go ]" in ps, ps
    ctr("exec", "box", "touch", "/go").ok()
    root = Path(f"/proc/{inspect(ctr, 'box')['State']['Pid']}/root")
    wait_for(lambda: (root / "flag").is_file() and (root / "flag").read_text() == "done\n",
             "the detached command to write /flag")


def test_exec_tty_gets_a_pseudo_terminal_of_the_container(ctr: Ctr, box: str) -> None:
    term = Terminal(ctr.argv(["exec", "-it", "box", "sh"]), ctr.env(), 24, 80)
    try:
        term.read_until(r"/ # ")
        assert re.fullmatch(r"/dev/pts/\d+", term.command("tty", "a").strip())
        assert term.command("echo $TERM", "b").strip() == "xterm"
        assert term.command("stty size", "c").strip() == "24 80"
        term.send("exit 5\n")
        assert term.process.wait(timeout=DEFAULT_TIMEOUT) == 5, term.seen.decode()
    finally:
        term.close()


def test_exec_in_a_stopped_container_is_an_engine_error(ctr: Ctr) -> None:
    try:
        ctr("create", "--name", "idle", "busybox", "sleep", "1000").ok()
        line = one_line_error(ctr("exec", "idle", "true", trace=False))
        assert "not running" in line, line
        ctr("run", "--name", "over", "busybox", "true").ok()
        line = one_line_error(ctr("exec", "over", "true", trace=False))
        assert "not running" in line, line
        one_line_error(ctr("exec", "no-such-container", "true", trace=False))
    finally:
        remove_all(ctr)


def test_exec_without_a_command_is_an_engine_error(ctr: Ctr, box: str) -> None:
    one_line_error(ctr("exec", "box", trace=False))


def test_exec_runs_no_interpreter_and_keeps_its_environment_out_of_argv(
        ctr: Ctr, box: str) -> None:
    """The joining process is shellctr-exec (static C), not the host's Python; the
    command's environment is its environment, never its argv, which any host user can
    read in /proc/PID/cmdline for as long as the command runs."""
    ctr("exec", "-d", "-e", "TOKEN=s3cret-value", "box", "sh", "-c",
        "while [ ! -e /go ]; do sleep 0.05; done").ok()
    helper = str(Path(__file__).resolve().parents[2] / "build" / "shellctr-exec")
    pid1 = str(inspect(ctr, "box")["State"]["Pid"])

    def joiners() -> list[Path]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:3] == [helper.encode(), b"--join", pid1.encode()]:
                found.append(proc)
        return found

    wait_for(lambda: bool(joiners()), "the joining process of the detached exec")
    for proc in joiners():
        assert b"s3cret-value" not in (proc / "cmdline").read_bytes()
        assert b"TOKEN=s3cret-value" in (proc / "environ").read_bytes()  # root may read it
        assert (proc / "status").read_text().count("python") == 0
    ctr("exec", "box", "touch", "/go").ok()
    wait_for(lambda: not joiners(), "the detached exec to end")


def test_exec_dry_run_prints_the_join_that_its_replay_runs(ctr: Ctr, box: str) -> None:
    """--dry-run shows the exec as the env and helper line it runs; replayed by bash, it
    runs the command in the container, with its environment and user."""
    script = ctr("--dry-run", "exec", "-e", "GREETING=hi there", "-u", "nobody", "box",
                 "sh", "-c", 'echo "$GREETING $(id -u) $(hostname)"').ok().out
    line = next(line for line in script.splitlines() if "shellctr-exec --join" in line)
    assert line.startswith("env --ignore-environment "), line
    assert "'GREETING=hi there'" in line and " --user nobody " in line, line
    assert " --no-new-privs " in line and " --seccomp-filter " in line, line
    replayed = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              timeout=DEFAULT_TIMEOUT, check=False)
    assert (replayed.returncode, replayed.stdout) == (0, "hi there 65534 boxhost\n"), replayed
