import torch

from composition.engine.encoding import (
    EncodedExample,
    causal_batch,
    encode_examples,
    length_buckets,
)
from composition.engine.loading import load_model
from composition.engine.loss import causal_target_loss_sums
from composition.engine.types import Example


def test_causal_encoding_ends_the_target_with_eos(tiny_llama):
    tokenizer = load_model(tiny_llama, torch.device("cpu"), torch.float32).tokenizer

    [encoded] = encode_examples(tokenizer, [Example("one plus two", "three")], "CAUSAL_LM")

    assert encoded.prompt_ids[0] == tokenizer.bos_token_id
    assert encoded.target_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(encoded.target_ids[:-1]) == "three"


def test_long_prompts_lose_their_start_never_the_target(tiny_llama):
    tokenizer = load_model(tiny_llama, torch.device("cpu"), torch.float32).tokenizer
    long_input = " ".join(["one"] * 50) + " which"

    [encoded] = encode_examples(tokenizer, [Example(long_input, "red")], "CAUSAL_LM", max_length=16)

    assert encoded.length == 16
    assert tokenizer.decode(encoded.target_ids[:-1]) == "red"
    assert tokenizer.decode(encoded.prompt_ids[-1:]) == "which"


def test_batch_marks_only_target_positions():
    rows = [EncodedExample((1, 2, 3), (4, 5)), EncodedExample((1, 6), (7,))]

    batch = causal_batch(rows, pad_id=0)

    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5], [1, 6, 7, 0, 0]]
    # Row 0 predicts 4 at position 2 and 5 at 3; row 1 predicts 7 at 1 (= 5 + 1).
    assert batch.predict_positions.tolist() == [2, 3, 6]
    assert batch.target_tokens.tolist() == [4, 5, 7]


def test_target_only_loss_equals_the_full_model_loss(tiny_llama):
    loaded = load_model(tiny_llama, torch.device("cpu"), torch.float32)
    rows = [EncodedExample((1, 5, 9, 12), (7, 8, 2)), EncodedExample((1, 6), (10, 2))]
    batch = causal_batch(rows, pad_id=loaded.tokenizer.pad_token_id)
    labels = torch.full_like(batch.input_ids, -100)
    labels[0, 4:7] = torch.tensor([7, 8, 2])
    labels[1, 2:4] = torch.tensor([10, 2])

    with torch.inference_mode():
        ours = causal_target_loss_sums(loaded.model, batch).sum() / 5
        full = loaded.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels
        ).loss

    torch.testing.assert_close(ours, full)


def test_buckets_group_similar_lengths():
    lengths = [10, 100, 11, 98, 12]
    encoded = [EncodedExample(tuple(range(n)), (1,)) for n in lengths]

    buckets = length_buckets(encoded)

    assert sorted(sorted(b) for b in buckets) == [[0, 2, 4], [1, 3]]
