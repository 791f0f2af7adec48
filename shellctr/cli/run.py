"""`run` and `create`: their flags (the limit flags shared with `update`), parsed once
into a parts.request.RunRequest, whose attributes are the flags' dests."""

from __future__ import annotations

import argparse
import os

from shellctr.cli.common import Context
from shellctr.cli.parser import Parser
from shellctr.core.errors import ShellctrError


# -- verbs -----------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.create import create
    from shellctr.engine.start import start
    from shellctr.parts.request import RunRequest

    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        # checked before create: a refused run must leave no container behind
        err = ShellctrError("the input device is not a TTY", "drop -t, or run from a terminal")
        err.exit_code = 1  # Docker's code for it, run's or exec's
        raise err
    if ctx.host.dry_run and args.tty and args.detach:
        raise_no_detached_terminal_script()
    pull_if_needed(args, ctx)
    container = create(ctx.host, ctx.store, RunRequest.from_args(args), starting=True)
    try:
        code = start(ctx.host, ctx.store, container["id"], attach=not args.detach,
                     streams=args.attach, detach_keys=args.detach_keys)
    except (Exception, KeyboardInterrupt):
        if args.rm:  # nothing of a failed `run --rm` remains
            from shellctr.engine.lifecycle import discard

            discard(ctx.host, ctx.store, container["id"])
        raise
    if args.detach:
        ctx.host.result(container["id"])
    return code


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.create import create
    from shellctr.parts.request import RunRequest

    pull_if_needed(args, ctx)
    container = create(ctx.host, ctx.store, RunRequest.from_args(args))
    ctx.host.result(container["id"])
    return 0


def pull_if_needed(args: argparse.Namespace, ctx: Context) -> None:
    """`--pull missing|always|never`: the registry code is imported only when a pull
    may happen (an image here already costs `run` nothing more)."""
    if args.pull == "missing":
        from shellctr.core.errors import NotFound
        from shellctr.parts.reference import find_image_record
        try:
            find_image_record(ctx.store.image_records(), args.image)
            return
        except NotFound:
            pass
    from shellctr.engine.pull import ensure_image

    ensure_image(ctx.host, ctx.store, args.image, args.pull, args.platform)


