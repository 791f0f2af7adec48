"""Exec endpoints: create (the instance: what to run), start (hijacked, or detached),
resize, inspect (Running, ExitCode).

An exec instance lives in the service's memory from its create to a while after its
end, as in Docker: it is a request to run something, not state of the container; the
process it starts is the container's, confined as `shellctr exec` confines it."""

from __future__ import annotations

import threading
import time
from typing import Any

from shellctr.api.routes import ROUTES, ApiError, Call, Json, bad_request
from shellctr.core.host import DEVNULL, PIPE

KEEP_ENDED = 300.0  # seconds an ended exec can still be inspected
_LOCK = threading.Lock()
_EXECS: dict[str, ExecInstance] = {}


class ExecInstance:
    def __init__(self, eid: str, cid: str, config: dict[str, Any]) -> None:
        self.id, self.cid, self.config = eid, cid, config
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.pid = 0
        self.ended_at = 0.0
        self.master: int | None = None  # its terminal's master, while the start holds it
        self.size: tuple[int, int] | None = None  # the rows and columns a resize asked for

    def resize(self, size: tuple[int, int] | None = None) -> None:
        """Keep the size asked for (a resize may come before the terminal exists) and
        give it to the terminal if there is one now."""
        from shellctr.engine.terminal import set_window_size

        with _LOCK:
            self.size = size or self.size
            if self.master is not None and self.size is not None:
                try:
                    set_window_size(self.master, *self.size)
                except OSError:
                    pass  # the command has just ended: no terminal left to size

    def hold_terminal(self, master: int | None) -> None:
        """The terminal's master from the start on (None: it is being closed)."""
        with _LOCK:
            self.master = master

    def json(self) -> dict[str, Any]:
        config = self.config
        return {
            "ID": self.id, "ContainerID": self.cid, "Running": self.running,
            "ExitCode": self.exit_code, "Pid": self.pid,
            "OpenStdin": config["AttachStdin"], "OpenStdout": config["AttachStdout"],
            "OpenStderr": config["AttachStderr"], "CanRemove": False,
            "DetachKeys": config["DetachKeys"],
            "ProcessConfig": {"tty": config["Tty"], "entrypoint": config["Cmd"][0],
                              "arguments": config["Cmd"][1:], "privileged": False,
                              "user": config.get("User") or ""},
        }


def forget_old() -> None:
    now = time.monotonic()
    with _LOCK:
        for eid in [eid for eid, ex in _EXECS.items()
                    if ex.ended_at and now - ex.ended_at > KEEP_ENDED]:
            del _EXECS[eid]


def instance(call: Call) -> ExecInstance:
    with _LOCK:
        found = _EXECS.get(call.params["id"])
    if found is None:
        raise ApiError(404, f"No such exec instance: {call.params['id']}")
    return found


@ROUTES.add("POST", "/containers/{id}/exec")
def exec_create(call: Call) -> Json:
    from shellctr.api.create import Body
    from shellctr.core.ids import new_id
    from shellctr.engine.containers import find_container
    from shellctr.engine.lifecycle import reconcile

    body = Body(call.json_body(), "the body")
    cmd = body.texts("Cmd", one_string=True)
    if not cmd:
        raise bad_request("No exec command specified")
    keys = body.text("DetachKeys") or ""
    if keys:
        detach_keys(keys)  # refused now (400), not at the start
    config = {
        "Cmd": cmd, "Tty": body.flag("Tty"), "AttachStdin": body.flag("AttachStdin"),
        "AttachStdout": body.flag("AttachStdout"), "AttachStderr": body.flag("AttachStderr"),
        "Env": [item for item in body.texts("Env") if "=" in item],
        "WorkingDir": body.text("WorkingDir") or None, "User": body.text("User") or None,
        # `docker exec --detach-keys` (or the client's config): typed on the exec's
        # terminal, they end the stream and the command runs on
        "DetachKeys": keys,
    }
    cid = find_container(call.store, call.params["id"])
    if reconcile(call.store, cid)["status"] != "running":
        raise ApiError(409, f"container {call.params['id']} is not running")
    forget_old()
    eid = new_id()
    with _LOCK:
        _EXECS[eid] = ExecInstance(eid, cid, config)
    return Json({"Id": eid}, 201)


@ROUTES.add("GET", "/exec/{id}/json")
def exec_inspect(call: Call) -> dict[str, Any]:
    return instance(call).json()


@ROUTES.add("POST", "/exec/{id}/resize")
def exec_resize(call: Call) -> None:
    """The exec's terminal gets `h` rows and `w` columns (`docker exec -it` sends its
    own at the start and on each window change); without a terminal, nothing is sized."""
    ex = instance(call)
    rows, cols = call.number("h", 0) or 0, call.number("w", 0) or 0
    if not 0 <= rows < 65536 or not 0 <= cols < 65536:
        raise bad_request(f"invalid size {rows}x{cols}: give h and w, 0 to 65535")
    if rows and cols:  # a client whose own terminal has no size sends 0x0: kept as it is
        ex.resize((rows, cols))


