"""Docker's progress lines for pull and push (per layer, rewritten in place on a
terminal), shared by engine/pull.py and engine/push.py, and how many blobs they move at a
time."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from shellctr.core.ids import SHORT

PARALLEL = 3  # layers fetched at a time (Docker's max-concurrent-downloads)
class Progress:
    """Docker's pull and push lines: per layer `ID: Pulling fs layer` ... `Pull complete`,
    then `Digest:` and `Status:`. On a terminal each layer keeps one line, rewritten in
    place (with a `Downloading [=====>    ] 12.3MB/40.1MB` bar); elsewhere each status
    is a plain line of its own (the bar is left out). Quiet: nothing."""

    def __init__(self, out: TextIO | None, quiet: bool = False) -> None:
        self.out = None if quiet else out
        self.tty = self.out is not None and self.out.isatty()
        self.lock = threading.Lock()
        self.rows: list[str] = []  # the terminal's lines so far, top first ("" not a layer)
        self.shown: dict[str, float] = {}  # layer -> when its bar was drawn

    def line(self, text: str) -> None:
        if self.out is None:
            return
        with self.lock:
            self.rows.append("")
            self.out.write(text + "\n")
            self.out.flush()

    def layer(self, digest: str, status: str) -> None:
        if self.out is None:
            return
        short = digest.removeprefix("sha256:")[:SHORT]
        with self.lock:
            if not self.tty or short not in self.rows:
                self.rows.append(short)
                self.out.write(f"{short}: {status}\n")
            else:  # up to its line, rewrite it, back down
                up = len(self.rows) - self.rows.index(short)
                self.out.write(f"\x1b[{up}A\r\x1b[2K{short}: {status}\x1b[{up}B\r")
            self.out.flush()

    def bytes(self, digest: str, done: int, size: int, verb: str = "Downloading") -> None:
        """A layer's bar, on a terminal, at most ten times a second."""
        if not self.tty:
            return
        now = time.monotonic()
        if now - self.shown.get(digest, 0.0) < 0.1 and done < size:
            return
        self.shown[digest] = now
        width = 50
        filled = min(width, width * done // size) if size else width
        bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=")
        self.layer(digest, f"{verb} [{bar:<{width}}] {human(done)}/{human(size)}")


def human(count: int) -> str:
    """Bytes as Docker's progress shows them (decimal units: 12.3MB)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}GB"

