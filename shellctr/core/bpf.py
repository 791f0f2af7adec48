"""cgroup v2's device controller: a BPF_PROG_TYPE_CGROUP_DEVICE program loaded with
bpf(2) and attached to a cgroup (what v1's devices.deny/devices.allow files do). The
program is built by parts.cgroups.device_program; this module only talks to the kernel,
and the door (host.apply) calls it. Standard library only (ctypes)."""

from __future__ import annotations

import ctypes
import os
import struct

BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2  # other programs (the host's, a parent's) keep running too
SYSCALL = {"x86_64": 321, "aarch64": 280}
ATTR_SIZE = 128  # union bpf_attr, zero-padded


def _bpf(command: int, attr: bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(attr.ljust(ATTR_SIZE, b"\0"), ATTR_SIZE)
    result = int(libc.syscall(ctypes.c_long(SYSCALL[os.uname().machine]),
                              ctypes.c_int(command), buffer, ctypes.c_uint(ATTR_SIZE)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def attach_device_program(cgroup: str, program: bytes) -> None:
    """Load `program` (struct bpf_insn[]) and attach it to the cgroup directory."""
    insns = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(1 << 16)

    def load(log_level: int) -> int:
        attr = struct.pack("=IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8,
                           ctypes.addressof(insns), ctypes.addressof(license), log_level,
                           len(log) if log_level else 0, ctypes.addressof(log) if log_level
                           else 0, 0, 0, b"shellctr_dev")
        return _bpf(BPF_PROG_LOAD, attr)

    try:
        prog = load(0)
    except OSError as err:
        try:  # again with the verifier's log, to say why
            load(1)
        except OSError:
            pass
        detail = log.value.decode(errors="replace").strip().splitlines()[-1:]
        raise OSError(err.errno, f"{err.strerror} {' '.join(detail)}".strip()) from None
    try:
        target = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(BPF_PROG_ATTACH, struct.pack("=IIII", target, prog, BPF_CGROUP_DEVICE,
                                              BPF_F_ALLOW_MULTI))
        finally:
            os.close(target)
    finally:
        os.close(prog)  # the attachment holds the program now
