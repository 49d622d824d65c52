"""From examples to token batches, tokenised once per job.

Causal LMs see the input through the model's chat template when it has one
(the same prompt at training, composition and inference), and the loss counts
target tokens only. Seq2seq models see the input as is, as in the LoraHub
reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from composition.engine.types import SEQ_2_SEQ_LM, Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.target_ids)


def format_prompt(tokenizer: PreTrainedTokenizerBase, text: str) -> str:
    """The text a causal model is given for ``text``, ending where its answer starts."""
    if getattr(tokenizer, "chat_template", None):
        prompt: str = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        return prompt
    return text + "\n"


def format_few_shot_prompt(
    tokenizer: PreTrainedTokenizerBase, shots: Sequence[Example], text: str
) -> str:
    """In-context learning: the shots as earlier turns of the conversation."""
    if getattr(tokenizer, "chat_template", None):
        messages = []
        for shot in shots:
            messages.append({"role": "user", "content": shot.input})
            messages.append({"role": "assistant", "content": shot.target})
        messages.append({"role": "user", "content": text})
        prompt: str = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return prompt
    context = "".join(f"{shot.input}\n{shot.target}\n\n" for shot in shots)
    return context + text + "\n"


def encode_examples(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    task_type: str,
    max_length: int = 1024,
) -> list[EncodedExample]:
    if task_type == SEQ_2_SEQ_LM:
        return [_encode_seq2seq(tokenizer, ex, max_length) for ex in examples]
    return [_encode_causal(tokenizer, ex, max_length) for ex in examples]


def _encode_seq2seq(
    tokenizer: PreTrainedTokenizerBase, example: Example, max_length: int
) -> EncodedExample:
    prompt = tokenizer(example.input, truncation=True, max_length=max_length)["input_ids"]
    target = tokenizer(example.target, truncation=True, max_length=max_length)["input_ids"]
    return EncodedExample(tuple(prompt), tuple(target))


def _encode_causal(
    tokenizer: PreTrainedTokenizerBase, example: Example, max_length: int
) -> EncodedExample:
    prompt_text = format_prompt(tokenizer, example.input)
    # A chat template already holds the special tokens it needs.
    add_special = not getattr(tokenizer, "chat_template", None)
    prompt = tokenizer(prompt_text, add_special_tokens=add_special)["input_ids"]
    target = tokenizer(example.target, add_special_tokens=False)["input_ids"]
    target = [*target, tokenizer.eos_token_id]
    target = target[: max_length // 2] if len(target) > max_length // 2 else target
    # Keep the end of a long prompt: the question sits there, the preamble does not.
    room = max_length - len(target)
    if len(prompt) > room:
        prompt = prompt[len(prompt) - room :]
    return EncodedExample(tuple(prompt), tuple(target))


def length_buckets(
    encoded: Sequence[EncodedExample], max_padding: float = 0.25, max_rows: int = 64
) -> list[list[int]]:
    """Group example indices into batches of similar length.

    Padding is wasted compute: examples are sorted by length and a batch is
    closed as soon as padding would exceed ``max_padding`` of its tokens.
    """
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].length)
    buckets: list[list[int]] = []
    current: list[int] = []
    for index in order:
        candidate = [*current, index]
        longest = encoded[index].length
        real = sum(encoded[i].length for i in candidate)
        if current and (
            longest * len(candidate) > real * (1 + max_padding) or len(candidate) > max_rows
        ):
            buckets.append(current)
            candidate = [index]
        current = candidate
    if current:
        buckets.append(current)
    return buckets


@dataclass
class CausalBatch:
    """Right-padded rows plus where the target tokens are.

    ``predict_positions`` index the flattened (row, position) hidden states
    that predict a target token; ``target_tokens`` are those tokens. Only
    these go through the LM head.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    predict_positions: torch.Tensor
    target_tokens: torch.Tensor
    rows: int

    def to(self, device: torch.device) -> CausalBatch:
        return CausalBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.predict_positions.to(device),
            self.target_tokens.to(device),
            self.rows,
        )


@dataclass
class Seq2SeqBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    rows: int

    def to(self, device: torch.device) -> Seq2SeqBatch:
        return Seq2SeqBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.labels.to(device),
            self.rows,
        )


# One bucket of examples, in the form its kind of model reads.
Batch = CausalBatch | Seq2SeqBatch


def causal_batch(encoded: Sequence[EncodedExample], pad_id: int, repeats: int = 1) -> CausalBatch:
    """A batch of ``encoded`` repeated ``repeats`` times (candidate-major)."""
    rows = [ex for _ in range(repeats) for ex in encoded]
    width = max(ex.length for ex in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    positions: list[int] = []
    targets: list[int] = []
    for row, ex in enumerate(rows):
        ids = ex.prompt_ids + ex.target_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        first = len(ex.prompt_ids)
        # The hidden state at position t predicts token t + 1.
        positions.extend(row * width + t - 1 for t in range(first, len(ids)))
        targets.extend(ex.target_ids)
    return CausalBatch(
        input_ids, attention_mask, torch.tensor(positions), torch.tensor(targets), len(rows)
    )


def seq2seq_batch(encoded: Sequence[EncodedExample], pad_id: int, repeats: int = 1) -> Seq2SeqBatch:
    rows = [ex for _ in range(repeats) for ex in encoded]
    source_width = max(len(ex.prompt_ids) for ex in rows)
    target_width = max(len(ex.target_ids) for ex in rows)
    input_ids = torch.full((len(rows), source_width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), source_width), dtype=torch.long)
    labels = torch.full((len(rows), target_width), IGNORE_INDEX, dtype=torch.long)
    for row, ex in enumerate(rows):
        input_ids[row, : len(ex.prompt_ids)] = torch.tensor(ex.prompt_ids)
        attention_mask[row, : len(ex.prompt_ids)] = 1
        labels[row, : len(ex.target_ids)] = torch.tensor(ex.target_ids)
    return Seq2SeqBatch(input_ids, attention_mask, labels, len(rows))
