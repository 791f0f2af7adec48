"""The layer store: layer tars checked, kept and extracted; directories packed as layers.

A layer is kept twice, both content-addressed by its diff id (the sha256 of its
uncompressed tar): the tar itself in `blobs/sha256/<diff id>` (so `save` writes the very
bytes the digest names) and its files in `layers/<diff id>/`, extracted by GNU tar into
a fresh directory of their own, which every image using the layer shares read-only.
`load` and `import` extract at once; `commit` writes only the tar, and its files are
extracted when a container is first created from it (`prepare_layer_dirs`). Images
committed by older versions have the files but no tar: `save` packs those again.

Before tar sees a layer, Python reads every member (`scan_layer`): no absolute names, no
`..`, nothing written through a symlink, no hard link leaving the layer, no device node
outside /dev. OCI/Docker whiteouts are not extracted by tar (`--exclude=.wh.*`): shellctr
makes overlayfs' own afterwards — `.wh.NAME` becomes a 0/0 character device `NAME`,
`.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory. Packing (commit,
straight from the container's upper dir) does the reverse.

Packing a directory as a layer (`commit`, `save` of an old layer) is in engine/pack.py.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from shellctr.core.cmd import Argv, path_arg
from shellctr.core.errors import ShellctrError
from shellctr.core.facts import process_start
from shellctr.core.host import Host, Rollback
from shellctr.core.layout import Layout

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTRS = "trusted.overlay."  # overlayfs' own bookkeeping: never part of a layer
TAR_FLAGS = [
    "--numeric-owner",  # owners are the image's uids, not names mapped through the host
    "--same-owner",
    "--preserve-permissions",  # modes exactly as in the image (setuid, sticky), no umask
    "--xattrs", "--xattrs-include=*",
    f"--xattrs-exclude={OVERLAY_XATTRS}*",  # a layer must not steer overlayfs
]
CHUNK = 1 << 20
EXTRACTIONS = 3  # pulled layers decompressed, checked and extracted at a time


@dataclass
class LayerScan:
    """What a layer tar holds, learnt before anything is extracted."""

    diff_id: str = ""  # sha256 of the uncompressed tar
    size: int = 0  # bytes of regular file content
    skipped: list[str] = field(default_factory=list)  # device nodes under dev/, not extracted
    whiteouts: list[str] = field(default_factory=list)  # paths the layer deletes
    opaque: list[str] = field(default_factory=list)  # dirs whose lower contents it hides
    tar_size: int = 0  # bytes of the uncompressed tar


class HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.stream.read(len(buffer))
        self.sha.update(data)
        self.count += len(data)
        buffer[: len(data)] = data
        return len(data)


COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


def compression_of(head: bytes) -> str | None:
    """gzip, bzip2, xz or None (a plain tar), from a stream's first bytes."""
    for magic, name in COMPRESSIONS.items():
        if head.startswith(magic):
            return name
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ShellctrError("zstd-compressed layers are not supported",
                            "decompress the layer (zstd -d) and try again")
    return None


def decompressing(stream: IO[bytes]) -> IO[bytes]:
    """`stream` as uncompressed bytes (plain, gzip, bzip2 or xz)."""
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(
        stream, CHUNK)
    kind = compression_of(buffered.peek(6)[:6])
    if kind == "gzip":
        import gzip
        return cast("IO[bytes]", gzip.GzipFile(fileobj=buffered, mode="rb"))
    if kind == "bzip2":
        import bz2
        return cast("IO[bytes]", bz2.BZ2File(buffered, "rb"))
    if kind == "xz":
        import lzma
        return cast("IO[bytes]", lzma.LZMAFile(buffered, "rb"))
    return cast("IO[bytes]", buffered)


