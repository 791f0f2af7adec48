"""The default `busybox` image, made from the host's static busybox: a rootfs tar of the
binary, its applet links, `/etc/passwd` and `/etc/group`, imported as one layer.

`python -m shellctr.engine.busybox BUSYBOX` writes that tar to stdout: the command a
`--dry-run` script runs for it."""

from __future__ import annotations

import io
import os
import posixpath
import sys
import tarfile
from pathlib import Path
from typing import IO, BinaryIO

from shellctr.core.cmd import Argv, path_arg
from shellctr.core.errors import NotFound, ShellctrError
from shellctr.core.host import Host
from shellctr.core.state import Image
from shellctr.core.store import Store
from shellctr.engine.image import import_image

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


def tar_argv(busybox: Path) -> Argv:
    """The command that writes the busybox rootfs tar to stdout (see `busybox_rootfs_tar`)."""
    from shellctr.core.layout import CHECKOUT as top  # this checkout, ahead of any install
    return ["env", f"PYTHONPATH={path_arg(top)}", sys.executable, "-m",
            "shellctr.engine.busybox", path_arg(busybox)]


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
    applets = listing.splitlines()

    def write(out: BinaryIO) -> None:
        busybox_rootfs_tar(busybox, applets, out)

    tar_path = store.layout.tmp_dir / f"shellctr-busybox-{os.getpid()}.tar"
    with host.scratch_file(tar_argv(busybox), tar_path, write) as tar_path:
        # the image's time is the busybox binary's, as its files' are: a reproducible build
        from datetime import UTC, datetime

        mtime = datetime.fromtimestamp(int(os.stat(busybox).st_mtime), UTC)
        return import_image(host, store, tar_path, ['CMD ["sh"]'], ref,
                            comment=f"built from the host's {busybox}",
                            created=mtime.strftime("%Y-%m-%dT%H:%M:%SZ"))


if __name__ == "__main__":  # the rootfs tar of the busybox named by argv[1], to stdout
    status, listed, _ = Host().probe([sys.argv[1], "--list-full"])
    if status != 0:
        sys.exit(f"{sys.argv[1]} --list-full failed")
    busybox_rootfs_tar(Path(sys.argv[1]), listed.splitlines(), sys.stdout.buffer)
