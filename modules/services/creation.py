"""Registering a module: from uploaded files, a folder on disk or a worker's result.

Every path goes through ``module_create``: the files are validated against the
base model, the card is completed with the registry's metadata, the blobs are
stored at their content addresses and the rows written, all or nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from modules import storage, validation
from modules.models import (
    BaseModel,
    EmptyRepository,
    Module,
    ModuleFile,
    ModuleFingerprint,
    ModuleSource,
)
from modules.services.checks import ValidatedState, validated_state
from modules.services.common import set_tags, work_root
from modules.services.revisions import commit_record
from modules.services.search_index import module_search_index_refresh
from modules.validation import SAFETENSORS_WEIGHTS, LocalFile

_DESCRIPTION_LENGTH = Module._meta.get_field("description").max_length


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
    commit_message: str = "Initial upload",
) -> Module:
    """Validate a PEFT adapter and register it as ``owner/name``.

    ``files`` maps file names (adapter_config.json, adapter_model.safetensors
    or adapter_model.bin, README.md) to local paths. Without ``base_model``,
    the one the config or card names is used. ``card`` replaces the README's
    text; ``lineage`` lists the (source module, weight) pairs a composed
    module was merged from, each at the revision the given row holds.
    Nothing is stored unless every check passes; failures raise
    ``ValidationError`` with messages per field (``name``, ``files``,
    ``base_model``…), or ``ModuleDuplicate``. The files become the module's
    first commit, with ``commit_message``.
    """
    errors: dict[str, list[str]] = {}
    check_module_name(owner, name, errors)
    with tempfile.TemporaryDirectory(prefix="module-", dir=work_root()) as work:
        state = validated_state(
            owner=owner,
            full_name=f"{owner.get_username()}/{name}",
            files=files,
            work_dir=Path(work),
            errors=errors,
            base_model=base_model,
            card=card,
            description=description,
            tags=tags,
            license=license,
            lineage=lineage,
        )
        check_visibility(visibility, errors)
        if errors:
            raise ValidationError(errors)
        return _register(
            owner=owner,
            name=name,
            state=state,
            visibility=visibility,
            lineage=lineage,
            commit_message=commit_message,
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


def _register(
    *,
    owner,
    name: str,
    state: ValidatedState,
    visibility: str,
    lineage: Sequence[tuple[Module, float]],
    commit_message: str,
) -> Module:
    """Store the blobs, then write the rows; on any failure remove what was added."""
    written: list[str] = []
    try:
        paths = store_blobs(state.files, written)
        with transaction.atomic():
            module = Module.objects.create(
                owner=owner,
                name=name,
                base_model=state.base_model,
                visibility=visibility,
                **state.adapter_fields(),
            )
            files = module_files_create(module, state, paths)
            set_tags(module, state.tag_slugs)
            # An empty repository of that name (made with create_repo) is now this module.
            EmptyRepository.objects.filter(owner=owner, name__iexact=name).delete()
            ModuleSource.objects.bulk_create(
                ModuleSource(
                    composed=module,
                    source=source,
                    source_name=source.full_name,
                    source_revision=source.revision,
                    weight=float(weight),
                    position=position,
                )
                for position, (source, weight) in enumerate(lineage)
            )
            if state.fingerprint is not None:
                # For candidate retrieval; every way of registering a module comes here.
                ModuleFingerprint.objects.create(
                    module=module,
                    data=state.fingerprint,
                    weights_sha256=state.files[SAFETENSORS_WEIGHTS].sha256,
                )
            commit_record(module=module, files=files, message=commit_message, author=owner)
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


def store_blobs(files: Mapping[str, LocalFile], written: list[str]) -> dict[str, str]:
    """Store each file at its content address; ``written`` gets the paths this call added."""
    paths = {}
    for filename, local in files.items():
        paths[filename], created = storage.blob_store(path=local.path, sha256=local.sha256)
        if created:
            written.append(paths[filename])
    return paths


def check_visibility(visibility: str, errors: dict) -> None:
    if visibility not in Module.Visibility.values:
        errors.setdefault("visibility", []).append(f"{visibility!r} is not public or private.")


def module_files_create(
    module: Module, state: ValidatedState, paths: Mapping[str, str]
) -> list[ModuleFile]:
    """The rows of a validated state's files, stored at ``paths`` (filename -> blob)."""
    return ModuleFile.objects.bulk_create(
        ModuleFile(
            module=module,
            filename=filename,
            size=local.size,
            sha256=local.sha256,
            storage_path=paths[filename],
        )
        for filename, local in state.files.items()
    )
