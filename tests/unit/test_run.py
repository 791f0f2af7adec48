"""`run` = create + start: its exact steps, and undo on failure."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import shellctr
from shellctr.core.errors import ExecError, HostCommandError, ShellctrError
from shellctr.core.facts import Facts
from shellctr.core.layout import Layout
from shellctr.core.state import ContainerState
from shellctr.core.store import Store
from shellctr.engine import start as start_module
from shellctr.engine.create import create
from shellctr.engine.lifecycle import reconcile
from shellctr.engine.start import monitor_argv, start
from shellctr.parts.netopts import LOCALHOST as HOSTS
from shellctr.parts.request import RunRequest

from .helpers import (
    CID,
    IMAGE_ID,
    LAYER,
    MONITOR,
    MONITOR_NAME,
    REAL_MONITOR_BINARY,
    T0,
    T2,
    FakeInit,
    RecordingHost,
    install_image,
    q,
    record_of,
    removal_lines,
    run_request,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("fixed", "restore_signals")

ENTRY = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from shellctr.inside.init import main; main(sys.argv[2])")
TOP = Path(shellctr.__file__).resolve().parent.parent  # the checkout: bin/, build/, shellctr/


def unshare_line(spec: Path) -> list[str]:
    """The command the monitor runs: namespaces, then init.py from the checkout."""
    return ["unshare", "--mount", "--uts", "--ipc", "--net", "--pid",
            "--propagation", "private", "--", str(MONITOR), "--reap", "--",
            sys.executable, "-I", "-S", "-c", ENTRY, str(TOP), str(spec)]


def create_steps(layout: Layout) -> list[tuple[list[str], str | None]]:
    """(argv, redirect) of each step of create, in order: made under a hidden name,
    then renamed into place."""
    cdir = building(layout)
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
        (["mv", "--no-target-directory", str(cdir), str(layout.container_dir(CID))], None),
    ]


def building(layout: Layout) -> Path:
    return layout.containers_dir / f".{CID}.creating"


# Docker's default set but CAP_MKNOD: the fake host has no device cgroup (confine.spec_of)
FILTER_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
               "SETPCAP", "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "AUDIT_WRITE",
               "SETFCAP"]


def filter_steps(run_dir: Path, mask: str = "a00425fb", caps: list[str] = FILTER_CAPS,
                 ) -> list[tuple[list[str], str | None]]:
    """The seccomp filter compiled at start, into the run dir (through a temp file)."""
    partial = str(run_dir / f".seccomp-{mask}.bpf.{os.getpid()}.tmp")
    return [
        (["env", f"PYTHONPATH={TOP}", sys.executable, "-m", "shellctr.inside.seccomp",
          str(TOP / "shellctr" / "inside" / "seccomp_default.json"),
          *(f"CAP_{name}" for name in caps)], partial),
        (["mv", "--no-target-directory", partial, str(run_dir / f"seccomp-{mask}.bpf")], None),
    ]


def steps_of(host: RecordingHost) -> list[tuple[list[str], str | None]]:
    return [(cmd.argv, cmd.redirect) for cmd in host.cmds]


def test_run_steps_in_order(layout: Layout) -> None:
    install_image(layout)
    fake = FakeInit(code=3)
    host = RecordingHost(substitute={MONITOR_NAME: fake})
    store = Store(layout, host)

    config = create(host, store, run_request("busybox", ["echo", "hi"]))
    code = start(host, store, config["id"], attach=True)

    assert code == 3
    run_dir = layout.runroot / "containers" / CID
    cdir = layout.container_dir(CID)
    state = str(layout.container_state(CID))
    assert steps_of(host) == [
        *create_steps(layout),
        (["mkdir", "--parents", "--mode=700", str(run_dir)], None),
        *filter_steps(run_dir),
        (["cat"], str(run_dir / "init.json")),
        ([str(TOP / "build" / "shellctr-monitor"), "--attach",
          str(cdir / "exit.json"), str(cdir / "container.log"), "--",
          *unshare_line(run_dir / "init.json")], None),
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
    # the fake is both the monitor (spawned) and PID 1 (the sender of `ready`)
    assert running["status"] == "running" and running["pid"] == fake.process.pid
    assert running["pid_start"] > 0 and running["started_at"] == T0
    assert running["monitor_pid"] == fake.process.pid != os.getpid()
    assert running["monitor_start"] == running["pid_start"]
    assert running["restart_count"] == 0 and running["stopping"] is False
    assert exited == {**running, "status": "exited", "pid": 0, "pid_start": 0,
                      "monitor_pid": 0, "monitor_start": 0, "exit_code": 3,
                      "finished_at": T0}


def test_run_shell_lines_are_what_trace_prints(layout: Layout) -> None:
    install_image(layout)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    start(host, store, create(host, store, run_request("busybox"))["id"], attach=True)
    cdir, made = q(layout.container_dir(CID)), q(building(layout))
    assert host.lines[:5] == [
        f"mkdir --mode=700 {made}",
        f"mkdir --mode=755 {made}/upper",
        f"mkdir --mode=755 {made}/work",
        f"mkdir --mode=755 {made}/rootfs",
        f"cat > {made}/hostname <<'EOF'\n{CID[:12]}\nEOF",
    ]
    assert host.lines[9] == f"mv --no-target-directory {made} {cdir}"
    assert host.lines[11].startswith("env PYTHONPATH=")  # the seccomp filter, compiled
    assert host.lines[14].startswith(
        f"{q(MONITOR)} --attach {cdir}/exit.json {cdir}/container.log -- "
        "unshare --mount --uts --ipc --net --pid --propagation private -- "
        f"{q(MONITOR)} --reap -- "
        f"{q(sys.executable)} -I -S -c 'import sys; sys.path.insert(0, sys.argv[1]); ")


@pytest.mark.parametrize("trace", [False, True])
def test_run_writes_the_init_spec(layout: Layout, trace: bool, cgroup_root: Path) -> None:
    (cgroup_root / "freezer").mkdir()  # a cgroup v1 freezer hierarchy
    (cgroup_root / "devices").mkdir()  # ... and the device cgroup
    install_image(layout, layer_dir=True)
    host = RecordingHost(trace=trace, substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    options = run_request("busybox", ["sh", "-c", "id"], user="1000:1000", workdir="/srv",
                         tty=False, env=["A=1"], hostname="web")
    start(host, store, create(host, store, options)["id"], attach=True)
    run_dir = layout.container_run_dir(CID)
    caps = [*FILTER_CAPS[:11], "MKNOD", *FILTER_CAPS[11:]]  # a device cgroup: CAP_MKNOD too
    assert steps_of(host)[11:13] == filter_steps(run_dir, "a80425fb", caps)
    assert host.cmds[13].redirect == str(layout.container_init_spec(CID))
    spec = json.loads(host.cmds[13].stdin or "")
    cdir = layout.container_dir(CID)
    assert isinstance(spec.pop("status_fd"), int)
    # the confinement: Docker's default capabilities by number, the kernel's last one read
    # on the host, the default seccomp profile compiled, the sealed final step's source
    assert [number for number, _ in spec.pop("caps")] == [0, 1, 3, 4, 5, 6, 7, 8, 10, 13,
                                                          18, 27, 29, 31]
    assert isinstance(spec.pop("last_cap"), int)
    assert spec.pop("no_new_privs") is True
    assert spec.pop("seccomp_profile").endswith("inside/seccomp_default.json")
    assert spec.pop("seccomp_filter") == str(run_dir / "seccomp-a80425fb.bpf")
    assert spec.pop("exec_helper").endswith("build/shellctr-exec")
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
        "trace": trace,  # init.py sends its trace lines over the status socket
        "cgroups": [str(cgroup_root / "freezer" / "shellctr" / CID),  # init.py joins them
                    str(cgroup_root / "devices" / "shellctr" / CID)],
    }


def test_init_spec_lists_the_top_layer_first(layout: Layout) -> None:
    from shellctr.engine.start import init_spec

    config: Any = {"id": CID, "layers": ["b" * 64, "t" * 64], "hostname": "h",
                   "path": "sh", "args": [], "env": [], "working_dir": "/", "user": "",
                   "tty": True, "mounts": [], "cgroup_parent": "", "read_only": False}
    spec = init_spec(Facts(), layout, config, None, True)
    assert spec["lowerdirs"] == [str(layout.layer_dir("t" * 64)), str(layout.layer_dir("b" * 64))]
    assert spec["trace"] is True and spec["status_fd"] is None


def test_exec_failure_reported_by_init_is_recorded_and_raised(layout: Layout) -> None:
    install_image(layout)
    message = {"message": 'exec: "nope": executable file not found in $PATH', "code": 127}
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit(127, [message])})
    store = Store(layout, host)
    with pytest.raises(ExecError, match="executable file not found") as info:
        start(host, store, create(host, store, run_request("busybox", ["nope"]))["id"], attach=True)
    assert info.value.exit_code == 127
    last = record_of(host.cmds[-1])
    assert last["status"] == "exited" and last["exit_code"] == 127
    assert last["error"] == message["message"]


def test_exec_failure_after_ready_is_recorded_and_raised(layout: Layout) -> None:
    install_image(layout)
    messages: list[dict[str, Any]] = [{"ready": True},
                                      {"message": "exec /bin/x: Permission denied", "code": 126}]
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit(126, messages)})
    store = Store(layout, host)
    with pytest.raises(ExecError) as info:
        cid = create(host, store, run_request("busybox", ["/bin/x"]))["id"]
        start(host, store, cid, attach=True)
    assert info.value.exit_code == 126
    assert [record_of(cmd)["status"] for cmd in host.cmds[-2:]] == ["running", "exited"]


def test_run_rm_removes_the_container_after_it_exits(layout: Layout) -> None:
    install_image(layout)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    before = snapshot(layout.root)
    config = create(host, store, run_request("busybox", rm=True))
    assert start(host, store, config["id"], attach=True) == 0
    assert host.lines[-3:] == removal_lines(layout)
    assert snapshot(layout.root) == before


@pytest.mark.parametrize("k", range(1, 11))
def test_create_failure_at_step_k_undoes_what_was_done(layout: Layout, k: int) -> None:
    install_image(layout)
    before = snapshot(layout.root)
    host = RecordingHost(fail_at=k)
    store = Store(layout, host)

    with pytest.raises(HostCommandError, match="injected failure"):
        create(host, store, run_request("busybox", name="web"))

    # the undo of the first mkdir removes the container's whole directory
    undo = [(["rm", "--recursive", str(building(layout))], None)] if k > 1 else []
    assert steps_of(host) == create_steps(layout)[:k] + undo
    assert snapshot(layout.root) == before
    assert not layout.runroot.exists()


def test_create_refuses_a_name_in_use_before_touching_anything(layout: Layout) -> None:
    from shellctr.core.errors import Conflict

    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, run_request("busybox", name="web"))
    host.reset()
    before = snapshot(layout.root)
    with pytest.raises(Conflict, match='the container name "web" is already in use by '
                                       f"container {CID[:12]}"):
        create(host, store, run_request("busybox", name="web"))
    assert host.cmds == []
    assert snapshot(layout.root) == before


def test_create_after_an_rmi_that_got_the_lock_first_refuses(layout: Layout) -> None:
    from contextlib import contextmanager

    from shellctr.core.errors import NotFound

    install_image(layout)
    host = RecordingHost()

    class RacedStore(Store):
        @contextmanager
        def lock(self) -> Any:  # the rmi ran between create's look and its lock
            for image in layout.images_dir.iterdir():
                image.unlink()
            with super().lock():
                yield

    with pytest.raises(NotFound, match="image busybox was removed meanwhile"):
        create(host, RacedStore(layout, host), run_request("busybox"))
    assert host.cmds == []  # no container made


@pytest.mark.parametrize(("options", "message"), [
    (run_request("nope"), "unable to find image 'nope:latest' locally"),
    (run_request("busybox", name="-bad"), "invalid container name"),
    (run_request("busybox", workdir="relative"), "is not absolute"),
    (run_request("busybox", entrypoint=""), "no command specified"),
    (run_request("busybox", env=["=x"]), "invalid environment variable"),
    (run_request("busybox", restart="sometimes"), "invalid restart policy 'sometimes'"),
    (run_request("busybox", restart="always", rm=True), "--restart and --rm"),
    (run_request("busybox", label=["=x"]), "invalid label '=x'"),
])
def test_create_errors_change_nothing(layout: Layout, options: RunRequest, message: str) -> None:
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
    config = create(host, Store(layout, host), run_request("busybox", tty=True))
    assert (config["path"], config["args"]) == ("/init", ["--serve"])
    assert config["working_dir"] == "/srv" and config["user"] == "app"
    assert config["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                             f"HOSTNAME={CID[:12]}", "TERM=xterm", "LANG=C"]
    assert config["image_id"] == IMAGE_ID


def test_create_records_entrypoint_cmd_restart_policy_and_labels(layout: Layout) -> None:
    from .helpers import image_model

    install_image(layout, image_model(config={"Entrypoint": ["/init"], "Cmd": ["--serve"]}))
    host = RecordingHost()
    config = create(host, Store(layout, host), run_request(
        "busybox", ["--debug", "x"], restart="on-failure:3", label=["app=web", "tier"]))
    assert (config["path"], config["args"]) == ("/init", ["--debug", "x"])
    assert (config["entrypoint"], config["cmd"]) == (["/init"], ["--debug", "x"])
    assert (config["restart_policy"], config["restart_max"]) == ("on-failure", 3)
    assert config["labels"] == {"app": "web", "tier": ""}


# -- the monitor -----------------------------------------------------------------------
def monitor_config(**fields: Any) -> dict[str, Any]:
    return {"id": CID, "tty": False, "interactive": False, "mounts": [], **fields}


def test_monitor_argv_attached_copies_the_output_and_leaves_the_end_to_us(
        layout: Layout) -> None:
    spec = layout.container_init_spec(CID)
    cdir = layout.container_dir(CID)
    assert monitor_argv(layout, monitor_config(), spec, attach=True) == [
        str(MONITOR), "--attach", str(cdir / "exit.json"), str(cdir / "container.log"),
        "--", *unshare_line(spec)]


def test_monitor_argv_detached_runs_the_exited_hook_of_this_root(layout: Layout) -> None:
    spec = layout.container_init_spec(CID)
    cdir = layout.container_dir(CID)
    hook = [str(TOP / "bin" / "shellctr"), "--root", str(layout.root),
            "--runroot", str(layout.runroot), "_exited", CID]
    assert monitor_argv(layout, monitor_config(), spec, attach=False) == [
        str(MONITOR), "--attach-socket", str(layout.container_run_dir(CID)),
        "--then", "7", *hook, str(cdir / "exit.json"),
        str(cdir / "container.log"), "--", *unshare_line(spec)]
    assert (TOP / "bin" / "shellctr").is_file() and (TOP / "shellctr" / "monitor.c").is_file()


def test_monitor_argv_detached_keeps_stdin_open_for_i_and_takes_the_terminal_for_t(
        layout: Layout) -> None:
    spec = layout.container_init_spec(CID)
    interactive = monitor_argv(layout, monitor_config(interactive=True), spec, attach=False)
    assert interactive[:3] == [str(MONITOR), "--keep-stdin", "--attach-socket"]
    tty = monitor_argv(layout, monitor_config(tty=True, interactive=True), spec,
                       attach=False, console_fd=9)
    assert tty[:4] == [str(MONITOR), "--console-fd", "9", "--attach-socket"]
    attached = monitor_argv(layout, monitor_config(tty=True, interactive=True), spec,
                            attach=True)
    assert attached[:2] == [str(MONITOR), "--attach"]


def test_a_slave_bind_makes_the_namespace_a_slave_of_the_hosts(layout: Layout) -> None:
    spec = layout.container_init_spec(CID)
    bind = {"type": "bind", "source": "/srv", "target": "/srv", "readonly": False,
            "options": "", "propagation": "rslave", "nocopy": False, "anonymous": False}
    argv = monitor_argv(layout, monitor_config(mounts=[bind]), spec, attach=True)
    assert argv[argv.index("--propagation") + 1] == "slave"
    private = monitor_argv(layout, monitor_config(mounts=[{**bind, "propagation": "rprivate"}]),
                           spec, attach=True)
    assert private[private.index("--propagation") + 1] == "private"


def test_monitor_binary_missing_is_a_clear_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(start_module, "CHECKOUT", tmp_path)
    with pytest.raises(ShellctrError, match=f"^{tmp_path}/build/shellctr-monitor is missing"
                       ) as info:
        REAL_MONITOR_BINARY()
    assert info.value.hint == "run make to build it"
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "shellctr-monitor").touch()
    assert REAL_MONITOR_BINARY() == tmp_path / "build" / "shellctr-monitor"


def test_start_without_the_monitor_binary_changes_nothing(
        layout: Layout, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_image(layout)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    config = create(host, store, run_request("busybox"))
    host.reset()
    monkeypatch.setattr(start_module, "monitor_binary", REAL_MONITOR_BINARY)
    monkeypatch.setattr(start_module, "CHECKOUT", tmp_path)
    with pytest.raises(ShellctrError, match="shellctr-monitor is missing"):
        start(host, store, config["id"], attach=False)
    # run dir, seccomp filter, init spec
    assert [cmd.argv[0] for cmd in host.cmds] == ["mkdir", "env", "mv", "cat"]
    assert store.container_state(CID)["status"] == "created"


def test_detached_start_returns_once_ready_and_the_monitor_records_the_end(
        layout: Layout) -> None:
    install_image(layout)
    fake = FakeInit(code=4)
    host = RecordingHost(substitute={MONITOR_NAME: fake})
    store = Store(layout, host)
    config = create(host, store, run_request("busybox", ["false"], name="web"))
    host.reset()

    assert start(host, store, config["id"], attach=False) == 0

    run_dir = layout.container_run_dir(CID)
    state = str(layout.container_state(CID))
    assert [argv[0] for argv, _ in steps_of(host)] == ["mkdir", "env", "mv", "cat",
                                                       str(MONITOR), "cat"]
    assert steps_of(host)[-1] == (["cat"], state)  # running; the end is not ours to record
    assert fake.attach is False
    assert fake.hook == [str(TOP / "bin" / "shellctr"), "--root", str(layout.root),
                         "--runroot", str(layout.runroot), "_exited", CID]
    assert fake.argv[-len(unshare_line(run_dir / "init.json")):] == unshare_line(
        run_dir / "init.json")
    running = record_of(host.cmds[-1])
    assert fake.process is not None
    assert running["status"] == "running" and running["pid"] == fake.process.pid
    assert running["monitor_pid"] == fake.process.pid

    assert fake.process.wait(timeout=10) == 4
    state = reconcile(store, CID)  # from the monitor's exit.json
    assert state == {**running, "status": "exited", "pid": 0, "pid_start": 0,
                     "monitor_pid": 0, "monitor_start": 0, "exit_code": 4, "finished_at": T2}
    ContainerState.model_validate(state)


def test_detached_start_needs_no_terminal_for_tty_and_interactive(
        layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    install_image(layout)
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    config = create(host, store, run_request("busybox", tty=True, interactive=True))
    assert start(host, store, config["id"], attach=False) == 0
    assert store.container_state(CID)["status"] == "running"


def test_a_second_start_removes_the_last_exit_file_and_keeps_the_restart_count(
        layout: Layout) -> None:
    install_image(layout)
    fake = FakeInit(code=1)
    host = RecordingHost(substitute={MONITOR_NAME: fake})
    store = Store(layout, host)
    config = create(host, store, run_request("busybox"))
    assert start(host, store, config["id"], attach=True) == 1
    exit_file = layout.container_exit_file(CID)
    assert exit_file.is_file()  # written by the (fake) monitor
    state = store.container_state(CID)
    store.write(layout.container_state(CID), {**state, "restart_count": 2})
    host.reset()

    assert start(host, store, config["id"], attach=True) == 1

    assert host.lines[0] == f"rm {q(exit_file)}"  # a stale one would end it at once
    assert [record_of(cmd)["restart_count"] for cmd in host.cmds[-2:]] == [2, 2]


def test_init_trace_lines_are_shown_as_they_come(layout: Layout) -> None:
    install_image(layout)
    messages: list[dict[str, Any]] = [{"trace": "+ mount --types proc proc /r/proc"},
                                      {"trace": "+ hostname web"}, {"ready": True}]
    host = RecordingHost(trace=True, substitute={MONITOR_NAME: FakeInit(0, messages)})
    store = Store(layout, host)
    assert start(host, store, create(host, store, run_request("busybox"))["id"], attach=True) == 0
    assert isinstance(host.err, io.StringIO)
    shown = host.err.getvalue().splitlines()
    spawned = next(i for i, line in enumerate(shown) if line.startswith(f"+ {MONITOR} --attach "))
    assert shown[spawned + 1:spawned + 4] == [
        "+ mount --types proc proc /r/proc", "+ hostname web",
        f"+ cat > {q(layout.container_state(CID))} <<'EOF'"]  # then `running`


def test_init_ending_without_a_word_is_a_125_error(layout: Layout) -> None:
    install_image(layout)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit(1, [])})
    store = Store(layout, host)
    message = "the container's init ended before starting the command"
    with pytest.raises(ExecError, match=message) as info:
        start(host, store, create(host, store, run_request("busybox"))["id"], attach=False)
    assert info.value.exit_code == 125
    last = record_of(host.cmds[-1])
    assert (last["status"], last["exit_code"], last["error"]) == ("exited", 125, message)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_start_puts_the_container_in_its_own_cgroup_and_the_end_removes_it(
        layout: Layout, cgroup_root: Path, version: str) -> None:
    if version == "v1":
        (cgroup_root / "freezer").mkdir()
        mine = cgroup_root / "freezer" / "shellctr" / CID
    else:
        (cgroup_root / "cgroup.controllers").write_text("cpu io memory pids\n")
        mine = cgroup_root / "shellctr" / CID
    install_image(layout)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit(code=2)})
    store = Store(layout, host)
    config = create(host, store, run_request("busybox"))
    host.reset()
    assert start(host, store, config["id"], attach=True) == 2
    assert [line for line in host.lines if line.startswith(("mkdir", "rmdir"))
            and str(cgroup_root) in line] == [
        f"mkdir --parents {q(mine)}",  # the parent too, in one step
        f"rmdir {q(mine)}",  # by finish, once the end is recorded
        f"rmdir {q(mine.parent)}",  # the last container's: the parent goes too
    ]
    assert not mine.parent.exists()


def test_a_failed_start_removes_the_cgroup_it_made(layout: Layout, cgroup_root: Path) -> None:
    (cgroup_root / "freezer").mkdir()
    mine = cgroup_root / "freezer" / "shellctr" / CID
    install_image(layout)
    message = {"message": "exec: nope", "code": 127}
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit(127, [message])})
    store = Store(layout, host)
    with pytest.raises(ExecError):
        start(host, store, create(host, store, run_request("busybox", ["nope"]))["id"], attach=True)
    assert f"rmdir {q(mine)}" in host.lines
    assert not mine.exists()


def test_without_a_device_cgroup_the_container_gets_no_mknod_and_a_nodev_rootfs(
        layout: Layout, cgroup_root: Path) -> None:
    """Issue 13, defect 5, where no device cgroup can be written: Podman's fallback."""
    (cgroup_root / "freezer").mkdir()
    install_image(layout, layer_dir=True)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    start(host, store, create(host, store, run_request("busybox"))["id"], attach=True)
    spec = json.loads(next(cmd.stdin for cmd in host.cmds
                           if cmd.redirect == str(layout.container_init_spec(CID))) or "")
    assert 27 not in [number for number, _ in spec["caps"]]  # CAP_MKNOD
    assert spec["rootfs_nodev"] is True


