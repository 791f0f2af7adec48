"""attach's pieces without a container: detach keys, the monitor's frames."""

from __future__ import annotations

import struct

import pytest

from shellctr.core.errors import UsageError
from shellctr.engine import attach


@pytest.mark.parametrize(("text", "keys"), [
    ("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a", b"\x01"), ("ctrl-@", b"\x00"),
    ("ctrl-[,x", b"\x1bx"), ("a,b", b"ab")])
def test_detach_keys_parse_as_docker_writes_them(text: str, keys: bytes) -> None:
    assert attach.parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["ctrl-pq", "ctrl-1", "", "ab", "shift-a"])
def test_bad_detach_keys_are_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid detach keys"):
        attach.parse_detach_keys(text)


@pytest.mark.parametrize(("typed", "held", "sent", "detach"), [
    (b"ls\r", b"", b"ls\r", False),
    (b"ls\x10", b"\x10", b"ls", False),  # may begin ctrl-p ctrl-q: wait for the next key
    (b"\x10x", b"", b"\x10x", False),  # it did not: both go to the container
    (b"ls\x10\x11more", b"", b"ls", True),  # what came before the keys still goes
])
def test_typed_keys_are_held_back_only_while_they_may_begin_the_detach_keys(
        typed: bytes, held: bytes, sent: bytes, detach: bool) -> None:
    assert attach.match_keys(typed, b"\x10\x11") == (held, sent, detach)


def test_frames_go_to_their_stream_and_a_partial_one_waits(capfd: pytest.CaptureFixture[str]
                                                           ) -> None:
    def framed(stream: int, data: bytes) -> bytes:
        return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(data)) + data

    rest = attach.show(framed(1, b"out\n") + framed(2, b"err\n") + framed(1, b"lat")[:9])
    assert rest == framed(1, b"lat")[:9]
    assert capfd.readouterr() == ("out\n", "err\n")


def test_client_frames_are_type_length_payload() -> None:
    assert attach.frame(attach.INPUT, b"hi") == b"\x00\x00\x00\x00\x02hi"
    assert attach.frame(attach.WINDOW_SIZE, struct.pack(">HH", 40, 100)) == \
        b"\x01\x00\x00\x00\x04\x00\x28\x00\x64"
