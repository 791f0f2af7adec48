"""Images: the layer store, import from a rootfs tar, lookup, tags, rmi, export.

A layer is a tar of files. It is checked member by member in Python first (no
absolute names, no `..`, nothing through a symlink, no hard link leaving the layer, no
device nodes outside /dev), then extracted by GNU tar into its own fresh directory
`layers/<sha256>/`, which every image using the layer shares read-only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import shlex
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shellctr.cmd import path_arg
from shellctr.errors import Conflict, NotFound, ShellctrError
from shellctr.host import Host, Rollback
from shellctr.ids import SHORT
from shellctr.layout import Layout
from shellctr.reference import find_image_record, is_id, normalize_ref
from shellctr.state import Image, ImageConfig, container_config, evolve, images, save
from shellctr.store import Store, now_iso


def find_image(store: Store, ref: str) -> Image:
    """An image by name[:tag], full or short id, or `sha256:` id."""
    return Image.model_validate(find_image_record(store, ref))


# -- checking layer tars ---------------------------------------------------------------
@dataclass
class LayerScan:
    """What a layer tar holds, learnt before anything is extracted."""

    diff_id: str = ""  # sha256 of the uncompressed tar
    size: int = 0  # bytes of regular file content
    skipped: list[str] = field(default_factory=list)  # device nodes under dev/, not extracted


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self.stream = stream
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.stream.read(len(buffer))
        self.sha.update(data)
        buffer[: len(data)] = data
        return len(data)


def _decompressed(path: Path) -> io.BufferedIOBase:
    """`path` as an uncompressed byte stream (plain, gzip, bzip2 or xz tar)."""
    with open(path, "rb") as probe:
        magic = probe.read(6)
    if magic.startswith(b"\x1f\x8b"):
        import gzip
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        import bz2
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        import lzma
        return lzma.open(path, "rb")
    return open(path, "rb")


def _clean_name(name: str) -> str:
    """A member name as a normalized relative path, or an error for unsafe names."""
    if name.startswith("/"):
        raise ShellctrError(f"refusing layer: member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ShellctrError(f"refusing layer: member {name!r} climbs out with '..'")
    return "/".join(parts)


def scan_layer(path: Path) -> LayerScan:
    """Check every member of the tar at `path` and compute its diff id and size."""
    scan = LayerScan()
    symlinks: set[str] = set()
    seen: set[str] = set()
    with _decompressed(path) as raw:
        hashing = _HashingReader(raw)
        try:
            with tarfile.open(fileobj=io.BufferedReader(hashing), mode="r|") as archive:
                for member in archive:
                    _check_member(member, seen, symlinks, scan)
            while hashing.read(1 << 20):  # the tar's padding belongs to the digest too
                pass
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ShellctrError(f"not a valid tar archive: {err}") from err
    if not seen:
        raise ShellctrError("not a valid tar archive: it holds no files")
    scan.diff_id = hashing.sha.hexdigest()
    return scan


def _check_member(
    member: tarfile.TarInfo, seen: set[str], symlinks: set[str], scan: LayerScan
) -> None:
    name = _clean_name(member.name)
    parents = name.split("/")[:-1]
    for depth in range(1, len(parents) + 1):
        if "/".join(parents[:depth]) in symlinks:
            raise ShellctrError(
                f"refusing layer: member {member.name!r} would be written through the "
                f"symlink {'/'.join(parents[:depth])!r}"
            )
    if member.islnk():
        target = _clean_name(member.linkname)
        if target not in seen or target in symlinks:
            raise ShellctrError(
                f"refusing layer: hard link {member.name!r} points outside the layer "
                f"({member.linkname!r})"
            )
    if member.ischr() or member.isblk():
        if not name.startswith("dev/"):
            raise ShellctrError(
                f"refusing layer: device node {member.name!r} outside /dev",
                "images may not carry device nodes",
            )
        scan.skipped.append(member.name)  # /dev is a fresh tmpfs in every container
    if member.issym():
        symlinks.add(name)
    else:
        symlinks.discard(name)
    if member.isfile():
        scan.size += member.size
    seen.add(name)


# -- the layer store -------------------------------------------------------------------
def add_layer(host: Host, layout: Layout, tar_path: Path, scan: LayerScan,
              rollback: Rollback) -> None:
    """Extract a checked layer into `layers/<diff id>/`, unless it is already there."""
    final = layout.layer_dir(scan.diff_id)
    if final.is_dir():
        return
    partial = layout.layers_dir / f".{scan.diff_id}.partial"
    host.remove_tree(partial)  # left by a crash during an earlier extraction
    host.mkdir(partial, rollback=rollback)
    excludes = []
    for name in scan.skipped:
        excludes.append(f"--exclude={name}")
    host.run([
        "tar", "--extract",
        f"--file={path_arg(tar_path)}",
        f"--directory={path_arg(partial)}",
        "--numeric-owner",  # owners are the image's uids, not names mapped through the host
        "--same-owner",
        "--preserve-permissions",  # modes exactly as in the image (setuid, sticky), no umask
        "--xattrs", "--xattrs-include=*",
        *(["--anchored", "--no-wildcards", *excludes] if excludes else []),
    ])
    host.rename(partial, final, rollback=rollback)


def remove_unused_layers(host: Host, store: Store, gone: str = "") -> None:
    """Remove layer dirs that no image and no container refers to.

    `gone` is the id of an image just removed, which --dry-run still finds on disk.
    """
    used = {layer for image in images(store) if image.id != gone for layer in image.layers}
    used |= {layer for cid in store.container_ids()
             for layer in container_config(store, cid).layers}
    layers_dir = store.layout.layers_dir
    if not layers_dir.is_dir():
        return
    for entry in sorted(os.listdir(layers_dir)):
        if not entry.startswith(".") and entry not in used:
            host.remove_tree(layers_dir / entry)


# -- import ----------------------------------------------------------------------------
def parse_changes(changes: Iterable[str], base: ImageConfig) -> ImageConfig:
    """Apply Dockerfile-style `-c` instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER)."""
    config = base.model_dump()
    for change in changes:
        instruction, _, rest = change.strip().partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if not rest:
            raise ShellctrError(f"invalid change {change!r}: {instruction} needs an argument")
        if instruction in ("CMD", "ENTRYPOINT"):
            config["Cmd" if instruction == "CMD" else "Entrypoint"] = _command_form(change, rest)
        elif instruction == "ENV":
            env = dict(item.split("=", 1) for item in config["Env"])
            env.update(_env_pairs(change, rest))
            config["Env"] = [f"{k}={v}" for k, v in env.items()]
        elif instruction == "WORKDIR":
            config["WorkingDir"] = posixpath.normpath(
                posixpath.join(config["WorkingDir"] or "/", rest))
        elif instruction == "USER":
            config["User"] = rest
        else:
            raise ShellctrError(
                f"invalid change {change!r}: {instruction or '(empty)'} is not supported",
                "use CMD, ENTRYPOINT, ENV, WORKDIR or USER",
            )
    return ImageConfig.model_validate(config)


def _command_form(change: str, rest: str) -> list[str]:
    """JSON (exec) form as given; shell form wrapped in /bin/sh -c, as Docker does."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError as err:
            raise ShellctrError(f"invalid change {change!r}: bad JSON array ({err.msg})") from err
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ShellctrError(f"invalid change {change!r}: expected a JSON array of strings")
        return value
    return ["/bin/sh", "-c", rest]