def test_the_device_cgroup_denies_all_then_allows_the_defaults_and_devices(
        layout: Layout, cgroup_root: Path) -> None:
    """Issue 13, defect 5: fuse, tun, loop-control were open to every container."""
    (cgroup_root / "devices").mkdir()
    install_image(layout, layer_dir=True)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    request = run_request("busybox", device_cgroup_rule=["c 10:229 rw"])
    start(host, store, create(host, store, request)["id"], attach=True)
    devices = q(cgroup_root / "devices" / "shellctr" / CID)
    writes = [line for line in host.lines if line.startswith("echo") and devices in line]
    assert writes[0] == f"echo a > {devices}/devices.deny"
    allowed = [line.split("echo ", 1)[1].rsplit(" > ", 1)[0].strip("'") for line in writes[1:]]
    assert allowed[:3] == ["c *:* m", "b *:* m", "c 1:3 rwm"]
    assert "c 10:200 rwm" not in allowed  # tun
    assert allowed[-1] == "c 10:229 rw"


def test_on_cgroup_v2_the_device_rules_are_a_bpf_program(layout: Layout,
                                                         cgroup_root: Path) -> None:
    """Issue 13, defect 5, cgroup v2: a BPF_CGROUP_DEVICE program on the container's
    cgroup (core/bpf.py), shown as what it allows; CAP_MKNOD stays, as with v1."""
    (cgroup_root / "cgroup.controllers").write_text("cpu io memory pids\n")
    install_image(layout, layer_dir=True)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    start(host, store, create(host, store, run_request("busybox"))["id"], attach=True)
    shown = [line for line in host.lines if line.startswith(": attach a BPF_CGROUP_DEVICE")]
    assert shown == [": attach a BPF_CGROUP_DEVICE program allowing 'c *:* m' 'b *:* m' "
                     "'c 1:3 rwm' 'c 1:5 rwm' 'c 1:7 rwm' 'c 1:8 rwm' 'c 1:9 rwm' "
                     "'c 5:0 rwm' 'c 5:1 rwm' 'c 5:2 rwm' 'c 136:* rwm' to "
                     f"{q(cgroup_root / 'shellctr' / CID)}"]
    spec = json.loads(next(cmd.stdin for cmd in host.cmds
                           if cmd.redirect == str(layout.container_init_spec(CID))) or "")
    assert 27 in [number for number, _ in spec["caps"]] and "rootfs_nodev" not in spec


def test_the_seccomp_filter_is_compiled_once_per_container(layout: Layout) -> None:
    """A second start (a restart) loads the filter its first start compiled."""
    install_image(layout)
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit()})
    store = Store(layout, host)
    cid = create(host, store, run_request("busybox"))["id"]
    start(host, store, cid, attach=True)
    assert [argv[0] for argv, _ in steps_of(host)].count("env") == 1
    host.reset()
    start(host, store, cid, attach=True)
    assert "env" not in [argv[0] for argv, _ in steps_of(host)], host.lines
    spec = json.loads(layout.container_init_spec(cid).read_text())
    assert spec["seccomp_filter"] == str(layout.container_run_dir(cid) / "seccomp-a00425fb.bpf")
