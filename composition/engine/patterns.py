r"""Which regular expressions an adapter config may hold, decided in bounded time.

PEFT reads several fields of ``adapter_config.json`` as regular expressions and
matches them with Python's backtracking ``re`` against the name of every module
of the base model: a string ``target_modules`` or ``exclude_modules`` is
full-matched, ``rank_pattern`` and ``alpha_pattern`` keys are matched as
``(.*\.)?(key)$``, and ``modules_to_save`` and ``layers_pattern`` entries are
pasted into patterns too. A backtracking engine can take time exponential in the
pattern: ``(?:.|.){23}.*X`` is 14 characters and tries 2**23 ways per name. So
only patterns written in a small grammar are accepted, and only when the work of
matching them, counted over the pattern as PEFT embeds it, grows at most
linearly with the length of the module name. Lists of module names, which PEFT
compares as strings, are always accepted.

The grammar, everything else being refused:

- letters, digits, ``_`` and ``-``; ``.`` (any character); escaped punctuation
  such as ``\.``; ``\d``, ``\w``; classes such as ``[0-9]``, ``[qkv]``, ``[^.]``;
- ``*``, ``+``, ``?``, ``{m}``, ``{m,}``, ``{m,n}`` (greedy or lazy) after one of
  those, never after a group or another repetition;
- groups ``(…)`` and ``(?:…)`` with ``|`` between alternatives, optionally
  followed by ``?``; lookaheads ``(?!…)`` and ``(?=…)``; anchors ``^``, ``$``
  and ``\b``.

The work is estimated as a polynomial in the name's length n: every place a
repetition can stop (a ``.*`` followed by something it could also match) or an
alternative can be taken multiplies the ways to reach what follows, and every
step of the pattern costs one unit per way of reaching it. A pattern is refused
when that estimate has an n² term (two overlapping repetitions, such as ``.*.*``
or ``.*\d+``) or too large a factor (``(?:.|.)(?:.|.)…``). Accepted, for
example: ``.*\.(q_proj|v_proj)``, ``model\.layers\.\d+\.self_attn\.(q|v)_proj``,
``^(?!.*lm_head).*proj$``, ``.*\.layers\.(1[0-9]|2[0-3])\.mlp\.[^.]+``.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_PATTERN_LENGTH = 256
# Patterns are only matched against module paths up to this length; real ones
# ("model.layers.31.self_attn.q_proj", with PEFT's prefix) are under 150.
MAX_MODULE_PATH_LENGTH = 256
# rank_pattern and alpha_pattern keys are tried one by one against every module;
# checking a pattern takes some 10 µs per character.
MAX_PATTERNS_PER_FIELD = 1024
MAX_PATTERN_CHARACTERS = 32_768
# The estimated work may be at most MAX_STEPS_PER_CHARACTER steps per character
# of the module name plus MAX_FIXED_STEPS; a literal pattern of the longest
# length stays within the second, and patterns people write need 10 to 40 steps
# per character.
MAX_STEPS_PER_CHARACTER = 128
MAX_FIXED_STEPS = 4 * MAX_PATTERN_LENGTH
# Repetitions allowing more counts than this are treated as open-ended.
SHORT_REPETITION = 8
ALL_LINEAR = "all-linear"


class UnsafePattern(ValueError):
    """A pattern the hub does not accept; the message says why, as a phrase."""


@dataclass(frozen=True)
class PatternUse:
    """How PEFT uses a field's patterns: the regex it builds around each one."""

    template: str
    advice: str


# target_modules / exclude_modules: re.fullmatch(pattern, name).
FULL_NAME = PatternUse("{}", 'list the module names instead, e.g. ["q_proj", "v_proj"]')
# rank_pattern / alpha_pattern keys: re.match(rf"(.*\.)?({key})$", name).
PATTERN_KEY = PatternUse(
    r"(.*\.)?({})$",
    'use module names as keys, e.g. {"q_proj": 16} or {"model.layers.0.self_attn.q_proj": 16}; '
    "PEFT already tries every dotted suffix of the name",
)
# modules_to_save entries: re.match(rf"(^|.*\.){m}($|\..*)", name). Its final .* cannot
# fail (re.match needs no end), so it is reached once and left out of the estimate.
SAVED_MODULE = PatternUse(r"(^|.*\.){}($|\.)", 'name the modules, e.g. ["lm_head"]')
# layers_pattern entries: re.match(rf"(?:^|.*?\.){pattern}\.(?P<idx>\d+)\.", name).
LAYERS_NAME = PatternUse(r"(?:^|.*?\.){}\.(\d+)\.", 'name the layer list, e.g. "layers"')


