"""vm/run-tests: the root integration suite in disposable VMs, in parallel.

    vm/run-tests [-j N] [--timeout S] [--guest-deadline S] [--vcpus N] [--memory MB]
                 [--junit-xml FILE] [--keep] [PYTEST ARGS...]
    vm/run-tests --clean

1. The base image (vm/image/build: Debian's kernel, a tiny initramfs, an ext4 root with
   Python and shellctr's dependencies, no network) is looked up in the cache
   (SHELLCTR_VM_CACHE, default /var/cache/shellctr-vm) under the hash of the recipe,
   every file in vm/image/, and built once under a lock when missing.
2. The test files named by PYTEST ARGS (default tests/integration) are split across N
   VMs (default: the number of host CPUs), balanced by how long each took the last time
   (the cache keeps that) or, the first time, by how many tests each has.
3. Each VM boots directly into the kernel (qboot firmware, no boot loader, no
   systemd) on a throwaway qcow2 layer over the base image, with the checkout shared
   read-only and its own results folder shared writable (9p). Its init (vm/guest/init)
   runs pytest on its files with the unified cgroup v2 hierarchy and powers off. The VMs
   have no network card. KVM is used when it works; otherwise TCG, with a note.
4. A VM still running at the timeout is killed and reported, as is one that ended
   without results. The junit XMLs are merged into one, and the last line printed is
   `N passed, N failed` (`, N skipped`); the exit status is 0 only if all passed.

No VM outlives its runner, however the runner ends: each qemu gets SIGKILL from the
kernel when the runner dies (PR_SET_PDEATHSIG), SIGKILL included; and each guest's init
ends the VM at its deadline (--guest-deadline, on the kernel command line; by default
30 s past --timeout) even if nothing on the host is left to kill it. A run that
finds VMs of a runner that is gone says so; `--clean` (make test-vm-clean) kills them,
and removes dead runs older than a day and images of other recipes (vm/leftovers.py).

Every run has its own directory (mkdtemp), so runs at the same time never collide. This
file is not part of the shellctr package: nothing in shellctr imports it.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import leftovers  # vm/leftovers.py: this script's directory is first on sys.path

VM_DIR = Path(__file__).resolve().parent
CHECKOUT = VM_DIR.parent
RECIPE = VM_DIR / "image"
DEFAULT_CACHE = Path("/var/cache/shellctr-vm")
DEFAULT_TESTS = ("tests/integration",)
QEMU = "qemu-system-x86_64"
# how much the tests stretch their hang guards and deadlines (SHELLCTR_TEST_TIME_SCALE)
TIME_SCALE = {"kvm": 2, "tcg": 10}
QBOOT = "/usr/share/qemu/qboot.rom"  # a tiny firmware that only boots -kernel: fast
# s past --timeout at which a guest ends itself (its deadline, kept by its init): the
# runner's kill comes first while the runner lives; the deadline ends a VM that has none
GUEST_GRACE = 30
# pytest options that take a value as the next argument (so that value is no test path)
VALUE_OPTIONS = {"-k", "-m", "-p", "-o", "-c", "-n", "-W", "--maxfail", "--deselect",
                 "--ignore", "--rootdir", "--durations", "--tb", "-r", "--junitxml",
                 "--junit-xml", "--dist", "--numprocesses", "--override-ini"}


def note(message: str) -> None:
    print(f"vm: {message}", file=sys.stderr, flush=True)


class RunnerError(Exception):
    """A one-line error: the runner could not do what was asked."""


# -- the base image --------------------------------------------------------------------
def recipe_hash(recipe: Path = RECIPE) -> str:
    """The hash of every file of the recipe (names and contents): the image's cache key."""
    digest = hashlib.sha256()
    for path in sorted(p for p in recipe.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(recipe)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


IMAGE_FILES = ("vmlinuz", "initrd.img", "rootfs.img")


def have_image(image: Path) -> bool:
    """Whether the image is complete, held (shared lock) for this run's life if so: a
    `make test-vm-clean` at the same time leaves an image that a run holds alone."""
    return all((image / name).is_file() for name in IMAGE_FILES) and \
        leftovers.hold_image(image)


def ensure_image(cache: Path) -> Path:
    """The cached base image for this recipe, built (once, under a lock) if missing."""
    image = cache / f"image-{recipe_hash()}"
    if have_image(image):
        note(f"base image {image} (cached)")
        return image
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it right now
        if have_image(image):
            note(f"base image {image} (built by another run)")
            return image
        partial = Path(tempfile.mkdtemp(prefix=f"{image.name}.partial-", dir=cache))
        note(f"building the base image {image.name} (recipe changed or first run)")
        started = time.monotonic()
        try:
            build = subprocess.run([str(RECIPE / "build"), str(partial)], check=False)
            if build.returncode != 0:
                raise RunnerError(f"building the VM image failed (exit {build.returncode}); "
                                  "see the output above")
            partial.rename(image)
            if not leftovers.hold_image(image):
                raise RunnerError(f"the image {image} vanished once built")
        finally:
            if partial.exists():
                shutil.rmtree(partial)
        note(f"built the base image in {time.monotonic() - started:.0f} s")
    return image


# -- what to run where -----------------------------------------------------------------
@dataclass
class Job:
    """pytest's options (for every VM) and the test files or node ids (split)."""

    options: list[str]
    units: list[str]


def parse_pytest_args(args: Sequence[str], checkout: Path = CHECKOUT) -> Job:
    """Split PYTEST ARGS into options and test files (a directory: its test_*.py files),
    paths relative to the checkout, as the guest sees it."""
    options: list[str] = []
    units: list[str] = []
    takes_value = False
    for arg in args:
        if takes_value:
            options.append(arg)
            takes_value = False
            continue
        if arg.startswith("-"):
            options.append(arg)
            takes_value = arg in VALUE_OPTIONS
            continue
        path_text, sep, node = arg.partition("::")
        path = Path(path_text)
        full = path if path.is_absolute() else Path.cwd() / path
        try:
            relative = full.resolve().relative_to(checkout.resolve())
        except ValueError:
            raise RunnerError(f"{arg}: not in the checkout {checkout} (the VMs see only "
                              "the checkout)") from None
        if full.is_dir():
            found = sorted(p.relative_to(checkout.resolve()) for p in full.resolve().rglob(
                "test_*.py"))
            units += [str(p) for p in found]
        elif full.is_file():
            units.append(f"{relative}{sep}{node}")
        else:
            raise RunnerError(f"{arg}: no such test file or directory")
    if not units:  # options only: the whole integration suite
        units = [str(p.relative_to(checkout.resolve())) for d in DEFAULT_TESTS
                 for p in sorted((checkout.resolve() / d).glob("test_*.py"))]
    return Job(options, units)


def estimate(unit: str, durations: dict[str, float], checkout: Path = CHECKOUT) -> float:
    """How long a test file (or node id) is expected to take in a VM, in seconds: what
    its tests took the last time they ran in a VM, or else 10 s a test (TCG)."""
    known = [seconds for node, seconds in durations.items()
             if node == unit or node.startswith((f"{unit}::", f"{unit}["))]
    if known:
        return sum(known)
    path = unit.partition("::")[0]
    if "::" in unit:
        return 10.0
    try:
        text = (checkout / path).read_text()
    except OSError:
        return 10.0
    return 10.0 * max(len(re.findall(r"^\s*(?:async )?def test_", text, re.MULTILINE)), 1)


def split(units: Sequence[str], vms: int, durations: dict[str, float],
          checkout: Path = CHECKOUT) -> list[list[str]]:
    """The longest first, each onto the least loaded VM; no VM without work."""
    loads: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(min(vms, len(units)))]
    for unit in sorted(units, key=lambda u: (-estimate(u, durations, checkout), u)):
        index = min(range(len(loads)), key=lambda i: loads[i][0])
        load, assigned = loads[index]
        loads[index] = (load + estimate(unit, durations, checkout), [*assigned, unit])
    return [sorted(assigned) for _, assigned in loads]


