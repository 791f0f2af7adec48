"""argparse, as Docker's flags behave: the parser of every verb (each verb module's
`register` adds its own), --help in Docker's layout, and every usage error's words. A read
verb's common command lines skip it (cli/flags.py): it is imported only when a command line
needs it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from shellctr.cli.common import GO_BOOLS, PROG, FlagError
from shellctr.cli.flags import GLOBAL_FLAGS, MODULES, VERB_MODULES, verb_of

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

# argparse words its messages through gettext, whose every call searches the locale
# directories for a catalog (importing locale to spell the language) that Python does not
# ship: ~400 stats and ~2.5 ms of each command. Its messages stay as they are, untranslated.
setattr(argparse, "_", str)  # noqa: B010  (not in argparse's stubs)
setattr(argparse, "ngettext", lambda singular, plural, n: singular if n == 1 else plural)  # noqa: B010


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


class Unused:
    """Stands for the parser of a verb not on the command line: takes every call."""

    def __getattr__(self, name: str) -> Callable[..., Unused]:
        return lambda *args, **kwargs: self


class VerbTable(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The verbs, building only the parser of the one on the command line: argparse
    formats each flag as it is added, and all ~300 flags would cost every command ~25 ms."""

    wanted: str | None = None

    def add_parser(self, name: str, **kwargs: Any) -> Parser:
        if self.wanted is not None and self.wanted not in (name, *kwargs.get("aliases", ())):
            return Unused()  # type: ignore[return-value]
        if "help" in kwargs:
            kwargs.setdefault("description", kwargs["help"])  # the first lines of --help
        parser: Parser = super().add_parser(name, **kwargs)
        return parser


class PrintVersion(argparse.Action):
    """`shellctr --version`, as `docker --version` words it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from shellctr.cli.common import version

        print(f"{PROG} version {version()}")
        parser.exit(0)


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The command line's parser: every verb's, or (given `argv`) only its verb's."""
    parser = Parser(prog=PROG, description="A daemonless container engine whose every "
                    "change to the host is a shell command you can read.")
    for flag in GLOBAL_FLAGS:
        parser.add_argument(*flag.names, **flag.argparse_options())
    parser.add_argument("-v", "--version", action=PrintVersion, nargs=0,
                        help="print the version and quit")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True,
                                  action=VerbTable)
    assert isinstance(verbs, VerbTable)
    verbs.wanted = verb_of(argv) if argv is not None else None

    import importlib

    wanted = VERB_MODULES.get(verbs.wanted or "")
    for name in (wanted,) if wanted else MODULES:
        importlib.import_module(f"shellctr.cli.{name}").register(verbs)
    if verbs.wanted is not None and verbs.wanted not in verbs.choices:
        return build_parser()  # an unknown verb: the error lists them all
    return parser
