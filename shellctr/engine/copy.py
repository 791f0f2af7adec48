"""`cp`: files between a container and the host, never through the container's links.

Every path on the container's side is resolved by inroot.py from a directory fd of the
container's root, with openat2(RESOLVE_IN_ROOT): its symlinks (`/evil -> /etc`,
`../../..`) are followed the way the container sees them and can never lead onto the
host. Files are then read and written relative to the fds of their directories, with
O_NOFOLLOW and O_EXCL, in this process (Python, no host binary ever runs on the
container's files):

- a running container's root is `/proc/PID/root` (with its volumes and tmpfs mounts,
  as its processes see them), opened once; the pid's start time is checked after;
- a stopped one has no mount namespace: this process enters a private one of its own
  (`unshare --mount`), mounts the container's overlay and volumes there as init.py
  does, and copies; the mounts vanish with the process, whatever happens to it.

What is copied is a stream of tar members, whether it goes to another directory or to
stdout (`-`); members from stdin or from the container are extracted one by one,
each parent resolved inside the destination (the container's root, or on the host
the destination directory), so a member can never write through a link that an
earlier member planted. Owners: root in the container, the caller on the host, the
source's with -a (as Docker); without -a, set-id bits are dropped.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from shellctr.core.cmd import Cmd, path_arg
from shellctr.core.errors import NotFound, ShellctrError, UsageError
from shellctr.core.host import Host
from shellctr.core.store import Store
from shellctr.inside import inroot

Entry = tuple[tarfile.TarInfo, "IO[bytes] | None"]
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 16384, 1 << 18


class Line(Cmd):
    """An in-process step shown as the shell line that does the same."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__([text])
        self.text = text

    def shell(self) -> str:
        return self.text


