"""COPY and ADD's source and destination rules, as Docker's classic builder applies them,
as pure functions over a listing of the context (the builder walks the files and answers
the lookups; nothing here touches the host).

- Sources are relative to the context: a leading `/` or `./` is dropped; `..` that leaves
  the context is an error (Docker would re-root it silently); a symlink met on the way is
  followed inside the context (an absolute target means the context's root).
- A source with `*`, `?` or `[` is a filepath.Match pattern against every path of the
  context (at its depth: `*` never matches `/`); no match at all is an error.
- Several sources need a destination ending in `/`; a destination ending in `/`, or an
  existing directory, receives `basename(source)`; a relative destination is under
  WORKDIR. A directory source copies its contents, not itself.
- ADD also takes http(s) URLs (not extracted) and extracts local tar archives, found by
  their content (gzip, bzip2, xz, zstd or plain tar, as Docker's DecompressStream), never
  by their name.
"""

from __future__ import annotations

import bz2
import lzma
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from shellctr.core.errors import ShellctrError
from shellctr.parts import golang

Kind = Literal["file", "dir", "symlink", "other"]
_MAX_LINKS = 255  # Docker's symlink package gives up after this many


class CopyError(ShellctrError):
    """A COPY/ADD that cannot be done as written (the build fails: exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class Entry:
    """What a lookup tells about one path of the context (as lstat would)."""

    kind: Kind
    link: str = ""  # a symlink's target


class Listing(Protocol):
    """The build context, as the builder sees it (after .dockerignore)."""

    def lookup(self, path: str) -> Entry | None:
        """The entry at a context-relative path (`""` is the root), not following a final
        symlink; None if there is none."""

    def walk(self) -> Iterable[str]:
        """Every path of the context, relative, in lexical order, parents before children."""


@dataclass(frozen=True)
class Source:
    """A source to copy: `name` as the context names it (its basename is the copy's name),
    `path` where its content is (symlinks resolved), `kind` file or dir; or a `url`."""

    name: str
    path: str
    kind: Kind
    url: str = ""


@dataclass(frozen=True)
class CopyOp:
    """One thing to do: put `source` at `target` (absolute, in the image); `contents`: a
    directory whose contents go into target; `extract`: a local archive unpacked there."""

    source: Source
    target: str
    contents: bool = False
    extract: bool = False


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def is_git_url(source: str) -> bool:
    """What Docker treats as a git repository (ADD of one is BuildKit's)."""
    if source.startswith(("git://", "git@", "github.com/")):
        return True
    return is_url(source) and re.search(r"\.git(?:#.+)?$", source) is not None


def contains_wildcards(name: str) -> bool:
    i = 0
    while i < len(name):
        if name[i] == "\\":
            i += 2
            continue
        if name[i] in "*?[":
            return True
        i += 1
    return False


def context_path(source: str, keyword: str = "COPY") -> str:
    """A source as a path inside the context ("" for the context itself)."""
    path = source.removeprefix("/").removeprefix("./")
    cleaned = golang.clean(path)
    if cleaned == ".." or cleaned.startswith("../"):
        raise CopyError(f"{keyword} failed: forbidden path outside the build context: {source}",
                        "sources are relative to the build context; move the file into it")
    return "" if cleaned == "." else cleaned


def normalize_dest(workdir: str, dest: str) -> str:
    """The destination as an absolute path (relative ones under WORKDIR), its trailing `/`
    kept (Docker's normalizeDest)."""
    if dest.startswith("/"):
        return dest
    joined = golang.clean("/" + workdir + "/" + dest)
    if dest.endswith("/") and joined != "/":
        joined += "/"
    return joined


def resolve_in_scope(path: str, lookup: Callable[[str], Entry | None]) -> str:
    """`path` with every symlink on it followed, inside the context: `..` stops at the root
    and an absolute target starts from it (Docker's FollowSymlinkInScope)."""
    done: list[str] = []
    pending = [part for part in path.split("/") if part and part != "."]
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = "/".join([*done, part])
        entry = lookup(candidate)
        if entry is None or entry.kind != "symlink":
            done.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise CopyError(f"too many links resolving {path!r} in the build context")
        target = [p for p in entry.link.split("/") if p and p != "."]
        if entry.link.startswith("/"):
            done = []
        pending = target + pending
    return "/".join(done)


def _source(source: str, name: str, listing: Listing, keyword: str) -> Source:
    resolved = resolve_in_scope(name, listing.lookup)
    entry = listing.lookup(resolved)
    if entry is None:
        via = f" (a link to {resolved or '.'}, inside the context)" if resolved != name else ""
        raise CopyError(f"{keyword} failed: file not found in build context or excluded by "
                        f".dockerignore: stat {name or '.'}: file does not exist{via}",
                        "check the path (relative to the context) and .dockerignore")
    kind: Kind = "dir" if entry.kind == "dir" else "file"
    return Source(name or ".", resolved, kind)


def match_sources(sources: Sequence[str], listing: Listing, keyword: str = "COPY",
                  allow_urls: bool = False) -> list[Source]:
    """The sources of a COPY/ADD (already expanded) as context entries (and URLs for ADD)."""
    found: list[Source] = []
    for source in sources:
        if is_url(source):
            if not allow_urls:
                raise CopyError(f"{keyword} failed: source can't be a URL for COPY",
                                "use ADD to download a file")
            if is_git_url(source):
                raise CopyError(f"ADD failed: {source} is a git repository, which shellctr "
                                "build cannot add", "clone it into the context and COPY it")
            found.append(Source(url_filename(source), "", "file", url=source))
            continue
        path = context_path(source, keyword)
        if contains_wildcards(path):
            try:
                matched = [p for p in listing.walk() if p and golang.match(path, p)]
            except golang.BadPattern:
                raise CopyError(f"{keyword} failed: syntax error in pattern {source!r}") from None
            found += [_source(source, p, listing, keyword) for p in matched]
            continue
        found.append(_source(source, path, listing, keyword))
    if not found:
        raise CopyError(f"{keyword} failed: no source files were specified",
                        "the wildcard matched nothing in the build context")
    return found


def plan(sources: Sequence[Source], dest: str, workdir: str,
         dest_is_dir: Callable[[str], bool], keyword: str = "COPY",
         is_archive: Callable[[Source], bool] | None = None) -> list[CopyOp]:
    """Where each source goes. `dest_is_dir(path)` tells whether the image already has a
    directory there; `is_archive(source)` (ADD) whether a local file is a tar archive."""
    if len(sources) > 1 and not dest.endswith("/"):
        raise CopyError(f"When using {keyword} with more than one source file, the destination "
                        "must be a directory and end with a /", f"write {dest}/")
    target = normalize_dest(workdir, dest)
    into_dir = target.endswith("/")
    base = golang.clean(target)
    ops = []
    for source in sources:
        if source.url:
            if not source.name:
                if into_dir:
                    raise CopyError(f"cannot determine filename for source {source.url}")
                ops.append(CopyOp(source, base))
                continue
        elif source.kind == "dir":
            ops.append(CopyOp(source, base, contents=True))
            continue
        elif is_archive is not None and is_archive(source):
            ops.append(CopyOp(source, base, extract=True))
            continue
        if into_dir or dest_is_dir(base):
            name = source.name.rstrip("/").rsplit("/", 1)[-1]
            ops.append(CopyOp(source, golang.clean(base + "/" + name)))
        else:
            ops.append(CopyOp(source, base))
    return ops


def url_filename(url: str) -> str:
    """The file name a downloaded URL gets: its path's last part ("" if the path ends with
    `/`, then Docker names it `__unnamed__` or refuses a directory destination)."""
    path = urlsplit(url).path
    if not path or path.endswith("/"):
        return ""
    return path.rsplit("/", 1)[-1]


# -- --chown and --chmod ------------------------------------------------------------------------


def parse_chown(spec: str) -> tuple[str, str]:
    """`--chown=user[:group]` as (user, group); the group is the user's name when omitted."""
    parts = spec.split(":")
    if len(parts) > 2:
        raise CopyError(f"invalid chown string format: {spec}", "use --chown=USER[:GROUP]")
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def _lookup(name: str, database: str | None, file: str, what: str) -> int:
    if re.fullmatch(r"[+-]?[0-9]+", name):
        return int(name)
    if database is None:
        raise CopyError(f"can't find {what} for {name}: the image has no {file}",
                        "use numeric ids with --chown")
    for line in database.split("\n"):
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdecimal():
            return int(fields[2])
    kind = "user" if file == "/etc/passwd" else "group"
    raise CopyError(f"can't find {what} for {kind} {name}: no such {kind}: {name}")


def resolve_chown(spec: str, passwd: str | None, group: str | None) -> tuple[int, int]:
    """`--chown`'s uid and gid, names looked up in the image's /etc/passwd and /etc/group
    texts (None when the image has none)."""
    user_name, group_name = parse_chown(spec)
    uid = _lookup(user_name, passwd, "/etc/passwd", "uid")
    gid = _lookup(group_name, group, "/etc/group", "gid")
    return uid, gid


def parse_chmod(spec: str) -> int:
    """`--chmod=0755` (octal, as BuildKit reads it)."""
    if not re.fullmatch(r"[0-7]{1,11}", spec) or int(spec, 8) > 0o7777:
        raise CopyError(f"invalid --chmod={spec}", "use an octal mode such as 0755 or 644")
    return int(spec, 8)


# -- local archives -----------------------------------------------------------------------------

_MAGIC = (("bzip2", b"BZh"), ("gzip", b"\x1f\x8b\x08"), ("xz", b"\xfd7zXZ\x00"),
          ("zstd", b"\x28\xb5\x2f\xfd"))
BLOCK = 512


def compression(head: bytes) -> str | None:
    """The compression a file starts with (Docker's compression.Detect), or None."""
    for name, magic in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 8 and int.from_bytes(head[:4], "little") & 0xFFFFFFF0 == 0x184D2A50:
        return "zstd"  # a skippable frame
    return None


def _decompress(head: bytes, kind: str, size: int) -> bytes:
    """The first `size` bytes of a compressed stream given its first bytes."""
    try:
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, size)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(head, size)
        if kind == "xz":
            return lzma.LZMADecompressor().decompress(head, size)
    except (zlib.error, OSError, EOFError, lzma.LZMAError):
        return b""
    return b""


def _octal(field: bytes) -> int | None:
    if field and field[0] & 0x80:  # GNU base-256
        return int.from_bytes(field[1:], "big")
    text = field.strip(b" \x00").split(b"\x00", 1)[0]
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def is_tar_header(block: bytes) -> bool:
    """Whether a 512-byte block is a tar header Go's archive/tar accepts (checksum right,
    numeric fields readable; an all-zero block is the end of an archive, not a header)."""
    if len(block) < BLOCK or block[:BLOCK] == bytes(BLOCK):
        return False
    block = block[:BLOCK]
    stored = _octal(block[148:156])
    blanked = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(blanked)
    signed = sum(b - 256 if b > 127 else b for b in blanked)
    if stored is None or stored not in (unsigned, signed):
        return False
    # mode, uid, gid, size, mtime must be numbers
    return all(_octal(block[start:end]) is not None
               for start, end in ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148)))


def is_archive(head: bytes) -> bool:
    """Whether a local file ADD would extract, from its first bytes (64 KiB is plenty):
    a tar, compressed or not. A zstd stream is reported as an archive without looking
    inside (the standard library cannot decompress it)."""
    kind = compression(head)
    if kind == "zstd":
        return True
    data = _decompress(head, kind, 2 * BLOCK) if kind else head
    return is_tar_header(data)