def clean_name(name: str) -> str:
    """A member name as a normalized relative path, or an error for unsafe names."""
    if name.startswith("/"):
        raise ShellctrError(f"refusing layer: member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ShellctrError(f"refusing layer: member {name!r} climbs out with '..'")
    return "/".join(parts)


def scan_layer(path: Path, allow_empty: bool = False) -> LayerScan:
    """Check every member of the tar at `path` and compute its diff id and size.
    `allow_empty`: a tar of no members is a layer (a commit of no changes)."""
    with open(path, "rb") as raw:
        if compression_of(raw.read(6)) is not None:
            raw.seek(0)
            return scan_stream(raw)
        raw.seek(0)
        # a plain tar in a file: tarfile seeks over the contents, hashlib reads them in C
        scan = LayerScan()
        symlinks: set[str] = set()
        seen: set[str] = set()
        try:
            with tarfile.open(fileobj=raw, mode="r:") as archive:
                for member in archive:
                    check_member(member, seen, symlinks, scan)
                end = archive.offset
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ShellctrError(f"not a valid tar archive: {err}") from err
        # Python stops at the first zero or broken header; GNU tar may read on past it:
        # nothing but zeros may follow, or tar would extract members never checked
        raw.seek(end)
        while chunk := raw.read(CHUNK):
            if chunk.count(0) != len(chunk):
                raise ShellctrError("refusing layer: data after the end of the archive "
                                    f"(offset {end})", "the tar is corrupt or crafted")
        raw.seek(0)
        scan.diff_id = hashlib.file_digest(raw, "sha256").hexdigest()
        scan.tar_size = raw.tell()
    return _checked(scan, seen, allow_empty)


def scan_stream(raw: IO[bytes]) -> LayerScan:
    """Check every member of a (possibly compressed) layer tar read from `raw`."""
    scan = LayerScan()
    symlinks: set[str] = set()
    seen: set[str] = set()
    try:
        with decompressing(raw) as plain:
            hashing = HashingReader(plain)
            with tarfile.open(fileobj=io.BufferedReader(hashing, CHUNK), mode="r|",
                              bufsize=CHUNK) as archive:
                for member in archive:
                    check_member(member, seen, symlinks, scan)
            while hashing.read(CHUNK):  # the tar's padding belongs to the digest too
                pass
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ShellctrError(f"not a valid tar archive: {err}") from err
    scan.diff_id = hashing.sha.hexdigest()
    scan.tar_size = hashing.count
    return _checked(scan, seen)


def _checked(scan: LayerScan, seen: set[str], allow_empty: bool = False) -> LayerScan:
    """The checks that need the whole layer."""
    if not seen and not scan.whiteouts and not scan.opaque and not allow_empty:
        raise ShellctrError("not a valid tar archive: it holds no files")
    both = sorted(set(scan.whiteouts) & seen)
    if both:
        raise ShellctrError(f"refusing layer: {both[0]!r} is both a file and a whiteout")
    return scan


def check_member(member: tarfile.TarInfo, seen: set[str], symlinks: set[str],
                 scan: LayerScan) -> None:
    name = clean_name(member.name)
    parts = name.split("/")
    for depth in range(1, len(parts)):
        if "/".join(parts[:depth]) in symlinks:
            raise ShellctrError(
                f"refusing layer: member {member.name!r} would be written through the "
                f"symlink {'/'.join(parts[:depth])!r}"
            )
        if parts[depth - 1].startswith(WHITEOUT):
            raise ShellctrError(f"refusing layer: member {member.name!r} lies inside a whiteout")
    base, parent = parts[-1], "/".join(parts[:-1])
    if base.startswith(WHITEOUT):
        if not member.isfile():
            raise ShellctrError(f"refusing layer: whiteout {member.name!r} is not a plain file")
        if base == OPAQUE:
            scan.opaque.append(parent)
        elif not base.startswith(WHITEOUT + WHITEOUT):  # other .wh..wh. names: aufs' own
            target = base[len(WHITEOUT):]
            if target in ("", ".", ".."):
                raise ShellctrError(f"refusing layer: whiteout {member.name!r} names nothing")
            scan.whiteouts.append(f"{parent}/{target}" if parent else target)
        return
    if member.islnk():
        target = clean_name(member.linkname)
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


# -- bringing a layer into the store ---------------------------------------------------
class LayerSource:
    """Where a layer tar comes from: the command that writes it (uncompressed) to a
    file, as the trace shows it, the Python that does the same, and a way to read it."""

    def __init__(self, argv: Argv, copy: Callable[[BinaryIO], str | None],
                 open_raw: Callable[[], IO[bytes]], ready: Path | None = None) -> None:
        self.argv = argv  # `argv > FILE` writes the uncompressed tar
        self.copy = copy  # writes it to an open FILE; returns the sha256 of the bytes as given
        self.open_raw = open_raw  # the bytes as given (maybe compressed)
        self.ready = ready  # a file holding the uncompressed tar already: renamed, not copied


def file_source(path: Path, shown: Path | None = None) -> LayerSource:
    """A layer tar in a file of its own (plain, gzip, bzip2 or xz), read at `path`,
    named `shown` in the command (a --dry-run scratch file's stand-in is read)."""
    with open(path, "rb") as probe:
        kind = compression_of(probe.read(6))
    named = path_arg(shown or path)
    argv = ["cat", named] if kind is None else [kind, "--decompress", "--stdout", named]

    def copy(out: BinaryIO) -> str | None:
        with open(path, "rb") as src:
            return copy_stream(src, out, kind is not None)

    return LayerSource(argv, copy, lambda: open(path, "rb"))


def member_source(archive: Path, member: tarfile.TarInfo, compressed: bool,
                  shown: Path | None = None) -> LayerSource:
    """A layer tar stored as a member of an uncompressed archive (docker-archive, OCI),
    read at `archive`, named `shown` in the command (as file_source)."""
    named = path_arg(shown or archive)
    argv = ["tar", "--extract", "--to-stdout", f"--file={named}", member.name]
    if compressed:
        argv = ["sh", "-c", 'tar --extract --to-stdout --file="$1" "$2" | gzip -dc', "sh",
                named, member.name]

    def open_raw() -> IO[bytes]:
        stream = open(archive, "rb")  # noqa: SIM115 (closed with the _Range)
        stream.seek(member.offset_data)
        return cast("IO[bytes]", io.BufferedReader(_Range(stream, member.size), CHUNK))

    def copy(out: BinaryIO) -> str | None:
        if not compressed:  # in the kernel, no copy through Python
            with open(archive, "rb") as src:
                offset, left = member.offset_data, member.size
                while left:
                    try:
                        done = os.copy_file_range(src.fileno(), out.fileno(), left, offset)
                    except OSError as err:  # EXDEV: the archive on another filesystem
                        if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP,
                                             errno.EINVAL):
                            raise
                        done = out.write(os.pread(src.fileno(), min(left, CHUNK), offset))
                    if not done:
                        raise ShellctrError(f"{archive} is truncated in {member.name}")
                    offset, left = offset + done, left - done
            return None
        with open_raw() as src:
            return copy_stream(src, out, True)

    return LayerSource(argv, copy, open_raw)


