"""The search's objective: the loss of candidate weight vectors on the examples.

As in the reference implementation: the mean cross-entropy of the target
tokens of all examples, divided by the number of examples, plus
``l1 · mean|w|``. The composition search and the module preselection both
evaluate it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from composition.engine.encoding import (
    Batch,
    EncodedExample,
    causal_batch,
    encode_examples,
    length_buckets,
    seq2seq_batch,
)
from composition.engine.loading import LoadedModel
from composition.engine.lora import MergedLora
from composition.engine.loss import target_loss_rows
from composition.engine.types import SEQ_2_SEQ_LM, Example


@dataclass(frozen=True)
class Evaluation:
    weights: tuple[float, ...]
    loss: float
    objective: float
    # Summed target cross-entropy of each example, in the examples' order
    # (for validation on the examples: composition/engine/validation.py).
    example_losses: tuple[float, ...] = ()


class Objective:
    """Loss of candidate weight vectors on the examples, tokenised once.

    ``batch_population`` evaluates several candidates in one forward pass
    (default: on accelerators only, where it is faster).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        composed: MergedLora,
        examples: Sequence[Example],
        task_type: str,
        l1: float = 0.0,
        batch_population: bool | None = None,
    ):
        self.loaded = loaded
        self.composed = composed
        self.l1 = l1
        self.task_type = task_type
        self.example_count = len(examples)
        self.encoded: list[EncodedExample] = encode_examples(loaded.tokenizer, examples, task_type)
        self.buckets = length_buckets(self.encoded)
        self.example_tokens = tuple(len(e.target_ids) for e in self.encoded)
        self._batches: dict[int, list[Batch]] = {}
        if batch_population is None:
            batch_population = loaded.device.type != "cpu"
        self.batch_population = batch_population

    def batches(self, groups: int) -> list[Batch]:
        """Length-bucketed batches with ``groups`` copies of every example, on the device."""
        if groups not in self._batches:
            build = seq2seq_batch if self.task_type == SEQ_2_SEQ_LM else causal_batch
            pad_id = self.loaded.tokenizer.pad_token_id
            self._batches[groups] = [
                build([self.encoded[i] for i in bucket], pad_id, repeats=groups).to(
                    self.loaded.device
                )
                for bucket in self.buckets
            ]
        return self._batches[groups]

    def __call__(self, candidates: np.ndarray) -> list[Evaluation]:
        candidates = np.atleast_2d(candidates)
        if len(candidates) > 1 and not self.batch_population:
            return [evaluation for row in candidates for evaluation in self(row[None, :])]
        groups = len(candidates)
        self.composed.set_weights(torch.tensor(candidates))
        per_example = torch.zeros(
            groups, self.example_count, dtype=torch.float64, device=self.loaded.device
        )
        for bucket, batch in zip(self.buckets, self.batches(groups), strict=True):
            rows = target_loss_rows(self.loaded.model, batch).double().view(groups, len(bucket))
            per_example[:, bucket] = rows
        tokens = sum(self.example_tokens)
        losses: list[float] = (per_example.sum(1) / tokens / self.example_count).tolist()
        example_losses = per_example.cpu().tolist()
        return [
            Evaluation(
                tuple(float(x) for x in w),
                loss,
                loss + self.l1 * float(np.mean(np.abs(w))),
                tuple(example_losses[g]),
            )
            for g, (w, loss) in enumerate(zip(candidates, losses, strict=True))
        ]