# -- results ---------------------------------------------------------------------------
@dataclass
class Outcome:
    passed: int = 0
    failed: list[str] = field(default_factory=list)  # "tests/x.py::test_y: message"
    skipped: int = 0
    durations: dict[str, float] = field(default_factory=dict)  # node id -> seconds


def node_id(classname: str, name: str, checkout: Path = CHECKOUT) -> str:
    """A junit test case (`tests.integration.test_x` or `...test_x.TestClass`, and its
    name) as pytest's node id: `tests/integration/test_x.py[::TestClass]::name`."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if (checkout / candidate).is_file():
            return "::".join([candidate, *parts[end:], name])
    return f"{'/'.join(parts)}.py::{name}"


def read_junit(path: Path) -> Outcome:
    """Count a junit XML's test cases; name every failure and error."""
    outcome = Outcome()
    for case in ET.parse(path).getroot().iter("testcase"):
        node = node_id(case.get("classname", ""), case.get("name", ""))
        outcome.durations[node] = float(case.get("time", "0") or 0)
        problems = [child for child in case if child.tag in ("failure", "error")]
        if problems:
            message = (problems[0].get("message") or problems[0].tag).splitlines()
            outcome.failed.append(f"{node}: {message[0] if message else problems[0].tag}")
        elif any(child.tag == "skipped" for child in case):
            outcome.skipped += 1
        else:
            outcome.passed += 1
    return outcome


