"""The container's final step, run as PID 1 inside the new namespaces.

`unshare` starts this module with the host's Python (`python -I -S -c ENTRY TOP SPEC`), in
fresh mount, uts, ipc, pid and network namespaces. It reads SPEC (JSON, written by
container.py) and, in-process:

1. joins the cgroups; mounts the overlay rootfs, /proc, /sys (ro), a /dev tmpfs with the
   minimal device nodes, devpts (newinstance), /dev/shm, /dev/mqueue, the /etc files,
   and masks the paths Docker masks; sets the hostname, brings up loopback (rootfs.py);
2. `pivot_root`s into the rootfs and detaches the old root (never chroot);
3. allocates the container's own pseudo-terminal from its devpts instance (with -t);
4. drops capabilities to Docker's default set, switches user, sets no_new_privs, and
   `execve`s the command found on the container's PATH: the command becomes PID 1 (the
   lookups, capabilities, seccomp filter and sealed exec helper are in final.py).

`exec` takes steps 3 and 4 in C (`shellctr-exec --join`, exec.c), with no interpreter.

Only the standard library is used, and everything the final step touches is imported
before the pivot: nothing can be imported afterwards, and no host binary ever runs
inside the container's root. Each step carries its shell equivalent, which is what
`--trace` prints and `--dry-run` shows.

Results go back to shellctr over the status socket (SPEC's status_fd):
`ready` (with the pty master fd, for -t) just before exec, or an error
`{"message": ..., "code": 125|126|127}`.
"""

from __future__ import annotations

import _socket  # the C module: `socket` pulls in enum and selectors, ~3 ms per start
import errno
import fcntl
import os
import struct
import sys

from shellctr.inside import confine, jsonlite
from shellctr.inside.final import (
    DEFAULT_CAPS,
    DEFAULT_PATH,
    _read_table,
    drop_bounding_set,
    find_program,
    install_seccomp,
    read_seccomp,
    resolve_user,
    seal_exec_helper,
    set_capabilities,
)
from shellctr.inside.rootfs import Rootfs
from shellctr.inside.steps import (
    MNT_DETACH,
    MS_BIND,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    TIOCGPTN,
    TIOCSCTTY,
    TIOCSPTLCK,
    SetupError,
    Step,
    _check,
    _libc,
    _syscall,
    join_cgroup,
    mount,
    quote,
    sh,
)

TYPE_CHECKING = False  # typing itself is not imported: this runs on every start
if TYPE_CHECKING:
    from typing import Any

    Spec = dict[str, Any]  # init.json, as container.init_spec writes it


