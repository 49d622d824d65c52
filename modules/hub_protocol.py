"""The read side of the Hugging Face Hub's HTTP protocol.

With ``HF_ENDPOINT`` pointing at the hub, ``huggingface_hub``
(``hf_hub_download``, ``snapshot_download``, ``HfApi``) and what is built on
it (PEFT's ``PeftModel.from_pretrained``, transformers) read modules as Hub
repositories named ``owner/name``:

    GET       /api/models                                       list and search
    GET       /api/models/{owner}/{name}[/revision/{rev}]       repository info
    GET       /api/models/{owner}/{name}/tree/{rev}[/{path}]    file listing
    POST      /api/models/{owner}/{name}/paths-info/{rev}       info on some paths
    HEAD, GET /{owner}/{name}/resolve/{rev}/{path}              one file
    GET       /api/whoami-v2                                    the token's user

A module has a single revision. Its commit id is a hash of its file names
and contents, so it changes whenever a file does (an edited card), and
``main`` names it. Errors carry ``X-Error-Code`` (RepoNotFound,
RevisionNotFound, EntryNotFound), which the client turns into its typed
exceptions; PEFT relies on EntryNotFound to fall back from safetensors to
pickled weights. A private module is RepoNotFound for everyone but its owner.
Tokens are the REST API's, sent as ``Authorization: Bearer …``.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST, require_safe
from rest_framework.exceptions import AuthenticationFailed

from hubsite.authentication import BearerTokenAuthentication
from modules import cards, storage
from modules.models import BaseModel, Module, ModuleFile, Tag
from modules.selectors import module_get, module_ids_if_few, module_visible_to
from modules.services import module_record_download

DEFAULT_REVISION = "main"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
# Files the Hub keeps in Git LFS: weights by their suffix, anything else from 10 MB.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
LFS_MIN_BYTES = 10 * 1024 * 1024
# Files whose download counts as one download of the module (as the Hub
# counts weights, not the config and card clients read first).
COUNTED_SUFFIXES = (".safetensors", ".bin")
DOWNLOAD_COUNTER_HEADER = "X-HF-Download-Counter"
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
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


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
        response = JsonResponse({"error": self.message}, status=self.status)
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


def module_commit_sha(files) -> str:
    """The module's commit id: 40 hex digits, a hash of its file names and contents."""
    digest = hashlib.sha1(b"lorahub-module-revision\n", usedforsecurity=False)
    for file in sorted(files, key=lambda f: f.filename):
        digest.update(f"{file.filename}\0{file.sha256}\n".encode())
    return digest.hexdigest()


def _repo(request, owner: str, name: str, revision: str | None = None) -> Repo:
    user = hub_user(request)
    try:
        module = module_get(owner=owner, name=name, user=user)
    except Module.DoesNotExist as exc:
        # As on the Hub: 401 without credentials, 404 with; the same code for
        # a private module and a missing one, so neither can be told apart.
        status = 404 if user.is_authenticated else 401
        raise HubError(status, f"Repository {owner}/{name} not found", "RepoNotFound") from exc
    files = list(module.files.all())
    sha = module_commit_sha(files)
    if revision is not None and revision not in (DEFAULT_REVISION, "refs/heads/main", sha):
        raise HubError(
            404, f"Invalid rev id: {revision} (this hub has main, {sha})", "RevisionNotFound"
        )
    return Repo(module=module, files=files, sha=sha)


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


def repo_info(repo: Repo, *, blobs: bool = False, card_data: bool = True) -> dict:
    """What /api/models/{owner}/{name} answers, as the Hub's ``ModelInfo`` reads it.

    ``cardData`` is the front matter parsed when the card was stored; without
    ``card_data`` it is left out (and not read).
    """
    module = repo.module
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


@require_GET
@hub_view
def model_info(request, owner: str, name: str, revision: str | None = None):
    repo = _repo(request, owner, name, revision)
    info = repo_info(repo, blobs=_flag(request, "blobs"))
    expand = _expand_keys(request)
    if expand:
        info = _only(info, {"_id", "id", *expand})
    return JsonResponse(info)


def _tree_item(repo: Repo, file: ModuleFile, *, expand: bool) -> dict:
    item: dict = {"type": "file", "oid": _file_oid(file), "size": file.size, "path": file.filename}
    if _is_lfs(file):
        item["lfs"] = {
            "oid": file.sha256,
            "size": file.size,
            "pointerSize": len(_lfs_pointer(file)),
        }
    if expand:
        item["lastCommit"] = {
            "id": repo.sha,
            "title": f"{repo.module.full_name} as stored on the hub",
            "date": _hub_date(repo.module.updated_at),
        }
    return item


