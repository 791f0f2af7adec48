"""`cp` both ways, running and stopped containers, and hostile symlinks in the container."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Ctr, one_line_error, remove_all, run_detached, tree_listing

HOST_ETC = Path("/etc")


@pytest.fixture
def box(ctr: Ctr) -> Iterator[str]:
    """A running container with hostile links: /evil -> /etc, /up -> ../../../../..,
    /abs -> the host's /etc path written absolutely (the same as /evil inside)."""
    run_detached(ctr, "--name", "box", "busybox", "sh", "-c",
                 "ln -s /etc /evil; ln -s ../../../../.. /up; mkdir /data; "
                 "echo inside > /data/file; touch /ready; exec sleep 1000")
    ctr("exec", "box", "sh", "-c", "while [ ! -e /ready ]; do sleep 0.01; done").ok()
    yield "box"
    remove_all(ctr)


@pytest.fixture(params=["running", "stopped"])
def state(request: pytest.FixtureRequest, ctr: Ctr, box: str) -> str:
    if request.param == "stopped":
        ctr("stop", "-t", "0", box).ok()
    return str(request.param)


def read_inside(ctr: Ctr, box: str, *paths: str) -> str:
    """Files of the container as it sees them (stopped: through cp to stdout)."""
    out = []
    for path in paths:
        result = ctr("cp", f"{box}:{path}", "-", binary=True, trace=False).ok()
        with tarfile.open(fileobj=io.BytesIO(result.raw)) as archive:
            member = archive.next()
            assert member is not None and member.isfile(), path
            data = archive.extractfile(member)
            assert data is not None
            out.append(data.read().decode())
    return "".join(out)


def test_cp_both_ways(ctr: Ctr, box: str, state: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("A\n")
    (src / "sub" / "b").write_text("B\n")
    os.chown(src / "a", 1234, 1234)
    ctr("cp", str(src / "a"), f"{box}:/data/").ok()  # into an existing directory
    ctr("cp", str(src / "a"), f"{box}:/data/renamed").ok()  # to a new name
    ctr("cp", str(src), f"{box}:/data/").ok()  # a directory into a directory
    ctr("cp", f"{src}/.", f"{box}:/data/contents").ok()  # its contents, to a new dir
    assert read_inside(ctr, box, "/data/a", "/data/renamed", "/data/src/sub/b",
                       "/data/contents/sub/b") == "A\nA\nB\nB\n"
    out = tmp_path / "out"
    out.mkdir()
    ctr("cp", f"{box}:/data/file", str(out)).ok()
    ctr("cp", f"{box}:/data", str(out / "copy")).ok()
    assert (out / "file").read_text() == "inside\n"
    assert (out / "copy" / "src" / "sub" / "b").read_text() == "B\n"
    # into the container: owned by root; -a keeps the source's owner
    assert (out / "copy" / "a").stat().st_uid == 0
    ctr("cp", "-a", str(src / "a"), f"{box}:/data/kept").ok()
    ctr("cp", "-a", f"{box}:/data/kept", str(out / "kept")).ok()
    assert (out / "kept").stat().st_uid == 1234


def test_cp_tar_streams(ctr: Ctr, box: str, state: str, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("streamed/hello")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"hi\n"))
    ctr("cp", "-", f"{box}:/data", input=buffer.getvalue()).ok()
    assert read_inside(ctr, box, "/data/streamed/hello") == "hi\n"
    result = ctr("cp", f"{box}:/data", "-", binary=True, trace=False).ok()
    with tarfile.open(fileobj=io.BytesIO(result.raw)) as archive:
        names = archive.getnames()
    assert {"data", "data/file", "data/streamed/hello"} <= set(names)


