"""Model cards: README.md with YAML front matter, in the Hugging Face Hub's convention.

A card starts with ``---``, a YAML mapping (``base_model``, ``library_name:
peft``, ``tags``, ``license``, ``datasets``…), ``---``, then Markdown. Plain
Python, no Django: parsed on upload, written when a module comes without one.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

from modules.validation import MODEL_CARD, AdapterInvalid

FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n(?P<yaml>.*?)(?:\r?\n)?^---[ \t]*(?:\r?\n|\Z)", re.S | re.M
)
MAX_TAGS = 20
MAX_TAG_LENGTH = 50
MAX_CARD_BYTES = 1_000_000
# The front matter as JSON (``cardData``) is stored with the module and sent
# in every repository info, so it is kept small: real cards' metadata is a
# few KiB, and 64 KiB leaves room for a long model-index of eval results.
# Longer text belongs in the card's Markdown body, which has no such bound.
MAX_CARD_DATA_BYTES = 64 * 1024
SUMMARY_LENGTH = 300
# Tags the Hugging Face Hub derives itself ("base_model:adapter:…"); they
# repeat the base model and would crowd out the tags people chose.
DERIVED_TAG_PREFIXES = ("base_model:", "license:", "dataset:")
PLACEHOLDER = "[More Information Needed]"


@dataclass(frozen=True)
class ModelCard:
    metadata: dict = field(default_factory=dict)
    body: str = ""
    # The README text this card was parsed from, kept to store it unchanged.
    source: str = ""

    @property
    def tags(self) -> list[str]:
        return normalize_tags(_as_list(self.metadata.get("tags")))

    @property
    def license(self) -> str:
        value = self.metadata.get("license")
        return str(value).strip()[:64] if value else ""

    @property
    def datasets(self) -> list[str]:
        return [str(d) for d in _as_list(self.metadata.get("datasets")) if d][:20]

    @property
    def base_model(self) -> str:
        # The convention allows one id or a list; an adapter has one base.
        values = _as_list(self.metadata.get("base_model"))
        return str(values[0]).strip() if values and values[0] else ""

    @property
    def data(self) -> dict:
        """The front matter as JSON values: what the module stores and serves as ``cardData``."""
        return _json_value(self.metadata)

    def render(self) -> str:
        """The card as README.md text."""
        if not self.metadata:
            return self.body
        front = yaml.dump(
            self.metadata, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True
        ).strip()
        return f"---\n{front}\n---\n\n{self.body.lstrip()}"


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing anchors and aliases.

    An alias shares the value it names, so a few hundred bytes of nested
    aliases ("billion laughs") stand for millions of values once the data
    is written out as JSON or YAML again. Front matter has no need for them.
    """

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            name = event.anchor[:40]
            line = event.start_mark.line + 2  # the front matter starts after "---"
            raise AdapterInvalid.single(
                MODEL_CARD,
                f"has front matter with a YAML anchor or alias (&{name} or *{name}, line "
                f"{line}); the hub does not expand them, since a few nested aliases can stand "
                "for gigabytes of data. Write the values out instead.",
            )
        return super().compose_node(parent, index)


class _PlainDumper(yaml.SafeDumper):
    """Writes every value out, never as an anchor and aliases, so cards stay loadable."""

    def ignore_aliases(self, data) -> bool:
        return True


def parse_card(text: str) -> ModelCard:
    """Split a README into its front matter and Markdown body.

    Refuses (``AdapterInvalid`` on README.md) front matter that is not a YAML
    mapping, that uses anchors or aliases, or whose data is larger than
    ``MAX_CARD_DATA_BYTES`` as JSON.
    """
    if len(text.encode()) > MAX_CARD_BYTES:
        raise AdapterInvalid.single(MODEL_CARD, f"is larger than {MAX_CARD_BYTES} bytes")
    match = FRONT_MATTER.match(text)
    if not match:
        return ModelCard(metadata={}, body=text, source=text)
    try:
        metadata = yaml.load(match["yaml"], Loader=_NoAliasLoader) or {}
    except yaml.YAMLError as exc:
        raise AdapterInvalid.single(
            MODEL_CARD, f"has front matter that is not valid YAML ({exc})"
        ) from exc
    except RecursionError as exc:
        raise AdapterInvalid.single(MODEL_CARD, "has front matter nested too deeply") from exc
    if not isinstance(metadata, dict):
        raise AdapterInvalid.single(MODEL_CARD, "has front matter that is not a YAML mapping")
    card = ModelCard(metadata=metadata, body=_after(match, text), source=text)
    _check_data_size(card)
    return card


