"""The verbs of a container's life: stop, kill, restart, wait, rm -f, pause/unpause,
rename, top."""

from __future__ import annotations

import fcntl
import os
import re
import time
from functools import partial
from pathlib import Path

from .support import (
    Ctr,
    Running,
    Worker,
    inspect,
    one_line_error,
    remove_all,
    rfc3339,
    run_detached,
    wait_for,
)

GRACEFUL = 'trap "echo bye; exit 3" TERM; while :; do sleep 1; done'
WAITS_FOR_TERM = "trap 'exit 0' TERM; sleep 1000 & wait"


def status_of(ctr: Ctr, name: str) -> str:
    """The STATUS column of `ps -a` for the container `name`."""
    result = ctr("ps", "-a", "--format", "{{.Names}}\t{{.Status}}", trace=False).ok()
    rows = dict(line.split("\t") for line in result.out.splitlines())
    assert name in rows, str(result)
    return rows[name]


def test_stop_gracefully_runs_the_trap_and_records_its_exit_code(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "polite", "busybox", "sh", "-c", GRACEFUL)
        result = ctr("stop", "polite").ok()
        assert result.out == "polite\n", str(result)
        assert ctr("logs", "polite", trace=False).ok().out == "bye\n"
        assert re.fullmatch(r"Exited \(3\) .*ago", status_of(ctr, "polite"))
        state = inspect(ctr, "polite")["State"]
        assert (state["Status"], state["Running"], state["ExitCode"], state["Pid"]) \
            == ("exited", False, 3, 0), state
        assert rfc3339(state["FinishedAt"]) >= rfc3339(state["StartedAt"]), state
        assert ctr("stop", "polite").ok().out == "polite\n"  # stopped already: no error
    finally:
        remove_all(ctr)


def test_stop_kills_a_container_that_ignores_the_stop_signal(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "stubborn", "busybox", "sleep", "1000")
        # PID 1 has no handler for SIGTERM: the kernel ignores it; SIGKILL after 1 s
        ctr("stop", "-t", "1", "stubborn").ok()
        assert re.fullmatch(r"Exited \(137\) .*ago", status_of(ctr, "stubborn"))
        assert inspect(ctr, "stubborn")["State"]["ExitCode"] == 137
    finally:
        remove_all(ctr)


def test_kill_sends_kill_by_default_and_any_signal_with_s(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "target", "busybox", "sh", "-c",
                     "trap 'echo got-usr1' USR1; trap 'exit 9' HUP; "
                     "while :; do sleep 0.05; done")
        assert ctr("kill", "-s", "USR1", "target").ok().out == "target\n"
        wait_for(lambda: ctr("logs", "target", trace=False).ok().out == "got-usr1\n",
                 "the USR1 trap to run")
        assert inspect(ctr, "target")["State"]["Running"] is True
        ctr("kill", "--signal", "SIGHUP", "target").ok()
        assert ctr("wait", "target").ok().out == "9\n"
        run_detached(ctr, "--name", "victim", "busybox", "sleep", "1000")
        ctr("kill", "victim").ok()
        assert inspect(ctr, "victim")["State"]["ExitCode"] == 137
        one_line_error(ctr("kill", "victim", trace=False))  # not running any more
        one_line_error(ctr("kill", "-s", "NOSUCHSIG", "target", trace=False))
    finally:
        remove_all(ctr)


def test_restart_starts_the_same_container_again(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "again", "busybox", "sh", "-c",
                           f"echo started; {WAITS_FOR_TERM}")
        wait_for(lambda: ctr("logs", "again", trace=False).ok().out == "started\n",
                 "the first start")
        before = inspect(ctr, "again")
        assert ctr("restart", "-t", "5", "again").ok().out == "again\n"
        after = inspect(ctr, "again")
        assert after["Id"] == cid
        assert after["State"]["Running"] is True, after["State"]
        assert rfc3339(after["State"]["StartedAt"]) > rfc3339(before["State"]["StartedAt"])
        assert after["State"]["Pid"] != before["State"]["Pid"]
        wait_for(lambda: ctr("logs", "again", trace=False).ok().out == "started\n" * 2,
                 "the second start")
    finally:
        remove_all(ctr)


