"""Repositories through the Hub protocol: create, delete, settings, README checks, history.

Writes take the user's API token only (``Authorization: Bearer …``), never the
browser's session, which is why they need no CSRF token. Refusals are the
registry's own messages, as JSON ``error`` and ``X-Error-Message``, which
huggingface_hub puts in the exception it raises.
"""

from __future__ import annotations

import contextlib
import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from modules import services
from modules.hub_protocol.common import HubError, _hub_date, _repo, hub_user, hub_view
from modules.models import Module
from modules.selectors import module_history
from modules.services import ModuleDuplicate
from modules.services.common import parse_card
from modules.validation import AdapterInvalid

TOKEN_NEEDED = "Writes need your API token: log in with `hf auth login` or set HF_TOKEN."


def writer(request):
    """The user a write speaks for: only a token counts (a session would need CSRF checks)."""
    if not request.headers.get("Authorization"):
        raise HubError(401, TOKEN_NEEDED)
    user = hub_user(request)
    if not user.is_authenticated:
        raise HubError(401, TOKEN_NEEDED)
    return user


def json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HubError(400, "The request body is not JSON.") from exc
    if not isinstance(body, dict):
        raise HubError(400, "The request body must be a JSON object.")
    return body


def validation_text(error: ValidationError) -> str:
    """The registry's messages on one line; a field other than the files is named."""
    if not hasattr(error, "error_dict"):
        return " ".join(error.messages)
    parts = []
    for field, messages in error.message_dict.items():
        prefix = "" if field in ("files", "__all__") else f"{field}: "
        parts.extend(prefix + message for message in messages)
    return "; ".join(parts)


@contextlib.contextmanager
def refusals_answered():
    """The services' refusals as the Hub's errors, with the status each deserves."""
    try:
        yield
    except PermissionDenied as exc:
        raise HubError(403, str(exc)) from exc
    except services.RepositoryMissing as exc:
        raise HubError(404, str(exc), "RepoNotFound") from exc
    except services.FileMissing as exc:
        raise HubError(404, str(exc), "EntryNotFound") from exc
    except (services.RepositoryExists, services.RevisionMoved, ModuleDuplicate) as exc:
        raise HubError(409, str(exc)) from exc
    except ValidationError as exc:
        raise HubError(400, validation_text(exc)) from exc


def _only_models(body: dict) -> None:
    repo_type = body.get("type") or "model"
    if repo_type != "model":
        raise HubError(400, f"This hub holds models (PEFT adapters) only, not {repo_type}s.")


def _target(user, body: dict) -> tuple[str, str]:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HubError(400, "Give the repository's name.")
    owner = body.get("organization") or user.get_username()
    return str(owner), name


def _visibility(body: dict) -> str | None:
    if isinstance(body.get("visibility"), str):
        return body["visibility"]
    if body.get("private") is not None:
        return Module.Visibility.PRIVATE if body["private"] else Module.Visibility.PUBLIC
    return None


@csrf_exempt
@require_POST
@hub_view
def repo_create(request):
    """``HfApi.create_repo``: an empty repository, a module once its first push is valid."""
    user = writer(request)
    body = json_body(request)
    _only_models(body)
    owner, name = _target(user, body)
    url = request.build_absolute_uri(f"/{owner}/{name}")
    try:
        with refusals_answered():
            services.repository_create(
                user=user,
                owner=owner,
                name=name,
                visibility=_visibility(body) or Module.Visibility.PUBLIC,
            )
    except HubError as error:
        response = error.response()
        if error.status == 409:
            # create_repo(exist_ok=True) reads the existing repository's URL from the 409.
            response.content = json.dumps({"error": error.message, "url": url})
        return response
    return JsonResponse({"url": url, "name": f"{owner}/{name}", "id": f"{owner}/{name}"})


@csrf_exempt
@require_http_methods(["DELETE"])
@hub_view
def repo_delete(request):
    """``HfApi.delete_repo``: the module, every commit of it, and its files no other uses."""
    user = writer(request)
    body = json_body(request)
    _only_models(body)
    owner, name = _target(user, body)
    with refusals_answered():
        repository = services.repository_for_write(user=user, owner=owner, name=name)
        services.repository_delete(repository=repository)
    return JsonResponse({})


@csrf_exempt
@require_http_methods(["PUT"])
@hub_view
def repo_settings(request, owner: str, name: str):
    """``HfApi.update_repo_settings``: visibility (``private`` or ``visibility``)."""
    user = writer(request)
    body = json_body(request)
    if body.get("gated") not in (None, False):
        raise HubError(400, "This hub does not gate repositories: make it private instead.")
    visibility = _visibility(body)
    with refusals_answered():
        repository = services.repository_for_write(user=user, owner=owner, name=name)
        if visibility is not None:
            services.repository_set_visibility(repository=repository, visibility=visibility)
    return JsonResponse({})


@csrf_exempt
@require_POST
@hub_view
def validate_yaml(request):
    """The README's front matter, checked as an upload's card is, before files are sent."""
    content = json_body(request).get("content", "")
    if not isinstance(content, str):
        raise HubError(400, "content must be the README's text.")
    try:
        parse_card(content)
    except AdapterInvalid as exc:
        messages = exc.messages()
        return JsonResponse(
            {"errors": [{"message": m} for m in messages], "warnings": []}, status=400
        )
    return JsonResponse({"errors": [], "warnings": []})


@require_GET
@hub_view
def repo_commits(request, owner: str, name: str, revision: str):
    """``HfApi.list_repo_commits``: the history up to ``revision``, newest first."""
    repo = _repo(request, owner, name, revision)
    commits = module_history(module=repo.module, until=repo.sha)
    return JsonResponse(
        [
            {
                "id": commit.commit_id,
                "title": commit.message,
                "message": commit.description,
                "authors": [{"user": commit.author.get_username() if commit.author else ""}],
                "date": _hub_date(commit.created_at),
            }
            for commit in commits
        ],
        safe=False,
    )
