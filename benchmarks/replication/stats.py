"""Paired statistics over evaluation examples and tasks: bootstrap intervals, sign test.

Every method is scored on the same examples, so two methods are compared
example by example (paired). A method with several seeds counts, per
example, the share of its seeds that got it right. The average over tasks is
a mean of per-task means; the bootstrap resamples the examples within each
task (every task keeps its size) and recomputes that average.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from composition.engine.scoring import normalize_answer

RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 0

# Per task, one score in [0, 1] per evaluation example, in the split's order.
PerExample = Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Interval:
    """An estimate and its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class SignTest:
    """Tasks where the first method is better, worse, the same; exact two-sided p-value."""

    wins: int
    losses: int
    ties: int
    p_value: float


def example_scores(runs: Sequence[Sequence[bool]]) -> list[float]:
    """Per example, the share of runs (seeds) that got it right."""
    if not runs:
        raise ValueError("no runs to score")
    if len({len(r) for r in runs}) != 1:
        raise ValueError("the runs were scored on different numbers of examples")
    return [sum(column) / len(runs) for column in zip(*runs, strict=True)]


def same_answer_share(outputs: Sequence[str]) -> float:
    """The share of outputs equal (after normalisation) to the most frequent one."""
    if not outputs:
        raise ValueError("no outputs")
    counts = Counter(normalize_answer(output) for output in outputs)
    return max(counts.values()) / len(outputs)


def mean_interval(
    scores: PerExample,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Interval:
    """The average over tasks of the mean score per task, with its bootstrap interval."""
    return _bootstrap(
        {task: np.asarray(s, dtype=float) for task, s in scores.items()},
        resamples,
        confidence,
        seed,
    )


def paired_difference(
    first: PerExample,
    second: PerExample,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Interval:
    """``first`` minus ``second``, averaged over the tasks both have, paired by example."""
    tasks = [t for t in first if t in second]
    differences = {}
    for task in tasks:
        a, b = np.asarray(first[task], dtype=float), np.asarray(second[task], dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"{task}: the methods were scored on different examples")
        differences[task] = a - b
    return _bootstrap(differences, resamples, confidence, seed)


def _bootstrap(
    per_task: Mapping[str, np.ndarray], resamples: int, confidence: float, seed: int
) -> Interval:
    if not per_task or any(len(v) == 0 for v in per_task.values()):
        raise ValueError("every task needs at least one example")
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError("resamples must be at least 1 and confidence within (0, 1)")
    rng = np.random.default_rng(seed)
    totals = np.zeros(resamples)
    # Tasks in name order, so the draws do not depend on the mapping's order.
    for task in sorted(per_task):
        values = per_task[task]
        picks = rng.integers(0, len(values), size=(resamples, len(values)))
        totals += values[picks].mean(axis=1)
    means = totals / len(per_task)
    tail = (1 - confidence) / 2
    estimate = float(np.mean([v.mean() for v in per_task.values()]))
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high))


def sign_test(first: Mapping[str, float], second: Mapping[str, float]) -> SignTest:
    """Per task, is ``first`` above ``second``? Exact binomial test, ties left out."""
    tasks = [t for t in first if t in second]
    wins = sum(first[t] > second[t] for t in tasks)
    losses = sum(first[t] < second[t] for t in tasks)
    return SignTest(wins, losses, len(tasks) - wins - losses, sign_test_p_value(wins, losses))


def sign_test_p_value(wins: int, losses: int) -> float:
    """Two-sided: twice the smaller binomial tail at p = 1/2, capped at 1."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)
