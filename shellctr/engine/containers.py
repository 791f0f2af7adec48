"""The verbs on an existing container: rm, stop, kill, wait, rename, update, pause, top,
export, ps' filters, and the monitor's hook (`_exited`). Each moves the container's life
through lifecycle.py."""

from __future__ import annotations

import sys
import time

from shellctr.core.cmd import path_arg
from shellctr.core.errors import Conflict, CorruptRecord, NotFound, ShellctrError, UsageError
from shellctr.core.facts import Facts
from shellctr.core.host import Host
from shellctr.core.ids import find, short_id
from shellctr.core.store import Store, now_iso
from shellctr.engine import cgroup, events
from shellctr.engine.lifecycle import (
    POLL,
    container_group,
    mark_stopping,
    reconcile,
    record_end,
    should_restart,
    teardown,
    wait_exit_recorded,
    wait_gone,
    wait_start_recorded,
)
from shellctr.parts.cgroups import LIMIT_DEFAULTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from shellctr.core.records import ContainerRecord, StateRecord


def find_container(store: Store, ref: str) -> str:
    """A container's id from its full id, unique id prefix, or name. A full id is
    looked up alone: every other way reads each container's state for its name."""
    facts, layout = store.host.facts, store.layout
    # its config.json there: as container_names would list it (a corrupt or missing
    # state.json too: found by its id, to be removed)
    if (len(ref) == 64 and all(c in "0123456789abcdef" for c in ref)
            and facts.is_file(layout.container_config_at(ref))):
        return ref
    return find(ref, store.container_names(), "container")


def require_running(store: Store, cid: str, ref: str) -> StateRecord:
    state = reconcile(store, cid)
    if state["status"] != "running":
        raise Conflict(f"container {ref} is not running", "start it first")
    return state


def signal_end(host: Host, store: Store, cid: str, state: StateRecord,
               signum: int) -> None:
    """Send PID 1 a signal meant to end it. Under --dry-run the plan takes it as ended:
    the monitor would record the end (exit.json) and exit."""
    exit_file = store.layout.container_exit_file(cid)
    record = f'{{"exit_code":{128 + signum},"finished_at":"{now_iso()}"}}'.encode()

    def ended(facts: Facts) -> None:
        facts.plan_end(state["pid"])
        facts.plan_end(state["monitor_pid"])
        facts.plan_write(exit_file, record)

    if host.facts.alive(state["pid"], state["pid_start"]):  # else its pid may be another's
        host.kill(state["pid"], signum, effect=ended)


def remove(host: Host, store: Store, ref: str, force: bool, volumes: bool = False) -> None:
    """`rm [-f] [-v]`: refuse a running container unless forced; then remove every trace
    (with -v, its anonymous volumes too). A container whose records are corrupt goes with
    -f, its host objects found by its id; one whose removal a kill interrupted (its
    tombstone) is finished."""
    try:
        cid = find_container(store, ref)
    except NotFound:
        with store.lock():
            begun = [cid for cid in store.tombstones() if cid.startswith(ref)] if ref else []
            if len(begun) != 1:
                raise
            store.remove_tombstone(begun[0])
        return
    try:
        remove_found(host, store, cid, ref, force, volumes)
    except CorruptRecord:
        if not force:
            raise
        remove_broken(host, store, cid)
    except FileNotFoundError as err:  # removed meanwhile, by a parallel rm
        raise NotFound(f"no such container: {ref}") from err


def remove_found(host: Host, store: Store, cid: str, ref: str, force: bool,
                 volumes: bool) -> None:
    import signal  # here: its enums cost the read verbs ~2 ms

    auto_remove = store.container_config(cid)["auto_remove"]
    if force:
        mark_stopping(store, cid)  # first: a restart due during its back-off must not happen
    state = reconcile(store, cid)
    if state["status"] == "running":
        if not force:
            raise Conflict(f"cannot remove container {ref}: it is running",
                           "stop it first, or use rm -f")
        host.step(f"kill container {short_id(cid)}")
        thaw(host, store, cid)
        signal_end(host, store, cid, state, signal.SIGKILL)
        events.container_event(store, cid, "kill", signal=str(int(signal.SIGKILL)))
        wait_gone(host, state["pid"], state["pid_start"])
        wait_exit_recorded(store, cid)  # the monitor is done with the container's files
    with store.lock():
        if not store.exists(store.layout.container_config(cid)):
            if auto_remove:
                return  # run --rm: its monitor removed it when it ended
            raise NotFound(f"no such container: {ref}")  # a parallel rm removed it
        if reconcile(store, cid)["status"] == "running":  # its restart policy started it
            raise Conflict(f"cannot remove container {ref}: it is running",
                           "stop it first, or use rm -f")
        teardown(host, store, store.container(cid), remove=True, volumes=volumes)


