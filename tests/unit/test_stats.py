"""stats: the counters read from fake v1 and v2 cgroupfs trees and /proc, Docker's CPU %
and its wording of sizes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shellctr.cli import textfmt
from shellctr.core.facts import Facts
from shellctr.engine import cgroup, stats

from .helpers import CID, GROUP

TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")  # ns per clock tick
NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:    2500      20    0    0    0     0          0         0     1500      15    0    0    0     0       0          0
"""  # noqa: E501


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    (root / "42" / "net").mkdir(parents=True)
    (root / "42" / "net" / "dev").write_text(NET_DEV)
    (root / "stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0\n")
    (root / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    return root


def facts_at(proc: Path) -> Facts:
    """The host's facts with /proc at `proc` (the cgroup root: conftest's tmp dir)."""
    facts = Facts()
    facts.proc = proc
    return facts


def test_sample_v1(cgroup_root: Path, proc: Path) -> None:
    files = {
        "cpuacct/cpuacct.usage": "5000000000\n",
        "memory/memory.usage_in_bytes": str(10 << 20),
        "memory/memory.stat": f"cache 100\ntotal_inactive_file {2 << 20}\n",
        "memory/memory.limit_in_bytes": str(64 << 20),
        "blkio/blkio.throttle.io_service_bytes":
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Total 12288\nTotal 12288\n",
        "pids/pids.current": "3\n",
    }
    for name, text in files.items():
        controller, knob = name.split("/")
        (cgroup_root / controller / "shellctr" / CID).mkdir(parents=True, exist_ok=True)
        (cgroup_root / controller / "shellctr" / CID / knob).write_text(text)
    assert stats.sample(facts_at(proc), GROUP, 42) == stats.Sample(
        cpu_ns=5_000_000_000, system_ns=1000 * TICK, memory=8 << 20, limit=64 << 20,
        net_rx=2500, net_tx=1500, blk_read=4096, blk_write=8192, pids=3)


def test_sample_v2_without_a_limit_has_the_hosts_memory(cgroup_root: Path, proc: Path) -> None:
    (cgroup_root / "cgroup.controllers").write_text("cpu io memory pids\n")
    mine = cgroup_root / "shellctr" / CID
    mine.mkdir(parents=True)
    for knob, text in {"cpu.stat": "usage_usec 2500\nuser_usec 2000\n",
                       "memory.current": "4096000\n", "memory.max": "max\n",
                       "memory.stat": "anon 1\ninactive_file 96000\n",
                       "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2\n"
                                  "8:16 rbytes=1 wbytes=2\n",
                       "pids.current": "2\n"}.items():
        (mine / knob).write_text(text)
    sample = stats.sample(facts_at(proc), GROUP, 0)  # no pid: no network counters
    assert (sample.cpu_ns, sample.memory, sample.limit) == (2_500_000, 4_000_000,
                                                            16384000 * 1024)
    assert (sample.blk_read, sample.blk_write, sample.pids) == (101, 202, 2)
    assert (sample.net_rx, sample.net_tx) == (0, 0)


def test_cpu_percent_as_docker_computes_it() -> None:
    before = stats.Sample(cpu_ns=1_000_000_000, system_ns=10_000_000_000)
    # 2 CPUs for 1 s: 2e9 ns of host CPU time; the container used half a CPU
    after = stats.Sample(cpu_ns=1_500_000_000, system_ns=12_000_000_000)
    assert stats.cpu_percent(before, after, cpus=2) == 50.0
    assert stats.cpu_percent(after, after, cpus=2) == 0.0


@pytest.mark.parametrize(("size", "text"), [
    (0, "0B"), (1000, "1000B"), (1024, "1KiB"), (1203 * 1024, "1.175MiB"),
    (int(15.5 * (1 << 30)), "15.5GiB"), (64 << 20, "64MiB")])
def test_memory_sizes_are_binary(size: int, text: str) -> None:
    assert textfmt.bytes_size(size) == text


def test_a_row_as_docker_words_it() -> None:
    before = stats.Sample(cpu_ns=0, system_ns=0)
    after = stats.Sample(cpu_ns=250_000_000, system_ns=2_000_000_000, memory=int(1.2 * 2**20),
                         limit=int(15.5 * 2**30), net_rx=0, net_tx=0, blk_read=1_500_000,
                         blk_write=12_000, pids=4)
    assert textfmt.stats_row(CID, "web", before, after, cpus=2) == {
        "Container": CID[:12], "ID": CID[:12], "Name": "web", "CPUPerc": "25.00%",
        "MemUsage": "1.2MiB / 15.5GiB", "MemPerc": "0.01%", "NetIO": "0B / 0B",
        "BlockIO": "1.5MB / 12kB", "PIDs": "4"}


def test_a_stopped_container_is_all_zeros() -> None:
    row = textfmt.stats_row(CID, "web", stats.Sample(), stats.Sample(), cpus=2)
    assert [row[key] for key in ("CPUPerc", "MemUsage", "MemPerc", "PIDs")] == [
        "0.00%", "0B / 0B", "0.00%", "0"]


def test_no_cgroup_hierarchy_reads_zeros(proc: Path) -> None:
    assert cgroup.container_cgroups(Facts(), GROUP) == []
    assert stats.sample(facts_at(proc), GROUP, 42).pids == 0
