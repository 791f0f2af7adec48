"""The primitives of the setup steps: libc through ctypes, mount flags, and `Step`, one
action paired with its shell equivalent (what --trace prints and --dry-run shows).

Standard library only, as everything in inside/: this runs in the container's namespaces
before the root switch, on every start."""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False  # typing itself is not imported: this runs on every start
if TYPE_CHECKING:
    from collections.abc import Callable

# -- constants from <sys/mount.h>, <linux/prctl.h>, <linux/capability.h> -----------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCSCTTY = 0x540E
SYSCALLS = {  # numbers of the syscalls glibc has no wrapper for
    "x86_64": {"pivot_root": 155, "capset": 126, "open_tree": 428, "move_mount": 429},
    "aarch64": {"pivot_root": 41, "capset": 91, "open_tree": 428, "move_mount": 429},
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong, ctypes.c_ulong]


class SetupError(Exception):
    """The container could not be set up: `code` is 125, 126 or 127."""

    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _syscall(name: str, *args: object) -> int:
    number = SYSCALLS[os.uname().machine][name]
    return int(_libc.syscall(number, *args))


# -- the steps ------------------------------------------------------------------------
class Step:
    """One setup action and its shell equivalent (what --trace and --dry-run show).

    `when`, if given, decides at run time whether the step applies on this host
    (e.g. a masked path this kernel does not have); --dry-run shows every step.
    """

    __slots__ = ("action", "shell", "when")

    def __init__(self, shell: Callable[[], str], action: Callable[[], None],
                 when: Callable[[], bool] | None = None) -> None:
        self.shell, self.action, self.when = shell, action, when


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def quote(word: str) -> str:
    """shlex.quote without importing shlex (and re): this runs on every start."""
    if word and all(c in _SAFE for c in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def sh(*argv: str) -> str:
    return " ".join(quote(word) for word in argv)


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> Step:
    """mount(2), shown as the mount(8) line that does the same."""
    options = [name for bit, name in (
        (MS_RDONLY, "ro"), (MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"),
        (MS_NOEXEC, "noexec"), (MS_STRICTATIME, "strictatime"),
    ) if flags & bit]
    if data:
        options.append(data)
    if flags & MS_REMOUNT:
        line = sh("mount", "--options", ",".join(["remount", "bind", *options]), target)
    elif flags & MS_BIND:
        line = sh("mount", "--bind", source, target)
    else:
        line = sh("mount", "--types", fstype or "", source, target,
                  *(("--options", ",".join(options)) if options else ()))

    def do() -> None:
        _check(_libc.mount(source.encode(), target.encode(),
                           fstype.encode() if fstype else None, flags,
                           data.encode() if data else None),
               f"mount {target}")

    return Step(lambda: line, do)


# a bind's propagation mode (-v SRC:DST:MODE) as mount(2) flags
PROPAGATION_FLAGS = {"private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
                     "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC}


def propagation(path: str, mode: str) -> Step:
    """`mount --make-MODE PATH`: change the propagation of the mount at `path`."""
    def do() -> None:
        _check(_libc.mount(b"", path.encode(), None, PROPAGATION_FLAGS[mode], None),
               f"make {path} {mode}")

    return Step(lambda: sh("mount", f"--make-{mode}", path), do)


def join_cgroup(procs: str) -> Step:
    """Move this process into a cgroup: `0` means "the writer" (our pid here is 1, which
    in the host's pid namespace would be the host's init)."""
    def join() -> None:
        with open(procs, "w") as stream:
            stream.write("0")

    return Step(lambda: f"echo 0 > {quote(procs)}", join)


def exists(path: str) -> Callable[[], bool]:
    """A `when` for steps on paths that not every kernel has."""
    return lambda: os.path.lexists(path)


def bind_readonly(path: str) -> list[Step]:
    """A bind mount of `path` onto itself, then remounted read-only."""
    return [
        mount(path, path, None, MS_BIND | MS_REC),
        mount("", path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
              | MS_NOEXEC),
    ]
