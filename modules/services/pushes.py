"""Writes through the Hub protocol: repositories made, pushed to, set private, deleted.

A push is a change to a module's file set (files added or replaced, files
deleted). The new set is validated exactly as an upload is (``validated_state``)
and becomes the module's newest commit, or, in an empty repository, its
first. A refused push stores nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from modules import storage
from modules.models import EmptyRepository, Module, ModuleCommit, ModuleFile
from modules.selectors import module_visible_to
from modules.services.checks import validated_state
from modules.services.common import set_tags, work_root
from modules.services.creation import (
    check_module_name,
    check_visibility,
    module_create,
    module_files_create,
)
from modules.services.creation import store_blobs as _store_blobs
from modules.services.edits import module_delete
from modules.services.fingerprints import module_fingerprint_store
from modules.services.revisions import commit_record
from modules.services.search_index import module_search_index_refresh
from modules.validation import ADAPTER_FILES, SAFETENSORS_WEIGHTS, LocalFile

Repository = Module | EmptyRepository


class RepositoryExists(Exception):
    """The user already has a module or an empty repository of that name."""


class RepositoryMissing(Exception):
    """No repository of that name that this user may see."""


class FileMissing(Exception):
    """A push deletes a file the repository does not have."""


class RevisionMoved(Exception):
    """The repository got another commit since the one the push was made on."""


def repository_for_write(*, user: AbstractBaseUser, owner: str, name: str) -> Repository:
    """The module or empty repository ``owner/name``, if ``user`` may change it.

    Raises ``RepositoryMissing`` when the user may not even see it (as the
    read side answers), ``PermissionDenied`` when it belongs to someone else.
    """
    module = module_visible_to(user).filter(owner__username=owner, name=name).first()
    if module is not None:
        if module.owner_id != user.pk:
            raise PermissionDenied(f"Only {module.owner.username} can change {module.full_name}.")
        return module
    empty = EmptyRepository.objects.filter(
        owner=user, owner__username=owner, name__iexact=name
    ).first()
    if empty is None:
        raise RepositoryMissing(f"Repository {owner}/{name} not found")
    return empty


def repository_create(
    *, user: AbstractBaseUser, owner: str, name: str, visibility: str
) -> EmptyRepository:
    """An empty repository ``owner/name``, to push a module's first files to.

    The name follows a module's rules (and is checked again at the first push).
    """
    if owner != user.get_username():
        raise PermissionDenied(
            f"You can create repositories under your own name only ({user.get_username()}/…), "
            f"not under {owner}."
        )
    exists = RepositoryExists(f"You already have a repository named {owner}/{name}.")
    if (
        Module.objects.filter(owner=user, name__iexact=name).exists()
        or EmptyRepository.objects.filter(owner=user, name__iexact=name).exists()
    ):
        raise exists
    errors: dict[str, list[str]] = {}
    check_module_name(user, name, errors)
    check_visibility(visibility, errors)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            return EmptyRepository.objects.create(owner=user, name=name, visibility=visibility)
    except IntegrityError as exc:
        raise exists from exc


def repository_delete(*, repository: Repository) -> None:
    if isinstance(repository, Module):
        module_delete(module=repository)
    else:
        repository.delete()


def repository_files(repository: Repository) -> dict[str, ModuleFile]:
    if isinstance(repository, EmptyRepository):
        return {}
    return {file.filename: file for file in repository.files.all()}


@dataclass(frozen=True)
class PushedChanges:
    """What a commit changes: files added or replaced (on local disk), files deleted."""

    additions: Mapping[str, LocalFile]
    deletions: frozenset[str]
    message: str
    description: str = ""
    parent: str | None = None


def repository_push(
    *, user: AbstractBaseUser, repository: Repository, changes: PushedChanges
) -> ModuleCommit:
    """Apply ``changes`` to the repository's files; the result is its newest commit.

    Raises ``ValidationError`` (the upload's rules and messages, by field),
    ``ModuleDuplicate``, ``FileMissing`` or ``RevisionMoved``.
    """
    current = repository_files(repository)
    head = repository.revision if isinstance(repository, Module) else ""
    if changes.parent and changes.parent != head:
        raise RevisionMoved(
            f"{_full_name(repository)} is at {head or 'no commit yet'}, not at the parent "
            f"commit {changes.parent}: fetch it and push again."
        )
    for filename in sorted(changes.deletions):
        if filename not in current:
            raise FileMissing(f"A file with this name doesn't exist: {filename}")
    _check_file_names(changes.additions)
    files: dict[str, LocalFile] = {
        filename: LocalFile(
            path=storage.blob_local_path(name=file.storage_path, sha256=file.sha256),
            size=file.size,
            sha256=file.sha256,
        )
        for filename, file in current.items()
        if filename not in changes.deletions
    }
    files.update(changes.additions)
    if isinstance(repository, EmptyRepository):
        return _first_push(user, repository, files, changes)
    return _next_push(user, repository, files, changes)


def _check_file_names(additions: Mapping[str, LocalFile]) -> None:
    unknown = sorted(set(additions) - set(ADAPTER_FILES))
    if unknown:
        raise ValidationError(
            {
                "files": [
                    f"{filename}: not part of a PEFT adapter; a module holds "
                    f"{', '.join(ADAPTER_FILES)} only."
                    for filename in unknown
                ]
            }
        )


def _first_push(user, empty: EmptyRepository, files, changes: PushedChanges) -> ModuleCommit:
    # module_create removes the empty repository in the transaction that makes the module.
    module = module_create(
        owner=user,
        name=empty.name,
        files=files,
        visibility=empty.visibility,
        commit_message=changes.message,
    )
    return module.commits.get(commit_id=module.revision)


def _next_push(user, module: Module, files, changes: PushedChanges) -> ModuleCommit:
    errors: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="push-", dir=work_root()) as work:
        state = validated_state(
            owner=user,
            full_name=module.full_name,
            files=files,
            work_dir=Path(work),
            errors=errors,
            base_model=module.base_model,
            description=module.description,
            revised=module,
        )
        current = {f.filename: f.sha256 for f in module.files.all()}
        if {name: local.sha256 for name, local in state.files.items()} == current:
            # Nothing changed once completed (the card, say, as the hub writes it).
            return module.commits.get(commit_id=module.revision)
        written: list[str] = []
        try:
            paths = _store_blobs(state.files, written)
            with transaction.atomic():
                locked = Module.objects.select_for_update().get(pk=module.pk)
                if locked.revision != module.revision:
                    raise RevisionMoved(
                        f"{module.full_name} got another commit while this one was checked; "
                        "push again."
                    )
                # Only the fields a push changes: counts written meanwhile stay.
                fields = {**state.adapter_fields(), "updated_at": timezone.now()}
                Module.objects.filter(pk=module.pk).update(**fields)
                for field, value in fields.items():
                    setattr(module, field, value)
                module.files.all().delete()
                rows = module_files_create(module, state, paths)
                set_tags(module, state.tag_slugs)
                if state.fingerprint is not None:
                    module_fingerprint_store(
                        module=module,
                        data=state.fingerprint,
                        weights_sha256=state.files[SAFETENSORS_WEIGHTS].sha256,
                    )
                commit = commit_record(
                    module=module,
                    files=rows,
                    message=changes.message,
                    author=user,
                    description=changes.description,
                )
                module_search_index_refresh(module_ids=[module.pk])
        except BaseException:
            storage.blob_delete_unreferenced(written)
            raise
    return commit


def repository_set_visibility(*, repository: Repository, visibility: str) -> None:
    from modules.services.edits import module_update

    if isinstance(repository, Module):
        module_update(module=repository, visibility=visibility)
        return
    errors: dict[str, list[str]] = {}
    check_visibility(visibility, errors)
    if errors:
        raise ValidationError(errors)
    repository.visibility = visibility
    repository.save(update_fields=["visibility"])


def _full_name(repository: Repository) -> str:
    return f"{repository.owner.get_username()}/{repository.name}"
