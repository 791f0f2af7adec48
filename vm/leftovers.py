"""What vm/run-tests leaves on the host, and how it is found and cleaned up.

A run claims its run directory (a `runner` file: the runner's pid and start time) and
holds its base image (a shared flock on the image's kernel) for as long as it lives.
From those, and from the qemu command lines in /proc, this module tells:

- a VM left by a runner that is gone (`shellctr-vmN`, its console in a run directory):
  nothing will ever stop it but its guest's deadline, so `make test-vm-clean` kills it;
- a run directory whose runner is gone and which is older than a day: pruned;
- a base image of another recipe (another hash) that no run holds: pruned, as is a
  half-built image no build is working on.

The selections are pure functions of what was read, so they are unit-tested without VMs.
Not part of the shellctr package: only vm/runner.py imports it.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import select
import shutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

RUN_PREFIX = "shellctr-vm-run-"  # each run's directory, made by mkdtemp
VM_PREFIX = "shellctr-vm"  # qemu's -name of each VM: shellctr-vm1, shellctr-vm2...
RUNNER_FILE = "runner"  # in a run directory: "PID START" of the runner that owns it
RUN_MAX_AGE = 24 * 3600.0  # s: a dead run's directory is kept this long (its logs)
IMAGE_KERNEL = "vmlinuz"  # the file of an image that runs hold a shared lock on
_held: list[IO[bytes]] = []  # the images this process holds: released when it ends


def runs_dir() -> Path:
    """Where runs make their directories: $TMPDIR, or /var/tmp (kept across reboots)."""
    return Path(os.environ.get("TMPDIR") or "/var/tmp")


# -- processes -------------------------------------------------------------------------
def start_time(stat: str) -> str:
    """A process's start time (clock ticks after boot) from its /proc/PID/stat line:
    with the pid, what tells it from a later process that got the same pid."""
    fields = stat.rpartition(")")[2].split()  # after the name, which may hold anything
    return fields[19] if len(fields) > 19 else ""


def parent_pid(stat: str) -> int:
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else 0


def read_stat(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Whether the process runs: neither gone nor a zombie left for its parent to reap."""
    stat = read_stat(pid)
    return bool(stat) and stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def read_argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


# -- runs: the claim on a run directory --------------------------------------------------
def claim_run(run_dir: Path) -> None:
    """Record in the run directory that this process runs it (before any VM starts)."""
    (run_dir / RUNNER_FILE).write_text(f"{os.getpid()} {start_time(read_stat(os.getpid()))}\n")


def parse_claim(text: str) -> tuple[int, str] | None:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


def live_runner(run_dir: Path) -> int | None:
    """The pid of the runner of this run if it is still alive, else None."""
    try:
        claim = parse_claim((run_dir / RUNNER_FILE).read_text())
    except OSError:
        return None
    if claim is None:
        return None
    pid, started = claim
    return pid if start_time(read_stat(pid)) == started else None


# -- VMs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VmProcess:
    """A running qemu of vm/run-tests, as its command line in /proc shows it."""

    pid: int
    ppid: int
    name: str  # shellctr-vm1
    run_dir: Path
    parent_argv: tuple[str, ...] = ()


def vm_of(pid: int, ppid: int, argv: Sequence[str]) -> VmProcess | None:
    """The VM a process is, if its command line is a qemu of vm/run-tests: named
    shellctr-vmN, its console (-serial file:RUN/vmN/console.log) in a run directory."""
    if not argv or not Path(argv[0]).name.startswith("qemu-system"):
        return None
    options = dict(itertools.pairwise(argv[1:]))  # each word and the next
    name, serial = options.get("-name", ""), options.get("-serial", "")
    if not name.startswith(VM_PREFIX) or not serial.startswith("file:"):
        return None
    run_dir = Path(serial.removeprefix("file:")).parent.parent
    if not run_dir.name.startswith(RUN_PREFIX):
        return None
    return VmProcess(pid, ppid, name, run_dir)


def is_orphan(vm: VmProcess, runner: int | None) -> bool:
    """A VM whose runner is gone: its parent is neither the live runner its run directory
    names nor a vm/runner.py process (a runner from before runs were claimed)."""
    if runner is not None and vm.ppid == runner:
        return False
    return not any(arg.endswith("vm/runner.py") for arg in vm.parent_argv)


