"""The container's own mounts: volumes, bind mounts and tmpfs, made by init.py.

Run inside the container's mount namespace, after the overlay is mounted and before
the pivot (stdlib only, like init.py). Each target is resolved inside the rootfs by
inroot.resolve: its symlinks are followed as the container would see them, never out
of the rootfs (an image's `/data -> /etc` leads to the rootfs' /etc); missing
directories are created there (an empty file for a file source), and the mount goes
onto the fd that openat2(RESOLVE_IN_ROOT) returned, as `/proc/self/fd/N`: no path is
looked up twice. A volume that is still empty is first seeded with the image's files
at its target (owners, modes, times; links as links), as Docker does.
"""

from __future__ import annotations

import os

from shellctr.inside import inroot
from shellctr.inside.steps import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    PROPAGATION_FLAGS,
    SetupError,
    Step,
    _check,
    _libc,
    quote,
    sh,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# The kernel's trees, which the engine mounts and masks itself: a volume or bind may not
# go on or inside them (a fake /proc would feed the confinement false facts), whether
# named so or reached through a link in the image (issue 13, defect 2).
KERNEL_TREES = ("/proc", "/sys")


def kernel_path(path: str) -> bool:
    """`path` (clean, absolute) is /proc, /sys or inside one of them."""
    return any(path == tree or path.startswith(tree + "/") for tree in KERNEL_TREES)


def make_dir_step(rootfs: str, path: str) -> Step:
    """`mkdir -p` of `path` inside the rootfs (links followed inside it only): the
    working directory, made before --read-only remounts the root."""
    def make() -> None:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            inroot.resolve(root, path, create="dir")
        except OSError as err:
            raise SetupError(f"cannot make the working directory {path}: {err.strerror}") \
                from err
        finally:
            os.close(root)

    return Step(lambda: sh("mkdir", "--parents", rootfs + path), make)


def mount_steps(rootfs: str, entries: list[dict[str, Any]],
                slave_namespace: bool = False) -> list[Step]:
    """The steps of every mount in the spec's `mounts` (volume.spec_mounts), in order.

    In a slave namespace (a bind asked for [r]slave) a bind of a host path starts as a
    slave of the host's mount: each bind is given its mode (rprivate unless it asked
    for another), so only the [r]slave ones keep receiving the host's mount events.
    """
    steps: list[Step] = []
    for entry in entries:
        steps += user_mount(rootfs, entry, slave_namespace)
    return steps


def user_mount(rootfs: str, entry: dict[str, Any], slave_namespace: bool = False) -> list[Step]:
    target, full = str(entry["target"]), rootfs + str(entry["target"])
    source = str(entry.get("source", ""))
    bind = entry["type"] == "bind"
    found: dict[str, Any] = {}  # the target, resolved in the rootfs, for later steps

    def in_root(flags: int = inroot.O_PATH) -> int:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return inroot.open_in_root(root, found["path"], flags)
        finally:
            os.close(root)

    def make_target() -> None:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            kind = "file" if bind and not os.path.isdir(source) else "dir"
            found["path"] = inroot.resolve(root, target, create=kind)
        except OSError as err:
            raise SetupError(f"cannot make the mount point {target} in the container: "
                             f"{err.strerror}") from err
        finally:
            os.close(root)
        if kernel_path("/" + found["path"].lstrip("/")):  # a link in the image led there
            raise SetupError(f"the mount point {target} leads into "
                             f"/{found['path'].lstrip('/')}: refusing to mount on the "
                             "kernel's /proc or /sys")

    def seed() -> None:
        with os.scandir(source) as entries:
            if any(True for _ in entries):
                return  # only an empty volume takes the image's files
        try:
            image_dir = in_root(os.O_RDONLY | os.O_DIRECTORY)
        except NotADirectoryError:
            return
        volume = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            inroot.copy_tree(image_dir, volume)
            inroot.copy_attributes(volume, os.fstat(image_dir))
        finally:
            os.close(volume)
            os.close(image_dir)

    def attach() -> None:
        fd = in_root()
        try:
            point = f"/proc/self/fd/{fd}"
            if bind:
                _check(_libc.mount(source.encode(), point.encode(), None, MS_BIND | MS_REC,
                                   None), f"mount {source} on {target}")
            else:
                _check(_libc.mount(b"tmpfs", point.encode(), b"tmpfs", int(entry["flags"]),
                                   str(entry["data"]).encode() or None),
                       f"mount tmpfs on {target}")
        finally:
            os.close(fd)

    def readonly() -> None:
        fd = in_root()  # opened anew: it now resolves to the new mount's root
        try:
            point = f"/proc/self/fd/{fd}"
            kept = os.statvfs(point).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
            _check(_libc.mount(b"", point.encode(), None,
                               MS_BIND | MS_REMOUNT | MS_RDONLY | kept, None),
                   f"remount {target} read-only")
        finally:
            os.close(fd)

    def propagate() -> None:
        fd = in_root()  # the new mount's root, as for readonly()
        try:
            _check(_libc.mount(b"", f"/proc/self/fd/{fd}".encode(), None,
                               PROPAGATION_FLAGS[mode], None), f"make {target} {mode}")
        finally:
            os.close(fd)

    def make_shell() -> str:
        if bind and not os.path.isdir(source):  # a file onto a file
            return sh("mkdir", "--parents", os.path.dirname(full)) + " && " + sh("touch", full)
        return sh("mkdir", "--parents", full)

    steps = [Step(make_shell, make_target)]
    if entry.get("seed"):
        steps.append(Step(lambda: f"[ -n \"$(ls -A {quote(source)})\" ] || "
                          + sh("cp", "--archive", "--no-dereference", full + "/.", source),
                          seed))
    if bind:
        steps.append(Step(lambda: sh("mount", "--rbind", source, full), attach))
        mode = str(entry.get("propagation") or "rprivate")
        if slave_namespace:
            steps.append(Step(lambda: sh("mount", f"--make-{mode}", full), propagate))
        if entry["readonly"]:
            steps.append(Step(lambda: sh("mount", "--options", "remount,bind,ro", full),
                              readonly))
    else:
        flags, data = int(entry["flags"]), str(entry["data"])
        words = [name for bit, name in ((MS_RDONLY, "ro"), (MS_NOSUID, "nosuid"),
                                        (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"))
                 if flags & bit] + ([data] if data else [])
        steps.append(Step(lambda: sh("mount", "--types", "tmpfs", "tmpfs", full,
                                     *(("--options", ",".join(words)) if words else ())),
                          attach))
    return steps