def merge_junit(parts: Sequence[tuple[str, Path]], dest: Path) -> None:
    """One junit XML holding every VM's test suites (each named after its VM)."""
    merged = ET.Element("testsuites")
    for vm_name, path in parts:
        root = ET.parse(path).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            suite.set("name", f"{suite.get('name', 'pytest')} ({vm_name})")
            merged.append(suite)
    ET.ElementTree(merged).write(dest, encoding="utf-8", xml_declaration=True)


def summary(passed: int, failed: int, skipped: int) -> str:
    line = f"{passed} passed, {failed} failed"
    return f"{line}, {skipped} skipped" if skipped else line


# -- the VMs ---------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_runner() -> Callable[[], None]:
    """A preexec_fn for qemu: SIGKILL it when the runner ends, however it ends (SIGKILL
    included, which no handler sees). The kernel sends it when the *thread* that forked
    dies, and only for the direct parent: the runner forks qemu itself (no shell in
    between), from its only thread. If the runner died before the prctl took hold, the
    child's parent is no longer the runner: it exits instead of running qemu."""
    runner, kill = os.getpid(), int(signal.SIGKILL)

    def preexec() -> None:  # in the child between fork and exec (the runner has 1 thread)
        if LIBC.prctl(PR_SET_PDEATHSIG, kill, 0, 0, 0) != 0 or os.getppid() != runner:
            os._exit(127)
    return preexec


