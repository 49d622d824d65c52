"""Candidate retrieval: module fingerprints scored against the examples' layer inputs."""

import numpy as np
import pytest
import torch

from composition.engine.adapters import AdapterCache, LoraAdapter
from composition.engine.compose import CompositionRequest, compose
from composition.engine.fingerprints import (
    Fingerprint,
    fingerprint_adapter,
    fingerprint_safetensors,
)
from composition.engine.loading import BaseModelCache
from composition.engine.retrieval import example_activations, retrieve_modules, score_fingerprints
from composition.engine.types import AdapterRef, CompositionSettings, EngineError
from tests.composition.engine.conftest import EXAMPLES


@pytest.fixture(scope="module")
def models():
    return BaseModelCache()


def test_a_fingerprint_holds_the_top_singular_directions_of_the_scaled_update(llama_modules):
    adapter = AdapterCache().get(llama_modules[0])

    fingerprint = fingerprint_adapter(adapter, k=2)

    assert [path for path, _ in fingerprint.layers] == sorted(adapter.layers)
    offset = 0
    for index, (path, size) in enumerate(fingerprint.layers):
        a, b = adapter.layers[path]
        _, values, vh = torch.linalg.svd(adapter.scaling * (b @ a).double())
        ours = torch.from_numpy(fingerprint.directions[offset : offset + 2 * size].astype(float))
        offset += 2 * size
        alignment = (ours.reshape(2, size) @ vh[:2].T).abs()
        assert torch.allclose(alignment, torch.eye(2, dtype=torch.float64), atol=2e-3)
        assert fingerprint.strengths[index].astype(float) == pytest.approx(
            values[:2].numpy(), rel=2e-3
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_fingerprint_read_from_the_weights_file_is_that_of_the_loaded_adapter(
    llama_modules, tmp_path, dtype
):
    from safetensors.torch import save_file

    adapter = AdapterCache().get(llama_modules[1])
    tensors = {}
    for path, (a, b) in adapter.layers.items():
        tensors[f"base_model.model.{path}.lora_A.weight"] = a.to(dtype)
        tensors[f"base_model.model.{path}.lora_B.weight"] = b.to(dtype)
    weights = tmp_path / "adapter_model.safetensors"
    save_file(tensors, weights)
    rounded = LoraAdapter(
        adapter.name,
        adapter.config,
        {p: (a.to(dtype).float(), b.to(dtype).float()) for p, (a, b) in adapter.layers.items()},
    )

    from_file = fingerprint_safetensors(weights, adapter.config)
    loaded = fingerprint_adapter(rounded)

    assert from_file.layers == loaded.layers
    assert np.array_equal(from_file.directions, loaded.directions)
    assert np.array_equal(from_file.strengths, loaded.strengths)


def test_a_fingerprint_survives_its_bytes_and_is_small(llama_modules):
    fingerprint = fingerprint_adapter(AdapterCache().get(llama_modules[0]))

    data = fingerprint.to_bytes()
    again = Fingerprint.from_bytes(data)

    assert again.layers == fingerprint.layers
    assert np.array_equal(again.directions, fingerprint.directions)
    assert np.array_equal(again.strengths, fingerprint.strengths)
    # float16: two bytes per input feature and layer, plus a short header.
    assert len(data) < 2 * sum(size for _, size in fingerprint.layers) + 600


@pytest.mark.parametrize("data", [b"", b"\x05\x00\x00\x00{bad", b"\x02\x00\x00\x00{}"])
def test_unreadable_fingerprint_bytes_are_refused_with_a_message(data):
    with pytest.raises(EngineError, match="fingerprint"):
        Fingerprint.from_bytes(data)


def test_truncated_fingerprint_bytes_are_refused(llama_modules):
    data = fingerprint_adapter(AdapterCache().get(llama_modules[0])).to_bytes()

    with pytest.raises(EngineError, match="wrong size"):
        Fingerprint.from_bytes(data[:-2])


def hand_made(direction: list[float], strength: float = 1.0) -> Fingerprint:
    return Fingerprint(
        layers=(("layer", len(direction)),),
        directions_per_layer=1,
        strengths=np.array([[strength]], dtype=np.float16),
        directions=np.array(direction, dtype=np.float16),
    )


def test_the_score_is_the_mean_absolute_cosine_with_the_tokens():
    tokens = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    fingerprints = [hand_made([1, 0, 0]), hand_made([0, 0, 1]), hand_made([0.6, -0.8, 0], 9.0)]

    scores = score_fingerprints(fingerprints, {"layer": tokens})

    # |<v, h>| per token, averaged: the strength of a single direction does not count.
    assert scores == pytest.approx([0.5, 0.0, 0.7], abs=1e-3)


def aligned_adapter(template: LoraAdapter, activations, principal: bool) -> LoraAdapter:
    """``template`` with every A row along the examples' first (or last) principal direction."""
    layers = {}
    for path, (a, b) in template.layers.items():
        _, _, vh = torch.linalg.svd(activations[path], full_matrices=False)
        direction = vh[0] if principal else vh[-1]
        layers[path] = (direction.expand_as(a).clone(), b)
    name = "tester/aligned" if principal else "tester/orthogonal"
    return LoraAdapter(name, template.config, layers)


def test_a_module_acting_on_the_examples_inputs_ranks_above_one_that_ignores_them(
    tiny_llama, llama_modules, models
):
    loaded, _ = models.get(tiny_llama)
    template = AdapterCache().get(llama_modules[0])
    activations = example_activations(loaded, "CAUSAL_LM", EXAMPLES, sorted(template.layers))
    aligned = aligned_adapter(template, activations, principal=True)
    orthogonal = aligned_adapter(template, activations, principal=False)
    named = [
        (adapter.name, fingerprint_adapter(adapter)) for adapter in (orthogonal, template, aligned)
    ]

    ranking = retrieve_modules(tiny_llama, named, EXAMPLES, models=models)

    assert [s.name for s in ranking.scores] == [aligned.name, template.name, orthogonal.name]
    assert ranking.best(1) == (aligned.name,)


def test_activations_are_unit_rows_of_every_token(tiny_llama, models):
    loaded, _ = models.get(tiny_llama)
    paths = ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]

    activations = example_activations(loaded, "CAUSAL_LM", EXAMPLES[:2], paths)

    for hidden in activations.values():
        assert hidden.shape[1] == 32
        assert torch.allclose(hidden.norm(dim=1), torch.ones(hidden.shape[0]), atol=1e-5)


