"""shellctr-monitor (shellctr/monitor.c), compiled into a tmp dir and run on sh: the
json-file log, the exit file, the exit code, the --then hook, --attach and --reap.

No root needed; skipped without a C compiler.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from shellctr.core.layout import Layout
from shellctr.core.store import Store
from shellctr.engine.create import create
from shellctr.engine.lifecycle import reconcile
from shellctr.engine.logs import iter_lines

from .helpers import CID, T0, RecordingHost, install_image, run_request, set_state

SOURCE = Path(__file__).resolve().parents[2] / "shellctr" / "monitor.c"
COMPILER = shutil.which("gcc") or shutil.which("cc")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")  # nanoseconds, UTC

pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C compiler (gcc) on this host")


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The monitor, built with the Makefile's warnings as errors (not static: faster)."""
    binary = tmp_path_factory.mktemp("monitor") / "shellctr-monitor"
    assert COMPILER is not None
    subprocess.run([COMPILER, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary),
                    str(SOURCE)], check=True, capture_output=True)
    return binary


class Run:
    """One run of the monitor: its exit code and output, the log and the exit file."""

    def __init__(self, monitor: Path, tmp: Path, script: str, *options: str,
                 command: list[str] | None = None) -> None:
        self.log, self.exit_file = tmp / "container.log", tmp / "exit.json"
        argv = [str(monitor), *options, str(self.exit_file), str(self.log), "--",
                *(command or ["sh", "-c", script])]
        done = subprocess.run(argv, capture_output=True, timeout=30)
        self.code, self.out, self.err = done.returncode, done.stdout, done.stderr

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_bytes().split(b"\n")
        assert lines[-1] == b""  # every record ends with a newline
        return [json.loads(line) for line in lines[:-1]]

    def stream(self, name: str) -> list[str]:
        return [record["log"] for record in self.records() if record["stream"] == name]

    def ended(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.exit_file.read_text())
        return value


def test_log_lines_exit_file_and_exit_code(monitor: Path, tmp_path: Path) -> None:
    run = Run(monitor, tmp_path, "echo a; echo b >&2; echo c; exit 3")
    assert (run.code, run.out, run.err) == (3, b"", b"")  # detached: nothing copied
    assert run.stream("stdout") == ["a\n", "c\n"]  # each stream kept apart, in order
    assert run.stream("stderr") == ["b\n"]
    for record in run.records():
        assert list(record) == ["log", "stream", "time"]  # Docker's json-file keys
        assert TIME.fullmatch(record["time"]), record["time"]
    ended = run.ended()
    assert list(ended) == ["exit_code", "finished_at"] and ended["exit_code"] == 3
    assert TIME.fullmatch(ended["finished_at"])
    assert ended["finished_at"] >= max(record["time"] for record in run.records())
    assert run.exit_file.read_text().endswith("}\n")
    assert sorted(os.listdir(tmp_path)) == ["container.log", "exit.json"]  # no temp file left


def test_log_escapes_quotes_backslashes_tabs_and_control_characters(
        monitor: Path, tmp_path: Path) -> None:
    run = Run(monitor, tmp_path,
              r"""printf 'q"uote back\\slash\ttab\001ctl\033[0m\177del\r\n'; """
              r"printf 'utf-8: \303\251\n'; printf 'last line, no newline'")
    assert run.code == 0
    raw = run.log.read_text(encoding="utf-8").splitlines()
    assert raw[0].startswith(r'{"log":"q\"uote back\\slash\ttab\u0001ctl\u001b[0m\u007fdel\r\n",'
                             r'"stream":"stdout","time":"')
    assert raw[1].startswith('{"log":"utf-8: é\\n",')  # other bytes as they are
    assert run.stream("stdout") == ['q"uote back\\slash\ttab\x01ctl\x1b[0m\x7fdel\r\n',
                                    "utf-8: é\n", "last line, no newline"]


def test_a_line_longer_than_the_buffer_is_split_into_records(monitor: Path,
                                                             tmp_path: Path) -> None:
    run = Run(monitor, tmp_path, "head -c 40000 /dev/zero | tr '\\0' x; echo; echo after")
    assert run.stream("stdout") == ["x" * 16384, "x" * 16384, "x" * 7232 + "\n", "after\n"]


def test_the_log_is_appended_to(monitor: Path, tmp_path: Path) -> None:
    Run(monitor, tmp_path, "echo first")
    run = Run(monitor, tmp_path, "echo second; exit 1")
    assert run.stream("stdout") == ["first\n", "second\n"]
    assert run.ended()["exit_code"] == 1  # the exit file is replaced


def test_killed_by_a_signal_is_128_plus_n(monitor: Path, tmp_path: Path) -> None:
    run = Run(monitor, tmp_path, "echo dying; kill -KILL $$")
    assert run.code == 137 and run.ended()["exit_code"] == 137
    assert run.stream("stdout") == ["dying\n"]


def test_a_command_that_cannot_be_run_is_127_and_logged(monitor: Path, tmp_path: Path) -> None:
    run = Run(monitor, tmp_path, "", command=[str(tmp_path / "nope")])
    assert run.code == 127 and run.ended()["exit_code"] == 127
    assert run.stream("stderr") == [
        f"shellctr-monitor: exec {tmp_path / 'nope'}: No such file or directory\n"]


