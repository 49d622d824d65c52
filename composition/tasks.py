"""Celery tasks of the composition app: thin wrappers that call services with plain ids.

Services send them by name (``Job.task_name``), so no service imports this module.
"""

from celery import shared_task

from composition import playground, results, worker_checks
from composition.training import services as training_services


@shared_task(bind=True, time_limit=60, soft_time_limit=50)
def worker_check_answer(self, check_id: int, attempt: int) -> None:
    worker_checks.worker_check_answer_run(
        check_id=check_id, attempt=attempt, worker_host=self.request.hostname or ""
    )


# Routed to the "gpu" queue by name (CELERY_TASK_ROUTES); acknowledged late,
# so a task whose worker died is delivered again and the service restarts it.
@shared_task(bind=True, acks_late=True)
def gpu_run_composition(self, job_id: int, attempt: int) -> None:
    results.composition_run(job_id=job_id, attempt=attempt, worker_host=self.request.hostname or "")


@shared_task(bind=True, acks_late=True)
def gpu_train_module(self, job_id: int, attempt: int) -> None:
    training_services.training_run(
        job_id=job_id, attempt=attempt, worker_host=self.request.hostname or ""
    )


# Interactive: short limits, and not acknowledged late (a lost request is
# simply asked again by the user; the sweep fails it).
@shared_task(bind=True, time_limit=120, soft_time_limit=110, acks_late=False)
def gpu_generate(self, job_id: int, attempt: int) -> None:
    playground.playground_run(
        job_id=job_id, attempt=attempt, worker_host=self.request.hostname or ""
    )
