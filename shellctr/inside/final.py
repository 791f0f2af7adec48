"""The final step's parts: the container's user and groups, the command found on its
PATH, the capability bounding set and capset, the seccomp filter, and the sealed copy of
shellctr-exec. Standard library only; init.py calls these for PID 1 and for `exec`, the
lookups after the root switch (they read the container's own /etc files), the rest before
it or just before the exec."""

from __future__ import annotations

import ctypes  # (steps imports it too)
import fcntl
import os
import stat
import struct

from shellctr.inside.steps import (
    LINUX_CAPABILITY_VERSION_3,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAPBSET_DROP,
    PR_SET_SECCOMP,
    SECCOMP_MODE_FILTER,
    SetupError,
    _check,
    _libc,
    _syscall,
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

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def read_seccomp(path: str) -> bytes:
    """The compiled filter (struct sock_filter[]) shellctr wrote to the run dir."""
    try:
        with open(path, "rb") as stream:
            program = stream.read()
    except OSError as err:
        raise SetupError(f"seccomp: cannot read the filter {path}: {err.strerror}") from err
    if not program or len(program) % 8:
        raise SetupError(f"seccomp: {path} is not a compiled filter")
    return program


def install_seccomp(program: bytes) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &(struct sock_fprog){len, filter})."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
    holder = ctypes.create_string_buffer(fprog, len(fprog))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(holder), 0, 0),
           "prctl(PR_SET_SECCOMP)")


def seal_exec_helper(path: str, name: str = "shellctr-exec", cloexec: bool = True) -> int:
    """A memfd holding a copy of the static binary at `path` (shellctr-exec; --init's
    init), sealed against every change (write, grow, shrink, further seals): what the
    container can reach of its final step through /proc/N/exe is this copy, never a host
    file. Without `cloexec` it stays open across the helper's exec (the init is run from
    it as /proc/self/fd/N)."""
    flags = os.MFD_ALLOW_SEALING | (os.MFD_CLOEXEC if cloexec else 0)
    memfd = os.memfd_create(name, flags)
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
