"""Runs of the baselines that tell answer format from skill.

Majority answers need no model. The best single module is chosen by its loss
on the few-shot examples alone. Rank classification scores the task's answer
set with the model of the run it reuses: the base model alone or with the
shots in the prompt, or with that run's module and weights.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from benchmarks.replication.outputs import prompt_text, prompt_tokens, scored
from benchmarks.replication.plan import (
    IN_CONTEXT,
    MAJORITY,
    MethodSpec,
    ReplicationSetup,
    RunResult,
    TaskSplit,
)
from composition.engine.scoring import majority_target
from composition.engine.types import EngineError

if TYPE_CHECKING:
    from composition.engine.adapters import AdapterCache
    from composition.engine.loading import BaseModelCache, LoadedModel


def run_majority(split: TaskSplit, method: MethodSpec, seed: int) -> RunResult:
    """The shots' majority target (or, for the oracle, the evaluation set's) for every example."""
    started = time.perf_counter()
    labelled = split.shots if method.kind == MAJORITY else split.evaluation
    answer = majority_target([example.target for example in labelled])
    outputs = [answer] * len(split.evaluation)
    return scored(split, method, seed, outputs, 0.0, time.perf_counter() - started)


class BaselineRunner:
    """Best single module and rank classification, on the runner's cached models."""

    def __init__(self, models: BaseModelCache, adapters: AdapterCache, device: str):
        self.models = models
        self.adapters = adapters
        self.device = device

    def best_single(
        self, setup: ReplicationSetup, split: TaskSplit, method: MethodSpec, seed: int
    ) -> RunResult:
        from composition.engine.selection import SelectionRequest, select_modules

        started = time.perf_counter()
        request = SelectionRequest(
            setup.base, setup.modules, split.shots, keep=1, device=self.device, dtype=setup.dtype
        )
        chosen = select_modules(request, self.models, self.adapters).chosen[0]
        search_seconds = time.perf_counter() - started
        loaded = self._loaded(setup)
        prompts = [prompt_text(loaded.tokenizer, setup.base, (), e.input) for e in split.evaluation]
        with loaded.lock, self._applied(setup, loaded, (chosen.name,), (1.0,)):
            outputs = _generate(loaded, setup, prompts, method.settings.max_new_tokens)
        run = scored(
            split,
            method,
            seed,
            outputs,
            prompt_tokens(loaded.tokenizer, setup.base, prompts),
            time.perf_counter() - started,
        )
        return replace(run, modules=(chosen.name,), weights=(1.0,), search_seconds=search_seconds)

    def rank(
        self,
        setup: ReplicationSetup,
        split: TaskSplit,
        method: MethodSpec,
        seed: int,
        source: RunResult,
        source_kind: str,
    ) -> RunResult:
        if not split.answers:
            # No answer set to rank: the reused run's generated answers stand.
            return replace(
                scored(split, method, seed, source.outputs, source.tokens_per_example, 0.0),
                modules=source.modules,
                weights=source.weights,
            )
        from composition.engine.rank_classification import rank_classify

        started = time.perf_counter()
        loaded = self._loaded(setup)
        shots = split.shots if source_kind == IN_CONTEXT else ()
        inputs = [example.input for example in split.evaluation]
        with loaded.lock, self._applied(setup, loaded, source.modules, source.weights):
            ranked = rank_classify(loaded, inputs, split.answers, shots)
        run = scored(
            split,
            method,
            seed,
            [answer.output for answer in ranked],
            source.tokens_per_example,
            time.perf_counter() - started,
        )
        return replace(
            run, modules=source.modules, weights=source.weights, answer_set=split.answers
        )

    def _loaded(self, setup: ReplicationSetup) -> LoadedModel:
        loaded, _ = self.models.get(setup.base, self.device, setup.dtype)
        return loaded

    @contextmanager
    def _applied(
        self,
        setup: ReplicationSetup,
        loaded: LoadedModel,
        names: Sequence[str],
        weights: Sequence[float],
    ) -> Iterator[None]:
        """The named modules at ``weights`` wired into the model (nothing for none)."""
        import torch

        from composition.engine.lora import ComposedLora

        if not names:
            with torch.inference_mode():
                yield
            return
        by_name = {ref.name: ref for ref in setup.modules}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise EngineError(f"modules of the reused run are not in the set: {', '.join(missing)}")
        composed = ComposedLora(
            loaded.model,
            [self.adapters.get(by_name[name]) for name in names],
            loaded.device,
            loaded.dtype,
            model_name=setup.base.identifier,
        )
        with composed, torch.inference_mode():
            composed.set_weights(torch.tensor(weights))
            yield


def _generate(
    loaded: LoadedModel, setup: ReplicationSetup, prompts: list[str], max_new_tokens: int
) -> list[str]:
    from composition.engine.generate import generate

    return generate(
        loaded.model,
        loaded.tokenizer,
        prompts,
        setup.base.task_type,
        loaded.device,
        max_new_tokens=max_new_tokens,
        prompts_are_formatted=True,
    )
