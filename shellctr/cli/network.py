"""Network verbs: network create/ls/inspect/rm/prune/connect/disconnect; system prune."""

from __future__ import annotations

import os

from shellctr.cli.common import Context, confirm, for_each, print_inspected, report
from shellctr.cli.flags import Flag, Verb
from shellctr.core.errors import ShellctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from shellctr.cli.parser import Parser
    from shellctr.core.store import Record



def parse_labels(items: list[str]) -> dict[str, str]:
    from shellctr.parts.request import parse_labels as parse

    return parse(items)


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.network import create

    record = create(ctx.host, ctx.store, args.name, subnet=args.subnet, gateway=args.gateway,
                    ip_range=args.ip_range, internal=args.internal,
                    labels=parse_labels(args.label), driver=args.driver)
    ctx.host.result(record["id"])
    return 0


def matches(record: Record, filters: list[str]) -> bool:
    """`--filter KEY=VALUE`: the same key ORs, different keys AND (as Docker)."""
    from shellctr.parts.filters import NETWORK_KEYS, network_matches, parse_filters

    return network_matches(record, parse_filters(filters, NETWORK_KEYS))


def cmd_ls(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.core.errors import CorruptRecord
    from shellctr.engine.network import records

    corrupt: list[CorruptRecord] = []
    shown = [r for r in records(ctx.store, corrupt) if matches(r, args.filter)]
    shown.sort(key=lambda r: r["name"])
    if not args.filter:  # a corrupt record matches no filter
        for err in corrupt:  # listed, and said what to do
            report(err)
        shown += [{"id": os.path.basename(str(err.path)).removesuffix(".json"), "name": "<corrupt>",
                   "driver": ""} for err in corrupt]
    if args.quiet:
        for record in shown:
            print(record["id"] if args.no_trunc else record["id"][:12])
        return 0
    from shellctr.cli.common import label_method, print_rows

    rows = [{"ID": r["id"] if args.no_trunc else r["id"][:12], "Name": r["name"],
             "Driver": r["driver"], "Scope": "local", "IPv6": "false",
             "Internal": str(bool(r.get("internal"))).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in (r.get("labels") or {}).items()),
             "Label": label_method(r.get("labels")),
             "CreatedAt": str(r.get("created", ""))} for r in shown]
    print_rows(rows, args.format, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
               {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "Label": "LABEL",
                "CreatedAt": "CREATED AT"})
    return 0


