"""`stats`: what the containers use, read from their cgroups and /proc, computed and
worded as Docker does (CPU % against the host's CPU time, memory without the page
cache's inactive files, binary units for memory, decimal ones for I/O)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shellctr.core.facts import Facts
from shellctr.engine import cgroup


@dataclass(frozen=True)
class Sample:
    """One reading of a container's counters."""

    cpu_ns: int = 0  # CPU time its processes used, all CPUs together
    system_ns: int = 0  # the host's CPU time (all CPUs), /proc/stat, when it was read
    memory: int = 0  # bytes in use, without inactive file cache
    limit: int = 0  # its memory limit, or the host's memory
    net_rx: int = 0
    net_tx: int = 0
    blk_read: int = 0
    blk_write: int = 0
    pids: int = 0


def keyed(text: str) -> dict[str, int]:
    """`name value` lines (memory.stat, cpu.stat) as a dict."""
    pairs = (line.split() for line in text.splitlines())
    return {words[0]: int(words[1]) for words in pairs
            if len(words) == 2 and words[1].lstrip("-").isdigit()}


def host_cpu_ns(stat: str) -> int:
    """The host's CPU time so far from /proc/stat's `cpu` line (clock ticks -> ns)."""
    for line in stat.splitlines():
        if line.startswith("cpu "):
            ticks = sum(int(word) for word in line.split()[1:8])  # user..softirq
            return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return 0


def host_memory(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def net_bytes(dev: str) -> tuple[int, int]:
    """(received, sent) bytes over every interface but lo, from /proc/PID/net/dev."""
    rx = tx = 0
    for line in dev.splitlines()[2:]:
        name, _, counters = line.partition(":")
        words = counters.split()
        if name.strip() != "lo" and len(words) >= 9:
            rx, tx = rx + int(words[0]), tx + int(words[8])
    return rx, tx


def blkio_bytes(text: str, unified: bool) -> tuple[int, int]:
    """(read, written) bytes: v1 blkio.throttle.io_service_bytes, v2 io.stat."""
    done = [0, 0]
    for line in text.splitlines():
        words = line.split()
        if unified:
            counts = dict(word.split("=", 1) for word in words[1:] if "=" in word)
            done[0] += int(counts.get("rbytes", 0))
            done[1] += int(counts.get("wbytes", 0))
        elif len(words) == 3 and words[1] in ("Read", "Write"):  # not Total, Sync...
            done[words[1] == "Write"] += int(words[2])
    return done[0], done[1]


def sample(facts: Facts, group: str, pid: int) -> Sample:
    """The container's counters now (zeros for a container without cgroups)."""
    unified = cgroup.unified(facts)
    proc = facts.proc

    def read(path: Path) -> str:
        return facts.read_text(path, "")

    def knob(controller: str, name: str) -> str:
        return read(cgroup.cgroup_dir(facts, group, controller) / name)

    if unified:
        cpu_ns = keyed(knob("cpu", "cpu.stat")).get("usage_usec", 0) * 1000
        usage = int(knob("memory", "memory.current").strip() or 0)
        inactive = keyed(knob("memory", "memory.stat")).get("inactive_file", 0)
        limit_text = knob("memory", "memory.max").strip()
        blk = blkio_bytes(knob("io", "io.stat"), True)
    else:
        cpu_ns = int(knob("cpuacct", "cpuacct.usage").strip() or 0)
        usage = int(knob("memory", "memory.usage_in_bytes").strip() or 0)
        inactive = keyed(knob("memory", "memory.stat")).get("total_inactive_file", 0)
        limit_text = knob("memory", "memory.limit_in_bytes").strip()
        blk = blkio_bytes(knob("blkio", "blkio.throttle.io_service_bytes"), False)
    host = host_memory(read(proc / "meminfo"))
    # no limit: "max" (v2), or a huge number (v1): the host's memory is the limit
    limit = int(limit_text) if limit_text.isdigit() else host
    net = net_bytes(read(proc / str(pid) / "net" / "dev")) if pid else (0, 0)
    return Sample(cpu_ns=cpu_ns, system_ns=host_cpu_ns(read(proc / "stat")),
                  memory=max(usage - inactive, 0), limit=min(limit, host) if host else limit,
                  net_rx=net[0], net_tx=net[1], blk_read=blk[0], blk_write=blk[1],
                  pids=int(knob("pids", "pids.current").strip() or 0))


def cpu_percent(before: Sample, after: Sample, cpus: int) -> float:
    """Docker's CPU %: the container's share of the host's CPU time, times the CPUs
    (100% is one CPU busy)."""
    system = after.system_ns - before.system_ns
    used = after.cpu_ns - before.cpu_ns
    return used / system * cpus * 100 if system > 0 and used > 0 else 0.0
