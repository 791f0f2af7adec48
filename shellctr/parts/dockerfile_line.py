"""One logical line of a Dockerfile as Docker's parser reads it: the keyword, the builder
flags (`--from=x`), and the arguments in the instruction's own form (JSON or shell,
whitespace-separated words, `name=value` pairs, a healthcheck). Also the values both passes
share: `Node`, `Heredoc`, `SyntaxProblem`. The physical lines (directives, continuations,
heredoc bodies) are read by shellctr.parts.dockerfile_syntax."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shellctr.parts.golang import is_space, trim_left_space, trim_space

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


class SyntaxProblem(ValueError):
    """What is wrong, and on which lines (1-based, inclusive)."""

    def __init__(self, message: str, line: int, end_line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.end_line = end_line if end_line is not None else line


@dataclass(frozen=True)
class Heredoc:
    """A heredoc: its terminator `name`, its body (lines with their newlines), whether
    variables in it expand (unquoted terminator), whether leading tabs go (`<<-`)."""

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    fd: int = 0

    @property
    def data(self) -> str:
        """The body as the command sees it (leading tabs stripped for `<<-`)."""
        return chomp_heredoc(self.content) if self.chomp else self.content


@dataclass(frozen=True)
class Node:
    """One instruction as written: keyword, flags (`--from=x`), arguments, JSON form or not,
    heredocs, the sub-instruction of an ONBUILD, its text and its lines."""

    keyword: str
    args: tuple[str, ...]
    flags: tuple[str, ...] = ()
    json: bool = False
    original: str = ""
    line: int = 0
    end_line: int = 0
    heredocs: tuple[Heredoc, ...] = ()
    child: Node | None = None

    @property
    def name(self) -> str:
        return self.keyword.lower()


def chomp_heredoc(content: str) -> str:
    """`<<-`: leading tabs of every line removed."""
    return re.sub(r"(?m)^\t+", "", content)


def node_from_line(line: str, escape: str) -> Node:
    keyword, flags, rest = split_command(line, escape)
    name = keyword.lower()
    if name == "onbuild":
        child = node_from_line(rest, escape) if rest else None
        args = (child.keyword, *child.args) if child else ()
        return Node(keyword, args, tuple(flags), False, line, child=child)
    parser = _LINE_PARSERS.get(name)
    if parser is None:  # an unknown instruction: reported by the second pass
        return Node(keyword, (), tuple(flags), False, line)
    words, is_json = parser(rest, escape)
    return Node(keyword, tuple(words), tuple(flags), is_json, line)


def split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """The keyword, the leading `--flag` words, and the rest (trimmed)."""
    parts = _WHITESPACE.split(trim_space(line), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = extract_flags(parts[1], escape)
    return parts[0], flags, trim_space(rest)


def scan_words(text: str, escape: str, *, raw: bool) -> Iterator[tuple[int, int, str, bool]]:
    """The words of `text`, split on whitespace outside quotes, as (start, end, word, quoted).
    `raw`: quotes and escapes are kept in the word (processed later, at expansion) and an
    escape inside single quotes is a plain character; else both are processed here."""
    pos, size = 0, len(text)
    while True:
        while pos < size and is_space(text[pos]):
            pos += 1
        if pos == size:
            return
        start, word, quoted, quote = pos, [], False, ""
        while pos < size:
            ch = text[pos]
            if not quote and is_space(ch):
                break
            if not quote and ch in ("'", '"'):
                quote, quoted = ch, True
                word += [ch] if raw else []
                pos += 1
                continue
            if quote and ch == quote:
                quote = ""
                word += [ch] if raw else []
                pos += 1
                continue
            if ch == escape and not (raw and quote == "'"):
                pos += 1
                if pos == size:  # a trailing escape is dropped
                    break
                word += [ch] if raw else []
                ch = text[pos]
            word.append(ch)
            pos += 1
        yield start, pos, "".join(word), quoted


def extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading words starting with `--` (quotes and escapes in them processed), up to the
    first other word or a lone `--`; returns what follows, and the flags."""
    flags: list[str] = []
    for start, end, word, quoted in scan_words(line, escape, raw=False):
        if not line.startswith("--", start):
            return line[start:], flags
        if word == "--":
            return line[end:], flags
        if quoted or word:
            flags.append(word)
    return "", flags


def parse_words(rest: str, escape: str) -> list[str]:
    """Words split on whitespace outside quotes; quotes and escapes are kept (processed
    later, at expansion)."""
    return [word for _, _, word, quoted in scan_words(rest, escape, raw=True) if quoted or word]


class _NotJSON(Exception):
    pass


def _reject_constant(name: str) -> object:
    raise _NotJSON(name)


def parse_json(rest: str) -> list[str] | None:
    """A JSON array of strings, or None if `rest` is not JSON (then it is shell form);
    SyntaxProblem for a JSON array holding something else than strings."""
    rest = trim_left_space(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, _NotJSON, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise SyntaxProblem(
            "when using JSON array syntax, arrays must be comprised of strings only", 0)
    return value


def _maybe_json(rest: str, escape: str) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    value = parse_json(rest)
    if value is not None:
        return value, True
    return [rest], False


def _maybe_json_to_list(rest: str, escape: str) -> tuple[list[str], bool]:
    value = parse_json(rest)
    if value is not None:
        return value, True
    return _whitespace_delimited(rest, escape)


def _whitespace_delimited(rest: str, escape: str) -> tuple[list[str], bool]:
    return ([] if not rest else _WHITESPACE.split(rest)), False


def _string(rest: str, escape: str) -> tuple[list[str], bool]:
    return ([rest] if rest else []), False


LineParser = Callable[[str, str], tuple[list[str], bool]]


def _name_val(keyword: str) -> LineParser:
    def parse(rest: str, escape: str) -> tuple[list[str], bool]:
        """`KEY name value` (old form) or `KEY a=1 b="x y"`: triples key, value, `=` or ``."""
        words = parse_words(rest, escape)
        if not words:
            return [], False
        if "=" not in words[0]:
            parts = _WHITESPACE.split(rest, maxsplit=1)
            if len(parts) < 2:
                raise SyntaxProblem(f"{keyword} must have two arguments", 0)
            return [parts[0], parts[1], ""], False
        out: list[str] = []
        for word in words:
            if "=" not in word:
                raise SyntaxProblem(
                    f"Syntax error - can't find = in {word!r}. Must be of the form: "
                    "name=value", 0)
            key, _, value = word.partition("=")
            out += [key, value, "="]
        return out, False

    return parse


def _name_or_name_val(rest: str, escape: str) -> tuple[list[str], bool]:
    return parse_words(rest, escape), False


def _health(rest: str, escape: str) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not is_space(rest[sep]):
        sep += 1
    following = sep
    while following < len(rest) and is_space(rest[following]):
        following += 1
    if sep == 0:
        return [], False
    command, is_json = _maybe_json(rest[following:], escape)
    return [rest[:sep], *command], is_json


_LINE_PARSERS: dict[str, LineParser] = {
    "add": _maybe_json_to_list,
    "arg": _name_or_name_val,
    "cmd": _maybe_json,
    "copy": _maybe_json_to_list,
    "entrypoint": _maybe_json,
    "env": _name_val("ENV"),
    "expose": _whitespace_delimited,
    "from": _whitespace_delimited,
    "healthcheck": _health,
    "label": _name_val("LABEL"),
    "maintainer": _string,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _string,
    "user": _string,
    "volume": _maybe_json_to_list,
    "workdir": _string,
}
