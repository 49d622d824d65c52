import pytest
from transformers import LlamaConfig, T5Config

from composition.engine import LinearShape, materialize_gguf, read_base_model_spec
from composition.engine.base_models import CAUSAL_LM, COMPLETE_MARKER, SEQ_2_SEQ_LM


def test_spec_of_a_llama_reads_every_projection(tmp_path):
    LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
    ).save_pretrained(tmp_path)

    spec = read_base_model_spec(tmp_path, identifier="acme/tiny-llama")

    assert spec.identifier == "acme/tiny-llama"
    assert (spec.family, spec.task_type) == ("llama", CAUSAL_LM)
    assert (spec.hidden_size, spec.num_layers) == (64, 3)
    # Grouped-query attention: k and v project to 2 heads of 16, not 64.
    assert spec.linear_shapes["q_proj"] == [LinearShape(64, 64)]
    assert spec.linear_shapes["v_proj"] == [LinearShape(64, 32)]
    assert spec.linear_shapes["down_proj"] == [LinearShape(128, 64)]
    assert "lm_head" not in spec.linear_shapes


def test_spec_of_a_t5_is_seq2seq_with_its_own_module_names(tmp_path):
    T5Config(
        d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, vocab_size=100
    ).save_pretrained(tmp_path)

    spec = read_base_model_spec(tmp_path, identifier="acme/tiny-t5")

    assert (spec.family, spec.task_type, spec.hidden_size) == ("t5", SEQ_2_SEQ_LM, 32)
    assert spec.linear_shapes["q"] == [LinearShape(32, 32)]
    assert spec.linear_shapes["wi"] == [LinearShape(32, 64)]
    assert spec.to_json()["linear_shapes"]["wo"] == [[64, 32]]


def test_materialize_refuses_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        materialize_gguf(tmp_path / "absent.gguf", tmp_path / "out", "acme/none")


def test_materialize_reuses_a_completed_folder_without_reading_the_source(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / COMPLETE_MARKER).touch()
    # The source does not exist: a completed folder must not need it.
    assert materialize_gguf(tmp_path / "absent.gguf", out, "acme/none") == out
