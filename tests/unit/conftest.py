"""Fixtures for the unit tests: a tmp root, fixed ids and times, a recording host."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shellctr.cli.main import main
from shellctr.core import facts
from shellctr.core.layout import Layout
from shellctr.engine import container, image, lifecycle, volume
from shellctr.parts import netopts

from .helpers import CID, MONITOR, T0, RecordingHost


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "root", tmp_path / "run")


@pytest.fixture
def host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
def fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed container id, name, times and resolv.conf: records come out the same."""
    monkeypatch.setattr(container, "new_id", lambda: CID)
    monkeypatch.setattr(container, "now_iso", lambda: T0)
    monkeypatch.setattr(container, "generate_name", lambda taken: "quirky_turing")
    monkeypatch.setattr(image, "now_iso", lambda: T0)
    monkeypatch.setattr(lifecycle, "now_iso", lambda: T0)
    monkeypatch.setattr(volume, "now_iso", lambda: T0)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHELLCTR_TRACE", "SHELLCTR_ROOT", "SHELLCTR_RUNROOT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_host_cgroups(monkeypatch: pytest.MonkeyPatch,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Unit tests never touch the host's cgroupfs, named netns or /etc: every Facts (the
    CLI's too) sees tmp dirs instead. An empty one stands in for /sys/fs/cgroup (no
    hierarchy: containers get no cgroups); tests that want one make `freezer/`,
    `memory/` (v1) or `cgroup.controllers` (v2) in it. /etc has a fixed resolv.conf."""
    root = tmp_path_factory.mktemp("sys-fs-cgroup")
    etc = tmp_path_factory.mktemp("etc")
    (etc / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    monkeypatch.setattr(facts, "CGROUP_ROOT", root)
    monkeypatch.setattr(facts, "NETNS_DIR", tmp_path_factory.mktemp("run-netns"))
    monkeypatch.setattr(facts, "ETC", etc)
    return root


@pytest.fixture
def cgroup_root(_no_host_cgroups: Path) -> Path:
    return _no_host_cgroups


@pytest.fixture(autouse=True)
def _monitor_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor's path, whether or not `make` has built it: unit tests never run it
    (test_monitor.py compiles its own)."""
    monkeypatch.setattr(container, "monitor_binary", lambda: MONITOR)


@pytest.fixture
def restore_signals() -> Iterator[None]:
    """An attached start installs signal forwarders: put the test process's back."""
    saved = {signum: signal.getsignal(signum) for signum in container.FORWARDED_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture(autouse=True)
def _loopback_only_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Containers of the unit tests get `--network none` unless they ask for a network:
    the tests of other steps assert their commands without the network's (see
    test_network.py for those)."""
    monkeypatch.setattr(netopts, "DEFAULT_MODE", "none")


@pytest.fixture
def cli(layout: Layout, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `shellctr --root R --runroot RR ARGS...`; return (code, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--root", str(layout.root), "--runroot", str(layout.runroot), *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run
