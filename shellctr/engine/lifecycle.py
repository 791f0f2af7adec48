"""What happens to containers after they start: reconcile, rm, export.

No daemon watches containers, so every command first reconciles: a container
recorded as running whose PID 1 and monitor are both gone (pid checked together with
its start time, so a reused pid is not mistaken for it) has exited.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from shellctr.core.cmd import path_arg
from shellctr.core.errors import Conflict, NotFound, ShellctrError
from shellctr.core.facts import alive
from shellctr.core.host import Host
from shellctr.core.ids import find, short_id
from shellctr.core.state import (
    ContainerConfig,
    ContainerState,
    container_config,
    container_state,
    evolve,
    save,
)
from shellctr.core.store import Store, now_iso
from shellctr.engine import cgroup
from shellctr.parts.cgroups import LIMIT_DEFAULTS, group_of

UNKNOWN_EXIT = 255  # the container ended while no shellctr process watched it


def reconcile(store: Store, cid: str) -> ContainerState:
    """The container's state, brought up to date if it ended since it was written.

    The monitor writes `exit.json` when the container ends; if both the container and
    its monitor are gone without one (killed, or the host rebooted), the exit code is
    unknown (255).
    """
    state = container_state(store, cid)
    exit_file = store.layout.container_exit_file(cid)
    if state.status != "running" or (not exit_file.exists() and (
            alive(state.pid, state.pid_start) or alive(state.monitor_pid, state.monitor_start))):
        return state
    with store.lock():
        state = container_state(store, cid)
        if state.status != "running":
            return state
        ended = {"status": "exited", "pid": 0, "pid_start": 0, "monitor_pid": 0,
                 "monitor_start": 0}
        if exit_file.exists():
            return record_end(store, cid, state)
        elif not alive(state.pid, state.pid_start) and not alive(state.monitor_pid,
                                                                  state.monitor_start):
            state = evolve(state, **ended, exit_code=UNKNOWN_EXIT, finished_at=now_iso(),
                           error="the container ended while no shellctr process watched it")
        else:
            return state
        save(store, store.layout.container_state(cid), state)
        cgroup.remove(store.host, cgroup_group(store, cid))
    return state


def record_end(store: Store, cid: str, state: ContainerState) -> ContainerState:
    """Record the end the monitor wrote in exit.json; remove the cgroups (locked)."""
    record = store.read(store.layout.container_exit_file(cid))
    group = cgroup_group(store, cid)
    state = evolve(state, status="exited", pid=0, pid_start=0, monitor_pid=0,
                   monitor_start=0, exit_code=record["exit_code"],
                   finished_at=record["finished_at"],
                   oom_killed=cgroup.oom_killed(store.host.facts, group))
    save(store, store.layout.container_state(cid), state)
    cgroup.remove(store.host, group)
    return state


def find_container(store: Store, ref: str) -> str:
    """A container's id from its full id, unique id prefix, or name."""
    return find(ref, store.container_names(), "container")


def remove(host: Host, store: Store, ref: str, force: bool, volumes: bool = False) -> None:
    """`rm [-f] [-v]`: refuse a running container unless forced; then remove every trace
    (with -v, its anonymous volumes too)."""
    cid = find_container(store, ref)
    if force:
        mark_stopping(store, cid)  # first: a restart due during its back-off must not happen
    state = reconcile(store, cid)
    if state.status == "running":
        if not force:
            raise Conflict(f"cannot remove container {ref}: it is running",
                           "stop it first, or use rm -f")
        host.step(f"kill container {short_id(cid)}")
        thaw(host, cgroup_group(store, cid))
        if alive(state.pid, state.pid_start):  # its pid may belong to another process now
            host.kill(state.pid, signal.SIGKILL)
        if not host.dry_run:
            wait_gone(state.pid, state.pid_start)
            wait_exit_recorded(store, cid)  # the monitor is done with the container's files
    with store.lock():
        if not store.layout.container_config(cid).exists():
            return  # run --rm: its monitor removed it when it ended
        if reconcile(store, cid).status == "running":  # its restart policy started it again
            raise Conflict(f"cannot remove container {ref}: it is running",
                           "stop it first, or use rm -f")
        config = container_config(store, cid)
        record = store.config_record(cid)
        host.step(f"remove container {short_id(cid)}")
        cgroup.remove(host, group_of(cid, config.cgroup_parent))
        release_network(host, store, cid)
        store.remove_container(cid)
        if volumes:
            from shellctr.engine.container import remove_volumes
            remove_volumes(host, store, record)
        if not store.layout.image_file(config.image_id).exists():
            # its image went with rmi -f while it existed: its layers may be free now
            from shellctr.engine.image import remove_unused_layers
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


