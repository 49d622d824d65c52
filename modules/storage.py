"""Module files in the configured storage, at content-addressed paths.

A file is stored once per content, at ``blobs/sha256/ab/cd/<sha256>``, however
many modules share it (the same adapter_config.json is common). Local disk
and S3-compatible storage are both Django storages; workers that need a real
path get the file itself on local disk, or a cached copy from S3.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

CHUNK_BYTES = 1024 * 1024

logger = logging.getLogger(__name__)


def blob_path(sha256: str) -> str:
    return f"blobs/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def blob_store(*, path: Path, sha256: str) -> tuple[str, bool]:
    """Copy a local file into storage at its content address, in chunks.

    Returns the storage path and whether this call wrote it (False when the
    same content was there already), so a failed upload removes only what it
    added. A blob already at the address is trusted only after a check (its
    size; on local disk its sha256 too): one found damaged is replaced by this
    file, which the caller has hashed, and the incident is logged.
    """
    name = blob_path(sha256)
    size = path.stat().st_size
    if default_storage.exists(name):
        damage = blob_damage(name, size=size, sha256=sha256)
        if damage is None:
            return name, False
        logger.error(
            "Stored blob %s is damaged (%s); replacing it with a verified copy", name, damage
        )
        with path.open("rb") as stream:
            default_storage.overwrite(name, File(stream, name=path.name))
        return name, True
    with path.open("rb") as stream:
        saved = default_storage.save(name, File(stream, name=path.name))
    if saved != name:
        # Another upload of the same content won the race; keep its copy.
        default_storage.delete(saved)
        return name, False
    return name, True


def blob_damage(name: str, *, size: int, sha256: str) -> str | None:
    """What is wrong with a stored blob, or None when it holds the expected content.

    Hashing costs a read of the blob: cheap on local disk (cheaper than the
    copy it saves), a whole download on S3, where objects only ever appear
    complete and the size is checked instead.
    """
    stored_size = default_storage.size(name)
    if stored_size != size:
        return f"{stored_size} bytes instead of {size}"
    if is_local_storage():
        digest = hashlib.sha256()
        for chunk in blob_chunks(name):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            return f"its content hashes to {digest.hexdigest()}"
    return None


def blob_delete_unreferenced(names: Iterable[str]) -> None:
    """Delete blobs that no module file, nor any commit of a module, refers to any more."""
    from modules.models import ModuleCommitFile, ModuleFile

    for name in set(names):
        if ModuleFile.objects.filter(storage_path=name).exists():
            continue
        if not ModuleCommitFile.objects.filter(storage_path=name).exists():
            default_storage.delete(name)


def blob_open(name: str):
    return default_storage.open(name, "rb")


def blob_chunks(name: str, chunk_size: int = CHUNK_BYTES) -> Iterator[bytes]:
    with blob_open(name) as stream:
        while chunk := stream.read(chunk_size):
            yield chunk


def blob_url(name: str, *, content_disposition: str = "", content_type: str = "") -> str | None:
    """A signed URL the storage serves the blob at directly (S3), or None (local disk).

    Blobs are stored by content, without a type: the URL says what to answer with.
    """
    if is_local_storage():
        return None
    parameters = {}
    if content_disposition:
        parameters["ResponseContentDisposition"] = content_disposition
    if content_type:
        parameters["ResponseContentType"] = content_type
    return default_storage.url(name, parameters=parameters)


def is_local_storage() -> bool:
    try:
        default_storage.path("probe")
    except NotImplementedError:
        return False
    return True


def blob_local_path(*, name: str, sha256: str) -> Path:
    """A path on this machine holding the blob.

    Local storage: the stored file itself. Remote storage: a copy in
    ``VAR_DIR/blob-cache`` keyed by sha256, downloaded once, checked against
    its hash and renamed into place, so a half-written file is never used.
    """
    if is_local_storage():
        return Path(default_storage.path(name))
    cached = Path(settings.VAR_DIR) / "blob-cache" / sha256[:2] / sha256
    if cached.exists():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=sha256[:12] + ".", dir=cached.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as sink:
            for chunk in blob_chunks(name):
                digest.update(chunk)
                sink.write(chunk)
        if digest.hexdigest() != sha256:
            raise OSError(f"blob {name} does not match its sha256; storage is corrupt")
        os.replace(staging, cached)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return cached


class _ZipSink:
    """A write-only file that hands back what zipfile wrote since the last call."""

    def __init__(self):
        self._chunks: list[bytes] = []

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def zip_stream(entries: Iterable[tuple[str, str]], date_time: tuple) -> Iterator[bytes]:
    """A zip of blobs, as (name in the archive, storage path) pairs, produced on the fly.

    Entries are stored uncompressed (weights do not compress) and streamed in
    chunks, so a download of any size uses a few megabytes of memory.
    """
    sink = _ZipSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for arcname, name in entries:
            info = zipfile.ZipInfo(arcname, date_time=date_time)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as entry:
                for chunk in blob_chunks(name):
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
