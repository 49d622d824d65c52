r"""The estimate of the work of matching a parsed pattern, as a polynomial in the name's length.

Every place a repetition can stop or an alternative can be taken multiplies the
ways to reach what follows, and every step of the pattern costs one unit per way
of reaching it; ``check_cost`` refuses an estimate with an n² term or too large
a factor (see ``composition.engine.patterns``).
"""

from __future__ import annotations

import functools
import operator

from composition.engine.pattern_grammar import (
    BIT,
    NO_CHARACTERS,
    START_OF_NAME,
    Anchor,
    Chars,
    Group,
    Sequence,
    UnsafePattern,
    sequence_nullable,
)

# Longer patterns are refused before they are parsed.
MAX_PATTERN_LENGTH = 256
# The estimated work may be at most MAX_STEPS_PER_CHARACTER steps per character
# of the module name plus MAX_FIXED_STEPS; a literal pattern of the longest
# length stays within the second, and patterns people write need 10 to 40 steps
# per character.
MAX_STEPS_PER_CHARACTER = 128
MAX_FIXED_STEPS = 4 * MAX_PATTERN_LENGTH
# Repetitions allowing more counts than this are treated as open-ended.
SHORT_REPETITION = 8


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


def check_cost(pattern: Group) -> None:
    work, ways, _ = _group_cost(pattern, _ONE, START_OF_NAME, NO_CHARACTERS)
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


def _leading_sets(items: Sequence) -> list[int]:
    """The character sets a match of ``items`` certainly starts with, one per position."""
    sets = []
    for item in items:
        if isinstance(item, Chars) and item.low == item.high == 1:
            sets.append(item.chars)
            continue
        if not item.nullable:
            sets.append(item.first)
        break
    return sets


def _exclusive(branches: tuple[Sequence, ...]) -> bool:
    """Whether at most one branch can match at any position (they part on a character)."""
    if any(sequence_nullable(branch) for branch in branches):
        return False
    leading = [_leading_sets(branch) for branch in branches]
    return all(
        any(not (x & y) for x, y in zip(a, b, strict=False))
        for i, a in enumerate(leading)
        for b in leading[i + 1 :]
    )


def _group_cost(group: Group, ways: _Poly, before: int, follow: int) -> _Cost:
    """(work, ways out, characters that can precede what follows) for ``ways`` arrivals.

    ``before``: the characters that can stand just before the group (``START_OF_NAME``
    at the beginning of the name); ``follow``: those that can come right after.
    """
    if group.lookahead:
        follow = NO_CHARACTERS  # a lookahead stops at its first match: nothing after it can fail
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
    after = functools.reduce(operator.or_, (r[2] for r in results), NO_CHARACTERS)
    if group.lookahead:
        return work, ways, before
    if group.optional:
        work = _add(work, ways)
        can_skip_and_go_on = group.empty_branch or (group.first & follow)
        ways_out = _add(ways_out, ways) if can_skip_and_go_on else _most(ways_out, ways)
        after |= before
    return work, ways_out, after


def _sequence_cost(items: Sequence, ways: _Poly, before: int, follow: int) -> _Cost:
    follows = []
    for item in reversed(items):
        follows.append(follow)
        if isinstance(item, Anchor) and item.end:
            follow = BIT["\n"]  # $ matches at the end or before a final newline
        elif item.nullable:
            follow = item.first | follow
        else:
            follow = item.first
    follows.reverse()
    work = _ZERO
    for item, item_follow in zip(items, follows, strict=True):
        if isinstance(item, Group):
            item_work, ways, before = _group_cost(item, ways, before, item_follow)
        elif isinstance(item, Anchor):
            item_work = ways
        else:
            item_work, ways, before = _chars_cost(item, ways, before, item_follow)
        work = _add(work, item_work)
    return work, ways, before


def _chars_cost(item: Chars, ways: _Poly, before: int, follow: int) -> _Cost:
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
