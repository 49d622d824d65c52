"""Constants, errors and credentials, and the repository view of a module."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps

from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from rest_framework.exceptions import AuthenticationFailed

from hubsite.authentication import BearerTokenAuthentication
from hubsite.text import printable
from modules import storage
from modules.models import BaseModel, EmptyRepository, Module, ModuleCommit, ModuleFile
from modules.selectors import module_get
from modules.services.revisions import module_commit_sha

DEFAULT_REVISION = "main"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
# Files the Hub keeps in Git LFS: weights by their suffix, anything else from 10 MB.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
LFS_MIN_BYTES = 10 * 1024 * 1024
LIST_PAGE_MAX = 1000
LIST_SORTS = {
    "downloads": "download_count",
    "likes": "like_count",
    "createdAt": "created_at",
    "created_at": "created_at",
    "lastModified": "updated_at",
    "last_modified": "updated_at",
    # The hub keeps no trend; the most downloaded come first instead.
    "trendingScore": "download_count",
    "trending_score": "download_count",
}
PIPELINE_TAGS = {
    BaseModel.TaskType.CAUSAL_LM: "text-generation",
    BaseModel.TaskType.SEQ_2_SEQ_LM: "text2text-generation",
}
# Tags every module carries: the filters that select them all.
UNIVERSAL_TAGS = frozenset({"peft", "lora", "safetensors"})
# Owners whose names contain a search, up to which their ids go into the query.
OWNER_IDS_INLINE = 1000
# What /api/models returns per module unless asked for more (as the Hub does).
LIST_KEYS = (
    "_id", "id", "modelId", "author", "private", "downloads", "likes", "tags",
    "pipeline_tag", "library_name", "createdAt", "lastModified",
)  # fmt: skip
FULL_LIST_KEYS = (*LIST_KEYS, "sha", "siblings", "gated", "disabled")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)\Z")


# --- Errors and credentials ---------------------------------------------------------


class HubError(Exception):
    """An error answered the Hub's way: JSON body, ``X-Error-Code`` and ``X-Error-Message``."""

    def __init__(self, status: int, message: str, code: str = "", headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}

    def response(self) -> HttpResponse:
        response = JsonResponse({"error": printable(self.message)}, status=self.status)
        if self.code:
            response["X-Error-Code"] = self.code
        response["X-Error-Message"] = _header_text(self.message)
        for name, value in self.headers.items():
            response[name] = value
        return response


def _header_text(text: str) -> str:
    """Text safe in a header: names in messages come from the URL, which anyone writes."""
    return re.sub(r"[^\x20-\x7e]", "?", text)[:500]


