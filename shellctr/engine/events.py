"""Events, daemonless: every verb appends what it did to a journal under the run root,
RUNROOT/events.log (rotated to events.log.1 past JOURNAL_MAX), one JSON object a line in
Docker's event shape:

    {"status": "start", "id": ID, "from": "busybox", "Type": "container",
     "Action": "start", "Actor": {"ID": ID, "Attributes": {"image": ..., "name": ...}},
     "scope": "local", "time": 1764780000, "timeNano": 1764780000123456789}

A container's end (`die`, with its exitCode) is appended by whoever records it (its
attached `run`, or its monitor's hook), at the time its monitor wrote in exit.json.
`events` replays the journal in time order within --since/--until, then follows it.
"""

from __future__ import annotations

import time

from shellctr.core.errors import ShellctrError
from shellctr.core.store import Record, Store

# json, datetime and pathlib are imported where an event is written or read: the read
# verbs import this module (an end they record is an event) and seldom write one
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from shellctr.core.records import ContainerRecord

JOURNAL_MAX = 1 << 20  # bytes of events.log before it becomes events.log.1
POLL_SECONDS = 0.05
FILTER_KEYS = ("container", "event", "image", "label", "network", "type", "volume", "scope")
TYPES = ("container", "image", "network", "volume", "builder", "daemon", "plugin", "service",
         "node", "secret", "config")


def journal(store: Store) -> Path:
    return store.layout.runroot / "events.log"


def emit(store: Store, kind: str, action: str, actor: str,
         attributes: dict[str, str] | None = None, when: str | None = None) -> None:
    """Append one event; `when`: its time (ISO 8601), else now."""
    nano = time_nano(when) if when else time.time_ns()
    attributes = dict(attributes or {})
    event: Record = {}
    if kind == "container":  # the old fields, as Docker still sends them for containers
        event = {"status": action, "id": actor, "from": attributes.get("image", "")}
    elif kind == "image":
        event = {"status": action, "id": actor}
    event.update({"Type": kind, "Action": action,
                  "Actor": {"ID": actor, "Attributes": attributes},
                  "scope": "local", "time": nano // 1_000_000_000, "timeNano": nano})
    path = journal(store)
    if store.host.dry_run:
        return  # a --dry-run changes nothing, so nothing happened
    import json

    store.host.append_journal(path, json.dumps(event, separators=(",", ":")) + "\n",
                              JOURNAL_MAX)


def container_attributes(container: ContainerRecord, **extra: str) -> dict[str, str]:
    """A container event's attributes: its labels, image and name (and `extra`); a
    corrupt container's stand-in record may lack them."""
    return {**container.get("labels", {}), "image": container.get("image", ""),
            "name": container.get("name", ""), **extra}


def container_event(store: Store, cid: str, action: str, when: str | None = None,
                    **extra: str) -> None:
    """An event about a container that still has its records."""
    from shellctr.core.errors import CorruptRecord

    try:
        container = store.container(cid)
    except (FileNotFoundError, CorruptRecord):  # gone, or nothing to say about it
        return
    emit(store, "container", action, cid, container_attributes(container, **extra), when)


def time_nano(iso: str) -> int:
    """ISO 8601 / RFC 3339 (nanoseconds kept) -> ns since the epoch."""
    import re

    match = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
                         r"(Z|[+-]\d\d:\d\d)?", iso)
    if match is None:
        raise ValueError(f"invalid time {iso!r}")
    *fields, fraction, zone = match.groups()
    year, month, day, hour, minute, second = map(int, fields)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"invalid time {iso!r}")
    offset = 0
    if zone not in (None, "Z"):
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    seconds = (days_since_epoch(year, month, day) * 86400 + hour * 3600 + minute * 60
               + second - offset)
    return seconds * 1_000_000_000 + int((fraction or "0")[:9].ljust(9, "0"))


def days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (the civil-from-
    days inverse of Howard Hinnant's date algorithms; datetime's import costs each run's
    `die` event ~2 ms)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


# -- reading ----------------------------------------------------------------------------
def parse_filters(items: list[str]) -> dict[str, list[str]]:
    from shellctr.parts import filters

    found = filters.parse_filters(items, FILTER_KEYS)
    for kind in found.get("type", []):
        if kind not in TYPES:
            raise ShellctrError(f"invalid filter 'type={kind}'",
                                f"use one of {', '.join(TYPES)}")
    return found


def matches(event: Record, filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: values of one key are alternatives, keys all must hold."""
    from shellctr.parts.filters import label_matches
    from shellctr.parts.filters import matches as filter_matches

    actor = event["Actor"]
    attributes = actor.get("Attributes", {})
    kind = event["Type"]

    def actor_is(value: str, of: str) -> bool:
        return bool(kind == of and (actor["ID"].startswith(value)
                                    or attributes.get("name") == value))

    tests: dict[str, Callable[[str], bool]] = {
        "type": lambda v: kind == v,
        "event": lambda v: event["Action"] == v or event["Action"].split(":")[0] == v,
        "container": lambda v: actor_is(v, "container") or (
            kind == "network" and attributes.get("container", "").startswith(v)),
        "image": lambda v: (kind == "image" and (actor["ID"].startswith(v)
                                                  or attributes.get("name") == v))
        or attributes.get("image") == v,
        "network": lambda v: actor_is(v, "network"),
        "volume": lambda v: actor_is(v, "volume"),
        "label": lambda v: label_matches(attributes, v),
        "scope": lambda v: v == "local",
    }
    return filter_matches(filters, tests)


def read_lines(path: Path, offset: int = 0) -> tuple[list[Record], int]:
    import json

    try:
        with open(path, "rb") as stream:
            stream.seek(offset)
            data = stream.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:  # a line cut by a crash: skip it
            continue
    return events, offset + end


def replay(store: Store, since_ns: int | None, until_ns: int | None) -> tuple[list[Record],
                                                                                int, int]:
    """The journal's events in [since, until], in time order; with the inode and offset
    of events.log to follow from."""
    path = journal(store)
    older, _ = read_lines(path.with_name(path.name + ".1"))
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        inode = 0
    current, offset = read_lines(path)
    chosen = [e for e in older + current
              if (since_ns is None or e["timeNano"] >= since_ns)
              and (until_ns is None or e["timeNano"] <= until_ns)]
    chosen.sort(key=lambda e: e["timeNano"])  # stable: appends in order keep theirs
    return chosen, inode, offset


def follow(store: Store, inode: int, offset: int, until_ns: int | None) -> Iterator[Record]:
    """Events appended from `offset` on (across a rotation), until `until_ns` passes."""
    path = journal(store)
    while until_ns is None or time.time_ns() <= until_ns:
        try:
            now_inode = path.stat().st_ino
        except FileNotFoundError:
            now_inode = 0
        if now_inode != inode:  # rotated: the rest of the old file, then the new one
            rest, _ = read_lines(path.with_name(path.name + ".1"), offset) if inode else ([], 0)
            yield from rest
            inode, offset = now_inode, 0
        events, offset = read_lines(path, offset)
        for event in events:
            if until_ns is not None and event["timeNano"] > until_ns:
                return
            yield event
        time.sleep(POLL_SECONDS)


def to_ns(value: str | None) -> int | None:
    """--since/--until as Docker takes them (RFC 3339, Unix time, a duration ago)."""
    if value is None:
        return None
    from datetime import UTC, datetime

    from shellctr.engine.logs import parse_since

    when = parse_since(value, datetime.now(UTC))
    return int(when.timestamp() * 1_000_000) * 1000
