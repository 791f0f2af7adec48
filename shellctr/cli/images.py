"""Image verbs: images, rmi, import, load, save, tag, history, commit, diff, and the
`image` group (ls, rm, inspect, prune... as Docker's aliases)."""

from __future__ import annotations

import os
import sys

from shellctr.cli.common import Context, confirm, for_each, print_inspected, report
from shellctr.cli.flags import Flag, Operand, Verb
from shellctr.core.errors import ShellctrError

# typing is not imported at run time: every command pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any

    from shellctr.cli.parser import Parser
    from shellctr.core.host import Host, ScratchFile


def cmd_images(args: argparse.Namespace, ctx: Context) -> int:
    """From the plain records (state.Image's shape): listing images imports no pydantic."""
    from shellctr.cli.common import print_rows
    from shellctr.cli.textfmt import human_ago, human_size
    from shellctr.core.errors import CorruptRecord
    from shellctr.core.store import clock

    datetime, _ = clock()

    corrupt: list[CorruptRecord] = []
    images = sorted(ctx.store.image_records(corrupt),
                    key=lambda image: datetime.fromisoformat(image["created"]), reverse=True)
    if args.reference or args.filter:
        corrupt = []  # a corrupt record matches nothing
    for err in corrupt:  # listed, and said what to do
        report(err)
    if not args.all:
        hidden = ctx.store.intermediate_image_ids()
        images = [image for image in images if image["repo_tags"] or image["id"] not in hidden]
    if args.reference:
        import fnmatch

        from shellctr.parts.reference import normalize_ref
        wanted = normalize_ref(args.reference) if ":" in args.reference else args.reference
        images = [image for image in images if any(
            fnmatch.fnmatchcase(tag, wanted) or fnmatchcase_repo(tag, wanted)
            for tag in image["repo_tags"])]
    if args.filter:
        images = filter_images(ctx, images, args.filter)
    broken = [os.path.basename(str(err.path)).removesuffix(".json") for err in corrupt]
    if args.quiet:
        for image_id in broken:
            print(f"sha256:{image_id}" if args.no_trunc else image_id[:12])
        seen = set()
        for image in images:
            short = image["id"] if args.no_trunc else image["id"][:12]
            if short not in seen:
                print(f"sha256:{short}" if args.no_trunc else short)
                seen.add(short)
        return 0
    rows: list[dict[str, Any]] = []
    for image in images:
        created = human_ago(datetime.fromisoformat(image["created"]))
        size = human_size(image["size"])
        image_id = f"sha256:{image['id']}" if args.no_trunc else image["id"][:12]
        digest = f"sha256:{image['digest']}" if image.get("digest") else "<none>"
        # pulled by digest only: its repository, with no tag (as Docker lists it)
        untagged = [f"{d.partition('@')[0]}:<none>" for d in image.get("repo_digests", [])]
        for tag in image["repo_tags"] or untagged[:1] or ["<none>:<none>"]:
            repo, _, name = tag.rpartition(":")
            rows.append({"Containers": "N/A", "CreatedAt": image["created"][:19].replace(
                "T", " ") + " +0000 UTC", "CreatedSince": created, "Digest": digest,
                "ID": image_id, "Repository": repo, "SharedSize": "N/A", "Size": size,
                "Tag": name, "UniqueSize": "N/A", "VirtualSize": size})
    rows += [{"Containers": "N/A", "CreatedAt": "", "CreatedSince": "", "Digest": "<none>",
              "ID": f"sha256:{image_id}" if args.no_trunc else image_id[:12],
              "Repository": "<corrupt>", "SharedSize": "N/A", "Size": "", "Tag": "<none>",
              "UniqueSize": "N/A", "VirtualSize": ""} for image_id in broken]
    default = IMAGES_DIGESTS_FORMAT if args.digests else IMAGES_FORMAT
    print_rows(rows, args.format, default, IMAGES_HEADERS)
    return 0


IMAGES_FORMAT = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}")
IMAGES_DIGESTS_FORMAT = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                         "{{.CreatedSince}}\t{{.Size}}")
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                  "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
                  "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}
HISTORY_FORMAT = ("table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t"
                  "{{.Comment}}")
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


def fnmatchcase_repo(tag: str, wanted: str) -> bool:
    """`images busybox` lists every tag of the repository busybox."""
    return tag.rpartition(":")[0] == wanted


