"""The container's root before the switch: the steps init.py runs to build it.

The overlay rootfs, /proc, /sys (ro), a /dev tmpfs with the minimal device nodes,
devpts (newinstance), /dev/shm, /dev/mqueue, the container's mounts (mounts.py), the /etc
files, --sysctl and --init's binary (confine.py), Docker's masked and read-only paths, the
hostname and loopback: each a Step carrying its shell equivalent. Standard library only,
like init.py, which imports it on every start and exec (an exec builds none of it)."""

from __future__ import annotations

import _socket  # the C module: `socket` pulls in enum and selectors, ~3 ms per start
import fcntl
import os
import stat
import struct

from shellctr.inside import confine
from shellctr.inside.steps import (
    IFF_UP,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REMOUNT,
    MS_STRICTATIME,
    SIOCGIFFLAGS,
    SIOCSIFFLAGS,
    SetupError,
    Step,
    bind_readonly,
    exists,
    mount,
    propagation,
    sh,
)

TYPE_CHECKING = False  # typing itself is not imported: this runs on every start
if TYPE_CHECKING:
    from typing import Any

    Spec = dict[str, Any]  # init.json, as container.init_spec writes it


# Docker's masked paths: directories under an empty read-only tmpfs, files under /dev/null
MASKED_DIRS = ("/proc/asound", "/proc/acpi", "/proc/scsi", "/sys/firmware",
               "/sys/devices/virtual/powercap")
MASKED_PATHS = (
    *MASKED_DIRS, "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
)
# ... and read-only paths
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


class Rootfs:
    """The steps that build the container's root at SPEC's rootfs, before the pivot."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rootfs = str(spec.get("rootfs", ""))

    def at(self, path: str) -> str:
        """`path` inside the rootfs, before the pivot."""
        return self.rootfs + path

    def steps(self) -> list[Step]:
        spec = self.spec
        lowers = ":".join(spec["lowerdirs"])
        options = f"lowerdir={lowers},upperdir={spec['upperdir']},workdir={spec['workdir']}"
        nsx = MS_NOSUID | MS_NODEV | MS_NOEXEC
        steps = [
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
        """The container's own mounts (-v, --mount, --tmpfs): see mounts.py."""
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
