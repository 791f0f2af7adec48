"""Go's text/template, the whole language that `--format` users write, with Docker's
functions: pipelines, parentheses, variables, if/with/range with else (and `else if`,
`else with`), break/continue, define/template/block, `{{- -}}` trimming, comments, and
Go's builtins (and or not eq ne lt le gt ge len index slice print printf println html js
urlquery call) plus Docker's (json split join lower upper title pad truncate).

Values are JSON-shaped (dicts, lists, strings, numbers, booleans, None). A dict whose keys
are all exported Go names is a struct (a missing field is an error, as on Docker's typed
data); any other dict is a map (a missing key is `<no value>`). A callable in a dict is a
method (`{{.Label "x"}}`). Errors are Go's own words:
`template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type struct`.

This module is the executor (it walks the parsed tree against the data); the lexer is
gotemplate_lex, the parser gotemplate_parse (its tree gotemplate_nodes), the functions
gotemplate_funcs, Go's fmt gotemplate_fmt."""

from __future__ import annotations

import sys
from collections.abc import Callable

from shellctr.cli.gotemplate_fmt import (
    NO_VALUE,
    Map,
    Struct,
    format_value,
    is_struct,
    sort_key,
    type_name,
)
from shellctr.cli.gotemplate_funcs import FUNCTIONS, FuncError, WrongType, truth
from shellctr.cli.gotemplate_nodes import (
    Action,
    Bool,
    Branch,
    Break,
    Chain,
    Command,
    Continue,
    Dot,
    Field,
    Identifier,
    Include,
    Nil,
    Node,
    Number,
    Pipe,
    String,
    Text,
    Variable,
)
from shellctr.cli.gotemplate_parse import TemplateError, parse
from shellctr.core.errors import ShellctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["NO_VALUE", "Map", "Struct", "Template", "TemplateParseError", "render",
           "table_format"]

# the fields of Docker's records that are Go maps whatever their keys look like (labels,
# networks and options are named by users: `Front` is a key, not a field)
MAP_FIELDS = frozenset({"Labels", "Options", "Networks", "Ports", "ExposedPorts", "Volumes",
                        "DriverOpts", "Annotations", "Sysctls", "Tmpfs", "Containers",
                        "StorageOpt"})
PARSE_ERROR_EXIT = 64  # the Docker CLI's code for a template that does not parse
MAX_DEPTH = 100  # nested {{template}} calls (Go allows 100000; Python's stack is smaller)


