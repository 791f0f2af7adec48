"""Host commands as values: an argv list plus, for file writes, a redirect and a here-doc.

Every change shellctr makes to the host is one `Cmd`. The same value is run, traced
(`+ <shell line>`) and printed by `--dry-run`, so what a user reads is what ran.
"""

from __future__ import annotations

import os

Argv = list[str]


def path_arg(path: str | os.PathLike[str]) -> str:
    """A filesystem path as an argv element."""
    return os.fspath(path)


class Cmd:
    """One host command: `argv`, optionally `> redirect` fed by a here-doc `stdin`.

    (A plain class, not a dataclass: importing dataclasses costs every `run` ~5 ms.)
    """

    __slots__ = ("argv", "detached", "keep_status", "redirect", "secrets", "stdin")

    def __init__(self, argv: Argv, redirect: str | None = None, stdin: str | None = None,
                 secrets: tuple[str, ...] = (), *, detached: bool = False,
                 keep_status: bool = False) -> None:
        self.argv = argv
        self.redirect = redirect  # file that stdout is written to (`cmd > file`)
        self.stdin = stdin  # text fed through a quoted here-doc
        self.secrets = secrets  # words rendered as *** when shown
        # in a script: with no stdio of the script's (`</dev/null >/dev/null 2>&1`)
        self.detached = detached
        # in a script: its failure does not end the script (set -e), it is kept in $status
        self.keep_status = keep_status

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cmd) and self.shell() == other.shell()

    def __hash__(self) -> int:
        return hash(self.shell())

    def __repr__(self) -> str:
        return f"Cmd({self.shell()!r})"

    def shell(self) -> str:
        """The command as one copy-pasteable bash line (plus its here-doc, if any)."""
        import shlex  # here: it imports `re`, which the read verbs, that run nothing, skip

        line = shlex.join(self.argv)
        if self.detached:
            line += " </dev/null >/dev/null 2>&1"
        if self.keep_status:
            line = f"status=0\n{line} || status=$?"
        if self.redirect is not None:
            line += " > " + shlex.quote(self.redirect)
        if self.stdin is not None and self.stdin.endswith("\n"):
            marker = _heredoc_marker(self.stdin)
            line += f" <<'{marker}'\n{self.stdin}{marker}"
        elif self.stdin is not None:  # a here-doc would add a final newline
            line = f"printf %s {shlex.quote(self.stdin)} | {line}"
        for secret in self.secrets:
            line = line.replace(secret, "***")
        return line


def _heredoc_marker(text: str) -> str:
    marker = "EOF"
    while marker in text:
        marker += "_"
    return marker


def write_file_cmd(path: str | os.PathLike[str], text: str) -> Cmd:
    """The shell equivalent of writing `text` to `path`."""
    return Cmd(["cat"], redirect=path_arg(path), stdin=text)