class _Range(io.RawIOBase):
    """`size` bytes of `stream` from where it stands."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self.stream, self.left = stream, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.stream.read(min(len(buffer), self.left))
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.stream.close()
        super().close()


def copy_stream(src: IO[bytes], out: BinaryIO, decompress: bool) -> str:
    """Copy `src` (decompressed if asked) to `out`; sha256 of `src`'s bytes."""
    hashing = HashingReader(src)
    reader: IO[bytes] = io.BufferedReader(hashing, CHUNK)
    with decompressing(reader) if decompress else reader as plain:
        while chunk := plain.read(CHUNK):
            out.write(chunk)
    while hashing.read(CHUNK):  # trailing bytes after the compressed stream
        pass
    return hashing.sha.hexdigest()


def layer_present(layout: Layout, diff_id: str) -> bool:
    return layout.layer_dir(diff_id).is_dir() and layout.blob(diff_id).is_file()


# -- preparing a layer outside the lock, publishing it under it --------------------------
PARTIAL_PID = re.compile(r"[.-](\d+)\.partial$")


def pid_partial(directory: Path, stem: str) -> Path:
    """A temporary name in `directory` for this process's work in progress:
    `.STEM.PID.partial` (its pid tells `sweep_partials` whether it is abandoned)."""
    return directory / f".{stem}.{os.getpid()}.partial"


