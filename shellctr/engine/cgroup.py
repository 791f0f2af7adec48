"""cgroups: the container's processes as one group the kernel can freeze (and, later,
count and limit).

Detected once per command: the unified v2 hierarchy (`/sys/fs/cgroup/cgroup.controllers`
exists) or v1, where each controller has its own hierarchy (these machines: v1 hybrid).
A container's cgroup is `shellctr/<id>` (or `<--cgroup-parent>/<id>`) in each hierarchy
shellctr uses: its *group*, the path every function here takes. init.py puts PID 1 in it
before exec, and `exec` puts each exec'd process in it, so every process of the
container is inside.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path

from shellctr.core.errors import ShellctrError
from shellctr.core.host import Host, Rollback

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_ONLINE = Path("/sys/devices/system/cpu/online")  # when there is no cpuset to ask
NODE_ONLINE = Path("/sys/devices/system/node/online")
PARENT = "shellctr"
# v1: the hierarchies a container gets a cgroup in (blkio: only counted, for `stats`)
V1_CONTROLLERS = ("freezer", "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio")
# v2: enabled for shellctr's children (io: only counted, for `stats`)
V2_CONTROLLERS = ("cpu", "memory", "pids", "cpuset", "io")
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


def unified() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def v1_hierarchies() -> list[str]:
    """The v1 controllers mounted here, one per hierarchy (`cpu` and `cpuacct` may be one
    hierarchy through symlinks to `cpu,cpuacct`: listed once)."""
    seen: set[str] = set()
    found = []
    for controller in V1_CONTROLLERS:
        path = CGROUP_ROOT / controller
        if path.is_dir() and (real := os.path.realpath(path)) not in seen:
            seen.add(real)
            found.append(controller)
    return found


def available() -> set[str]:
    """The controllers that can limit a container here."""
    if unified():
        return set(read(CGROUP_ROOT / "cgroup.controllers").split())
    return {name for name in V1_CONTROLLERS if (CGROUP_ROOT / name).is_dir()}


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


def container_cgroups(group: str) -> list[Path]:
    """The container's cgroup directory in each hierarchy shellctr uses."""
    if unified():
        return [CGROUP_ROOT / group]
    return [CGROUP_ROOT / controller / group for controller in v1_hierarchies()]


def cgroup_dir(group: str, controller: str) -> Path:
    """Where the container's knobs of `controller` are."""
    if unified():
        return CGROUP_ROOT / group
    return CGROUP_ROOT / controller / group


def read(path: Path) -> str:
    """A cgroup file's text, stripped; "" if it cannot be read (absent, dry run)."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def create(host: Host, group: str, rollback: Rollback,
           limits: dict[str, object] | None = None) -> list[Path]:
    """Make the container's cgroups and write its limits; the undo removes them."""
    limits = {**LIMIT_DEFAULTS, **(limits or {})}
    paths = container_cgroups(group)
    enabled: set[str] = set()  # v2: the controllers the parent enables for its children
    # shellctr's own parent goes with its last container (remove): it may be gone by
    # the time a --dry-run script is run, so the script makes and fills it in any case
    fleeting = is_own(group)
    for path in paths:
        host.make_cgroup(path, rollback=rollback)
        enabled = prepare_parent(host, path.parent, fleeting)
    if paths and unified() and not host.dry_run:
        check_delegated(paths[0].parent, enabled, limits)
    if paths:
        for path, value in knobs(group, limits):
            host.write_value(path, value)
    return paths


def prepare_parent(host: Host, parent: Path, fleeting: bool = False) -> set[str]:
    """What the parent (`shellctr`, or --cgroup-parent's path) needs before its child can
    be limited, at each level from the hierarchy's root down.

    v2: a controller's files appear in a child only once every level above enables it
    in cgroup.subtree_control. v1 cpuset: a new cgroup's cpus and mems are empty, and no
    process can join it until they are set: copy them from the level above.
    `fleeting` (shellctr's own parent): under --dry-run, as if the parent were new.
    """
    top = CGROUP_ROOT if unified() else parent_hierarchy(parent)
    levels = [parent, *parent.parents]
    levels = list(reversed(levels[:levels.index(top) + 1]))  # the root first
    enabled: set[str] = set()  # v2: at every level, so in the parent's children
    if unified():
        wanted = [name for name in V2_CONTROLLERS if name in available()]
        enabled = set(wanted)
        for level in levels:
            fresh = fleeting and host.dry_run and level == parent
            already = [] if fresh else read(level / "cgroup.subtree_control").split()
            for name in wanted:
                if name not in already:
                    try:
                        host.write_value(level / "cgroup.subtree_control", f"+{name}")
                    except OSError:  # not delegated to us: the flags needing it are refused
                        enabled.discard(name)
    elif top.name == "cpuset":
        for level in levels[1:]:
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (fleeting and host.dry_run and level == parent) or not read(level / name):
                    host.write_value(level / name, read(level.parent / name))
    return enabled


