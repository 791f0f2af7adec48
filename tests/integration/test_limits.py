"""Resource limits on a real cgroupfs (v1 on these hosts, v2 in the VMs of vm/run-tests):
-m, --pids-limit, --cpus, --cpuset-cpus, and every process of the container, exec'd ones
too, inside its cgroups."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from .support import (
    BASE,
    CGROUP_ROOT,
    Ctr,
    inspect,
    one_line_error,
    remove_all,
    run_detached,
    wait_for,
)

PID1 = ("sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait")
UNIFIED = (CGROUP_ROOT / "cgroup.controllers").exists()


def knob(cid: str, controller: str, name: str) -> str:
    """One of the container's cgroup files, as the kernel shows it."""
    base = CGROUP_ROOT if UNIFIED else CGROUP_ROOT / controller
    return (base / "shellctr" / cid / name).read_text().strip()


@pytest.fixture
def cleanup(ctr: Ctr) -> Iterator[None]:
    yield
    remove_all(ctr)


def test_a_process_past_the_memory_limit_is_killed(ctr: Ctr) -> None:
    # doubles a shell variable until the kernel's OOM killer ends it
    result = ctr("run", "--name", "hog", "-m", "16m", "busybox", "sh", "-c",
                 "x=aaaaaaaa; while true; do x=$x$x; done")
    assert result.code == 137, str(result)
    assert inspect(ctr, "hog")["State"]["OOMKilled"] is True
    ctr("rm", "hog").ok()


def test_the_pids_limit_stops_a_fork_loop_and_the_container_survives(ctr: Ctr) -> None:
    # a child shell forks until it cannot (and dies of it); PID 1 counts, forking nothing
    script = ("sh -c 'while :; do sleep 30 & done' 2>/dev/null; "
              "set -- /proc/[0-9]*; echo alive $#")
    result = ctr("run", "--rm", "--pids-limit", "20", "busybox", "sh", "-c", script).ok()
    word, count = result.out.split()
    assert word == "alive" and 15 <= int(count) <= 20, str(result)


def cpu_usage_ns(cid: str) -> int:
    if UNIFIED:
        stat = dict(line.split() for line in knob(cid, "", "cpu.stat").splitlines())
        return int(stat["usage_usec"]) * 1000
    return int(knob(cid, "cpuacct", "cpuacct.usage"))


def times_throttled(cid: str) -> int:
    """How often the kernel has held the container back at its CPU quota (cpu.stat)."""
    stat = dict(line.split() for line in knob(cid, "" if UNIFIED else "cpu",
                                                "cpu.stat").splitlines())
    return int(stat["nr_throttled"])


@pytest.mark.usefixtures("cleanup")
def test_cpus_half_keeps_a_busy_loop_under_half_a_cpu(ctr: Ctr) -> None:
    cid = run_detached(ctr, "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done")
    # the quota bites: polled, since on a loaded machine the loop may take a while to get
    # half a CPU within one period (a share measured from below would be the load's)
    wait_for(lambda: times_throttled(cid) > 0, "the kernel to throttle the loop")
    used, start = cpu_usage_ns(cid), time.monotonic()
    time.sleep(2)  # the window the share is measured over
    share = (cpu_usage_ns(cid) - used) / ((time.monotonic() - start) * 1e9)
    assert share <= 0.65, share  # half a CPU, with the scheduler's slack at period ends


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or 1 not in os.sched_getaffinity(0),
                    reason="needs CPU 1")
def test_cpuset_cpus_confines(ctr: Ctr) -> None:
    result = ctr("run", "--rm", "--cpuset-cpus", "1", "busybox", "grep",
                 "Cpus_allowed_list", "/proc/self/status").ok()
    assert result.out.split() == ["Cpus_allowed_list:", "1"], str(result)


