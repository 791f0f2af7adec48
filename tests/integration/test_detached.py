"""Detached containers: `run -d`, `create` + `start`, `--rm` and the restart policies,
carried out by the monitor's `_exited` hook with no daemon around."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import (
    FULL_ID,
    TIME_SCALE,
    Ctr,
    Worker,
    inspect,
    one_line_error,
    remove_all,
    run_detached,
    wait_for,
    wait_settled,
)

ZERO_TIME = "0001-01-01T00:00:00Z"


def logs(ctr: Ctr, ref: str) -> str:
    return ctr("logs", ref, trace=False).ok().out


def test_run_detached_prints_the_full_id_and_leaves_the_container_running(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "background", "busybox", "sleep", "1000")
        # `run -d` has returned, and the container runs on without it
        record = inspect(ctr, "background")
        assert record["Id"] == cid
        assert record["State"]["Running"] is True, record["State"]
        pid = record["State"]["Pid"]
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x001000\x00"
        rows = ctr("ps").ok().out.splitlines()[1:]
        assert len(rows) == 1 and rows[0].startswith(cid[:12]), rows
        assert " Up " in rows[0] and rows[0].endswith("background"), rows
    finally:
        remove_all(ctr)


def test_create_then_start_runs_the_container_in_the_background(ctr: Ctr) -> None:
    try:
        created = ctr("create", "--name", "later", "busybox", "sh", "-c",
                      "echo started; exec sleep 1000").ok()
        cid = created.out.strip()
        assert FULL_ID.match(cid), str(created)
        record = inspect(ctr, cid)
        assert record["State"]["Status"] == "created", record["State"]
        assert record["State"]["Running"] is False
        assert record["State"]["StartedAt"] == ZERO_TIME
        rows = ctr("ps", "-a").ok().out.splitlines()[1:]
        assert len(rows) == 1 and " Created " in rows[0], rows
        assert ctr("ps", "-q").ok().out == ""  # not running

        started = ctr("start", "later").ok()
        assert started.out == "later\n", str(started)
        wait_for(lambda: logs(ctr, "later") == "started\n", "the container's output")
        record = inspect(ctr, "later")
        assert record["State"]["Status"] == "running", record["State"]
        assert record["State"]["StartedAt"] != ZERO_TIME
        again = ctr("start", "later").ok()  # already running: nothing to do, as Docker
        assert again.out == "later\n", str(again)
        assert inspect(ctr, "later")["State"]["Pid"] == record["State"]["Pid"]
    finally:
        remove_all(ctr)


def test_start_attached_shows_the_output_and_returns_the_exit_code(ctr: Ctr) -> None:
    try:
        ctr("create", "--name", "attached", "busybox", "sh", "-c",
            "echo out; echo err >&2; exit 4").ok()
        first = ctr("start", "-a", "attached")
        assert first.code == 4, str(first)
        assert first.out == "out\n", str(first)
        assert "err" in first.err_lines, str(first)
        second = ctr("start", "-a", "attached")  # an exited container starts again
        assert second.code == 4 and second.out == "out\n", str(second)
        assert logs(ctr, "attached") == "out\nout\n"
        assert inspect(ctr, "attached")["State"]["ExitCode"] == 4
    finally:
        remove_all(ctr)


def test_start_interactive_feeds_stdin_to_the_container(ctr: Ctr) -> None:
    try:
        ctr("create", "--name", "reader", "busybox", "cat").ok()
        result = ctr("start", "-a", "-i", "reader", input="hello\nworld\n")
        assert result.code == 0, str(result)
        assert result.out == "hello\nworld\n", str(result)
    finally:
        remove_all(ctr)


def test_start_attached_to_several_containers_is_refused(ctr: Ctr) -> None:
    try:
        ctr("create", "--name", "one", "busybox", "true").ok()
        ctr("create", "--name", "two", "busybox", "true").ok()
        one_line_error(ctr("start", "-a", "one", "two", trace=False))
    finally:
        remove_all(ctr)


def test_run_detached_of_a_missing_command_fails_at_once_with_127(ctr: Ctr) -> None:
    try:
        # a hang guard, well below what a start that waits for its own hook would take
        result = ctr("run", "-d", "--name", "missing", "busybox", "no-such-command",
                     trace=False, timeout=5.0 * TIME_SCALE)
        assert result.code == 127, str(result)
        assert result.out == "", str(result)
        assert len(result.err_lines) == 1 and "no-such-command" in result.err, str(result)
        state = inspect(ctr, "missing")["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 127), state
        removed = ctr("run", "-d", "--rm", "busybox", "no-such-command", trace=False,
                      timeout=5.0 * TIME_SCALE)
        assert removed.code == 127, str(removed)
        wait_for(lambda: ctr.container_ids() == [inspect(ctr, "missing")["Id"][:12]],
                 "the --rm container to be removed")
    finally:
        remove_all(ctr)


def test_detached_rm_container_is_removed_when_it_ends(ctr: Ctr, worker: Worker) -> None:
    cid = run_detached(ctr, "--rm", "busybox", "sh", "-c", "exit 3")
    wait_for(lambda: ctr.container_ids() == [], "the --rm container to be removed")
    wait_settled(cid)
    assert not (worker.root / "containers" / cid).exists()
    assert not (worker.runroot / "containers" / cid).exists()


def test_detached_rm_container_is_removed_when_killed(ctr: Ctr) -> None:
    cid = run_detached(ctr, "--rm", "--name", "doomed", "busybox", "sleep", "1000")
    ctr("kill", "doomed").ok()
    wait_for(lambda: ctr.container_ids() == [], "the killed --rm container to be removed")
    wait_settled(cid)


def test_restart_on_failure_retries_up_to_its_limit(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "flaky", "--restart", "on-failure:2", "busybox",
                           "sh", "-c", "echo run; exit 1")
        wait_for(lambda: inspect(ctr, "flaky")["RestartCount"] == 2,
                 "the second restart")
        wait_settled(cid)  # the last hook has decided: no third restart
        record = inspect(ctr, "flaky")
        assert record["RestartCount"] == 2, record
        assert record["State"]["Status"] == "exited", record["State"]
        assert record["State"]["ExitCode"] == 1, record["State"]
        assert record["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                         "MaximumRetryCount": 2}
        assert logs(ctr, "flaky") == "run\n" * 3  # the first run and two restarts
    finally:
        remove_all(ctr)


def test_restart_on_failure_leaves_a_successful_container_alone(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "fine", "--restart", "on-failure", "busybox",
                           "sh", "-c", "echo run")
        wait_settled(cid)
        record = inspect(ctr, "fine")
        assert record["RestartCount"] == 0, record
        assert record["State"]["Status"] == "exited" and record["State"]["ExitCode"] == 0
        assert logs(ctr, "fine") == "run\n"
    finally:
        remove_all(ctr)


# first run: exit by itself; every later run: wait for the stop signal
EXITS_THEN_WAITS = ('echo run; if [ -e /ran ]; then trap "exit 0" TERM; sleep 1000 & wait; '
                    'fi; touch /ran')


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_restart_always_restarts_after_an_exit_but_not_after_stop(ctr: Ctr,
                                                                  policy: str) -> None:
    try:
        cid = run_detached(ctr, "--name", "phoenix", "--restart", policy, "busybox",
                           "sh", "-c", EXITS_THEN_WAITS)
        wait_for(lambda: inspect(ctr, "phoenix")["RestartCount"] == 1
                 and logs(ctr, "phoenix") == "run\nrun\n", "the restart after the exit")
        assert inspect(ctr, "phoenix")["State"]["Running"] is True
        assert ctr("stop", "phoenix").ok().out == "phoenix\n"
        wait_settled(cid)
        record = inspect(ctr, "phoenix")
        assert record["State"]["Status"] == "exited", record["State"]
        assert record["State"]["ExitCode"] == 0, record["State"]
        assert record["RestartCount"] == 1, record
        assert logs(ctr, "phoenix") == "run\nrun\n"
    finally:
        remove_all(ctr)


def test_stop_during_the_restart_back_off_ends_the_restart_loop(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "crashy", "--restart", "always", "busybox",
                           "sh", "-c", "exit 1")
        # from the third restart on, it spends most of its time waiting to restart
        wait_for(lambda: inspect(ctr, "crashy")["RestartCount"] >= 3, "three restarts")
        ctr("stop", "crashy").ok()
        wait_settled(cid, timeout=20.0)  # a restart loop never settles
        record = inspect(ctr, "crashy")
        assert record["State"]["Status"] == "exited", record["State"]
    finally:
        remove_all(ctr)


def test_rm_force_during_the_restart_back_off_leaves_nothing(ctr: Ctr) -> None:
    cid = run_detached(ctr, "--name", "crashy", "--restart", "always", "busybox",
                       "sh", "-c", "exit 1")
    wait_for(lambda: inspect(ctr, "crashy")["RestartCount"] >= 3, "three restarts")
    assert ctr("rm", "-f", "crashy").ok().out == "crashy\n"
    wait_settled(cid, timeout=20.0)
    assert ctr.container_ids() == []  # and the leak check: no process, cgroup or file


@pytest.mark.parametrize("policy", ["sometimes", "on-failure:x", "always:3"])
def test_invalid_restart_policy_is_refused(ctr: Ctr, policy: str) -> None:
    line = one_line_error(ctr("run", "-d", "--restart", policy, "busybox", "true",
                              trace=False))
    assert "restart policy" in line, line
    assert ctr.container_ids() == []


def test_rm_and_a_restart_policy_conflict(ctr: Ctr) -> None:
    line = one_line_error(ctr("run", "-d", "--rm", "--restart", "always", "busybox", "true",
                              trace=False))
    assert "--rm" in line, line
    assert ctr.container_ids() == []