def kvm_problem(image: Path) -> str | None:
    """Why KVM cannot run our VMs here, or None when it can. /dev/kvm may exist and even
    make VMs while qemu aborts at the first vCPU reset (nested virtualisation without
    the MSRs it needs, as on these hosts): boot the kernel with no root under KVM, which
    panics and ends the VM (-no-reboot) in well under a second when KVM works."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no usable /dev/kvm"
    try:
        probe = subprocess.run(
            [QEMU, "-M", "pc,accel=kvm", "-bios", QBOOT, "-cpu", "host", "-m", "128", "-nodefaults",
             "-no-user-config", "-display", "none", "-no-reboot", "-serial", "none",
             "-kernel", str(image / "vmlinuz"), "-append", "panic=-1"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
            check=False, preexec_fn=die_with_runner())
    except subprocess.TimeoutExpired:
        return "a KVM test boot did not end within 30 s"
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines()
        return lines[0] if lines else f"qemu exited {probe.returncode}"
    return None


@dataclass
class Vm:
    name: str
    units: list[str]
    directory: Path
    deadline: int  # s after the guest's boot: its init ends the VM then
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ended: float = 0.0
    timed_out: bool = False

    @property
    def results(self) -> Path:
        return self.directory / "results"

    @property
    def console(self) -> Path:
        return self.directory / "console.log"


def guest_deadline(timeout: float, asked: int | None) -> int:
    """When a guest ends itself (s after its boot): as asked, or GUEST_GRACE past the
    runner's --timeout, so that a living runner's kill comes first."""
    deadline = asked if asked is not None else math.ceil(timeout) + GUEST_GRACE
    if deadline < 1:
        raise RunnerError("--guest-deadline needs at least 1 s")
    return deadline


def kernel_command_line(deadline: int) -> str:
    """The guest kernel's command line; shellctr.deadline (a dotted word the kernel
    ignores and hands to no one) is read by vm/guest/init."""
    return f"console=ttyS0 panic=-1 quiet shellctr.deadline={deadline}"


def qemu_argv(vm: Vm, image: Path, accel: str, vcpus: int, memory: int) -> list[str]:
    cpu = "host" if accel == "kvm" else "max"
    return [
        QEMU, "-name", f"shellctr-{vm.name}",
        # pc, not microvm: with microvm's PIT alone a loaded host can make the guest
        # kernel's timer calibration fail and its boot hang; pc has HPET and ACPI PM
        "-M", f"pc,accel={accel}", "-bios", QBOOT, "-cpu", cpu, "-smp", str(vcpus),
        "-m", str(memory),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-nic", "none",  # no network card: nothing leaves the VM
        "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
        "-append", kernel_command_line(vm.deadline),
        "-serial", f"file:{vm.console}",
        "-drive", f"id=root,file={vm.directory / 'root.qcow2'},format=qcow2,if=none,"
                  "cache=unsafe",
        "-device", "virtio-blk-pci,drive=root",
        "-fsdev", f"local,id=checkout,path={CHECKOUT},security_model=none,readonly=on",
        "-device", "virtio-9p-pci,fsdev=checkout,mount_tag=checkout",
        "-fsdev", f"local,id=results,path={vm.results},security_model=none",
        "-device", "virtio-9p-pci,fsdev=results,mount_tag=results",
    ]


def start_vm(vm: Vm, image: Path, options: Sequence[str], accel: str, vcpus: int,
             memory: int) -> None:
    vm.results.mkdir(parents=True)
    (vm.results / "pytest-args").write_text("".join(f"{a}\n" for a in [*options, *vm.units]))
    (vm.results / "time-scale").write_text(f"{TIME_SCALE[accel]}\n")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    str(image / "rootfs.img"), str(vm.directory / "root.qcow2")], check=True)
    with open(vm.directory / "qemu.log", "wb") as log:
        # its own session: a Ctrl-C at the terminal reaches the runner alone, which then
        # kills the VMs and reports; die_with_runner: no VM outlives a runner killed
        vm.process = subprocess.Popen(qemu_argv(vm, image, accel, vcpus, memory),
                                      stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True, preexec_fn=die_with_runner())
    vm.started = time.monotonic()


def wait_all(vms: Sequence[Vm], timeout: float) -> None:
    """Poll the VMs until each has ended or passed its deadline (then kill it)."""
    running = [vm for vm in vms if vm.process is not None]
    while running:
        for vm in list(running):
            assert vm.process is not None
            if vm.process.poll() is not None:
                vm.ended = time.monotonic()
                running.remove(vm)
            elif time.monotonic() - vm.started > timeout:
                vm.timed_out = True
                os.killpg(vm.process.pid, signal.SIGKILL)
                vm.process.wait()
                vm.ended = time.monotonic()
                running.remove(vm)
        if running:
            time.sleep(0.2)


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(nothing)"
    return "\n".join(f"      {line}" for line in text[-lines:]) or "(nothing)"


def panic(console: Path) -> str:
    """The guest kernel's panic line, if its console shows one."""
    try:
        lines = console.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    found = [line.strip() for line in lines if "Kernel panic" in line]
    return f" ({found[0]})" if found else ""


