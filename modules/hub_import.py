"""Importing modules from the Hugging Face Hub, or any endpoint that speaks its protocol.

A repository is read the way any client reads it: ``model_info`` with file
sizes and hashes to choose the adapter's files, then ``hf_hub_download`` of
each at that commit. The files then take the upload path, ``module_create``:
the same validation (pickled ``adapter_model.bin`` weights loaded with
``weights_only`` and stored as safetensors), the same card handling (its
tags, license and datasets are registered) and the same duplicate check.

An import job (``ImportJob``) covers a list of repositories, or every
repository of an author, and records one result per repository: imported,
skipped (the owner already has these weights) or failed, with the reason.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from hubsite import job_runs
from hubsite.errors import public_message
from hubsite.jobs import JobStatus
from hubsite.text import printable
from modules import validation
from modules.models import BaseModel, ImportJob, Module, ModuleFile
from modules.services import ModuleDuplicate, check_visibility, module_create
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
        return RepoOutcome(repo_id, FAILED, message=_remote_error_text(exc, repo_id, endpoint))
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
            repo_id, filename, revision=commit, endpoint=endpoint, token=token, local_dir=work_dir
        )
        local = validation.hash_file(Path(path))
        if sibling.lfs is not None and local.sha256 != sibling.lfs.sha256:
            raise ImportRefused(
                f"{filename} downloaded with sha256 {local.sha256}, but the endpoint lists "
                f"{sibling.lfs.sha256}; try again"
            )
        files[filename] = local
    module = module_create(
        owner=owner,
        name=repo_id.split("/", 1)[1],
        files=files,
        base_model=base_model,
        visibility=visibility,
    )
    return RepoOutcome(repo_id, IMPORTED, module.full_name, _weights_note(wanted))


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


def _remote_error_text(exc: Exception, repo_id: str, endpoint: str) -> str:
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


# --- Jobs ------------------------------------------------------------------------------


def import_job_submit(
    *,
    owner: AbstractBaseUser,
    repo_ids: Iterable[str] = (),
    author: str = "",
    endpoint: str = "",
    visibility: str = Module.Visibility.PUBLIC,
    any_endpoint: bool = False,
    dispatch: bool = True,
) -> ImportJob:
    """Check the request, create the job row and queue it once committed.

    Pages and the API may only name the endpoints in ``HUB_IMPORT_ENDPOINTS``,
    the first by default (``any_endpoint`` is for the command line, whose
    default is ``HF_ENDPOINT``). Without ``dispatch`` the
    caller runs the job itself (``import_job_run``). Raises
    ``ValidationError`` with messages per field.
    """
    errors: dict[str, list[str]] = {}
    if not endpoint:
        allowed = settings.HUB_IMPORT_ENDPOINTS
        use_default = any_endpoint or not allowed
        endpoint = settings.HUB_IMPORT_DEFAULT_ENDPOINT if use_default else allowed[0]
    endpoint = endpoint.strip().rstrip("/")
    try:
        URLValidator(schemes=["http", "https"])(endpoint)
    except ValidationError:
        errors.setdefault("endpoint", []).append(f"{endpoint!r} is not an http(s) URL.")
    else:
        if not any_endpoint and endpoint not in settings.HUB_IMPORT_ENDPOINTS:
            allowed = ", ".join(settings.HUB_IMPORT_ENDPOINTS)
            errors.setdefault("endpoint", []).append(
                f"This hub imports from {allowed} only (HUB_IMPORT_ENDPOINTS)."
            )
    repo_ids = list(dict.fromkeys(r.strip() for r in repo_ids if r.strip()))
    author = author.strip()
    malformed = [r for r in repo_ids if not REPO_ID_PATTERN.match(r)]
    if malformed:
        errors.setdefault("repo_ids", []).append(
            f"Not repository ids (owner/name): {', '.join(map(repr, malformed))}."
        )
    if not repo_ids and not author:
        errors.setdefault("repo_ids", []).append(
            "Name repositories, or an author to import all of."
        )
    if len(repo_ids) > settings.HUB_IMPORT_MAX_REPOS:
        errors.setdefault("repo_ids", []).append(
            f"At most {settings.HUB_IMPORT_MAX_REPOS} repositories per import "
            f"({len(repo_ids)} given)."
        )
    if author and not AUTHOR_PATTERN.match(author):
        errors.setdefault("author", []).append(f"{author!r} is not a user or organisation name.")
    check_visibility(visibility, errors)
    if errors:
        raise ValidationError(errors)

    fields = {
        "endpoint": endpoint,
        "author": author,
        "repo_ids": repo_ids,
        "visibility": visibility,
        "steps": len(repo_ids),
    }
    with transaction.atomic():
        if dispatch:
            return job_runs.job_create(ImportJob, owner=owner, **fields)
        return ImportJob.objects.create(owner=owner, **fields)


def import_job_run(
    *,
    job_id: int,
    attempt: int | None = None,
    worker_host: str,
    token: str | bool | None = False,
    base_model: BaseModel | None = None,
    on_result: Callable[[RepoOutcome], None] | None = None,
) -> ImportJob | None:
    """Run an import job; a redelivered job resumes after its last recorded repository.

    ``attempt`` is the dispatch's (None: the job's own, for a caller that runs
    the job itself). Returns the finished job, or None when it must not run.
    """
    queued = ImportJob.objects.filter(pk=job_id).first()
    if queued is None or queued.is_final:
        return None
    if attempt is None:
        attempt = queued.attempt

    def body(job: ImportJob, work_dir: Path) -> None:
        _run_claimed(job, work_dir, token=token, base_model=base_model, on_result=on_result)

    job_runs.run(ImportJob, job_id=job_id, attempt=attempt, worker_host=worker_host, body=body)
    return ImportJob.objects.get(pk=job_id)


def _run_claimed(job: ImportJob, work_dir: Path, *, token, base_model, on_result) -> None:
    notes = []
    if job.author:
        try:
            notes += _list_author(job, token)
        except Exception as exc:
            reason = _remote_error_text(exc, f"{job.author}'s repositories", job.endpoint)
            raise job_runs.JobFailed(f"listing {job.author} failed: {reason}") from exc
    finished = _import_listed(
        job, work_dir, token=token, base_model=base_model, on_result=on_result
    )
    job.refresh_from_db()
    if not finished:
        notes.append(
            f"cancelled after {len(job.results)} of {job.total} repositories; "
            "what was imported stays"
        )
        job_runs.finish(job, JobStatus.CANCELLED, "; ".join(notes), current_repo="")
        return
    if job.failed_count:
        notes.append(f"{job.failed_count} of {job.total} repositories failed")
    nothing_worked = job.results and job.failed_count == len(job.results)
    status = JobStatus.FAILED if nothing_worked else JobStatus.SUCCEEDED
    job_runs.finish(job, status, "; ".join(notes), current_repo="")


def _import_listed(job: ImportJob, work_dir: Path, *, token, base_model, on_result) -> bool:
    """Import every repository not done yet; False when cancelled on the way."""
    done = {result["repo_id"] for result in job.results}
    for index, repo_id in enumerate(job.repo_ids):
        if repo_id in done:
            continue
        if job_runs.stopped(job):
            return False
        job_runs.this_run(job).update(current_repo=repo_id, heartbeat_at=timezone.now())
        outcome = hub_import_repo(
            owner=job.owner,
            repo_id=repo_id,
            endpoint=job.endpoint,
            work_dir=work_dir / str(index),
            token=token,
            visibility=job.visibility,
            base_model=base_model,
        )
        job.results = [*job.results, outcome.as_json()]
        job_runs.this_run(job).update(
            results=job.results, current_step=len(job.results), heartbeat_at=timezone.now()
        )
        if on_result is not None:
            on_result(outcome)
    return True


def import_job_cancel(*, job: ImportJob) -> ImportJob:
    """Cancel a queued import at once; a running one stops before its next repository.

    Raises ``JobStateError`` when the import already finished.
    """
    return job_runs.request_cancel(job)


def _list_author(job: ImportJob, token) -> list[str]:
    """Add the author's repositories to the job (again, harmlessly, on redelivery)."""
    room = settings.HUB_IMPORT_MAX_REPOS - len(job.repo_ids)
    listed = hub_list_author(endpoint=job.endpoint, author=job.author, limit=room + 1, token=token)
    notes = []
    if len(listed) > room:
        listed = listed[:room]
        notes.append(
            f"{job.author} has more repositories than one import takes; the first "
            f"{settings.HUB_IMPORT_MAX_REPOS} were imported (HUB_IMPORT_MAX_REPOS)"
        )
    job.repo_ids = list(dict.fromkeys([*job.repo_ids, *listed]))
    job.steps = len(job.repo_ids)
    job_runs.this_run(job).update(repo_ids=job.repo_ids, steps=job.steps)
    return notes


def _work_root() -> Path:
    path = Path(settings.FILE_UPLOAD_TEMP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path