def remove_broken(host: Host, store: Store, cid: str) -> None:
    """`rm -f` of a container whose config.json or state.json is corrupt (or missing):
    what its id names goes (the processes in its cgroup, the cgroup, its network
    endpoints and netns), then the container."""
    from shellctr.engine.lifecycle import kill_unrecorded, salvaged

    host.step(f"kill container {short_id(cid)} (its records are corrupt)")
    kill_unrecorded(host, store, cid)  # also when it has no cgroups (as in a netns exec)
    with store.lock():
        if not store.exists(store.layout.container_config(cid)):
            return
        container = salvaged(store, cid)
        group = container_group(container)
        if cgroup.has_cgroups(host.facts, group):
            cgroup.kill_all(host, group)
        teardown(host, store, container, remove=True)


def stop(host: Host, store: Store, ref: str, timeout: int | None,
         signal_name: str | None = None) -> None:
    """`stop -t N -s SIG`: the stop signal (SIG, else --stop-signal or the image's
    StopSignal, else SIGTERM), N seconds' grace (else --stop-timeout, else 10), then
    SIGKILL."""
    import signal  # here: its enums cost the read verbs ~2 ms

    signum = parse_signal(signal_name) if signal_name is not None else None
    cid = find_container(store, ref)
    mark_stopping(store, cid)  # first: a restart due during its back-off must not happen
    state = reconcile(store, cid)
    if state["status"] != "running":
        return  # Docker: stopping a stopped container is not an error
    host.step(f"stop container {short_id(cid)}")
    thaw(host, store, cid)  # a frozen process cannot act on its stop signal
    config = store.container_config(cid)
    if signum is None:
        signum = parse_signal(config["stop_signal"]) if config["stop_signal"] else signal.SIGTERM
    if timeout is None:
        timeout = config.get("stop_timeout")
        timeout = 10 if timeout is None else timeout
    signal_end(host, store, cid, state, signum)
    events.container_event(store, cid, "kill", signal=str(signum))
    deadline = time.monotonic() + timeout if timeout >= 0 else float("inf")  # -1: forever
    while host.facts.alive(state["pid"], state["pid_start"]) and time.monotonic() < deadline:
        time.sleep(POLL)
    if host.facts.alive(state["pid"], state["pid_start"]):
        signal_end(host, store, cid, state, signal.SIGKILL)
        events.container_event(store, cid, "kill", signal=str(int(signal.SIGKILL)))
        wait_gone(host, state["pid"], state["pid_start"])
    wait_exit_recorded(store, cid)
    events.container_event(store, cid, "stop")


def kill(host: Host, store: Store, ref: str, signum: int) -> None:
    """`kill -s SIG`: one signal to PID 1."""
    import signal  # here: its enums cost the read verbs ~2 ms

    cid = find_container(store, ref)
    ending = signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
    if ending:
        mark_stopping(store, cid)  # first: also cancels a restart waiting in its back-off
    state = require_running(store, cid, ref)
    host.step(f"signal container {short_id(cid)}")
    events.container_event(store, cid, "kill", signal=str(signum))
    if signum == signal.SIGKILL:
        thaw(host, store, cid)
    if signum == signal.SIGKILL:
        signal_end(host, store, cid, state, signum)
        wait_gone(host, state["pid"], state["pid_start"])
        wait_exit_recorded(store, cid)
    elif host.facts.alive(state["pid"], state["pid_start"]):
        host.kill(state["pid"], signum)


WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def wait(store: Store, ref: str, condition: str = "not-running") -> int:
    """`wait`: block until the container ends; its exit code. Docker's conditions:
    `not-running` (the default: a created or exited container returns at once),
    `next-exit` (the end of its next run), `removed` (until it is gone).

    Without the store's lock: the hook of an --rm container takes it to remove the
    container, exit.json and all, so a `wait` queued behind it would find nothing left."""
    if condition not in WAIT_CONDITIONS:
        raise UsageError(f"invalid condition: {condition!r}",
                         f"use one of {', '.join(WAIT_CONDITIONS)}")
    cid = find_container(store, ref)
    if condition == "removed":
        return wait_removed(store, cid)
    facts = store.host.facts
    exit_file = store.layout.container_exit_file_at(cid)
    try:
        state = store.container_state(cid)
        if condition == "not-running" and state["status"] == "created":
            return state["exit_code"]
        if condition == "next-exit" and state["status"] != "running":
            started = state["started_at"]
            while not started_again(store, cid, started):
                time.sleep(POLL)  # until it starts again: its next exit is the one
        while True:
            try:  # the monitor's record, written atomically as PID 1 ends
                return int(store.read(exit_file)["exit_code"])
            except FileNotFoundError:
                pass
            state = store.container_state(cid)
            if state["status"] == "exited":
                return state["exit_code"]
            if (state["status"] == "running" and not facts.alive(state["pid"], state["pid_start"])
                    and not facts.alive(state["monitor_pid"], state["monitor_start"])
                    and not facts.exists(exit_file)):  # ended unwatched: reconcile: 255
                return reconcile(store, cid)["exit_code"]
            time.sleep(POLL)
    except FileNotFoundError as err:  # removed before its end could be read
        raise NotFound(f"no such container: {ref}", "it was removed while we waited") \
            from err


def started_again(store: Store, cid: str, started: str | None) -> bool:
    state = store.container_state(cid)
    return state["status"] == "running" or state["started_at"] != started


def wait_removed(store: Store, cid: str) -> int:
    """`wait --condition removed`: the last exit code once the container is gone."""
    code = 0
    while True:
        try:
            code = reconcile(store, cid)["exit_code"]
        except FileNotFoundError:
            return code
        time.sleep(POLL)


def rename(host: Host, store: Store, ref: str, new_name: str) -> None:
    from shellctr.core.ids import container_name

    new_name = container_name(new_name)
    with store.lock():
        cid = find_container(store, ref)
        names = store.container_names()
        if new_name in names.values() and names[cid] != new_name:
            raise Conflict(f'the container name "{new_name}" is already in use',
                           "choose another name")
        host.step(f"rename container {short_id(cid)} to {new_name}")
        store.write_state(cid, name=new_name)
        mode = store.container_state(cid)["network_mode"]
        if mode not in ("none", "host") and not mode.startswith("container:"):
            from shellctr.engine.network import rename_endpoints

            rename_endpoints(host, store, cid, new_name)  # its DNS name, if it runs
        events.container_event(store, cid, "rename", oldName=names[cid])


def update(host: Host, store: Store, ref: str, flags: dict[str, object],
           restart: str | None) -> None:
    """`update`: new limits (live, if it runs) and restart policy, kept in its state."""
    from shellctr.parts.request import parse_restart

    cid = find_container(store, ref)
    running = reconcile(store, cid)["status"] == "running"
    with store.lock():
        container = store.container(cid)
        current = {key: container[key] for key in LIMIT_DEFAULTS}  # type: ignore[literal-required]
        changes = cgroup.parse_limits(host.facts, flags, current)
        if restart is not None:
            policy, count = parse_restart(restart, container["auto_remove"])
            changes.update(restart_policy=policy, restart_max=count)
        host.step(f"update container {short_id(cid)}")
        group = container_group(container)
        if running and cgroup.has_cgroups(host.facts, group):
            cgroup.update(host, group, changes)
        store.write_state(cid, **changes)
        events.container_event(store, cid, "update")


def parse_signal(text: str) -> int:
    """`KILL`, `SIGKILL` or `9`."""
    import signal  # here: its enums cost the read verbs ~2 ms

    name = text.upper().removeprefix("SIG")
    if name.isdigit():
        number = int(name)
        if 0 < number < signal.NSIG:
            return number
    elif "SIG" + name in signal.Signals.__members__:  # not SIG_IGN, SIG_BLOCK...
        return int(signal.Signals["SIG" + name])
    raise ShellctrError(f"invalid signal: {text}", "use a name like TERM or a number like 15")


def top(host: Host, store: Store, ref: str, ps_args: list[str]) -> str:
    """`top CTR [ps options]`: the host's ps, narrowed to the container's processes."""
    cid = find_container(store, ref)
    state = require_running(store, cid, ref)
    pids = {str(pid) for pid in host.facts.namespace_members(state["pid"])}
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


def thaw(host: Host, store: Store, cid: str) -> None:
    group = container_group(store.container(cid))
    if cgroup.is_frozen(host.facts, group):
        cgroup.freeze(host, group, frozen=False)


