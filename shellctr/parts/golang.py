"""The few Go standard library behaviours that Docker's Dockerfile handling shows to users:
`filepath.Match` and `filepath.Clean` (COPY wildcards, .dockerignore), `unicode.IsSpace`
(word splitting), `strconv.Quote` and `fmt`'s `%q`/`%v` of a string slice (the history's
`CMD ["sh" "-c" "x"]`), and `time.ParseDuration`/`Duration.String` (HEALTHCHECK).

Each one is rewritten from the Go documentation and behaviour, so that the same input
gives the same answer (and the same error) as Docker."""

from __future__ import annotations

from collections.abc import Sequence

_GO_LATIN1_SPACES = frozenset("\t\n\v\f\r \x85\xa0")


def is_space(ch: str) -> bool:
    """Go's `unicode.IsSpace` (Python's `isspace` also counts the ASCII separators)."""
    if ord(ch) < 0x100:
        return ch in _GO_LATIN1_SPACES
    return ch.isspace()


def trim_space(text: str) -> str:
    """Go's `strings.TrimSpace`."""
    start, end = 0, len(text)
    while start < end and is_space(text[start]):
        start += 1
    while end > start and is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def trim_left_space(text: str) -> str:
    start = 0
    while start < len(text) and is_space(text[start]):
        start += 1
    return text[start:]


# -- paths ---------------------------------------------------------------------------------


class BadPattern(ValueError):
    """Go's `filepath.ErrBadPattern`."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def clean(path: str) -> str:
    """Go's `filepath.Clean` on Unix: the shortest equivalent path, "." for nothing."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    joined = "/".join(parts)
    if rooted:
        return "/" + joined
    return joined or "."


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise BadPattern
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern
    ch, rest = chunk[0], chunk[1:]
    if not rest:
        raise BadPattern
    return ch, rest


def _match_chunk(chunk: str, s: str) -> str | None:
    """The rest of `s` after `chunk` matched its start, or None; BadPattern if malformed."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        head = chunk[0]
        if head == "[":
            ch = ""
            if not failed:
                ch, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            matched = False
            ranges = 0
            while True:
                if chunk.startswith("]") and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if not failed and lo <= ch <= hi:
                    matched = True
                ranges += 1
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    return None if failed else s


def match(pattern: str, name: str) -> bool:
    """Go's `filepath.Match`: `*` and `?` never match `/`; `[...]`, `[^...]`, `\\` escapes.
    Raises BadPattern for a malformed pattern, as Go does (also when the match failed early)."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest = _match_chunk(chunk, name[i + 1:])
                if rest is not None and not (not pattern and rest):
                    name = rest
                    found = True
                    break
                i += 1
            if found:
                continue
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def check_pattern(pattern: str) -> None:
    """Raises BadPattern unless `pattern` is well formed (Docker checks with Match(p, "."))."""
    match(pattern, ".")


# -- formatting ------------------------------------------------------------------------------

_QUOTE_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r",
                  "\t": r"\t", "\v": r"\v", "\\": "\\\\", '"': '\\"'}


def quote(text: str, mark: str = '"') -> str:
    """Go's `strconv.Quote` (with `mark` "'", its QuoteRune of each character)."""
    out = [mark]
    for ch in text:
        if ch == mark or (ch in _QUOTE_ESCAPES and ch not in "'\""):
            out.append("\\" + mark if ch == mark else _QUOTE_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append(mark)
    return "".join(out)


def quote_rune(number: int) -> str:
    """Go's `%q` of an integer: a quoted character (`'\\x03'` for 3)."""
    return quote(chr(number), "'")


def format_q(items: Sequence[str] | None) -> str:
    """`fmt.Sprintf("%q", []string{...})`: `["sh" "-c" "x"]`."""
    return "[" + " ".join(quote(item) for item in items or ()) + "]"


def format_v(items: Sequence[str] | None) -> str:
    """`fmt.Sprintf("%v", []string{...})`: `[sh -c x]`."""
    return "[" + " ".join(items or ()) + "]"


# -- durations -------------------------------------------------------------------------------

NANOSECOND = 1
MICROSECOND = 1000
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
_UNITS = {"ns": NANOSECOND, "us": MICROSECOND, "µs": MICROSECOND, "μs": MICROSECOND,
          "ms": MILLISECOND, "s": SECOND, "m": MINUTE, "h": HOUR}
_MAX = 1 << 63


class DurationError(ValueError):
    pass


def _leading_int(s: str) -> tuple[int, str]:
    i = 0
    value = 0
    while i < len(s) and "0" <= s[i] <= "9":
        value = value * 10 + int(s[i])
        if value > _MAX:
            raise OverflowError
        i += 1
    return value, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    i = 0
    value = 0
    scale = 1.0
    overflow = False
    while i < len(s) and "0" <= s[i] <= "9":
        if not overflow:
            if value > (_MAX - 1) // 10:
                overflow = True
            else:
                value = value * 10 + int(s[i])
                scale *= 10
        i += 1
    return value, scale, s[i:]


def parse_duration(text: str) -> int:
    """Go's `time.ParseDuration`, in nanoseconds: `1h30m`, `1.5s`, `300ms`, `-2us`, `0`."""
    original = text
    invalid = DurationError(f'time: invalid duration "{original}"')
    negative = False
    if text and text[0] in "+-":
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise invalid
    total = 0
    while text:
        if not (text[0] == "." or "0" <= text[0] <= "9"):
            raise invalid
        before = len(text)
        try:
            value, text = _leading_int(text)
        except OverflowError:
            raise invalid from None
        pre = before != len(text)
        post = False
        fraction, scale = 0, 1.0
        if text.startswith("."):
            text = text[1:]
            before = len(text)
            fraction, scale, text = _leading_fraction(text)
            post = before != len(text)
        if not pre and not post:
            raise invalid
        i = 0
        while i < len(text) and not (text[i] == "." or "0" <= text[i] <= "9"):
            i += 1
        if i == 0:
            raise DurationError(f'time: missing unit in duration "{original}"')
        unit_name, text = text[:i], text[i:]
        if unit_name not in _UNITS:
            raise DurationError(f'time: unknown unit "{unit_name}" in duration "{original}"')
        unit = _UNITS[unit_name]
        if value > _MAX // unit:
            raise invalid
        value *= unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > _MAX:
                raise invalid
        total += value
        if total > _MAX:
            raise invalid
    if negative:
        return -total
    if total > _MAX - 1:
        raise invalid
    return total


def _frac(value: int, precision: int) -> tuple[str, int]:
    digits = []
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits.append(str(digit))
        value //= 10
    text = "".join(reversed(digits))
    return ("." + text if printed else ""), value


def format_duration(nanoseconds: int) -> str:
    """Go's `time.Duration.String`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `0s`."""
    negative = nanoseconds < 0
    u = -nanoseconds if negative else nanoseconds
    if u == 0:
        return "0s"
    if u < SECOND:
        if u < MICROSECOND:
            precision, unit = 0, "ns"
        elif u < MILLISECOND:
            precision, unit = 3, "µs"
        else:
            precision, unit = 6, "ms"
        fraction, u = _frac(u, precision)
        text = f"{u}{fraction}{unit}"
    else:
        fraction, u = _frac(u, 9)
        text = f"{u % 60}{fraction}s"
        u //= 60
        if u > 0:
            text = f"{u % 60}m{text}"
            u //= 60
            if u > 0:
                text = f"{u}h{text}"
    return "-" + text if negative else text
