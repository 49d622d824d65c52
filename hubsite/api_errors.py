"""Errors on API paths are JSON with the reason, never a page or a redirect.

Clients of the Hugging Face Hub protocol (huggingface_hub, PEFT, git) read an
error from the ``X-Error-Code`` and ``X-Error-Message`` headers and the JSON
body's ``error``, and show that text in the exception they raise. Whatever
the hub does not serve on those paths (``/api/spaces``, a repository's
``refs``, ``git clone``) or refuses before a view runs (a method a route does
not take, a CSRF refusal, a crash) is answered that way too, and never with
Django's HTML page or its "append a slash" redirect, which a client would
follow to a page it cannot read. The REST API under ``/api/v1/`` keeps its
``{"detail": …}`` bodies and gains the headers.
"""

from __future__ import annotations

import json
import re

from django.http import HttpResponse, JsonResponse
from django.middleware.common import CommonMiddleware
from django.urls import Resolver404, resolve

from hubsite.text import printable

REST_API_PREFIX = "/api/v1/"
# Paths of the Hub protocol: its API, files of a repository (models, or the
# datasets and spaces the hub does not keep), and git's own requests.
HUB_PATHS = re.compile(
    r"^/(?:api/"
    r"|(?:(?:datasets|spaces)/)?[^/]+/[^/]+/(?:resolve|raw|blob|info/refs|info/lfs|git-upload-pack|git-receive-pack)(?:/|$)"
    r"|[^/]+/[^/]+\.git(?:/|$))"
)
NOT_SERVED = "NotServed"
# What Django's and DRF's handlers say about a path nothing serves.
GENERIC_NOT_FOUND = {"detail": "Not found."}
REASONS = {
    403: "This request was refused",
    404: "This hub does not serve",
    405: "This hub does not accept",
    500: "The hub failed to answer",
}


def is_api_path(path: str) -> bool:
    return bool(HUB_PATHS.match(path))


class ApiAwareCommonMiddleware(CommonMiddleware):
    """Django's CommonMiddleware, minus the "append a slash" redirect on API paths."""

    def should_redirect_with_slash(self, request) -> bool:
        if is_api_path(request.path_info):
            return False
        return super().should_redirect_with_slash(request)


class ApiErrorMiddleware:
    """Turn any error answer on an API path that does not say why into one that does."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400 or not is_api_path(request.path_info):
            return response
        if "X-Error-Message" in response:
            return response
        return _explained(request, response)


def _explained(request, response: HttpResponse) -> HttpResponse:
    rest_api = request.path_info.startswith(REST_API_PREFIX)
    body = _json_body(response)
    message = _message_in(body)
    if rest_api and body is not None and (body != GENERIC_NOT_FOUND or _routed(request)):
        # The REST API's own answer (field errors, ``detail``) stays as it is.
        detail = message or (body.get("detail") if isinstance(body, dict) else None)
        if isinstance(detail, str) and detail:
            response["X-Error-Message"] = _header_text(detail)
        return response
    # A body the client shows: ``error`` is the Hub's key, ``detail`` the REST API's.
    message = message or _default_message(request, response)
    replacement = JsonResponse(
        {"detail" if rest_api else "error": message}, status=response.status_code
    )
    for header in ("Allow", "Vary", "WWW-Authenticate", "Retry-After", "X-Repo-Commit"):
        if header in response:
            replacement[header] = response[header]
    response = replacement
    if response.status_code in (404, 405) and "X-Error-Code" not in response:
        response["X-Error-Code"] = NOT_SERVED
    response["X-Error-Message"] = _header_text(message)
    return response


def _header_text(text: str) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", text)[:500]


def _json_body(response: HttpResponse):
    if "json" not in response.get("Content-Type", "") or getattr(response, "streaming", False):
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _message_in(body) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("error", "detail"):
        if isinstance(body.get(key), str) and body != GENERIC_NOT_FOUND:
            return body[key]
    return ""


def _default_message(request, response: HttpResponse) -> str:
    status = response.status_code
    path = printable(request.path_info)
    reason = REASONS.get(status, "The hub refused")
    if status == 404:
        return f"{reason} {path}{_slash_hint(request.path_info)}"
    if status == 405:
        allowed = response.get("Allow", "")
        accepts = f"; it accepts {allowed}" if allowed else ""
        return f"{reason} {request.method} on {path}{accepts}"
    return f"{reason} {request.method} {path} (HTTP {status})"


def _routed(request) -> bool:
    """Whether a route serves the path (its "Not found." is about an object, not the path)."""
    try:
        resolve(request.path_info)
    except Resolver404:
        return False
    return True


def _slash_hint(path: str) -> str:
    """Where a REST API client most likely meant to go, when only the final slash differs."""
    if not path.startswith(REST_API_PREFIX):
        return ""
    other = path[:-1] if path.endswith("/") else path + "/"
    try:
        resolve(other)
    except Resolver404:
        return ""
    return f"; did you mean {printable(other)}?"
