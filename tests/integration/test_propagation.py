"""Bind propagation modes (`-v SRC:DST:rslave`, `bind-propagation=`): host mounts made
under SRC after the start reach an [r]slave bind only, nothing the container mounts
reaches the host, and modes that cannot be honoured are refused before anything exists.

Each test makes its own host mounts (a tmpfs made shared, or private) under its tmp_path
and unmounts them in `finally`, whatever happened.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Ctr, host_mounts_under, inspect, one_line_error, run_detached, wait_for


def host(*argv: str) -> None:
    subprocess.run(argv, check=True, timeout=30)


@pytest.fixture
def shared_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs on the host made shared: binds from it can be slaves (as on systemd hosts,
    where / is shared; here / may well be private)."""
    yield from tmpfs_made(tmp_path, "shared")


@pytest.fixture
def private_tmpfs(tmp_path: Path) -> Iterator[Path]:
    yield from tmpfs_made(tmp_path, "private")


def tmpfs_made(tmp_path: Path, propagation: str) -> Iterator[Path]:
    """A tmpfs mounted on the host at tmp_path/PROPAGATION, made so; unmounted after."""
    base = tmp_path / propagation
    base.mkdir()
    host("mount", "--types", "tmpfs", f"shellctr-test-{propagation}", str(base))
    try:
        host("mount", f"--make-{propagation}", str(base))
        yield base
    finally:
        host("umount", "--recursive", str(base))


def mount_points(pid: int) -> dict[str, list[str]]:
    """The container's mounts, as its own mount table shows them: point -> optional fields
    (`shared:N`, `master:N`)."""
    found = {}
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as stream:
        for line in stream:
            fields = line.split()
            found[fields[4]] = fields[6:fields.index("-", 6)]
    return found


def test_host_mounts_after_the_start_reach_rslave_binds_only(
        ctr: Ctr, shared_tmpfs: Path) -> None:
    source = shared_tmpfs / "src"
    (source / "sub").mkdir(parents=True)
    slave = run_detached(ctr, "-v", f"{source}:/mnt:rslave", "busybox", "sleep", "1000")
    private = run_detached(ctr, "-v", f"{source}:/mnt", "busybox", "sleep", "1000")
    try:
        host("mount", "--types", "tmpfs", "shellctr-test-sub", str(source / "sub"))
        try:
            (source / "sub" / "marker").write_text("from the host\n")
            wait_for(lambda: ctr("exec", slave, "cat", "/mnt/sub/marker").code == 0,
                     "the host's new mount in the rslave container")
            assert ctr("exec", slave, "cat", "/mnt/sub/marker").ok().out == "from the host\n"
            assert "/mnt/sub" in ctr("exec", slave, "cat", "/proc/mounts").ok().out
            # propagation is done by the host's mount(2) itself: the default bind is
            # rprivate, so its container never gets it
            assert "/mnt/sub" not in ctr("exec", private, "cat", "/proc/mounts").ok().out
            assert ctr("exec", private, "ls", "/mnt/sub").ok().out == ""
        finally:
            host("umount", str(source / "sub"))
        wait_for(lambda: "/mnt/sub" not in ctr("exec", slave, "cat", "/proc/mounts").ok().out,
                 "the host's unmount in the rslave container")
        assert inspect(ctr, slave)["Mounts"][0]["Propagation"] == "rslave"
    finally:
        ctr("rm", "-f", slave, private).ok()
    assert host_mounts_under(shared_tmpfs) == [str(shared_tmpfs)]


def test_only_the_slave_bind_receives_and_nothing_the_container_mounts_leaves_it(
        ctr: Ctr, shared_tmpfs: Path) -> None:
    for name in ("src", "other", "src/inner", "other/inner"):
        (shared_tmpfs / name).mkdir()
    cid = run_detached(ctr, "--mount", f"type=bind,source={shared_tmpfs / 'src'},target=/mnt,"
                       "bind-propagation=slave", "-v", f"{shared_tmpfs / 'other'}:/data",
                       "-v", "/data/vol", "--tmpfs", "/mnt/t", "busybox", "sleep", "1000")
    try:
        pid = inspect(ctr, cid)["State"]["Pid"]
        points = mount_points(pid)
        assert points["/mnt"] == [next(f for f in points["/mnt"] if f.startswith("master:"))]
        # the rootfs, /proc, /dev, /sys, the /etc files, the rprivate bind and its
        # volume, and the tmpfs mounted inside the slave bind: all private
        for point in ("/", "/proc", "/dev", "/sys", "/etc/hosts", "/data", "/data/vol",
                      "/mnt/t"):
            assert points[point] == [], (point, points)
        assert not any(fields for point, fields in points.items() if point != "/mnt")
        # a mount made in the container's namespace (as root, from the host: the
        # container has no CAP_SYS_ADMIN) stays there
        for inner in ("/mnt/inner", "/data/inner"):
            host("nsenter", f"--target={pid}", "--mount", "--", "/bin/busybox", "mount",
                 "-t", "tmpfs", "shellctr-test-inner", inner)
        assert "/mnt/inner" in ctr("exec", cid, "cat", "/proc/mounts").ok().out
        assert host_mounts_under(shared_tmpfs) == [str(shared_tmpfs)]
    finally:
        ctr("rm", "-f", "-v", cid).ok()
    assert host_mounts_under(shared_tmpfs) == [str(shared_tmpfs)]


@pytest.mark.parametrize("flag", ["-v {}:/mnt:rslave",
                                  "--mount type=bind,src={},dst=/mnt,bind-propagation=slave"])
def test_slave_from_a_private_host_mount_is_refused_as_docker_does(
        ctr: Ctr, private_tmpfs: Path, flag: str) -> None:
    source = private_tmpfs / "missing"  # -v would create it: it must not
    option, value = flag.format(source if flag.startswith("-v") else private_tmpfs).split()
    error = one_line_error(ctr("run", "--rm", option, value, "busybox", "true"))
    path = source if flag.startswith("-v") else private_tmpfs
    assert f"path {path} is mounted on {private_tmpfs} but it is not a shared or slave " \
           "mount" in error
    assert ctr.container_ids() == [] and not source.exists()


@pytest.mark.parametrize("mode", ["shared", "rshared"])
def test_shared_propagation_is_refused(ctr: Ctr, shared_tmpfs: Path, mode: str) -> None:
    error = one_line_error(ctr("run", "--rm", "-v", f"{shared_tmpfs}/new:/mnt:{mode}",
                               "busybox", "true"))
    assert f"bind propagation {mode} is not supported" in error
    assert ctr.container_ids() == [] and not (shared_tmpfs / "new").exists()
