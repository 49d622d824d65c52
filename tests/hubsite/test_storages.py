"""Local files appear under their name only when complete, even if the writer is killed."""

import signal
import subprocess
import sys
import time

import pytest
from django.core.files.base import ContentFile

from hubsite.storages import STAGING_SUFFIX, AtomicFileSystemStorage

SLOW_WRITER = """
import sys, time
from django.conf import settings
settings.configure()
from django.core.files.base import File
from hubsite.storages import AtomicFileSystemStorage

class Trickle(File):
    def chunks(self, chunk_size=None):
        while True:
            yield b"x" * 4096
            time.sleep(0.01)

print("writing", flush=True)
AtomicFileSystemStorage(location=sys.argv[1]).save("blobs/data", Trickle(None, name="data"))
"""


@pytest.mark.slow
def test_a_writer_killed_mid_save_leaves_only_a_staging_file(tmp_path):
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline() == "writing\n"
    deadline = time.monotonic() + 30
    while not _written(tmp_path / "blobs") and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    left = [p.name for p in (tmp_path / "blobs").iterdir()]
    assert "data" not in left
    assert len(left) == 1 and left[0].startswith(".data.") and left[0].endswith(STAGING_SUFFIX)


def _written(folder) -> bool:
    return folder.exists() and any(p.stat().st_size for p in folder.iterdir())


def test_save_keeps_an_existing_name_and_overwrite_replaces_it(tmp_path):
    storage = AtomicFileSystemStorage(location=tmp_path)

    first = storage.save("a/file", ContentFile(b"one"))
    second = storage.save("a/file", ContentFile(b"two"))
    storage.overwrite("a/file", ContentFile(b"three"))

    assert first == "a/file" and second != first
    assert (tmp_path / "a/file").read_bytes() == b"three"
    assert (tmp_path / second).read_bytes() == b"two"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(["file", second[2:]])
