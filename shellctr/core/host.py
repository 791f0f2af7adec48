"""The one door to the host: every command shellctr runs and every host file it writes.

Domain modules build `Cmd` values and hand them here. Each mutating action is
- traced: `--trace` prints `+ <shell line>` to stderr, exactly as it runs;
- or, under `--dry-run`, printed as a line of a runnable bash script and not done;
- paired with its undo when the caller passes a `Rollback`, so a failure unwinds in reverse.

Every command runs through one executor (`execute`) with a pinned environment
(`LC_ALL=C` and a fixed `PATH`, nothing of the caller's: parsed output must not depend on
it), stdin from /dev/null unless the step feeds it, and one way of reporting a failure or a
missing tool. plumbum, imported on first use, runs them; the verbs on the start path (`run`,
`exec`, `rm`... see cli.main.LEAN_VERBS) make their Host `lean`, and the same executor then
runs the command with the standard library's subprocess: plumbum's import (~70 ms) would
double their cost. Same tracing, same errors, same argv either way.

What the host *is* (files, links, mounts, routes, processes) is read through `facts`
(core.facts), which `--dry-run` keeps up to date with the plan.
"""

from __future__ import annotations

import errno
import os
import sys

from shellctr.core import hostio
from shellctr.core.cmd import Argv, Cmd, path_arg, write_file_cmd
from shellctr.core.errors import HostCommandError
from shellctr.core.facts import Facts
from shellctr.core.runner import ENVIRONMENT, execute, not_installed

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import subprocess
    from collections.abc import Callable
    from pathlib import Path
    from typing import IO, Any, BinaryIO, TextIO, TypeVar

    T = TypeVar("T")
    Undo = Callable[[], None]
    # a spawned process: subprocess's, or (no pipes) the door's own lean one
    Process = subprocess.Popen[bytes] | hostio.Spawned

