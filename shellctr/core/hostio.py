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



class Spawned:
    """A process `spawn` started: what the door's callers use of subprocess.Popen (pid,
    poll, wait, returncode; no pipes)."""

    stdin: IO[bytes] | None = None
    stdout: IO[bytes] | None = None
    stderr: IO[bytes] | None = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        """Its exit code (-N: killed by signal N), once it has ended."""
        import time

        for _ in range(500):
            if self.returncode is not None:
                break
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:  # another thread reaped it, and sets returncode
                time.sleep(0.01)
                continue
            self.returncode = os.waitstatus_to_exitcode(status)
        if self.returncode is None:  # reaped elsewhere: as Popen takes it
            self.returncode = 0
        return self.returncode


def spawn(argv: Argv, env: dict[str, str], stdio: tuple[object, object, object],
          pass_fds: tuple[int, ...], new_session: bool) -> Spawned:
    """Start `argv` with os.posix_spawn (subprocess and its imports cost each exec and
    start ~6 ms): stdio each None (ours), DEVNULL (-3) or an fd; `pass_fds` inherited, as
    are our stdio, and no other fd (as Popen's close_fds); signals we ignore (SIGPIPE) at
    their defaults again, as Popen restores them. A missing program: FileNotFoundError."""
    import signal

    actions: list[tuple[object, ...]] = []
    for target, source in enumerate(stdio):
        if source == -3:  # DEVNULL
            actions.append((os.POSIX_SPAWN_OPEN, target, os.devnull, os.O_RDWR, 0))
        elif source is not None:
            fd = source if isinstance(source, int) else source.fileno()  # type: ignore[attr-defined]
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
    # the same fd on both sides: posix_spawn clears its close-on-exec flag
    actions += [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in pass_fds]
    keep = {0, 1, 2, *pass_fds}
    # what we inherited ourselves (our own fds are close-on-exec) goes no further
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited_fds() if fd not in keep]
    program = str(argv[0])
    pid = os.posix_spawn(program, list(argv), env, file_actions=actions, setsid=new_session,
                         setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    return Spawned(pid)


def inherited_fds() -> list[int]:
    """Our open fds that a spawned process would inherit (not close-on-exec)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.get_inheritable(int(name)):
                found.append(int(name))
        except OSError:  # the fd of the listing itself, closed by now
            pass
    return found


def remove_tree(path: Path) -> None:
    """`rm --recursive PATH`: through directory fds, never following a symlink (an entry
    a container made is removed as itself); shutil.rmtree's safe walk without shutil's
    imports (zlib, bz2, lzma: ~3 ms of each rm)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def clear(directory: int) -> None:
        with os.scandir(directory) as entries:
            names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for name, is_dir in names:
            if is_dir:
                inner = os.open(name, flags, dir_fd=directory)
                try:
                    clear(inner)
                finally:
                    os.close(inner)
                os.rmdir(name, dir_fd=directory)
            else:
                os.unlink(name, dir_fd=directory)

    top = os.open(path, flags)
    try:
        clear(top)
    finally:
        os.close(top)
    os.rmdir(path)


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
