"""Paths resolved inside a root (inroot.py) and cp's tree walking and extraction
(copy.py): no symlink may lead outside the root. No root privileges needed."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shellctr.core.errors import ShellctrError
from shellctr.engine import copy
from shellctr.inside import inroot


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A small tree with hostile links; `outside` lies next to it, on the host."""
    top = tmp_path / "root"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "passwd").write_text("inside\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("host\n")
    os.symlink("/etc", top / "abs")
    os.symlink("../../../../../../outside", top / "rel")
    os.symlink(str(tmp_path / "outside"), top / "hostpath")
    os.symlink("loop", top / "loop")
    (top / "file").write_text("f")
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    yield top, fd
    os.close(fd)


@pytest.mark.parametrize(("path", "resolved"), [
    ("/abs/passwd", "/etc/passwd"),
    ("abs/../etc/passwd", "/etc/passwd"),
    ("/../../../etc", "/etc"),  # `..` stops at the root
    ("/rel", None),  # clamped: the root's own /outside (missing), not the host's
    ("/hostpath/secret", None),  # an absolute link is taken from the root
])
def test_resolve_stays_inside(root: tuple[Path, int], path: str,
                              resolved: str | None) -> None:
    _, fd = root
    if resolved is None:
        with pytest.raises(FileNotFoundError):
            inroot.resolve(fd, path)
    else:
        assert inroot.resolve(fd, path) == resolved


def test_resolve_creates_missing_components_inside(root: tuple[Path, int],
                                                   tmp_path: Path) -> None:
    top, fd = root
    assert inroot.resolve(fd, "/rel/a/b", create="dir") == "/outside/a/b"
    assert (top / "outside" / "a" / "b").is_dir()
    hostpath = str(tmp_path / "outside")
    assert inroot.resolve(fd, "/hostpath/x", create="file") == f"{hostpath}/x"
    assert (top / hostpath.lstrip("/") / "x").is_file()
    assert os.listdir(tmp_path / "outside") == ["secret"]  # the host's untouched


def test_resolve_refuses_loops_and_files_on_the_way(root: tuple[Path, int]) -> None:
    _, fd = root
    with pytest.raises(OSError, match="too many levels"):
        inroot.resolve(fd, "/loop/x", create="dir")
    with pytest.raises(NotADirectoryError):
        inroot.resolve(fd, "/file/x", create="dir")


def test_open_in_root_clamps_an_fd_lookup(root: tuple[Path, int]) -> None:
    _, fd = root
    opened = inroot.open_in_root(fd, "/abs/passwd", os.O_RDONLY)
    with os.fdopen(opened) as stream:
        assert stream.read() == "inside\n"


def test_copy_tree_copies_links_as_links(root: tuple[Path, int], tmp_path: Path) -> None:
    top, fd = root
    dst = tmp_path / "copy"
    dst.mkdir()
    os.chmod(top / "etc" / "passwd", 0o640)
    out = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        inroot.copy_tree(fd, out)
    finally:
        os.close(out)
    assert os.readlink(dst / "hostpath") == str(tmp_path / "outside")
    assert (dst / "etc" / "passwd").read_text() == "inside\n"
    assert (dst / "etc" / "passwd").stat().st_mode & 0o777 == 0o640
    assert not (dst / "hostpath").resolve().is_relative_to(dst)  # a link, not a copy of it


# -- cp ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("arg", "split"), [
    ("box:/etc/passwd", ("box", "/etc/passwd")),
    ("box:relative", ("box", "relative")),
    ("/host/path:with:colons", (None, "/host/path:with:colons")),
    ("./a:b", (None, "./a:b")),
    ("-", (None, "-")),
    ("dir/file:x", (None, "dir/file:x")),
])
def test_split_ref(arg: str, split: tuple[str | None, str]) -> None:
    assert copy.split_ref(arg) == split


def entries(*members: tuple[str, bytes, str | bytes]) -> Iterator[copy.Entry]:
    for name, kind, extra in members:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, 0o644, 1_700_000_000
        data = None
        if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            info.linkname = str(extra)
        elif isinstance(extra, bytes):
            info.size, data = len(extra), io.BytesIO(extra)
        yield info, data


def test_extract_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    fd = os.open(dest, inroot.O_PATH | os.O_DIRECTORY)
    owner = (os.getuid(), os.getgid())
    try:
        copy.extract(entries(("link", tarfile.SYMTYPE, str(outside)),
                             ("link/planted", tarfile.REGTYPE, b"x"),
                             ("up", tarfile.SYMTYPE, "../outside"),
                             ("up/planted2", tarfile.REGTYPE, b"y"),
                             ("hard", tarfile.LNKTYPE, "up/planted2")),
                     fd, "/", owner, to_host=True)
        with pytest.raises(ShellctrError, match="invalid name in the archive"):
            copy.extract(entries(("../escape", tarfile.REGTYPE, b"z")), fd, "/", owner, True)
    finally:
        os.close(fd)
    assert os.listdir(outside) == []
    assert (dest / str(outside).lstrip("/") / "planted").read_bytes() == b"x"
    assert (dest / "outside" / "planted2").read_bytes() == b"y"
    assert (dest / "hard").read_bytes() == b"y"
    assert os.readlink(dest / "link") == str(outside)


def test_walk_reads_links_as_links(root: tuple[Path, int]) -> None:
    top, _ = root
    parent = os.open(top.parent, inroot.O_PATH | os.O_DIRECTORY)
    try:
        found = {info.name: (info.type, info.linkname) for info, data in
                 copy.walk(parent, "root", "root") if data is None or data.close() is None}
    finally:
        os.close(parent)
    assert found["root/abs"] == (tarfile.SYMTYPE, "/etc")
    assert found["root/hostpath"][0] == tarfile.SYMTYPE
    assert "root/hostpath/secret" not in found
    assert found["root/etc/passwd"] == (tarfile.REGTYPE, "")
