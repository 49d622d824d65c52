"""One file of a repository: resolve, with byte ranges and download counting
(the rule is in ``modules.downloads``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO

from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.views.decorators.http import require_safe

from modules import storage
from modules.downloads import COUNTED_FILE, counts_as_download, file_content_type
from modules.hub_protocol.common import (
    _RANGE,
    HubError,
    _entry_not_found,
    _is_lfs,
    _repo,
    hub_view,
)
from modules.services import module_record_download

# --- Files ------------------------------------------------------------------------


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte of a single ``Range``, or None to send everything.

    Several ranges or a malformed header are answered with the whole file,
    which HTTP allows; a range past the end is 416.
    """
    match = _RANGE.match(header.strip()) if header else None
    if not match or match[1] == match[2] == "":
        return None
    if match[1] == "":
        suffix = int(match[2])
        if suffix == 0:
            raise _range_not_satisfiable(size)
        return max(size - suffix, 0), size - 1
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size or first > last:
        raise _range_not_satisfiable(size)
    return first, last


def _range_not_satisfiable(size: int) -> HubError:
    return HubError(
        416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
    )


def range_chunks(
    open_stream: Callable[[], AbstractContextManager[IO[bytes]]], first: int, length: int
) -> Iterator[bytes]:
    """``length`` bytes from ``first`` of a stream opened only once the response is read."""
    with open_stream() as stream:
        stream.seek(first)
        while length > 0:
            chunk = stream.read(min(storage.CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


@require_safe
@hub_view
def resolve_file(request, owner: str, name: str, revision: str, filename: str):
    """One file, with the headers ``hf_hub_download`` reads from its HEAD request.

    ``X-Repo-Commit`` pins the revision; ``ETag`` and ``X-Linked-Etag`` (the
    sha256) name the blob in the client's cache; ``X-Linked-Size`` and
    ``Content-Length`` give its size, on HEAD too. Never compressed, so
    sizes and ranges are those of the file. With S3 storage, weights are
    served by the bucket: a redirect to a signed URL, which the client
    follows without sending its token.
    """
    repo = _repo(request, owner, name, revision)
    file = repo.file(filename)
    if file is None:
        raise _entry_not_found(repo, filename)
    byte_range = _byte_range(request.headers.get("Range", ""), file.size)
    whole_file = byte_range is None or byte_range == (0, file.size - 1)
    if filename == COUNTED_FILE and counts_as_download(
        request, whole_file=whole_file, repo_key=f"module:{repo.module.pk}"
    ):
        module_record_download(module=repo.module)

    headers = {
        "X-Repo-Commit": repo.sha,
        "ETag": f'"{file.sha256}"',
        "X-Linked-Etag": f'"{file.sha256}"',
        "X-Linked-Size": str(file.size),
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{file.filename}"',
    }
    content_type = file_content_type(file.filename)
    url = (
        storage.blob_url(
            file.storage_path,
            content_disposition=headers["Content-Disposition"],
            content_type=content_type,
        )
        if _is_lfs(file)
        else None
    )
    if url:
        response = HttpResponseRedirect(url)
    else:
        first, last = byte_range or (0, file.size - 1)
        length = max(last - first + 1, 0)
        status = 206 if byte_range else 200
        if request.method == "HEAD":
            response = HttpResponse(status=status, content_type=content_type)
        else:
            response = StreamingHttpResponse(
                range_chunks(lambda: storage.blob_open(file.storage_path), first, length),
                status=status,
                content_type=content_type,
            )
        response["Content-Length"] = str(length)
        if byte_range:
            response["Content-Range"] = f"bytes {first}-{last}/{file.size}"
    for header, value in headers.items():
        response[header] = value
    return response
