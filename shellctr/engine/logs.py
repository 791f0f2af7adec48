"""`logs`: reading a container's log, written by its monitor in Docker's json-file format.

Each line of `ROOT/containers/<id>/container.log` is one record:
`{"log": "hello\\n", "stream": "stdout", "time": "2026-11-29T19:40:00.123456789Z"}`.
"""

from __future__ import annotations

import os
import sys
import time

from shellctr.core.errors import ShellctrError
from shellctr.inside.jsonlite import loads

# typing is not imported at run time: every command pays for each module it loads; re and
# datetime are imported by what reads times (--since, --until): `logs --tail N` skips them
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime
    from pathlib import Path
    from typing import BinaryIO

POLL_SECONDS = 0.05  # how often `logs -f` looks for new output


class Record:
    """One log line: when, which stream, what."""

    __slots__ = ("stream", "text", "time")

    def __init__(self, time: str, stream: str, text: str) -> None:
        self.time, self.stream, self.text = time, stream, text

    @property
    def when(self) -> datetime:
        return parse_time(self.time)


def parse_time(text: str) -> datetime:
    """RFC 3339 with nanoseconds (Python keeps microseconds)."""
    import re
    from datetime import datetime

    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise ValueError(text)
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`--since`/`--until`: RFC 3339 (`2026-11-29T19:00:00Z`), a Unix time, or a duration
    before now (`10m`, `1h30m`, `45s`), as Docker takes them."""
    import re
    from datetime import UTC, datetime, timedelta

    now = now or datetime.now(UTC)
    duration = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value)
    if duration:
        units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        seconds = sum(float(number) * units[unit] for number, unit in
                      re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value))
        return now - timedelta(seconds=seconds)
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            return datetime.fromisoformat(value + "T00:00:00+00:00")
        return parse_time(value if re.search(r"(Z|[+-]\d\d:\d\d)$", value) else value + "Z")
    except ValueError as err:
        raise ShellctrError(f"invalid time {value!r}",
                            "use RFC 3339 (2026-11-29T19:00:00Z), a Unix time or 10m") from err


def read_records(path: Path, offset: int = 0) -> tuple[list[Record], int]:
    """Complete records from byte `offset` on, and the offset after the last of them."""
    try:
        with open(path, "rb") as stream:
            return read_from(stream, offset)
    except FileNotFoundError:
        return [], offset


def read_from(stream: BinaryIO, offset: int) -> tuple[list[Record], int]:
    """read_records from an open log: it can still be read once removed (`run --rm`)."""
    stream.seek(offset)
    data = stream.read()
    end = data.rfind(b"\n") + 1  # a record still being written waits for the next read
    records = []
    for line in data[:end].splitlines():
        if line:
            raw = loads(line.decode("utf-8", errors="replace"))
            records.append(Record(raw["time"], raw["stream"], raw["log"]))
    return records, offset + end


def select(records: list[Record], tail: int | None, since: datetime | None,
           until: datetime | None) -> list[Record]:
    """Docker's order of filters: the time window first, then the last `tail` lines."""
    chosen = [r for r in records
              if (since is None or r.when >= since) and (until is None or r.when <= until)]
    if tail is not None:
        chosen = chosen[-tail:] if tail > 0 else []
    return chosen


def show(record: Record, timestamps: bool, details: bool = False) -> None:
    """Write one record to our stdout or stderr, as it came from the container
    (`details`: after the log's extra attributes, none here, and a blank, as Docker's)."""
    target = sys.stdout if record.stream == "stdout" else sys.stderr
    if timestamps:
        target.write(record.time + " ")
    if details:
        target.write(" ")
    target.write(record.text)
    target.flush()


