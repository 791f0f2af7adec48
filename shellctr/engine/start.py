"""Starting a container: the start recipe (DESIGN §4), once for every mode.

1. the spec init.py will follow is written to the run dir;
2. the container's cgroups are made and its limits written (cgroup.create);
3. its network: a named netns with veths on its bridges (endpoint.attach);
4. the monitor is spawned: it starts `unshare`, which starts init.py as PID 1 in the new
   namespaces; init mounts the rootfs inside the new mount namespace (a crash leaves no
   host mount), pivots into it and execs the command;
5. init's `ready` (or its error) comes back over a socket; the run is recorded.
Attached, this process stays with the container (signals, terminal) and records its end
(lifecycle.end); detached, the monitor's hook does (lifecycle.on_exited).

Under --dry-run the same steps are printed as a script, whose own monitor and hook then do
the rest. This is the hot path of `run`: stdlib only, records as plain dicts.
"""

from __future__ import annotations

import _socket  # the C module: `socket` builds its enums (~4 ms of each start, exec)
import array
import json
import os
import signal
import struct
import sys
from pathlib import Path

from shellctr.core.cmd import path_arg
from shellctr.core.errors import ExecError, ShellctrError
from shellctr.core.host import DEVNULL, Host, Rollback
from shellctr.core.ids import short_id
from shellctr.core.layout import CHECKOUT, Layout
from shellctr.core.store import Store
from shellctr.engine import cgroup, lifecycle
from shellctr.engine.lifecycle import container_group
from shellctr.inside import ENTRY
from shellctr.parts.cgroups import LIMIT_DEFAULTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType

    from shellctr.core.facts import Facts
    from shellctr.core.host import Process
    from shellctr.core.records import ContainerRecord

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
Message = dict[str, object]


def start(host: Host, store: Store, cid: str, attach: bool,
          interactive: bool | None = None, forward: bool = True,
          streams: list[str] | None = None, detach_keys: str | None = None) -> int:
    """Start the container; attached, wait for it and return its exit code, else 0.
    `interactive`: `start -i` keeps stdin open for this run. `forward`: attached, pass
    this process's signals on to the container (else the caller's handlers stay: a
    build's RUN step ends the build on SIGTERM instead). `streams` (`run -a`): the
    ones of stdin, stdout, stderr attached (default: all). `detach_keys`: what detaches
    from an attached -t run (ctrl-p,ctrl-q; 0 is returned, the container runs on).

    Attached with -t, this process relays the terminal while its monitor is set up as a
    detached one's (console socket, attach socket, the `_exited` hook, which records the
    end): the detach keys hand the terminal to the monitor, and this process leaves."""
    layout = store.layout
    container = store.container(cid)
    if interactive is not None:
        container["interactive"] = interactive
    tty = container["tty"]
    parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    # the kernel attaches the sender's pid to each message, translated into our pid ns
    parent.setsockopt(_socket.SOL_SOCKET, _socket.SO_PASSCRED, 1)
    namespaces = shared_namespaces(store, container)  # refused before anything is made
    spec = init_spec(host.facts, layout, container, host.handed_fd(child.fileno()),
                     host.trace)
    if namespaces.get("ipc", "host") != "host":  # --ipc container:: its /dev/shm too
        spec["shm_namespace"] = namespaces["ipc"].removesuffix("/ipc") + "/mnt"
    spec_path = layout.container_init_spec(cid)
    host.step(f"start container {short_id(cid)}")
    host.remove_file(layout.container_exit_file(cid))  # from an earlier run
    lifecycle.record_starting(store, cid)
    host.ensure_dir(layout.container_run_dir(cid), mode=0o700)
    from shellctr.engine import confine

    confine.write_profile(host, layout, container)
    # compiled here once per container (exec loads it too), not by init.py each start
    seccomp = confine.container_filter(host, layout, container, spec)
    if seccomp is not None:
        spec["seccomp_filter"] = path_arg(seccomp)
    host.write_file(spec_path, json.dumps(spec, indent=1) + "\n")
    if container.get("healthcheck"):
        from shellctr.engine import health

        health.reset(host, store, container)  # type: ignore[arg-type]
    # detached with -t: the pty master goes to the monitor, over this socket
    # attached with -t: only if the user detaches (handover)
    console, console_end = (_socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
                            if tty else (None, None))
    handover = tty and attach
    with Rollback(host) as rollback:
        group = container_group(container)
        cgroup.remove(host, group)  # left by a run whose end nobody recorded
        cgroup.create(host, group, rollback, limits_of(container))
        confine_devices(host, container, group)
        if any(m["type"] == "volume" for m in container["mounts"]):
            from shellctr.engine.volume_driver import acquire  # mounted once, shared

            acquire(host, store, cid, container["mounts"], rollback)  # type: ignore[arg-type]
        net = attach_network(host, store, container, rollback)
        if host.dry_run and attach:  # the script's monitor runs in its foreground: beside it
            host.spawn(started_hook(layout, cid), background=True)
        process = spawn_monitor(host, layout, container, spec_path, attach, child,
                                console_end, net, namespaces, streams)
        host.note("inside the new namespaces, init.py (PID 1) does, in-process:")
        host.note(lambda: init_steps(spec))
        child.close()
        if process is None:  # --dry-run: the script's monitor, and its hook, do the rest
            if not attach:  # as this process would: record it running, then leave
                host.run(started_hook(layout, cid))
            elif not handover:  # as this process would: record the end, tear down
                host.run(exited_hook(layout, cid))
            return 0
        message, fds, init_pid = receive_ready(host, parent)
        if "message" in message:
            wait_ended(host, process, layout.container_exit_file(cid), attach and not handover)
            fail(host, store, cid, message)  # raises: the rollback removes the cgroups
    if console is not None and console_end is not None and not handover:
        console_end.close()
        try:
            console.sendmsg([b"t"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                      array.array("i", fds))])
        except OSError:  # the monitor is gone already: the container's end is recorded
            pass
        console.close()
        for fd in fds:
            os.close(fd)
    lifecycle.record_running(store, cid, init_pid, process.pid)
    from shellctr.engine import events

    events.container_event(store, cid, "start")
    if not attach:
        return 0
    log = None if container.get("log_driver") == "none" else layout.container_log(cid)
    if handover and console is not None and console_end is not None:
        console_end.close()
        return attend_terminal(host, process, parent, init_pid, fds, console,
                               container["interactive"], log, store, cid, detach_keys)
    code, late = attend(host, process, parent, init_pid, fds[0] if tty and fds else None,
                        container["interactive"], log, forward)
    if "message" in late:
        return fail(host, store, cid, late)
    lifecycle.end(host, store, cid, code)
    return code


