"""Merging: exact sums, in place, per-group batches, sources untouched."""

import numpy as np
import pytest
import torch

from composition.engine.adapters import load_adapter
from composition.engine.loading import load_model
from composition.engine.lora import ComposedLora, ComposedLoraLinear


@pytest.fixture
def loaded_llama(tiny_llama):
    return load_model(tiny_llama, torch.device("cpu"), torch.float32)


def test_merge_is_the_weighted_sum_of_every_tensor(loaded_llama, llama_modules):
    sources = [load_adapter(ref) for ref in llama_modules]
    weights = torch.tensor([0.7, -1.2, 0.35])
    composed = ComposedLora(loaded_llama.model, sources, torch.device("cpu"), torch.float32)

    composed.set_weights(weights)

    merged = composed.merged_layers()
    assert set(merged) == set(sources[0].layers)
    for path, (a, b) in merged.items():
        expected_a = sum(w * s.layers[path][0] for w, s in zip(weights, sources, strict=True))
        expected_b = sum(w * s.layers[path][1] for w, s in zip(weights, sources, strict=True))
        torch.testing.assert_close(a, expected_a)
        torch.testing.assert_close(b, expected_b)


def test_merging_never_writes_to_the_source_tensors(loaded_llama, llama_modules):
    sources = [load_adapter(ref) for ref in llama_modules]
    before = {
        (s.name, path): (a.clone(), b.clone()) for s in sources for path, (a, b) in s.layers.items()
    }
    composed = ComposedLora(loaded_llama.model, sources, torch.device("cpu"), torch.float32)

    with composed:
        for weights in ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [-1.5, 1.5, 0.3]):
            composed.set_weights(torch.tensor(weights))
            loaded_llama.model(torch.tensor([[1, 5, 6]]))

    for s in sources:
        for path, (a, b) in s.layers.items():
            assert torch.equal(a, before[(s.name, path)][0])
            assert torch.equal(b, before[(s.name, path)][1])


def test_layers_are_wrapped_inside_the_context_and_restored_after(loaded_llama, llama_modules):
    sources = [load_adapter(ref) for ref in llama_modules]
    layer = "model.layers.0.self_attn.q_proj"
    original = loaded_llama.model.get_submodule(layer)

    with ComposedLora(loaded_llama.model, sources, torch.device("cpu"), torch.float32):
        assert isinstance(loaded_llama.model.get_submodule(layer), ComposedLoraLinear)

    assert loaded_llama.model.get_submodule(layer) is original


def test_each_row_group_uses_its_own_merge(loaded_llama, llama_modules):
    """P candidates in one batch give the logits of P separate passes."""
    sources = [load_adapter(ref) for ref in llama_modules]
    candidates = np.array([[0.5, 0.0, -0.4], [1.4, -0.3, 0.2], [0.0, 0.9, 0.9]])
    tokens = torch.tensor([[1, 5, 9, 12, 7], [1, 8, 8, 3, 4]])
    model = loaded_llama.model
    composed = ComposedLora(model, sources, torch.device("cpu"), torch.float32, max_groups=3)

    with composed, torch.inference_mode():
        separate = []
        for weights in candidates:
            composed.set_weights(torch.tensor(weights))
            separate.append(model(tokens).logits)
        composed.set_weights(torch.tensor(candidates))
        together = model(tokens.repeat(3, 1)).logits

    torch.testing.assert_close(together, torch.cat(separate), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(separate[0], separate[1])