def sweep_partials(host: Host, layout: Layout) -> None:
    """Remove the partial tars (blobs/) and dirs (layers/) of shellctr processes that
    ended mid-way (a crash, a kill); a live process's are its work in progress. Under
    the lock, so that two sweeps do not race for one."""
    if host.dry_run:
        return  # not part of what the script would do
    for directory in (layout.blobs_dir, layout.layers_dir):
        for entry in sorted(os.listdir(directory)) if directory.is_dir() else []:
            if not (entry.startswith(".") and entry.endswith(".partial")):
                continue
            match = PARTIAL_PID.search(entry)
            if match is not None and process_start(int(match[1])) is not None:
                continue
            if (directory / entry).is_dir():
                host.remove_tree(directory / entry)
            else:
                host.remove_file(directory / entry)


@dataclass
class PreparedLayer:
    """A layer brought into the store under temporary names, not yet published."""

    scan: LayerScan
    source: LayerSource | None  # where it came from (to bring it in again if need be)
    tar: Path | None = None  # its checked tar (blobs/.DIFF.PID.partial); None: in place
    files: Path | None = None  # its extracted files (layers/.DIFF.PID.partial); None: idem


def prepare_layer(host: Host, layout: Layout, source: LayerSource, rollback: Rollback,
                  expect: str, digest: str | None = None) -> PreparedLayer:
    """The long part of bringing a layer into the store, done outside the store lock:
    its tar copied into `blobs/` and checked, its files extracted into a fresh directory
    in `layers/`, both under temporary names (`publish_layer` moves them into place).
    `expect`: the diff id it must have; `digest`: the sha256 its bytes as given must
    have (a compressed blob's). A layer already in the store is not copied again."""
    if layer_present(layout, expect) and not host.dry_run:
        return PreparedLayer(LayerScan(diff_id=expect, size=-1), source)
    partial = pid_partial(layout.blobs_dir, expect)
    if host.dry_run:  # nothing is copied: check the source itself
        with source.open_raw() as raw:
            scan = scan_stream(raw)
        host.produce(source.argv, partial, lambda out: None)
        given = scan.diff_id
    else:
        host.remove_file(partial)  # left by a crashed process that had our pid
        given = host.produce(source.argv, partial, lambda out: source.copy(out) or "",
                             rollback, ready=source.ready) or ""
        scan = scan_layer(partial)  # the copy in our store: nobody can change it meanwhile
        given = given or scan.diff_id
    if scan.diff_id != expect:
        raise ShellctrError(f"layer digest mismatch: expected sha256:{expect}, "
                            f"the archive holds sha256:{scan.diff_id}",
                            "the archive is corrupt")
    if digest and given != digest:
        raise ShellctrError(f"blob digest mismatch: expected sha256:{digest}, "
                            f"got sha256:{given}", "the archive is corrupt")
    files = None
    if not layout.layer_dir(expect).is_dir():
        files = extract_files(host, layout, scan, partial, rollback)
    return PreparedLayer(scan, source, partial, files)


def publish_layer(host: Host, layout: Layout, layer: PreparedLayer,
                  rollback: Rollback) -> None:
    """Under the store lock: move a prepared layer's tar and files into place, unless
    another process published the same layer meanwhile (then ours are dropped). A part
    that was there when we began and that an `rmi` removed since is brought in again
    (rare: the long work under the lock, once)."""
    diff_id = layer.scan.diff_id
    blob, final = layout.blob(diff_id), layout.layer_dir(diff_id)
    if layer.tar is None and not host.exists(blob):
        if layer.source is None:
            raise ShellctrError(f"layer sha256:{diff_id} was removed meanwhile",
                                "an rmi or prune ran at the same time: try again")
        again = prepare_layer(host, layout, layer.source, rollback, diff_id)
        layer.scan, layer.tar, layer.files = again.scan, again.tar, layer.files or again.files
    if layer.tar is not None:
        if host.exists(blob):
            host.remove_file(layer.tar)
        else:
            host.rename(layer.tar, blob, rollback=rollback)
    if layer.files is None and not host.exists(final):
        layer.files = extract_files(host, layout, layer.scan, blob, rollback)
    if layer.files is not None:
        if host.exists(final):
            host.remove_tree(layer.files)
        else:
            host.rename(layer.files, final, rollback=rollback)