def pause(host: Host, store: Store, ref: str, frozen: bool) -> None:
    """`pause` / `unpause`: freeze or thaw every process of the container."""
    cid = find_container(store, ref)
    require_running(store, cid, ref)
    group = container_group(store.container(cid))
    if cgroup.is_frozen(host.facts, group) == frozen:
        raise Conflict(f"container {ref} is {'already' if frozen else 'not'} paused")
    host.step(f"{'pause' if frozen else 'unpause'} container {short_id(cid)}")
    cgroup.freeze(host, group, frozen)
    events.container_event(store, cid, "pause" if frozen else "unpause")


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
    if state["status"] == "running":
        # the running container's root, as its PID 1 sees it
        argv = [*tar, f"--directory=/proc/{state['pid']}/root", "."]
    else:
        config = store.container_config(cid)
        rootfs = path_arg(layout.container_rootfs(cid))
        lowers = ":".join(path_arg(layout.layer_dir(d)) for d in reversed(config["layers"]))
        options = (f"lowerdir={lowers},upperdir={path_arg(layout.container_upper(cid))},"
                   f"workdir={path_arg(layout.container_work(cid))}")
        # mount the overlay in a private mount namespace that ends with tar: it never
        # shows on the host, even if this process is killed half-way
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", 'mount --types overlay overlay --options "$1" "$2" && shift 2 && '
                'exec "$@"', "sh", options, rootfs, *tar, f"--directory={rootfs}", "."]
    host.run(argv, stdout=sys.stdout.buffer if output is None else None)


def restart_unwatched(host: Host, store: Store, cid: str) -> StateRecord:
    """A container that ended while its monitor was gone too (both killed, a reboot):
    nobody applied its restart policy, so this command does (as Podman's next command
    does), without the monitor's back-off. The container's state, after."""
    from shellctr.engine.lifecycle import UNWATCHED

    state = reconcile(store, cid)
    if state["status"] != "exited" or state["error"] != UNWATCHED or host.dry_run \
            or not should_restart(state):
        return state
    with store.lock():
        state = store.container_state(cid)
        if state["status"] != "exited" or state["error"] != UNWATCHED \
                or not should_restart(state):
            return state
        store.write_state(cid, restart_count=state["restart_count"] + 1)
        host.step(f"restart container {short_id(cid)} ({state['restart_policy']})")
        from shellctr.engine import start as starting  # here: ps pays for it only then

        starting.start(host, store, cid, attach=False)
        events.container_event(store, cid, "restart")
        return store.container_state(cid)


# -- the monitor's hook -------------------------------------------------------------------
def on_started(store: Store, cid: str) -> int:
    """`shellctr _started ID`, a line of a --dry-run script after (detached) or beside
    (attached) the monitor it starts: the container recorded running, with its `start`
    event, as the verb would have done once init.py said `ready`."""
    from shellctr.engine.lifecycle import await_running

    if await_running(store, cid) is None:
        raise ShellctrError(f"container {short_id(cid)} did not start",
                            f"see `shellctr logs {short_id(cid)}`")
    return 0


def on_exited(host: Host, store: Store, cid: str) -> int:
    """The monitor's hook when a detached container ends: record it, then carry out the
    restart policy or --rm. Returns the container's exit code."""
    wait_start_recorded(store, cid)
    with store.lock():
        if not store.exists(store.layout.container_config(cid)):
            return 0  # removed meanwhile (rm -f)
        state = reconcile(store, cid)
        if state["status"] == "created":  # no `start` recorded it: a --dry-run script ran it
            state = record_end(store, cid)
        if state["status"] == "running":  # `start`/`restart` already began a new run
            return state["exit_code"]
        container = store.container(cid)
        restart = should_restart(state)
        teardown(host, store, container, remove=container["auto_remove"] and not restart,
                 volumes=True)
        if not restart:
            return state["exit_code"]
    time.sleep(min(0.1 * 2 ** state["restart_count"], 10.0))  # Docker's back-off, capped
    # under the lock until it runs: a `stop` or `rm -f` now either comes first (and we
    # see `stopping`) or finds it running, never exited with a restart on its way
    with store.lock():
        if not store.exists(store.layout.container_config(cid)):
            return state["exit_code"]
        current = store.container_state(cid)
        if current["status"] != "exited" or current["stopping"]:
            return state["exit_code"]  # started or stopped by the user meanwhile
        store.write_state(cid, restart_count=current["restart_count"] + 1)
        host.step(f"restart container {short_id(cid)} ({current['restart_policy']})")
        # imported here: the verbs that only look at containers (ps, wait, port, logs)
        # do not pay for the start path (init.py's steps, ctypes, socket)
        from shellctr.engine import start as starting

        starting.start(host, store, cid, attach=False)
        events.container_event(store, cid, "restart")
    return state["exit_code"]


