"""The seccomp compiler (inside/seccomp.py), read back through its small interpreter, and
the confinement flags (parts/confine.py)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from shellctr.core.errors import ShellctrError
from shellctr.core.layout import Layout
from shellctr.engine import confine as engine_confine
from shellctr.inside import seccomp
from shellctr.parts import confine

NR = seccomp.syscall_numbers("x86_64")
ALLOW, EPERM, ENOSYS = seccomp.RET_ALLOW, seccomp.RET_ERRNO | 1, seccomp.RET_ERRNO | 38
DEFAULT_CAPS = set(confine.cap_names(confine.capabilities([], [], False, 40)))
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x20000, 17
KERNEL = (6, 1)


def default_filter(caps: set[str] = DEFAULT_CAPS) -> list[seccomp.Insn]:
    return seccomp.build(seccomp.default_profile(), caps, "x86_64", KERNEL)


def test_default_profile_allows_the_allow_list_and_refuses_the_rest_with_eperm() -> None:
    program = default_filter()
    for name in ("read", "write", "openat", "execve", "mmap", "futex", "exit_group", "chown"):
        assert seccomp.run(program, NR[name]) == ALLOW, name
    for name in ("kexec_load", "init_module", "reboot", "open_by_handle_at", "bpf",
                 "add_key", "keyctl", "swapon", "kcmp"):
        assert seccomp.run(program, NR[name]) == EPERM, name


def test_user_namespaces_need_cap_sys_admin() -> None:
    """Defect 4: `unshare -U`, and clone with CLONE_NEW* flags, refused without
    CAP_SYS_ADMIN; a plain fork-style clone allowed."""
    program = default_filter()
    assert seccomp.run(program, NR["unshare"], (CLONE_NEWUSER,)) == EPERM
    assert seccomp.run(program, NR["clone"], (CLONE_NEWUSER | SIGCHLD,)) == EPERM
    assert seccomp.run(program, NR["clone"], (CLONE_NEWNS,)) == EPERM
    assert seccomp.run(program, NR["clone"], (SIGCHLD,)) == ALLOW
    assert seccomp.run(program, NR["clone"], (0x3D0F00,)) == ALLOW  # pthread_create's flags
    assert seccomp.run(program, NR["clone3"]) == ENOSYS  # libc falls back to clone
    assert seccomp.run(program, NR["setns"]) == EPERM
    assert seccomp.run(program, NR["mount"]) == EPERM
    admin = default_filter(DEFAULT_CAPS | {"CAP_SYS_ADMIN"})
    assert seccomp.run(admin, NR["unshare"], (CLONE_NEWUSER,)) == ALLOW
    assert seccomp.run(admin, NR["clone"], (CLONE_NEWUSER,)) == ALLOW
    assert seccomp.run(admin, NR["clone3"]) == ALLOW
    assert seccomp.run(admin, NR["mount"]) == ALLOW


def test_capability_conditional_rules_follow_the_capabilities() -> None:
    ptrace = default_filter(DEFAULT_CAPS | {"CAP_SYS_PTRACE"})
    assert seccomp.run(ptrace, NR["pidfd_getfd"]) == ALLOW
    assert seccomp.run(default_filter(), NR["pidfd_getfd"]) == EPERM
    chroot_dropped = default_filter(DEFAULT_CAPS - {"CAP_SYS_CHROOT"})
    assert seccomp.run(chroot_dropped, NR["chroot"]) == EPERM
    assert seccomp.run(default_filter(), NR["chroot"]) == ALLOW


def test_personality_is_allowed_only_with_dockers_values() -> None:
    program = default_filter()
    for value in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert seccomp.run(program, NR["personality"], (value,)) == ALLOW, hex(value)
    for value in (0x0040000, 1, 0x1_0000_0000):  # ADDR_NO_RANDOMIZE; a high bit
        assert seccomp.run(program, NR["personality"], (value,)) == EPERM, hex(value)


def test_other_abis_get_the_default_action() -> None:
    program = default_filter()
    assert seccomp.run(program, 0, arch=0x40000003) == EPERM  # i386's read
    assert seccomp.run(program, NR["read"] | seccomp.X32_SYSCALL_BIT) == EPERM


@pytest.mark.parametrize(("op", "value", "below", "equal", "above"), [
    ("SCMP_CMP_NE", 5, ALLOW, EPERM, ALLOW),
    ("SCMP_CMP_GT", 5, EPERM, EPERM, ALLOW),
    ("SCMP_CMP_GE", 5, EPERM, ALLOW, ALLOW),
    ("SCMP_CMP_LT", 5, ALLOW, EPERM, EPERM),
    ("SCMP_CMP_LE", 5, ALLOW, ALLOW, EPERM),
    ("SCMP_CMP_GT", 1 << 33, EPERM, EPERM, ALLOW),
    ("SCMP_CMP_LT", 1 << 33, ALLOW, EPERM, EPERM),
])
def test_argument_comparisons_are_unsigned_64_bit(op: str, value: int, below: int,
                                                   equal: int, above: int) -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": value, "op": op}]}]}
    program = seccomp.build(profile, set(), "x86_64", KERNEL)
    assert seccomp.run(program, NR["read"], (0, 0, value - 1)) == below
    assert seccomp.run(program, NR["read"], (0, 0, value)) == equal
    assert seccomp.run(program, NR["read"], (0, 0, value + 1)) == above
    assert seccomp.run(program, NR["read"], (0, 0, (value - 1) | 1 << 40)) == (
        above if op != "SCMP_CMP_NE" else ALLOW)


def test_two_conditions_of_one_rule_must_both_hold() -> None:
    profile = {"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
        {"names": ["write"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 2, "value": 0xFF, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9,
         "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}
    program = seccomp.build(profile, set(), "x86_64", KERNEL)
    assert seccomp.run(program, NR["write"], (1, 0, 0x110)) == ALLOW
    assert seccomp.run(program, NR["write"], (1, 0, 0x111)) == seccomp.RET_KILL_PROCESS
    assert seccomp.run(program, NR["write"], (3, 0, 0x10)) == seccomp.RET_KILL_PROCESS
    assert seccomp.run(program, NR["write"], (2, 0, 0)) == seccomp.RET_ERRNO | 9
    assert seccomp.run(program, NR["read"]) == seccomp.RET_KILL_PROCESS


def test_the_program_is_struct_sock_filter() -> None:
    program = default_filter()
    data = seccomp.encode(program)
    assert len(data) == 8 * len(program) < 8 * seccomp.MAX_INSNS
    assert struct.unpack_from("=HBBI", data, 0) == (seccomp.BPF_LD_W_ABS, 0, 0, 4)
    assert program[-1] == (seccomp.BPF_RET_K, 0, 0, EPERM)


def test_a_profile_with_an_unknown_action_is_refused() -> None:
    text = json.dumps({"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": []})
    with pytest.raises(seccomp.ProfileError, match="SCMP_ACT_NOTIFY"):
        seccomp.read_profile(text, "p.json")
    with pytest.raises(seccomp.ProfileError, match="not JSON"):
        seccomp.read_profile("{", "p.json")


def test_min_kernel_rules_follow_the_kernel() -> None:
    profile = seccomp.default_profile()
    # Docker's: ptrace from 4.8 on (its seccomp bypass was fixed then)
    old = seccomp.build(profile, DEFAULT_CAPS, "x86_64", (4, 4))
    assert seccomp.run(old, NR["ptrace"]) == EPERM
    new = seccomp.build(profile, DEFAULT_CAPS, "x86_64", seccomp.version("6.1.0-18-amd64"))
    assert seccomp.run(new, NR["ptrace"]) == ALLOW


# -- capabilities and the other flags -----------------------------------------------------
def test_capabilities_are_dockers_default_set_then_drop_then_add() -> None:
    default = confine.capabilities([], [], False, 40)
    assert sum(1 << n for n in default) == 0xA80425FB
    added = confine.capabilities(["CAP_NET_ADMIN"], ["CAP_CHOWN"], False, 40)
    assert 12 in added and 0 not in added
    assert confine.capabilities(["CAP_KILL"], ["ALL"], False, 40) == [5]
    assert confine.capabilities(["ALL"], [], False, 40) == list(range(41))
    assert confine.capabilities([], [], True, 37) == list(range(38))  # the host's last


@pytest.mark.parametrize(("word", "name"), [("net_admin", "CAP_NET_ADMIN"),
                                            ("CAP_SYS_ADMIN", "CAP_SYS_ADMIN"),
                                            ("all", "ALL")])
def test_capability_names_with_or_without_cap_prefix(word: str, name: str) -> None:
    assert confine.cap_name(word) == name


def test_an_unknown_capability_is_refused() -> None:
    with pytest.raises(ShellctrError, match="unknown capability"):
        confine.cap_name("FLY")


def test_security_opts() -> None:
    assert confine.parse_security_opts([], set()) == {"seccomp": "",
                                                      "no_new_privileges": True}
    assert confine.parse_security_opts(["seccomp=unconfined", "no-new-privileges=false"],
                                       set()) == {"seccomp": "unconfined",
                                                  "no_new_privileges": False}
    with pytest.raises(ShellctrError, match="no apparmor"):
        confine.parse_security_opts(["apparmor=docker-default"], {"capability", "yama"})
    with pytest.raises(ShellctrError, match="no selinux"):
        confine.parse_security_opts(["label=type:svirt_t"], set())
    with pytest.raises(ShellctrError, match="invalid --security-opt"):
        confine.parse_security_opts(["seccom=x"], set())


def test_device_specs() -> None:
    assert confine.parse_device("/dev/fuse") == {"host": "/dev/fuse", "container": "/dev/fuse",
                                                 "permissions": "rwm"}
    assert confine.parse_device("/dev/fuse:r") == {"host": "/dev/fuse",
                                                   "container": "/dev/fuse",
                                                   "permissions": "r"}
    assert confine.parse_device("/dev/null:/dev/n2:rw")["container"] == "/dev/n2"
    for bad in ("fuse", "/dev/fuse:/dev/x:rwq", "/a:/b:c:d"):
        with pytest.raises(ShellctrError):
            confine.parse_device(bad)
    assert confine.parse_cgroup_rule("c 10:* rw") == "c 10:* rw"
    with pytest.raises(ShellctrError, match="device cgroup rule"):
        confine.parse_cgroup_rule("x 1:2 rwm")


# -- cgroup v2's device program (parts/cgroups.py) -----------------------------------------
def test_the_v2_device_program_allows_exactly_the_rules() -> None:
    """Issue 13, defect 5 on cgroup v2: the same allow list as v1's devices.allow."""
    from shellctr.parts.cgroups import (
        DEFAULT_DEVICE_RULES,
        device_program,
        encode_ebpf,
        run_device_program,
    )

    program = device_program([*DEFAULT_DEVICE_RULES, "c 10:229 r"])
    assert run_device_program(program, "c", 1, 3, "rw") == 1  # null
    assert run_device_program(program, "c", 136, 7, "rw") == 1  # a pty
    assert run_device_program(program, "c", 10, 200, "rw") == 0  # tun
    assert run_device_program(program, "c", 10, 237, "r") == 0  # loop-control
    assert run_device_program(program, "b", 8, 0, "r") == 0  # a disk
    assert run_device_program(program, "b", 8, 0, "m") == 1  # mknod of anything
    assert run_device_program(program, "c", 10, 229, "r") == 1  # the extra rule ...
    assert run_device_program(program, "c", 10, 229, "rw") == 0  # ... read only
    assert len(encode_ebpf(program)) == 8 * len(program)
    everything = device_program(["a *:* rwm"])
    assert run_device_program(everything, "b", 8, 0, "rwm") == 1
    # nothing after the allow-all: the verifier refuses unreachable instructions
    assert everything[-2:] == [(0xB7, 0, 0, 0, 1), (0x95, 0, 0, 0, 0)]


def test_the_engine_names_the_default_profile_without_importing_the_compiler() -> None:
    """exec and start find the default profile by path (importing inside/seccomp.py costs
    every exec); it must be the compiler's own."""
    found = engine_confine.profile_file(Layout(Path("/r"), Path("/run/r")), {})  # type: ignore[typeddict-item]
    assert found == Path(seccomp.DEFAULT_PROFILE) and found.is_file()


def test_the_compiled_filter_file_is_the_encoded_program() -> None:
    """`python -m shellctr.inside.seccomp PROFILE CAPS...`, the command --trace shows for a
    compiled filter, writes the bytes init.py and shellctr-exec load."""
    from pathlib import Path

    top = Path(seccomp.__file__).resolve().parents[2]
    caps = sorted(DEFAULT_CAPS)
    out = subprocess.run([sys.executable, "-m", "shellctr.inside.seccomp",
                          seccomp.DEFAULT_PROFILE, *caps], check=True, capture_output=True,
                         env={"PYTHONPATH": str(top)}).stdout
    uname = os.uname()
    assert out == seccomp.encode(seccomp.build(seccomp.default_profile(), set(caps),
                                               uname.machine, seccomp.version(uname.release)))
