"""Choosing which candidate modules to compose, before the search.

LoraHub samples its N modules at random. A cheaper informed choice: apply each
candidate alone at weight 1, measure its loss on the few examples, and keep the
k with the lowest loss. With the stacked merge (``exact.merged_lora``) this is one
forward pass per candidate (a one-hot weight vector each, several per batch), plus one
with all weights at 0 for the base model as a reference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from composition.engine.adapters import (
    EXACT,
    LORAHUB,
    AdapterCache,
    LoraAdapter,
    adapter_cache,
    lorahub_mismatch,
)
from composition.engine.exact import merged_lora
from composition.engine.fingerprints import Fingerprint, fingerprint_adapter
from composition.engine.loading import BaseModelCache, LoadedModel, base_model_cache
from composition.engine.objective import Objective
from composition.engine.retrieval import retrieve
from composition.engine.types import (
    AdapterRef,
    CancelCheck,
    CompositionCancelled,
    CompositionSettings,
    EngineError,
    Example,
    ModelRef,
    ModuleScore,
    RetrievalScore,
    ScoringCallback,
)

# Candidates scored per forward pass: each adds a copy of the examples to the batch.
DEFAULT_GROUP_SIZE = 4


@dataclass(frozen=True)
class SelectionRequest:
    base: ModelRef
    modules: tuple[AdapterRef, ...]
    examples: tuple[Example, ...]
    keep: int
    device: str = "auto"
    dtype: str = "auto"
    group_size: int = DEFAULT_GROUP_SIZE


@dataclass(frozen=True)
class ModuleSelection:
    # The kept modules, lowest loss first.
    chosen: tuple[AdapterRef, ...]
    # Every candidate, lowest loss first (ties keep the order given).
    scores: tuple[ModuleScore, ...]
    # The base model's loss on the same examples, without any module.
    base_loss: float
    seconds: float


def select_modules(
    request: SelectionRequest,
    models: BaseModelCache = base_model_cache,
    adapters: AdapterCache = adapter_cache,
) -> ModuleSelection:
    """Score every candidate alone on ``request.examples``; keep the best ``keep``."""
    check_selection(request.modules, request.examples, request.keep)
    if request.group_size < 1:
        raise EngineError("group_size must be at least 1")
    started = time.perf_counter()
    loaded, _ = models.get(request.base, request.device, request.dtype)
    sources = [adapters.get(ref) for ref in request.modules]
    with loaded.lock, torch.inference_mode():
        base_loss, losses = score_modules(
            loaded, request.base, sources, request.examples, request.group_size
        )
    order = rank(request.modules, losses)
    return ModuleSelection(
        chosen=tuple(request.modules[i] for i in order[: request.keep]),
        scores=tuple(ModuleScore(request.modules[i].name, losses[i]) for i in order),
        base_loss=base_loss,
        seconds=time.perf_counter() - started,
    )


def check_selection(
    modules: Sequence[AdapterRef], examples: Sequence[Example], keep: int | None
) -> None:
    if keep is not None and keep < 1:
        raise EngineError(f"the number of modules to keep must be at least 1, not {keep}")
    if not modules:
        raise EngineError("module selection needs at least one candidate module")
    if not examples:
        raise EngineError("module selection needs at least one example to score modules on")
    names = [ref.name for ref in modules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EngineError(f"modules listed twice: {', '.join(duplicates)}")


def rank(modules: Sequence[AdapterRef], losses: Sequence[float]) -> list[int]:
    """Indices of ``modules`` by loss; a NaN loss (a diverging module) ranks last."""
    return sorted(
        range(len(modules)),
        key=lambda i: (math.isnan(losses[i]), 0.0 if math.isnan(losses[i]) else losses[i], i),
    )


def score_modules(
    loaded: LoadedModel,
    base: ModelRef,
    sources: list[LoraAdapter],
    examples: Sequence[Example],
    group_size: int = DEFAULT_GROUP_SIZE,
    on_scored: ScoringCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> tuple[float, list[float]]:
    """The base model's loss and each source's loss alone; the caller holds the model's lock.

    ``on_scored(done, total)`` follows every forward pass; ``should_cancel``
    is asked before each one.
    """
    count = len(sources)
    # Row 0 is all zeros: the base model, for reference. Row i + 1 is source i alone.
    rows = np.zeros((count + 1, count))
    rows[1:] = np.eye(count)
    groups = min(group_size, count + 1)
    # One module at weight 1 is that module under either merge: the LoraHub
    # one is cheaper, when the sources' shapes allow it.
    alike = all(lorahub_mismatch(sources[0], s) is None for s in sources[1:])
    composed = merged_lora(
        loaded.model,
        sources,
        loaded.device,
        loaded.dtype,
        merge=LORAHUB if alike else EXACT,
        max_groups=groups,
        model_name=base.identifier,
    )
    losses: list[float] = []
    with composed:
        objective = Objective(loaded, composed, examples, base.task_type)
        for start in range(0, len(rows), groups):
            if should_cancel and should_cancel():
                raise CompositionCancelled()
            losses.extend(e.loss for e in objective(rows[start : start + groups]))
            if on_scored:
                # Row 0, the base model, is not a candidate.
                on_scored(len(losses) - 1, count)
    return losses[0], losses[1:]


@dataclass(frozen=True)
class Preselection:
    """The candidates kept for the search, loaded, and how every candidate ranked."""

    refs: tuple[AdapterRef, ...]
    sources: list[LoraAdapter]
    losses: tuple[ModuleScore, ...] = ()
    retrieval: tuple[RetrievalScore, ...] = ()
    seconds: float = 0.0


def preselect(
    loaded: LoadedModel,
    base: ModelRef,
    refs: tuple[AdapterRef, ...],
    examples: Sequence[Example],
    settings: CompositionSettings,
    adapters: AdapterCache,
    fingerprints: Mapping[str, Fingerprint],
    on_scored: ScoringCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> Preselection:
    """Keep ``settings.preselect`` of ``refs`` by its method; the caller holds the model's lock.

    Retrieval loads only the kept modules (and those without a fingerprint).
    """
    keep = settings.preselect
    if keep is None or keep >= len(refs):
        return Preselection(refs, [adapters.get(ref) for ref in refs])
    started = time.perf_counter()
    if settings.preselect_method == "retrieval":
        named = [
            (ref.name, fingerprints.get(ref.name) or fingerprint_adapter(adapters.get(ref)))
            for ref in refs
        ]
        ranking = retrieve(loaded, base, named, examples)
        if on_scored:
            on_scored(len(refs), len(refs))
        by_name = {ref.name: ref for ref in refs}
        kept = tuple(by_name[name] for name in ranking.best(keep))
        return Preselection(
            kept,
            [adapters.get(ref) for ref in kept],
            retrieval=ranking.scores,
            seconds=time.perf_counter() - started,
        )
    sources = [adapters.get(ref) for ref in refs]
    with torch.inference_mode():
        _, losses = score_modules(
            loaded, base, sources, examples, on_scored=on_scored, should_cancel=should_cancel
        )
    order = rank(refs, losses)[:keep]
    return Preselection(
        tuple(refs[i] for i in order),
        [sources[i] for i in order],
        losses=tuple(ModuleScore(refs[i].name, losses[i]) for i in rank(refs, losses)),
        seconds=time.perf_counter() - started,
    )
