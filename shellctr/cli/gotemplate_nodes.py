"""The tree Go's text/template parser builds (gotemplate_parse) and the executor walks
(gotemplate): one node class per construct, each printing as Go prints it in an error's
`at <...>`. Plain classes: dataclasses would cost every listing their import."""

from __future__ import annotations


class Node:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


class Text(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text


class Field(Node):
    __slots__ = ("idents",)

    def __init__(self, pos: int, idents: list[str]) -> None:
        self.pos, self.idents = pos, idents

    def __str__(self) -> str:
        return "".join("." + ident for ident in self.idents)


class Variable(Node):
    __slots__ = ("idents",)

    def __init__(self, pos: int, idents: list[str]) -> None:
        self.pos, self.idents = pos, idents  # the name ($x) then its fields

    def __str__(self) -> str:
        return ".".join(self.idents)


class Dot(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "."


class Nil(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "nil"


class Bool(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        self.pos, self.value = pos, value

    def __str__(self) -> str:
        return "true" if self.value else "false"


class Number(Node):
    __slots__ = ("is_char", "text", "value")

    def __init__(self, pos: int, value: int | float, text: str, is_char: bool = False) -> None:
        self.pos, self.value, self.text, self.is_char = pos, value, text, is_char

    def __str__(self) -> str:
        return self.text


class String(Node):
    __slots__ = ("quoted", "value")

    def __init__(self, pos: int, quoted: str, value: str) -> None:
        self.pos, self.quoted, self.value = pos, quoted, value

    def __str__(self) -> str:
        return self.quoted


class Identifier(Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class Chain(Node):
    __slots__ = ("fields", "node")

    def __init__(self, pos: int, node: Node, fields: list[str]) -> None:
        self.pos, self.node, self.fields = pos, node, fields

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return inner + "".join("." + name for name in self.fields)


class Command(Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[Node] | None = None) -> None:
        self.pos, self.args = pos, [] if args is None else args

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, Pipe) else str(arg) for arg in self.args)


class Pipe(Node):
    __slots__ = ("cmds", "decl", "is_assign", "line")

    def __init__(self, pos: int, line: int) -> None:
        self.pos, self.line = pos, line
        self.is_assign = False
        self.decl: list[Variable] = []
        self.cmds: list[Command] = []

    def __str__(self) -> str:
        text = ""
        if self.decl:
            text = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return text + " | ".join(str(cmd) for cmd in self.cmds)


class Action(Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe: Pipe) -> None:
        self.pos, self.line, self.pipe = pos, line, pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class Branch(Node):
    """if, range, with."""

    __slots__ = ("body", "kind", "line", "other", "pipe")

    def __init__(self, pos: int, kind: str, line: int, pipe: Pipe, body: list[Node],
                 other: list[Node] | None) -> None:
        self.pos, self.kind, self.line, self.pipe = pos, kind, line, pipe
        self.body, self.other = body, other

    def __str__(self) -> str:
        return "{{" + self.kind + " " + str(self.pipe) + "}}"


class Include(Node):
    """{{template "name" pipeline}}."""

    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe: Pipe | None) -> None:
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def __str__(self) -> str:
        tail = f" {self.pipe}" if self.pipe else ""
        return "{{template " + f'"{self.name}"' + tail + "}}"


class Break(Node):
    __slots__ = ("line",)

    def __init__(self, pos: int, line: int) -> None:
        self.pos, self.line = pos, line

    def __str__(self) -> str:
        return "{{break}}"


class Continue(Node):
    __slots__ = ("line",)

    def __init__(self, pos: int, line: int) -> None:
        self.pos, self.line = pos, line

    def __str__(self) -> str:
        return "{{continue}}"


class Marker(Node):
    """An {{end}} or an {{else}} the parser has read (never in a finished tree)."""

    __slots__ = ("kind",)

    def __init__(self, pos: int, kind: str) -> None:
        self.pos, self.kind = pos, kind

    def __str__(self) -> str:
        return "{{" + self.kind + "}}"