# --- Checking ------------------------------------------------------------------------


def pattern_problem(pattern: str, use: PatternUse = FULL_NAME) -> str | None:
    """Why the hub refuses ``pattern`` for ``use``, as a phrase, or None if it is safe."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"is longer than {MAX_PATTERN_LENGTH} characters; {use.advice}"
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        return f"is not a valid regular expression ({exc})"
    try:
        _Parser(pattern).parse()
        effective = _Parser(use.template.format(pattern)).parse()
        _check_cost(effective)
    except UnsafePattern as exc:
        return f"{exc}; {use.advice}"
    return None


def config_pattern_problems(config: Mapping[str, Any]) -> list[str]:
    """Every pattern of a PEFT LoRA config the hub refuses, each naming its field.

    Fields of the wrong type are left to the caller, who knows what to say.
    """
    problems: list[str] = []
    checks: list[tuple[str, str, PatternUse]] = []
    for name in ("target_modules", "exclude_modules"):
        value = config.get(name)
        if isinstance(value, str) and value != ALL_LINEAR:
            checks.append((f'"{name}"', value, FULL_NAME))
    for name, use, kind in (
        ("rank_pattern", PATTERN_KEY, "key"),
        ("alpha_pattern", PATTERN_KEY, "key"),
        ("modules_to_save", SAVED_MODULE, "entry"),
        ("layers_pattern", LAYERS_NAME, "entry"),
    ):
        value = config.get(name)
        entries: object
        if kind == "key":
            entries = value if isinstance(value, Mapping) else None
        else:
            entries = [value] if isinstance(value, str) else value
        if not isinstance(entries, list | Mapping):
            continue
        if len(entries) > MAX_PATTERNS_PER_FIELD:
            problems.append(
                f'"{name}" has {len(entries)} {kind}s; at most {MAX_PATTERNS_PER_FIELD}'
            )
            continue
        checks += [(f'"{name}" {kind} {e!r}', e, use) for e in entries if isinstance(e, str)]
    # Checking takes time in proportion to the characters checked.
    total = sum(len(pattern) for _, pattern, _ in checks)
    if total > MAX_PATTERN_CHARACTERS:
        problems.append(
            f"the patterns of the config hold {total} characters; at most {MAX_PATTERN_CHARACTERS}"
        )
        return problems
    for what, pattern, use in checks:
        if problem := pattern_problem(pattern, use):
            problems.append(f"{what} {problem}")
    return problems


# --- Matching, as PEFT does ------------------------------------------------------------


def name_matches(pattern: str, module_path: str) -> bool:
    """Whether a checked ``target_modules`` pattern selects a module (PEFT: re.fullmatch)."""
    _check_length(module_path)
    return _compiled(pattern).fullmatch(module_path) is not None


def key_matches(key: str, module_path: str) -> bool:
    """Whether a checked ``rank_pattern`` / ``alpha_pattern`` key applies to a module."""
    _check_length(module_path)
    return _compiled(PATTERN_KEY.template.format(key)).match(module_path) is not None


def _check_length(module_path: str) -> None:
    # The bound on the work of a checked pattern is per character of the name.
    if len(module_path) > MAX_MODULE_PATH_LENGTH:
        raise ValueError(
            f"module path of {len(module_path)} characters; at most {MAX_MODULE_PATH_LENGTH}"
        )


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# --- The grammar ---------------------------------------------------------------------

# Every ASCII character, and one of each kind of other character (a digit, a
# letter, a symbol, a space) standing for all of its kind: a character set is the
# samples it holds, enough to tell whether two sets can share a character. Sets
# are bit masks over the samples.
_SAMPLES = [*map(chr, range(128)), "٣", "é", "€", "\u2003"]
_BIT = {char: 1 << index for index, char in enumerate(_SAMPLES)}
_ANY = (1 << len(_SAMPLES)) - 1
_NONE = 0
# Stands before the first character of a name: no character set holds it.
_START = 1 << len(_SAMPLES)
_NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_CLASS_CHARACTERS = _NAME_CHARACTERS | {"."}


@functools.lru_cache(maxsize=1024)
def _sample(regex: str) -> int:
    compiled = re.compile(regex)
    return sum(_BIT[char] for char in _SAMPLES if compiled.fullmatch(char))


# Each node knows whether it can match the empty string (nullable) and the
# characters a match of it can start with (first), computed once when built.


@dataclass(frozen=True)
class _Chars:
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
class _Anchor:
    """``^``, ``$`` or ``\\b``: matches no character."""

    end: bool = False
    nullable = True
    first = _NONE


@dataclass(frozen=True, eq=False)
class _Group:
    branches: tuple[_Sequence, ...]
    optional: bool = False
    lookahead: bool = False
    # Whether one of the branches can match the empty string.
    empty_branch: bool = field(init=False)
    nullable: bool = field(init=False)
    first: int = field(init=False)

    def __post_init__(self) -> None:
        empty_branch = any(_sequence_nullable(branch) for branch in self.branches)
        # A lookahead reads ahead before anything is matched: a repetition before
        # it is tried at every count, whatever follows.
        first = (
            _ANY
            if self.lookahead
            else functools.reduce(operator.or_, map(_sequence_first, self.branches), _NONE)
        )
        object.__setattr__(self, "empty_branch", empty_branch)
        object.__setattr__(self, "nullable", empty_branch or self.optional or self.lookahead)
        object.__setattr__(self, "first", first)


# One alternative of a group: the items it matches one after the other.
_Sequence = tuple[_Chars | _Anchor | _Group, ...]


def _sequence_nullable(items: _Sequence) -> bool:
    return all(item.nullable for item in items)


def _sequence_first(items: _Sequence) -> int:
    """The characters a match of ``items`` can start with."""
    found = _NONE
    for item in items:
        found |= item.first
        if not item.nullable:
            break
    return found


class _Parser:
    """Recursive descent over the accepted grammar, refusing anything outside it."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def parse(self) -> _Group:
        group = _Group(self._alternatives())
        if self.pos < len(self.text):
            raise UnsafePattern("has a ')' that closes no group")
        return group

    def _peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def _alternatives(self) -> tuple[_Sequence, ...]:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        return tuple(branches)

    def _sequence(self) -> _Sequence:
        items = []
        while self._peek() not in ("", "|", ")"):
            items.append(self._item())
        return tuple(items)

    def _item(self) -> _Chars | _Anchor | _Group:
        char = self._peek()
        if char == "(":
            return self._group()
        if char in ("^", "$") or (char == "\\" and self._peek(1) == "b"):
            self.pos += 1 if char != "\\" else 2
            self._refuse_repetition("repeats an anchor")
            return _Anchor(end=char == "$")
        if char and char in "*+?{":
            raise UnsafePattern(f"has {char!r} with nothing before it to repeat")
        chars = self._atom()
        low, high = self._repetition()
        self._refuse_repetition("repeats a repetition")
        return _Chars(chars, low, high)

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
            return _BIT[char]
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

    def _group(self) -> _Group:
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
        return _Group(branches, optional=optional, lookahead=lookahead)


