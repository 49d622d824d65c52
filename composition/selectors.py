"""Reads of the composition app."""

from composition.models import WorkerCheck


def worker_check_get(*, check_id: int) -> WorkerCheck:
    return WorkerCheck.objects.get(pk=check_id)
