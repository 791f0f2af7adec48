"""Health checks, daemonless: the container's monitor runs `shellctr _health ID` every
--health-interval while the container runs (monitor.c's --health); each run is one check.

A check runs the test in the container (as `exec` does: same namespaces, cgroup, user,
capabilities), waits at most --health-timeout, and records the result in
ROOT/containers/<id>/health.json, Docker's State.Health:

    {"Status": "healthy", "FailingStreak": 0,
     "Log": [{"Start": ..., "End": ..., "ExitCode": 0, "Output": "..."}]}   (last 5)

`starting` until the first success; a failure in the start period does not count while
it is starting; --health-retries failures in a row make it `unhealthy`; a success makes
it `healthy` again. A start resets it to `starting`. Checks never overlap (the monitor
waits for one before the next), so the record needs no lock.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from shellctr.core.cmd import path_arg
from shellctr.core.host import Host
from shellctr.core.layout import CHECKOUT
from shellctr.core.store import Record, Store, now_iso
from shellctr.parts.runflags import health_argv, health_settings

LOG_KEPT = 5  # probes kept in the record, as Docker
OUTPUT_KEPT = 4096  # bytes of each probe's output, as Docker


def health_file(store: Store, cid: str) -> Path:
    return store.layout.container_dir(cid) / "health.json"


def configured(container: Record) -> bool:
    health = container.get("healthcheck")
    return health is not None and health["Test"][0] != "NONE"


def reset(host: Host, store: Store, container: Record) -> None:
    """A start: the health is `starting` again."""
    if configured(container):
        store.write(health_file(store, container["id"]),
                    {"Status": "starting", "FailingStreak": 0, "Log": []})


def read(store: Store, cid: str) -> Record | None:
    """The container's State.Health, or None without a health check."""
    try:
        return store.read(health_file(store, cid))
    except FileNotFoundError:
        return None


def status_suffix(store: Store, cid: str) -> str:
    """What `ps` adds to "Up 5s": " (healthy)", " (health: starting)", as Docker."""
    record = read(store, cid)
    if record is None:
        return ""
    status = record["Status"]
    return f" (health: {status})" if status == "starting" else f" ({status})"


def check(host: Host, store: Store, cid: str) -> None:
    """One check (the monitor's hook): run the test, record the result."""
    from shellctr.engine.lifecycle import reconcile

    try:
        container, state = store.container(cid), reconcile(store, cid)
    except FileNotFoundError:
        return  # removed meanwhile
    if state["status"] != "running" or not configured(container):  # type: ignore[arg-type]
        return
    health = container["healthcheck"]
    assert health is not None
    settings = health_settings(health)
    started = now_iso()
    code, output = probe(host, store, cid, health_argv(health["Test"]),
                         settings["Timeout"] / 1e9)
    record = read(store, cid) or {"Status": "starting", "FailingStreak": 0, "Log": []}
    entry = {"Start": started, "End": now_iso(), "ExitCode": code,
             "Output": output[:OUTPUT_KEPT]}
    status, streak = record["Status"], record["FailingStreak"]
    if code == 0:
        status, streak = "healthy", 0
    elif not (status == "starting" and in_start_period(state["started_at"],
                                                       settings["StartPeriod"])):
        streak += 1
        if streak >= settings["Retries"]:
            status = "unhealthy"
    if not store.exists(store.layout.container_config(cid)):
        return  # removed while it ran
    store.write(health_file(store, cid), {"Status": status, "FailingStreak": streak,
                                          "Log": [*record["Log"], entry][-LOG_KEPT:]})
    if status != record["Status"]:
        from shellctr.engine import events

        events.emit(store, "container", f"health_status: {status}", cid,
                    events.container_attributes(container))


def in_start_period(started_at: str | None, period_ns: int) -> bool:
    if not period_ns or started_at is None:
        return False
    started = datetime.fromisoformat(started_at)
    return (datetime.now(started.tzinfo) - started).total_seconds() * 1e9 < period_ns


def probe(host: Host, store: Store, cid: str, argv: list[str],
          timeout: float) -> tuple[int, str]:
    """Run `argv` in the container as `exec` does: (exit code, output); -1 on a timeout."""
    layout = store.layout
    result = host.run_bounded(
        [path_arg(CHECKOUT / "bin" / "shellctr"), "--root", path_arg(layout.root),
         "--runroot", path_arg(layout.runroot), "exec", cid, *argv], timeout)
    if result is None:
        return -1, f"Health check exceeded timeout ({timeout:g}s)"
    return result