def confine_devices(host: Host, container: ContainerRecord, group: str) -> None:
    """The device cgroup's rules: v1's devices.deny/allow (without it, see
    confine.spec_of: no CAP_MKNOD and a nodev rootfs)."""
    from shellctr.parts.cgroups import device_rules

    rules = device_rules(container.get("devices", []),  # type: ignore[arg-type]
                         container.get("device_cgroup_rules", []),
                         bool(container.get("privileged")))
    cgroup.restrict_devices(host, group, rules)


def attend_terminal(host: Host, process: Process, status: _socket.socket,
                    pid: int, fds: list[int], console: _socket.socket, interactive: bool,
                    log: Path | None, store: Store, cid: str,
                    detach_keys: str | None) -> int:
    """An attached -t run: relay the terminal until the container ends (its monitor's
    hook records that; its code is the hook's), or until the user detaches: then the
    terminal goes to the monitor over the console socket, and the container runs on."""
    from shellctr.engine.terminal import DEFAULT_DETACH_KEYS, parse_detach_keys, relay

    keys = parse_detach_keys(detach_keys if detach_keys is not None else DEFAULT_DETACH_KEYS)
    forward_signals(host, pid)
    try:
        # (init always sends the pty; a stand-in in the unit tests may not)
        if fds and relay(fds[0], interactive=interactive, log=log, keys=keys, close=False):
            console.sendmsg([b"t"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,  # the monitor
                                      array.array("i", fds[:1]))])  # holds it from now on
            return 0
    finally:
        for fd in fds:
            os.close(fd)
        console.close()
    code = process.wait()  # the monitor, then its hook, which recorded the end
    late, _, _ = receive(status, block=False)  # exec itself failed after `ready`
    if "message" in late:
        return fail(host, store, cid, late)
    return code if code >= 0 else 128 - code


