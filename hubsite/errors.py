"""How the hub answers errors: JSON under /api/, pages elsewhere, always with the reason.

Django refuses some requests before any view runs, while it reads their body:
too many files (``DATA_UPLOAD_MAX_NUMBER_FILES``), too many fields
(``DATA_UPLOAD_MAX_NUMBER_FIELDS``), form fields over
``DATA_UPLOAD_MAX_MEMORY_SIZE``, an upload over ``HUB_MAX_UPLOAD_BYTES``, a
malformed multipart body. Its own answer is a bare "Bad Request (400)" page,
which an API client cannot parse and a person cannot act on. The handlers
here (``handler400``… in hubsite/urls.py) say what was wrong: ``{"detail": …}``
for the API and the Hugging Face protocol, a page for the site, and 413 for
what is too large.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views import defaults

from hubsite.text import printable
from hubsite.wording import field_label, naming_the_field
from modules.uploads import UploadTooLarge, format_bytes

API_PREFIX = "/api/"
TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    413: "Request too large",
    500: "Something went wrong",
}


def is_api_request(request) -> bool:
    """Whether the request is for a JSON API: the hub's REST API or the Hub protocol."""
    return request.path.startswith(API_PREFIX)


def refusal(exception: Exception | None) -> tuple[int, str]:
    """The status and the words for a request Django refused while reading it."""
    if isinstance(exception, UploadTooLarge):
        return 413, str(exception.detail)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return 413, (
            f"The request's fields other than files are larger than {format_bytes(limit)} "
            f"({limit} bytes); send long text, such as many examples, as a file."
        )
    if isinstance(exception, TooManyFilesSent):
        return 400, (
            f"The request sends more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files, "
            "the most one request may carry."
        )
    if isinstance(exception, TooManyFieldsSent):
        return 400, (
            f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields or "
            "parameters, the most one request may carry."
        )
    if isinstance(exception, MultiPartParserError):
        return 400, f"The multipart body could not be read: {printable(str(exception))}."
    return 400, "The hub could not read this request."


def error_response(request, status: int, message: str, *, title: str = ""):
    """``{"detail": message}`` for the API; elsewhere the error page."""
    if is_api_request(request):
        return JsonResponse({"detail": message}, status=status)
    context = {
        "title": title or TITLES.get(status, "Error"),
        "message": message,
        # A refused request may be sent again from its page; a missing page may not.
        "retry": status in (400, 413),
    }
    return render(request, "error.html", context, status=status)


def bad_request(request, exception=None):
    """``handler400``: what Django refused while reading the request, and why."""
    status, message = refusal(exception)
    return error_response(request, status, message)


def page_not_found(request, exception=None):
    """``handler404``: JSON for the API; the site's page, with its header and search.

    A private module seen by anyone but its owner gets the same words as a
    module that does not exist.
    """
    if is_api_request(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    message = f"There is nothing at {printable(request.path)}. Search for a module, or start again."
    return error_response(request, 404, message)


def permission_denied(request, exception=None):
    if is_api_request(request):
        return JsonResponse({"detail": "You do not have permission to do this."}, status=403)
    return error_response(request, 403, "You do not have permission to do this.")


def server_error(request):
    if is_api_request(request):
        return JsonResponse({"detail": "A server error occurred."}, status=500)
    message = "The hub could not answer this request. Try again in a moment."
    try:
        return error_response(request, 500, message)
    except Exception:
        # What broke the page may break the site's frame too (the database, say).
        return defaults.server_error(request)


def api_exception_handler(exception, context):
    """DRF's handler, with user input in messages made printable (names come from URLs),
    and the stock validation messages as sentences naming their field."""
    from rest_framework.exceptions import ValidationError
    from rest_framework.views import exception_handler

    response = exception_handler(exception, context)
    if response is not None and response.data is not None:
        response.data = _printable_data(response.data)
        if isinstance(exception, ValidationError) and isinstance(response.data, dict):
            response.data = {
                field: _naming(messages, field_label(field))
                for field, messages in response.data.items()
            }
    return response


def _naming(messages, label: str):
    """Field errors with stock messages named after the field; list items by their number."""
    if isinstance(messages, str):
        return naming_the_field(messages, label)
    if isinstance(messages, list):
        return [_naming(message, label) for message in messages]
    if isinstance(messages, dict):
        return {key: _naming(value, _item_label(key, label)) for key, value in messages.items()}
    return messages


def _printable_data(data):
    if isinstance(data, str):
        return printable(data)
    if isinstance(data, dict):
        return {key: _printable_data(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_printable_data(value) for value in data]
    return data


def _item_label(key, label: str) -> str:
    """The label of a list item (DRF keys them by index) or of a nested field."""
    if isinstance(key, int) or str(key).isdigit():
        return f"Item {int(key) + 1} of {label.lower()}"
    return field_label(str(key))


def server_folders() -> list[Path]:
    """Folders of this server whose paths mean nothing to users (and tell attackers much)."""
    folders = [
        settings.JOB_WORK_DIR,
        settings.FILE_UPLOAD_TEMP_DIR,
        settings.MODEL_CACHE_DIR,
        settings.MEDIA_ROOT,
        settings.VAR_DIR,
        settings.BASE_DIR,
        tempfile.gettempdir(),
    ]
    # Longest first, so a folder inside another is matched whole.
    return sorted({Path(folder) for folder in folders}, key=lambda p: -len(str(p)))


def without_server_paths(text: str) -> str:
    """``text`` with each path inside a server folder cut to its last name.

    A job's error ("No such file or directory: '/srv/var/job-work/
    composition-3-x1/adapter_config.json'") then names the file the user
    knows ('adapter_config.json'), not where the server keeps it.
    """
    for folder in server_folders():
        pattern = re.escape(str(folder)) + r"(?=[/\s'\"]|$)(?:/[^\s'\"]*)?"
        text = re.sub(pattern, lambda match: _last_name(match[0]), text)
    return text


def _last_name(path: str) -> str:
    return Path(path).name or "."


def public_message(text: str) -> str:
    """An error message as users may see it: no server paths, no control characters."""
    return printable(without_server_paths(text))
