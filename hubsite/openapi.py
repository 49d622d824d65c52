"""The API's OpenAPI schema: every operation also lists the errors it can answer.

drf-spectacular describes what a view returns when it succeeds. The hub's
answers to bad requests follow rules that hold for every view, so they are
added here rather than repeated on each one:

- 401 everywhere: a token that is sent but unknown is refused on any operation;
- 403 for writes (not the owner, a session without its CSRF token);
- 404 where a path names something (a module, a job) and on paged lists (a
  page past the end);
- 400 where the operation reads query parameters or a body;
- 413 where it reads a body (too large for the hub's limits, hubsite/errors.py);
- 429 where the view limits attempts (the token endpoint).

Views declare what only they answer (409 on a finished job, 429 on too many
jobs) with ``extend_schema``; what they declare is kept.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField(help_text="what was wrong, in words")


# DRF's validation errors: messages per field (a list of strings, or nested like
# the input), or "detail" / "non_field_errors" for the request as a whole.
FIELD_ERRORS = {
    "type": "object",
    "description": "messages per field, or `detail` for the request as a whole",
    "additionalProperties": {},
    "example": {"name": ["Remove the spaces or line breaks before or after the name."]},
}
RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "seconds to wait before trying again",
    }
}
ERROR_DESCRIPTIONS = {
    400: "the request is invalid",
    401: "an unknown token, or none where one is needed",
    403: "not allowed: not the owner, or a session without its CSRF token",
    404: "not found (private modules and jobs of others are not found either)",
    413: "the body is larger than the hub accepts",
    429: "too many attempts or jobs; try again after Retry-After seconds",
}


def error(description: str) -> OpenApiResponse:
    """An error answer (``{"detail": …}``) for ``extend_schema``: a 409, a view's own 429…"""
    return OpenApiResponse(ErrorOutput, description=description)


def field_errors(description: str = ERROR_DESCRIPTIONS[400], **kwargs) -> OpenApiResponse:
    """A 400 with messages per field, for ``extend_schema``."""
    return OpenApiResponse(FIELD_ERRORS, description=description, **kwargs)


class HubAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for status in self._error_statuses(operation):
            if str(status) not in responses:
                responses[str(status)] = self._error_response(status)
        if "429" in responses:
            responses["429"].setdefault("headers", {}).update(RETRY_AFTER)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_statuses(self, operation: dict) -> set[int]:
        places = {parameter["in"] for parameter in operation.get("parameters", [])}
        has_body = "requestBody" in operation
        statuses = {401}
        if self.method in WRITE_METHODS:
            statuses.add(403)
        if "path" in places or (self.method == "GET" and self._get_paginator() is not None):
            statuses.add(404)
        if "query" in places or has_body:
            statuses.add(400)
        if has_body:
            statuses.add(413)
        if getattr(self.view, "throttle_classes", None):
            statuses.add(429)
        return statuses

    def _error_response(self, status: int) -> dict:
        description = ERROR_DESCRIPTIONS[status]
        response = field_errors(description) if status == 400 else error(description)
        return self._get_response_for_code(response, str(status), ["application/json"])
