"""The first pass over a Dockerfile, as Docker's parser does it: physical lines into
instructions (`Node`s), with parser directives, comments, line continuations, JSON and
shell forms, builder flags and heredocs. The second pass (shellctr.parts.dockerfile) turns
nodes into typed steps.

Rules (Docker's):
- Parser directives (`# syntax=`, `# escape=`, `# check=`; case-insensitive, whitespace
  allowed around `=`) are only read at the top: the first line that is not one (a blank
  line, another comment, an unknown directive, an instruction) ends them. A directive
  given twice is an error; `escape` is `\\` or a backtick.
- A line whose last non-blank character is the escape character continues on the next
  line; comment lines and blank lines inside a continuation are dropped (a blank one with
  a warning, as Docker). Continuation lines keep their leading whitespace.
- `RUN`, `COPY` and `ADD` (also under `ONBUILD`) in shell form may carry heredocs:
  `<<EOF`, `<<-EOF` (leading tabs stripped), `<<"EOF"` (no expansion), several per line;
  their bodies follow the instruction's line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from shellctr.parts.dockerfile_words import Lexer, SubstitutionError
from shellctr.parts.golang import is_space, trim_left_space, trim_space

MAX_LINE = 65536  # bufio.Scanner's limit, as Docker's: longer lines are an error
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_HEREDOC = re.compile(r"(\d*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})


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


@dataclass
class SyntaxResult:
    nodes: list[Node]
    escape: str
    directives: dict[str, str]
    warnings: list[str]


@dataclass
class _Directives:
    escape: str = "\\"
    continuation: re.Pattern[str] = field(default_factory=lambda: _continuation("\\"))
    done: bool = False
    seen: dict[str, str] = field(default_factory=dict)

    def read(self, line: str, number: int) -> bool:
        """Whether `line` is a parser directive (and apply it)."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        found = _DIRECTIVE.match(trim_left_space(line[1:]))
        key = found.group(1).lower() if found else ""
        if not found or key not in DIRECTIVES:
            self.done = True
            return False
        if key in self.seen:
            raise SyntaxProblem(f"only one {key} parser directive can be used", number)
        value = found.group(2)
        self.seen[key] = value
        if key == "escape":
            if value not in ("`", "\\"):
                raise SyntaxProblem(
                    f"invalid escape token '{value}' does not match ` or \\", number)
            self.escape = value
            self.continuation = _continuation(value)
        return True


