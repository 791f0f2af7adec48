"""Go's text/template parser: items into a tree of nodes (gotemplate_nodes), with parse's
error messages (`template: NAME:LINE: unexpected EOF`, `function "x" not defined`...)."""

from __future__ import annotations

import re
from collections.abc import Collection

from shellctr.cli.gotemplate_lex import Item, lex
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
    Marker,
    Nil,
    Node,
    Number,
    Pipe,
    String,
    Text,
    Variable,
)


class TemplateError(Exception):
    """A template that does not parse, or does not execute: Go's message, whole."""


# -- the parser ----------------------------------------------------------------------------
class Parser:
    def __init__(self, text: str, name: str, functions: Collection[str]) -> None:
        self.items = lex(text)
        self.index = 0
        self.name = name
        self.functions = functions
        self.vars = ["$"]
        self.range_depth = 0
        self.current = self.items[0]
        self.defined: dict[str, list[Node]] = {}

    # items
    def next(self) -> Item:
        item = self.items[self.index]
        if item.kind == "error":
            self.current = item
            self.errorf(item.value)
        self.index += 1
        self.current = item
        return item

    def backup(self, count: int = 1) -> None:
        self.index -= count

    def peek(self) -> Item:
        item = self.items[self.index]
        if item.kind == "error":
            self.current = item
            self.errorf(item.value)
        return item

    def next_non_space(self) -> Item:
        item = self.next()
        while item.kind == "space":
            item = self.next()
        return item

    def peek_non_space(self) -> Item:
        item = self.next_non_space()
        self.backup()
        # backing over the spaces too is not needed: next_non_space skips them again
        return item

    def errorf(self, message: str) -> None:
        raise TemplateError(f"template: {self.name}:{self.current.line}: {message}")

    def expect(self, kind: str, context: str) -> Item:
        item = self.next_non_space()
        if item.kind != kind:
            self.unexpected(item, context)
        return item

    def unexpected(self, item: Item, context: str) -> None:
        if item.kind == "error":
            self.errorf(item.value)
        self.errorf(f"unexpected {item} in {context}")

    # the grammar
    def parse(self) -> list[Node]:
        root: list[Node] = []
        while self.peek().kind != "eof":
            if self.peek().kind == "left":
                self.next()
                if self.next_non_space().kind == "define":
                    self.definition()
                    continue
                self.rewind_to_left()
            node = self.text_or_action()
            if isinstance(node, Marker):
                self.errorf(f"unexpected {node}")
            root.append(node)
        return root

    def rewind_to_left(self) -> None:
        while self.items[self.index].kind != "left":
            self.index -= 1

    def definition(self) -> None:
        context = "define clause"
        name = self.next_non_space()
        if name.kind not in ("string", "raw"):
            self.unexpected(name, context)
        self.expect("right", context)
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end.kind != "end":
            self.errorf(f"unexpected {end} in {context}")
        self.define(unquote(name.value), body)

    def define(self, name: str, body: list[Node]) -> None:
        """Go's treeSet add: an empty definition gives way, two full ones clash."""
        known = self.defined.get(name)
        if known is None or is_empty(known):
            self.defined[name] = body
        elif not is_empty(body):
            self.errorf(f"template: multiple definition of template {go_str_quote(name)}")

    def item_list(self) -> tuple[list[Node], Marker]:
        nodes: list[Node] = []
        while self.peek_non_space().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, Marker):
                return nodes, node
            nodes.append(node)
        self.current = self.peek()
        self.errorf("unexpected EOF")
        raise AssertionError("unreachable")

    def text_or_action(self) -> Node:
        item = self.next_non_space()
        if item.kind == "text":
            return Text(item.pos, item.value)
        if item.kind == "left":
            return self.action()
        self.unexpected(item, "input")
        raise AssertionError("unreachable")

    def action(self) -> Node:
        item = self.next_non_space()
        kind = item.kind
        if kind == "block":
            return self.block()
        if kind in ("break", "continue"):
            if self.range_depth == 0:
                self.errorf(f"{{{{{kind}}}}} outside {{{{range}}}}")
            self.expect("right", kind)
            return Break(item.pos, item.line) if kind == "break" else Continue(item.pos, item.line)
        if kind == "else":
            peeked = self.peek_non_space()
            if peeked.kind not in ("if", "with"):
                self.expect("right", "else")
            return Marker(item.pos, "else")
        if kind == "end":
            self.expect("right", "end")
            return Marker(item.pos, "end")
        if kind in ("if", "range", "with"):
            return self.control(kind)
        if kind == "template":
            return self.include("template clause")
        self.backup()
        pipe = self.pipeline("command", "right")
        return Action(pipe.pos, pipe.line, pipe)

    def block(self) -> Node:
        context = "block clause"
        include = self.include(context)
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end.kind != "end":
            self.errorf(f"unexpected {end} in {context}")
        self.define(include.name, body)
        return include

    def include(self, context: str) -> Include:
        name = self.next_non_space()
        if name.kind not in ("string", "raw"):
            self.unexpected(name, context)
        pipe = None
        if self.next_non_space().kind != "right":
            self.backup()
            pipe = self.pipeline(context, "right")
        return Include(name.pos, name.line, unquote(name.value), pipe)

    def control(self, kind: str) -> Node:
        depth = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range":
            self.range_depth += 1
        body, marker = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        other: list[Node] | None = None
        if marker.kind == "else":
            if kind in ("if", "with") and self.peek_non_space().kind == kind:
                self.next_non_space()
                other = [self.control(kind)]
            else:
                other, marker = self.item_list()
                if marker.kind != "end":
                    self.errorf(f"expected end; found {marker}")
        del self.vars[depth:]
        return Branch(pipe.pos, kind, pipe.line, pipe, body, other)

    def pipeline(self, context: str, end: str) -> Pipe:
        first = self.peek_non_space()
        pipe = Pipe(first.pos, first.line)
        while self.peek_non_space().kind == "var":
            mark = self.index
            variable = self.next_non_space()
            following = self.peek_non_space()
            if following.kind in ("assign", "declare"):
                pipe.is_assign = following.kind == "assign"
                self.next_non_space()
                pipe.decl.append(Variable(variable.pos, [variable.value]))
                self.vars.append(variable.value)
                break
            if following.kind == "chr" and following.value == ",":
                self.next_non_space()
                pipe.decl.append(Variable(variable.pos, [variable.value]))
                self.vars.append(variable.value)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in ("var", "right", "rparen"):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            self.index = mark  # `$x` is an operand, not a declaration
            break
        while True:
            item = self.next_non_space()
            if item.kind == end:
                if not pipe.cmds:
                    self.errorf(f"missing value for {context}")
                for stage, cmd in enumerate(pipe.cmds[1:], start=2):
                    if isinstance(cmd.args[0], (Bool, Dot, Nil, Number, String)):
                        self.errorf(f"non executable command in pipeline stage {stage}")
                return pipe
            if item.kind in ("bool", "char", "dot", "field", "ident", "number", "nil", "raw",
                             "string", "var", "lparen"):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(item, context)

    def command(self) -> Command:
        cmd = Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.kind == "space":
                continue
            if item.kind in ("right", "rparen"):
                self.backup()
            elif item.kind != "pipe":
                self.unexpected(item, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            fields: list[str] = []
            chain_pos = self.peek().pos
            while self.peek().kind == "field":
                fields.append(self.next().value[1:])
            if isinstance(node, Field):
                return Field(node.pos, node.idents + fields)
            if isinstance(node, Variable):
                return Variable(node.pos, node.idents + fields)
            if isinstance(node, (Bool, String, Number, Nil, Dot)):
                self.errorf(f"unexpected . after term {go_str_quote(str(node))}")
            return Chain(chain_pos, node, fields)
        return node

    def term(self) -> Node | None:
        item = self.next_non_space()
        kind = item.kind
        if kind == "ident":
            if item.value not in self.functions:
                self.errorf(f"function {go_str_quote(item.value)} not defined")
            return Identifier(item.pos, item.value)
        if kind == "dot":
            return Dot(item.pos)
        if kind == "nil":
            return Nil(item.pos)
        if kind == "var":
            if item.value not in self.vars:
                self.errorf(f"undefined variable {go_str_quote(item.value)}")
            return Variable(item.pos, [item.value])
        if kind == "field":
            return Field(item.pos, [item.value[1:]])
        if kind == "bool":
            return Bool(item.pos, item.value == "true")
        if kind in ("number", "char"):
            return self.number(item)
        if kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if kind in ("string", "raw"):
            return String(item.pos, item.value, unquote(item.value))
        self.backup()
        return None

    def number(self, item: Item) -> Number:
        text = item.value
        if item.kind == "char":
            try:
                rune = unquote(text)
            except TemplateError:
                rune = ""
            if len(rune) != 1:
                self.errorf(f"malformed character constant: {text}")
            return Number(item.pos, ord(rune), text, is_char=True)
        clean = text.replace("_", "")
        if clean.endswith("i"):
            self.errorf(f"complex numbers are not supported: {text}")  # nobody formats these
        try:
            lowered = clean.lower().lstrip("+-")
            if lowered.startswith(("0x", "0o", "0b")) and "." not in lowered \
                    and "p" not in lowered:
                return Number(item.pos, int(clean, 0), text)
            if lowered.isdigit():
                if len(lowered) > 1 and lowered.startswith("0"):
                    return Number(item.pos, int(clean, 8), text)  # Go's octal 0755
                return Number(item.pos, int(clean), text)
            if lowered.startswith("0x"):
                return Number(item.pos, float.fromhex(clean), text)
            value = float(clean)  # a float constant such as 1e3 stays a float, as in Go
        except ValueError:
            self.errorf(f"illegal number syntax: {go_str_quote(text)}")
        return Number(item.pos, value, text)


def is_empty(nodes: list[Node]) -> bool:
    return all(isinstance(node, Text) and not node.text.strip() for node in nodes)


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\", "'": "'", '"': '"'}


def _unescape(match: re.Match[str]) -> str:
    code = match[1]
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code]
    if code[0] in "xuU":
        return chr(int(code[1:], 16))
    if code.isdigit():
        return chr(int(code, 8))
    raise TemplateError(f"invalid syntax: unknown escape \\{code}")


def unquote(text: str) -> str:
    """Go's strconv.Unquote of a "...", `...` or '.' literal."""
    if text.startswith("`"):
        return text[1:-1].replace("\r", "")
    try:
        return _ESCAPE.sub(_unescape, text[1:-1])
    except TemplateError as err:
        raise TemplateError(f"template: {err}") from None


def go_str_quote(text: str) -> str:
    from shellctr.cli.gotemplate_lex import go_quote

    return go_quote(text)


def parse(text: str, name: str, functions: Collection[str]) -> tuple[list[Node],
                                                                      dict[str, list[Node]]]:
    """The tree of `text` and the templates it defines, or TemplateError."""
    parser = Parser(text, name, functions)
    root = parser.parse()
    return root, parser.defined
