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
    GET       /api/models/{owner}/{name}/commits/{rev}          history

A base model whose weights are a local folder (the embedded SmolLM2) is
served at its own id as a transformers repository (``base_repos``).

The write side (modules/hub_protocol/writes.py and commits.py):
``create_repo``, ``delete_repo``, ``update_repo_settings``, the README check
before a push (/api/validate-yaml), and commits with their preupload and
Git LFS steps, which ``upload_file``, ``upload_folder``, ``create_commit``,
``delete_file`` and PEFT's ``push_to_hub`` make.

Every upload, push or card edit is a commit of the module's whole file set,
with a 40-hex id; ``main`` names the newest, and any commit id of the
module's history serves the files as they were then. Errors carry ``X-Error-Code`` (RepoNotFound,
RevisionNotFound, EntryNotFound), which the client turns into its typed
exceptions; PEFT relies on EntryNotFound to fall back from safetensors to
pickled weights. A private module is RepoNotFound for everyone but its owner.
Tokens are the REST API's, sent as ``Authorization: Bearer …``.
"""

from django.urls import path

from modules.hub_protocol import commits, writes
from modules.hub_protocol.base_repos import (
    base_model_info,
    base_model_tree,
    base_paths_info,
    base_resolve_file,
    or_base_model,
)
from modules.hub_protocol.common import module_commit_sha
from modules.hub_protocol.files import resolve_file
from modules.hub_protocol.info import model_info, model_tree, paths_info
from modules.hub_protocol.lists import hub_model_search, model_list, whoami

__all__ = ["hub_model_search", "module_commit_sha", "urlpatterns"]

# A base model served here answers at its id before any module (base_repos).
info_view = or_base_model(model_info, base_model_info)
tree_view = or_base_model(model_tree, base_model_tree)
_repo_api = "api/models/<str:owner>/<str:name>"

urlpatterns = [
    path("api/whoami-v2", whoami, name="hub-whoami"),
    path("api/repos/create", writes.repo_create, name="hub-repo-create"),
    path("api/repos/delete", writes.repo_delete, name="hub-repo-delete"),
    path("api/validate-yaml", writes.validate_yaml, name="hub-validate-yaml"),
    path(f"{_repo_api}/settings", writes.repo_settings, name="hub-repo-settings"),
    path(f"{_repo_api}/commits/<path:revision>", writes.repo_commits, name="hub-repo-commits"),
    path(f"{_repo_api}/preupload/<path:revision>", commits.preupload, name="hub-preupload"),
    path(f"{_repo_api}/commit/<path:revision>", commits.commit, name="hub-commit"),
    path(f"{_repo_api}/xet-write-token/<path:revision>", commits.xet_token),
    path(f"{_repo_api}/xet-write-token", commits.xet_token),
    path(
        "<str:owner>/<str:name>.git/info/lfs/objects/batch", commits.lfs_batch, name="hub-lfs-batch"
    ),
    path("api/lfs-objects/<str:token>", commits.lfs_upload, name="hub-lfs-upload"),
    path("api/lfs-objects/<str:token>/verify", commits.lfs_verify, name="hub-lfs-verify"),
    path("api/models", model_list, name="hub-model-list"),
    path("api/models/<str:owner>/<str:name>", info_view, name="hub-model-info"),
    path(
        "api/models/<str:owner>/<str:name>/revision/<path:revision>",
        info_view,
        name="hub-model-info-revision",
    ),
    path("api/models/<str:owner>/<str:name>/tree/<str:revision>", tree_view, name="hub-model-tree"),
    path(
        "api/models/<str:owner>/<str:name>/tree/<str:revision>/<path:path_in_repo>",
        tree_view,
        name="hub-model-tree-path",
    ),
    path(
        "api/models/<str:owner>/<str:name>/paths-info/<str:revision>",
        or_base_model(paths_info, base_paths_info),
        name="hub-paths-info",
    ),
    path(
        "<str:owner>/<str:name>/resolve/<str:revision>/<path:filename>",
        or_base_model(resolve_file, base_resolve_file),
        name="hub-resolve",
    ),
]
