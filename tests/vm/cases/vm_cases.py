"""Cases for the VM runner's own tests (tests/vm/test_runner_vms.py), which pass them to
vm/run-tests by node id. The file name does not match test_*.py, so `pytest tests`
never collects it; and each case skips anywhere but inside a test VM (vm/guest/init
sets SHELLCTR_VM_GUEST=1), so even naming it on the host is harmless."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("SHELLCTR_VM_GUEST") != "1",
                                reason="only inside a vm/run-tests VM")


def test_passes_on_cgroup_v2() -> None:
    assert Path("/sys/fs/cgroup/cgroup.controllers").is_file(), "not the unified hierarchy"


def test_fails_on_purpose() -> None:
    assert 1 + 1 == 3, "deliberately failing: the runner must name this test"


def test_hangs() -> None:
    threading.Event().wait()  # never set: the runner's timeout must kill the VM


def test_crashes_the_kernel() -> None:
    Path("/proc/sysrq-trigger").write_text("c")  # a kernel panic: the VM ends at once
