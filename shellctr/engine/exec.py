"""`exec`: a command in a running container, confined exactly as its PID 1.

A process of the host's Python joins the container's namespaces and cgroup (init.py's
`join` path), then goes through the same final step as PID 1: capabilities,
no_new_privs, user, working directory, environment, execve.
"""

from __future__ import annotations

import _socket  # the C module: `socket` builds its enums (~4 ms of each exec)
import json
import os
import sys
from pathlib import Path

from shellctr.core.cmd import path_arg
from shellctr.core.errors import Conflict, ShellctrError
from shellctr.core.host import DEVNULL, Host
from shellctr.core.ids import new_id, short_id
from shellctr.core.layout import CHECKOUT
from shellctr.core.store import Store
from shellctr.engine import cgroup, confine
from shellctr.engine.containers import find_container
from shellctr.engine.lifecycle import container_group
from shellctr.engine.start import attend, caller_window_size, exec_error, receive_ready
from shellctr.inside import ENTRY
from shellctr.parts.request import ExecRequest, parse_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import Any

    Spawned = tuple[subprocess.Popen[bytes], _socket.socket, list[int], Path]


def exec_in(host: Host, store: Store, request: ExecRequest) -> int:
    """Run `request.command` in the container; its exit code (0 when detached)."""
    from shellctr.engine.terminal import DEFAULT_DETACH_KEYS, parse_detach_keys

    keys = parse_detach_keys(request.detach_keys or DEFAULT_DETACH_KEYS)
    detach = request.detach
    quiet = DEVNULL
    spawned = spawn_exec(
        host, store, request,
        stdin=None if request.interactive and not request.tty and not detach else quiet,
        stdout=quiet if detach or request.tty else None,
        stderr=quiet if detach else None)
    if spawned is None:  # --dry-run: the script's process is the exec'd command
        return 0
    process, parent, fds, spec_path = spawned
    from shellctr.engine import events

    cid = find_container(store, request.container)
    exec_id = spec_path.stem.removeprefix("exec-")
    line = " ".join(request.command)
    events.container_event(store, cid, f"exec_create: {line}", execID=exec_id)
    events.container_event(store, cid, f"exec_start: {line}", execID=exec_id)
    try:
        if detach:
            return 0
        # signals go to the joining process, which hands them on to the command
        code, late = attend(host, process, parent, process.pid,
                            fds[0] if request.tty and fds else None, request.interactive,
                            keys=keys)
        if "message" in late:
            raise exec_error(late)
        events.container_event(store, cid, "exec_die", execID=exec_id, exitCode=str(code))
        return code
    finally:
        host.remove_file(spec_path)


def spawn_exec(host: Host, store: Store, request: ExecRequest, *, stdin: Any, stdout: Any,
               stderr: Any) -> Spawned | None:
    """Start the joining process with the given stdio, and wait for init.py's `ready`:
    (the process, its status socket, the fds it passed: a terminal's master with -t,
    the spec file for the caller to remove once the process has ended). None under
    --dry-run. `exec` passes its own stdio; the API service its pipes."""
    ref = request.container
    cid = find_container(store, ref)
    state = store.container_state(cid)
    container = store.container(cid, state)
    if state["status"] != "running" or not host.facts.alive(state["pid"], state["pid_start"]):
        raise Conflict(f"container {ref} is not running", "start it first")
    # the new process would join the frozen cgroup and hang
    if cgroup.is_frozen(host.facts, container_group(container)):
        raise Conflict(f"container {ref} is paused", "unpause it first")
    if not request.command:
        raise ShellctrError("exec needs a command", "shellctr exec CONTAINER COMMAND [ARG...]")
    env = dict(item.split("=", 1) for item in container["env"])
    if request.tty:
        env.setdefault("TERM", "xterm")
    env.update(parse_env(request, os.environ, lambda path: host.facts.read_text(path)))
    parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    spec = {
        "join": state["pid"],
        "argv": request.command,
        "env": [f"{key}={value}" for key, value in env.items()],
        "cwd": request.workdir or container["working_dir"],
        "user": request.user if request.user is not None else container["user"],
        "tty": request.tty,
        **({"winsize": size} if request.tty and (size := caller_window_size()) else {}),
        "status_fd": host.handed_fd(child.fileno()),
        "trace": host.trace,
        "cgroups": [path_arg(path)
                    for path in cgroup.container_cgroups(host.facts, container_group(container))],
        # the same capabilities, no_new_privs and seccomp filter as PID 1 (or, with
        # --privileged, every capability)
        **confine.spec_of(host.facts, store.layout, container, request.privileged),
    }
    exec_id = new_id()
    spec_path = store.layout.container_run_dir(cid) / f"exec-{exec_id[:12]}.json"
    host.step(f"exec in container {short_id(cid)}")
    host.write_file(spec_path, json.dumps(spec, indent=1) + "\n")
    try:
        process = host.spawn(
            [sys.executable, "-I", "-S", "-c", ENTRY, path_arg(CHECKOUT),
             path_arg(spec_path)],
            pass_fds=(child.fileno(),),
            stdin=stdin, stdout=stdout, stderr=stderr,
            start_new_session=True,
            cwd="/",
        )
        child.close()
        if process is None:
            host.remove_file(spec_path)
            return None
        message, fds, _ = receive_ready(host, parent)
        if "message" in message:
            process.wait()
            from shellctr.engine import events

            events.container_event(store, cid, "exec_die", execID=exec_id,
                                   exitCode=str(exec_error(message).exit_code))
            raise exec_error(message)
    except BaseException:
        host.remove_file(spec_path)
        raise
    return process, parent, fds, spec_path
