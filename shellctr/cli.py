"""The command line: verbs, global flags, and the one place errors become exit codes.

Each verb imports only the modules it needs, so `run` never pays for tabulate or plumbum.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from shellctr.errors import ENGINE_ERROR, ShellctrError, UsageError

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from shellctr.host import Host
    from shellctr.store import Store

PROG = "shellctr"


class Context:
    """What every verb gets: the host door and the state store."""

    def __init__(self, host: Host, store: Store) -> None:
        self.host, self.store = host, store


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 125 (Docker's engine error)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            message = "unknown flag: " + message.removeprefix("unrecognized arguments: ")
        raise UsageError(message, f"see '{self.prog} --help'")


# -- verbs -----------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.container import RunOptions, create, start_foreground

    if args.detach:
        raise UsageError("run -d is not supported yet", "run in the foreground")
    if args.tty and args.interactive and not os.isatty(0):
        # checked before create: a refused run must leave no container behind
        raise ShellctrError("the input device is not a TTY", "drop -t, or run from a terminal")
    options = RunOptions(
        image=args.image, command=args.command, name=args.name, env=args.env,
        env_files=args.env_file, workdir=args.workdir, hostname=args.hostname,
        entrypoint=args.entrypoint, user=args.user, tty=args.tty,
        interactive=args.interactive, auto_remove=args.rm,
    )
    config = create(ctx.host, ctx.store, options)
    return start_foreground(ctx.host, ctx.store, config)


def cmd_ps(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.ids import short_id
    from shellctr.lifecycle import reconcile
    from shellctr.state import container_config
    from shellctr.textfmt import command_column, human_ago, human_duration, table

    store = ctx.store
    rows = []
    for cid in store.container_ids():
        config, state = container_config(store, cid), reconcile(store, cid)
        if state.status != "running" and not args.all:
            continue
        if state.status == "running" and state.started_at is not None:
            status = "Up " + human_duration(state.started_at)
        elif state.status == "exited" and state.finished_at is not None:
            status = f"Exited ({state.exit_code}) {human_ago(state.finished_at)}"
        else:
            status = "Created"
        full = args.no_trunc
        rows.append((config.created, [
            cid if full else short_id(cid), config.image,
            command_column([config.path, *config.args], truncate=not full),
            human_ago(config.created), status, "", config.name,
        ]))
    rows.sort(key=lambda row: row[0], reverse=True)
    if args.quiet:
        for _, row in rows:
            print(row[0])
        return 0
    print(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
                [row for _, row in rows]))
    return 0


def cmd_rm(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.lifecycle import remove

    # under --dry-run stdout is the script: the removed names would be lines of it
    return for_each(args.containers, lambda ref: remove(ctx.host, ctx.store, ref, args.force),
                    echo=not ctx.host.dry_run)


def cmd_images(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.state import images as all_images
    from shellctr.textfmt import human_ago, human_size, table

    images = sorted(all_images(ctx.store), key=lambda image: image.created, reverse=True)
    if args.quiet:
        for image in images:
            print(image.id[:12])
        return 0
    rows = []
    for image in images:
        created, size = human_ago(image.created), human_size(image.size)
        for tag in image.repo_tags or ["<none>:<none>"]:
            repo, _, name = tag.rpartition(":")
            rows.append([repo, name, image.id[:12], created, size])
    print(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows))
    return 0


def cmd_rmi(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.image import remove_image
    from shellctr.lifecycle import reconcile
    from shellctr.state import container_config

    def rmi(ref: str) -> None:
        store = ctx.store
        users = {cid: (container_config(store, cid).image_id,
                       reconcile(store, cid).status == "running")
                 for cid in store.container_ids()}
        with store.lock():
            for line in remove_image(ctx.host, store, ref, args.force, users):
                if not ctx.host.dry_run:  # under --dry-run stdout is the script
                    print(line)

    return for_each(args.images, rmi)


def cmd_import(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.image import import_image

    if args.file == "-":
        with spooled_stdin() as path:
            image = import_image(ctx.host, ctx.store, path, args.change, args.reference)
    else:
        path = Path(args.file)
        if not path.is_file():
            raise ShellctrError(f"no such file: {args.file}", "give a rootfs tar, or - for stdin")
        image = import_image(ctx.host, ctx.store, path, args.change, args.reference)
    if not ctx.host.dry_run:
        print(f"sha256:{image.id}")
    return 0


def cmd_export(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.lifecycle import export

    export(ctx.host, ctx.store, args.container, Path(args.output) if args.output else None)
    return 0


def cmd_build_busybox(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.image import build_busybox

    image = build_busybox(ctx.host, ctx.store, Path(args.busybox), args.reference)
    if not ctx.host.dry_run:
        print(f"sha256:{image.id}")
    return 0


# -- helpers ---------------------------------------------------------------------------
def for_each(refs: Sequence[str], action: Callable[[str], None], echo: bool = False) -> int:
    """Apply `action` to each ref; report each failure on its own line, as Docker does."""
    code = 0
    for ref in refs:
        try:
            action(ref)
        except ShellctrError as err:
            report(err)
            code = err.exit_code
        else:
            if echo:
                print(ref)
    return code


class spooled_stdin:
    """stdin copied to a temporary file: a layer is read twice (checked, then extracted)."""

    def __enter__(self) -> Path:
        import shutil
        import tempfile

        with tempfile.NamedTemporaryFile(prefix="shellctr-import-", delete=False) as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
        self.path = Path(spool.name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def report(err: ShellctrError) -> None:
    sys.stderr.write(f"{PROG}: {err}\n")
    sys.stderr.flush()


# -- parsing ---------------------------------------------------------------------------
def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="A daemonless container engine whose every "
                    "change to the host is a shell command you can read.")
    parser.add_argument("--root", help="state directory (default /var/lib/shellctr, "
                        "env SHELLCTR_ROOT)")
    parser.add_argument("--runroot", help="runtime directory (default /run/shellctr, "
                        "env SHELLCTR_RUNROOT)")
    parser.add_argument("--trace", action="store_true",
                        help="print every host command to stderr as it runs (SHELLCTR_TRACE=1)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print a bash script of what would be done; change nothing")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    # add_help=False: -h is --hostname for run, as in Docker
    run = verbs.add_parser("run", help="run a command in a new container", add_help=False)
    run.add_argument("--rm", action="store_true", help="remove the container when it exits")
    run.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    run.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    run.add_argument("-d", "--detach", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--name", help="the container's name")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                     help="set an environment variable")
    run.add_argument("--env-file", action="append", default=[], metavar="FILE",
                     help="read environment variables from a file")
    run.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside")
    run.add_argument("-h", "--hostname", metavar="HOST", help="the container's host name")
    run.add_argument("--help", action="help", help="show this help")
    run.add_argument("--entrypoint", metavar="CMD", help="override the image's entrypoint")
    run.add_argument("-u", "--user", metavar="USER[:GROUP]", help="user name or uid")
    run.add_argument("image", metavar="IMAGE")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARG...]")
    run.set_defaults(func=cmd_run)

    ps = verbs.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="show stopped containers too")
    ps.add_argument("-q", "--quiet", action="store_true", help="only ids")
    ps.add_argument("--no-trunc", action="store_true", help="don't shorten ids and commands")
    ps.set_defaults(func=cmd_ps)

    rm = verbs.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    rm.add_argument("containers", nargs="+", metavar="CONTAINER")
    rm.set_defaults(func=cmd_rm)

    images = verbs.add_parser("images", help="list images")
    images.add_argument("-q", "--quiet", action="store_true", help="only ids")
    images.set_defaults(func=cmd_images)

    rmi = verbs.add_parser("rmi", help="remove images")
    rmi.add_argument("-f", "--force", action="store_true",
                     help="remove even if stopped containers use it")
    rmi.add_argument("images", nargs="+", metavar="IMAGE")
    rmi.set_defaults(func=cmd_rmi)

    imp = verbs.add_parser("import", help="make an image from a rootfs tar")
    imp.add_argument("-c", "--change", action="append", default=[], metavar="CHANGE",
                     help="Dockerfile instruction: CMD, ENTRYPOINT, ENV, WORKDIR, USER")
    imp.add_argument("file", metavar="FILE|-")
    imp.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    imp.set_defaults(func=cmd_import)

    exp = verbs.add_parser("export", help="write a container's filesystem as a tar")
    exp.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    exp.add_argument("container", metavar="CONTAINER")
    exp.set_defaults(func=cmd_export)

    image = verbs.add_parser("image", help="image tools")
    image_verbs = image.add_subparsers(dest="image_verb", metavar="COMMAND", required=True)
    busybox = image_verbs.add_parser(
        "build-busybox", help="build the default busybox image from the host's static busybox")
    busybox.add_argument("--busybox", default="/bin/busybox", metavar="PATH",
                         help="the static busybox binary (Debian: busybox-static)")
    busybox.add_argument("reference", nargs="?", default="busybox:latest",
                         metavar="REPOSITORY[:TAG]")
    busybox.set_defaults(func=cmd_build_busybox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    debug = False
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        debug = args.debug
        from shellctr.host import Host
        from shellctr.layout import Layout
        from shellctr.store import Store

        host = Host(trace=args.trace or os.environ.get("SHELLCTR_TRACE") == "1",
                    dry_run=args.dry_run)
        layout = Layout.from_env(args.root, args.runroot)
        code: int = args.func(args, Context(host, Store(layout, host)))
        return code
    except ShellctrError as err:
        if debug:
            import traceback
            traceback.print_exc()
        report(err)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the funnel: anything unexpected is still one line
        if debug:
            import traceback
            traceback.print_exc()
        sys.stderr.write(f"{PROG}: unexpected error: {err!r} (run with --debug for details)\n")
        return ENGINE_ERROR
