"""The exact merge against a direct computation: Σ wᵢ·sᵢ·BᵢAᵢ, mixed ranks and scalings."""

import copy
import math

import pytest
import torch

from composition.engine.adapters import AdapterCache, check_compatible, load_adapter
from composition.engine.compose import CompositionRequest, compose
from composition.engine.exact import DENSE, FACTORED, ExactLora, merged_lora
from composition.engine.loading import BaseModelCache, load_model
from composition.engine.types import (
    AdapterRef,
    CompositionSettings,
    EngineError,
    IncompatibleModulesError,
)
from tests.composition.engine.conftest import EXAMPLES

WEIGHTS = [0.7, -1.2, 0.35]
TOKENS = torch.tensor([[1, 5, 9, 12, 7], [1, 8, 8, 3, 4]])


@pytest.fixture(scope="module")
def mixed_refs(tiny_llama, make_modules):
    """Three modules no LoraHub merge can average: rank 4 alpha 8, rank 8 rslora, patterns."""
    [plain] = make_modules(tiny_llama, rank=4, alpha=8, prefix="plain")
    [rslora] = make_modules(
        tiny_llama, rank=8, alpha=4, prefix="rslora", options={"use_rslora": True}
    )
    [patterned] = make_modules(
        tiny_llama,
        rank=2,
        alpha=16,
        prefix="patterned",
        options={"rank_pattern": {"q_proj": 6}, "alpha_pattern": {"v_proj": 3}},
    )
    return (plain, rslora, patterned)


@pytest.fixture(scope="module")
def mixed_modules(mixed_refs):
    return [load_adapter(ref) for ref in mixed_refs]


@pytest.fixture
def loaded_llama(tiny_llama):
    return load_model(tiny_llama, torch.device("cpu"), torch.float32)


def direct_delta(sources, weights, path) -> torch.Tensor:
    """Σ wᵢ·sᵢ·BᵢAᵢ with sᵢ = alpha/r (alpha/√r with rslora) of that layer, from the configs."""
    total = 0
    for w, source in zip(weights, sources, strict=True):
        a, b = source.layers[path]
        config = source.config
        rank = next(
            (r for key, r in (config.get("rank_pattern") or {}).items() if path.endswith(key)),
            config["r"],
        )
        alpha = next(
            (x for key, x in (config.get("alpha_pattern") or {}).items() if path.endswith(key)),
            config["lora_alpha"],
        )
        assert a.shape[0] == rank
        scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        total = total + w * scaling * (b @ a)
    return total


def test_the_modules_differ_in_rank_and_scaling(mixed_modules):
    _, rslora, patterned = mixed_modules
    q, v = "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"
    assert [m.layers[q][0].shape[0] for m in mixed_modules] == [4, 8, 6]
    assert rslora.layer_scaling(q) == pytest.approx(4 / math.sqrt(8))
    assert patterned.layer_scaling(q) == pytest.approx(16 / 6)
    assert patterned.layer_scaling(v) == pytest.approx(3 / 2)


@pytest.mark.parametrize("form", [FACTORED, DENSE])
def test_merged_tensors_are_the_direct_sum(loaded_llama, mixed_modules, form):
    composed = ExactLora(
        loaded_llama.model, mixed_modules, torch.device("cpu"), torch.float32, form=form
    )

    composed.set_weights(torch.tensor(WEIGHTS))

    merged = composed.merged_layers()
    assert set(merged) == set(mixed_modules[0].layers)
    for path, (a, b) in merged.items():
        torch.testing.assert_close(b @ a, direct_delta(mixed_modules, WEIGHTS, path))


@pytest.mark.parametrize("form", [FACTORED, DENSE])
def test_forward_equals_the_base_model_plus_the_direct_delta(loaded_llama, mixed_modules, form):
    model = loaded_llama.model
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for path in mixed_modules[0].layers:
            reference.get_submodule(path).weight += direct_delta(mixed_modules, WEIGHTS, path)
    composed = ExactLora(model, mixed_modules, torch.device("cpu"), torch.float32, form=form)

    with composed, torch.inference_mode():
        composed.set_weights(torch.tensor(WEIGHTS))
        logits = model(TOKENS).logits
        expected = reference(TOKENS).logits

    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(expected, model(TOKENS).logits)  # restored: the merge mattered


@pytest.mark.parametrize("form", [FACTORED, DENSE])
def test_each_row_group_uses_its_own_exact_merge(loaded_llama, mixed_modules, form):
    candidates = torch.tensor([[0.5, 0.0, -0.4], [1.4, -0.3, 0.2]])
    model = loaded_llama.model
    composed = ExactLora(
        model, mixed_modules, torch.device("cpu"), torch.float32, max_groups=2, form=form
    )

    with composed, torch.inference_mode():
        separate = []
        for weights in candidates:
            composed.set_weights(weights)
            separate.append(model(TOKENS).logits)
        composed.set_weights(candidates)
        together = model(TOKENS.repeat(2, 1)).logits

    torch.testing.assert_close(together, torch.cat(separate), rtol=1e-4, atol=1e-5)


