"""The verbs that only read: ps, port, logs, wait, stats, top, export of a
container, and inspect of any object (container, image, network, volume). The polling
verbs (tests/unit/test_import_closure.py) import this module, not the one of the verbs
that act on containers (cli/containers.py)."""

from __future__ import annotations

import sys

from shellctr.cli.common import Context, for_each, label_method, print_inspected, print_rows, report
from shellctr.cli.flags import Flag, Operand, Verb
from shellctr.core.errors import ShellctrError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from shellctr.cli.parser import Parser
    from shellctr.core.records import ContainerRecord, StateRecord
    from shellctr.core.store import Store


# -- verbs -----------------------------------------------------------------------------
def cmd_wait(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import wait

    return for_each(args.containers, lambda ref: print(wait(ctx.store, ref, args.condition)))


def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine import logs
    from shellctr.engine.containers import find_container
    from shellctr.engine.lifecycle import reconcile

    if args.tail != "all" and not args.tail.lstrip("-").isdigit():
        raise UsageError(f"invalid --tail {args.tail!r}", "give a number of lines, or all")
    tail = None if args.tail == "all" or int(args.tail) < 0 else int(args.tail)
    since = logs.parse_since(args.since) if args.since else None
    until = logs.parse_since(args.until) if args.until else None
    cid = find_container(ctx.store, args.container)
    if ctx.store.container_config(cid).get("log_driver") == "none":
        raise ShellctrError("configured logging driver does not support reading",
                            "the container runs with --log-driver none")
    path = ctx.store.layout.container_log_at(cid)
    try:  # open once: a --rm container's log goes with it, and -f must read it to the end
        stream = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:  # never started, or removed just now
        return 0
    with stream:
        records = logs.read_rotated(path, stream)  # --log-opt max-size: the older files
        current, offset = logs.read_from(stream, 0)
        records += current
        for record in logs.select(records, tail, since, until):
            logs.show(record, args.timestamps, args.details)
        if args.follow:
            def running() -> bool:
                try:
                    return reconcile(ctx.store, cid)["status"] == "running"
                except FileNotFoundError:  # removed (--rm) meanwhile: it has ended
                    return False

            logs.follow(stream, offset, running, args.timestamps, until, path, args.details)
    return 0


INSPECT_TYPES = ("container", "image", "network", "volume")


def inspected(ctx: Context, name: str, kind: str | None, size: bool) -> dict[str, Any]:
    """The first object called `name` (of `kind`, if given): containers first, as Docker."""
    from shellctr.core.errors import NotFound
    from shellctr.engine.containers import find_container
    from shellctr.engine.inspect import container_json, image_json
    from shellctr.parts.reference import find_image_record

    def container() -> dict[str, Any]:
        cid = find_container(ctx.store, name)
        record: dict[str, Any] = container_json(ctx.store, cid)
        if size:
            from shellctr.engine.info import container_sizes

            rw, image = container_sizes(ctx.host, ctx.store, [cid]).get(cid, (0, 0))
            record["SizeRw"], record["SizeRootFs"] = rw, rw + image
        return record

    def network() -> dict[str, Any]:
        from shellctr.engine.inspect import network_json
        from shellctr.engine.network import find_network

        return network_json(ctx.store, find_network(ctx.store, name))

    def volume() -> dict[str, Any]:
        from shellctr.cli.volumes import volume_json

        return dict(volume_json(ctx, name))

    finders = {"container": container,
               "image": lambda: image_json(find_image_record(ctx.store.image_records(), name),
                                           ctx.store),
               "network": network, "volume": volume}
    for key in (kind,) if kind else INSPECT_TYPES:
        try:
            return finders[key]()
        except NotFound:
            continue
        except FileNotFoundError:  # removed by another process as we read it
            continue
    raise NotFound(f"no such {kind or 'object'}: {name}")


def cmd_inspect(args: argparse.Namespace, ctx: Context) -> int:
    found = []
    code = 0
    for name in args.names:
        try:
            found.append(inspected(ctx, name, args.type, args.size))
        except ShellctrError as err:
            report(err)
            code = 1
    print_inspected(found, args.format)
    return code


def cmd_stats(args: argparse.Namespace, ctx: Context) -> int:
    import re
    import time

    from shellctr.cli.gotemplate import Template, table_format
    from shellctr.cli.textfmt import STATS_DEFAULT_FORMAT, STATS_HEADERS, stats_row, table
    from shellctr.engine import cgroup, stats
    from shellctr.engine.containers import find_container
    from shellctr.engine.lifecycle import container_group, reconcile

    store = ctx.store
    cpus = len(cgroup.host_cpus(ctx.host.facts))
    chosen = [find_container(store, ref) for ref in args.containers]
    groups: dict[str, str] = {}  # id: its cgroup path

    def targets() -> list[tuple[str, str, int]]:
        """(id, name, PID 1 or 0 when not running) of the containers to show."""
        found = []
        for cid in chosen or store.container_ids():
            try:
                state, container = reconcile(store, cid), store.container(cid)
            except FileNotFoundError:  # removed just now
                continue
            running = state["status"] == "running"
            if running or chosen or args.all:
                groups[cid] = container_group(container)
                found.append((cid, container["name"], state["pid"] if running else 0,
                              container["created"]))
        return [(cid, name, pid) for cid, name, pid, _ in
                sorted(found, key=lambda item: item[3], reverse=True)]

    def take(shown: list[tuple[str, str, int]]) -> dict[str, stats.Sample]:
        return {cid: stats.sample(ctx.host.facts, groups[cid], pid) if pid else stats.Sample()
                for cid, _, pid in shown}

    spec = STATS_DEFAULT_FORMAT if args.format in (None, "", "table") else args.format
    is_table, template = table_format(spec)
    parsed = Template(template) if spec != "json" else None

    def frame(shown: list[tuple[str, str, int]], before: dict[str, stats.Sample],
              after: dict[str, stats.Sample]) -> str:
        rows = [stats_row(cid, name, before.get(cid, after[cid]), after[cid], cpus)
                for cid, name, _ in shown]
        if parsed is None:  # --format json: one object a line, keys sorted, as Docker's
            import json

            return "\n".join(json.dumps(row, sort_keys=True, separators=(",", ":"))
                             for row in rows)
        lines = [parsed.execute(item) for item in rows]
        if not is_table:
            return "\n".join(lines)
        header = re.sub(r"{{\s*\.(\w+)\s*}}",
                        lambda m: STATS_HEADERS.get(m[1], m[1].upper()), template)
        return table(header.split("\t"), [line.split("\t") for line in lines])

    shown = targets()
    before = take(shown)
    try:
        while True:
            time.sleep(1.0)  # CPU % is a rate: two readings ~1 s apart, as Docker's
            if not chosen:  # containers started or ended meanwhile come and go
                shown = targets()
            after = take(shown)
            text = frame(shown, before, after)
            if args.no_stream:
                print(text)
                return 0
            # redraw in place: cursor home, clear the screen below it
            sys.stdout.write("\033[H\033[J" + text + "\n")
            sys.stdout.flush()
            before = after
    except KeyboardInterrupt:
        return 0


def cmd_top(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.cli.textfmt import top_table
    from shellctr.engine.containers import top

    print(top_table(top(ctx.host, ctx.store, args.container, args.ps_args)))
    return 0


def cmd_ps(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.cli.textfmt import command_column, human_ago, human_duration, human_size
    from shellctr.core.errors import CorruptRecord
    from shellctr.core.ids import short_id
    from shellctr.core.store import clock
    from shellctr.engine import cgroup
    from shellctr.engine.containers import container_matches, parse_filters, restart_unwatched
    from shellctr.engine.lifecycle import container_group, salvaged

    datetime, _ = clock()

    store = ctx.store
    filters = parse_filters(args.filter)

    def entry(cid: str) -> tuple[ContainerRecord, StateRecord] | None:
        try:
            state = restart_unwatched(ctx.host, store, cid)  # reconciled; a lost policy applied
            return store.container(cid, state), state
        except FileNotFoundError:  # another shellctr process removed it just now
            return None
        except CorruptRecord as err:
            return broken(cid, err)

    def broken(cid: str, err: CorruptRecord) -> tuple[ContainerRecord, StateRecord]:
        """A container whose records cannot be read: a row saying so (as Podman shows
        one), from what can be read of it."""
        container = salvaged(store, cid)
        container.setdefault("created", "1970-01-01T00:00:00+00:00")
        for key, value in (("image", ""), ("path", ""), ("args", []), ("labels", {})):
            container.setdefault(key, value)  # type: ignore[misc]
        state = {"status": "error", "error": f"Error: corrupt state ({err.path})"}
        return container, state  # type: ignore[return-value]

    entries = sorted(filter(None, map(entry, store.container_ids())),
                     key=lambda entry: entry[0]["created"], reverse=True)
    last = 1 if args.latest else args.last
    if last >= 0:
        entries = entries[:last]
    elif not args.all and "status" not in filters:
        entries = [(c, s) for c, s in entries if s["status"] == "running"]
    entries = [(c, s) for c, s in entries if container_matches(store, c, s, filters)]
    full = args.no_trunc
    if args.quiet:  # the ids alone: none of the columns is read (ports, freezer, sizes)
        for container, _ in entries:
            print(container["id"] if full else short_id(container["id"]))
        return 0
    # as Docker: a container that does not run shows no ports
    published = ports_column(store, [c for c, s in entries if s["status"] == "running"])
    sizes: dict[str, str] = {}
    if args.size:
        from shellctr.engine.info import container_sizes

        sizes = {cid: f"{human_size(rw)} (virtual {human_size(rw + image)})"
                 for cid, (rw, image) in container_sizes(ctx.host, store,
                                                          [c["id"] for c, _ in entries]).items()}
    rows: list[dict[str, Any]] = []
    v2: bool | None = None
    for container, state in entries:
        cid = container["id"]
        created = datetime.fromisoformat(container["created"])
        if state["status"] == "running" and state["started_at"] is not None:
            status = "Up " + human_duration(datetime.fromisoformat(state["started_at"]))
            if v2 is None:
                v2 = cgroup.unified(ctx.host.facts)  # the hierarchy: one look for all
            if cgroup.is_frozen(ctx.host.facts, container_group(container), v2):
                status += " (Paused)"
            elif container.get("healthcheck"):
                from shellctr.engine.health import status_suffix

                status += status_suffix(store, cid)
        elif state["status"] == "exited" and state["finished_at"] is not None:
            status = (f"Exited ({state['exit_code']}) "
                      f"{human_ago(datetime.fromisoformat(state['finished_at']))}")
        elif str(state["status"]) == "error":  # broken(): its records are corrupt
            status = state["error"]
        else:
            status = "Created"
        rows.append({
            "ID": cid if full else short_id(cid), "Image": container["image"],
            "Command": command_column([container["path"], *container["args"]],
                                      truncate=not full),
            "CreatedAt": created.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
            "RunningFor": human_ago(created), "Status": status, "State": state["status"],
            "Ports": published.get(cid, ""), "Names": container["name"],
            "Labels": ",".join(f"{k}={v}" for k, v in container["labels"].items()),
            "Label": label_method(container["labels"]),
            "Mounts": ",".join(mount["source"] if mount["type"] == "volume" else
                               mount["target"] for mount in container["mounts"]
                               if mount["type"] != "tmpfs"),
            "LocalVolumes": str(sum(m["type"] == "volume" for m in container["mounts"])),
            "Networks": ",".join(container["networks"]) or container["network_mode"],
            "Size": sizes.get(cid, "") if args.size else "",
        })
    print_rows(rows, args.format, PS_SIZE_FORMAT if args.size else PS_DEFAULT_FORMAT,
               PS_HEADERS)
    return 0


def ports_column(store: Store, containers: list[ContainerRecord]) -> dict[str, str]:
    """ps' PORTS, as Docker: `0.0.0.0:8080->80/tcp` for published ports, `80/tcp` for
    exposed ones, consecutive ones grouped (`7000-7002/tcp`, see displayable_ports)."""
    if not any(container["exposed"] for container in containers):
        return {}
    from shellctr.cli.textfmt import displayable_ports
    from shellctr.engine.network import ports_of

    bound = ports_of(store)
    column = {}
    for container in containers:
        cid = container["id"]
        published = [(str(b["host_ip"] or "0.0.0.0"), int(b["host_port"]), int(b["port"]),
                      str(b["proto"])) for b in bound.get(cid, [])]
        shown = {f"{port}/{proto}" for _, _, port, proto in published}
        exposed = [("", 0, int(spec.partition("/")[0]), spec.partition("/")[2])
                   for spec in container["exposed"] if spec not in shown]
        column[cid] = displayable_ports(published + exposed)
    return column


def cmd_port(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import find_container
    from shellctr.engine.network import port_text, ports_of

    cid = find_container(ctx.store, args.container)
    bindings = ports_of(ctx.store).get(cid, [])
    if args.port:
        port, _, proto = args.port.partition("/")
        found = [b for b in bindings if str(b["port"]) == port and b["proto"] == (proto or "tcp")]
        if not found:
            raise ShellctrError(f"no public port '{args.port}' published for {args.container}")
        for binding in found:
            print(port_text(binding))
        return 0
    for binding in bindings:
        print(f"{binding['port']}/{binding['proto']} -> {port_text(binding)}")
    return 0


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "RunningFor": "CREATED", "CreatedAt": "CREATED AT", "Status": "STATUS",
              "State": "STATE", "Ports": "PORTS", "Names": "NAMES", "Labels": "LABELS",
              "Label": "LABEL", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
              "Networks": "NETWORKS", "Size": "SIZE"}


PS_DEFAULT_FORMAT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
                     "{{.Ports}}\t{{.Names}}")


PS_SIZE_FORMAT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
                  "{{.Ports}}\t{{.Names}}\t{{.Size}}")


def cmd_export(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from shellctr.engine.containers import export

    export(ctx.host, ctx.store, args.container, Path(args.output) if args.output else None)
    return 0


# -- parsing ---------------------------------------------------------------------------
# argparse's parsers of the read verbs are made of these, and so is the fast parser of
# their common invocations (cli/flags.py)
def read_verbs() -> dict[str, Verb]:
    """The read verbs' command lines, made on each call: a verb's function is the
    module's when the command line is parsed (as `register` takes it)."""
    return {
        "wait": Verb(cmd_wait, [
            Flag("--condition", kind="value", default="not-running", metavar="CONDITION",
                 help="not-running (the default), next-exit or removed"),
        ], [Operand("containers", "CONTAINER", "+")]),
        "logs": Verb(cmd_logs, [
            Flag("-f", "--follow", help="keep printing new output"),
            Flag("-n", "--tail", kind="value", default="all", metavar="N",
                 help="only the last N lines (default all)"),
            Flag("-t", "--timestamps", help="show timestamps"),
            Flag("--since", kind="value", metavar="T",
                 help="only after T (RFC 3339, Unix time, 10m)"),
            Flag("--until", kind="value", metavar="T", help="only before T"),
            Flag("--details",
                 help="each line after the extra attributes given to the log (none)"),
        ], [Operand("container", "CONTAINER")]),
        "inspect": Verb(cmd_inspect, [
            Flag("-f", "--format", kind="value", metavar="TEMPLATE",
                 help="'json' (one object a line), or a Go template"),
            Flag("--type", kind="value", choices=INSPECT_TYPES, metavar="TYPE",
                 help="only objects of this type: " + ", ".join(INSPECT_TYPES)),
            Flag("-s", "--size", help="with the container's SizeRw and SizeRootFs"),
        ], [Operand("names", "NAME", "+")]),
        "ps": Verb(cmd_ps, [
            Flag("-a", "--all", help="show stopped containers too"),
            Flag("-q", "--quiet", help="only ids"),
            Flag("-s", "--size",
                 help="the size of each container's writable layer (and its image's)"),
            Flag("--no-trunc", help="don't shorten ids and commands"),
            Flag("-f", "--filter", kind="append", metavar="KEY=VALUE",
                 help="id, name, status, exited, ancestor, label"),
            Flag("--format", kind="value", metavar="FORMAT",
                 help="'table', 'json', or a Go template ('table ...': columns)"),
            Flag("-n", "--last", kind="int", default=-1, metavar="N",
                 help="the N last created containers (any state)"),
            Flag("-l", "--latest", help="the last created container (any state)"),
        ]),
        "port": Verb(cmd_port, [], [Operand("container", "CONTAINER"),
                                    Operand("port", "PORT[/PROTO]", "?")]),
    }


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add the verbs that read to the command line."""
    import argparse

    read_verbs()["wait"].add_arguments(
        verbs.add_parser("wait", help="wait for containers to end; print exit codes"))
    read_verbs()["logs"].add_arguments(verbs.add_parser("logs", help="what a container printed"))
    read_verbs()["inspect"].add_arguments(
        verbs.add_parser("inspect", help="containers and images as JSON"))

    stats = verbs.add_parser("stats", help="containers' CPU, memory, I/O and pids")
    stats.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    stats.add_argument("--no-stream", action="store_true", help="print once, then exit")
    stats.add_argument("--format", metavar="FORMAT",
                       help="'table', 'json', or a Go template ('table ...': columns)")
    stats.add_argument("containers", nargs="*", metavar="CONTAINER")
    stats.set_defaults(func=cmd_stats)

    top = verbs.add_parser("top", help="a container's processes (ps options allowed)")
    top.add_argument("container", metavar="CONTAINER")
    top.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="PS-OPTIONS")
    top.set_defaults(func=cmd_top)

    read_verbs()["ps"].add_arguments(verbs.add_parser("ps", help="list containers"))
    read_verbs()["port"].add_arguments(
        verbs.add_parser("port", help="a container's published ports"))

    exp = verbs.add_parser("export", help="write a container's filesystem as a tar")
    exp.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    exp.add_argument("container", metavar="CONTAINER")
    exp.set_defaults(func=cmd_export)
