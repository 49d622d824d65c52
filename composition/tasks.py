"""Celery tasks: thin wrappers that call services with plain ids."""

from celery import shared_task

from composition import services
from composition.training import services as training_services


@shared_task(bind=True, time_limit=60, soft_time_limit=50)
def worker_check_answer(self, check_id: int) -> None:
    services.worker_check_answer_run(check_id=check_id, worker_host=self.request.hostname or "")


# Routed to the "gpu" queue by name (CELERY_TASK_ROUTES); acknowledged late,
# so a task whose worker died is delivered again and the service restarts it.
@shared_task(bind=True, acks_late=True)
def gpu_run_composition(self, job_id: int, attempt: int) -> None:
    services.composition_run(
        job_id=job_id, attempt=attempt, worker_host=self.request.hostname or ""
    )


@shared_task(bind=True, acks_late=True)
def gpu_train_module(self, job_id: int, attempt: int) -> None:
    training_services.training_run(
        job_id=job_id, attempt=attempt, worker_host=self.request.hostname or ""
    )


@shared_task(time_limit=120, soft_time_limit=110)
def sweep_stale_jobs() -> None:
    services.composition_sweep_stale()
    training_services.training_sweep_stale()


# Interactive: short limits, and not acknowledged late (a lost request is
# simply asked again by the user).
@shared_task(bind=True, time_limit=120, soft_time_limit=110, acks_late=False)
def gpu_generate(self, request_id: int) -> None:
    services.playground_run(request_id=request_id, worker_host=self.request.hostname or "")
