"""What the integration tests share: running the CLI, finding leaks, building tars.

See conftest.py for how the fixtures use these.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import re
import signal
import struct
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent
SHELLCTR = CHECKOUT / "bin" / "shellctr"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw-main")
# one directory per checkout and worker: two checkouts' suites may run at the same time
BASE = Path(f"/tmp/shellctr-test-{hashlib.sha256(bytes(CHECKOUT)).hexdigest()[:8]}-{WORKER}")
HOST_BUSYBOX = Path("/bin/busybox")
# every hang guard and polling deadline is stretched by this factor on slow hosts: in the
# software-emulated VMs of vm/run-tests code runs 15-40x slower (the runner sets it)
TIME_SCALE = float(os.environ.get("SHELLCTR_TEST_TIME_SCALE", "1"))
DEFAULT_TIMEOUT = 60.0 * TIME_SCALE  # a guard against hangs only; no test asserts on durations
MONITOR = "shellctr-monitor"  # the program every container runs under
CGROUP_ROOT = Path("/sys/fs/cgroup")


# -- running the CLI -----------------------------------------------------------------
@dataclass(repr=False)
class Result:
    """One finished CLI call."""

    argv: list[str]
    code: int
    out: str
    err: str
    raw: bytes = b""  # stdout as bytes, when asked for (binary output such as a tar)

    def __str__(self) -> str:
        """The call, its exit code and its output: what assertion messages show."""
        return (f"\n$ {' '.join(self.argv)}\n-> exit {self.code}\n"
                f"--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}")

    @property
    def err_lines(self) -> list[str]:
        """stderr without trace lines (`+ ...`)."""
        return [line for line in self.err.splitlines() if not line.startswith("+ ")]

    def ok(self) -> Result:
        """Assert a zero exit; return self for chaining."""
        assert self.code == 0, str(self)
        return self


@dataclass
class Running:
    """A CLI call started in the background (e.g. a long-running foreground `run`)."""

    argv: list[str]
    process: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> Result:
        code = self.process.wait(timeout=timeout)
        return Result(self.argv, code, self.out_path.read_text(errors="replace"),
                      self.err_path.read_text(errors="replace"))

    def output_so_far(self) -> str:
        return (f"stdout: {self.out_path.read_text(errors='replace')}\n"
                f"stderr: {self.err_path.read_text(errors='replace')}")

    def kill(self) -> None:
        """Kill the shellctr process if it still runs (the leak check finds the rest)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEFAULT_TIMEOUT)


