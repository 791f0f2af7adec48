"""cgroups: the container's processes as one group the kernel can freeze, count and limit.

Read through the facts: the unified v2 hierarchy (`cgroup.controllers` at the root) or v1,
where each controller has its own hierarchy (these machines: v1 hybrid). A container's
cgroup is `shellctr/<id>` (or `<--cgroup-parent>/<id>`) in each hierarchy shellctr uses:
its *group*, the path every function here takes (parts.cgroups names and limits it).
init.py puts PID 1 in it before exec, and `exec` puts each exec'd process in it, so every
process of the container is inside.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from posixpath import join

from shellctr.core.cmd import Cmd, path_arg
from shellctr.core.errors import ShellctrError
from shellctr.core.facts import Facts
from shellctr.core.host import Host, Rollback
from shellctr.parts.cgroups import (
    LIMIT_DEFAULTS,
    MIN_MEMORY,
    NEEDS,
    is_own,
    knobs_v1,
    knobs_v2,
    parse_cpu_flags,
    parse_cpu_list,
    parse_int,
    parse_size,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

CPU_ONLINE = "/sys/devices/system/cpu/online"  # when there is no cpuset to ask
NODE_ONLINE = "/sys/devices/system/node/online"
# v1: the hierarchies a container gets a cgroup in (blkio: only counted, for `stats`)
V1_CONTROLLERS = ("freezer", "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices")
# v2: enabled for shellctr's children (io: only counted, for `stats`)
V2_CONTROLLERS = ("cpu", "memory", "pids", "cpuset", "io")


def unified(facts: Facts) -> bool:
    return facts.exists(join(facts.cgroup_root_at, "cgroup.controllers"))


def v1_hierarchies(facts: Facts) -> list[str]:
    """The v1 controllers mounted here, one per hierarchy (`cpu` and `cpuacct` may be one
    hierarchy through symlinks to `cpu,cpuacct`: listed once)."""
    seen: set[str] = set()
    found = []
    for controller in V1_CONTROLLERS:
        path = facts.cgroup_root / controller
        if facts.is_dir(path) and (real := os.path.realpath(path)) not in seen:
            seen.add(real)
            found.append(controller)
    return found


def available(facts: Facts) -> set[str]:
    """The controllers that can limit a container here."""
    root = facts.cgroup_root
    if unified(facts):
        return set(read(facts, root / "cgroup.controllers").split())
    return {name for name in V1_CONTROLLERS if facts.is_dir(root / name)}


def container_cgroups(facts: Facts, group: str) -> list[Path]:
    """The container's cgroup directory in each hierarchy shellctr uses."""
    root = facts.cgroup_root
    if unified(facts):
        return [root / group]
    return [root / controller / group for controller in v1_hierarchies(facts)]


def cgroup_dir(facts: Facts, group: str, controller: str) -> Path:
    """Where the container's knobs of `controller` are."""
    if unified(facts):
        return facts.cgroup_root / group
    return facts.cgroup_root / controller / group


def read(facts: Facts, path: Path | str) -> str:
    """A cgroup file's text, stripped; "" if it cannot be read (absent, dry run)."""
    return facts.read_text(path, "").strip()


def parent_hierarchy(facts: Facts, path: Path) -> Path:
    """v1: the hierarchy's root a cgroup path lies in (/sys/fs/cgroup/<controller>)."""
    return facts.cgroup_root / path.relative_to(facts.cgroup_root).parts[0]


def create(host: Host, group: str, rollback: Rollback,
           limits: dict[str, object] | None = None) -> list[Path]:
    """Make the container's cgroups and write its limits; the undo removes them."""
    facts = host.facts
    limits = {**LIMIT_DEFAULTS, **(limits or {})}
    paths = container_cgroups(facts, group)
    enabled: set[str] = set()  # v2: the controllers the parent enables for its children
    for path in paths:
        host.make_cgroup(path, rollback=rollback)
        enabled = prepare_parent(host, path.parent, fresh=is_own(group))
    if paths and unified(facts):
        check_delegated(paths[0].parent, enabled, limits)
    if paths:
        for path, value in knobs(facts, group, limits):
            host.write_value(path, value)
    return paths


def device_cgroup(facts: Facts) -> bool:
    """Whether this host has a device cgroup shellctr can set: v1's devices hierarchy,
    or v2 (a BPF device program, core/bpf.py)."""
    return unified(facts) or facts.is_dir(facts.cgroup_root / "devices")


