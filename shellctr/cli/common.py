"""What every verb module shares: the context it gets, its parser class, and the few
helpers that print the same way for every verb (errors, inspect output, prune questions)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from shellctr.core.errors import ShellctrError, UsageError

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from shellctr.core.host import Host
    from shellctr.core.store import Store

PROG = "shellctr"

# argparse words its messages through gettext, whose every call searches the locale
# directories for a catalog (importing locale to spell the language) that Python does not
# ship: ~400 stats and ~2.5 ms of each command. Its messages stay as they are, untranslated.
setattr(argparse, "_", str)  # noqa: B010  (not in argparse's stubs)
setattr(argparse, "ngettext", lambda singular, plural, n: singular if n == 1 else plural)  # noqa: B010


class Context:
    """What every verb gets: the host door and the state store."""

    def __init__(self, host: Host, store: Store) -> None:
        self.host, self.store = host, store


class Formatter(argparse.HelpFormatter):
    """argparse's help formatter, the terminal's width found as shutil finds it: argparse
    makes one for each flag added, and would import shutil (with bz2, lzma, fnmatch) for
    every command to learn a width only --help uses."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = terminal_columns() - 2  # as argparse does
        super().__init__(prog, indent_increment, max_help_position, width)


_COLUMNS: dict[str | None, int] = {}  # by $COLUMNS: argparse asks once for each flag


def terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else stdout's terminal, else 80."""
    import os

    given = os.environ.get("COLUMNS")
    if given not in _COLUMNS:
        try:
            columns = int(given or "0")
        except ValueError:
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 0
        _COLUMNS[given] = columns or 80
    return _COLUMNS[given]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 125 (Docker's engine error)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            message = "unknown flag: " + message.removeprefix("unrecognized arguments: ")
        raise UsageError(message, f"see '{self.prog} --help'")



# -- helpers ---------------------------------------------------------------------------
def for_each(refs: Sequence[str], action: Callable[[str], None],
             echo: Callable[[str], None] | None = None) -> int:
    """Apply `action` to each ref; report each failure on its own line, as Docker does;
    `echo` (the host's `result`) shows each ref done."""
    code = 0
    for ref in refs:
        try:
            action(ref)
        except ShellctrError as err:
            report(err)
            code = err.exit_code
        else:
            if echo is not None:
                echo(ref)
    return code


def print_inspected(found: list[dict[str, Any]], template: str | None) -> None:
    """What `inspect` found: a JSON list as Docker prints it, or each through `-f`."""
    if template:
        from shellctr.cli.gotemplate import render

        for item in found:
            print(render(template, item))
    else:
        import json

        print(json.dumps(found, indent=4))


def confirm(question: str, force: bool) -> bool:
    """The prunes' question, as Docker asks it; -f/--force: yes without asking."""
    if force:
        return True
    sys.stdout.write(f"WARNING! {question}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def report(err: ShellctrError) -> None:
    sys.stderr.write(f"{PROG}: {err}\n")
    sys.stderr.flush()
