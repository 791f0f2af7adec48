"""Resource limits: the flags as config values, checked against the host, and the knobs
they write in fake cgroupfs trees laid out like v1 and like v2."""

from __future__ import annotations

from pathlib import Path

import pytest

from shellctr.core import facts
from shellctr.core.errors import ShellctrError
from shellctr.core.facts import Facts
from shellctr.core.host import Rollback
from shellctr.core.layout import Layout
from shellctr.core.store import Store
from shellctr.engine import cgroup, containers
from shellctr.engine.create import create
from shellctr.parts import cgroups

from .helpers import CID, GROUP, RecordingHost, install_image, q, run_request

V1 = ("freezer", "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices")


@pytest.fixture
def v1(cgroup_root: Path) -> Path:
    """A 2-CPU v1 host, each controller in its own hierarchy, swap accounting on."""
    for name in V1:
        (cgroup_root / name).mkdir()
    (cgroup_root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (cgroup_root / "cpuset" / "cpuset.effective_cpus").write_text("0-1\n")
    (cgroup_root / "cpuset" / "cpuset.mems").write_text("0\n")
    (cgroup_root / "cpuset" / "cpuset.effective_mems").write_text("0\n")
    return cgroup_root


@pytest.fixture
def v2(cgroup_root: Path) -> Path:
    (cgroup_root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (cgroup_root / "cgroup.subtree_control").write_text("memory\n")  # as systemd leaves it
    (cgroup_root / "cpuset.cpus.effective").write_text("0-1\n")
    (cgroup_root / "cpuset.mems.effective").write_text("0\n")
    return cgroup_root


def limits(**flags: str | bool) -> dict[str, object]:
    return cgroup.parse_limits(Facts(), dict(flags))


def writes(**flags: str | bool) -> list[tuple[str, str]]:
    """The (knob relative to the cgroupfs root, value) writes the flags make."""
    return [(str(path.relative_to(facts.CGROUP_ROOT)).replace(CID, "ID"), value)
            for path, value in cgroup.knobs(Facts(), GROUP, limits(**flags))]


def test_flags_become_config_values(v1: Path) -> None:
    assert limits(memory="64m", memory_swap="-1", memory_reservation="32m", cpus="1.5",
                  cpu_shares="512", cpuset_cpus="0-1", cpuset_mems="0", pids_limit="-1",
                  oom_kill_disable=True) == {
        "memory": 64 << 20, "memory_swap": -1, "memory_reservation": 32 << 20,
        "oom_kill_disable": True, "cpu_shares": 512, "cpu_period": 100000,
        "cpu_quota": 150000, "cpuset_cpus": "0-1", "cpuset_mems": "0", "pids_limit": 0}
    assert limits() == cgroups.LIMIT_DEFAULTS


@pytest.mark.parametrize(("flags", "knobs"), [
    ({"memory": "64m"}, [("memory/shellctr/ID/memory.limit_in_bytes", str(64 << 20))]),
    ({"memory_reservation": "8m"},
     [("memory/shellctr/ID/memory.soft_limit_in_bytes", str(8 << 20))]),
    ({"memory": "16m", "oom_kill_disable": True},
     [("memory/shellctr/ID/memory.limit_in_bytes", str(16 << 20)),
      ("memory/shellctr/ID/memory.oom_control", "1")]),
    ({"cpus": "0.5"}, [("cpu/shellctr/ID/cpu.cfs_period_us", "100000"),
                       ("cpu/shellctr/ID/cpu.cfs_quota_us", "50000")]),
    ({"cpu_period": "50000", "cpu_quota": "25000"},
     [("cpu/shellctr/ID/cpu.cfs_period_us", "50000"),
      ("cpu/shellctr/ID/cpu.cfs_quota_us", "25000")]),
    ({"cpu_shares": "512"}, [("cpu/shellctr/ID/cpu.shares", "512")]),
    ({"cpuset_cpus": "1", "cpuset_mems": "0"}, [("cpuset/shellctr/ID/cpuset.cpus", "1"),
                                                ("cpuset/shellctr/ID/cpuset.mems", "0")]),
    ({"pids_limit": "20"}, [("pids/shellctr/ID/pids.max", "20")]),
    ({"pids_limit": "0"}, []),
])
def test_v1_knobs(v1: Path, flags: dict[str, str], knobs: list[tuple[str, str]]) -> None:
    got = writes(**flags)
    # the cpuset is never left empty: the parent's (else the root's) unless given
    inherited = [("cpuset/shellctr/ID/cpuset.cpus", "0-1"), ("cpuset/shellctr/ID/cpuset.mems", "0")]
    if "cpuset_cpus" not in flags:
        assert all(write in got for write in inherited)
        got = [write for write in got if write not in inherited]
    assert got == knobs


@pytest.mark.parametrize(("swap", "memsw"), [
    (None, str(128 << 20)), ("-1", "-1"), ("100m", str(100 << 20))])
def test_v1_memory_swap(v1: Path, swap: str | None, memsw: str) -> None:
    mine = v1 / "memory" / "shellctr" / CID
    mine.mkdir(parents=True)
    (mine / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    flags = {"memory": "64m", **({"memory_swap": swap} if swap else {})}
    assert writes(**flags)[:2] == [("memory/shellctr/ID/memory.limit_in_bytes", str(64 << 20)),
                                   ("memory/shellctr/ID/memory.memsw.limit_in_bytes", memsw)]
    # update: memsw lifted first, so that a limit above the old memsw is accepted
    update = cgroup.knobs(Facts(), GROUP, limits(**flags), fresh=False)
    assert [value for _, value in update[:3]] == ["-1", str(64 << 20), memsw]


@pytest.mark.parametrize(("flags", "knobs"), [
    ({"memory": "64m"}, [("memory.max", str(64 << 20)), ("memory.swap.max", str(64 << 20))]),
    ({"memory": "64m", "memory_swap": "-1"},
     [("memory.max", str(64 << 20)), ("memory.swap.max", "max")]),
    ({"memory": "64m", "memory_swap": "100m"},
     [("memory.max", str(64 << 20)), ("memory.swap.max", str(36 << 20))]),
    ({"memory_reservation": "8m"}, [("memory.low", str(8 << 20))]),
    ({"cpus": "0.5"}, [("cpu.max", "50000 100000")]),
    ({"cpus": "0"}, [("cpu.max", "max 100000")]),
    ({"cpu_quota": "20000"}, [("cpu.max", "20000 100000")]),
    ({"cpu_shares": "1024"}, [("cpu.weight", "39")]),
    ({"cpuset_cpus": "0-1", "cpuset_mems": "0"},
     [("cpuset.cpus", "0-1"), ("cpuset.mems", "0")]),
    ({"pids_limit": "20"}, [("pids.max", "20")]),
])
def test_v2_knobs(v2: Path, flags: dict[str, str], knobs: list[tuple[str, str]]) -> None:
    mine = v2 / "shellctr" / CID
    mine.mkdir(parents=True)
    (mine / "memory.swap.max").write_text("max\n")
    assert writes(**flags) == [(f"shellctr/ID/{name}", value) for name, value in knobs]


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (512, 20), (262144, 10000)])
def test_cpu_weight_as_runc_converts_it(shares: int, weight: int) -> None:
    assert cgroups.cpu_weight(shares) == weight


def test_v1_create_copies_the_cpuset_down(v1: Path) -> None:
    host = RecordingHost()
    with Rollback(host) as rollback:
        cgroup.create(host, GROUP, rollback, limits(pids_limit="20"))
    parent = v1 / "cpuset" / "shellctr"
    assert f"echo 0-1 > {q(parent / 'cpuset.cpus')}" in host.lines
    assert f"echo 0 > {q(parent / 'cpuset.mems')}" in host.lines
    assert (parent / CID / "cpuset.cpus").read_text() == "0-1"
    assert (v1 / "pids" / "shellctr" / CID / "pids.max").read_text() == "20"
    assert len(cgroup.container_cgroups(Facts(), GROUP)) == len(V1)  # exec joins every one
    host.reset()
    with Rollback(host) as rollback:  # the parent has its cpuset now: not written again
        cgroup.create(host, "f" * 64, rollback)
    assert not any("shellctr/cpuset" in line for line in host.lines)


def test_v1_dry_run_makes_shellctrs_parent_even_while_it_exists(v1: Path) -> None:
    """Another container's end may remove the parent before the script is run."""
    parent = v1 / "cpuset" / "shellctr"
    parent.mkdir()
    (parent / "cpuset.cpus").write_text("0-1\n")
    (parent / "cpuset.mems").write_text("0\n")
    host = RecordingHost(dry_run=True)
    with Rollback(host) as rollback:
        cgroup.create(host, GROUP, rollback)
    assert host.lines[host.lines.index(f"mkdir --parents {q(parent / CID)}") + 1:][:2] == [
        f"echo 0-1 > {q(parent / 'cpuset.cpus')}", f"echo 0 > {q(parent / 'cpuset.mems')}"]
    assert f"mkdir --parents {q(v1 / 'memory' / 'shellctr' / CID)}" in host.lines


def test_v1_dry_run_leaves_an_existing_cgroup_parent_as_it_is(v1: Path) -> None:
    """A --cgroup-parent is the user's: it stays, and so does its cpuset."""
    parent = v1 / "cpuset" / "apps"
    parent.mkdir()
    (parent / "cpuset.cpus").write_text("1\n")
    (parent / "cpuset.mems").write_text("0\n")
    host = RecordingHost(dry_run=True)
    with Rollback(host) as rollback:
        cgroup.create(host, cgroups.group_of(CID, "apps"), rollback)
    assert [line for line in host.lines if "cpuset.cpus" in line] == [
        f"echo 1 > {q(parent / CID / 'cpuset.cpus')}"]


def test_v2_dry_run_enables_the_controllers_in_shellctrs_parent_again(v2: Path) -> None:
    own = v2 / "shellctr"
    own.mkdir()
    (own / "cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    host = RecordingHost(dry_run=True)
    with Rollback(host) as rollback:
        cgroup.create(host, GROUP, rollback)
    assert f"echo +memory > {q(own / 'cgroup.subtree_control')}" in host.lines


def test_v2_create_enables_the_controllers_for_the_children(v2: Path) -> None:
    (v2 / "cgroup.controllers").write_text("cpu io memory pids\n")  # no cpuset here
    host = RecordingHost()
    with Rollback(host) as rollback:
        cgroup.create(host, GROUP, rollback, limits(cpus="1"))
    root_control, own = v2 / "cgroup.subtree_control", v2 / "shellctr" / "cgroup.subtree_control"
    assert [line for line in host.lines if "subtree_control" in line] == [
        f"echo +cpu > {q(root_control)}", f"echo +pids > {q(root_control)}",
        f"echo +io > {q(root_control)}", f"echo +cpu > {q(own)}",
        f"echo +memory > {q(own)}", f"echo +pids > {q(own)}", f"echo +io > {q(own)}"]
    assert (v2 / "shellctr" / CID / "cpu.max").read_text() == "100000 100000"


@pytest.mark.parametrize(("flags", "message"), [
    ({"memory": "1k"}, "memory limit 1k is too small"),
    ({"cpus": "99"}, "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"cpus": "0.001"}, "range of CPUs is from 0.01 to 2.00"),
    ({"cpus": "many"}, "invalid value 'many' for --cpus"),
    ({"cpuset_cpus": "7"}, "requested --cpuset-cpus 7 is not available: 7 not in 0,1"),
    ({"cpuset_cpus": "1-0"}, "invalid value '1-0' for --cpuset-cpus"),
    ({"cpuset_cpus": "0,,1"}, "invalid value '0,,1' for --cpuset-cpus"),
    ({"cpuset_mems": "1"}, "requested --cpuset-mems 1 is not available"),
    ({"memory": "16m", "memory_swap": "8m"}, "minimum memoryswap limit should be larger"),
    ({"memory_swap": "1g"}, "you should always set the memory limit"),
    ({"memory": "16m", "memory_reservation": "32m"},
     "minimum memory limit can not be less than memory reservation"),
    ({"cpus": "1", "cpu_quota": "50000"}, "conflicting options: --cpus and --cpu-period"),
    ({"cpu_shares": "1"}, "--cpu-shares 1 is out of range"),
    ({"cpu_period": "10"}, "CPU cfs period can not be less than 1ms"),
    ({"cpu_quota": "10"}, "CPU cfs quota can not be less than 1ms"),
    ({"pids_limit": "lots"}, "invalid value 'lots' for --pids-limit"),
])
def test_invalid_values_are_one_line_errors(v1: Path, flags: dict[str, str],
                                            message: str) -> None:
    with pytest.raises(ShellctrError, match=f"^{message}") as info:
        cgroup.parse_limits(Facts(), dict(flags))
    assert "\n" not in str(info.value)


def test_a_missing_controller_refuses_only_the_flags_that_need_it(v1: Path) -> None:
    (v1 / "pids").rmdir()
    assert limits(memory="64m")["memory"] == 64 << 20
    with pytest.raises(ShellctrError, match=r"^this host has no pids cgroup controller for "
                                            r"--pids-limit"):
        limits(memory="64m", pids_limit="20")


def test_oom_kill_disable(v1: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert limits(oom_kill_disable=True)["oom_kill_disable"] is False  # Docker: not without -m
    assert "WARNING: Disabling the OOM killer" in capsys.readouterr().err


def test_oom_kill_disable_v2_is_refused(v2: Path) -> None:
    with pytest.raises(ShellctrError, match=r"^--oom-kill-disable is not supported on cgroup v2"):
        limits(memory="64m", oom_kill_disable=True)


def test_host_cpus_without_a_cpuset_come_from_sysfs(cgroup_root: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (cgroup_root / "memory").mkdir()
    online = tmp_path / "online"
    online.write_text("0-3,6\n")
    monkeypatch.setattr(cgroup, "CPU_ONLINE", online)
    assert cgroup.host_cpus(Facts()) == {0, 1, 2, 3, 6}


@pytest.mark.usefixtures("fixed")
@pytest.mark.parametrize("running", [False, True])
def test_update_writes_the_knobs_live_and_keeps_them_in_the_state(
        v1: Path, layout: Layout, monkeypatch: pytest.MonkeyPatch, running: bool) -> None:
    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, run_request("busybox", memory="32m", limits={"pids_limit": "20"}))
    if running:
        with Rollback(host) as rollback:
            cgroup.create(host, GROUP, rollback)
        monkeypatch.setattr(containers, "reconcile",
                            lambda store, cid: {"status": "running"})
    host.reset()
    containers.update(host, store, CID, {"memory": "64m", "pids_limit": "-1", "cpus": None},
                     "on-failure:2")
    config = store.container(CID)
    assert (config["memory"], config["pids_limit"], config["restart_policy"],
            config["restart_max"]) == (64 << 20, 0, "on-failure", 2)
    knobs = [line for line in host.lines if line.startswith("echo")]
    mine = v1 / "memory" / "shellctr" / CID
    if running:
        assert f"echo {64 << 20} > {q(mine / 'memory.limit_in_bytes')}" in knobs
        assert f"echo max > {q(v1 / 'pids' / 'shellctr' / CID / 'pids.max')}" in knobs
    else:
        assert knobs == []  # stopped: the config only, used at the next start


@pytest.mark.usefixtures("fixed")
def test_update_checks_before_changing_anything(v1: Path, layout: Layout) -> None:
    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, run_request("busybox", memory="32m", limits={"memory_swap": "64m"}))
    host.reset()
    with pytest.raises(ShellctrError, match=r"^minimum memoryswap limit should be larger"):
        containers.update(host, store, CID, {"memory": "128m"}, None)
    with pytest.raises(ShellctrError, match=r"^invalid restart policy"):
        containers.update(host, store, CID, {}, "sometimes")
    assert host.cmds == [] and store.container(CID)["memory"] == 32 << 20


def test_v1_swap_accounting_is_read_from_the_root(v1: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # the container's cgroup does not exist yet (--dry-run): the root tells
    assert writes(memory="16m", memory_swap="32m")[:1] == [
        ("memory/shellctr/ID/memory.limit_in_bytes", str(16 << 20))]
    assert "does not support swap limit" in capsys.readouterr().err
    (v1 / "memory" / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    assert writes(memory="16m", memory_swap="32m")[:2] == [
        ("memory/shellctr/ID/memory.limit_in_bytes", str(16 << 20)),
        ("memory/shellctr/ID/memory.memsw.limit_in_bytes", str(32 << 20))]
    assert capsys.readouterr().err == ""


def test_v2_a_controller_that_cannot_be_enabled_refuses_the_start(
        v2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = RecordingHost()
    real = host.write_value

    def no_pids(path: Path, text: str) -> None:
        if text == "+pids":  # not delegated to us
            raise OSError(95, "Operation not supported")
        real(path, text)

    monkeypatch.setattr(host, "write_value", no_pids)
    wanted = limits(pids_limit="20")
    with pytest.raises(ShellctrError, match=r"^the pids controller is not enabled in .* for "
                                            r"--pids-limit"), Rollback(host) as rollback:
        cgroup.create(host, GROUP, rollback, wanted)
    assert not (v2 / "shellctr" / CID).exists()  # the rollback removed it
    with Rollback(host) as rollback:  # without the flag, the container starts
        cgroup.create(host, GROUP, rollback, limits(memory="64m"))


def test_v2_nested_cgroup_parent_enables_the_controllers_at_every_level(v2: Path) -> None:
    host = RecordingHost()
    group = cgroups.group_of(CID, cgroups.parse_parent("/apps/web"))
    with Rollback(host) as rollback:
        cgroup.create(host, group, rollback, limits(pids_limit="9"))
    levels = [v2, v2 / "apps", v2 / "apps" / "web"]
    enabled = [line for line in host.lines if "subtree_control" in line]
    assert [line.rpartition(" > ")[2] for line in enabled if "+pids" in line] == [
        q(level / "cgroup.subtree_control") for level in levels]
    assert (v2 / "apps" / "web" / CID / "pids.max").read_text() == "9"


def test_v1_nested_cgroup_parent_copies_the_cpuset_down_each_level(v1: Path) -> None:
    host = RecordingHost()
    with Rollback(host) as rollback:
        cgroup.create(host, cgroups.group_of(CID, "apps/web"), rollback)
    cpuset = v1 / "cpuset"
    assert [line for line in host.lines if line.endswith("cpuset.cpus")] == [
        f"echo 0-1 > {q(cpuset / 'apps' / 'cpuset.cpus')}",
        f"echo 0-1 > {q(cpuset / 'apps' / 'web' / 'cpuset.cpus')}",
        f"echo 0-1 > {q(cpuset / 'apps' / 'web' / CID / 'cpuset.cpus')}"]


def test_remove_leaves_a_cgroup_parent_but_not_shellctrs_own(v1: Path) -> None:
    host = RecordingHost()
    for group in (GROUP, cgroups.group_of(CID, "apps")):
        with Rollback(host) as rollback:
            cgroup.create(host, group, rollback)
        cgroup.remove(host, group)
    assert not (v1 / "memory" / "shellctr").exists()
    assert (v1 / "memory" / "apps").is_dir() and not (v1 / "memory" / "apps" / CID).exists()


@pytest.mark.parametrize(("given", "parent"), [("apps", "apps"), ("/apps/web/", "apps/web")])
def test_cgroup_parent_is_a_path_below_the_root(given: str, parent: str) -> None:
    assert cgroups.parse_parent(given) == parent


@pytest.mark.parametrize("given", ["/", "..", "a/../b", "a//b", "./a"])
def test_cgroup_parent_with_dots_or_empty_parts_is_refused(given: str) -> None:
    with pytest.raises(ShellctrError, match="invalid --cgroup-parent"):
        cgroups.parse_parent(given)
