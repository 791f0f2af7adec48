"""Container endpoints: create, start, stop, kill, restart, pause, wait, delete, list,
inspect, logs, attach, top, stats, changes, export, archive, rename, update, prune.
Each calls the engine function the matching CLI verb calls."""

from __future__ import annotations

import json
import os
import struct
import time
from typing import Any

from shellctr.api.server import ROUTES, ApiError, Call, Json, Raw, Streamed, bad_request
from shellctr.core.errors import Conflict, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from shellctr.core.records import ContainerRecord, StateRecord

POLL = 0.01  # how often a wait or a stream looks at the container's state
STREAMS = {"stdin": 0, "stdout": 1, "stderr": 2}


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream framing: stream, three zeros, length, the bytes."""
    return struct.pack(">BxxxI", stream, len(data)) + data


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

    def body() -> Iterator[bytes]:
        code, error = first["exit_code"], first["error"]
        while True:
            state = state_of(call, cid)
            if state is None:  # removed: the end read last is its end
                break
            code, error = state["exit_code"], state["error"]
            if state["status"] == "running" and (running_now or state["started_at"] != started):
                try:  # the monitor's record, before the end is recorded (and --rm removes)
                    code = int(call.store.read(exit_file)["exit_code"])
                except (FileNotFoundError, ValueError, KeyError):
                    pass
            elif condition != "removed" and ended(state):
                break
            time.sleep(POLL)
        result: dict[str, Any] = {"StatusCode": code}
        if error:
            result["Error"] = {"Message": error}
        yield json.dumps(result).encode() + b"\n"

    return Streamed(body())


# -- list and inspect --------------------------------------------------------------------
def summary(call: Call, container: ContainerRecord, state: StateRecord) -> dict[str, Any]:
    from shellctr.engine.inspect import container_json

    full = container_json(call.store, container["id"])
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
    networks = full["NetworkSettings"].get("Networks") or {}
    return {
        "Id": container["id"], "Names": ["/" + container["name"]],
        "Image": container["image"], "ImageID": full["Image"],
        "Command": " ".join([container["path"], *container["args"]]).strip(),
        "Created": int(created_seconds(container["created"])), "Ports": ports,
        "Labels": container["labels"], "State": status, "Status": text,
        "HostConfig": {"NetworkMode": container["network_mode"]},
        "NetworkSettings": {"Networks": networks}, "Mounts": full["Mounts"],
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
    from shellctr.engine.containers import container_matches

    filters = call.filters()
    known = ("id", "name", "status", "exited", "ancestor", "label")
    for key in filters:
        if key not in known:
            raise bad_request(f"invalid filter {key!r}")
    store = call.store
    entries = []
    for cid in store.container_ids():
        state = state_of(call, cid)
        if state is None:
            continue
        try:
            entries.append((store.container(cid), state))
        except FileNotFoundError:
            continue
    entries.sort(key=lambda entry: str(entry[0]["created"]), reverse=True)
    limit = call.number("limit", -1) or -1
    if limit > 0:
        entries = entries[:limit]
    elif not call.flag("all") and "status" not in filters:
        entries = [(c, s) for c, s in entries if s["status"] == "running"]
    # as Docker: several values of one key match any of them, except labels: all of them
    labels = filters.pop("label", [])
    out = []
    for container, state in entries:
        if not container_matches(store, container, state, filters) or not all(
                container_matches(store, container, state, {"label": [label]})
                for label in labels):
            continue
        try:
            out.append(summary(call, container, state))
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


@ROUTES.add("GET", "/containers/{id}/export")
def container_export(call: Call) -> Streamed:
    from shellctr.engine.containers import export

    cid = find(call)
    call.store.prepare()
    path = call.store.layout.tmp_dir / f"api-export-{os.getpid()}-{os.urandom(6).hex()}.tar"
    try:
        export(call.host, call.store, cid, path)
    except BaseException:
        call.host.remove_file(path)
        raise
    return Streamed(file_chunks(call, path), "application/x-tar")


def file_chunks(call: Call, path: Any) -> Iterator[bytes]:
    """A scratch file's bytes, then the file goes."""
    try:
        with open(path, "rb") as stream:
            while data := stream.read(1 << 20):
                yield data
    finally:
        call.host.remove_file(path)


