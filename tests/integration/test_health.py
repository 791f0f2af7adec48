"""Health checks, run by the container's monitor (daemonless): `starting`, then
`healthy` or, after --health-retries failures in a row, `unhealthy`; in `ps` and in
`inspect`'s State.Health; --health-start-period, --health-timeout, --no-healthcheck."""

from __future__ import annotations

import json
from typing import Any

from .support import Ctr, inspect, one_line_error, remove_all, run_detached, wait_for

NONE = ("--network", "none")
FAST = ("--health-interval", "200ms")


def health(ctr: Ctr, name: str) -> dict[str, Any]:
    record: dict[str, Any] = inspect(ctr, name)["State"]["Health"]
    return record


def status_column(ctr: Ctr, name: str) -> str:
    out = ctr("ps", "--filter", f"name=^{name}$", "--format", "{{.Status}}", trace=False).ok()
    return out.out.strip()


def test_health_turns_healthy_then_unhealthy_after_the_retries(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "web", *NONE, *FAST, "--health-retries", "3",
                     "--health-cmd", "test -e /tmp/ok && echo fine", "busybox", "sh", "-c",
                     "touch /tmp/ok; exec sleep 1000")
        wait_for(lambda: health(ctr, "web")["Status"] == "healthy", "healthy")
        assert status_column(ctr, "web").endswith("(healthy)")
        last = health(ctr, "web")["Log"][-1]
        assert (last["ExitCode"], last["Output"]) == (0, "fine\n")
        ctr("exec", "web", "rm", "/tmp/ok").ok()
        # each failure counts; it stays healthy until the third in a row
        streaks = []

        def unhealthy() -> bool:
            record = health(ctr, "web")
            streaks.append((record["FailingStreak"], record["Status"]))
            return bool(record["Status"] == "unhealthy")

        wait_for(unhealthy, "unhealthy")
        assert all(status == "healthy" for streak, status in streaks if 0 < streak < 3), streaks
        assert health(ctr, "web")["FailingStreak"] >= 3
        assert status_column(ctr, "web").endswith("(unhealthy)")
        assert len(health(ctr, "web")["Log"]) <= 5
        ctr("exec", "web", "touch", "/tmp/ok").ok()
        wait_for(lambda: health(ctr, "web")["Status"] == "healthy", "healthy again")
        assert health(ctr, "web")["FailingStreak"] == 0
    finally:
        remove_all(ctr)


def test_starting_until_the_first_check_and_failures_in_the_start_period(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "slow", *NONE, *FAST, "--health-retries", "1",
                     "--health-start-period", "1h", "--health-cmd", "false", "busybox",
                     "sleep", "1000")
        assert health(ctr, "slow")["Status"] == "starting"
        assert "(health: starting)" in status_column(ctr, "slow")
        wait_for(lambda: len(health(ctr, "slow")["Log"]) >= 3, "three checks")
        record = health(ctr, "slow")
        assert (record["Status"], record["FailingStreak"]) == ("starting", 0), record
        run_detached(ctr, "--name", "fails", *NONE, *FAST, "--health-retries", "1",
                     "--health-cmd", "exit 3", "busybox", "sleep", "1000")
        wait_for(lambda: health(ctr, "fails")["Status"] == "unhealthy", "unhealthy")
        assert health(ctr, "fails")["Log"][0]["ExitCode"] == 3
    finally:
        remove_all(ctr)


def test_a_check_over_its_timeout_fails(ctr: Ctr) -> None:
    try:
        run_detached(ctr, "--name", "hang", *NONE, *FAST, "--health-timeout", "300ms",
                     "--health-retries", "1", "--health-cmd", "sleep 30", "busybox",
                     "sleep", "1000")
        wait_for(lambda: health(ctr, "hang")["Status"] == "unhealthy", "unhealthy")
        entry = health(ctr, "hang")["Log"][0]
        assert entry["ExitCode"] == -1 and "timeout" in entry["Output"], entry
        # (the check's `exec` is sent SIGTERM, which it hands on to the check; a SIGTERM
        # that comes while that `exec` is still starting can leave the check to run out
        # its own time: not asserted here)
    finally:
        remove_all(ctr)


def test_inspect_shows_the_healthcheck_and_no_healthcheck_has_none(ctr: Ctr) -> None:
    try:
        cid = ctr("create", *NONE, "--health-cmd", "true", "--health-interval", "5s",
                  "--health-retries", "2", "busybox", "true").ok().out.strip()
        config = inspect(ctr, cid)["Config"]["Healthcheck"]
        assert config == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                          "Retries": 2}, config
        none = ctr("create", *NONE, "--no-healthcheck", "busybox", "true").ok().out.strip()
        assert "Health" not in inspect(ctr, none)["State"]
        result = ctr("run", "--rm", *NONE, "--health-interval", "1", "--health-cmd", "true",
                     "busybox", "true")
        assert "--health-interval" in one_line_error(result)
        result = ctr("run", "--rm", *NONE, "--no-healthcheck", "--health-cmd", "true",
                     "busybox", "true")
        assert "conflicts" in one_line_error(result)
    finally:
        remove_all(ctr)


def test_the_checks_end_with_the_container(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "ends", *NONE, *FAST, "--health-cmd", "true",
                           "busybox", "sleep", "1000")
        wait_for(lambda: health(ctr, "ends")["Status"] == "healthy", "healthy")
        ctr("stop", "-t", "0", "ends").ok()
        hooks = [pid for pid in _pids_with(f"_health {cid}")]
        assert hooks == [], hooks
        assert json.loads(ctr("inspect", "-f", "{{json .State.Running}}", "ends",
                              trace=False).ok().out) is False
    finally:
        remove_all(ctr)


def _pids_with(text: str) -> list[int]:
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as stream:
                    if text.encode() in stream.read().replace(b"\0", b" "):
                        found.append(int(entry))
            except OSError:
                continue
    return found
