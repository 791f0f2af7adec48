"""The command line: verbs, global flags, and the one place errors become exit codes.

The verbs live by topic in cli/run.py, containers.py, views.py, images.py, volumes.py,
network.py and the rest (each registers its own); each verb imports only the modules it
needs, so `run` never pays for tabulate or plumbum.
"""

from __future__ import annotations

import gc
import os
import sys

# signal's Python half only wraps these in IntEnums: enum costs a read verb ~2 ms
from _signal import signal  # type: ignore[import-not-found]

from shellctr.cli import common
from shellctr.cli.common import PROG, Context, exit_code, report
from shellctr.cli.flags import Args, Verb, parse_fast, verb_of
from shellctr.core.errors import ENGINE_ERROR, ShellctrError, UsageError

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

SIGTERM = 15  # the same number on every Linux architecture

__all__ = ["main", "verb_of"]

# -- parsing ---------------------------------------------------------------------------
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


# Whether the last command line parsed was a read verb's, taken by the fast parser: such
# a verb only reads, writes to stdout and stderr, and leaves nothing to the interpreter's
# teardown (run)
read_only = False


def parse(argv: Sequence[str]) -> Args:
    """The request on the command line: a read verb's common ones by the fast parser,
    everything else (and every usage error) by argparse, from the same descriptions."""
    global read_only
    def describe(module: str, key: str) -> Verb:
        # __import__, not importlib.import_module: importlib's package costs ~0.5 ms
        found = __import__(f"shellctr.cli.{module}", fromlist=["read_verbs"])
        verbs: dict[str, Verb] = found.read_verbs()
        return verbs[key]

    fast = parse_fast(argv, describe)
    read_only = fast is not None
    if fast is not None:
        return fast
    from shellctr.cli.parser import build_parser

    return build_parser(argv).parse_args(argv)  # type: ignore[return-value]


class Terminated(BaseException):
    """SIGTERM, raised where the command is: it unwinds as an error does (every undo
    registered so far runs, temporary files go), then the command exits 143. Not an
    Exception, so that no `except Exception` on the way swallows it."""


def terminate(signum: int, frame: object) -> NoReturn:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    debug = False
    args: Args | None = None
    # `run` in the foreground hands SIGTERM on to the container instead (forward_signals)
    previous = signal(SIGTERM, terminate)
    try:
        argv = sys.argv[1:] if argv is None else argv
        verb = verb_of(argv)
        if verb in ("run", "create") or (verb == "start" and attaches(argv)):
            common.engine_exit_code = ENGINE_ERROR  # the container's codes are theirs
        args = parse(argv)
        if not (read_only and args.verb != "wait" and not getattr(args, "follow", False)):
            gc.enable()  # every command but a short read (see run)
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
        return 128 + SIGTERM
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
        signal(SIGTERM, previous)  # main may run in-process (tests)
        common.engine_exit_code = 1


def run() -> NoReturn:
    """bin/shellctr's entry: main, as sys.exit(main()). A read verb then ends without the
    interpreter's teardown (freeing every module and object, ~3 ms of a poll) once its
    output is out, unless something was left for the teardown to do (an atexit hook, a
    thread, output that cannot be flushed: those exit as sys.exit does)."""
    # The cyclic garbage collector is off while a short read verb runs (main turns it on
    # again for every other command, and for `wait` and `logs -f`, which may last): the
    # collections its imports and records would trigger cost it ~2 ms, and reference
    # counting frees all it drops
    gc.disable()
    code = main()
    if read_only and "threading" not in sys.modules:
        import atexit

        if not atexit._ncallbacks():
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except OSError:  # a closed pipe: as sys.exit reports it
                sys.exit(code)
            os._exit(code)
    sys.exit(code)


def attaches(argv: Sequence[str]) -> bool:
    """`start -a`/`-i`: the container's output here, and its codes as `run`'s."""
    return any(arg in ("-a", "--attach", "-i", "--interactive") or
               (arg.startswith("-") and not arg.startswith("--") and ("a" in arg or "i" in arg))
               for arg in argv)