# -- stats -------------------------------------------------------------------------------
@ROUTES.add("GET", "/containers/{id}/stats")
def container_stats(call: Call) -> Any:
    from shellctr.engine import cgroup, stats
    from shellctr.engine.lifecycle import container_group

    cid = find(call)
    container = call.store.container(cid)
    group = container_group(container)
    facts = call.host.facts
    cpus = len(cgroup.host_cpus(facts))
    stream = call.flag("stream", True) and not call.flag("one-shot")

    def reading() -> stats.Sample:
        state = state_of(call, cid)
        if state is None or state["status"] != "running":
            return stats.Sample()
        return stats.sample(facts, group, state["pid"])

    def shape(before: stats.Sample, after: stats.Sample) -> dict[str, Any]:
        from datetime import UTC, datetime

        def cpu(sample: stats.Sample) -> dict[str, Any]:
            return {"cpu_usage": {"total_usage": sample.cpu_ns, "usage_in_kernelmode": 0,
                                  "usage_in_usermode": sample.cpu_ns},
                    "system_cpu_usage": sample.system_ns, "online_cpus": cpus,
                    "throttling_data": {"periods": 0, "throttled_periods": 0,
                                        "throttled_time": 0}}
        return {
            "read": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "preread": "0001-01-01T00:00:00Z", "name": "/" + container["name"], "id": cid,
            "pids_stats": {"current": after.pids},
            "cpu_stats": cpu(after), "precpu_stats": cpu(before),
            "memory_stats": {"usage": after.memory, "limit": after.limit,
                             "stats": {"inactive_file": 0}},
            "networks": {"eth0": {"rx_bytes": after.net_rx, "tx_bytes": after.net_tx,
                                  "rx_packets": 0, "tx_packets": 0, "rx_errors": 0,
                                  "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": after.blk_read},
                {"major": 0, "minor": 0, "op": "write", "value": after.blk_write}]},
        }

    if not stream:
        before = reading()
        time.sleep(0.5 if call.flag("one-shot") is False else 0)
        return shape(before, reading())

    def chunks() -> Iterator[bytes]:
        before = stats.Sample()
        while True:
            after = reading()
            yield json.dumps(shape(before, after)).encode() + b"\n"
            state = state_of(call, cid)
            if state is None or state["status"] != "running":
                return
            before = after
            time.sleep(1.0)

    return Streamed(chunks())


@ROUTES.add("POST", "/containers/{id}/resize")
def container_resize(call: Call) -> Raw:
    """The window size, to the monitor's terminal (a container without -t has none)."""
    from shellctr.engine.attach import WINDOW_SIZE, connect
    from shellctr.engine.attach import frame as client_frame

    rows, cols = call.number("h", 0) or 0, call.number("w", 0) or 0
    cid = find(call)
    config = call.store.container_config(cid)
    state = state_of(call, cid)
    if config["tty"] and state is not None and state["status"] == "running":
        try:
            with connect(call.store.layout.container_run_dir(cid)) as sock:
                sock.sendall(client_frame(WINDOW_SIZE, struct.pack(">HH", rows, cols)))
        except Conflict:
            pass  # the container has just ended: there is no terminal left to size
    return Raw(b"", "text/plain", 200)


# -- logs --------------------------------------------------------------------------------
def log_chunks(call: Call, cid: str, tty: bool, wanted: set[str], follow: bool,
               since: Any, until: Any, tail: int | None, timestamps: bool,
               stream: Any, offset: int) -> Iterator[bytes]:
    from shellctr.engine import logs

    def encoded(record: Any) -> bytes:
        text = ((record.time + " ") if timestamps else "") + record.text
        data = text.encode("utf-8", errors="surrogateescape")
        return data if tty else frame(STREAMS[record.stream], data)

    try:
        records, offset = logs.read_from(stream, offset)
        for record in logs.select(records, tail, since, until):
            if record.stream in wanted:
                yield encoded(record)
        while follow:
            state = state_of(call, cid)
            ended = state is None or state["status"] != "running"
            records, offset = logs.read_from(stream, offset)
            for record in records:
                if until is not None and record.when > until:
                    return
                if record.stream in wanted:
                    yield encoded(record)
            if ended:
                return
            time.sleep(logs.POLL_SECONDS)
    finally:
        stream.close()


@ROUTES.add("GET", "/containers/{id}/logs")
def container_logs(call: Call) -> Streamed:
    from shellctr.engine import logs

    wanted = {name for name in ("stdout", "stderr") if call.flag(name)}
    if not wanted:
        raise bad_request("you must choose at least one stream")
    tail_text = call.arg("tail") or "all"
    if tail_text != "all" and not tail_text.lstrip("-").isdigit():
        raise bad_request(f"invalid tail {tail_text!r}: give a number of lines, or all")
    tail = None if tail_text == "all" or int(tail_text) < 0 else int(tail_text)
    since_text, until_text = call.arg("since") or "0", call.arg("until") or "0"
    since = logs.parse_since(since_text) if since_text != "0" else None
    until = logs.parse_since(until_text) if until_text != "0" else None
    cid = find(call)
    tty = call.store.container_config(cid)["tty"]
    content = ("application/vnd.docker.raw-stream" if tty
               else "application/vnd.docker.multiplexed-stream")
    try:  # open once: a --rm container's log goes with it
        stream = open(call.store.layout.container_log(cid), "rb")  # noqa: SIM115
    except FileNotFoundError:
        return Streamed(iter(()), content)
    return Streamed(log_chunks(call, cid, tty, wanted, call.flag("follow"), since, until,
                               tail, call.flag("timestamps"), stream, 0), content)


