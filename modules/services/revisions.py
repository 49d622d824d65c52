"""A module's history: each upload, push or card edit is a commit of its whole file set.

A module's first commit is named by its content (a hash of its file names
and contents, which is what the Hub protocol called every module's single
revision before modules had a history); every later one by its parent, its
files, its message, its author and its time, so that returning to earlier
files still makes a new commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from modules.models import Module, ModuleCommit, ModuleCommitFile, ModuleFile


def module_commit_sha(files) -> str:
    """The id of a first commit: 40 hex digits, a hash of the file names and contents."""
    digest = hashlib.sha1(b"lorahub-module-revision\n", usedforsecurity=False)
    for file in sorted(files, key=lambda f: f.filename):
        digest.update(f"{file.filename}\0{file.sha256}\n".encode())
    return digest.hexdigest()


def _next_commit_id(*, parent: str, files, message: str, author, when) -> str:
    digest = hashlib.sha1(b"lorahub-module-commit\n", usedforsecurity=False)
    author_name = author.get_username() if author is not None else ""
    digest.update(f"parent {parent}\nauthor {author_name}\ntime {when.isoformat()}\n".encode())
    digest.update(f"message {message}\n".encode())
    for file in sorted(files, key=lambda f: f.filename):
        digest.update(f"{file.filename}\0{file.sha256}\n".encode())
    return digest.hexdigest()


def commit_record(
    *,
    module: Module,
    files: Iterable[ModuleFile],
    message: str,
    author=None,
    description: str = "",
) -> ModuleCommit:
    """Record ``files`` (the module's rows after the change) as its newest commit.

    Called inside the transaction that wrote the files, so a module's
    ``revision`` and its newest commit never disagree.
    """
    files = list(files)
    when = timezone.now()
    if module.revision:
        commit_id = _next_commit_id(
            parent=module.revision, files=files, message=message, author=author, when=when
        )
    else:
        commit_id = module_commit_sha(files)
    with transaction.atomic():
        commit = ModuleCommit.objects.create(
            module=module,
            commit_id=commit_id,
            message=message[:500],
            description=description,
            author=author,
            created_at=when,
        )
        ModuleCommitFile.objects.bulk_create(
            ModuleCommitFile(
                commit=commit,
                filename=file.filename,
                size=file.size,
                sha256=file.sha256,
                storage_path=file.storage_path,
            )
            for file in files
        )
        module.revision = commit_id
        Module.objects.filter(pk=module.pk).update(revision=commit_id)
    return commit
