"""Storage verbs: the `volume` group and `cp`."""

from __future__ import annotations

from shellctr.cli.common import Context, confirm, for_each, print_inspected
from shellctr.cli.flags import Flag, Verb
from shellctr.core.errors import ShellctrError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from shellctr.cli.parser import Parser


def cmd_volume_create(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.core.host import Rollback
    from shellctr.core.ids import new_id
    from shellctr.engine.volume import check_volume_name, create_volume
    from shellctr.parts.request import parse_labels

    if args.name and args.volume and args.name != args.volume:
        raise UsageError(f"conflicting options: either specify --name or provide positional "
                         f"arg, not both ({args.name} != {args.volume})")
    if args.driver != "local":
        raise ShellctrError(f"volume driver {args.driver} is not supported", "use local")
    from shellctr.engine.volume import parse_driver_options

    options = parse_driver_options(ctx.host.facts, args.opt)
    name = args.name or args.volume or new_id()
    check_volume_name(name)
    labels = parse_labels(args.label)
    store = ctx.store
    store.prepare()
    with store.lock(), Rollback(ctx.host) as rollback:
        if not store.layout.volume_record(name).exists():  # Docker: an existing one is fine
            create_volume(ctx.host, store, name, labels, rollback, options=options)
    ctx.host.result(name)
    return 0


def volume_json(ctx: Context, name: str) -> dict[str, object]:
    from shellctr.engine.inspect import volume_json as shape

    return shape(ctx.store, name)


def cmd_volume_inspect(args: argparse.Namespace, ctx: Context) -> int:

    from shellctr.cli.common import report

    found, code = [], 0
    for name in args.volumes:
        try:
            found.append(volume_json(ctx, name))
        except ShellctrError as err:
            report(err)
            code = 1
    print_inspected(found, args.format)
    return code


VOLUME_FILTERS = ("dangling", "name", "label", "driver")


def volume_filter(items: list[str]) -> dict[str, list[str]]:
    from shellctr.parts.filters import parse_filters

    filters = parse_filters(items, VOLUME_FILTERS)
    for value in filters.get("dangling", []):
        if value not in ("true", "false", "1", "0"):
            raise UsageError(f"invalid filter 'dangling={value}'", "use dangling=true|false")
    return filters


def name_matches(wanted: str, name: str) -> bool:
    """Docker's name filter: a regular expression found in the name (so a substring)."""
    import re

    try:
        return re.search(wanted, name) is not None
    except re.error:
        return wanted in name


def matches(volume: dict[str, object], used: bool, filters: dict[str, list[str]]) -> bool:
    from shellctr.parts.filters import label_matches
    from shellctr.parts.filters import matches as passes

    labels = volume["Labels"] or {}
    assert isinstance(labels, dict)
    return passes(filters, {
        "dangling": lambda v: (not used) == (v in ("true", "1")),
        "name": lambda v: name_matches(v, str(volume["Name"])),
        "label": lambda v: label_matches(labels, v),
        "driver": lambda v: v == volume["Driver"],
    })


def listed(ctx: Context, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    from shellctr.cli.common import report
    from shellctr.core.errors import CorruptRecord
    from shellctr.engine.volume import volume_users

    # only `dangling` asks who uses a volume: every container's config, read once
    used = volume_users(ctx.store) if "dangling" in filters else {}
    found: list[dict[str, Any]] = []
    for name in ctx.store.volume_names():
        try:
            item = volume_json(ctx, name)
        except CorruptRecord as err:  # listed, and said what to do (volume rm removes it)
            report(err)
            if not filters:
                found.append({"Driver": "<corrupt>", "Name": name, "Mountpoint": ""})
            continue
        except ShellctrError:  # removed meanwhile
            continue
        if matches(item, name in used, filters):
            found.append(item)
    return found


def cmd_volume_ls(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.cli.common import label_method, print_rows

    found = listed(ctx, volume_filter(args.filter))
    if args.quiet:
        for item in found:
            print(item["Name"])
        return 0
    rows = [{"Driver": item["Driver"], "Name": item["Name"], "Scope": item.get("Scope", "local"),
             "Mountpoint": item.get("Mountpoint", ""), "Availability": "N/A", "Group": "N/A",
             "Status": "N/A", "Size": "N/A",
             "Labels": ",".join(f"{k}={v}" for k, v in dict(item.get("Labels") or {}).items()),
             "Label": label_method(item.get("Labels")),
             "Links": "N/A"} for item in found]
    print_rows(rows, args.format, "table {{.Driver}}\t{{.Name}}",
               {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
                "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Label": "LABEL",
                "Links": "LINKS", "Size": "SIZE", "Availability": "AVAILABILITY",
                "Group": "GROUP", "Status": "STATUS"})
    return 0


def cmd_volume_rm(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.core.errors import NotFound
    from shellctr.engine.volume import remove_volume

    def rm(name: str) -> None:
        with ctx.store.lock():
            try:
                remove_volume(ctx.host, ctx.store, name)
            except NotFound:
                if not args.force:
                    raise

    return for_each(args.volumes, rm, echo=ctx.host.result)


def cmd_volume_prune(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.cli.textfmt import human_size

    filters = volume_filter(args.filter)
    what = "local volumes" if args.all else "anonymous local volumes"
    if not confirm(f"This will remove {what} not used by at least one container.",
                   args.force):
        return 0
    removed, space = prune_volumes(ctx, filters, args.all)
    if removed:
        ctx.host.result("Deleted Volumes:\n" + "\n".join(removed) + "\n")
    ctx.host.result(f"Total reclaimed space: {human_size(space)}")
    return 0


def prune_volumes(ctx: Context, filters: dict[str, list[str]],
                  named_too: bool) -> tuple[list[str], int]:
    """Remove the volumes no container uses (anonymous ones only unless `named_too`):
    their names, and the bytes they held."""
    from shellctr.engine.volume import ANONYMOUS_LABEL, remove_volume, users

    removed, space = [], 0
    store = ctx.store
    with store.lock():
        for item in listed(ctx, filters):
            name = str(item["Name"])
            labels = item["Labels"] or {}
            assert isinstance(labels, dict)
            if users(store, name) or (not named_too and ANONYMOUS_LABEL not in labels):
                continue
            size = tree_size(store.layout.volume_data(name))
            remove_volume(ctx.host, store, name)
            removed.append(name)
            space += size
    return removed, space


def tree_size(path: object) -> int:
    import os

    total = 0
    for directory, _, files in os.walk(str(path)):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


def cmd_cp(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.copy import cp

    cp(ctx.host, ctx.store, args.src, args.dst, args.archive, args.follow_link)
    return 0


def cmd_volume(args: argparse.Namespace, ctx: Context) -> int:
    """`volume COMMAND ...`: its own parser, built only when it is used (building every
    verb's parser is paid by every command, `run` included)."""
    from shellctr.cli.parser import Parser

    parser = Parser(prog="shellctr volume", description="manage volumes")
    register_volume_verbs(parser.add_subparsers(dest="volume_verb", metavar="COMMAND",
                                                required=True))
    sub = parser.parse_args(["--help"] if args.help else args.args)
    code: int = sub.func(sub, ctx)
    return code


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add the storage verbs to the command line."""
    import argparse

    volume = verbs.add_parser("volume", help="manage volumes (create, ls, inspect, rm, "
                              "prune)", add_help=False)
    volume.add_argument("-h", "--help", action="store_true", help="show the commands")
    volume.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    volume.set_defaults(func=cmd_volume)

    cp = verbs.add_parser("cp", help="copy files between a container and the host")
    cp.add_argument("-a", "--archive", action="store_true", help="keep uid/gid")
    cp.add_argument("-L", "--follow-link", action="store_true",
                    help="follow a symlink at the end of SRC")
    cp.add_argument("src", metavar="SRC")
    cp.add_argument("dst", metavar="DST")
    cp.set_defaults(func=cmd_cp)


# argparse's parsers of the read verbs are made of these, and so is the fast parser of
# their common invocations (cli/flags.py)
def read_verbs() -> dict[str, Verb]:
    """The read verbs' command lines, made on each call: a verb's function is the
    module's when the command line is parsed (as `register` takes it)."""
    return {
        "volume ls": Verb(cmd_volume_ls, [
            Flag("-q", "--quiet", help="only names"),
            Flag("-f", "--filter", kind="append", metavar="KEY=VALUE",
                 help="dangling=true|false, name=, label=KEY[=VALUE], driver="),
            Flag("--format", kind="value", metavar="FORMAT",
                 help="'table', 'json', or a Go template ('table ...': columns)"),
        ]),
    }


def register_volume_verbs(sub: argparse._SubParsersAction[Parser]) -> None:
    create = sub.add_parser("create", help="create a volume (a random name if none)")
    create.add_argument("--name", help="the volume's name")
    create.add_argument("-d", "--driver", default="local", help="only local")
    create.add_argument("-l", "--label", action="append", default=[], metavar="K=V")
    create.add_argument("-o", "--opt", action="append", default=[], metavar="K=V")
    create.add_argument("volume", nargs="?", metavar="NAME")
    create.set_defaults(func=cmd_volume_create)

    inspect = sub.add_parser("inspect", help="volumes as JSON")
    inspect.add_argument("-f", "--format", metavar="TEMPLATE", help="a Go template")
    inspect.add_argument("volumes", nargs="+", metavar="VOLUME")
    inspect.set_defaults(func=cmd_volume_inspect)

    read_verbs()["volume ls"].add_arguments(
        sub.add_parser("ls", aliases=["list"], help="list volumes"))

    rm = sub.add_parser("rm", aliases=["remove"], help="remove volumes no container uses")
    rm.add_argument("-f", "--force", action="store_true", help="no error for missing ones")
    rm.add_argument("volumes", nargs="+", metavar="VOLUME")
    rm.set_defaults(func=cmd_volume_rm)

    prune = sub.add_parser("prune", help="remove unused anonymous volumes (-a: all unused)")
    prune.add_argument("-a", "--all", action="store_true", help="named ones too")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask")
    prune.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE")
    prune.set_defaults(func=cmd_volume_prune)
