"""Seccomp: a profile in moby's JSON format compiled to a classic BPF filter, in Python.

The default is shellctr's own copy of Docker's default profile (seccomp_default.json):
every syscall fails with EPERM unless the allow list names it; some are allowed only
with a capability (`mount`, `unshare`, `setns`, `clone` with CLONE_NEW* flags need
CAP_SYS_ADMIN), some only on an architecture, some only with given arguments
(`personality`, `clone`). `--security-opt seccomp=PROFILE.json` gives another profile
in the same format, `seccomp=unconfined` none.

Why our own compiler (and not libseccomp through ctypes, or PyPI's pyseccomp): the
engine compiles the filter once per container (engine/confine.py: the container's
capabilities, this kernel) into the run dir, shown as `python -m shellctr.inside.seccomp
PROFILE CAP_... > FILE` (`main` below); init.py (PID 1, the host's Python, standard
library only) and shellctr-exec install it with one prctl(2) as their last step: no
library is loaded into the container's first process, and `--trace`/`--dry-run` show
the profile, not a blob. The program is the same linear shape libseccomp emits by
default (an arch check, then one comparison per syscall); a unit test reads it back
instruction by instruction.

Standard library only, like everything in inside/; no host reads but the profile and
the syscall table (the caller gives the architecture and kernel version). The engine
also checks a --security-opt seccomp=PROFILE.json with it at create.
"""

from __future__ import annotations

import os
import struct

# json's C half: `import json` would import re (~7 ms of every start and exec)
from shellctr.inside import jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROFILE = os.path.join(HERE, "seccomp_default.json")
SYSCALL_TABLE = os.path.join(HERE, "syscalls.json")

# -- classic BPF, <linux/filter.h> and <linux/seccomp.h> --------------------------------
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_ALU_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGT_K = 0x25
BPF_JMP_JGE_K = 0x35
BPF_JMP_JSET_K = 0x45
BPF_RET_K = 0x06
MAX_INSNS = 4096  # BPF_MAXINSNS
OFFSET_NR, OFFSET_ARCH, OFFSET_ARGS = 0, 4, 16  # in struct seccomp_data
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

# machine (uname -m) -> (AUDIT_ARCH_*, moby's arch name)
ARCHES = {"x86_64": (0xC000003E, "amd64"), "aarch64": (0xC00000B7, "arm64")}
EPERM = 1

Insn = tuple[int, int, int, int]  # code, jt, jf, k


class ProfileError(ValueError):
    """A seccomp profile that cannot be compiled: `message`, and what to do (`hint`)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def read_profile(text: str, origin: str) -> dict[str, Any]:
    """A profile's JSON, checked enough to compile (ProfileError says what is wrong)."""
    try:
        profile = jsonlite.loads(text)
    except ValueError as err:
        raise ProfileError(f"the seccomp profile {origin} is not JSON: {err}",
                           "give a profile in Docker's format") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("syscalls", []), list):
        raise ProfileError(f"the seccomp profile {origin} is not in Docker's format",
                           "it needs defaultAction and a syscalls list")
    action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"), origin)
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise ProfileError(f"the seccomp profile {origin} has a rule that is not an object")
        action(rule.get("action", ""), rule.get("errnoRet"), origin)
        for arg in rule.get("args") or []:
            if arg.get("op") not in COMPARISONS or not 0 <= int(arg.get("index", -1)) <= 5:
                raise ProfileError(f"the seccomp profile {origin} has an argument rule "
                                   f"{jsonlite.dumps(arg)} shellctr cannot compile",
                                   f"use index 0-5 and one of {', '.join(COMPARISONS)}")
    return profile


