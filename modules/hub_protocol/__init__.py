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

A base model whose weights are a local folder (the embedded SmolLM2) is
served at its own id as a transformers repository (``base_repos``).

A module has a single revision. Its commit id is a hash of its file names
and contents, so it changes whenever a file does (an edited card), and
``main`` names it. Errors carry ``X-Error-Code`` (RepoNotFound,
RevisionNotFound, EntryNotFound), which the client turns into its typed
exceptions; PEFT relies on EntryNotFound to fall back from safetensors to
pickled weights. A private module is RepoNotFound for everyone but its owner.
Tokens are the REST API's, sent as ``Authorization: Bearer …``.
"""

from django.urls import path

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

urlpatterns = [
    path("api/whoami-v2", whoami, name="hub-whoami"),
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
