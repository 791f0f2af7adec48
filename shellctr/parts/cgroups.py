"""cgroups as values: a container's group name, its limit flags as config values, and the
knob writes that give it those limits. Pure: what the host has (its hierarchies, its
controllers, its cpus) comes in as arguments, read by engine/cgroup.py through the facts.
"""

from __future__ import annotations

from shellctr.core.errors import ShellctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

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


# -- the device cgroup (issue 13, defect 5) ------------------------------------------------
# the OCI runtime spec's (and runc's) default rules: mknod of any node (opening it is
# what the rules decide), the standard nodes, the container's own ptys; tun, fuse and
# loop-control are not among them
DEFAULT_DEVICE_RULES = (
    "c *:* m", "b *:* m",
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",  # null zero full random
    # (urandom)
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm",  # tty console ptmx
    "c 136:* rwm",  # /dev/pts/N
)


def device_rules(devices: list[dict[str, object]], extra: list[str],
                 privileged: bool) -> list[str]:
    """The allow rules of a container: the defaults, each --device's node, then
    --device-cgroup-rule's; --privileged: every device ("a *:* rwm")."""
    if privileged:
        return ["a *:* rwm"]
    rules = list(DEFAULT_DEVICE_RULES)
    rules += [f"{d['kind']} {d['major']}:{d['minor']} {d['permissions']}" for d in devices]
    return rules + [rule for rule in extra if rule not in rules]


def device_knobs_v1(path: Path, rules: list[str]) -> list[tuple[Path, str]]:
    """v1: deny everything, then allow each rule (devices.deny/devices.allow)."""
    if rules == ["a *:* rwm"]:
        return [(path / "devices.allow", "a")]
    return [(path / "devices.deny", "a"), *((path / "devices.allow", rule) for rule in rules)]


# -- cgroup v2: the same rules as a BPF_PROG_TYPE_CGROUP_DEVICE program ---------------------
# eBPF opcodes (<linux/bpf.h>); ctx is struct bpf_cgroup_dev_ctx {access_type, major, minor}
# with access_type = access << 16 | type (type: 1 block, 2 char; access: 1 mknod, 2 read,
# 4 write)
EBPF_LDX_W, EBPF_AND32_K, EBPF_RSH32_K, EBPF_MOV32_REG = 0x61, 0x54, 0x74, 0xBC
EBPF_MOV64_K, EBPF_JNE_K, EBPF_EXIT = 0xB7, 0x55, 0x95
DEVICE_TYPES = {"b": 1, "c": 2}
DEVICE_ACCESS = {"m": 1, "r": 2, "w": 4}
EInsn = tuple[int, int, int, int, int]  # code, dst, src, off, imm


def device_program(rules: list[str]) -> list[EInsn]:
    """An allow-list device program: 1 (allow) when a rule matches, else 0 (deny), as
    runc's for cgroup v2. r2: type, r3: access, r4: major, r5: minor."""
    program: list[EInsn] = [
        (EBPF_LDX_W, 2, 1, 0, 0), (EBPF_AND32_K, 2, 0, 0, 0xFFFF),
        (EBPF_LDX_W, 3, 1, 0, 0), (EBPF_RSH32_K, 3, 0, 0, 16),
        (EBPF_LDX_W, 4, 1, 4, 0), (EBPF_LDX_W, 5, 1, 8, 0),
    ]
    for rule in rules:
        kind, numbers, access = rule.split()
        major, _, minor = numbers.partition(":")
        checks: list[EInsn] = []
        if kind != "a":
            checks.append((EBPF_JNE_K, 2, 0, -1, DEVICE_TYPES[kind]))
        allowed = sum(DEVICE_ACCESS[c] for c in access)
        if allowed != 7:  # the access asked for must lie within the rule's
            checks += [(EBPF_MOV32_REG, 1, 3, 0, 0), (EBPF_AND32_K, 1, 0, 0, ~allowed & 7),
                       (EBPF_JNE_K, 1, 0, -1, 0)]
        if kind != "a" and major != "*":
            checks.append((EBPF_JNE_K, 4, 0, -1, int(major)))
        if kind != "a" and minor != "*":
            checks.append((EBPF_JNE_K, 5, 0, -1, int(minor)))
        block = [*checks, (EBPF_MOV64_K, 0, 0, 0, 1), (EBPF_EXIT, 0, 0, 0, 0)]
        # a failed check jumps past the block: to the next rule
        program += [(code, dst, src, len(block) - i - 1 if off == -1 else off, imm)
                    for i, (code, dst, src, off, imm) in enumerate(block)]
        if not checks:  # matches every device ("a *:* rwm"): the rest is unreachable,
            return program  # which the verifier refuses
    return [*program, (EBPF_MOV64_K, 0, 0, 0, 0), (EBPF_EXIT, 0, 0, 0, 0)]


def encode_ebpf(program: list[EInsn]) -> bytes:
    """struct bpf_insn[]: u8 code, u8 dst:4 | src:4 << 4, s16 off, s32 imm."""
    import struct

    return b"".join(struct.pack("<BBhi", code, dst | src << 4, off,
                                imm if imm < 1 << 31 else imm - (1 << 32))
                    for code, dst, src, off, imm in program)


def run_device_program(program: list[EInsn], kind: str, major: int, minor: int,
                       access: str) -> int:
    """What the kernel's verifier-checked program would return (for tests)."""
    regs = [0] * 11
    ctx = [(sum(DEVICE_ACCESS[c] for c in access) << 16) | DEVICE_TYPES[kind], major, minor]
    pc = 0
    while True:
        code, dst, src, off, imm = program[pc]
        pc += 1
        if code == EBPF_LDX_W:
            regs[dst] = ctx[off // 4]
        elif code == EBPF_AND32_K:
            regs[dst] &= imm & 0xFFFFFFFF
        elif code == EBPF_RSH32_K:
            regs[dst] >>= imm
        elif code == EBPF_MOV32_REG:
            regs[dst] = regs[src]
        elif code == EBPF_MOV64_K:
            regs[dst] = imm
        elif code == EBPF_JNE_K:
            if regs[dst] != imm:
                pc += off
        elif code == EBPF_EXIT:
            return regs[0]
