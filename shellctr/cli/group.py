"""Docker's `container` group: every container verb again under `container` (`container
ls`, `container rm`...), with the same flags (each module registers them once, here
through a table that keeps only the container verbs), and `container prune`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from shellctr.cli.common import Context, confirm
from shellctr.cli.parser import Parser

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# top-level verb -> its name in the group, and its other names there (as Docker's)
CONTAINER_VERBS: dict[str, tuple[str, list[str]]] = {
    "ps": ("ls", ["list", "ps"]), "rm": ("rm", ["remove"]),
    **{verb: (verb, []) for verb in (
        "attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill",
        "logs", "pause", "port", "rename", "restart", "run", "start", "stats", "stop", "top",
        "unpause", "update", "wait")},
}


class Skipped:
    """Stands for a parser the group does not keep: takes every call."""

    def __getattr__(self, name: str) -> Callable[..., Skipped]:
        return lambda *args, **kwargs: self


class ContainerVerbs:
    """What the verb modules register through: the container verbs, renamed."""

    def __init__(self, group: argparse._SubParsersAction[Parser]) -> None:
        self.group = group

    def add_parser(self, name: str, **kwargs: Any) -> Parser | Skipped:
        if name not in CONTAINER_VERBS:
            return Skipped()
        own, aliases = CONTAINER_VERBS[name]
        kwargs.pop("aliases", None)
        return self.group.add_parser(own, aliases=aliases, **kwargs)


def cmd_container_prune(args: argparse.Namespace, ctx: Context) -> int:
    """Remove the stopped containers (created before `until=`, with the `label=` ones)."""
    from datetime import datetime

    from shellctr.cli.textfmt import human_size
    from shellctr.cli.volumes import tree_size
    from shellctr.core.errors import ShellctrError, UsageError
    from shellctr.engine.containers import remove
    from shellctr.engine.lifecycle import reconcile
    from shellctr.engine.logs import parse_since
    from shellctr.parts.filters import label_matches, parse_filters

    filters = parse_filters(args.filter, ("until", "label", "label!"))
    if len(filters.get("until", [])) > 1:
        raise UsageError("more than one until filter specified", "give one until=")
    until = parse_since(filters["until"][0]) if "until" in filters else None
    if not confirm("This will remove all stopped containers.", args.force):
        return 0
    removed, space = [], 0
    for cid in ctx.store.container_ids():
        try:
            if reconcile(ctx.store, cid)["status"] == "running":
                continue
            container = ctx.store.container(cid)
            if until is not None and datetime.fromisoformat(container["created"]) >= until:
                continue
            labels = container["labels"]
            if not all(label_matches(labels, v) for v in filters.get("label", [])):
                continue
            if any(label_matches(labels, v) for v in filters.get("label!", [])):
                continue
            size = tree_size(ctx.store.layout.container_upper(cid))
            remove(ctx.host, ctx.store, cid, force=False)
        except (FileNotFoundError, ShellctrError):  # removed or started meanwhile
            continue
        removed.append(cid)
        space += size
    if removed:
        ctx.host.result("Deleted Containers:\n" + "\n".join(removed) + "\n")
    ctx.host.result(f"Total reclaimed space: {human_size(space)}")
    return 0


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `container ...` to the command line."""
    parser = verbs.add_parser("container", help="manage containers (every container verb)")
    if not isinstance(parser, Parser):
        return  # another verb is on the command line: nothing to build
    group = parser.add_subparsers(dest="container_verb", metavar="COMMAND", required=True)
    from shellctr.cli import containers as cli_containers
    from shellctr.cli import images as cli_images
    from shellctr.cli import run as cli_run
    from shellctr.cli import views as cli_views
    from shellctr.cli import volumes as cli_volumes

    table = ContainerVerbs(group)
    for module in (cli_run, cli_containers, cli_views, cli_images, cli_volumes):
        module.register(table)
    prune = group.add_parser("prune", help="remove every stopped container")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask")
    prune.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                       help="until=TIME (created before it), label=KEY[=VALUE], label!=...")
    prune.set_defaults(func=cmd_container_prune)
