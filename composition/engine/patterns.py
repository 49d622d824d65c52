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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from composition.engine.pattern_cost import MAX_PATTERN_LENGTH, check_cost
from composition.engine.pattern_grammar import Parser, UnsafePattern

# Patterns are only matched against module paths up to this length; real ones
# ("model.layers.31.self_attn.q_proj", with PEFT's prefix) are under 150.
MAX_MODULE_PATH_LENGTH = 256
# rank_pattern and alpha_pattern keys are tried one by one against every module;
# checking a pattern takes some 10 µs per character.
MAX_PATTERNS_PER_FIELD = 1024
MAX_PATTERN_CHARACTERS = 32_768
ALL_LINEAR = "all-linear"


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
        Parser(pattern).parse()
        effective = Parser(use.template.format(pattern)).parse()
        check_cost(effective)
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
