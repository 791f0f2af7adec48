"""Hijacked streams: a container's attach (output from its log or its monitor, input to
its monitor) and the relay of an exec's pipes or terminal, in Docker's framing.

The client's socket is the client's until the stream ends; a client that goes away
mid-stream ends the relay and leaves nothing behind: the container and the monitor are
not ours, an exec's process is ended by its own stdin closing or runs on detached."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from typing import Any

from shellctr.core.errors import Conflict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO

    from shellctr.api.routes import Call

POLL = 0.01
INPUT, CLOSE_INPUT = 0, 2  # the monitor's client frame types (shellctr/monitor.c)
STREAM_IDS = {"stdout": 1, "stderr": 2}


_ATTACHED: dict[str, int] = {}  # container id -> this service's attachments relaying it
_DETACHED = threading.Condition()


def wait_unattached(cid: str, timeout: float) -> None:
    """Until no attachment of this service relays `cid` any more (or `timeout`): a --rm
    removal waits for them, so that they read the container's log to its end first."""
    deadline = time.monotonic() + timeout
    with _DETACHED:
        while _ATTACHED.get(cid) and (left := deadline - time.monotonic()) > 0:
            _DETACHED.wait(left)


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


def monitor_frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BI", kind, len(payload)) + payload


def send(sock: socket.socket, data: bytes) -> bool:
    """Write to the client; False once it has gone."""
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def end(sock: socket.socket) -> None:
    """The stream is over: the client reads EOF."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class Attachment:
    """One `POST /containers/{id}/attach`."""

    def __init__(self, call: Call, cid: str, sock: socket.socket, *, tty: bool, stdin: bool,
                 wanted: set[str], log_path: Path, offset: int, started: Any,
                 stream: bool, not_started: bool, keys: bytes = b"") -> None:
        self.call, self.cid, self.sock = call, cid, sock
        self.keys = keys  # the detach keys: typed, the attach ends, the container runs on
        self.tty, self.stdin, self.wanted = tty, stdin, wanted
        self.log_path, self.offset, self.started, self.stream = log_path, offset, started, stream
        self.not_started = not_started  # attached before its start: wait for the run
        from shellctr.api.watch import StateWatch

        self.watch = StateWatch(call.store, cid)
        self.monitor: socket.socket | None = None
        self.monitor_ready = threading.Event()
        self.done = threading.Event()
        with _DETACHED:  # until run() ends (a --rm removal here waits for that)
            _ATTACHED[cid] = _ATTACHED.get(cid, 0) + 1

    # -- the container's state -------------------------------------------------------
    def state(self) -> dict[str, Any] | None:
        found = self.watch.state()
        return None if found is None else dict(found)

    def wait_started(self) -> bool:
        """Wait until the run we attached for has begun (a `start` after this attach);
        False if the container is removed first or the client goes."""
        if not self.not_started:
            return True
        while not self.done.is_set():
            state = self.state()
            if state is None:
                return False
            if state["started_at"] != self.started:
                return True
            time.sleep(POLL)
        return False

    def running(self) -> bool:
        state = self.state()
        return state is not None and state["status"] == "running"

    # -- the relay -------------------------------------------------------------------
    def run(self) -> None:
        readers = []
        if self.stdin or self.tty:
            readers.append(threading.Thread(target=self.connect_monitor, daemon=True))
        if self.stdin:
            readers.append(threading.Thread(target=self.forward_input, daemon=True))
        for thread in readers:
            thread.start()
        try:
            if self.stream and self.wait_started():
                if self.tty:
                    self.relay_terminal()
                else:
                    self.relay_log()
            elif not self.stream:
                self.relay_log(follow=False)
        finally:
            self.done.set()
            end(self.sock)
            if self.monitor is not None:
                with contextlib.suppress(OSError):
                    self.monitor.close()
            with _DETACHED:
                _ATTACHED[self.cid] -= 1
                if not _ATTACHED[self.cid]:
                    del _ATTACHED[self.cid]
                _DETACHED.notify_all()

    def connect_monitor(self) -> None:
        """The monitor's attach socket, as soon as it listens (before the command has
        started: the monitor listens before it forks)."""
        from shellctr.engine.attach import connect

        run_dir = self.call.store.layout.container_run_dir(self.cid)
        while not self.done.is_set():
            try:
                with connect(run_dir) as sock:
                    self.monitor = sock
                    self.monitor_ready.set()
                    if not self.tty:  # output comes from the log: drop the monitor's copy
                        while not self.done.is_set():
                            ready, _, _ = select.select([sock], [], [], 0.2)
                            if ready and not sock.recv(65536):
                                break
                    else:
                        self.done.wait()
                    return
            except Conflict:
                if self.state() is None:
                    return
                time.sleep(POLL)

    def forward_input(self) -> None:
        """What the client sends, to the container's stdin; the client's end of input
        (a half-close) closes the container's stdin. The detach keys end the attach
        instead (what may begin them is held back until the next key says)."""
        from shellctr.engine.terminal import match_keys

        pending = b""
        while not self.done.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if not ready:
                continue
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not self.monitor_ready.wait(timeout=30):
                return
            # a terminal's master reaches the monitor once the run is recorded: input
            # sent before would find no terminal to go to
            while self.tty and not self.running() and not self.done.is_set():
                if self.state() is None:
                    return
                time.sleep(POLL)
            monitor = self.monitor
            if monitor is None:
                return
            try:
                if not data:
                    if pending:
                        monitor.sendall(monitor_frame(INPUT, pending))
                    monitor.sendall(monitor_frame(CLOSE_INPUT, b""))
                    return
                pending, data, detach = match_keys(pending + data, self.keys)
                if data:
                    monitor.sendall(monitor_frame(INPUT, data))
                if detach:
                    self.detach()
                    return
            except OSError:
                return

    def detach(self) -> None:
        """The detach keys were typed: the stream ends, the container's stdin stays open."""
        monitor = self.monitor
        if monitor is not None:  # wakes the terminal relay, blocked on the monitor
            with contextlib.suppress(OSError):
                monitor.shutdown(socket.SHUT_RDWR)
        # only then: `done` lets connect_monitor close that socket, and a close (unlike a
        # shutdown) does not wake a recv blocked on it in another thread
        self.done.set()

    def relay_log(self, follow: bool = True) -> None:
        """Output without a terminal: the log's records from our offset, framed, until
        the run has ended and the log is read to its end."""
        from shellctr.engine import logs

        stream: BinaryIO | None = None
        offset = self.offset
        try:
            while not self.done.is_set():
                ended = not follow or not self.running()
                if stream is None:
                    try:
                        stream = open(self.log_path, "rb")  # noqa: SIM115
                    except FileNotFoundError:
                        if ended:
                            return
                        time.sleep(POLL)
                        continue
                records, offset = logs.read_from(stream, offset)
                for record in records:
                    if record.stream in self.wanted and not send(
                            self.sock, frame(STREAM_IDS[record.stream],
                                             record.text.encode("utf-8", "surrogateescape"))):
                        return
                if ended:
                    return
                self.watch.pause(busy=bool(records))
        finally:
            if stream is not None:
                stream.close()

    def relay_terminal(self) -> None:
        """Output with a terminal: the monitor's frames, unframed (a raw stream)."""
        while not self.monitor_ready.wait(timeout=0.1):
            if not self.running() and self.state() is not None and \
                    self.state()["status"] == "exited":  # type: ignore[index]
                return
        monitor = self.monitor
        if monitor is None:
            return
        buffer = b""
        while True:
            try:
                data = monitor.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while len(buffer) >= 8:
                size = struct.unpack(">I", buffer[4:8])[0]
                if len(buffer) < 8 + size:
                    break
                if not send(self.sock, buffer[8:8 + size]):
                    return
                buffer = buffer[8 + size:]


