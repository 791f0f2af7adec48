"""`attach`: a running container's output, and its stdin or terminal, here and now.

A detached container's monitor listens on `attach.sock` in the container's run dir
(see shellctr/monitor.c for the framing). This module connects to it, shows what the
container prints from then on (stdout and stderr kept apart), sends what we type when
the container keeps stdin open (-i), keeps a terminal's window size in step (-t), and
detaches on Docker's keys (ctrl-p ctrl-q) without stopping the container. When the
container ends, `attach` ends with its exit code.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import termios
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from shellctr.core.errors import Conflict
from shellctr.core.host import Host
from shellctr.core.store import Store
from shellctr.engine import terminal
from shellctr.engine.containers import find_container, wait
from shellctr.engine.lifecycle import container_group, reconcile
from shellctr.engine.terminal import (  # (parse_detach_keys, match_keys: also from here)
    DEFAULT_DETACH_KEYS,
    match_keys,
    parse_detach_keys,
)

STDIN, STDOUT, STDERR = 0, 1, 2
INPUT, WINDOW_SIZE = 0, 1  # the frame types a client sends
# signals a non-terminal attach passes on to PID 1 (--sig-proxy, Docker's default)
PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)


class Detached(Exception):
    """The user typed the detach keys."""


def attach(host: Host, store: Store, ref: str, stdin: bool = True, sig_proxy: bool = True,
           detach_keys: str = DEFAULT_DETACH_KEYS) -> int:
    """Attach until the container ends (its exit code) or the user detaches (1, as Docker)."""
    from shellctr.engine import cgroup

    keys = parse_detach_keys(detach_keys)
    cid = find_container(store, ref)
    state = reconcile(store, cid)
    if state["status"] != "running":
        raise Conflict("you cannot attach to a stopped container", "start it first")
    config = store.container_config(cid)
    if cgroup.is_frozen(host.facts, container_group(store.container(cid))):
        raise Conflict("you cannot attach to a paused container", "unpause it first")
    tty, interactive = config["tty"], config["interactive"] and stdin
    with connect(store.layout.container_run_dir(cid)) as sock:
        proxy = sig_proxy and not tty  # with -t, ctrl-c is a key the container reads
        with forwarded_signals(host, state["pid"]) if proxy else contextlib.nullcontext(), \
                terminal.raw_mode(STDIN) if tty and interactive else contextlib.nullcontext():
            try:
                relay(sock, tty, interactive, keys)
            except Detached:
                detached = True
            else:
                detached = False
    if detached:
        os.write(STDERR, b"read escape sequence\n")
        return 1
    return wait(store, cid)


@contextlib.contextmanager
def connect(run_dir: Path) -> Iterator[socket.socket]:
    """The monitor's socket, reached through /proc/self/fd (its full path may be longer
    than a unix socket address can be)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        dir_fd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY)
        try:
            sock.connect(f"/proc/self/fd/{dir_fd}/attach.sock")
        finally:
            os.close(dir_fd)
    except (FileNotFoundError, ConnectionRefusedError) as err:
        sock.close()
        raise Conflict("the container's monitor is not listening for attach",
                       "it has just ended, or was started in the foreground") from err
    with sock:
        yield sock


@contextlib.contextmanager
def forwarded_signals(host: Host, pid: int) -> Iterator[None]:
    """--sig-proxy: signals sent to `attach` go to the container's PID 1."""
    def forward(signum: int, frame: FrameType | None) -> None:
        host.kill(pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in PROXIED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BI", kind, len(payload)) + payload


def window_size() -> bytes:
    """Our terminal's rows and columns as the monitor's window-size payload."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(STDIN, termios.TIOCGWINSZ, b"\0" * 8))
    return struct.pack(">HH", rows, cols)


def relay(sock: socket.socket, tty: bool, interactive: bool, keys: bytes) -> None:
    """Copy frames from the monitor to stdout/stderr and stdin to the monitor, until the
    monitor closes the socket (the container's output ended)."""
    def resized(signum: int, frame_: FrameType | None) -> None:
        sock.sendall(frame(WINDOW_SIZE, window_size()))

    sized = tty and os.isatty(STDIN)
    previous = signal.signal(signal.SIGWINCH, resized) if sized else None
    if sized:
        resized(signal.SIGWINCH, None)
    readers: list[int | socket.socket] = [sock, STDIN] if interactive else [sock]
    received, typed = b"", b""  # a partial frame; keys that may begin the detach keys
    try:
        while True:
            ready, _, _ = select.select(readers, [], [])
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                received = show(received + data)
            if STDIN in ready:
                data = os.read(STDIN, 65536)
                if not data:  # our stdin ended; the container's stays open, as in Docker
                    readers.remove(STDIN)
                    continue
                typed, data, detach = match_keys(typed + data, keys)
                if data:
                    sock.sendall(frame(INPUT, data))
                if detach:
                    raise Detached
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)


def show(buffer: bytes) -> bytes:
    """Write each complete frame to stdout or stderr; what is left of a partial one."""
    while len(buffer) >= 8:
        stream, size = buffer[0], struct.unpack(">I", buffer[4:8])[0]
        if len(buffer) < 8 + size:
            break
        terminal.write_all(STDERR if stream == 2 else STDOUT, buffer[8:8 + size])
        buffer = buffer[8 + size:]
    return buffer
