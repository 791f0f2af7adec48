"""The Python the door runs for its own actions: the doing half of those `Host` methods
whose work is done in this process, not by a host command (an atomic write, a journal
line, a listening socket, a filter fed from a thread). Only core.host calls these; the
trace shows each as the shell command that does the same.

Imports: os only at the top (every `run` loads this module); the rest where it is used."""

from __future__ import annotations

import os

from shellctr.core.cmd import Argv
from shellctr.core.runner import ENVIRONMENT, not_installed

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import subprocess
    from pathlib import Path
    from typing import IO



def filter_stream(argv: Argv, source: IO[bytes]) -> IO[bytes]:
    """`argv` reading `source` (fed from a thread) on its stdin; its stdout to read."""
    import subprocess
    import threading

    try:
        process = subprocess.Popen(list(argv), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, env=ENVIRONMENT)
    except FileNotFoundError as missing:
        raise not_installed(argv[0]) from missing
    assert process.stdin is not None and process.stdout is not None
    stdin = process.stdin

    def feed() -> None:
        try:
            while chunk := source.read(1 << 20):
                stdin.write(chunk)
        except OSError:  # the filter stopped reading: its own error tells
            pass
        finally:
            stdin.close()
            source.close()

    threading.Thread(target=feed, daemon=True).start()
    return process.stdout


def communicate_bounded(process: subprocess.Popen[bytes], timeout: float,
                        ) -> tuple[int, str] | None:
    """`process`'s exit code and output, or None when it took longer than `timeout`
    (then SIGTERM, and SIGKILL after 5 s)."""
    import subprocess

    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()  # `exec` hands SIGTERM on to what it runs
        try:
            process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        return None
    return process.returncode, out.decode(errors="replace")


def append_rotating(path: Path, line: str, max_bytes: int) -> None:
    """Append `line` to `path` (made on first use), moved to PATH.1 past `max_bytes`;
    under an flock of PATH.lock, one write(2) with O_APPEND: parallel writers never
    interleave or lose a line."""
    import fcntl

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the run root, first use
    lock = os.open(path.with_name(path.name + ".lock"), flags, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fd = os.open(path, flags, 0o600)
        try:
            if os.fstat(fd).st_size + len(line) > max_bytes:
                os.replace(path, path.with_name(path.name + ".1"))
                os.close(fd)
                fd = os.open(path, flags, 0o600)
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    finally:
        os.close(lock)


def bind_unix(path: Path, mode: int, gid: int | None) -> socket.socket:
    """A unix socket listening at `path` (a stale one from a killed process replaced),
    `mode` exact, its group `gid` if given."""
    import socket

    if path.is_socket():
        path.unlink()  # left by a killed service: nothing listens on it any more
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, 0, gid)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def make_cgroup_dirs(path: Path) -> None:
    """mkdir the parents if missing, then the cgroup itself, which must be new; again if
    another container's end removed a parent in between."""
    for attempt in range(3):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path)
            return
        except FileNotFoundError:
            if attempt == 2:
                raise


def write_atomic(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write `data` to `path` so that readers see the old or the new file, never half."""
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    # O_EXCL|O_NOFOLLOW: never write through a symlink someone planted at the temp name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        if durable:
            os.fsync(stream.fileno())
    os.replace(tmp, path)  # replaces a symlink at `path`, never follows it
    if not durable:
        return
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
