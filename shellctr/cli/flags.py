"""The command line described as data: the global flags, which cli module holds each
verb, and the flags and operands of the read verbs. From each description both its
argparse parser (cli/parser.py: --help, usage errors, every message) and a small fast
parser (`parse_fast`) are made.

The read verbs answer polling scripts (`docker ps` in a loop), and argparse with the `re`
and `enum` it imports is a third of what their budget allows (README, Performance). The
fast parser takes the common invocations of the verbs in FAST_VERBS and hands anything
it does not fully understand (`--help`, `--`, `=value` on a boolean, a value that starts
with `-`, a wrong number of operands, an unknown flag...) back to argparse, which then
parses it or words the error: both give the same request for what the fast one takes
(tests/unit/test_fast_flags.py). This module imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

GLOBAL_VALUE_FLAGS = ("--root", "--runroot")  # the global flags that take a value

# The module of cli/ that registers each verb: only the one on the command line is imported
# (each imports what its verbs' flags need); tests/unit/test_cli.py holds the table to
# what the modules register.
VERB_MODULES = {
    **dict.fromkeys(("run", "create"), "run"),
    **dict.fromkeys(("start", "stop", "restart", "kill", "exec", "update", "attach", "rename",
                     "pause", "unpause", "_exited", "_started", "rm"), "containers"),
    **dict.fromkeys(("wait", "logs", "inspect", "stats", "top", "ps", "port", "export"),
                    "views"),
    **dict.fromkeys(("image", "images", "rmi", "import", "load", "save", "tag", "history",
                     "commit", "diff", "pull", "push", "login", "logout"), "images"),
    **dict.fromkeys(("volume", "cp"), "volumes"),
    **dict.fromkeys(("network", "system"), "network"),
    **dict.fromkeys(("build", "builder"), "build"),
    **dict.fromkeys(("events", "_health"), "events"),
    **dict.fromkeys(("version", "info"), "system"),
    "container": "group",
    "completion": "completion",
}
MODULES = ("run", "containers", "views", "images", "volumes", "network", "build", "events",
           "system", "group", "completion")  # in the order of --help

# The verbs the fast parser takes: the words that name one (a group's verb after the
# group's name) -> the cli module whose read_verbs() holds its description, under that key, and
# the group's own dest (`image_verb`...) as argparse records it
FAST_VERBS: dict[tuple[str, ...], tuple[str, str, dict[str, str]]] = {
    ("ps",): ("views", "ps", {}),
    ("inspect",): ("views", "inspect", {}),
    ("port",): ("views", "port", {}),
    ("logs",): ("views", "logs", {}),
    ("wait",): ("views", "wait", {}),
    ("images",): ("images", "images", {}),
    ("image", "inspect"): ("images", "image inspect", {"image_verb": "inspect"}),
    ("network", "ls"): ("network", "network ls", {"network_verb": "ls"}),
    ("volume", "ls"): ("volumes", "volume ls", {"volume_verb": "ls"}),
}


def verb_of(argv: Sequence[str]) -> str | None:
    """The verb on the command line, found without argparse; None for `--help` alone."""
    args = iter(argv)
    for arg in args:
        if arg in GLOBAL_VALUE_FLAGS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


class Flag:
    """One flag: its names (`-f`, `--filter`), what it takes (`bool`: nothing, `value`: a
    string, `int`: a number, `append`: a string each time it is given), its default,
    the choices it allows and its --help words."""

    def __init__(self, *names: str, kind: str = "bool", default: object = None,
                 metavar: str | None = None, help: str | None = None,
                 choices: Sequence[str] | None = None) -> None:
        self.names, self.kind, self.metavar, self.help = names, kind, metavar, help
        self.choices = choices
        self.default = False if kind == "bool" else default
        # argparse's dest: the first long name, dashes as underscores
        self.dest = next(name for name in names if name.startswith("--"))[2:].replace("-", "_")

    def initial(self) -> object:
        """The flag's value when it is not given (a new list for an `append` flag)."""
        return [] if self.kind == "append" else self.default

    def argparse_options(self) -> dict[str, Any]:
        """add_argument's keywords for this flag."""
        if self.kind == "bool":
            return {"action": "store_true", "help": self.help}
        options: dict[str, Any] = {"metavar": self.metavar, "help": self.help}
        if self.kind == "append":
            options.update(action="append", default=[])
        elif self.default is not None:
            options["default"] = self.default
        if self.kind == "int":
            options["type"] = int
        if self.choices is not None:
            options["choices"] = self.choices
        return options


class Operand:
    """One operand: `nargs` as argparse's (None: exactly one, `?`, `+`, `*`); only the
    last operand of a verb may take a variable number."""

    def __init__(self, dest: str, metavar: str, nargs: str | None = None) -> None:
        self.dest, self.metavar, self.nargs = dest, metavar, nargs