# -- attach ------------------------------------------------------------------------------
@ROUTES.add("POST", "/containers/{id}/attach")
def container_attach(call: Call) -> None:
    """Hijacked: the container's output from now on, and input for its stdin.

    Without a terminal, the output is read from its log (which the monitor writes as
    the container prints), from where the log ends now: a container attached before its
    start (`docker run`) loses nothing of what it prints at once. With a terminal (a
    prompt prints no newline) and for input, the monitor's attach socket is used, as
    `shellctr attach` does."""
    cid = find(call)
    config = call.store.container_config(cid)
    tty = config["tty"]
    want_stdin = call.flag("stdin") and config["interactive"]
    wanted = {name for name in ("stdout", "stderr") if call.flag(name)}
    if not call.flag("stream") and not call.flag("logs"):
        raise bad_request("attach needs stream=1 or logs=1")
    state = state_of(call, cid)
    if state is None:
        raise NotFound(f"no such container: {call.params['id']}")
    log_path = call.store.layout.container_log(cid)
    offset = 0 if call.flag("logs") else log_size(log_path)
    not_started = state["status"] != "running"
    sock = call.hijack("application/vnd.docker.raw-stream" if tty
                       else "application/vnd.docker.multiplexed-stream")
    from shellctr.api.streams import Attachment

    Attachment(call, cid, sock, tty=tty, stdin=want_stdin, wanted=wanted,
               log_path=log_path, offset=offset, started=state["started_at"],
               stream=call.flag("stream"), not_started=not_started).run()


def log_size(path: Any) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


# -- archive (docker cp) -----------------------------------------------------------------
def path_stat(call: Call) -> tuple[str, dict[str, Any]]:
    """The container path's stat as Docker's X-Docker-Container-Path-Stat header."""
    import base64
    import stat as stat_module

    from shellctr.engine.copy import container_root, resolved_or_missing, stat_in_root

    path = call.arg("path")
    if not path:
        raise bad_request("path is required")
    if not path.startswith("/"):
        path = "/" + path
    with container_root(call.host, call.store, call.params["id"]) as (root, _):
        target = resolved_or_missing(root, path)
        if target is None:
            raise NotFound(f"Could not find the file {path} in container {call.params['id']}")
        st = stat_in_root(root, target)
    mode = stat_module.S_IMODE(st.st_mode)
    go_mode = mode
    if stat_module.S_ISDIR(st.st_mode):
        go_mode |= 1 << 31
    elif stat_module.S_ISLNK(st.st_mode):
        go_mode |= 1 << 27
    info = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size,
            "mode": go_mode, "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                    time.gmtime(st.st_mtime)),
            "linkTarget": ""}
    return base64.b64encode(json.dumps(info).encode()).decode(), info


@ROUTES.add("HEAD", "/containers/{id}/archive")
def archive_head(call: Call) -> Raw:
    header, _ = path_stat(call)
    return Raw(b"", "application/json", headers={"X-Docker-Container-Path-Stat": header})


@ROUTES.add("GET", "/containers/{id}/archive")
def archive_get(call: Call) -> Streamed:
    """A tar of the path (`cp CTR:PATH -`), walked under the container's root fd as
    `shellctr cp` walks it, written straight into the response."""
    import tarfile

    from shellctr.engine.copy import container_root, open_source, top_name, walk

    header, _ = path_stat(call)  # a missing path is a 404 before the stream begins
    path = call.arg("path") or "/"
    if not path.startswith("/"):
        path = "/" + path

    def write(out: Any) -> None:
        with container_root(call.host, call.store, call.params["id"]) as (root, _), \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            parent, name, contents = open_source(root, path, False, in_container=True)
            try:
                for info, data in walk(parent, name, "" if contents else top_name(name, path)):
                    archive.addfile(info, data)
                    if data is not None:
                        data.close()
            finally:
                os.close(parent)

    return Streamed(content_type="application/x-tar", writer=write,
                    headers={"X-Docker-Container-Path-Stat": header})


@ROUTES.add("PUT", "/containers/{id}/archive")
def archive_put(call: Call) -> Raw:
    """A tar extracted into a directory of the container (cp - CTR:DIR), member by
    member under its root fd, as `shellctr cp` does."""
    import stat as stat_module
    import tarfile

    from shellctr.engine.copy import container_root, extract, resolved_or_missing, stat_in_root

    path = call.arg("path")
    if not path:
        raise bad_request("path is required")
    if not path.startswith("/"):
        path = "/" + path
    owner = None if call.flag("copyUIDGID") else (0, 0)
    body = call.body()
    with container_root(call.host, call.store, call.params["id"]) as (root, _):
        target = resolved_or_missing(root, path)
        if target is None or not stat_module.S_ISDIR(stat_in_root(root, target).st_mode):
            raise NotFound(f"Could not find the file {path} in container "
                           f"{call.params['id']}: it must be a directory")
        try:
            with tarfile.open(fileobj=body, mode="r|*") as stream:
                extract(((member, stream.extractfile(member) if member.isreg() else None)
                         for member in stream), root, target, owner, to_host=False)
        except tarfile.TarError as err:
            raise bad_request(f"invalid tar archive: {err}") from err
        except OSError as err:
            raise ApiError(500 if err.errno is None else 400, f"cp failed: {err.strerror}") \
                from err
    return Raw(b"", "text/plain", 200)
