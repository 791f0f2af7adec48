"""Container endpoints: create, start, stop, kill, restart, pause, wait, delete, list,
inspect, top, changes, rename, update, prune. Each calls the engine function the matching
CLI verb calls. A container's output and terminal (logs, attach, resize, stats) are in
api/output.py; its files (export, archive for `docker cp`) in api/archive.py."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from shellctr.api.routes import ROUTES, Call, Json, Streamed, bad_request
from shellctr.core.errors import Conflict, NotFound

ATTACH_DRAIN = 10.0  # seconds a --rm removal waits for this service's attachments to end

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from shellctr.core.records import ContainerRecord, Record, StateRecord



def find(call: Call) -> str:
    from shellctr.engine.containers import find_container

    return find_container(call.store, call.params["id"])


def state_of(call: Call, cid: str) -> StateRecord | None:
    """The container's reconciled state; None once it is removed."""
    from shellctr.engine.lifecycle import reconcile

    try:
        return reconcile(call.store, cid)
    except (FileNotFoundError, NotFound):
        return None


# -- create and the lifecycle ------------------------------------------------------------
@ROUTES.add("POST", "/containers/create")
def container_create(call: Call) -> Json:
    from shellctr.api.create import run_request
    from shellctr.engine.create import create

    name = call.arg("name")
    request = run_request(call.json_body(), name)
    container = create(call.host, call.store, request)
    return Json({"Id": container["id"], "Warnings": []}, 201)


@ROUTES.add("POST", "/containers/{id}/start")
def container_start(call: Call) -> Json | None:
    from shellctr.engine.start import start

    cid = find(call)
    state = state_of(call, cid)
    if state is not None and state["status"] == "running":
        return Json("", 304)  # as `shellctr start`: a running container is left as it is
    start(call.host, call.store, cid, attach=False)
    return None


@ROUTES.add("POST", "/containers/{id}/stop")
def container_stop(call: Call) -> Json | None:
    from shellctr.engine.containers import stop

    cid = find(call)
    state = state_of(call, cid)
    if state is None or state["status"] != "running":
        return Json("", 304)
    stop(call.host, call.store, cid, call.number("t", 10) or 0)
    return None


@ROUTES.add("POST", "/containers/{id}/restart")
def container_restart(call: Call) -> None:
    from shellctr.engine.containers import stop
    from shellctr.engine.start import start

    cid = find(call)
    stop(call.host, call.store, cid, call.number("t", 10) or 0)
    start(call.host, call.store, cid, attach=False)


@ROUTES.add("POST", "/containers/{id}/kill")
def container_kill(call: Call) -> None:
    from shellctr.engine.containers import kill, parse_signal

    signum = parse_signal(call.arg("signal") or "KILL")
    kill(call.host, call.store, find(call), signum)


@ROUTES.add("POST", "/containers/{id}/pause")
def container_pause(call: Call) -> None:
    from shellctr.engine.containers import pause

    pause(call.host, call.store, find(call), True)


@ROUTES.add("POST", "/containers/{id}/unpause")
def container_unpause(call: Call) -> None:
    from shellctr.engine.containers import pause

    pause(call.host, call.store, find(call), False)


@ROUTES.add("DELETE", "/containers/{id}")
def container_delete(call: Call) -> None:
    from shellctr.engine.containers import remove

    find(call)  # 404 first
    remove(call.host, call.store, call.params["id"], call.flag("force"), volumes=call.flag("v"))


@ROUTES.add("POST", "/containers/{id}/rename")
def container_rename(call: Call) -> None:
    from shellctr.engine.containers import rename

    new_name = call.arg("name")
    if not new_name:
        raise bad_request("name is required")
    rename(call.host, call.store, find(call), new_name)


@ROUTES.add("POST", "/containers/{id}/update")
def container_update(call: Call) -> dict[str, Any]:
    from shellctr.api.create import Body, limits_of
    from shellctr.engine.containers import update

    body = Body(call.json_body(), "the body")
    flags: dict[str, object] = {
        "memory": None, "memory_swap": None, "memory_reservation": None,
        "oom_kill_disable": False, "cpus": None, "cpu_shares": None, "cpu_period": None,
        "cpu_quota": None, "cpuset_cpus": None, "cpuset_mems": None, "pids_limit": None}
    flags.update(limits_of(body))
    policy = body.child("RestartPolicy")
    restart = policy.text("Name") or None
    if restart == "on-failure" and policy.number("MaximumRetryCount"):
        restart += f":{policy.number('MaximumRetryCount')}"
    update(call.host, call.store, find(call), flags, restart)
    return {"Warnings": []}


