"""`events` (the journal every verb appends to, replayed and followed) and `_health` (the
hook a container's monitor runs for each health check: not for people)."""

from __future__ import annotations

import argparse
import sys
import time

from shellctr.cli.common import Context
from shellctr.cli.parser import Parser

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def cmd_events(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine import events

    filters = events.parse_filters(args.filter)
    since, until = events.to_ns(args.since), events.to_ns(args.until)
    show = formatter(args.format)
    replayed, inode, offset = events.replay(ctx.store, since, until)
    for event in replayed if since is not None or until is not None else []:  # as Docker:
        if events.matches(event, filters):  # without either, only what happens from now
            show(event)
    if until is not None and until <= time.time_ns():
        return 0  # a range wholly past: replayed, nothing to follow
    for event in events.follow(ctx.store, inode, offset, until):
        if events.matches(event, filters) and (since is None or event["timeNano"] >= since):
            show(event)
    return 0


def formatter(template: str | None) -> Callable[[dict[str, Any]], None]:
    """One event a line: Docker's default line, `json`, or a Go template."""
    import json

    def write(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    if template is None:
        return lambda event: write(default_line(event))
    if template == "json":
        return lambda event: write(json.dumps(event, separators=(",", ":")))
    from shellctr.cli.gotemplate import render

    return lambda event: write(render(template, event))


def default_line(event: dict[str, object]) -> str:
    """`2026-12-03T16:19:21.123456789Z container start ID (image=busybox, name=web)`,
    the time in the local zone, with nine digits (Docker's RFC3339NanoFixed)."""
    from datetime import datetime

    nano = int(str(event["timeNano"]))
    local = datetime.fromtimestamp(nano // 1_000_000_000).astimezone()
    zone = local.strftime("%z")
    zone = "Z" if zone == "+0000" else f"{zone[:3]}:{zone[3:]}"
    stamp = f"{local:%Y-%m-%dT%H:%M:%S}.{nano % 1_000_000_000:09d}{zone}"
    actor = event["Actor"]
    assert isinstance(actor, dict)
    attributes = actor.get("Attributes") or {}
    line = f"{stamp} {event['Type']} {event['Action']} {actor['ID']}"
    if attributes:
        line += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attributes.items())) + ")"
    return line


def cmd_health(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.health import check

    check(ctx.host, ctx.store, args.container)
    return 0


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    events = verbs.add_parser("events", help="show what shellctr did, then follow it")
    events.add_argument("--since", metavar="T",
                        help="from T (RFC 3339, Unix time, or a duration ago: 10m)")
    events.add_argument("--until", metavar="T", help="until T; stop there")
    events.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                        help="type=, event=, container=, image=, label=, network=, volume=")
    events.add_argument("--format", metavar="TEMPLATE", help="json, or a Go template")
    events.set_defaults(func=cmd_events)
    health = verbs.add_parser("_health")  # the monitor's health check hook
    health.add_argument("container")
    health.set_defaults(func=cmd_health)