@dataclass
class Ctr:
    """Runs the shellctr CLI of this checkout against one state root."""

    root: Path
    runroot: Path
    scratch: Path  # where background calls keep their output
    started: list[Running] = field(default_factory=list)

    def argv(self, args: Sequence[str], trace: bool = True) -> list[str]:
        return [str(SHELLCTR), "--root", str(self.root), "--runroot", str(self.runroot),
                *(["--trace"] if trace else []), *args]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SHELLCTR_")}  # the flags choose the state dirs
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        trace: bool = True,
        binary: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Result:
        """Run `shellctr ARGS`; never raises on a non-zero exit."""
        argv = self.argv(args, trace)
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            argv, input=data, stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True, env=self.env(env), timeout=timeout, check=False,
        )
        return Result(argv, proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"), proc.stdout if binary else b"")

    def popen(self, *args: str, env: dict[str, str] | None = None, trace: bool = True,
              **kwargs: object) -> Running:
        """Start `shellctr ARGS` in the background, output to files."""
        argv = self.argv(args, trace)
        token = uuid.uuid4().hex[:8]
        out_path, err_path = self.scratch / f"{token}.out", self.scratch / f"{token}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                       env=self.env(env), **kwargs)  # type: ignore[call-overload]
        running = Running(argv, process, out_path, err_path)
        self.started.append(running)
        return running

    # -- small conveniences used across test files --------------------------------
    def container_ids(self, full: bool = False) -> list[str]:
        result = self("ps", "-aq", *(["--no-trunc"] if full else [])).ok()
        return result.out.split()

    def image_ids(self) -> list[str]:
        return self("images", "-q").ok().out.split()


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30.0) -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` (times
    TIME_SCALE)."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout * TIME_SCALE}s waiting for {what}")
        time.sleep(0.02)


# -- the per-worker store and its leaks --------------------------------------------------
@dataclass
class Worker:
    """A pytest-xdist worker's own directories (see conftest.py)."""

    base: Path  # everything of this worker lives below it
    root: Path  # --root
    runroot: Path  # --runroot
    scratch: Path  # output files of background calls


def host_mounts_under(base: Path) -> list[str]:
    """Mount points in our (the host's) mount namespace at or below `base`."""
    prefix = str(base) + "/"
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as stream:
        for line in stream:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            if point.startswith(prefix) or point == str(base) or prefix in line:
                points.append(point)
    return points


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError:  # gone meanwhile, or a kernel thread
        return b""


def processes_of(base: Path) -> dict[int, str]:
    """pid -> description of every process that belongs to this worker's base.

    A process belongs to it if its cmdline mentions the base (shellctr itself, unshare,
    tar...), or if it lives in another mount namespace whose mount table mentions the
    base (a container: its root overlay's options name its layer and upper dirs).
    """
    needle = (str(base) + "/").encode()
    own_mnt = os.readlink("/proc/self/ns/mnt")
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        cmdline = _read(f"/proc/{entry}/cmdline")
        shown = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        if needle in cmdline:
            program = os.path.basename(cmdline.split(b"\0", 1)[0]).decode(errors="replace")
            kind = "shellctr-monitor" if program == MONITOR else "cmdline"
            found[int(entry)] = f"{kind} mentions {base}: {shown}"
            continue
        try:
            mnt = os.readlink(f"/proc/{entry}/ns/mnt")
        except OSError:
            continue
        if mnt != own_mnt and needle in _read(f"/proc/{entry}/mountinfo"):
            found[int(entry)] = f"container process (its mounts mention {base}): {shown}"
    return found


def scrub(base: Path) -> None:
    """Kill this base's processes, detach its mounts (deepest first), and delete the named
    network namespaces of its containers (/run/netns/shc-ID: they live outside the base,
    and a run killed mid-test leaves them) and their cgroups."""
    for pid in processes_of(base):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for point in sorted(host_mounts_under(base), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    containers = base / "root" / "containers"
    found = os.listdir(containers) if containers.is_dir() else []
    for name in found:  # ID, or a half-made / tombstoned .ID.SUFFIX
        cid = name.lstrip(".").split(".")[0]
        if not re.fullmatch(r"[0-9a-f]{64}", cid):
            continue
        if os.path.lexists(f"/run/netns/shc-{cid[:11]}"):
            subprocess.run(["ip", "netns", "delete", f"shc-{cid[:11]}"], check=False,
                           capture_output=True, timeout=DEFAULT_TIMEOUT)
        for group in container_cgroups([cid]):  # its processes were killed above
            try:
                group.rmdir()
            except OSError:
                pass  # a child cgroup of its own, or still emptying: the leak check says


def leftovers(w: Worker) -> list[str]:
    """State a test must not leave: container dirs (and their own resolvers' dirs),
    scratch files, partial layers and
    layer tars, and volumes (an anonymous one that rm -v / --rm should have removed, or a
    named one the test did not remove)."""
    found = []
    for directory in (w.runroot / "containers", w.runroot / "resolvers",
                      w.root / "containers", w.root / "tmp", w.root / "volumes"):
        if directory.is_dir():
            found += [f"left in {directory}: {entry}" for entry in os.listdir(directory)]
    for layers in (w.root / "layers", w.root / "blobs" / "sha256"):
        if layers.is_dir():
            found += [f"partial layer left: {layers / entry}" for entry in os.listdir(layers)
                      if entry.endswith(".partial")]
    return found


def container_cgroups(cids: Iterable[str]) -> list[Path]:
    """The cgroup directories of these containers that exist: `shellctr/<id>` in the
    unified hierarchy (v2) or in any controller's hierarchy (v1)."""
    hierarchies = [CGROUP_ROOT, *(path for path in CGROUP_ROOT.iterdir() if path.is_dir())]
    return [path for cid in sorted(cids) for hierarchy in hierarchies
            if (path := hierarchy / "shellctr" / cid).is_dir()]


def leaks(w: Worker, cids: Iterable[str] = ()) -> list[str]:
    """Everything the worker's tests left behind, one line each; `cids` are the ids of
    the containers the test created (only their cgroups are this worker's)."""
    cids = list(cids)
    return ([f"host mount: {point}" for point in host_mounts_under(w.base)]
            + [f"process {pid}: {what}" for pid, what in processes_of(w.base).items()]
            + [f"cgroup: {path}" for path in container_cgroups(cids)]
            + leftovers(w) + network_leaks(w, cids))


# -- networking: each worker has its own network namespace ------------------------------
# The worker's tests run in a network namespace of their own (conftest's `worker`
# fixture enters it), so links, iptables rules and the default network `shellctr0`
# are the worker's alone. Only /run/netns is shared by the whole host: the named
# netns of containers carry their ids, and those the tests make carry NET_TAG.
NET_TAG = hashlib.sha256(str(BASE).encode()).hexdigest()[:6]
NETNS_DIR = Path("/run/netns")
DEFAULT_NETWORK = "shellctr0"  # made on first use; it stays until `system prune`


def links() -> list[str]:
    """The interfaces of this (the worker's) network namespace."""
    with open("/proc/thread-self/net/dev", encoding="ascii") as stream:
        return [line.split(":", 1)[0].strip() for line in stream.read().splitlines()[2:]]


def shellctr_rules() -> list[str]:
    """Every iptables rule tagged shellctr:... in this network namespace, and its chains."""
    found = []
    for table in ("raw", "filter", "nat"):
        out = subprocess.run(["iptables", "--table", table, "--list-rules"], check=True,
                             capture_output=True, text=True, timeout=DEFAULT_TIMEOUT).stdout
        found += [f"{table}: {line}" for line in out.splitlines()
                  if "shellctr:" in line or line.startswith("-N SHELLCTR-")]
    return found


def network_leaks(w: Worker, cids: list[str]) -> list[str]:
    """Links, netns, rules, resolvers and network records left behind. Allowed between
    tests: the default network (its bridge, its rules, shellctr's chains)."""
    found = [f"link: {name}" for name in links() if name not in ("lo", DEFAULT_NETWORK)]
    found += [f"netns: {NETNS_DIR / name}" for name in
              (os.listdir(NETNS_DIR) if NETNS_DIR.is_dir() else [])
              if any(name == "shc-" + cid[:11] for cid in cids) or NET_TAG in name]
    allowed = ("shellctr:base", f"shellctr:net={DEFAULT_NETWORK}", "-N SHELLCTR-")
    found += [f"iptables rule: {rule}" for rule in shellctr_rules()
              if not any(mark in rule for mark in allowed)]
    networks = w.root / "networks"
    for entry in os.listdir(networks) if networks.is_dir() else []:
        if entry.endswith(".json"):
            record = json.loads((networks / entry).read_text())
            endpoints_file = w.runroot / "networks" / f"{record['id']}.endpoints.json"
            endpoints = (json.loads(endpoints_file.read_text()) if endpoints_file.exists()
                         else {})
            if record["name"] != DEFAULT_NETWORK or endpoints:
                found.append(f"network {record['name']} with endpoints {sorted(endpoints)}")
    return found


def remove_network_leaks(w: Worker) -> None:
    """After a leak: every container, network and test namespace of this worker goes."""
    for name in os.listdir(NETNS_DIR) if NETNS_DIR.is_dir() else []:
        if NET_TAG in name:
            subprocess.run(["ip", "netns", "delete", name], check=False, timeout=30)
    cleaner = Ctr(w.root, w.runroot, w.scratch)
    cleaner("system", "prune", "--force")
    for name in links():
        if name != "lo":
            subprocess.run(["ip", "link", "delete", "dev", name], check=False, timeout=30)


def enter_own_network_namespace() -> int:
    """Move this thread (the tests' one, which starts every CLI call) into a new
    network namespace with loopback up; returns a handle to get back (`leave_...`)."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if LIBC.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    subprocess.run(["ip", "link", "set", "dev", "lo", "up"], check=True, timeout=30)
    return original


def leave_own_network_namespace(original: int) -> None:
    if LIBC.setns(original, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(original)


CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)


class CreatedNames:
    """The names created in a directory while it is watched (inotify).

    Watching <root>/containers gives the id of every container a test made, even one
    that was gone again before any listing could see it (`run --rm`), and of no other
    worker's or checkout's: their roots differ.
    """

    IN_MOVED_TO, IN_CREATE, IN_Q_OVERFLOW = 0x80, 0x100, 0x4000
    IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
    HEADER = struct.Struct("iIII")  # struct inotify_event without its name

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names: set[str] = set()
        self.overflowed = False
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(self.IN_NONBLOCK | self.IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, bytes(directory),
                                  self.IN_CREATE | self.IN_MOVED_TO) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {directory}")

    def read(self) -> set[str]:
        """Every name created so far (plus those there now)."""
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                _, mask, _, length = self.HEADER.unpack_from(data, offset)
                start = offset + self.HEADER.size
                if mask & self.IN_Q_OVERFLOW:
                    self.overflowed = True
                elif length:
                    self.names.add(data[start:start + length].rstrip(b"\0").decode())
                offset = start + length
        if self.directory.is_dir():
            self.names.update(os.listdir(self.directory))
        return self.names

    def close(self) -> None:
        os.close(self.fd)


# -- building tars ---------------------------------------------------------------------
def tar_member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
               link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
    info.mtime = 1_700_000_000
    return info, data


def write_tar(path: Path, members: Sequence[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


APPLETS = ("sh", "cat", "echo", "env", "id", "pwd", "true", "ls", "sleep")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\nnogroup:x:65534:\n"


# -- helpers shared by the test files ---------------------------------------------------
def tree_listing(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (mode, size, mtime_ns) of everything under `roots` (not following links)."""
    listing = {}
    for top in roots:
        if not top.exists():
            continue
        for directory, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                path = os.path.join(directory, name)
                st = os.lstat(path)
                listing[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return listing


def docker_error_code(argv: list[str]) -> int:
    """The Docker CLI's code for an engine error: 125 for run, create and start -a (whose
    other codes are the container's), 1 for every other verb."""
    from shellctr.cli.main import attaches, verb_of

    verb = verb_of(argv[1:])
    if verb in ("run", "create") or (verb == "start" and attaches(argv)):
        return 125
    return 1


def one_line_error(result: Result) -> str:
    """Assert `result` is an engine error reported as exactly one `shellctr:` line, with
    Docker's exit code for its verb."""
    assert result.code == docker_error_code(result.argv), str(result)
    lines = result.err_lines
    assert len(lines) == 1, str(result)
    assert lines[0].startswith("shellctr:"), str(result)
    assert "Traceback" not in result.err, str(result)
    return lines[0]


SHORT_ID = re.compile(r"^[0-9a-f]{12}$")
FULL_ID = re.compile(r"^[0-9a-f]{64}$")


# -- detached containers ------------------------------------------------------------------
def run_detached(ctr: Ctr, *args: str) -> str:
    """`run -d ARGS`: assert it printed a full 64-hex id, and return it."""
    result = ctr("run", "-d", *args).ok()
    assert FULL_ID.match(result.out.strip()), str(result)
    return result.out.strip()


def inspect(ctr: Ctr, ref: str) -> dict[str, Any]:
    """The container's `inspect` record."""
    result = ctr("inspect", ref, trace=False).ok()
    records = json.loads(result.out)
    assert isinstance(records, list) and len(records) == 1, str(result)
    record: dict[str, Any] = records[0]
    return record


def pids_naming(text: str) -> list[int]:
    """Host processes whose cmdline contains `text`: with a container's id, its monitor
    (which names the container's files) and the `_exited` hook it execs."""
    needle = text.encode()
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and int(entry) != os.getpid()
            and needle in _read(f"/proc/{entry}/cmdline")]


def wait_settled(cid: str, timeout: float = 30.0) -> None:
    """Wait until no monitor or hook of the container runs any more: its restart policy
    and --rm have been carried out, and nothing will change it by itself."""
    # twice in a row, a poll apart: while a process execs (the monitor becoming its hook,
    # the launcher becoming python), its cmdline reads empty for a moment
    looks: list[bool] = []
    wait_for(lambda: looks.append(not pids_naming(cid)) or looks[-2:] == [True, True],
             f"the monitor and hook of {cid[:12]} to end", timeout)


def rfc3339(stamp: str) -> datetime:
    """An RFC 3339 time as Docker prints it (up to nanoseconds; Python keeps micro)."""
    base, _, fraction = stamp.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{base}.{(fraction or '0')[:6].ljust(6, '0')}+00:00")


def remove_all(ctr: Ctr) -> None:
    """`rm -f` every container of the store (the end of a test that kept some)."""
    ids = ctr.container_ids(full=True)
    if ids:
        ctr("rm", "-f", *ids).ok()


# -- --dry-run scripts -------------------------------------------------------------------
def assert_script(result: Result) -> str:
    """`result` printed a bash script that bash accepts; return it."""
    assert result.code == 0, str(result)
    script = result.out
    assert script.startswith("#!/usr/bin/env bash\n"), str(result)
    assert "set -euo pipefail" in script.splitlines()[:5], str(result)
    check = subprocess.run(["bash", "-n"], input=script.encode(), capture_output=True,
                           check=False)
    assert check.returncode == 0, f"bash -n: {check.stderr.decode()}\n{result}"
    return script


def replay(script: str, stdin: bytes | None = None) -> None:
    """Run a dry-run script with bash, as a user would after reading it (`stdin`: what the
    verb read from its stdin, piped in again: the script is then a file)."""
    if stdin is None:
        done = subprocess.run(["bash"], input=script.encode(), capture_output=True,
                              check=False, timeout=DEFAULT_TIMEOUT)
    else:
        done = subprocess.run(["bash", "-c", script], input=stdin, capture_output=True,
                              check=False, timeout=DEFAULT_TIMEOUT)
    assert done.returncode == 0, (f"the script failed ({done.returncode}):\n"
                                  f"{done.stderr.decode()}\n--- script ---\n{script}")
