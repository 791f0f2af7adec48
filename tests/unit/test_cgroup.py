"""cgroup: the container's cgroups in a tmp dir standing in for /sys/fs/cgroup (v1 and v2):
their paths, creation and removal, the freezer, -m and the OOM counter."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from shellctr.core.errors import ShellctrError
from shellctr.core.facts import Facts
from shellctr.core.host import Rollback
from shellctr.core.layout import Layout
from shellctr.core.store import Store
from shellctr.engine import cgroup
from shellctr.engine.container import RunOptions, create, parse_memory, start
from shellctr.parts import cgroups

from .helpers import CID, GROUP, MONITOR_NAME, FakeInit, RecordingHost, install_image, q


def v1(root: Path, *controllers: str) -> None:
    for controller in controllers:
        (root / controller).mkdir()


def v2(root: Path) -> None:
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")


def test_no_hierarchy_no_cgroups(cgroup_root: Path) -> None:
    assert cgroup.container_cgroups(Facts(), GROUP) == []
    assert not cgroup.is_frozen(Facts(), GROUP) and not cgroup.oom_killed(Facts(), GROUP)
    assert cgroup.procs(Facts(), GROUP) == [] and not cgroup.has_cgroups(Facts(), GROUP)


def test_v1_has_a_cgroup_in_each_controller_it_uses(cgroup_root: Path) -> None:
    v1(cgroup_root, "cpu", "memory", "freezer", "pids")
    assert not cgroup.unified(Facts())
    assert cgroup.container_cgroups(Facts(), GROUP) == [
        cgroup_root / name / "shellctr" / CID for name in ("freezer", "memory", "cpu", "pids")]


def test_v1_joint_hierarchies_are_listed_once(cgroup_root: Path) -> None:
    (cgroup_root / "cpu,cpuacct").mkdir()
    for name in ("cpu", "cpuacct"):  # as systemd mounts them
        (cgroup_root / name).symlink_to("cpu,cpuacct")
    assert cgroup.container_cgroups(Facts(), GROUP) == [cgroup_root / "cpu" / "shellctr" / CID]


def test_v2_has_one(cgroup_root: Path) -> None:
    v2(cgroup_root)
    assert cgroup.unified(Facts())
    assert cgroup.container_cgroups(Facts(), GROUP) == [cgroup_root / "shellctr" / CID]


def test_create_and_remove(cgroup_root: Path) -> None:
    v1(cgroup_root, "freezer", "memory")
    host = RecordingHost()
    with Rollback(host) as rollback:
        paths = cgroup.create(host, GROUP, rollback)
    assert all(path.is_dir() for path in paths) and cgroup.has_cgroups(Facts(), GROUP)
    (paths[0] / "cgroup.procs").write_text("4242\n4243\n")
    assert cgroup.procs(Facts(), GROUP) == [4242, 4243]
    other = cgroup_root / "memory" / "shellctr" / ("e" * 64)
    other.mkdir()  # another container's: the memory parent stays
    host.reset()
    cgroup.remove(host, GROUP)
    assert host.lines == [f"rmdir {q(paths[0])}", f"rmdir {q(paths[0].parent)}",
                          f"rmdir {q(paths[1])}"]
    assert not cgroup.has_cgroups(Facts(), GROUP) and other.is_dir()
    cgroup.remove(host, GROUP)  # idempotent
    assert len(host.cmds) == 3


def test_a_failed_start_undoes_the_cgroups(cgroup_root: Path) -> None:
    v2(cgroup_root)
    host = RecordingHost()
    with pytest.raises(RuntimeError), Rollback(host) as rollback:
        cgroup.create(host, GROUP, rollback)
        raise RuntimeError("init failed")
    assert not (cgroup_root / "shellctr" / CID).exists()


def test_remove_waits_while_the_cgroup_is_busy(cgroup_root: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    v2(cgroup_root)
    (cgroup_root / "shellctr" / CID).mkdir(parents=True)
    host = RecordingHost()
    real = host.remove_cgroup
    tries: list[Path] = []

    def busy_twice(path: Path, *, if_unused: bool = False) -> None:
        tries.append(path)
        if len(tries) <= 2:  # the pid namespace's last processes are still exiting
            raise OSError(errno.EBUSY, "Device or resource busy")
        real(path, if_unused=if_unused)

    monkeypatch.setattr(host, "remove_cgroup", busy_twice)
    cgroup.remove(host, GROUP)
    assert len(tries) == 4  # 3 for the container's, then its parent
    assert not (cgroup_root / "shellctr").exists()


def test_remove_under_dry_run_shows_the_rmdir_once(cgroup_root: Path) -> None:
    v2(cgroup_root)
    mine = cgroup_root / "shellctr" / CID
    mine.mkdir(parents=True)
    host = RecordingHost(dry_run=True)
    cgroup.remove(host, GROUP)  # the cgroup stays: this must not loop
    assert host.lines == [f"rmdir {q(mine)}"]
    assert mine.is_dir()


def test_freeze_v1(cgroup_root: Path) -> None:
    v1(cgroup_root, "freezer", "memory")
    for path in cgroup.container_cgroups(Facts(), GROUP):
        path.mkdir(parents=True)
    host = RecordingHost()
    cgroup.freeze(host, GROUP, True)
    state = cgroup_root / "freezer" / "shellctr" / CID / "freezer.state"
    assert host.lines == [f"echo FROZEN > {q(state)}"] and cgroup.is_frozen(Facts(), GROUP)
    cgroup.freeze(host, GROUP, False)
    assert host.lines[-1] == f"echo THAWED > {q(state)}" and not cgroup.is_frozen(Facts(), GROUP)


def test_freeze_v2_waits_for_the_kernel_to_report_it(cgroup_root: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    v2(cgroup_root)
    mine = cgroup_root / "shellctr" / CID
    mine.mkdir(parents=True)
    (mine / "cgroup.events").write_text("populated 1\nfrozen 0\n")

    def kernel_freezes(seconds: float) -> None:  # the freezer is asynchronous
        (mine / "cgroup.events").write_text("populated 1\nfrozen 1\n")

    monkeypatch.setattr(time, "sleep", kernel_freezes)
    host = RecordingHost()
    cgroup.freeze(host, GROUP, True)
    assert host.lines == [f"echo 1 > {q(mine / 'cgroup.freeze')}"]
    assert cgroup.is_frozen(Facts(), GROUP)


def test_freeze_that_never_happens_is_an_error(cgroup_root: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    v2(cgroup_root)
    mine = cgroup_root / "shellctr" / CID
    mine.mkdir(parents=True)
    (mine / "cgroup.events").write_text("frozen 0\n")
    with pytest.raises(ShellctrError, match="the freezer did not freeze the container in time"):
        cgroup.wait_frozen(Facts(), GROUP, True, timeout=0.02)


@pytest.mark.parametrize(("text", "size"), [
    ("0", 0), ("1024", 1024), ("100b", 100), ("100k", 100 * 1024), ("512m", 512 << 20),
    ("512M", 512 << 20), ("512mb", 512 << 20), ("512MiB", 512 << 20), ("1g", 1 << 30),
    ("1.5G", 3 << 29), ("2t", 2 << 40), (" 64m ", 64 << 20),
])
def test_parse_size(text: str, size: int) -> None:
    assert cgroups.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "m", "-1m", "1x", "1 gigabyte", "1e3", "1,5g"])
def test_parse_size_errors(text: str) -> None:
    with pytest.raises(ShellctrError, match=f"^invalid size: {text!r}"):
        cgroups.parse_size(text)


def test_parse_memory_has_dockers_minimum() -> None:
    assert parse_memory(None) == 0
    assert parse_memory("0") == 0  # no limit, as Docker takes it
    assert parse_memory("6m") == cgroups.MIN_MEMORY == 6 << 20
    with pytest.raises(ShellctrError, match=r"^memory limit 5m is too small") as info:
        parse_memory("5m")
    assert info.value.hint == "the minimum memory limit allowed is 6MB"


def limit_memory(host: RecordingHost, memory: int) -> None:
    """`-m` alone: at most `memory` bytes of RAM, and as much swap again (Docker's default)."""
    for path, value in cgroup.knobs(Facts(), GROUP, {**cgroups.LIMIT_DEFAULTS, "memory": memory}):
        host.write_value(path, value)


@pytest.mark.parametrize("swap", [False, True])
def test_memory_limit_v1(cgroup_root: Path, swap: bool) -> None:
    v1(cgroup_root, "freezer", "memory")
    mine = cgroup_root / "memory" / "shellctr" / CID
    mine.mkdir(parents=True)
    if swap:  # only with swap accounting
        (mine / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    host = RecordingHost()
    limit_memory(host, 64 << 20)
    assert host.lines == [f"echo {64 << 20} > {q(mine / 'memory.limit_in_bytes')}",
                          *([f"echo {128 << 20} > {q(mine / 'memory.memsw.limit_in_bytes')}"]
                            if swap else [])]


def test_memory_limit_v2(cgroup_root: Path) -> None:
    v2(cgroup_root)
    mine = cgroup_root / "shellctr" / CID
    mine.mkdir(parents=True)
    (mine / "memory.swap.max").write_text("max\n")
    host = RecordingHost()
    limit_memory(host, 64 << 20)
    assert host.lines == [f"echo {64 << 20} > {q(mine / 'memory.max')}",
                          f"echo {64 << 20} > {q(mine / 'memory.swap.max')}"]


@pytest.mark.parametrize(("version", "text", "killed"), [
    ("v1", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", False),
    ("v1", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", True),
    ("v1", "oom_kill_disable 0\nunder_oom 0\n", False),  # an old kernel: no counter
    ("v2", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n", True),
    ("v2", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", False),
])
def test_oom_killed(cgroup_root: Path, version: str, text: str, killed: bool) -> None:
    if version == "v1":
        v1(cgroup_root, "freezer", "memory")
        mine = cgroup_root / "memory" / "shellctr" / CID
        name = "memory.oom_control"
    else:
        v2(cgroup_root)
        mine = cgroup_root / "shellctr" / CID
        name = "memory.events"
    mine.mkdir(parents=True)
    (mine / name).write_text(text)
    assert cgroup.oom_killed(Facts(), GROUP) is killed


@pytest.mark.usefixtures("fixed", "restore_signals")
def test_start_with_memory_sets_the_limit_and_the_end_reads_the_oom_counter(
        layout: Layout, cgroup_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1(cgroup_root, "freezer", "memory")
    mine = cgroup_root / "memory" / "shellctr" / CID
    install_image(layout)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit(code=137)})
    store = Store(layout, host)
    config = create(host, store, RunOptions("busybox", memory="64m"))
    assert config["memory"] == 64 << 20
    monkeypatch.setattr(cgroup, "oom_killed",
                        lambda facts, group: group == GROUP and mine.is_dir())
    assert start(host, store, config, attach=True) == 137
    assert f"echo {64 << 20} > {q(mine / 'memory.limit_in_bytes')}" in host.lines
    state = store.state_record(CID)
    assert (state["exit_code"], state["oom_killed"]) == (137, True)  # read before rmdir
    assert not mine.exists()


class Clock:
    """time.monotonic that moves half a second at each look."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


@pytest.mark.parametrize("unified", [True, False])
def test_remove_kills_what_is_still_in_the_cgroup_after_a_grace_second(
        cgroup_root: Path, monkeypatch: pytest.MonkeyPatch, unified: bool) -> None:
    if unified:
        v2(cgroup_root)
        mine = cgroup_root / "shellctr" / CID
        mine.mkdir(parents=True)
        (mine / "cgroup.kill").write_text("")
    else:
        v1(cgroup_root, "memory")
        mine = cgroup_root / "memory" / "shellctr" / CID
        mine.mkdir(parents=True)
    (mine / "cgroup.procs").write_text("4242\n4243\n")
    host = RecordingHost()
    real = host.remove_cgroup

    def busy_until_killed(path: Path, *, if_unused: bool = False) -> None:
        if path == mine and not any(line.startswith(("kill", "echo 1")) for line in host.lines):
            raise OSError(errno.EBUSY, "Device or resource busy")  # left by a crash
        real(path, if_unused=if_unused)

    monkeypatch.setattr(host, "remove_cgroup", busy_until_killed)
    monkeypatch.setattr(cgroup.time, "monotonic", Clock())
    monkeypatch.setattr(cgroup.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(os, "kill", lambda pid, signum: None)
    cgroup.remove(host, GROUP)
    killed = ([f"echo 1 > {q(mine / 'cgroup.kill')}"] if unified
              else ["kill -s KILL 4242", "kill -s KILL 4243"])
    assert host.lines == [*killed, f"rmdir {q(mine)}", f"rmdir {q(mine.parent)}"]


def test_make_cgroup_again_when_another_containers_end_took_the_parent(
        cgroup_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = cgroup_root / "freezer" / "shellctr" / CID
    real, raced = os.mkdir, []

    def racing(path: Path, mode: int = 0o777) -> None:
        if Path(path) == mine and not raced:  # the other end runs between the two mkdirs
            raced.append(path)
            os.rmdir(mine.parent)
        real(path, mode)

    monkeypatch.setattr(os, "mkdir", racing)
    RecordingHost().make_cgroup(mine)
    assert raced and mine.is_dir()


def test_make_cgroup_refuses_one_that_exists(cgroup_root: Path) -> None:
    mine = cgroup_root / "freezer" / "shellctr" / CID
    mine.mkdir(parents=True)
    with pytest.raises(FileExistsError):
        RecordingHost().make_cgroup(mine)