def init_steps(spec: dict[str, object]) -> str:
    """What init.py will do, as shell lines (--trace, --dry-run: init is imported only
    to show them, not by every start)."""
    from shellctr.inside.init import Init

    return "\n".join(step.shell() for step in Init(spec).all_steps())


def limits_of(container: ContainerRecord) -> dict[str, object]:
    return {key: container.get(key, default) for key, default in LIMIT_DEFAULTS.items()}


def attach_network(host: Host, store: Store, container: ContainerRecord,
                   rollback: Rollback) -> list[str]:
    """The start recipe's network step: [] for a fresh netns with loopback only (`none`,
    which loads no network code), ["host"], or the `nsenter` prefix joining the netns
    made for it (endpoint.attach)."""
    mode = container["network_mode"]
    if mode == "none":
        return []
    if mode == "host":
        return ["host"]
    from shellctr.engine.endpoint import attach

    return attach(host, store, container, rollback)


# -- what init.py and the monitor are given ---------------------------------------------------
def init_spec(facts: Facts, layout: Layout, container: ContainerRecord,
              status_fd: int | None, trace: bool) -> dict[str, object]:
    """The instructions init.py follows inside the namespaces."""
    cid = container["id"]
    mounts = container["mounts"]
    spec: dict[str, object] = {
        "rootfs": path_arg(layout.container_rootfs(cid)),
        # overlay lists the top layer first; images list the bottom layer first
        "lowerdirs": [path_arg(layout.layer_dir(d)) for d in reversed(container["layers"])],
        "upperdir": path_arg(layout.container_upper(cid)),
        "workdir": path_arg(layout.container_work(cid)),
        "hostname": container["hostname"],
        "etc_files": [[path_arg(layout.container_etc_file(cid, name)), f"/etc/{name}"]
                      for name in ("hostname", "hosts", "resolv.conf")
                      if f"/etc/{name}" not in {m["target"] for m in mounts}],  # -v wins
        "argv": [container["path"], *container["args"]],
        "env": container["env"],
        "cwd": container["working_dir"],
        "user": container["user"],
        "tty": container["tty"],
        "status_fd": status_fd,
        "trace": trace,
        "cgroups": [path_arg(path)
                    for path in cgroup.container_cgroups(facts, container_group(container))],
    }
    if mounts:
        from shellctr.engine.volume import check_propagation, slave_namespace, spec_mounts

        check_propagation(facts, layout, mounts)  # type: ignore[arg-type]  # again: the host's mounts may have changed
        spec["mounts"] = spec_mounts(layout, mounts,  # type: ignore[arg-type]
                                     lambda name: volume_options(facts, layout, name))
        if slave_namespace(mounts):  # type: ignore[arg-type]
            spec["slave_namespace"] = True
    if container["read_only"]:
        spec["readonly_rootfs"] = True
    mode = str(container.get("network_mode", "none"))
    if mode not in ("none", "host") and not mode.startswith("container:"):
        spec["no_router_advertisements"] = True  # its own eth0 on a bridge: accept_ra=0
    if container.get("devices"):  # --device: the nodes init.py makes in /dev
        spec["devices"] = [[d["container"], d["kind"], d["major"], d["minor"]]
                           for d in container.get("devices", [])]
    from shellctr.engine import confine

    spec.update(confine.spec_of(facts, layout, container))
    spec.update(confinement_spec(container))
    if container["tty"]:
        size = caller_window_size()
        if size:
            spec["winsize"] = size
    return spec


