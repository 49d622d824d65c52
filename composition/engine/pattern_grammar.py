r"""The small regular-expression grammar ``patterns`` accepts, parsed into a tree.

Anything outside the grammar (see ``composition.engine.patterns``) is refused
with an ``UnsafePattern`` whose message says why, as a phrase. Each node of the
tree knows the characters it can start with, which the estimate of work in
``composition.engine.pattern_cost`` needs.
"""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass, field


class UnsafePattern(ValueError):
    """A pattern the hub does not accept; the message says why, as a phrase."""


# Every ASCII character, and one of each kind of other character (a digit, a
# letter, a symbol, a space) standing for all of its kind: a character set is the
# samples it holds, enough to tell whether two sets can share a character. Sets
# are bit masks over the samples.
_SAMPLES = [*map(chr, range(128)), "٣", "é", "€", "\u2003"]
BIT = {char: 1 << index for index, char in enumerate(_SAMPLES)}
_ANY = (1 << len(_SAMPLES)) - 1
NO_CHARACTERS = 0
# Stands before the first character of a name: no character set holds it.
START_OF_NAME = 1 << len(_SAMPLES)
_NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_CLASS_CHARACTERS = _NAME_CHARACTERS | {"."}


@functools.lru_cache(maxsize=1024)
def _sample(regex: str) -> int:
    compiled = re.compile(regex)
    return sum(BIT[char] for char in _SAMPLES if compiled.fullmatch(char))


# Each node knows whether it can match the empty string (nullable) and the
# characters a match of it can start with (first), computed once when built.


@dataclass(frozen=True)
class Chars:
    """One character out of ``chars``, repeated ``low`` to ``high`` times (None: no limit)."""

    chars: int
    low: int = 1
    high: int | None = 1

    @property
    def nullable(self) -> bool:
        return self.low == 0

    @property
    def first(self) -> int:
        return self.chars


@dataclass(frozen=True)
class Anchor:
    """``^``, ``$`` or ``\\b``: matches no character."""

    end: bool = False
    nullable = True
    first = NO_CHARACTERS


@dataclass(frozen=True, eq=False)
class Group:
    branches: tuple[Sequence, ...]
    optional: bool = False
    lookahead: bool = False
    # Whether one of the branches can match the empty string.
    empty_branch: bool = field(init=False)
    nullable: bool = field(init=False)
    first: int = field(init=False)

    def __post_init__(self) -> None:
        empty_branch = any(sequence_nullable(branch) for branch in self.branches)
        # A lookahead reads ahead before anything is matched: a repetition before
        # it is tried at every count, whatever follows.
        first = (
            _ANY
            if self.lookahead
            else functools.reduce(operator.or_, map(_sequence_first, self.branches), NO_CHARACTERS)
        )
        object.__setattr__(self, "empty_branch", empty_branch)
        object.__setattr__(self, "nullable", empty_branch or self.optional or self.lookahead)
        object.__setattr__(self, "first", first)


# One alternative of a group: the items it matches one after the other.
Sequence = tuple[Chars | Anchor | Group, ...]


def sequence_nullable(items: Sequence) -> bool:
    return all(item.nullable for item in items)


def _sequence_first(items: Sequence) -> int:
    """The characters a match of ``items`` can start with."""
    found = NO_CHARACTERS
    for item in items:
        found |= item.first
        if not item.nullable:
            break
    return found


class Parser:
    """Recursive descent over the accepted grammar, refusing anything outside it."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def parse(self) -> Group:
        group = Group(self._alternatives())
        if self.pos < len(self.text):
            raise UnsafePattern("has a ')' that closes no group")
        return group

    def _peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def _alternatives(self) -> tuple[Sequence, ...]:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        return tuple(branches)

    def _sequence(self) -> Sequence:
        items = []
        while self._peek() not in ("", "|", ")"):
            items.append(self._item())
        return tuple(items)

    def _item(self) -> Chars | Anchor | Group:
        char = self._peek()
        if char == "(":
            return self._group()
        if char in ("^", "$") or (char == "\\" and self._peek(1) == "b"):
            self.pos += 1 if char != "\\" else 2
            self._refuse_repetition("repeats an anchor")
            return Anchor(end=char == "$")
        if char and char in "*+?{":
            raise UnsafePattern(f"has {char!r} with nothing before it to repeat")
        chars = self._atom()
        low, high = self._repetition()
        self._refuse_repetition("repeats a repetition")
        return Chars(chars, low, high)

    def _refuse_repetition(self, what: str) -> None:
        if self._peek() and self._peek() in "*+?{":
            raise UnsafePattern(
                f"{what} ({self._peek()!r} after it): nested repetitions can take a "
                "regular-expression engine time exponential in the module name's length"
            )

    def _atom(self) -> int:
        char = self._peek()
        self.pos += 1
        if char == ".":
            return _sample(".")
        if char == "[":
            return self._character_class()
        if char == "\\":
            return _sample(self._escape())
        if char in _NAME_CHARACTERS:
            return BIT[char]
        raise UnsafePattern(f"uses {char!r}, which is not part of a module name")

    def _escape(self) -> str:
        char = self._peek()
        self.pos += 1
        if char in ("d", "w"):
            return "\\" + char
        if char.isdigit():
            raise UnsafePattern(f"refers back to a group (\\{char})")
        if char.isascii() and char.isprintable() and not char.isalnum() and char != " ":
            return re.escape(char)
        raise UnsafePattern(
            f"uses the escape \\{char}; only \\d, \\w, \\b and escaped punctuation "
            "such as \\. are accepted"
        )

    def _character_class(self) -> int:
        start = self.pos - 1
        if self._peek() == "^":
            self.pos += 1
        items = 0
        while self._peek() != "]":
            char = self._peek()
            self.pos += 1
            if char == "\\":
                self._escape()
            elif char not in _CLASS_CHARACTERS:
                raise UnsafePattern(f"has {char!r} in a character class")
            items += 1
        if not items:
            raise UnsafePattern("has an empty character class")
        self.pos += 1
        return _sample(self.text[start : self.pos])

    def _repetition(self) -> tuple[int, int | None]:
        char = self._peek()
        if char == "{":
            match = re.compile(r"\{(\d{1,4})(,(\d{0,4}))?\}").match(self.text, self.pos)
            if not match:
                raise UnsafePattern("has a '{' that is not a repetition such as {2} or {1,3}")
            self.pos = match.end()
            low = int(match[1])
            high = low if match[2] is None else int(match[3]) if match[3] else None
        elif char and char in "*+?":
            self.pos += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        else:
            return 1, 1
        if self._peek() == "?":  # lazy: the same ways, tried in another order
            self.pos += 1
        return low, high

    def _group(self) -> Group:
        self.pos += 1
        lookahead = False
        if self._peek() == "?":
            kind = self._peek(1)
            if kind in ("!", "="):
                lookahead = True
            elif kind != ":":
                raise UnsafePattern(
                    f"has a '(?{kind}' group; only (…), (?:…), (?!…) and (?=…) are accepted"
                )
            self.pos += 2
        branches = self._alternatives()
        if self._peek() != ")":
            raise UnsafePattern("has a '(' that is never closed")
        self.pos += 1
        optional = False
        if not lookahead and self._peek() == "?":
            optional = True
            self.pos += 1
            if self._peek() == "?":
                self.pos += 1
        self._refuse_repetition("repeats a group")
        return Group(branches, optional=optional, lookahead=lookahead)