# --- The estimate of work -------------------------------------------------------------

# A polynomial in the name's length n: (constant, n, n² and above).
_Poly = tuple[int, int, int]
_ONE: _Poly = (1, 0, 0)
_ZERO: _Poly = (0, 0, 0)
_N: _Poly = (0, 1, 0)
# (work, ways out, characters that can precede what follows) of a part of a pattern.
_Cost = tuple[_Poly, _Poly, int]


def _add(a: _Poly, b: _Poly) -> _Poly:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _times(a: _Poly, b: _Poly) -> _Poly:
    higher = a[0] * b[2] + a[1] * (b[1] + b[2]) + a[2] * sum(b)
    return (a[0] * b[0], a[0] * b[1] + a[1] * b[0], higher)


def _most(a: _Poly, b: _Poly) -> _Poly:
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))


def _scaled(a: _Poly, factor: int) -> _Poly:
    return (a[0] * factor, a[1] * factor, a[2] * factor)


def _check_cost(pattern: _Group) -> None:
    work, ways, _ = _group_cost(pattern, _ONE, _START, _NONE)
    constant, linear, square = _add(work, ways)
    if square:
        raise UnsafePattern(
            "has repetitions that can match the same characters one after the other "
            "(such as .*.* or .*\\d+), so matching takes time that grows with the square of "
            "the module name's length or faster"
        )
    if linear > MAX_STEPS_PER_CHARACTER or constant > MAX_FIXED_STEPS:
        raise UnsafePattern(
            "can match the same text in too many ways (alternatives or repetitions that "
            "overlap, such as (?:.|.)(?:.|.)…), which makes matching slow"
        )


