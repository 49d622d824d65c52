"""Model cards (README.md with YAML front matter, as on the Hugging Face Hub)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from composition.engine.types import TrainingResult


def front_matter(metadata: dict[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n"


def training_card(
    *,
    title: str,
    base_model: str,
    result: TrainingResult,
    data_source: str,
    example_count: int,
    license: str,
    datasets: Sequence[str] = (),
    tags: Sequence[str] = (),
    description: str = "",
) -> str:
    s = result.settings
    metadata = {
        "base_model": base_model,
        "library_name": "peft",
        "license": license,
        "tags": ["lora", *tags],
        "datasets": list(datasets),
    }
    lines = [
        front_matter(metadata),
        f"# {title}",
        "",
        description or f"A LoRA module for {base_model}.",
        "",
        "## Training",
        "",
        f"- Data: {data_source} ({example_count} examples; "
        f"{s.steps} steps × batch {s.batch_size} = {s.steps * s.batch_size} examples seen)",
        f"- LoRA: rank {s.rank}, alpha {s.alpha}, dropout {s.dropout}, "
        f"targets {', '.join(s.target_modules or ('family default',))}",
        f"- Optimiser: AdamW, learning rate {s.learning_rate:g}, {s.warmup_steps} warm-up steps "
        f"then linear decay; sequences truncated to {s.max_length} tokens; batches of "
        f"similar length drawn 16 at a time from shuffled epochs; seed {s.seed}",
        "- Loss on target tokens only",
        f"- Final training loss (mean of the last 10 steps): {result.final_loss:.4f}",
        f"- Training time: {result.seconds:.0f} s",
        "",
    ]
    return "\n".join(lines)