def vm_outcome(vm: Vm, timeout: float) -> tuple[Outcome, str | None]:
    """What the VM's tests did, and what went wrong with the VM itself (or None)."""
    junit, code_file = vm.results / "junit.xml", vm.results / "exit-code"
    outcome = Outcome()
    if parses(junit):
        outcome = read_junit(junit)
    if vm.timed_out:
        return outcome, (f"{vm.name} timed out after {timeout:.0f} s running "
                         f"{' '.join(vm.units)}: killed; its console ended with:\n"
                         f"{tail(vm.console)}\n    and pytest's output with:\n"
                         f"{tail(vm.results / 'pytest.log')}")
    if (vm.results / "deadline-passed").is_file():
        return outcome, (f"{vm.name} passed its deadline ({vm.deadline} s after its boot) "
                         f"running {' '.join(vm.units)}: its init ended it; its "
                         f"console ended with:\n{tail(vm.console)}\n    and pytest's "
                         f"output with:\n{tail(vm.results / 'pytest.log')}")
    if not code_file.is_file() or not junit.is_file():
        return outcome, (f"{vm.name} ended without results (crashed?) running "
                         f"{' '.join(vm.units)}{panic(vm.console)}; its console ended "
                         f"with:\n{tail(vm.console)}\n    qemu said:\n"
                         f"{tail(vm.directory / 'qemu.log')}")
    code = code_file.read_text().strip()
    if code not in ("0", "1") and not (code == "5" and not outcome.failed):
        return outcome, (f"{vm.name}: pytest exited {code} running {' '.join(vm.units)}; "
                         f"its output ended with:\n{tail(vm.results / 'pytest.log', 15)}")
    return outcome, None


def parses(junit: Path) -> bool:
    try:
        ET.parse(junit)
    except (OSError, ET.ParseError):
        return False
    return True


def load_durations(cache: Path) -> dict[str, float]:
    try:
        data = json.loads((cache / "durations.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_durations(cache: Path, new: dict[str, float]) -> None:
    durations = {**load_durations(cache), **new}
    temp = cache / f".durations.{os.getpid()}"
    temp.write_text(json.dumps(durations, indent=1, sort_keys=True))
    temp.replace(cache / "durations.json")


# -- the command -----------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="vm/run-tests", description="Run shellctr's root integration tests in "
        "disposable cgroup v2 VMs. Arguments it does not know go to pytest.")
    parser.add_argument("-j", "--vms", type=int, default=os.cpu_count() or 1,
                        help="VMs booted in parallel (default: the host's CPUs)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds a VM may run before it is killed (default 1800)")
    parser.add_argument("--guest-deadline", type=int, metavar="S",
                        help="seconds after its boot at which each guest ends itself, "
                        "whatever its tests do and even with no runner left (default: "
                        f"--timeout + {GUEST_GRACE})")
    parser.add_argument("--vcpus", type=int, default=2, help="CPUs per VM (default 2)")
    parser.add_argument("--memory", type=int, default=1536, help="MiB per VM (default 1536)")
    parser.add_argument("--junit-xml", type=Path, help="write the merged junit XML here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the VMs' disks too (consoles, logs and results always are)")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("SHELLCTR_VM_CACHE", DEFAULT_CACHE)),
                        help="where base images are kept (default $SHELLCTR_VM_CACHE or "
                        f"{DEFAULT_CACHE})")
    parser.add_argument("--clean", action="store_true",
                        help="run nothing: kill VMs whose runner is gone, remove dead runs "
                        "older than a day and images of other recipes (make test-vm-clean)")
    return parser.parse_known_args(argv)


def clean(cache: Path) -> int:
    """vm/run-tests --clean: what crashed runs and old recipes left behind."""
    if os.geteuid() != 0:
        raise RunnerError("run it as root: the VMs, runs and images are root's")
    removed = leftovers.clean(cache, f"image-{recipe_hash()}", leftovers.runs_dir(),
                              time.time(), leftovers.running_vms())
    note(f"cleaned up {removed} leftovers" if removed else "nothing to clean up")
    return 0


