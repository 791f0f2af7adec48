"""`run` = container.create + container.start_foreground: its exact steps, and undo on failure."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import shellctr
from shellctr.container import HOSTS, RunOptions, create, start_foreground
from shellctr.errors import ExecError, HostCommandError
from shellctr.host import process_start
from shellctr.layout import Layout
from shellctr.store import Store

from .helpers import (
    CID,
    IMAGE_ID,
    LAYER,
    T0,
    FakeInit,
    RecordingHost,
    install_image,
    q,
    record_of,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("fixed", "restore_signals")

ENTRY = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from shellctr.init import main; main(sys.argv[2])")


def create_steps(layout: Layout) -> list[tuple[list[str], str | None]]:
    """(argv, redirect) of each step of create, in order."""
    cdir = layout.container_dir(CID)
    return [
        (["mkdir", "--mode=700", str(cdir)], None),
        (["mkdir", "--mode=755", str(cdir / "upper")], None),
        (["mkdir", "--mode=755", str(cdir / "work")], None),
        (["mkdir", "--mode=755", str(cdir / "rootfs")], None),
        (["cat"], str(cdir / "hostname")),
        (["cat"], str(cdir / "hosts")),
        (["cat"], str(cdir / "resolv.conf")),
        (["cat"], str(cdir / "config.json")),
        (["cat"], str(cdir / "state.json")),
    ]


def steps_of(host: RecordingHost) -> list[tuple[list[str], str | None]]:
    return [(cmd.argv, cmd.redirect) for cmd in host.cmds]


def test_run_steps_in_order(layout: Layout) -> None:
    install_image(layout)
    fake = FakeInit(code=3)
    host = RecordingHost(substitute={"unshare": fake})
    store = Store(layout, host)

    config = create(host, store, RunOptions("busybox", ["echo", "hi"]))
    code = start_foreground(host, store, config)

    assert code == 3
    run_dir = layout.runroot / "containers" / CID
    state = str(layout.container_state(CID))
    assert steps_of(host) == [
        *create_steps(layout),
        (["mkdir", "--parents", "--mode=700", str(run_dir)], None),
        (["cat"], str(run_dir / "init.json")),
        (["unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
          "--propagation", "private", "--",
          sys.executable, "-I", "-S", "-c", ENTRY,
          str(Path(shellctr.__file__).parent.parent), str(run_dir / "init.json")], None),
        (["cat"], state),  # running
        (["cat"], state),  # exited
    ]
    assert all(cmd.stdin is None for cmd in host.cmds if cmd.argv != ["cat"])
    hostname, hosts, resolv = (cmd.stdin for cmd in host.cmds[4:7])
    assert hostname == CID[:12] + "\n"
    assert hosts == HOSTS == "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    assert resolv == "nameserver 192.0.2.53\n"

    running, exited = record_of(host.cmds[-2]), record_of(host.cmds[-1])
    assert fake.process is not None
    assert running["status"] == "running" and running["pid"] == fake.process.pid
    assert running["pid_start"] > 0 and running["started_at"] == T0
    assert running["monitor_pid"] == os.getpid()
    assert running["monitor_start"] == process_start(os.getpid())
    assert exited == {**running, "status": "exited", "pid": 0, "pid_start": 0,
                      "monitor_pid": 0, "monitor_start": 0, "exit_code": 3,
                      "finished_at": T0}


def test_run_shell_lines_are_what_trace_prints(layout: Layout) -> None:
    install_image(layout)
    host = RecordingHost(substitute={"unshare": FakeInit()})
    store = Store(layout, host)
    start_foreground(host, store, create(host, store, RunOptions("busybox")))
    cdir = q(layout.container_dir(CID))
    assert host.lines[:5] == [
        f"mkdir --mode=700 {cdir}",
        f"mkdir --mode=755 {cdir}/upper",
        f"mkdir --mode=755 {cdir}/work",
        f"mkdir --mode=755 {cdir}/rootfs",
        f"cat > {cdir}/hostname <<'EOF'\n{CID[:12]}\nEOF",
    ]
    assert host.lines[11].startswith(
        "unshare --mount --uts --ipc --net --pid --fork --propagation private -- "
        f"{q(sys.executable)} -I -S -c 'import sys; sys.path.insert(0, sys.argv[1]); ")


def test_run_writes_the_init_spec(layout: Layout) -> None:
    install_image(layout, layer_dir=True)
    host = RecordingHost(substitute={"unshare": FakeInit()})
    store = Store(layout, host)
    options = RunOptions("busybox", ["sh", "-c", "id"], user="1000:1000", workdir="/srv",
                         tty=False, env=["A=1"], hostname="web")
    start_foreground(host, store, create(host, store, options))
    spec = json.loads(host.cmds[10].stdin or "")
    cdir = layout.container_dir(CID)
    assert isinstance(spec.pop("status_fd"), int)
    assert spec == {
        "rootfs": str(cdir / "rootfs"),
        "lowerdirs": [str(layout.layer_dir(LAYER))],
        "upperdir": str(cdir / "upper"),
        "workdir": str(cdir / "work"),
        "hostname": "web",
        "etc_files": [[str(cdir / "hostname"), "/etc/hostname"],
                      [str(cdir / "hosts"), "/etc/hosts"],
                      [str(cdir / "resolv.conf"), "/etc/resolv.conf"]],
        "argv": ["sh", "-c", "id"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=web", "A=1"],
        "cwd": "/srv",
        "user": "1000:1000",
        "tty": False,
        "trace_fd": None,
    }


def test_init_spec_lists_the_top_layer_first(layout: Layout) -> None:
    from shellctr.container import init_spec

    config: dict[str, Any] = {"id": CID, "layers": ["b" * 64, "t" * 64], "hostname": "h",
                              "path": "sh", "args": [], "env": [], "working_dir": "/",
                              "user": "", "tty": True}
    spec = init_spec(layout, config, None, 2)
    assert spec["lowerdirs"] == [str(layout.layer_dir("t" * 64)), str(layout.layer_dir("b" * 64))]
    assert spec["trace_fd"] == 2 and spec["status_fd"] is None


def test_exec_failure_reported_by_init_is_recorded_and_raised(layout: Layout) -> None:
    install_image(layout)
    message = {"message": 'exec: "nope": executable file not found in $PATH', "code": 127}
    host = RecordingHost(substitute={"unshare": FakeInit(127, [message])})
    store = Store(layout, host)
    with pytest.raises(ExecError, match="executable file not found") as info:
        start_foreground(host, store, create(host, store, RunOptions("busybox", ["nope"])))
    assert info.value.exit_code == 127
    last = record_of(host.cmds[-1])
    assert last["status"] == "exited" and last["exit_code"] == 127
    assert last["error"] == message["message"]


def test_exec_failure_after_ready_is_recorded_and_raised(layout: Layout) -> None:
    install_image(layout)
    messages: list[dict[str, Any]] = [{"ready": True},
                                      {"message": "exec /bin/x: Permission denied", "code": 126}]
    host = RecordingHost(substitute={"unshare": FakeInit(126, messages)})
    store = Store(layout, host)
    with pytest.raises(ExecError) as info:
        start_foreground(host, store, create(host, store, RunOptions("busybox", ["/bin/x"])))
    assert info.value.exit_code == 126
    assert [record_of(cmd)["status"] for cmd in host.cmds[-2:]] == ["running", "exited"]


def test_run_rm_removes_the_container_after_it_exits(layout: Layout) -> None:
    install_image(layout)
    host = RecordingHost(substitute={"unshare": FakeInit()})
    store = Store(layout, host)
    before = snapshot(layout.root)
    config = create(host, store, RunOptions("busybox", auto_remove=True))
    assert start_foreground(host, store, config) == 0
    assert host.lines[-2:] == [f"rm --recursive {q(layout.container_run_dir(CID))}",
                               f"rm --recursive {q(layout.container_dir(CID))}"]
    assert snapshot(layout.root) == before


@pytest.mark.parametrize("k", range(1, 10))
def test_create_failure_at_step_k_undoes_what_was_done(layout: Layout, k: int) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    host = RecordingHost(fail_at=k)
    store = Store(layout, host)

    with pytest.raises(HostCommandError, match="injected failure"):
        create(host, store, RunOptions("busybox", name="web"))

    cdir = layout.container_dir(CID)
    # the undo of the first mkdir removes the container's whole directory
    undo = [(["rm", "--recursive", str(cdir)], None)] if k > 1 else []
    assert steps_of(host) == create_steps(layout)[:k] + undo
    assert snapshot(layout.root) == before
    assert not layout.runroot.exists()


def test_create_refuses_a_name_in_use_before_touching_anything(layout: Layout) -> None:
    from shellctr.errors import Conflict

    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, RunOptions("busybox", name="web"))
    host.reset()
    before = snapshot(layout.root)
    with pytest.raises(Conflict, match='the container name "web" is already in use by '
                                       f"container {CID[:12]}"):
        create(host, store, RunOptions("busybox", name="web"))
    assert host.cmds == []
    assert snapshot(layout.root) == before


@pytest.mark.parametrize(("options", "message"), [
    (RunOptions("nope"), "unable to find image 'nope:latest' locally"),
    (RunOptions("busybox", name="-bad"), "invalid container name"),
    (RunOptions("busybox", workdir="relative"), "is not absolute"),
    (RunOptions("busybox", entrypoint=""), "no command specified"),
    (RunOptions("busybox", env=["=x"]), "invalid environment variable"),
])
def test_create_errors_change_nothing(layout: Layout, options: RunOptions, message: str) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    host = RecordingHost()
    with pytest.raises(Exception, match=message):
        create(host, Store(layout, host), options)
    assert host.cmds == []
    assert snapshot(layout.root) == before


def test_create_takes_workdir_user_and_command_from_the_image(layout: Layout) -> None:
    from .helpers import image_model

    install_image(layout, image_model(config={
        "Env": ["LANG=C"], "Entrypoint": ["/init"], "Cmd": ["--serve"],
        "WorkingDir": "/srv", "User": "app"}))
    host = RecordingHost()
    config = create(host, Store(layout, host), RunOptions("busybox", tty=True))
    assert (config["path"], config["args"]) == ("/init", ["--serve"])
    assert config["working_dir"] == "/srv" and config["user"] == "app"
    assert config["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                             f"HOSTNAME={CID[:12]}", "TERM=xterm", "LANG=C"]
    assert config["image_id"] == IMAGE_ID
