"""shellctr-exec (shellctr/exec.c), the static last step: it execs the program, or says
why not on the status socket in init.py's JSON, with Docker's 126/127."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

HELPER = Path(__file__).parents[2] / "build" / "shellctr-exec"
pytestmark = pytest.mark.skipif(not HELPER.exists(), reason="run make to build shellctr-exec")


def run_helper(*argv: str) -> tuple[int, str, dict[str, object] | None]:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with parent, child:
        proc = subprocess.run([str(HELPER), str(child.fileno()), *argv], pass_fds=(child.fileno(),),
                              capture_output=True, text=True, timeout=10, check=False)
        child.close()
        parent.settimeout(1)
        try:
            data = parent.recv(4096)
        except (TimeoutError, OSError):
            data = b""
    return proc.returncode, proc.stdout, json.loads(data) if data else None


def test_it_execs_the_program_with_argv0_and_closes_the_status_socket() -> None:
    code, out, message = run_helper("/bin/sh", "argv0", "-c", 'echo "$0 ran"')
    assert (code, out, message) == (0, "argv0 ran\n", None)


def test_a_missing_program_is_127_and_reported_as_json() -> None:
    code, _, message = run_helper("/no/such\"file", "x")
    assert code == 127
    assert message == {"message": 'exec /no/such"file: No such file or directory', "code": 127}


def test_a_program_that_cannot_run_is_126(tmp_path: Path) -> None:
    text = tmp_path / "data"
    text.write_text("not a program\n")
    text.chmod(0o644)
    code, _, message = run_helper(str(text), "data")
    assert code == 126 and message is not None and message["code"] == 126


def test_too_few_arguments_is_a_usage_error() -> None:
    proc = subprocess.run([str(HELPER), "-1", "/bin/true"], capture_output=True, text=True,
                          timeout=10, check=False)
    assert proc.returncode == 127 and "usage: shellctr-exec" in proc.stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["--join"], "--join needs a value"),
    (["--join", "1", "--user", "x"], "usage: shellctr-exec --join PID"),  # no command
    (["--join", "one", "--", "true"], "--join: not a number: one"),
    (["--join", "1", "--caps", "chown,no_such_cap", "--", "true"],
     "--caps: unknown capability no_such_cap"),
    (["--join", "1", "--frobnicate", "x", "--", "true"], "unknown option --frobnicate"),
])
def test_join_refuses_bad_options_before_touching_anything(argv: list[str],
                                                           message: str) -> None:
    """`exec`'s mode: a bad command line is one line and 125, before any namespace is
    opened (pid 1 is the host's init: nothing of it may be joined by mistake)."""
    proc = subprocess.run([str(HELPER), *argv], capture_output=True, text=True, timeout=10,
                          check=False)
    assert proc.returncode == 125
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
