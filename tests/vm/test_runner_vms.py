"""vm/run-tests end to end: it boots real VMs, so it runs only when asked
(SHELLCTR_VM_SELFTEST=1, as `make test-vm-ci` does), as root, with qemu installed.

Three runs at once, on the cases of tests/vm/cases/vm_cases.py: one passing and one
deliberately failing test (the run fails and names it), a test that hangs (its VM is
killed at the timeout and reported), a test that panics the guest's kernel (reported as
a VM that ended without results). Running them together also shows that runs at the
same time do not collide.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
CASES = "tests/vm/cases/vm_cases.py"
HANG_TIMEOUT = 60  # s: enough to boot and start pytest under TCG on a busy host

pytestmark = pytest.mark.skipif(
    os.environ.get("SHELLCTR_VM_SELFTEST") != "1" or os.geteuid() != 0
    or shutil.which("qemu-system-x86_64") is None,
    reason="boots VMs: run as root with SHELLCTR_VM_SELFTEST=1 (make test-vm-ci)")


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(CHECKOUT / "vm" / "run-tests"), "--vcpus", "1", *args],
                            cwd=CHECKOUT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, Path]:
    """Exit code, output, and the run directory the runner kept (removed here)."""
    try:
        out, _ = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)  # the runner kills its VMs and says so
        out, _ = process.communicate(timeout=60)
        pytest.fail(f"vm/run-tests did not end within 600 s:\n{out}")
    kept = [line.split(" kept in ", 1)[1].split(",", 1)[0] for line in out.splitlines()
            if "results kept in " in line]
    assert len(kept) == 1, out
    return process.returncode, out, Path(kept[0].strip())


def qemus_of(run_dir: Path) -> list[int]:
    """qemu processes whose command line names this run's directory."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(run_dir).encode() in cmdline:
            found.append(int(pid))
    return found


def test_failures_hangs_and_crashes_are_reported_and_runs_do_not_collide(
        tmp_path: Path) -> None:
    failing = start("-j", "2", "--junit-xml", str(tmp_path / "merged.xml"),
                    f"{CASES}::test_passes_on_cgroup_v2", f"{CASES}::test_fails_on_purpose")
    hanging = start("--timeout", str(HANG_TIMEOUT), f"{CASES}::test_hangs")
    crashing = start(f"{CASES}::test_crashes_the_kernel")
    runs = {name: finish(process) for name, process in
            (("failing", failing), ("hanging", hanging), ("crashing", crashing))}
    try:
        code, out, _ = runs["failing"]
        assert code == 1, out
        assert out.splitlines()[-1] == "1 passed, 1 failed", out
        assert (f"FAILED {CASES}::test_fails_on_purpose: AssertionError: deliberately "
                "failing") in out, out
        merged = (tmp_path / "merged.xml").read_text()
        assert merged.count("<testcase ") == 2 and "(vm1)" in merged and "(vm2)" in merged

        code, out, run_dir = runs["hanging"]
        assert code == 1, out
        assert f"VM FAILED vm1 timed out after {HANG_TIMEOUT} s running {CASES}::test_hangs: "\
            "killed" in out, out
        assert "shellctr-vm: cgroup cgroup2fs" in out, out  # it hung in pytest, not at boot
        assert out.splitlines()[-1] == "0 passed, 1 failed", out
        assert qemus_of(run_dir) == []

        code, out, _ = runs["crashing"]
        assert code == 1, out
        assert f"VM FAILED vm1 ended without results (crashed?) running {CASES}::" \
            "test_crashes_the_kernel" in out, out
        assert "Kernel panic" in out, out
        assert out.splitlines()[-1] == "0 passed, 1 failed", out

        assert len({run_dir for _, _, run_dir in runs.values()}) == 3
    finally:
        for _, _, run_dir in runs.values():
            shutil.rmtree(run_dir)