def test_wait_prints_the_exit_code_of_each_container(ctr: Ctr) -> None:
    try:
        assert ctr("run", "--name", "done", "busybox", "sh", "-c", "exit 2").code == 2
        run_detached(ctr, "--name", "quick", "busybox", "sh", "-c", "exit 0")
        run_detached(ctr, "--name", "slow", "busybox", "sh", "-c",
                     "while [ ! -e /go ]; do sleep 0.05; done; exit 5")
        waiter = ctr.popen("wait", "done", "quick", "slow", trace=False)
        wait_for(lambda: waiter.out_path.read_text() == "2\n0\n"
                 or waiter.process.poll() is not None, "wait to report the first two")
        assert waiter.process.poll() is None, waiter.output_so_far()  # slow still runs
        ctr("exec", "--detach", "slow", "touch", "/go").ok()  # it may die with the container
        result = waiter.wait()
        assert (result.code, result.out) == (0, "2\n0\n5\n"), str(result)
        missing = ctr("wait", "no-such-container", trace=False)
        assert missing.code == 1 and len(missing.err_lines) == 1, str(missing)
    finally:
        remove_all(ctr)


def polling(running: Running) -> bool:
    """The call has ended, or sleeps between two looks (it has found its container)."""
    return running.process.poll() is not None or \
        "nanosleep" in Path(f"/proc/{running.process.pid}/wchan").read_text()


