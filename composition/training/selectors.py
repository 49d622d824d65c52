"""Reads of module training."""

from django.db.models import QuerySet

from composition.models import TrainingJob


def training_jobs_of(*, user) -> QuerySet[TrainingJob]:
    """A user's training jobs, newest first."""
    return TrainingJob.objects.filter(owner=user).select_related(
        "base_model", "result_module__owner"
    )


def training_job_visible(*, user, job_id: int) -> TrainingJob | None:
    """A job its owner may see; anyone may once its module is public, else None."""
    job = (
        TrainingJob.objects.select_related("base_model", "owner", "result_module__owner")
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        return None
    published = job.result_module is not None and job.result_module.is_public
    return job if job.owner_id == user.pk or published else None
