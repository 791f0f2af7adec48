"""The first pass over a Dockerfile, as Docker's parser does it: physical lines into
instructions (`Node`s), with parser directives, comments, line continuations, JSON and
shell forms, builder flags and heredocs (one logical line's words are read by
shellctr.parts.dockerfile_line). The second pass (shellctr.parts.dockerfile) turns nodes
into typed steps.

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

import re
from dataclasses import dataclass, field

from shellctr.parts.dockerfile_line import Heredoc, Node, SyntaxProblem, node_from_line
from shellctr.parts.dockerfile_words import Lexer, SubstitutionError
from shellctr.parts.golang import trim_left_space

MAX_LINE = 65536  # bufio.Scanner's limit, as Docker's: longer lines are an error
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_HEREDOC = re.compile(r"(\d*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})


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
