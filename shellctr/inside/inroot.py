"""Paths inside a container's root, resolved without ever leaving it (stdlib only).

A container's files are untrusted: any component of a path in it may be a symlink
planted by the image or by the container (`/data -> /etc`, `/x -> ../../../host`).
Resolved naively on the host, such a path leads onto the host's own files. Here every
path is resolved *relative to a root directory fd* with openat2(2)'s RESOLVE_IN_ROOT,
which treats that fd as `/`: absolute symlinks and `..` are clamped to it, as if the
process were chrooted there; RESOLVE_NO_MAGICLINKS refuses /proc/PID/fd-style links.
The fd that comes back is used directly (`*at` syscalls, or a mount onto
`/proc/self/fd/N`), so no path is looked up twice and swapping a component for a link
in between changes nothing.

init.py imports this module (before the pivot, only when the container has mounts),
and so does copy.py for `cp`.
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct

O_PATH = getattr(os, "O_PATH", 0o10000000)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64 (new syscalls are unified)
MAX_LINKS = 40  # as the kernel's own limit on symlinks followed in one lookup

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to `dir_fd` under the `resolve` restrictions."""
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, mode, resolve)
    fd = int(_libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_long(dir_fd),
                           ctypes.c_char_p(os.fsencode(path)), ctypes.c_char_p(how),
                           ctypes.c_size_t(len(how))))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def open_in_root(root_fd: int, path: str, flags: int = O_PATH) -> int:
    """`path` (absolute or not: both mean from the root) opened inside the root."""
    return openat2(root_fd, path.lstrip("/") or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def parts_of(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


def resolve(root_fd: int, path: str, create: str = "", mode: int = 0o755) -> str:
    """`path` inside the root with every symlink expanded *within* the root, as a clean
    absolute path (no links, no `..`). With `create` ("dir" or "file"), missing
    components are created as `mkdir -p` would (the last one as an empty file for
    "file"), following links the way the container itself would see them.

    The result is a path to open with `open_in_root` (which stays inside even if a
    component was swapped for a link since).
    """
    pending = parts_of(path)
    done: list[str] = []
    links = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        parent = open_in_root(root_fd, "/".join(done))
        try:
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise
                if create == "file" and not pending:
                    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, 0o644, dir_fd=parent))
                else:
                    os.mkdir(name, mode, dir_fd=parent)
                done.append(name)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(40, "too many levels of symbolic links", path)
                target = os.readlink(name, dir_fd=parent)
                if target.startswith("/"):
                    done = []
                pending = parts_of(target) + pending
                continue
            if pending and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(20, "not a directory", "/" + "/".join([*done, name]))
            done.append(name)
        finally:
            os.close(parent)
    return "/" + "/".join(done)


# -- copying a tree, never following its links --------------------------------------------
def copy_tree(src_fd: int, dst_fd: int) -> None:
    """Copy the contents of directory `src_fd` into directory `dst_fd` (`cp -a SRC/.
    DST`): owners, modes and times kept, symlinks copied as symlinks, every entry
    opened relative to its parent's fd with O_NOFOLLOW. Sockets are skipped."""
    for entry in os.scandir(src_fd):
        name = entry.name
        st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            sub_src = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=src_fd)
            sub_dst = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=dst_fd)
            try:
                copy_tree(sub_src, sub_dst)
                copy_attributes(sub_dst, st)
            finally:
                os.close(sub_src)
                os.close(sub_dst)
        elif kind == stat.S_IFREG:
            copy_file(name, src_fd, dst_fd, st)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst_fd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)


def copy_file(name: str, src_dir: int, dst_dir: int, st: os.stat_result) -> None:
    # O_NONBLOCK: should the file have been swapped for a FIFO, opening it must not hang
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                  dir_fd=src_dir)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            return
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=dst_dir)
        try:
            copy_data(src, dst)
            copy_attributes(dst, st)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def copy_data(src: int, dst: int) -> None:
    while True:
        try:
            count = os.sendfile(dst, src, None, 1 << 24)
        except OSError:  # a filesystem without sendfile: read and write
            count = len(data := os.read(src, 1 << 20))
            if count:
                os.write(dst, data)
        if not count:
            return


def copy_attributes(fd: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then times, of an open file."""
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