@ROUTES.add("POST", "/containers/prune")
def container_prune(call: Call) -> dict[str, Any]:
    from shellctr.engine.containers import remove

    deleted = []
    for cid in call.store.container_ids():
        state = state_of(call, cid)
        if state is None or state["status"] == "running":
            continue
        try:
            remove(call.host, call.store, cid, force=False)
        except (NotFound, Conflict):  # removed or started meanwhile
            continue
        deleted.append(cid)
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": 0}


# -- wait --------------------------------------------------------------------------------
@ROUTES.add("POST", "/containers/{id}/wait")
def container_wait(call: Call) -> Streamed:
    """Docker writes the headers at once and the body when the condition is met: the
    CLI asks before `start` (next-exit, or removed for --rm) and reads it after."""
    condition = call.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition {condition!r}: use not-running, next-exit "
                          "or removed")
    cid = find(call)
    first = state_of(call, cid)
    if first is None:
        raise NotFound(f"no such container: {call.params['id']}")
    started = first["started_at"]
    running_now = first["status"] == "running"

    def ended(state: StateRecord) -> bool:
        if state["status"] == "running":
            return False
        if condition == "not-running":
            return True
        # next-exit: an end after this request (a run that started since, or this one)
        return running_now or state["started_at"] != started

    exit_file = call.store.layout.container_exit_file(cid)
    # --rm as Docker's daemon does it: by the engine, as soon as the end is seen (the
    # monitor's `_exited` hook, a new process, would start only now and then do the same)
    remove_here = condition == "removed" and call.store.container(cid)["auto_remove"]

    def body() -> Iterator[bytes]:
        from shellctr.api.watch import StateWatch

        nonlocal remove_here
        code, error = first["exit_code"], first["error"]
        watch = StateWatch(call.store, cid)
        while True:
            state = watch.state()
            if state is None:  # removed: the end read last is its end
                break
            if not watch.changed:
                watch.pause()
                continue
            code, error = state["exit_code"], state["error"]
            if state["status"] == "running" and (running_now or state["started_at"] != started):
                try:  # the monitor's record, before the end is recorded (and --rm removes)
                    code = int(call.store.read(exit_file)["exit_code"])
                except (FileNotFoundError, ValueError, KeyError):
                    pass
            elif remove_here and state["status"] == "exited":
                remove_here = False  # once: if it fails, the hook's turn comes
                remove_ended(call, cid)
                continue
            elif condition != "removed" and ended(state):
                break
            watch.pause()
        result: dict[str, Any] = {"StatusCode": code}
        if error:
            result["Error"] = {"Message": error}
        yield json.dumps(result).encode() + b"\n"

    return Streamed(body())


def remove_ended(call: Call, cid: str) -> None:
    """Carry out an ended container's --rm with the monitor's hook's own engine call
    (containers.on_exited: under the lock, a no-op for what is removed already, so the
    hook that follows finds nothing left to do)."""
    from shellctr.api.streams import wait_unattached
    from shellctr.core.errors import ShellctrError
    from shellctr.engine.containers import on_exited

    wait_unattached(cid, ATTACH_DRAIN)  # `docker run`'s own attach reads the log to its end
    try:
        on_exited(call.host, call.store, cid)
    except ShellctrError as err:  # the hook tries again; the wait goes on until it has
        if call.service.debug:
            sys.stderr.write(f"api: --rm of {cid[:12]}: {err}\n")