def restrict_devices(host: Host, group: str, rules: list[str]) -> bool:
    """The device cgroup: v1's devices.deny/devices.allow; False where this host has no
    v1 devices hierarchy (v2: the caller confines devices another way)."""
    facts = host.facts
    if not device_cgroup(facts):
        return False
    if unified(facts):
        from shellctr.core.bpf import attach_device_program
        from shellctr.parts.cgroups import device_program, encode_ebpf

        path = cgroup_dir(facts, group, "")
        program = encode_ebpf(device_program(rules))
        # no tool of the host does this (bpftool is not installed): shown as what it is
        def attach() -> None:
            try:
                attach_device_program(os.fspath(path), program)
            except OSError as err:
                raise ShellctrError(f"cannot attach the device program to {path}: "
                                    f"{err.strerror}", "the kernel needs BPF cgroup "
                                    "support (CONFIG_CGROUP_BPF)") from None

        shown = [":", "attach", "a", "BPF_CGROUP_DEVICE", "program", "allowing", *rules]
        host.apply(Cmd([*shown, "to", path_arg(path)]), attach)
        return True
    from shellctr.parts.cgroups import device_knobs_v1

    for path, value in device_knobs_v1(cgroup_dir(facts, group, "devices"), rules):
        host.write_value(path, value)
    return True


def prepare_parent(host: Host, parent: Path, fresh: bool = False) -> set[str]:
    """What the parent (`shellctr`, or --cgroup-parent's path) needs before its child can
    be limited, at each level from the hierarchy's root down.

    v2: a controller's files appear in a child only once every level above enables it
    in cgroup.subtree_control. v1 cpuset: a new cgroup's cpus and mems are empty, and no
    process can join it until they are set: copy them from the level above.
    `fresh`: shellctr's own parent, which goes with its last container (remove) and may
    be new whenever this runs (a --dry-run script, later): filled whatever it holds now.
    """
    facts = host.facts
    top = facts.cgroup_root if unified(facts) else parent_hierarchy(facts, parent)
    levels = [parent, *parent.parents]
    levels = list(reversed(levels[:levels.index(top) + 1]))  # the root first
    enabled: set[str] = set()  # v2: at every level, so in the parent's children
    if unified(facts):
        wanted = [name for name in V2_CONTROLLERS if name in available(facts)]
        enabled = set(wanted)
        for level in levels:
            renew = fresh and level == parent
            already = [] if renew else read(facts, level / "cgroup.subtree_control").split()
            for name in wanted:
                if name not in already:
                    try:
                        host.write_value(level / "cgroup.subtree_control", f"+{name}")
                    except OSError:  # not delegated to us: the flags needing it are refused
                        enabled.discard(name)
    elif top.name == "cpuset":
        for level in levels[1:]:
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (fresh and level == parent) or not read(facts, level / name):
                    host.write_value(level / name, read(facts, level.parent / name))
    return enabled


def check_delegated(parent: Path, enabled: set[str], limits: dict[str, object]) -> None:
    """v2: a limit whose controller the parent could not enable has no file to write."""
    for key, value in limits.items():
        if value != LIMIT_DEFAULTS[key] and NEEDS[key] not in enabled:
            raise ShellctrError(f"the {NEEDS[key]} controller is not enabled in {parent} "
                                f"for --{key.replace('_', '-')}",
                                "the host does not delegate it: drop that flag")


def knobs(facts: Facts, group: str, limits: dict[str, object],
          fresh: bool = True) -> list[tuple[Path, str]]:
    """The (file, value) writes that give the container its limits, in order; not
    `fresh`: `update` of a cgroup that may have other limits already."""
    have = available(facts)
    if unified(facts):
        path = cgroup_dir(facts, group, "")
        return knobs_v2(path, have, limits, fresh,
                        swap=facts.exists(path / "memory.swap.max"))
    dirs: dict[str, Path] = {name: cgroup_dir(facts, group, name)
                             for name in ("memory", "cpu", "cpuset", "pids") if name in have}
    memsw = dirs["memory"] / "memory.memsw.limit_in_bytes" if "memory" in dirs else None
    parent = dirs["cpuset"].parent if "cpuset" in dirs else None
    cpuset = ("", "")
    if parent is not None:
        cpuset = tuple(read(facts, parent / name) or read(facts, parent.parent / name)
                       for name in ("cpuset.cpus", "cpuset.mems"))  # type: ignore[assignment]
    swap = memsw is not None and (facts.exists(memsw) or swap_accounting(facts))
    return knobs_v1(dirs, limits, fresh, swap=swap, parent_cpuset=cpuset)


