"""COPY and ADD as one layer tar: the sources (context files, an earlier stage's or an
image's files, heredoc files, the members of a local tar archive for ADD) written at their
destinations, with the parent directories the destination needs (as the image has them,
or new: 0755 root), owned by root unless `--chown`, modes kept unless `--chmod`.

The tar is a new layer like any other: `layers.scan_layer` checks it before it is kept,
and its files are extracted into a fresh directory of their own. An ADD archive's members
are checked here first, so that a hostile one is refused with its name: no absolute
names kept (they are made relative to the destination, as Docker does), no `..` leaving
the destination, no hard link to outside it, no device nodes.
"""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from shellctr.engine.build_context import URL_PREFIX, Tree
from shellctr.parts import golang
from shellctr.parts.copyrules import CopyError, CopyOp


@dataclass
class Transfer:
    """What one COPY/ADD writes: `ops` from copyrules.plan, read from `source` (the
    context or a stage's tree); inline heredoc files; the owner and mode overrides."""

    ops: list[CopyOp]
    source: Tree
    inline: list[tuple[str, bytes]] = field(default_factory=list)  # (target, data)
    owner: tuple[int, int] | None = None
    mode: int | None = None
    keyword: str = "COPY"


def _info(name: str, kind: bytes, mode: int, owner: tuple[int, int], mtime: float,
          size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = owner
    info.mtime = int(mtime)
    info.size = size
    info.linkname = link
    return info


class _Writer:
    """Adds entries once each, parents before children."""

    def __init__(self, tar: tarfile.TarFile, image: Tree, owner: tuple[int, int] | None) -> None:
        self.tar = tar
        self.image = image
        self.owner = owner
        self.written: set[str] = set()

    def parents(self, name: str) -> None:
        """The directories above `name`: as the image has them, else new (0755, the
        --chown owner or root)."""
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if path in self.written:
                continue
            node = self.image.node(path)
            if node is not None and node.kind == "dir":
                info = _info(path, tarfile.DIRTYPE, stat.S_IMODE(node.st.st_mode),
                             (node.st.st_uid, node.st.st_gid), node.st.st_mtime)
            elif node is not None and node.kind == "symlink":
                raise CopyError(f"the destination goes through the symlink /{path} in the "
                                "image", "copy to the path the link points to")
            else:
                info = _info(path, tarfile.DIRTYPE, 0o755, self.owner or (0, 0), 0)
            self.add(info)

    def add(self, info: tarfile.TarInfo, data: IO[bytes] | None = None) -> None:
        self.written.add(info.name)
        self.tar.addfile(info, data)


def write_transfer(out: IO[bytes], transfer: Transfer, image: Tree) -> None:
    """The layer tar of one COPY/ADD, to `out`."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        writer = _Writer(tar, image, transfer.owner)
        for op in transfer.ops:
            target = op.target.lstrip("/")
            if op.extract:
                _extract(writer, transfer, op.source.path, target)
            elif op.contents:
                _copy_dir(writer, transfer, op.source.path, target)
            else:
                _copy_one(writer, transfer, op.source.path, target)
        for target, data in transfer.inline:
            name = target.lstrip("/")
            writer.parents(name)
            info = _info(name, tarfile.REGTYPE, transfer.mode if transfer.mode is not None
                         else 0o644, transfer.owner or (0, 0), 0, len(data))
            writer.add(info, io.BytesIO(data))


def write_dirs(out: IO[bytes], path: str, image: Tree) -> None:
    """The layer tar of a WORKDIR the image lacks: its directories."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _Writer(tar, image, None).parents(path + "/x")


def _entry_info(transfer: Transfer, path: str, name: str) -> tarfile.TarInfo:
    node = transfer.source.nodes[path]
    st = node.st
    owner = transfer.owner or (0, 0)
    mode = transfer.mode if transfer.mode is not None else stat.S_IMODE(st.st_mode)
    if path.startswith(URL_PREFIX) and transfer.mode is None:
        mode = 0o600  # Docker's mode for an ADD of a URL
    if node.kind == "dir":
        return _info(name, tarfile.DIRTYPE, mode, owner, st.st_mtime)
    if node.kind == "symlink":
        return _info(name, tarfile.SYMTYPE, stat.S_IMODE(st.st_mode), owner, st.st_mtime,
                     link=node.link)
    if node.kind == "file":
        return _info(name, tarfile.REGTYPE, mode, owner, st.st_mtime, st.st_size)
    raise CopyError(f"{transfer.keyword} failed: {path} is not a file, directory or symlink",
                    "leave devices, sockets and fifos out of the context (.dockerignore)")


def _copy_one(writer: _Writer, transfer: Transfer, path: str, target: str) -> None:
    writer.parents(target)
    info = _entry_info(transfer, path, target)
    if info.type == tarfile.REGTYPE:
        with transfer.source.open(path) as data:
            writer.add(info, data)
    else:
        writer.add(info)


def _copy_dir(writer: _Writer, transfer: Transfer, path: str, target: str) -> None:
    """A directory's contents into `target` (made if the image lacks it)."""
    if target:
        node = writer.image.node(target)
        writer.parents(target)
        if node is None or node.kind != "dir":
            writer.add(_info(target, tarfile.DIRTYPE, 0o755, transfer.owner or (0, 0),
                             transfer.source.nodes[path].st.st_mtime))
        else:
            writer.add(_info(target, tarfile.DIRTYPE, stat.S_IMODE(node.st.st_mode),
                             (node.st.st_uid, node.st.st_gid), node.st.st_mtime))
    prefix = f"{path}/" if path else ""
    for below in transfer.source.below(path):
        name = below[len(prefix):]
        full = f"{target}/{name}" if target else name
        info = _entry_info(transfer, below, full)
        if info.type == tarfile.REGTYPE:
            with transfer.source.open(below) as data:
                writer.add(info, data)
        else:
            writer.add(info)


def _extract(writer: _Writer, transfer: Transfer, path: str, target: str) -> None:
    """ADD of a local archive: its members under `target`, all checked first."""
    where = f"ADD failed: archive {path}"
    with transfer.source.open(path) as raw, _open_archive(raw, where) as archive:
        members = archive.getmembers()
        names: dict[str, str] = {}
        links: set[str] = set()
        for member in members:
            name = check_member(member, where)
            parts = name.split("/")
            if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
                raise CopyError(f"{where}: member {member.name!r} is written through a "
                                "symlink of the archive", "the archive is hostile: fix it")
            if member.issym():
                links.add(name)
            elif name in links:
                links.discard(name)
            names[member.name] = name
        if target:
            writer.parents(target + "/x")
        for member in members:
            name = names[member.name]
            if not name:
                continue
            full = f"{target}/{name}" if target else name
            writer.parents(full)
            info = _info(full, member.type, member.mode, (member.uid, member.gid),
                         member.mtime, member.size if member.isreg() else 0)
            if member.islnk():
                link = golang.clean(member.linkname.lstrip("/"))
                info.linkname = f"{target}/{link}" if target else link
            elif member.issym():
                info.linkname = member.linkname
            info.pax_headers = {k: v for k, v in member.pax_headers.items()
                                if k.startswith("SCHILY.xattr.user.")}
            writer.add(info, archive.extractfile(member) if member.isreg() else None)


def _open_archive(raw: IO[bytes], where: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=raw, mode="r:*")
    except tarfile.TarError as err:
        raise CopyError(f"{where}: {err}") from None


def check_member(member: tarfile.TarInfo, where: str) -> str:
    """An ADD archive member's name inside the destination ("" for the archive's root);
    CopyError for one that would leave it or that shellctr will not write."""
    name = golang.clean(member.name.lstrip("/"))
    if name == ".":
        return ""
    if name == ".." or name.startswith("../"):
        raise CopyError(f"{where}: member {member.name!r} leaves the destination",
                        "the archive is hostile or broken: fix it")
    if member.islnk():
        link = golang.clean(member.linkname.lstrip("/"))
        if link == ".." or link.startswith("../") or link == ".":
            raise CopyError(f"{where}: hard link {member.name!r} points outside the "
                            f"destination ({member.linkname!r})", "the archive is hostile")
    elif member.isdev() or not (member.isreg() or member.isdir() or member.issym()):
        raise CopyError(f"{where}: member {member.name!r} is a device or special file",
                        "ADD extracts files, directories and links only")
    return name


def transfer_digest(transfer: Transfer, is_archive: Callable[[str], bool] | None = None,
                    ) -> str:
    """The cache's view of a COPY/ADD: `file:`, `dir:` or `multi:` and a sha256 of every
    source's target, content, mode and owner (Docker's source hash in the history)."""
    parts = []
    for op in transfer.ops:
        digest = transfer.source.digest(op.source.path, transfer.owner, transfer.mode)
        parts.append(f"{op.target}\0{int(op.contents)}\0{int(op.extract)}\0{digest}")
    for target, data in transfer.inline:
        parts.append(f"{target}\0inline\0{hashlib.sha256(data).hexdigest()}")
    joined = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    if len(transfer.ops) == 1 and not transfer.inline:
        kind = "dir" if transfer.ops[0].contents else "file"
        return f"{kind}:{joined}"
    return f"multi:{joined}"

