import json

import torch

from composition.engine.adapters import load_adapter
from composition.engine.training import train_lora
from composition.engine.types import AdapterRef, TrainingSettings
from tests.composition.engine.conftest import EXAMPLES

SETTINGS = TrainingSettings(
    rank=4, alpha=8, steps=30, batch_size=5, learning_rate=5e-2, warmup_steps=2
)


def test_training_lowers_the_loss_and_saves_a_peft_module(tiny_llama, tmp_path):
    steps = []

    result = train_lora(tiny_llama, EXAMPLES, tmp_path, SETTINGS, on_step=steps.append)

    assert [s.step for s in steps] == list(range(1, 31))
    # A tiny random model learns slowly; the seed makes the figures exact.
    assert result.final_loss < 0.95 * result.loss_history[0]
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny/base"
    assert (config["r"], config["lora_alpha"], config["target_modules"]) == (
        4,
        8,
        ["q_proj", "v_proj"],
    )
    adapter = load_adapter(AdapterRef("tester/trained", tmp_path))
    assert len(adapter.layers) == 4
    assert any(b.abs().sum() > 0 for _, b in adapter.layers.values())


def test_training_is_deterministic_for_a_seed(tiny_llama, tmp_path):
    settings = TrainingSettings(rank=4, alpha=8, steps=3, batch_size=2, dropout=0.1)

    first = train_lora(tiny_llama, EXAMPLES, tmp_path / "a", settings)
    second = train_lora(tiny_llama, EXAMPLES, tmp_path / "b", settings)

    assert first.loss_history == second.loss_history
    a = load_adapter(AdapterRef("a", tmp_path / "a"))
    b = load_adapter(AdapterRef("b", tmp_path / "b"))
    for path in a.layers:
        assert torch.equal(a.layers[path][1], b.layers[path][1])


def test_seq2seq_training_targets_t5_projections(tiny_t5, tmp_path):
    settings = TrainingSettings(rank=4, alpha=8, steps=2, batch_size=2)

    train_lora(tiny_t5, EXAMPLES, tmp_path, settings)

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (config["task_type"], config["target_modules"]) == ("SEQ_2_SEQ_LM", ["q", "v"])


def test_batches_hold_similar_lengths_and_cover_every_example():
    from composition.engine.training import _batch_indices

    lengths = [5, 500] * 32
    batches = _batch_indices(lengths, batch_size=4, steps=16, seed=0)

    assert len(batches) == 16 and all(len(b) == 4 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(64))
    assert all(len({lengths[i] for i in b}) == 1 for b in batches)