# -- list and inspect --------------------------------------------------------------------
def summary(call: Call, container: ContainerRecord, state: StateRecord,
            networks: list[Record]) -> dict[str, Any]:
    """One container of /containers/json, from the records the listing has read."""
    from shellctr.engine.inspect import container_json

    full = container_json(call.store, container["id"], state=state, container=container,
                          networks=networks)
    status = full["State"]["Status"]
    if status == "running":
        text = "Up " + since(state["started_at"])
        if full["State"]["Paused"]:
            text += " (Paused)"
    elif status == "exited":
        text = f"Exited ({state['exit_code']}) {since(state['finished_at'])} ago"
    else:
        text = "Created"
    ports = []
    for spec, bindings in (full["NetworkSettings"].get("Ports") or {}).items():
        port, _, proto = spec.partition("/")
        for binding in bindings or [None]:
            item: dict[str, Any] = {"PrivatePort": int(port), "Type": proto}
            if binding:
                item.update(IP=binding["HostIp"] or "0.0.0.0", PublicPort=int(binding["HostPort"]))
            ports.append(item)
    joined = full["NetworkSettings"].get("Networks") or {}
    return {
        "Id": container["id"], "Names": ["/" + container["name"]],
        "Image": container["image"], "ImageID": full["Image"],
        "Command": " ".join([container["path"], *container["args"]]).strip(),
        "Created": int(created_seconds(container["created"])), "Ports": ports,
        "Labels": container["labels"], "State": status, "Status": text,
        "HostConfig": {"NetworkMode": container["network_mode"]},
        "NetworkSettings": {"Networks": joined}, "Mounts": full["Mounts"],
    }


def created_seconds(value: Any) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(value)).timestamp() if value else 0.0


def since(value: Any) -> str:
    """Docker's human duration ("5 seconds", "About a minute", "2 hours")."""
    seconds = max(time.time() - created_seconds(value), 0) if value else 0
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if seconds < 120:
        return "About a minute"
    if seconds < 3600:
        return f"{int(seconds // 60)} minutes"
    if seconds < 7200:
        return "About an hour"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} hours"
    return f"{int(seconds // 86400)} days"


@ROUTES.add("GET", "/containers/json")
def containers_list(call: Call) -> list[dict[str, Any]]:
    from shellctr.core.errors import UsageError
    from shellctr.engine.containers import container_matches, parse_filters

    try:  # ps' filters, checked as ps checks them
        filters = parse_filters([f"{key}={value}" for key, values in call.filters().items()
                                 for value in values])
    except UsageError as err:
        raise bad_request(str(err)) from None
    store = call.store
    entries = []
    for cid in store.container_ids():
        state = state_of(call, cid)
        if state is None:
            continue
        try:
            entries.append((store.container(cid, state), state))  # its state read once
        except FileNotFoundError:
            continue
    entries.sort(key=lambda entry: str(entry[0]["created"]), reverse=True)
    limit = call.number("limit", -1) or -1
    if limit > 0:
        entries = entries[:limit]
    elif not call.flag("all") and "status" not in filters:
        entries = [(c, s) for c, s in entries if s["status"] == "running"]
    from shellctr.engine.network import records

    out = []
    networks = records(store)  # once, not once per container
    for container, state in entries:
        if not container_matches(store, container, state, filters):
            continue
        try:
            out.append(summary(call, container, state, networks))
        except FileNotFoundError:  # removed as we read it
            continue
    return out


@ROUTES.add("GET", "/containers/{id}/json")
def container_inspect(call: Call) -> dict[str, Any]:
    from shellctr.engine.inspect import container_json

    try:
        found = container_json(call.store, find(call))
    except FileNotFoundError as err:
        raise NotFound(f"no such container: {call.params['id']}") from err
    if call.flag("size"):
        found.update(SizeRw=0, SizeRootFs=0)
    return found


@ROUTES.add("GET", "/containers/{id}/top")
def container_top(call: Call) -> dict[str, Any]:
    from shellctr.engine.containers import top

    ps_args = (call.arg("ps_args") or "-ef").split()
    text = top(call.host, call.store, find(call), ps_args)
    lines = text.splitlines()
    titles = lines[0].split()
    rows = [line.split(None, len(titles) - 1) for line in lines[1:]]
    return {"Titles": titles, "Processes": rows}


@ROUTES.add("GET", "/containers/{id}/changes")
def container_changes(call: Call) -> list[dict[str, Any]]:
    from shellctr.engine.commit import changes

    kinds = {"C": 0, "A": 1, "D": 2}
    return [{"Path": path, "Kind": kinds.get(kind, 0)}
            for kind, path in changes(call.store, find(call))]