def filter_images(ctx: Context, images: list[dict[str, Any]],
                  filters: list[str]) -> list[dict[str, Any]]:
    """`-f dangling=true|false`, `-f label=KEY[=VALUE]`, `-f reference=PATTERN`, of image
    records (parts.filters: the ps and API rules)."""
    import fnmatch

    from shellctr.parts.filters import label_matches, matches, parse_filters

    wanted = parse_filters(filters, ("dangling", "label", "reference"))

    def listed(image: dict[str, Any]) -> bool:
        tags = image["repo_tags"]
        return matches(wanted, {
            "dangling": lambda v: (not tags) == (v.lower() == "true"),
            "label": lambda v: label_matches(image.get("config", {}).get("Labels", {}), v),
            "reference": lambda v: any(fnmatch.fnmatchcase(t, v)
                                       or fnmatch.fnmatchcase(t.rpartition(":")[0], v)
                                       for t in tags),
        })

    return [image for image in images if listed(image)]


def cmd_rmi(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.core.errors import CorruptRecord, NotFound
    from shellctr.engine.image import remove_corrupt_image, remove_image
    from shellctr.engine.lifecycle import reconcile

    def rmi(ref: str) -> None:
        store = ctx.store
        with store.lock():  # a create after this look must see the image gone (it checks)
            users = {cid: (config["image_id"], running(cid))
                     for cid, config in store.container_configs().items()}
            try:
                lines = remove_image(ctx.host, store, ref, args.force, users)
            except NotFound:
                found = remove_corrupt_image(ctx.host, store, ref, args.force)
                if found is None:
                    raise
                lines = found
            for line in lines:
                ctx.host.result(line)

    def running(cid: str) -> bool:
        try:
            return reconcile(ctx.store, cid)["status"] == "running"
        except (FileNotFoundError, CorruptRecord):  # removed meanwhile; only rm -f ends it
            return False

    return for_each(args.images, rmi)


def cmd_import(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from shellctr.engine.image import import_image

    if args.file == "-":
        from shellctr.engine.spool import spooled

        with spooled(ctx.host) as path:
            image = import_image(ctx.host, ctx.store, path, args.change, args.reference,
                                 source="-")  # Docker's words, not the spool's name
    else:
        path = Path(args.file)
        if not path.is_file():
            raise ShellctrError(f"no such file: {args.file}", "give a rootfs tar, or - for stdin")
        image = import_image(ctx.host, ctx.store, path, args.change, args.reference)
    ctx.host.result(f"sha256:{image.id}")
    return 0



def cmd_build_busybox(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from shellctr.engine.busybox import build_busybox

    image = build_busybox(ctx.host, ctx.store, Path(args.busybox), args.reference)
    ctx.host.result(f"sha256:{image.id}")
    return 0



def cmd_load(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from shellctr.engine.archive import load

    if args.input in (None, "-"):
        if sys.stdin.isatty():
            raise ShellctrError("requested load from stdin, but stdin is empty",
                                "use -i FILE or pipe an archive in")
        from shellctr.engine.spool import spooled

        with spooled(ctx.host, decompress=True) as path:
            lines = load(ctx.host, ctx.store, path)
    else:
        import stat

        path = Path(args.input)
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = 0
        if stat.S_ISFIFO(mode):  # a named pipe (or `-i <(zcat ...)`): read once, spooled
            from shellctr.engine.spool import spooled

            with open(path, "rb") as stream, \
                    spooled(ctx.host, stream, path, decompress=True) as plain:
                lines = load(ctx.host, ctx.store, plain)
        elif not stat.S_ISREG(mode):
            raise ShellctrError(f"no such file: {args.input}", "give an archive written by save")
        else:
            with uncompressed(ctx.host, path) as plain:
                lines = load(ctx.host, ctx.store, plain)
    for line in lines if not args.quiet else []:
        ctx.host.result(line)
    return 0


def cmd_save(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from shellctr.engine.archive import save

    if args.output is None and sys.stdout.isatty() and not ctx.host.dry_run:
        raise ShellctrError("cowardly refusing to save to a terminal",
                            "use the -o flag or redirect")
    save(ctx.host, ctx.store, args.images, Path(args.output) if args.output else None,
         args.format)
    return 0


def cmd_tag(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.image import tag_image

    tag_image(ctx.host, ctx.store, args.source, args.target)
    return 0


def cmd_history(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.cli.common import print_rows
    from shellctr.cli.textfmt import human_ago, human_size
    from shellctr.core.state import images as all_images
    from shellctr.engine.image import find_image

    image = find_image(ctx.store, args.image)
    entries: list[Any] = list(image.history) or [None]
    sizes = list(image.layer_sizes) or [image.size]
    # a row is a local image's own when that image is this one up to the row (its parent
    # chain, as Docker shows it): the same layers, and as many history entries
    local = {(len(other.history) or 1, tuple(other.layers)): other.id
             for other in all_images(ctx.store) if other.id != image.id}
    rows: list[dict[str, Any]] = []
    layer = 0
    for position, entry in enumerate(entries):
        empty = entry is not None and entry.empty_layer
        size = 0 if empty or layer >= len(sizes) else sizes[layer]
        if not empty:
            layer += 1
        created_by = entry.created_by if entry is not None else ""
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        parent = local.get((position + 1, tuple(image.layers[:layer])))
        shown_id = "<missing>" if parent is None else (
            f"sha256:{parent}" if args.no_trunc else parent[:12])
        created = entry.created if entry and entry.created else None
        stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else ""
        rows.append({
            "ID": shown_id,
            # -H=false: the time and the bytes as they are, as Docker's
            "CreatedSince": (human_ago(created) if args.human else stamp) if created else "",
            "CreatedAt": stamp,
            "CreatedBy": created_by,
            "Size": human_size(max(size, 0)) if args.human else str(max(size, 0)),
            "Comment": entry.comment if entry is not None else image.comment,
        })
    rows.reverse()
    rows[0]["ID"] = (f"sha256:{image.id}" if args.no_trunc else image.id[:12])
    if args.quiet:
        for row in rows:
            print(row["ID"])
        return 0
    print_rows(rows, args.format, HISTORY_FORMAT, HISTORY_HEADERS)
    return 0


def cmd_image_inspect(args: argparse.Namespace, ctx: Context) -> int:

    from shellctr.cli.common import report
    from shellctr.core.errors import NotFound
    from shellctr.engine.inspect import image_json
    from shellctr.parts.reference import find_image_record

    found, code = [], 0
    for name in args.images:
        try:
            found.append(image_json(find_image_record(ctx.store.image_records(), name), ctx.store))
        except NotFound:
            report(NotFound(f"no such image: {name}"))
            code = 1
    print_inspected(found, args.format)
    return code


def cmd_image_prune(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.cli.textfmt import human_size
    from shellctr.engine.image import prune_images

    what = "images without at least one container associated to them" if args.all \
        else "dangling images"
    if not confirm(f"This will remove all {what}.", args.force):
        return 0
    deleted, reclaimed = prune_images(ctx.host, ctx.store, args.all)
    if deleted:
        ctx.host.result("\n".join(["Deleted Images:", *deleted, ""]))
    ctx.host.result(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def cmd_commit(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.commit import commit

    image = commit(ctx.host, ctx.store, args.container, args.reference, args.change,
                   args.message or "", args.author or "", args.pause)
    ctx.host.result(f"sha256:{image.id}")
    return 0


def cmd_diff(args: argparse.Namespace, ctx: Context) -> int:
    from shellctr.engine.commit import changes

    for kind, path in changes(ctx.store, args.container):
        print(f"{kind} {path}")
    return 0


class uncompressed:
    """An archive file as an uncompressed tar: itself, or a decompressed scratch copy."""

    def __init__(self, host: Host, path: Path) -> None:
        self.host, self.path = host, path
        self.spool: ScratchFile | None = None

    def __enter__(self) -> Path:
        from shellctr.engine.layers import compression_of
        from shellctr.engine.spool import spooled

        with open(self.path, "rb") as probe:
            if compression_of(probe.read(6)) is None:
                return self.path
            probe.seek(0)
            self.spool = spooled(self.host, probe, self.path, decompress=True)
            return self.spool.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.spool is not None:
            self.spool.__exit__(*exc)


def parse_bool(text: str) -> bool:
    from shellctr.cli.common import GO_BOOLS

    if text not in GO_BOOLS:
        import argparse

        raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")
    return GO_BOOLS[text]


# argparse's parsers of the read verbs are made of these, and so is the fast parser of
# their common invocations (cli/flags.py)
def read_verbs() -> dict[str, Verb]:
    """The read verbs' command lines, made on each call: a verb's function is the
    module's when the command line is parsed (as `register` takes it)."""
    return {
        "images": Verb(cmd_images, [
            Flag("-q", "--quiet", help="only ids"),
            Flag("-a", "--all", help="all images (also a build's intermediate ones)"),
            Flag("--digests", help="show digests"),
            Flag("--no-trunc", help="full ids"),
            Flag("-f", "--filter", kind="append", metavar="KEY=VALUE",
                 help="dangling, label, reference"),
            Flag("--format", kind="value", metavar="FORMAT",
                 help="'table', 'json', or a Go template ('table ...': columns)"),
        ], [Operand("reference", "REPOSITORY[:TAG]", "?")]),
        "image inspect": Verb(cmd_image_inspect, [
            Flag("-f", "--format", kind="value", metavar="TEMPLATE", help="a Go template"),
        ], [Operand("images", "IMAGE", "+")]),
    }


def register(verbs: argparse._SubParsersAction[Parser]) -> None:
    """Add the image verbs to the command line (and Docker's `image ...` aliases)."""
    import argparse

    image = verbs.add_parser("image", help="manage images")
    group = image.add_subparsers(dest="image_verb", metavar="COMMAND", required=True)

    def both(name: str, aliases: list[str], help: str) -> list[Parser]:
        """`name` at the top (if not None) and `image ALIAS...`."""
        parsers = [verbs.add_parser(name, help=help)] if name else []
        return parsers + [group.add_parser(alias, help=help) for alias in aliases]

    from shellctr.cli.build import add_build_flags  # `image build`, an alias of `build`

    add_build_flags(group.add_parser("build", help="build an image from a Dockerfile"))

    for parser in both("images", ["ls", "list"], "list images"):
        read_verbs()["images"].add_arguments(parser)

    for parser in both("rmi", ["rm", "remove"], "remove images"):
        parser.add_argument("-f", "--force", action="store_true",
                            help="remove even if stopped containers use it")
        parser.add_argument("images", nargs="+", metavar="IMAGE")
        parser.set_defaults(func=cmd_rmi)

    for parser in both("import", ["import"], "make an image from a rootfs tar"):
        parser.add_argument("-c", "--change", action="append", default=[], metavar="CHANGE",
                            help="Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                            "STOPSIGNAL, USER, VOLUME, WORKDIR")
        parser.add_argument("file", metavar="FILE|-")
        parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
        parser.set_defaults(func=cmd_import)

    for parser in both("load", ["load"], "load images from a docker-archive or OCI archive"):
        parser.add_argument("-i", "--input", metavar="FILE", help="read from FILE, not stdin")
        parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
        parser.set_defaults(func=cmd_load)

    for parser in both("save", ["save"], "write images to an archive"):
        parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
        parser.add_argument("--format", default="docker-archive",
                            choices=["docker-archive", "oci-archive"], help="archive format")
        parser.add_argument("images", nargs="+", metavar="IMAGE")
        parser.set_defaults(func=cmd_save)

    for parser in both("tag", ["tag"], "give an image another name"):
        parser.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
        parser.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
        parser.set_defaults(func=cmd_tag)

    for parser in both("history", ["history"], "how an image was made"):
        parser.add_argument("--no-trunc", action="store_true", help="do not truncate")
        parser.add_argument("-q", "--quiet", action="store_true", help="only ids")
        parser.add_argument("--format", metavar="FORMAT",
                            help="'table', 'json', or a Go template")
        parser.add_argument("-H", "--human", type=parse_bool, default=True, metavar="BOOL",
                            help="sizes and dates for people (the default)")
        parser.add_argument("image", metavar="IMAGE")
        parser.set_defaults(func=cmd_history)

    for parser in both("", ["inspect"], "images as JSON"):
        read_verbs()["image inspect"].add_arguments(parser)

    for parser in both("", ["prune"], "remove unused images"):
        parser.add_argument("-a", "--all", action="store_true",
                            help="every image no container uses, not only dangling ones")
        parser.add_argument("-f", "--force", action="store_true", help="do not ask")
        parser.set_defaults(func=cmd_image_prune)

    for parser in both("commit", [], "make an image from a container's changes"):
        parser.add_argument("-c", "--change", action="append", default=[], metavar="CHANGE",
                            help="Dockerfile instruction applied to the new image's config")
        parser.add_argument("-m", "--message", metavar="MSG", help="commit message")
        parser.add_argument("-a", "--author", metavar="AUTHOR", help="author")
        parser.add_argument("-p", "--pause", default=True,
                            action=argparse.BooleanOptionalAction,
                            help="pause the container during the commit (default true)")
        parser.add_argument("container", metavar="CONTAINER")
        parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
        parser.set_defaults(func=cmd_commit)

    for parser in both("diff", [], "a container's changes to its image (A, C, D)"):
        parser.add_argument("container", metavar="CONTAINER")
        parser.set_defaults(func=cmd_diff)

    from shellctr.cli.registry import register as register_registry
    register_registry(both)  # pull, push, login, logout

    busybox = group.add_parser(
        "build-busybox", help="build the default busybox image from the host's static busybox")
    busybox.add_argument("--busybox", default="/bin/busybox", metavar="PATH",
                         help="the static busybox binary (Debian: busybox-static)")
    busybox.add_argument("reference", nargs="?", default="busybox:latest",
                         metavar="REPOSITORY[:TAG]")
    busybox.set_defaults(func=cmd_build_busybox)