def test_attach_copies_the_output_as_well(monitor: Path, tmp_path: Path) -> None:
    run = Run(monitor, tmp_path, "echo out; echo err >&2; printf tail; exit 4", "--attach")
    assert (run.code, run.out, run.err) == (4, b"out\ntail", b"err\n")
    assert run.stream("stdout") == ["out\n", "tail"] and run.stream("stderr") == ["err\n"]


def test_then_execs_the_hook_once_the_exit_file_is_written(monitor: Path,
                                                           tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    hook = ["sh", "-c", 'cat "$0" > "$1"; echo hook ran >&2; exit 9',
            str(tmp_path / "exit.json"), str(seen)]
    run = Run(monitor, tmp_path, "echo a; exit 3", "--then", str(len(hook)), *hook)
    assert run.code == 9  # the hook's: the monitor became it
    assert run.err == b"hook ran\n"  # the hook writes to the monitor's stderr, not the log
    assert json.loads(seen.read_text())["exit_code"] == 3
    assert run.stream("stdout") == ["a\n"] and run.stream("stderr") == []


def frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Every frame the monitor sends until it closes the socket."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    found = []
    while data:
        size = struct.unpack(">I", data[4:8])[0]
        found.append((data[0], data[8:8 + size]))
        data = data[8 + size:]
    return found


def test_attach_socket_takes_input_and_sends_the_output_framed(monitor: Path,
                                                               tmp_path: Path) -> None:
    script = 'read line; echo "got $line"; echo oops >&2; exit 4'
    argv = [str(monitor), "--keep-stdin", "--attach-socket", str(tmp_path),
            str(tmp_path / "exit.json"), str(tmp_path / "log"), "--", "sh", "-c", script]
    process = subprocess.Popen(argv)
    try:
        path = tmp_path / "attach.sock"
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, "no attach socket"
            time.sleep(0.01)
        assert stat.S_IMODE(path.stat().st_mode) == 0o700  # only root may attach
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(b"\x01\x00\x00\x00\x04\x00\x28\x00\x64")  # a size: no terminal, ignored
            sock.sendall(b"\x00\x00\x00\x00\x03hi\n")
            assert frames(sock) == [(1, b"got hi\n"), (2, b"oops\n")]
        assert process.wait(timeout=10) == 4
    finally:  # a failed assertion must not leave it waiting for input forever
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert not path.exists()  # gone with the container's output


@pytest.mark.parametrize("options", [
    [],  # no files, no command
    ["exit.json", "log"],  # no -- COMMAND
    ["exit.json", "log", "--"],
    ["exit.json", "log", "sh", "-c", "true"],  # no --
    ["--then", "9", "sh", "exit.json", "log", "--", "true"],  # fewer words than N
    ["--then", "0", "exit.json", "log", "--", "true"],
])
def test_usage_errors_are_125(monitor: Path, tmp_path: Path, options: list[str]) -> None:
    done = subprocess.run([str(monitor), *options], capture_output=True, cwd=tmp_path,
                          timeout=10)
    assert done.returncode == 125
    assert done.stderr.startswith(b"usage: shellctr-monitor ")
    assert os.listdir(tmp_path) == []  # nothing started, nothing written


@pytest.mark.parametrize(("script", "code"), [
    ("exit 0", 0), ("exit 5", 5), ("kill -TERM $$", 143), ("kill -KILL $$", 137),
])
def test_reap_passes_on_the_exact_status(monitor: Path, script: str, code: int) -> None:
    done = subprocess.run([str(monitor), "--reap", "--", "sh", "-c", script],
                          capture_output=True, timeout=10)
    assert (done.returncode, done.stdout, done.stderr) == (code, b"", b"")


def test_reap_output_is_the_commands_own(monitor: Path) -> None:
    done = subprocess.run([str(monitor), "--reap", "--", "sh", "-c", "echo out; echo err >&2"],
                          capture_output=True, timeout=10)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"out\n", b"err\n")


@pytest.mark.usefixtures("fixed")
def test_reconcile_reads_what_the_monitor_wrote(monitor: Path, layout: Layout) -> None:
    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, run_request("busybox", name="web"))
    # recorded as running, its PID 1 and monitor (this run of it) gone by the time we look
    set_state(layout, "running", pid=999_999_999, pid_start=1, started_at=T0)
    done = subprocess.run([str(monitor), str(layout.container_exit_file(CID)),
                           str(layout.container_log(CID)), "--", "sh", "-c", "echo hi; exit 7"],
                          timeout=30)
    assert done.returncode == 7
    state = reconcile(store, CID)
    assert (state["status"], state["exit_code"], state["pid"]) == ("exited", 7, 0)
    finished = json.loads(layout.container_exit_file(CID).read_text())["finished_at"]
    assert state["finished_at"] == finished  # as the monitor wrote it (nanoseconds)
    assert list(iter_lines(layout.container_log(CID))) == ["hi\n"]