# shlex, signal and pathlib are imported where they are used: each imports `re` or `enum`,
# which the read verbs (no command run, no signal sent) skip
# a spawned process's stdio that goes nowhere: subprocess.DEVNULL, whose import (with
# threading, selectors, signal) the verbs that run no command do not pay for
DEVNULL = -3
PIPE = -1  # subprocess.PIPE: a spawned process's stdio that its spawner reads or writes
STDOUT = -2  # subprocess.STDOUT: stderr into the same pipe as stdout


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
        facts: Facts | None = None,
        lean: bool = False,
    ) -> None:
        self.trace = trace
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.facts = facts or Facts()
        self.lean = lean  # run commands with subprocess, not plumbum (see the docstring)
        self.facts.lean = lean
        self._script_started = False
        self._script_status = False  # the script ends with a foreground process's status
        # the reliability tests' hooks (tests/integration/test_reliability_kill.py): after
        # its k-th host command this process SIGKILLs itself / its k-th command fails.
        # Never inherited: every command shellctr spawns gets the pinned ENVIRONMENT.
        self._steps = 0
        self._kill_after = int(os.environ.get("SHELLCTR_TEST_KILL_AFTER") or 0)
        self._fail_at = int(os.environ.get("SHELLCTR_TEST_FAIL_AT") or 0)

    # -- showing ---------------------------------------------------------------
    def step(self, title: str) -> None:
        """Start a named group of commands (a `# title` comment in the dry-run script)."""
        if self.dry_run:
            self._script_header()
            self.out.write(f"\n# {title}\n")

    def note(self, text: str | Callable[[], str]) -> None:
        """A comment in the dry-run script (e.g. what happens inside the namespaces);
        given a function, it is called only when there is a script to write."""
        if self.dry_run:
            self._script_header()
            for line in (text() if callable(text) else text).splitlines():
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

    def show_request(self, cmd: Cmd) -> None:
        """A read-only network request (a registry's manifest, a token) as its `curl`
        line: traced as it is made; in a --dry-run script, a comment (it was made to
        plan the script, which need not make it again)."""
        if self.dry_run:
            self.note(f"read: {cmd.shell()}")
        elif self.trace:
            self.show(cmd)

    def warn(self, message: str) -> None:
        self.err.write(f"shellctr: warning: {message}\n")

    def result(self, text: str) -> None:
        """A verb's result for stdout (an id, a name): under --dry-run stdout is the
        script, so the result is a comment in it."""
        if self.dry_run:
            self.note(f"result: {text}")
        else:
            print(text, file=self.out, flush=True)

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
        return self.facts.exists(path)

    def apply(self, cmd: Cmd, action: Callable[[], T],
              effect: Callable[[Facts], None] | None = None) -> T | None:
        """The funnel every mutation goes through: show `cmd`, then do `action` (unless
        --dry-run, which applies the step's `effect` to the facts instead). Tests replace
        it to record commands and inject failures."""
        self.show(cmd)
        if self.dry_run:
            if effect is not None:
                effect(self.facts)
            return None
        if not (self._kill_after or self._fail_at):
            return action()
        self._steps += 1
        if self._steps == self._fail_at:
            raise HostCommandError(f"{cmd.argv[0]} failed: injected failure (SHELLCTR_TEST_"
                                   f"FAIL_AT={self._fail_at})")
        try:
            return action()
        finally:
            if self._steps == self._kill_after:
                os.kill(os.getpid(), 9)  # SIGKILL

    # -- commands --------------------------------------------------------------
    def run(
        self,
        argv: Argv,
        *,
        input: str | None = None,
        stdout: IO[bytes] | None = None,
        rollback: Rollback | None = None,
        undo: Argv | None = None,
        effect: Callable[[Facts], None] | None = None,
    ) -> str:
        """Run a mutating host command and return its stdout; raise on failure.

        `input` is fed to its stdin (shown as a here-doc); with `stdout`, the command
        writes there (binary, e.g. a tar) instead of being captured. With `rollback`, the
        command `undo` is registered to reverse it. `effect`: what the command changes,
        for --dry-run's facts (e.g. a link it adds).
        """
        def execute_checked() -> str:
            return self.checked(argv, execute(argv, input, stdout, self.lean))

        output = self.apply(Cmd(argv, stdin=input), execute_checked, effect) or ""
        if rollback is not None and undo is not None:
            def run_undo() -> None:
                self.run(undo)
            import shlex

            rollback.push(shlex.join(argv), run_undo)
        return output

    def probe(self, argv: Argv, input: str | None = None) -> tuple[int, str, str]:
        """Run a read-only command (also under --dry-run); return (code, out, err).
        `input`: fed to its stdin (a credential helper's question)."""
        return execute(argv, input, None, self.lean)

    def probe_stream(self, argv: Argv, source: IO[bytes]) -> IO[bytes]:
        """A read-only filter (also under --dry-run, as `probe`): `source` fed to `argv`'s
        stdin from a thread, its stdout to read (a zstd layer scanned as it downloads)."""
        return hostio.filter_stream(argv, source)

    @staticmethod
    def checked(argv: Argv, result: tuple[int, str, str]) -> str:
        """A command's stdout, or its failure as one line: the program and its last
        line of stderr (the command itself is in the hint)."""
        code, out, err = result
        if code != 0:
            lines = err.strip().splitlines()
            # a full disk is what to say, not tar's "Exiting with failure status" after it
            full = [line for line in lines if "No space left on device" in line]
            detail = (full or lines)[-1] if lines else f"exit status {code}"
            import shlex

            raise HostCommandError(f"{argv[0]} failed: {detail}", f"command: {shlex.join(argv)}")
        return out

    def spawn(self, argv: Argv, *, background: bool = False, env: dict[str, str] | None = None,
              **popen_kwargs: Any) -> Process | None:
        """Start a long-lived process (a container's monitor), in the pinned environment,
        or in exactly `env` (shown as `env --ignore-environment K=V... argv`, which runs
        the same: an exec'd command's environment, kept out of its argv). Its stdio and
        fds as subprocess.Popen takes them; without pipes or a cwd (the monitor and
        shellctr-exec go to / themselves) it is started without the subprocess module.

        None under --dry-run, whose script runs it as shellctr would: `background`, in a
        session of its own with no stdio of the script's (`setsid --fork`); else in the
        foreground, its exit status kept for the script's own (`end_script`)."""
        environment = ENVIRONMENT if env is None else env

        def start() -> Process:
            stdio = (popen_kwargs.get("stdin"), popen_kwargs.get("stdout"),
                     popen_kwargs.get("stderr"))
            try:
                if (set(popen_kwargs) <= {"stdin", "stdout", "stderr", "pass_fds",
                                          "start_new_session"}
                        and PIPE not in stdio and STDOUT not in stdio):
                    return hostio.spawn(argv, environment, stdio,
                                        tuple(popen_kwargs.get("pass_fds", ())),
                                        bool(popen_kwargs.get("start_new_session")))
                import subprocess

                return subprocess.Popen(argv, env=environment, **popen_kwargs)
            except FileNotFoundError as err:
                raise not_installed(argv[0]) from err

        shown = argv if env is None else [
            "env", "--ignore-environment", *(f"{key}={value}" for key, value in env.items()),
            *argv]
        if not self.dry_run:
            return self.apply(Cmd(shown), start)
        if background:
            return self.apply(Cmd(["setsid", "--fork", *shown], detached=True), start)
        self._script_status = True  # set -e must not end the script before what follows
        return self.apply(Cmd(shown, keep_status=True), start)

    def run_bounded(self, argv: Argv, timeout: float) -> tuple[int, str] | None:
        """Run a command to its end with its stdout and stderr together, for at most
        `timeout` seconds: (exit code, output), or None when it took longer (it was sent
        SIGTERM, then SIGKILL after 5 s). A health check's `exec` (engine/health.py).
        Under --dry-run: shown, and taken as a success."""
        process = self.spawn(argv, stdin=DEVNULL, stdout=PIPE, stderr=STDOUT,
                             start_new_session=True, cwd="/")
        if process is None:
            return 0, ""
        assert not isinstance(process, hostio.Spawned)  # pipes: subprocess's
        return hostio.communicate_bounded(process, timeout)

    def handed_fd(self, fd: int) -> int | None:
        """An fd of this process that a spawned process inherits (a socket back to us),
        as the child will know it; None under --dry-run: a script has no such fd."""
        return None if self.dry_run else fd

    def end_script(self) -> None:
        """The script's last line: a foreground process's exit status is the script's."""
        if self.dry_run and self._script_status:
            self.out.write('exit "$status"\n')

    def kill(self, pid: int, signum: int,
             effect: Callable[[Facts], None] | None = None) -> None:
        """Send a signal (in-process), shown as the shell's `kill -s NAME PID`. Under
        --dry-run, SIGTERM and SIGKILL end it in the plan, with `effect` besides."""
        import signal

        def send() -> None:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # it ended on its own meanwhile: the signal has nothing left to do

        def ended(facts: Facts) -> None:
            if signum in (signal.SIGTERM, signal.SIGKILL):  # the plan takes it as gone
                facts.plan_end(pid)
            if effect is not None:
                effect(facts)

        name = signal.Signals(signum).name.removeprefix("SIG")
        self.apply(Cmd(["kill", "-s", name, str(pid)]), send, ended)

    # -- files: done in Python, shown as their shell equivalent -----------------
    def mkdir(
        self, path: Path, *, mode: int = 0o755, rollback: Rollback | None = None
    ) -> None:
        """Create one directory (its parent must exist); undo removes its tree."""
        def make() -> None:
            os.mkdir(path, mode)
            os.chmod(path, mode)  # mkdir(2) applies the umask; the mode must be exact

        self.apply(Cmd(["mkdir", f"--mode={mode:o}", path_arg(path)]), make,
                   lambda facts: facts.plan_dir(path))
        if rollback is not None:
            rollback.push(f"mkdir {path}", lambda: self.remove_tree(path))

    def ensure_dir(self, path: Path, *, mode: int = 0o755) -> None:
        """Create `path` and missing parents, if absent (state dirs; never undone)."""
        if not self.facts.is_dir(path) and not self.exists(path):
            self.apply(Cmd(["mkdir", "--parents", f"--mode={mode:o}", path_arg(path)]),
                       lambda: path.mkdir(mode=mode, parents=True, exist_ok=True),
                       lambda facts: facts.plan_dir(path))

    def write_file(
        self,
        path: Path,
        text: str,
        *,
        mode: int = 0o644,
        rollback: Rollback | None = None,
        durable: bool = True,
        secrets: tuple[str, ...] = (),
    ) -> None:
        """Atomically replace `path` with `text`: temp file, fsync, rename, fsync dir.
        `secrets`: words of `text` shown as *** (a credentials file's).

        `durable=False`: no fsync (still atomic), for runtime files that a reboot makes
        moot anyway (network endpoints, a container's /etc files rewritten each start):
        each fsync costs ~8 ms here, and `run` writes several."""
        shown = write_file_cmd(path, text)
        shown.secrets = secrets
        self.apply(shown, lambda: hostio.write_atomic(path, text.encode(), mode, durable),
                   lambda facts: facts.plan_write(path, text.encode()))
        if rollback is not None:
            rollback.push(f"write {path}", lambda: self.remove_file(path))

    def append_journal(self, path: Path, line: str, max_bytes: int) -> None:
        """Append one line to a journal (the events journal, engine/events.py), rotating
        it to PATH.1 past `max_bytes`; under an flock of PATH.lock, one write(2) with
        O_APPEND, so parallel writers never interleave or lose a line. Not traced (nor its
        directory, made on first use) and not
        done under --dry-run: the journal records the changes the trace shows (it is
        shellctr's account of them, as its own log), not a change of its own.

        (No fsync: a journal line lost in a crash is an event, not state.)"""
        if self.dry_run:
            return
        hostio.append_rotating(path, line, max_bytes)

    def remove_file(self, path: Path) -> None:
        """Remove a file if present (probe first: teardown is idempotent)."""
        if self.exists(path):
            self.apply(Cmd(["rm", path_arg(path)]), lambda: os.unlink(path),
                       lambda facts: facts.plan_remove(path))

    def listen_unix(self, path: Path, *, mode: int = 0o660, group: str | None = None,
                    rollback: Rollback | None = None) -> socket.socket:
        """A listening unix socket at `path` (a stale one from a killed process is
        replaced), `mode` exact, group-owned by `group` if that group exists; shown as
        the commands that make the same file. Undo removes it."""
        import grp

        gid = None
        if group is not None:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                group = None  # no such group: root's only

        if self.dry_run:
            raise HostCommandError("a service cannot listen under --dry-run",
                                   "run it without --dry-run")
        # the socket file itself is made by bind(2): shown as the mode and group it gets
        self.show(Cmd(["chmod", f"{mode:o}", path_arg(path)]))
        if group is not None:
            self.show(Cmd(["chgrp", group, path_arg(path)]))
        sock = hostio.bind_unix(path, mode, gid)
        if rollback is not None:
            rollback.push(f"listen on {path}", lambda: self.remove_file(path))
        return sock

    def remove_tree(self, path: Path) -> None:
        """Remove a directory tree if present, without following symlinks out of it."""
        if self.exists(path):
            self.apply(Cmd(["rm", "--recursive", path_arg(path)]),
                       lambda: hostio.remove_tree(path), lambda facts: facts.plan_remove(path))

    def rewrite_file(self, path: Path, text: str) -> None:
        """Overwrite `path` in place, keeping its inode: a file bind-mounted into a running
        container (its /etc/hosts, resolv.conf) would go on showing the old one if
        replaced. Never empty or half old, half new for a reader inside: one write of the
        whole text at offset 0, padded with newlines (blank lines, which hosts and
        resolv.conf readers skip) to the old length, then the file cut to the text."""
        def rewrite() -> None:
            data = text.encode()
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                padded = data + b"\n" * (os.fstat(fd).st_size - len(data))
                done = 0
                while done < len(padded):
                    done += os.pwrite(fd, padded[done:], done)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)

        self.apply(write_file_cmd(path, text), rewrite,
                   lambda facts: facts.plan_write(path, text.encode()))

    def write_value(self, path: Path, text: str,
                    effect: Callable[[Facts], None] | None = None) -> None:
        """Write a kernel knob (a cgroup or /proc file): one plain write, as `echo`.
        `effect`: what else the kernel then shows (under --dry-run, for the facts)."""
        def write() -> None:
            with open(path, "w") as stream:
                stream.write(text)

        def planned(facts: Facts) -> None:
            facts.plan_write(path, text.encode() + b"\n")
            if effect is not None:
                effect(facts)

        self.apply(Cmd(["echo", text], redirect=path_arg(path)), write, planned)

    def make_cgroup(self, path: Path, *, rollback: Rollback | None = None) -> None:
        """Create a cgroup (a directory in cgroupfs), and its parents if missing, in one
        step: shellctr's own parent goes with its last container, and another container's
        end may take it away between two. The undo removes the cgroup, not the parents."""
        self.apply(Cmd(["mkdir", "--parents", path_arg(path)]),
                   lambda: hostio.make_cgroup_dirs(path), lambda facts: facts.plan_dir(path))
        if rollback is not None:
            rollback.push(f"mkdir {path}", lambda: self.remove_cgroup(path))

    def remove_cgroup(self, path: Path, *, if_unused: bool = False) -> None:
        """Remove an empty cgroup: cgroupfs takes rmdir, not rm -r.

        `if_unused`: a parent other shellctr processes create children in at any moment;
        removed only if it has none now (busy, or already gone, it is left). A --dry-run
        script leaves it: by the time it runs, another container may be using it."""
        if if_unused and self.dry_run:
            self.note(f"{path} is left: other containers may use it by then")
            return
        if not self.exists(path):
            return
        try:
            self.apply(Cmd(["rmdir", path_arg(path)]), lambda: os.rmdir(path),
                       lambda facts: facts.plan_remove(path))
        except OSError as err:
            if not if_unused or err.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT):
                raise

    def rename(self, src: Path, dst: Path, *, rollback: Rollback | None = None) -> None:
        """Move `src` to `dst` (same filesystem); undo moves it back."""
        # --no-target-directory: if dst is a directory, fail instead of moving into it
        def moved(facts: Facts) -> None:
            facts.plan_move(src, dst)

        self.apply(Cmd(["mv", "--no-target-directory", path_arg(src), path_arg(dst)]),
                   lambda: os.rename(src, dst), moved)
        if rollback is not None:
            rollback.push(f"mv {src}", lambda: self.rename(dst, src))

    # -- layers: whiteouts, links, files produced by a command ---------------------
    def make_whiteout(self, path: Path) -> None:
        """An overlayfs whiteout (a 0/0 character device): hides `path` of lower layers."""
        import stat

        self.apply(Cmd(["mknod", "--mode=0", path_arg(path), "c", "0", "0"]),
                   lambda: os.mknod(path, stat.S_IFCHR, os.makedev(0, 0)),
                   lambda facts: facts.plan_write(path, b""))

    def set_xattr(self, path: Path, name: str, value: str) -> None:
        """Set an extended attribute, shown as `setfattr` (attr package)."""
        self.apply(Cmd(["setfattr", f"--name={name}", f"--value={value}", path_arg(path)]),
                   lambda: os.setxattr(path, name, value.encode(), follow_symlinks=False))

    def link(self, src: Path, dst: Path) -> None:
        """A hard link `dst` to the file `src` (never following a symlink)."""
        self.apply(Cmd(["ln", "--no-dereference", path_arg(src), path_arg(dst)]),
                   lambda: os.link(src, dst, follow_symlinks=False),
                   lambda facts: facts.plan_write(dst, b""))

    def produce(self, argv: Argv, path: Path, write: Callable[[BinaryIO], T],
                rollback: Rollback | None = None, ready: Path | None = None) -> T | None:
        """Create the file `path` (new: never through a planted symlink) and let `write`
        fill it, shown as the command `argv > path` that writes the same bytes; the undo
        removes it (also when `write` fails half-way). `ready`: a file that holds those
        bytes already (a layer decompressed while it downloaded) is renamed instead."""
        if rollback is not None:
            rollback.push(f"write {path}", lambda: self.remove_file(path))

        def action() -> T | None:
            if ready is not None:
                os.rename(ready, path)
                return None
            with self.new_file(path) as out:
                return write(out)

        return self.apply(Cmd(argv, redirect=path_arg(path)), action,
                          lambda facts: facts.plan_write(path, b""))

    def new_file(self, path: Path, mode: int = 0o644) -> BinaryIO:
        """A new file (O_EXCL: never one someone planted, nor through a symlink) for the
        engine's Python to fill, inside an action the door shows (`apply`, `produce`)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        return os.fdopen(fd, "wb")

    def pipe_into(self, argv: Argv, out: BinaryIO) -> None:
        """Inside an action the door shows already (`produce`): run `argv` with its
        stdout into `out`, not shown again; a failure is an error as for `run`."""
        out.flush()
        self.checked(argv, execute(argv, None, out, self.lean))


    def scratch_file(self, argv: Argv, path: Path, write: Callable[[BinaryIO], object],
                     ) -> ScratchFile:
        """A temporary file the verb itself reads, made with `write` (shown as `argv >
        path`), removed when the `with` block ends. Under --dry-run, where the script
        makes it with `argv`, the verb's own copy is an anonymous memfd that changes no
        directory: open it at `facts.readable(path)`."""
        if not self.dry_run:
            try:
                self.produce(argv, path, write)
            except BaseException:  # unreadable input, or the command was killed
                self.remove_file(path)
                raise
            return ScratchFile(self, path, None)
        self.produce(argv, path, write)  # shown only
        fd = os.memfd_create("shellctr-scratch", os.MFD_CLOEXEC)
        try:
            with os.fdopen(os.dup(fd), "wb") as out:
                write(out)
        except BaseException:
            os.close(fd)
            raise
        from pathlib import Path

        self.facts.plan_stand_in(path, Path(f"/proc/self/fd/{fd}"))
        return ScratchFile(self, path, fd)


class ScratchFile:
    """`with host.scratch_file(...) as path:` the file, removed at the end."""

    def __init__(self, host: Host, path: Path, memfd: int | None) -> None:
        self.host, self.path, self.memfd = host, path, memfd

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.host.remove_file(self.path)
        if self.memfd is not None:  # --dry-run: the verb's own copy
            self.host.facts.plan_stand_in(self.path, None)
            os.close(self.memfd)