def split_ref(arg: str) -> tuple[str | None, str]:
    """`CTR:PATH` -> (CTR, PATH); a local path (`-`, `/a:b`, `./a:b`) -> (None, arg)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    ref, _, path = arg.partition(":")
    return (ref, path) if ref and "/" not in ref else (None, arg)


def cp(host: Host, store: Store, src: str, dst: str, archive: bool, follow: bool) -> None:
    """`cp [-a] [-L] CTR:SRC DST|-` or `cp [-a] [-L] SRC|- CTR:DST`."""
    src_ref, src_path = split_ref(src)
    dst_ref, dst_path = split_ref(dst)
    if src_ref and dst_ref:
        raise UsageError("copying between containers is not supported",
                         "copy to the host, then into the other container")
    if not src_ref and not dst_ref:
        raise UsageError("must specify at least one container source", "use CTR:PATH")
    ref = src_ref or dst_ref or ""
    container_path = src_path if src_ref else dst_path
    if not container_path.startswith("/"):
        container_path = "/" + container_path  # as Docker: relative to the container's /
    with container_root(host, store, ref) as (root, shown):
        # shown as the tar pipe that does the same (minus the in-root resolution)
        inside = shown + container_path
        owner = [] if archive else ["--no-same-owner"]

        def create(path: str) -> str:
            path = path.rstrip("/") or "/"
            return shlex.join(["tar", "--create", "--file=-",
                               f"--directory={os.path.dirname(path)}", os.path.basename(path)])

        def extract(path: str) -> str:
            return shlex.join(["tar", "--extract", "--file=-", *owner, f"--directory={path}"])

        if src_ref:
            line = create(inside) + ("" if dst_path == "-" else " | " + extract(dst_path))
        else:
            line = ("" if src_path == "-" else create(src_path) + " | ") + extract(inside)
        try:
            host.apply(Line(line + "  # resolved inside the container's root"),
                       lambda: (copy_out(root, container_path, dst_path, archive, follow)
                                if src_ref else
                                copy_in(root, src_path, container_path, archive, follow)))
        except OSError as err:  # e.g. EROFS: a read-only volume, or --read-only
            where = f" ({err.filename})" if err.filename else ""
            raise ShellctrError(f"cp failed: {err.strerror}{where}") from err


@contextmanager
def container_root(host: Host, store: Store, ref: str) -> Iterator[tuple[int, str]]:
    """An O_PATH fd of the container's root (see the module docstring), and its path
    as the trace shows it."""
    from shellctr.engine.containers import find_container
    from shellctr.engine.lifecycle import reconcile

    cid = find_container(store, ref)
    state = reconcile(store, cid)
    pid = state["pid"]
    if state["status"] == "running":
        fd = os.open(f"/proc/{pid}/root", inroot.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if not host.facts.alive(pid, state["pid_start"]):  # the pid may be another's now
                raise ShellctrError(f"container {ref} ended while cp started", "try again")
            yield fd, f"/proc/{pid}/root"
        finally:
            os.close(fd)
        return
    with store.lock():  # a start now waits until the copy is done
        if store.container_state(cid)["status"] == "running":
            raise ShellctrError(f"container {ref} started while cp started", "try again")
        host.step(f"mount container {cid[:12]} for cp, in a private mount namespace")
        rootfs = mount_stopped(host, store, cid)
        fd = os.open(rootfs, inroot.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd, rootfs
        finally:
            os.close(fd)


def mount_stopped(host: Host, store: Store, cid: str) -> str:
    """Enter a mount namespace of our own; mount the container's overlay and volumes
    there (binds and volumes; tmpfs holds nothing while stopped). Returns the rootfs."""
    import ctypes

    from shellctr.engine.volume import spec_mounts
    from shellctr.inside import init
    from shellctr.inside import steps as inside_steps

    layout = store.layout
    config = store.container_config(cid)
    rootfs = path_arg(layout.container_rootfs(cid))
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise ShellctrError(f"{what}: {os.strerror(err)}")

    def enter() -> None:
        check(libc.unshare(CLONE_NEWNS), "unshare --mount")
        check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")

    host.apply(Line("unshare --mount --propagation private  # this process, from here on"),
               enter)
    lowers = ":".join(path_arg(layout.layer_dir(d)) for d in reversed(config["layers"]))
    options = (f"lowerdir={lowers},upperdir={path_arg(layout.container_upper(cid))},"
               f"workdir={path_arg(layout.container_work(cid))}")
    mounts = [{**entry, "seed": False}
              for entry in spec_mounts(layout, config["mounts"])  # type: ignore[arg-type]
              if entry["type"] == "bind"]
    steps = [inside_steps.mount("overlay", rootfs, "overlay", 0, options),
             *init.Init({"rootfs": rootfs, "mounts": mounts}).mount_steps()]
    for step in steps:
        try:
            host.apply(Line(step.shell()), step.action)
        except inside_steps.SetupError as err:
            raise ShellctrError(str(err)) from err
    return rootfs


# -- container -> host ------------------------------------------------------------------
def copy_out(root: int, path: str, dst: str, archive: bool, follow: bool) -> None:
    parent, name, contents = open_source(root, path, follow, in_container=True)
    try:
        kind = source_kind(parent, name, path)
        if dst == "-":
            if sys.stdout.isatty():
                raise ShellctrError("refusing to write a tar archive to a terminal",
                                    "redirect stdout, or give a destination path")
            with tarfile.open(fileobj=sys.stdout.buffer, mode="w|",
                              format=tarfile.PAX_FORMAT) as out:
                for info, data in walk(parent, name, "" if contents else top_name(name, path)):
                    out.addfile(info, data)
                    if data is not None:
                        data.close()
            return
        anchor, top = host_destination(dst, kind, path)
        owner = None if archive else (os.getuid(), os.getgid())
        try:
            arcname = top or ("" if contents else top_name(name, path))
            extract(walk(parent, name, arcname), anchor, "/", owner, to_host=True)
        finally:
            os.close(anchor)
    finally:
        os.close(parent)


def host_destination(dst: str, kind: int, src: str) -> tuple[int, str]:
    """Docker's rules for DST on the host: (fd of the directory to extract into, the
    name the source gets there; "" to keep its own)."""
    if os.path.isdir(dst):
        return os.open(dst, inroot.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), ""
    if os.path.lexists(dst):
        if kind == stat.S_IFDIR:
            raise ShellctrError(f"cannot copy a directory to a file: {dst}",
                                "give a directory, or a path that does not exist")
    elif dst.endswith("/"):
        raise NotFound(f"destination directory {dst} does not exist",
                       "create it first, or drop the trailing /")
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        raise NotFound(f"no such directory: {parent}", "create it first")
    return os.open(parent, inroot.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), \
        os.path.basename(os.path.abspath(dst))


# -- host -> container ------------------------------------------------------------------
def copy_in(root: int, src: str, path: str, archive: bool, follow: bool) -> None:
    owner = None if archive else (0, 0)
    if src == "-":
        target = resolved_or_missing(root, path)
        if target is None or not stat.S_ISDIR(stat_in_root(root, target).st_mode):
            raise NotFound(f"destination {path} must be a directory in the container",
                           "a tar from stdin is extracted into a directory")
        try:
            with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as stream:
                extract(((member, stream.extractfile(member) if member.isreg() else None)
                         for member in stream), root, target, owner, to_host=False)
        # a bad compressed stream: OSError, zlib.error, or tarfile's own TypeError (a gzip
        # header cut short: "ord() expected a character")
        except (tarfile.TarError, EOFError, OSError, TypeError, zlib.error) as err:
            if isinstance(err, OSError) and err.errno is not None:
                raise  # the host's error (a full disk...), not the input's
            raise ShellctrError(f"stdin is not a tar archive ({err})",
                                "pipe one in: tar --create --file=- FILES | shellctr cp - "
                                "CTR:DIR") from err
        return
    parent, name, contents = open_source(-1, src, follow, in_container=False)
    try:
        kind = source_kind(parent, name, src)
        base, top = container_destination(root, path, kind)
        arcname = top or ("" if contents else top_name(name, src))
        extract(walk(parent, name, arcname), root, base, owner, to_host=False)
    finally:
        os.close(parent)


def container_destination(root: int, path: str, kind: int) -> tuple[str, str]:
    """Docker's rules for DST in the container: (resolved directory to extract into,
    the name the source gets there; "" to keep its own)."""
    target = resolved_or_missing(root, path)
    if target is not None:
        if stat.S_ISDIR(stat_in_root(root, target).st_mode):
            return target, ""
        if kind == stat.S_IFDIR:
            raise ShellctrError(f"cannot copy a directory to a file: {path}",
                                "give a directory, or a path that does not exist")
        return os.path.dirname(target), os.path.basename(target)
    if path.endswith("/"):
        raise NotFound(f"destination directory {path} does not exist in the container",
                       "create it first, or drop the trailing /")
    parent = resolved_or_missing(root, os.path.dirname(path.rstrip("/")) or "/")
    if parent is None or not stat.S_ISDIR(stat_in_root(root, parent).st_mode):
        raise NotFound(f"no such directory in the container: {os.path.dirname(path)}",
                       "create it first")
    return parent, os.path.basename(path.rstrip("/"))


def resolved_or_missing(root: int, path: str) -> str | None:
    try:
        return inroot.resolve(root, path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ShellctrError(f"{path} in the container: {err.strerror}") from err


def stat_in_root(root: int, path: str) -> os.stat_result:
    fd = inroot.open_in_root(root, path)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


# -- reading a source tree -------------------------------------------------------------
def open_source(root: int, path: str, follow: bool, in_container: bool) -> tuple[int, str, bool]:
    """(O_PATH fd of the source's directory, its name there, copy contents only).

    A trailing `/.` copies a directory's contents; a trailing `/` or -L follows a link
    at the end of the path (in the container: inside its root)."""
    contents = path.endswith("/.") or path == "."
    follow = follow or path.endswith("/") or contents
    try:
        if in_container:
            resolved = (inroot.resolve(root, path) if follow else
                        inroot.resolve(root, os.path.dirname(path.rstrip("/")) or "/")
                        + "/" + os.path.basename(path.rstrip("/")))
            if resolved == "/":  # the whole root: its contents
                return inroot.open_in_root(root, "/"), ".", True
            parent = inroot.open_in_root(root, os.path.dirname(resolved),
                                         inroot.O_PATH | os.O_DIRECTORY)
            try:
                os.stat(os.path.basename(resolved), dir_fd=parent, follow_symlinks=False)
            except OSError:
                os.close(parent)
                raise
            return parent, os.path.basename(resolved), contents
        full = os.path.realpath(path) if follow else os.path.abspath(path)
        os.lstat(full)
        parent = os.open(os.path.dirname(full) or "/", inroot.O_PATH | os.O_DIRECTORY
                         | os.O_CLOEXEC)
        return parent, os.path.basename(full) or ".", contents
    except FileNotFoundError as err:
        where = " in the container" if in_container else ""
        raise NotFound(f"could not find the file {path}{where}") from err
    except OSError as err:
        raise ShellctrError(f"{path}: {err.strerror}") from err


def source_kind(parent: int, name: str, path: str) -> int:
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if path.rstrip(".").endswith("/") and not stat.S_ISDIR(st.st_mode):
        raise ShellctrError(f"{path}: not a directory")
    return stat.S_IFMT(st.st_mode)


def top_name(name: str, path: str) -> str:
    return os.path.basename(path.rstrip("/")) if name == "." else name


def walk(parent: int, name: str, arcname: str) -> Iterator[Entry]:
    """Tar members for `name` in directory `parent` and everything below it; links are
    read as links, never followed. `arcname` "": the directory's entries, not itself."""
    seen: dict[tuple[int, int], str] = {}
    if not arcname:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
        try:
            for child in sorted(os.listdir(fd)):
                yield from walk_one(fd, child, child, seen)
        finally:
            os.close(fd)
        return
    yield from walk_one(parent, name, arcname, seen)


def walk_one(parent: int, name: str, arcname: str,
             seen: dict[tuple[int, int], str]) -> Iterator[Entry]:
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    info = tarfile.TarInfo(arcname)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        info.type = tarfile.DIRTYPE
        yield info, None
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
        try:
            for child in sorted(os.listdir(fd)):
                try:
                    yield from walk_one(fd, child, f"{arcname}/{child}", seen)
                except FileNotFoundError:  # removed while we copy (as tar: skipped)
                    continue
        finally:
            os.close(fd)
    elif kind == stat.S_IFREG:
        if st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen:
            info.type, info.linkname = tarfile.LNKTYPE, seen[(st.st_dev, st.st_ino)]
            yield info, None
            return
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=parent)
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode):  # swapped meanwhile
            os.close(fd)
            return
        seen[(st.st_dev, st.st_ino)] = arcname
        info.size = now.st_size
        yield info, os.fdopen(fd, "rb")
    elif kind == stat.S_IFLNK:
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent)
        yield info, None
    elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
        info.type = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
                     stat.S_IFIFO: tarfile.FIFOTYPE}[kind]
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        yield info, None
    # sockets: nothing to copy, as tar


