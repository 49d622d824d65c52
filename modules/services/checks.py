"""The rules every new file set passes, whether uploaded, pushed or computed.

``validated_state`` checks the files against the base model, completes the
card with the registry's metadata and returns what to store, or raises
``ValidationError`` (messages per field) or ``ModuleDuplicate``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from composition.engine.composable import composability
from modules import cards, validation
from modules.models import BaseModel, Module, ModuleFile
from modules.services.base_models import base_model_shape
from modules.services.common import parse_card, stored_card, write_text
from modules.services.fingerprints import fingerprint_bytes
from modules.validation import (
    ADAPTER_CONFIG,
    MODEL_CARD,
    PICKLED_WEIGHTS,
    SAFETENSORS_WEIGHTS,
    AdapterInvalid,
    AdapterSummary,
    LocalFile,
)

_DESCRIPTION_LENGTH = Module._meta.get_field("description").max_length


class ModuleDuplicate(Exception):
    """The owner already has a module with exactly these weights."""

    def __init__(self, existing: Module):
        self.existing = existing
        super().__init__(
            f"These weights are already on the hub as {existing.full_name}; "
            "open that module instead of uploading it again."
        )


@dataclass(frozen=True)
class _Adapter:
    """An adapter's files on local disk, weights already in safetensors form."""

    config: LocalFile
    weights: LocalFile
    card_text: str | None


@dataclass(frozen=True)
class ValidatedState:
    """A file set that passed every check: the files to store and the module's fields."""

    base_model: BaseModel
    summary: AdapterSummary
    files: dict[str, LocalFile]
    fields: dict
    tag_slugs: list[str]
    # For candidate retrieval (None for weights that cannot be composed).
    fingerprint: bytes | None = None

    def adapter_fields(self) -> dict:
        summary = self.summary
        composable, composable_reason = composability(summary.config.raw)
        return {
            "r": summary.config.r,
            "lora_alpha": summary.config.lora_alpha,
            "target_modules": list(summary.target_modules),
            "task_type": summary.task_type or self.base_model.task_type,
            "adapter_config": summary.config.raw,
            "composable": composable,
            "composable_reason": composable_reason[:500],
            "parameter_count": summary.parameter_count,
            "total_size": sum(local.size for local in self.files.values()),
            **self.fields,
        }


def validated_state(
    *,
    owner: AbstractBaseUser,
    full_name: str,
    files: Mapping[str, Path | LocalFile],
    work_dir: Path,
    errors: dict[str, list[str]],
    base_model: BaseModel | None = None,
    card: str | None = None,
    description: str = "",
    tags: Iterable[str] = (),
    license: str = "",
    lineage: Sequence[tuple[Module, float]] = (),
    revised: Module | None = None,
) -> ValidatedState:
    """The rules every new file set passes, an upload's or a push's.

    Problems are added to ``errors`` and raised as one ``ValidationError``
    (with the caller's own, such as the name's); weights the owner already
    has in another module raise ``ModuleDuplicate`` (``revised``, the module
    the files are for, does not count).
    """
    try:
        adapter = _prepare_adapter(files, work_dir)
    except AdapterInvalid as exc:
        errors.setdefault("files", []).extend(exc.messages())
        raise ValidationError(errors) from exc
    if card is not None:
        adapter = _Adapter(adapter.config, adapter.weights, card)
    base_model = base_model or _detect_base_model(adapter, errors)
    summary = _validate(adapter, base_model, errors)
    if summary is not None:
        _refuse_duplicate(owner, adapter.weights.sha256, revised)
    if lineage:
        _check_lineage(lineage, base_model, errors)
    if errors:
        raise ValidationError(errors)

    parsed_card = parse_card(adapter.card_text)
    tag_slugs = cards.normalize_tags([*parsed_card.tags, *tags])
    license = (license or parsed_card.license).strip()[:64]
    final_card = stored_card(
        parsed_card,
        full_name=full_name,
        base_model=base_model,
        summary=summary,
        description=description,
        tags=tag_slugs,
        license=license,
    )
    card_file = write_text(work_dir / MODEL_CARD, final_card.source)
    return ValidatedState(
        base_model=base_model,
        summary=summary,
        files={
            ADAPTER_CONFIG: adapter.config,
            SAFETENSORS_WEIGHTS: adapter.weights,
            MODEL_CARD: card_file,
        },
        fields={
            "description": (description or cards.summarize(final_card.body))[:_DESCRIPTION_LENGTH],
            "card": final_card.source,
            # Parsed once here, so that lists and repository info never parse cards.
            "card_data": final_card.data,
            "license": license,
            "datasets": parsed_card.datasets,
        },
        tag_slugs=tag_slugs,
        fingerprint=fingerprint_bytes(adapter.weights.path, summary.config.raw),
    )


