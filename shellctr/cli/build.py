"""`build` (and `image build`), `builder prune`: their flags, as Docker's classic builder's."""

from __future__ import annotations

import argparse
import sys

from shellctr.cli.common import Context
from shellctr.cli.parser import Parser
from shellctr.core.errors import UsageError

TRUE, FALSE = ("1", "t", "true"), ("0", "f", "false")  # Go's strconv.ParseBool


def truthy(text: str) -> bool:
    """`--rm=true|false`."""
    value = text.lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise UsageError(f"invalid boolean value {text!r} for --rm", "use --rm=true or --rm=false")


def rm_and_context(args: argparse.Namespace) -> tuple[bool, str]:
    """`--rm` takes an optional value, so argparse hands `build --rm .` the context as the
    value of --rm: a word that is no boolean is the context."""
    rm, context = args.rm, args.context
    if isinstance(rm, str) and rm.lower() not in (*TRUE, *FALSE) and context is None:
        return True, rm
    if context is None:
        raise UsageError("build needs a context: a directory, or - for stdin",
                         "give it last: shellctr build -t NAME .")
    return (truthy(rm) if isinstance(rm, str) else rm), context


def key_values(items: list[str], flag: str, need_value: bool) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {flag} {item!r}", f"use {flag} KEY=VALUE")
        if not sep and need_value:
            out[key] = ""
        else:
            out[key] = value if sep else None
    return out


def build_args(items: list[str]) -> dict[str, str | None]:
    """`--build-arg K=V`; `--build-arg K` takes K from this process's environment, as
    Docker's client does (not set there: the ARG's default stays)."""
    import os

    return {key: os.environ.get(key) if value is None else value
            for key, value in key_values(items, "--build-arg", False).items()}


def cmd_build(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from shellctr.engine.build import build
    from shellctr.engine.build_context import BuildOptions, prepared_context
    from shellctr.parts.reference import normalize_ref

    if args.platform and args.platform not in ("linux/amd64", "linux"):
        raise UsageError(f"--platform {args.platform}: shellctr builds for linux/amd64 only",
                         "drop --platform")
    for tag in args.tag:
        normalize_ref(tag)  # a bad name is refused before anything is built
    labels = {k: v or "" for k, v in key_values(args.label, "--label", True).items()}
    rm, context = rm_and_context(args)
    with prepared_context(ctx.host, ctx.store, context, args.file,
                          sys.stdin.buffer) as (data, name, tree):
        options = BuildOptions(
            dockerfile=data, dockerfile_name=name, context=tree, tags=args.tag,
            build_args=build_args(args.build_arg), target=args.target,
            no_cache=args.no_cache, labels=labels, quiet=args.quiet, network=args.network,
            rm=rm, force_rm=args.force_rm, pull=args.pull)
        image_id = build(ctx.host, ctx.store, options)
    if image_id and args.quiet:
        ctx.host.result(f"sha256:{image_id}")
    if image_id and args.iidfile:
        ctx.host.write_file(Path(args.iidfile), f"sha256:{image_id}", mode=0o644)
    return 0


def cmd_builder_prune(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.build_cache import prune_cache

    if not args.force and not ctx.host.dry_run:
        sys.stderr.write("WARNING! This will remove all dangling build cache.\n")
        try:
            answer = input("Are you sure you want to continue? [y/N] ")
        except EOFError:  # no terminal to ask
            answer = ""
        if answer.strip().lower() != "y":
            return 0
    report = prune_cache(ctx.host, ctx.store)
    for line in report:
        ctx.host.result(line)
    ctx.host.result(f"Total reclaimed space: {len(report)} images")
    return 0


def add_build_flags(parser: Parser) -> None:
    parser.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                        help="name the image (again for more names)")
    parser.add_argument("-f", "--file", metavar="FILE",
                        help="the Dockerfile (default CONTEXT/Dockerfile; - for stdin)")
    parser.add_argument("--build-arg", action="append", default=[], metavar="K[=V]",
                        help="set a build arg (K alone: its value in this environment)")
    parser.add_argument("--target", metavar="STAGE", help="the stage to build")
    parser.add_argument("--no-cache", action="store_true", help="run every step again")
    parser.add_argument("--pull", action="store_true",
                        help="pull the FROM images even when they are here (a missing one "
                        "is pulled anyway)")
    parser.add_argument("--label", action="append", default=[], metavar="K=V",
                        help="a label on the image")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only the image id")
    parser.add_argument("--iidfile", metavar="FILE", help="write the image id to FILE")
    parser.add_argument("--network", metavar="MODE",
                        help="the RUN steps' network (default bridge; none, host)")
    parser.add_argument("--rm", default=True, nargs="?", const=True,
                        metavar="true|false",
                        help="remove the intermediate containers of a successful build "
                        "(default true)")
    parser.add_argument("--force-rm", action="store_true",
                        help="remove the intermediate containers even when a step fails")
    parser.add_argument("--platform", metavar="linux/amd64", help="the target platform")
    parser.add_argument("context", nargs="?", metavar="CONTEXT|-",
                        help="the build context's directory, or - for a tar (or a "
                        "Dockerfile) on stdin")
    parser.set_defaults(func=cmd_build)


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    add_build_flags(verbs.add_parser("build", help="build an image from a Dockerfile"))
    builder = verbs.add_parser("builder", help="manage the build cache")
    group = builder.add_subparsers(dest="builder_verb", metavar="COMMAND", required=True)
    prune = group.add_parser("prune", help="remove the build cache")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask")
    prune.add_argument("-a", "--all", action="store_true",
                       help="accepted for Docker's sake: the whole cache goes")
    prune.set_defaults(func=cmd_builder_prune)
