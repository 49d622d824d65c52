"""Writes to the registry, by concern; this package's names are its public API.

- ``base_models``: registering base models and the embedded default
- ``creation``: validating and registering modules (folders, workers' results)
- ``uploaded``: registering uploaded files or a .zip of an adapter folder
- ``edits``: an owner's changes after upload, and deletion
- ``checks``: the rules every new file set passes
- ``revisions``: a module's commits
- ``pushes``: writes through the Hub protocol (repositories, commits)
- ``engagement``: likes and download counts
- ``search_index``: the PostgreSQL search vectors and known words
- ``worker_files``: a module's files as local paths for workers
- ``provenance``: where an imported module came from; a config naming its base model
- ``fingerprints``: module fingerprints for candidate retrieval
"""

from modules.services.base_models import (
    EMBEDDED_BASE_MODEL,
    base_model_install_embedded,
    base_model_local_folder,
    base_model_register,
    base_model_served_files,
    base_model_shape,
    embedded_gguf_path,
    embedded_model_dir,
)
from modules.services.checks import ModuleDuplicate
from modules.services.creation import (
    check_module_name,
    check_visibility,
    module_create,
    module_import_folder,
)
from modules.services.edits import module_delete, module_update
from modules.services.engagement import (
    base_model_record_download,
    module_like,
    module_record_download,
    module_unlike,
)
from modules.services.fingerprints import (
    module_fingerprint_refresh,
    module_fingerprint_store,
    modules_without_fingerprint,
)
from modules.services.provenance import HubSource, adapter_config_naming, module_record_source
from modules.services.pushes import (
    FileMissing,
    PushedChanges,
    RepositoryExists,
    RepositoryMissing,
    RevisionMoved,
    repository_create,
    repository_delete,
    repository_files,
    repository_for_write,
    repository_push,
    repository_set_visibility,
)
from modules.services.revisions import commit_record, module_commit_sha
from modules.services.search_index import module_search_document, module_search_index_refresh
from modules.services.uploaded import module_upload
from modules.services.worker_files import module_local_files, module_local_folder

__all__ = [
    "EMBEDDED_BASE_MODEL",
    "FileMissing",
    "HubSource",
    "ModuleDuplicate",
    "PushedChanges",
    "RepositoryExists",
    "RepositoryMissing",
    "RevisionMoved",
    "adapter_config_naming",
    "base_model_install_embedded",
    "base_model_local_folder",
    "base_model_record_download",
    "base_model_register",
    "base_model_served_files",
    "base_model_shape",
    "check_module_name",
    "check_visibility",
    "commit_record",
    "embedded_gguf_path",
    "embedded_model_dir",
    "module_commit_sha",
    "module_create",
    "module_delete",
    "module_fingerprint_refresh",
    "module_fingerprint_store",
    "module_import_folder",
    "module_like",
    "module_local_files",
    "module_local_folder",
    "module_record_download",
    "module_record_source",
    "module_search_document",
    "module_search_index_refresh",
    "module_unlike",
    "module_update",
    "module_upload",
    "modules_without_fingerprint",
    "repository_create",
    "repository_delete",
    "repository_files",
    "repository_for_write",
    "repository_push",
    "repository_set_visibility",
]
