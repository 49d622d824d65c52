"""Importing modules from the Hugging Face Hub, or any endpoint that speaks its protocol.

A repository is read the way any client reads it: ``model_info`` with file
sizes and hashes to choose the adapter's files, then ``hf_hub_download`` of
each at that commit. The files then take the upload path, ``module_create``:
the same validation (pickled ``adapter_model.bin`` weights loaded with
``weights_only`` and stored as safetensors), the same card handling (its
tags, license and datasets are registered) and the same duplicate check.

Import jobs, which cover a list of repositories or every repository of an
author, are in ``modules.hub_import_jobs``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from hubsite.errors import public_message
from hubsite.text import printable
from modules import validation
from modules.downloads import worker_headers
from modules.models import BaseModel, Module, ModuleFile
from modules.services import (
    HubSource,
    ModuleDuplicate,
    adapter_config_naming,
    module_create,
    module_record_source,
)
from modules.validation import ADAPTER_CONFIG, MODEL_CARD, PICKLED_WEIGHTS, SAFETENSORS_WEIGHTS

logger = logging.getLogger(__name__)

IMPORTED, SKIPPED, FAILED = "imported", "skipped", "failed"
# owner/name, as the Hub spells repository ids.
# \Z, not $: $ also matches before a final line break.
REPO_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")
AUTHOR_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")


class ImportRefused(Exception):
    """The repository cannot become a module; the message says why."""


@dataclass(frozen=True)
class RepoOutcome:
    repo_id: str
    status: str
    module: str | None = None
    message: str = ""
    # The commit the endpoint reported for the files read ("" unless imported).
    revision: str = ""

    def __post_init__(self):
        # Ids come from the endpoint's listing and messages from its answers or
        # this worker's errors: shown on pages and terminals, they must be plain.
        object.__setattr__(self, "repo_id", printable(self.repo_id))
        object.__setattr__(self, "message", public_message(self.message))

    def as_json(self) -> dict:
        return {
            "repo_id": self.repo_id,
            "status": self.status,
            "module": self.module,
            "message": self.message,
            "revision": self.revision,
        }


# --- One repository ---------------------------------------------------------------


def hub_import_repo(
    *,
    owner: AbstractBaseUser,
    repo_id: str,
    endpoint: str,
    work_dir: Path,
    token: str | bool | None = False,
    revision: str | None = None,
    visibility: str = Module.Visibility.PUBLIC,
    base_model: BaseModel | None = None,
) -> RepoOutcome:
    """Import ``repo_id`` from ``endpoint`` as ``owner/<its name>``; never raises for the repo.

    ``token`` is what huggingface_hub sends: False for none (imports users
    ask for never carry the hub's own credentials to an endpoint they
    chose), None for the environment's (``HF_TOKEN``), or a token.
    """
    try:
        return _import_repo(
            owner=owner,
            repo_id=repo_id,
            endpoint=endpoint,
            work_dir=work_dir,
            token=token,
            revision=revision,
            visibility=visibility,
            base_model=base_model,
        )
    except ModuleDuplicate as duplicate:
        existing = duplicate.existing.full_name
        return RepoOutcome(repo_id, SKIPPED, existing, f"already on the hub as {existing}")
    except ValidationError as exc:
        return RepoOutcome(repo_id, FAILED, message=_validation_text(exc))
    except ImportRefused as exc:
        return RepoOutcome(repo_id, FAILED, message=str(exc))
    except Exception as exc:
        return RepoOutcome(repo_id, FAILED, message=remote_error_text(exc, repo_id, endpoint))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _import_repo(
    *, owner, repo_id, endpoint, work_dir, token, revision, visibility, base_model
) -> RepoOutcome:
    from huggingface_hub import HfApi, hf_hub_download

    if not REPO_ID_PATTERN.match(repo_id):
        raise ImportRefused(f"{repo_id!r} is not a repository id (owner/name)")
    info = HfApi(endpoint=endpoint, token=token).model_info(
        repo_id, revision=revision, files_metadata=True
    )
    wanted = _adapter_files(info)
    existing = _already_imported(owner, wanted)
    if existing is not None:
        return RepoOutcome(
            repo_id, SKIPPED, existing.full_name, f"already on the hub as {existing.full_name}"
        )
    known_size = sum(sibling.size or 0 for sibling in wanted.values())
    if known_size > settings.HUB_MAX_UPLOAD_BYTES:
        raise ImportRefused(
            f"its adapter files are {known_size:,} bytes; the hub accepts at most "
            f"{settings.HUB_MAX_UPLOAD_BYTES:,} (HUB_MAX_UPLOAD_BYTES)"
        )
    # Every file from the commit model_info saw, even if the branch moves meanwhile.
    commit = info.sha or revision
    files = {}
    for filename, sibling in wanted.items():
        path = hf_hub_download(
            repo_id,
            filename,
            revision=commit,
            endpoint=endpoint,
            token=token,
            local_dir=work_dir,
            headers=worker_headers(),  # this hub does not count its own worker's fetches
        )
        local = validation.hash_file(Path(path))
        if sibling.lfs is not None and local.sha256 != sibling.lfs.sha256:
            raise ImportRefused(
                f"{filename} downloaded with sha256 {local.sha256}, but the endpoint lists "
                f"{sibling.lfs.sha256}; try again"
            )
        files[filename] = local
    named = _named_base_model(files[ADAPTER_CONFIG].path)
    if base_model is not None:
        # The chosen base model is named by the stored config too, as by the card and row.
        config = adapter_config_naming(
            files[ADAPTER_CONFIG].path, base_model.identifier, work_dir / "named"
        )
        files[ADAPTER_CONFIG] = validation.hash_file(config)
    source = HubSource(
        endpoint=public_endpoint(endpoint), repo_id=repo_id, revision=info.sha or commit or ""
    )
    with transaction.atomic():
        module = module_create(
            owner=owner,
            name=repo_id.split("/", 1)[1],
            files=files,
            base_model=base_model,
            visibility=visibility,
        )
        module_record_source(module=module, source=source)
    rewritten = base_model is not None and named != base_model.identifier
    notes = [_weights_note(wanted), _rewrite_note(named, base_model) if rewritten else ""]
    message = "; ".join(filter(None, notes))
    return RepoOutcome(repo_id, IMPORTED, module.full_name, message, source.revision)


def public_endpoint(endpoint: str) -> str:
    """The endpoint as pages may show it: without a user name or password in the URL."""
    parts = urlsplit(endpoint)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")


def _named_base_model(config_path: Path) -> str | None:
    """What the downloaded config names as its base model (validation judges the rest)."""
    try:
        named = json.loads(config_path.read_bytes()).get("base_model_name_or_path")
    except (ValueError, AttributeError):
        return None
    return named if isinstance(named, str) else None


def _rewrite_note(named: str | None, base_model: BaseModel) -> str:
    before = f"named {printable(named)!r}" if named else "named none"
    return f"{ADAPTER_CONFIG} now names {base_model.identifier} as its base model (it {before})"


def _adapter_files(info) -> dict:
    """The siblings to download: config, weights (safetensors before pickle), card."""
    siblings = {sibling.rfilename: sibling for sibling in info.siblings or []}
    if ADAPTER_CONFIG not in siblings:
        raise ImportRefused(f"not a PEFT adapter: the repository has no {ADAPTER_CONFIG}")
    weights = next((f for f in (SAFETENSORS_WEIGHTS, PICKLED_WEIGHTS) if f in siblings), None)
    if weights is None:
        raise ImportRefused(
            f"the repository has no {SAFETENSORS_WEIGHTS} or {PICKLED_WEIGHTS} at its root"
        )
    names = [ADAPTER_CONFIG, weights, *([MODEL_CARD] if MODEL_CARD in siblings else [])]
    return {name: siblings[name] for name in names}


def _already_imported(owner, wanted: dict) -> Module | None:
    """The owner's module with the same safetensors weights, known before downloading.

    Pickled weights are only known once converted; ``module_create`` then
    finds the duplicate.
    """
    weights = wanted.get(SAFETENSORS_WEIGHTS)
    if weights is None or weights.lfs is None:
        return None
    existing = (
        ModuleFile.objects.filter(
            module__owner=owner, filename=SAFETENSORS_WEIGHTS, sha256=weights.lfs.sha256
        )
        .select_related("module__owner")
        .first()
    )
    return existing.module if existing else None


def _weights_note(wanted: dict) -> str:
    if PICKLED_WEIGHTS in wanted:
        return f"{PICKLED_WEIGHTS} loaded with weights_only and stored as {SAFETENSORS_WEIGHTS}"
    return ""


def _validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {message}" for field, messages in exc.message_dict.items()
            for message in messages
        )  # fmt: skip
    return "; ".join(exc.messages)


def remote_error_text(exc: Exception, repo_id: str, endpoint: str) -> str:
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, RepositoryNotFoundError):
        return f"{endpoint} has no repository {repo_id} (or it is private or gated)"
    if isinstance(exc, RevisionNotFoundError):
        return f"{endpoint} has no such revision of {repo_id}"
    if isinstance(exc, EntryNotFoundError):
        return f"a file {endpoint} listed for {repo_id} could not be downloaded"
    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set on this worker, so it cannot download"
    if isinstance(exc, HfHubHTTPError):
        return f"{endpoint} answered: {str(exc).splitlines()[0]}"
    if isinstance(exc, OSError | ConnectionError) or "httpx" in type(exc).__module__:
        return f"could not reach {endpoint}: {type(exc).__name__}: {exc}"
    logger.exception("importing %s from %s failed", repo_id, endpoint)
    return f"internal error: {type(exc).__name__}: {exc}"


# --- Listing ---------------------------------------------------------------------


def hub_list_author(
    *, endpoint: str, author: str, limit: int, token: str | bool | None = False
) -> list[str]:
    """Ids of the author's repositories on the endpoint (``/api/models?author=``), at most limit."""
    from huggingface_hub import HfApi

    listed = HfApi(endpoint=endpoint, token=token).list_models(author=author, limit=limit)
    return [model.id for model in listed]
