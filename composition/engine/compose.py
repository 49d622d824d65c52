"""LoraHub composition: find weights for N modules from a few examples.

A gradient-free nevergrad optimiser searches w in [-bound, bound]^N from
w = 0, minimising the objective of ``composition.engine.objective`` (the loss
on the examples plus ``l1 · mean|w|``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nevergrad as ng
import numpy as np
import torch

from composition.engine.adapters import AdapterCache, adapter_cache, save_adapter
from composition.engine.exact import merged_lora
from composition.engine.fingerprints import Fingerprint
from composition.engine.generate import generate, score
from composition.engine.loading import BaseModelCache, LoadedModel, base_model_cache
from composition.engine.lora import ComposedLora
from composition.engine.objective import Evaluation, Objective
from composition.engine.selection import preselect
from composition.engine.types import (
    MERGES,
    PRESELECT_METHODS,
    STRATEGY_SETTINGS,
    AdapterRef,
    CancelCheck,
    CompositionCancelled,
    CompositionResult,
    CompositionSettings,
    EngineError,
    Example,
    ModelRef,
    Prediction,
    ProgressCallback,
    ScoringCallback,
    StepReport,
    Timings,
)
from composition.engine.validation import (
    AUTO,
    EarlyStop,
    validate_strategies,
)


@dataclass(frozen=True)
class CompositionRequest:
    base: ModelRef
    modules: tuple[AdapterRef, ...]
    examples: tuple[Example, ...]
    heldout: tuple[Example, ...] = ()
    settings: CompositionSettings = field(default_factory=CompositionSettings)
    # Stored module fingerprints by module name, for preselection by retrieval
    # (a module without one has it computed from its weights).
    fingerprints: Mapping[str, Fingerprint] = field(default_factory=dict)


def compose(
    request: CompositionRequest,
    out_dir: str | Path | None = None,
    on_step: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    models: BaseModelCache = base_model_cache,
    adapters: AdapterCache = adapter_cache,
    on_scored: ScoringCallback | None = None,
) -> CompositionResult:
    """Compose ``request.modules`` for ``request.examples``; save to ``out_dir``.

    ``on_step`` follows every search step, ``on_scored`` every pass of the
    module preselection (when ``settings.preselect`` asks for one).
    """
    _validate(request)
    settings = request.settings
    started = time.perf_counter()
    loaded, warm = models.get(request.base, settings.device, settings.dtype)
    with loaded.lock:
        kept = preselect(
            loaded,
            request.base,
            request.modules,
            request.examples,
            settings,
            adapters,
            request.fingerprints,
            on_scored,
            should_cancel,
        )
        sources = kept.sources
        request = replace(request, modules=kept.refs)
        select_seconds = kept.seconds
        composed = merged_lora(
            loaded.model,
            sources,
            loaded.device,
            loaded.dtype,
            merge=settings.merge,
            max_groups=settings.population,
            model_name=request.base.identifier,
            weight_groups=settings.weight_groups,
        )
        objective = Objective(
            loaded,
            composed,
            request.examples,
            request.base.task_type,
            l1=settings.l1,
            batch_population=settings.batch_population,
        )
        load_seconds = time.perf_counter() - started - select_seconds
        with composed, torch.inference_mode():
            started = time.perf_counter()
            evaluated: list[Evaluation] = []
            stop = _early_stop(objective, settings)
            history, best = search(objective, settings, on_step, should_cancel, evaluated, stop)
            optimize_seconds = time.perf_counter() - started
            started = time.perf_counter()
            choice = None
            if settings.strategy == AUTO:
                choice, best = validate_strategies(objective, evaluated, settings)
            validate_seconds = time.perf_counter() - started

            started = time.perf_counter()
            composed.set_weights(torch.tensor(best.weights))
            if out_dir is not None:
                config = composed.composed_config(_composed_config(sources[0].config, request))
                save_adapter(out_dir, config, composed.merged_layers())
            predictions, accuracy = evaluate(loaded, request.heldout, settings.max_new_tokens)
            evaluate_seconds = time.perf_counter() - started

    return CompositionResult(
        module_names=tuple(ref.name for ref in request.modules),
        weights=best.weights,
        best_objective=best.objective,
        best_loss=best.loss,
        objective_history=tuple(history),
        adapter_dir=Path(out_dir) if out_dir is not None else None,
        predictions=tuple(predictions),
        accuracy=accuracy,
        timings=Timings(
            load_seconds, optimize_seconds, evaluate_seconds, warm, select_seconds, validate_seconds
        ),
        preselection=kept.losses,
        retrieval=kept.retrieval,
        strategy=choice,
        weight_groups=settings.weight_groups,
    )


def search(
    objective: Objective,
    settings: CompositionSettings,
    on_step: ProgressCallback | None,
    should_cancel: CancelCheck | None,
    evaluated: list[Evaluation] | None = None,
    should_stop: Callable[[Sequence[Evaluation]], bool] | None = None,
) -> tuple[list[float], Evaluation]:
    """Ask/tell loop; with population P, P candidates are evaluated per pass.

    Every evaluation is appended to ``evaluated``; ``should_stop(evaluated)``,
    asked after each pass, may end the search before ``settings.steps``.
    """
    evaluated = [] if evaluated is None else evaluated
    optimizer = make_optimizer(objective.composed.weight_count, settings)
    history: list[float] = []
    best: Evaluation | None = None
    while len(history) < settings.steps:
        if should_cancel and should_cancel():
            raise CompositionCancelled()
        count = min(settings.population, settings.steps - len(history))
        asked = [optimizer.ask() for _ in range(count)]
        evaluations = objective(np.stack([c.value for c in asked]))
        for candidate, evaluation in zip(asked, evaluations, strict=True):
            optimizer.tell(candidate, evaluation.objective)
            history.append(evaluation.objective)
            evaluated.append(evaluation)
            if best is None or evaluation.objective < best.objective:
                best = evaluation
        if on_step and best is not None:
            last = evaluations[-1]
            new = tuple(e.objective for e in evaluations)
            on_step(
                StepReport(
                    len(history), settings.steps, last.objective, best.objective, best.weights, new
                )
            )
        if should_stop and should_stop(evaluated):
            break
    if best is None:
        raise EngineError("steps must be at least 1")
    return history, best


def _early_stop(objective: Objective, settings: CompositionSettings) -> EarlyStop | None:
    if settings.early_stop is None:
        return None
    return EarlyStop(
        objective.example_tokens, settings.validation_folds, settings.l1, settings.early_stop
    )


def make_optimizer(
    weight_count: int, settings: CompositionSettings
) -> ng.optimizers.base.Optimizer:
    if settings.optimizer not in ng.optimizers.registry:
        raise EngineError(f"unknown optimiser {settings.optimizer!r}")
    parametrization = ng.p.Array(
        init=np.zeros(weight_count),
        lower=-settings.bound,
        upper=settings.bound,
    )
    if settings.seed is not None:
        parametrization.random_state = np.random.RandomState(settings.seed)
    return ng.optimizers.registry[settings.optimizer](
        parametrization=parametrization,
        budget=settings.steps,
        num_workers=settings.population,
    )


def evaluate(
    loaded: LoadedModel, heldout: Sequence[Example], max_new_tokens: int
) -> tuple[list[Prediction], float | None]:
    if not heldout:
        return [], None
    return score(heldout, _generate(loaded, [ex.input for ex in heldout], max_new_tokens))


def _composed_config(source_config: dict[str, Any], request: CompositionRequest) -> dict[str, Any]:
    config = dict(source_config)
    config.update(
        base_model_name_or_path=request.base.identifier,
        inference_mode=True,
        lora_dropout=0.0,
    )
    return config


def _validate(request: CompositionRequest) -> None:
    s = request.settings
    if len(request.modules) < 2:
        raise EngineError("composition needs at least 2 modules")
    if not request.examples:
        raise EngineError("composition needs at least one example")
    if s.steps < 1:
        raise EngineError("steps must be at least 1")
    if s.population < 1:
        raise EngineError("population must be at least 1")
    if s.bound <= 0:
        raise EngineError("bound must be positive")
    if s.weight_groups < 1:
        raise EngineError(f"weight_groups must be at least 1, not {s.weight_groups}")
    if s.merge not in MERGES:
        raise EngineError(f"unknown merge {s.merge!r}; use one of {', '.join(MERGES)}")
    if s.preselect is not None and s.preselect < 2:
        raise EngineError(
            f"preselect keeps the best k modules and a composition needs 2: k={s.preselect}"
        )
    if s.preselect_method not in PRESELECT_METHODS:
        raise EngineError(
            f"unknown preselect method {s.preselect_method!r}; use {' or '.join(PRESELECT_METHODS)}"
        )
    if s.strategy not in STRATEGY_SETTINGS:
        raise EngineError(f"unknown strategy {s.strategy!r}; use {' or '.join(STRATEGY_SETTINGS)}")
    if s.validation_folds < 2:
        raise EngineError("validation needs at least 2 folds")
    if s.early_stop is not None and s.early_stop < 1:
        raise EngineError("early_stop must be at least 1 step")
    names = [ref.name for ref in request.modules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EngineError(f"modules listed twice: {', '.join(duplicates)}")


def predict(
    base: ModelRef,
    inputs: Sequence[str],
    adapter: AdapterRef | None = None,
    max_new_tokens: int = 32,
    device: str = "auto",
    models: BaseModelCache = base_model_cache,
    adapters: AdapterCache = adapter_cache,
) -> list[str]:
    """Greedy outputs of the base model, or of it with one adapter, for ``inputs``."""
    loaded, _ = models.get(base, device)
    with loaded.lock, torch.inference_mode():
        if adapter is None:
            return _generate(loaded, inputs, max_new_tokens)
        source = adapters.get(adapter)
        single = ComposedLora(
            loaded.model, [source], loaded.device, loaded.dtype, model_name=base.identifier
        )
        with single:
            single.set_weights(torch.ones(1))
            return _generate(loaded, inputs, max_new_tokens)


def _generate(loaded: LoadedModel, inputs: Sequence[str], max_new_tokens: int) -> list[str]:
    return generate(
        loaded.model,
        loaded.tokenizer,
        list(inputs),
        loaded.ref.task_type,
        loaded.device,
        max_new_tokens=max_new_tokens,
    )
