"""vm/leftovers.py without VMs: which qemu is a VM of vm/run-tests, which of those a
gone runner left, which run directories and images a clean removes."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(CHECKOUT / "vm"))
import leftovers  # noqa: E402  (vm/ is no package: nothing in shellctr imports it)
import runner  # noqa: E402

DAY = 24 * 3600.0
NOW = 1_700_000_000.0
RUNNER_ARGV = ("/src/.venv/bin/python", "/src/vm/runner.py", "-j", "2")


def vm_argv(run_dir: Path, name: str = "vm1") -> list[str]:
    vm = runner.Vm(name, ["tests/integration/test_limits.py"], run_dir / name, deadline=90)
    return runner.qemu_argv(vm, Path("/var/cache/shellctr-vm/image-0123"), "tcg", 2, 1536)


def test_a_qemu_of_the_runner_is_known_by_its_name_and_run_directory() -> None:
    run_dir = Path("/var/tmp/shellctr-vm-run-ab12cd34")
    found = leftovers.vm_of(4242, 1, vm_argv(run_dir, "vm2"))
    assert found == leftovers.VmProcess(4242, 1, "shellctr-vm2", run_dir)


def test_other_qemus_and_other_processes_are_no_vms_of_the_runner() -> None:
    run_dir = Path("/var/tmp/shellctr-vm-run-ab12cd34")
    argv = vm_argv(run_dir)
    renamed = [*argv]
    renamed[renamed.index("-name") + 1] = "someones-vm"
    elsewhere = vm_argv(Path("/var/tmp/my-own-vms"))
    assert leftovers.vm_of(1, 1, renamed) is None
    assert leftovers.vm_of(1, 1, elsewhere) is None  # its console is in no run directory
    assert leftovers.vm_of(1, 1, ["/usr/bin/vim", *argv[1:]]) is None
    assert leftovers.vm_of(1, 1, []) is None


def test_a_vm_is_left_over_only_when_no_runner_is_its_parent() -> None:
    vm = leftovers.VmProcess(500, 400, "shellctr-vm1", Path("/var/tmp/shellctr-vm-run-x"))
    assert not leftovers.is_orphan(vm, runner=400)  # the runner its run directory names
    assert leftovers.is_orphan(vm, runner=None)  # that runner is gone: qemu was adopted
    assert leftovers.is_orphan(vm, runner=399)
    adopted = leftovers.VmProcess(500, 1, "shellctr-vm1", vm.run_dir, ("/sbin/init",))
    assert leftovers.is_orphan(adopted, runner=None)
    older = leftovers.VmProcess(500, 400, "shellctr-vm1", vm.run_dir, RUNNER_ARGV)
    assert not leftovers.is_orphan(older, runner=None)  # a runner that claims no run dir


def test_the_stat_line_is_read_after_the_process_name_whatever_it_holds() -> None:
    stat = ("77 (qemu) (x) 1 2) S 12 77 77 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 4 0 "
            "98765 1000 200 18446744073709551615\n")
    assert leftovers.parent_pid(stat) == 12
    assert leftovers.start_time(stat) == "98765"
    assert leftovers.start_time("") == ""


def test_a_zombie_or_a_gone_process_is_not_running() -> None:
    assert leftovers.running(os.getpid())
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while leftovers.read_stat(child.pid).rpartition(")")[2].split()[:1] != ["Z"]:
        assert time.monotonic() < deadline, "true never ended"
        time.sleep(0.01)
    assert not leftovers.running(child.pid)  # ended, not yet reaped
    child.wait()
    assert not leftovers.running(child.pid)


def test_a_run_is_live_while_the_process_that_claimed_it_lives(tmp_path: Path) -> None:
    live, forged, garbled = (tmp_path / name for name in ("live", "forged", "garbled"))
    for path in (live, forged, garbled):
        path.mkdir()
    leftovers.claim_run(live)
    assert leftovers.live_runner(live) == os.getpid()
    (forged / "runner").write_text(f"{os.getpid()} 1\n")  # this pid, but a process before
    (garbled / "runner").write_text("nothing\n")
    assert leftovers.live_runner(forged) is None
    assert leftovers.live_runner(garbled) is None
    assert leftovers.live_runner(tmp_path / "no-such-run") is None


def test_runs_older_than_a_day_whose_runner_is_gone_are_pruned() -> None:
    old, new, running = (Path(f"/var/tmp/shellctr-vm-run-{n}") for n in ("old", "new", "run"))
    runs = [leftovers.Entry(old, NOW - DAY - 1), leftovers.Entry(new, NOW - DAY + 60),
            leftovers.Entry(running, NOW - 3 * DAY, live=True),
            leftovers.Entry(Path("/var/tmp/someone-else"), NOW - 9 * DAY)]
    assert leftovers.old_runs(runs, NOW) == [old]


def test_images_of_other_recipes_go_and_the_current_one_and_held_ones_stay() -> None:
    cache = Path("/var/cache/shellctr-vm")
    entries = [leftovers.Entry(cache / "image-aaaa", 0), leftovers.Entry(cache / "image-cccc", 0),
               leftovers.Entry(cache / "image-bbbb", 0, live=True),  # another checkout's run
               leftovers.Entry(cache / "image-cccc.partial-x1", 0),
               leftovers.Entry(cache / "image-dddd.partial-x2", 0, live=True),  # being built
               leftovers.Entry(cache / "durations.json", 0)]
    assert leftovers.stale_images(entries, "image-cccc") == [
        cache / "image-aaaa", cache / "image-cccc.partial-x1"]


def make_image(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in runner.IMAGE_FILES:
        (path / name).write_bytes(b"")
    return path


def test_clean_removes_what_no_run_uses_and_keeps_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, cache = tmp_path / "tmp", tmp_path / "cache"
    old, new, live = (runs / f"shellctr-vm-run-{n}" for n in ("old", "new", "live"))
    for path in (old, new, live):
        path.mkdir(parents=True)
    leftovers.claim_run(live)
    for path in (old, live):
        os.utime(path, (NOW - 2 * DAY, NOW - 2 * DAY))
    current, other, held = (make_image(cache / f"image-{n}") for n in ("cur", "other", "held"))
    partial = cache / "image-cur.partial-abc"
    partial.mkdir()
    (cache / "durations.json").write_text("{}")
    with open(held / "vmlinuz", "rb") as lock:  # a run elsewhere holds this one
        fcntl.flock(lock, fcntl.LOCK_SH)
        removed = leftovers.clean(cache, "image-cur", runs, NOW, vms=[])
    assert removed == 3
    assert sorted(p.name for p in runs.iterdir()) == ["shellctr-vm-run-live",
                                                      "shellctr-vm-run-new"]
    assert sorted(p.name for p in cache.iterdir()) == [
        "build.lock", "durations.json", "image-cur", "image-held"]
    assert current.is_dir() and held.is_dir() and not other.exists() and not partial.exists()
    err = capsys.readouterr().err
    assert f"+ rm -rf {old}  # a run more than a day old whose runner is gone" in err
    assert f"+ rm -rf {other}  # an image of another recipe (this one is image-cur)" in err
    assert f"kept {held}: a run is using it" in err


def test_clean_leaves_a_half_built_image_while_its_build_holds_the_lock(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    partial = cache / "image-cur.partial-abc"
    partial.mkdir(parents=True)
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert leftovers.clean(cache, "image-cur", tmp_path, time.time(), vms=[]) == 0
    assert partial.is_dir()
    assert leftovers.clean(cache, "image-cur", tmp_path, time.time(), vms=[]) == 1
    assert not partial.exists()


def test_an_image_is_held_by_the_run_that_found_it(tmp_path: Path) -> None:
    image = make_image(tmp_path / "image-cur")
    assert not leftovers.image_in_use(image)
    assert runner.have_image(image)  # held until this process ends: in use from now on
    assert leftovers.image_in_use(image)
    assert not runner.have_image(tmp_path / "image-missing")
    leftovers._held.pop().close()


def fake_vm(run_dir: Path) -> subprocess.Popen[bytes]:
    """A process whose command line is a VM's (argv[0] qemu-system-x86_64, -name
    shellctr-vm1, its console in run_dir) but which only sleeps: no qemu, no root."""
    (run_dir / "vm1").mkdir(parents=True)
    return subprocess.Popen(
        ["bash", "-c", 'exec -a qemu-system-x86_64 "$0" "$@"', sys.executable, "-c",
         "import time; time.sleep(300)", "-name", "shellctr-vm1",
         "-serial", f"file:{run_dir}/vm1/console.log"])


def found(process: subprocess.Popen[bytes]) -> list[leftovers.VmProcess]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until bash has exec'd python under qemu's name
        vms = [vm for vm in leftovers.running_vms() if vm.pid == process.pid]
        if vms:
            return vms
        time.sleep(0.01)
    raise AssertionError("the fake VM never showed up in /proc")


def test_clean_kills_a_vm_whose_runner_is_gone_and_spares_a_live_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gone, live = tmp_path / "shellctr-vm-run-gone", tmp_path / "shellctr-vm-run-live"
    orphan, owned = fake_vm(gone), fake_vm(live)
    try:
        (gone / "runner").write_text("999999999 1\n")  # a runner long gone
        leftovers.claim_run(live)  # this process: the owned VM's parent, and alive
        vms = found(orphan) + found(owned)
        assert leftovers.orphans(vms) == vms[:1]
        assert leftovers.clean(tmp_path / "cache", "image-cur", tmp_path, time.time(),
                               vms) == 1
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert owned.poll() is None
        assert f"+ kill -s KILL {orphan.pid}  # shellctr-vm1 of {gone}: its runner is gone" \
            in capsys.readouterr().err
        assert not leftovers.kill_vm(vms[0])  # gone already: nothing to do
    finally:
        for process in (orphan, owned):
            process.kill()
            process.wait()
