"""The part of Go's text/template that `inspect -f` and `ps --format` users type.

Supported: `{{.Field.Sub}}`, `{{.}}`, functions `json`, `index`, `join`, `len`, `upper`,
`lower`, `title`, `println`, and the blocks `{{if X}}...{{else}}...{{end}}`,
`{{range X}}...{{end}}` (with `{{.}}` the element). Values are JSON-shaped: dicts,
lists, strings, numbers, booleans, None.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable

from shellctr.core.errors import ShellctrError

# typing is not imported at run time: `ps --format` and `inspect -f` pay for each module
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Node = tuple[str, Any]

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
Token = tuple[str, str]


def render(template: str, data: Any) -> str:
    """Render `template` against `data`; a bad template or field is a clear error."""
    nodes, rest = _parse(_tokens(template), template)
    if rest:
        raise ShellctrError(f"template: unexpected {{{{{rest[0][1]}}}}}", f"in {template!r}")
    return "".join(_eval_nodes(nodes, data, template))


def _tokens(template: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    for match in _ACTION.finditer(template):
        if match.start() > position:
            tokens.append(("text", template[position:match.start()]))
        tokens.append(("action", match.group(1)))
        position = match.end()
    if position < len(template):
        tokens.append(("text", template[position:]))
    return tokens


def _parse(tokens: list[Token], template: str) -> tuple[list[Node], list[Token]]:
    """Nodes up to an unmatched `else`/`end` (returned in the rest)."""
    nodes: list[Node] = []
    while tokens:
        kind, value = tokens[0]
        if kind == "text":
            nodes.append(("text", value))
            tokens = tokens[1:]
            continue
        word = value.split(None, 1)[0] if value else ""
        if word in ("end", "else"):
            return nodes, tokens
        tokens = tokens[1:]
        if word in ("if", "range"):
            body, tokens = _parse(tokens, template)
            other: list[Node] = []
            if tokens and tokens[0][1] == "else":
                other, tokens = _parse(tokens[1:], template)
            if not tokens or tokens[0][1] != "end":
                raise ShellctrError(f"template: {{{{{word}}}}} without {{{{end}}}}",
                                    f"in {template!r}")
            tokens = tokens[1:]
            nodes.append((word, (value.split(None, 1)[1] if " " in value else "", body, other)))
        else:
            nodes.append(("expr", value))
    return nodes, tokens


def _eval_nodes(nodes: list[Node], data: Any, template: str) -> list[str]:
    out: list[str] = []
    for kind, value in nodes:
        if kind == "text":
            out.append(value)
        elif kind == "expr":
            out.append(_format(_eval(value, data, template)))
        elif kind == "if":
            condition, body, other = value
            out += _eval_nodes(body if _truthy(_eval(condition, data, template)) else other,
                               data, template)
        elif kind == "range":
            expression, body, other = value
            items = _eval(expression, data, template)
            if isinstance(items, dict):  # Go ranges over a map in sorted key order
                items = [item for _, item in sorted(items.items())]
            if items:
                for item in items:
                    out += _eval_nodes(body, item, template)
            else:
                out += _eval_nodes(other, data, template)
    return out


def _eval(expression: str, data: Any, template: str) -> Any:
    try:
        words = shlex.split(expression, posix=True)
    except ValueError as err:
        raise ShellctrError(f"template: {err}", f"in {template!r}") from err
    if not words:
        raise ShellctrError("template: empty action {{}}", f"in {template!r}")
    head, args = words[0], [_value(word, data, template) for word in words[1:]]
    functions: dict[str, Callable[..., Any]] = {
        "json": lambda v: json.dumps(v, separators=(",", ":")),
        "index": lambda v, *keys: _index(v, keys, template),
        "join": lambda v, sep: sep.join(str(x) for x in v),
        "len": len,
        "upper": lambda v: str(v).upper(),
        "lower": lambda v: str(v).lower(),
        "title": lambda v: str(v).title(),
        "println": lambda *v: " ".join(_format(x) for x in v) + "\n",
    }
    if head in functions:
        try:
            return functions[head](*args)
        except TypeError as err:
            raise ShellctrError(f"template: wrong arguments to {head}",
                                f"in {template!r}") from err
    if args:
        raise ShellctrError(f"template: {head!r} is not a function", f"in {template!r}")
    return _value(head, data, template)


def _value(word: str, data: Any, template: str) -> Any:
    if word == ".":
        return data
    if word.startswith("."):
        value = data
        for field in word[1:].split("."):
            if not isinstance(value, dict) or field not in value:
                raise ShellctrError(f"template: no field {field!r} in {word}",
                                    f"in {template!r}")
            value = value[field]
        return value
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    return word  # a quoted string literal (quotes removed by shlex)


def _index(value: Any, keys: tuple[Any, ...], template: str) -> Any:
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError) as err:
            raise ShellctrError(f"template: index {key!r} out of range", f"in {template!r}") \
                from err
    return value


def _truthy(value: Any) -> bool:
    return bool(value)


def _format(value: Any) -> str:
    """How Go prints a value: maps as map[k:v], lists as [a b], nil as <no value>."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_format(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_format(v) for v in value) + "]"
    return str(value)


def table_format(spec: str) -> tuple[bool, str]:
    """`table {{.ID}}\\t{{.Names}}` -> (True, '{{.ID}}\\t{{.Names}}'), with Docker's
    escapes `\\t` and `\\n` turned into a tab and a newline."""
    table = spec.startswith("table")
    body = spec[len("table"):].strip(" ") if table else spec
    return table, body.replace("\\t", "\t").replace("\\n", "\n")
