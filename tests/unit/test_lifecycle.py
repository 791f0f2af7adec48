"""lifecycle: rm, reconcile, stop/kill/wait/rename/top/pause, restart policies, ps filters."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shellctr.core import facts as facts_module
from shellctr.core.errors import Conflict, NotFound, ShellctrError, UsageError
from shellctr.core.facts import Facts, alive, process_start
from shellctr.core.layout import Layout
from shellctr.core.state import ContainerConfig, ContainerState
from shellctr.core.store import Store, dump_record
from shellctr.engine import create as create_module
from shellctr.engine import lifecycle
from shellctr.engine import start as start_module
from shellctr.engine.containers import (
    container_matches,
    kill,
    on_exited,
    parse_filters,
    parse_signal,
    pause,
    remove,
    rename,
    stop,
    top,
    wait,
)
from shellctr.engine.create import create
from shellctr.engine.lifecycle import UNKNOWN_EXIT, reconcile, should_restart
from shellctr.engine.start import start

from .helpers import (
    CID,
    IMAGE_ID,
    LAYER,
    MONITOR_NAME,
    T0,
    T1,
    T2,
    FakeInit,
    RecordingHost,
    image_model,
    install_image,
    prepared_store,
    q,
    reap_in_background,
    record_of,
    removal_lines,
    run_request,
    set_state,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("fixed", "restore_signals")


def created(layout: Layout, *, started: bool = False) -> Store:
    """A container `web` (id CID) in a root holding the busybox image."""
    install_image(layout, layer_dir=True)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    config = create(host, store, run_request("busybox", name="web"))
    if started:
        start(host, store, config["id"], attach=True)  # it ends at once: exit.json is left
    return store


def set_running(layout: Layout, pid: int, monitor_pid: int = 0) -> None:
    """Recorded as running with PID 1 `pid`, as start leaves it (no exit file)."""
    layout.container_exit_file(CID).unlink(missing_ok=True)
    set_state(layout, "running", pid=pid, pid_start=process_start(pid),
              monitor_pid=monitor_pid,
              monitor_start=process_start(monitor_pid) if monitor_pid else 0, started_at=T0)


def write_exit_file(layout: Layout, code: int, finished_at: str) -> None:
    """exit.json, as the monitor writes it when the container has ended."""
    layout.container_exit_file(CID).write_text(json.dumps(
        {"exit_code": code, "finished_at": finished_at}, separators=(",", ":")) + "\n")


def state_line(layout: Layout) -> str:
    return f"cat > {q(layout.container_state(CID))} <<'EOF'"


# A monitor in sh: PID 1 (a sleep) as its child, then exit.json as shellctr-monitor writes
# it, with the exit status of PID 1 (143 after SIGTERM...) and `finished_at` = $2.
SH_MONITOR = r"""
if [ "$3" = ignore-term ]; then (trap '' TERM; exec sleep 60) & else sleep 60 & fi
echo $!
wait $!
code=$?
printf '{"exit_code":%d,"finished_at":"%s"}\n' "$code" "$2" > "$1.tmp" && mv "$1.tmp" "$1"
"""


class Monitored:
    """A container's PID 1 and its (sh) monitor."""

    def __init__(self, layout: Layout, mode: str = "") -> None:
        self.monitor = subprocess.Popen(
            ["sh", "-c", SH_MONITOR, "sh", str(layout.container_exit_file(CID)), T2, mode],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # no "Terminated"
        assert self.monitor.stdout is not None
        self.pid = int(self.monitor.stdout.readline())
        deadline = time.monotonic() + 5
        while Path(f"/proc/{self.pid}/comm").read_text().strip() != "sleep":  # the trap is set
            assert time.monotonic() < deadline
            time.sleep(0.001)

    def end(self) -> None:
        if self.monitor.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.monitor.wait(timeout=10)
        assert self.monitor.stdout is not None
        self.monitor.stdout.close()


@pytest.fixture
def monitored(layout: Layout) -> Iterator[Any]:
    """Start PID 1 under an sh monitor: monitored() or monitored("ignore-term")."""
    started: list[Monitored] = []

    def make(mode: str = "") -> Monitored:
        started.append(Monitored(layout, mode))
        return started[-1]

    yield make
    for one in started:
        one.end()


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["sleep", "60"])
    reap_in_background(process)  # once killed it must not linger as a zombie
    yield process  # type: ignore[misc]
    if process.poll() is None:
        process.kill()