def _continuation(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")


def is_comment(line: str) -> bool:
    return trim_left_space(line).startswith("#")


def chomp_heredoc(content: str) -> str:
    """`<<-`: leading tabs of every line removed."""
    return re.sub(r"(?m)^\t+", "", content)


def _split_lines(text: str) -> list[str]:
    """Lines with their `\\n` kept (only `\\n` ends a line, as Go's scanner)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def parse_lines(text: str) -> SyntaxResult:
    """The instructions of a Dockerfile; SyntaxProblem on the first malformed one."""
    text = text.removeprefix("\ufeff")
    lines = _split_lines(text)
    directives = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    number = 0
    i = 0
    while i < len(lines):
        physical = lines[i]
        i += 1
        number += 1
        if len(physical.encode("utf-8", "surrogateescape")) > MAX_LINE:
            raise SyntaxProblem(
                f"dockerfile line greater than max allowed size of {MAX_LINE - 1}", number)
        line = trim_left_space(_trim_newline(physical))
        directives.read(line, number)
        if is_comment(line):
            line = ""
        start = number
        line, ended = _trim_continuation(line, directives)
        if ended and not line:
            continue
        pieces = [line]
        empty_continuation = False
        while not ended and i < len(lines):
            physical = lines[i]
            i += 1
            number += 1
            if is_comment(physical):
                continue
            piece = _trim_newline(physical)
            if not trim_left_space(piece):
                empty_continuation = True
                continue
            piece, ended = _trim_continuation(piece, directives)
            pieces.append(piece)
        logical = "".join(pieces)
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {logical}")
        try:
            node = node_from_line(logical, directives.escape)
        except SyntaxProblem as problem:
            raise SyntaxProblem(problem.message, start, number) from None
        heredocs: list[Heredoc] = []
        if _can_contain_heredoc(node) and "<<" in logical:
            try:
                wanted = heredocs_from_line(logical)
            except SubstitutionError as error:
                raise SyntaxProblem(str(error), start, number) from None
            for heredoc in wanted:
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    physical = lines[i]
                    i += 1
                    number += 1
                    candidate = _trim_newline(physical)
                    if heredoc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == heredoc.name:
                        terminated = True
                        break
                    body.append(physical)
                if not terminated:
                    raise SyntaxProblem(
                        f"unterminated heredoc {heredoc.name!r} (no line {heredoc.name} "
                        "ends it)", start, number)
                heredocs.append(Heredoc(heredoc.name, "".join(body), heredoc.expand,
                                        heredoc.chomp, heredoc.fd))
        nodes.append(_with(node, start, number, tuple(heredocs)))
    return SyntaxResult(nodes, directives.escape, dict(directives.seen), warnings)


def _with(node: Node, line: int, end_line: int, heredocs: tuple[Heredoc, ...]) -> Node:
    child = node.child
    if child is not None:
        child = Node(child.keyword, child.args, child.flags, child.json, child.original, line,
                     end_line, heredocs, None)
        heredocs = ()
    return Node(node.keyword, node.args, node.flags, node.json, node.original, line, end_line,
                heredocs, child)


def _trim_continuation(line: str, directives: _Directives) -> tuple[str, bool]:
    if directives.continuation.search(line):
        return directives.continuation.sub(r"\1", line), False
    return line, True


def _can_contain_heredoc(node: Node) -> bool:
    if node.child is not None:
        node = node.child
    return node.name in HEREDOC_INSTRUCTIONS and not node.json


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word opens (`<<EOF`, `<<-EOF`, `2<<"EOF"`), or None."""
    found = _HEREDOC.match(word)
    if not found or not found.group(3):
        return None
    rest = found.group(3)
    words = Lexer(skip_unset=True).process_words(rest, {})
    if len(words) != 1:
        return None
    raw = Lexer(skip_unset=True, raw_quotes=True).process_words(rest, {})
    if len(raw) != len(words):
        raise SubstitutionError(
            f"internal lexing of heredoc produced inconsistent results: {rest}")

    def quotes(text: str) -> int:
        return text.count("'") + text.count('"')

    return Heredoc(name=words[0], expand=quotes(words[0]) == quotes(raw[0]),
                   chomp=found.group(2) == "-", fd=int(found.group(1) or 0))


def heredocs_from_line(line: str) -> list[Heredoc]:
    lexer = Lexer(raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = lexer.process_words(line, {})
    except SubstitutionError:
        words = []
    return [heredoc for word in words if (heredoc := parse_heredoc(word)) is not None]


# -- one logical line ---------------------------------------------------------------------


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


def extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading words starting with `--` (quotes and escapes in them processed), up to the
    first other word or a lone `--`; returns what follows, and the flags."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    phase = "spaces"
    pos = 0
    while True:
        at_end = pos == len(line)
        ch = "" if at_end else line[pos]
        if phase == "spaces":
            if at_end:
                break
            if is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == len(line) or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if at_end:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == "word":
            if is_space(ch):
                text = "".join(word)
                phase = "spaces"
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = "quote"
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == len(line):
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == len(line):
                phase = "word"
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def parse_words(rest: str, escape: str) -> list[str]:
    """Words split on whitespace outside quotes; quotes and escapes are kept (processed
    later, at expansion)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    phase = "spaces"
    pos = 0
    while True:
        at_end = pos == len(rest)
        ch = "" if at_end else rest[pos]
        if phase == "spaces":
            if at_end:
                break
            if is_space(ch):
                pos += 1
                continue
            phase = "word"
        if at_end:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == "word":
            if is_space(ch):
                phase = "spaces"
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = "quote"
            if ch == escape:
                if pos + 1 == len(rest):
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
        if ch == escape and quote != "'":
            if pos + 1 == len(rest):
                phase = "word"
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


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
