"""Go's text/template lexer: the template's text into items, as text/template/parse does
(its item kinds, its trim markers `{{- ` / ` -}}`, comments, and its error messages)."""

from __future__ import annotations

from typing import NamedTuple

LEFT, RIGHT = "{{", "}}"
SPACES = " \t\r\n"
KEYWORDS = frozenset({"block", "break", "continue", "define", "else", "end", "if", "range",
                      "template", "with"})
# the characters that may end a field, variable or identifier (Go's atTerminator)
TERMINATORS = frozenset(SPACES + ".,|:()")


class Item(NamedTuple):
    kind: str  # text, left, right, space, ident, field, var, string, raw, char, number, bool,
    # nil, dot, pipe, lparen, rparen, declare, assign, chr, eof, error, or a keyword
    pos: int
    value: str
    line: int

    def __str__(self) -> str:
        """As Go's item.String words it in `unexpected X in Y`."""
        if self.kind == "eof":
            return "EOF"
        if self.kind == "error":
            return self.value
        if self.kind in KEYWORDS:
            return f"<{self.value}>"
        if len(self.value) > 10:
            return go_quote(self.value[:10]) + "..."
        return go_quote(self.value)


def go_quote(text: str) -> str:
    """Go's strconv.Quote (%q of a string)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and code > 0x7F:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


class Lexer:
    """Items of one template, all at once (Go lexes in a goroutine; the result is the same)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.items: list[Item] = []
        self.paren_depth = 0

    def item(self, kind: str, start: int, value: str) -> Item:
        return Item(kind, start, value, self.text.count("\n", 0, start) + 1)

    def emit(self, kind: str) -> None:
        self.items.append(self.item(kind, self.start, self.text[self.start:self.pos]))
        self.start = self.pos

    def ignore(self) -> None:
        self.start = self.pos

    def advance(self, count: int) -> None:
        self.pos += count

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def error(self, message: str) -> list[Item]:
        self.items.append(self.item("error", self.start, message))
        return self.items

    def run(self) -> list[Item]:
        text = self.text
        while True:
            found = text.find(LEFT, self.pos)
            if found < 0:
                self.pos = len(text)
                if self.pos > self.start:
                    self.emit("text")
                self.items.append(self.item("eof", self.pos, ""))
                return self.items
            # `{{- ` trims the blanks before it (the marker needs a blank after it)
            trim = text[found + 2:found + 3] == "-" and text[found + 3:found + 4] != "" \
                and text[found + 3] in SPACES
            end = found
            if trim:
                end = self.start + len(text[self.start:found].rstrip(SPACES))
            if end > self.start:
                self.pos = end
                self.emit("text")
            self.pos = self.start = found
            inside = found + 2 + (2 if trim else 0)
            if text.startswith("/*", inside):
                if not self.comment(inside):
                    return self.items
                continue
            self.pos = found + 2
            self.emit("left")
            self.pos = inside
            self.ignore()
            self.paren_depth = 0
            if not self.inside_action():
                return self.items

    def comment(self, inside: int) -> bool:
        end = self.text.find("*/", inside + 2)
        if end < 0:
            self.error("unclosed comment")
            return False
        self.pos = end + 2
        at_right, trim = self.at_right()
        if not at_right:
            self.error("comment ends before closing delimiter")
            return False
        self.pos += 4 if trim else 2
        self.ignore()
        if trim:
            self.trim_following()
        return True

    def trim_following(self) -> None:
        rest = self.text[self.pos:]
        self.pos += len(rest) - len(rest.lstrip(SPACES))
        self.ignore()

    def at_right(self) -> tuple[bool, bool]:
        """(at a right delimiter, with a trim marker before it)."""
        text, pos = self.text, self.pos
        if text.startswith(RIGHT, pos):
            return True, False
        if pos + 1 < len(text) and text[pos] in SPACES and text.startswith("-" + RIGHT, pos + 1):
            return True, True
        return False, False

    def inside_action(self) -> bool:
        text = self.text
        while True:
            at_right, trim = self.at_right()
            if at_right:
                if self.paren_depth:
                    self.error("unclosed left paren")
                    return False
                if trim:  # the blank and the `-` are no part of the delimiter
                    self.advance(2)
                    self.ignore()
                self.advance(2)
                self.emit("right")
                if trim:
                    self.trim_following()
                return True
            ch = self.peek()
            if ch == "":
                self.error("unclosed action")
                return False
            if ch in SPACES:
                while self.peek() in SPACES and self.peek() and not self.at_right()[1]:
                    self.advance(1)
                self.emit("space")
            elif ch == "=":
                self.advance(1)
                self.emit("assign")
            elif ch == ":":
                if self.peek(1) != "=":
                    self.advance(1)
                    self.error("expected :=")
                    return False
                self.advance(2)
                self.emit("declare")
            elif ch == "|":
                self.advance(1)
                self.emit("pipe")
            elif ch == '"':
                if not self.quote():
                    return False
            elif ch == "`":
                end = text.find("`", self.pos + 1)
                if end < 0:
                    self.error("unterminated raw quoted string")
                    return False
                self.advance(end + 1 - self.pos)
                self.emit("raw")
            elif ch == "$":
                self.advance(1)
                self.alnum()
                if not self.terminated():
                    return False
                self.emit("var")
            elif ch == "'":
                if not self.char():
                    return False
            elif ch == "." and not ("0" <= self.peek(1) <= "9" and self.peek(1)):
                self.advance(1)
                if self.alnum():
                    if not self.terminated():
                        return False
                    self.emit("field")
                else:
                    self.emit("dot")
            elif ch in "+-." or ch.isdigit():
                if not self.number():
                    return False
            elif ch == "_" or ch.isalnum():
                self.alnum()
                if not self.terminated():
                    return False
                word = text[self.start:self.pos]
                if word in KEYWORDS:
                    self.emit(word)
                elif word in ("true", "false"):
                    self.emit("bool")
                elif word == "nil":
                    self.emit("nil")
                else:
                    self.emit("ident")
            elif ch == "(":
                self.advance(1)
                self.emit("lparen")
                self.paren_depth += 1
            elif ch == ")":
                self.advance(1)
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    self.error("unexpected right paren")
                    return False
                self.emit("rparen")
            elif ch.isascii() and ch.isprintable():
                self.advance(1)
                self.emit("chr")
            else:
                self.error(f"unrecognized character in action: {go_rune(ch)}")
                return False

    def alnum(self) -> bool:
        begin = self.pos
        while self.peek() and (self.peek() == "_" or self.peek().isalnum()):
            self.advance(1)
        return self.pos > begin

    def terminated(self) -> bool:
        ch = self.peek()
        if ch == "" or ch in TERMINATORS or self.at_right()[0]:
            return True
        self.error(f"bad character {go_rune(ch)}")
        return False

    def quote(self) -> bool:
        self.advance(1)
        while True:
            ch = self.peek()
            if ch == "\\":
                self.advance(1)
                ch = self.peek()
                if ch in ("", "\n"):
                    self.error("unterminated quoted string")
                    return False
            elif ch in ("", "\n"):
                self.error("unterminated quoted string")
                return False
            elif ch == '"':
                self.advance(1)
                self.emit("string")
                return True
            self.advance(1)

    def char(self) -> bool:
        self.advance(1)
        while True:
            ch = self.peek()
            if ch == "\\":
                self.advance(1)
                if self.peek() in ("", "\n"):
                    self.error("unterminated character constant")
                    return False
            elif ch in ("", "\n"):
                self.error("unterminated character constant")
                return False
            elif ch == "'":
                self.advance(1)
                self.emit("char")
                return True
            self.advance(1)

    def number(self) -> bool:
        text = self.text
        if self.peek() in "+-":
            self.advance(1)
        digits = "0123456789_"
        if self.peek() == "0" and self.peek(1) in ("x", "X", "o", "O", "b", "B") and self.peek(1):
            self.advance(2)
            digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_",
                      "b": "01_"}[text[self.pos - 1].lower()]
        while self.peek() and self.peek() in digits:
            self.advance(1)
        if self.peek() == ".":
            self.advance(1)
            while self.peek() and self.peek() in digits:
                self.advance(1)
        exponent = "pP" if len(digits) > 16 else "eE"
        if self.peek() and self.peek() in exponent:
            self.advance(1)
            if self.peek() in ("+", "-") and self.peek():
                self.advance(1)
            while self.peek() and self.peek() in "0123456789_":
                self.advance(1)
        if self.peek() == "i":
            self.advance(1)
        if self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.advance(1)
            self.error(f"bad number syntax: {go_quote(text[self.start:self.pos])}")
            return False
        self.emit("number")
        return True


def go_rune(ch: str) -> str:
    """Go's %#U of a rune: U+0021 '!'."""
    code = ord(ch)
    shown = f" '{ch}'" if ch.isprintable() else ""
    return f"U+{code:04X}{shown}"


def lex(text: str) -> list[Item]:
    """All the items of `text`, ending with an `eof` or an `error` item."""
    return Lexer(text).run()
