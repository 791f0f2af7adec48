"""The container verbs that act on containers: start, stop, restart, kill, exec, attach,
rename, update, pause, unpause, rm and the monitor's `_exited` hook (run and create, with
their many flags, are in cli/run.py; the verbs that only read, ps, inspect, logs and the
rest, in cli/views.py)."""

from __future__ import annotations

import argparse

from shellctr.cli.common import Context, for_each
from shellctr.cli.parser import Parser
from shellctr.cli.run import add_limit_flags
from shellctr.core.errors import ShellctrError, UsageError


# -- verbs -----------------------------------------------------------------------------
def cmd_start(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import find_container
    from shellctr.engine.lifecycle import reconcile
    from shellctr.engine.start import start

    attach = args.attach or args.interactive
    if attach and len(args.containers) > 1:
        raise UsageError("you cannot attach to more than one container", "start them one by one")
    code = 0
    if ctx.host.dry_run and not attach:  # before any is started: refused at once
        from shellctr.cli.run import raise_no_detached_terminal_script

        if any(ctx.store.container_config(find_container(ctx.store, ref))["tty"]
               for ref in args.containers):
            raise_no_detached_terminal_script()

    def start_one(ref: str) -> None:
        nonlocal code
        cid = find_container(ctx.store, ref)
        if reconcile(ctx.store, cid)["status"] == "running":
            return
        code = start(ctx.host, ctx.store, cid, attach=attach,
                     interactive=True if args.interactive else None)

    failed = for_each(args.containers, start_one, echo=None if attach else ctx.host.result)
    return failed or code


def cmd_stop(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import stop

    return for_each(args.containers,
                    lambda ref: stop(ctx.host, ctx.store, ref, args.time, args.signal),
                    echo=ctx.host.result)


def cmd_restart(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import find_container, stop
    from shellctr.engine.start import start

    def restart(ref: str) -> None:
        from shellctr.engine.events import container_event

        stop(ctx.host, ctx.store, ref, args.time, args.signal)
        cid = find_container(ctx.store, ref)
        start(ctx.host, ctx.store, cid, attach=False)
        container_event(ctx.store, cid, "restart")

    return for_each(args.containers, restart, echo=ctx.host.result)


def cmd_kill(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import kill, parse_signal

    signum = parse_signal(args.signal)
    return for_each(args.containers, lambda ref: kill(ctx.host, ctx.store, ref, signum),
                    echo=ctx.host.result)


def cmd_exec(args: argparse.Namespace, ctx: Context) -> int:
    import os

    from shellctr.engine.exec import exec_in
    from shellctr.parts.request import ExecRequest

    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        err = ShellctrError("the input device is not a TTY", "drop -t, or run from a terminal")
        err.exit_code = 1  # as Docker's, and before anything starts in the container
        raise err
    return exec_in(ctx.host, ctx.store, ExecRequest.from_args(args))


def cmd_attach(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.attach import attach

    return attach(ctx.host, ctx.store, args.container, stdin=not args.no_stdin,
                  sig_proxy=args.sig_proxy, detach_keys=args.detach_keys)


def parse_bool(text: str) -> bool:
    """A boolean flag's value, as Go's strconv.ParseBool takes it (--sig-proxy=false)."""
    if text.lower() in ("1", "t", "true"):
        return True
    if text.lower() in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def cmd_rename(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import rename

    rename(ctx.host, ctx.store, args.container, args.new_name)
    return 0


def cmd_update(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import update
    from shellctr.parts.request import LIMITS

    flags: dict[str, object] = {key: getattr(args, key) for key in LIMITS if hasattr(args, key)}
    if not any(value is not None for value in flags.values()) and args.restart is None:
        raise UsageError("update needs at least one flag to change",
                         "see 'shellctr update --help'")
    return for_each(args.containers,
                    lambda ref: update(ctx.host, ctx.store, ref, flags, args.restart),
                    echo=ctx.host.result)


def cmd_pause(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import pause

    return for_each(args.containers, lambda ref: pause(ctx.host, ctx.store, ref, args.frozen),
                    echo=ctx.host.result)


def cmd_exited(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import on_exited

    return on_exited(ctx.host, ctx.store, args.container)


def cmd_started(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.containers import on_started

    return on_started(ctx.store, args.container)


def cmd_rm(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.core.errors import NotFound
    from shellctr.engine.containers import remove

    def rm(ref: str) -> None:
        try:
            remove(ctx.host, ctx.store, ref, args.force, args.volumes)
        except NotFound as err:
            err.exit_code = 1  # Docker's code for "no such container" (a parallel rm won)
            raise

    return for_each(args.containers, rm, echo=ctx.host.result)


# -- parsing ---------------------------------------------------------------------------
def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add the verbs that act on containers to the command line."""
    start = verbs.add_parser("start", help="start stopped containers")
    start.add_argument("-a", "--attach", action="store_true", help="attach to its output")
    start.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    start.add_argument("containers", nargs="+", metavar="CONTAINER")
    start.set_defaults(func=cmd_start)

    for name, about in (("stop", "stop running containers: stop signal, then SIGKILL"),
                        ("restart", "stop, then start containers")):
        verb = verbs.add_parser(name, help=about)
        verb.add_argument("-t", "--timeout", "--time", dest="time", type=int, metavar="N",
                          help="seconds to wait before SIGKILL (default: the container's "
                          "--stop-timeout, else 10)")
        verb.add_argument("-s", "--signal", metavar="SIG",
                          help="the signal to send (default: the container's stop signal)")
        verb.add_argument("containers", nargs="+", metavar="CONTAINER")
        verb.set_defaults(func=cmd_stop if name == "stop" else cmd_restart)

    kill = verbs.add_parser("kill", help="send a signal to containers' PID 1")
    kill.add_argument("-s", "--signal", default="KILL", metavar="SIG", help="default KILL")
    kill.add_argument("containers", nargs="+", metavar="CONTAINER")
    kill.set_defaults(func=cmd_kill)

    execute = verbs.add_parser("exec", help="run a command in a running container")
    execute.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    execute.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    execute.add_argument("-d", "--detach", action="store_true", help="run in the background")
    execute.add_argument("--detach-keys", metavar="KEYS",
                         help="what detaches from -it, leaving it running (ctrl-p,ctrl-q)")
    execute.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    execute.add_argument("--env-file", action="append", default=[], metavar="FILE")
    execute.add_argument("-u", "--user", metavar="USER[:GROUP]")
    execute.add_argument("-w", "--workdir", metavar="DIR")
    execute.add_argument("--privileged", action="store_true",
                         help="every capability for the command")
    execute.add_argument("container", metavar="CONTAINER")
    execute.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARG...]")
    execute.set_defaults(func=cmd_exec)

    update = verbs.add_parser("update", help="change containers' limits and restart policy")
    add_limit_flags(update)
    update.add_argument("--restart", metavar="POLICY",
                        help="no, on-failure[:N], always or unless-stopped")
    update.add_argument("containers", nargs="+", metavar="CONTAINER")
    update.set_defaults(func=cmd_update)

    attach = verbs.add_parser("attach", help="a running container's output and stdin, here")
    attach.add_argument("--no-stdin", action="store_true", help="do not send our stdin")
    attach.add_argument("--sig-proxy", type=parse_bool, nargs="?", const=True, default=True,
                        metavar="BOOL", help="pass signals on to PID 1 (not with -t)")
    attach.add_argument("--detach-keys", default="ctrl-p,ctrl-q", metavar="KEYS",
                        help="the keys that detach, leaving it running (ctrl-p,ctrl-q)")
    attach.add_argument("container", metavar="CONTAINER")
    attach.set_defaults(func=cmd_attach)

    rename = verbs.add_parser("rename", help="rename a container")
    rename.add_argument("container", metavar="CONTAINER")
    rename.add_argument("new_name", metavar="NEW_NAME")
    rename.set_defaults(func=cmd_rename)

    for name, about in (("pause", "freeze every process of containers"),
                        ("unpause", "thaw paused containers")):
        verb = verbs.add_parser(name, help=about)
        verb.add_argument("containers", nargs="+", metavar="CONTAINER")
        verb.set_defaults(func=cmd_pause, frozen=name == "pause")

    exited = verbs.add_parser("_exited")  # the monitor's hook: not for people
    exited.add_argument("container")
    exited.set_defaults(func=cmd_exited)
    started = verbs.add_parser("_started")  # a --dry-run script's: not for people
    started.add_argument("container")
    started.set_defaults(func=cmd_started)

    rm = verbs.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    rm.add_argument("-v", "--volumes", action="store_true",
                    help="remove its anonymous volumes too")
    rm.add_argument("containers", nargs="+", metavar="CONTAINER")
    rm.set_defaults(func=cmd_rm)
