"""Go's fmt, as templates show values: `%v` of JSON-shaped data (maps as `map[k:v]`, structs
as `{a b}`, nil as `<nil>`), Sprint/Sprintln/Sprintf with Go's verbs and its `%!d(...)`
complaints, and Go's type names for error messages.

A dict is a Go struct when every key is an exported Go identifier (`{"Name": ..}`), else a
map (labels, options); `Struct`/`Map` say so explicitly."""

from __future__ import annotations

import math
import re

from shellctr.cli.gotemplate_lex import go_quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class NoValue:
    """Go's invalid reflect.Value: a map's missing key. Prints `<no value>`."""

    _instance: NoValue | None = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = NoValue()


class Struct(dict):  # type: ignore[type-arg]
    """A dict that is a Go struct (fields in order; a missing one is an error)."""

    type_name = "struct"


class Map(dict):  # type: ignore[type-arg]
    """A dict that is a Go map (keys sorted when printed; a missing key is `<no value>`)."""


_EXPORTED = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")


def is_struct(value: Any) -> bool:
    if isinstance(value, Struct):
        return True
    if isinstance(value, Map) or not isinstance(value, dict) or not value:
        return False
    return all(isinstance(key, str) and _EXPORTED.match(key) for key in value)


def type_name(value: Any) -> str:
    """The Go type a value stands for, as error messages name it."""
    if value is None or value is NO_VALUE:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, str) for item in value):
            return "[]string"
        return "[]interface {}"
    if is_struct(value):
        return getattr(value, "type_name", "struct")
    if isinstance(value, dict):
        if value and all(isinstance(item, str) for item in value.values()):
            return "map[string]string"
        return "map[string]interface {}"
    if callable(value):
        return "func"
    return type(value).__name__


# -- %v --------------------------------------------------------------------------------------
def format_float(value: float, verb: str = "g", precision: int | None = None) -> str:
    """strconv.FormatFloat as fmt uses it: %v and %g shortest, %e/%f with a precision."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if verb in ("e", "E", "f", "F"):
        text = f"{value:.{6 if precision is None else precision}{verb.lower()}}"
        return text.upper() if verb == "E" else text
    if precision is not None:
        text = f"{value:.{max(precision, 1)}g}"
        return text.upper() if verb == "G" else text
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    from decimal import Decimal

    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    shown = "".join(str(d) for d in digits)
    point = len(shown) + exponent  # the decimal point's place in the digits
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:  # Go's threshold for the shortest form
        mantissa = shown[0] + ("." + shown[1:] if len(shown) > 1 else "")
        text = f"{mantissa}{'e' if verb != 'G' else 'E'}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif point <= 0:
        text = "0." + "0" * -point + shown
    elif point >= len(shown):
        text = shown + "0" * (point - len(shown))
    else:
        text = shown[:point] + "." + shown[point:]
    return prefix + text


def format_value(value: Any, plus: bool = False) -> str:
    """Go's %v (`plus`: %+v, struct fields named)."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(item, plus) for item in value) + "]"
    if is_struct(value):
        if plus:
            return "{" + " ".join(f"{k}:{format_value(v, plus)}" for k, v in value.items()) + "}"
        return "{" + " ".join(format_value(v, plus) for v in value.values()) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: sort_key(kv[0]))
        return "map[" + " ".join(f"{format_value(k)}:{format_value(v, plus)}"
                                 for k, v in items) + "]"
    if callable(value):
        return f"{hex(id(value))}"
    return str(value)


def sort_key(key: Any) -> tuple[int, Any]:
    """Go's fmtsort: numbers in order, strings in order."""
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (0, key)
    return (1, str(key))


# -- Sprint, Sprintln, Sprintf ------------------------------------------------------------
def sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out.append(" ")
        out.append(format_value(arg))
    return "".join(out)


def sprintln(*args: Any) -> str:
    return " ".join(format_value(arg) for arg in args) + "\n"


_SPEC = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.)?", re.S)


