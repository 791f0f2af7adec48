"""stdin (`-i` or /dev/null) and the pseudo-terminal (`-t`, driven through a real pty)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest

from .support import DEFAULT_TIMEOUT, TIME_SCALE, Ctr, wait_for


def test_interactive_stdin_reaches_the_container(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "-i", "busybox", "cat", input="hello\n")
    assert result.code == 0, str(result)
    assert result.out == "hello\n", str(result)


def test_interactive_stdin_binary_and_large(ctr: Ctr) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    result = ctr("run", "--rm", "-i", "busybox", "md5sum", input=data)
    assert result.out.split()[0] == hashlib.md5(data).hexdigest(), str(result)


def test_without_interactive_stdin_is_dev_null(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "busybox", "cat", input="must not arrive\n")
    assert result.code == 0, str(result)
    assert result.out == "", str(result)
    link = ctr("run", "--rm", "busybox", "readlink", "/proc/self/fd/0", input="x").ok()
    assert link.out.strip() == "/dev/null", str(link)


# -- -t through a real pseudo-terminal ---------------------------------------------------
PROMPT = r"\r\n/ # "  # busybox sh's prompt at the start of a line (the trace has "# " too)

class Terminal:
    """The user's side of a pseudo-terminal with shellctr running on it."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int, cols: int) -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols, fd=slave)  # before shellctr starts: it copies this size
        # setsid --ctty: a session of its own whose controlling terminal is the pty (its
        # stdin), so the kernel sends SIGWINCH to shellctr as it would in a real terminal.
        # Not a process group leader, setsid execs shellctr without forking: one pid.
        self.process = subprocess.Popen(
            ["setsid", "--ctty", *argv], stdin=slave, stdout=slave, stderr=slave, env=env,
        )
        os.close(slave)
        self.seen = b""  # everything read so far, for failure messages
        self.pending = b""

    def resize(self, rows: int, cols: int, fd: int | None = None) -> None:
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until(self, pattern: str, timeout: float = 20.0) -> str:
        """Read until `pattern` (a regex) shows; return the text up to its end."""
        regex = re.compile(pattern.encode())
        timeout *= TIME_SCALE
        deadline = time.monotonic() + timeout
        while (match := regex.search(self.pending)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {pattern!r} on the terminal within {timeout}s; "
                            f"it showed:\n{self.seen.decode(errors='replace')}")
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: nothing holds the terminal any more
                data = b""
            if not data:
                pytest.fail(f"the terminal closed before {pattern!r}; it showed:\n"
                            f"{self.seen.decode(errors='replace')}")
            self.seen += data
            self.pending += data
        text, self.pending = self.pending[:match.end()], self.pending[match.end():]
        return text.decode(errors="replace")

    def command(self, line: str, tag: str) -> str:
        """Type `line` at the shell; return what it printed between two markers.

        The markers are computed by the shell (`$((1+1))`), so the echo of the typed
        line never matches them.
        """
        self.send(f"echo {tag}-$((1+1))-begin; {line}; echo {tag}-$((1+1))-end\n")
        self.read_until(rf"{tag}-2-begin\r\n")
        return self.read_until(rf"{tag}-2-end").removesuffix(f"{tag}-2-end").replace("\r", "")

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=DEFAULT_TIMEOUT)
        os.close(self.master)


@pytest.fixture
def terminal(ctr: Ctr) -> Iterator[Terminal]:
    term = Terminal(ctr.argv(["run", "-it", "--rm", "busybox", "sh"]), ctr.env(), 33, 111)
    try:
        yield term
    finally:
        term.close()


def test_tty_session_through_a_real_pty(terminal: Terminal) -> None:
    terminal.read_until(PROMPT)  # sh may flush what is typed before it sets up its editor
    assert terminal.command("tty", "a").strip() == "/dev/pts/0"
    assert terminal.command("stty size", "b").strip() == "33 111"
    assert terminal.command("echo $TERM", "c").strip() == "xterm"
    assert terminal.command("echo $$", "d").strip() == "1"

    terminal.resize(44, 122)  # the kernel sends SIGWINCH to shellctr, which copies the size
    attempt = iter(range(10_000))
    wait_for(lambda: terminal.command("stty size", f"e{next(attempt)}").strip() == "44 122",
             "the new window size to reach the container")

    terminal.send("exit 7\n")
    code = terminal.process.wait(timeout=DEFAULT_TIMEOUT)
    assert code == 7, terminal.seen.decode(errors="replace")


def test_tty_stdin_end_of_file_ends_the_session(ctr: Ctr) -> None:
    script = 'echo "ready-$((1+1))"; cat; echo "eof-$((40+2))"'
    term = Terminal(ctr.argv(["run", "-it", "--rm", "busybox", "sh", "-c", script]),
                    ctr.env(), 24, 80)
    try:
        # container output comes through shellctr's relay, which has set the terminal raw
        term.read_until(r"ready-2\r\n")
        term.send("line one\n")
        term.read_until(r"line one\r\nline one\r\n")  # the container pty's echo, cat's copy
        term.send("\x04")  # ^D at the start of a line: end of file for cat
        term.read_until(r"eof-42")
        assert term.process.wait(timeout=DEFAULT_TIMEOUT) == 0, term.seen.decode(errors="replace")
    finally:
        term.close()


def test_tty_hangup_ends_the_container_and_leaves_nothing(ctr: Ctr) -> None:
    term = Terminal(ctr.argv(["run", "-it", "--rm", "busybox", "sh"]), ctr.env(), 24, 80)
    try:
        term.read_until(PROMPT)
        os.close(term.master)  # the user's terminal goes away (the window is closed)
        term.master = os.open("/dev/null", os.O_RDONLY)  # for close()
        term.process.wait(timeout=DEFAULT_TIMEOUT)  # it must not hang, nor die half-way:
        assert ctr.container_ids() == []  # the monitor carried out --rm before it exited
    finally:
        term.close()


def test_tty_without_a_terminal_on_stdin_is_refused(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "-it", "busybox", "true", input="", trace=False)
    assert result.code == 1, str(result)  # as Docker's: the input device is not a TTY
    assert len(result.err_lines) == 1 and "TTY" in result.err, str(result)
