"""What crashes leave on disk is removed once stale, and live work is never touched."""

import os
import time

from django.core.management import call_command

from hubsite.debris import debris_remove
from hubsite.storages import STAGING_SUFFIX

HOUR = 3600


def make(path, *, age: float, size: int = 10):
    """A file last written ``age`` seconds ago, in folders last changed then too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    then = time.time() - age
    for written in [path, *path.parents][:3]:
        os.utime(written, (then, then))
    return path


def test_stale_debris_goes_and_live_work_stays(isolated_files, settings):
    settings.HUB_DEBRIS_MAX_AGE_SECONDS = HOUR
    settings.CELERY_TASK_TIME_LIMIT = 3 * HOUR
    uploads, jobs = settings.FILE_UPLOAD_TEMP_DIR, settings.JOB_WORK_DIR
    blob_folder = isolated_files / "blobs" / "sha256" / "ab" / "cd"
    stale = [
        make(uploads / "tmpa1b2.upload.safetensors", age=2 * HOUR, size=1000),
        make(uploads / "upload-x1" / "adapter_model.safetensors", age=2 * HOUR),
        make(jobs / "compose-7-x1" / "adapter" / "a.bin", age=4 * HOUR),
        make(blob_folder / f".abcd.x1{STAGING_SUFFIX}", age=2 * HOUR),
    ]
    live = [
        make(uploads / "tmpc3d4.upload.safetensors", age=60),
        # A folder created long ago, but written to a minute ago: in use.
        make(uploads / "module-x2" / "old.json", age=2 * HOUR),
        make(uploads / "module-x2" / "new.json", age=60),
        # A long job writes nothing for hours: kept until no task can still run.
        make(jobs / "train-3-x2" / "data.jsonl", age=2 * HOUR),
        make(blob_folder / f".abcd.x2{STAGING_SUFFIX}", age=60),
        make(blob_folder / "abcd", age=2 * HOUR),
    ]

    removed = debris_remove()

    assert [p for p in stale if p.exists()] == []
    assert [p for p in live if not p.exists()] == []
    assert (uploads / "upload-x1").exists() is False
    assert (removed.paths, removed.bytes) == (4, 1030)


def test_the_command_says_what_it_removed(isolated_files, settings, capsys):
    make(settings.FILE_UPLOAD_TEMP_DIR / "tmpa1b2.upload.safetensors", age=30, size=2048)

    call_command("remove_debris", "--max-age", "10")

    assert capsys.readouterr().out == "Removed 1 stale paths (2.0 KiB).\n"
