"""The confinement flags of issue 16, as setup steps of init.py: --sysctl, --shm-size and
--ipc host|container: (the /dev/shm mount), --ulimit, --group-add and --init (shellctr's
static init bound read-only into the root as PID 1's program).

Standard library only (see __init__.py); each step carries its shell equivalent."""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct

from shellctr.inside.steps import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    SetupError,
    Step,
    _check,
    _libc,
    _syscall,
    mount,
    sh,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INIT_NAME = "shellctr-init"  # --init's PID 1: argv[0], its name in ps
DEFAULT_SHM = 64 * 1024 * 1024
TIOCSWINSZ = 0x5414
RLIM_INFINITY = 2**64 - 1  # (unsigned long)-1 on 64-bit Linux


def sysctl_steps(proc_sys: str, sysctls: dict[str, str]) -> list[Step]:
    """Write each `--sysctl` under the container's /proc/sys (before it turns read-only);
    the namespaced ones only (checked at create)."""
    steps = []
    for key, value in sysctls.items():
        path = os.path.join(proc_sys, *key.split("."))

        def write(path: str = path, value: str = value, key: str = key) -> None:
            try:
                with open(path, "w") as stream:
                    stream.write(value)
            except OSError as err:
                raise SetupError(f"cannot set sysctl {key}={value}: {err.strerror}") from err

        line = sh("sysctl", "--write", f"{key}={value}")
        steps.append(Step(lambda line=line: line, write))  # type: ignore[misc]
    return steps


AT_FDCWD = -100
CLONE_NEWNS = 0x00020000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4


def shm_steps(target: str, spec: dict[str, Any]) -> list[Step]:
    """/dev/shm: a tmpfs of --shm-size, or the one of the IPC namespace joined
    (`shm_source`: the host's with --ipc host; `shm_namespace`: the mount namespace
    of the container whose IPC namespace is joined, --ipc container:)."""
    source = spec.get("shm_source")
    nsx = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if spec.get("shm_namespace"):
        return [shared_shm_step(str(spec["shm_namespace"]), target)]
    if source:
        return [mount(str(source), target, None, MS_BIND)]
    size = int(spec.get("shm_size") or DEFAULT_SHM)
    return [mount("shm", target, "tmpfs", nsx, f"mode=1777,size={size // 1024}k")]


def shared_shm_step(namespace: str, target: str) -> Step:
    """--ipc container:: bind the owner's /dev/shm onto `target`. mount(2) refuses a
    source in another mount namespace (EINVAL, even through /proc/PID/root), and
    mount(8) resolves /proc/PID/root/... to our own path: so enter the owner's mount
    namespace, clone its /dev/shm (open_tree), come back and attach it (move_mount)."""
    line = (f"# {sh('nsenter', f'--mount={namespace}', '--', 'open_tree', '/dev/shm')}"
            f" then {sh('move_mount', target)} (the owner's /dev/shm, bound)")

    def bind() -> None:
        flags = os.O_RDONLY | os.O_CLOEXEC
        own, other = os.open("/proc/self/ns/mnt", flags), os.open(namespace, flags)
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(other, CLONE_NEWNS), "cannot enter the mount namespace of "
                   "the container whose IPC namespace is joined")
            tree = _syscall("open_tree", AT_FDCWD, b"/dev/shm",
                            OPEN_TREE_CLONE | os.O_CLOEXEC)
            error = ctypes.get_errno()
            # back first, whatever happened: setns moved our root and cwd too
            _check(_libc.setns(own, CLONE_NEWNS), "cannot come back to our mount namespace")
            os.fchdir(cwd)
            if tree < 0:
                raise SetupError(f"cannot share /dev/shm of the container whose IPC "
                                 f"namespace is joined: {os.strerror(error)}")
            try:
                _check(_syscall("move_mount", tree, b"", AT_FDCWD, target.encode(),
                                MOVE_MOUNT_F_EMPTY_PATH), f"mount {target}")
            finally:
                os.close(tree)
        finally:
            for fd in (own, other, cwd):
                os.close(fd)

    return Step(lambda: line, bind)


def ulimit_step(ulimits: list[dict[str, Any]]) -> list[Step]:
    """--ulimit: setrlimit(2) for PID 1 (and what it starts; exec's processes too)."""
    if not ulimits:
        return []

    def apply() -> None:  # through libc: nothing can be imported after the pivot
        for item in ulimits:
            limit = (ctypes.c_ulong * 2)(*(RLIM_INFINITY if item[key] == -1 else item[key]
                                           for key in ("soft", "hard")))
            if _libc.setrlimit(int(item["resource"]), limit) != 0:
                err = ctypes.get_errno()
                raise SetupError(f"cannot set ulimit {item['name']}={item['soft']}:"
                                 f"{item['hard']}: {os.strerror(err)}")

    def shell() -> str:
        return " && ".join(sh("prlimit", "--pid=$$", f"--{item['name']}="
                              f"{limit_word(item['soft'])}:{limit_word(item['hard'])}")
                           for item in ulimits)

    return [Step(shell, apply)]


def set_window_size(master: int, size: list[int] | None) -> None:
    """The caller's rows and columns on the new pty, before the command starts (its first
    `stty size` must see them, not 0 0)."""
    if size:  # (after the switch: only modules init.py imported already can be used)
        fcntl.ioctl(master, TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))


def limit_word(value: int) -> str:
    return "unlimited" if value == -1 else str(value)


def extra_groups(names: list[str], groups: list[list[str]]) -> list[int]:
    """--group-add: gids by name (from the container's /etc/group) or number."""
    found = []
    for name in names:
        row = next((row for row in groups if len(row) >= 3 and row[0] == name), None)
        if row is not None:
            found.append(int(row[2]))
        elif name.isdigit():
            found.append(int(name))
        else:
            raise SetupError(f"unable to find group {name}: no matching entries in group file")
    return found


def init_argv(init: str, program: str, argv: list[str]) -> tuple[str, list[str]]:
    """--init: PID 1 runs the init (`init`: the path of its sealed memfd copy, no host
    file), which runs `program` with `argv` as its child."""
    return init, [INIT_NAME, "--init", program, "--", *argv]