def test_exact_equals_lorahub_for_one_module_at_weight_one(loaded_llama, llama_modules):
    sources = [load_adapter(ref) for ref in llama_modules]
    model = loaded_llama.model
    outputs = []
    with torch.inference_mode():
        for merge in ("lorahub", "exact"):
            with merged_lora(model, sources, torch.device("cpu"), torch.float32, merge) as c:
                c.set_weights(torch.tensor([0.0, 1.0, 0.0]))
                outputs.append(model(TOKENS).logits)

    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)


def test_lorahub_refuses_mixed_ranks_naming_them_and_the_exact_merge(mixed_modules):
    with pytest.raises(IncompatibleModulesError) as refused:
        check_compatible(mixed_modules, "lorahub")

    message = str(refused.value)
    assert "tester/rslora-0 cannot be composed with tester/plain-0: rank 8, not 4" in message
    assert 'merge "exact"' in message
    check_compatible(mixed_modules, "exact")


def test_lorahub_refuses_a_different_scaling_at_equal_rank(tiny_llama, make_modules):
    [alpha8] = make_modules(tiny_llama, rank=4, alpha=8, prefix="alpha8")
    [alpha16] = make_modules(tiny_llama, rank=4, alpha=16, prefix="alpha16")

    with pytest.raises(IncompatibleModulesError, match=r"scaling \(lora_alpha/r\) 4, not 2"):
        check_compatible([load_adapter(alpha8), load_adapter(alpha16)], "lorahub")


def test_exact_composition_saves_an_adapter_peft_applies_as_base_plus_delta(
    tiny_llama, mixed_refs, mixed_modules, tmp_path
):
    from peft import PeftModel

    request = CompositionRequest(
        tiny_llama,
        mixed_refs,
        EXAMPLES,
        settings=CompositionSettings(steps=6, merge="exact", device="cpu"),
    )

    result = compose(request, tmp_path, models=BaseModelCache(), adapters=AdapterCache())

    saved = load_adapter(AdapterRef("tester/composed", tmp_path))
    ranks = {path.rsplit(".", 1)[1]: a.shape[0] for path, (a, _) in saved.layers.items()}
    assert ranks == {"q_proj": 4 + 8 + 6, "v_proj": 4 + 8 + 2}  # rank_pattern says which
    base = load_model(tiny_llama, torch.device("cpu"), torch.float32).model
    reference = copy.deepcopy(base)
    with torch.no_grad():
        for path in mixed_modules[0].layers:
            reference.get_submodule(path).weight += direct_delta(
                mixed_modules, result.weights, path
            )
    peft_model = PeftModel.from_pretrained(base, tmp_path)
    with torch.inference_mode():
        torch.testing.assert_close(
            peft_model(TOKENS).logits, reference(TOKENS).logits, rtol=1e-4, atol=1e-5
        )


@pytest.mark.parametrize("merge", ["lorahub", "exact"])
def test_each_weight_group_merges_its_own_blocks_of_layers(loaded_llama, llama_modules, merge):
    """Two groups over the two blocks: block 0 takes the first weight of each module."""
    sources = [load_adapter(ref) for ref in llama_modules]
    grouped = merged_lora(
        loaded_llama.model, sources, torch.device("cpu"), torch.float32, merge, weight_groups=2
    )
    first, second = torch.tensor([0.7, -1.2, 0.35]), torch.tensor([-0.4, 0.9, 1.1])

    grouped.set_weights(torch.stack([first, second], dim=1).reshape(-1))  # module-major

    merged = grouped.merged_layers()
    for weights, block in ((first, "model.layers.0."), (second, "model.layers.1.")):
        alone = merged_lora(loaded_llama.model, sources, torch.device("cpu"), torch.float32, merge)
        alone.set_weights(weights)
        for path, (a, b) in alone.merged_layers().items():
            if path.startswith(block):
                torch.testing.assert_close(merged[path][1] @ merged[path][0], b @ a)


def test_one_weight_group_reproduces_the_default_search(tiny_llama, llama_modules):
    def run(**settings):
        request = CompositionRequest(
            tiny_llama, llama_modules, EXAMPLES, settings=CompositionSettings(steps=5, **settings)
        )
        return compose(request, models=BaseModelCache(), adapters=AdapterCache())

    default, one, two = run(), run(weight_groups=1), run(weight_groups=2)

    assert one.objective_history == default.objective_history and one.weights == default.weights
    assert len(two.weights) == 2 * len(llama_modules) and len(two.module_weights()) == 3


def test_more_weight_groups_than_blocks_are_refused(loaded_llama, llama_modules):
    sources = [load_adapter(ref) for ref in llama_modules]

    with pytest.raises(EngineError, match="weight_groups is 3, but the modules adapt only 2"):
        merged_lora(loaded_llama.model, sources, torch.device("cpu"), torch.float32, "lorahub",
                    weight_groups=3)  # fmt: skip


def test_the_auto_strategy_compares_modules_alike_across_weight_groups(tiny_llama, llama_modules):
    request = CompositionRequest(
        tiny_llama,
        llama_modules,
        EXAMPLES,
        settings=CompositionSettings(steps=3, weight_groups=2, strategy="auto", merge="exact"),
    )

    result = compose(request, models=BaseModelCache(), adapters=AdapterCache())

    assert len(result.weights) == 2 * len(llama_modules) and result.strategy is not None
