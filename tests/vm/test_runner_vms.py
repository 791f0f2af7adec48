"""vm/run-tests end to end: it boots real VMs, so it runs only when asked
(SHELLCTR_VM_SELFTEST=1, as `make test-vm-ci` does), as root, with qemu installed.

First a runner SIGKILLed while its two VMs boot: both VMs die with it. Then four runs at
once, on the cases of tests/vm/cases/vm_cases.py: one passing and one deliberately
failing test (the run fails and names it), a test that hangs (its VM is killed at the
timeout and reported), the same hang with the runner's kill far away (the guest's init
ends the VM at its deadline), a test that panics the guest's kernel (reported as a VM
that ended without results). Beside them a qemu that looks like a VM whose runner was
killed: each run names it, and `vm/run-tests --clean`, run while the four runs' VMs are
up, kills it and nothing of theirs. Running them together also shows that runs at the
same time do not collide.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(CHECKOUT / "vm"))
import leftovers  # noqa: E402  (vm/ is no package: nothing in shellctr imports it)

CASES = "tests/vm/cases/vm_cases.py"
QEMU = "qemu-system-x86_64"
HANG_TIMEOUT = 60  # s: enough to boot and start pytest under TCG on a busy host
DEADLINE = 50  # s after the guest's boot (its clock starts a few s after qemu): the same
FAR_AWAY = 300  # s: the runner's kill of the VM whose guest must end itself first
BOOT_WAIT = 300  # s: a cold cache builds the image first (40-65 s), on a busy host

pytestmark = pytest.mark.skipif(
    os.environ.get("SHELLCTR_VM_SELFTEST") != "1" or os.geteuid() != 0
    or shutil.which(QEMU) is None,
    reason="boots VMs: run as root with SHELLCTR_VM_SELFTEST=1 (make test-vm-ci)")


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([str(CHECKOUT / "vm" / "run-tests"), "--vcpus", "1", *args],
                            cwd=CHECKOUT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


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
    """Running processes whose command line names this run's directory."""
    return [vm.pid for vm in leftovers.running_vms() if vm.run_dir == run_dir]


def vms_of(process: subprocess.Popen[str], count: int) -> list[leftovers.VmProcess]:
    """The runner's VMs once it has started count of them (polled)."""
    deadline = time.monotonic() + BOOT_WAIT
    while time.monotonic() < deadline:
        vms = [vm for vm in leftovers.running_vms() if vm.ppid == process.pid]
        if len(vms) == count:
            return vms
        if process.poll() is not None:
            pytest.fail(f"vm/run-tests ended before starting {count} VMs:\n"
                        f"{process.communicate()[0]}")
        time.sleep(0.05)
    pytest.fail(f"vm/run-tests did not start {count} VMs within {BOOT_WAIT} s")


def test_a_runner_sigkilled_while_its_vms_boot_takes_them_with_it() -> None:
    runner = start("-j", "2", f"{CASES}::test_passes_on_cgroup_v2", f"{CASES}::test_hangs")
    vms: list[leftovers.VmProcess] = []
    try:
        vms = vms_of(runner, 2)  # both started, both still booting
        runner.kill()  # SIGKILL: no handler of the runner's runs, no finally
        runner.communicate()
        deadline = time.monotonic() + 10
        while any(leftovers.running(vm.pid) for vm in vms) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [vm.name for vm in vms if leftovers.running(vm.pid)] == []
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        for vm in vms:
            leftovers.kill_vm(vm)  # only if the test failed: no VM outlives it either
        for run_dir in {vm.run_dir for vm in vms}:
            shutil.rmtree(run_dir)


@dataclass
class Runs:
    results: dict[str, tuple[int, str, Path]]  # each run: exit code, output, run dir
    orphan: leftovers.VmProcess  # the qemu that looked like a gone runner's VM
    cleaned: subprocess.CompletedProcess[str]  # vm/run-tests --clean, beside the runs
    up: list[int]  # the hung VMs of two runs, running when the clean began
    spared: list[int]  # those of them still running once it ended
    tmp: Path


