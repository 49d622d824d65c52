"""Validation on the examples: which strategy to trust, and when the search may stop.

The few examples are split into k folds (k = n: leave-one-out). A strategy is
a family of weight vectors plus a rule to pick one on the training folds:

- ``compose``: every vector the search evaluated, picked by the objective;
- ``best_single``: each candidate alone at weight 1, picked by loss;
- ``uniform``: all candidates at 1/N (nothing to pick);
- ``base``: all weights 0, the base model alone (nothing to pick).

Its validation loss is the mean target-token cross-entropy of the held-out
folds under the vector picked without them. Every loss comes from forward
passes made anyway (the search's) or once for all folds (N one-hot vectors,
the uniform one), since each evaluation keeps its per-example losses. The
search's path itself saw every example, so ``compose``'s estimate is the
optimistic one of the four: a strategy that beats it is clearly better.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from composition.engine.objective import Evaluation, Objective
from composition.engine.types import (
    CompositionSettings,
    EngineError,
    StrategyChoice,
    StrategyScore,
)

COMPOSE = "compose"
AUTO = "auto"
BEST_SINGLE = "best_single"
UNIFORM = "uniform"
BASE = "base"
# Compared by ``auto``, in the order that breaks ties.
STRATEGIES = (COMPOSE, BEST_SINGLE, UNIFORM, BASE)


def fold_of(count: int, folds: int) -> list[int]:
    """Fold of each example: round-robin over min(folds, count) folds."""
    k = max(1, min(folds, count))
    return [i % k for i in range(count)]


def cross_validated_loss(
    family: Sequence[Evaluation], tokens: Sequence[int], folds: int, l1: float = 0.0
) -> float:
    """Held-out loss when, per fold, the member best on the other folds is picked.

    "Best" mirrors the search objective restricted to the training folds: their
    summed loss per target token, divided by their example count, plus
    ``l1 · mean|w|``.
    """
    if not family:
        raise EngineError("nothing to validate")
    losses = np.array([e.example_losses for e in family], dtype=np.float64)  # members × n
    counts = np.asarray(tokens, dtype=np.float64)
    penalties = np.array([l1 * _mean_abs(e.weights) for e in family])
    assignment = np.array(fold_of(len(counts), folds))
    if assignment.max() == 0:
        # One fold: nothing held out; the plain loss of the best member.
        return float(losses[int(np.argmin(losses.sum(1) + penalties))].sum() / counts.sum())
    held_loss = 0.0
    for fold in range(assignment.max() + 1):
        train = assignment != fold
        train_objective = losses[:, train].sum(1) / counts[train].sum() / train.sum() + penalties
        picked = int(np.argmin(train_objective))
        held_loss += float(losses[picked, ~train].sum())
    return held_loss / float(counts.sum())


def comparison_evaluations(objective: Objective, population: int) -> list[Evaluation]:
    """Each candidate alone at weight 1, then all at 1/N: N + 1 vectors, in that order."""
    count = objective.composed.module_count
    rows = np.vstack([np.eye(count), np.full((1, count), 1.0 / count)])
    # With weight groups, a module's weight is the same in each of its groups.
    rows = np.repeat(rows, objective.composed.weight_groups, axis=1)
    evaluations: list[Evaluation] = []
    for start in range(0, len(rows), population):
        evaluations.extend(objective(rows[start : start + population]))
    return evaluations


def validate_strategies(
    objective: Objective, searched: Sequence[Evaluation], settings: CompositionSettings
) -> tuple[StrategyChoice, Evaluation]:
    """Compare the strategies on the examples' folds; the choice and its weights.

    Costs N + 1 forward passes (N + 2 when the search never tried w = 0).
    """
    comparisons = comparison_evaluations(objective, settings.population)
    base = next((e for e in searched if not any(e.weights)), None)
    if base is None:
        [base] = objective(np.zeros((1, objective.composed.weight_count)))
    choice = choose_strategy(
        searched,
        comparisons,
        base,
        objective.example_tokens,
        settings.validation_folds,
        settings.l1,
    )
    chosen = choice.score(choice.chosen)
    return choice, Evaluation(chosen.weights, chosen.loss, chosen.objective)


def choose_strategy(
    searched: Sequence[Evaluation],
    comparisons: Sequence[Evaluation],
    base: Evaluation,
    tokens: Sequence[int],
    folds: int,
    l1: float,
) -> StrategyChoice:
    """Score the four strategies on the folds; the lowest validation loss wins."""
    singles, uniform = list(comparisons[:-1]), comparisons[-1]
    families = {
        COMPOSE: (list(searched), l1),
        BEST_SINGLE: (singles, 0.0),
        UNIFORM: ([uniform], 0.0),
        BASE: ([base], 0.0),
    }
    scores = []
    for strategy in STRATEGIES:
        family, penalty = families[strategy]
        picked = min(family, key=partial(_penalised, l1=penalty))
        scores.append(
            StrategyScore(
                strategy=strategy,
                validation_loss=cross_validated_loss(family, tokens, folds, penalty),
                weights=picked.weights,
                loss=picked.loss,
                objective=picked.objective,
            )
        )
    best = min(scores, key=lambda s: s.validation_loss)
    k = max(fold_of(len(tokens), folds)) + 1
    extra = len(comparisons) + (0 if any(e is base for e in searched) else 1)
    reason = _reason(best, scores, k, len(tokens))
    return StrategyChoice(best.strategy, k, tuple(scores), reason, extra)


def _penalised(evaluation: Evaluation, l1: float) -> float:
    return evaluation.loss + l1 * _mean_abs(evaluation.weights)


def _mean_abs(weights: Sequence[float]) -> float:
    return float(np.mean(np.abs(weights)))


def _reason(best: StrategyScore, scores: Sequence[StrategyScore], folds: int, examples: int) -> str:
    if folds < 2:
        return (
            f"{best.strategy} has the lowest loss on the single example "
            "(one example leaves nothing to validate on)"
        )
    scheme = "leave-one-out" if folds == examples else f"{folds}-fold"
    others = ", ".join(
        f"{s.strategy} {s.validation_loss:.4f}" for s in scores if s.strategy != best.strategy
    )
    return (
        f"{best.strategy} has the lowest {scheme} validation loss on the "
        f"{examples} examples: {best.validation_loss:.4f} "
        f"(then {others})"
    )


class EarlyStop:
    """Stop the search once ``patience`` evaluations in a row did not lower its
    cross-validated loss."""

    def __init__(self, tokens: Sequence[int], folds: int, l1: float, patience: int):
        if patience < 1:
            raise EngineError("early stopping needs a patience of at least 1 step")
        self.tokens = tokens
        self.folds = folds
        self.l1 = l1
        self.patience = patience
        self.best = float("inf")
        self.since_best = 0
        self.checked = 0

    def __call__(self, evaluated: Sequence[Evaluation]) -> bool:
        for count in range(self.checked + 1, len(evaluated) + 1):
            loss = cross_validated_loss(evaluated[:count], self.tokens, self.folds, self.l1)
            if loss < self.best - 1e-9:
                self.best, self.since_best = loss, 0
            else:
                self.since_best += 1
        self.checked = len(evaluated)
        return self.since_best >= self.patience
