"""`system service [--time SECONDS] [URI]`: serve the Docker Engine API (shellctr.api)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shellctr.cli.common import Context
from shellctr.cli.parser import Parser
from shellctr.core.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

DEFAULT_IDLE = 5.0  # seconds without a request before the service exits, as Podman's
GROUP = "shellctr"  # the socket's group, when the host has one


def parse_uri(uri: str, runroot: Path, tcp_any: bool) -> tuple[str, Path | tuple[str, int]]:
    """`unix:///PATH` or `tcp://HOST:PORT` -> ("unix", path) or ("tcp", (host, port))."""
    if not uri:
        return "unix", runroot / "docker.sock"
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise UsageError(f"invalid URI {uri!r}", "use unix:///PATH or tcp://127.0.0.1:PORT")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise UsageError(f"invalid URI {uri!r}: the path must be absolute",
                             "use unix:///PATH")
        return "unix", Path(rest)
    if scheme == "tcp":
        host, colon, port = rest.rstrip("/").rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"invalid URI {uri!r}", "use tcp://127.0.0.1:PORT")
        host = host.strip("[]") or "127.0.0.1"
        if host not in ("127.0.0.1", "localhost") and not tcp_any:
            raise UsageError(f"refusing to serve the API on {host}: it has no authentication",
                             "use tcp://127.0.0.1:PORT, or --tcp-any if you mean it")
        return "tcp", (host, int(port))
    raise UsageError(f"unsupported URI scheme {scheme!r}", "use unix:// or tcp://")


def activated_socket() -> socket.socket | None:
    """The socket systemd passed (socket activation: LISTEN_FDS, from fd 3)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or \
            os.environ.get("LISTEN_FDS", "0") == "0":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    import socket

    return socket.socket(fileno=3)


def cmd_system_service(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.api.service import serve
    from shellctr.core.host import Rollback

    if args.time < 0:
        raise UsageError("--time must be 0 (never exit) or more seconds")
    layout = ctx.store.layout
    sock = activated_socket()
    shown = "the socket systemd passed"
    with Rollback(ctx.host) as rollback:
        if sock is None:
            kind, address = parse_uri(args.uri or "", layout.runroot, args.tcp_any)
            if kind == "unix":
                assert isinstance(address, Path)
                ctx.host.ensure_dir(address.parent, mode=0o755)
                sock = ctx.host.listen_unix(address, mode=0o660, group=GROUP,
                                            rollback=rollback)
                shown = f"unix://{address}"
            else:
                assert isinstance(address, tuple)
                sys.stderr.write("shellctr: warning: the API on TCP has no authentication: "
                                 "anyone who can connect to it is root on this host\n")
                import socket

                sock = socket.create_server(address, reuse_port=False)
                shown = f"tcp://{address[0]}:{sock.getsockname()[1]}"
        sys.stderr.write(f"shellctr: serving the Docker Engine API on {shown}\n")
        sys.stderr.flush()
        try:
            serve(sock, layout, float(args.time), trace=ctx.host.trace, debug=args.debug)
        finally:
            rollback.unwind()  # the socket file goes with the service
    return 0


def register(system_verbs: argparse._SubParsersAction[Parser]) -> None:
    """`system service`, under `system`."""
    service = system_verbs.add_parser(
        "service", help="serve the Docker Engine API (docker, docker-py, compose)")
    service.add_argument("-t", "--time", type=float, default=DEFAULT_IDLE, metavar="SECONDS",
                         help="exit after this many seconds without a request; 0: never "
                         f"(default {DEFAULT_IDLE:g})")
    service.add_argument("--tcp-any", action="store_true",
                         help="allow a tcp:// address other than 127.0.0.1 (no "
                         "authentication: root to anyone who can connect)")
    service.add_argument("uri", nargs="?", metavar="URI",
                         help="unix:///PATH (default unix://RUNROOT/docker.sock) or "
                         "tcp://127.0.0.1:PORT")
    service.set_defaults(func=cmd_system_service)
