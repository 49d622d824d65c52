"""Streaming of uploaded files: to disk in chunks, hashed on the way, size-limited.

``HashingUploadHandler`` is the hub's only upload handler (settings'
``FILE_UPLOAD_HANDLERS``): every uploaded file is written to a temporary file
in ``FILE_UPLOAD_TEMP_DIR`` chunk by chunk while its sha256 is computed, so
memory stays flat whatever the size, and the file is never read again just to
hash it. A request larger than ``HUB_MAX_UPLOAD_BYTES`` is refused before its
body is read when it says its length, and as soon as the limit is crossed
when it does not.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework import status
from rest_framework.exceptions import APIException

# Form fields and multipart boundaries around the files take a few kilobytes.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


class UploadTooLarge(APIException, RequestDataTooBig):
    """A 413: DRF answers it in API views; elsewhere Django takes it for the
    RequestDataTooBig it is, and the hub's ``handler400`` answers it (hubsite/errors.py)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(
            f"The upload is larger than the limit of {format_bytes(limit)} ({limit} bytes)."
        )


class HashedUploadedFile(TemporaryUploadedFile):
    """An uploaded file on disk whose sha256 was computed while it streamed in."""

    sha256: str = ""


class HashingUploadHandler(FileUploadHandler):
    chunk_size = 256 * 1024

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.HUB_MAX_UPLOAD_BYTES
        self.received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit + MULTIPART_OVERHEAD_BYTES:
            raise UploadTooLarge(self.limit)
        return None  # the standard multipart parser does the rest

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.file = HashedUploadedFile(
            self.file_name, self.content_type, 0, self.charset, self.content_type_extra
        )
        self.digest = hashlib.sha256()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.file.close()  # a temporary file: closing it deletes it
            raise UploadTooLarge(self.limit)
        self.digest.update(raw_data)
        self.file.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.file.seek(0)
        self.file.size = file_size
        self.file.sha256 = self.digest.hexdigest()
        return self.file

    def upload_interrupted(self):
        if hasattr(self, "file"):
            self.file.close()


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
