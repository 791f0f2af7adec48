"""Image verbs: images, rmi, import, and the `image` group."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shellctr.cli import Context, Parser, for_each
from shellctr.errors import ShellctrError


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



def cmd_build_busybox(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.image import build_busybox

    image = build_busybox(ctx.host, ctx.store, Path(args.busybox), args.reference)
    if not ctx.host.dry_run:
        print(f"sha256:{image.id}")
    return 0



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




def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add the image verbs to the command line."""
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

    image = verbs.add_parser("image", help="image tools")
    image_verbs = image.add_subparsers(dest="image_verb", metavar="COMMAND", required=True)
    busybox = image_verbs.add_parser(
        "build-busybox", help="build the default busybox image from the host's static busybox")
    busybox.add_argument("--busybox", default="/bin/busybox", metavar="PATH",
                         help="the static busybox binary (Debian: busybox-static)")
    busybox.add_argument("reference", nargs="?", default="busybox:latest",
                         metavar="REPOSITORY[:TAG]")
    busybox.set_defaults(func=cmd_build_busybox)
