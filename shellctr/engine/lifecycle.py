"""A container's life, as one state machine: every change of its status is written here,
and every path that ends or removes a container goes through `teardown`.

    create ──> created ──start──> running ──PID 1 ends──> exited ──start──> running ...
                  │                  (monitor's exit.json)    │
                  └───────────────────── rm ──────────────────┴──> removed

- `record_starting` / `record_running`: a start (start.py) is under way / done;
- `await_running`: a replayed --dry-run script's start, which nobody hears from: found
  on the host and recorded running (`shellctr _started ID`, a line of the script);
- `record_end`: the end, from the code the monitor wrote to exit.json (or one given);
- `reconcile`: no daemon watches containers, so every command first brings a record up
  to date: a running container whose PID 1 and monitor are both gone (pid checked with
  its start time, so a reused pid is not mistaken for it) has ended;
- `teardown`: what a run made goes (cgroups, network endpoints); with `remove`, the
  container too (its records, its anonymous volumes with `volumes`);
- `end`: an attached run's end, recorded by the `run` that watched it (a detached run's,
  by the monitor's hook, containers.on_exited, which also carries out the restart
  policy).
"""

from __future__ import annotations

import time

from shellctr.core.host import Host
from shellctr.core.ids import short_id
from shellctr.core.store import Store, now_iso
from shellctr.engine import cgroup
from shellctr.parts.cgroups import group_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shellctr.core.records import ContainerRecord, StateRecord

UNKNOWN_EXIT = 255  # the container ended while no shellctr process watched it
UNWATCHED = "the container ended while no shellctr process watched it"
POLL = 0.02  # seconds between looks at a process or record we are waiting for
# a new run's life: what `record_starting` resets (the settings and restart_count stay)
FRESH_LIFE: dict[str, object] = {
    "status": "created", "pid": 0, "pid_start": 0, "monitor_pid": 0, "monitor_start": 0,
    "exit_code": 0, "error": "", "started_at": None, "finished_at": None,
    "oom_killed": False, "stopping": False,
}
ENDED = {"status": "exited", "pid": 0, "pid_start": 0, "monitor_pid": 0, "monitor_start": 0}


def container_group(container: ContainerRecord) -> str:
    """The container's cgroup path (`shellctr/<id>`, or below its --cgroup-parent)."""
    return group_of(container["id"], container["cgroup_parent"])


# -- the transitions -----------------------------------------------------------------------
def record_starting(store: Store, cid: str) -> None:
    """A start begins: `created` (a new run of an ended container), with the pid of the
    process starting it, which the monitor's hook waits for (a quick end waits for
    `running`). Takes the lock."""
    import os

    from shellctr.core.facts import process_start

    pid = os.getpid()
    with store.lock():
        state = store.container_state(cid)
        if state["status"] == "created" and state["starter_pid"] == pid:
            return  # `run`: its create named this process already
        store.write_state(cid, **(FRESH_LIFE if state["status"] != "created" else {}),
                          starter_pid=pid, starter_start=process_start(pid) or 0)


def record_running(store: Store, cid: str, pid: int, monitor_pid: int) -> None:
    facts = store.host.facts
    with store.lock():
        store.write_state(cid, status="running", pid=pid, pid_start=facts.process_start(pid)
                          or 0, monitor_pid=monitor_pid,
                          monitor_start=facts.process_start(monitor_pid) or 0,
                          started_at=now_iso(), starter_pid=0, starter_start=0)


def record_found_running(store: Store, cid: str, pid: int, monitor_pid: int) -> None:
    """Record a container found running on the host that no `start` recorded (`adopt`,
    `await_running`: whichever comes first), with the `start` event it would have sent."""
    from shellctr.engine import events

    record_running(store, cid, pid, monitor_pid)
    events.container_event(store, cid, "start")


def await_running(store: Store, cid: str, timeout: float = 10.0) -> bool | None:
    """A replayed --dry-run script's start (`shellctr _started ID`): no `start` process
    hears init.py's `ready`, so wait until the host shows the container's monitor and
    PID 1 (the inner monitor's child, once it has exec'd the command) and record them
    running, as `start` would. False: it ended, or was recorded or removed, first; None:
    nothing showed up within `timeout`."""
    facts = store.host.facts
    exit_file = store.layout.container_exit_file(cid)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if facts.exists(exit_file) or store.container_state(cid)["status"] != "created":
                return False
            monitors, pid1s = unrecorded(store, cid)
            if len(monitors) == 1 and len(pid1s) == 1:
                with store.lock():
                    if store.container_state(cid)["status"] != "created" \
                            or facts.exists(exit_file):
                        return False
                    record_found_running(store, cid, pid1s[0], monitors[0])
                return True
            time.sleep(POLL)
    except FileNotFoundError:  # removed meanwhile (--rm: its end came first)
        return False
    return None


