"""Registering uploaded files: the adapter's files one by one, or one .zip of its folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from modules import validation
from modules.models import BaseModel, Module
from modules.services.common import work_root
from modules.services.creation import check_module_name, module_create
from modules.validation import (
    ADAPTER_CONFIG,
    MODEL_CARD,
    PICKLED_WEIGHTS,
    SAFETENSORS_WEIGHTS,
    AdapterInvalid,
    LocalFile,
)

ARCHIVE_SUFFIX = ".zip"


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
    with tempfile.TemporaryDirectory(prefix="upload-", dir=work_root()) as work:
        try:
            files = _uploaded_adapter_files(uploads, Path(work))
        except ValidationError as exc:
            # Say what is wrong with the name too, not only with the files.
            errors = dict(exc.message_dict)
            check_module_name(owner, name, errors)
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
                archive.path,
                extracted,
                max_uncompressed_bytes=settings.HUB_MAX_UPLOAD_BYTES,
                name=archives[0],
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
