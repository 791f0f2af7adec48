"""textfmt: Docker's wording of durations, sizes and commands in tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shellctr.cli import textfmt
from shellctr.cli.textfmt import (
    command_column,
    displayable_ports,
    human_duration,
    human_size,
    table,
)

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = 7 * DAY
MONTH = 30 * DAY
YEAR = 365 * DAY
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# docker/go-units duration_test.go: TestHumanDuration, case by case
@pytest.mark.parametrize(("elapsed", "words"), [
    (timedelta(milliseconds=450), "Less than a second"),
    (1 * SECOND, "1 second"),
    (45 * SECOND, "45 seconds"),
    (46 * SECOND, "46 seconds"),
    (59 * SECOND, "59 seconds"),
    (60 * SECOND, "About a minute"),
    (1 * MINUTE, "About a minute"),
    (3 * MINUTE, "3 minutes"),
    (35 * MINUTE, "35 minutes"),
    (35 * MINUTE + 40 * SECOND, "35 minutes"),
    (45 * MINUTE, "45 minutes"),
    (45 * MINUTE + 40 * SECOND, "45 minutes"),
    (46 * MINUTE, "46 minutes"),
    (59 * MINUTE, "59 minutes"),
    (1 * HOUR, "About an hour"),
    (1 * HOUR + 29 * MINUTE, "About an hour"),
    (1 * HOUR + 31 * MINUTE, "2 hours"),
    (1 * HOUR + 59 * MINUTE, "2 hours"),
    (3 * HOUR, "3 hours"),
    (3 * HOUR + 29 * MINUTE, "3 hours"),
    (3 * HOUR + 31 * MINUTE, "4 hours"),
    (3 * HOUR + 59 * MINUTE, "4 hours"),
    (3 * HOUR + 60 * MINUTE, "4 hours"),
    (24 * HOUR, "24 hours"),
    (1 * DAY + 12 * HOUR, "36 hours"),
    (47 * HOUR, "47 hours"),
    (2 * DAY, "2 days"),
    (7 * DAY, "7 days"),
    (13 * DAY + 5 * HOUR, "13 days"),
    (2 * WEEK, "2 weeks"),
    (2 * WEEK + 4 * DAY, "2 weeks"),
    (3 * WEEK, "3 weeks"),
    (4 * WEEK, "4 weeks"),
    (4 * WEEK + 3 * DAY, "4 weeks"),
    (1 * MONTH, "4 weeks"),
    (1 * MONTH + 2 * WEEK, "6 weeks"),
    (2 * MONTH, "2 months"),
    (2 * MONTH + 2 * WEEK, "2 months"),
    (3 * MONTH, "3 months"),
    (3 * MONTH + 1 * WEEK, "3 months"),
    (5 * MONTH + 2 * WEEK, "5 months"),
    (13 * MONTH, "13 months"),
    (23 * MONTH, "23 months"),
    (24 * MONTH, "24 months"),
    (24 * MONTH + 2 * WEEK, "2 years"),
    (3 * YEAR + 2 * MONTH, "3 years"),
])
def test_human_duration_matches_docker(elapsed: timedelta, words: str) -> None:
    assert human_duration(START, START + elapsed) == words


def test_human_duration_rounds_half_an_hour_up_like_go() -> None:
    assert human_duration(START, START + HOUR + 30 * MINUTE) == "2 hours"
    assert human_duration(START, START + 47 * HOUR + 30 * MINUTE) == "2 days"


def test_human_duration_of_a_clock_skew_is_less_than_a_second() -> None:
    assert human_duration(START, START - 5 * SECOND) == "Less than a second"


@pytest.mark.parametrize(("size", "text"), [
    (0, "0B"),
    (999, "999B"),
    (1000, "1kB"),
    (1234, "1.23kB"),
    (1_980_000, "1.98MB"),
    (4_260_000, "4.26MB"),
    (12_345_678, "12.3MB"),
    (123_456_789, "123MB"),
    (2_500_000_000, "2.5GB"),
    (3 * 10**12, "3TB"),
])
def test_human_size_is_docker_images_size_column(size: int, text: str) -> None:
    assert human_size(size) == text


def test_command_column_quotes_the_command() -> None:
    assert command_column(["sh"], truncate=True) == '"sh"'
    assert command_column(["echo", 'say "hi"', "a\\b"], truncate=False) == (
        '"echo say \\"hi\\" a\\\\b"')


def test_command_column_escapes_newlines_and_tabs_like_go_strconv_quote() -> None:
    assert command_column(["sh", "-c", "a\nb\tc"], truncate=False) == '"sh -c a\\nb\\tc"'
    assert "\n" not in command_column(["sh", "-c", "echo 1\necho 2"], truncate=True)


def test_command_column_truncates_to_20_characters_with_an_ellipsis() -> None:
    argv = ["sh", "-c", "while true; do sleep 1; done"]
    assert command_column(argv, truncate=True) == '"sh -c while true; d…"'
    assert len(command_column(argv, truncate=True)) == 20 + 2
    assert command_column(argv, truncate=False) == '"sh -c while true; do sleep 1; done"'
    exactly_20 = ["x" * 20]
    assert command_column(exactly_20, truncate=True) == '"' + "x" * 20 + '"'


def test_table_without_rows_is_the_header_line() -> None:
    assert table(["CONTAINER ID", "IMAGE", "NAMES"], []) == "CONTAINER ID   IMAGE   NAMES"


def test_table_aligns_columns_left_without_trailing_spaces() -> None:
    text = table(["A", "B"], [["x", "yy"], ["long one", "z"], ["123", ""]])
    assert text == "A         B\nx         yy\nlong one  z\n123"


TABLES = [
    (["CONTAINER ID", "IMAGE", "COMMAND", "PORTS", "NAMES"],
     [["4aeefc8daa88", "busybox", '"true"', "", "clever_williams"],
      ["7d935fdb6794", "busybox:latest", '"sleep 1000"', "0.0.0.0:8080->80/tcp", "web"]]),
    (["A", "B"], [[" padded ", "  "], ["1.5", "007"], ["…", "é"]]),  # stripped, not numbers
    (["A", "LONG HEADER"], [["x", "y"]]),
    (["IMAGE", "CREATED BY"], [["abc", "RUN a \\\n b"], ["<missing>", "two\nlines"]]),
    (["A", "B", "C"], [["x", "y"], ["1", "2", "3"]]),  # a ragged row
    (["A", "B"], [["\x1b[1mbold\x1b[0m", "x"]]),
]


@pytest.mark.parametrize(("headers", "rows"), TABLES)
def test_table_lays_out_as_tabulates_plain_format(headers: list[str], rows: list[list[str]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tabulate import tabulate

    if TABLES.index((headers, rows)) < 3:  # one line per cell: laid out without tabulate
        monkeypatch.setattr(textfmt, "tabulated", None)
    expected = tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True)
    assert table(headers, rows) == "\n".join(line.rstrip() for line in expected.splitlines())


@pytest.mark.parametrize(("ports", "column"), [
    ([], ""),
    ([("", 0, 80, "tcp")], "80/tcp"),
    # exposed, consecutive: one range per protocol, in port order
    ([("", 0, 7002, "tcp"), ("", 0, 7000, "tcp"), ("", 0, 7001, "tcp"), ("", 0, 53, "udp")],
     "53/udp, 7000-7002/tcp"),
    ([("", 0, 80, "tcp"), ("", 0, 81, "tcp"), ("", 0, 83, "tcp")], "80-81/tcp, 83/tcp"),
    # published on the same port numbers: a range
    ([("0.0.0.0", 8000 + n, 8000 + n, "tcp") for n in range(3)],
     "0.0.0.0:8000-8002->8000-8002/tcp"),
    # published elsewhere: one by one after the groups, as Docker's DisplayablePorts
    ([("0.0.0.0", 8000 + n, 80 + n, "tcp") for n in range(3)] + [("", 0, 9000, "tcp")],
     "9000/tcp, 0.0.0.0:8000->80/tcp, 0.0.0.0:8001->81/tcp, 0.0.0.0:8002->82/tcp"),
    ([("127.0.0.1", 90, 90, "udp"), ("127.0.0.1", 91, 91, "udp"), ("0.0.0.0", 92, 92, "udp")],
     "127.0.0.1:90-91->90-91/udp, 0.0.0.0:92->92/udp"),
    ([("0.0.0.0", 18080, 80, "tcp"), ("0.0.0.0", 49153, 8000, "tcp")],
     "0.0.0.0:18080->80/tcp, 0.0.0.0:49153->8000/tcp"),
])
def test_ps_ports_column_groups_as_docker(ports: list[tuple[str, int, int, str]],
                                          column: str) -> None:
    assert displayable_ports(ports) == column