def _env_pairs(change: str, rest: str) -> dict[str, str]:
    if "=" not in rest.split(" ", 1)[0]:  # legacy form: ENV KEY value with spaces
        key, _, value = rest.partition(" ")
        return {key: value.strip()}
    try:
        words = shlex.split(rest)
    except ValueError as err:
        raise ShellctrError(f"invalid change {change!r}: {err}") from err
    pairs = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ShellctrError(f"invalid change {change!r}: {word!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


def image_id_for(layers: list[str], config: ImageConfig, created: str, comment: str) -> str:
    """Content address of an image: sha256 of its canonical description."""
    blob = json.dumps(
        {"layers": layers, "config": config.model_dump(), "created": created,
         "comment": comment},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def import_image(
    host: Host, store: Store, tar_path: Path, changes: list[str], ref: str | None,
    comment: str = "",
) -> Image:
    """A one-layer image from a rootfs tar; `ref` is tagged on it (moved if taken)."""
    config = parse_changes(changes, ImageConfig())
    tag = normalize_ref(ref) if ref else None
    scan = scan_layer(tar_path)
    created = now_iso()
    image = Image.model_validate({
        "id": image_id_for([scan.diff_id], config, created, comment),
        "repo_tags": [tag] if tag else [],
        "created": created,
        "layers": [scan.diff_id],
        "size": scan.size,
        "config": config.model_dump(),
        "comment": comment,
    })
    store.prepare()
    with store.lock(), Rollback(host) as rollback:
        host.step(f"import layer sha256:{scan.diff_id[:SHORT]}")
        add_layer(host, store.layout, tar_path, scan, rollback)
        host.step("record the image")
        if tag:
            untag_elsewhere(host, store, tag, rollback)
        save(store, store.layout.image_file(image.id), image)
        rollback.push("record the image",
                      lambda: host.remove_file(store.layout.image_file(image.id)))
    return image


def restore(store: Store, path: Path, image: Image) -> Callable[[], None]:
    """An undo that writes `image` back as it was."""
    return lambda: save(store, path, image)


def untag_elsewhere(host: Host, store: Store, tag: str, rollback: Rollback | None) -> None:
    """Move `tag` off any image holding it (that image may become <none>)."""
    for other in images(store):
        if tag in other.repo_tags:
            path = store.layout.image_file(other.id)
            save(store, path, evolve(other, repo_tags=[t for t in other.repo_tags if t != tag]))
            if rollback is not None:
                rollback.push(f"untag {tag}", restore(store, path, other))


# -- rmi -------------------------------------------------------------------------------
def remove_image(host: Host, store: Store, ref: str, force: bool,
                 users: dict[str, tuple[str, bool]]) -> list[str]:
    """Untag or delete an image; `users` maps container id -> (image id, running).

    Returns Docker's report lines (`Untagged: ...`, `Deleted: sha256:...`).
    """
    image = find_image(store, ref)
    by_tag = not is_id(ref)
    tag = normalize_ref(ref) if by_tag else None
    report = []
    if tag and len(image.repo_tags) > 1:
        host.step(f"untag {tag}")
        save(store, store.layout.image_file(image.id),
             evolve(image, repo_tags=[t for t in image.repo_tags if t != tag]))
        return [f"Untagged: {tag}"]
    using = [(cid, running) for cid, (iid, running) in users.items() if iid == image.id]
    running = [cid for cid, is_running in using if is_running]
    if running:
        raise Conflict(
            f"unable to remove image {ref}: it is used by running container {running[0][:SHORT]}",
            "stop and remove the container first",
        )
    if using and not force:
        raise Conflict(
            f"unable to remove image {ref}: container {using[0][0][:SHORT]} is using it",
            "remove the container first, or use rmi -f",
        )
    if not by_tag and len(image.repo_tags) > 1 and not force:
        raise Conflict(
            f"unable to delete {ref}: the image is referenced in multiple repositories",
            "remove it by name, or use rmi -f",
        )
    host.step(f"remove image {image.id[:SHORT]}")
    report += [f"Untagged: {t}" for t in image.repo_tags]
    host.remove_file(store.layout.image_file(image.id))
    remove_unused_layers(host, store, gone=image.id)
    report.append(f"Deleted: sha256:{image.id}")
    return report


# -- the busybox image -----------------------------------------------------------------
BUSYBOX_PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
BUSYBOX_GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
tty:x:5:
wheel:x:10:root,user
user:x:1000:
nogroup:x:65534:
"""


def is_static_elf(path: Path) -> bool:
    """True if `path` is an ELF executable with no program interpreter (PT_INTERP)."""
    with open(path, "rb") as stream:
        header = stream.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only
            return False
        endian = "<" if header[5] == 1 else ">"
        import struct
        phoff = struct.unpack(endian + "Q", header[32:40])[0]
        phentsize, phnum = struct.unpack(endian + "HH", header[54:58])
        stream.seek(phoff)
        for _ in range(phnum):
            entry = stream.read(phentsize)
            if struct.unpack(endian + "I", entry[:4])[0] == 3:  # PT_INTERP
                return False
    return True


def busybox_rootfs_tar(busybox: Path, applets: list[str], out: IO[bytes]) -> None:
    """Write a minimal rootfs tar: busybox, its applet links, /etc/passwd and /etc/group."""
    mtime = int(os.stat(busybox).st_mtime)  # fixed times: the same host busybox, the same layer

    def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.linkname = kind, mode, mtime, link
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data) if data else None)

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as archive:
        dirs = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "home/user": 0o755,
                "proc": 0o555, "root": 0o700, "sbin": 0o755, "sys": 0o555, "tmp": 0o1777,
                "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755,
                "var/tmp": 0o1777}
        for name, mode in dirs.items():
            add(name, tarfile.DIRTYPE, mode)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in applets:
            path = applet.strip().lstrip("/")
            if path and path != "bin/busybox" and posixpath.dirname(path) in dirs:
                add(path, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, BUSYBOX_PASSWD.encode())
        add("etc/group", tarfile.REGTYPE, 0o644, BUSYBOX_GROUP.encode())
        add("etc/hostname", tarfile.REGTYPE, 0o644, b"")
        add("etc/hosts", tarfile.REGTYPE, 0o644, b"")
        add("etc/resolv.conf", tarfile.REGTYPE, 0o644, b"")


def build_busybox(host: Host, store: Store, busybox: Path, ref: str) -> Image:
    """The default `busybox` image, built from the host's static busybox."""
    if not busybox.is_file():
        raise NotFound(f"no busybox at {busybox}", "apt-get install busybox-static")
    if not is_static_elf(busybox):
        raise ShellctrError(
            f"{busybox} is not a static 64-bit executable",
            "apt-get install busybox-static (a dynamic busybox cannot run without host libraries)",
        )
    code, listing, err = host.probe([path_arg(busybox), "--list-full"])
    if code != 0:
        raise ShellctrError(f"{busybox} --list-full failed: {err.strip()}")
    store.prepare()
    # under --dry-run the store's tmp dir may not exist: the scratch tar goes to the system's
    import tempfile
    scratch = Path(tempfile.gettempdir()) if host.dry_run else store.layout.tmp_dir
    tar_path = scratch / f"shellctr-busybox-{os.getpid()}.tar"
    try:
        with open(tar_path, "wb") as out:
            busybox_rootfs_tar(busybox, listing.splitlines(), out)
        return import_image(host, store, tar_path, ['CMD ["sh"]'], ref,
                            comment=f"built from the host's {busybox}")
    finally:
        tar_path.unlink(missing_ok=True)