def test_cp_never_follows_the_containers_links_onto_the_host(
        ctr: Ctr, box: str, state: str, tmp_path: Path) -> None:
    host_etc = tree_listing(HOST_ETC)
    payload = tmp_path / "payload"
    payload.write_text("owned\n")
    # writing through /evil and /up lands in the container's /etc and /, not the host's
    ctr("cp", str(payload), f"{box}:/evil/shellctr-cp-test").ok()
    ctr("cp", str(payload), f"{box}:/up/etc/shellctr-cp-test2").ok()
    ctr("cp", str(payload), f"{box}:/evil/../../../../shellctr-cp-test3").ok()
    assert tree_listing(HOST_ETC) == host_etc
    assert not Path("/shellctr-cp-test3").exists()
    assert read_inside(ctr, box, "/etc/shellctr-cp-test", "/etc/shellctr-cp-test2",
                       "/shellctr-cp-test3") == "owned\n" * 3
    # reading through them gives the container's files, never the host's
    out = tmp_path / "out"
    out.mkdir()
    ctr("cp", f"{box}:/evil/passwd", str(out / "passwd")).ok()
    ctr("cp", f"{box}:/up/etc/group", str(out / "group")).ok()
    assert (out / "passwd").read_text() == read_inside(ctr, box, "/etc/passwd")
    assert (out / "passwd").read_text() != (HOST_ETC / "passwd").read_text()
    assert (out / "group").read_text() == read_inside(ctr, box, "/etc/group")
    # the link itself is copied as a link (-L follows it, inside the container)
    ctr("cp", f"{box}:/evil", str(out)).ok()
    assert os.readlink(out / "evil") == "/etc"
    ctr("cp", "-L", f"{box}:/evil", str(out / "followed")).ok()
    assert (out / "followed" / "passwd").read_text() == (out / "passwd").read_text()


def test_cp_to_the_host_writes_nothing_through_links_in_what_it_copies(
        ctr: Ctr, box: str, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    # a directory in the container whose link points at a host path that exists
    ctr("exec", box, "sh", "-c", f"mkdir /trap && ln -s {victim} /trap/link").ok()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:  # a hostile stream, too
        link = tarfile.TarInfo("trap/link")
        link.type, link.linkname = tarfile.SYMTYPE, str(victim)
        archive.addfile(link)
        info = tarfile.TarInfo("trap/link/planted")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"x\n"))
    ctr("cp", "-", f"{box}:/", input=buffer.getvalue()).ok()
    ctr("cp", f"{box}:/trap", str(tmp_path / "out")).ok()
    assert os.readlink(tmp_path / "out" / "link") == str(victim)
    assert os.listdir(victim) == []  # the planted file went to the container's root
    assert ctr("exec", box, "cat", f"{victim}/planted").ok().out == "x\n"


def test_cp_errors(ctr: Ctr, box: str, tmp_path: Path) -> None:
    assert one_line_error(ctr("cp", f"{box}:/nope", str(tmp_path))) == \
        "shellctr: could not find the file /nope in the container"
    assert one_line_error(ctr("cp", str(tmp_path / "a"), str(tmp_path / "b"))).startswith(
        "shellctr: must specify at least one container source")
    (tmp_path / "file").write_text("x")
    assert one_line_error(ctr("cp", f"{box}:/data", str(tmp_path / "file"))).startswith(
        "shellctr: cannot copy a directory to a file")


def test_cp_stopped_container_leaves_no_mount(ctr: Ctr, box: str, tmp_path: Path) -> None:
    ctr("stop", "-t", "0", box).ok()
    ctr("cp", f"{box}:/data/file", str(tmp_path / "f")).ok()
    mounts = subprocess.run(["cat", "/proc/self/mountinfo"], capture_output=True, text=True,
                            check=True).stdout
    assert "/rootfs " not in mounts


def test_cp_into_a_read_only_volume_is_refused(ctr: Ctr, tmp_path: Path) -> None:
    run_detached(ctr, "--name", "ro", "-v", f"{tmp_path}:/data:ro", "busybox", "sleep", "1000")
    try:
        (tmp_path / "src").write_text("x")
        result = ctr("cp", str(tmp_path / "src"), "ro:/data/new")
        assert one_line_error(result) == "shellctr: cp failed: Read-only file system (new)"
        assert not (tmp_path / "new").exists()
    finally:
        remove_all(ctr)