def swap_accounting(facts: Facts) -> bool:
    """v1: whether the kernel counts swap (memsw files exist only with swapaccount=1)."""
    return facts.exists(facts.cgroup_root / "memory" / "memory.memsw.limit_in_bytes")


def update(host: Host, group: str, limits: dict[str, object]) -> None:
    """`update` of a running container: write its limits live."""
    for path, value in knobs(host.facts, group, limits, fresh=False):
        try:
            host.write_value(path, value)
        except OSError as err:  # e.g. EBUSY: a memory limit below what it uses now
            raise ShellctrError(f"cannot write {value} to {path}: {err.strerror}",
                                "the container may use more than the new limit") from None


def oom_killed(facts: Facts, group: str) -> bool:
    """Whether the kernel's OOM killer killed a process of the container."""
    v2 = unified(facts)
    for path in container_cgroups(facts, group):
        name = "memory.events" if v2 else "memory.oom_control"
        if v2 or parent_hierarchy(facts, path).name == "memory":
            lines = facts.read_text(path / name, "").splitlines()
            counts = dict(line.split() for line in lines if len(line.split()) == 2)
            if int(counts.get("oom_kill", "0")) > 0:
                return True
    return False


def remove(host: Host, group: str) -> None:
    """Remove the container's cgroups, and shellctr's parent once unused.

    The kernel ends a pid namespace's processes when its PID 1 dies, but they may take
    a moment to be gone: the cgroup is busy (EBUSY) until then. Processes still there
    after a grace second (a crash left them, or they escaped the pid namespace's end)
    are killed.
    """
    for path in container_cgroups(host.facts, group):
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

    facts = host.facts
    kill_file = facts.cgroup_root / group / "cgroup.kill"
    if unified(facts) and facts.exists(kill_file):
        host.write_value(kill_file, "1")
        return
    if is_frozen(facts, group):  # a frozen process acts on SIGKILL only once thawed
        freeze(host, group, frozen=False)
    for pid in procs(facts, group):
        host.kill(pid, signal.SIGKILL)


def remove_parent_if_unused(host: Host, parent: Path) -> None:
    """Other shellctr processes create and remove cgroups beside ours at the same time:
    the parent may gain a child, or be gone, at any moment."""
    if not any(host.facts.is_dir(parent / name) for name in host.facts.listdir(parent)):
        host.remove_cgroup(parent, if_unused=True)


def freeze(host: Host, group: str, frozen: bool) -> None:
    """pause / unpause: the freezer stops every process of the container at once; the
    freezer works asynchronously, so wait until it reports the state asked for."""
    facts = host.facts
    for path in container_cgroups(facts, group):
        if unified(facts):  # the kernel reports it in cgroup.events
            host.write_value(path / "cgroup.freeze", "1" if frozen else "0",
                             effect=frozen_events(path, frozen))
        elif parent_hierarchy(facts, path).name == "freezer":
            host.write_value(path / "freezer.state", "FROZEN" if frozen else "THAWED")
    wait_frozen(facts, group, frozen)


def frozen_events(path: Path, frozen: bool) -> Callable[[Facts], None]:
    """v2: what the kernel then reports in cgroup.events (for --dry-run's facts)."""
    def planned(facts: Facts) -> None:
        facts.plan_write(path / "cgroup.events", f"frozen {int(frozen)}\n".encode())

    return planned


def is_frozen(facts: Facts, group: str, v2: bool | None = None) -> bool:
    """Whether the freezer holds the group (v1: no freezer hierarchy, no freezing). Two
    reads at most, one given `v2` (unified(facts), which `ps` asks once for every running
    container); as strings: no pathlib."""
    root = facts.cgroup_root_at
    if unified(facts) if v2 is None else v2:
        return "frozen 1" in facts.read_text(join(root, group, "cgroup.events"), "").splitlines()
    return facts.read_text(join(root, "freezer", group, "freezer.state"), "").strip() == "FROZEN"


