"""HTTP responses that hand out a module's files, and what counts as a download.

The rule is the Hugging Face Hub's for PEFT repositories: a download is a
client's fetch of ``adapter_config.json``, the file every loader reads first
(the Hub counts each GET or HEAD of a library's query file, PEFT's being
``adapter_config.json``). Weights and the card do not count, so a download
of a whole folder counts once, however many files it has. On the Hub
protocol huggingface_hub flags both requests of one ``hf_hub_download`` (a
HEAD, then the GET unless its cache has the file) with
``X-HF-Download-Counter``; the flagged HEAD counts, so one download is one,
cached or not. Unflagged requests (curl, a browser) count when they GET the
whole file. A client's repeated fetches of one repository within a minute
are one download: PEFT reads the config twice per load. The page's and the
REST API's file links count the same file, their .zip counts once. The
hub's own workers read files from storage; when one fetches from an
endpoint it sends ``X-LoraHub-Worker`` with a value only this hub can make
(``worker_headers``), and is not counted here.
"""

import hashlib
import hmac
import mimetypes

from django.conf import settings
from django.core.cache import caches
from django.http import FileResponse, Http404, HttpResponseRedirect, StreamingHttpResponse
from rest_framework.throttling import BaseThrottle

from modules import storage
from modules.models import Module
from modules.services import module_record_download
from modules.validation import ADAPTER_CONFIG

# The file whose fetch is one download of a module (PEFT's query file on the Hub).
COUNTED_FILE = ADAPTER_CONFIG
DOWNLOAD_COUNTER_HEADER = "X-HF-Download-Counter"
# PEFT reads adapter_config.json twice per load (for the adapter type, then the
# config), transformers config.json several times: a client's fetches of one
# repository this close together are one download.
REPEAT_WINDOW_SECONDS = 60
WORKER_HEADER = "X-LoraHub-Worker"


def _worker_marker() -> str:
    return hmac.new(settings.SECRET_KEY.encode(), b"lorahub-worker", hashlib.sha256).hexdigest()


def worker_headers() -> dict[str, str]:
    """Headers the hub's workers send with their fetches, so this hub does not count them."""
    return {WORKER_HEADER: _worker_marker()}


def is_hub_worker(request) -> bool:
    return hmac.compare_digest(request.headers.get(WORKER_HEADER, ""), _worker_marker())


def counts_as_download(request, *, whole_file: bool, repo_key: str) -> bool:
    """Whether this request for the counted file is a client's download (see the module doc).

    ``repo_key`` names the repository, for the window in which one client's
    fetches are one download.
    """
    if is_hub_worker(request):
        return False
    if DOWNLOAD_COUNTER_HEADER in request.headers:
        counted = request.method == "HEAD"
    else:
        counted = request.method == "GET" and whole_file
    return counted and _first_in_window(request, repo_key)


def _first_in_window(request, repo_key: str) -> bool:
    """True for a client's first counted fetch of the repository in ``REPEAT_WINDOW_SECONDS``.

    A client is its address (as the attempt limits see it, proxies included)
    and the credentials it sends, not its User-Agent: PEFT's two reads of one
    load send different ones. The key lives in the cache every web process shares.
    """
    client = f"{BaseThrottle().get_ident(request)}\0{request.headers.get('Authorization', '')}"
    digest = hashlib.sha256(client.encode()).hexdigest()[:32]
    key = f"download-window:{repo_key}:{digest}"
    return caches["throttle"].add(key, 1, timeout=REPEAT_WINDOW_SECONDS)


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

    Fetching ``adapter_config.json`` counts as a download; the other files do not.
    """
    file = module.files.filter(filename=filename).first()
    if file is None:
        raise Http404(f"{module.full_name} has no file {filename}")
    if filename == COUNTED_FILE:
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