def run(argv: Sequence[str]) -> int:
    args, pytest_args = parse_args(argv)
    if args.clean:
        if pytest_args:
            raise RunnerError(f"--clean runs no tests: {' '.join(pytest_args)} is too much")
        return clean(args.cache)
    if args.vms < 1:
        raise RunnerError("-j needs at least 1 VM")
    deadline = guest_deadline(args.timeout, args.guest_deadline)
    if os.geteuid() != 0:
        raise RunnerError("run it as root: the image is built with mmdebstrap in root mode")
    for tool in (QEMU, "qemu-img", "mmdebstrap", "mkfs.ext4", "cpio"):
        if shutil.which(tool) is None:
            raise RunnerError(f"{tool} is missing: make vm-deps (or apt-get install "
                              "qemu-system-x86 qemu-utils mmdebstrap e2fsprogs cpio)")
    if not (CHECKOUT / "build" / "shellctr-monitor").is_file():
        raise RunnerError("build/shellctr-monitor is missing: run make venv first")
    job = parse_pytest_args(pytest_args)
    if not job.units:
        raise RunnerError("no test files to run")
    image = ensure_image(args.cache)
    problem = kvm_problem(image)
    accel = "tcg" if problem else "kvm"
    if problem:
        note(f"KVM does not work here ({problem}): software emulation (TCG), "
             "~15-40x slower inside")
    left = leftovers.orphans(leftovers.running_vms())
    if left:
        note(f"{len(left)} VM(s) left by an earlier run whose runner is gone still running, "
             f"taking CPU from this one: {leftovers.describe(left)}; `make test-vm-clean` "
             "(vm/run-tests --clean) kills them")
    durations = load_durations(args.cache)
    groups = split(job.units, args.vms, durations)
    run_dir = Path(tempfile.mkdtemp(prefix=leftovers.RUN_PREFIX, dir=leftovers.runs_dir()))
    leftovers.claim_run(run_dir)  # before any VM: a VM whose runner is gone is a leftover
    note(f"run directory {run_dir}")
    vms = [Vm(f"vm{i + 1}", units, run_dir / f"vm{i + 1}", deadline)
           for i, units in enumerate(groups)]
    started = time.monotonic()
    try:
        for vm in vms:
            note(f"{vm.name}: {' '.join(vm.units)}")
            start_vm(vm, image, job.options, accel, args.vcpus, args.memory)
        wait_all(vms, args.timeout)
    finally:
        for vm in vms:  # interrupted (Ctrl-C): no VM outlives the runner
            if vm.process is not None and vm.process.poll() is None:
                os.killpg(vm.process.pid, signal.SIGKILL)
                vm.process.wait()
    total = Outcome()
    problems: list[str] = []
    parts: list[tuple[str, Path]] = []
    for vm in vms:
        outcome, problem = vm_outcome(vm, args.timeout)
        note(f"{vm.name}: {summary(outcome.passed, len(outcome.failed), outcome.skipped)} "
             f"in {vm.ended - vm.started:.0f} s" + (" (see below)" if problem else ""))
        total.passed += outcome.passed
        total.skipped += outcome.skipped
        total.failed += outcome.failed
        total.durations.update(outcome.durations)
        if problem:
            problems.append(problem)
        if parses(vm.results / "junit.xml"):
            parts.append((vm.name, vm.results / "junit.xml"))
    junit = args.junit_xml or run_dir / "junit.xml"
    merge_junit(parts, junit)
    if not problems:
        save_durations(args.cache, total.durations)
    for failure in total.failed:
        print(f"FAILED {failure}")
    for problem in problems:
        print(f"VM FAILED {problem}")
    if not args.keep:  # the disks; each VM's console, pytest output and junit XML stay
        for vm in vms:
            (vm.directory / "root.qcow2").unlink(missing_ok=True)
    note(f"{len(vms)} VMs ({accel}) in {time.monotonic() - started:.0f} s; results kept in "
         f"{run_dir}, merged junit XML: {junit}")
    failed = len(total.failed) + len(problems)
    print(summary(total.passed, failed, total.skipped))
    if failed:
        return 1
    return 0 if total.passed + total.skipped else 5


def interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too: the VMs are killed on the way out


def main() -> int:
    signal.signal(signal.SIGTERM, interrupted)
    try:
        return run(sys.argv[1:])
    except RunnerError as err:
        print(f"vm/run-tests: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vm/run-tests: interrupted; the VMs were killed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
