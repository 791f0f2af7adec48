"""`exec`: a command in a running container, confined exactly as its PID 1.

No second interpreter: the static helper (`shellctr-exec --join`, exec.c) joins the
container's cgroups and namespaces, then takes the same final step as PID 1's init.py:
user, working directory, capabilities, no_new_privs, the seccomp filter compiled when
the container started (its run dir's `seccomp-MASK.bpf`), the exec through its sealed
memfd copy. Its options are the confinement; the command's environment is its own.
"""

from __future__ import annotations

import _socket  # the C module: `socket` builds its enums (~4 ms of each exec)
import os

from shellctr.core.cmd import path_arg
from shellctr.core.errors import Conflict, ShellctrError
from shellctr.core.host import DEVNULL, Host
from shellctr.core.ids import new_id, short_id
from shellctr.core.store import Store
from shellctr.engine import cgroup, confine
from shellctr.engine.containers import find_container
from shellctr.engine.lifecycle import container_group
from shellctr.engine.start import attend, caller_window_size, exec_error, receive_ready
from shellctr.parts.request import ExecRequest, parse_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from shellctr.core.host import Process
    from shellctr.core.records import ContainerRecord

    # the process, its status socket, the fds it passed (a -t pty's master), the exec's id,
    # the container's id and record
    Spawned = tuple[Process, _socket.socket, list[int], str, str, ContainerRecord]


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
    process, parent, fds, exec_id, cid, container = spawned
    from shellctr.engine import events

    def event(action: str, **extra: str) -> None:  # (the record read once, not per event)
        events.emit(store, "container", action, cid,
                    events.container_attributes(container, execID=exec_id, **extra))

    line = " ".join(request.command)
    event(f"exec_create: {line}")
    event(f"exec_start: {line}")
    if detach:
        return 0
    # signals go to the joining process, which hands them on to the command
    code, late = attend(host, process, parent, process.pid,
                        fds[0] if request.tty and fds else None, request.interactive,
                        keys=keys)
    if "message" in late:
        raise exec_error(late)
    event("exec_die", exitCode=str(code))
    return code


def spawn_exec(host: Host, store: Store, request: ExecRequest, *, stdin: Any, stdout: Any,
               stderr: Any) -> Spawned | None:
    """Start the joining process with the given stdio, and wait for its `ready`: what
    Spawned says; None under --dry-run. `exec` passes its own stdio; the API service its
    pipes."""
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
    # the same capabilities, no_new_privs and seccomp filter as PID 1 (or, with
    # --privileged, every capability)
    confinement = confine.spec_of(host.facts, store.layout, container, request.privileged)
    caps = [str(name) for _, name in confinement["caps"]]  # type: ignore[attr-defined]
    exec_id = new_id()
    host.step(f"exec in container {short_id(cid)}")
    seccomp = confine.container_filter(host, store.layout, container, confinement)
    parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    status_fd = host.handed_fd(child.fileno())
    size = caller_window_size() if request.tty else None
    argv = [
        path_arg(confine.exec_helper()), "--join", str(state["pid"]),
        *(["--status-fd", str(status_fd)] if status_fd is not None else []),
        *[arg for path in cgroup.container_cgroups(host.facts, container_group(container))
          for arg in ("--cgroup", path_arg(path))],
        "--user", request.user if request.user is not None else container["user"],
        "--cwd", request.workdir or container["working_dir"] or "/",
        *(["--tty"] if request.tty else []),
        *(["--winsize", f"{size[0]},{size[1]}"] if size else []),
        "--caps", ",".join(caps),
        "--last-cap", str(confinement["last_cap"]),
        *(["--no-new-privs"] if confinement["no_new_privs"] else []),
        *(["--seccomp-filter", path_arg(seccomp)] if seccomp is not None else []),
        "--", *request.command,
    ]
    process = host.spawn(argv, env=env, pass_fds=(child.fileno(),),
                         stdin=stdin, stdout=stdout, stderr=stderr,
                         start_new_session=True)  # (it goes to / itself)
    child.close()
    if process is None:
        return None
    message, fds, _ = receive_ready(host, parent)
    if "message" in message:
        process.wait()
        from shellctr.engine import events

        events.container_event(store, cid, "exec_die", execID=exec_id,
                               exitCode=str(exec_error(message).exit_code))
        raise exec_error(message)
    return process, parent, fds, exec_id, cid, container
