"""Scoring answers without torch: exact match, answer sets and rank classification.

Exact match follows the LoraHub paper's normalisation. Rank classification
picks, among a task's possible answers, the one the model finds most likely;
the likelihoods come from ``composition.engine.rank_classification``, the
choice among them from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from composition.engine.types import EngineError

# A task with more distinct targets than this is open-ended: it has no small answer set.
MAX_ANSWER_CHOICES = 20


def normalize_answer(text: str) -> str:
    """Strip, lowercase, drop a final '.'."""
    text = text.strip().lower()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text


def exact_match(output: str, target: str) -> bool:
    return normalize_answer(output) == normalize_answer(target)


def answer_choices(
    targets: Iterable[str], max_choices: int = MAX_ANSWER_CHOICES
) -> tuple[str, ...] | None:
    """The task's answer set: its distinct targets, or None when there are too many.

    Targets equal after normalisation count once (the first spelling is kept);
    the set is sorted by normalised answer, so it does not depend on the order
    of the examples. Only the set is used, never how often each answer occurs.
    """
    if max_choices < 2:
        raise EngineError(f"an answer set needs room for 2 answers, not {max_choices}")
    spellings: dict[str, str] = {}
    for target in targets:
        spellings.setdefault(normalize_answer(target), target)
    if not spellings or len(spellings) > max_choices:
        return None
    return tuple(spellings[key] for key in sorted(spellings))


def best_choice(choices: Sequence[str], log_likelihoods: Sequence[float]) -> str:
    """The choice with the highest log-likelihood; a tie goes to the earlier choice."""
    if not choices:
        raise EngineError("rank classification needs at least one choice")
    if len(choices) != len(log_likelihoods):
        raise EngineError(
            f"{len(choices)} choices but {len(log_likelihoods)} log-likelihoods to rank them"
        )
    best = max(range(len(choices)), key=lambda i: (log_likelihoods[i], -i))
    return choices[best]


def majority_target(targets: Sequence[str]) -> str:
    """The most frequent target (after normalisation); a tie goes to the one seen first."""
    if not targets:
        raise EngineError("the majority target of no examples is undefined")
    counts = Counter(normalize_answer(t) for t in targets)
    top = max(counts.values())
    return next(t for t in targets if counts[normalize_answer(t)] == top)
