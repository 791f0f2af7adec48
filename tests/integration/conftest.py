"""Fixtures for the root integration suite: real containers through the real CLI.

Each pytest-xdist worker (id from PYTEST_XDIST_WORKER, "gw-main" without xdist) owns
one base directory, /tmp/shellctr-test-<checkout hash>-<worker>/, holding its state root
(`root/`), run root (`run/`) and `scratch/` files. The base is made fresh when the worker's session
starts (after killing and unmounting what an interrupted run may have left there), the
default `busybox` image is built into it once, and it is removed when the session ends.
The tests are independent of each other: whatever container or image a test makes, it
removes before it ends, and tests on one worker run one at a time.

Every CLI call goes through the `ctr` fixture. It always passes `--root` and `--runroot`
on the command line (so any shellctr process of this worker, monitors included, carries
the worker's base path in its cmdline) and `--trace` (unless a test asks for the plain
output), and it never raises on a non-zero exit: tests assert on `Result.code`, and a
`Result` renders with its command, stdout and stderr (the trace), so failures explain
themselves.

After every test, the autouse `leak_check` asserts that the test left nothing behind
(a leak shows as an error in the test's teardown, listing each leaked thing), then
cleans up whatever it found, so one failure does not cascade into the next tests:

- no host mount (in /proc/self/mountinfo) whose path lies under the worker's base;
- no process whose cmdline mentions the worker's base (`shellctr-monitor`, which names
  the container's log and exit files, `unshare` with its init spec, `tar` extracting a
  layer, ...);
- no container process. A container's cmdline is the user's command (`sleep 1000`), so
  cmdlines cannot find it. Instead: every process whose mount namespace differs from
  ours is a candidate, and it is one of *this* worker's containers if its own mount
  table (/proc/PID/mountinfo) mentions the worker's base, which it always does: the
  container's root is an overlay whose lowerdir/upperdir options are paths under it.
  This is exact with any number of parallel workers (their bases differ) and needs
  no marker in the container (which would change the environment the tests pin);
- no cgroup `shellctr/<id>` (v2: /sys/fs/cgroup/shellctr/<id>; v1: in any controller's
  hierarchy) of a container the test created. Which ids those are is learnt by
  watching <root>/containers with inotify while the test runs: that sees even a
  `run --rm` container that is gone before any listing, and never another worker's or
  another checkout's containers (their roots differ);
- nothing left in <runroot>/containers, <root>/containers, <root>/tmp or
  <root>/volumes (anonymous volumes must go with rm -v / --rm; tests remove the named
  ones they make), no `.partial` directory in <root>/layers and no `.partial` layer tar
  in <root>/blobs/sha256. Tests that keep a container (no --rm) remove it themselves
  before they end.

Transient states (a container's last process being reaped) are polled for with a
deadline; no test sleeps for a fixed time or asserts on wall-clock durations, and every
subprocess has a timeout, so a hang fails instead of blocking the run.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import (
    APPLETS,
    BASE,
    GROUP,
    HERE,
    HOST_BUSYBOX,
    PASSWD,
    TIME_SCALE,
    CreatedNames,
    Ctr,
    Worker,
    container_cgroups,
    enter_own_network_namespace,
    leaks,
    leave_own_network_namespace,
    links,
    network_leaks,
    remove_network_leaks,
    scrub,
    shellctr_rules,
    tar_member,
    write_tar,
)


# -- skipping ------------------------------------------------------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this directory's tests `root`, and skip them all unless we are root."""
    skip = pytest.mark.skip(
        reason="integration tests need root: they create namespaces and mount overlayfs "
        "(run them as root, e.g. in the VM under vm/)"
    )
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def worker() -> Iterator[Worker]:
    """This worker's base dir, fresh for the session, with the busybox image built."""
    if BASE.exists():  # left by an earlier, interrupted run
        scrub(BASE)
        shutil.rmtree(BASE)
    # networking: this worker's links, rules and default network are its own
    original_netns = enter_own_network_namespace()
    root, runroot, scratch = BASE / "root", BASE / "run", BASE / "scratch"
    for path in (BASE, runroot, scratch):
        path.mkdir(mode=0o700, parents=True)
    w = Worker(BASE, root, runroot, scratch)
    if not HOST_BUSYBOX.is_file():
        pytest.fail(f"{HOST_BUSYBOX} is missing: apt-get install busybox-static")
    Ctr(root, runroot, scratch)("image", "build-busybox").ok()
    yield w
    # `system prune` must leave nothing of the networks (the default one included)
    Ctr(root, runroot, scratch)("system", "prune", "--force").ok()
    left = network_leaks(w, []) + [f"link: {name}" for name in links() if name != "lo"] + [
        f"iptables: {rule}" for rule in shellctr_rules()]
    scrub(BASE)
    shutil.rmtree(BASE)
    leave_own_network_namespace(original_netns)
    assert not left, "system prune left: " + ", ".join(left)