def extract_files(host: Host, layout: Layout, scan: LayerScan, tar: Path,
                  rollback: Rollback) -> Path:
    """Extract the checked layer tar at `tar` into a fresh directory of its own in
    `layers/`, under a temporary name; that name."""
    partial = pid_partial(layout.layers_dir, scan.diff_id)
    host.remove_tree(partial)  # left by a crashed process that had our pid
    host.mkdir(partial, rollback=rollback)
    excludes = []
    if scan.whiteouts or scan.opaque:
        excludes += ["--wildcards", "--no-anchored", f"--exclude={WHITEOUT}*"]
    if scan.skipped:
        excludes += ["--anchored", "--no-wildcards", *(f"--exclude={n}" for n in scan.skipped)]
    host.run(["tar", "--extract", f"--file={path_arg(tar)}",
              f"--directory={path_arg(partial)}", *TAR_FLAGS, *excludes])
    for directory in scan.opaque:
        target = _ensure_dirs(host, partial, directory)
        host.set_xattr(target, OPAQUE_XATTR, "y")
    for name in scan.whiteouts:
        parent, _, base = name.rpartition("/")
        host.make_whiteout(_ensure_dirs(host, partial, parent) / base)
    return partial


def extract_layer(host: Host, layout: Layout, scan: LayerScan, rollback: Rollback) -> None:
    """Extract the checked tar `blobs/<diff id>` into `layers/<diff id>/`, unless there.
    Under the store lock (the whole work: see `prepare_layer` for the split)."""
    final = layout.layer_dir(scan.diff_id)
    if final.is_dir():
        return
    partial = extract_files(host, layout, scan, layout.blob(scan.diff_id), rollback)
    host.rename(partial, final, rollback=rollback)


Kept = dict[str, tuple[str, str]]  # diff id -> (its compressed blob's digest, media type)


def kept_blobs(layers: list[str], blobs: list[Any]) -> Kept:
    """The compressed blobs a pulled image keeps for its layers (`layer_blobs`, as
    records or their dicts), by diff id."""
    if len(layers) != len(blobs):
        return {}
    pairs = [(b["digest"], b["media_type"]) if isinstance(b, dict) else (b.digest, b.media_type)
             for b in blobs]
    return dict(zip(layers, pairs, strict=True))


def gunzip(src: IO[bytes], out: BinaryIO) -> None:
    """Decompress the gzip stream `src` into `out` with zlib itself (gzip.GzipFile's
    Python layer costs more than the inflating): several members are one stream, zero
    padding after the last is ignored, anything else refused (zlib.error)."""
    inflate = zlib.decompressobj(wbits=31)
    while chunk := src.read(CHUNK):
        while chunk:
            if inflate.eof:  # after a member: another one (zlib checks its header)
                if chunk.count(0) == len(chunk):  # or padding
                    break
                inflate = zlib.decompressobj(wbits=31)
            out.write(inflate.decompress(chunk))
            chunk = inflate.unused_data if inflate.eof else b""
    if not inflate.eof:
        raise EOFError("the gzip stream ends half-way")