@pytest.mark.usefixtures("cleanup")
def test_an_exec_process_is_in_the_same_cgroups(ctr: Ctr) -> None:
    cid = run_detached(ctr, "--name", "box", "-m", "64m", "--pids-limit", "50", "busybox",
                       *PID1)
    of_pid1 = ctr("exec", "box", "cat", "/proc/1/cgroup").ok().out
    of_exec = ctr("exec", "box", "cat", "/proc/self/cgroup").ok().out
    assert of_exec == of_pid1, (of_pid1, of_exec)
    ours = [line for line in of_exec.splitlines() if f"/shellctr/{cid}" in line]
    controllers = {line.split(":")[1] for line in ours}
    assert UNIFIED or {"memory", "pids", "cpu", "cpuacct", "cpuset", "freezer"} <= controllers


@pytest.mark.usefixtures("cleanup")
def test_each_limit_is_written_in_its_knob(ctr: Ctr) -> None:
    # v2 (the VMs of vm/run-tests) and v1 (these hosts) name and scale them differently
    cid = run_detached(ctr, "-m", "32m", "--memory-swap", "64m", "--memory-reservation",
                       "16m", "--cpus", "0.5", "-c", "512", "--pids-limit", "40", "busybox",
                       *PID1)
    if UNIFIED:
        expected = {("memory", "memory.max"): str(32 << 20),
                    ("memory", "memory.low"): str(16 << 20),
                    ("cpu", "cpu.max"): "50000 100000",
                    ("cpu", "cpu.weight"): "20",  # runc's 1 + (512 - 2) * 9999 / 262142
                    ("pids", "pids.max"): "40"}
        swap = ("memory", "memory.swap.max")  # the swap part alone: 64m - 32m
    else:
        expected = {("memory", "memory.limit_in_bytes"): str(32 << 20),
                    ("memory", "memory.soft_limit_in_bytes"): str(16 << 20),
                    ("cpu", "cpu.cfs_quota_us"): "50000",
                    ("cpu", "cpu.cfs_period_us"): "100000",
                    ("cpu", "cpu.shares"): "512",
                    ("pids", "pids.max"): "40"}
        swap = ("memory", "memory.memsw.limit_in_bytes")  # RAM + swap
    base = CGROUP_ROOT if UNIFIED else CGROUP_ROOT / "memory"
    if (base / "shellctr" / cid / swap[1]).exists():  # swap accounting is on
        expected[swap] = str(32 << 20 if UNIFIED else 64 << 20)
    found = {key: knob(cid, *key) for key in expected}
    assert found == expected


@pytest.mark.parametrize(("flags", "message"), [
    (("-m", "1k"), "memory limit 1k is too small"),
    (("--cpus", "99"), "range of CPUs is from 0.01 to"),
    (("--cpuset-cpus", "77"), "requested --cpuset-cpus 77 is not available"),
    (("-m", "16m", "--memory-swap", "8m"), "minimum memoryswap limit should be larger"),
    (("--cpuset-cpus", "0-"), "invalid value '0-' for --cpuset-cpus"),
])
def test_invalid_limits_are_refused_before_anything_is_made(ctr: Ctr, flags: tuple[str, ...],
                                                            message: str) -> None:
    line = one_line_error(ctr("run", "--rm", *flags, "busybox", "true"))
    assert line.startswith(f"shellctr: {message}"), line
    assert ctr.container_ids() == []


@pytest.mark.usefixtures("cleanup")
def test_update_changes_the_limits_live(ctr: Ctr) -> None:
    cid = run_detached(ctr, "--name", "box", "-m", "32m", "--pids-limit", "20", "busybox",
                       *PID1)
    memory = "memory.max" if UNIFIED else "memory.limit_in_bytes"
    assert knob(cid, "memory", memory) == str(32 << 20)
    assert ctr("update", "-m", "64m", "--pids-limit", "50", "box").ok().out == "box\n"
    assert knob(cid, "memory", memory) == str(64 << 20)
    assert knob(cid, "pids", "pids.max") == "50"
    host_config = inspect(ctr, "box")["HostConfig"]
    assert (host_config["Memory"], host_config["PidsLimit"]) == (64 << 20, 50)
    # the next start applies what is in the config
    ctr("stop", "-t", "1", "box").ok()
    ctr("update", "--pids-limit", "30", "box").ok()
    ctr("start", "box").ok()
    assert knob(cid, "pids", "pids.max") == "30"


