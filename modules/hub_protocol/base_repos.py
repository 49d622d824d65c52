"""Base models served as Hub repositories, so a module's base loads from the hub too.

A registered base model whose weights are a local folder here (the embedded
SmolLM2, converted by ``install_demo``) answers at its own Hub id, such as
``HuggingFaceTB/SmolLM2-135M-Instruct``: repository info, file listing,
paths-info and resolve, so ``AutoModelForCausalLM.from_pretrained(id)`` and
``AutoTokenizer.from_pretrained(id)`` work with ``HF_ENDPOINT`` set to the
hub. It is a plain transformers repository owned by its Hub namespace, not a
module: the registry's lists never show it, nor does ``/api/models``, which
lists the registry's adapters (``/api/v1/base-models/`` lists base models).
Its ``README.md`` is written by the hub and says how the weights were made
(a converted GGUF file is not the official release). A base model takes
precedence over a module of the same name, so a user cannot stand in for
it. Downloads count fetches of its ``config.json`` (``modules.downloads``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from django.core.cache import cache
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST, require_safe

from modules.base_model_cards import base_model_card
from modules.cards import parse_card
from modules.downloads import counts_as_download, file_content_type
from modules.hub_protocol.common import (
    DEFAULT_REVISION,
    PIPELINE_TAGS,
    HubError,
    _expand_keys,
    _flag,
    _git_blob_oid,
    _hub_date,
    _is_lfs,
    _lfs_pointer,
    _only,
    hub_view,
    module_commit_sha,
)
from modules.hub_protocol.files import _byte_range, range_chunks
from modules.models import BaseModel
from modules.services import (
    base_model_local_folder,
    base_model_record_download,
    base_model_served_files,
)

CARD = "README.md"
COUNTED_FILE = "config.json"


@dataclass(frozen=True)
class BaseFile:
    filename: str
    size: int
    sha256: str
    path: Path | None = None  # None: written by the hub (the card), in ``content``
    content: bytes = b""


@dataclass(frozen=True)
class BaseRepo:
    base_model: BaseModel
    files: list[BaseFile]
    sha: str
    card: str

    def file(self, filename: str) -> BaseFile | None:
        return next((f for f in self.files if f.filename == filename), None)


def served_base_model(owner: str, name: str) -> BaseModel | None:
    base_model = BaseModel.objects.filter(identifier=f"{owner}/{name}").first()
    if base_model is None or base_model_local_folder(base_model) is None:
        return None
    return base_model


def or_base_model(module_view: Callable, base_view: Callable) -> Callable:
    """A Hub view that answers for a served base model when ``owner/name`` is one."""

    @wraps(module_view)
    def view(request, owner: str, name: str, *args, **kwargs):
        base_model = served_base_model(owner, name)
        if base_model is None:
            return module_view(request, owner, name, *args, **kwargs)
        return base_view(request, base_model, *args, **kwargs)

    return view


def _repo(base_model: BaseModel, revision: str | None) -> BaseRepo:
    folder = base_model_local_folder(base_model)
    served = base_model_served_files(base_model, folder)
    files = [
        BaseFile(name, entry["size"], entry["sha256"], path=folder / name)
        for name, entry in served.items()
        if name != CARD
    ]
    card = base_model_card(base_model, folder).encode()
    files.append(BaseFile(CARD, len(card), hashlib.sha256(card).hexdigest(), content=card))
    files.sort(key=lambda f: f.filename)
    sha = module_commit_sha(files)
    if revision is not None and revision not in (DEFAULT_REVISION, "refs/heads/main", sha):
        raise HubError(
            404, f"Invalid rev id: {revision} (this hub has main, {sha})", "RevisionNotFound"
        )
    return BaseRepo(base_model=base_model, files=files, sha=sha, card=card.decode())


def _entry_not_found(repo: BaseRepo, filename: str) -> HubError:
    return HubError(
        404,
        f"Entry not found: {repo.base_model.identifier} has no file {filename}",
        "EntryNotFound",
        headers={"X-Repo-Commit": repo.sha},
    )


def _oid(file: BaseFile) -> str:
    """The git blob id, as for a module's files; small files are read once per content."""
    if _is_lfs(file):
        return _git_blob_oid(_lfs_pointer(file))

    def from_content() -> str:
        return _git_blob_oid(file.content if file.path is None else file.path.read_bytes())

    return cache.get_or_set(f"hub-protocol:git-oid:{file.sha256}", from_content, None)


def _config(repo: BaseRepo) -> dict:
    config_file = repo.file(COUNTED_FILE)
    try:
        config = json.loads(config_file.path.read_bytes()) if config_file else {}
    except ValueError:
        return {}
    return {key: config[key] for key in ("architectures", "model_type") if key in config}