class Init:
    """Builds and runs the steps of SPEC."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rootfs = str(spec.get("rootfs", ""))
        self.trace = bool(spec.get("trace"))
        self.status_fd = spec.get("status_fd")
        self.pty_master: int | None = None
        self.pty_slave: str | None = None
        self.final: dict[str, Any] = {}  # resolved user, env and path of the command
        self.exec_helper: int | None = None  # the sealed memfd of shellctr-exec
        self.init_binary: int | None = None  # --init: the sealed memfd of its init
        self.seccomp_filter = b""  # the BPF program, built before the root switch

    # -- helpers ------------------------------------------------------------------
    def run(self, steps: list[Step]) -> None:
        for step in steps:
            if step.when is not None and not step.when():
                continue
            if self.trace:
                self.show("+ " + step.shell())
            step.action()

    def show(self, line: str) -> None:
        """A trace line: to shellctr over the status socket (our stderr may be the
        container's log), or to stderr when run by hand from a --dry-run script."""
        if isinstance(self.status_fd, int):
            self.send({"trace": line})
        else:
            os.write(2, (line + "\n").encode())

    def send(self, message: dict[str, object], fds: tuple[int, ...] = ()) -> None:
        if not isinstance(self.status_fd, int):
            return
        data = jsonlite.dumps(message).encode()
        sock = _socket.socket(fileno=os.dup(self.status_fd))
        try:
            rights = struct.pack(f"{len(fds)}i", *fds)
            ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)]
            sock.sendmsg([data], ancillary if fds else [])
        finally:
            sock.close()

    # -- before the pivot ---------------------------------------------------------
    def rootfs_steps(self) -> list[Step]:
        """Join the cgroups, then build the container's root (rootfs.py)."""
        return [*self.cgroup_steps(), *Rootfs(self.spec).steps()]

    def cgroup_steps(self) -> list[Step]:
        """Join the container's cgroups: every process it forks is then inside too."""
        return [join_cgroup(f"{path}/cgroup.procs") for path in self.spec.get("cgroups", [])]

    # -- the switch ---------------------------------------------------------------
    def pivot_steps(self) -> list[Step]:
        rootfs = self.rootfs

        def pivot() -> None:
            os.chdir(rootfs)
            # pivot_root(".", "."): the old root ends up stacked on the new one ...
            _check(_syscall("pivot_root", b".", b"."), "pivot_root")
            # ... and is detached, so nothing of the host's tree stays reachable
            _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
            os.chdir("/")

        return [Step(lambda: f"cd {quote(rootfs)} && pivot_root . . && umount --lazy . "
                     "&& cd /", pivot)]

    # -- after the pivot ----------------------------------------------------------
    def console_steps(self) -> list[Step]:
        if not self.spec.get("tty"):
            return []

        def open_pty() -> None:
            master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
            number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
            self.pty_master, self.pty_slave = master, f"/dev/pts/{number}"
            confine.set_window_size(master, self.spec.get("winsize"))  # before the command

        steps = [Step(lambda: "exec {pty}<>/dev/pts/ptmx  # the container's own pseudo-terminal",
                      open_pty)]
        steps.append(Step(
                lambda: sh("mount", "--bind", self.pty_slave or "/dev/pts/0", "/dev/console"),
                lambda: mount(self.pty_slave or "", "/dev/console", None, MS_BIND).action()))
        return steps

    def resolve(self) -> None:
        """User, groups, HOME, workdir and the command, from the container's own files."""
        spec = self.spec
        uid, gid, groups, home = resolve_user(spec.get("user") or "")
        env = dict(item.split("=", 1) for item in spec["env"])
        env.setdefault("HOME", home)
        if spec.get("group_add"):  # --group-add
            added = confine.extra_groups(spec["group_add"], _read_table("/etc/group"))
            groups = sorted(set(groups) | set(added))
        self.final = {"uid": uid, "gid": gid, "groups": groups, "env": env,
                      "argv": list(spec["argv"]), "cwd": spec.get("cwd") or "/"}

    def workdir_step(self) -> Step:
        def do() -> None:
            workdir = str(self.final["cwd"])
            if not os.path.isdir(workdir):
                try:
                    os.makedirs(workdir, 0o755)
                except FileExistsError as err:  # a file (or a file on the way) is there
                    raise SetupError(f"the working directory {workdir} is not a directory "
                                     "in the image") from err
            os.chdir(workdir)
        return Step(lambda: sh("mkdir", "--parents", str(self.spec.get("cwd") or "/")), do)

    def exec_shell(self) -> str:
        """The shell equivalent of dropping privileges and exec'ing the command.

        Before `resolve` (in --dry-run) the user is shown as given, not yet looked up.
        """
        spec, final = self.spec, self.final
        if final:
            user = [f"--reuid={final['uid']}", f"--regid={final['gid']}",
                    f"--groups={','.join(map(str, final['groups']))}"]
            env, argv, cwd = final["env"], final["argv"], final["cwd"]
        else:
            user = [f"--reuid={spec.get('user') or 0}", "--init-groups"]
            env = dict(item.split("=", 1) for item in spec["env"])
            argv, cwd = spec["argv"], spec.get("cwd") or "/"
        if spec.get("init_source"):  # --init, run from its sealed memfd copy
            argv = [f"/proc/self/fd/{self.init_binary or 'N'}", "--init", argv[0], "--", *argv]
        names = [name for _, name in spec.get("caps", [])] if "caps" in spec else DEFAULT_CAPS
        keep = ",".join(["-all", *("+" + cap for cap in names)])
        line = sh(
            "setpriv", f"--bounding-set={keep}", "--inh-caps=-all", *user,
            *(["--no-new-privs"] if spec.get("no_new_privs", True) else []), "--",
            "env", "--ignore-environment", f"--chdir={cwd}",
            *(f"{key}={value}" for key, value in env.items()), *argv,
        )
        return line

    def final_steps(self) -> list[Step]:
        """The seccomp note (util-linux 2.38's setpriv has no --seccomp-filter: the
        profile the filter is built from is named instead), then the exec itself."""
        steps = []
        if self.spec.get("seccomp_filter"):
            profile, program = self.spec.get("seccomp_profile"), self.spec["seccomp_filter"]
            steps.append(Step(lambda: (
                f"# seccomp: the filter built from {profile} for these capabilities "
                f"({program}) is loaded last, then shellctr-exec (a sealed memfd copy) "
                "execs the command"),
                lambda: None))
        return [*steps, Step(self.exec_shell, self.exec_command)]

    def exec_command(self) -> None:
        final = self.final
        argv, env = final["argv"], final["env"]
        program = find_program(argv[0], env.get("PATH", DEFAULT_PATH))
        if self.init_binary is not None:  # --init: PID 1 is the init, the command its child
            program, argv = confine.init_argv(f"/proc/self/fd/{self.init_binary}", program,
                                              argv)
        spec = self.spec
        no_new_privs = bool(spec.get("no_new_privs", True))
        seccomp = self.seccomp_filter
        if seccomp and not no_new_privs:
            # without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the drop
            install_seccomp(seccomp)
        keep = drop_bounding_set(spec)
        # still with every capability: CAP_SETUID/SETGID may be among the dropped ones
        os.setgroups(final["groups"])
        os.setgid(final["gid"])
        os.setuid(final["uid"])  # from root to a user: the kernel clears the remaining caps
        if final["uid"] == 0:
            set_capabilities(keep)
        if no_new_privs:
            _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        if self.pty_slave is not None:
            os.setsid()
            slave = os.open(self.pty_slave, os.O_RDWR)
            fcntl.ioctl(slave, TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.close(slave)
        self.close_fds()
        os.umask(0o022)
        fds = (self.pty_master,) if self.pty_master is not None else ()
        self.send({"ready": True}, fds)
        if self.pty_master is not None:
            os.close(self.pty_master)
        if seccomp and no_new_privs:
            install_seccomp(seccomp)  # last: from here on only the exec
        helper = self.exec_helper
        if helper is None:  # a spec written by hand, without the helper
            try:
                os.execve(program, argv, env)
            except OSError as err:
                code = 127 if err.errno == errno.ENOENT else 126
                raise SetupError(f"exec {program}: {err.strerror}", code) from err
        status = self.status_fd if isinstance(self.status_fd, int) else -1
        if status >= 0:
            os.set_inheritable(status, True)  # the helper reports a failed exec on it
        try:
            # the sealed copy of shellctr-exec, which execs the command (seal_exec_helper)
            os.execve(helper, ["shellctr-exec", str(status), program, *argv], env)
        except OSError as err:
            raise SetupError(f"exec {program}: shellctr-exec: {err.strerror}") from err

    def close_fds(self) -> None:
        """Nothing of shellctr's stays open in the container but the status socket."""
        keep = {0, 1, 2}
        if self.exec_helper is not None:
            keep.add(self.exec_helper)  # close-on-exec: gone once it runs
        if self.init_binary is not None:
            keep.add(self.init_binary)  # --init: what the helper execs
        if isinstance(self.status_fd, int):
            keep.add(self.status_fd)
            os.set_inheritable(self.status_fd, False)  # closed by a successful exec
        if self.pty_master is not None:
            keep.add(self.pty_master)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass  # the fd of the listdir itself, already closed

    def all_steps(self) -> list[Step]:
        """Every step, for --dry-run (user and command shown as given)."""
        return [*self.rootfs_steps(), *self.pivot_steps(), *self.console_steps(),
                Step(lambda: sh("mkdir", "--parents", str(self.spec.get("cwd") or "/")),
                     lambda: None),
                *confine.ulimit_step(self.spec.get("ulimits") or []),
                *[Step(step.shell, lambda: None) for step in self.final_steps()]]

    def prepare_final_step(self) -> None:
        """Before anything of the container is entered: this process (the host's
        interpreter) is made undumpable, so the container's processes cannot open its
        /proc/N/exe or fds, and the sealed copy of shellctr-exec is made while the host's
        file is still in reach (issue 13, defect 1)."""
        _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
        if self.spec.get("exec_helper"):
            self.exec_helper = seal_exec_helper(str(self.spec["exec_helper"]))
        if self.spec.get("init_source"):  # --init's PID 1
            self.init_binary = seal_exec_helper(str(self.spec["init_source"]),
                                                "shellctr-init", cloexec=False)
        if self.spec.get("seccomp_filter"):  # compiled by shellctr (engine/confine.py)
            self.seccomp_filter = read_seccomp(str(self.spec["seccomp_filter"]))

    def main(self) -> None:
        self.prepare_final_step()
        os.umask(0)  # device nodes and dirs get exactly the modes asked for
        self.run(self.rootfs_steps())
        self.run(self.pivot_steps())
        self.run(self.console_steps())
        self.resolve()
        self.run([self.workdir_step(), *confine.ulimit_step(self.spec.get("ulimits") or [])])
        self.run(self.final_steps())


def main(spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as stream:
        spec = jsonlite.loads(stream.read())
    init = Init(spec)
    try:
        init.main()
    except SetupError as err:
        message, code = str(err), err.code
    except OSError as err:
        message, code = f"container setup failed: {err}", 125
    init.send({"message": message, "code": code})
    if not isinstance(init.status_fd, int):
        sys.stderr.write(f"shellctr-init: {message}\n")
    sys.exit(code)


from shellctr.inside import ENTRY as ENTRY  # noqa: E402  (how unshare starts this module)

if __name__ == "__main__":
    main(sys.argv[1])
