"""No daemon keeps the state true: every command reconciles from what the monitor wrote
(exit.json) or, when the monitor itself is gone, from the processes that are left."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

from .support import (
    Ctr,
    Worker,
    container_cgroups,
    inspect,
    pids_naming,
    remove_all,
    run_detached,
    wait_for,
)


def status_of(ctr: Ctr, name: str) -> str:
    result = ctr("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}",
                 trace=False).ok()
    return result.out.strip()


def state_file(worker: Worker, cid: str) -> dict[str, object]:
    record: dict[str, object] = json.loads(
        (worker.root / "containers" / cid / "state.json").read_text())
    return record


def gone(pid: int) -> bool:
    """The process has ended (and been reaped)."""
    return not Path(f"/proc/{pid}").exists()


def kill_everything_of(worker: Worker, cid: str) -> None:
    """SIGKILL the container's monitor, then its PID 1, as a crash or reboot would."""
    state = state_file(worker, cid)
    monitor, pid1 = int(str(state["monitor_pid"])), int(str(state["pid"]))
    assert monitor > 0 and pid1 > 0, state
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: gone(monitor), "the monitor to be gone")
    os.kill(pid1, signal.SIGKILL)
    wait_for(lambda: gone(pid1) and not pids_naming(cid), "the container's processes to end")


def test_a_container_that_exits_by_itself_shows_exited_at_the_next_ps(
        ctr: Ctr, worker: Worker) -> None:
    try:
        cid = run_detached(ctr, "--name", "self", "busybox", "sh", "-c",
                           "while [ ! -e /go ]; do sleep 0.05; done; exit 6")
        assert status_of(ctr, "self").startswith("Up "), status_of(ctr, "self")
        ctr("exec", "--detach", "self", "touch", "/go").ok()  # it may die with the container
        exit_file = worker.root / "containers" / cid / "exit.json"
        wait_for(exit_file.exists, "the monitor to record the exit")
        # whether or not its hook has run yet, the next command knows
        assert re.fullmatch(r"Exited \(6\) .+ ago", status_of(ctr, "self"))
        assert inspect(ctr, "self")["State"]["ExitCode"] == 6
    finally:
        remove_all(ctr)


def test_killed_monitor_and_pid1_show_exited_255_and_rm_cleans(ctr: Ctr,
                                                               worker: Worker) -> None:
    cid = run_detached(ctr, "--name", "orphan", "busybox", "sleep", "1000")
    kill_everything_of(worker, cid)
    assert re.fullmatch(r"Exited \(255\) .+ ago", status_of(ctr, "orphan"))
    state = inspect(ctr, "orphan")["State"]
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 255)
    assert state["Error"], state
    assert ctr("rm", "orphan").ok().out == "orphan\n"
    assert container_cgroups([cid]) == []
    assert not (worker.root / "containers" / cid).exists()
    assert not (worker.runroot / "containers" / cid).exists()


def test_a_container_whose_monitor_died_still_runs_and_stops(ctr: Ctr,
                                                             worker: Worker) -> None:
    try:
        cid = run_detached(ctr, "--name", "unwatched", "busybox", "sleep", "1000")
        monitor = int(str(state_file(worker, cid)["monitor_pid"]))
        os.kill(monitor, signal.SIGKILL)
        wait_for(lambda: gone(monitor), "the monitor to be gone")
        assert status_of(ctr, "unwatched").startswith("Up ")
        assert ctr("exec", "unwatched", "true").code == 0
        ctr("stop", "-t", "0", "unwatched").ok()
        # nobody was there to see its exit code
        assert re.fullmatch(r"Exited \(255\) .+ ago", status_of(ctr, "unwatched"))
        ctr("rm", "unwatched").ok()
        assert container_cgroups([cid]) == []
    finally:
        remove_all(ctr)


def test_a_run_dir_that_vanished_in_a_reboot_is_handled(ctr: Ctr, worker: Worker) -> None:
    try:
        cids = {name: run_detached(ctr, "--name", name, "busybox", "sh", "-c",
                                   "echo up; trap 'exit 0' TERM; sleep 1000 & wait")
                for name in ("removed-after", "started-after")}
        for cid in cids.values():
            kill_everything_of(worker, cid)
            shutil.rmtree(worker.runroot / "containers" / cid)  # the tmpfs is gone
        for path in container_cgroups([cids["started-after"]]):
            path.rmdir()  # so is the cgroup tree (kept for the other: rm must remove it)

        for name in cids:
            assert re.fullmatch(r"Exited \(255\) .+ ago", status_of(ctr, name))

        assert ctr("rm", "removed-after").ok().out == "removed-after\n"
        cid = cids["removed-after"]
        assert container_cgroups([cid]) == []
        assert not (worker.root / "containers" / cid).exists()

        ctr("start", "started-after").ok()
        assert status_of(ctr, "started-after").startswith("Up ")
        assert ctr("exec", "started-after", "true").code == 0
        wait_for(lambda: ctr("logs", "started-after", trace=False).ok().out == "up\nup\n",
                 "the second start's output")
        ctr("stop", "started-after").ok()
        assert re.fullmatch(r"Exited \(0\) .+ ago", status_of(ctr, "started-after"))
    finally:
        remove_all(ctr)
