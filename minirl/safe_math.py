"""A small, safe parser for the integer expressions that the tasks' answers are written in.

Model output is never passed to `eval`, `sympify` or any other interpreter. This parser knows
exactly one grammar and gives up (returns None) on anything else:

    expr   := term (('+' | '-') term)*
    term   := factor ('*' factor)*
    factor := NUMBER | '(' expr ')'
    NUMBER := ASCII digits, at most MAX_DIGITS of them (spaces may separate tokens, not digits)

Limits keep a hostile completion cheap: the text is capped at MAX_CHARS, nesting at
MAX_DEPTH, and every intermediate value at MAX_ABS (so no `9**9**9`-style blow-up).
Unicode digits such as '٣' are not ASCII digits and are rejected.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_CHARS = 64
MAX_DEPTH = 8
MAX_DIGITS = 6
MAX_ABS = 10**12
DIGITS = "0123456789"


class _Reject(Exception):
    """Raised inside the parser; never escapes `parse_expression`."""


@dataclass
class Parsed:
    value: int
    numbers: list[int] = field(default_factory=list)  # the literals, in order of appearance


def parse_expression(text: str) -> Parsed | None:
    """The value of `text` and the numbers it uses, or None if it is not a valid expression."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
    parser = _Parser(text)
    try:
        value = parser.expr(depth=0)
        if parser.peek() != "":
            return None
    except _Reject:
        return None
    return Parsed(value=value, numbers=parser.numbers)


def parse_integer(text: str) -> int | None:
    """An optionally negative ASCII integer such as '-42', or None."""
    if not isinstance(text, str):
        return None
    s = text.strip()
    body = s[1:] if s.startswith("-") else s
    if not body or len(body) > MAX_DIGITS or any(c not in DIGITS for c in body):
        return None
    return int(s)


class _Parser:
    def __init__(self, chars: str):
        self.chars, self.pos, self.numbers = chars, 0, []

    def peek(self) -> str:
        """The next character that is not a space ('' at the end)."""
        while self.pos < len(self.chars) and self.chars[self.pos] == " ":
            self.pos += 1
        return self.chars[self.pos] if self.pos < len(self.chars) else ""

    def expr(self, depth: int) -> int:
        value = self.term(depth)
        while self.peek() and self.peek() in "+-":
            op = self.chars[self.pos]
            self.pos += 1
            rhs = self.term(depth)
            value = _bounded(value + rhs if op == "+" else value - rhs)
        return value

    def term(self, depth: int) -> int:
        value = self.factor(depth)
        while self.peek() == "*":
            self.pos += 1
            value = _bounded(value * self.factor(depth))
        return value

    def factor(self, depth: int) -> int:
        c = self.peek()
        if c == "(":
            if depth >= MAX_DEPTH:
                raise _Reject
            self.pos += 1
            value = self.expr(depth + 1)
            if self.peek() != ")":
                raise _Reject
            self.pos += 1
            return value
        start = self.pos                        # digits of one number: no spaces inside
        while self.pos < len(self.chars) and self.chars[self.pos] in DIGITS:
            self.pos += 1
        digits = self.chars[start:self.pos]
        if not digits or len(digits) > MAX_DIGITS:
            raise _Reject
        number = int(digits)
        self.numbers.append(number)
        return number


def _bounded(value: int) -> int:
    if abs(value) > MAX_ABS:
        raise _Reject
    return value