def caller_window_size() -> list[int] | None:
    """Our terminal's [rows, cols] (for the container's pty before its command starts)."""
    import fcntl
    import termios

    for fd in (0, 1, 2):
        if os.isatty(fd):
            rows, cols, _, _ = struct.unpack(
                "HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
            return [rows, cols] if rows and cols else None
    return None


def volume_options(facts: Facts, layout: Layout, name: str) -> dict[str, str]:
    """A volume's driver options (volume create -o), from its record."""
    try:
        record = json.loads(facts.read_text(layout.volume_record(name)))
    except (OSError, ValueError):
        return {}
    options: dict[str, str] = record.get("options") or {}
    return options


def confinement_spec(container: ContainerRecord) -> dict[str, object]:
    """The issue-16 part of init's spec (inside/confine.py): only what is set."""
    from shellctr.parts.runflags import ULIMITS

    spec: dict[str, object] = {}
    if container.get("init"):
        spec["init_source"] = path_arg(monitor_binary())  # static: runs in any root
    if container.get("ulimits"):
        spec["ulimits"] = [{**item, "resource": ULIMITS[item["name"]]}
                           for item in container["ulimits"]]
    if container.get("shm_size"):
        spec["shm_size"] = container["shm_size"]
    if container.get("sysctls"):
        spec["sysctls"] = container["sysctls"]
    if container.get("group_add"):
        spec["group_add"] = container["group_add"]
    if container.get("uts_mode"):
        spec["uts_mode"] = container["uts_mode"]
    ipc = container.get("ipc_mode") or "private"
    if ipc == "host":
        spec["shm_source"] = "/dev/shm"
    return spec


def shared_namespaces(store: Store, container: ContainerRecord) -> dict[str, str]:
    """--ipc/--pid/--uts: namespace -> "host", or the /proc/PID/ns path of the running
    container whose namespace this one joins."""
    found: dict[str, str] = {}
    for kind, key in (("ipc", "ipc_mode"), ("pid", "pid_mode"), ("uts", "uts_mode")):
        mode = str(container.get(key) or "")
        if mode == "host":
            found[kind] = "host"
        elif mode.startswith("container:"):
            other = mode.partition(":")[2]
            try:
                state = lifecycle.reconcile(store, other)
            except FileNotFoundError:
                raise ShellctrError(f"cannot join the {kind} namespace of container "
                                    f"{short_id(other)}: it was removed",
                                    "create this container again") from None
            if state["status"] != "running":
                raise ShellctrError(f"cannot join the {kind} namespace of a non running "
                                    f"container {short_id(other)}", "start it first")
            found[kind] = f"/proc/{state['pid']}/ns/{kind}"
    return found




def unshare_argv(spec_path: Path, net: list[str] | None = None,
                 slave: bool = False, namespaces: dict[str, str] | None = None) -> list[str]:
    """The command that makes the namespaces and runs init.py as their PID 1.

    `net` (attach_network): [] a new network namespace; ["host"] the host's; else the
    `nsenter --net=...` that joins the container's before `unshare`. `slave`: a bind
    asks for [r]slave propagation (init.py then makes every other bind private).
    `namespaces` (shared_namespaces): the ipc, pid, uts namespaces shared with the host
    (no new one) or joined (`nsenter --ipc=/proc/PID/ns/ipc`, before `unshare`).
    """
    net = net or []
    namespaces = namespaces or {}
    joined = net if net != ["host"] else []
    enter = [f"--{kind}={path}" for kind, path in namespaces.items() if path != "host"]
    if enter:  # one nsenter for the network and the others
        # --no-fork: a joined pid namespace takes in only the children of what runs next
        # (the --reap role's child, init.py), never a process showing host paths
        joined = ["nsenter", *joined[1:-1], *enter,
                  *(["--no-fork"] if "pid" in namespaces else []), "--"]
    new = [f"--{kind}" for kind in ("uts", "ipc") if kind not in namespaces]
    return [
        *joined,
        "unshare",
        "--mount", *new, *([] if net else ["--net"]),
        *([] if "pid" in namespaces else ["--pid"]),
        # mounts made inside never propagate to the host; slave: the host's still come in
        "--propagation", "slave" if slave else "private",
        # not --fork: util-linux 2.38's unshare exits 1 when its child dies of a signal;
        # the monitor's --reap role forks PID 1 instead and hands on its exact status
        "--", path_arg(monitor_binary()), "--reap", "--",
        # -I: no environment, no user paths; -S: no site-packages: the step is stdlib only
        sys.executable, "-I", "-S", "-c", ENTRY,
        path_arg(CHECKOUT), path_arg(spec_path),
    ]


def exited_hook(layout: Layout, cid: str) -> list[str]:
    """`shellctr _exited ID`: records a detached container's end (lifecycle.on_exited)."""
    return [path_arg(CHECKOUT / "bin" / "shellctr"), "--root", path_arg(layout.root),
            "--runroot", path_arg(layout.runroot), "_exited", cid]


def started_hook(layout: Layout, cid: str) -> list[str]:
    """`shellctr _started ID`: in a --dry-run script, records the container running once
    the host shows its PID 1 (containers.on_started): nobody hears init.py's `ready`."""
    return [*exited_hook(layout, cid)[:-2], "_started", cid]


def monitor_argv(layout: Layout, container: ContainerRecord, spec_path: Path, attach: bool,
                 console_fd: int | None = None, net: list[str] | None = None,
                 namespaces: dict[str, str] | None = None) -> list[str]:
    """shellctr-monitor, the container's small parent, around the unshare command.

    Attached (foreground), it also copies the output to our terminal and this process
    records the end; detached, it runs `shellctr _exited ID` when the container ends,
    which records the end and carries out --rm and the restart policy. Detached with
    -i, it keeps the container's stdin open; with -t, it takes over its terminal; and
    it listens on `attach.sock` in the run dir for `shellctr attach`.
    """
    cid = container["id"]
    hook = exited_hook(layout, cid)
    detached = ["--attach-socket", path_arg(layout.container_run_dir(cid)),  # `attach`
                "--then", str(len(hook)), *hook]
    if container["tty"] and console_fd is not None:
        detached = ["--console-fd", str(console_fd), *detached]
    elif container["interactive"] and not container["tty"]:
        detached = ["--keep-stdin", *detached]
    if attach:  # attached -t: also set up as a detached one, for a detach (handover)
        detached = ["--attach", *(detached if container["tty"] and console_fd is not None
                                  else [])]
    return [
        path_arg(monitor_binary()),
        *detached,
        *log_and_health_args(layout, container),
        path_arg(layout.container_exit_file(cid)), path_arg(layout.container_log(cid)),
        "--", *unshare_argv(spec_path, net, slave_namespace(container), namespaces),
    ]


def log_and_health_args(layout: Layout, container: ContainerRecord) -> list[str]:
    """The monitor's --no-log / --log-rotate (--log-driver, --log-opt) and --health (the
    container's health check, run by the monitor's `_health` hook) words."""
    words: list[str] = []
    driver = container.get("log_driver") or "json-file"
    if driver == "none":
        words.append("--no-log")
    elif container.get("log_opts"):
        from shellctr.parts.runflags import log_limits

        size, files = log_limits(container["log_opts"])
        if size:
            words += ["--log-rotate", str(size), str(files)]
    health = container.get("healthcheck")
    if health and health["Test"][0] != "NONE":
        from shellctr.parts.runflags import health_settings

        interval_ms = max(1, health_settings(health)["Interval"] // 1_000_000)
        hook = [*exited_hook(layout, container["id"])[:-2], "_health", container["id"]]
        words += ["--health", str(interval_ms), str(len(hook)), *hook]
    return words


def slave_namespace(container: ContainerRecord) -> bool:
    """volume.slave_namespace, without importing volume when there are no mounts."""
    if not container["mounts"]:
        return False
    from shellctr.engine.volume import slave_namespace as any_slave

    return any_slave(container["mounts"])  # type: ignore[arg-type]


def monitor_binary() -> Path:
    """The compiled monitor (`make` builds it from shellctr/monitor.c)."""
    binary = CHECKOUT / "build" / "shellctr-monitor"
    if not binary.exists():
        raise ShellctrError(f"{binary} is missing", "run make to build it")
    return binary


def spawn_monitor(host: Host, layout: Layout, container: ContainerRecord, spec_path: Path,
                  attach: bool, child: _socket.socket, console: _socket.socket | None = None,
                  net: list[str] | None = None, namespaces: dict[str, str] | None = None,
                  streams: list[str] | None = None) -> Process | None:
    """Start the monitor, which starts unshare, which starts init.py (None: --dry-run).
    `streams` (`run -a`): only these of ours are the container's (the rest is logged)."""
    tty, interactive = container["tty"], container["interactive"]
    quiet = DEVNULL
    wanted = {s.lower() for s in streams} if streams else {"stdin", "stdout", "stderr"}
    console_fd = console.fileno() if console is not None else None
    return host.spawn(
        monitor_argv(layout, container, spec_path, attach, console_fd, net, namespaces),
        background=not attach,  # detached: it outlives us
        pass_fds=(child.fileno(), *([console_fd] if console_fd is not None else [])),
        # attached -i without -t: the container reads our stdin; -t: its own pty
        stdin=None if attach and interactive and not tty and "stdin" in wanted else quiet,
        stdout=None if attach and "stdout" in wanted else quiet,
        stderr=None if attach and "stderr" in wanted else quiet,
        start_new_session=True,  # terminal signals reach us only, and we forward them
    )  # (the monitor goes to / itself: it must not keep the caller's directory busy)


# -- talking with init.py -------------------------------------------------------------------
def receive(sock: _socket.socket, block: bool = True) -> tuple[Message, list[int], int]:
    """One message from init.py: (json, passed fds, sender's pid)."""
    sock.setblocking(block)
    try:
        data, ancillary, _, _ = sock.recvmsg(
            65536, _socket.CMSG_SPACE(4) + _socket.CMSG_SPACE(struct.calcsize("iII")))
    except BlockingIOError:
        return {}, [], 0
    fds: list[int] = []
    pid = 0
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += array.array("i", payload[: len(payload) - len(payload) % 4]).tolist()
        elif level == _socket.SOL_SOCKET and kind == _socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    return (json.loads(data) if data else {}), fds, pid


def receive_ready(host: Host, sock: _socket.socket) -> tuple[Message, list[int], int]:
    """Wait for init.py's `ready` or error, showing its trace lines as they come."""
    while True:
        message, fds, pid = receive(sock)
        if not message:  # it ended without a word: a crash, its traceback is on stderr
            return {"message": "the container's init ended before starting the command",
                    "code": 125}, fds, pid
        if "trace" not in message:
            return message, fds, pid
        host.err.write(f"{message['trace']}\n")
        host.err.flush()


def exec_error(message: Message) -> ExecError:
    """init.py's error message as the error shellctr reports (125, 126 or 127)."""
    return ExecError(str(message["message"]), int(str(message.get("code", 125))))


def fail(host: Host, store: Store, cid: str, message: Message) -> int:
    """init.py could not start the command: record the end, raise its error."""
    error = exec_error(message)
    lifecycle.end(host, store, cid, error.exit_code, error.message)
    raise error


def wait_ended(host: Host, process: Process, exit_file: Path,
               attach: bool) -> None:
    """Wait until the container that failed to start has ended.

    Detached, its monitor does not exit: it execs the `_exited` hook, which waits for
    this process to record the end, so wait for the monitor's exit file instead.
    """
    import time

    if attach:
        process.wait()
        return
    while not host.facts.exists(exit_file) and process.poll() is None:
        time.sleep(0.01)


# -- staying with an attached process --------------------------------------------------------
def attend(host: Host, process: Process, status: _socket.socket, pid: int,
           pty_master: int | None, interactive: bool, log: Path | None = None,
           forward: bool = True, keys: bytes = b"") -> tuple[int, Message]:
    """Stay with an attached process until it ends: forward signals to `pid` (unless not
    `forward`), relay its terminal. Returns its exit code and init.py's late error (exec
    failed), if any. `keys` (`exec -it --detach-keys`): typed, they leave the process
    running (0): a child of ours, in a session of its own, holds its terminal until it ends."""
    if forward:
        forward_signals(host, pid)
    if pty_master is not None:
        from shellctr.engine.terminal import relay
        if relay(pty_master, interactive=interactive, log=log, keys=keys, close=False):
            hold_terminal(pty_master)
            return 0, {}
        os.close(pty_master)
    code = process.wait()
    code = code if code >= 0 else 128 - code  # killed by signal N: 128+N, as a shell says
    late, _, _ = receive(status, block=False)  # exec itself failed after `ready`
    return code, late


def hold_terminal(master: int) -> None:
    """After a detach from `exec -it`: a forked child keeps the pty's master open (its
    output read and dropped, as Docker's daemon drops a detached exec's) until the
    process ends, so that it is not hung up; this process goes on, and returns."""
    if os.fork() == 0:
        try:
            os.setsid()
            for fd in (0, 1, 2):  # nothing of the caller's terminal stays with it
                os.dup2(os.open(os.devnull, os.O_RDWR), fd)
            while os.read(master, 65536):
                pass
        except OSError:  # EIO: every process holding the terminal has ended
            pass
        finally:
            os._exit(0)
    os.close(master)


def forward_signals(host: Host, pid: int) -> None:
    """Pass the signals this process gets on to the container's PID 1 (Docker's sig-proxy)."""
    def forward(signum: int, frame: FrameType | None) -> None:
        host.kill(pid, signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)

