"""Registering a module: from uploaded files, a folder on disk or a worker's result.

Every path goes through ``module_create``: the files are validated against the
base model, the card is completed with the registry's metadata, the blobs are
stored at their content addresses and the rows written, all or nothing.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from composition.engine.composable import composability
from modules import cards, storage, validation
from modules.models import BaseModel, Module, ModuleFile, ModuleFingerprint, ModuleSource
from modules.services.base_models import base_model_shape
from modules.services.common import parse_card, set_tags, stored_card, work_root, write_text
from modules.services.fingerprints import fingerprint_bytes
from modules.services.search_index import module_search_index_refresh
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


def module_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    files: Mapping[str, Path | LocalFile],
    base_model: BaseModel | None = None,
    description: str = "",
    tags: Iterable[str] = (),
    license: str = "",
    visibility: str = Module.Visibility.PUBLIC,
    card: str | None = None,
    lineage: Sequence[tuple[Module, float]] = (),
) -> Module:
    """Validate a PEFT adapter and register it as ``owner/name``.

    ``files`` maps file names (adapter_config.json, adapter_model.safetensors
    or adapter_model.bin, README.md) to local paths. Without ``base_model``,
    the one the config or card names is used. ``card`` replaces the README's
    text; ``lineage`` lists the (source module, weight) pairs a composed
    module was merged from. Nothing is stored unless every check passes;
    failures raise ``ValidationError`` with messages per field (``name``,
    ``files``, ``base_model``…), or ``ModuleDuplicate``.
    """
    errors: dict[str, list[str]] = {}
    check_module_name(owner, name, errors)
    with tempfile.TemporaryDirectory(prefix="module-", dir=work_root()) as work:
        work_dir = Path(work)
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
            _refuse_duplicate(owner, adapter.weights.sha256)
        if lineage:
            _check_lineage(lineage, base_model, errors)
        check_visibility(visibility, errors)
        if errors:
            raise ValidationError(errors)

        parsed_card = parse_card(adapter.card_text)
        tag_slugs = cards.normalize_tags([*parsed_card.tags, *tags])
        license = (license or parsed_card.license).strip()[:64]
        final_card = stored_card(
            parsed_card,
            full_name=f"{owner.get_username()}/{name}",
            base_model=base_model,
            summary=summary,
            description=description,
            tags=tag_slugs,
            license=license,
        )
        card_file = write_text(work_dir / MODEL_CARD, final_card.source)
        stored_files = {
            ADAPTER_CONFIG: adapter.config,
            SAFETENSORS_WEIGHTS: adapter.weights,
            MODEL_CARD: card_file,
        }
        return _register(
            owner=owner,
            name=name,
            base_model=base_model,
            summary=summary,
            files=stored_files,
            fields={
                "description": (description or cards.summarize(final_card.body))[
                    :_DESCRIPTION_LENGTH
                ],
                "card": final_card.source,
                # Parsed once here, so that lists and repository info never parse cards.
                "card_data": final_card.data,
                "license": license,
                "datasets": parsed_card.datasets,
                "visibility": visibility,
            },
            tag_slugs=tag_slugs,
            lineage=lineage,
            # For candidate retrieval; every way of registering a module comes here.
            fingerprint=fingerprint_bytes(adapter.weights.path, summary.config.raw),
        )


def module_import_folder(
    *,
    owner: AbstractBaseUser,
    name: str,
    folder: Path,
    base_model: BaseModel | None = None,
    **fields,
) -> Module:
    """Register a PEFT adapter folder on disk (what ``save_pretrained`` writes)."""
    files = {
        filename: folder / filename
        for filename in validation.ADAPTER_FILES
        if (folder / filename).is_file()
    }
    return module_create(owner=owner, name=name, files=files, base_model=base_model, **fields)


def check_module_name(owner, name: str, errors: dict) -> None:
    """The rules for the name of a new module of ``owner``: uploads, imports, and the
    compositions and trainings that register one, all check it here."""
    if not name:
        errors.setdefault("name", []).append("Give the module a name.")
        return
    try:
        Module._meta.get_field("name").run_validators(name)
    except ValidationError as exc:
        errors.setdefault("name", []).extend(exc.messages)
        return
    if Module.objects.filter(owner=owner, name__iexact=name).exists():
        errors.setdefault("name", []).append(
            f"You already have a module named {owner.get_username()}/{name}."
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


def _refuse_duplicate(owner, weights_sha256: str) -> None:
    existing = (
        ModuleFile.objects.filter(
            module__owner=owner, filename=SAFETENSORS_WEIGHTS, sha256=weights_sha256
        )
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


def _register(
    *,
    owner,
    name: str,
    base_model: BaseModel,
    summary: AdapterSummary,
    files: dict[str, LocalFile],
    fields: dict,
    tag_slugs: list[str],
    lineage: Sequence[tuple[Module, float]],
    fingerprint: bytes | None = None,
) -> Module:
    """Store the blobs, then write the rows; on any failure remove what was added."""
    composable, composable_reason = composability(summary.config.raw)
    written: list[str] = []
    try:
        paths = {}
        for filename, local in files.items():
            paths[filename], created = storage.blob_store(path=local.path, sha256=local.sha256)
            if created:
                written.append(paths[filename])
        with transaction.atomic():
            module = Module.objects.create(
                owner=owner,
                name=name,
                base_model=base_model,
                r=summary.config.r,
                lora_alpha=summary.config.lora_alpha,
                target_modules=list(summary.target_modules),
                task_type=summary.task_type or base_model.task_type,
                adapter_config=summary.config.raw,
                composable=composable,
                composable_reason=composable_reason[:500],
                parameter_count=summary.parameter_count,
                total_size=sum(local.size for local in files.values()),
                **fields,
            )
            ModuleFile.objects.bulk_create(
                ModuleFile(
                    module=module,
                    filename=filename,
                    size=local.size,
                    sha256=local.sha256,
                    storage_path=paths[filename],
                )
                for filename, local in files.items()
            )
            set_tags(module, tag_slugs)
            ModuleSource.objects.bulk_create(
                ModuleSource(
                    composed=module,
                    source=source,
                    source_name=source.full_name,
                    weight=float(weight),
                    position=position,
                )
                for position, (source, weight) in enumerate(lineage)
            )
            if fingerprint is not None:
                ModuleFingerprint.objects.create(
                    module=module,
                    data=fingerprint,
                    weights_sha256=files[SAFETENSORS_WEIGHTS].sha256,
                )
            module_search_index_refresh(module_ids=[module.pk])
    except IntegrityError as exc:
        storage.blob_delete_unreferenced(written)
        # Another request registered the same name between the check and now.
        raise ValidationError(
            {"name": [f"You already have a module named {owner.get_username()}/{name}."]}
        ) from exc
    except BaseException:
        storage.blob_delete_unreferenced(written)
        raise
    return module


def check_visibility(visibility: str, errors: dict) -> None:
    if visibility not in Module.Visibility.values:
        errors.setdefault("visibility", []).append(f"{visibility!r} is not public or private.")