def test_rm_renames_the_container_to_its_tombstone_then_removes_it(layout: Layout) -> None:
    created(layout, started=True)
    before = {path: entry for path, entry in snapshot(layout.root).items()
              if not path.startswith(f"containers/{CID}")}
    assert layout.container_run_dir(CID).is_dir()
    host = RecordingHost()
    remove(host, Store(layout, host), "web", force=False)
    assert host.lines == removal_lines(layout)
    assert snapshot(layout.root) == before
    assert not layout.container_run_dir(CID).exists()


@pytest.mark.parametrize("ref", ["web", CID, CID[:12], "0"])
def test_rm_of_a_created_container_by_name_id_or_prefix(layout: Layout, ref: str) -> None:
    created(layout)
    host = RecordingHost()
    remove(host, Store(layout, host), ref, force=False)
    assert host.lines == removal_lines(layout, run_dir=False)


def test_rm_of_an_unknown_container(layout: Layout) -> None:
    created(layout)
    host = RecordingHost()
    with pytest.raises(NotFound, match="no such container: db"):
        remove(host, Store(layout, host), "db", force=False)
    assert host.cmds == []


def test_rm_refuses_a_running_container(layout: Layout,
                                        sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    set_state(layout, "running", pid=sleeper.pid,
              pid_start=process_start(sleeper.pid), started_at=T0)
    host = RecordingHost()
    with pytest.raises(Conflict, match="cannot remove container web: it is running") as info:
        remove(host, Store(layout, host), "web", force=False)
    assert info.value.hint == "stop it first, or use rm -f"
    assert host.cmds == []
    assert sleeper.poll() is None


def test_rm_force_kills_a_running_container_first(layout: Layout,
                                                  sleeper: subprocess.Popen[bytes]) -> None:
    created(layout, started=True)
    set_running(layout, sleeper.pid)  # and no monitor: the end is recorded as unknown
    host = RecordingHost()
    remove(host, Store(layout, host), "web", force=True)
    assert [line.split("\n")[0] for line in host.lines] == [
        state_line(layout),  # stopping: no restart policy may bring it back
        f"kill -s KILL {sleeper.pid}",
        state_line(layout),  # exited (255)
        *removal_lines(layout)]
    assert record_of(host.cmds[0])["stopping"] is True
    assert record_of(host.cmds[2])["exit_code"] == UNKNOWN_EXIT
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert not layout.container_dir(CID).exists()


def test_rm_force_waits_for_the_monitor_to_record_the_end(layout: Layout,
                                                          monitored: Any) -> None:
    created(layout)
    pid1 = monitored()
    set_running(layout, pid1.pid, pid1.monitor.pid)
    host = RecordingHost()
    remove(host, Store(layout, host), "web", force=True)
    assert [line.split("\n")[0] for line in host.lines] == [
        state_line(layout), f"kill -s KILL {pid1.pid}", state_line(layout),
        *removal_lines(layout, run_dir=False)]
    assert record_of(host.cmds[2])["exit_code"] == 137  # from the monitor's exit.json
    assert pid1.monitor.wait(timeout=5) == 0


def test_rm_force_of_a_container_whose_run_rm_removed_it_meanwhile(
        layout: Layout, sleeper: subprocess.Popen[bytes],
        monkeypatch: pytest.MonkeyPatch) -> None:
    created(layout)
    set_running(layout, sleeper.pid)
    store = Store(layout, RecordingHost())

    def monitor_removes_it(store_: Store, cid: str, timeout: float = 10.0) -> None:
        prepared_store(layout).remove_container(cid)  # as an attached `run --rm` does

    monkeypatch.setattr(lifecycle, "wait_exit_recorded", monitor_removes_it)
    remove(store.host, store, "web", force=True)
    assert not layout.container_dir(CID).exists()


def test_rm_after_rmi_f_removes_the_layers_nothing_uses(layout: Layout) -> None:
    created(layout)
    layout.image_file("ab" * 32).unlink()  # as `rmi -f` leaves it
    host = RecordingHost()
    remove(host, Store(layout, host), "web", force=False)
    assert host.lines == [*removal_lines(layout, run_dir=False),
                          f"rm --recursive {q(layout.layer_dir(LAYER))}"]


def test_reconcile_keeps_a_live_container_running(layout: Layout,
                                                  sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    set_state(layout, "running", pid=sleeper.pid,
              pid_start=process_start(sleeper.pid), started_at=T0)
    assert reconcile(Store(layout, RecordingHost()), CID)["status"] == "running"


def test_reconcile_marks_a_container_whose_pid1_and_monitor_are_gone_exited(
        layout: Layout) -> None:
    created(layout)
    gone = subprocess.Popen(["true"])
    gone.wait()
    set_state(layout, "running", pid=gone.pid, pid_start=12345,
              monitor_pid=gone.pid, monitor_start=12345, started_at=T0)
    host = RecordingHost()
    state = reconcile(Store(layout, host), CID)
    assert (state["status"], state["exit_code"], state["started_at"], state["finished_at"],
            state["error"], state["pid"], state["monitor_pid"]) == (
        "exited", UNKNOWN_EXIT, T0, T0,
        "the container ended while no shellctr process watched it", 0, 0)
    assert host.lines == [f"cat > {q(layout.container_state(CID))} <<'EOF'\n"
                          f"{dump_record(dict(state))}EOF"]


def test_reconcile_treats_a_reused_pid_as_gone(layout: Layout,
                                               sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    start = process_start(sleeper.pid)
    assert start is not None
    set_state(layout, "running", pid=sleeper.pid, pid_start=start + 1, started_at=T0)
    assert reconcile(Store(layout, RecordingHost()), CID)["status"] == "exited"
    assert sleeper.poll() is None  # the unrelated process is left alone


def test_reconcile_leaves_it_to_a_live_monitor(layout: Layout,
                                               sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    set_state(layout, "running", pid=999_999_999, pid_start=1,
              monitor_pid=sleeper.pid, monitor_start=process_start(sleeper.pid),
              started_at=T0)
    host = RecordingHost()
    assert reconcile(Store(layout, host), CID)["status"] == "running"
    assert host.cmds == []


def test_reconcile_takes_the_end_from_the_monitors_exit_file(
        layout: Layout, sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    # the monitor is still alive (running its hook), but it has written exit.json
    set_state(layout, "running", pid=999_999_999, pid_start=1, monitor_pid=sleeper.pid,
              monitor_start=process_start(sleeper.pid), started_at=T0, restart_count=2)
    write_exit_file(layout, 3, T1)
    host = RecordingHost()
    state = reconcile(Store(layout, host), CID)
    assert (state["status"], state["exit_code"], state["started_at"], state["finished_at"],
            state["restart_count"], state["pid"]) == ("exited", 3, T0, T1, 2, 0)
    assert host.lines == [f"cat > {q(layout.container_state(CID))} <<'EOF'\n"
                          f"{dump_record(dict(state))}EOF"]
    assert reconcile(Store(layout, host), CID) == state and len(host.cmds) == 1  # once


def test_reconcile_ignores_an_exit_file_unless_running(layout: Layout) -> None:
    created(layout)
    write_exit_file(layout, 3, T1)
    host = RecordingHost()
    assert reconcile(Store(layout, host), CID)["status"] == "created"
    assert host.cmds == []


# -- stop / kill / wait ----------------------------------------------------------------
def test_stop_sends_sigterm_and_waits_for_the_monitor_to_record_the_end(
        layout: Layout, monitored: Any) -> None:
    created(layout)
    pid1 = monitored()
    set_running(layout, pid1.pid, pid1.monitor.pid)
    host = RecordingHost()
    store = Store(layout, host)
    stop(host, store, "web", timeout=10)
    assert [line.split("\n")[0] for line in host.lines] == [
        state_line(layout), f"kill -s TERM {pid1.pid}", state_line(layout)]
    state = store.container_state(CID)
    assert (state["status"], state["exit_code"], state["stopping"]) == ("exited", 143, True)
    assert state["finished_at"] == T2  # as the monitor wrote it
    assert pid1.monitor.wait(timeout=5) == 0


def test_stop_kills_after_the_grace_period(layout: Layout, monitored: Any) -> None:
    created(layout)
    pid1 = monitored("ignore-term")
    set_running(layout, pid1.pid, pid1.monitor.pid)
    host = RecordingHost()
    store = Store(layout, host)
    stop(host, store, "web", timeout=0)
    assert [line.split("\n")[0] for line in host.lines] == [
        state_line(layout), f"kill -s TERM {pid1.pid}", f"kill -s KILL {pid1.pid}",
        state_line(layout)]
    assert store.container_state(CID)["exit_code"] == 137


def test_stop_of_a_container_that_is_not_running_does_nothing(layout: Layout) -> None:
    created(layout, started=True)
    host = RecordingHost()
    stop(host, Store(layout, host), "web", timeout=10)
    assert host.cmds == []


def test_kill_sigkill_marks_it_stopping_and_waits_for_the_end(layout: Layout,
                                                             monitored: Any) -> None:
    created(layout)
    pid1 = monitored()
    set_running(layout, pid1.pid, pid1.monitor.pid)
    host = RecordingHost()
    store = Store(layout, host)
    kill(host, store, "web", signal.SIGKILL)
    assert [line.split("\n")[0] for line in host.lines] == [
        state_line(layout), f"kill -s KILL {pid1.pid}", state_line(layout)]
    state = store.container_state(CID)
    assert (state["status"], state["exit_code"], state["stopping"]) == ("exited", 137, True)


def test_kill_with_another_signal_only_sends_it_and_wait_gets_the_code(
        layout: Layout, monitored: Any) -> None:
    created(layout)
    pid1 = monitored()
    set_running(layout, pid1.pid, pid1.monitor.pid)
    host = RecordingHost()
    store = Store(layout, host)
    kill(host, store, "web", signal.SIGUSR1)  # sleep's default action: terminate
    assert host.lines == [f"kill -s USR1 {pid1.pid}"]  # no stopping: a policy may restart it
    assert wait(store, "web") == 128 + signal.SIGUSR1
    assert store.container_state(CID)["stopping"] is False


def test_kill_of_a_container_that_is_not_running(layout: Layout) -> None:
    created(layout)
    host = RecordingHost()
    with pytest.raises(Conflict, match=r"^container web is not running") as info:
        kill(host, Store(layout, host), "web", signal.SIGKILL)
    assert info.value.hint == "start it first"
    assert host.cmds == []


def test_wait_of_an_exited_container_is_its_exit_code(layout: Layout) -> None:
    created(layout)
    set_state(layout, "exited", exit_code=42, started_at=T0, finished_at=T1)
    assert wait(Store(layout, RecordingHost()), CID[:5]) == 42


def test_wait_as_the_container_ends_does_not_queue_for_the_lock(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """An --rm container's hook holds the lock to remove it, exit.json and all: a wait
    queued behind it would find nothing left to read."""
    created(layout)
    set_running(layout, os.getpid(), os.getpid())

    def ends_now(pid: int, start: int) -> bool:  # PID 1 ends as wait looks at it
        write_exit_file(layout, 7, T1)
        return False

    monkeypatch.setattr(facts_module, "alive", ends_now)
    store = Store(layout, RecordingHost())
    lock = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT)
    codes: list[int] = []
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the hook's
        waiter = threading.Thread(target=lambda: codes.append(wait(store, "web")))
        waiter.start()
        waiter.join(timeout=5)
        assert codes == [7]
    finally:
        os.close(lock)
        waiter.join()


def test_wait_of_a_container_that_ended_unwatched_records_255(layout: Layout) -> None:
    created(layout)
    gone = subprocess.Popen(["true"])
    gone.wait()
    set_state(layout, "running", pid=gone.pid, pid_start=1, monitor_pid=gone.pid,
              monitor_start=1, started_at=T0)  # PID 1 and its monitor are both gone
    assert wait(Store(layout, RecordingHost()), "web") == 255


@pytest.mark.parametrize(("text", "number"), [
    ("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("sigterm", 15), ("9", 9), ("15", 15),
    ("HUP", 1), ("USR1", signal.SIGUSR1), ("SIGINT", 2), ("64", 64),
])
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["", "0", "65", "-9", "NOPE", "SIG", "SIGNOPE", "9x",
                                  "_DFL", "_IGN", "SIG_IGN", "SIG_BLOCK"])
def test_parse_signal_refuses_what_is_no_signal(text: str) -> None:
    with pytest.raises(ShellctrError, match=f"^invalid signal: {text}") as info:
        parse_signal(text)
    assert info.value.hint == "use a name like TERM or a number like 15"


# -- pause / unpause (a freezer cgroup in a tmp dir) -----------------------------------
def test_pause_and_unpause_write_the_freezer_state(layout: Layout, cgroup_root: Path,
                                                   sleeper: subprocess.Popen[bytes]) -> None:
    mine = cgroup_root / "freezer" / "shellctr" / CID
    mine.mkdir(parents=True)
    created(layout)
    set_running(layout, sleeper.pid)
    host = RecordingHost()
    store = Store(layout, host)
    pause(host, store, "web", frozen=True)
    assert host.lines == [f"echo FROZEN > {q(mine / 'freezer.state')}"]
    with pytest.raises(Conflict, match=r"^container web is already paused"):
        pause(host, store, "web", frozen=True)
    pause(host, store, "web", frozen=False)
    assert host.lines[-1] == f"echo THAWED > {q(mine / 'freezer.state')}"
    with pytest.raises(Conflict, match=r"^container web is not paused"):
        pause(host, store, "web", frozen=False)


def test_stop_thaws_a_paused_container_first(layout: Layout, cgroup_root: Path,
                                             monitored: Any) -> None:
    mine = cgroup_root / "freezer" / "shellctr" / CID
    mine.mkdir(parents=True)
    (mine / "freezer.state").write_text("FROZEN\n")
    created(layout)
    pid1 = monitored()
    set_running(layout, pid1.pid, pid1.monitor.pid)
    host = RecordingHost()
    stop(host, Store(layout, host), "web", timeout=10)
    assert host.lines[1:3] == [f"echo THAWED > {q(mine / 'freezer.state')}",
                               f"kill -s TERM {pid1.pid}"]


def test_pause_of_a_container_that_is_not_running(layout: Layout) -> None:
    created(layout)
    with pytest.raises(Conflict, match=r"^container web is not running"):
        pause(RecordingHost(), Store(layout, RecordingHost()), "web", frozen=True)


# -- rename / top ----------------------------------------------------------------------
def test_rename(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    store = created(layout)
    other = "f" * 64
    monkeypatch.setattr(create_module, "new_id", lambda: other)
    create(store.host, store, run_request("busybox", name="db"))
    host = RecordingHost()
    store = Store(layout, host)
    rename(host, store, "web", "api")
    assert host.lines == [f"cat > {q(layout.container_state(CID))} <<'EOF'\n"
                          f"{dump_record(dict(store.container_state(CID)))}EOF"]
    assert store.container(CID)["name"] == "api"
    assert store.container_names() == {CID: "api", other: "db"}
    rename(host, store, "api", "api")  # its own name: fine
    with pytest.raises(Conflict, match=r'^the container name "db" is already in use'):
        rename(host, store, "api", "db")
    with pytest.raises(ShellctrError, match=r"^invalid container name '-x'"):
        rename(host, store, "api", "-x")
    with pytest.raises(NotFound, match=r"^no such container: web"):
        rename(host, store, "web", "new")
    assert store.container_names() == {CID: "api", other: "db"}


PS_OUTPUT = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root        4242    4200  0 10:01 ?        00:00:00 sleep 60
root        4243    4242  0 10:01 ?        00:00:00 sh -c 4242
root        5000       1  0 10:02 ?        00:00:00 other
"""


def test_top_narrows_the_hosts_ps_to_the_containers_processes(
        layout: Layout, sleeper: subprocess.Popen[bytes],
        monkeypatch: pytest.MonkeyPatch) -> None:
    created(layout)
    set_running(layout, sleeper.pid)
    asked: list[list[str]] = []
    class Members(Facts):
        def namespace_members(self, pid: int) -> list[int]:
            return [4242, 4243] if pid == sleeper.pid else []

    host = RecordingHost(facts=Members())

    def probe(argv: list[str]) -> tuple[int, str, str]:
        asked.append(argv)
        return 0, PS_OUTPUT, ""

    monkeypatch.setattr(host, "probe", probe)
    lines = PS_OUTPUT.splitlines()
    assert top(host, Store(layout, host), "web", []) == "\n".join(
        [lines[0], lines[2], lines[3]])
    assert top(host, Store(layout, host), "web", ["-o", "pid,comm"]) == "\n".join(
        [lines[0], lines[2], lines[3]])
    assert asked == [["ps", "-ef"], ["ps", "-o", "pid,comm"]]
    monkeypatch.setattr(host, "probe", lambda argv: (0, "USER COMMAND\nroot sleep\n", ""))
    with pytest.raises(ShellctrError, match="ps output has no PID column"):
        top(host, Store(layout, host), "web", ["-o", "user,comm"])
    monkeypatch.setattr(host, "probe", lambda argv: (1, "", "error: bad option\n"))
    with pytest.raises(ShellctrError, match=r"^ps failed: error: bad option"):
        top(host, Store(layout, host), "web", ["--bogus"])


def test_container_pids_share_the_pid_namespace_of_pid1(
        sleeper: subprocess.Popen[bytes]) -> None:
    pids = Facts().namespace_members(sleeper.pid)  # the host's own pid namespace here
    assert sleeper.pid in pids and os.getpid() in pids and pids == sorted(pids)
    assert Facts().namespace_members(999_999_999) == []


# -- restart policies ------------------------------------------------------------------
def life(**changes: Any) -> dict[str, Any]:
    """A state record (created, no limits, no restart policy) with `changes`."""
    return ContainerState.model_validate({"name": "web-1", **changes}).model_dump(mode="json")


def ended(exit_code: int, restart_count: int = 0, stopping: bool = False) -> dict[str, Any]:
    return life(status="exited", exit_code=exit_code, restart_count=restart_count,
                stopping=stopping)


@pytest.mark.parametrize(("policy", "max_retries", "state", "restart"), [
    ("no", 0, ended(1), False),
    ("no", 0, ended(0), False),
    ("on-failure", 0, ended(1), True),  # no limit
    ("on-failure", 0, ended(137, restart_count=99), True),
    ("on-failure", 0, ended(0), False),  # success is no failure
    ("on-failure", 3, ended(1, restart_count=2), True),
    ("on-failure", 3, ended(1, restart_count=3), False),  # the retries are used up
    ("on-failure", 3, ended(0, restart_count=0), False),
    ("always", 0, ended(0), True),
    ("always", 0, ended(1, restart_count=50), True),
    ("unless-stopped", 0, ended(0), True),
    ("unless-stopped", 0, ended(2), True),
    # stopped by the user (stop, kill, rm -f): never, whatever the policy
    ("always", 0, ended(137, stopping=True), False),
    ("unless-stopped", 0, ended(143, stopping=True), False),
    ("on-failure", 0, ended(137, stopping=True), False),
    ("no", 0, ended(137, stopping=True), False),
])
def test_should_restart(policy: str, max_retries: int, state: dict[str, Any],
                        restart: bool) -> None:
    assert should_restart({**state, "restart_policy": policy,  # type: ignore[typeddict-item]
                           "restart_max": max_retries}) is restart


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """start, recorded instead of run."""
    calls: list[tuple[str, bool]] = []

    def fake_start(host: Any, store: Store, cid: str, attach: bool,
                   interactive: bool | None = None) -> int:
        calls.append((cid, attach))
        return 0

    monkeypatch.setattr(start_module, "start", fake_start)
    return calls


def ended_by_monitor(layout: Layout, code: int, **options: Any) -> Store:
    """A detached container `web` whose monitor has just written exit.json."""
    install_image(layout, layer_dir=True)
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, run_request("busybox", name="web", **options))
    set_state(layout, "running", pid=999_999_999, pid_start=1, started_at=T0,
              restart_count=1)
    write_exit_file(layout, code, T2)
    return Store(layout, RecordingHost())


def test_on_exited_records_the_end_under_the_no_policy(
        layout: Layout, starts: list[tuple[str, bool]], no_backoff: list[float]) -> None:
    store = ended_by_monitor(layout, 3)
    assert on_exited(store.host, store, CID) == 3
    state = store.container_state(CID)
    assert (state["status"], state["exit_code"], state["restart_count"]) == ("exited", 3, 1)
    assert starts == [] and no_backoff == []


def test_on_exited_removes_a_run_rm_container(
        layout: Layout, starts: list[tuple[str, bool]]) -> None:
    store = ended_by_monitor(layout, 0, rm=True)
    assert on_exited(store.host, store, CID) == 0
    assert not layout.container_dir(CID).exists() and starts == []


def test_on_exited_restarts_after_a_back_off(
        layout: Layout, starts: list[tuple[str, bool]], no_backoff: list[float]) -> None:
    store = ended_by_monitor(layout, 1, restart="on-failure:5")
    assert on_exited(store.host, store, CID) == 1
    assert no_backoff == [0.2]  # 0.1 s doubled for each restart so far
    assert starts == [(CID, False)]  # detached, as the first start
    state = store.container_state(CID)
    assert (state["status"], state["exit_code"], state["restart_count"]) == ("exited", 1, 2)


def test_on_exited_back_off_is_capped(layout: Layout, starts: list[tuple[str, bool]],
                                      no_backoff: list[float]) -> None:
    store = ended_by_monitor(layout, 0, restart="always")
    state = store.container_state(CID)
    store.write(layout.container_state(CID), {**state, "restart_count": 30})
    on_exited(store.host, store, CID)
    assert no_backoff == [10.0] and starts == [(CID, False)]


def test_on_exited_does_not_restart_what_the_user_stopped_meanwhile(
        layout: Layout, starts: list[tuple[str, bool]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = ended_by_monitor(layout, 1, restart="always")

    def user_stops_it(seconds: float) -> None:  # `stop` during the back-off
        state = store.container_state(CID)
        prepared_store(layout).write(layout.container_state(CID), {**state, "stopping": True})

    monkeypatch.setattr(time, "sleep", user_stops_it)
    assert on_exited(store.host, store, CID) == 1
    assert starts == []
    assert store.container_state(CID)["restart_count"] == 1


def test_on_exited_of_a_removed_container(layout: Layout,
                                          starts: list[tuple[str, bool]]) -> None:
    store = ended_by_monitor(layout, 1, restart="always")
    prepared_store(layout).remove_container(CID)
    assert on_exited(store.host, store, CID) == 0
    assert starts == []


# -- ps --filter -----------------------------------------------------------------------
def test_parse_filters_groups_values_by_key() -> None:
    assert parse_filters(["status=running", "name=web", "status=exited", "label=a=b",
                          "exited=0"]) == {
        "status": ["running", "exited"], "name": ["web"], "label": ["a=b"], "exited": ["0"]}
    assert parse_filters([]) == {}


@pytest.mark.parametrize("item", ["status", "nope=1", "=x", "Status=running"])
def test_parse_filters_refuses_unknown_keys_and_missing_values(item: str) -> None:
    with pytest.raises(ShellctrError, match=f"^invalid filter {item!r}") as info:
        parse_filters([item])
    assert info.value.hint == (
        "use KEY=VALUE with KEY one of id, name, status, exited, ancestor, label, before, "
        "since, volume, network, publish, expose, health, isolation, is-task")


def filter_config(**changes: Any) -> Any:
    """A container record (its config and settings) for the filters."""
    config = ContainerConfig.model_validate({
        "id": CID, "created": T0, "image": "busybox", "image_id": IMAGE_ID,
        "layers": [LAYER], "path": "sh", "env": [], "hostname": "h",
        "labels": {"app": "shop", "tier": ""}, **changes}).model_dump(mode="json")
    return {**config, "name": "web-1"}


@pytest.mark.parametrize(("filters", "state", "match"), [
    ([], life(), True),
    (["id=0123"], life(), True),  # an id prefix
    (["id=1234"], life(), False),
    (["name=web"], life(), True),  # a regular expression, searched
    (["name=^web-\\d$"], life(), True),
    (["name=db"], life(), False),
    (["status=created"], life(), True),
    (["status=running"], life(), False),
    (["status=running", "status=created"], life(), True),  # one key: OR
    (["status=exited", "exited=0"], ended(0), True),
    (["exited=1"], ended(1), True),
    (["exited=1"], ended(137), False),
    (["exited=0"], life(), False),  # created: no exit code at all
    (["exited=0", "exited=137"], ended(137), True),
    (["label=app"], life(), True),  # the key alone: any value
    (["label=tier"], life(), True),
    (["label=app=shop"], life(), True),
    (["label=app=shop2"], life(), False),
    (["label=tier="], life(), True),  # the empty value
    (["label=nope"], life(), False),
    (["label=app", "label=nope"], life(), False),  # every label asked for, as Docker
    (["label=app=shop", "label=tier"], life(), True),
    (["name=web", "status=exited"], life(), False),  # different keys: AND
    (["name=web", "label=app=shop", "status=created"], life(), True),
    (["ancestor=busybox"], life(), True),
    (["ancestor=busybox:latest"], life(), True),
    (["ancestor=" + IMAGE_ID[:12]], life(), True),
    (["ancestor=alpine"], life(), False),  # no such image: no match, no error
])
def test_container_matches(layout: Layout, filters: list[str], state: Any,
                           match: bool) -> None:
    install_image(layout, image_model())
    store = Store(layout, RecordingHost())
    assert container_matches(store, filter_config(), state, parse_filters(filters)) is match


PORTS = {"ports": [{"proto": "tcp", "host_ip": "", "host_port": 8080, "host_port_end": 8080,
                    "port": 80}], "exposed": ["80/tcp", "9000/udp"]}
MOUNTS = {"mounts": [{"type": "volume", "source": "data", "target": "/srv"}]}
HEALTHY = {"healthcheck": {"Test": ["CMD", "true"]}}


@pytest.mark.parametrize(("filters", "changes", "match"), [
    (["volume=data"], MOUNTS, True),  # the volume's name
    (["volume=/srv"], MOUNTS, True),  # or where it is mounted
    (["volume=other"], MOUNTS, False),
    (["publish=80"], PORTS, True),  # the container's port, tcp unless said
    (["publish=80/udp"], PORTS, False),
    (["publish=8080"], PORTS, False),  # not the host's
    (["publish=79-81/tcp"], PORTS, True),
    (["publish=9000/udp"], PORTS, False),  # exposed only
    (["expose=9000/udp"], PORTS, True),
    (["expose=80"], PORTS, True),  # a published port is exposed too
    (["expose=81"], PORTS, False),
    (["health=none"], {}, True),
    (["health=starting"], HEALTHY, True),  # no check has run yet
    (["health=healthy"], HEALTHY, False),
    (["health=none"], HEALTHY, False),
    (["isolation=default"], {}, True),
    (["isolation=hyperv"], {}, False),
    (["is-task=false"], {}, True),
    (["is-task=true"], {}, False),
])
def test_container_matches_docker_s_other_ps_filters(layout: Layout, filters: list[str],
                                                     changes: dict[str, Any],
                                                     match: bool) -> None:
    store = Store(layout, RecordingHost())
    config = filter_config(**changes)
    assert container_matches(store, config, life(), parse_filters(filters)) is match


@pytest.mark.parametrize(("item", "message"), [
    ("health=ok", "Unrecognised filter value for health: ok"),
    ("publish=http", "invalid filter 'publish=http'"),
    ("expose=70000", "invalid filter 'expose=70000'"),
    ("is-task=maybe", "invalid filter 'is-task=maybe'"),
])
def test_bad_filter_values_are_refused_before_listing(item: str, message: str) -> None:
    with pytest.raises(UsageError, match=f"^{re.escape(message)} \\("):
        parse_filters([item])


def test_ancestor_is_the_image_not_the_name_it_was_run_by(layout: Layout) -> None:
    install_image(layout, image_model(repo_tags=["busybox:latest", "mine:1"]))
    store = Store(layout, RecordingHost())
    config = filter_config(image="mine:1")
    assert container_matches(store, config, life(), parse_filters(["ancestor=busybox"]))
    assert not container_matches(store, filter_config(image_id="e" * 64), life(),
                                 parse_filters(["ancestor=busybox"]))


def test_alive_checks_the_start_time(sleeper: subprocess.Popen[bytes]) -> None:
    start_time = process_start(sleeper.pid)
    assert start_time is not None
    assert alive(sleeper.pid, start_time)
    assert not alive(sleeper.pid, start_time + 1)
    assert not alive(0, 0) and not alive(999_999_999, 0)


def test_reconcile_reads_the_oom_counter_then_removes_the_cgroups(
        layout: Layout, cgroup_root: Path) -> None:
    mine = cgroup_root / "memory" / "shellctr" / CID
    mine.mkdir(parents=True)
    (mine / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    created(layout)
    set_state(layout, "running", pid=999_999_999, pid_start=1, started_at=T0)
    write_exit_file(layout, 137, T1)
    host = RecordingHost()
    state = reconcile(Store(layout, host), CID)
    assert (state["exit_code"], state["oom_killed"]) == (137, True)
    assert host.lines[-2:] == [f"rmdir {q(mine)}", f"rmdir {q(mine.parent)}"]


def test_rm_f_waits_for_a_run_rm_that_removes_the_container_meanwhile(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    config = layout.container_config(CID)
    config.parent.mkdir(parents=True)
    config.write_text("{}")

    def removed(store: Store, cid: str) -> None:  # the attached run's --rm, just now
        config.unlink()
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(lifecycle, "reconcile", removed)
    lifecycle.wait_exit_recorded(Store(layout, RecordingHost()), CID)  # no error
