"""cgroups as values: a container's group name, its limit flags as config values, and the
knob writes that give it those limits. Pure: what the host has (its hierarchies, its
controllers, its cpus) comes in as arguments, read by engine/cgroup.py through the facts.
"""

from __future__ import annotations

from pathlib import Path

from shellctr.core.errors import ShellctrError

PARENT = "shellctr"
MIN_MEMORY = 6 * 1024 * 1024  # Docker's smallest -m
CPU_PERIOD = 100000  # µs: --cpus N is N * this much CPU time per period, as Docker
# the config keys the limits live in (state.ContainerConfig), and their "no limit"
LIMIT_DEFAULTS: dict[str, object] = {
    "memory": 0, "memory_swap": 0, "memory_reservation": 0, "oom_kill_disable": False,
    "cpu_shares": 0, "cpu_period": 0, "cpu_quota": 0, "cpuset_cpus": "", "cpuset_mems": "",
    "pids_limit": 0,
}
# which controller each limit needs
NEEDS = {"memory": "memory", "memory_swap": "memory", "memory_reservation": "memory",
         "oom_kill_disable": "memory", "cpu_shares": "cpu", "cpu_period": "cpu",
         "cpu_quota": "cpu", "cpuset_cpus": "cpuset", "cpuset_mems": "cpuset",
         "pids_limit": "pids", "cpus": "cpu"}
UNLIMITED = "-1"  # v1's "no limit" for memory knobs and cfs_quota_us


def group_of(cid: str, parent: str = "") -> str:
    """The container's cgroup path below each hierarchy's root: `<parent>/<id>`."""
    return f"{parent or PARENT}/{cid}"


def is_own(group: str) -> bool:
    """Whether the group lies in shellctr's own parent, which goes with its last
    container (a --cgroup-parent is the user's and stays, as in Docker)."""
    return group == group_of(group.rpartition("/")[2])


def parse_parent(text: str) -> str:
    """--cgroup-parent: a path below the hierarchy's root (`/a/b` and `a/b` alike)."""
    parts = text.strip("/").split("/")
    if not text.strip("/") or any(part in ("", ".", "..") for part in parts):
        raise ShellctrError(f"invalid --cgroup-parent {text!r}",
                            "give a cgroup path such as myparent or /a/b, without . or ..")
    return "/".join(parts)


# -- the flags -------------------------------------------------------------------------
def parse_size(text: str) -> int:
    """Docker's sizes: `512m`, `1g`, `1.5G`, `100k`, bytes; binary multiples."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", text.strip().lower())
    if match is None:
        raise ShellctrError(f"invalid size: {text!r}", "use a number with b, k, m or g")
    number, unit = match.groups()
    size = int(float(number) * 1024 ** " kmgtp".index(unit or " "))
    if size > 2 ** 63 - 1:  # what a cgroup knob (int64) can hold
        raise ShellctrError(f"invalid size: {text!r} is too large", "use at most 8191p")
    return size


def parse_cpu_list(text: str, what: str = "--cpuset-cpus") -> set[int]:
    """`0-2,4`: the cpus (or memory nodes) a cpuset list names."""
    import re

    found: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if match is None or (match[2] and int(match[2]) < int(match[1])):
            raise ShellctrError(f"invalid value {text!r} for {what}",
                                "use a list like 0-2,4")
        found.update(range(int(match[1]), int(match[2] or match[1]) + 1))
    return found


def parse_int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ShellctrError(f"invalid value {text!r} for {flag}", "give a whole number") from None


def parse_cpu_flags(given: dict[str, object], limits: dict[str, object],
                    cpu_count: int) -> None:
    """--cpus, -c/--cpu-shares, --cpu-period, --cpu-quota, as Docker checks them."""
    if "cpus" in given and ("cpu_period" in given or "cpu_quota" in given):
        raise ShellctrError("conflicting options: --cpus and --cpu-period/--cpu-quota "
                            "cannot both be set", "use one or the other")
    if "cpus" in given:
        text = str(given["cpus"])
        try:
            cpus = float(text)
        except ValueError:
            raise ShellctrError(f"invalid value {text!r} for --cpus",
                                "give a number of CPUs, such as 1.5") from None
        if cpus != 0 and not 0.01 <= cpus <= cpu_count:
            raise ShellctrError(f"range of CPUs is from 0.01 to {cpu_count:.2f}, as there "
                                f"are only {cpu_count} CPUs available",
                                "give a smaller --cpus")
        # 0: no quota (-1 in v1's cfs_quota_us; cpu.max "max")
        limits["cpu_period"] = CPU_PERIOD
        limits["cpu_quota"] = round(cpus * CPU_PERIOD) if cpus else -1
    if "cpu_shares" in given:
        shares = parse_int(str(given["cpu_shares"]), "--cpu-shares")
        if shares and not 2 <= shares <= 262144:  # the kernel's range
            raise ShellctrError(f"--cpu-shares {shares} is out of range",
                                "give a value from 2 to 262144 (1024: the default weight)")
        limits["cpu_shares"] = shares
    if "cpu_period" in given:
        period = parse_int(str(given["cpu_period"]), "--cpu-period")
        if period and not 1000 <= period <= 1000000:
            raise ShellctrError("CPU cfs period can not be less than 1ms (i.e. 1000) or "
                                "larger than 1s (i.e. 1000000)", "give --cpu-period in µs")
        limits["cpu_period"] = period
    if "cpu_quota" in given:
        quota = parse_int(str(given["cpu_quota"]), "--cpu-quota")
        if quota > 0 and quota < 1000:
            raise ShellctrError("CPU cfs quota can not be less than 1ms (i.e. 1000)",
                                "give --cpu-quota in µs, or -1 for no quota")
        limits["cpu_quota"] = quota if quota > 0 else -1


# -- the knobs ---------------------------------------------------------------------------
def swap_total(limits: dict[str, object]) -> int:
    """Docker's --memory-swap: RAM + swap; -1: unlimited swap; unset: twice -m."""
    memory, swap = int(str(limits["memory"])), int(str(limits["memory_swap"]))
    return swap if swap else 2 * memory


