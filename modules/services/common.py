"""Pieces the registry's writes share: the work folder, card text and tags."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from modules import cards, validation
from modules.models import BaseModel, Module, Tag
from modules.validation import AdapterSummary, LocalFile


def work_root() -> Path:
    path = Path(settings.FILE_UPLOAD_TEMP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_card(text: str | None) -> cards.ModelCard:
    return cards.parse_card(text) if text else cards.ModelCard()


def stored_card(
    parsed: cards.ModelCard,
    *,
    full_name: str,
    base_model: BaseModel,
    summary: AdapterSummary,
    description: str,
    tags: list[str],
    license: str,
) -> cards.ModelCard:
    """The README stored with the module: the uploaded one, or one written for it."""
    if not parsed.body.strip():
        body = cards.default_card_body(
            full_name=full_name,
            base_model=base_model.identifier,
            summary=description,
            facts=_facts_line(summary),
        )
        parsed = cards.ModelCard(metadata=parsed.metadata, body=body)
    return card_with_metadata(parsed, base_model=base_model, tags=tags, license=license)


def card_with_metadata(
    card: cards.ModelCard, *, base_model: BaseModel, tags: list[str], license: str
) -> cards.ModelCard:
    """The card with the registry's metadata in its front matter, its text in ``source``.

    Base model, tags and license live in both the card and the module's
    fields, so the page and a downloaded README never disagree. A card that
    already says the same is kept byte for byte (its YAML comments and layout
    included).
    """
    updated = cards.with_metadata(
        card, base_model=base_model.identifier, tags=tags, license=license, datasets=card.datasets
    )
    keys = ("base_model", "library_name", "license")
    unchanged = card.tags == updated.tags and all(
        card.metadata.get(key) == updated.metadata.get(key) for key in keys
    )
    if unchanged and card.source:
        return card
    return cards.ModelCard(metadata=updated.metadata, body=updated.body, source=updated.render())


def _facts_line(summary: AdapterSummary) -> str:
    targets = ", ".join(summary.target_modules)
    return (
        f"Rank {summary.config.r}, alpha {summary.config.lora_alpha:g}, adapting {targets} "
        f"({summary.parameter_count:,} parameters)."
    )


def write_text(path: Path, text: str) -> LocalFile:
    path.write_text(text, encoding="utf-8")
    return validation.hash_file(path)


def set_tags(module: Module, slugs: list[str]) -> None:
    Tag.objects.bulk_create([Tag(slug=slug) for slug in slugs], ignore_conflicts=True)
    module.tags.set(Tag.objects.filter(slug__in=slugs))