def card_body(text: str) -> str:
    """The Markdown after the front matter, found without reading the YAML."""
    match = FRONT_MATTER.match(text)
    return _after(match, text) if match else text


def stored_card_data(text: str) -> dict:
    """The ``cardData`` of a stored card's text: {} when the hub would refuse that card now."""
    try:
        return parse_card(text).data if text else {}
    except AdapterInvalid:
        return {}


def _after(match: re.Match, text: str) -> str:
    return text[match.end() :].lstrip("\r\n")


def _check_data_size(card: ModelCard) -> None:
    try:
        size = len(json.dumps(card.data, ensure_ascii=False).encode())
    except RecursionError as exc:
        raise AdapterInvalid.single(MODEL_CARD, "has front matter nested too deeply") from exc
    if size > MAX_CARD_DATA_BYTES:
        raise AdapterInvalid.single(
            MODEL_CARD,
            f"has front matter of {size:,} bytes as JSON; the hub keeps at most "
            f"{MAX_CARD_DATA_BYTES:,} bytes (64 KiB) of card metadata, because it is sent with "
            "every answer about the module. Move long text into the card's Markdown body.",
        )


def _json_value(value: object) -> object:
    """A YAML value as JSON has it: keys as text, dates and other scalars as text.

    Non-finite floats become text too, since JSON (and PostgreSQL's jsonb) has none.
    """
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(item) for item in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def with_metadata(
    card: ModelCard, *, base_model: str, tags: Iterable[str], license: str, datasets=()
) -> ModelCard:
    """The card with the registry's metadata written into its front matter.

    Keys the hub does not manage are kept as they were, so the card stays the
    one its author wrote.
    """
    metadata = dict(card.metadata)
    metadata["base_model"] = base_model
    metadata["library_name"] = "peft"
    metadata["tags"] = list(tags)
    if license:
        metadata["license"] = license
    else:
        metadata.pop("license", None)
    if datasets:
        metadata["datasets"] = list(datasets)
    return ModelCard(metadata=metadata, body=card.body)


def default_card_body(*, full_name: str, base_model: str, summary: str, facts: str) -> str:
    """Markdown for a module uploaded without a README."""
    lines = [f"# {full_name}", ""]
    if summary:
        lines += [summary, ""]
    lines += [f"A LoRA adapter for [{base_model}](https://huggingface.co/{base_model}).", ""]
    lines += [facts, ""]
    return "\n".join(lines)


def summarize(body: str) -> str:
    """The card's introduction as plain text, for lists and search.

    Only the first paragraph of prose before the first section heading
    counts: what a template fills in further down is not a summary.
    """
    without_comments = re.sub(r"<!--.*?-->", "", body, flags=re.S)
    introduction = re.split(r"^##\s", without_comments, maxsplit=1, flags=re.M)[0]
    for block in re.split(r"\n\s*\n", introduction):
        text = block.strip()
        if not text or text.startswith(("#", "-", "*", "|", "```", ">", "<", "!", "=")):
            continue
        if PLACEHOLDER in text:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: keep their text
        text = re.sub(r"[*`]+", "", text)
        # An underscore inside a word (flan_t5_large) is not emphasis.
        text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)
        text = " ".join(text.split())
        return text[:SUMMARY_LENGTH]
    return ""


def normalize_tag(value: str) -> str:
    """A tag as a URL-safe slug: lower case, ASCII letters, digits and hyphens."""
    text = unicodedata.normalize("NFKD", str(value)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text[:MAX_TAG_LENGTH].strip("-")


def normalize_tags(values: Iterable[object]) -> list[str]:
    """Slugs of the tags, first occurrence kept, Hub-derived tags dropped."""
    tags: list[str] = []
    for value in values:
        if value is None or str(value).startswith(DERIVED_TAG_PREFIXES):
            continue
        slug = normalize_tag(str(value))
        if slug and slug not in tags:
            tags.append(slug)
    return tags[:MAX_TAGS]


def split_tags(text: str) -> list[str]:
    """Tags typed in one field, separated by commas ("text generation" is one tag)."""
    return normalize_tags((text or "").split(","))


def _as_list(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]