def kept_source(host: Host, path: Path, media_type: str) -> LayerSource:
    """A pulled layer's compressed blob at `path`, kept as the registry served it (its
    digest checked when it came), as a layer source: decompressed by Python (gzip) or
    the zstd tool, shown as the command that does the same."""
    from shellctr.parts.registry import layer_compression

    compression = layer_compression(media_type)
    argv = {None: ["cat"], "gzip": ["gzip", "--decompress", "--stdout"],
            "zstd": ["zstd", "--decompress", "--stdout", "--quiet"]}[compression] + [
        path_arg(path)]

    def copy(out: BinaryIO) -> str | None:
        if compression == "zstd":  # no zstd in the standard library: the zstd tool
            host.pipe_into(argv, out)
            return None
        with open(path, "rb") as src:
            if compression == "gzip":
                gunzip(src, out)
            else:
                copy_stream(src, out, False)
        return None

    def open_raw() -> IO[bytes]:  # --dry-run: the layer is scanned from the blob
        if compression == "zstd":
            return host.probe_stream(argv[:-1], open(path, "rb"))
        return open(path, "rb")

    return LayerSource(argv, copy, open_raw)


def prepare_layer_dirs(host: Host, layout: Layout, diff_ids: list[str],
                       rollback: Rollback, kept: Kept | None = None
                       ) -> list[PreparedLayer]:
    """Outside the store lock: extract each layer whose files are not in `layers/` yet,
    from its tar in `blobs/` (a committed layer is kept as a tar only, until a container
    first uses it) or from the compressed blob a pull kept (`kept`: diff id -> blob;
    decompressed into its tar first, as `load` does), checked and its digest verified
    as when loaded, each into a fresh directory under a temporary name.
    `publish_layer` moves them into place."""
    prepared: dict[str, PreparedLayer] = {}
    pulled: list[tuple[str, str, str]] = []  # extracted from kept blobs, in threads
    kept = kept or {}
    for diff_id in dict.fromkeys(diff_ids):
        blob = layout.blob(diff_id)
        if host.exists(layout.layer_dir(diff_id)):
            continue
        if not blob.is_file():
            digest, media_type = kept.get(diff_id, ("", ""))
            if digest and layout.blob(digest).is_file():
                pulled.append((diff_id, digest, media_type))
            continue  # neither files nor tar nor blob: nothing to extract (start says so)
        hint = "remove the image and load or commit it again"
        host.step(f"extract layer sha256:{diff_id[:12]} on its first use")
        scan = scan_layer(blob, allow_empty=True)
        if scan.diff_id != diff_id:
            raise ShellctrError(f"layer {blob} is corrupt: it holds sha256:{scan.diff_id}",
                                hint)
        prepared[diff_id] = PreparedLayer(scan, None, None,
                                          extract_files(host, layout, scan, blob, rollback))

    def extract(item: tuple[str, str, str]) -> None:
        diff_id, digest, media_type = item
        host.step(f"extract layer sha256:{diff_id[:12]} on its first use")
        source = kept_source(host, layout.blob(digest), media_type)
        try:
            prepared[diff_id] = prepare_layer(host, layout, source, rollback, expect=diff_id)
        except (ShellctrError, OSError, EOFError, zlib.error) as err:
            # its digest matched when it came: the store's copy changed since
            raise ShellctrError(
                f"layer sha256:{diff_id[:12]} is corrupt in the store (its blob "
                f"{layout.blob(digest)}): {getattr(err, 'message', err)}",
                "remove the image and pull it again") from err

    if host.dry_run or len(pulled) < 2:  # a script in order
        for item in pulled:
            extract(item)
    else:
        from shellctr.engine.parallel import in_parallel

        in_parallel(extract, pulled, EXTRACTIONS)
    return [prepared[d] for d in dict.fromkeys(diff_ids) if d in prepared]


def _ensure_dirs(host: Host, top: Path, relative: str) -> Path:
    """`top/relative`, its missing directories made; never through a symlink."""
    path = top
    for part in [p for p in relative.split("/") if p]:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            # --parents: in a --dry-run script, tar may have made it by then
            host.ensure_dir(path, mode=0o755)
            continue
        if not stat.S_ISDIR(mode):
            raise ShellctrError(f"refusing layer: {relative!r} is not a directory in it")
    return path
