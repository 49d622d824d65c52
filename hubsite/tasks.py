"""Celery tasks of the site as a whole: thin wrappers over its services."""

from celery import shared_task
from celery.signals import worker_ready

from hubsite import job_runs
from hubsite.debris import debris_remove


@shared_task(time_limit=120, soft_time_limit=110)
def sweep_jobs() -> None:
    """Re-queue or fail every kind of job that no worker looks after any more."""
    job_runs.sweep()


@shared_task(time_limit=600, soft_time_limit=590)
def remove_debris() -> None:
    debris_remove()


@worker_ready.connect
def remove_debris_at_start(**kwargs) -> None:
    # Each worker cleans what a crash of its predecessor left on its own disk.
    debris_remove()
