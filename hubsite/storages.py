"""The hub's file storages: a stored file appears under its name only when complete.

A process killed in the middle of a copy (a web worker's time-out, the OOM
killer, a crash) must never leave a truncated file at a final name: module
files live at content addresses, and a later upload of the same content would
trust whatever sits there. On local disk a file is written to a staging name
beside its destination, flushed to disk, then linked into place in one step;
on S3 an object becomes visible only once its (multipart) upload completes.

Both backends also offer ``overwrite(name, content)``, which replaces a file
in one step, for repairing a stored file found damaged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile

from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage

# Staging files end with this suffix; a clean-up removes those left by a crash.
STAGING_SUFFIX = ".partial"
# Errors of file systems that cannot hard-link (some network and FUSE mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}


class AtomicFileSystemStorage(FileSystemStorage):
    """Local files written to a staging name, synced, then linked into place."""

    def _save(self, name: str, content) -> str:
        full_path = self.path(name)
        staging = self._write_staging(full_path, content)
        try:
            while True:
                try:
                    _link_no_clobber(staging, full_path)
                    break
                except FileExistsError:
                    name = self.get_available_name(name)
                    full_path = self.path(name)
        finally:
            _remove(staging)
        return self._finish(full_path)

    def overwrite(self, name: str, content) -> str:
        full_path = self.path(name)
        staging = self._write_staging(full_path, content)
        try:
            os.replace(staging, full_path)
        except BaseException:
            _remove(staging)
            raise
        return self._finish(full_path)

    def _write_staging(self, full_path: str, content) -> str:
        directory, basename = os.path.split(full_path)
        os.makedirs(directory, exist_ok=True)
        handle, staging = tempfile.mkstemp(
            prefix=f".{basename}.", suffix=STAGING_SUFFIX, dir=directory
        )
        try:
            with os.fdopen(handle, "wb") as sink:
                for chunk in content.chunks():
                    sink.write(chunk if isinstance(chunk, bytes) else chunk.encode())
                sink.flush()
                # Renamed or linked data is only as durable as its blocks.
                os.fsync(sink.fileno())
            os.chmod(staging, self.file_permissions_mode or 0o644)
        except BaseException:
            _remove(staging)
            raise
        return staging

    def _finish(self, full_path: str) -> str:
        self._ensure_location_group_id(full_path)
        return os.path.relpath(full_path, self.location).replace("\\", "/")


def _link_no_clobber(source: str, destination: str) -> None:
    """Give ``source`` the name ``destination`` in one step; FileExistsError if taken."""
    try:
        os.link(source, destination)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here: a rename is still atomic, but it could replace a
        # file created a moment ago by another writer of the same name.
        if os.path.exists(destination):
            raise FileExistsError(errno.EEXIST, "file exists", destination) from exc
        os.rename(source, destination)


def _remove(path: str) -> None:
    # Gone already where it was renamed into place (no hard links).
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class HubS3Storage(S3Storage):
    """S3-compatible storage; its uploads are atomic already (an object appears whole)."""

    def overwrite(self, name: str, content) -> str:
        # A PUT (or a completed multipart upload) replaces the object in one step.
        return self._save(name, content)