def record_end(store: Store, cid: str, code: int | None = None, error: str = "",
               finished_at: str | None = None) -> StateRecord:
    """The container has ended: its code (None: the one the monitor wrote in exit.json),
    and whether the OOM killer struck (read before its cgroups go). The caller holds the
    lock."""
    if code is None:
        ended = store.read(store.layout.container_exit_file_at(cid))
        code, finished_at = int(ended["exit_code"]), str(ended["finished_at"])
    container = store.container(cid)
    finished_at = finished_at or now_iso()
    state = store.write_state(cid, **ENDED, exit_code=code, error=error,
                              finished_at=finished_at, starter_pid=0,
                              starter_start=0, oom_killed=cgroup.oom_killed(
                                  store.host.facts, container_group(container)))
    from shellctr.engine import events

    if state["oom_killed"]:
        events.emit(store, "container", "oom", cid, events.container_attributes(container),
                    finished_at)
    events.emit(store, "container", "die", cid,
                events.container_attributes(container, exitCode=str(code)), finished_at)
    return state


def reconcile(store: Store, cid: str) -> StateRecord:
    """The container's state, brought up to date if it ended since it was written.

    The monitor writes `exit.json` when the container ends; if both the container and
    its monitor are gone without one (killed, or the host rebooted), the exit code is
    unknown (255). An end found here is torn down here (the run's cgroups and network).
    """
    facts = store.host.facts
    state = store.container_state(cid)
    exit_file = store.layout.container_exit_file_at(cid)
    if state["status"] == "created" and state["starter_pid"] and not facts.alive(
            state["starter_pid"], state["starter_start"]) and facts.exists(
            store.layout.container_init_spec_at(cid)):
        state = adopt(store, cid)
    if state["status"] != "running" or not ended_unwatched(store, state, exit_file):
        return state
    with store.lock():
        state = store.container_state(cid)
        if state["status"] != "running" or not ended_unwatched(store, state, exit_file):
            return state
        if facts.exists(exit_file):
            state = record_end(store, cid)
        else:  # its monitor died before PID 1 ended: containers.restart_unwatched then
            state = record_end(store, cid, UNKNOWN_EXIT, UNWATCHED)
        teardown(store.host, store, store.container(cid), remove=False)
    return state


def adopt(store: Store, cid: str) -> StateRecord:
    """A `start` was killed (or failed) after it wrote the init spec: if it had spawned the
    container, the container runs with nobody having recorded it, and is recorded
    running now (its monitors name its run dir; PID 1 is the child of the inner one);
    else it stays `created`, with no starter to wait for."""
    facts = store.host.facts
    monitors, pid1s = unrecorded(store, cid)
    with store.lock():
        state = store.container_state(cid)
        if state["status"] != "created" or facts.alive(state["starter_pid"],
                                                        state["starter_start"]):
            return state
        if len(monitors) == 1 and len(pid1s) == 1:
            record_found_running(store, cid, pid1s[0], monitors[0])
        else:
            store.write_state(cid, starter_pid=0, starter_start=0)
        return store.container_state(cid)


def unrecorded(store: Store, cid: str) -> tuple[list[int], list[int]]:
    """The container's monitors and PID 1 as the host shows them, whatever its records
    say: its monitors name its run dir, PID 1 is the child of the inner one."""
    import os

    facts = store.host.facts
    found = dict(facts.processes_mentioning(os.fspath(store.layout.container_run_dir(cid))
                                            + "/"))
    monitors = [pid for pid, parent in found.items() if parent not in found]
    pid1s = [child for pid in found for child in facts.children(pid) if child not in found]
    return monitors, pid1s


def kill_unrecorded(host: Host, store: Store, cid: str) -> None:
    """SIGKILL the container's PID 1 found on the host (its end ends every process of
    the container), and wait for its monitors to end (the hook waits for the lock, which
    the caller does not hold, and finds the container gone)."""
    import signal

    monitors, pid1s = unrecorded(store, cid)
    for pid in pid1s:
        host.kill(pid, signal.SIGKILL)
    facts = host.facts
    starts = {pid: facts.process_start(pid) or 0 for pid in monitors}
    deadline = time.monotonic() + 10.0
    while any(facts.alive(pid, start) for pid, start in starts.items()) \
            and time.monotonic() < deadline:
        time.sleep(POLL)


def ended_unwatched(store: Store, state: StateRecord, exit_file: str) -> bool:
    """Whether a `running` record has ended: the monitor recorded it, or PID 1 and the
    monitor are both gone."""
    facts = store.host.facts
    return facts.exists(exit_file) or (
        not facts.alive(state["pid"], state["pid_start"])
        and not facts.alive(state["monitor_pid"], state["monitor_start"]))


