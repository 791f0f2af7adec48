"""The one door to the host: every command shellctr runs and every host file it writes.

Domain modules build `Cmd` values and hand them here. Each mutating action is
- traced: `--trace` prints `+ <shell line>` to stderr, exactly as it runs;
- or, under `--dry-run`, printed as a line of a runnable bash script and not done;
- paired with its undo when the caller passes a `Rollback`, so a failure unwinds in reverse.

Commands run through plumbum, imported on first use: `run` in the foreground needs
no host command besides the container's own process, which `spawn` starts with
subprocess directly (it needs a pty, inherited fds and signal forwarding), so the
start path does not pay plumbum's import.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shellctr.core.cmd import Argv, Cmd, path_arg, write_file_cmd
from shellctr.core.errors import HostCommandError

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, TextIO, TypeVar

    T = TypeVar("T")

Undo = Callable[[], None]


class Rollback:
    """Undo actions registered with each mutating step; unwound in reverse on failure."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._undos: list[tuple[str, Undo]] = []

    def push(self, what: str, undo: Undo) -> None:
        """Register `undo` for the step just done; `what` names it in messages."""
        self._undos.append((what, undo))

    def unwind(self) -> None:
        """Undo every registered step, newest first; report (not raise) failed undos."""
        while self._undos:
            what, undo = self._undos.pop()
            try:
                undo()
            except (OSError, HostCommandError) as err:
                self.host.warn(f"could not undo {what}: {err}")

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            self.unwind()