# -- ps --filter -------------------------------------------------------------------------
FILTER_KEYS = ("id", "name", "status", "exited", "ancestor", "label", "before", "since",
               "volume", "network", "publish", "expose", "health", "isolation", "is-task")
HEALTH_VALUES = ("starting", "healthy", "unhealthy", "none")


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    """`ps -f key=value`... (filters.parse_filters with ps' keys)."""
    from shellctr.parts import filters

    found = filters.parse_filters(items, FILTER_KEYS)
    for value in found.get("health", []):
        if value not in HEALTH_VALUES:  # Docker's words
            raise UsageError(f"Unrecognised filter value for health: {value}",
                             f"use one of {', '.join(HEALTH_VALUES)}")
    for value in found.get("is-task", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"invalid filter 'is-task={value}'", "use true or false")
    for key in ("publish", "expose"):
        for value in found.get(key, []):
            port_specs(value, key)
    return found


def port_specs(value: str, key: str) -> set[str]:
    """`80`, `80/udp`, `8000-8002/tcp` as the `PORT/PROTO` keys they name (read as
    --expose reads them)."""
    from shellctr.parts.netopts import parse_expose

    try:
        return set(parse_expose(value, f"the {key} filter"))
    except ShellctrError:
        raise UsageError(f"invalid filter '{key}={value}'",
                         "use PORT[-PORT][/PROTO]") from None


def name_matches(pattern: str, name: str) -> bool:
    """The name= filter: a regular expression found in the name, as Docker's (`re` is
    imported only when a filter asks for it)."""
    import re

    return re.search(pattern, name) is not None


def container_matches(store: Store, container: ContainerRecord, state: StateRecord,
                      filters: dict[str, list[str]]) -> bool:
    from shellctr.parts.filters import label_matches, matches

    def ancestor(ref: str) -> bool:
        from shellctr.parts.reference import find_image_record

        try:
            found = find_image_record(store.image_records(), ref)
            return bool(found["id"] == container["image_id"])
        except ShellctrError:
            return False

    def created_of(ref: str) -> str:  # before=/since=: the other container's creation
        return str(store.container(find_container(store, ref))["created"])

    def on_network(ref: str) -> bool:
        from shellctr.engine.network import find_network

        if ref in container["networks"]:
            return True
        try:
            return find_network(store, ref)["name"] in container["networks"]
        except NotFound:
            return False

    def health(value: str) -> bool:
        from shellctr.engine.health import read

        check = container.get("healthcheck")
        if not check or check["Test"][0] == "NONE":
            return value == "none"
        return bool((read(store, container["id"]) or {"Status": "starting"})["Status"] == value)

    def published() -> set[str]:
        ports = {f"{p['port']}/{p['proto']}" for p in container["ports"]}
        return ports | set(container["exposed"]) if container["publish_all"] else ports

    tests: dict[str, Callable[[str], bool]] = {
        "id": lambda v: container["id"].startswith(v),
        "name": lambda v: name_matches(v, container["name"]),
        "status": lambda v: state["status"] == v,
        "exited": lambda v: state["status"] == "exited" and str(state["exit_code"]) == v,
        "ancestor": ancestor,
        "label": lambda v: label_matches(container["labels"], v),
        "before": lambda v: str(container["created"]) < created_of(v),
        "since": lambda v: str(container["created"]) > created_of(v),
        "volume": lambda v: any(v in (m["source"], m["target"]) for m in container["mounts"]),
        "network": on_network,
        # the container's ports, as Docker's (publish=80: `-p 8080:80`)
        "publish": lambda v: bool(port_specs(v, "publish") & published()),
        "expose": lambda v: bool(port_specs(v, "expose") & set(container["exposed"])),
        "health": health,
        "isolation": lambda v: v == "default",  # Linux has only the default
        "is-task": lambda v: v.lower() in ("false", "0"),  # no swarm: nothing is a task
    }
    return matches(filters, tests)
