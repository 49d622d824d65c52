"""Candidate retrieval: rank many modules for a few examples without running each one.

A module's fingerprint holds, for every layer it adapts, the top right-singular
directions of its update ΔW = s·BA and their singular values. Those directions
live in the layer's input space, so the base model run once over the examples
(the inputs of the adapted layers) says how strongly each module would act on
them: per token, the share of ΔW's top singular energy the token excites,
sqrt(Σᵢ σᵢ² ⟨vᵢ, ĥ⟩² / Σᵢ σᵢ²), averaged over tokens, then over layers. With
one direction this is |⟨v, ĥ⟩|, the routing score of Arrow (Ostapenko et al. 2024).

Ranking N modules costs one forward pass plus N small dot products per layer
and token, instead of N forward passes for the single-module losses of
``composition.engine.selection``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from composition.engine.encoding import encode_examples
from composition.engine.fingerprints import Fingerprint, Layout
from composition.engine.loading import BaseModelCache, LoadedModel, base_model_cache
from composition.engine.types import (
    SEQ_2_SEQ_LM,
    EngineError,
    Example,
    ModelRef,
    RetrievalScore,
)

# --- The examples' side: inputs of the adapted layers --------------------------


def example_activations(
    loaded: LoadedModel,
    task_type: str,
    examples: Sequence[Example],
    paths: Sequence[str],
    model_name: str = "the base model",
) -> dict[str, torch.Tensor]:
    """Per layer path: the unit-normalised input of every token of ``examples`` (T × in).

    One unpadded forward pass per example (prompt and target tokens), with
    hooks capturing what each adapted linear layer reads.
    """
    captured: dict[str, list[torch.Tensor]] = {path: [] for path in paths}
    handles = []
    for path in paths:
        layer = _linear_layer(loaded.model, path, model_name)
        handles.append(layer.register_forward_pre_hook(_capture(captured[path])))
    try:
        with torch.inference_mode():
            for encoded in encode_examples(loaded.tokenizer, examples, task_type):
                _run_unpadded(loaded, task_type, encoded.prompt_ids, encoded.target_ids)
    finally:
        for handle in handles:
            handle.remove()
    return {path: _unit_rows(torch.cat(parts)) for path, parts in captured.items()}


def _capture(into: list[torch.Tensor]):  # type: ignore[no-untyped-def]
    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        into.append(inputs[0].detach().reshape(-1, inputs[0].shape[-1]).float().cpu())

    return hook


def _unit_rows(hidden: torch.Tensor) -> torch.Tensor:
    norms: torch.Tensor = hidden.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return hidden / norms


def _linear_layer(model: nn.Module, path: str, model_name: str) -> nn.Linear:
    try:
        layer = model.get_submodule(path)
    except AttributeError:
        raise EngineError(f"{model_name} has no layer {path}") from None
    if not isinstance(layer, nn.Linear):
        raise EngineError(f"{path} is a {type(layer).__name__}, not a linear layer")
    return layer


def _run_unpadded(
    loaded: LoadedModel, task_type: str, prompt: tuple[int, ...], target: tuple[int, ...]
) -> None:
    device = loaded.device
    model = loaded.model
    if task_type == SEQ_2_SEQ_LM:
        labels = torch.tensor([target], device=device)
        model(
            input_ids=torch.tensor([prompt], device=device),
            decoder_input_ids=model._shift_right(labels),
        )
        return
    body = getattr(model, model.base_model_prefix)
    body(input_ids=torch.tensor([prompt + target], device=device))


# --- Ranking -----------------------------------------------------------------------


def score_fingerprints(
    fingerprints: Sequence[Fingerprint], activations: Mapping[str, torch.Tensor]
) -> list[float]:
    """Each fingerprint's score against the examples' layer inputs (higher: more relevant).

    Modules of one layout (the usual case: one shape per base model) are
    scored together, one matrix product per layer.
    """
    scores = [0.0] * len(fingerprints)
    groups: dict[tuple[Layout, int], list[int]] = {}
    for index, fingerprint in enumerate(fingerprints):
        groups.setdefault((fingerprint.layers, fingerprint.directions_per_layer), []).append(index)
    for (layout, k), members in groups.items():
        group_scores = _score_layout(layout, k, [fingerprints[i] for i in members], activations)
        for index, score in zip(members, group_scores, strict=True):
            scores[index] = score
    return scores


def _score_layout(
    layout: Layout, k: int, members: list[Fingerprint], activations: Mapping[str, torch.Tensor]
) -> list[float]:
    directions = torch.from_numpy(np.stack([f.directions for f in members])).float()
    strengths = torch.from_numpy(np.stack([f.strengths for f in members])).float()
    energy = strengths.square()  # N × layers × k
    total = torch.zeros(len(members), dtype=torch.float64)
    offset = 0
    for layer_index, (path, size) in enumerate(layout):
        block = directions[:, offset : offset + k * size].reshape(-1, size)  # (N·k) × in
        offset += k * size
        hidden = activations.get(path)
        if hidden is None:
            raise EngineError(f"no activations for layer {path}")
        if hidden.shape[1] != size:
            raise EngineError(f"{path} reads {hidden.shape[1]} features, fingerprints have {size}")
        projections = (hidden @ block.T).square().reshape(hidden.shape[0], len(members), k)
        weights = energy[:, layer_index, :]
        share = (projections * weights).sum(-1) / weights.sum(-1).clamp_min(1e-12)
        total += share.sqrt().mean(0).double()
    return (total / len(layout)).tolist()


@dataclass(frozen=True)
class Retrieval:
    # Every candidate, most relevant first (ties keep the order given).
    scores: tuple[RetrievalScore, ...]
    # Forward passes over the examples, then scoring.
    activation_seconds: float
    score_seconds: float

    def best(self, keep: int) -> tuple[str, ...]:
        return tuple(s.name for s in self.scores[:keep])


def retrieve(
    loaded: LoadedModel,
    base: ModelRef,
    fingerprints: Sequence[tuple[str, Fingerprint]],
    examples: Sequence[Example],
) -> Retrieval:
    """Rank named fingerprints for ``examples``; the caller holds the model's lock."""
    if not fingerprints:
        raise EngineError("retrieval needs at least one candidate module")
    if not examples:
        raise EngineError("retrieval needs at least one example")
    started = time.perf_counter()
    paths = sorted({path for _, f in fingerprints for path, _ in f.layers})
    activations = example_activations(
        loaded, base.task_type, examples, paths, model_name=base.identifier
    )
    scored = time.perf_counter()
    values = score_fingerprints([f for _, f in fingerprints], activations)
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return Retrieval(
        scores=tuple(RetrievalScore(fingerprints[i][0], values[i]) for i in order),
        activation_seconds=scored - started,
        score_seconds=time.perf_counter() - scored,
    )


def retrieve_modules(
    base: ModelRef,
    fingerprints: Sequence[tuple[str, Fingerprint]],
    examples: Sequence[Example],
    device: str = "auto",
    dtype: str = "auto",
    models: BaseModelCache = base_model_cache,
) -> Retrieval:
    """``retrieve`` with the base model from the worker's cache."""
    loaded, _ = models.get(base, device, dtype)
    with loaded.lock:
        return retrieve(loaded, base, fingerprints, examples)