def test_wait_reports_the_exit_code_of_rm_containers(ctr: Ctr, worker: Worker) -> None:
    codes = range(3, 9)
    ids = [run_detached(ctr, "--rm", "--name", f"brief{code}", "busybox", "sh", "-c",
                        f"while [ ! -e /go ]; do sleep 0.05; done; exit {code}")
           for code in codes]
    waiters = [ctr.popen("wait", f"brief{code}", trace=False) for code in codes]
    for waiter in waiters:
        wait_for(partial(polling, waiter), "wait to find its container")
    # Hold the store's lock while they end: their hooks queue for it to remove them,
    # and as it is released, every `wait` and hook runs at the same moment.
    lock = os.open(worker.root / "lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for code in codes:
            ctr("exec", "--detach", f"brief{code}", "touch", "/go").ok()
        wait_for(lambda: all((worker.root / "containers" / cid / "exit.json").exists()
                             for cid in ids), "the containers to end")
    finally:
        os.close(lock)
    for code, waiter in zip(codes, waiters, strict=True):
        result = waiter.wait()
        assert (result.code, result.out, result.err) == (0, f"{code}\n", ""), str(result)
    wait_for(lambda: ctr.container_ids() == [], "the --rm containers to be removed")


def test_wait_as_an_rm_container_is_removed_gives_its_code_or_a_clean_error(
        ctr: Ctr) -> None:
    ids, waiters = [], []
    for _ in range(8):  # each `wait` starts as its container's hook may be removing it
        ids.append(run_detached(ctr, "--rm", "busybox", "sh", "-c", "exit 4"))
        waiters.append(ctr.popen("wait", ids[-1], trace=False))
    for cid, waiter in zip(ids, waiters, strict=True):
        result = waiter.wait()
        if result.code == 0:
            assert result.out == "4\n", str(result)
        else:
            assert result.code == 1 and result.out == "", str(result)
            assert result.err.startswith(f"shellctr: no such container: {cid}"), str(result)
            assert len(result.err.splitlines()) == 1, str(result)
    wait_for(lambda: ctr.container_ids() == [], "the --rm containers to be removed")


def test_rm_force_kills_a_running_container_then_removes_it(ctr: Ctr) -> None:
    cid = run_detached(ctr, "--name", "running", "busybox", "sleep", "1000")
    pid = inspect(ctr, "running")["State"]["Pid"]
    refused = one_line_error(ctr("rm", "running", trace=False))
    assert "running" in refused, refused
    assert ctr("rm", "-f", "running").ok().out == "running\n"
    assert not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/cmdline").read_bytes() != b"sleep\x001000\x00"
    assert ctr.container_ids() == []
    assert ctr("inspect", cid, trace=False).code != 0


def counter(root: Path) -> int:
    text = (root / "count").read_text() if (root / "count").exists() else ""
    return int(text) if text.strip().isdigit() else -1


def test_pause_freezes_every_process_and_unpause_resumes(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "ticker", "busybox", "sh", "-c",
                     "i=0; while :; do i=$((i+1)); echo $i > /count.new; "
                     "mv /count.new /count; sleep 0.02; done")
        root = Path(f"/proc/{inspect(ctr, 'ticker')['State']['Pid']}/root")
        begun = time.monotonic()
        wait_for(lambda: counter(root) >= 5, "the counter to count")
        five_ticks = time.monotonic() - begun

        assert ctr("pause", "ticker").ok().out == "ticker\n"
        assert status_of(ctr, "ticker").endswith("(Paused)"), status_of(ctr, "ticker")
        state = inspect(ctr, "ticker")["State"]
        assert (state["Status"], state["Paused"], state["Running"]) == ("paused", True, True)
        frozen_at = counter(root)
        # It would tick at least five times in this while, were it not frozen.
        deadline = time.monotonic() + max(2 * five_ticks, 0.5)
        while time.monotonic() < deadline:
            assert counter(root) == frozen_at, "the counter advanced while paused"
            time.sleep(0.02)
        line = one_line_error(ctr("exec", "ticker", "true", trace=False))
        assert "paused" in line, line
        one_line_error(ctr("pause", "ticker", trace=False))  # paused already

        assert ctr("unpause", "ticker").ok().out == "ticker\n"
        wait_for(lambda: counter(root) > frozen_at, "the counter to count again")
        assert inspect(ctr, "ticker")["State"]["Status"] == "running"
        assert "Paused" not in status_of(ctr, "ticker")
        one_line_error(ctr("unpause", "ticker", trace=False))  # not paused
    finally:
        remove_all(ctr)


def test_a_paused_container_can_be_stopped_and_removed(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "frozen-stop", "busybox", "sh", "-c", GRACEFUL)
        run_detached(ctr, "--name", "frozen-rm", "busybox", "sleep", "1000")
        ctr("pause", "frozen-stop", "frozen-rm").ok()
        ctr("stop", "frozen-stop").ok()
        assert inspect(ctr, "frozen-stop")["State"]["ExitCode"] == 3
        ctr("rm", "-f", "frozen-rm").ok()
        names = ctr("ps", "-a", "--format", "{{.Names}}", trace=False).ok().out
        assert names == "frozen-stop\n", names
    finally:
        remove_all(ctr)


def test_rename_moves_the_name_and_refuses_a_taken_one(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "old-name", "busybox", "sleep", "1000")
        ctr("create", "--name", "taken", "busybox", "true").ok()
        ctr("rename", "old-name", "new-name").ok()
        assert inspect(ctr, "new-name")["Id"] == cid
        assert inspect(ctr, "new-name")["Name"] == "/new-name"
        assert ctr("inspect", "old-name", trace=False).code != 0
        assert ctr("exec", "new-name", "true").code == 0
        line = one_line_error(ctr("rename", "new-name", "taken", trace=False))
        assert "already in use" in line, line
        one_line_error(ctr("rename", "new-name", "bad name!", trace=False))
        one_line_error(ctr("rename", "no-such-container", "whatever", trace=False))
        assert inspect(ctr, cid)["Name"] == "/new-name"
        ctr("rename", cid[:12], "old-name").ok()  # by id, and the old name is free again
        ctr("stop", "-t", "0", "old-name").ok()
    finally:
        remove_all(ctr)


def test_top_lists_the_containers_processes(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "busy", "busybox", "sleep", "1000")
        ctr("exec", "-d", "busy", "sleep", "999").ok()
        pid = inspect(ctr, "busy")["State"]["Pid"]
        wait_for(lambda: "sleep 999" in ctr("top", "busy", trace=False).ok().out,
                 "the exec'd process to show")
        header, *rows = ctr("top", "busy", trace=False).ok().out.splitlines()
        assert "PID" in header.split() and "CMD" in header.split(), header
        assert len(rows) == 2, rows
        assert any(str(pid) in row.split() and row.endswith("sleep 1000") for row in rows)
        assert any(row.endswith("sleep 999") for row in rows), rows

        header, *rows = ctr("top", "busy", "-o", "pid,comm", trace=False).ok().out.splitlines()
        assert header.split() == ["PID", "COMMAND"], header
        assert sorted(row.split()[1] for row in rows) == ["sleep", "sleep"], rows
        assert str(pid) in [row.split()[0] for row in rows], rows
        ctr("stop", "-t", "0", "busy").ok()
        one_line_error(ctr("top", "busy", trace=False))  # not running
    finally:
        remove_all(ctr)
