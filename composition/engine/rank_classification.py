"""Rank classification: score each of a task's possible answers by its likelihood.

Instead of generating an answer and matching it, the model scores every
answer of the task's answer set (``scoring.answer_choices``) as the
continuation of the prompt, and the most likely one is its output: the
model's knowledge is measured without its answer format. An answer's score is
the summed log-probability of its tokens and of the end-of-sequence token
after them (so an answer is not rewarded for being the start of a longer one).

Causal models read each prompt once; every answer continues from the cached
prompt. Seq2seq models score one (prompt, answer) row per pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from composition.engine.encoding import (
    IGNORE_INDEX,
    EncodedExample,
    format_few_shot_prompt,
    format_prompt,
    seq2seq_batch,
)
from composition.engine.loading import LoadedModel
from composition.engine.scoring import best_choice
from composition.engine.types import SEQ_2_SEQ_LM, EngineError, Example

# Prompts read in one forward pass (sorted by length, so little padding).
PROMPT_BATCH = 16


@dataclass(frozen=True)
class RankedAnswer:
    """The chosen answer for one input and the log-likelihood of every choice."""

    output: str
    log_likelihoods: tuple[float, ...]


def rank_classify(
    loaded: LoadedModel,
    inputs: Sequence[str],
    choices: Sequence[str],
    shots: Sequence[Example] = (),
) -> list[RankedAnswer]:
    """The most likely of ``choices`` for every input; the caller holds the model's lock.

    ``shots`` are put before each input as in in-context learning.
    """
    scores = choice_log_likelihoods(loaded, inputs, choices, shots)
    return [RankedAnswer(best_choice(choices, row), row) for row in scores]


@torch.inference_mode()
def choice_log_likelihoods(
    loaded: LoadedModel,
    inputs: Sequence[str],
    choices: Sequence[str],
    shots: Sequence[Example] = (),
) -> list[tuple[float, ...]]:
    """Per input, the log-likelihood of each choice (with end of sequence) after its prompt."""
    if not choices:
        raise EngineError("rank classification needs at least one choice")
    if loaded.ref.task_type == SEQ_2_SEQ_LM:
        return _seq2seq_scores(loaded, inputs, choices, shots)
    return _causal_scores(loaded, inputs, choices, shots)


def _causal_scores(
    loaded: LoadedModel, inputs: Sequence[str], choices: Sequence[str], shots: Sequence[Example]
) -> list[tuple[float, ...]]:
    tokenizer = loaded.tokenizer
    add_special = not getattr(tokenizer, "chat_template", None)
    prompts = [
        tokenizer(_causal_prompt(tokenizer, shots, text), add_special_tokens=add_special)[
            "input_ids"
        ]
        for text in inputs
    ]
    answers = [
        [*tokenizer(choice, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        for choice in choices
    ]
    scores: list[tuple[float, ...]] = [()] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for start in range(0, len(order), PROMPT_BATCH):
        rows = order[start : start + PROMPT_BATCH]
        for row, row_scores in zip(
            rows, _causal_batch_scores(loaded, [prompts[i] for i in rows], answers), strict=True
        ):
            scores[row] = row_scores
    return scores


def _causal_prompt(tokenizer: object, shots: Sequence[Example], text: str) -> str:
    return (
        format_few_shot_prompt(tokenizer, shots, text) if shots else format_prompt(tokenizer, text)
    )


def _causal_batch_scores(
    loaded: LoadedModel, prompts: list[list[int]], answers: list[list[int]]
) -> list[tuple[float, ...]]:
    """Left-padded prompts read once with a cache; each answer continues from it."""
    from transformers import DynamicCache

    device = loaded.device
    width = max(len(p) for p in prompts)
    pad = loaded.tokenizer.pad_token_id
    pad = loaded.tokenizer.eos_token_id if pad is None else pad
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    lengths = mask.sum(dim=1, keepdim=True)
    body = getattr(loaded.model, loaded.model.base_model_prefix)
    head = loaded.model.get_output_embeddings()
    cache = DynamicCache()
    hidden = body(
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
        cache=cache,
        use_cache=True,
    ).last_hidden_state
    first = F.log_softmax(head(hidden[:, -1]).float(), dim=-1)
    per_choice = []
    for answer in answers:
        total = first[:, answer[0]].double()
        if len(answer) > 1:
            steps = torch.tensor(answer[:-1], device=device).expand(len(prompts), -1)
            hidden = body(
                input_ids=steps,
                attention_mask=torch.cat([mask, torch.ones_like(steps)], dim=1),
                position_ids=lengths + torch.arange(len(answer) - 1, device=device),
                cache=cache,
                use_cache=True,
            ).last_hidden_state
            # Back to the prompt alone for the next answer.
            cache.crop(-(len(answer) - 1))
            log_probs = F.log_softmax(head(hidden).float(), dim=-1)
            following = torch.tensor(answer[1:], device=device).expand(len(prompts), -1)
            total = total + log_probs.gather(2, following[..., None]).squeeze(2).double().sum(1)
        per_choice.append(total)
    return [tuple(float(x) for x in row) for row in torch.stack(per_choice, dim=1).cpu()]


def _seq2seq_scores(
    loaded: LoadedModel, inputs: Sequence[str], choices: Sequence[str], shots: Sequence[Example]
) -> list[tuple[float, ...]]:
    tokenizer = loaded.tokenizer
    context = "".join(f"{shot.input}\n{shot.target}\n\n" for shot in shots)
    answers = [tuple(tokenizer(choice)["input_ids"]) for choice in choices]
    scores = []
    for text in inputs:
        prompt = tuple(tokenizer(context + text, truncation=True, max_length=1024)["input_ids"])
        encoded = [EncodedExample(prompt, answer) for answer in answers]
        batch = seq2seq_batch(encoded, tokenizer.pad_token_id).to(loaded.device)
        logits = loaded.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            decoder_input_ids=loaded.model._shift_right(batch.labels),
        ).logits.float()
        token_losses = F.cross_entropy(
            logits.transpose(1, 2), batch.labels, ignore_index=IGNORE_INDEX, reduction="none"
        )
        scores.append(tuple(float(-x) for x in token_losses.double().sum(dim=1).cpu()))
    return scores