@require_GET
@hub_view
def base_model_info(request, base_model: BaseModel, revision: str | None = None):
    repo = _repo(base_model, revision)
    blobs = _flag(request, "blobs")
    pipeline_tag = PIPELINE_TAGS.get(base_model.task_type)
    siblings = []
    for file in repo.files:
        sibling: dict = {"rfilename": file.filename}
        if blobs:
            sibling.update(size=file.size, blobId=_oid(file))
            if _is_lfs(file):
                pointer_size = len(_lfs_pointer(file))
                sibling["lfs"] = {"size": file.size, "sha256": file.sha256,
                                  "pointerSize": pointer_size}  # fmt: skip
        siblings.append(sibling)
    info = {
        "_id": f"base-model-{base_model.pk}",
        "id": base_model.identifier,
        "modelId": base_model.identifier,
        "author": base_model.identifier.split("/", 1)[0],
        "sha": repo.sha,
        "lastModified": _hub_date(base_model.updated_at),
        "createdAt": _hub_date(base_model.created_at),
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": base_model.download_count,
        "downloadsAllTime": base_model.download_count,
        "likes": 0,
        "library_name": "transformers",
        "pipeline_tag": pipeline_tag,
        "tags": [t for t in ("transformers", "safetensors", base_model.family, pipeline_tag) if t],
        "config": _config(repo),
        "siblings": siblings,
        "spaces": [],
        "usedStorage": sum(file.size for file in repo.files),
        "cardData": parse_card(repo.card).data,
    }
    expand = _expand_keys(request)
    return JsonResponse(_only(info, {"_id", "id", *expand}) if expand else info)


def _tree_item(repo: BaseRepo, file: BaseFile, *, expand: bool) -> dict:
    item: dict = {"type": "file", "oid": _oid(file), "size": file.size, "path": file.filename}
    if _is_lfs(file):
        item["lfs"] = {"oid": file.sha256, "size": file.size,
                       "pointerSize": len(_lfs_pointer(file))}  # fmt: skip
    if expand:
        item["lastCommit"] = {
            "id": repo.sha,
            "title": f"{repo.base_model.identifier} as served by the hub",
            "date": _hub_date(repo.base_model.updated_at),
        }
    return item


@require_GET
@hub_view
def base_model_tree(request, base_model: BaseModel, revision: str, path_in_repo: str = ""):
    repo = _repo(base_model, revision)
    if path_in_repo.strip("/"):
        raise _entry_not_found(repo, path_in_repo)
    expand = _flag(request, "expand")
    return JsonResponse([_tree_item(repo, f, expand=expand) for f in repo.files], safe=False)


@csrf_exempt  # a read: it changes nothing, whoever sends it
@require_POST
@hub_view
def base_paths_info(request, base_model: BaseModel, revision: str):
    repo = _repo(base_model, revision)
    expand = request.POST.get("expand", "").lower() in ("1", "true")
    wanted = request.POST.getlist("paths")
    items = [_tree_item(repo, f, expand=expand) for f in repo.files if f.filename in wanted]
    return JsonResponse(items, safe=False)


@require_safe
@hub_view
def base_resolve_file(request, base_model: BaseModel, revision: str, filename: str):
    """One file of the base model, with the headers of a module's (``files.resolve_file``)."""
    repo = _repo(base_model, revision)
    file = repo.file(filename)
    if file is None:
        raise _entry_not_found(repo, filename)
    byte_range = _byte_range(request.headers.get("Range", ""), file.size)
    first, last = byte_range or (0, file.size - 1)
    whole_file = (first, last) == (0, file.size - 1)
    if filename == COUNTED_FILE and counts_as_download(
        request, whole_file=whole_file, repo_key=f"base-model:{base_model.pk}"
    ):
        base_model_record_download(base_model=base_model)
    length = max(last - first + 1, 0)
    status = 206 if byte_range else 200
    content_type = file_content_type(filename)
    if request.method == "HEAD":
        response = HttpResponse(status=status, content_type=content_type)
    elif file.path is None:
        response = HttpResponse(file.content[first : last + 1], status=status,
                                content_type=content_type)  # fmt: skip
    else:
        response = StreamingHttpResponse(
            range_chunks(lambda: file.path.open("rb"), first, length),
            status=status,
            content_type=content_type,
        )
    response["Content-Length"] = str(length)
    if byte_range:
        response["Content-Range"] = f"bytes {first}-{last}/{file.size}"
    response["X-Repo-Commit"] = repo.sha
    response["ETag"] = response["X-Linked-Etag"] = f'"{file.sha256}"'
    response["X-Linked-Size"] = str(file.size)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = f'attachment; filename="{file.filename}"'
    return response