def test_update_of_an_invalid_value_changes_nothing(ctr: Ctr) -> None:
    ctr("create", "--name", "box", "-m", "32m", "busybox", "true").ok()
    line = one_line_error(ctr("update", "--cpus", "99", "box"))
    assert "range of CPUs is from 0.01 to" in line
    assert inspect(ctr, "box")["HostConfig"]["CpuQuota"] == 0
    ctr("rm", "box").ok()


@pytest.mark.usefixtures("cleanup")
def test_stats_no_stream_shows_what_the_containers_use(ctr: Ctr) -> None:
    # --network none: no traffic at all (on a bridge, IPv6 autoconfiguration talks)
    run_detached(ctr, "--name", "busy", "--network", "none", "--cpus", "0.5", "-m", "64m",
                 "busybox", "sh", "-c", "while :; do :; done")
    run_detached(ctr, "--name", "three", "busybox", "sh", "-c",
                 "sleep 1000 & sleep 1000 & wait")
    ctr("create", "--name", "never", "busybox", "true").ok()
    result = ctr("stats", "--no-stream", trace=False).ok()
    lines = result.out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                                "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert sorted(line.split()[1] for line in lines[1:]) == ["busy", "three"], str(result)
    fields = "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}} {{.NetIO}}"
    rows = {line.split()[0]: line.split()[1:] for line in ctr(
        "stats", "--no-stream", "-a", "--format", fields, trace=False).ok().out.splitlines()}
    assert set(rows) == {"busy", "three", "never"}
    cpu, usage, _, limit, pids, *net = rows["busy"]
    assert 20 <= float(cpu.rstrip("%")) <= 80 and limit == "64MiB" and pids == "1", rows
    assert usage != "0B" and net == ["0B", "/", "0B"], rows
    assert rows["three"][4] == "3" and rows["three"][1] != "0B", rows  # sh and two sleeps
    assert rows["never"] == ["0.00%", "0B", "/", "0B", "0", "0B", "/", "0B"], rows


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    """A --cgroup-parent of this worker's own (two levels); removed after the test, as
    shellctr leaves a user's parent in place (Docker does too)."""
    top = f"{BASE.name}-parent"
    yield f"/{top}/nested"
    hierarchies = [CGROUP_ROOT] if UNIFIED else [p for p in CGROUP_ROOT.iterdir()
                                                 if (p / top).is_dir()]
    for hierarchy in hierarchies:
        for path in (hierarchy / top / "nested", hierarchy / top):
            if path.is_dir():
                path.rmdir()


@pytest.mark.usefixtures("cleanup")
def test_cgroup_parent_holds_the_container_and_its_limits(ctr: Ctr, cgroup_parent: str) -> None:
    cid = run_detached(ctr, "--name", "kid", "--cgroup-parent", cgroup_parent, "--pids-limit",
                       "30", "busybox", *PID1)
    lines = ctr("exec", "kid", "cat", "/proc/self/cgroup").ok().out.splitlines()
    ours = [line for line in lines if line.endswith(f"{cgroup_parent}/{cid}")]
    assert ours and not [line for line in lines if "/shellctr/" in line], lines
    pids = (CGROUP_ROOT / ("" if UNIFIED else "pids") / cgroup_parent.lstrip("/") / cid)
    assert (pids / "pids.max").read_text().strip() == "30"
    assert inspect(ctr, "kid")["HostConfig"]["CgroupParent"] == cgroup_parent.lstrip("/")
    ctr("rm", "-f", "kid").ok()
    assert not pids.exists()  # the container's cgroup goes; the parent is the user's


@pytest.mark.parametrize("parent", ["../escape", "a/./b", "/"])
def test_invalid_cgroup_parent_is_refused_before_anything_is_made(ctr: Ctr, parent: str) -> None:
    line = one_line_error(ctr("run", "--rm", "--cgroup-parent", parent, "busybox", "true"))
    assert line.startswith("shellctr: invalid --cgroup-parent"), line
    assert ctr.container_ids() == []
