"""What happens to containers after they start: reconcile, rm, export.

No daemon watches containers, so every command first reconciles: a container
recorded as running whose PID 1 and monitor are both gone (pid checked together with
its start time, so a reused pid is not mistaken for it) has exited.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from shellctr.cmd import path_arg
from shellctr.errors import Conflict, ShellctrError
from shellctr.host import Host, process_start
from shellctr.ids import find, short_id
from shellctr.state import ContainerState, container_config, container_state, evolve, save
from shellctr.store import Store, now_iso

UNKNOWN_EXIT = 255  # the container ended while no shellctr process watched it


def alive(pid: int, start: int) -> bool:
    """The process `pid` still runs and is the one that started at `start`."""
    return pid > 0 and process_start(pid) == start


def parent_pid(pid: int) -> int | None:
    """The parent of `pid`, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            return int(stream.read().rsplit(b")", 1)[1].split()[1])  # field 4 of stat(5)
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def unshare_of(state: ContainerState) -> int | None:
    """The pid of the `unshare` between a running container's monitor and its PID 1."""
    if not alive(state.monitor_pid, state.monitor_start):
        return None
    wrapper = parent_pid(state.pid)
    if wrapper is None or parent_pid(wrapper) != state.monitor_pid:
        return None  # not the monitor's child: never signal an unrelated process
    return wrapper


def reconcile(store: Store, cid: str) -> ContainerState:
    """The container's state, corrected if it ended while nothing was watching."""
    state = container_state(store, cid)
    if state.status != "running" or alive(state.pid, state.pid_start):
        return state
    if alive(state.monitor_pid, state.monitor_start):
        return state  # its monitor is about to record the exit
    with store.lock():
        state = container_state(store, cid)
        if state.status == "running" and not alive(state.pid, state.pid_start):
            state = evolve(state, status="exited", exit_code=UNKNOWN_EXIT, pid=0, pid_start=0,
                           monitor_pid=0, monitor_start=0, finished_at=now_iso(),
                           error="the container ended while no shellctr process watched it")
            save(store, store.layout.container_state(cid), state)
    return state


def find_container(store: Store, ref: str) -> str:
    """A container's id from its full id, unique id prefix, or name."""
    return find(ref, store.container_names(), "container")


def remove(host: Host, store: Store, ref: str, force: bool) -> None:
    """`rm [-f]`: refuse a running container unless forced; then remove every trace."""
    cid = find_container(store, ref)
    state = reconcile(store, cid)
    if state.status == "running":
        if not force:
            raise Conflict(f"cannot remove container {ref}: it is running",
                           "stop it first, or use rm -f")
        host.step(f"kill container {short_id(cid)}")
        wrapper = unshare_of(state)
        if wrapper is not None:
            # unshare (util-linux 2.38) reports a child killed by SIGKILL as exit 1; killed
            # first, it dies of the signal itself, and the monitor records 137 as Docker does
            host.kill(wrapper, signal.SIGKILL)
        host.kill(state.pid, signal.SIGKILL)
        if not host.dry_run:
            wait_gone(state.pid, state.pid_start)
    with store.lock():
        if not store.layout.container_config(cid).exists():
            return  # run --rm: its monitor removed it when it ended
        image_id = container_config(store, cid).image_id
        host.step(f"remove container {short_id(cid)}")
        store.remove_container(cid)
        if not store.layout.image_file(image_id).exists():
            # its image went with rmi -f while it existed: its layers may be free now
            from shellctr.image import remove_unused_layers
            remove_unused_layers(host, store)


def wait_gone(pid: int, start: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid, start):
        if time.monotonic() > deadline:
            raise ShellctrError(f"process {pid} did not exit after SIGKILL")
        time.sleep(0.01)


def export(host: Host, store: Store, ref: str, output: Path | None) -> None:
    """Write the container's filesystem as one flat tar (to `output` or stdout)."""
    if output is None and sys.stdout.isatty():
        raise ShellctrError("refusing to write a tar archive to a terminal",
                            "use -o FILE or redirect stdout")
    cid = find_container(store, ref)
    state = reconcile(store, cid)
    layout = store.layout
    tar = ["tar", "--create", "--numeric-owner",
           "--one-file-system",  # leave out /proc, /sys, /dev: they are not the image
           f"--file={path_arg(output) if output is not None else '-'}"]
    host.step(f"export container {short_id(cid)}")
    if state.status == "running":
        # the running container's root, as its PID 1 sees it
        argv = [*tar, f"--directory=/proc/{state.pid}/root", "."]
    else:
        config = container_config(store, cid)
        rootfs = path_arg(layout.container_rootfs(cid))
        lowers = ":".join(path_arg(layout.layer_dir(d)) for d in reversed(config.layers))
        options = (f"lowerdir={lowers},upperdir={path_arg(layout.container_upper(cid))},"
                   f"workdir={path_arg(layout.container_work(cid))}")
        # mount the overlay in a private mount namespace that ends with tar: it never
        # shows on the host, even if this process is killed half-way
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", 'mount --types overlay overlay --options "$1" "$2" && shift 2 && '
                'exec "$@"', "sh", options, rootfs, *tar, f"--directory={rootfs}", "."]
    host.run(argv, stdout=sys.stdout.buffer if output is None else None)
