"""Writes of the composition app: jobs and their state changes."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from composition.models import JobStatus, WorkerCheck


def known_queues() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def worker_check_request(*, queue: str) -> WorkerCheck:
    """Create a check row and send it to ``queue`` once the row is committed."""
    if queue not in known_queues():
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(known_queues())}")
    from composition.tasks import worker_check_answer

    with transaction.atomic():
        check = WorkerCheck.objects.create(queue=queue)
        transaction.on_commit(lambda: worker_check_answer.apply_async(args=[check.pk], queue=queue))
    return check


def worker_check_answer_run(*, check_id: int, worker_host: str) -> None:
    """What a worker does with a check: mark it running, then succeeded."""
    now = timezone.now()
    WorkerCheck.objects.filter(pk=check_id).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, worker_host=worker_host
    )
    WorkerCheck.objects.filter(pk=check_id).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )
