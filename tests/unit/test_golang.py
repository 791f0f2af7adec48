"""golang: the Go standard library behaviours Docker's Dockerfile handling shows (expected
values checked against Go's own functions)."""

from __future__ import annotations

import pytest

from shellctr.parts import golang


@pytest.mark.parametrize(("pattern", "name", "matched"), [
    ("*", "abc", True),
    ("*", "a/b", False),
    ("a*", "abc", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("*.go", "x.go", True),
    ("*.go", "a.go/b", False),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[^a]", "b", True),
    ("[^a]", "a", False),
    ("[!a]", "!", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("[\\]]", "]", True),
    ("[a\\-z]", "-", True),
    ("[a\\-z]", "b", False),
    ("*x*y*", "axby", True),
    ("", "", True),
    ("", "a", False),
])
def test_match(pattern: str, name: str, matched: bool) -> None:
    assert golang.match(pattern, name) is matched


@pytest.mark.parametrize(("pattern", "name"), [
    ("[", "a"), ("[]", "a"), ("[a-]", "a"), ("a[", "a"), ("\\", "a"), ("a\\", "a"),
    ("[^]", "a"), ("[a-c", "a"), ("[-]", "-"), ("ab[c", "abc"),
    # the rest of the pattern is checked even when the match already failed (Go >= 1.20)
    ("x*[", "a"),
])
def test_match_bad_patterns(pattern: str, name: str) -> None:
    with pytest.raises(golang.BadPattern):
        golang.match(pattern, name)


@pytest.mark.parametrize(("path", "cleaned"), [
    ("", "."), (".", "."), ("/", "/"), ("//a", "/a"), ("a//b", "a/b"), ("a/./b", "a/b"),
    ("a/../b", "b"), ("../a", "../a"), ("/../a", "/a"), ("a/..", "."), ("./", "."),
    ("a/b/../../..", ".."), ("abc/", "abc"), ("/a/b/", "/a/b"),
])
def test_clean(path: str, cleaned: str) -> None:
    assert golang.clean(path) == cleaned


@pytest.mark.parametrize(("text", "nanoseconds"), [
    ("0", 0), ("1s", 10**9), ("1.5s", 1_500_000_000), ("300ms", 300_000_000), ("-2us", -2000),
    ("1h30m", 5400 * 10**9), ("1µs", 1000), ("1μs", 1000), ("+5m", 300 * 10**9), (".5s", 5 * 10**8),
    ("1.s", 10**9), ("0.000000001s", 1), ("1.0000000001s", 10**9), ("-0", 0),
    ("3.99999999999999999999s", 4 * 10**9), ("1h1h", 7200 * 10**9),
    ("2562047h47m16.854775807s", 2**63 - 1), ("9223372036854775807ns", 2**63 - 1),
])
def test_parse_duration(text: str, nanoseconds: int) -> None:
    assert golang.parse_duration(text) == nanoseconds


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'),
    ("x", 'time: invalid duration "x"'),
    (".s", 'time: invalid duration ".s"'),
    ("00", 'time: missing unit in duration "00"'),
    ("1", 'time: missing unit in duration "1"'),
    ("1x", 'time: unknown unit "x" in duration "1x"'),
    ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
    ("2562047h47m16.854775808s", 'time: invalid duration "2562047h47m16.854775808s"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(golang.DurationError) as caught:
        golang.parse_duration(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("nanoseconds", "text"), [
    (0, "0s"), (1, "1ns"), (999, "999ns"), (1000, "1µs"), (1500, "1.5µs"), (999999, "999.999µs"),
    (1000000, "1ms"), (1500000, "1.5ms"), (10**9, "1s"), (1_500_000_000, "1.5s"),
    (60 * 10**9, "1m0s"), (90 * 10**9, "1m30s"), (3600 * 10**9, "1h0m0s"),
    (3661 * 10**9, "1h1m1s"), (-1_500_000_000, "-1.5s"), (123456789012, "2m3.456789012s"),
])
def test_format_duration(nanoseconds: int, text: str) -> None:
    assert golang.format_duration(nanoseconds) == text


@pytest.mark.parametrize(("text", "quoted"), [
    ("", '""'), ("a b", '"a b"'), ('q"x', '"q\\"x"'), ("tab\tx", '"tab\\tx"'), ("nl\n", '"nl\\n"'),
    ("\x00\x7f", '"\\x00\\x7f"'), ("é", '"é"'), ("\u200b", '"\\u200b"'), ("\U0001F600", '"😀"'),
    ("\\", '"\\\\"'), ("\u2028", '"\\u2028"'), ("\xa0", '"\\u00a0"'), ("'", '"\'"'),
])
def test_quote(text: str, quoted: str) -> None:
    assert golang.quote(text) == quoted


def test_slice_formats() -> None:
    assert golang.format_q(["sh", "-c", 'echo "hi"']) == '["sh" "-c" "echo \\"hi\\""]'
    assert golang.format_q(None) == "[]"
    assert golang.format_v(["/a", "/b c"]) == "[/a /b c]"
    assert [golang.quote_rune(n) for n in (0, 3, 39, 34, 65, 92)] == [
        "'\\x00'", "'\\x03'", "'\\''", "'\"'", "'A'", "'\\\\'"]


def test_is_space_as_go() -> None:
    assert all(golang.is_space(ch) for ch in "\t\n\v\f\r \x85\xa0\u2003\u3000")
    assert not any(golang.is_space(ch) for ch in "\x1c\x1f\u200ba")
    assert golang.trim_space("\x85 a b \t") == "a b"
