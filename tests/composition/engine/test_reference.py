"""The engine's objective equals the LoraHub reference package's (lorahub 0.1.0)."""

import numpy as np
import pytest
import torch

from composition.engine.adapters import load_adapter
from composition.engine.loading import load_model
from composition.engine.lora import ComposedLora
from composition.engine.objective import Objective
from composition.engine.types import CompositionSettings
from tests.composition.engine.conftest import EXAMPLES

lorahub = pytest.importorskip("lorahub.algorithm")

WEIGHTS = [0.8, -0.45, 1.1]


@pytest.fixture
def reference(tiny_t5, t5_modules):
    """The reference's model, module cache and tokenised examples, freshly loaded."""
    paths = [str(ref.path) for ref in t5_modules]
    model, tokenizer, cache = lorahub.load_base_model_and_lora_modules(paths, str(tiny_t5.path))
    dataset = lorahub.load_dataset(
        [ex.input for ex in EXAMPLES], [ex.target for ex in EXAMPLES], tokenizer
    )
    return model, cache, dataset, paths


def reference_score(reference, weights) -> float:
    model, cache, dataset, _ = reference
    return lorahub.get_score(
        weights,
        model,
        cache,
        dataset,
        None,
        lorahub.default_get_loss,
        lorahub.default_l1_regularization,
    )


def engine_objective(tiny_t5, t5_modules, weights) -> float:
    loaded = load_model(tiny_t5, torch.device("cpu"), torch.float32)
    sources = [load_adapter(ref) for ref in t5_modules]
    composed = ComposedLora(loaded.model, sources, loaded.device, loaded.dtype)
    objective = Objective(
        loaded, composed, EXAMPLES, tiny_t5.task_type, l1=CompositionSettings().l1
    )
    with composed, torch.inference_mode():
        [evaluation] = objective(np.array(WEIGHTS))
    return evaluation.objective


def test_objective_matches_the_reference_first_score(reference, tiny_t5, t5_modules):
    expected = reference_score(reference, WEIGHTS)

    assert engine_objective(tiny_t5, t5_modules, WEIGHTS) == pytest.approx(expected, rel=1e-5)


def test_reference_overwrites_its_last_cached_module_but_the_engine_does_not(reference, t5_modules):
    """Why only the reference's *first* score is comparable: its cache aliases the model."""
    _, cache, _, paths = reference
    last = paths[-1]
    original = {key: tensor.clone() for key, tensor in cache[last].items()}

    reference_score(reference, WEIGHTS)

    assert any(not torch.equal(cache[last][k], original[k]) for k in original)
    on_disk = load_adapter(t5_modules[-1])
    for path, (a, b) in on_disk.layers.items():
        prefix = f"base_model.model.{path}"
        torch.testing.assert_close(a, original[f"{prefix}.lora_A.weight"].float())
        torch.testing.assert_close(b, original[f"{prefix}.lora_B.weight"].float())