def load_profile(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as stream:
        return read_profile(stream.read(), path)


def default_profile() -> dict[str, Any]:
    return load_profile(DEFAULT_PROFILE)


def action(name: str, errno_ret: object, origin: str) -> int:
    """A profile action as the filter's return value."""
    errno = int(errno_ret) if isinstance(errno_ret, int) else EPERM
    values = {
        "SCMP_ACT_ALLOW": RET_ALLOW, "SCMP_ACT_ERRNO": RET_ERRNO | (errno & 0xFFFF),
        "SCMP_ACT_KILL": RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS, "SCMP_ACT_TRAP": RET_TRAP,
        "SCMP_ACT_LOG": RET_LOG, "SCMP_ACT_TRACE": RET_TRACE | (errno & 0xFFFF),
    }
    if name not in values:
        raise ProfileError(f"the seccomp profile {origin} has the action {name!r}, which "
                           "shellctr does not support",
                           f"use one of {', '.join(sorted(values))}")
    return values[name]


def syscall_numbers(machine: str) -> dict[str, int]:
    with open(SYSCALL_TABLE, encoding="utf-8") as stream:
        table = jsonlite.loads(stream.read())
    if machine not in table:
        raise ProfileError(f"shellctr has no syscall table for {machine}",
                           "run with --security-opt seccomp=unconfined")
    return table[machine]  # type: ignore[no-any-return]


# -- which rules apply --------------------------------------------------------------------
def applies(rule: dict[str, Any], caps: set[str], arch: str,
            kernel: tuple[int, ...]) -> bool:
    """moby's filter: every `includes` must hold, no `excludes` may."""
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    if any(cap in caps for cap in excludes.get("caps") or []):
        return False
    if arch in (excludes.get("arches") or []):
        return False
    if not all(cap in caps for cap in includes.get("caps") or []):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    minimum = includes.get("minKernel")
    return not minimum or kernel >= version(str(minimum))


def version(text: str) -> tuple[int, ...]:
    """`6.1.0-18-amd64` -> (6, 1, 0)."""
    numbers = []
    for word in text.replace("-", ".").split(".")[:3]:
        digits = "".join(c for c in word if c.isdigit()) if word[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def rules_by_syscall(profile: dict[str, Any], caps: set[str], arch: str,
                     kernel: tuple[int, ...], numbers: dict[str, int]
                     ) -> dict[int, list[tuple[list[dict[str, Any]], int]]]:
    """For each syscall number: its (argument conditions, return value) rules in order.
    Names this architecture has no number for are skipped, as moby skips them."""
    found: dict[int, list[tuple[list[dict[str, Any]], int]]] = {}
    for rule in profile.get("syscalls") or []:
        if not applies(rule, caps, arch, kernel):
            continue
        value = action(rule["action"], rule.get("errnoRet"), "")
        names = list(rule.get("names") or []) + ([rule["name"]] if rule.get("name") else [])
        for name in names:
            if name in numbers:
                found.setdefault(numbers[name], []).append((list(rule.get("args") or []),
                                                             value))
    return found


# -- the program --------------------------------------------------------------------------
COMPARISONS = ("SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_GT",
               "SCMP_CMP_GE", "SCMP_CMP_LT", "SCMP_CMP_LE")


def compare(arg: dict[str, Any], fail: int) -> list[Insn]:
    """Instructions that fall through when the 64-bit argument matches and jump forward
    `fail` instructions past their own end when it does not."""
    index, op = int(arg["index"]), str(arg["op"])
    value, mask = int(arg["value"]), int(arg.get("valueTwo") or 0)
    if op == "SCMP_CMP_MASKED_EQ":  # moby: value is the mask, valueTwo the expected value
        mask, value = value, mask
    hi, lo = OFFSET_ARGS + 8 * index + 4, OFFSET_ARGS + 8 * index  # little-endian halves
    vhi, vlo = value >> 32 & 0xFFFFFFFF, value & 0xFFFFFFFF
    if op in ("SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"):
        masked = op == "SCMP_CMP_MASKED_EQ"
        block: list[tuple[int, int, int, int]] = []
        for offset, half, mhalf in ((hi, vhi, mask >> 32), (lo, vlo, mask & 0xFFFFFFFF)):
            block.append((BPF_LD_W_ABS, 0, 0, offset))
            if masked:
                block.append((BPF_ALU_AND_K, 0, 0, mhalf))
            block.append((BPF_JMP_JEQ_K, 0, -1, half))  # -1: to the fail target
        return resolve_fail(block, fail)
    if op == "SCMP_CMP_NE":
        # fails only when both halves are equal
        return [(BPF_LD_W_ABS, 0, 0, hi), (BPF_JMP_JEQ_K, 0, 2, vhi),
                (BPF_LD_W_ABS, 0, 0, lo), (BPF_JMP_JEQ_K, fail, 0, vlo)]
    # unsigned 64-bit orderings: decided by the high half unless it is equal
    strict = op in ("SCMP_CMP_GT", "SCMP_CMP_LE")
    low_jump = BPF_JMP_JGT_K if strict else BPF_JMP_JGE_K
    if op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        return [(BPF_LD_W_ABS, 0, 0, hi), (BPF_JMP_JGT_K, 3, 0, vhi),
                (BPF_JMP_JEQ_K, 0, fail + 2, vhi),
                (BPF_LD_W_ABS, 0, 0, lo), (low_jump, 0, fail, vlo)]
    # LT is "not GE", LE is "not GT"
    return [(BPF_LD_W_ABS, 0, 0, hi), (BPF_JMP_JGT_K, fail + 3, 0, vhi),
            (BPF_JMP_JEQ_K, 0, 2, vhi),
            (BPF_LD_W_ABS, 0, 0, lo), (low_jump, fail, 0, vlo)]


def resolve_fail(block: list[Insn], fail: int) -> list[Insn]:
    """Replace the -1 false-jumps of `block` with jumps to `fail` past its end."""
    out = []
    for i, (code, jt, jf, k) in enumerate(block):
        if jf == -1:
            jf = len(block) - i - 1 + fail
        out.append((code, jt, jf, k))
    return out


def build(profile: dict[str, Any], caps: set[str], machine: str,
          kernel: tuple[int, ...]) -> list[Insn]:
    """The filter for a process with capabilities `caps` (names, CAP_...) on `machine`."""
    if machine not in ARCHES:
        raise ProfileError(f"shellctr cannot build a seccomp filter for {machine}",
                           "run with --security-opt seccomp=unconfined")
    audit_arch, arch = ARCHES[machine]
    default = action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"), "")
    numbers = syscall_numbers(machine)
    program: list[Insn] = [
        (BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
        # another ABI (i386, x32) has other numbers: the default action, not a wrong match
        (BPF_JMP_JEQ_K, 1, 0, audit_arch),
        (BPF_RET_K, 0, 0, default),
        (BPF_LD_W_ABS, 0, 0, OFFSET_NR),
    ]
    if machine == "x86_64":
        program += [(BPF_JMP_JSET_K, 0, 1, X32_SYSCALL_BIT), (BPF_RET_K, 0, 0, default)]
    for nr, rules in rules_by_syscall(profile, caps, arch, kernel, numbers).items():
        unconditional = next((value for args, value in rules if not args), None)
        if unconditional is not None:  # libseccomp too: a rule without arguments wins
            program += [(BPF_JMP_JEQ_K, 0, 1, nr), (BPF_RET_K, 0, 0, unconditional)]
            continue
        block: list[Insn] = []
        for args, value in rules:  # each rule: all its conditions, then its action
            checks: list[list[Insn]] = []
            # built last to first: each check's fail jump skips the checks after it
            for arg in reversed(args):
                after = sum(len(c) for c in checks)
                checks.insert(0, compare(arg, after + 1))
            block += [insn for check in checks for insn in check] + [(BPF_RET_K, 0, 0, value)]
        block.append((BPF_RET_K, 0, 0, default))  # no rule matched: the default
        if len(block) > 255:
            raise ProfileError(f"the seccomp rules for syscall {nr} are too many to compile")
        program += [(BPF_JMP_JEQ_K, 0, len(block), nr), *block]
    program.append((BPF_RET_K, 0, 0, default))
    if len(program) > MAX_INSNS:
        raise ProfileError(f"the seccomp profile compiles to {len(program)} instructions, "
                           f"more than the kernel's {MAX_INSNS}")
    return program


def encode(program: list[Insn]) -> bytes:
    """struct sock_filter[]: u16 code, u8 jt, u8 jf, u32 k."""
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in program)


def run(program: list[Insn], nr: int, args: tuple[int, ...] = (), arch: int = 0xC000003E) -> int:
    """What the kernel would return for syscall `nr` (a small interpreter, for tests and
    `--dry-run` explanations)."""
    data = struct.pack("=iI", nr, arch) + struct.pack("=Q", 0) + b"".join(
        struct.pack("=Q", value) for value in (*args, *[0] * (6 - len(args))))
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == BPF_LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == BPF_ALU_AND_K:
            acc &= k
        elif code == BPF_RET_K:
            return k
        else:
            taken = {BPF_JMP_JEQ_K: acc == k, BPF_JMP_JGT_K: acc > k,
                     BPF_JMP_JGE_K: acc >= k, BPF_JMP_JSET_K: acc & k != 0}[code]
            pc += jt if taken else jf


def main(args: list[str]) -> None:
    """`PROFILE [CAP_NAME...]`: the filter for a process with those capabilities on this
    kernel, to stdout (how the shown command of a compiled filter writes it)."""
    import sys

    uname = os.uname()
    program = build(load_profile(args[0]), set(args[1:]), uname.machine, version(uname.release))
    sys.stdout.buffer.write(encode(program))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