class Host:
    """Runs host commands and file writes; traces them or prints them as a script."""

    def __init__(
        self,
        *,
        trace: bool = False,
        dry_run: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.trace = trace
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._script_started = False
        # under --dry-run: paths the script would have created by now, so that later
        # steps that probe for them (e.g. teardown) are planned as if they existed
        self._planned: set[Path] = set()
        self._unplanned: set[Path] = set()  # ... and those it would have removed

    # -- showing ---------------------------------------------------------------
    def step(self, title: str) -> None:
        """Start a named group of commands (a `# title` comment in the dry-run script)."""
        if self.dry_run:
            self._script_header()
            self.out.write(f"\n# {title}\n")

    def note(self, text: str) -> None:
        """A comment in the dry-run script (e.g. what happens inside the namespaces)."""
        if self.dry_run:
            self._script_header()
            for line in text.splitlines():
                self.out.write(f"#   {line}\n" if line else "#\n")

    def show(self, cmd: Cmd) -> None:
        """Trace `cmd`, or add it to the dry-run script."""
        if self.dry_run:
            self._script_header()
            self.out.write(cmd.shell() + "\n")
        elif self.trace:
            try:
                self.err.write("+ " + cmd.shell() + "\n")
                self.err.flush()
            except OSError:
                pass  # stderr is gone (a hung-up terminal): the step itself must still run

    def warn(self, message: str) -> None:
        self.err.write(f"shellctr: warning: {message}\n")

    def _script_header(self) -> None:
        if not self._script_started:
            self._script_started = True
            self.out.write(
                "#!/usr/bin/env bash\n"
                "# What shellctr would do, printed by --dry-run; nothing was changed.\n"
                "set -euo pipefail\n"
            )

    def exists(self, path: Path) -> bool:
        """Whether `path` exists (or, under --dry-run, would exist by now)."""
        if self.dry_run and path in self._unplanned:
            return False
        return os.path.lexists(path) or (self.dry_run and path in self._planned)

    def _plan(self, path: Path) -> None:
        if self.dry_run:
            self._planned.add(path)
            self._unplanned.discard(path)

    def _unplan(self, path: Path) -> None:
        if self.dry_run:
            self._unplanned.add(path)
            self._planned.discard(path)

    def apply(self, cmd: Cmd, action: Callable[[], T]) -> T | None:
        """The funnel every mutation goes through: show `cmd`, then do `action`
        (unless --dry-run). Tests replace it to record commands and inject failures."""
        self.show(cmd)
        return None if self.dry_run else action()

    # -- commands --------------------------------------------------------------
    def run(
        self,
        argv: Argv,
        *,
        rollback: Rollback | None = None,
        undo: Argv | None = None,
        stdout: IO[bytes] | None = None,
    ) -> str:
        """Run a mutating host command and return its stdout; raise on failure.

        With `rollback`, the command `undo` is registered to reverse it. With `stdout`,
        the command writes there (binary, e.g. a tar) instead of being captured.
        """
        output = self.apply(Cmd(argv), lambda: self._execute(argv, stdout)) or ""
        if rollback is not None and undo is not None:
            def run_undo() -> None:
                self.run(undo)
            rollback.push(shlex.join(argv), run_undo)
        return output

    def probe(self, argv: Argv) -> tuple[int, str, str]:
        """Run a read-only command (also under --dry-run); return (code, out, err)."""
        return _plumbum_run(argv)

    # -- the start path: subprocess, not plumbum ---------------------------------
    # Networking runs on every `run`; plumbum's import (~80 ms) would double its cost.
    def run_quick(self, argv: Argv, *, input: str | None = None) -> str:
        """Like `run`, through subprocess; `input` is fed to stdin (shown as a here-doc)."""
        def execute() -> str:
            code, out, err = _subprocess_run(argv, input)
            if code != 0:
                detail = err.strip().splitlines()[-1] if err.strip() else f"exit status {code}"
                raise HostCommandError(f"{argv[0]} failed: {detail}",
                                       f"command: {shlex.join(argv)}")
            return out

        return self.apply(Cmd(argv, stdin=input), execute) or ""

    def probe_quick(self, argv: Argv) -> tuple[int, str, str]:
        """Like `probe`, through subprocess (for the start path)."""
        return _subprocess_run(argv, None)

    def _execute(self, argv: Argv, stdout: IO[bytes] | None = None) -> str:
        code, out, err = _plumbum_run(argv, stdout)
        if code != 0:
            detail = err.strip().splitlines()[-1] if err.strip() else f"exit status {code}"
            raise HostCommandError(f"{argv[0]} failed: {detail}", f"command: {shlex.join(argv)}")
        return out

    def spawn(self, argv: Argv, **popen_kwargs: Any) -> subprocess.Popen[bytes] | None:
        """Start a long-lived process (a container); None under --dry-run."""
        return self.apply(Cmd(argv), lambda: subprocess.Popen(argv, **popen_kwargs))

    def kill(self, pid: int, signum: int) -> None:
        """Send a signal (in-process), shown as the shell's `kill -s NAME PID`."""
        import signal

        def send() -> None:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # it ended on its own meanwhile: the signal has nothing left to do

        name = signal.Signals(signum).name.removeprefix("SIG")
        self.apply(Cmd(["kill", "-s", name, str(pid)]), send)

    # -- files: done in Python, shown as their shell equivalent -----------------
    def mkdir(
        self, path: Path, *, mode: int = 0o755, rollback: Rollback | None = None
    ) -> None:
        """Create one directory (its parent must exist); undo removes its tree."""
        def make() -> None:
            os.mkdir(path, mode)
            os.chmod(path, mode)  # mkdir(2) applies the umask; the mode must be exact

        self.apply(Cmd(["mkdir", f"--mode={mode:o}", path_arg(path)]), make)
        self._plan(path)
        if rollback is not None:
            rollback.push(f"mkdir {path}", lambda: self.remove_tree(path))

    def ensure_dir(self, path: Path, *, mode: int = 0o755) -> None:
        """Create `path` and missing parents, if absent (state dirs; never undone)."""
        if not path.is_dir() and not self.exists(path):
            self.apply(Cmd(["mkdir", "--parents", f"--mode={mode:o}", path_arg(path)]),
                       lambda: path.mkdir(mode=mode, parents=True, exist_ok=True))
            self._plan(path)

    def write_file(
        self,
        path: Path,
        text: str,
        *,
        mode: int = 0o644,
        rollback: Rollback | None = None,
        durable: bool = True,
    ) -> None:
        """Atomically replace `path` with `text`: temp file, fsync, rename, fsync dir.

        `durable=False`: no fsync (still atomic), for runtime files that a reboot makes
        moot anyway (network endpoints, a container's /etc files rewritten each start):
        each fsync costs ~8 ms here, and `run` writes several."""
        self.apply(write_file_cmd(path, text),
                   lambda: write_atomic(path, text.encode(), mode, durable))
        self._plan(path)
        if rollback is not None:
            rollback.push(f"write {path}", lambda: self.remove_file(path))

    def remove_file(self, path: Path) -> None:
        """Remove a file if present (probe first: teardown is idempotent)."""
        if self.exists(path):
            self.apply(Cmd(["rm", path_arg(path)]), lambda: os.unlink(path))
            self._unplan(path)

    def remove_tree(self, path: Path) -> None:
        """Remove a directory tree if present, without following symlinks out of it."""
        if self.exists(path):
            import shutil
            self.apply(Cmd(["rm", "--recursive", path_arg(path)]), lambda: shutil.rmtree(path))
            self._unplan(path)

    def rewrite_file(self, path: Path, text: str) -> None:
        """Overwrite `path` in place, keeping its inode: a file bind-mounted into a running
        container (its /etc/hosts) would go on showing the old one if replaced."""
        def rewrite() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
            with open(fd, "w") as stream:
                stream.write(text)

        self.apply(write_file_cmd(path, text), rewrite)

    def write_value(self, path: Path, text: str) -> None:
        """Write a kernel knob (a cgroup or /proc file): one plain write, as `echo`."""
        def write() -> None:
            with open(path, "w") as stream:
                stream.write(text)

        self.apply(Cmd(["echo", text], redirect=path_arg(path)), write)

    def make_cgroup(self, path: Path, *, rollback: Rollback | None = None) -> None:
        """Create a cgroup (a directory in cgroupfs), and its parents if missing, in one
        step: shellctr's own parent goes with its last container, and another container's
        end may take it away between two. The undo removes the cgroup, not the parents."""
        self.apply(Cmd(["mkdir", "--parents", path_arg(path)]), lambda: make_cgroup_dirs(path))
        self._plan(path)
        if rollback is not None:
            rollback.push(f"mkdir {path}", lambda: self.remove_cgroup(path))

    def remove_cgroup(self, path: Path) -> None:
        """Remove an empty cgroup: cgroupfs takes rmdir, not rm -r."""
        if self.exists(path):
            self.apply(Cmd(["rmdir", path_arg(path)]), lambda: os.rmdir(path))
            self._unplan(path)

    def rename(self, src: Path, dst: Path, *, rollback: Rollback | None = None) -> None:
        """Move `src` to `dst` (same filesystem); undo moves it back."""
        # --no-target-directory: if dst is a directory, fail instead of moving into it
        self.apply(Cmd(["mv", "--no-target-directory", path_arg(src), path_arg(dst)]),
                   lambda: os.rename(src, dst))
        self._plan(dst)
        if rollback is not None:
            rollback.push(f"mv {src}", lambda: self.rename(dst, src))

    # -- layers: whiteouts, links, files produced by a command ---------------------
    def make_whiteout(self, path: Path) -> None:
        """An overlayfs whiteout (a 0/0 character device): hides `path` of lower layers."""
        import stat

        self.apply(Cmd(["mknod", "--mode=0", path_arg(path), "c", "0", "0"]),
                   lambda: os.mknod(path, stat.S_IFCHR, os.makedev(0, 0)))
        self._plan(path)

    def set_xattr(self, path: Path, name: str, value: str) -> None:
        """Set an extended attribute, shown as `setfattr` (attr package)."""
        self.apply(Cmd(["setfattr", f"--name={name}", f"--value={value}", path_arg(path)]),
                   lambda: os.setxattr(path, name, value.encode(), follow_symlinks=False))

    def link(self, src: Path, dst: Path) -> None:
        """A hard link `dst` to the file `src` (never following a symlink)."""
        self.apply(Cmd(["ln", "--no-dereference", path_arg(src), path_arg(dst)]),
                   lambda: os.link(src, dst, follow_symlinks=False))
        self._plan(dst)

    def produce(self, argv: Argv, path: Path, action: Callable[[], T],
                rollback: Rollback | None = None) -> T | None:
        """Create the file `path` with `action`, shown as the command `argv > path` that
        writes the same bytes; the undo removes it (also when `action` fails half-way)."""
        if rollback is not None:
            rollback.push(f"write {path}", lambda: self.remove_file(path))
        result = self.apply(Cmd(argv, redirect=path_arg(path)), action)
        self._plan(path)
        return result


def _plumbum_run(argv: Sequence[str], stdout: IO[bytes] | None = None) -> tuple[int, str, str]:
    # Imported here: plumbum costs ~60 ms to import, and most verbs never need it.
    from plumbum import local

    command = local[argv[0]][list(argv[1:])]
    if stdout is None:
        code, out, err = command.run(retcode=None)
        return int(code), str(out), str(err)
    process = command.popen(stdout=stdout, stderr=subprocess.PIPE)
    _, err = process.communicate()  # plumbum decodes stderr to text
    return int(process.wait()), "", str(err)


def _subprocess_run(argv: Sequence[str], input: str | None) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              check=False)
    except FileNotFoundError as err:
        raise HostCommandError(f"{argv[0]} is not installed",
                               "see the README for the packages shellctr needs") from err
    return proc.returncode, proc.stdout, proc.stderr


def alive(pid: int, start: int) -> bool:
    """The process `pid` still runs and is the one that started at `start`."""
    return pid > 0 and process_start(pid) == start


def process_start(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat(5); fields[0] here is field 3


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
