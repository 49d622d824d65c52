"""Validation messages as sentences that name their field (plain Python, no Django).

Django's and DRF's stock messages speak of "this field" or "this value" and
some are fragments ("Ensure this field has at least 1 elements."). Shown in
a list of errors, or read out by a screen reader away from the field, they
do not say which field they are about. ``naming_the_field`` rewrites the
stock messages the hub's forms and API can give; any other message is kept.
"""

from __future__ import annotations

import re

_NUMBER_WORDS = {"1": "one", "2": "two", "3": "three"}


def _count(number: str, noun: str) -> str:
    shown = _NUMBER_WORDS.get(number, number)
    return f"{shown} {noun}" if number == "1" else f"{shown} {noun}s"


def _be(label: str) -> str:
    """'is' or 'are': field names like "files" or "target modules" are plural."""
    last = label.split()[-1].lower() if label.split() else ""
    return "are" if last.endswith("s") and not last.endswith(("ss", "us")) else "is"


# (stock message, its sentence): the sentence's {label} is the field's label.
_PATTERNS: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"This field is required\."), lambda m, label: f"{label} {_be(label)} required."),
    (re.compile(r"This field may not be blank\."), "{label} may not be blank."),
    (re.compile(r"This field may not be null\."), "{label} may not be empty."),
    (re.compile(r"This list may not be empty\."), "Give at least one item in {label_lower}."),
    (
        re.compile(r"Ensure this field has at least (\d+) elements?\."),
        lambda m, label: f"Give at least {_count(m[1], 'item')} in {label.lower()}.",
    ),
    (
        re.compile(r"Ensure this field has no more than (\d+) elements?\."),
        lambda m, label: f"{label} may have at most {_count(m[1], 'item')}.",
    ),
    (
        re.compile(r"Ensure this field has no more than (\d+) characters?\."),
        lambda m, label: f"{label} may have at most {_count(m[1], 'character')}.",
    ),
    (
        re.compile(r"Ensure this field has at least (\d+) characters?\."),
        lambda m, label: f"{label} must have at least {_count(m[1], 'character')}.",
    ),
    (
        re.compile(r"Ensure this value has at most (\d+) characters? \(it has (\d+)\)\."),
        lambda m, label: f"{label} may have at most {_count(m[1], 'character')} (it has {m[2]}).",
    ),
    (
        re.compile(r"Ensure this value has at least (\d+) characters? \(it has (\d+)\)\."),
        lambda m, label: f"{label} must have at least {_count(m[1], 'character')} (it has {m[2]}).",
    ),
    (
        re.compile(r"Ensure this value is greater than or equal to (\S+)\."),
        "{label} must be at least {0}.",
    ),
    (
        re.compile(r"Ensure this value is less than or equal to (\S+)\."),
        "{label} must be at most {0}.",
    ),
    (
        re.compile(r"(?:A valid integer is required|Enter a whole number)\."),
        "{label} must be a whole number.",
    ),
    (re.compile(r"(?:A valid number is required|Enter a number)\."), "{label} must be a number."),
]


def field_label(name: str) -> str:
    """A field's label from its name: ``base_model`` → "Base model"."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def naming_the_field(message: str, label: str) -> str:
    """``message`` as a sentence about the field called ``label``, when it is a stock one."""
    for pattern, sentence in _PATTERNS:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        if callable(sentence):
            return sentence(match, label)
        return sentence.format(*match.groups(), label=label, label_lower=label.lower())
    return message
