"""Model cards (README.md with YAML front matter, as on the Hugging Face Hub)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


# --- Composed modules ----------------------------------------------------------

SOURCES_HEADING = "## Sources"


@dataclass(frozen=True)
class CardSource:
    """A module a composition merged; ``name`` is None when the card must not name it."""

    name: str | None
    weight: float


def sources_section(sources: Sequence[CardSource]) -> str:
    """The "Sources" section: named modules by decreasing |weight|, the others only counted.

    A card is public text once its module is published, so a source that is
    not public appears neither by name nor by weight.
    """
    named = sorted((s for s in sources if s.name), key=lambda s: -abs(s.weight))
    lines = [SOURCES_HEADING, ""]
    if named:
        lines += ["| module | weight |", "|---|---|"]
        lines += [f"| {s.name} | {s.weight:+.4f} |" for s in named]
        lines.append("")
    unnamed = len(sources) - len(named)
    if unnamed:
        modules = "1 module that is" if unnamed == 1 else f"{unnamed} modules that are"
        lines += [
            f"{'Also merged' if named else 'Merged'}: {modules} not public, not named here.",
            "",
        ]
    return "\n".join(lines)


def with_section(card: str, section: str) -> str:
    """``card`` with the section that has ``section``'s heading replaced by ``section``.

    The section runs to the next heading of its level or higher; a card
    without that heading (its owner removed it) is returned unchanged.
    """
    heading = section.split("\n", 1)[0].strip()
    level = len(heading) - len(heading.lstrip("#"))
    lines = card.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == heading]
    if not starts:
        return card
    start = starts[0]
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if _heading_level(lines[i]) in range(1, level + 1)
        ),
        len(lines),
    )
    replacement = [*section.rstrip("\n").split("\n"), ""]
    return "\n".join(lines[:start] + replacement + lines[end:])


def _heading_level(line: str) -> int:
    """The level of a Markdown ATX heading line, 0 for any other line."""
    hashes = len(line) - len(line.lstrip("#"))
    return hashes if 0 < hashes <= 6 and line[hashes : hashes + 1] in (" ", "") else 0
