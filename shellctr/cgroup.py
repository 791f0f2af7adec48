"""cgroups: the container's processes as one group the kernel can freeze (and, later,
count and limit).

Detected once per command: the unified v2 hierarchy (`/sys/fs/cgroup/cgroup.controllers`
exists) or v1, where each controller has its own hierarchy (these machines: v1 hybrid).
A container's cgroup is `shellctr/<id>` in each hierarchy shellctr uses; init.py puts
PID 1 in it before exec, and `exec` puts each exec'd process in it, so every process
of the container is inside.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from shellctr.errors import ShellctrError
from shellctr.host import Host, Rollback

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "shellctr"
V1_CONTROLLERS = ("freezer", "memory")  # those a container needs so far
MIN_MEMORY = 6 * 1024 * 1024  # Docker's smallest -m


def unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def container_cgroups(cid: str) -> list[Path]:
    """The container's cgroup directory in each hierarchy shellctr uses."""
    if unified():
        return [CGROUP_ROOT / PARENT / cid]
    return [CGROUP_ROOT / controller / PARENT / cid for controller in V1_CONTROLLERS
            if (CGROUP_ROOT / controller).is_dir()]


def create(host: Host, cid: str, rollback: Rollback, memory: int = 0) -> list[Path]:
    """Make the container's cgroups and set its limits; the undo removes them."""
    paths = container_cgroups(cid)
    for path in paths:
        for attempt in range(3):
            host.ensure_dir(path.parent)
            try:
                host.make_cgroup(path, rollback=rollback)
                break
            except FileNotFoundError:  # another container's cleanup took the parent away
                if attempt == 2:
                    raise
    if memory:
        limit_memory(host, cid, memory)
    return paths


def limit_memory(host: Host, cid: str, memory: int) -> None:
    """`-m`: at most `memory` bytes of RAM, and as much swap again (Docker's default)."""
    for path in container_cgroups(cid):
        if unified():
            host.write_value(path / "memory.max", str(memory))
            if (path / "memory.swap.max").exists():
                host.write_value(path / "memory.swap.max", str(memory))
        elif path.parent.parent.name == "memory":
            host.write_value(path / "memory.limit_in_bytes", str(memory))
            if (path / "memory.memsw.limit_in_bytes").exists():
                host.write_value(path / "memory.memsw.limit_in_bytes", str(2 * memory))


def oom_killed(cid: str) -> bool:
    """Whether the kernel's OOM killer killed a process of the container."""
    for path in container_cgroups(cid):
        name = "memory.events" if unified() else "memory.oom_control"
        if unified() or path.parent.parent.name == "memory":
            try:
                lines = (path / name).read_text().splitlines()
            except FileNotFoundError:
                continue
            counts = dict(line.split() for line in lines if len(line.split()) == 2)
            if int(counts.get("oom_kill", "0")) > 0:
                return True
    return False


def parse_size(text: str) -> int:
    """Docker's sizes: `512m`, `1g`, `1.5G`, `100k`, bytes; binary multiples."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", text.strip().lower())
    if match is None:
        raise ShellctrError(f"invalid size: {text!r}", "use a number with b, k, m or g")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " kmgtp".index(unit or " "))


def remove(host: Host, cid: str) -> None:
    """Remove the container's cgroups, and the parent once unused.

    The kernel ends a pid namespace's processes when its PID 1 dies, but they may take
    a moment to be gone: the cgroup is busy (EBUSY) until then.
    """
    for path in container_cgroups(cid):
        deadline = time.monotonic() + 5.0
        while host.exists(path):
            try:
                host.remove_cgroup(path)
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        remove_parent_if_unused(host, path.parent)


def remove_parent_if_unused(host: Host, parent: Path) -> None:
    """Other shellctr processes create and remove cgroups beside ours at the same time:
    the parent may gain a child, or be gone, at any moment."""
    try:
        if any(entry.is_dir() for entry in parent.iterdir()):
            return
        host.remove_cgroup(parent)
    except OSError as err:
        if err.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT):
            raise


def freeze(host: Host, cid: str, frozen: bool) -> None:
    """pause / unpause: the freezer stops every process of the container at once."""
    for path in container_cgroups(cid):
        if unified():
            host.write_value(path / "cgroup.freeze", "1" if frozen else "0")
        elif path.parent.parent.name == "freezer":
            host.write_value(path / "freezer.state", "FROZEN" if frozen else "THAWED")
    if not host.dry_run:
        wait_frozen(cid, frozen)


def is_frozen(cid: str) -> bool:
    for path in container_cgroups(cid):
        try:
            if unified():
                events = (path / "cgroup.events").read_text()
                return "frozen 1" in events.splitlines()
            if path.parent.parent.name == "freezer":
                return (path / "freezer.state").read_text().strip() == "FROZEN"
        except FileNotFoundError:
            return False
    return False


def wait_frozen(cid: str, frozen: bool, timeout: float = 10.0) -> None:
    """The freezer works asynchronously: wait until it reports the state asked for."""
    deadline = time.monotonic() + timeout
    while is_frozen(cid) != frozen:
        if time.monotonic() > deadline:
            raise ShellctrError(f"the freezer did not {'freeze' if frozen else 'thaw'} "
                                "the container in time")
        time.sleep(0.01)


def procs(cid: str) -> list[int]:
    """Host pids of every process in the container's cgroup."""
    for path in container_cgroups(cid):
        try:
            return [int(line) for line in (path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            continue
    return []


def has_cgroups(cid: str) -> bool:
    return any(os.path.isdir(path) for path in container_cgroups(cid))