def test_seq2seq_modules_are_ranked_from_encoder_and_decoder_inputs(tiny_t5, t5_modules, models):
    cache = AdapterCache()
    named = [(ref.name, fingerprint_adapter(cache.get(ref))) for ref in t5_modules]

    ranking = retrieve_modules(tiny_t5, named, EXAMPLES, models=models)

    assert sorted(s.name for s in ranking.scores) == sorted(ref.name for ref in t5_modules)
    assert all(s.score > 0 for s in ranking.scores)


def test_preselection_by_retrieval_loads_only_the_kept_modules(tiny_llama, make_modules, models):
    candidates = make_modules(tiny_llama, count=4, prefix="retrieved")
    cache = AdapterCache()
    fingerprints = {ref.name: fingerprint_adapter(cache.get(ref)) for ref in candidates}
    # A candidate whose files are gone but whose stored fingerprint says it is
    # irrelevant: retrieval never opens it.
    gone = AdapterRef("tester/gone", "/nonexistent/module")
    fingerprints[gone.name] = hand_made_like(fingerprints[candidates[0].name])
    settings = CompositionSettings(steps=3, preselect=2, preselect_method="retrieval")

    result = compose(
        CompositionRequest(
            tiny_llama, (*candidates, gone), EXAMPLES, settings=settings, fingerprints=fingerprints
        ),
        models=models,
        adapters=AdapterCache(),
    )

    ranked = [s.name for s in result.retrieval]
    assert len(ranked) == 5 and ranked[-1] == gone.name
    assert result.module_names == tuple(ranked[:2])
    assert result.preselection == ()
    assert result.timings.select_seconds > 0


def hand_made_like(fingerprint: Fingerprint) -> Fingerprint:
    """The same layout, with directions no token excites: all zero."""
    return Fingerprint(
        fingerprint.layers,
        fingerprint.directions_per_layer,
        np.ones_like(fingerprint.strengths),
        np.zeros_like(fingerprint.directions),
    )


def test_an_unknown_preselect_method_is_refused(tiny_llama, llama_modules):
    settings = CompositionSettings(steps=2, preselect=2, preselect_method="oracle")

    with pytest.raises(EngineError, match="unknown preselect method 'oracle'"):
        compose(CompositionRequest(tiny_llama, llama_modules, EXAMPLES, settings=settings))