class Verb:
    """A verb's command line: its flags and operands, and the function that runs it."""

    def __init__(self, func: Callable[..., int], flags: Sequence[Flag],
                 operands: Sequence[Operand] = ()) -> None:
        assert all(operand.nargs is None for operand in operands[:-1])
        self.func, self.flags, self.operands = func, flags, operands

    def add_arguments(self, parser: Any) -> None:
        """Describe the verb to its argparse parser."""
        for flag in self.flags:
            parser.add_argument(*flag.names, **flag.argparse_options())
        for operand in self.operands:
            options: dict[str, Any] = {"metavar": operand.metavar}
            if operand.nargs is not None:
                options["nargs"] = operand.nargs
            parser.add_argument(operand.dest, **options)
        parser.set_defaults(func=self.func)


class Args:
    """A parsed command line, as argparse's Namespace holds it (attributes by dest)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({self.__dict__!r})"

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...


GLOBAL_FLAGS = (
    Flag("--root", kind="value", help="state directory (default /var/lib/shellctr, "
         "env SHELLCTR_ROOT)"),
    Flag("--runroot", kind="value", help="runtime directory (default /run/shellctr, "
         "env SHELLCTR_RUNROOT)"),
    Flag("--trace", help="print every host command to stderr as it runs (SHELLCTR_TRACE=1)"),
    Flag("--dry-run", help="print a bash script of what would be done; change nothing"),
    Flag("--debug", help="show tracebacks on errors"),
)


def take_flags(flags: Sequence[Flag], argv: Sequence[str], at_operand: bool,
               ) -> tuple[dict[str, object], list[str], int] | None:
    """The flags' values and the operands among `argv`; with `at_operand`, up to the first
    operand (its index last). None for anything argparse must decide."""
    by_name = {name: flag for flag in flags for name in flag.names}
    values = {flag.dest: flag.initial() for flag in flags}
    operands: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if not arg.startswith("-"):
            if at_operand:
                return values, operands, index - 1
            operands.append(arg)
            continue
        name, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if len(name) > 2 and not name.startswith("--"):  # a cluster: booleans only
            cluster = [by_name.get("-" + letter) for letter in name[1:]]
            if not all(flag is not None and flag.kind == "bool" for flag in cluster):
                return None
            values.update((flag.dest, True) for flag in cluster if flag is not None)
            continue
        flag = by_name.get(name)  # None for `-`, `--`, `--help`, an unknown flag
        if flag is None:
            return None
        if flag.kind == "bool":
            if equals:
                return None  # `--all=false`: Go's booleans, as Parser.docker_flags reads them
            values[flag.dest] = True
            continue
        if not equals:
            if index == len(argv):
                return None
            value = argv[index]
            index += 1
        if value.startswith("-"):  # argparse reads it as a flag, or drops a `--` of it
            return None
        if flag.choices is not None and value not in flag.choices:
            return None
        if flag.kind == "int":
            try:
                values[flag.dest] = int(value)
            except ValueError:
                return None
        elif flag.kind == "append":
            values[flag.dest].append(value)  # type: ignore[attr-defined]
        else:
            values[flag.dest] = value
    if at_operand:
        return None  # no verb
    return values, operands, index


def take_operands(verb: Verb, given: list[str]) -> dict[str, object] | None:
    """The operands by dest, as argparse assigns them; None if their number is wrong."""
    values: dict[str, object] = {}
    rest = list(given)
    for operand in verb.operands:
        if operand.nargs is None:
            if not rest:
                return None
            values[operand.dest] = rest.pop(0)
        elif operand.nargs == "?":
            values[operand.dest] = rest.pop(0) if rest else None
        else:
            if operand.nargs == "+" and not rest:
                return None
            values[operand.dest], rest = rest, []
    return None if rest else values


def parse_fast(argv: Sequence[str], describe: Callable[[str, str], Verb]) -> Args | None:
    """The request of a read verb's common command line, as argparse would make it; None
    for anything else (argparse parses it). `describe(module, key)` is the Verb."""
    found = take_flags(GLOBAL_FLAGS, argv, at_operand=True)
    if found is None:
        return None
    values, _, index = found
    values["version"] = None  # -v/--version's dest (it prints and quits)
    words = argv[index:]
    for length in (1, 2):
        entry = FAST_VERBS.get(tuple(words[:length]))
        if entry is not None:
            break
    else:
        return None
    module, key, group = entry
    verb = describe(module, key)
    parsed = take_flags(verb.flags, words[length:], at_operand=False)
    if parsed is None:
        return None
    flags, operands, _ = parsed
    assigned = take_operands(verb, operands)
    if assigned is None:
        return None
    return Args(**values, verb=words[0], **group, **flags, **assigned, func=verb.func)
