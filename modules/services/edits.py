"""Changes an owner makes after upload (card, tags, license, visibility), and deletion."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from modules import cards, storage
from modules.models import Module, ModuleCommitFile, ModuleFile
from modules.services.common import card_with_metadata, parse_card, set_tags, work_root, write_text
from modules.services.creation import check_visibility
from modules.services.revisions import commit_record
from modules.services.search_index import module_search_index_refresh
from modules.validation import MODEL_CARD, AdapterInvalid

_DESCRIPTION_LENGTH = Module._meta.get_field("description").max_length


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
        parsed = parse_card(card if card is not None else module.card)
    except AdapterInvalid as exc:
        raise ValidationError({"card": [p.message for p in exc.problems]}) from exc
    errors: dict[str, list[str]] = {}
    if visibility is not None:
        check_visibility(visibility, errors)
    if errors:
        raise ValidationError(errors)
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
    final_card = card_with_metadata(
        parsed, base_model=module.base_model, tags=tag_slugs, license=module.license
    )
    card_text = final_card.source
    module.card_data = final_card.data

    replaced: list[str] = []
    written: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="card-", dir=work_root()) as work,
            transaction.atomic(),
        ):
            if card_text != module.card:
                replaced, written = _replace_card_file(module, card_text, Path(work))
                module.card = card_text
                commit_record(
                    module=module,
                    files=module.files.all(),
                    message="Update the model card",
                    author=module.owner,
                )
            module.save()
            set_tags(module, tag_slugs)
            module_search_index_refresh(module_ids=[module.pk])
    except BaseException:
        storage.blob_delete_unreferenced(written)
        raise
    # Earlier commits keep their card: only a blob no commit refers to goes.
    transaction.on_commit(lambda: storage.blob_delete_unreferenced(replaced))
    return module


def _replace_card_file(module: Module, text: str, work_dir: Path) -> tuple[list[str], list[str]]:
    local = write_text(work_dir / MODEL_CARD, text)
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
    """Delete a module and, once no other module shares them, its files, of every commit."""
    paths = list(module.files.values_list("storage_path", flat=True))
    paths += ModuleCommitFile.objects.filter(commit__module=module).values_list(
        "storage_path", flat=True
    )
    with transaction.atomic():
        module.delete()
    transaction.on_commit(lambda: storage.blob_delete_unreferenced(paths))
