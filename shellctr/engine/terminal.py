"""Relaying the container's pseudo-terminal to the caller's terminal (`run -t`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from shellctr.core.errors import UsageError

STDIN, STDOUT = 0, 1
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str) -> bytes:
    """Docker's --detach-keys: comma-separated `ctrl-<letter or @[\\]^_>` or one character."""
    keys = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            keys.append(ord(key))
        elif len(key) == 6 and key.startswith("ctrl-") and (key[5].isalpha()
                                                             or key[5] in "@[\\]^_"):
            keys.append(ord(key[5].upper()) & 0x1F)
        else:
            raise UsageError(f"invalid detach keys {text!r}",
                             "use e.g. ctrl-p,ctrl-q (ctrl-<letter>, or single characters)")
    return bytes(keys)


def match_keys(typed: bytes, keys: bytes) -> tuple[bytes, bytes, bool]:
    """Split what was typed into (held back: it may begin the detach keys, to send now,
    whether the whole detach sequence was typed)."""
    if keys and (at := typed.find(keys)) >= 0:
        return b"", typed[:at], True
    for held in range(min(len(keys) - 1, len(typed)), 0, -1):
        if typed.endswith(keys[:held]):
            return typed[-held:], typed[:-held], False
    return b"", typed, False


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put the caller's terminal in raw mode (keys go to the container as typed)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        except termios.error:
            pass  # the terminal hung up: there is nothing left to restore


def copy_window_size(source: int, target: int) -> None:
    """Give the container's terminal the caller's rows and columns."""
    if os.isatty(source):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)


def set_window_size(master: int, rows: int, cols: int) -> None:
    """Give a terminal (by its master) a size, as a resize from a client asks."""
    import struct

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def relay(master: int, interactive: bool, log: Path | None = None, keys: bytes = b"",
          close: bool = True) -> bool:
    """Copy the container's output to stdout (and to its `log`, in the monitor's
    json-file format) and, with -i, stdin to the container, until the container closes
    its terminal; keep the window size in step. With `keys` (the detach keys), return
    True when they are typed (False: the terminal closed). `close`: the master too."""
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640) if log else None
    copy_window_size(STDIN, master)

    def resized(signum: int, frame: FrameType | None) -> None:
        copy_window_size(STDIN, master)

    previous = signal.signal(signal.SIGWINCH, resized)
    readers = [master, STDIN] if interactive else [master]
    typed = b""  # keys that may begin the detach keys, held back
    try:
        with raw_mode(STDIN) if interactive else contextlib.nullcontext():
            while True:
                ready, _, _ = select.select(readers, [], [])
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every process holding the terminal has ended
                        break
                    if not data:
                        break
                    if log_fd is not None:
                        write_all(log_fd, log_record(data))
                    try:
                        write_all(STDOUT, data)
                    except OSError:  # EIO/EPIPE: the caller's terminal is gone
                        break  # closing the master hangs up the container's terminal too
                if STDIN in ready:
                    try:
                        data = os.read(STDIN, 65536)
                    except OSError:  # EIO: the caller's terminal hung up
                        break
                    if data and keys:
                        typed, data, detach = match_keys(typed + data, keys)
                        if data:
                            write_all(master, data)
                        if detach:
                            return True
                    elif data:
                        write_all(master, data)
                    else:  # the caller's stdin ended: send the terminal's end-of-file
                        readers.remove(STDIN)
                        write_all(master, b"\x04")
    finally:
        signal.signal(signal.SIGWINCH, previous)
        if close:
            os.close(master)
        if log_fd is not None:
            os.close(log_fd)
    return False


def log_record(data: bytes) -> bytes:
    """One json-file log record, as shellctr-monitor writes them."""
    import json
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    record = {"log": data.decode("utf-8", errors="replace"), "stream": "stdout", "time": now}
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def write_all(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]