def parent_hierarchy(path: Path) -> Path:
    """v1: the hierarchy's root a cgroup path lies in (/sys/fs/cgroup/<controller>)."""
    return CGROUP_ROOT / path.relative_to(CGROUP_ROOT).parts[0]


def check_delegated(parent: Path, enabled: set[str], limits: dict[str, object]) -> None:
    """v2: a limit whose controller the parent could not enable has no file to write."""
    for key, value in limits.items():
        if value != LIMIT_DEFAULTS[key] and NEEDS[key] not in enabled:
            raise ShellctrError(f"the {NEEDS[key]} controller is not enabled in {parent} "
                                f"for --{key.replace('_', '-')}",
                                "the host does not delegate it: drop that flag")


def knobs(group: str, limits: dict[str, object], fresh: bool = True) -> list[tuple[Path, str]]:
    """The (file, value) writes that give the container its limits, in order; not
    `fresh`: `update` of a cgroup that may have other limits already."""
    return knobs_v2(group, limits, fresh) if unified() else knobs_v1(group, limits, fresh)


def swap_total(limits: dict[str, object]) -> int:
    """Docker's --memory-swap: RAM + swap; -1: unlimited swap; unset: twice -m."""
    memory, swap = int(str(limits["memory"])), int(str(limits["memory_swap"]))
    return swap if swap else 2 * memory


def knobs_v1(group: str, limits: dict[str, object], fresh: bool) -> list[tuple[Path, str]]:
    have = available()
    writes: list[tuple[Path, str]] = []
    memory = int(str(limits["memory"]))
    mem = cgroup_dir(group, "memory")
    if "memory" in have and memory:
        memsw = mem / "memory.memsw.limit_in_bytes"
        swap = memsw.exists() or swap_accounting()  # the root's: under --dry-run too
        if swap and not fresh:
            # the kernel keeps limit <= memsw: lift memsw first, set the limit, then it
            writes.append((memsw, UNLIMITED))
        writes.append((mem / "memory.limit_in_bytes", str(memory)))
        if swap:
            writes.append((memsw, str(swap_total(limits))))
    if "memory" in have:
        if limits["memory_reservation"]:
            writes.append((mem / "memory.soft_limit_in_bytes",
                           str(limits["memory_reservation"])))
        if limits["oom_kill_disable"]:  # processes over the limit wait instead of dying
            writes.append((mem / "memory.oom_control", "1"))
    cpu = cgroup_dir(group, "cpu")
    if "cpu" in have:
        if limits["cpu_shares"]:
            writes.append((cpu / "cpu.shares", str(limits["cpu_shares"])))
        if limits["cpu_period"]:  # the period first: the quota is checked against it
            writes.append((cpu / "cpu.cfs_period_us", str(limits["cpu_period"])))
        if limits["cpu_quota"]:
            writes.append((cpu / "cpu.cfs_quota_us", str(limits["cpu_quota"])))
    if "cpuset" in have:
        # never empty: no process could join the cgroup (the parent's, when not given)
        cpuset = cgroup_dir(group, "cpuset")
        parent = cpuset.parent
        writes.append((cpuset / "cpuset.cpus",
                       str(limits["cpuset_cpus"]) or read(parent / "cpuset.cpus")
                       or read(parent.parent / "cpuset.cpus")))
        writes.append((cpuset / "cpuset.mems",
                       str(limits["cpuset_mems"]) or read(parent / "cpuset.mems")
                       or read(parent.parent / "cpuset.mems")))
    if "pids" in have and (limits["pids_limit"] or not fresh):  # update to 0: no limit
        writes.append((cgroup_dir(group, "pids") / "pids.max",
                       str(limits["pids_limit"] or "max")))
    return writes


