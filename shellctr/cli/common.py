"""What every verb module shares: the context it gets, and the few
helpers that print the same way for every verb (errors, inspect output, prune questions)."""

from __future__ import annotations

import sys

from shellctr.core.errors import ENGINE_ERROR, ShellctrError, UsageError

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from shellctr.core.host import Host
    from shellctr.core.store import Store

PROG = "shellctr"
# What an engine error (ShellctrError's 125) exits with: 1, as the Docker CLI's verbs do, but
# 125 for `run`, `create` and `start -a`, whose own codes are the container's (main sets it)
engine_exit_code = 1
# Go's strconv.ParseBool, which Docker's boolean flags take (`--rm=false`, `-a=true`)
GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


class Context:
    """What every verb gets: the host door and the state store."""

    def __init__(self, host: Host, store: Store) -> None:
        self.host, self.store = host, store


class FlagError(UsageError):
    """The command line does not parse: Docker's 125 (cobra's 1 for missing operands)."""


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
            code = exit_code(err)
        else:
            if echo is not None:
                echo(ref)
    return code


def print_inspected(found: list[dict[str, Any]], template: str | None) -> None:
    """What `inspect` found: a JSON list as Docker prints it, `-f json` one object per
    line, or each through the `-f` template."""
    from shellctr.cli.textfmt import json_indented, json_line

    if template == "json":
        for item in found:
            print(json_line(item, sort_keys=False, ensure_ascii=True))
    elif template:
        from shellctr.cli.gotemplate import Template

        parsed = Template(template)
        for item in found:
            print(parsed.execute(item))
    else:
        print(json_indented(found))


def label_method(labels: Any) -> Callable[[str], str]:
    """A row's `.Label "NAME"` (a method in Docker's templates): the label's value or ""."""
    known: dict[str, str] = dict(labels or {})
    return lambda name: known.get(name, "")


def print_rows(rows: Sequence[dict[str, Any]], spec: str | None, default: str,
               headers: dict[str, str]) -> None:
    """A listing as Docker's --format prints it: `default` (a `table ...` template) when
    no --format is given or it is just `table`; `json`: each row one JSON object per line
    (keys sorted, as Docker's); `table TEMPLATE`: a header from `headers` (a field's name in
    capitals when absent) and aligned columns; any other template: one line per row."""
    if spec == "json":
        from shellctr.cli.textfmt import json_line

        for row in rows:
            print(json_line({k: v for k, v in row.items() if not callable(v)}))
        return
    if not spec or spec == "table":
        spec = default
    from shellctr.cli.textfmt import plain_columns, table

    keys = plain_columns(spec)
    if keys and all(isinstance(row.get(key), str) for row in rows for key in keys):
        # a plain table of fields (every default): no template engine to load
        print(table([headers.get(key, key.upper()) for key in keys],
                    [[row[key] for key in keys] for row in rows]))
        return
    from shellctr.cli.gotemplate import Struct, Template, table_format

    is_table, body = table_format(spec)
    template = Template(body)
    lines = [template.execute(row) for row in rows]
    if not is_table:
        for line in lines:
            print(line)
        return
    names = dict.fromkeys([*headers, *(key for row in rows[:1] for key in row)])
    title = Struct({name: headers.get(name, name.upper()) for name in names})
    for name in names:
        if rows and callable(rows[0].get(name)):
            title[name] = lambda *args, text=title[name]: text  # a method's column
    header = template.execute(title)
    print(table(header.split("\t"), [line.split("\t") for line in lines]))


def confirm(question: str, force: bool) -> bool:
    """The prunes' question, as Docker asks it; -f/--force: yes without asking."""
    if force:
        return True
    sys.stdout.write(f"WARNING! {question}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def version() -> str:
    """shellctr's version, as installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("shellctr")
    except PackageNotFoundError:
        return "0.1.0"


def exit_code(err: ShellctrError) -> int:
    """Docker's code for an error: 1 for the engine's (125 for run/create/start -a), 125
    for flags that do not parse, 64 for a template that does not parse."""
    if err.exit_code == ENGINE_ERROR and not isinstance(err, FlagError):
        return engine_exit_code  # every error the Docker CLI gets back from its daemon
    return err.exit_code


def report(err: ShellctrError) -> None:
    """The error as one line: whatever input it echoes, its newlines and other control
    characters are shown escaped (`\\n`), never written."""
    text = "".join(char if char.isprintable() else char.encode("unicode_escape").decode()
                   for char in str(err))
    sys.stderr.write(f"{PROG}: {text}\n")
    sys.stderr.flush()