def start_orphan(tmp: Path) -> leftovers.VmProcess:
    """A qemu named and placed as a VM of a run whose runner is gone (its run directory
    has no runner's claim, its parent is whoever adopts orphans), stopped at its first
    instruction (-S): it costs no CPU. setsid --fork: its parent exits at once."""
    run_dir = tmp / "shellctr-vm-run-orphan"
    (run_dir / "vm1").mkdir(parents=True)
    subprocess.run(["setsid", "--fork", QEMU, "-name", "shellctr-vm1", "-M", "pc,accel=tcg",
                    "-S", "-nodefaults", "-no-user-config", "-display", "none", "-nic", "none",
                    "-serial", f"file:{run_dir}/vm1/console.log"],
                   stdin=subprocess.DEVNULL, check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [vm for vm in leftovers.running_vms() if vm.run_dir == run_dir]
        if found:
            day_old = time.time() - 2 * leftovers.RUN_MAX_AGE  # pruned by the clean too
            os.utime(run_dir, (day_old, day_old))
            return found[0]
        time.sleep(0.05)
    pytest.fail("the stand-in orphan qemu never started")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    tmp = tmp_path_factory.mktemp("vm-runs")
    orphan = start_orphan(tmp)
    processes: dict[str, subprocess.Popen[str]] = {}
    results: dict[str, tuple[int, str, Path]] = {}
    try:
        processes = {
            "failing": start("-j", "2", "--junit-xml", str(tmp / "merged.xml"),
                             f"{CASES}::test_passes_on_cgroup_v2",
                             f"{CASES}::test_fails_on_purpose"),
            "hanging": start("--timeout", str(HANG_TIMEOUT), f"{CASES}::test_hangs"),
            "deadline": start("--timeout", str(FAR_AWAY), "--guest-deadline", str(DEADLINE),
                              f"{CASES}::test_hangs"),
            "crashing": start(f"{CASES}::test_crashes_the_kernel"),
        }
        # the two that hang are up for a minute: clean while they are
        up = [vm.pid for vm in vms_of(processes["hanging"], 1) + vms_of(processes["deadline"], 1)]
        cache = tmp / "cache"  # this host's image cache is no business of this test
        (cache / "image-0000000000000000").mkdir(parents=True)
        cleaned = subprocess.run(
            [str(CHECKOUT / "vm" / "run-tests"), "--clean", "--cache", str(cache)],
            env={**os.environ, "TMPDIR": str(tmp)}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=60, check=False)
        spared = [pid for pid in up if leftovers.running(pid)]
        results = {name: finish(process) for name, process in processes.items()}
        yield Runs(results, orphan, cleaned, up, spared, tmp)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # the runner kills its VMs
                process.communicate(timeout=60)
        leftovers.kill_vm(orphan)  # if the clean did not
        for _, _, run_dir in results.values():
            shutil.rmtree(run_dir)


def test_a_failing_test_is_named_and_the_vms_junit_merged(runs: Runs) -> None:
    code, out, _ = runs.results["failing"]
    assert code == 1, out
    assert out.splitlines()[-1] == "1 passed, 1 failed", out
    assert (f"FAILED {CASES}::test_fails_on_purpose: AssertionError: deliberately "
            "failing") in out, out
    merged = (runs.tmp / "merged.xml").read_text()
    assert merged.count("<testcase ") == 2 and "(vm1)" in merged and "(vm2)" in merged


def test_a_hung_vm_is_killed_at_the_timeout(runs: Runs) -> None:
    code, out, run_dir = runs.results["hanging"]
    assert code == 1, out
    assert f"VM FAILED vm1 timed out after {HANG_TIMEOUT} s running {CASES}::test_hangs: "\
        "killed" in out, out
    assert "shellctr-vm: cgroup cgroup2fs" in out, out  # it hung in pytest, not at boot
    assert out.splitlines()[-1] == "0 passed, 1 failed", out
    assert qemus_of(run_dir) == []


def test_a_hung_guest_ends_itself_at_its_deadline_with_no_kill_from_the_host(
        runs: Runs) -> None:
    code, out, run_dir = runs.results["deadline"]
    assert code == 1, out
    assert f"VM FAILED vm1 passed its deadline ({DEADLINE} s after its boot) running " \
        f"{CASES}::test_hangs: its init ended it" in out, out
    assert "timed out" not in out, out  # the runner's kill at FAR_AWAY never came
    assert "shellctr-vm: cgroup cgroup2fs" in out, out  # it hung in pytest, not at boot
    assert f"shellctr-vm: deadline passed ({DEADLINE} s after boot" in out, out
    assert out.splitlines()[-1] == "0 passed, 1 failed", out
    assert qemus_of(run_dir) == []


def test_a_kernel_panic_is_reported_as_a_vm_without_results(runs: Runs) -> None:
    code, out, _ = runs.results["crashing"]
    assert code == 1, out
    assert f"VM FAILED vm1 ended without results (crashed?) running {CASES}::" \
        "test_crashes_the_kernel" in out, out
    assert "Kernel panic" in out, out
    assert out.splitlines()[-1] == "0 passed, 1 failed", out


def test_runs_at_the_same_time_do_not_collide(runs: Runs) -> None:
    run_dirs = {run_dir for _, _, run_dir in runs.results.values()}
    assert len(run_dirs) == len(runs.results)
    for _, out, _ in runs.results.values():  # nor take each other's VMs for leftovers
        named = " ".join(line for line in out.splitlines() if "left by an earlier run" in line)
        assert not [run_dir for run_dir in run_dirs if str(run_dir) in named], out


def test_a_run_names_the_vms_a_gone_runner_left_and_how_to_clean_them(runs: Runs) -> None:
    for _, out, _ in runs.results.values():
        assert f"shellctr-vm1 (pid {runs.orphan.pid}, {runs.orphan.run_dir})" in out, out
        assert "`make test-vm-clean`" in out, out


def test_clean_kills_the_gone_runners_vm_and_prunes_its_day_old_run_alone(
        runs: Runs) -> None:
    err = runs.cleaned.stderr
    assert runs.cleaned.returncode == 0, err
    assert f"+ kill -s KILL {runs.orphan.pid}  # shellctr-vm1 of {runs.orphan.run_dir}" in err
    assert not leftovers.running(runs.orphan.pid)
    assert f"+ rm -rf {runs.orphan.run_dir}  # a run more than a day old" in err
    assert not runs.orphan.run_dir.exists()
    assert f"+ rm -rf {runs.tmp}/cache/image-0000000000000000  # an image of another " \
        "recipe" in err
    assert err.count("+ ") == 3, err  # and nothing of the runs beside it
    assert runs.spared == runs.up
