"""Reads of the composition app."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from composition.models import CompositionCandidate, CompositionJob, WorkerCheck
from modules.models import Module
from modules.selectors import visible_module_ids


def worker_check_get(*, check_id: int) -> WorkerCheck:
    return WorkerCheck.objects.get(pk=check_id)


def composition_jobs() -> QuerySet[CompositionJob]:
    """Jobs with what their pages and the API show: base model, result, candidates."""
    return CompositionJob.objects.select_related(
        "base_model", "result_module__owner", "owner"
    ).prefetch_related(
        Prefetch(
            "candidates", queryset=CompositionCandidate.objects.select_related("module__owner")
        )
    )


def composition_job_get(*, job_id: int, user) -> CompositionJob:
    """The job if the user may see it: its owner always, anyone once its result is public.

    Raises CompositionJob.DoesNotExist otherwise.
    """
    job = composition_jobs().get(pk=job_id)
    published = job.result_module is not None and job.result_module.is_public
    if not (published or (user.is_authenticated and job.owner_id == user.pk)):
        raise CompositionJob.DoesNotExist(f"No composition {job_id}.")
    return job


@dataclass(frozen=True)
class CandidateRow:
    """A candidate module of a job as one viewer may see it."""

    module: Module | None  # None when the viewer may not see it, or it was deleted
    name: str | None  # None when hidden from the viewer
    deleted: bool
    weight: float | None
    selected: bool | None
    solo_loss: float | None
    group_weights: tuple[float, ...] = ()
    retrieval_score: float | None = None

    @property
    def visible(self) -> bool:
        return self.name is not None


def job_candidates(
    *, job: CompositionJob, user, visible: set[int] | None = None
) -> list[CandidateRow]:
    """The job's candidates, in order, naming only modules the user may see.

    A published job is public, but a private candidate (its owner's, or one
    made private since) stays unnamed for anyone else, as in a module's
    lineage. The job's owner still reads the names of deleted candidates: they
    chose them. ``visible``: the ids of ``candidate_module_ids`` the user may
    see, when already known (a page of jobs is checked at once).
    """
    candidates = list(job.candidates.all())
    if visible is None:
        visible = visible_module_ids(user=user, module_ids=candidate_module_ids([job]))
    is_owner = user.is_authenticated and job.owner_id == user.pk
    rows = []
    for candidate in candidates:
        deleted = candidate.module_id is None
        shown = candidate.module_id in visible
        rows.append(
            CandidateRow(
                module=candidate.module if shown else None,
                name=candidate.module_name if shown or (deleted and is_owner) else None,
                deleted=deleted,
                weight=candidate.weight,
                selected=candidate.selected,
                solo_loss=candidate.solo_loss,
                group_weights=tuple(candidate.group_weights),
                retrieval_score=candidate.retrieval_score,
            )
        )
    return rows


def candidate_module_ids(jobs) -> list[int]:
    return [c.module_id for job in jobs for c in job.candidates.all() if c.module_id]


def source_licenses(modules) -> dict[str, int]:
    """How many of the composed modules carry each license ("" for a module that names none)."""
    counts: dict[str, int] = {}
    for module in modules:
        license = (module.license or "").strip().lower() if module is not None else ""
        counts[license] = counts.get(license, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], not item[0], item[0])))


def agreed_license(licenses: dict[str, int]) -> str:
    """The license every source shares, or "" when they differ or one names none."""
    [(only, _count)] = licenses.items() if len(licenses) == 1 else [("", 0)]
    return only


def licenses_in_words(licenses: dict[str, int]) -> str:
    """e.g. "apache-2.0 (2), mit (1), none given (1)"."""
    return ", ".join(f"{license or 'none given'} ({count})" for license, count in licenses.items())
