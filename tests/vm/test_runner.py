"""vm/run-tests' own logic, without booting anything: which tests go to which VM, how
the VMs' junit XMLs are read and merged, what invalidates the cached image, how qemu is
started (its deadline, and tied to the runner's life: tried on `sleep`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(CHECKOUT / "vm"))
import leftovers  # noqa: E402
import runner  # noqa: E402  (vm/ is no package: nothing in shellctr imports it)

INTEGRATION = sorted(p.name for p in (CHECKOUT / "tests" / "integration").glob("test_*.py"))


def test_no_test_path_means_the_whole_integration_suite(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.chdir(CHECKOUT)
    job = runner.parse_pytest_args(["-q", "-k", "limits"])
    assert job.options == ["-q", "-k", "limits"]
    assert [Path(u).name for u in job.units] == INTEGRATION
    assert all(u.startswith("tests/integration/") for u in job.units)


def test_directories_files_and_node_ids_are_relative_to_the_checkout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CHECKOUT / "tests")
    job = runner.parse_pytest_args([
        "--maxfail", "3", "integration/test_limits.py::test_update_changes_the_limits_live",
        str(CHECKOUT / "tests" / "integration" / "test_detached.py"), "-x"])
    assert job.options == ["--maxfail", "3", "-x"]
    assert job.units == ["tests/integration/test_limits.py::test_update_changes_the_limits_live",
                         "tests/integration/test_detached.py"]


def test_a_path_outside_the_checkout_or_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(): pass\n")
    with pytest.raises(runner.RunnerError, match="not in the checkout"):
        runner.parse_pytest_args([str(tmp_path / "test_x.py")])
    with pytest.raises(runner.RunnerError, match="no such test file"):
        runner.parse_pytest_args([str(CHECKOUT / "tests" / "test_nothing_here.py")])


def test_the_split_balances_by_the_last_durations_and_gives_every_vm_work() -> None:
    durations = {"a.py::t1": 100.0, "a.py::t2": 20.0, "b.py::t": 90.0, "c.py::t": 25.0,
                 "d.py::t[1]": 5.0, "d.py::t[2]": 5.0}
    groups = runner.split(["a.py", "b.py", "c.py", "d.py"], 2, durations)
    assert sorted(groups) == [["a.py"], ["b.py", "c.py", "d.py"]]
    assert runner.split(["a.py", "b.py"], 4, durations) == [["a.py"], ["b.py"]]
    assert runner.estimate("d.py::t", durations) == 10.0


def test_without_durations_a_file_weighs_its_number_of_tests() -> None:
    limits = "tests/integration/test_limits.py"
    count = (CHECKOUT / limits).read_text().count("\ndef test_")
    assert runner.estimate(limits, {}) == 10.0 * count
    assert runner.estimate(f"{limits}::test_update_changes_the_limits_live", {}) == 10.0


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"
 tests="4"><testcase classname="tests.integration.test_limits" name="test_ok" time="1.5"/>
<testcase classname="tests.integration.test_limits" name="test_bad" time="2">
<failure message="AssertionError: 3 != 2&#10;more">trace</failure></testcase>
<testcase classname="tests.integration.test_limits" name="test_skip" time="0">
<skipped message="no CPU 1"/></testcase>
<testcase classname="tests.integration.test_limits.TestC" name="test_err" time="0.5">
<error message="fixture failed"/></testcase></testsuite></testsuites>"""


def test_junit_counts_and_names_every_failure_and_error(tmp_path: Path) -> None:
    (tmp_path / "vm1.xml").write_text(JUNIT)
    outcome = runner.read_junit(tmp_path / "vm1.xml")
    assert (outcome.passed, outcome.skipped) == (1, 1)
    assert outcome.failed == [
        "tests/integration/test_limits.py::test_bad: AssertionError: 3 != 2",
        "tests/integration/test_limits.py::TestC::test_err: fixture failed"]
    assert outcome.durations["tests/integration/test_limits.py::test_ok"] == 1.5
    (tmp_path / "vm2.xml").write_text(JUNIT)
    runner.merge_junit([("vm1", tmp_path / "vm1.xml"), ("vm2", tmp_path / "vm2.xml")],
                       tmp_path / "all.xml")
    merged = runner.read_junit(tmp_path / "all.xml")
    assert (merged.passed, len(merged.failed), merged.skipped) == (2, 4, 2)
    assert "pytest (vm2)" in (tmp_path / "all.xml").read_text()


