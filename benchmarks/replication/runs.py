"""Running the plan: each run from the cache, or computed with the engine and cached."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.replication.baselines import BaselineRunner, run_majority
from benchmarks.replication.cache import Fingerprints, cache_path, load_cached, save_cached
from benchmarks.replication.outputs import prompt_text, prompt_tokens, scored
from benchmarks.replication.plan import (
    BEST_SINGLE,
    COMPOSE,
    IN_CONTEXT,
    MODEL_FREE,
    RANK,
    ZERO_SHOT,
    MethodSpec,
    ReplicationSetup,
    RunKey,
    RunResult,
    TaskSplit,
    check_setup,
    planned_runs,
    sample_modules,
)
from benchmarks.replication.report import duration
from composition.engine.types import EngineError

if TYPE_CHECKING:
    # Both pull in torch; the runner imports them only when it runs.
    from composition.engine.adapters import AdapterCache
    from composition.engine.loading import BaseModelCache

# (setup, split, method, seed); a method that reuses another's run also gets ``source=`` it.
RunFunction = Callable[..., RunResult]


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
    done: dict[RunKey, RunResult] = {}
    for index, key in enumerate(plan, start=1):
        result = cached[key]
        if result is None and compute:
            method = methods[key.method]
            run = run or EngineRunner()
            say(f"[{index}/{len(plan)}] {key.task} · {key.method} · seed {key.seed} …")
            split = fingerprints.splits[key.task]
            if method.reuses:
                source = done.get(RunKey(key.task, method.reuses, key.seed))
                if source is None:
                    say(f"[{index}/{len(plan)}] {key.task} · {key.method}: no {method.reuses} run")
                    continue
                computed_run = run(setup, split, method, key.seed, source=source)
            else:
                computed_run = run(setup, split, method, key.seed)
            result = replace(computed_run, fingerprint=fingerprints.run(key.task, key.method))
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
            done[key] = result
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
        self,
        setup: ReplicationSetup,
        split: TaskSplit,
        method: MethodSpec,
        seed: int,
        source: RunResult | None = None,
    ) -> RunResult:
        started = time.perf_counter()
        if method.kind == COMPOSE:
            return self._compose(setup, split, method, seed, started)
        if method.kind in MODEL_FREE:
            return run_majority(split, method, seed)
        baselines = BaselineRunner(self.models, self.adapters, self.device)
        if method.kind == BEST_SINGLE:
            return baselines.best_single(setup, split, method, seed)
        if method.kind == RANK:
            if source is None:
                raise EngineError(f"{method.name} needs the run of {method.reuses} it reuses")
            kinds = {m.name: m.kind for m in setup.methods}
            return baselines.rank(setup, split, method, seed, source, kinds[source.method])
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
        return scored(
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
            scored(
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