def hub_view(view: Callable) -> Callable:
    """Answer ``HubError`` as the Hub does; responses depend on the token, so say so."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            response = view(request, *args, **kwargs)
        except HubError as error:
            response = error.response()
        patch_vary_headers(response, ["Authorization"])
        return response

    return wrapped


def hub_user(request):
    """The user a request speaks for: its API token (Bearer or Token), else its session.

    A token that is sent but unknown is an error, not anonymity, so a client
    with a stale token is told so instead of seeing "not found".
    """
    keyword, _, key = request.headers.get("Authorization", "").partition(" ")
    if keyword.lower() in ("bearer", "token"):
        try:
            user, _ = BearerTokenAuthentication().authenticate_credentials(key.strip())
        except AuthenticationFailed as exc:
            raise HubError(401, INVALID_CREDENTIALS) from exc
        return user
    return request.user


# --- Repositories ---------------------------------------------------------------


@dataclass(frozen=True)
class Repo:
    """A module seen as a Hub repository at its one revision."""

    module: Module
    files: list[ModuleFile]
    sha: str

    def file(self, filename: str) -> ModuleFile | None:
        return next((f for f in self.files if f.filename == filename), None)


def _repo(request, owner: str, name: str, revision: str | None = None) -> Repo:
    user = hub_user(request)
    try:
        module = module_get(owner=owner, name=name, user=user)
    except Module.DoesNotExist as exc:
        # As on the Hub: 401 without credentials, 404 with; the same code for
        # a private module and a missing one, so neither can be told apart.
        status = 404 if user.is_authenticated else 401
        if _is_own_empty_repository(user, owner, name):
            # What a client reads before its first push (PEFT looks for a README to extend).
            raise HubError(
                404,
                f"Entry not found: {owner}/{name} is empty until its first push",
                "EntryNotFound",
            ) from exc
        raise HubError(status, f"Repository {owner}/{name} not found", "RepoNotFound") from exc
    files, sha = _revision_files(module, revision)
    return Repo(module=module, files=files, sha=sha)


def _is_own_empty_repository(user, owner: str, name: str) -> bool:
    return (
        user.is_authenticated
        and user.get_username() == owner
        and EmptyRepository.objects.filter(owner=user, name__iexact=name).exists()
    )


def _revision_files(module: Module, revision: str | None) -> tuple[list, str]:
    """The files and commit id of ``revision``: main (the newest commit) or a commit id."""
    if revision is None or revision in (DEFAULT_REVISION, "refs/heads/main", module.revision):
        files = list(module.files.all())
        return files, module.revision or module_commit_sha(files)
    commit = ModuleCommit.objects.filter(module=module, commit_id=revision.lower()).first()
    if commit is None:
        raise HubError(
            404,
            f"Invalid rev id: {revision} ({module.full_name} has main and the commits of its "
            "history)",
            "RevisionNotFound",
        )
    return list(commit.files.all()), commit.commit_id


def _entry_not_found(repo: Repo, filename: str) -> HubError:
    # The commit lets the client remember the miss for this revision.
    return HubError(
        404,
        f"Entry not found: {repo.module.full_name} has no file {filename}",
        "EntryNotFound",
        headers={"X-Repo-Commit": repo.sha},
    )


def _is_lfs(file: ModuleFile) -> bool:
    return file.filename.endswith(LFS_SUFFIXES) or file.size >= LFS_MIN_BYTES


def _lfs_pointer(file: ModuleFile) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{file.sha256}\nsize {file.size}\n"
    ).encode()


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _file_oid(file: ModuleFile) -> str:
    """The git blob id the Hub gives a file: of its LFS pointer, or of its content.

    Only small files are read for it, once per content (the cache is keyed by
    sha256, so an entry never goes stale).
    """
    if _is_lfs(file):
        return _git_blob_oid(_lfs_pointer(file))

    def from_content() -> str:
        with storage.blob_open(file.storage_path) as stream:
            return _git_blob_oid(stream.read())

    return cache.get_or_set(f"hub-protocol:git-oid:{file.sha256}", from_content, None)


def _hub_date(value: datetime) -> str:
    """The Hub's date format: UTC, milliseconds, a trailing Z."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _repo_tags(module: Module, tag_slugs: list[str]) -> list[str]:
    base = module.base_model.identifier
    tags = ["peft", "safetensors", "lora", *tag_slugs, PIPELINE_TAGS.get(module.task_type, "")]
    tags += [f"base_model:{base}", f"base_model:adapter:{base}"]
    tags += [f"dataset:{dataset}" for dataset in module.datasets]
    if module.license:
        tags.append(f"license:{module.license}")
    return list(dict.fromkeys(tag for tag in tags if tag))


def _sibling(file: ModuleFile, *, blobs: bool) -> dict:
    sibling: dict = {"rfilename": file.filename}
    if blobs:
        sibling["size"] = file.size
        sibling["blobId"] = _file_oid(file)
        if _is_lfs(file):
            sibling["lfs"] = {
                "size": file.size,
                "sha256": file.sha256,
                "pointerSize": len(_lfs_pointer(file)),
            }
    return sibling


def repo_info(
    repo: Repo, *, blobs: bool = False, card_data: bool = True, tag_slugs: list[str] | None = None
) -> dict:
    """What /api/models/{owner}/{name} answers, as the Hub's ``ModelInfo`` reads it.

    ``cardData`` is the front matter parsed when the card was stored; without
    ``card_data`` it is left out (and not read). ``tag_slugs``: the module's
    tags, when a list has already read them (else they are read here).
    """
    module = repo.module
    if tag_slugs is None:
        tag_slugs = [tag.slug for tag in module.tags.all()]
    info = {
        "_id": str(module.pk),
        "id": module.full_name,
        "modelId": module.full_name,
        "author": module.owner.username,
        "sha": repo.sha,
        "lastModified": _hub_date(module.updated_at),
        "createdAt": _hub_date(module.created_at),
        "private": not module.is_public,
        "gated": False,
        "disabled": False,
        "downloads": module.download_count,
        "downloadsAllTime": module.download_count,
        "likes": module.like_count,
        "library_name": "peft",
        "pipeline_tag": PIPELINE_TAGS.get(module.task_type),
        "tags": _repo_tags(module, tag_slugs),
        "siblings": [_sibling(file, blobs=blobs) for file in repo.files],
        "spaces": [],
        "usedStorage": module.total_size,
    }
    if card_data:
        info["cardData"] = module.card_data
    return info


def _only(info: dict, keys) -> dict:
    return {key: value for key, value in info.items() if key in keys}


def _expand_keys(request) -> list[str]:
    return request.GET.getlist("expand") or request.GET.getlist("expand[]")


def _flag(request, name: str) -> bool:
    return request.GET.get(name, "").lower() in ("1", "true", "yes")