# -- exec ----------------------------------------------------------------------------------
def pump_exec(sock: socket.socket, process: Any, tty_master: int | None, stdin: bool,
              keys: bytes = b"") -> bool:
    """Relay an exec's stdio to the client until its output ends (True) or the client
    goes or types the detach `keys` (False: the command runs on): its pipes framed
    (stdout 1, stderr 2), or its terminal raw; client input to its stdin or terminal."""
    from shellctr.engine.terminal import match_keys

    pending = b""  # typed keys that may begin the detach keys, held back
    outputs: dict[int, int] = {}
    if tty_master is not None:
        outputs[tty_master] = 0
    else:
        if process.stdout is not None:
            outputs[process.stdout.fileno()] = 1
        if process.stderr is not None:
            outputs[process.stderr.fileno()] = 2
    input_fd = tty_master if tty_master is not None else (
        process.stdin.fileno() if process.stdin is not None else None)
    readers: list[Any] = list(outputs)
    if stdin and input_fd is not None:
        readers.append(sock)
    while outputs:
        ready, _, _ = select.select(readers, [], [])
        for fd in ready:
            if fd is sock:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client's input ended: so does the command's
                    readers.remove(sock)
                    if pending and input_fd is not None:  # held back: not the keys after all
                        with contextlib.suppress(OSError):
                            write_all(input_fd, pending)
                    if tty_master is None and process.stdin is not None:
                        process.stdin.close()
                    continue
                pending, data, detach = match_keys(pending + data, keys)
                if input_fd is not None and data:
                    with contextlib.suppress(OSError):
                        write_all(input_fd, data)
                if detach:
                    return False
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # a terminal's master reads EIO once the command has ended
                data = b""
            if not data:
                readers.remove(fd)
                del outputs[fd]
                continue
            stream = outputs[fd]
            if not send(sock, data if stream == 0 else frame(stream, data)):
                return False
    return True


def write_all(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]
