"""Validation on the examples: strategies compared on folds, and early stopping."""

import numpy as np
import pytest
import torch

from composition.engine.adapters import AdapterCache
from composition.engine.compose import CompositionRequest, compose
from composition.engine.loading import BaseModelCache
from composition.engine.lora import ComposedLora
from composition.engine.objective import Evaluation, Objective
from composition.engine.types import CompositionSettings, EngineError
from composition.engine.validation import (
    EarlyStop,
    choose_strategy,
    cross_validated_loss,
    fold_of,
)
from tests.composition.engine.conftest import EXAMPLES


@pytest.fixture(scope="module")
def models():
    return BaseModelCache()


def member(weights, example_losses) -> Evaluation:
    loss = sum(example_losses) / len(example_losses)
    return Evaluation(tuple(weights), loss, loss, tuple(example_losses))


def test_folds_are_round_robin_and_at_most_one_per_example():
    assert fold_of(5, 2) == [0, 1, 0, 1, 0]
    assert fold_of(3, 5) == [0, 1, 2]


def test_the_held_out_loss_is_that_of_the_member_picked_without_the_fold():
    # Member 0 is excellent on example 0 only, member 1 good everywhere.
    overfit = member([1.0, 0.0], [0.0, 3.0, 3.0])
    steady = member([0.0, 1.0], [1.0, 1.0, 1.0])
    tokens = [1, 1, 1]

    # Leave-one-out: holding out example 0, member 1 is picked (1 < 3) → 1;
    # holding out 1 or 2, member 1 again (2/2 < 3/2) → 1 each.
    assert cross_validated_loss([overfit, steady], tokens, folds=3) == pytest.approx(1.0)
    # The plain best on all examples would be the same member.
    assert cross_validated_loss([steady], tokens, folds=3) == pytest.approx(1.0)


def test_the_best_single_module_wins_when_the_search_only_overfits():
    searched = [member([0, 0], [2, 2, 2, 2]), member([1.4, -1.4], [0.1, 5, 5, 5])]
    singles = [member([1, 0], [1, 1, 1, 1]), member([0, 1], [3, 3, 3, 3])]
    uniform = member([0.5, 0.5], [1.5, 1.5, 1.5, 1.5])

    choice = choose_strategy(searched, [*singles, uniform], searched[0], [1] * 4, 4, l1=0.0)

    assert choice.chosen == "best_single"
    assert choice.score("best_single").weights == (1, 0)
    assert choice.score("base").validation_loss == pytest.approx(2.0)
    assert choice.folds == 4
    assert "best_single has the lowest leave-one-out validation loss" in choice.reason
    # The search tried w = 0: only the N singles and the uniform vector were extra.
    assert choice.extra_evaluations == 3


def test_ties_go_to_the_composition():
    same = member([0, 0], [1, 1])

    choice = choose_strategy([same], [same, same, same], same, [1, 1], 2, l1=0.0)

    assert choice.chosen == "compose"


def test_per_example_losses_add_up_to_the_objective_loss(tiny_llama, llama_modules, models):
    loaded, _ = models.get(tiny_llama)
    sources = [AdapterCache().get(ref) for ref in llama_modules]
    composed = ComposedLora(loaded.model, sources, loaded.device, loaded.dtype, max_groups=2)
    with composed, torch.inference_mode():
        objective = Objective(loaded, composed, EXAMPLES, "CAUSAL_LM", batch_population=True)
        batched = objective(np.array([[0.5, -0.2, 0.1], [0.0, 0.0, 0.0]]))
        one = objective(np.array([0.5, -0.2, 0.1]))[0]

    tokens = sum(objective.example_tokens)
    for evaluation in batched:
        assert len(evaluation.example_losses) == len(EXAMPLES)
        assert sum(evaluation.example_losses) / tokens / len(EXAMPLES) == pytest.approx(
            evaluation.loss, rel=1e-6
        )
    assert one.example_losses == pytest.approx(batched[0].example_losses, rel=1e-5)


def test_auto_returns_the_strategy_with_the_lowest_validation_loss(
    tiny_llama, llama_modules, models
):
    settings = CompositionSettings(steps=8, strategy="auto", validation_folds=5)

    result = compose(CompositionRequest(tiny_llama, llama_modules, EXAMPLES, settings=settings))

    choice = result.strategy
    assert choice is not None
    assert [s.strategy for s in choice.scores] == ["compose", "best_single", "uniform", "base"]
    best = min(choice.scores, key=lambda s: s.validation_loss)
    assert choice.chosen == best.strategy
    assert result.weights == best.weights
    assert result.best_loss == pytest.approx(best.loss)
    assert choice.score("uniform").weights == pytest.approx((1 / 3,) * 3)
    assert choice.score("base").weights == (0.0, 0.0, 0.0)
    assert choice.folds == 5 and "leave-one-out" in choice.reason
    assert choice.extra_evaluations == 4
    assert result.timings.validate_seconds > 0


def test_compose_alone_compares_nothing(tiny_llama, llama_modules):
    settings = CompositionSettings(steps=3)

    result = compose(CompositionRequest(tiny_llama, llama_modules, EXAMPLES, settings=settings))

    assert result.strategy is None


def test_early_stopping_ends_the_search_once_validation_stops_improving(tiny_llama, llama_modules):
    settings = CompositionSettings(steps=60, early_stop=3, optimizer="RandomSearch")

    result = compose(CompositionRequest(tiny_llama, llama_modules, EXAMPLES, settings=settings))

    assert 3 <= len(result.objective_history) < 60


def test_early_stop_counts_evaluations_without_a_better_validation_loss():
    stop = EarlyStop([1, 1], folds=2, l1=0.0, patience=2)
    history = [member([0], [2, 2])]
    assert not stop(history)
    history.append(member([1], [1, 1]))
    assert not stop(history)
    history.append(member([2], [3, 3]))
    assert not stop(history)
    history.append(member([3], [4, 4]))
    assert stop(history)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"strategy": "best"}, "unknown strategy 'best'"),
        ({"validation_folds": 1}, "at least 2 folds"),
        ({"early_stop": 0}, "early_stop must be at least 1"),
    ],
)
def test_bad_validation_settings_are_refused(tiny_llama, llama_modules, overrides, message):
    settings = CompositionSettings(steps=2, **overrides)

    with pytest.raises(EngineError, match=message):
        compose(CompositionRequest(tiny_llama, llama_modules, EXAMPLES, settings=settings))