# -- parsing ---------------------------------------------------------------------------
def add_create_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `run` and `create` share."""
    parser.add_argument("--rm", action="store_true", help="remove the container when it exits")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    parser.add_argument("--name", help="the container's name")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                        help="set an environment variable")
    parser.add_argument("--env-file", action="append", default=[], metavar="FILE",
                        help="read environment variables from a file")
    parser.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside")
    parser.add_argument("-h", "--hostname", metavar="HOST", help="the container's host name")
    parser.add_argument("--help", action="help", help="show this help")
    parser.add_argument("--entrypoint", metavar="CMD", help="override the image's entrypoint")
    parser.add_argument("-u", "--user", metavar="USER[:GROUP]", help="user name or uid")
    parser.add_argument("-l", "--label", action="append", default=[], metavar="K=V",
                        help="set a label")
    add_limit_flags(parser)
    add_network_flags(parser)
    parser.add_argument("--oom-kill-disable", action="store_true",
                        help="processes over -m wait for memory instead of being killed")
    parser.add_argument("--cgroup-parent", metavar="PATH",
                        help="the cgroup to create the container's in (default shellctr)")
    parser.add_argument("--restart", default="no", metavar="POLICY",
                        help="no, on-failure[:N], always or unless-stopped")
    add_storage_flags(parser)
    add_security_flags(parser)
    parser.add_argument("--pull", default="missing", choices=["missing", "always", "never"],
                        help="pull the image first: if missing (default), always or never")
    parser.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                        help="the platform to pull from a multi-platform image")
    add_process_flags(parser)
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARG...]")


def add_process_flags(parser: argparse.ArgumentParser) -> None:
    """The process, confinement, logging and health flags of `run` and `create`
    (parts/runflags.py parses them)."""
    parser.add_argument("--label-file", action="append", default=[], metavar="FILE",
                        help="read labels from a file (KEY=VALUE lines)")
    parser.add_argument("--cidfile", metavar="FILE", help="write the container's id to FILE")
    parser.add_argument("--stop-signal", metavar="SIG", help="the signal stop sends (TERM)")
    parser.add_argument("--stop-timeout", metavar="N",
                        help="seconds stop waits before killing it (10)")
    parser.add_argument("--init", action="store_true",
                        help="run a small init as PID 1 that reaps zombies and forwards "
                        "signals")
    parser.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                        help="a resource limit (nofile=1024:2048)")
    parser.add_argument("--shm-size", metavar="SIZE", help="size of /dev/shm (64m)")
    parser.add_argument("--sysctl", action="append", default=[], metavar="KEY=VALUE",
                        help="a namespaced kernel parameter (net.*, kernel.shm*, ...)")
    parser.add_argument("--group-add", action="append", default=[], metavar="GROUP",
                        help="another group for the container's user")
    parser.add_argument("--ipc", metavar="MODE",
                        help="private (default), shareable, host or container:NAME")
    parser.add_argument("--pid", metavar="MODE", help="host or container:NAME")
    parser.add_argument("--uts", metavar="MODE", help="host: the host's host name")
    parser.add_argument("-a", "--attach", action="append", default=[],
                        metavar="STDIN|STDOUT|STDERR", help="attach only these streams")
    parser.add_argument("--detach-keys", metavar="KEYS",
                        help="the keys that detach from -it (ctrl-p,ctrl-q)")
    parser.add_argument("--log-driver", metavar="DRIVER", help="json-file (default), local, none")
    parser.add_argument("--log-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="max-size=10m, max-file=3: rotation")
    parser.add_argument("--health-cmd", metavar="CMD", help="a command that checks health")
    parser.add_argument("--health-interval", metavar="DURATION",
                        help="time between checks (30s)")
    parser.add_argument("--health-timeout", metavar="DURATION",
                        help="longest a check may take (30s)")
    parser.add_argument("--health-start-period", metavar="DURATION",
                        help="failures in this time after the start do not count (0s)")
    parser.add_argument("--health-retries", type=int, metavar="N",
                        help="failures in a row that make it unhealthy (3)")
    parser.add_argument("--no-healthcheck", action="store_true",
                        help="disable the image's HEALTHCHECK")


def add_storage_flags(parser: argparse.ArgumentParser) -> None:
    """Volumes, bind mounts, tmpfs (see volume.py)."""
    parser.add_argument("-v", "--volume", action="append", default=[],
                        metavar="[SRC:]DST[:MODE]",
                        help="bind a host path (absolute SRC) or mount a volume (NAME); "
                        "no SRC: an anonymous volume; MODE ro, rw, nocopy")
    parser.add_argument("--mount", action="append", default=[], metavar="type=...,...",
                        help="type=bind|volume|tmpfs,source=...,target=...[,readonly]")
    parser.add_argument("--tmpfs", action="append", default=[], metavar="DST[:OPTS]",
                        help="mount a tmpfs (options: size=64m,mode=1777,...)")
    parser.add_argument("--read-only", action="store_true",
                        help="mount the container's root read-only")
    parser.add_argument("--volumes-from", action="append", default=[],
                        metavar="CTR[:ro|rw]", help="the volumes and binds of another "
                        "container")


def add_security_flags(parser: argparse.ArgumentParser) -> None:
    """Capabilities, seccomp, devices (parts.confine; README "Security")."""
    parser.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                        help="add a capability (NET_ADMIN or CAP_NET_ADMIN, or ALL)")
    parser.add_argument("--cap-drop", action="append", default=[], metavar="CAP",
                        help="drop a capability (or ALL)")
    parser.add_argument("--privileged", action="store_true",
                        help="every capability and device, no seccomp, /sys and /proc "
                        "writable, nothing masked")
    parser.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                        help="seccomp=unconfined|PROFILE.json, no-new-privileges[=false]")
    parser.add_argument("--device", action="append", default=[],
                        metavar="HOST[:CTR][:rwm]", help="add a host device")
    parser.add_argument("--device-cgroup-rule", action="append", default=[],
                        metavar="'c MAJ:MIN rwm'", help="allow devices in the device cgroup")
    parser.add_argument("--userns", metavar="MODE", help="user namespace: host (the only one)")


def add_network_flags(parser: argparse.ArgumentParser) -> None:
    """The network flags of `run` and `create` (issue 5)."""
    parser.add_argument("--network", "--net", metavar="NET",
                        help="bridge (default: shellctr0), none, host, container:CTR, or a "
                        "network's name")
    parser.add_argument("--ip", metavar="IP", help="the container's address on its network")
    parser.add_argument("--network-alias", dest="aliases", action="append", default=[],
                        metavar="NAME", help="another name on a user network")
    parser.add_argument("-p", "--publish", action="append", default=[],
                        metavar="[IP:]HOSTPORT:PORT[/PROTO]",
                        help="publish a port or a range (8000-8002:80-82) on the host "
                        "(a random host port: -p PORT)")
    parser.add_argument("-P", "--publish-all", action="store_true",
                        help="publish every exposed port on a random host port")
    parser.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]",
                        help="expose a port or a range (7000-7002) (for -P)")
    parser.add_argument("--mac-address", metavar="MAC", help="eth0's MAC address")
    parser.add_argument("--dns", action="append", default=[], metavar="IP",
                        help="a DNS server for /etc/resolv.conf")
    parser.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN",
                        help="a search domain for /etc/resolv.conf")
    parser.add_argument("--dns-option", dest="dns_options", action="append", default=[],
                        metavar="OPT", help="an option for /etc/resolv.conf")
    parser.add_argument("--add-host", action="append", default=[], metavar="NAME:IP",
                        help="a line of /etc/hosts")


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """The limit flags `run`, `create` and `update` share."""
    parser.add_argument("-m", "--memory", metavar="SIZE", help="memory limit (e.g. 256m)")
    parser.add_argument("--memory-swap", metavar="SIZE",
                        help="memory + swap limit; -1: unlimited swap (default: twice -m)")
    parser.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 1.5)")
    parser.add_argument("-c", "--cpu-shares", metavar="N", help="relative CPU weight (1024)")
    parser.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs allowed (e.g. 0-1,3)")
    parser.add_argument("--pids-limit", metavar="N", help="most processes; 0 or -1: no limit")
    parser.add_argument("--cpu-period", metavar="µS", help="CFS period (µs)")
    parser.add_argument("--cpu-quota", metavar="µS", help="CPU time per CFS period (µs)")
    parser.add_argument("--cpuset-mems", metavar="LIST", help="memory nodes allowed (0-1)")
    parser.add_argument("--memory-reservation", metavar="SIZE", help="memory soft limit")



def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add `run` and `create` to the command line."""
    # add_help=False: -h is --hostname for run and create, as in Docker
    run = verbs.add_parser("run", help="run a command in a new container", add_help=False)
    add_create_flags(run)
    run.add_argument("-d", "--detach", action="store_true",
                     help="run in the background and print the container's id")
    run.set_defaults(func=cmd_run)
    create = verbs.add_parser("create", help="create a container; start it later",
                              add_help=False)
    add_create_flags(create)
    create.set_defaults(func=cmd_create)


def raise_no_detached_terminal_script() -> None:
    """`--dry-run` of a detached start with a terminal (`run -dt`, `start` of a -t
    container): refused at once. Its terminal's master goes from init.py to the monitor
    through this process, which a script does not have."""
    from shellctr.core.errors import UsageError

    raise UsageError("--dry-run cannot print a detached start with a terminal (-d with -t)",
                     "drop -t or -d, or run it without --dry-run")