def swap_accounting() -> bool:
    """v1: whether the kernel counts swap (memsw files exist only with swapaccount=1)."""
    return (CGROUP_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()


def cpu_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) as v2 cpu.weight (1..10000), converted as runc does."""
    return 1 + ((shares - 2) * 9999) // 262142


def knobs_v2(group: str, limits: dict[str, object], fresh: bool) -> list[tuple[Path, str]]:
    path = cgroup_dir(group, "")
    have = available()
    writes: list[tuple[Path, str]] = []
    memory = int(str(limits["memory"]))
    if "memory" in have and memory:
        writes.append((path / "memory.max", str(memory)))
        if (path / "memory.swap.max").exists():  # v2 counts swap alone: total minus RAM
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


def update(host: Host, group: str, limits: dict[str, object]) -> None:
    """`update` of a running container: write its limits live."""
    for path, value in knobs(group, limits, fresh=False):
        try:
            host.write_value(path, value)
        except OSError as err:  # e.g. EBUSY: a memory limit below what it uses now
            raise ShellctrError(f"cannot write {value} to {path}: {err.strerror}",
                                "the container may use more than the new limit") from None


def oom_killed(group: str) -> bool:
    """Whether the kernel's OOM killer killed a process of the container."""
    for path in container_cgroups(group):
        name = "memory.events" if unified() else "memory.oom_control"
        if unified() or parent_hierarchy(path).name == "memory":
            try:
                lines = (path / name).read_text().splitlines()
            except FileNotFoundError:
                continue
            counts = dict(line.split() for line in lines if len(line.split()) == 2)
            if int(counts.get("oom_kill", "0")) > 0:
                return True
    return False


