"""HTTP responses that hand out a module's files, for the pages and the API alike."""

import mimetypes

from django.http import FileResponse, Http404, HttpResponseRedirect, StreamingHttpResponse

from modules import storage
from modules.models import Module
from modules.services import module_record_download
from modules.validation import SAFETENSORS_WEIGHTS


def module_zip_response(module: Module) -> StreamingHttpResponse:
    """The module's folder as a zip built while it streams; counts as a download."""
    files = list(module.files.order_by("filename"))
    entries = [(f"{module.name}/{file.filename}", file.storage_path) for file in files]
    date_time = module.updated_at.timetuple()[:6]
    response = StreamingHttpResponse(
        storage.zip_stream(entries, date_time), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{module.name}.zip"'
    module_record_download(module=module)
    return response


# Module files that are text: their Content-Type says they are UTF-8, which the
# hub requires of them, so browsers and clients never guess another encoding.
TEXT_TYPES = {".md": "text/markdown", ".json": "application/json", ".txt": "text/plain"}


def file_content_type(filename: str) -> str:
    """The Content-Type a module file is served with."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in TEXT_TYPES:
        return f"{TEXT_TYPES[suffix]}; charset=utf-8"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def module_file_response(module: Module, filename: str):
    """One file of the module: served from local disk, or a redirect to signed S3 URL.

    Fetching the weights counts as a download; the config and card do not
    (clients read them to decide whether to download at all).
    """
    file = module.files.filter(filename=filename).first()
    if file is None:
        raise Http404(f"{module.full_name} has no file {filename}")
    if filename == SAFETENSORS_WEIGHTS:
        module_record_download(module=module)
    disposition = f'attachment; filename="{filename}"'
    content_type = file_content_type(filename)
    url = storage.blob_url(
        file.storage_path, content_disposition=disposition, content_type=content_type
    )
    if url:
        return HttpResponseRedirect(url)
    response = FileResponse(
        storage.blob_open(file.storage_path),
        as_attachment=True,
        filename=filename,
        content_type=content_type,
    )
    response["X-Content-SHA256"] = file.sha256
    return response
