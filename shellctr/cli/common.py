"""What every verb module shares: the context it gets, its parser class, and the few
helpers that print the same way for every verb (errors, inspect output, prune questions)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from shellctr.core.errors import ENGINE_ERROR, ShellctrError, UsageError

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from shellctr.core.host import Host
    from shellctr.core.store import Store

PROG = "shellctr"
# What an engine error (ShellctrError's 125) exits with: 1, as the Docker CLI's verbs do, but
# 125 for `run`, `create` and `start -a`, whose own codes are the container's (main sets it)
engine_exit_code = 1
# Go's strconv.ParseBool, which Docker's boolean flags take (`--rm=false`, `-a=true`)
GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}

# argparse words its messages through gettext, whose every call searches the locale
# directories for a catalog (importing locale to spell the language) that Python does not
# ship: ~400 stats and ~2.5 ms of each command. Its messages stay as they are, untranslated.
setattr(argparse, "_", str)  # noqa: B010  (not in argparse's stubs)
setattr(argparse, "ngettext", lambda singular, plural, n: singular if n == 1 else plural)  # noqa: B010


class Context:
    """What every verb gets: the host door and the state store."""

    def __init__(self, host: Host, store: Store) -> None:
        self.host, self.store = host, store


class FlagError(UsageError):
    """The command line does not parse: Docker's 125 (cobra's 1 for missing operands)."""


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
    """argparse as Docker's flags behave: a usage error is one line and exit 125, no
    abbreviated long flags (`--pid` is not `--pids-limit`), an unknown flag is refused
    wherever it is (not taken for the image), and boolean flags take `=true`/`=false`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        """Help in Docker's layout: Usage, the description, Commands, Options (defaults)."""
        operands = [a for a in self._actions if not a.option_strings]
        commands = [a for a in operands if isinstance(a, argparse._SubParsersAction)]
        words = [f"Usage:  {self.prog}", "[OPTIONS]"]
        for action in operands:
            if action in commands:
                words.append("COMMAND")
                continue
            metavar = str(action.metavar or action.dest)
            if action.nargs in ("?", argparse.REMAINDER):
                metavar = f"[{metavar}]"
            elif action.nargs in ("+", "*"):
                metavar += "..." if action.nargs == "+" else ""
                metavar = metavar if action.nargs == "+" else f"[{metavar}...]"
            words.append(metavar)
        out = [" ".join(words), ""]
        if self.description:
            out += [self.description[:1].upper() + self.description[1:], ""]
        for action in commands:
            out.append("Commands:")
            listed = [(choice.dest, choice.help or "") for choice in action._choices_actions]
            width = max((len(name) for name, _ in listed), default=0) + 3
            out += [f"  {name.ljust(width)}{about}" for name, about in listed]
            out += ["", f"Run '{self.prog} COMMAND --help' for more information on a "
                    "command.", ""]
        options = []
        for action in self._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            short = [o for o in action.option_strings if not o.startswith("--")]
            long = [o for o in action.option_strings if o.startswith("--")]
            name = (f"{short[0]}, " if short else "    ") + (long[0] if long else "")
            if action.nargs != 0:
                name += " " + str(action.metavar or "string")
            about = action.help or ""
            default = action.default
            if action.nargs != 0 and default not in (None, [], "", False, argparse.SUPPRESS):
                about += f' (default "{default}")' if isinstance(default, str) \
                    else f" (default {default})"
            options.append((name, about))
        if options:
            width = max(len(name) for name, _ in options) + 3
            out.append("Options:")
            out += [f"  {name.ljust(width)}{about}".rstrip() for name, about in options]
        return "\n".join(out).rstrip("\n") + "\n"

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            message = "unknown flag: " + message.removeprefix("unrecognized arguments: ")
        exit_code = None
        if message.startswith("the following arguments are required"):
            # Docker's (cobra's) words and code for a verb without its operands
            message, exit_code = f"'{self.prog}' requires at least 1 argument", 1
        elif message.startswith("argument COMMAND: invalid choice: "):
            verb = message.split("'")[1]
            message, exit_code = f"unknown command: {self.prog} {verb}", 1
        err = FlagError(message, f"see '{self.prog} --help'")
        if exit_code is not None:
            err.exit_code = exit_code
        raise err

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None:
            args = self.docker_flags(list(args))
        parsed, extras = super().parse_known_args(args, namespace)
        if any(not extra.startswith("-") for extra in extras):
            self.refuse_operand_count()
        return parsed, extras

    def refuse_operand_count(self) -> NoReturn:
        """Too many operands, in Docker's (cobra's) words and code: `requires at most 1
        argument`, `requires 2 arguments`, `accepts no arguments`..."""
        operands = [a for a in self._actions if not a.option_strings]
        least = sum(1 for a in operands if a.nargs is None)
        most = least + sum(1 for a in operands if a.nargs == "?")

        def count(n: int) -> str:
            return f"{n} argument" + ("" if n == 1 else "s")

        if most == 0:
            wanted = "accepts no arguments"
        elif least == most:
            wanted = "requires " + count(most)
        elif least == 0:
            wanted = f"requires at most {count(most)}"
        else:
            wanted = f"requires at least {least} and at most {count(most)}"
        err = FlagError(f"'{self.prog}' {wanted}", f"see '{self.prog} --help'")
        err.exit_code = 1
        raise err

    def docker_flags(self, argv: list[str]) -> list[str]:
        """`argv` with Docker's boolean `=value`s resolved; an unknown flag is an error."""
        # where the flags end: at the first operand when what follows it is the operand's
        # own (run's command, exec's, the verb after the global flags), else at `--`
        stops = any(action.nargs in (argparse.REMAINDER, argparse.PARSER)
                    for action in self._actions if not action.option_strings)
        out: list[str] = []
        # a verb's operands may come between its flags (`rm a -f b`, as cobra allows): they
        # are moved after the flags, behind a `--` so argparse takes them all as operands
        operands: list[str] = []
        index = 0
        while index < len(argv):
            arg = argv[index]
            index += 1
            if arg == "--":
                if stops:
                    out += argv[index - 1:]
                else:
                    operands += argv[index:]
                break
            if not arg.startswith("-") or arg == "-":
                if stops:
                    out += argv[index - 1:]
                    break
                operands.append(arg)
                continue
            flag, equals, value = arg.partition("=")
            if arg.startswith("--"):
                action = self._option_string_actions.get(flag)
                if action is None:
                    self.error(f"unknown flag: {flag}")
            else:
                action = self._short(arg)
                if action is None or len(flag) != 2:
                    out.append(arg)
                    continue
            if action.nargs == 0 and equals:
                if value not in GO_BOOLS:
                    self.error(f'invalid argument "{value}" for "{flag}" flag: '
                               f'strconv.ParseBool: parsing "{value}": invalid syntax')
                if GO_BOOLS[value]:  # =true is the flag given, =false the flag left out
                    out.append(flag)
                continue
            out.append(arg)
            takes_value = action.nargs not in (0, "?")
            separate = not equals and (arg.startswith("--") or len(arg) == 2)
            if takes_value and separate and index < len(argv):
                out.append(argv[index])  # the flag's value, whatever it looks like
                index += 1
        return [*out, "--", *operands] if operands else out

    def _short(self, arg: str) -> argparse.Action | None:
        """The action of a short flag or cluster (`-it`, `-p80`); an unknown one is refused."""
        for position in range(1, len(arg)):
            letter = arg[position]
            if letter == "=" and position > 1:
                return None
            action = self._option_string_actions.get("-" + letter)
            if action is None:
                self.error(f"unknown shorthand flag: '{letter}' in {arg}")
            if position == 1 and (len(arg) == 2 or arg[2] == "="):
                return action
            if action.nargs != 0:
                return None  # the rest of the cluster is this flag's value
        return None



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
    import json

    if template == "json":
        for item in found:
            print(json.dumps(item, separators=(",", ":")))
    elif template:
        from shellctr.cli.gotemplate import Template

        parsed = Template(template)
        for item in found:
            print(parsed.execute(item))
    else:
        print(json.dumps(found, indent=4))


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
    import json
    import re

    if spec == "json":
        for row in rows:
            print(json.dumps({k: v for k, v in row.items() if not callable(v)},
                             sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        return
    if not spec or spec == "table":
        spec = default
    from shellctr.cli.textfmt import table

    columns = re.fullmatch(r"table ((?:{{\.\w+}}\t)*{{\.\w+}})", spec)
    if columns and all(isinstance(row.get(key), str) for row in rows
                       for key in re.findall(r"\w+", columns[1])):
        # a plain table of fields (every default): no template engine to load
        keys = re.findall(r"\w+", columns[1])
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