def parse_size(text: str) -> int:
    """Docker's sizes: `512m`, `1g`, `1.5G`, `100k`, bytes; binary multiples."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", text.strip().lower())
    if match is None:
        raise ShellctrError(f"invalid size: {text!r}", "use a number with b, k, m or g")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " kmgtp".index(unit or " "))


def remove(host: Host, group: str) -> None:
    """Remove the container's cgroups, and shellctr's parent once unused.

    The kernel ends a pid namespace's processes when its PID 1 dies, but they may take
    a moment to be gone: the cgroup is busy (EBUSY) until then. Processes still there
    after a grace second (a crash left them, or they escaped the pid namespace's end)
    are killed.
    """
    for path in container_cgroups(group):
        start = time.monotonic()
        killed = False
        while host.exists(path):
            try:
                host.remove_cgroup(path)
            except OSError as err:
                waited = time.monotonic() - start
                if err.errno != errno.EBUSY or waited > 5.0:
                    raise
                if waited > 1.0 and not killed:
                    kill_all(host, group)
                    killed = True
                time.sleep(0.01)
        if is_own(group):
            remove_parent_if_unused(host, path.parent)


def kill_all(host: Host, group: str) -> None:
    """SIGKILL every process in the container's cgroups: v2 `cgroup.kill` does it in one
    write (frozen ones too); v1 thaws the freezer, then signals each pid listed."""
    import signal

    kill_file = CGROUP_ROOT / group / "cgroup.kill"
    if unified() and kill_file.exists():
        host.write_value(kill_file, "1")
        return
    if is_frozen(group):  # a frozen process acts on SIGKILL only once thawed
        freeze(host, group, frozen=False)
    for pid in procs(group):
        host.kill(pid, signal.SIGKILL)


def remove_parent_if_unused(host: Host, parent: Path) -> None:
    """Other shellctr processes create and remove cgroups beside ours at the same time:
    the parent may gain a child, or be gone, at any moment."""
    try:
        if any(entry.is_dir() for entry in parent.iterdir()):
            return
        host.remove_cgroup(parent)
    except OSError as err:
        if err.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT):
            raise


def freeze(host: Host, group: str, frozen: bool) -> None:
    """pause / unpause: the freezer stops every process of the container at once."""
    for path in container_cgroups(group):
        if unified():
            host.write_value(path / "cgroup.freeze", "1" if frozen else "0")
        elif parent_hierarchy(path).name == "freezer":
            host.write_value(path / "freezer.state", "FROZEN" if frozen else "THAWED")
    if not host.dry_run:
        wait_frozen(group, frozen)


def is_frozen(group: str) -> bool:
    for path in container_cgroups(group):
        try:
            if unified():
                events = (path / "cgroup.events").read_text()
                return "frozen 1" in events.splitlines()
            if parent_hierarchy(path).name == "freezer":
                return (path / "freezer.state").read_text().strip() == "FROZEN"
        except FileNotFoundError:
            return False
    return False


def wait_frozen(group: str, frozen: bool, timeout: float = 10.0) -> None:
    """The freezer works asynchronously: wait until it reports the state asked for."""
    deadline = time.monotonic() + timeout
    while is_frozen(group) != frozen:
        if time.monotonic() > deadline:
            raise ShellctrError(f"the freezer did not {'freeze' if frozen else 'thaw'} "
                                "the container in time")
        time.sleep(0.01)


def procs(group: str) -> list[int]:
    """Host pids of every process in the container's cgroup."""
    for path in container_cgroups(group):
        try:
            return [int(line) for line in (path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            continue
    return []


def has_cgroups(group: str) -> bool:
    return any(os.path.isdir(path) for path in container_cgroups(group))


# -- the flags -------------------------------------------------------------------------
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


def host_list(v1_name: str, v2_name: str, fallback: Path) -> set[int]:
    """The cpus (or memory nodes) a container can be given here."""
    text = read(CGROUP_ROOT / v2_name if unified() else CGROUP_ROOT / "cpuset" / v1_name)
    text = text or read(fallback)
    return parse_cpu_list(text) if text else set(range(os.cpu_count() or 1))


def host_cpus() -> set[int]:
    return host_list("cpuset.effective_cpus", "cpuset.cpus.effective", CPU_ONLINE)


def host_mems() -> set[int]:
    return host_list("cpuset.effective_mems", "cpuset.mems.effective", NODE_ONLINE) or {0}


def parse_int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ShellctrError(f"invalid value {text!r} for {flag}", "give a whole number") from None


def parse_limits(flags: dict[str, str | bool | None],
                 current: dict[str, object] | None = None) -> dict[str, object]:
    """The limit flags (as typed: `-m 512m`, `--cpus 1.5`...) as config values, checked
    against this host; `current`: the container's limits, which `update` changes."""
    limits = dict(current or LIMIT_DEFAULTS)
    given = {key: value for key, value in flags.items() if value not in (None, False)}
    for key in ("memory", "memory_reservation"):
        if key in given:
            limits[key] = parse_size(str(given[key]))
    if "memory" in given and 0 < int(str(limits["memory"])) < MIN_MEMORY:
        raise ShellctrError(f"memory limit {given['memory']} is too small",
                            "the minimum memory limit allowed is 6MB")
    if "memory_swap" in given:
        text = str(given["memory_swap"])
        limits["memory_swap"] = -1 if text.strip() == "-1" else parse_size(text)
    memory, swap = int(str(limits["memory"])), int(str(limits["memory_swap"]))
    if swap and not memory:
        raise ShellctrError("you should always set the memory limit when using the "
                            "memoryswap limit", "add -m")
    if swap > 0 and swap < memory:
        raise ShellctrError("minimum memoryswap limit should be larger than memory limit",
                            "give --memory-swap at least -m, or -1 for unlimited swap")
    if "memory_swap" in given and not unified() and not swap_accounting():
        sys.stderr.write("WARNING: Your kernel does not support swap limit capabilities "
                         "or the cgroup is not mounted. Memory limited without swap.\n")
    reservation = int(str(limits["memory_reservation"]))
    if memory and reservation > memory:
        raise ShellctrError("minimum memory limit can not be less than memory reservation "
                            "limit", "give --memory-reservation at most -m")
    if given.get("oom_kill_disable"):
        if unified():
            raise ShellctrError("--oom-kill-disable is not supported on cgroup v2",
                                "the kernel's v2 memory controller has no such switch")
        if not memory:  # Docker's warning: a runaway process would take the host's memory
            sys.stderr.write("WARNING: Disabling the OOM killer on containers without "
                             "setting a '-m/--memory' limit may be dangerous; ignored.\n")
        limits["oom_kill_disable"] = bool(memory)
    parse_cpu_flags(given, limits)
    for key, v1_name, v2_name, fallback in (
            ("cpuset_cpus", "cpuset.effective_cpus", "cpuset.cpus.effective", CPU_ONLINE),
            ("cpuset_mems", "cpuset.effective_mems", "cpuset.mems.effective", NODE_ONLINE)):
        if key in given:
            flag = "--" + key.replace("_", "-")
            text = str(given[key]).strip()
            wanted = parse_cpu_list(text, flag)
            have = host_list(v1_name, v2_name, fallback) or {0}
            if not wanted <= have:
                absent = ",".join(map(str, sorted(wanted - have)))
                raise ShellctrError(f"requested {flag} {text} is not available: {absent} "
                                    f"not in {','.join(map(str, sorted(have)))}",
                                    "see the host's /sys/devices/system/cpu/online")
            limits[key] = text
    if "pids_limit" in given:  # 0 or -1: no limit
        limits["pids_limit"] = max(parse_int(str(given["pids_limit"]), "--pids-limit"), 0)
    missing = {NEEDS.get(key, "") for key in given} - available() - {""}
    if missing:
        flags_text = ", ".join(f"--{key.replace('_', '-')}" for key in given
                               if NEEDS.get(key) in missing)
        raise ShellctrError(f"this host has no {', '.join(sorted(missing))} cgroup controller "
                            f"for {flags_text}", "drop those flags")
    return limits


def parse_cpu_flags(given: dict[str, str | bool], limits: dict[str, object]) -> None:
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
        count = len(host_cpus())
        if cpus != 0 and not 0.01 <= cpus <= count:
            raise ShellctrError(f"range of CPUs is from 0.01 to {count:.2f}, as there are "
                                f"only {count} CPUs available", "give a smaller --cpus")
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
