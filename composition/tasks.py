"""Celery tasks: thin wrappers that call services with plain ids."""

from celery import shared_task

from composition import services


@shared_task(bind=True, time_limit=60, soft_time_limit=50)
def worker_check_answer(self, check_id: int) -> None:
    services.worker_check_answer_run(check_id=check_id, worker_host=self.request.hostname or "")
