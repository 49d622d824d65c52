"""Loading adapters from their files, and refusing what cannot be composed."""

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file

from composition.engine.adapters import (
    ADAPTER_CONFIG,
    AdapterCache,
    check_compatible,
    load_adapter,
    save_adapter,
)
from composition.engine.types import AdapterRef, EngineError, IncompatibleModulesError


def test_load_reads_pairs_keyed_by_module_path(llama_modules):
    adapter = load_adapter(llama_modules[0])

    assert adapter.rank == 4
    assert adapter.scaling == 2.0
    a, b = adapter.layers["model.layers.1.self_attn.v_proj"]
    assert a.shape == (4, 32) and b.shape == (16, 4)  # v_proj: 32 → 2 kv heads × 8
    assert len(adapter.layers) == 4  # 2 layers × (q_proj, v_proj)


def test_pickled_weights_load_with_the_safe_loader(llama_modules, tmp_path):
    folder = tmp_path / "legacy"
    folder.mkdir()
    shutil.copy(llama_modules[0].path / "adapter_config.json", folder)
    tensors = load_file(llama_modules[0].path / "adapter_model.safetensors")
    torch.save(tensors, folder / "adapter_model.bin")

    adapter = load_adapter(AdapterRef("tester/legacy", folder))

    expected = load_adapter(llama_modules[0])
    for path, (a, b) in expected.layers.items():
        assert torch.equal(adapter.layers[path][0], a)
        assert torch.equal(adapter.layers[path][1], b)


def test_pickle_with_code_is_refused(llama_modules, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    shutil.copy(llama_modules[0].path / "adapter_config.json", folder)
    torch.save({"payload": print}, folder / "adapter_model.bin")

    with pytest.raises(
        EngineError, match=r"tester/evil: adapter_model\.bin refused by the safe loader"
    ):
        load_adapter(AdapterRef("tester/evil", folder))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use_dora": True}, "tester/odd cannot be composed: use_dora is set: DoRA"),
        ({"peft_type": "IA3"}, "peft_type is 'IA3'; only LORA adapters are composed"),
        ({"bias": "all"}, "trained biases"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save replaces whole layers"),
        ({"fan_in_fan_out": True}, r"fan_in_fan_out \(Conv1D\)"),
        ({"lora_bias": True}, "lora_bias adds a trained bias"),
    ],
)
def test_unsupported_configs_are_refused(llama_modules, tmp_path, change, message):
    folder = tmp_path / "odd"
    shutil.copytree(llama_modules[0].path, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}))

    with pytest.raises(EngineError, match=message):
        load_adapter(AdapterRef("tester/odd", folder))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # The attack's pattern, and a variant that also selects the real modules.
        ({"target_modules": r"(?:.|.){23}.*X"}, '"target_modules" repeats a group'),
        ({"target_modules": r"(?:.|.){23}.*proj"}, '"target_modules" repeats a group'),
        ({"exclude_modules": r".*.*lm_head"}, '"exclude_modules" has repetitions that can match'),
        ({"layers_pattern": "(a+)+"}, "\"layers_pattern\" entry '(a+)+' repeats a group"),
    ],
)
def test_configs_with_unsafe_patterns_are_refused(llama_modules, tmp_path, change, message):
    # A composed module copies the config of its first source: its users' PEFT
    # would match these patterns against every module of the base model.
    folder = tmp_path / "hostile"
    shutil.copytree(llama_modules[0].path, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}))

    with pytest.raises(
        EngineError,
        match=re.escape(f"tester/hostile cannot be composed: {ADAPTER_CONFIG} {message}"),
    ):
        load_adapter(AdapterRef("tester/hostile", folder))


def test_a_target_pattern_peft_users_write_loads(llama_modules, tmp_path):
    folder = tmp_path / "regex"
    shutil.copytree(llama_modules[0].path, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    pattern = r"model\.layers\.\d+\.self_attn\.(q|v)_proj"
    (folder / "adapter_config.json").write_text(json.dumps({**config, "target_modules": pattern}))

    adapter = load_adapter(AdapterRef("tester/regex", folder))

    assert adapter.config["target_modules"] == pattern
    assert len(adapter.layers) == 4


def test_missing_weights_are_named(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4, "peft_type": "LORA"}))

    with pytest.raises(EngineError, match=r"tester/empty: neither adapter_model\.safetensors"):
        load_adapter(AdapterRef("tester/empty", tmp_path))


def test_different_rank_is_refused_naming_the_module(tiny_llama, llama_modules, make_modules):
    [rank8] = make_modules(tiny_llama, rank=8, alpha=16, prefix="rank8")
    adapters = [load_adapter(llama_modules[0]), load_adapter(rank8)]

    with pytest.raises(
        IncompatibleModulesError,
        match="tester/rank8-0 cannot be composed with tester/module-0: rank 8, not 4",
    ):
        check_compatible(adapters)


def test_different_targets_are_refused(tiny_llama, llama_modules, make_modules):
    [qk] = make_modules(tiny_llama, targets=("q_proj", "k_proj"), prefix="qk")

    with pytest.raises(IncompatibleModulesError, match=r"tester/qk-0 .*different target modules"):
        check_compatible([load_adapter(llama_modules[0]), load_adapter(qk)])


def test_different_base_model_is_refused(tiny_llama, llama_modules, make_modules):
    [other] = make_modules(tiny_llama, base_id="someone/else", prefix="other")

    with pytest.raises(IncompatibleModulesError, match="base model someone/else, not tiny/base"):
        check_compatible([load_adapter(llama_modules[0]), load_adapter(other)])


def test_save_then_load_round_trips(llama_modules, tmp_path):
    adapter = load_adapter(llama_modules[0])

    save_adapter(tmp_path, adapter.config, adapter.layers, dtype=torch.bfloat16)

    again = load_adapter(AdapterRef("tester/copy", tmp_path))
    for path, (a, _) in adapter.layers.items():
        torch.testing.assert_close(again.layers[path][0], a.bfloat16().float())


def test_cache_loads_each_sha_once(llama_modules):
    cache = AdapterCache(max_adapters=2)
    ref = AdapterRef("tester/a", llama_modules[0].path, sha256="aa" * 32)
    same_file_other_name = AdapterRef("tester/b", llama_modules[0].path, sha256="aa" * 32)

    first, second = cache.get(ref), cache.get(same_file_other_name)

    assert first.layers is second.layers
    assert second.name == "tester/b"
