"""lifecycle: rm (and rm -f of a running container), reconcile."""

from __future__ import annotations

import signal
import subprocess

import pytest

from shellctr.container import RunOptions, create, start_foreground, state_record
from shellctr.errors import Conflict, NotFound
from shellctr.host import process_start
from shellctr.layout import Layout
from shellctr.lifecycle import UNKNOWN_EXIT, reconcile, remove
from shellctr.state import ContainerState
from shellctr.store import Store

from .helpers import (
    CID,
    LAYER,
    T0,
    FakeInit,
    RecordingHost,
    install_image,
    prepared_store,
    q,
    reap_in_background,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("fixed", "restore_signals")


def created(layout: Layout, *, started: bool = False) -> Store:
    """A container `web` (id CID) in a root holding the busybox image."""
    install_image(layout, layer_dir=True)
    host = RecordingHost(substitute={"unshare": FakeInit()})
    store = Store(layout, host)
    config = create(host, store, RunOptions("busybox", name="web"))
    if started:
        start_foreground(host, store, config)
    return store


def set_state(layout: Layout, **fields: object) -> None:
    prepared_store(layout).write(layout.container_state(CID), state_record(**fields))  # type: ignore[arg-type]


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["sleep", "60"])
    reap_in_background(process)  # once killed it must not linger as a zombie
    yield process  # type: ignore[misc]
    if process.poll() is None:
        process.kill()


def test_rm_removes_the_run_dir_then_the_container_dir(layout: Layout) -> None:
    created(layout, started=True)
    before = {path: entry for path, entry in snapshot(layout.root).items()
              if not path.startswith(f"containers/{CID}")}
    assert layout.container_run_dir(CID).is_dir()
    host = RecordingHost()
    remove(host, Store(layout, host), "web", force=False)
    assert host.lines == [f"rm --recursive {q(layout.container_run_dir(CID))}",
                          f"rm --recursive {q(layout.container_dir(CID))}"]
    assert snapshot(layout.root) == before
    assert not layout.container_run_dir(CID).exists()


@pytest.mark.parametrize("ref", ["web", CID, CID[:12], "0"])
def test_rm_of_a_created_container_by_name_id_or_prefix(layout: Layout, ref: str) -> None:
    created(layout)
    host = RecordingHost()
    remove(host, Store(layout, host), ref, force=False)
    assert host.lines == [f"rm --recursive {q(layout.container_dir(CID))}"]


def test_rm_of_an_unknown_container(layout: Layout) -> None:
    created(layout)
    host = RecordingHost()
    with pytest.raises(NotFound, match="no such container: db"):
        remove(host, Store(layout, host), "db", force=False)
    assert host.cmds == []


def test_rm_refuses_a_running_container(layout: Layout,
                                        sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    set_state(layout, status="running", pid=sleeper.pid,
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
    set_state(layout, status="running", pid=sleeper.pid,
              pid_start=process_start(sleeper.pid), started_at=T0)
    host = RecordingHost()
    remove(host, Store(layout, host), "web", force=True)
    assert host.lines == [f"kill -s KILL {sleeper.pid}",
                          f"rm --recursive {q(layout.container_run_dir(CID))}",
                          f"rm --recursive {q(layout.container_dir(CID))}"]
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert not layout.container_dir(CID).exists()


def test_rm_after_rmi_f_removes_the_layers_nothing_uses(layout: Layout) -> None:
    created(layout)
    layout.image_file("ab" * 32).unlink()  # as `rmi -f` leaves it
    host = RecordingHost()
    remove(host, Store(layout, host), "web", force=False)
    assert host.lines == [f"rm --recursive {q(layout.container_dir(CID))}",
                          f"rm --recursive {q(layout.layer_dir(LAYER))}"]


def test_reconcile_keeps_a_live_container_running(layout: Layout,
                                                  sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    set_state(layout, status="running", pid=sleeper.pid,
              pid_start=process_start(sleeper.pid), started_at=T0)
    assert reconcile(Store(layout, RecordingHost()), CID).status == "running"


def test_reconcile_marks_a_container_whose_pid1_and_monitor_are_gone_exited(
        layout: Layout) -> None:
    created(layout)
    gone = subprocess.Popen(["true"])
    gone.wait()
    set_state(layout, status="running", pid=gone.pid, pid_start=12345,
              monitor_pid=gone.pid, monitor_start=12345, started_at=T0)
    host = RecordingHost()
    state = reconcile(Store(layout, host), CID)
    assert state == ContainerState(
        status="exited", exit_code=UNKNOWN_EXIT, started_at=T0, finished_at=T0,  # type: ignore[arg-type]
        error="the container ended while no shellctr process watched it")
    assert host.lines == [f"cat > {q(layout.container_state(CID))} <<'EOF'\n"
                          f"{state.model_dump_json()}\nEOF"]


def test_reconcile_treats_a_reused_pid_as_gone(layout: Layout,
                                               sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    start = process_start(sleeper.pid)
    assert start is not None
    set_state(layout, status="running", pid=sleeper.pid, pid_start=start + 1, started_at=T0)
    assert reconcile(Store(layout, RecordingHost()), CID).status == "exited"
    assert sleeper.poll() is None  # the unrelated process is left alone


def test_reconcile_leaves_it_to_a_live_monitor(layout: Layout,
                                               sleeper: subprocess.Popen[bytes]) -> None:
    created(layout)
    set_state(layout, status="running", pid=999_999_999, pid_start=1,
              monitor_pid=sleeper.pid, monitor_start=process_start(sleeper.pid),
              started_at=T0)
    host = RecordingHost()
    assert reconcile(Store(layout, host), CID).status == "running"
    assert host.cmds == []