def follow(log: Path | str | BinaryIO, offset: int, running: Callable[[], bool],
           timestamps: bool, until: datetime | None, path: Path | str | None = None,
           details: bool = False) -> None:
    """`logs -f`: print new records as they come, until the container has ended. Give
    the log open: a `--rm` container's is removed as it ends, its last lines unread.
    With `path` (the log's name), a rotation is followed: the rest of the file that
    moved to PATH.1, then the new PATH (or PATH again from its start, once truncated)."""
    if isinstance(log, (str, os.PathLike)):  # its name
        try:
            with open(log, "rb") as stream:
                return follow(stream, offset, running, timestamps, until, log, details)
        except FileNotFoundError:
            return None
    opened: BinaryIO | None = None  # a file we opened after a rotation
    try:
        while True:
            ended = not running()  # read after checking: nothing written before the end is lost
            records, offset = read_from(log, offset)
            if path is not None:
                moved, offset = rotation(log, path, offset)
                if moved is not None:  # the old file's last records, the files rotated
                    records += read_from(log, offset)[0]  # since, then the new file
                    records += read_between(path, log, moved)
                    if opened is not None:
                        opened.close()
                    log = opened = moved
                    offset, ended = 0, False  # read the new one before we end
            for record in records:
                if until is not None and record.when > until:
                    return None
                show(record, timestamps, details)
            if ended:
                return None
            if path is None or not records:
                time.sleep(POLL_SECONDS)
    finally:
        if opened is not None:
            opened.close()


def rotation(log: BinaryIO, path: Path | str, offset: int) -> tuple[BinaryIO | None, int]:
    """Whether the monitor rotated the log we read: (the new file, opened; or None, and
    the offset to go on from: 0 after a truncation)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return None, offset
    if now.st_ino != os.fstat(log.fileno()).st_ino:
        try:
            return open(path, "rb"), offset  # closed by follow
        except FileNotFoundError:
            return None, offset
    return None, 0 if now.st_size < offset else offset


def read_between(path: Path | str, old: BinaryIO | None, new: BinaryIO) -> list[Record]:
    """The records of the files rotated after `old` (all, without it) and before `new`
    (both open): when the log rotated more than once between two looks, or since `new`
    was opened, the files newer than it are not yet ours to read."""
    streams = open_rotated(path)
    try:
        opened = [os.fstat(stream.fileno()).st_ino for stream in streams]
        old_inode = os.fstat(old.fileno()).st_ino if old is not None else None
        new_inode = os.fstat(new.fileno()).st_ino
        first = opened.index(old_inode) + 1 if old_inode in opened else 0
        last = opened.index(new_inode) if new_inode in opened else len(opened)
        return [record for stream in streams[first:last] for record in read_from(stream, 0)[0]]
    finally:
        for stream in streams:
            stream.close()


def open_rotated(path: Path | str) -> list[BinaryIO]:
    """The rotated files, oldest first, opened as one consistent snapshot: the monitor
    renames PATH.N-1 to PATH.N ... PATH to PATH.1 one at a time, so the names are
    listed and opened again until they are whole (1..N, no gap) and none moved meanwhile."""
    for attempt in range(1000):
        names = rotated_files(path)
        streams: list[BinaryIO] = []
        if names is not None:
            for name in names:
                try:
                    streams.append(open(name, "rb"))  # noqa: SIM115  # the caller closes them
                except FileNotFoundError:
                    break
            opened = [os.fstat(stream.fileno()).st_ino for stream in streams]
            if len(opened) == len(names) and opened == inodes(names):
                return streams
            for stream in streams:
                stream.close()
        time.sleep(0 if attempt < 10 else 0.001)  # a rotation is a few renames: let it end
    raise ShellctrError(f"the log {path} kept rotating while it was read", "retry")


def inodes(names: list[str]) -> list[int] | None:
    """The inodes the names point at now; None if one is gone."""
    try:
        return [os.stat(name).st_ino for name in names]
    except FileNotFoundError:
        return None


def rotated_files(path: Path | str) -> list[str] | None:
    """The rotated files of a log (PATH.N ... PATH.1), oldest first; None while a
    rotation is half done: their numbers have a gap, or do not start at 1."""
    directory, name = os.path.split(os.fspath(path))
    prefix = name + "."
    numbers = sorted(int(name[len(prefix):]) for name in os.listdir(directory)
                     if name.startswith(prefix) and name[len(prefix):].isdigit())
    if numbers != list(range(1, len(numbers) + 1)):
        return None
    return [os.path.join(directory, f"{prefix}{number}") for number in reversed(numbers)]


def read_rotated(path: Path | str, current: BinaryIO) -> list[Record]:
    """Every record of the rotated files older than `current` (the open PATH), oldest
    first (for `logs`, before PATH's)."""
    return read_between(path, None, current)


def iter_lines(path: Path) -> Iterator[str]:
    """Every line of text in the log, in order (for tests and tools)."""
    records, _ = read_records(path)
    for record in records:
        yield record.text


def log_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