class TemplateParseError(ShellctrError):
    """A template that does not parse: Docker's `template parsing error: ...`, exit 64."""

    exit_code = PARSE_ERROR_EXIT


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# -- the executor --------------------------------------------------------------------------
class _State:
    def __init__(self, template: Template, out: list[str]) -> None:
        self.template = template
        self.out = out
        self.vars: list[tuple[str, Any]] = []
        self.node: Node | None = None
        self.depth = 0

    def errorf(self, message: str) -> None:
        name = self.template.name
        if self.node is None:
            raise ShellctrError(f"template: {name}: {message}")
        text = self.template.text[:self.node.pos]
        line = text.count("\n") + 1
        column = self.node.pos - (text.rfind("\n") + 1) if "\n" in text else self.node.pos
        context = str(self.node)
        if len(context) > 20:
            context = context[:20] + "..."
        raise ShellctrError(f"template: {name}:{line}:{column}: executing \"{name}\" at "
                            f"<{context}>: {message}")

    # variables
    def var(self, name: str) -> Any:
        for known, value in reversed(self.vars):
            if known == name:
                return value
        self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for index in range(len(self.vars) - 1, -1, -1):
            if self.vars[index][0] == name:
                self.vars[index] = (name, value)
                return
        self.errorf(f"undefined variable: {name}")

    # walking
    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            self.walk_one(dot, node)

    def walk_one(self, dot: Any, node: Node) -> None:
        if isinstance(node, Text):
            self.out.append(node.text)
        elif isinstance(node, Action):
            value = self.pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, value)
        elif isinstance(node, Branch):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                mark = len(self.vars)
                value = self.pipeline(dot, node.pipe)
                if truth(value):
                    self.walk(value if node.kind == "with" else dot, node.body)
                elif node.other is not None:
                    self.walk(dot, node.other)
                del self.vars[mark:]
        elif isinstance(node, Include):
            self.include(dot, node)
        elif isinstance(node, Break):
            raise _Break
        elif isinstance(node, Continue):
            raise _Continue
        else:
            self.node = node
            self.errorf(f"unknown node: {node}")

    def include(self, dot: Any, node: Include) -> None:
        self.node = node
        body = self.template.defined.get(node.name)
        if body is None:
            self.errorf(f"no such template \"{node.name}\"")
        if self.depth >= MAX_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_DEPTH})")
        value = self.pipeline(dot, node.pipe) if node.pipe else None
        saved = self.vars
        self.vars = [("$", value)]
        self.depth += 1
        try:
            assert body is not None
            self.walk(value, body)
        finally:
            self.depth -= 1
            self.vars = saved

    def walk_range(self, dot: Any, node: Branch) -> None:
        self.node = node
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        decl = node.pipe.decl
        inner = len(self.vars)

        def one(index: Any, element: Any) -> None:
            if decl:
                if node.pipe.is_assign:
                    self.set_var(decl[0].idents[0], index if len(decl) > 1 else element)
                else:
                    self.vars[-1] = (self.vars[-1][0], element)
            if len(decl) > 1:
                if node.pipe.is_assign:
                    self.set_var(decl[1].idents[0], element)
                else:
                    self.vars[-2] = (self.vars[-2][0], index)
            try:
                self.walk(element, node.body)
            except _Continue:
                pass
            finally:
                del self.vars[inner:]

        pairs: list[tuple[Any, Any]] = []
        if isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(decl) > 1:
                self.errorf(f"can't use {value} to iterate over more than one variable")
            pairs = [(i, i) for i in range(value)]
        elif isinstance(value, dict) and not is_struct(value):
            pairs = sorted(value.items(), key=lambda kv: sort_key(kv[0]))
        elif value is not None and value is not NO_VALUE:
            self.node = node
            self.errorf(f"range can't iterate over {format_value(value)}")
        try:
            for index, element in pairs:
                one(index, element)
        except _Break:
            pass
        if not pairs and node.other is not None:
            self.walk(dot, node.other)
        del self.vars[mark:]

    def print_value(self, node: Node, value: Any) -> None:
        self.node = node
        if callable(value):
            self.errorf(f"can't print {node} of type func")
        self.out.append(format_value(value))

    # evaluating
    def pipeline(self, dot: Any, pipe: Pipe) -> Any:
        self.node = pipe
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        for variable in pipe.decl:
            if pipe.is_assign:
                self.set_var(variable.idents[0], value)
            else:
                self.vars.append((variable.idents[0], value))
        return value

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def command(self, dot: Any, cmd: Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, Field):
            self.node = first
            return self.field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, Chain):
            self.node = first
            if isinstance(first.node, Nil):
                self.errorf(f"indirection through explicit nil in {first}")
            receiver = self.arg(dot, first.node)
            return self.field_chain(dot, receiver, first, first.fields, cmd.args, final)
        if isinstance(first, Identifier):
            return self.function(dot, first, cmd, cmd.args, final)
        if isinstance(first, Pipe):
            self.node = first
            self.not_a_function(cmd.args, final)
            return self.pipeline(dot, first)
        if isinstance(first, Variable):
            return self.variable(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if isinstance(first, Bool):
            return first.value
        if isinstance(first, Dot):
            return dot
        if isinstance(first, Nil):
            self.errorf("nil is not a command")
        if isinstance(first, Number):
            return first.value
        if isinstance(first, String):
            return first.value
        self.errorf(f"can't evaluate command {first}")

    def variable(self, dot: Any, node: Variable, args: list[Node], final: Any) -> Any:
        self.node = node
        value = self.var(node.idents[0])
        if len(node.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.field_chain(dot, value, node, node.idents[1:], args, final)

    def field_chain(self, dot: Any, receiver: Any, node: Node, idents: list[str],
                    args: list[Node], final: Any) -> Any:
        for ident in idents[:-1]:
            receiver = self.field(dot, ident, node, [], _MISSING, receiver)
        return self.field(dot, idents[-1], node, args, final, receiver)

    def field(self, dot: Any, name: str, node: Node, args: list[Node], final: Any,
              receiver: Any) -> Any:
        if receiver is NO_VALUE:
            return NO_VALUE
        has_args = len(args) > 1 or final is not _MISSING
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            if is_struct(receiver):
                if name in receiver:
                    value = receiver[name]
                    if name in MAP_FIELDS and isinstance(value, dict) and \
                            not isinstance(value, Map):
                        value = Map(value)  # keys are data (a network called "Front")
                    if callable(value):  # a method: it takes the arguments
                        return self.call(dot, value, name, node, args, final, (0, None))
                    if has_args:
                        self.errorf(f"{name} has arguments but cannot be invoked as function")
                    return value
            else:
                if has_args:
                    self.errorf(f"{name} is not a method but has arguments")
                return receiver.get(name, NO_VALUE)
        self.errorf(f"can't evaluate field {name} in type {type_name(receiver)}")

    def function(self, dot: Any, node: Identifier, cmd: Command, args: list[Node],
                 final: Any) -> Any:
        self.node = node
        function, least, most = FUNCTIONS[node.name]
        if node.name in ("and", "or"):
            return self.and_or(dot, node, args, final)
        return self.call(dot, function, node.name, cmd, args, final, (least, most))

    def and_or(self, dot: Any, node: Identifier, args: list[Node], final: Any) -> Any:
        given = len(args) - 1 + (final is not _MISSING)
        if given < 1:
            self.errorf(f"wrong number of args for {node.name}: want at least 1 got {given}")
        value: Any = None
        for arg in args[1:]:
            value = self.arg(dot, arg)
            if truth(value) == (node.name == "or"):
                return value
        if final is not _MISSING:
            value = final
        return value

    def call(self, dot: Any, function: Callable[..., Any], name: str, node: Node,
             args: list[Node], final: Any, counts: tuple[int, int | None]) -> Any:
        given = len(args) - 1 + (final is not _MISSING)
        least, most = counts  # the count is checked at the name, the call made at the command
        if most is None and given < least:
            self.errorf(f"wrong number of args for {name}: want at least {least} got {given}")
        if most is not None and not least <= given <= most:
            self.errorf(f"wrong number of args for {name}: want {most} got {given}")
        values = [self.arg(dot, arg) for arg in args[1:]]
        if final is not _MISSING:
            values.append(final)
        values = [None if v is NO_VALUE and name not in ("eq", "ne") else v for v in values]
        self.node = node
        try:
            return function(*values)
        except FuncError as err:
            self.errorf(f"error calling {name}: {err}")
        except WrongType as err:
            self.errorf(str(err))
        except TypeError as err:
            self.errorf(f"error calling {name}: {err}")

    def arg(self, dot: Any, node: Node) -> Any:
        self.node = node
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Nil):
            return None
        if isinstance(node, Field):
            return self.field_chain(dot, dot, node, node.idents, [node], _MISSING)
        if isinstance(node, Variable):
            return self.variable(dot, node, [node], _MISSING)
        if isinstance(node, Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, Identifier):
            return self.function(dot, node, Command(node.pos, [node]), [node], _MISSING)
        if isinstance(node, Chain):
            receiver = self.arg(dot, node.node)
            return self.field_chain(dot, receiver, node, node.fields, [node], _MISSING)
        if isinstance(node, Bool):
            return node.value
        if isinstance(node, Number):
            return node.value
        if isinstance(node, String):
            return node.value
        self.errorf(f"can't handle {node} for arg")


class _Missing:
    """No value from a previous pipeline stage (Go's missingVal)."""


_MISSING: Any = _Missing()


class Template:
    """A parsed template: parse once, execute for each row."""

    def __init__(self, text: str, name: str = "") -> None:
        self.text, self.name = text, name
        try:
            self.root, self.defined = parse(text, name, FUNCTIONS)
        except TemplateError as err:
            raise TemplateParseError(f"template parsing error: {err}") from None
        except RecursionError:
            raise TemplateParseError("template parsing error: template: "
                                     f"{name}: too deeply nested") from None

    def execute(self, data: Any) -> str:
        out: list[str] = []
        state = _State(self, out)
        state.vars.append(("$", data))
        limit = sys.getrecursionlimit()
        try:
            state.walk(data, self.root)
        except RecursionError:
            raise ShellctrError(f"template: {self.name}: exceeded maximum template depth "
                                f"({MAX_DEPTH})") from None
        finally:
            sys.setrecursionlimit(limit)
        return "".join(out)


def render(template: str, data: Any) -> str:
    """Render `template` against `data`; a bad template or field is Go's error."""
    return Template(template).execute(data)


def table_format(spec: str) -> tuple[bool, str]:
    """`table {{.ID}}\\t{{.Names}}` -> (True, '{{.ID}}\\t{{.Names}}'), with Docker's
    escapes `\\t` and `\\n` turned into a tab and a newline."""
    table = spec.startswith("table")
    body = spec[len("table"):].strip(" ") if table else spec
    return table, body.replace("\\t", "\t").replace("\\n", "\n")
