"""Worker checks: a round trip through a queue, proving that a worker consumes it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction

from composition.models import WorkerCheck
from hubsite import job_runs


def known_queues() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def worker_check_request(*, queue: str) -> WorkerCheck:
    """Create a check row and send it to ``queue`` once the row is committed."""
    if queue not in known_queues():
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(known_queues())}")
    with transaction.atomic():
        return job_runs.job_create(WorkerCheck, owner=None, queue=queue)


def worker_check_answer_run(*, check_id: int, attempt: int, worker_host: str) -> None:
    """What a worker does with a check: claim it, and so answer it."""
    job_runs.run(
        WorkerCheck, job_id=check_id, attempt=attempt, worker_host=worker_host, body=_answer
    )


def _answer(check: WorkerCheck, work_dir: Path) -> None:
    pass  # claiming the row was the answer; the runner records its success
