"""The command line: verbs, global flags, and the one place errors become exit codes.

The verbs live by topic in cli/run.py, containers.py, views.py, images.py, volumes.py,
network.py and the rest (each registers its own); each verb imports only the modules it
needs, so `run` never pays for tabulate or plumbum.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence

from shellctr.cli import common
from shellctr.cli.common import PROG, Context, Parser, exit_code, report
from shellctr.core.errors import ENGINE_ERROR, ShellctrError, UsageError

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

# -- parsing ---------------------------------------------------------------------------
GLOBAL_VALUE_FLAGS = ("--root", "--runroot")  # the global flags that take a value
# The verbs on the start path and the polling verbs: their host commands run with the
# standard library's subprocess, not plumbum, whose import costs ~70 ms (core.host)
LEAN_VERBS = frozenset({
    "run", "create", "start", "restart", "stop", "kill", "rm", "exec", "wait", "ps",
    "logs", "inspect", "port", "pause", "unpause", "attach", "_exited", "_started", "_health",
    "events",
})
# The verbs whose work is done in this process's Python, not as host commands, so that a
# --dry-run script could not show it: refused under --dry-run (cp copies through directory
# fds inside the container's root)
NO_DRY_RUN = frozenset({"cp"})


# The module of cli/ that registers each verb: only the one on the command line is imported
# (each imports what its verbs' flags need); tests/unit/test_cli.py holds the table to
# what the modules register.
VERB_MODULES = {
    **dict.fromkeys(("run", "create"), "run"),
    **dict.fromkeys(("start", "stop", "restart", "kill", "exec", "update", "attach", "rename",
                     "pause", "unpause", "_exited", "_started", "rm"), "containers"),
    **dict.fromkeys(("wait", "logs", "inspect", "stats", "top", "ps", "port", "export"),
                    "views"),
    **dict.fromkeys(("image", "images", "rmi", "import", "load", "save", "tag", "history",
                     "commit", "diff", "pull", "push", "login", "logout"), "images"),
    **dict.fromkeys(("volume", "cp"), "volumes"),
    **dict.fromkeys(("network", "system"), "network"),
    **dict.fromkeys(("build", "builder"), "build"),
    **dict.fromkeys(("events", "_health"), "events"),
    **dict.fromkeys(("version", "info"), "system"),
    "container": "group",
    "completion": "completion",
}
MODULES = ("run", "containers", "views", "images", "volumes", "network", "build", "events",
           "system", "group", "completion")  # in the order of --help


def verb_of(argv: Sequence[str]) -> str | None:
    """The verb on the command line, found without argparse; None for `--help` alone."""
    args = iter(argv)
    for arg in args:
        if arg in GLOBAL_VALUE_FLAGS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


class Unused:
    """Stands for the parser of a verb not on the command line: takes every call."""

    def __getattr__(self, name: str) -> Callable[..., Unused]:
        return lambda *args, **kwargs: self


class VerbTable(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The verbs, building only the parser of the one on the command line: argparse
    formats each flag as it is added, and all ~300 flags would cost every command ~25 ms."""

    wanted: str | None = None

    def add_parser(self, name: str, **kwargs: Any) -> Parser:
        if self.wanted is not None and self.wanted not in (name, *kwargs.get("aliases", ())):
            return Unused()  # type: ignore[return-value]
        if "help" in kwargs:
            kwargs.setdefault("description", kwargs["help"])  # the first lines of --help
        parser: Parser = super().add_parser(name, **kwargs)
        return parser


class PrintVersion(argparse.Action):
    """`shellctr --version`, as `docker --version` words it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from shellctr.cli.common import version

        print(f"{PROG} version {version()}")
        parser.exit(0)


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The command line's parser: every verb's, or (given `argv`) only its verb's."""
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
    parser.add_argument("-v", "--version", action=PrintVersion, nargs=0,
                        help="print the version and quit")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True,
                                  action=VerbTable)
    assert isinstance(verbs, VerbTable)
    verbs.wanted = verb_of(argv) if argv is not None else None

    import importlib

    wanted = VERB_MODULES.get(verbs.wanted or "")
    for name in (wanted,) if wanted else MODULES:
        importlib.import_module(f"shellctr.cli.{name}").register(verbs)
    if verbs.wanted is not None and verbs.wanted not in verbs.choices:
        return build_parser()  # an unknown verb: the error lists them all
    return parser


class Terminated(BaseException):
    """SIGTERM, raised where the command is: it unwinds as an error does (every undo
    registered so far runs, temporary files go), then the command exits 143. Not an
    Exception, so that no `except Exception` on the way swallows it."""


def terminate(signum: int, frame: object) -> NoReturn:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    debug = False
    args: argparse.Namespace | None = None
    # `run` in the foreground hands SIGTERM on to the container instead (forward_signals)
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        argv = sys.argv[1:] if argv is None else argv
        verb = verb_of(argv)
        if verb in ("run", "create") or (verb == "start" and attaches(argv)):
            common.engine_exit_code = ENGINE_ERROR  # the container's codes are theirs
        args = build_parser(argv).parse_args(argv)
        debug = args.debug
        if args.dry_run and args.verb in NO_DRY_RUN:
            raise UsageError(f"{args.verb} has no --dry-run", "run it without --dry-run")
        from shellctr.core.host import Host
        from shellctr.core.layout import Layout
        from shellctr.core.store import Store

        host = Host(trace=args.trace or os.environ.get("SHELLCTR_TRACE") == "1",
                    dry_run=args.dry_run, lean=args.verb in LEAN_VERBS)
        layout = Layout.from_env(args.root, args.runroot)
        store = Store(layout, host)
        store.check_root()  # before any verb reads or writes the store
        code: int = args.func(args, Context(host, store))
        host.end_script()
        return code
    except ShellctrError as err:
        if debug:
            import traceback
            traceback.print_exc()
        report(err)
        return exit_code(err)
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 128 + signal.SIGTERM
    except Exception as err:  # the funnel: anything unexpected is still one line
        if debug:
            import traceback
            traceback.print_exc()
        if isinstance(err, OSError) and err.errno in (28, 122):  # ENOSPC, EDQUOT
            from shellctr.core.layout import Layout

            root = Layout.from_env(*(getattr(args, name, None) for name in ("root", "runroot")))
            report(ShellctrError(f"no space left on device under {root.root} while running "
                                 f"{verb_of(argv or [])}", "free space and retry"))
            return common.engine_exit_code
        sys.stderr.write(f"{PROG}: unexpected error: {err!r} (run with --debug for details)\n")
        return common.engine_exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)  # main may run in-process (tests)
        common.engine_exit_code = 1


def attaches(argv: Sequence[str]) -> bool:
    """`start -a`/`-i`: the container's output here, and its codes as `run`'s."""
    return any(arg in ("-a", "--attach", "-i", "--interactive") or
               (arg.startswith("-") and not arg.startswith("--") and ("a" in arg or "i" in arg))
               for arg in argv)
