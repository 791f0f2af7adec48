"""Fixtures for the unit tests: a tmp root, fixed ids and times, a recording host."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from shellctr import container, image, lifecycle
from shellctr.layout import Layout

from .helpers import CID, T0, RecordingHost


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
    monkeypatch.setattr(container, "host_resolv_conf", lambda: "nameserver 192.0.2.53\n")
    monkeypatch.setattr(image, "now_iso", lambda: T0)
    monkeypatch.setattr(lifecycle, "now_iso", lambda: T0)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHELLCTR_TRACE", "SHELLCTR_ROOT", "SHELLCTR_RUNROOT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def restore_signals() -> Iterator[None]:
    """start_foreground installs signal forwarders: put the test process's back."""
    saved = {signum: signal.getsignal(signum) for signum in container.FORWARDED_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