def _prepare_adapter(files: Mapping[str, Path | LocalFile], work_dir: Path) -> _Adapter:
    local = {
        name: value if isinstance(value, LocalFile) else validation.hash_file(Path(value))
        for name, value in files.items()
    }
    problems = []
    if ADAPTER_CONFIG not in local:
        problems.append(validation.Problem(ADAPTER_CONFIG, "is missing"))
    if SAFETENSORS_WEIGHTS not in local and PICKLED_WEIGHTS not in local:
        problems.append(
            validation.Problem(SAFETENSORS_WEIGHTS, f"is missing (or upload {PICKLED_WEIGHTS})")
        )
    if problems:
        raise AdapterInvalid(problems)
    if SAFETENSORS_WEIGHTS in local:
        # Safetensors wins when both are there: the pickle is never opened.
        weights = local[SAFETENSORS_WEIGHTS]
    else:
        converted = work_dir / SAFETENSORS_WEIGHTS
        validation.convert_pickled_weights(local[PICKLED_WEIGHTS].path, converted)
        weights = validation.hash_file(converted)
    card_text = None
    if MODEL_CARD in local:
        try:
            card_text = local[MODEL_CARD].path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise AdapterInvalid.single(MODEL_CARD, "is not UTF-8 text") from exc
    return _Adapter(config=local[ADAPTER_CONFIG], weights=weights, card_text=card_text)


def _detect_base_model(adapter: _Adapter, errors: dict) -> BaseModel | None:
    """The registered base model the adapter names, in its config or its card."""
    named = []
    # A config or card that does not parse is reported by validation.
    with contextlib.suppress(AdapterInvalid):
        named.append(validation.read_lora_config(adapter.config.path).base_model_name_or_path)
    with contextlib.suppress(AdapterInvalid):
        named.append(parse_card(adapter.card_text).base_model)
    for identifier in filter(None, named):
        found = BaseModel.objects.filter(identifier__iexact=identifier).first()
        if found:
            return found
    registered = ", ".join(BaseModel.objects.values_list("identifier", flat=True)) or "none yet"
    if any(named):
        message = (
            f"{ADAPTER_CONFIG} names the base model {next(filter(None, named))!r}, which is "
            f"not registered on the hub; choose one of: {registered}."
        )
    else:
        message = f"{ADAPTER_CONFIG} does not name its base model; choose one of: {registered}."
    errors.setdefault("base_model", []).append(message)
    return None


def _validate(adapter: _Adapter, base_model: BaseModel | None, errors: dict):
    shape = base_model_shape(base_model) if base_model else None
    try:
        summary = validation.validate_adapter(adapter.config.path, adapter.weights.path, shape)
    except AdapterInvalid as exc:
        errors.setdefault("files", []).extend(exc.messages())
        summary = None
    try:
        parse_card(adapter.card_text)
    except AdapterInvalid as exc:
        errors.setdefault("files", []).extend(exc.messages())
    return summary


def _refuse_duplicate(owner, weights_sha256: str, revised: Module | None) -> None:
    existing = (
        ModuleFile.objects.filter(
            module__owner=owner, filename=SAFETENSORS_WEIGHTS, sha256=weights_sha256
        )
        .exclude(module=revised)
        .select_related("module__owner")
        .first()
    )
    if existing:
        raise ModuleDuplicate(existing.module)


def _check_lineage(lineage, base_model: BaseModel | None, errors: dict) -> None:
    for source, weight in lineage:
        if base_model is not None and source.base_model_id != base_model.pk:
            errors.setdefault("lineage", []).append(
                f"{source.full_name} adapts {source.base_model.identifier}, not "
                f"{base_model.identifier}; a composition merges modules of one base model."
            )
        if not isinstance(weight, int | float):
            errors.setdefault("lineage", []).append(f"weight of {source.full_name} is not a number")
