"""logs: reading the monitor's json-file log; --tail/--since/--until; `logs -f`."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shellctr.core.errors import ShellctrError
from shellctr.engine import logs
from shellctr.engine.logs import Record, follow, parse_since, parse_time, read_records, select

NOW = datetime(2026, 11, 29, 19, 0, 0, tzinfo=UTC)


def line(text: str, stream: str = "stdout", time: str = "2026-11-29T19:00:00.000000001Z") -> bytes:
    """One record as the monitor writes it."""
    return (json.dumps({"log": text, "stream": stream, "time": time},
                       separators=(",", ":")) + "\n").encode()


def texts(records: list[Record]) -> list[str]:
    return [record.text for record in records]


# -- read_records ----------------------------------------------------------------------
def test_read_records_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert read_records(tmp_path / "container.log", 7) == ([], 7)


def test_read_records_keeps_streams_times_and_text(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    path.write_bytes(line("out\n") + line("err\n", "stderr", "2026-11-29T19:00:01.5Z")
                     + line("no newline at the end"))
    records, offset = read_records(path)
    assert [(r.stream, r.time, r.text) for r in records] == [
        ("stdout", "2026-11-29T19:00:00.000000001Z", "out\n"),
        ("stderr", "2026-11-29T19:00:01.5Z", "err\n"),
        ("stdout", "2026-11-29T19:00:00.000000001Z", "no newline at the end")]
    assert offset == path.stat().st_size


def test_a_partial_last_line_waits_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    first, second = line("one\n"), line("two\n")
    path.write_bytes(first + second[:10])  # the monitor is half-way through a record
    records, offset = read_records(path)
    assert texts(records) == ["one\n"] and offset == len(first)
    path.write_bytes(first + second + line("three\n"))
    records, offset = read_records(path, offset)
    assert texts(records) == ["two\n", "three\n"]
    assert offset == path.stat().st_size
    assert read_records(path, offset) == ([], offset)


def test_read_records_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    path.write_bytes(b"\n" + line("a\n") + b"\n")
    assert texts(read_records(path)[0]) == ["a\n"]


def test_iter_lines_and_log_size(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    assert logs.log_size(path) == 0
    path.write_bytes(line("a\n") + line("b\n", "stderr"))
    assert list(logs.iter_lines(path)) == ["a\n", "b\n"]
    assert logs.log_size(path) == path.stat().st_size


# -- times -----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "when"), [
    ("2026-11-29T19:40:00.123456789Z", datetime(2026, 11, 29, 19, 40, 0, 123456, UTC)),
    ("2026-11-29T19:40:00Z", datetime(2026, 11, 29, 19, 40, 0, tzinfo=UTC)),
    ("2026-11-29T19:40:00.5Z", datetime(2026, 11, 29, 19, 40, 0, 500000, UTC)),
    ("2026-11-29T21:40:00+02:00", datetime(2026, 11, 29, 19, 40, 0, tzinfo=UTC)),
])
def test_parse_time_reads_the_monitors_nanoseconds(text: str, when: datetime) -> None:
    assert parse_time(text) == when


@pytest.mark.parametrize("text", ["2026-11-29 19:40:00Z", "2026-11-29T19:40:00", "now", ""])
def test_parse_time_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.mark.parametrize(("value", "when"), [
    ("2026-11-29T18:00:00Z", datetime(2026, 11, 29, 18, 0, tzinfo=UTC)),  # RFC 3339
    ("2026-11-29T18:00:00.25Z", datetime(2026, 11, 29, 18, 0, 0, 250000, UTC)),
    ("2026-11-29T20:00:00+02:00", datetime(2026, 11, 29, 18, 0, tzinfo=UTC)),
    ("2026-11-29T18:00:00", datetime(2026, 11, 29, 18, 0, tzinfo=UTC)),  # no zone: UTC
    ("2026-11-29", datetime(2026, 11, 29, tzinfo=UTC)),  # a date: its midnight, UTC
    ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),  # Unix time
    ("1700000000.5", datetime(2023, 11, 14, 22, 13, 20, 500000, UTC)),
    ("0", datetime(1970, 1, 1, tzinfo=UTC)),
    ("10m", NOW - timedelta(minutes=10)),  # a duration before now
    ("45s", NOW - timedelta(seconds=45)),
    ("1h30m", NOW - timedelta(hours=1, minutes=30)),
    ("1.5h", NOW - timedelta(hours=1, minutes=30)),
    ("250ms", NOW - timedelta(milliseconds=250)),
    ("2h0m10s", NOW - timedelta(hours=2, seconds=10)),
])
def test_parse_since(value: str, when: datetime) -> None:
    assert parse_since(value, NOW) == when


def test_parse_since_durations_count_back_from_the_current_time() -> None:
    before = datetime.now(UTC)
    when = parse_since("1h")
    assert before - timedelta(hours=1) <= when <= datetime.now(UTC) - timedelta(hours=1)


@pytest.mark.parametrize("value", ["yesterday", "10x", "", "-5m", "m", "1h-3m", "2026-13-01",
                                   "2026-11-29T25:00:00Z", "29/11/2026"])
def test_parse_since_bad_input_is_a_clear_error(value: str) -> None:
    with pytest.raises(ShellctrError, match=f"^invalid time {value!r}") as info:
        parse_since(value, NOW)
    assert info.value.hint == "use RFC 3339 (2026-11-29T19:00:00Z), a Unix time or 10m"


# -- select ----------------------------------------------------------------------------
RECORDS = [Record(f"2026-11-29T19:00:0{i}.000000000Z", "stdout", f"{i}\n") for i in range(6)]


def at(second: int) -> datetime:
    return datetime(2026, 11, 29, 19, 0, second, tzinfo=UTC)


@pytest.mark.parametrize(("tail", "since", "until", "expected"), [
    (None, None, None, ["0\n", "1\n", "2\n", "3\n", "4\n", "5\n"]),
    (2, None, None, ["4\n", "5\n"]),
    (0, None, None, []),
    (100, None, None, ["0\n", "1\n", "2\n", "3\n", "4\n", "5\n"]),
    (None, at(2), None, ["2\n", "3\n", "4\n", "5\n"]),  # --since is inclusive
    (None, None, at(2), ["0\n", "1\n", "2\n"]),  # so is --until
    (None, at(1), at(3), ["1\n", "2\n", "3\n"]),
    # the window first, then the tail of it (Docker's order): not the window of the tail
    (2, None, at(3), ["2\n", "3\n"]),
    (2, at(1), at(3), ["2\n", "3\n"]),
    (5, at(4), None, ["4\n", "5\n"]),
    (None, at(9), None, []),
])
def test_select(tail: int | None, since: datetime | None, until: datetime | None,
                expected: list[str]) -> None:
    assert texts(select(RECORDS, tail, since, until)) == expected


# -- show / follow ---------------------------------------------------------------------
def test_show_writes_each_stream_to_ours_with_an_optional_timestamp(
        capsys: pytest.CaptureFixture[str]) -> None:
    logs.show(Record("2026-11-29T19:00:00.000000001Z", "stdout", "out\n"), timestamps=False)
    logs.show(Record("2026-11-29T19:00:00.000000002Z", "stderr", "err\n"), timestamps=True)
    logs.show(Record("2026-11-29T19:00:00.000000003Z", "stdout", "no newline"), timestamps=True)
    out, err = capsys.readouterr()
    assert out == "out\n2026-11-29T19:00:00.000000003Z no newline"
    assert err == "2026-11-29T19:00:00.000000002Z err\n"


def test_follow_prints_until_the_container_has_ended_and_loses_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "POLL_SECONDS", 0.001)
    path = tmp_path / "container.log"
    path.write_bytes(line("old\n"))  # already shown by `logs` before -f follows
    offset = path.stat().st_size
    # what the container writes between two looks, and whether it still runs then
    script = [(line("one\n"), True), (b"", True),
              (line("err\n", "stderr") + line("two", "stdout")[:5], True),
              (line("two")[5:] + line("last\n"), False),  # written just before the end
              (line("never read\n"), False)]
    calls = 0

    def running() -> bool:
        nonlocal calls
        data, still = script[calls]
        calls += 1
        with open(path, "ab") as stream:
            stream.write(data)
        return still

    follow(path, offset, running, timestamps=False, until=None)
    out, err = capsys.readouterr()
    assert (out, err) == ("one\ntwolast\n", "err\n")
    assert calls == 4  # it stopped at the first look that found the container ended


def test_follow_stops_at_until(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "container.log"
    path.write_bytes(line("a\n", time="2026-11-29T19:00:01Z")
                     + line("b\n", time="2026-11-29T19:00:02Z")
                     + line("c\n", time="2026-11-29T19:00:03Z"))
    follow(path, 0, lambda: True, timestamps=True, until=at(2))  # returns though it runs
    assert capsys.readouterr().out == "2026-11-29T19:00:01Z a\n2026-11-29T19:00:02Z b\n"


def test_follow_reads_to_the_end_of_a_log_removed_as_the_container_ended(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "container.log"
    path.write_bytes(line("first\n"))
    with open(path, "ab") as monitor, open(path, "rb") as stream:
        def running() -> bool:  # the --rm container prints its last line and is removed
            monitor.write(line("last\n"))
            monitor.flush()
            path.unlink()
            return False

        follow(stream, 0, running, timestamps=False, until=None)
    assert capsys.readouterr().out == "first\nlast\n"


# -- rotations while `logs -f` reads -------------------------------------------------------
def rotate_as_the_monitor_does(path: Path, pause: float) -> None:
    """PATH.N -> PATH.N+1 ... PATH -> PATH.1, one rename at a time, then a new PATH."""
    rotated = sorted(int(p.name.rsplit(".", 1)[1]) for p in path.parent.glob(path.name + ".*"))
    for number in reversed(rotated):
        path.with_name(f"{path.name}.{number}").rename(path.with_name(f"{path.name}.{number + 1}"))
        time.sleep(pause)  # the window a reader may look through, wide open
    path.rename(path.with_name(path.name + ".1"))
    time.sleep(pause)
    path.touch()


def test_rotated_files_waits_out_a_half_done_rotation(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    for name in ("container.log", "container.log.1", "container.log.3"):  # .2 moving to .3
        (tmp_path / name).write_bytes(b"")
    assert logs.rotated_files(path) is None
    (tmp_path / "container.log.1").rename(tmp_path / "container.log.2")  # .1 moving to .2
    assert logs.rotated_files(path) is None
    (tmp_path / "container.log").rename(tmp_path / "container.log.1")
    assert logs.rotated_files(path) == [str(tmp_path / f"container.log.{n}") for n in (3, 2, 1)]


def test_follow_loses_nothing_when_the_log_rotates_many_times_between_looks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "container.log"
    path.touch()
    total = 300

    def write() -> None:
        for n in range(1, total + 1):
            with open(path, "ab") as out:
                out.write(line(f"{n}\n"))
            if n % 7 == 0:
                rotate_as_the_monitor_does(path, pause=0.0005)

    writer = threading.Thread(target=write)
    with open(path, "rb") as log:  # open before the first rotation, as `logs -f` does
        writer.start()
        follow(log, 0, writer.is_alive, False, None, path)
    writer.join()
    assert capsys.readouterr().out == "".join(f"{n}\n" for n in range(1, total + 1))
