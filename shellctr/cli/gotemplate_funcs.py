"""The functions of Go's text/template that `--format` users call: Go's builtins (and or not
eq ne lt le gt ge len index slice print printf println html js urlquery call) and Docker's
(json split join lower upper title pad truncate), with their errors in Go's words; and Go's
template truth. The executor (gotemplate) looks them up in FUNCTIONS."""

from __future__ import annotations

import json
from collections.abc import Callable

from shellctr.cli.gotemplate_fmt import (
    NO_VALUE,
    format_value,
    is_struct,
    sprint,
    sprintf,
    sprintln,
    type_name,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class FuncError(Exception):
    """A function's own error: Go wraps it as `error calling NAME: ...`."""


def truth(value: Any) -> bool:
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
        raise WrongType(name, value)
    return value


class WrongType(Exception):
    """An argument of the wrong type for a Docker function: Go says so unwrapped."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"wrong type for value; expected {expected}; got {type_name(value)}")


def _strings(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise WrongType("[]string", value)
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
    "not": (lambda v: not truth(v), 1, 1),
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
