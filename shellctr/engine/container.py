"""Creating a container and running it in the foreground: the start recipe.

Directories and records are written under the lock; then `unshare` makes the
namespaces and runs init.py, which mounts the rootfs inside the new mount namespace
(so a crash leaves no host mount), pivots into it and execs the command as PID 1.
This process is the container's monitor: it relays the terminal, forwards signals
and records the exit code.

This is the hot path of `run`, so it is stdlib only: records are plain dicts shaped
like the pydantic models in state.py (the unit tests hold them to those models).
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

from shellctr.core.cmd import path_arg
from shellctr.core.errors import Conflict, ExecError, NotFound, ShellctrError
from shellctr.core.facts import Facts, alive, process_start
from shellctr.core.host import Host, Rollback
from shellctr.core.ids import check_name, generate_name, new_id, short_id
from shellctr.core.layout import CHECKOUT, Layout
from shellctr.core.store import SCHEMA_VERSION, Record, Store, now_iso
from shellctr.engine import cgroup
from shellctr.inside import init as init_step
from shellctr.parts import cgroups, netopts
from shellctr.parts.cgroups import MIN_MEMORY, parse_parent, parse_size
from shellctr.parts.reference import find_image_record

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from types import FrameType
    from typing import NoReturn

    from shellctr.engine.layers import PreparedLayer

DEFAULT_PATH = init_step.DEFAULT_PATH
TOP = CHECKOUT
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
HOSTS = netopts.LOCALHOST  # /etc/hosts before the network is known (netopts.hosts_text)


class RunOptions:
    """What `run` / `create` were asked for."""

    def __init__(
        self, image: str, command: list[str] | None = None, *, name: str | None = None,
        env: list[str] | None = None, env_files: list[str] | None = None,
        workdir: str | None = None, hostname: str | None = None,
        entrypoint: str | None = None, user: str | None = None, tty: bool = False,
        interactive: bool = False, auto_remove: bool = False, restart: str = "no",
        labels: list[str] | None = None, memory: str | None = None,
        limits: dict[str, str | bool | None] | None = None, cgroup_parent: str | None = None,
        volumes: list[str] | None = None, mounts: list[str] | None = None,
        tmpfs: list[str] | None = None, read_only: bool = False,
        volumes_from: list[str] | None = None,
        network: dict[str, object] | None = None,
    ) -> None:
        self.image, self.command = image, command or []
        self.name, self.hostname, self.user = name, hostname, user
        self.env, self.env_files = env or [], env_files or []
        self.workdir, self.entrypoint = workdir, entrypoint
        self.tty, self.interactive, self.auto_remove = tty, interactive, auto_remove
        self.restart, self.labels, self.memory = restart, labels or [], memory
        self.limits = limits or {}  # the other limit flags, as typed (cgroup.parse_limits)
        self.cgroup_parent = cgroup_parent
        # storage: -v, --mount, --tmpfs, --read-only, --volumes-from (volume.collect)
        self.volumes, self.mounts, self.tmpfs = volumes or [], mounts or [], tmpfs or []
        self.read_only, self.volumes_from = read_only, volumes_from or []
        self.network = network or {}  # the network flags, as typed (netopts.network_config)


# -- create ----------------------------------------------------------------------------
def parse_env(options: RunOptions) -> dict[str, str]:
    """`--env-file` then `-e`, as Docker reads them; `-e NAME` takes the caller's value."""
    pairs: dict[str, str] = {}
    lines: list[str] = []
    for env_file in options.env_files:
        try:
            with open(env_file, encoding="utf-8") as stream:
                text = stream.read()
        except OSError as err:
            raise NotFound(f"cannot read env file {env_file}: {err.strerror}") from err
        # as Docker: leading blanks go, trailing ones are part of the value
        lines += [line.lstrip() for line in text.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    for item in lines + options.env:
        key, sep, value = item.partition("=")
        if not key or key != key.strip() or " " in key:
            raise ShellctrError(
                f"invalid environment variable: {item!r}", "use -e NAME=VALUE or -e NAME"
            )
        if sep:
            pairs[key] = value
        elif key in os.environ:  # `-e NAME`: pass the caller's NAME, if set
            pairs[key] = os.environ[key]
    return pairs


def build_env(options: RunOptions, image_env: list[str], hostname: str) -> list[str]:
    """PATH, HOSTNAME, (TERM), the image's ENV, then -e / --env-file; nothing else."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    if options.tty:
        env["TERM"] = "xterm"
    env.update(item.split("=", 1) for item in image_env if "=" in item)  # type: ignore[misc]
    env.update(parse_env(options))
    return [f"{key}={value}" for key, value in env.items()]


def parse_restart(value: str, auto_remove: bool) -> tuple[str, int]:
    """`--restart no|on-failure[:N]|always|unless-stopped` -> (policy, max retries)."""
    policy, colon, count = value.partition(":")
    if policy not in ("no", "on-failure", "always", "unless-stopped") or (
            colon and (policy != "on-failure" or not count.isdigit())):  # `on-failure:` too
        raise ShellctrError(f"invalid restart policy {value!r}",
                            "use no, on-failure[:N], always or unless-stopped")
    if auto_remove and policy != "no":
        raise ShellctrError("conflicting options: --restart and --rm",
                            "a container removed when it exits cannot be restarted")
    return policy, int(count or 0)


def parse_memory(value: str | None) -> int:
    """`-m`: a size (`512m`), at least Docker's minimum; None: no limit."""
    if value is None:
        return 0
    memory = parse_size(value)
    if 0 < memory < MIN_MEMORY:  # 0: no limit, as Docker takes it
        raise ShellctrError(f"memory limit {value} is too small",
                            "the minimum memory limit allowed is 6MB")
    return memory


def parse_labels(items: list[str]) -> dict[str, str]:
    """`-l KEY=VALUE` (or `-l KEY`, an empty value)."""
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise ShellctrError(f"invalid label {item!r}", "use -l KEY=VALUE")
        labels[key] = value
    return labels


def build_command(options: RunOptions, entrypoint: list[str] | None,
                  cmd: list[str] | None) -> tuple[list[str], list[str]]:
    """(Entrypoint, Cmd) as Docker combines them: `--entrypoint` drops the image's CMD."""
    if options.entrypoint is not None:
        entry = [options.entrypoint] if options.entrypoint else []
        args = options.command
    else:
        entry, args = list(entrypoint or []), options.command or list(cmd or [])
    if not entry + args:
        raise ShellctrError("no command specified", "give a command after the image name")
    return entry, args


def create(host: Host, store: Store, options: RunOptions) -> Record:
    """Write a new container's directories and records; nothing runs yet."""
    image = find_image_record(store, options.image)
    image_config = image["config"]
    if options.name is not None:
        check_name(options.name)
    workdir = options.workdir or image_config["WorkingDir"] or "/"
    if not workdir.startswith("/"):
        raise ShellctrError(f"the working directory {workdir!r} is not absolute",
                            "use an absolute path with -w")
    entrypoint, cmd = build_command(options, image_config["Entrypoint"], image_config["Cmd"])
    argv = entrypoint + cmd
    restart_policy, restart_max = parse_restart(options.restart, options.auto_remove)
    labels = parse_labels(options.labels)
    network = netopts.network_config(options.network, image_config)
    if netopts.is_bridged(network["network_mode"]) and \
            network["network_mode"] != netopts.DEFAULT_NETWORK:
        from shellctr.engine.network import require_network  # refused now, as Docker does
        require_network(store, network["network_mode"])
    limits = cgroup.parse_limits(host.facts, {"memory": options.memory, **options.limits})
    parent = parse_parent(options.cgroup_parent) if options.cgroup_parent else ""
    mounts: list[Record] = []
    if (options.volumes or options.mounts or options.tmpfs or options.volumes_from
            or image_config.get("Volumes") or image_config.get("volumes")):
        from shellctr.engine import volume  # checked here, before anything is created

        mounts = volume.collect(store, options.volumes, options.mounts, options.tmpfs,
                                options.volumes_from, image_config)
        volume.check_propagation(store.layout, mounts)
    layout = store.layout
    store.prepare()
    extracted: list[PreparedLayer] = []  # (layers is not imported on the run path)
    with Rollback(host) as scratch:  # a committed layer's files, extracted outside the lock
        if not all(host.exists(layout.layer_dir(d)) or not layout.blob(d).is_file()
                   for d in image["layers"]):
            from shellctr.engine.layers import prepare_layer_dirs  # a committed image's first use

            extracted = prepare_layer_dirs(host, layout, image["layers"], scratch)
        with store.lock(), Rollback(host) as rollback:
            if not layout.image_file(image["id"]).exists():  # an rmi got the lock first
                raise NotFound(f"image {options.image} was removed meanwhile",
                               "load or pull it again")
            names = store.container_names()
            if options.name is not None and options.name in names.values():
                holder = next(cid for cid, name in names.items() if name == options.name)
                raise Conflict(
                    f'the container name "{options.name}" is already in use by container '
                    f"{short_id(holder)}",
                    "remove that container or choose another name",
                )
            if extracted:  # under the lock: into place, unless another create was first
                from shellctr.engine.layers import publish_layer

                for layer in extracted:
                    publish_layer(host, layout, layer, rollback)
            cid = new_id()
            hostname = options.hostname or short_id(cid)
            config: Record = {  # shaped like state.ContainerConfig
                "schema_version": SCHEMA_VERSION,
                "id": cid,
                "name": options.name or generate_name(names.values()),
                "created": now_iso(),
                "image": options.image,
                "image_id": image["id"],
                "layers": image["layers"],
                "path": argv[0],
                "args": argv[1:],
                "entrypoint": entrypoint,
                "cmd": cmd,
                "env": build_env(options, image_config["Env"], hostname),
                "working_dir": workdir,
                "user": options.user if options.user is not None else image_config["User"],
                "hostname": hostname,
                "tty": options.tty,
                "interactive": options.interactive,
                "auto_remove": options.auto_remove,
                **limits,  # memory, cpu_shares... (cgroup.LIMIT_DEFAULTS)
                "cgroup_parent": parent,
                "restart_policy": restart_policy,
                "restart_max": restart_max,
                "labels": {**(image_config.get("Labels") or {}), **labels},  # -l wins
                "stop_signal": image_config.get("StopSignal") or "",
                "mounts": mounts,  # volume.mount_record; anonymous volumes named below
                "read_only": options.read_only,
                **network,  # network_mode, networks, ports... (netopts.network_config)
            }
            host.step(f"create container {short_id(cid)} ({config['name']})")
            if mounts:  # volumes created on first use, missing -v host dirs
                from shellctr.engine import volume

                volume.prepare(host, store, mounts, rollback)
            # the undo of this first mkdir removes everything below it
            host.mkdir(layout.container_dir(cid), mode=0o700, rollback=rollback)
            for path in (layout.container_upper(cid), layout.container_work(cid),
                         layout.container_rootfs(cid)):
                host.mkdir(path)
            host.write_file(layout.container_etc_file(cid, "hostname"), hostname + "\n")
            if not netopts.is_bridged(network["network_mode"]):  # else: written at start
                host.write_file(layout.container_etc_file(cid, "hosts"),
                                netopts.hosts_text(config))
                resolv = host.facts.resolv_conf()  # on the host network, its resolvers work
                if network["network_mode"] != "host":
                    resolv = netopts.without_loopback_resolvers(resolv)
                host.write_file(layout.container_etc_file(cid, "resolv.conf"),
                                netopts.resolv_text(config, resolv))
            store.write(layout.container_config(cid), config)
            store.write(layout.container_state(cid), state_record("created"))
    return config


# -- network flags (issue 5) --------------------------------------------------------------
def attach_network(host: Host, store: Store, config: Record, rollback: Rollback) -> list[str]:
    """The start recipe's network step: [] for a fresh netns with loopback only (`none`,
    which loads no network code), ["host"], or the `nsenter` prefix joining the netns
    made for it (network.attach)."""
    mode = config.get("network_mode", "none")  # containers created before networking
    if mode == "none":
        return []
    if mode == "host":
        return ["host"]
    from shellctr.engine.network import attach

    return attach(host, store, config, rollback)


def release_network(host: Host, store: Store, config: Record) -> None:
    """The container has ended: its endpoints go (Docker keeps no address for it)."""
    if netopts.is_bridged(config.get("network_mode", "none")):
        from shellctr.engine.network import release

        release(host, store, config["id"])


def state_record(status: str, **fields: object) -> Record:
    """A state record (shaped like state.ContainerState)."""
    record: Record = {
        "schema_version": SCHEMA_VERSION, "status": status, "pid": 0, "pid_start": 0,
        "monitor_pid": 0, "monitor_start": 0, "exit_code": 0, "error": "",
        "started_at": None, "finished_at": None, "oom_killed": False, "restart_count": 0,
        "stopping": False,
    }
    record.update(fields)
    return record


# -- start -----------------------------------------------------------------------------
def init_spec(facts: Facts, layout: Layout, config: Record, status_fd: int | None,
              trace: bool) -> dict[str, object]:
    """The instructions init.py follows inside the namespaces."""
    cid = config["id"]
    mounts = config.get("mounts") or []
    spec: dict[str, object] = {
        "rootfs": path_arg(layout.container_rootfs(cid)),
        # overlay lists the top layer first; images list the bottom layer first
        "lowerdirs": [path_arg(layout.layer_dir(d)) for d in reversed(config["layers"])],
        "upperdir": path_arg(layout.container_upper(cid)),
        "workdir": path_arg(layout.container_work(cid)),
        "hostname": config["hostname"],
        "etc_files": [[path_arg(layout.container_etc_file(cid, name)), f"/etc/{name}"]
                      for name in ("hostname", "hosts", "resolv.conf")
                      if f"/etc/{name}" not in {m["target"] for m in mounts}],  # -v wins
        "argv": [config["path"], *config["args"]],
        "env": config["env"],
        "cwd": config["working_dir"],
        "user": config["user"],
        "tty": config["tty"],
        "status_fd": status_fd,
        "trace": trace,
        "cgroups": [path_arg(path) for path in cgroup.container_cgroups(facts, group_of(config))],
    }
    if mounts:
        from shellctr.engine.volume import check_propagation, slave_namespace, spec_mounts

        check_propagation(layout, mounts)  # again: the host's mounts may have changed
        spec["mounts"] = spec_mounts(layout, mounts)
        if slave_namespace(mounts):
            spec["slave_namespace"] = True
    if config.get("read_only"):
        spec["readonly_rootfs"] = True
    return spec


def unshare_argv(spec_path: Path, net: list[str] | None = None,
                 slave: bool = False) -> list[str]:
    """The command that makes the namespaces and runs init.py as their PID 1.

    `net` (attach_network): [] a new network namespace; ["host"] the host's; else the
    `nsenter --net=...` that joins the container's before `unshare`. `slave`: a bind
    asks for [r]slave propagation (init.py then makes every other bind private).
    """
    net = net or []
    joined = net if net != ["host"] else []
    return [
        *joined,
        "unshare",
        "--mount", "--uts", "--ipc", *([] if net else ["--net"]), "--pid",
        # mounts made inside never propagate to the host; slave: the host's still come in
        "--propagation", "slave" if slave else "private",
        # not --fork: util-linux 2.38's unshare exits 1 when its child dies of a signal;
        # the monitor's --reap role forks PID 1 instead and hands on its exact status
        "--", path_arg(monitor_binary()), "--reap", "--",
        # -I: no environment, no user paths; -S: no site-packages: the step is stdlib only
        sys.executable, "-I", "-S", "-c", init_step.ENTRY,
        path_arg(TOP), path_arg(spec_path),
    ]


def monitor_argv(layout: Layout, config: Record, spec_path: Path, attach: bool,
                 console_fd: int | None = None, net: list[str] | None = None) -> list[str]:
    """shellctr-monitor, the container's small parent, around the unshare command.

    Attached (foreground), it also copies the output to our terminal and this process
    records the end; detached, it runs `shellctr _exited ID` when the container ends,
    which records the end and carries out --rm and the restart policy. Detached with
    -i, it keeps the container's stdin open; with -t, it takes over its terminal; and
    it listens on `attach.sock` in the run dir for `shellctr attach`.
    """
    cid = config["id"]
    hook = [path_arg(TOP / "bin" / "shellctr"), "--root", path_arg(layout.root),
            "--runroot", path_arg(layout.runroot), "_exited", cid]
    detached = ["--attach-socket", path_arg(layout.container_run_dir(cid)),  # `attach`
                "--then", str(len(hook)), *hook]
    if config["tty"] and console_fd is not None:
        detached = ["--console-fd", str(console_fd), *detached]
    elif config["interactive"] and not config["tty"]:
        detached = ["--keep-stdin", *detached]
    return [
        path_arg(monitor_binary()),
        *(["--attach"] if attach else detached),
        path_arg(layout.container_exit_file(cid)), path_arg(layout.container_log(cid)),
        "--", *unshare_argv(spec_path, net, slave_namespace(config.get("mounts") or [])),
    ]


def slave_namespace(mounts: list[Record]) -> bool:
    """volume.slave_namespace, without importing volume when there are no mounts."""
    if not mounts:
        return False
    from shellctr.engine.volume import slave_namespace as any_slave

    return any_slave(mounts)


def monitor_binary() -> Path:
    """The compiled monitor (`make` builds it from shellctr/monitor.c)."""
    binary = TOP / "build" / "shellctr-monitor"
    if not binary.exists():
        raise ShellctrError(f"{binary} is missing", "run make to build it")
    return binary


def start(host: Host, store: Store, config: Record, attach: bool) -> int:
    """Start the container; attached, wait for it and return its exit code, else 0."""
    layout, cid = store.layout, config["id"]
    tty, interactive = config["tty"], config["interactive"]
    if host.dry_run:
        return plan_start(host, store, config, attach)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # the kernel attaches the sender's pid to each message, translated into our pid ns
    parent.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    spec = init_spec(host.facts, layout, config, child.fileno(), host.trace)
    spec_path = layout.container_init_spec(cid)
    host.step(f"start container {short_id(cid)}")
    host.remove_file(layout.container_exit_file(cid))  # from an earlier run
    with store.lock():  # "created" until init is ready: a quick end waits for "running"
        previous = store.state_record(cid)
        if previous["status"] != "created":  # a restart
            store.write(layout.container_state(cid), state_record(
                "created", restart_count=previous.get("restart_count", 0)))
    host.ensure_dir(layout.container_run_dir(cid), mode=0o700)
    host.write_file(spec_path, json.dumps(spec, indent=1) + "\n")
    # detached with -t: the pty master goes to the monitor, over this socket
    console, console_end = (socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                            if tty and not attach else (None, None))
    with Rollback(host) as rollback:
        cgroup.remove(host, group_of(config))  # left by a run whose end nobody recorded
        cgroup.create(host, group_of(config), rollback, limits_of(config))
        net = attach_network(host, store, config, rollback)
        process = spawn_monitor(host, layout, config, spec_path, attach, child, console_end,
                                net)
        child.close()
        message, fds, init_pid = receive_ready(host, parent)
        if "message" in message:
            wait_ended(process, layout.container_exit_file(cid), attach)
            fail(host, store, cid, message)  # raises: the rollback removes the cgroups
    if console is not None and console_end is not None:
        console_end.close()
        try:
            socket.send_fds(console, [b"t"], fds)
        except OSError:  # the monitor is gone already: the container's end is recorded
            pass
        console.close()
        for fd in fds:
            os.close(fd)
    with store.lock():
        previous = store.state_record(cid)
        store.write(layout.container_state(cid), state_record(
            "running", pid=init_pid, pid_start=process_start(init_pid) or 0,
            monitor_pid=process.pid, monitor_start=process_start(process.pid) or 0,
            started_at=now_iso(), restart_count=previous.get("restart_count", 0)))
    if not attach:
        return 0
    code, late = attend(host, process, parent, init_pid, fds[0] if tty and fds else None,
                        interactive, layout.container_log(cid))
    if "message" in late:
        return fail(host, store, cid, late)
    finish(host, store, cid, code)
    return code


def attend(host: Host, process: subprocess.Popen[bytes], status: socket.socket, pid: int,
           pty_master: int | None, interactive: bool, log: Path | None = None,
           ) -> tuple[int, dict[str, object]]:
    """Stay with an attached process until it ends: forward signals to `pid`, relay its
    terminal. Returns its exit code and init.py's late error (exec failed), if any."""
    forward_signals(host, pid)
    if pty_master is not None:
        from shellctr.engine.terminal import relay
        relay(pty_master, interactive=interactive, log=log)
    code = process.wait()
    code = code if code >= 0 else 128 - code  # killed by signal N: 128+N, as a shell says
    late, _, _ = receive(status, block=False)  # exec itself failed after `ready`
    return code, late


def group_of(config: Record) -> str:
    """The container's cgroup path (`shellctr/<id>`, or below its --cgroup-parent)."""
    return cgroups.group_of(config["id"], config.get("cgroup_parent", ""))


def limits_of(config: Record) -> dict[str, object]:
    """The container's limits (records older than a limit lack its key: no limit)."""
    return {key: config.get(key, default) for key, default in cgroups.LIMIT_DEFAULTS.items()}


def wait_ended(process: subprocess.Popen[bytes], exit_file: Path, attach: bool) -> None:
    """Wait until the container that failed to start has ended.

    Detached, its monitor does not exit: it execs the `_exited` hook, which waits for
    this process to record the end, so wait for the monitor's exit file instead.
    """
    import time

    if attach:
        process.wait()
        return
    while not exit_file.exists() and process.poll() is None:
        time.sleep(0.01)


def spawn_monitor(host: Host, layout: Layout, config: Record, spec_path: Path, attach: bool,
                  child: socket.socket, console: socket.socket | None = None,
                  net: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start the monitor, which starts unshare, which starts init.py."""
    import subprocess

    tty, interactive = config["tty"], config["interactive"]
    quiet = subprocess.DEVNULL
    console_fd = console.fileno() if console is not None else None
    process = host.spawn(
        monitor_argv(layout, config, spec_path, attach, console_fd, net),
        pass_fds=(child.fileno(), *([console_fd] if console_fd is not None else [])),
        # attached -i without -t: the container reads our stdin; -t: its own pty
        stdin=None if attach and interactive and not tty else quiet,
        stdout=None if attach else quiet,
        stderr=None if attach else quiet,
        start_new_session=True,  # terminal signals reach us only, and we forward them
        cwd="/",  # the monitor must not keep the caller's directory busy
    )
    assert process is not None  # None only under --dry-run
    return process


def receive_ready(host: Host, sock: socket.socket) -> tuple[dict[str, object], list[int], int]:
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


def plan_start(host: Host, store: Store, config: Record, attach: bool) -> int:
    """--dry-run: the start as a script (init.py's own steps shown as comments)."""
    layout, cid = store.layout, config["id"]
    spec = init_spec(host.facts, layout, config, status_fd=None, trace=False)
    spec_path = layout.container_init_spec(cid)
    host.step(f"start container {short_id(cid)}")
    host.ensure_dir(layout.container_run_dir(cid), mode=0o700)
    host.write_file(spec_path, json.dumps(spec, indent=1) + "\n")
    # init.py joins the cgroups its spec names: the script must make them, as start does
    cgroup.create(host, group_of(config), Rollback(host), limits_of(config))
    net = attach_network(host, store, config, Rollback(host))
    if attach:
        host.spawn(monitor_argv(layout, config, spec_path, attach=True, net=net))
    else:  # in a session of its own, as start runs it; its hook records the end
        host.spawn(["setsid", "--fork",
                    *monitor_argv(layout, config, spec_path, attach=False, net=net)])
    host.note("inside the new namespaces, init.py (PID 1) does, in-process:")
    host.note("\n".join(step.shell() for step in init_step.Init(spec).all_steps()))
    if not attach:
        return 0
    cgroup.remove(host, group_of(config))  # the attached monitor returned: the container ended
    release_network(host, store, config)
    if config["auto_remove"]:
        host.step(f"remove container {short_id(cid)} (--rm)")
        store.remove_container(cid)
        remove_volumes(host, store, config)
    return 0


def fail(host: Host, store: Store, cid: str, message: dict[str, object]) -> NoReturn:
    """init.py could not start the command: record it and raise its error (125/126/127)."""
    error = exec_error(message)
    finish(host, store, cid, error.exit_code, error.message)
    raise error


def exec_error(message: dict[str, object]) -> ExecError:
    """init.py's error message as the error shellctr reports (125, 126 or 127)."""
    return ExecError(str(message["message"]), int(str(message.get("code", 125))))


def receive(sock: socket.socket, block: bool = True) -> tuple[dict[str, object], list[int], int]:
    """One message from init.py: (json, passed fds, sender's pid)."""
    sock.setblocking(block)
    try:
        data, ancillary, _, _ = sock.recvmsg(
            65536, socket.CMSG_SPACE(4) + socket.CMSG_SPACE(struct.calcsize("iII")))
    except BlockingIOError:
        return {}, [], 0
    fds: list[int] = []
    pid = 0
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += array.array("i", payload[: len(payload) - len(payload) % 4]).tolist()
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    return (json.loads(data) if data else {}), fds, pid


def finish(host: Host, store: Store, cid: str, code: int, error: str = "") -> None:
    """Record the exit of an attached container; carry out --rm."""
    layout = store.layout
    with store.lock():
        if not layout.container_config(cid).exists():
            return  # removed (rm -f) while it ran
        state, config = store.state_record(cid), store.config_record(cid)
        store.write(layout.container_state(cid), state_record(
            "exited", exit_code=code, error=error, started_at=state["started_at"],
            finished_at=now_iso(), restart_count=state.get("restart_count", 0),
            oom_killed=cgroup.oom_killed(host.facts, group_of(config))))
        cgroup.remove(host, group_of(config))
        release_network(host, store, config)
        if config["auto_remove"]:
            host.step(f"remove container {short_id(cid)} (--rm)")
            store.remove_container(cid)
            remove_volumes(host, store, config)


def remove_volumes(host: Host, store: Store, config: Record) -> None:
    """After a container is removed with --rm or rm -v: its anonymous volumes."""
    if any(m["type"] == "volume" and m["anonymous"] for m in config.get("mounts") or []):
        from shellctr.engine.volume import remove_anonymous

        remove_anonymous(host, store, config["mounts"])


def forward_signals(host: Host, pid: int) -> None:
    """Pass the signals this process gets on to the container's PID 1 (Docker's sig-proxy)."""
    def forward(signum: int, frame: FrameType | None) -> None:
        host.kill(pid, signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)


# -- exec ------------------------------------------------------------------------------
def exec_in(host: Host, store: Store, ref: str, options: RunOptions, detach: bool) -> int:
    """`exec`: run a command in a running container, confined exactly as its PID 1."""
    import subprocess

    from shellctr.core.ids import find

    cid = find(ref, store.container_names(), "container")
    state, config = store.state_record(cid), store.config_record(cid)
    if state["status"] != "running" or not alive(state["pid"], state["pid_start"]):
        raise Conflict(f"container {ref} is not running", "start it first")
    # the new process would join the frozen cgroup and hang
    if cgroup.is_frozen(host.facts, group_of(config)):
        raise Conflict(f"container {ref} is paused", "unpause it first")
    if not options.command:
        raise ShellctrError("exec needs a command", "shellctr exec CONTAINER COMMAND [ARG...]")
    env = dict(item.split("=", 1) for item in config["env"])
    if options.tty:
        env.setdefault("TERM", "xterm")
    env.update(parse_env(options))
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    spec = {
        "join": state["pid"],
        "argv": options.command,
        "env": [f"{key}={value}" for key, value in env.items()],
        "cwd": options.workdir or config["working_dir"],
        "user": options.user if options.user is not None else config["user"],
        "tty": options.tty,
        "status_fd": child.fileno(),
        "trace": host.trace,
        "cgroups": [path_arg(path)
                    for path in cgroup.container_cgroups(host.facts, group_of(config))],
    }
    spec_path = store.layout.container_run_dir(cid) / f"exec-{new_id()[:12]}.json"
    host.step(f"exec in container {short_id(cid)}")
    host.write_file(spec_path, json.dumps(spec, indent=1) + "\n")
    try:
        quiet = subprocess.DEVNULL
        process = host.spawn(
            [sys.executable, "-I", "-S", "-c", init_step.ENTRY, path_arg(TOP),
             path_arg(spec_path)],
            pass_fds=(child.fileno(),),
            stdin=None if options.interactive and not options.tty and not detach else quiet,
            stdout=quiet if detach or options.tty else None,
            stderr=quiet if detach else None,
            start_new_session=True,
            cwd="/",
        )
        child.close()
        if process is None:  # --dry-run
            return 0
        message, fds, _ = receive_ready(host, parent)
        if "message" in message:
            process.wait()
            raise exec_error(message)
        if detach:
            return 0
        # signals go to the joining process, which hands them on to the command
        code, late = attend(host, process, parent, process.pid,
                            fds[0] if options.tty and fds else None, options.interactive)
        if "message" in late:
            raise exec_error(late)
        return code
    finally:
        host.remove_file(spec_path)