def sprintf(template: str, *args: Any) -> str:
    """fmt.Sprintf with Go's verbs and its complaints (%!d(string=x), %!v(MISSING),
    %!(EXTRA ...))."""
    out: list[str] = []
    position = 0
    used = 0
    while True:
        found = template.find("%", position)
        if found < 0:
            out.append(template[position:])
            break
        out.append(template[position:found])
        match = _SPEC.match(template, found)
        assert match is not None
        flags, width_text, precision_text, verb = match.groups()
        position = match.end()
        if verb is None:
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        width: int | None = int(width_text) if width_text and width_text != "*" else None
        precision: int | None = None
        if precision_text is not None and precision_text != "*":
            precision = int(precision_text) if precision_text else 0
        if width_text == "*":
            width, used = _star(args, used, out, "%!(BADWIDTH)")
        if precision_text == "*":
            precision, used = _star(args, used, out, "%!(BADPREC)")
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[used]
        used += 1
        out.append(_format_one(verb, flags, width, precision, arg))
    if used < len(args):
        extra = ", ".join(f"{type_name(a)}={format_value(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _star(args: tuple[Any, ...], used: int, out: list[str], bad: str) -> tuple[int | None, int]:
    """A `*` width or precision: the next argument if it is an int, else Go's complaint;
    (the value, the arguments used)."""
    if used < len(args) and isinstance(args[used], int):
        return args[used], used + 1
    out.append(bad)
    return None, used + 1


def _pad(text: str, flags: str, width: int | None, numeric: bool = False) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text + " " * (width - len(text))
    if "0" in flags and numeric:
        sign = text[0] if text[:1] in ("-", "+", " ") else ""
        body = text[len(sign):]
        return sign + "0" * (width - len(text)) + body
    return " " * (width - len(text)) + text


def _bad(verb: str, arg: Any) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={format_value(arg)})"


def _format_one(verb: str, flags: str, width: int | None, precision: int | None,
                arg: Any) -> str:
    number = isinstance(arg, (int, float)) and not isinstance(arg, bool)
    if verb in ("v", "s") and isinstance(arg, (list, tuple)) and verb == "s" \
            and not all(isinstance(item, str) for item in arg):
        return "[" + " ".join(_format_one(verb, flags, width, precision, item)
                              for item in arg) + "]"
    if verb == "v":
        if isinstance(arg, float):
            return _pad(_signed(format_float(arg, "g", precision), flags), flags, width, True)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return _pad(_signed(str(arg), flags), flags, width, True)
        if "#" in flags and isinstance(arg, str):
            return _pad(go_quote(arg), flags, width)
        return _pad(format_value(arg, plus="+" in flags), flags, width)
    if verb == "T":
        return _pad(type_name(arg), flags, width)
    if verb == "t":
        if isinstance(arg, bool):
            return _pad("true" if arg else "false", flags, width)
        return _bad(verb, arg)
    if verb == "s":
        if isinstance(arg, str):
            text = arg if precision is None else arg[:precision]
            return _pad(text, flags, width)
        if isinstance(arg, (list, tuple)):
            return _pad("[" + " ".join(arg) + "]", flags, width)
        return _bad(verb, arg)
    if verb == "q":
        if isinstance(arg, str):
            return _pad(go_quote(arg) if "#" not in flags or "`" in arg
                        else "`" + arg + "`", flags, width)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return _pad("'" + go_quote(chr(arg))[1:-1].replace("'", "\\'") + "'", flags, width)
        if isinstance(arg, (list, tuple)):
            return "[" + " ".join(_format_one(verb, flags, width, precision, a)
                                  for a in arg) + "]"
        return _bad(verb, arg)
    if verb in "xX" and isinstance(arg, str):
        text = arg.encode().hex()
        return _pad(text.upper() if verb == "X" else text, flags, width)
    if isinstance(arg, int) and not isinstance(arg, bool):
        if verb == "d":
            text = str(arg)
        elif verb == "b":
            text = format(arg, "b")
        elif verb == "o":
            text = format(arg, "o")
            if "#" in flags and arg:
                text = "0" + text
        elif verb == "O":
            text = ("-" if arg < 0 else "") + "0o" + format(abs(arg), "o")
        elif verb in "xX":
            text = format(arg, verb)
            if "#" in flags:
                text = ("-" if arg < 0 else "") + "0" + verb + text.lstrip("-")
        elif verb == "c":
            return _pad(chr(arg), flags, width)
        elif verb == "U":
            text = f"U+{arg:04X}"
            return _pad(text, flags, width)
        elif verb in "eEfFgG":
            return _bad(verb, arg)
        else:
            return _bad(verb, arg)
        if precision is not None:
            digits = text.lstrip("-")
            text = ("-" if text.startswith("-") else "") + digits.rjust(precision, "0")
        return _pad(_signed(text, flags), flags, width, precision is None)
    if isinstance(arg, float) and verb in "eEfFgG":
        return _pad(_signed(format_float(arg, verb, precision), flags), flags, width, True)
    if isinstance(arg, (list, tuple)) and number is False and verb in "dboxXeEfFgGc":
        return "[" + " ".join(_format_one(verb, flags, width, precision, a) for a in arg) + "]"
    return _bad(verb, arg)


def _signed(text: str, flags: str) -> str:
    if text.startswith("-"):
        return text
    if "+" in flags:
        return "+" + text
    if " " in flags:
        return " " + text
    return text
