"""Import jobs: a list of repositories, or all of an author's, imported in the background.

An import job (``ImportJob``) records one result per repository: imported,
skipped (the owner already has these weights) or failed, with the reason. Each
repository is imported by ``modules.hub_import.hub_import_repo``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from hubsite import job_runs
from hubsite.jobs import JobStatus
from modules.hub_import import (
    AUTHOR_PATTERN,
    REPO_ID_PATTERN,
    RepoOutcome,
    hub_import_repo,
    hub_list_author,
    remote_error_text,
)
from modules.models import BaseModel, ImportJob, Module
from modules.services import check_visibility


def import_job_submit(
    *,
    owner: AbstractBaseUser,
    repo_ids: Iterable[str] = (),
    author: str = "",
    endpoint: str = "",
    visibility: str = Module.Visibility.PUBLIC,
    base_model: str = "",
    any_endpoint: bool = False,
    dispatch: bool = True,
) -> ImportJob:
    """Check the request, create the job row and queue it once committed.

    Pages and the API may only name the endpoints in ``HUB_IMPORT_ENDPOINTS``,
    the first by default (``any_endpoint`` is for the command line, whose
    default is ``HF_ENDPOINT``). Without ``dispatch`` the
    caller runs the job itself (``import_job_run``). ``base_model`` names a
    registered base model every adapter is taken for (its config rewritten
    to name it); blank, each adapter's own. Raises
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
    chosen_base_model = _registered_base_model(base_model.strip(), errors)
    if errors:
        raise ValidationError(errors)

    fields = {
        "endpoint": endpoint,
        "author": author,
        "repo_ids": repo_ids,
        "visibility": visibility,
        "base_model": chosen_base_model,
        "steps": len(repo_ids),
    }
    with transaction.atomic():
        if dispatch:
            return job_runs.job_create(ImportJob, owner=owner, **fields)
        return ImportJob.objects.create(owner=owner, **fields)


def _registered_base_model(identifier: str, errors: dict) -> BaseModel | None:
    if not identifier:
        return None
    found = BaseModel.objects.filter(identifier__iexact=identifier).first()
    if found is None:
        registered = ", ".join(BaseModel.objects.values_list("identifier", flat=True))
        errors.setdefault("base_model", []).append(
            f"No base model {identifier!r} on this hub; choose one of: {registered or 'none yet'}."
        )
    return found


def import_job_run(
    *,
    job_id: int,
    attempt: int | None = None,
    worker_host: str,
    token: str | bool | None = False,
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
        _run_claimed(job, work_dir, token=token, on_result=on_result)

    job_runs.run(ImportJob, job_id=job_id, attempt=attempt, worker_host=worker_host, body=body)
    return ImportJob.objects.get(pk=job_id)


def _run_claimed(job: ImportJob, work_dir: Path, *, token, on_result) -> None:
    notes = []
    if job.author:
        try:
            notes += _list_author(job, token)
        except Exception as exc:
            reason = remote_error_text(exc, f"{job.author}'s repositories", job.endpoint)
            raise job_runs.JobFailed(f"listing {job.author} failed: {reason}") from exc
    finished = _import_listed(job, work_dir, token=token, on_result=on_result)
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


def _import_listed(job: ImportJob, work_dir: Path, *, token, on_result) -> bool:
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
            base_model=job.base_model,
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
