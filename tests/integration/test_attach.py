"""`attach`: a detached container's output and stdin (or terminal) through its monitor's
socket; detach keys, exit codes, signals passed on, and refusals."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from .support import DEFAULT_TIMEOUT, Ctr, Running, one_line_error, remove_all, wait_for
from .test_io import Terminal

TICKS = "trap 'echo bye; exit 7' TERM; trap 'exit 5' INT; while :; do echo tick; sleep 0.1; done"


@pytest.fixture
def cleanup(ctr: Ctr) -> Iterator[None]:
    yield
    remove_all(ctr)


def attached(ctr: Ctr, *args: str) -> Running:
    """`attach ARGS` in the background, once it shows the container's ticks."""
    running = ctr.popen("attach", *args, trace=False)
    wait_for(lambda: "tick" in running.out_path.read_text(), f"attach {args} to show output")
    return running


@pytest.mark.usefixtures("cleanup")
def test_attach_sends_stdin_and_shows_stdout_and_stderr_apart(ctr: Ctr) -> None:
    script = ('while read line; do [ "$line" = quit ] && exit 3; '
              'echo "got $line"; echo "err $line" >&2; done')
    ctr("run", "-di", "--name", "reader", "busybox", "sh", "-c", script).ok()
    done = subprocess.run(ctr.argv(["attach", "reader"], trace=False), input=b"hello\nquit\n",
                          capture_output=True, env=ctr.env(), timeout=DEFAULT_TIMEOUT)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"got hello\n", b"err hello\n")


@pytest.mark.usefixtures("cleanup")
def test_attach_ends_with_the_containers_exit_code_when_it_stops(ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "ticker", "busybox", "sh", "-c", TICKS).ok()
    running = attached(ctr, "--no-stdin", "ticker")
    ctr("stop", "ticker").ok()
    result = running.wait()
    assert result.code == 7 and result.out.endswith("tick\nbye\n"), str(result)


@pytest.mark.usefixtures("cleanup")
def test_attach_passes_signals_on_to_pid_1(ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "ticker", "busybox", "sh", "-c", TICKS).ok()
    running = attached(ctr, "ticker")
    running.process.send_signal(signal.SIGINT)
    assert running.wait().code == 5  # the container's trap ended it
    assert ctr("inspect", "-f", "{{.State.ExitCode}}", "ticker").ok().out.strip() == "5"


@pytest.mark.usefixtures("cleanup")
def test_attach_without_sig_proxy_leaves_the_container_alone(ctr: Ctr) -> None:
    ctr("run", "-d", "--name", "ticker", "busybox", "sh", "-c", TICKS).ok()
    running = attached(ctr, "--sig-proxy=false", "ticker")
    running.process.send_signal(signal.SIGTERM)
    assert running.wait().code != 0
    status = ctr("inspect", "-f", "{{.State.Status}}", "ticker").ok().out.strip()
    assert status == "running"


@pytest.mark.usefixtures("cleanup")
def test_attach_to_a_terminal_types_sizes_and_detaches_leaving_it_running(ctr: Ctr) -> None:
    ctr("run", "-dit", "--name", "shell", "busybox", "sh").ok()
    term = Terminal(ctr.argv(["attach", "shell"], trace=False), ctr.env(), 33, 111)
    try:
        # nothing shows until the shell redraws its prompt (no replay, as in Docker), and
        # it may still be redrawing for the new window size: type once it answers
        term.send("\n")
        term.read_until(r"/ # ")
        assert term.command("stty size", "a").strip() == "33 111"
        term.resize(40, 100)
        wait_for(lambda: term.command("stty size", "b").strip() == "40 100",
                 "the new window size inside")
        term.send("\x10\x11")  # ctrl-p ctrl-q
        term.read_until("read escape sequence")
        assert term.process.wait(timeout=DEFAULT_TIMEOUT) == 1  # as Docker
    finally:
        term.close()
    status = ctr("inspect", "-f", "{{.State.Status}}", "shell").ok().out.strip()
    assert status == "running"


def test_attach_to_a_stopped_container_is_refused(ctr: Ctr) -> None:
    ctr("create", "--name", "idle", "busybox", "true").ok()
    line = one_line_error(ctr("attach", "idle"))
    assert line == "shellctr: you cannot attach to a stopped container (start it first)", line
    ctr("rm", "idle").ok()


def test_attach_with_bad_detach_keys_is_a_usage_error(ctr: Ctr) -> None:
    line = one_line_error(ctr("attach", "--detach-keys", "ctrl-pq", "whatever"))
    assert line.startswith("shellctr: invalid detach keys 'ctrl-pq'"), line
