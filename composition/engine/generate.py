"""Greedy generation and exact-match scoring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from composition.engine.encoding import format_prompt
from composition.engine.scoring import exact_match
from composition.engine.types import SEQ_2_SEQ_LM, Example, Prediction

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    task_type: str,
    device: torch.device,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    prompts_are_formatted: bool = False,
) -> list[str]:
    """Greedy continuations of ``prompts``, without the prompts themselves."""
    if task_type != SEQ_2_SEQ_LM and not prompts_are_formatted:
        prompts = [format_prompt(tokenizer, p) for p in prompts]
    # Similar lengths side by side: less padding per batch.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        texts = [prompts[i] for i in indices]
        for index, text in zip(
            indices,
            _generate_batch(model, tokenizer, texts, task_type, device, max_new_tokens),
            strict=True,
        ):
            outputs[index] = text
    return outputs


def _generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    task_type: str,
    device: torch.device,
    max_new_tokens: int,
) -> list[str]:
    causal = task_type != SEQ_2_SEQ_LM
    # Causal models continue from the right end, so pad on the left.
    tokenizer.padding_side = "left" if causal else "right"
    add_special = not (causal and getattr(tokenizer, "chat_template", None))
    encoded = tokenizer(
        texts, return_tensors="pt", padding=True, add_special_tokens=add_special
    ).to(device)
    generated = model.generate(
        **encoded,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    if causal:
        generated = generated[:, encoded["input_ids"].shape[1] :]
    outputs: list[str] = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return outputs


def score(
    examples: Sequence[Example], outputs: Sequence[str]
) -> tuple[list[Prediction], float | None]:
    predictions = [
        Prediction(ex.input, ex.target, out, exact_match(out, ex.target))
        for ex, out in zip(examples, outputs, strict=True)
    ]
    if not predictions:
        return predictions, None
    return predictions, sum(p.correct for p in predictions) / len(predictions)
