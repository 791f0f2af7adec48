"""A container's output and terminal: logs (read from its log file, followed while it
runs), attach (hijacked, pumped by api/streams.py), resize of its terminal, and stats
(its cgroup's usage, sampled once or streamed)."""

from __future__ import annotations

import json
import os
import struct
import time
from typing import Any

from shellctr.api.containers import find, state_of
from shellctr.api.routes import ROUTES, Call, Raw, Streamed, bad_request
from shellctr.api.streams import frame
from shellctr.core.errors import Conflict, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

STREAMS = {"stdin": 0, "stdout": 1, "stderr": 2}



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

    from shellctr.api.watch import StateWatch

    watch = StateWatch(call.store, cid)
    try:
        records, offset = logs.read_from(stream, offset)
        for record in logs.select(records, tail, since, until):
            if record.stream in wanted:
                yield encoded(record)
        while follow:
            state = watch.state()
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
    keys = detach_keys(call)
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
               stream=call.flag("stream"), not_started=not_started, keys=keys).run()


def detach_keys(call: Call) -> bytes:
    """`detachKeys` (Docker's words: `ctrl-p,ctrl-q`, the default): typed in the input,
    they end the attach and leave the container running."""
    from shellctr.core.errors import UsageError
    from shellctr.engine.terminal import DEFAULT_DETACH_KEYS, parse_detach_keys

    try:
        return parse_detach_keys(call.arg("detachKeys") or DEFAULT_DETACH_KEYS)
    except UsageError as err:
        raise bad_request(str(err)) from None


def log_size(path: Any) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
