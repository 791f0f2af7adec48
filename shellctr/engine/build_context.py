"""What a build reads: its options, the build context (a directory, or a tar on stdin,
checked as a layer is and extracted by tar into a private directory: `prepared_context`)
and the filesystem of an image (an earlier stage, for `COPY --from`; the image a COPY
writes into, for its destination rules and `--chown` names), as `copyrules.Listing`s.

The context is walked once, with lstat, after .dockerignore: what is excluded is not
there, and a symlink is an entry whose target copyrules resolves inside the context (an
absolute target means the context's root), never on the host. Files are opened with
O_NOFOLLOW and must still be what the walk saw.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shellctr.core.errors import ShellctrError
from shellctr.core.host import Host, Rollback
from shellctr.core.layout import Layout
from shellctr.core.store import Store
from shellctr.engine.layers import OPAQUE_XATTR, scan_layer
from shellctr.parts import copyrules
from shellctr.parts.copyrules import CopyError, Entry, Kind
from shellctr.parts.dockerignore import DOCKERIGNORE, ContextFilter, IgnoreError

CHUNK = 1 << 20
URL_PREFIX = "\0url/"  # where an ADD's downloads are in its tree: no context path has a NUL


class BuildError(ShellctrError):
    """A build that failed (Docker's exit code 1)."""

    exit_code = 1


@dataclass
class BuildOptions:
    """What `build` was asked for (cli/build.py fills it from the flags)."""

    dockerfile: bytes
    dockerfile_name: str = "Dockerfile"
    context: Tree | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    network: str | None = None
    pull: bool = False  # --pull: FROM images are pulled even when they are here
    rm: bool = True
    force_rm: bool = False


@dataclass(frozen=True)
class Node:
    """One path of a context or an image: its lstat and where its bytes are on disk."""

    path: Path
    st: os.stat_result
    link: str = ""

    @property
    def kind(self) -> Kind:
        return kind_of(self.st.st_mode)


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs' whiteout: a 0/0 character device (engine/commit.py reads them too)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def kind_of(mode: int) -> Kind:
    """What a mode's file type is, in COPY's words."""
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


class Tree:
    """A tree of `Node`s by relative path ("" is the root): the copyrules.Listing a
    COPY resolves its sources against, and what the layer writer reads."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes

    def node(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def lookup(self, path: str) -> Entry | None:
        node = self.nodes.get(path)
        if node is None:
            return None
        return Entry(kind_of(node.st.st_mode), node.link)

    def walk(self) -> Iterable[str]:
        return sorted(self.nodes)

    def below(self, path: str) -> list[str]:
        """The paths under the directory `path`, parents first, in name order."""
        prefix = f"{path}/" if path else ""
        return sorted(p for p in self.nodes if p.startswith(prefix) and p != path)

    def open(self, path: str) -> IO[bytes]:
        """A regular file's bytes, refused if it is no longer the file the walk saw."""
        node = self.nodes[path]
        fd = os.open(node.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (node.st.st_dev, node.st.st_ino):
            os.close(fd)
            raise CopyError(f"{path} changed while the build read it", "build again")
        return os.fdopen(fd, "rb")

    def digest(self, path: str, owner: tuple[int, int] | None = None,
               mode: int | None = None) -> str:
        """sha256 of what a COPY of `path` writes: for each path at and under it, its name
        (relative to it), type, mode, owner, size, link target and content (not mtime)."""
        sha = hashlib.sha256()
        node = self.nodes[path]
        names = [path, *self.below(path)] if node.kind == "dir" else [path]
        for name in names:
            entry = self.nodes[name]
            relative = name[len(path):].lstrip("/")
            uid, gid = owner if owner is not None else (0, 0)
            bits = mode if mode is not None else stat.S_IMODE(entry.st.st_mode)
            sha.update(f"{relative}\0{entry.kind}\0{bits:o}\0{uid}:{gid}\0{entry.st.st_size}"
                       f"\0{entry.link}\0".encode())
            if entry.kind == "file":
                with self.open(name) as data:
                    while chunk := data.read(CHUNK):
                        sha.update(chunk)
        return sha.hexdigest()


def read_context(directory: Path, dockerfile: str, ignore_text: str | None) -> Tree:
    """The context directory walked once, with .dockerignore's rules applied: what COPY
    and ADD can see (never the excluded paths)."""
    try:
        rules = ContextFilter.from_text(ignore_text, dockerfile)
    except IgnoreError as err:
        raise CopyError(f"{DOCKERIGNORE}: {err}", "fix the pattern") from None
    nodes: dict[str, Node] = {"": Node(directory, os.lstat(directory))}

    def walk(relative: str) -> None:
        top = directory / relative if relative else directory
        with os.scandir(top) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            path = f"{relative}/{name}" if relative else name
            full = top / name
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                if rules.skip_directory(path):
                    continue
                if rules.visible(path):
                    nodes[path] = Node(full, st)
                walk(path)  # an excluded dir may hold `!`-included paths
                continue
            if not rules.visible(path):
                continue
            nodes[path] = Node(full, st, os.readlink(full) if stat.S_ISLNK(st.st_mode) else "")

    walk("")
    for path in list(nodes):  # a `!`-included path under an excluded dir: its dirs too
        parent = path.rpartition("/")[0]
        while parent and parent not in nodes:
            nodes[parent] = Node(directory / parent, os.lstat(directory / parent))
            parent = parent.rpartition("/")[0]
    return Tree(nodes)


# -- an image's files ------------------------------------------------------------------------
def image_tree(layout: Layout, layers: list[str]) -> Tree:
    """The merged filesystem of an image's layers (their extracted dirs), as overlayfs
    shows it: the topmost layer that has a path decides, whiteouts delete, opaque
    directories hide what is below them."""
    nodes: dict[str, Node] = {}
    hidden: set[str] = set()  # deleted or under an opaque dir of an upper layer
    opaque: set[str] = set()
    for diff_id in reversed(layers):
        top = layout.layer_dir(diff_id)
        layer_opaque: set[str] = set()

        for path, node in _walk_layer(top):
            if path in hidden or _covered(path, hidden, opaque):
                continue
            if is_whiteout(node.st):
                hidden.add(path)
                continue
            if path not in nodes:
                nodes[path] = node
            if node.kind == "dir" and _is_opaque(node.path):
                layer_opaque.add(path)
            elif node.kind != "dir":
                hidden.add(path)  # a file hides whatever lower layers have there
        opaque |= layer_opaque
    root = layout.layer_dir(layers[-1]) if layers else Path("/nonexistent")
    if layers:
        nodes.setdefault("", Node(root, os.lstat(root)))
    return Tree(nodes)


class ImageView(Tree):
    """An image's merged files looked up one path at a time, as overlayfs resolves them
    (the topmost layer that has the path decides; a whiteout or a file above hides it; an
    opaque directory hides what the layers below have in it): what a COPY needs of the
    image it writes into, without walking the whole image."""

    def __init__(self, layout: Layout, layers: list[str]) -> None:
        super().__init__({})
        self.tops = [layout.layer_dir(diff_id) for diff_id in reversed(layers)]
        self.seen: dict[str, Node | None] = {}

    def node(self, path: str) -> Node | None:
        if path not in self.seen:
            found = self._resolve([part for part in path.split("/") if part])
            self.seen[path] = found
            if found is not None:
                self.nodes[path] = found  # for open()
        return self.seen[path]

    def walk(self) -> Iterable[str]:
        raise TypeError("an ImageView is looked up, not walked: use image_tree")

    def _resolve(self, parts: list[str]) -> Node | None:
        if not self.tops:
            return None
        if not parts:
            return Node(self.tops[0], os.lstat(self.tops[0]))
        for top in self.tops:
            current, hidden_below, present = top, False, True
            for part in parts[:-1]:
                current = current / part
                try:
                    st = os.lstat(current)
                except FileNotFoundError:
                    present = False
                    break
                if is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                    return None  # deleted, or a file above hides the path
                hidden_below = hidden_below or _is_opaque(current)
            if present:
                full = current / parts[-1]
                found: os.stat_result | None
                try:
                    found = os.lstat(full)
                except FileNotFoundError:
                    found = None
                if found is not None:
                    if is_whiteout(found):
                        return None
                    link = os.readlink(full) if stat.S_ISLNK(found.st_mode) else ""
                    return Node(full, found, link)
            if hidden_below:
                return None
        return None


def _covered(path: str, hidden: set[str], opaque: set[str]) -> bool:
    """Whether a directory above `path` was deleted or made opaque by an upper layer."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in hidden or "/".join(parts[:i]) in opaque
               for i in range(1, len(parts)))


def _walk_layer(top: Path) -> Iterator[tuple[str, Node]]:
    def walk(relative: str) -> Iterator[tuple[str, Node]]:
        directory = top / relative if relative else top
        with os.scandir(directory) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            path = f"{relative}/{name}" if relative else name
            full = directory / name
            st = os.lstat(full)
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
            yield path, Node(full, st, link)
            if stat.S_ISDIR(st.st_mode):
                yield from walk(path)

    if top.is_dir():
        yield from walk("")


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


# -- the context -------------------------------------------------------------------------------
@contextmanager
def prepared_context(host: Host, store: Store, context: str, dockerfile: str | None,
                     stdin: IO[bytes]) -> Iterator[tuple[bytes, str, Tree | None]]:
    """The Dockerfile's bytes, its name and the context's tree, for `build CONTEXT` (a
    directory) or `build -` (a tar on stdin, extracted into a private directory that goes
    when the build ends, or a Dockerfile alone). `dockerfile`: `-f` (`-`: stdin)."""
    if context != "-":
        directory = Path(context)
        if not directory.is_dir():
            raise BuildError(f"unable to prepare context: path {context!r} not found",
                             "give the build context's directory (or - for a tar on stdin)")
        yield read_dir(directory.absolute(), dockerfile, stdin, inside=False)
        return
    data = stdin.read()
    if not copyrules.is_archive(data[:65536]):
        if dockerfile not in (None, "-", "Dockerfile"):
            raise BuildError("-f cannot name a file when the Dockerfile comes alone on stdin",
                             "drop -f")
        yield data, "Dockerfile", None
        return
    store.prepare()
    with host.scratch_file(["cat"], store.layout.tmp_dir / f"build-context-{os.getpid()}.tar",
                           lambda out: out.write(data)) as archive:
        yield from context_from_tar(host, store, archive, data, dockerfile)


def context_from_tar(host: Host, store: Store, archive: Path, data: bytes,
                     dockerfile: str | None) -> Iterator[tuple[bytes, str, Tree | None]]:
    """A context tar (spooled at `archive`), checked member by member as a layer is (no
    absolute names, no `..`, nothing through a symlink, no hard link out, no device),
    then extracted by tar into a private directory that goes when the build ends."""
    try:
        scan_layer(host.facts.readable(archive), allow_empty=True)
    except ShellctrError as err:
        raise BuildError(f"the context tar on stdin is refused: {err.message}",
                         "send a tar of the context's files, with relative names") from None
    directory = store.layout.tmp_dir / f"build-context-{os.getpid()}"
    host.remove_tree(directory)  # left by a crashed build that had our pid
    with Rollback(host) as scratch:
        host.mkdir(directory, mode=0o700, rollback=scratch)
        try:
            host.run(["tar", "--extract", f"--file={os.fspath(archive)}",
                      f"--directory={os.fspath(directory)}",
                      "--preserve-permissions",  # COPY keeps the modes the tar gives
                      "--no-same-owner", "--no-overwrite-dir"])
            if host.dry_run:  # nothing is extracted: the Dockerfile from the tar itself
                yield dockerfile_in_tar(data, dockerfile), dockerfile or "Dockerfile", None
            else:
                yield read_dir(directory, dockerfile, io.BytesIO(), inside=True)
        finally:
            host.remove_tree(directory)


def dockerfile_in_tar(data: bytes, dockerfile: str | None) -> bytes:
    import tarfile

    wanted = copyrules.context_path(dockerfile or "Dockerfile")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            if member.isreg() and member.name.removeprefix("./") == wanted:
                found = tar.extractfile(member)
                if found is not None:
                    return found.read()
    raise BuildError(f"the context tar has no {wanted}", "add it, or name it with -f")


def read_dir(directory: Path, dockerfile: str | None, stdin: IO[bytes],
             inside: bool) -> tuple[bytes, str, Tree]:
    """The Dockerfile (`-f`: a path, relative to the context for a tar's; `-`: stdin) and
    the context directory's tree."""
    from shellctr.engine.build_context import read_context
    from shellctr.parts.dockerignore import DOCKERIGNORE

    name = "Dockerfile"
    try:
        if dockerfile == "-":
            data = stdin.read()
        else:
            if dockerfile is None:
                path = directory / "Dockerfile"
                if not path.is_file() and (directory / "dockerfile").is_file():
                    path = directory / "dockerfile"
            elif inside:  # -f names a file in the tar
                path = directory / copyrules.context_path(dockerfile)
            else:
                path = Path(dockerfile)
            try:
                data = path.read_bytes()
            except OSError:
                raise BuildError(f"unable to prepare context: cannot read the Dockerfile "
                                 f"{os.fspath(path)!r}", "give its path with -f") from None
            relative = os.path.relpath(path.absolute(), directory)
            name = relative if not relative.startswith("..") else os.fspath(path)
        ignore = directory / DOCKERIGNORE
        text = ignore.read_text(errors="replace") if ignore.is_file() else None
        return data, name, read_context(directory, name, text)
    except OSError as err:
        raise BuildError(f"cannot read the build context: {err.strerror}: "
                         f"{err.filename}") from None
