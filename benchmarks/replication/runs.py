"""Running the plan: each run from the cache, or computed with the engine and cached."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.replication.cache import Fingerprints, cache_path, load_cached, save_cached
from benchmarks.replication.plan import (
    COMPOSE,
    IN_CONTEXT,
    ZERO_SHOT,
    MethodSpec,
    ReplicationSetup,
    RunResult,
    TaskSplit,
    check_setup,
    planned_runs,
    sample_modules,
)
from benchmarks.replication.report import duration
from composition.engine.types import SEQ_2_SEQ_LM, EngineError, Example, ModelRef

if TYPE_CHECKING:
    # Both pull in torch; the runner imports them only when it runs.
    from composition.engine.adapters import AdapterCache
    from composition.engine.loading import BaseModelCache

RunFunction = Callable[[ReplicationSetup, TaskSplit, MethodSpec, int], RunResult]


def run_replication(
    setup: ReplicationSetup,
    cache_dir: str | Path,
    run: RunFunction | None = None,
    progress: Callable[[str], None] | None = None,
    compute: bool = True,
) -> list[RunResult]:
    """Every planned run, from the cache or computed (and cached); in plan order.

    With ``compute=False`` nothing is computed: missing runs are left out.
    """
    check_setup(setup)
    fingerprints = Fingerprints(setup)
    methods = fingerprints.methods
    plan = planned_runs(setup)
    paths = {
        key: cache_path(Path(cache_dir), key, fingerprints.run(key.task, key.method))
        for key in plan
    }
    cached = {key: load_cached(path) for key, path in paths.items()}
    to_compute = sum(result is None for result in cached.values())
    say = progress or (lambda message: None)
    if compute:
        say(f"{len(plan)} runs planned: {len(plan) - to_compute} cached, {to_compute} to compute")
    started = time.perf_counter()
    computed = 0
    results = []
    for index, key in enumerate(plan, start=1):
        result = cached[key]
        if result is None and compute:
            method = methods[key.method]
            run = run or EngineRunner()
            say(f"[{index}/{len(plan)}] {key.task} · {key.method} · seed {key.seed} …")
            result = replace(
                run(setup, fingerprints.splits[key.task], method, key.seed),
                fingerprint=fingerprints.run(key.task, key.method),
            )
            save_cached(paths[key], result)
            computed += 1
            elapsed = time.perf_counter() - started
            eta = elapsed / computed * (to_compute - computed)
            say(
                f"[{index}/{len(plan)}] {key.task} · {key.method} · seed {key.seed}: "
                f"accuracy {result.accuracy:.1%} in {result.seconds:.0f}s · "
                f"elapsed {duration(elapsed)} · ETA {duration(eta)}"
            )
        if result is not None:
            results.append(result)
    return results


class EngineRunner:
    """Runs one method on one task split with the engine (models cached across runs)."""

    def __init__(
        self,
        models: BaseModelCache | None = None,
        adapters: AdapterCache | None = None,
        device: str = "auto",
    ):
        from composition.engine.adapters import adapter_cache
        from composition.engine.loading import base_model_cache

        self.models = models or base_model_cache
        self.adapters = adapters or adapter_cache
        self.device = device

    def __call__(
        self, setup: ReplicationSetup, split: TaskSplit, method: MethodSpec, seed: int
    ) -> RunResult:
        started = time.perf_counter()
        if method.kind == COMPOSE:
            return self._compose(setup, split, method, seed, started)
        if method.kind not in (ZERO_SHOT, IN_CONTEXT):
            raise EngineError(f"{method.name}: unknown kind of method {method.kind!r}")
        import torch

        from composition.engine.generate import generate

        loaded, _ = self.models.get(setup.base, self.device, setup.dtype)
        shots = split.shots if method.kind == IN_CONTEXT else ()
        prompts = [
            prompt_text(loaded.tokenizer, setup.base, shots, ex.input) for ex in split.evaluation
        ]
        with loaded.lock, torch.inference_mode():
            outputs = generate(
                loaded.model,
                loaded.tokenizer,
                prompts,
                setup.base.task_type,
                loaded.device,
                max_new_tokens=method.settings.max_new_tokens,
                prompts_are_formatted=True,
            )
        return _scored(
            split,
            method,
            seed,
            outputs,
            prompt_tokens(loaded.tokenizer, setup.base, prompts),
            time.perf_counter() - started,
        )

    def _compose(
        self,
        setup: ReplicationSetup,
        split: TaskSplit,
        method: MethodSpec,
        seed: int,
        started: float,
    ) -> RunResult:
        from composition.engine.compose import CompositionRequest, compose

        request = CompositionRequest(
            base=setup.base,
            modules=sample_modules(setup.modules, method.sample, seed),
            examples=split.shots,
            heldout=split.evaluation,
            settings=replace(method.settings, seed=seed, device=self.device, dtype=setup.dtype),
        )
        result = compose(request, models=self.models, adapters=self.adapters)
        loaded, _ = self.models.get(setup.base, self.device, setup.dtype)
        prompts = [
            prompt_text(loaded.tokenizer, setup.base, (), ex.input) for ex in split.evaluation
        ]
        return replace(
            _scored(
                split,
                method,
                seed,
                [p.output for p in result.predictions],
                prompt_tokens(loaded.tokenizer, setup.base, prompts),
                time.perf_counter() - started,
            ),
            modules=result.module_names,
            weights=result.weights,
            search_seconds=result.timings.select_seconds + result.timings.optimize_seconds,
        )


def prompt_text(tokenizer, base: ModelRef, shots: Sequence[Example], text: str) -> str:
    """What the model is given at inference, as ``generate`` would format it."""
    from composition.engine.encoding import format_few_shot_prompt, format_prompt

    if base.task_type == SEQ_2_SEQ_LM:
        return "".join(f"{shot.input}\n{shot.target}\n\n" for shot in shots) + text
    if shots:
        return format_few_shot_prompt(tokenizer, shots, text)
    return format_prompt(tokenizer, text)


def prompt_tokens(tokenizer, base: ModelRef, prompts: Sequence[str]) -> float:
    causal_chat = base.task_type != SEQ_2_SEQ_LM and getattr(tokenizer, "chat_template", None)
    counts = [len(tokenizer(p, add_special_tokens=not causal_chat)["input_ids"]) for p in prompts]
    return sum(counts) / len(counts) if counts else 0.0


def _scored(
    split: TaskSplit,
    method: MethodSpec,
    seed: int,
    outputs: Sequence[str],
    tokens: float,
    seconds: float,
) -> RunResult:
    from composition.engine.scoring import exact_match

    correct = tuple(
        exact_match(out, ex.target) for out, ex in zip(outputs, split.evaluation, strict=True)
    )
    return RunResult(
        task=split.task,
        method=method.name,
        seed=seed,
        accuracy=sum(correct) / len(correct),
        outputs=tuple(outputs),
        correct=correct,
        tokens_per_example=tokens,
        seconds=seconds,
    )
