"""`.dockerignore`, as Docker reads it (moby's ignorefile and patternmatcher).

- One pattern a line; a line starting with `#` is a comment; blank lines are skipped;
  each pattern is trimmed and cleaned (`./a/../b` is `b`), a leading `/` dropped.
- Patterns are Go's filepath.Match (`*`, `?`, `[a-z]`, `\\` escapes) plus `**`, which
  matches any number of directories (`**/*.go`, `docs/**`).
- A pattern excludes the path it matches and everything under it; `!pattern` brings a path
  back; the last pattern that matches a path decides.
- The Dockerfile and `.dockerignore` are always read by the builder even when excluded,
  but an excluded one is not in the context that `COPY .` sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shellctr.parts import golang

DOCKERIGNORE = ".dockerignore"
_ESCAPED = frozenset(".+()|{}$")


class IgnoreError(ValueError):
    """A malformed pattern."""


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore's text, cleaned as Docker cleans them."""
    patterns = []
    for number, line in enumerate(text.split("\n")):
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = golang.trim_space(line)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = golang.trim_space(pattern[1:])
        if pattern:
            pattern = golang.clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern; `exclusion` for a `!` one."""

    text: str
    exclusion: bool
    kind: str  # exact, prefix, suffix or regexp
    regexp: re.Pattern[str] | None

    @property
    def dirs(self) -> list[str]:
        return self.text.split("/")

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regexp is not None
        return self.regexp.match(path) is not None


def _compile(text: str) -> tuple[str, re.Pattern[str] | None]:
    """The pattern's kind and, for `regexp`, its expression (moby's Pattern.compile)."""
    out = ["^"]
    kind = "exact"
    i = 0
    first = True
    while i < len(text):
        ch = text[i]
        i += 1
        if ch == "*":
            if i < len(text) and text[i] == "*":
                i += 1
                if i < len(text) and text[i] == "/":
                    i += 1
                if i == len(text):
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < len(text):
                out.append("\\" + text[i])
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        first = False
    if kind != "regexp":
        return kind, None
    try:
        return kind, re.compile("".join(out) + r"\Z")
    except re.error as error:
        raise IgnoreError(f"invalid pattern {text!r}: {error}") from None


class PatternMatcher:
    """Ordered patterns; `excluded(path)` is Docker's MatchesOrParentMatches."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = golang.trim_space(raw)
            if not text:
                continue
            text = golang.clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise IgnoreError('illegal exclusion pattern: "!"')
                text = text[1:]
            try:
                golang.check_pattern(text)
            except golang.BadPattern:
                raise IgnoreError(f"syntax error in pattern {text!r}") from None
            kind, regexp = _compile(text)
            self.patterns.append(Pattern(text, exclusion, kind, regexp))

    @property
    def has_exclusions(self) -> bool:
        return any(pattern.exclusion for pattern in self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether `path` (slash-separated, relative to the context) is left out: the last
        pattern matching it or one of its parent directories decides."""
        path = golang.clean(path)
        if path == ".":
            return False
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parents = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit and parent != ".":
                hit = any(pattern.match("/".join(parents[:i + 1])) for i in range(len(parents)))
            if hit:
                matched = not pattern.exclusion
        return matched

    def subtree_excluded(self, directory: str) -> bool:
        """Whether `directory` and everything under it are left out, so a walk can skip it:
        it is excluded and no `!` pattern could bring back something inside it."""
        if not self.excluded(directory):
            return False
        parts = golang.clean(directory).split("/")
        return not any(pattern.exclusion and _could_match_inside(pattern, parts)
                       for pattern in self.patterns)


def _could_match_inside(pattern: Pattern, parts: Sequence[str]) -> bool:
    """Whether an exclusion pattern might match a path under the directory `parts`
    (conservative: `**` anywhere might)."""
    dirs = pattern.dirs
    for i, part in enumerate(parts):
        if i >= len(dirs):
            return False  # the pattern ends above: it can only match the directory itself
        if "**" in dirs[i]:
            return True
        try:
            if not golang.match(dirs[i], part):
                return False
        except golang.BadPattern:
            return True
    return len(dirs) > len(parts)


@dataclass(frozen=True)
class ContextFilter:
    """A build context's rules: what is sent to the builder (`sent`: everything not
    excluded, plus the Dockerfile and .dockerignore always) and what COPY/ADD can see
    (`visible`: not excluded)."""

    matcher: PatternMatcher
    dockerfile: str = "Dockerfile"

    @classmethod
    def from_text(cls, text: str | None, dockerfile: str = "Dockerfile") -> ContextFilter:
        return cls(PatternMatcher(read_patterns(text or "")), golang.clean(dockerfile))

    def visible(self, path: str) -> bool:
        return not self.matcher.excluded(path)

    def sent(self, path: str) -> bool:
        if golang.clean(path) in (DOCKERIGNORE, self.dockerfile):
            return True
        return self.visible(path)

    def skip_directory(self, path: str) -> bool:
        """Whether a context walk can skip `path` (a directory) and all it holds."""
        if self.dockerfile.startswith(golang.clean(path) + "/"):
            return False
        return self.matcher.subtree_excluded(path)
