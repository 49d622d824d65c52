"""Summed cross-entropy of target tokens, per group of rows.

A batch may hold ``groups`` copies of the same examples (one per candidate
weight vector); the result has one summed loss per copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from composition.engine.encoding import IGNORE_INDEX, Batch, CausalBatch, Seq2SeqBatch

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def causal_token_losses(model: PreTrainedModel, batch: CausalBatch) -> torch.Tensor:
    """Cross-entropy of every target token of ``batch``, in row order."""
    # The LM head (vocabulary × hidden) is a large share of a small model's
    # compute; applying it only where a target token is predicted skips the
    # prompt positions entirely.
    body = getattr(model, model.base_model_prefix)
    hidden = body(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    selected = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.predict_positions)
    logits = model.get_output_embeddings()(selected).float()
    return F.cross_entropy(logits, batch.target_tokens, reduction="none")


def seq2seq_token_losses(model: PreTrainedModel, batch: Seq2SeqBatch) -> torch.Tensor:
    """Cross-entropy per (row, target position); 0 at padding."""
    decoder_input_ids = model._shift_right(batch.labels)
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        decoder_input_ids=decoder_input_ids,
    ).logits.float()
    token_losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        batch.labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return token_losses.view(batch.rows, -1)


def causal_target_loss_sums(
    model: PreTrainedModel, batch: CausalBatch, groups: int = 1
) -> torch.Tensor:
    return causal_token_losses(model, batch).view(groups, -1).sum(dim=1)


def seq2seq_target_loss_sums(
    model: PreTrainedModel, batch: Seq2SeqBatch, groups: int = 1
) -> torch.Tensor:
    return seq2seq_token_losses(model, batch).view(groups, -1).sum(dim=1)


def target_loss_sums(model: PreTrainedModel, batch: Batch, groups: int = 1) -> torch.Tensor:
    if isinstance(batch, CausalBatch):
        return causal_target_loss_sums(model, batch, groups)
    return seq2seq_target_loss_sums(model, batch, groups)


def target_loss_rows(model: PreTrainedModel, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy of the target tokens of every row of ``batch``."""
    if isinstance(batch, Seq2SeqBatch):
        return seq2seq_token_losses(model, batch).sum(dim=1)
    token_losses = causal_token_losses(model, batch)
    # predict_positions index the flattened (row, position) grid.
    rows = torch.div(batch.predict_positions, batch.input_ids.shape[1], rounding_mode="floor")
    sums = torch.zeros(batch.rows, dtype=token_losses.dtype, device=token_losses.device)
    return sums.index_add_(0, rows, token_losses)


def target_token_count(batch: Batch, groups: int = 1) -> int:
    if isinstance(batch, CausalBatch):
        return batch.target_tokens.numel() // groups
    return int((batch.labels != IGNORE_INDEX).sum()) // groups
