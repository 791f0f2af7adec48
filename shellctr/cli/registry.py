"""The registry verbs: pull, push, login, logout (and `image pull`, `image push`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from shellctr.cli.common import Context, FlagError
from shellctr.cli.parser import Parser
from shellctr.core.errors import UsageError


def tls_verify(args: argparse.Namespace) -> bool | None:
    """--tls-verify=false: plain HTTP allowed and certificates unchecked (as Podman's)."""
    value: str | None = getattr(args, "tls_verify", None)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise FlagError(f"invalid --tls-verify value {value!r}", "use true or false")
    return value.lower() == "true"


def cmd_pull(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.pull import pull, pull_all_tags

    if args.all_tags:
        for image_ref in pull_all_tags(ctx.host, ctx.store, args.name,
                                       platform=args.platform, tls_verify=tls_verify(args),
                                       quiet=args.quiet):
            if args.quiet:
                ctx.host.result(image_ref)
        return 0
    pull(ctx.host, ctx.store, args.name, platform=args.platform,
         tls_verify=tls_verify(args), quiet=args.quiet)
    from shellctr.parts.reference import parse_reference

    ref = parse_reference(args.name)
    full = f"{ref.full_name}:{ref.tag or 'latest'}" if ref.tag or not ref.digest else \
        ref.full_name
    ctx.host.result(f"{full}@{ref.digest}" if ref.digest else full)
    return 0


def cmd_push(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.push import push, push_all_tags

    if args.all_tags:
        push_all_tags(ctx.host, ctx.store, args.name, tls_verify=tls_verify(args),
                      quiet=args.quiet)
        return 0
    digest = push(ctx.host, ctx.store, args.name, tls_verify=tls_verify(args),
                  quiet=args.quiet)
    if args.quiet:
        ctx.host.result(digest)
    return 0


def read_password(args: argparse.Namespace, prompt: Callable[[str], str]) -> str:
    if args.password is not None and args.password_stdin:
        raise FlagError("--password and --password-stdin are mutually exclusive")
    if args.password_stdin:
        if not args.username:
            raise FlagError("must provide --username with --password-stdin")
        return sys.stdin.read().rstrip("\r\n")
    if args.password is not None:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. "
                         "Use --password-stdin.\n")
        return str(args.password)
    if not sys.stdin.isatty():
        raise UsageError("cannot prompt for a password: stdin is not a terminal",
                         "use --password-stdin")
    return prompt("Password: ")


def cmd_login(args: argparse.Namespace, ctx: Context) -> int:
    import getpass

    from shellctr.engine.registry_auth import login, server_name
    from shellctr.parts.reference import DOCKER_HUB

    registry = server_name(args.server) if args.server else DOCKER_HUB
    user = args.username
    if not user:
        if not sys.stdin.isatty():
            raise UsageError("cannot prompt for a user name: stdin is not a terminal",
                             "use -u USER")
        user = input("Username: ").strip()
    password = read_password(args, getpass.getpass)
    login(ctx.host, registry, user, password, tls_verify(args))
    ctx.host.result("Login Succeeded")
    return 0


def cmd_logout(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.registry_auth import logout, server_name
    from shellctr.parts.reference import DOCKER_HUB

    registry = server_name(args.server) if args.server else DOCKER_HUB
    if logout(ctx.host, registry):
        ctx.host.result(f"Removing login credentials for {registry}")
    else:
        ctx.host.result(f"Not logged in to {registry}")
    return 0


def register(both: Callable[[str, list[str], str], list[Parser]]) -> None:
    """Add the registry verbs (`both`: a verb at the top and as `image ...`)."""
    for parser in both("pull", ["pull"], "download an image from a registry"):
        parser.add_argument("-a", "--all-tags", action="store_true",
                            help="every tagged image of the repository")
        parser.add_argument("-q", "--quiet", action="store_true",
                            help="print only the image's name")
        parser.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                            help="the platform of a multi-platform image (default: this host's)")
        parser.add_argument("--tls-verify", metavar="BOOL",
                            help="false: allow plain HTTP and skip certificate checks")
        parser.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
        parser.set_defaults(func=cmd_pull)
    for parser in both("push", ["push"], "upload an image to a registry"):
        parser.add_argument("-a", "--all-tags", action="store_true",
                            help="every tag of the repository")
        parser.add_argument("-q", "--quiet", action="store_true",
                            help="print only the manifest's digest")
        parser.add_argument("--tls-verify", metavar="BOOL",
                            help="false: allow plain HTTP and skip certificate checks")
        parser.add_argument("name", metavar="NAME[:TAG]")
        parser.set_defaults(func=cmd_push)
    for parser in both("login", [], "log in to a registry"):
        parser.add_argument("-u", "--username", metavar="USER")
        parser.add_argument("-p", "--password", metavar="PASS")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from stdin")
        parser.add_argument("--tls-verify", metavar="BOOL",
                            help="false: allow plain HTTP and skip certificate checks")
        parser.add_argument("server", nargs="?", metavar="SERVER")
        parser.set_defaults(func=cmd_login)
    for parser in both("logout", [], "log out from a registry"):
        parser.add_argument("server", nargs="?", metavar="SERVER")
        parser.set_defaults(func=cmd_logout)
