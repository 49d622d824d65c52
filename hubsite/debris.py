"""What a crash leaves on disk, and its removal.

A killed web worker leaves its upload's temporary files and, mid-copy, a
storage staging file; a killed job leaves its work folder. None of them is
ever used again. They are removed once older than a bound that no live
request or job can reach, at start-up and by a periodic task, so a clean-up
never touches the files of work still in progress.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from hubsite.storages import STAGING_SUFFIX
from modules.storage import is_local_storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DebrisRemoved:
    paths: int
    bytes: int


def debris_remove(*, max_age: float | None = None, now: float | None = None) -> DebrisRemoved:
    """Remove upload temp files, job work folders and storage staging files gone stale.

    ``max_age`` (seconds since the last write) defaults to HUB_DEBRIS_MAX_AGE_SECONDS
    for uploads and staging files; a job work folder is kept at least as long as a
    task may run (CELERY_TASK_TIME_LIMIT), since a job may write nothing there for hours.
    """
    now = time.time() if now is None else now
    upload_age = settings.HUB_DEBRIS_MAX_AGE_SECONDS if max_age is None else max_age
    job_age = max(upload_age, settings.CELERY_TASK_TIME_LIMIT) if max_age is None else max_age
    stale = [
        *_entries_older(Path(settings.FILE_UPLOAD_TEMP_DIR), now - upload_age),
        *_entries_older(Path(settings.JOB_WORK_DIR), now - job_age),
        *_staging_files_older(now - upload_age),
    ]
    removed = DebrisRemoved(paths=len(stale), bytes=sum(_size(path) for path in stale))
    for path in stale:
        logger.info("Removing debris %s", path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed


def _entries_older(folder: Path, cutoff: float) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if _last_write(entry) < cutoff:
            yield entry


def _staging_files_older(cutoff: float) -> Iterator[Path]:
    if not is_local_storage():
        # S3 has no staging objects; incomplete multipart uploads expire by the
        # bucket's lifecycle rule (manage.py ensure_storage sets it).
        return
    for directory, _, names in os.walk(default_storage.location):
        for name in names:
            path = Path(directory, name)
            if name.endswith(STAGING_SUFFIX) and _last_write(path) < cutoff:
                yield path


def _last_write(path: Path) -> float:
    """The newest modification time in a file or folder tree."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for directory, _, names in os.walk(path):
            for name in [".", *names]:
                try:
                    newest = max(newest, os.lstat(os.path.join(directory, name)).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.lstat().st_size