@pytest.fixture
def ctr(worker: Worker, leak_check: None) -> Iterator[Ctr]:
    """The CLI, bound to this worker's store (see the module docstring)."""
    client = Ctr(worker.root, worker.runroot, worker.scratch)
    yield client
    for running in client.started:  # a test that failed half-way
        running.kill()


@pytest.fixture(autouse=True)
def leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: fail it if it leaked mounts, processes or state; then clean up.

    Autouse, so it is set up before (and torn down after) every other fixture the test
    uses. Tests that do not touch the worker's store need no check.
    """
    if "worker" not in request.fixturenames:
        yield
        return
    w: Worker = request.getfixturevalue("worker")
    (w.root / "containers").mkdir(mode=0o700, exist_ok=True)  # as shellctr makes it
    created = CreatedNames(w.root / "containers")
    try:
        yield
        cids = created.read()
    finally:
        created.close()
    found: list[str] = []
    # a container's last processes may still be reaped
    deadline = time.monotonic() + 10.0 * TIME_SCALE
    while True:
        found = leaks(w, cids)
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if created.overflowed:  # cannot happen with a few thousand containers per test
        found.append("inotify queue overflowed: some containers' cgroups went unchecked")
    if not found:
        return
    scrub(w.base)
    cleaner = Ctr(w.root, w.runroot, w.scratch)
    ids = cleaner("ps", "-aq", "--no-trunc").out.split()
    if ids:
        cleaner("rm", "-f", *ids)
    remove_network_leaks(w)
    for directory in (w.runroot / "containers", w.root / "containers", w.root / "tmp",
                      w.root / "volumes"):
        for entry in os.listdir(directory) if directory.is_dir() else []:
            shutil.rmtree(directory / entry, ignore_errors=True)
    for layers in (w.root / "layers", w.root / "blobs" / "sha256"):
        for entry in os.listdir(layers) if layers.is_dir() else []:
            if entry.endswith(".partial") and (layers / entry).is_dir():
                shutil.rmtree(layers / entry, ignore_errors=True)
            elif entry.endswith(".partial"):
                (layers / entry).unlink()
    for path in container_cgroups(cids):  # empty now that scrub killed their processes
        try:
            path.rmdir()
        except OSError:
            pass
    pytest.fail("the test leaked:\n  " + "\n  ".join(found), pytrace=False)


@pytest.fixture
def rootfs_tar(tmp_path: Path) -> Callable[..., Path]:
    """A factory: a small runnable rootfs tar (host static busybox and a few applets).

    Each tar holds a unique marker file, so its layer is this test's own and tests never
    share a layer by accident; `extra` adds files ({name: bytes}).
    """
    busybox = HOST_BUSYBOX.read_bytes()

    def make(name: str = "rootfs.tar", extra: dict[str, bytes] | None = None) -> Path:
        members = [tar_member(d, tarfile.DIRTYPE, mode=0o755)
                   for d in ("bin", "etc", "tmp", "root")]
        members.append(tar_member("bin/busybox", data=busybox, mode=0o755))
        members += [tar_member(f"bin/{applet}", tarfile.SYMTYPE, mode=0o777, link="busybox")
                    for applet in APPLETS]
        members += [tar_member("etc/passwd", data=PASSWD.encode()),
                    tar_member("etc/group", data=GROUP.encode()),
                    tar_member("etc/test-marker", data=uuid.uuid4().hex.encode())]
        members += [tar_member(path, data=data) for path, data in (extra or {}).items()]
        return write_tar(tmp_path / name, members)

    return make


@pytest.fixture
def other_root(worker: Worker) -> Iterator[Ctr]:
    """The CLI on a root that does not exist yet (under the worker's base)."""
    name = f"alt-{uuid.uuid4().hex[:8]}"
    root, runroot = worker.base / name / "root", worker.base / name / "run"
    yield Ctr(root, runroot, worker.scratch)
    shutil.rmtree(worker.base / name, ignore_errors=True)
