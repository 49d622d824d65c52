"""Repository info, file listings and paths-info."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from modules.hub_protocol.common import (
    Repo,
    _entry_not_found,
    _expand_keys,
    _file_oid,
    _flag,
    _hub_date,
    _is_lfs,
    _lfs_pointer,
    _only,
    _repo,
    hub_view,
    repo_info,
)
from modules.models import ModuleFile


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