def teardown(host: Host, store: Store, container: ContainerRecord, *, remove: bool,
             volumes: bool = False) -> None:
    """What the container's run made goes: its cgroups, its network endpoints, the
    mounts of the volumes of their own (tmpfs, bind) it was the last user of; with
    `remove`, the container itself (with `volumes`, its anonymous volumes too). Probes
    first: safe to call again for what is already gone. The caller holds the lock."""
    cid = container["id"]
    cgroup.remove(host, container_group(container))
    if container["network_mode"] not in ("none", "host") and \
            not container["network_mode"].startswith("container:"):
        from shellctr.engine.network import release

        release(host, store, cid)
    if any(m["type"] == "volume" for m in container["mounts"]):
        from shellctr.engine import volume_driver  # a tmpfs or bind volume: its last user

        volume_driver.release(host, store, container["mounts"], leaving=cid)  # type: ignore[arg-type]
    if not remove:
        return
    host.step(f"remove container {short_id(cid)}")
    from shellctr.engine import events

    events.emit(store, "container", "destroy", cid, events.container_attributes(container))
    store.remove_container(cid)
    if volumes and any(m["type"] == "volume" and m["anonymous"] for m in container["mounts"]):
        from shellctr.engine.volume import remove_anonymous

        remove_anonymous(host, store, container["mounts"])  # type: ignore[arg-type]
    if container["image_id"] and not store.exists(store.layout.image_file(container["image_id"])):
        # its image went with rmi -f while it existed: its layers may be free now
        from shellctr.engine.image import remove_unused_layers

        remove_unused_layers(host, store)


def salvaged(store: Store, cid: str) -> ContainerRecord:
    """What can be read of a container whose records are corrupt, to tear it down: its
    config if that is whole, and settings that make teardown look for everything its
    id names (its network endpoints, its netns)."""
    from shellctr.core.errors import CorruptRecord
    from shellctr.core.store import SETTINGS

    try:
        config: dict[str, object] = dict(store.container_config(cid))
    except (CorruptRecord, FileNotFoundError):
        config = {"id": cid, "cgroup_parent": "", "mounts": [], "image_id": "", "image": "",
                  "layers": [], "labels": {}}
    try:
        config.update((key, value) for key, value in store.container_state(cid).items()
                      if key in SETTINGS)
    except (CorruptRecord, FileNotFoundError):
        config.update(SETTINGS, network_mode="bridge")
    return config  # type: ignore[return-value]


def end(host: Host, store: Store, cid: str, code: int, error: str = "") -> None:
    """An attached run has ended (or failed to start): record it; tear it down (with
    --rm, remove it and its anonymous volumes)."""
    with store.lock():
        if not store.exists(store.layout.container_config(cid)):
            return  # removed (rm -f) while it ran
        record_end(store, cid, code, error)
        container = store.container(cid)
        teardown(host, store, container, remove=container["auto_remove"],
                 volumes=container["auto_remove"])


def discard(host: Host, store: Store, cid: str) -> None:
    """A `run --rm` whose start failed: the container goes, unless it runs after all."""
    from shellctr.core.errors import CorruptRecord

    with store.lock():
        try:
            if store.container_state(cid)["status"] == "running":
                return
            teardown(host, store, store.container(cid), remove=True, volumes=True)
        except (FileNotFoundError, CorruptRecord):  # removed already (its hook, an rm)
            return


def should_restart(state: StateRecord) -> bool:
    policy = state["restart_policy"]
    if state["stopping"] or policy == "no":
        return False
    if policy == "on-failure":
        return state["exit_code"] != 0 and (
            state["restart_max"] == 0 or state["restart_count"] < state["restart_max"])
    return policy in ("always", "unless-stopped")


def mark_stopping(store: Store, cid: str) -> None:
    """Tell the restart policy that the user ended this container: whether it runs, or
    has exited and its hook waits to restart it (the hook checks under the lock)."""
    with store.lock():
        state = store.container_state(cid)
        if state["stopping"] or state["status"] == "created":
            return
        if state["status"] == "running" or state["restart_policy"] != "no":
            store.write_state(cid, stopping=True)


# -- waiting for a transition ----------------------------------------------------------------
def wait_start_recorded(store: Store, cid: str, timeout: float = 10.0) -> None:
    """A container can end before its `start` has recorded it running: while the process
    starting it lives, let it finish first."""
    facts = store.host.facts
    deadline = time.monotonic() + timeout
    while store.exists(store.layout.container_config(cid)) and time.monotonic() < deadline:
        state = store.container_state(cid)
        if state["status"] != "created" or not facts.alive(state["starter_pid"],
                                                             state["starter_start"]):
            return
        time.sleep(POLL)


def wait_exit_recorded(store: Store, cid: str, timeout: float = 10.0) -> None:
    """After PID 1 is gone: wait until its end is recorded (or the container removed,
    for --rm) by the monitor or the attached `run`."""
    deadline = time.monotonic() + timeout
    try:
        while (store.exists(store.layout.container_config(cid))
               and reconcile(store, cid)["status"] == "running"
               and time.monotonic() < deadline):
            time.sleep(POLL)
    except FileNotFoundError:  # removed (--rm) between the check and the read
        return


def wait_gone(host: Host, pid: int, start: int, timeout: float = 10.0) -> None:
    from shellctr.core.errors import ShellctrError

    deadline = time.monotonic() + timeout
    while host.facts.alive(pid, start):
        if time.monotonic() > deadline:
            raise ShellctrError(f"process {pid} did not exit after SIGKILL")
        time.sleep(0.01)
