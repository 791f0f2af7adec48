"""The container's final step, run as PID 1 inside the new namespaces.

`unshare` starts this module with the host's Python (`python -I -S -c ENTRY TOP SPEC`), in
fresh mount, uts, ipc, pid and network namespaces. It reads SPEC (JSON, written by
container.py) and, in-process:

1. mounts the overlay rootfs, /proc, /sys (ro), a /dev tmpfs with the minimal device
   nodes, devpts (newinstance), /dev/shm, /dev/mqueue, the /etc files, and masks the
   paths Docker masks;
2. sets the hostname, brings up loopback;
3. `pivot_root`s into the rootfs and detaches the old root (never chroot);
4. allocates the container's own pseudo-terminal from its devpts instance (with -t);
5. drops capabilities to Docker's default set, switches user, sets no_new_privs, and
   `execve`s the command found on the container's PATH: the command becomes PID 1.

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
import ctypes  # (steps imports it too)
import errno
import fcntl
import os
import stat
import struct
import sys

from shellctr.inside import confine, jsonlite
from shellctr.inside.steps import (
    IFF_UP,
    LINUX_CAPABILITY_VERSION_3,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REMOUNT,
    MS_STRICTATIME,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAPBSET_DROP,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_SECCOMP,
    SECCOMP_MODE_FILTER,
    SIOCGIFFLAGS,
    SIOCSIFFLAGS,
    TIOCGPTN,
    TIOCSCTTY,
    TIOCSPTLCK,
    SetupError,
    Step,
    _check,
    _libc,
    _syscall,
    bind_readonly,
    exists,
    join_cgroup,
    mount,
    propagation,
    quote,
    sh,
)

TYPE_CHECKING = False  # typing itself is not imported: this runs on every start
if TYPE_CHECKING:
    from typing import Any

    Spec = dict[str, Any]  # init.json, as container.init_spec writes it


CAPABILITIES = [
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore"
]
# Docker's default set: CapBnd 00000000a80425fb
DEFAULT_CAPS = [
    "chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap"
]

# Docker's masked paths: directories under an empty read-only tmpfs, files under /dev/null
MASKED_DIRS = ("/proc/asound", "/proc/acpi", "/proc/scsi", "/sys/firmware",
               "/sys/devices/virtual/powercap")
MASKED_PATHS = (
    *MASKED_DIRS, "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
)
# ... and read-only paths
JOINED_NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")  # mnt last: it moves our root
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# (name, major, minor, mode) of the device nodes in /dev
DEVICES = (
    ("null", 1, 3, 0o666), ("zero", 1, 5, 0o666), ("full", 1, 7, 0o666),
    ("random", 1, 8, 0o666), ("urandom", 1, 9, 0o666), ("tty", 5, 0, 0o666),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"),
)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

class Init:
    """Builds and runs the steps of SPEC."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rootfs = str(spec.get("rootfs", ""))  # exec (`join`) mounts nothing
        self.trace = bool(spec.get("trace"))
        self.status_fd = spec.get("status_fd")
        self.pty_master: int | None = None
        self.pty_slave: str | None = None
        self.final: dict[str, Any] = {}  # resolved user, env and path of the command
        self.exec_helper: int | None = None  # the sealed memfd of shellctr-exec
        self.seccomp_filter = b""  # the BPF program, built before the root switch

    # -- helpers ------------------------------------------------------------------
    def at(self, path: str) -> str:
        """`path` inside the rootfs, before the pivot."""
        return self.rootfs + path

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
        spec = self.spec
        lowers = ":".join(spec["lowerdirs"])
        options = f"lowerdir={lowers},upperdir={spec['upperdir']},workdir={spec['workdir']}"
        nsx = MS_NOSUID | MS_NODEV | MS_NOEXEC
        steps = [
            *self.cgroup_steps(),
            # no device cgroup (v2 without BPF): image and container files open no device
            mount("overlay", self.rootfs, "overlay",
                  MS_NODEV if spec.get("rootfs_nodev") else 0, options),
            self.mkdir_in_rootfs("/proc"),
            mount("proc", self.at("/proc"), "proc", nsx),
            self.mkdir_in_rootfs("/sys"),
            # --privileged: /sys writable, as Docker
            mount("sysfs", self.at("/sys"), "sysfs",
                  nsx if spec.get("privileged") else nsx | MS_RDONLY),
            self.mkdir_in_rootfs("/dev"),
            mount("tmpfs", self.at("/dev"), "tmpfs", MS_NOSUID | MS_STRICTATIME,
                  "mode=755,size=65536k"),
        ]
        for name, major, minor, mode in DEVICES:
            steps.append(self.mknod(self.at(f"/dev/{name}"), major, minor, mode))
        for name, target in DEV_LINKS:
            steps.append(self.symlink(target, self.at(f"/dev/{name}")))
        steps += self.device_steps()
        steps += [
            self.mkdir(self.at("/dev/pts"), 0o755),
            # newinstance: the container's own pty numbering, starting at /dev/pts/0
            mount("devpts", self.at("/dev/pts"), "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=0620,gid=5"),
            self.mkdir(self.at("/dev/shm"), 0o1777),
            *confine.shm_steps(self.at("/dev/shm"), spec),  # --shm-size, --ipc
            self.mkdir(self.at("/dev/mqueue"), 0o755),
            mount("mqueue", self.at("/dev/mqueue"), "mqueue", nsx),
            self.touch(self.at("/dev/console")),
        ]
        if not spec.get("tty"):
            # With -t the container's pty is bound here after the pivot; without, null.
            steps.append(mount(self.at("/dev/null"), self.at("/dev/console"), None, MS_BIND))
        # volumes, binds, tmpfs (-v, --mount, --tmpfs): before the /etc files, so that a
        # volume is seeded with the image's files only, and /etc/hosts lands on a volume
        steps += self.mount_steps()
        for source, target in spec.get("etc_files", []):
            steps += [self.file_in_rootfs(target), mount(source, self.at(target), None, MS_BIND)]
            if spec.get("slave_namespace"):  # a bind from the host: a slave of its mount
                steps.append(propagation(self.at(target), "private"))
        steps += self.confine_steps()
        if not spec.get("privileged"):  # --privileged: nothing masked, as Docker
            for path in MASKED_PATHS:
                steps.append(self.mask(path))
            for path in READONLY_PATHS:
                full = self.at(path)
                steps += [Step(step.shell, step.action, when=exists(full))
                          for step in bind_readonly(full)]
        if spec.get("readonly_rootfs"):  # --read-only: the rootfs only; its mounts stay
            from shellctr.inside.mounts import make_dir_step

            steps += [make_dir_step(self.rootfs, str(spec.get("cwd") or "/")),  # -w, first
                      mount("", self.rootfs, None, MS_REMOUNT | MS_BIND | MS_RDONLY)]
        if spec.get("uts_mode") != "host":  # --uts host: the host's name is not ours to set
            steps.append(self.sethostname(str(spec["hostname"])))
        steps.append(self.loopback_up())
        if spec.get("no_router_advertisements"):
            steps.append(self.refuse_router_advertisements())
        return steps

    def confine_steps(self) -> list[Step]:
        """--sysctl (before /proc/sys turns read-only) and --init's binary (confine.py)."""
        spec = self.spec
        steps = confine.sysctl_steps(self.at("/proc/sys"), spec.get("sysctls") or {})
        if spec.get("init_source"):
            steps += [self.file_in_rootfs(confine.INIT_PATH),
                      *confine.init_binary_steps(self.rootfs, spec["init_source"])]
            if spec.get("slave_namespace"):  # a bind from the host: a slave of its mount
                steps.append(propagation(self.at(confine.INIT_PATH), "private"))
        return steps

    def mount_steps(self) -> list[Step]:
        """The container's own mounts (-v, --mount, --tmpfs): see init_mounts.py."""
        if not self.spec.get("mounts"):
            return []
        from shellctr.inside.mounts import mount_steps

        return mount_steps(self.rootfs, self.spec["mounts"],
                           bool(self.spec.get("slave_namespace")))

    def device_steps(self) -> list[Step]:
        """--device (and --privileged's host devices): nodes in the container's /dev tmpfs,
        with the numbers read on the host at create; the device cgroup allows them."""
        steps = []
        for path, kind, major, minor in self.spec.get("devices", []):
            full = self.at(path)
            steps += [self.mkdir_parents(os.path.dirname(full)),
                      self.mknod(full, int(major), int(minor), 0o666, kind)]
        return steps

    def mkdir_parents(self, path: str) -> Step:
        """`mkdir -p` under the container's own /dev tmpfs (no image file is there)."""
        return Step(lambda: sh("mkdir", "--parents", path),
                    lambda: os.makedirs(path, 0o755, exist_ok=True))

    def cgroup_steps(self) -> list[Step]:
        """Join the container's cgroups: every process it forks is then inside too."""
        return [join_cgroup(f"{path}/cgroup.procs") for path in self.spec.get("cgroups", [])]

    def mkdir(self, path: str, mode: int) -> Step:
        def do() -> None:
            os.mkdir(path, mode)
            os.chmod(path, mode)
        return Step(lambda: sh("mkdir", f"--mode={mode:o}", path), do)

    def mknod(self, path: str, major: int, minor: int, mode: int, kind: str = "c") -> Step:
        def do() -> None:
            if os.path.lexists(path):  # --device onto a standard node: the host's wins
                os.unlink(path)
            fmt = stat.S_IFBLK if kind == "b" else stat.S_IFCHR
            os.mknod(path, mode | fmt, os.makedev(major, minor))
        return Step(lambda: sh("mknod", f"--mode={mode:o}", path, kind, str(major), str(minor)),
                    do)

    def symlink(self, target: str, path: str) -> Step:
        return Step(lambda: sh("ln", "--symbolic", target, path),
                    lambda: os.symlink(target, path))

    def touch(self, path: str) -> Step:
        def do() -> None:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
        return Step(lambda: sh("touch", path), do)

    def mkdir_in_rootfs(self, path: str) -> Step:
        """A top-level directory of the image that must be a real directory (not a link)."""
        full = self.at(path)

        def do() -> None:
            try:
                mode = os.lstat(full).st_mode
            except FileNotFoundError:
                os.mkdir(full, 0o755)
                return
            if not stat.S_ISDIR(mode):
                raise SetupError(f"the image's {path} is not a directory; refusing to mount on it")
        return Step(lambda: sh("mkdir", "--parents", full), do)

    def file_in_rootfs(self, path: str) -> Step:
        """A regular file at `path` (e.g. /etc/hosts) to bind over, never a symlink."""
        directory, full = self.at(os.path.dirname(path)), self.at(path)

        def do() -> None:
            # Each component is checked with lstat: a link in the image must not lead
            # the bind mount to a path outside the rootfs.
            parts = [p for p in os.path.dirname(path).split("/") if p]
            current = self.rootfs
            for part in parts:
                current += "/" + part
                try:
                    mode = os.lstat(current).st_mode
                except FileNotFoundError:
                    os.mkdir(current, 0o755)
                    continue
                if not stat.S_ISDIR(mode):
                    raise SetupError(f"the image's {current[len(self.rootfs):]} is not a directory")
            try:
                mode = os.lstat(full).st_mode
                if not stat.S_ISREG(mode):
                    os.unlink(full)  # a symlink or special file: replace it with a plain file
            except FileNotFoundError:
                pass
            # read-only: opening the image's file for writing would copy it up into the
            # container's changes (diff, commit) though nothing changed it
            os.close(os.open(full, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
        return Step(lambda: sh("mkdir", "--parents", directory) + " && " + sh("touch", full), do)

    def mask(self, path: str) -> Step:
        """Hide a directory under an empty read-only tmpfs, a file under /dev/null."""
        full = self.at(path)
        if path in MASKED_DIRS:
            step = mount("tmpfs", full, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        else:
            step = mount(self.at("/dev/null"), full, None, MS_BIND)
        return Step(step.shell, step.action, when=exists(full))

    @staticmethod
    def sethostname(name: str) -> Step:
        return Step(lambda: sh("hostname", name), lambda: _socket.sethostname(name))

    @staticmethod
    def refuse_router_advertisements() -> Step:
        """eth0 takes no IPv6 router advertisement (another container on the bridge could
        send one and become its router), as Docker sets accept_ra=0. This process is in
        the container's network namespace: /proc/sys/net is the container's."""
        knob = "/proc/sys/net/ipv6/conf/eth0/accept_ra"

        def do() -> None:
            with open(knob, "w") as stream:
                stream.write("0")
        return Step(lambda: f"echo 0 > {knob}", do, when=exists(knob))

    @staticmethod
    def loopback_up() -> Step:
        def do() -> None:
            sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
            try:
                request = struct.pack("16sH14x", b"lo", 0)
                flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
                fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
            finally:
                sock.close()
        return Step(lambda: sh("ip", "link", "set", "dev", "lo", "up"), do)

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
        if "join" not in self.spec:  # an exec'd process gets a pty, not the console
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
        if spec.get("init_source"):  # --init
            argv = [confine.INIT_PATH, "--init", argv[0], "--", *argv]
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
        if self.spec.get("seccomp_profile"):
            profile = str(self.spec["seccomp_profile"])
            steps.append(Step(lambda: (
                f"# seccomp: the filter built from {profile} for these capabilities is "
                "loaded last, then shellctr-exec (a sealed memfd copy) execs the command"),
                lambda: None))
        return [*steps, Step(self.exec_shell, self.exec_command)]

    def exec_command(self) -> None:
        final = self.final
        argv, env = final["argv"], final["env"]
        program = find_program(argv[0], env.get("PATH", DEFAULT_PATH))
        if self.spec.get("init_source"):  # --init: PID 1 is the init, the command its child
            program, argv = confine.init_argv(program, argv)
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

    def join(self) -> None:
        """`exec`: enter the namespaces of a running container's PID 1, then the same
        final step as its init (user, workdir, capabilities, no_new_privs, exec)."""
        import signal  # only exec needs it (and it costs every start ~4 ms)

        pid = int(self.spec["join"])
        # open every namespace first: once in the container's mount namespace, the
        # host's /proc/PID paths are out of reach
        handles = [(kind, os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC))
                   for kind in JOINED_NAMESPACES]

        def enter() -> None:
            for kind, fd in handles:
                _check(_libc.setns(fd, 0), f"setns {kind}")
                os.close(fd)

        self.run([*self.cgroup_steps(),
                  Step(lambda: sh("nsenter", f"--target={pid}", "--mount", "--uts", "--ipc",
                                  "--net", "--pid", "--"), enter)])
        child = os.fork()  # joining a pid namespace takes effect for children only
        if child == 0:
            try:
                self.run(self.console_steps())
                self.resolve()
                self.run([self.workdir_step(),
                          *confine.ulimit_step(self.spec.get("ulimits") or [])])
                self.run(self.final_steps())
            except SetupError as err:
                self.send({"message": str(err), "code": err.code})
                os._exit(err.code)
            except OSError as err:
                self.send({"message": f"exec setup failed: {err}", "code": 125})
                os._exit(125)
        # This process stays outside the pid namespace: it only hands on the exit code.
        if isinstance(self.status_fd, int):
            os.close(self.status_fd)
        for signum in (2, 15, 1, 3, 10, 12):  # forward INT TERM HUP QUIT USR1 USR2
            signal.signal(signum, lambda number, frame: os.kill(child, number))
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        sys.exit(code if code >= 0 else 128 - code)

    def prepare_final_step(self) -> None:
        """Before anything of the container is entered: this process (the host's
        interpreter) is made undumpable, so the container's processes cannot open its
        /proc/N/exe or fds, and the sealed copy of shellctr-exec is made while the host's
        file is still in reach (issue 13, defect 1)."""
        _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
        if self.spec.get("exec_helper"):
            self.exec_helper = seal_exec_helper(str(self.spec["exec_helper"]))
        if self.spec.get("seccomp_profile"):
            self.seccomp_filter = build_seccomp(self.spec)

    def main(self) -> None:
        self.prepare_final_step()
        if "join" in self.spec:
            self.join()
        os.umask(0)  # device nodes and dirs get exactly the modes asked for
        self.run(self.rootfs_steps())
        self.run(self.pivot_steps())
        self.run(self.console_steps())
        self.resolve()
        self.run([self.workdir_step(), *confine.ulimit_step(self.spec.get("ulimits") or [])])
        self.run(self.final_steps())


# -- users, capabilities, the command ---------------------------------------------------
def _read_table(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return [line.rstrip("\n").split(":") for line in stream if line.strip()]
    except FileNotFoundError:
        return []


def resolve_user(spec: str) -> tuple[int, int, list[int], str]:
    """uid, gid, supplementary gids and home for `user[:group]`, from the container's files."""
    user, _, group = spec.partition(":")
    passwd = [row for row in _read_table("/etc/passwd") if len(row) >= 7]
    groups = [row for row in _read_table("/etc/group") if len(row) >= 3]
    uid, gid, home, name = 0, 0, "/root", "root"
    if user:
        entry = next((row for row in passwd if user in (row[0], row[2])), None)
        if entry is not None:
            name, uid, gid, home = entry[0], int(entry[2]), int(entry[3]), entry[5] or "/"
        elif user.isdigit():
            name, uid, gid, home = "", int(user), 0, "/"
        else:
            raise SetupError(f"unable to find user {user}: no matching entries in passwd file")
    elif passwd:
        entry = next((row for row in passwd if row[2] == "0"), None)
        if entry is not None:
            home = entry[5] or "/root"
    if group:
        match = next((row for row in groups if group in (row[0], row[2])), None)
        if match is not None:
            gid = int(match[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise SetupError(f"unable to find group {group}: no matching entries in group file")
    # like runc: the primary group plus every group that lists the user as a member;
    # with an explicit group, that group alone (no supplementary groups from /etc/group)
    extra = sorted({gid} | {int(row[2]) for row in groups
                            if not group and name and len(row) >= 4
                            and name in row[3].split(",")})
    return uid, gid, extra, home


def find_program(name: str, path: str) -> str:
    """The file `execve` should run, with Docker's errors (127 not found, 126 not runnable)."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    for candidate in candidates:
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and os.access(candidate, os.X_OK):
            return candidate
        if "/" in name:
            reason = "is a directory" if stat.S_ISDIR(mode) else "permission denied"
            raise SetupError(f'exec: "{name}": {reason}', 126)
    if "/" in name:
        raise SetupError(f'exec: "{name}": stat {name}: no such file or directory', 127)
    raise SetupError(f'exec: "{name}": executable file not found in $PATH', 127)


def drop_bounding_set(spec: Spec) -> set[int]:
    """Bound the capabilities to the spec's (Docker's default set unless --cap-add,
    --cap-drop, --privileged) and clear the ambient ones; the numbers to keep come back.
    They, and the kernel's last one, were read on the host: never from the container's
    /proc, which a volume could fake (issue 13, defect 2)."""
    if "caps" in spec:
        keep = {int(number) for number, _ in spec["caps"]}
        last = int(spec["last_cap"])
    else:  # a spec written by hand: Docker's default set
        keep = {CAPABILITIES.index(name) for name in DEFAULT_CAPS}
        last = len(CAPABILITIES) - 1
    for cap in range(last + 1):
        if cap not in keep:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    return keep


def set_capabilities(keep: set[int]) -> None:
    """Permitted and effective: `keep`; inheritable: none (after the user switch, for
    root; a user's were all cleared by the kernel at setuid, as Docker's are)."""
    mask = sum(1 << cap for cap in keep)
    header = struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0)
    # effective, permitted, inheritable: low 32 bits, then high 32 bits
    data = struct.pack("6I", mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0, mask >> 32, mask >> 32, 0)
    _check(_syscall("capset", header, data), "capset")


def build_seccomp(spec: Spec) -> bytes:
    """The spec's seccomp profile compiled for its capabilities, on this kernel."""
    from shellctr.inside import seccomp

    uname = os.uname()
    names = {"CAP_" + name.upper() for _, name in spec.get("caps", [])}
    try:
        program = seccomp.build(seccomp.load_profile(str(spec["seccomp_profile"])), names,
                                uname.machine, seccomp.version(uname.release))
    except (seccomp.ProfileError, OSError) as err:
        raise SetupError(f"seccomp: {err}") from err
    return seccomp.encode(program)


def install_seccomp(program: bytes) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &(struct sock_fprog){len, filter})."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
    holder = ctypes.create_string_buffer(fprog, len(fprog))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(holder), 0, 0),
           "prctl(PR_SET_SECCOMP)")


def seal_exec_helper(path: str) -> int:
    """A memfd holding a copy of the static shellctr-exec, sealed against every change
    (write, grow, shrink, further seals): what the container can reach of its final
    step through /proc/N/exe is this copy, never a host file."""
    memfd = os.memfd_create("shellctr-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(source).st_size
        copied = 0
        while copied < size:
            sent = os.sendfile(memfd, source, copied, size - copied)
            if sent == 0:
                break
            copied += sent
    finally:
        os.close(source)
    fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    return memfd


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
