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

The lexer is gotemplate_lex, the parser gotemplate_parse, Go's fmt gotemplate_fmt."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from shellctr.cli.gotemplate_fmt import (
    NO_VALUE,
    Map,
    Struct,
    format_value,
    is_struct,
    sort_key,
    sprint,
    sprintf,
    sprintln,
    type_name,
)
from shellctr.cli.gotemplate_parse import (
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
    TemplateError,
    Text,
    Variable,
    parse,
)
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


class FuncError(Exception):
    """A function's own error: Go wraps it as `error calling NAME: ...`."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# -- the functions -------------------------------------------------------------------------
def _truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil, and empty strings, lists and maps are false."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, (bool, int, float)):
        return bool(value)
    if isinstance(value, (str, bytes, list, tuple)):
        return len(value) > 0
    if isinstance(value, dict):
        return is_struct(value) or len(value) > 0
    return True


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if value is None or value is NO_VALUE:
        return "nil"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    if isinstance(first, (list, tuple, dict)) and not is_struct(first):
        raise FuncError("invalid type for comparison")
    for other in others:
        k1, k2 = _kind(first), _kind(other)
        if k1 != k2:
            if k1 != "nil" and k2 != "nil":
                raise FuncError("incompatible types for comparison")
            continue
        if k1 == "nil":
            return True
        if k1 == "other" and isinstance(other, (list, tuple, dict)) and not is_struct(other):
            raise FuncError(f"non-comparable type {format_value(other)}: {type_name(other)}")
        if first == other:
            return True
    return False


def _lt(first: Any, second: Any) -> bool:
    k1, k2 = _kind(first), _kind(second)
    if k1 in ("bool", "nil", "other") or k2 in ("bool", "nil", "other"):
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError("incompatible types for comparison")
    return bool(first < second)


def _le(first: Any, second: Any) -> bool:
    return _lt(first, second) or _eq(first, second)


def _length(value: Any) -> int:
    if value is None or value is NO_VALUE:
        raise FuncError("len of nil pointer")
    if isinstance(value, str):
        return len(value.encode())  # Go counts bytes
    if isinstance(value, (list, tuple, bytes)) or (isinstance(value, dict)
                                                   and not is_struct(value)):
        return len(value)
    raise FuncError(f"len of type {type_name(value)}")


def _index_arg(index: Any, cap: int) -> int:
    if index is None or index is NO_VALUE:
        raise FuncError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise FuncError(f"index out of range: {index}")
    return index


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise FuncError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, (str, list, tuple)):
            sequence = item.encode() if isinstance(item, str) else item
            position = _index_arg(index, len(sequence))
            if position >= len(sequence):
                raise FuncError(f"index out of range: {position}")
            item = sequence[position]
        elif isinstance(item, dict) and not is_struct(item):
            if item and not isinstance(index, type(next(iter(item)))):
                raise FuncError(f"value has type {type_name(index)}; should be "
                                f"{type_name(next(iter(item)))}")
            if index in item:
                item = item[index]
            else:  # the map's zero value: "" for a map of strings
                strings = all(isinstance(value, str) for value in item.values())
                item = "" if strings else None
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data: Any = item.encode()
    elif isinstance(item, (list, tuple)):
        data = list(item)
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    bounds = [0, len(data), len(data)]
    for position, index in enumerate(indexes):
        bounds[position] = _index_arg(index, len(data))
    if bounds[0] > bounds[1]:
        raise FuncError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if len(indexes) == 3 and bounds[1] > bounds[2]:
        raise FuncError(f"invalid slice index: {bounds[1]} > {bounds[2]}")
    result = data[bounds[0]:bounds[1]]
    return result.decode(errors="replace") if isinstance(result, bytes) else result


def _args_text(args: tuple[Any, ...]) -> str:
    """html/js/urlquery of one string is that string, of anything else its Sprint."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(*args)


def _html(*args: Any) -> str:
    replacements = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;",
                    "\0": "\uFFFD"}
    return "".join(replacements.get(ch, ch) for ch in _args_text(args))


def _js(*args: Any) -> str:
    out = []
    for ch in _args_text(args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=":
            out.append(f"\\u{ord(ch):04X}")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_args_text(args), safe="")


def _json(value: Any) -> str:
    """Docker's json: compact, HTML characters unescaped, as Go's encoder."""
    return json.dumps(None if value is NO_VALUE else value, separators=(",", ":"),
                      ensure_ascii=False, default=_unjsonable)


def _unjsonable(value: Any) -> Any:
    if callable(value):
        return None
    raise TypeError(f"json: unsupported type: {type_name(value)}")


def _want(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _WrongType(name, value)
    return value


class _WrongType(Exception):
    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"wrong type for value; expected {expected}; got {type_name(value)}")


def _strings(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _WrongType("[]string", value)
    return list(value)


def _title(text: Any) -> str:
    """strings.Title: the first letter of each word in upper case, the rest kept."""
    out, previous = [], " "
    for ch in _want(text, str, "string"):
        out.append(ch.upper() if not (previous.isalnum() or previous == "_") else ch)
        previous = ch
    return "".join(out)


def _truncate(text: Any, length: Any) -> str:
    source: str = _want(text, str, "string")
    size: int = _want(length, int, "int")
    return source[:size] if len(source) > size else source


def _pad(text: Any, before: Any, after: Any) -> str:
    source: str = _want(text, str, "string")
    left: int = _want(before, int, "int")
    right: int = _want(after, int, "int")
    return " " * left + source + " " * right


def _split(text: Any, sep: Any) -> list[str]:
    source: str = _want(text, str, "string")
    separator: str = _want(sep, str, "string")
    if separator == "":
        return list(source)
    return source.split(separator)


def _call(function: Any, *args: Any) -> Any:
    if not callable(function):
        raise FuncError(f"non-function of type {type_name(function)}")
    return function(*args)


# name -> (function, least arguments, most arguments or None for any)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "and": (lambda *a: a[-1], 1, None), "or": (lambda *a: a[-1], 1, None),  # short-circuit
    "not": (lambda v: not _truth(v), 1, 1),
    "eq": (_eq, 1, None), "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_lt, 2, 2), "le": (_le, 2, 2), "gt": (lambda a, b: not _le(a, b), 2, 2),
    "ge": (lambda a, b: not _lt(a, b), 2, 2),
    "len": (_length, 1, 1), "index": (_index, 1, None), "slice": (_slice, 1, None),
    "print": (sprint, 0, None), "println": (sprintln, 0, None),
    "html": (_html, 0, None), "js": (_js, 0, None), "urlquery": (_urlquery, 0, None),
    "call": (_call, 1, None),
    # Docker's own (cli/templates)
    "json": (_json, 1, 1),
    "split": (_split, 2, 2),
    "join": (lambda v, sep: _want(sep, str, "string").join(_strings(v)), 2, 2),
    "title": (_title, 1, 1),
    "lower": (lambda v: _want(v, str, "string").lower(), 1, 1),
    "upper": (lambda v: _want(v, str, "string").upper(), 1, 1),
    "pad": (_pad, 3, 3),
    "truncate": (_truncate, 2, 2),
}


def _printf(template: Any, *args: Any) -> str:
    return sprintf(_want(template, str, "string"), *args)


FUNCTIONS["printf"] = (_printf, 1, None)


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
                if _truth(value):
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
            if _truth(value) == (node.name == "or"):
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
        except _WrongType as err:
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
