"""Training a LoRA module on (input, target) examples with PEFT."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from composition.engine.adapters import ADAPTER_CONFIG, PEFT_PREFIX, save_adapter
from composition.engine.encoding import (
    EncodedExample,
    causal_batch,
    encode_examples,
    seq2seq_batch,
)
from composition.engine.loading import load_model, resolve_device
from composition.engine.loss import target_loss_sums, target_token_count
from composition.engine.targets import default_target_modules
from composition.engine.types import (
    SEQ_2_SEQ_LM,
    CompositionCancelled,
    EngineError,
    Example,
    ModelRef,
    TrainingResult,
    TrainingSettings,
    TrainingStep,
)

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel


def train_lora(
    base: ModelRef,
    examples: Sequence[Example],
    out_dir: str | Path,
    settings: TrainingSettings = TrainingSettings(),
    on_step: Callable[[TrainingStep], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    save_dtype: torch.dtype = torch.float32,
) -> TrainingResult:
    """Train one LoRA module on ``examples`` and save it in PEFT format."""
    from peft import LoraConfig, get_peft_model

    if not examples:
        raise EngineError("training needs at least one example")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    device = resolve_device(settings.device)
    # A private copy: PEFT injects layers into the model it wraps, and the
    # shared cache must keep pristine base models.
    loaded = load_model(base, device, torch.float32)
    model, tokenizer = loaded.model, loaded.tokenizer
    targets = settings.target_modules or default_target_modules(model.config.model_type)
    lora_config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(targets),
        task_type=base.task_type,
        base_model_name_or_path=base.identifier,
    )
    peft_model = get_peft_model(model, lora_config)
    network = peft_model.get_base_model()
    network.train()

    encoded = encode_examples(tokenizer, examples, base.task_type, settings.max_length)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_then_linear_decay(settings))
    lengths = [ex.length for ex in encoded]
    batches = _batch_indices(lengths, settings.batch_size, settings.steps, settings.seed)

    history: list[float] = []
    for step, indices in enumerate(batches, start=1):
        if should_cancel and should_cancel():
            raise CompositionCancelled()
        rows = [encoded[i] for i in indices]
        loss = _mean_target_loss(network, rows, tokenizer.pad_token_id, base.task_type, device)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        history.append(loss.item())
        if on_step:
            on_step(TrainingStep(step=step, total=settings.steps, loss=history[-1]))

    layers = _lora_layers(peft_model)
    config = json.loads(json.dumps(lora_config.to_dict(), default=str))
    # PEFT records the folder the model was loaded from; the hub records its id.
    config.update(
        peft_type="LORA",
        target_modules=sorted(targets),
        base_model_name_or_path=base.identifier,
        inference_mode=True,
    )
    save_adapter(out_dir, config, layers, dtype=save_dtype)
    (Path(out_dir) / "training.json").write_text(
        json.dumps({"settings": asdict(settings), "loss_history": history}, indent=1) + "\n"
    )
    tail = history[-10:]
    return TrainingResult(
        adapter_dir=Path(out_dir),
        loss_history=tuple(history),
        final_loss=sum(tail) / len(tail),
        examples_used=len(encoded),
        seconds=time.perf_counter() - started,
        settings=settings,
    )


def _mean_target_loss(
    network: PreTrainedModel,
    rows: Sequence[EncodedExample],
    pad_id: int,
    task_type: str,
    device: torch.device,
) -> torch.Tensor:
    build = seq2seq_batch if task_type == SEQ_2_SEQ_LM else causal_batch
    batch = build(rows, pad_id).to(device)
    return target_loss_sums(network, batch).sum() / target_token_count(batch)


def _batch_indices(
    lengths: Sequence[int], batch_size: int, steps: int, seed: int, group: int = 16
) -> list[list[int]]:
    """``steps`` batches that go through the examples in shuffled epochs.

    Padding is wasted compute, so examples are drawn ``group`` batches at a
    time, sorted by length within the draw and cut into batches, which are
    then shuffled: every batch holds examples of similar length while the
    order of the data stays random.
    """
    rng = random.Random(seed)
    size = min(batch_size, len(lengths))
    order: list[int] = []
    batches: list[list[int]] = []
    while len(batches) < steps:
        draw: list[int] = []
        while len(draw) < size * group:
            if not order:
                order = list(range(len(lengths)))
                rng.shuffle(order)
            draw.append(order.pop())
        draw.sort(key=lambda i: lengths[i])
        chunk = [draw[k : k + size] for k in range(0, len(draw), size)]
        rng.shuffle(chunk)
        batches.extend(chunk)
    return batches[:steps]


def _warmup_then_linear_decay(settings: TrainingSettings) -> Callable[[int], float]:
    warmup = max(1, settings.warmup_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        remaining = settings.steps - step
        return max(0.0, remaining / max(1, settings.steps - warmup))

    return factor


def _lora_layers(peft_model: PeftModel) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model)
    layers = {}
    for key, tensor in state.items():
        if key.endswith(".lora_A.weight"):
            path = key.removeprefix(PEFT_PREFIX).removesuffix(".lora_A.weight")
            b = state[f"{PEFT_PREFIX}{path}.lora_B.weight"]
            layers[path] = (tensor.detach().clone(), b.detach().clone())
    return layers


__all__ = ["ADAPTER_CONFIG", "default_target_modules", "train_lora"]