@require_GET
@hub_view
def model_tree(request, owner: str, name: str, revision: str, path_in_repo: str = ""):
    """The repository's files; a module is one flat folder, so a sub-path has nothing."""
    repo = _repo(request, owner, name, revision)
    if path_in_repo.strip("/"):
        raise _entry_not_found(repo, path_in_repo)
    expand = _flag(request, "expand")
    return JsonResponse([_tree_item(repo, f, expand=expand) for f in repo.files], safe=False)


@csrf_exempt  # a read: it changes nothing, whoever sends it
@require_POST
@hub_view
def paths_info(request, owner: str, name: str, revision: str):
    """Info on the listed paths that exist (``HfApi.get_paths_info``, ``HfFileSystem``)."""
    repo = _repo(request, owner, name, revision)
    expand = request.POST.get("expand", "").lower() in ("1", "true")
    wanted = request.POST.getlist("paths")
    items = [_tree_item(repo, f, expand=expand) for f in repo.files if f.filename in wanted]
    return JsonResponse(items, safe=False)


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


def _chunks(name: str, first: int, length: int) -> Iterator[bytes]:
    with storage.blob_open(name) as stream:
        stream.seek(first)
        while length > 0:
            chunk = stream.read(min(storage.CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def _counts_as_download(request, filename: str, size: int, byte_range) -> bool:
    """Whether this request is the one that counts a download of the weights.

    huggingface_hub flags every request of one ``hf_hub_download`` with
    ``X-HF-Download-Counter``: the HEAD, then the GET, which goes straight to
    the bucket when the hub redirects there. So the flagged HEAD counts
    (once per download, also when the client then finds the file in its
    cache, as the Hub counts). Other clients (browsers, curl, older
    huggingface_hub) count when they GET the whole file; a part of it (the
    rest of an interrupted download, a peek at the header) is not another
    download.
    """
    if not filename.endswith(COUNTED_SUFFIXES):
        return False
    flagged = DOWNLOAD_COUNTER_HEADER in request.headers
    if request.method == "HEAD":
        return flagged
    return not flagged and (byte_range is None or byte_range == (0, size - 1))


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
    if _counts_as_download(request, filename, file.size, byte_range):
        module_record_download(module=repo.module)

    headers = {
        "X-Repo-Commit": repo.sha,
        "ETag": f'"{file.sha256}"',
        "X-Linked-Etag": f'"{file.sha256}"',
        "X-Linked-Size": str(file.size),
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{file.filename}"',
    }
    url = (
        storage.blob_url(file.storage_path, content_disposition=headers["Content-Disposition"])
        if _is_lfs(file)
        else None
    )
    if url:
        response = HttpResponseRedirect(url)
    else:
        first, last = byte_range or (0, file.size - 1)
        length = max(last - first + 1, 0)
        status = 206 if byte_range else 200
        content_type = mimetypes.guess_type(file.filename)[0] or "application/octet-stream"
        if request.method == "HEAD":
            response = HttpResponse(status=status, content_type=content_type)
        else:
            response = StreamingHttpResponse(
                _chunks(file.storage_path, first, length), status=status, content_type=content_type
            )
        response["Content-Length"] = str(length)
        if byte_range:
            response["Content-Range"] = f"bytes {first}-{last}/{file.size}"
    for header, value in headers.items():
        response[header] = value
    return response


# --- Lists --------------------------------------------------------------------------


def hub_model_search(
    *,
    user,
    search: str = "",
    author: str = "",
    filters: list[str] | None = None,
    sort: str = "",
    ascending: bool = False,
) -> QuerySet[Module]:
    """Modules the user may see, filtered and ordered as the Hub's /api/models does.

    ``search`` is a substring of ``owner/name``; every ``filters`` entry must
    match: a tag, a pipeline tag, ``base_model:…``, ``license:…``, or one of
    the tags all modules carry (peft, lora, safetensors).
    """
    modules = module_visible_to(user)
    if search:
        modules = modules.filter(_repo_id_contains(search))
    if author:
        modules = modules.filter(owner__username=author)
    for value in filters or []:
        modules = modules.filter(_filter_condition(value))
    few = module_ids_if_few(modules) if search else None
    if few is not None:
        modules = module_visible_to(user).filter(pk__in=few)
    field = LIST_SORTS.get(sort, "download_count")
    order = (field, "id") if ascending else (f"-{field}", "-id")
    return modules.order_by(*order).prefetch_related("tags", "files")


def _repo_id_contains(search: str) -> Q:
    """``owner/name`` contains ``search`` (any case), said in terms indexes answer.

    Neither a user name nor a module name has a slash, so a search without
    one is part of either name, and ``a/b`` is an owner whose name ends with
    ``a`` and a module whose name starts with ``b``. Matching the joined
    ``owner/name`` instead would read every module.
    """
    owner_end, slash, name_start = search.partition("/")
    if slash:
        if "/" in name_start:
            return Q(pk__in=[])
        return Q(owner__username__iendswith=owner_end, name__istartswith=name_start)
    owners = get_user_model().objects.filter(username__icontains=search).values_list("pk")
    owner_ids = [pk for (pk,) in owners[: OWNER_IDS_INLINE + 1]]
    # A short list of owners is written out, so the owner index can answer it.
    by_owner = Q(owner__in=owners) if len(owner_ids) > OWNER_IDS_INLINE else Q(owner__in=owner_ids)
    return Q(name__icontains=search) | by_owner


def _filter_condition(value: str) -> Q:
    for prefix in ("base_model:adapter:", "base_model:"):
        if value.startswith(prefix):
            return Q(base_model__identifier__iexact=value[len(prefix) :])
    if value.startswith("license:"):
        return Q(license__iexact=value[len("license:") :])
    if value.lower() in UNIVERSAL_TAGS:
        return Q()
    slug = cards.normalize_tag(value)
    # By the tag's id, so the planner knows how common that tag is.
    tag_id = Tag.objects.filter(slug=slug).values_list("pk", flat=True).first()
    tagged = Q(pk__in=Module.tags.through.objects.filter(tag_id=tag_id).values("module_id"))
    tagged = tagged if tag_id else Q(pk__in=[])
    task_types = [task for task, tag in PIPELINE_TAGS.items() if tag == value]
    return Q(tagged) | Q(task_type__in=task_types) if task_types else Q(tagged)


@require_GET
@hub_view
def model_list(request):
    """Modules as /api/models lists them, a page at a time with a ``Link`` to the next."""
    try:
        limit = min(max(int(request.GET.get("limit") or LIST_PAGE_MAX), 1), LIST_PAGE_MAX)
        offset = max(int(request.GET.get("offset") or 0), 0)
    except ValueError as exc:
        raise HubError(400, "limit and offset must be whole numbers") from exc
    modules = hub_model_search(
        user=hub_user(request),
        search=request.GET.get("search", "").strip(),
        author=request.GET.get("author", "").strip(),
        filters=request.GET.getlist("filter"),
        sort=request.GET.get("sort", ""),
        ascending=request.GET.get("direction") == "1",
    )
    expand = _expand_keys(request)
    if expand:
        keys = {"_id", "id", *expand}
    else:
        keys = set(FULL_LIST_KEYS if _flag(request, "full") else LIST_KEYS)
        if _flag(request, "cardData") or _flag(request, "full"):
            keys.add("cardData")
    # As on the Hub, card data only when asked for: cards are never read otherwise.
    with_card_data = "cardData" in keys
    unread = ("card", "search_vector") if with_card_data else ("card", "card_data", "search_vector")
    page = list(modules.defer(*unread)[offset : offset + limit + 1])
    items = []
    for module in page[:limit]:
        files = list(module.files.all())
        repo = Repo(module=module, files=files, sha=module_commit_sha(files))
        items.append(_only(repo_info(repo, card_data=with_card_data), keys))
    response = JsonResponse(items, safe=False)
    if len(page) > limit:
        query = request.GET.copy()
        query["offset"] = str(offset + limit)
        # QueryDict's own encoding keeps every value of repeated parameters (filter=…).
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        response["Link"] = f'<{next_url}>; rel="next"'
    return response


@require_GET
@hub_view
def whoami(request):
    """The token's user, as ``huggingface_hub.whoami`` and ``login`` read it."""
    user = hub_user(request)
    if not user.is_authenticated:
        raise HubError(401, INVALID_CREDENTIALS)
    token_used = request.headers.get("Authorization", "") != ""
    return JsonResponse(
        {
            "type": "user",
            "id": str(user.pk),
            "name": user.get_username(),
            "fullname": user.get_full_name() or user.get_username(),
            "email": user.email or None,
            "isPro": False,
            "canPay": False,
            "orgs": [],
            "auth": {
                "type": "access_token" if token_used else "session",
                "accessToken": {"displayName": "LoraHub API token", "role": "write"},
            },
        }
    )


urlpatterns = [
    path("api/whoami-v2", whoami, name="hub-whoami"),
    path("api/models", model_list, name="hub-model-list"),
    path("api/models/<str:owner>/<str:name>", model_info, name="hub-model-info"),
    path(
        "api/models/<str:owner>/<str:name>/revision/<path:revision>",
        model_info,
        name="hub-model-info-revision",
    ),
    path(
        "api/models/<str:owner>/<str:name>/tree/<str:revision>", model_tree, name="hub-model-tree"
    ),
    path(
        "api/models/<str:owner>/<str:name>/tree/<str:revision>/<path:path_in_repo>",
        model_tree,
        name="hub-model-tree-path",
    ),
    path(
        "api/models/<str:owner>/<str:name>/paths-info/<str:revision>",
        paths_info,
        name="hub-paths-info",
    ),
    path(
        "<str:owner>/<str:name>/resolve/<str:revision>/<path:filename>",
        resolve_file,
        name="hub-resolve",
    ),
]