@ROUTES.add("POST", "/exec/{id}/start")
def exec_start(call: Call) -> Json | None:
    from shellctr.api.create import Body
    from shellctr.core.errors import ShellctrError
    from shellctr.engine.exec import spawn_exec
    from shellctr.engine.lifecycle import reconcile
    from shellctr.engine.start import exec_error, receive
    from shellctr.parts.request import ExecRequest

    ex = instance(call)
    body = Body(call.json_body(required=False), "the body")
    detach = body.flag("Detach")
    with _LOCK:
        if ex.started:
            raise ApiError(409, f"exec {ex.id} has already been started")
        ex.started = True
    config = ex.config
    tty = config["Tty"] or body.flag("Tty")
    request = ExecRequest(container=ex.cid, command=config["Cmd"], env=config["Env"],
                          workdir=config["WorkingDir"], user=config["User"], tty=tty,
                          interactive=config["AttachStdin"], detach=detach)
    pipe, quiet = PIPE, DEVNULL
    stdin = pipe if config["AttachStdin"] and not tty and not detach else quiet
    stdout = pipe if config["AttachStdout"] and not tty and not detach else quiet
    stderr = pipe if config["AttachStderr"] and not tty and not detach else quiet
    if reconcile(call.store, ex.cid)["status"] != "running":
        ex.exit_code, ex.ended_at = 126, time.monotonic()
        raise ApiError(409, f"container {ex.cid[:12]} is not running")
    sock = None if detach else call.hijack(
        "application/vnd.docker.raw-stream" if tty
        else "application/vnd.docker.multiplexed-stream")
    try:
        spawned = spawn_exec(call.host, call.store, request, stdin=stdin, stdout=stdout,
                             stderr=stderr)
    except ShellctrError as err:  # as Docker: the stream says why, the exit code is 126/127
        ex.exit_code, ex.ended_at = getattr(err, "exit_code", 126), time.monotonic()
        if sock is None:
            raise
        from shellctr.api.streams import end, frame, send

        message = f"shellctr: {err}\n".encode()
        send(sock, message if tty else frame(2, message))
        end(sock)
        return None
    except BaseException:
        ex.exit_code, ex.ended_at = 126, time.monotonic()
        if sock is not None:
            from shellctr.api.streams import end
            end(sock)
        raise
    assert spawned is not None  # the service never runs under --dry-run
    process, status, fds, *_ = spawned
    ex.running, ex.pid = True, process.pid

    def finish() -> None:
        code = process.wait()
        code = code if code >= 0 else 128 - code
        late, _, _ = receive(status, block=False)
        if "message" in late:
            code = exec_error(late).exit_code
        status.close()
        ex.exit_code, ex.running, ex.ended_at = code, False, time.monotonic()

    master = fds[0] if tty and fds else None
    if master is not None:
        ex.hold_terminal(master)
        ex.resize()  # the size a resize sent before the terminal was there
    if detach:
        if master is not None:
            keep_terminal(ex, master)
        threading.Thread(target=finish, daemon=True).start()
        return Json("", 200)
    from shellctr.api.streams import end, pump_exec

    assert sock is not None
    ended = False
    # as Docker's: the keys detach from a terminal only (a pipe's input is the command's)
    keys = detach_keys(config["DetachKeys"]) if master is not None else b""
    try:
        ended = pump_exec(sock, process, master, config["AttachStdin"], keys)
    finally:
        if master is not None and ended:
            ex.hold_terminal(None)
            close_fd(master)
        elif master is not None:  # detached, or the client went: the terminal stays
            keep_terminal(ex, master)
        for pipe_end in (process.stdin, process.stdout, process.stderr):
            if pipe_end is not None:
                pipe_end.close()
        if ended:  # its output has ended: its exit code, for the inspect that follows
            finish()
        else:  # detached or the client went: the command runs on (as Docker's), reaped later
            threading.Thread(target=finish, daemon=True).start()
        end(sock)
    return None


def keep_terminal(ex: ExecInstance, master: int) -> None:
    """With no client on it, an exec's terminal stays open until its command ends (closing
    the master would hang it up), its output read and dropped so the command never blocks
    on a full terminal, as Docker's daemon does; resizes still reach it."""
    import os

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:  # EIO: every process on the terminal has ended
                break
        ex.hold_terminal(None)
        close_fd(master)

    threading.Thread(target=drain, daemon=True).start()


def detach_keys(text: str) -> bytes:
    """An exec's detach keys (Docker's words; empty: ctrl-p,ctrl-q), or a 400."""
    from shellctr.core.errors import UsageError
    from shellctr.engine.terminal import DEFAULT_DETACH_KEYS, parse_detach_keys

    try:
        return parse_detach_keys(text or DEFAULT_DETACH_KEYS)
    except UsageError as err:
        raise bad_request(str(err)) from None


def close_fd(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError:
        pass