# -- writing a destination tree --------------------------------------------------------
def member_parts(name: str) -> list[str]:
    parts = inroot.parts_of(name)
    if not parts or ".." in parts:
        raise ShellctrError(f"invalid name in the archive: {name!r}",
                            "names must stay below the destination")
    return parts


def extract(entries: Iterator[Entry], root: int, base: str,
            owner: tuple[int, int] | None, to_host: bool) -> None:
    """Write `entries` below `base` (a resolved directory inside `root`), each parent
    resolved inside `root`."""
    directories: list[tuple[str, tarfile.TarInfo]] = []
    for info, data in entries:
        try:
            parts = member_parts(info.name)
            parent_path = "/".join([base.rstrip("/"), *parts[:-1]]) or "/"
            try:
                parent = inroot.open_in_root(root, parent_path, inroot.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:  # a tar without its directories' members
                parent_path = inroot.resolve(root, parent_path, create="dir")
                parent = inroot.open_in_root(root, parent_path, inroot.O_PATH | os.O_DIRECTORY)
            try:
                if write_member(parent, parts[-1], info, data, root, base, owner, to_host):
                    directories.append((f"{parent_path}/{parts[-1]}", info))
            finally:
                os.close(parent)
        finally:
            if data is not None:
                data.close()
    for path, info in reversed(directories):  # last: writing inside changes a dir's mtime
        fd = inroot.open_in_root(root, path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            set_attributes(fd, info, owner)
        finally:
            os.close(fd)


def write_member(parent: int, name: str, info: tarfile.TarInfo, data: IO[bytes] | None,
                 root: int, base: str, owner: tuple[int, int] | None, to_host: bool) -> bool:
    """Create one member in directory `parent` (never following a link at `name`).
    True for a directory, whose attributes are set at the end."""
    try:
        existing: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    is_dir = existing is not None and stat.S_ISDIR(existing.st_mode)
    if info.isdir():
        if existing is not None and not is_dir:
            os.unlink(name, dir_fd=parent)
        if not is_dir:
            os.mkdir(name, 0o700, dir_fd=parent)
        return True
    if is_dir:
        raise ShellctrError(f"cannot overwrite directory {info.name!r} with a non-directory")
    if existing is not None:
        os.unlink(name, dir_fd=parent)
    if info.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            remaining = info.size
            while data is not None and remaining > 0:
                chunk = data.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                os.write(fd, chunk)
                remaining -= len(chunk)
            set_attributes(fd, info, owner)
        finally:
            os.close(fd)
    elif info.issym():
        os.symlink(info.linkname, name, dir_fd=parent)
        uid, gid = owner or (info.uid, info.gid)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
    elif info.islnk():
        parts = member_parts(info.linkname)
        source = inroot.open_in_root(root, "/".join([base.rstrip("/"), *parts[:-1]]) or "/",
                                     inroot.O_PATH | os.O_DIRECTORY)
        try:
            os.link(parts[-1], name, src_dir_fd=source, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(source)
    elif info.ischr() or info.isblk() or info.isfifo():
        if to_host and not info.isfifo():
            sys.stderr.write(f"shellctr: warning: device node {info.name} not copied to the "
                             "host\n")
            return False
        kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK if info.isblk() else stat.S_IFIFO
        os.mknod(name, kind | 0o600, os.makedev(info.devmajor, info.devminor), dir_fd=parent)
        fd = os.open(name, inroot.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:  # chmod/chown through /proc/self/fd: an O_PATH fd takes no fchmod
            if stat.S_IFMT(os.fstat(fd).st_mode) not in (stat.S_IFCHR, stat.S_IFBLK,
                                                         stat.S_IFIFO):  # swapped meanwhile
                raise ShellctrError(f"{info.name} changed while it was copied")
            uid, gid = owner or (info.uid, info.gid)
            os.chown(f"/proc/self/fd/{fd}", uid, gid)
            os.chmod(f"/proc/self/fd/{fd}", info.mode & (0o7777 if owner is None else 0o1777))
        finally:
            os.close(fd)
    return False


def set_attributes(fd: int, info: tarfile.TarInfo, owner: tuple[int, int] | None) -> None:
    """Owner (the source's with -a), mode (set-id bits only with -a), mtime."""
    uid, gid = owner or (info.uid, info.gid)
    os.fchown(fd, uid, gid)
    os.fchmod(fd, info.mode & (0o7777 if owner is None else 0o1777))
    os.utime(fd, (info.mtime, info.mtime))
