"""A module's files as local paths, for workers that load them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from django.conf import settings

from modules import storage
from modules.models import Module


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
