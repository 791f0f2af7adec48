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


class Context:
    """What every verb gets: the host door and the state store."""

    def __init__(self, host: Host, store: Store) -> None:
        self.host, self.store = host, store


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 125 (Docker's engine error)."""

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
    """The error as one line: whatever input it echoes, its newlines and other control
    characters are shown escaped (`\\n`), never written."""
    text = "".join(char if char.isprintable() else char.encode("unicode_escape").decode()
                   for char in str(err))
    sys.stderr.write(f"{PROG}: {text}\n")
    sys.stderr.flush()
