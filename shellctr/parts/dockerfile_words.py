"""Dockerfile word processing: quotes, escapes and `$VAR` substitution, as Docker's shell
lexer does it for the instructions that take variables (ADD COPY ENV EXPOSE FROM LABEL
STOPSIGNAL USER VOLUME WORKDIR ARG).

- `'...'` is literal; `"..."` expands `$` and lets the escape character escape `"`, `$`
  and itself (any other escaped character keeps its escape); outside quotes the escape
  character escapes anything.
- `$V`, `${V}`, `${V:-x}` `${V-x}` (default), `${V:+x}` `${V+x}` (alternative),
  `${V:?msg}` `${V?msg}` (required), `${V#pat}` `${V##pat}` `${V%pat}` `${V%%pat}`
  (trim), `${V/pat/x}` `${V//pat/x}` (replace). The `:` forms treat empty as unset.
  Positional and special parameters (`$1`, `$@`, `$#`...) are always empty.
- `process_word` gives one string (spaces kept); `process_words` splits into words after
  substitution: a variable's value splits on whitespace, quoted text never does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shellctr.parts.golang import is_space, quote

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class SubstitutionError(ValueError):
    """A malformed word: unclosed quote or brace, bad substitution, `${V:?}` of an unset V."""


@dataclass(frozen=True)
class Expansion:
    """A processed word: its text, its words, and which variables it read (set or not)."""

    text: str
    words: tuple[str, ...]
    used: frozenset[str]
    unset: frozenset[str]


class _Words:
    """Word splitting while the word is built (Go's wordsStruct)."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False
        return self.words


@dataclass
class Lexer:
    """Docker's shell lexer. `raw_quotes` keeps quote characters, `raw_escapes` keeps escape
    characters, `skip_unset` leaves unset variables as written, `skip_quotes` treats quotes
    as plain characters (COPY's heredoc contents)."""

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_unset: bool = False
    skip_quotes: bool = False

    def process_word(self, word: str, env: Mapping[str, str]) -> Expansion:
        return _Run(self, word, env).process()

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return list(_Run(self, word, env).process().words)


@dataclass
class _Run:
    lexer: Lexer
    text: str
    env: Mapping[str, str]
    pos: int = 0
    raw_escapes: bool = False
    used: set[str] = field(default_factory=set)
    unset: set[str] = field(default_factory=set)

    def process(self) -> Expansion:
        self.raw_escapes = self.lexer.raw_escapes
        try:
            text, words = self.stop_on(None, self.raw_escapes)
        except SubstitutionError as error:
            raise SubstitutionError(f"failed to process {quote(self.text)}: {error}") from None
        return Expansion(text, tuple(words), frozenset(self.used), frozenset(self.unset))

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self) -> str | None:
        ch = self.peek()
        if ch is not None:
            self.pos += 1
        return ch

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.used.add(name)
            return self.env[name], True
        self.unset.add(name)
        return "", False

    def stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str | None) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        escape = self.lexer.escape
        quotes = "" if self.lexer.skip_quotes else "'\""
        while (ch := self.peek()) is not None:
            if stop is not None and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$" or ch == "<" or ch in quotes:
                if ch == "$":
                    piece = self.dollar()
                    words.add_string(piece)
                else:
                    piece = {"<": self.possible_heredoc, "'": self.single_quote,
                             '"': self.double_quote}[ch]()
                    words.add_raw_string(piece)
                result.append(piece)
                continue
            self.next()
            if ch == escape:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                escaped = self.next()
                if escaped is None:
                    break
                words.add_raw_char(escaped)
                result.append(escaped)
                continue
            words.add_char(ch)
            result.append(ch)
        if stop is not None:
            raise SubstitutionError(
                f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        out = []
        quote = self.next()
        if self.lexer.raw_quotes and quote:
            out.append(quote)
        while True:
            ch = self.next()
            if ch is None:
                raise SubstitutionError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lexer.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        out = []
        quote = self.next()
        if self.lexer.raw_quotes and quote:
            out.append(quote)
        escape = self.lexer.escape
        while True:
            ch = self.peek()
            if ch is None:
                raise SubstitutionError(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lexer.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following is None:
                    continue
                if following in ('"', "$", escape):
                    ch = following
                    self.next()
            out.append(ch)

    def possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space = []
        while (ch := self.peek()) is not None and ch in "\t\r ":
            space.append(ch)
            self.next()
        return "<<" + "".join(space)

    def name(self) -> str:
        out: list[str] = []
        while (ch := self.peek()) is not None:
            if not out and ch.isdecimal():
                while (digit := self.peek()) is not None and digit.isdecimal():
                    out.append(digit)
                    self.next()
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                self.next()
                return ch
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            out.append(ch)
            self.next()
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lexer.skip_unset:
                return "$" + name
            return value
        self.next()
        following = self.peek()
        if following is None:
            raise SubstitutionError("syntax error: missing '}'")
        if following in "{}:":
            raise SubstitutionError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch is None:
            raise SubstitutionError("syntax error: missing '}'")
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lexer.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self.replace(name)
        modifier = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            if ch is None:
                raise SubstitutionError("syntax error: missing '}'")
            modifier += ch
        elif ch not in "+-?#%":
            raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")
        trim = ch in "#%"
        if null_is_unset and trim:
            raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")
        word = self.until("}", trim, "syntax error: missing '}'")
        value, found = self.get_env(name)
        if self.lexer.skip_unset and not found:
            return "${" + name + modifier + word + "}"
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise SubstitutionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in "#%":
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")

    def until(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            word, _ = self.stop_on(stop, raw_escapes)
        except SubstitutionError:
            if self.peek() is None:
                raise SubstitutionError(missing) from None
            raise
        return word

    def replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self.until("/", True, "syntax error: missing '/' in ${}")
        replacement = self.until("}", True, "syntax error: missing '}'")
        value, found = self.get_env(name)
        if self.lexer.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        return _replace(_shell_pattern(pattern, greedy=True, anchored=False), value,
                        replacement, replace_all)


def _shell_pattern(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard (`*`, `?`, `\\` escapes; no brackets) as a regular expression."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise SubstitutionError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{following}'")
            out.append("\\" + following)
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _replace(regex: re.Pattern[str], value: str, template: str, replace_all: bool) -> str:
    """Go's ReplaceAllString (an empty match right after a match is not replaced) or the
    first match only."""
    if not replace_all:
        found = regex.search(value)
        if not found:
            return value
        return value[:found.start()] + _go_expand(template, found) + value[found.end():]
    out = []
    search = last_end = 0
    while search <= len(value):
        found = regex.search(value, search)
        if not found:
            break
        out.append(value[last_end:found.start()])
        if found.end() > last_end or found.start() == 0:
            out.append(_go_expand(template, found))
        last_end = found.end()
        search = max(search + 1, found.end())
    out.append(value[last_end:])
    return "".join(out)


def _go_expand(template: str, found: re.Match[str]) -> str:
    """Go's Regexp.Expand for a pattern without groups: `$$` is `$`, `$0`/`${0}` the match,
    any other `$name` nothing."""
    def one(ref: re.Match[str]) -> str:
        token = ref.group(0)
        if token == "$$":
            return "$"
        name = ref.group(1) or ref.group(2)
        return found.group(0) if name == "0" else ""

    return re.sub(r"\$\$|\$\{(\w+)\}|\$(\w+)", one, template)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    found = _shell_pattern(pattern, greedy, anchored=True).match(value)
    return value[found.end():] if found else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each `\\x` escape in front of its character."""
    pieces = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            pieces.append(pattern[i:i + 2])
            i += 2
        else:
            pieces.append(pattern[i])
            i += 1
    return "".join(reversed(pieces))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word after quotes, escapes and substitution (ENV values, WORKDIR, USER...)."""
    return Lexer(escape).process_word(word, env).text


def process_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """A word split into words after substitution (EXPOSE's `$PORTS`)."""
    return Lexer(escape).process_words(word, env)


def expand(words: Iterable[str], env: Mapping[str, str],
           escape: str = "\\") -> tuple[list[str], frozenset[str]]:
    """Each word processed against `env`, and the names of the variables they read."""
    lexer = Lexer(escape)
    out = []
    used: set[str] = set()
    for word in words:
        result = lexer.process_word(word, env)
        out.append(result.text)
        used |= result.used | result.unset
    return out, frozenset(used)