def cpu_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) as v2 cpu.weight (1..10000), converted as runc does."""
    return 1 + ((shares - 2) * 9999) // 262142


def knobs_v1(dirs: dict[str, Path], limits: dict[str, object], fresh: bool, *, swap: bool,
             parent_cpuset: tuple[str, str]) -> list[tuple[Path, str]]:
    """v1's (file, value) writes, in order. `dirs`: the container's cgroup directory of
    each controller the host has; `swap`: the kernel counts swap (memsw files);
    `parent_cpuset`: the (cpus, mems) a cpuset left empty takes."""
    writes: list[tuple[Path, str]] = []
    memory = int(str(limits["memory"]))
    if "memory" in dirs:
        mem = dirs["memory"]
        memsw = mem / "memory.memsw.limit_in_bytes"
        if memory:
            if swap and not fresh:
                # the kernel keeps limit <= memsw: lift memsw first, set the limit, then it
                writes.append((memsw, UNLIMITED))
            writes.append((mem / "memory.limit_in_bytes", str(memory)))
            if swap:
                writes.append((memsw, str(swap_total(limits))))
        if limits["memory_reservation"]:
            writes.append((mem / "memory.soft_limit_in_bytes",
                           str(limits["memory_reservation"])))
        if limits["oom_kill_disable"]:  # processes over the limit wait instead of dying
            writes.append((mem / "memory.oom_control", "1"))
    if "cpu" in dirs:
        cpu = dirs["cpu"]
        if limits["cpu_shares"]:
            writes.append((cpu / "cpu.shares", str(limits["cpu_shares"])))
        if limits["cpu_period"]:  # the period first: the quota is checked against it
            writes.append((cpu / "cpu.cfs_period_us", str(limits["cpu_period"])))
        if limits["cpu_quota"]:
            writes.append((cpu / "cpu.cfs_quota_us", str(limits["cpu_quota"])))
    if "cpuset" in dirs:
        # never empty: no process could join the cgroup (the parent's, when not given)
        writes.append((dirs["cpuset"] / "cpuset.cpus",
                       str(limits["cpuset_cpus"]) or parent_cpuset[0]))
        writes.append((dirs["cpuset"] / "cpuset.mems",
                       str(limits["cpuset_mems"]) or parent_cpuset[1]))
    if "pids" in dirs and (limits["pids_limit"] or not fresh):  # update to 0: no limit
        writes.append((dirs["pids"] / "pids.max", str(limits["pids_limit"] or "max")))
    return writes


def knobs_v2(path: Path, have: set[str], limits: dict[str, object], fresh: bool, *,
             swap: bool) -> list[tuple[Path, str]]:
    """v2's (file, value) writes in the container's cgroup `path`, in order. `have`: the
    controllers enabled for it; `swap`: it has memory.swap.max."""
    writes: list[tuple[Path, str]] = []
    memory = int(str(limits["memory"]))
    if "memory" in have and memory:
        writes.append((path / "memory.max", str(memory)))
        if swap:  # v2 counts swap alone: the total minus the RAM
            total = swap_total(limits)
            writes.append((path / "memory.swap.max",
                           "max" if total < 0 else str(total - memory)))
    if "memory" in have and limits["memory_reservation"]:
        writes.append((path / "memory.low", str(limits["memory_reservation"])))
    if "cpu" in have:
        if limits["cpu_shares"]:
            writes.append((path / "cpu.weight", str(cpu_weight(int(str(limits["cpu_shares"]))))))
        quota, period = int(str(limits["cpu_quota"])), int(str(limits["cpu_period"]))
        if quota or period:  # "QUOTA PERIOD", or "max PERIOD": no quota
            writes.append((path / "cpu.max",
                           f"{quota if quota > 0 else 'max'} {period or CPU_PERIOD}"))
    if "cpuset" in have:
        if limits["cpuset_cpus"]:
            writes.append((path / "cpuset.cpus", str(limits["cpuset_cpus"])))
        if limits["cpuset_mems"]:
            writes.append((path / "cpuset.mems", str(limits["cpuset_mems"])))
    if "pids" in have and (limits["pids_limit"] or not fresh):  # update to 0: no limit
        writes.append((path / "pids.max", str(limits["pids_limit"] or "max")))
    return writes