def _leading_sets(items: _Sequence) -> list[int]:
    """The character sets a match of ``items`` certainly starts with, one per position."""
    sets = []
    for item in items:
        if isinstance(item, _Chars) and item.low == item.high == 1:
            sets.append(item.chars)
            continue
        if not item.nullable:
            sets.append(item.first)
        break
    return sets


def _exclusive(branches: tuple[_Sequence, ...]) -> bool:
    """Whether at most one branch can match at any position (they part on a character)."""
    if any(_sequence_nullable(branch) for branch in branches):
        return False
    leading = [_leading_sets(branch) for branch in branches]
    return all(
        any(not (x & y) for x, y in zip(a, b, strict=False))
        for i, a in enumerate(leading)
        for b in leading[i + 1 :]
    )


def _group_cost(group: _Group, ways: _Poly, before: int, follow: int) -> _Cost:
    """(work, ways out, characters that can precede what follows) for ``ways`` arrivals.

    ``before``: the characters that can stand just before the group (``_START``
    at the beginning of the name); ``follow``: those that can come right after.
    """
    if group.lookahead:
        follow = _NONE  # a lookahead stops at its first match: nothing after it can fail
    results = [_sequence_cost(branch, ways, before, follow) for branch in group.branches]
    if _exclusive(group.branches):
        # Every branch is tried, but only one gets past its first characters.
        work = _add(
            functools.reduce(_most, (r[0] for r in results)), _scaled(ways, len(results) - 1)
        )
        ways_out = functools.reduce(_most, (r[1] for r in results))
    else:
        work = functools.reduce(_add, (r[0] for r in results))
        ways_out = functools.reduce(_add, (r[1] for r in results))
    after = functools.reduce(operator.or_, (r[2] for r in results), _NONE)
    if group.lookahead:
        return work, ways, before
    if group.optional:
        work = _add(work, ways)
        can_skip_and_go_on = group.empty_branch or (group.first & follow)
        ways_out = _add(ways_out, ways) if can_skip_and_go_on else _most(ways_out, ways)
        after |= before
    return work, ways_out, after


def _sequence_cost(items: _Sequence, ways: _Poly, before: int, follow: int) -> _Cost:
    follows = []
    for item in reversed(items):
        follows.append(follow)
        if isinstance(item, _Anchor) and item.end:
            follow = _BIT["\n"]  # $ matches at the end or before a final newline
        elif item.nullable:
            follow = item.first | follow
        else:
            follow = item.first
    follows.reverse()
    work = _ZERO
    for item, item_follow in zip(items, follows, strict=True):
        if isinstance(item, _Group):
            item_work, ways, before = _group_cost(item, ways, before, item_follow)
        elif isinstance(item, _Anchor):
            item_work = ways
        else:
            item_work, ways, before = _chars_cost(item, ways, before, item_follow)
        work = _add(work, item_work)
    return work, ways, before


def _chars_cost(item: _Chars, ways: _Poly, before: int, follow: int) -> _Cost:
    # A short repetition costs its count; a longer or unbounded one, the name's length.
    short = item.high if item.high is not None and item.high <= SHORT_REPETITION else None
    if short is not None:
        work = _scaled(ways, short)
    elif before & item.chars:
        # Each arrival may scan the whole name.
        work = _add(ways, _times(ways, _N))
    else:
        # The run starts after a character it cannot match, so runs reached at
        # different places do not overlap: n steps in all for each way of
        # arriving at one place.
        work = _add(ways, _scaled(_N, sum(ways)))
    if item.low != item.high and item.chars & follow:
        # Every count the repetition allows may be where the rest of the pattern goes on.
        choices = _N if short is None else _scaled(_ONE, short - item.low + 1)
        ways = _times(ways, choices)
    after = item.chars | before if item.low == 0 else item.chars
    return work, ways, after