def test_the_closing_line_is_the_plain_one() -> None:
    assert runner.summary(3, 0, 0) == "3 passed, 0 failed"
    assert runner.summary(3, 1, 2) == "3 passed, 1 failed, 2 skipped"


def test_the_image_is_rebuilt_exactly_when_a_recipe_file_changes(tmp_path: Path) -> None:
    recipe = tmp_path / "image"
    shutil.copytree(CHECKOUT / "vm" / "image", recipe)
    before = runner.recipe_hash(recipe)
    assert runner.recipe_hash(recipe) == before
    with open(recipe / "requirements.txt", "a") as requirements:
        requirements.write("# changed\n")
    assert runner.recipe_hash(recipe) != before
    assert runner.recipe_hash() == runner.recipe_hash(CHECKOUT / "vm" / "image")


def test_a_vm_boots_with_its_deadline_on_the_kernel_command_line(tmp_path: Path) -> None:
    vm = runner.Vm("vm2", ["tests/integration/test_limits.py"],
                   tmp_path / "shellctr-vm-run-x" / "vm2", deadline=1830)
    argv = runner.qemu_argv(vm, tmp_path / "image", "tcg", 1, 512)
    assert argv[argv.index("-append") + 1] == \
        "console=ttyS0 panic=-1 quiet shellctr.deadline=1830"
    assert argv[argv.index("-name") + 1] == "shellctr-vm2"
    assert argv[argv.index("-serial") + 1] == \
        f"file:{tmp_path}/shellctr-vm-run-x/vm2/console.log"
    assert runner.guest_deadline(60, None) == 90  # after the runner's own kill at 60 s
    assert runner.guest_deadline(59.5, None) == 90
    assert runner.guest_deadline(3600, 45) == 45
    with pytest.raises(runner.RunnerError, match="at least 1 s"):
        runner.guest_deadline(60, 0)


def test_the_guest_init_reads_the_deadline_the_runner_writes() -> None:
    init = (CHECKOUT / "vm" / "guest" / "init").read_text()
    assert "shellctr.deadline=*) deadline=${word#shellctr.deadline=}" in init
    assert runner.kernel_command_line(90).split()[-1] == "shellctr.deadline=90"


def spawn_in_a_runner(tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    """A stand-in runner (a Python process) that starts two `sleep`s the way the runner
    starts qemu, one with die_with_runner and one without; their pids."""
    code = ("import subprocess, sys, time; sys.path.insert(0, sys.argv[1]); import runner\n"
            "tied = subprocess.Popen(['sleep', '300'], start_new_session=True, "
            "preexec_fn=runner.die_with_runner())\n"
            "loose = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            "print(tied.pid, loose.pid, flush=True); time.sleep(300)\n")
    process = subprocess.Popen([sys.executable, "-c", code, str(CHECKOUT / "vm")],
                               stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert process.stdout is not None
    tied, loose = map(int, process.stdout.readline().split())
    return process, tied, loose


def test_a_child_started_with_die_with_runner_dies_when_the_runner_is_sigkilled(
        tmp_path: Path) -> None:
    process, tied, loose = spawn_in_a_runner(tmp_path)
    try:
        process.kill()  # SIGKILL: no handler of the runner's runs
        process.wait()
        deadline = time.monotonic() + 10
        while leftovers.running(tied) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not leftovers.running(tied)
        assert leftovers.running(loose)  # a child in its own session alone outlives its parent
    finally:
        for pid in (tied, loose):
            if leftovers.running(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_child_whose_runner_died_before_the_prctl_never_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getpid", lambda: 1)  # as if the runner were gone: not the parent
    preexec = runner.die_with_runner()
    monkeypatch.undo()
    child = subprocess.run(["sh", "-c", "exit 0"], preexec_fn=preexec, check=False)
    assert child.returncode == 127
