"""Packing a directory as a layer tar: `commit` (straight from the container's upper
dir: overlay whiteouts and opaque dirs become OCI ones) and `save` of a layer kept as
files only. The same files give the same bytes, so a layer packed again keeps its digest.

`python -m shellctr.engine.pack pack DIR [--skip=NAME]... > FILE` packs a directory as
`commit` does, and `... decompress [FILE] > PLAIN` writes a (maybe compressed) archive
uncompressed, as `load` spools it: the commands the traces and dry-run scripts show."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, cast

from shellctr.core.cmd import Argv, path_arg
from shellctr.core.errors import ShellctrError
from shellctr.core.layout import Layout
from shellctr.engine.layers import (
    CHUNK,
    OPAQUE,
    OPAQUE_XATTR,
    OVERLAY_XATTRS,
    WHITEOUT,
    LayerScan,
    decompressing,
)


def pack_argv(directory: Path, skips: list[str]) -> Argv:
    """The command that packs `directory` as a layer tar on stdout (see `pack`)."""
    from shellctr.core.layout import CHECKOUT as top  # this checkout, ahead of any install
    return ["env", f"PYTHONPATH={path_arg(top)}", sys.executable, "-m",
            "shellctr.engine.pack", "pack", path_arg(directory),
            *(f"--skip={name}" for name in skips)]


def pack(directory: Path, out: IO[bytes], skip: Callable[[str], bool] = lambda name: False,
         ) -> LayerScan:
    """Write `directory` (an overlay upper dir, or a committed layer's dir: the same
    files give the same bytes) as a layer tar to `out`, in name order:
    whiteouts (0/0 char devices) as `.wh.NAME`, opaque dirs with `.wh..wh..opq`, hard
    links as links, xattrs (but overlayfs' own) as PAX records, owners numeric.
    `skip(name)` leaves a path out. Returns what the tar holds and its diff id."""
    scan = LayerScan()
    writer = _TarWriter(out)
    _pack_dir(writer, directory, "", scan, {}, skip)
    writer.close()
    scan.diff_id, scan.tar_size = writer.sha.hexdigest(), writer.size
    return scan


class _TarWriter:
    """Writes tar members exactly as `tarfile.TarFile(format=PAX_FORMAT)` does (the same
    bytes: layers packed by earlier versions keep their digests), hashing them on the
    way, in one pass. Headers and small files are gathered and written in large
    pieces; file contents are read into one reused buffer (no copy per chunk)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0  # bytes written
        self.pending = bytearray()
        self.buffer = memoryview(bytearray(CHUNK))

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self.sha.update(data)
        self.out.write(data)
        self.size += len(data)

    def _flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = bytearray()

    def add(self, info: tarfile.TarInfo, fd: int = -1) -> None:
        """One member; `fd`: its contents (`info.size` bytes), for a regular file."""
        self.pending += info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
        left = info.size if fd >= 0 else 0
        while left:
            done = os.readv(fd, [self.buffer[:min(left, CHUNK)]])
            if not done:
                raise ShellctrError(f"{info.name} shrank while it was packed")
            if len(self.pending) + done <= CHUNK:
                self.pending += self.buffer[:done]
            else:
                self._flush()
                self._emit(self.buffer[:done])
            left -= done
        if fd >= 0 and info.size % tarfile.BLOCKSIZE:
            self.pending += bytes(tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
        if len(self.pending) >= CHUNK:
            self._flush()

    def close(self) -> None:
        """The end-of-archive blocks and the padding to a whole record, as tarfile's."""
        self.pending += bytes(2 * tarfile.BLOCKSIZE)
        written = self.size + len(self.pending)
        if written % tarfile.RECORDSIZE:
            self.pending += bytes(tarfile.RECORDSIZE - written % tarfile.RECORDSIZE)
        self._flush()
        if hasattr(self.out, "flush"):
            self.out.flush()


class _Sink:
    """A file that keeps nothing: for learning a tar's digest and size."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def digest_dir(directory: Path, skip: Callable[[str], bool] = lambda name: False,
               ) -> LayerScan:
    """What packing `directory` gives (digest, size, whiteouts), writing nothing."""
    return pack(directory, cast("IO[bytes]", _Sink()), skip)


def layer_tar_size(layout: Layout, diff_id: str) -> int:
    """Bytes of a layer's tar: its blob, or (committed by an older shellctr) its files
    packed."""
    blob = layout.blob(diff_id)
    if blob.is_file():
        return blob.stat().st_size
    return digest_dir(layout.layer_dir(diff_id)).tar_size


def _info(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, stat.S_IMODE(st.st_mode)
    info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
    info.mtime = int(st.st_mtime)
    return info


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:  # a filesystem without xattrs
        return {}
    return {f"SCHILY.xattr.{name}":
            os.getxattr(path, name, follow_symlinks=False).decode("utf-8", "surrogateescape")
            for name in sorted(names) if not name.startswith(OVERLAY_XATTRS)}


def _pack_dir(archive: _TarWriter, top: Path, prefix: str, scan: LayerScan,
              inodes: dict[tuple[int, int], str], skip: Callable[[str], bool]) -> None:
    with os.scandir(top / prefix if prefix else top) as entries:
        names = sorted(entry.name for entry in entries)
    for base in names:
        name = f"{prefix}/{base}" if prefix else base
        if skip(name):
            continue
        path = path_arg(top / name)
        st = os.lstat(path)
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == os.makedev(0, 0):  # an overlay whiteout
            info = _info(f"{prefix}/{WHITEOUT}{base}" if prefix else WHITEOUT + base, st,
                         tarfile.REGTYPE)
            archive.add(info)
            scan.whiteouts.append(name)
            continue
        if stat.S_ISDIR(mode):
            info = _info(name, st, tarfile.DIRTYPE)
            info.pax_headers = _xattrs(path)
            archive.add(info)
            try:
                opaque = os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
            except OSError:
                opaque = False
            if opaque:
                archive.add(_info(f"{name}/{OPAQUE}", st, tarfile.REGTYPE))
                scan.opaque.append(name)
            _pack_dir(archive, top, name, scan, inodes, skip)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in inodes:
                info = _info(name, st, tarfile.LNKTYPE)
                info.linkname = inodes[key]
                archive.add(info)
                continue
            inodes[key] = name
            info = _info(name, st, tarfile.REGTYPE)
            info.size = st.st_size
            info.pax_headers = _xattrs(path)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                archive.add(info, fd)
            finally:
                os.close(fd)
            scan.size += st.st_size
        elif stat.S_ISLNK(mode):
            info = _info(name, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(path)
            archive.add(info)
        elif stat.S_ISFIFO(mode):
            archive.add(_info(name, st, tarfile.FIFOTYPE))
        # device nodes and sockets are not image content: /dev is a tmpfs in containers


def main(argv: list[str]) -> int:
    """What the traces of commit and load show: `python -m shellctr.engine.pack pack DIR
    [--skip=NAME]... > FILE` writes a layer tar; `... decompress [FILE] > PLAIN` writes FILE
    (or stdin) uncompressed, whatever its compression."""
    if argv[:1] == ["decompress"] and len(argv) <= 2:
        import shutil
        named = len(argv) == 2
        with open(argv[1] if named else sys.stdin.fileno(), "rb", closefd=named) as source:
            shutil.copyfileobj(decompressing(source), sys.stdout.buffer, CHUNK)
        return 0
    skips = {arg.removeprefix("--skip=") for arg in argv[2:] if arg.startswith("--skip=")}
    if len(argv) < 2 or argv[0] != "pack" or len(skips) != len(argv) - 2:
        sys.stderr.write("usage: python -m shellctr.engine.pack pack DIR [--skip=NAME]... >FILE\n"
                         "       python -m shellctr.engine.pack decompress [FILE] >PLAIN\n")
        return 2
    pack(Path(argv[1]), sys.stdout.buffer, lambda name: name in skips)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