def cmd_inspect(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.inspect import network_json
    from shellctr.engine.network import find_network

    found: list[dict[str, Any]] = []
    code = for_each(args.networks, lambda ref: found.append(
        network_json(ctx.store, find_network(ctx.store, ref))))
    print_inspected(found, args.format)
    return code and 1


def cmd_rm(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.core.errors import NotFound
    from shellctr.engine.network import find_network, remove
    from shellctr.parts.netopts import DEFAULT_NETWORK

    def rm(ref: str) -> None:
        try:
            default = ref in (DEFAULT_NETWORK, "bridge") or \
                find_network(ctx.store, ref)["name"] == DEFAULT_NETWORK
        except NotFound:  # perhaps one whose record is corrupt: remove finds it
            default = False
        if default:
            raise ShellctrError(f"{DEFAULT_NETWORK} is a pre-defined network and cannot be "
                                "removed", "`system prune` removes it while nothing uses it")
        remove(ctx.host, ctx.store, ref)

    return for_each(args.networks, rm, echo=ctx.host.result)


def cmd_prune(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.network import prune

    if not confirm("This will remove all custom networks not used by at least one "
                   "container.", args.force):
        return 0
    removed = prune(ctx.host, ctx.store)
    if removed:
        print("Deleted Networks:\n" + "\n".join(removed))
    return 0


def cmd_connect(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.endpoint import connect

    connect(ctx.host, ctx.store, args.network, args.container, args.ip, args.alias)
    return 0


def cmd_disconnect(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.endpoint import disconnect

    disconnect(ctx.host, ctx.store, args.network, args.container, args.force)
    return 0


def cmd_system_prune(args: argparse.Namespace, ctx: Context) -> int:
    """Stopped containers, the networks nothing uses (the default one too: it is made
    again on first use, so no bridge, rule or resolver stays behind), with --volumes the
    anonymous volumes nothing uses, then dangling images (-a: every unused image)."""
    from shellctr.cli.textfmt import human_size
    from shellctr.cli.volumes import prune_volumes, tree_size
    from shellctr.core.errors import CorruptRecord
    from shellctr.engine.containers import remove, remove_broken
    from shellctr.engine.image import prune_images
    from shellctr.engine.lifecycle import reconcile
    from shellctr.engine.network import prune
    from shellctr.engine.system import collect

    what = ["all stopped containers", "all networks not used by at least one container"]
    if args.volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append("all images without at least one container associated to them" if args.all
                else "all dangling images")
    if not confirm("This will remove:\n" + "".join(f"  - {line}\n" for line in what)
                   .rstrip("\n"), args.force):
        return 0
    removed, space = [], 0
    for cid in ctx.store.container_ids():
        try:
            if reconcile(ctx.store, cid)["status"] != "running":
                size = tree_size(ctx.store.layout.container_upper(cid))
                remove(ctx.host, ctx.store, cid, force=False)
                removed.append(cid)
                space += size
        except CorruptRecord:  # nothing can run it: it goes, with what its id names
            remove_broken(ctx.host, ctx.store, cid)
            removed.append(cid)
        except (FileNotFoundError, ShellctrError):  # removed or started meanwhile
            continue
    leftovers = [path.name for path in collect(ctx.host, ctx.store)]  # of crashes, kills
    networks = prune(ctx.host, ctx.store, include_default=True)
    volumes, volume_space = prune_volumes(ctx, {}, False) if args.volumes else ([], 0)
    images, image_space = prune_images(ctx.host, ctx.store, args.all)
    for title, lines in (("Containers", removed), ("Networks", networks),
                         ("Volumes", volumes), ("Images", images), ("Leftovers", leftovers)):
        if lines:
            ctx.host.result(f"Deleted {title}:\n" + "\n".join(lines) + "\n")
    ctx.host.result(f"Total reclaimed space: {human_size(space + volume_space + image_space)}")
    return 0


def cmd_system_check(args: argparse.Namespace, ctx: Context) -> int:
    """`system check [--repair]`: exit 0 when all is well (or repaired), 1 otherwise."""
    from shellctr.engine.system import check

    found = check(ctx.host, ctx.store, args.repair)
    for line in found:
        ctx.host.result(line)
    if args.repair and found:
        remaining = check(ctx.host, ctx.store, False)
        ctx.host.result(f"repaired {len(found) - len(remaining)} of {len(found)}; "
                        f"{len(remaining)} left (see above for what removes them)")
        return 1 if remaining else 0
    return 1 if found else 0


def cmd_system_reconcile(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.core.errors import CorruptRecord
    from shellctr.engine.containers import restart_unwatched

    for cid in ctx.store.container_ids():
        try:
            restart_unwatched(ctx.host, ctx.store, cid)
        except (FileNotFoundError, CorruptRecord):  # removed meanwhile; system check says
            continue
    return 0


def cmd_system_reset(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.system import reset

    if not confirm("This will remove every container, image, network and volume of "
                   f"{ctx.store.layout.root}, and the directory itself.", args.force):
        return 0
    reset(ctx.host, ctx.store)
    return 0


# argparse's parsers of the read verbs are made of these, and so is the fast parser of
# their common invocations (cli/flags.py)
def read_verbs() -> dict[str, Verb]:
    """The read verbs' command lines, made on each call: a verb's function is the
    module's when the command line is parsed (as `register` takes it)."""
    return {
        "network ls": Verb(cmd_ls, [
            Flag("-q", "--quiet", help="only ids"),
            Flag("--no-trunc", help="full ids"),
            Flag("--format", kind="value", metavar="FORMAT",
                 help="'table', 'json', or a Go template ('table ...': columns)"),
            Flag("-f", "--filter", kind="append", metavar="KEY=VALUE",
                 help="name, id, driver, label, type (custom or builtin)"),
        ]),
    }


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `network ...` and `system prune` to the command line."""
    network = verbs.add_parser("network", help="manage networks")
    sub = network.add_subparsers(dest="network_verb", metavar="COMMAND", required=True)

    create = sub.add_parser("create", help="create a bridge network")
    create.add_argument("-d", "--driver", default="bridge", help="bridge (the only one)")
    create.add_argument("--subnet", metavar="CIDR", help="default: a free one")
    create.add_argument("--gateway", metavar="IP", help="default: the subnet's first address")
    create.add_argument("--ip-range", metavar="CIDR", help="allocate addresses from this range")
    create.add_argument("--internal", action="store_true", help="no way in or out")
    create.add_argument("--label", action="append", default=[], metavar="K=V")
    create.add_argument("name", metavar="NAME")
    create.set_defaults(func=cmd_create)

    read_verbs()["network ls"].add_arguments(sub.add_parser("ls", aliases=["list"],
                                                     help="list networks"))

    inspect = sub.add_parser("inspect", help="networks as JSON")
    inspect.add_argument("-f", "--format", metavar="TEMPLATE", help="a Go template")
    inspect.add_argument("networks", nargs="+", metavar="NETWORK")
    inspect.set_defaults(func=cmd_inspect)

    rm = sub.add_parser("rm", aliases=["remove"], help="remove networks")
    rm.add_argument("networks", nargs="+", metavar="NETWORK")
    rm.set_defaults(func=cmd_rm)

    prune = sub.add_parser("prune", help="remove networks no container uses")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask")
    prune.set_defaults(func=cmd_prune)

    connect = sub.add_parser("connect", help="connect a container to a network")
    connect.add_argument("--ip", metavar="IP", help="its address there")
    connect.add_argument("--alias", action="append", default=[], metavar="NAME",
                         help="another name there")
    connect.add_argument("network", metavar="NETWORK")
    connect.add_argument("container", metavar="CONTAINER")
    connect.set_defaults(func=cmd_connect)

    disconnect = sub.add_parser("disconnect", help="disconnect a container from a network")
    disconnect.add_argument("-f", "--force", action="store_true",
                            help="even if it is not connected")
    disconnect.add_argument("network", metavar="NETWORK")
    disconnect.add_argument("container", metavar="CONTAINER")
    disconnect.set_defaults(func=cmd_disconnect)

    system = verbs.add_parser("system", help="the whole store")
    system_sub = system.add_subparsers(dest="system_verb", metavar="COMMAND", required=True)
    system_prune = system_sub.add_parser("prune", help="remove stopped containers, unused "
                                         "networks and dangling images")
    system_prune.add_argument("-a", "--all", action="store_true",
                              help="every image no container uses, not only dangling ones")
    system_prune.add_argument("--volumes", action="store_true",
                              help="anonymous volumes no container uses, too")
    system_prune.add_argument("-f", "--force", action="store_true", help="do not ask")
    system_prune.set_defaults(func=cmd_system_prune)
    system_check = system_sub.add_parser("check", help="report what is inconsistent in the "
                                         "store and on the host (--repair: fix what is safe)")
    system_check.add_argument("-r", "--repair", action="store_true",
                              help="collect leftovers, record ended containers, bring up "
                              "missing bridges")
    system_check.set_defaults(func=cmd_system_check)
    system_reconcile = system_sub.add_parser(
        "reconcile", help="bring every container's record up to date, applying restart "
        "policies nobody is left to apply (for a boot-time systemd unit)")
    system_reconcile.set_defaults(func=cmd_system_reconcile)
    system_reset = system_sub.add_parser("reset", help="remove everything shellctr owns "
                                         "for this root")
    system_reset.add_argument("-f", "--force", action="store_true", help="do not ask")
    system_reset.set_defaults(func=cmd_system_reset)
    from shellctr.cli import system as cli_system

    cli_system.register_system(system_sub)

    from shellctr.cli import service

    service.register(system_sub)