# -- the verbs of a container's life ------------------------------------------------------
STOP_POLL = 0.02  # seconds between looks at a process we are waiting for


def require_running(store: Store, cid: str, ref: str) -> ContainerState:
    state = reconcile(store, cid)
    if state.status != "running":
        raise Conflict(f"container {ref} is not running", "start it first")
    return state


def mark_stopping(store: Store, cid: str) -> None:
    """Tell the restart policy that the user ended this container: whether it runs, or
    has exited and its hook waits to restart it (the hook checks under the lock)."""
    with store.lock():
        state = container_state(store, cid)
        if state.stopping or state.status == "created":
            return
        if state.status == "running" or container_config(store, cid).restart_policy != "no":
            save(store, store.layout.container_state(cid), evolve(state, stopping=True))


def wait_exit_recorded(store: Store, cid: str, timeout: float = 10.0) -> None:
    """After PID 1 is gone: wait until its end is recorded (or the container removed,
    for --rm) by the monitor or the attached `run`."""
    deadline = time.monotonic() + timeout
    try:
        while (store.layout.container_config(cid).exists()
               and reconcile(store, cid).status == "running" and time.monotonic() < deadline):
            time.sleep(STOP_POLL)
    except FileNotFoundError:  # removed (--rm) between the check and the read
        return