def running_vms() -> list[VmProcess]:
    """Every qemu of vm/run-tests running on this host, whoever started it."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = read_stat(pid)
        vm = vm_of(pid, parent_pid(stat), read_argv(pid)) if stat else None
        if vm is not None:
            found.append(VmProcess(vm.pid, vm.ppid, vm.name, vm.run_dir,
                                   tuple(read_argv(vm.ppid))))
    return sorted(found, key=lambda vm: (str(vm.run_dir), vm.name))


def orphans(vms: Sequence[VmProcess]) -> list[VmProcess]:
    return [vm for vm in vms if is_orphan(vm, live_runner(vm.run_dir))]


def describe(vms: Sequence[VmProcess]) -> str:
    return ", ".join(f"{vm.name} (pid {vm.pid}, {vm.run_dir})" for vm in vms)


def kill_vm(vm: VmProcess, wait: float = 10.0) -> bool:
    """SIGKILL the VM if that pid is still this VM (a pidfd: no pid reuse can redirect
    it), and wait until it is gone. False if it was gone already."""
    try:
        pidfd = os.pidfd_open(vm.pid)
    except ProcessLookupError:
        return False
    try:
        again = vm_of(vm.pid, vm.ppid, read_argv(vm.pid))
        if again is None or (again.name, again.run_dir) != (vm.name, vm.run_dir):
            return False  # it ended, and the pid is someone else's now
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)  # readable once the process has exited
        if not poller.poll(wait * 1000):
            raise OSError(f"{vm.name} (pid {vm.pid}) did not die within {wait:.0f} s")
        return True
    finally:
        os.close(pidfd)


# -- images ----------------------------------------------------------------------------
def hold_image(image: Path) -> bool:
    """Take a shared lock on the image for this process's life, if the image is there
    (checked again once locked: a clean may have removed it meanwhile)."""
    try:
        handle = open(image / IMAGE_KERNEL, "rb")  # noqa: SIM115 (held until exit)
    except OSError:
        return False
    fcntl.flock(handle, fcntl.LOCK_SH)
    if not (image / IMAGE_KERNEL).is_file():
        handle.close()
        return False
    _held.append(handle)
    return True


def image_in_use(image: Path) -> bool:
    """Whether a run holds this image (its shared lock blocks an exclusive one)."""
    try:
        with open(image / IMAGE_KERNEL, "rb") as handle:  # closing it drops the lock
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except FileNotFoundError:  # no kernel: a broken image, which nothing can use
        return False
    return False


# -- what a clean removes ----------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """A run directory or a cache entry, as the clean sees it."""

    path: Path
    mtime: float
    live: bool = False  # a run with a live runner; an image a run holds; a build going on


def old_runs(runs: Sequence[Entry], now: float, max_age: float = RUN_MAX_AGE) -> list[Path]:
    """Run directories whose runner is gone and which are older than max_age."""
    return [run.path for run in runs if run.path.name.startswith(RUN_PREFIX)
            and not run.live and now - run.mtime > max_age]


def stale_images(entries: Sequence[Entry], current: str) -> list[Path]:
    """Cache entries that are images of another recipe (image-HASH), or images half
    built (image-HASH.partial-XXXX), that nothing uses. The current one stays, and so
    does everything else in the cache (the build lock, the last durations)."""
    return [entry.path for entry in entries if entry.path.name.startswith("image-")
            and entry.path.name != current and not entry.live]


def scan_runs(where: Path) -> list[Entry]:
    entries = []
    for path in sorted(where.glob(f"{RUN_PREFIX}*")):
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if path.is_dir() and not path.is_symlink():
            entries.append(Entry(path, mtime, live_runner(path) is not None))
    return entries


def scan_cache(cache: Path, building: bool) -> list[Entry]:
    """The cache's images; half-built ones are live while a build holds the lock."""
    entries = []
    for path in sorted(cache.glob("image-*")):
        if not path.is_dir() or path.is_symlink():
            continue
        live = building if ".partial-" in path.name else image_in_use(path)
        entries.append(Entry(path, path.stat().st_mtime, live))
    return entries


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def clean(cache: Path, current: str, where: Path, now: float,
          vms: Sequence[VmProcess]) -> int:
    """Kill the VMs among vms whose runner is gone, prune dead runs older than a day
    and the images of other recipes. Each change is printed as the command it is.
    Returns how many things it removed."""
    removed = 0
    for vm in orphans(vms):
        if kill_vm(vm):
            say(f"+ kill -s KILL {vm.pid}  # {vm.name} of {vm.run_dir}: its runner is gone")
            removed += 1
    for path in old_runs(scan_runs(where), now):
        say(f"+ rm -rf {path}  # a run more than a day old whose runner is gone")
        shutil.rmtree(path)
        removed += 1
    if not cache.is_dir():
        return removed
    with open(cache / "build.lock", "a") as lock:
        try:  # a build holds it: its half-built image is no leftover
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            building = False
        except BlockingIOError:
            building = True
        entries = scan_cache(cache, building)
        for path in stale_images(entries, current):
            say(f"+ rm -rf {path}  # an image of another recipe (this one is {current})")
            shutil.rmtree(path)
            removed += 1
        for entry in entries:
            if entry.live and entry.path.name != current and ".partial-" not in entry.path.name:
                say(f"kept {entry.path}: a run is using it")
    return removed
