"""The issue-16 run flags as parsed (parts/runflags.py), the unshare line they make, the
monitor's log and health words, and the events journal's pure parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shellctr.cli.events import default_line
from shellctr.core.errors import ShellctrError
from shellctr.engine import events
from shellctr.engine.start import unshare_argv
from shellctr.parts import runflags
from shellctr.parts.request import RunRequest


def test_ulimits_as_docker_takes_them() -> None:
    assert runflags.parse_ulimits(["nofile=1024:2048", "core=-1", "nproc=10"]) == [
        {"name": "nofile", "soft": 1024, "hard": 2048},
        {"name": "core", "soft": -1, "hard": -1},
        {"name": "nproc", "soft": 10, "hard": 10}]
    for bad in ("nofile", "nofile=", "nofile=a", "bogus=1", "nofile=10:5", "nofile=-2"):
        with pytest.raises(ShellctrError):
            runflags.parse_ulimits([bad])


@pytest.mark.parametrize(("key", "network", "ipc", "ok"), [
    ("kernel.shmmax", "none", "private", True),
    ("kernel.shmmax", "none", "host", False),
    ("fs.mqueue.msg_max", "none", "shareable", True),
    ("net.ipv4.ip_forward", "shellctr0", "private", True),
    ("net.ipv4.ip_forward", "host", "private", False),
    ("net.core.somaxconn", "container:abc", "private", False),
    ("kernel.hostname", "none", "private", False),
    ("vm.swappiness", "none", "private", False),
    ("kernel.domainname", "none", "private", True),
])
def test_only_namespaced_sysctls_in_namespaces_of_its_own(key: str, network: str, ipc: str,
                                                          ok: bool) -> None:
    if ok:
        assert runflags.parse_sysctls([f"{key}=1"], network, ipc, "") == {key: "1"}
    else:
        with pytest.raises(ShellctrError):
            runflags.parse_sysctls([f"{key}=1"], network, ipc, "")


def health_request(**flags: Any) -> RunRequest:
    return RunRequest(image="busybox", **flags)


def test_health_flags_over_the_images_healthcheck() -> None:
    image = {"Test": ["CMD", "/check"], "Interval": 10 ** 9, "Retries": 5}
    assert runflags.parse_health(health_request(), image) == image
    assert runflags.parse_health(health_request(health_cmd="curl x", health_retries=2,
                                                health_start_period="1m30s"), image) == {
        "Test": ["CMD-SHELL", "curl x"], "Interval": 10 ** 9, "Retries": 2,
        "StartPeriod": 90 * 10 ** 9}
    assert runflags.parse_health(health_request(no_healthcheck=True), image) == \
        {"Test": ["NONE"]}
    assert runflags.parse_health(health_request(), None) is None
    assert runflags.health_settings({"Test": ["CMD", "x"]}) == {
        "Interval": 30 * 10 ** 9, "Timeout": 30 * 10 ** 9, "StartPeriod": 0, "Retries": 3}
    assert runflags.health_argv(["CMD-SHELL", "a && b"]) == ["/bin/sh", "-c", "a && b"]
    assert runflags.health_argv(["CMD", "/check", "-q"]) == ["/check", "-q"]
    for bad in ({"health_interval": "10"}, {"health_timeout": "1us"},
                {"health_retries": -1}, {"no_healthcheck": True, "health_cmd": "x"}):
        with pytest.raises(ShellctrError):
            runflags.parse_health(health_request(**bad), None)


def test_log_driver_and_opts() -> None:
    assert runflags.parse_log(None, []) == ("json-file", {})
    assert runflags.parse_log("local", []) == ("local", {"max-size": "20m", "max-file": "5"})
    _, opts = runflags.parse_log("json-file", ["max-size=1m", "max-file=3"])
    assert runflags.log_limits(opts) == (1024 * 1024, 3)
    for driver_name, items in (("syslog", []), ("json-file", ["max-file=3"]),
                               ("none", ["max-size=1m"]), ("json-file", ["max-file=0",
                                                                         "max-size=1m"])):
        with pytest.raises(ShellctrError):
            runflags.parse_log(driver_name, items)


def test_unshare_line_shares_and_joins_namespaces() -> None:
    spec = Path("/run/x/init.json")
    plain = unshare_argv(spec)
    assert plain[:plain.index("--propagation")] == [
        "unshare", "--mount", "--uts", "--ipc", "--net", "--pid"]
    shared = unshare_argv(spec, ["host"], namespaces={"ipc": "host", "uts": "host",
                                                      "pid": "host"})
    assert shared[:shared.index("--propagation")] == ["unshare", "--mount"]
    joined = unshare_argv(spec, ["nsenter", "--net=/run/netns/n", "--"],
                          namespaces={"ipc": "/proc/7/ns/ipc", "pid": "/proc/7/ns/pid"})
    assert joined[:joined.index("--propagation")] == [
        "nsenter", "--net=/run/netns/n", "--ipc=/proc/7/ns/ipc", "--pid=/proc/7/ns/pid",
        "--no-fork", "--", "unshare", "--mount", "--uts"]


def test_event_times_keep_nanoseconds() -> None:
    assert events.time_nano("2026-12-03T16:19:21.123456789Z") == 1796314761123456789
    assert events.time_nano("2026-12-03T16:19:21Z") == 1796314761000000000
    assert events.time_nano("2026-12-03T16:19:21.5+00:00") == 1796314761500000000


@pytest.mark.parametrize("iso", ["1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                 "2000-02-29T12:00:00+05:45", "2024-03-01T00:00:00-03:30",
                                 "1900-03-01T01:02:03Z", "2099-12-31T23:59:59.999999Z",
                                 "2026-12-04T02:20:05.976837"])
def test_event_times_are_datetimes_without_importing_it(iso: str) -> None:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    expected = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    whole = int((expected - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() // 1)
    assert events.time_nano(iso) == whole * 10**9 + expected.microsecond * 1000
    with pytest.raises(ValueError):
        events.time_nano(iso.replace("T", " "))


def event(kind: str, action: str, actor: str, **attributes: str) -> dict[str, Any]:
    return {"Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attributes},
            "timeNano": 1796314761123456789}


def test_event_filters_as_docker_filters() -> None:
    start = event("container", "start", "ab" * 32, name="web", image="busybox", tier="x")
    health = event("container", "health_status: healthy", "ab" * 32, name="web")
    net = event("network", "connect", "cd" * 32, name="appnet", container="ab" * 32)
    f = events.parse_filters
    assert events.matches(start, f(["container=web"]))
    assert events.matches(start, f(["container=abab"]))
    assert events.matches(net, f(["container=abab"]))
    assert not events.matches(start, f(["container=db"]))
    assert events.matches(start, f(["event=stop", "event=start"]))
    assert not events.matches(start, f(["event=start", "type=network"]))
    assert events.matches(health, f(["event=health_status"]))
    assert events.matches(start, f(["label=tier", "image=busybox"]))
    assert not events.matches(start, f(["label=tier=y"]))
    with pytest.raises(ShellctrError):
        f(["type=nope"])


def test_the_default_event_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    line = default_line(event("container", "die", "ab" * 32, name="web", exitCode="0"))
    assert line == (f"2026-12-03T16:19:21.123456789Z container die {'ab' * 32} "
                    "(exitCode=0, name=web)")


def test_the_images_healthcheck_is_the_containers_unless_the_flags_say_otherwise(
        layout: Any) -> None:
    from shellctr.core.store import Store
    from shellctr.engine.create import create

    from .helpers import RecordingHost, image_model, install_image

    health = {"Test": ["CMD-SHELL", "check"], "Interval": 2 * 10 ** 9, "Retries": 4}
    install_image(layout, image_model(config={"Cmd": ["sh"], "Healthcheck": health}))
    host = RecordingHost()
    store = Store(layout, host)
    plain = create(host, store, RunRequest(image="busybox", network="none"))
    assert plain["healthcheck"] == health
    flagged = create(host, store, RunRequest(image="busybox", network="none",
                                             health_retries=1))
    assert flagged["healthcheck"] == {**health, "Retries": 1}
    off = create(host, store, RunRequest(image="busybox", network="none", no_healthcheck=True))
    assert off["healthcheck"] == {"Test": ["NONE"]}


def test_the_journal_rotates_and_replay_reads_both_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shellctr.core.host import Host
    from shellctr.core.layout import Layout
    from shellctr.core.store import Store

    monkeypatch.setattr(events, "JOURNAL_MAX", 40_000)
    store = Store(Layout(tmp_path / "root", tmp_path / "run"), Host())
    for number in range(300):  # ~55 KB of events: one rotation
        events.emit(store, "volume", "create", f"v{number}", {"driver": "local"},
                    when=f"2026-12-03T16:00:{number // 10:02d}.{number % 10}Z")
    journal = events.journal(store)
    assert journal.with_name("events.log.1").exists()
    replayed, _, _ = events.replay(store, None, None)
    assert [e["Actor"]["ID"] for e in replayed] == [f"v{n}" for n in range(300)]
    later = events.time_nano("2026-12-03T16:00:25Z")
    assert [e["Actor"]["ID"] for e in events.replay(store, later, None)[0]] == \
        [f"v{n}" for n in range(250, 300)]
    dry = Store(Layout(tmp_path / "dry", tmp_path / "dryrun"), Host(dry_run=True))
    events.emit(dry, "volume", "create", "x")
    assert not (tmp_path / "dryrun").exists()  # a --dry-run appends nothing


def test_emit_takes_no_trace_line(tmp_path: Path) -> None:
    import io

    from shellctr.core.host import Host
    from shellctr.core.layout import Layout
    from shellctr.core.store import Store

    err = io.StringIO()
    store = Store(Layout(tmp_path / "root", tmp_path / "run"), Host(trace=True, err=err))
    events.emit(store, "network", "create", "n1")
    assert err.getvalue() == ""