def stop(host: Host, store: Store, ref: str, timeout: int) -> None:
    """`stop -t N`: the stop signal (the image's StopSignal, else SIGTERM), N seconds'
    grace, then SIGKILL."""
    cid = find_container(store, ref)
    mark_stopping(store, cid)  # first: a restart due during its back-off must not happen
    state = reconcile(store, cid)
    if state.status != "running":
        return  # Docker: stopping a stopped container is not an error
    host.step(f"stop container {short_id(cid)}")
    thaw(host, cgroup_group(store, cid))  # a frozen process cannot act on its stop signal
    stop_signal = container_config(store, cid).stop_signal  # the image's StopSignal
    if alive(state.pid, state.pid_start):
        host.kill(state.pid, parse_signal(stop_signal) if stop_signal else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(state.pid, state.pid_start) and time.monotonic() < deadline:
        time.sleep(STOP_POLL)
    if alive(state.pid, state.pid_start):
        host.kill(state.pid, signal.SIGKILL)
        wait_gone(state.pid, state.pid_start)
    wait_exit_recorded(store, cid)


def kill(host: Host, store: Store, ref: str, signum: int) -> None:
    """`kill -s SIG`: one signal to PID 1."""
    cid = find_container(store, ref)
    if signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        mark_stopping(store, cid)  # first: also cancels a restart waiting in its back-off
    state = require_running(store, cid, ref)
    host.step(f"signal container {short_id(cid)}")
    if signum == signal.SIGKILL:
        thaw(host, cgroup_group(store, cid))
    if alive(state.pid, state.pid_start):
        host.kill(state.pid, signum)
    if signum == signal.SIGKILL:
        wait_gone(state.pid, state.pid_start)
        wait_exit_recorded(store, cid)


def wait(store: Store, ref: str) -> int:
    """`wait`: block until the container ends; its exit code.

    Without the store's lock: the hook of an --rm container takes it to remove the
    container, exit.json and all, so a `wait` queued behind it would find nothing left."""
    cid = find_container(store, ref)
    exit_file = store.layout.container_exit_file(cid)
    try:
        while True:
            try:  # the monitor's record, written atomically as PID 1 ends
                return int(store.read(exit_file)["exit_code"])
            except FileNotFoundError:
                pass
            state = container_state(store, cid)
            if state.status == "exited":
                return state.exit_code
            if (state.status == "running" and not alive(state.pid, state.pid_start)
                    and not alive(state.monitor_pid, state.monitor_start)
                    and not exit_file.exists()):  # ended unwatched: reconcile records 255
                return reconcile(store, cid).exit_code
            time.sleep(STOP_POLL)
    except FileNotFoundError as err:  # removed before its end could be read
        raise NotFound(f"no such container: {ref}", "it was removed while we waited") \
            from err


def rename(host: Host, store: Store, ref: str, new_name: str) -> None:
    from shellctr.core.ids import check_name

    check_name(new_name)
    with store.lock():
        cid = find_container(store, ref)
        names = store.container_names()
        if new_name in names.values() and names[cid] != new_name:
            raise Conflict(f'the container name "{new_name}" is already in use',
                           "choose another name")
        config = container_config(store, cid)
        host.step(f"rename container {short_id(cid)} to {new_name}")
        save(store, store.layout.container_config(cid), evolve(config, name=new_name))


def update(host: Host, store: Store, ref: str, flags: dict[str, str | bool | None],
           restart: str | None) -> None:
    """`update`: new limits (live, if it runs) and restart policy, kept in its config."""
    from shellctr.engine.container import parse_restart

    cid = find_container(store, ref)
    running = reconcile(store, cid).status == "running"
    with store.lock():
        config = container_config(store, cid)
        current = {key: getattr(config, key) for key in LIMIT_DEFAULTS}
        changes = cgroup.parse_limits(host.facts, flags, current)
        if restart is not None:
            policy, count = parse_restart(restart, config.auto_remove)
            changes.update(restart_policy=policy, restart_max=count)
        updated = evolve(config, **changes)  # validated before anything is written
        host.step(f"update container {short_id(cid)}")
        group = group_of(cid, config.cgroup_parent)
        if running and cgroup.has_cgroups(host.facts, group):
            cgroup.update(host, group, changes)
        save(store, store.layout.container_config(cid), updated)


def parse_signal(text: str) -> int:
    """`KILL`, `SIGKILL` or `9`."""
    name = text.upper().removeprefix("SIG")
    if name.isdigit():
        number = int(name)
        if 0 < number < signal.NSIG:
            return number
    elif "SIG" + name in signal.Signals.__members__:  # not SIG_IGN, SIG_BLOCK...
        return int(signal.Signals["SIG" + name])
    raise ShellctrError(f"invalid signal: {text}", "use a name like TERM or a number like 15")


def container_pids(pid: int) -> list[int]:
    """Host pids of every process in the pid namespace whose init is `pid`."""
    import os

    try:
        target = os.readlink(f"/proc/{pid}/ns/pid")
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == target:
                    pids.append(int(entry))
            except OSError:  # gone meanwhile, or a kernel thread
                continue
    return sorted(pids)


def top(host: Host, store: Store, ref: str, ps_args: list[str]) -> str:
    """`top CTR [ps options]`: the host's ps, narrowed to the container's processes."""
    cid = find_container(store, ref)
    state = require_running(store, cid, ref)
    pids = {str(pid) for pid in container_pids(state.pid)}
    code, out, err = host.probe(["ps", *(ps_args or ["-ef"])])
    if code != 0:
        raise ShellctrError(f"ps failed: {err.strip()}")
    lines = out.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise ShellctrError("ps output has no PID column", "include pid in the ps format")
    column = header.index("PID")
    kept = [line for line in lines[1:] if line.split()[column:column + 1] and
            line.split()[column] in pids]
    return "\n".join([lines[0], *kept])


def on_exited(host: Host, store: Store, cid: str) -> int:
    """The monitor's hook when a detached container ends: record it, then carry out the
    restart policy or --rm. Returns the container's exit code."""
    from shellctr.engine.container import start

    wait_start_recorded(store, cid)
    with store.lock():
        if not store.layout.container_config(cid).exists():
            return 0  # removed meanwhile (rm -f)
        state = reconcile(store, cid)
        if state.status == "created":  # no `start` recorded it: a --dry-run script ran it
            state = record_end(store, cid, state)
        config = container_config(store, cid)
        if state.status != "running":  # else `start`/`restart` already began a new run
            release_network(host, store, cid)  # a restart makes them anew
        restart = should_restart(config.restart_policy, config.restart_max, state)
        if not restart:
            if config.auto_remove:
                from shellctr.engine.container import remove_volumes

                record = store.config_record(cid)
                host.step(f"remove container {short_id(cid)} (--rm)")
                store.remove_container(cid)
                remove_volumes(host, store, record)
            return state.exit_code
    time.sleep(min(0.1 * 2 ** state.restart_count, 10.0))  # Docker's back-off, capped
    # under the lock until it runs: a `stop` or `rm -f` now either comes first (and we
    # see `stopping`) or finds it running, never exited with a restart on its way
    with store.lock():
        if not store.layout.container_config(cid).exists():
            return state.exit_code
        current = container_state(store, cid)
        if current.status != "exited" or current.stopping:
            return state.exit_code  # started or stopped by the user meanwhile
        save(store, store.layout.container_state(cid),
             evolve(current, restart_count=current.restart_count + 1))
        host.step(f"restart container {short_id(cid)} ({config.restart_policy})")
        start(host, store, store.config_record(cid), attach=False)
    return state.exit_code


def release_network(host: Host, store: Store, cid: str) -> None:
    """The container's network endpoints go when it ends (and at rm, after a crash)."""
    from shellctr.engine.container import release_network as release

    release(host, store, store.config_record(cid))


def wait_start_recorded(store: Store, cid: str, timeout: float = 10.0) -> None:
    """A container can end before `start` has recorded it running: let it finish first."""
    deadline = time.monotonic() + timeout
    while (store.layout.container_config(cid).exists() and time.monotonic() < deadline
           and container_state(store, cid).status == "created"):
        time.sleep(STOP_POLL)


def should_restart(policy: str, max_retries: int, state: ContainerState) -> bool:
    if state.stopping or policy == "no":
        return False
    if policy == "on-failure":
        return state.exit_code != 0 and (max_retries == 0 or state.restart_count < max_retries)
    return policy in ("always", "unless-stopped")


# -- ps --filter -------------------------------------------------------------------------
FILTER_KEYS = ("id", "name", "status", "exited", "ancestor", "label")


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    """`ps -f key=value`... (filters.parse_filters with ps' keys)."""
    from shellctr.parts import filters

    return filters.parse_filters(items, FILTER_KEYS)


def container_matches(store: Store, config: ContainerConfig, state: ContainerState,
                      filters: dict[str, list[str]]) -> bool:
    import re

    from shellctr.parts.filters import label_matches, matches

    def ancestor(ref: str) -> bool:
        from shellctr.engine.image import find_image

        try:
            return find_image(store, ref).id == config.image_id
        except ShellctrError:
            return False

    tests: dict[str, Callable[[str], bool]] = {
        "id": lambda v: config.id.startswith(v),
        "name": lambda v: re.search(v, config.name) is not None,
        "status": lambda v: state.status == v,
        "exited": lambda v: state.status == "exited" and str(state.exit_code) == v,
        "ancestor": ancestor,
        "label": lambda v: label_matches(config.labels, v),
    }
    return matches(filters, tests)


def cgroup_group(store: Store, cid: str) -> str:
    """The container's cgroup path (`shellctr/<id>`, or below its --cgroup-parent)."""
    return group_of(cid, store.config_record(cid).get("cgroup_parent", ""))


def thaw(host: Host, group: str) -> None:
    if cgroup.is_frozen(host.facts, group):
        cgroup.freeze(host, group, frozen=False)


def pause(host: Host, store: Store, ref: str, frozen: bool) -> None:
    """`pause` / `unpause`: freeze or thaw every process of the container."""
    cid = find_container(store, ref)
    require_running(store, cid, ref)
    group = cgroup_group(store, cid)
    if cgroup.is_frozen(host.facts, group) == frozen:
        raise Conflict(f"container {ref} is {'already' if frozen else 'not'} paused")
    host.step(f"{'pause' if frozen else 'unpause'} container {short_id(cid)}")
    cgroup.freeze(host, group, frozen)