def wait_frozen(facts: Facts, group: str, frozen: bool, timeout: float = 10.0) -> None:
    """Until the freezer reports `frozen` (under --dry-run, the plan's knob says so)."""
    deadline = time.monotonic() + timeout
    while is_frozen(facts, group) != frozen:
        if time.monotonic() > deadline:
            raise ShellctrError(f"the freezer did not {'freeze' if frozen else 'thaw'} "
                                "the container in time")
        time.sleep(0.01)


def procs(facts: Facts, group: str) -> list[int]:
    """Host pids of every process in the container's cgroup."""
    for path in container_cgroups(facts, group):
        try:
            return [int(line) for line in facts.read_text(path / "cgroup.procs").split()]
        except FileNotFoundError:
            continue
    return []


def has_cgroups(facts: Facts, group: str) -> bool:
    return any(facts.is_dir(path) for path in container_cgroups(facts, group))


# -- the flags, checked against this host --------------------------------------------------
def host_list(facts: Facts, v1_name: str, v2_name: str, fallback: str) -> set[int]:
    """The cpus (or memory nodes) a container can be given here."""
    root = facts.cgroup_root
    text = read(facts, root / v2_name if unified(facts) else root / "cpuset" / v1_name)
    text = text or read(facts, fallback)
    return parse_cpu_list(text) if text else set(range(os.cpu_count() or 1))


def host_cpus(facts: Facts) -> set[int]:
    return host_list(facts, "cpuset.effective_cpus", "cpuset.cpus.effective", CPU_ONLINE)


def host_mems(facts: Facts) -> set[int]:
    return host_list(facts, "cpuset.effective_mems", "cpuset.mems.effective",
                     NODE_ONLINE) or {0}


def parse_limits(facts: Facts, flags: dict[str, object],
                 current: dict[str, object] | None = None) -> dict[str, object]:
    """The limit flags (as typed: `-m 512m`, `--cpus 1.5`...) as config values, checked
    against this host; `current`: the container's limits, which `update` changes."""
    limits = dict(current or LIMIT_DEFAULTS)
    given: dict[str, object] = {key: value for key, value in flags.items()
                                if value not in (None, False)}
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
    if "memory_swap" in given and not unified(facts) and not swap_accounting(facts):
        sys.stderr.write("WARNING: Your kernel does not support swap limit capabilities "
                         "or the cgroup is not mounted. Memory limited without swap.\n")
    reservation = int(str(limits["memory_reservation"]))
    if memory and reservation > memory:
        raise ShellctrError("minimum memory limit can not be less than memory reservation "
                            "limit", "give --memory-reservation at most -m")
    if given.get("oom_kill_disable"):
        if unified(facts):
            raise ShellctrError("--oom-kill-disable is not supported on cgroup v2",
                                "the kernel's v2 memory controller has no such switch")
        if not memory:  # Docker's warning: a runaway process would take the host's memory
            sys.stderr.write("WARNING: Disabling the OOM killer on containers without "
                             "setting a '-m/--memory' limit may be dangerous; ignored.\n")
        limits["oom_kill_disable"] = bool(memory)
    parse_cpu_flags(given, limits, len(host_cpus(facts)) if "cpus" in given else 0)
    for key, v1_name, v2_name, fallback in (
            ("cpuset_cpus", "cpuset.effective_cpus", "cpuset.cpus.effective", CPU_ONLINE),
            ("cpuset_mems", "cpuset.effective_mems", "cpuset.mems.effective", NODE_ONLINE)):
        if key in given:
            flag = "--" + key.replace("_", "-")
            text = str(given[key]).strip()
            wanted = parse_cpu_list(text, flag)
            have = host_list(facts, v1_name, v2_name, fallback) or {0}
            if not wanted <= have:
                absent = ",".join(map(str, sorted(wanted - have)))
                raise ShellctrError(f"requested {flag} {text} is not available: {absent} "
                                    f"not in {','.join(map(str, sorted(have)))}",
                                    "see the host's /sys/devices/system/cpu/online")
            limits[key] = text
    if "pids_limit" in given:  # 0 or -1: no limit
        limits["pids_limit"] = max(parse_int(str(given["pids_limit"]), "--pids-limit"), 0)
    missing = {NEEDS.get(key, "") for key in given} - available(facts) - {""}
    if missing:
        flags_text = ", ".join(f"--{key.replace('_', '-')}" for key in given
                               if NEEDS.get(key) in missing)
        raise ShellctrError(f"this host has no {', '.join(sorted(missing))} cgroup controller "
                            f"for {flags_text}", "drop those flags")
    return limits
